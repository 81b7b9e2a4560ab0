//! Messages between healthy peers: discovery, both directions, order kept
//! per pair, and nothing to or from a closed or dropped transport.

use peerlock_core::transport::{PeerMessage, Transport};
use peerlock_core::{NodeId, SessionId};
use peerlock_transport::ClusterCa;
use tokio::time::{timeout, Instant};

use crate::harness::{cluster, discover_all, quiet, raft, recv, Node, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_two_nodes_discover_each_other_and_exchange_both_ways() {
    let ca = ClusterCa::generate("t01").unwrap();
    let mut n = cluster(&ca, &["node-a", "node-b"]);
    let deadline = Instant::now() + WAIT;
    let (a, b) = (n[0].t.clone(), n[1].t.clone());
    let (ra, rb) = tokio::join!(a.discover(deadline), b.discover(deadline));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    for list in [&ra, &rb] {
        assert_eq!(list.len(), 2);
        assert!(list.iter().any(|p| p.name == "node-a"
            && p.id == NodeId::from_name("node-a")
            && p.addr == a.local_addr()));
        assert!(list
            .iter()
            .any(|p| p.name == "node-b" && p.addr == b.local_addr()));
    }
    a.send(b.local_id(), vec![raft(1), raft(2)]);
    let m = recv(&mut n[1].rx).await;
    assert_eq!(m.from, a.local_id());
    assert_eq!(m.msgs, vec![raft(1), raft(2)]);
    let ka = PeerMessage::KeepAlive {
        session: SessionId(9),
        seq: 3,
    };
    b.send(a.local_id(), vec![ka.clone()]);
    let m = recv(&mut n[0].rx).await;
    assert_eq!((m.from, m.msgs), (b.local_id(), vec![ka]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_three_nodes_every_pair_exchanges_and_order_is_kept() {
    let ca = ClusterCa::generate("t02").unwrap();
    let mut n = cluster(&ca, &["n1", "n2", "n3"]);
    discover_all(&n).await;
    let ids: Vec<NodeId> = n.iter().map(|x| x.t.local_id()).collect();
    for (i, x) in n.iter().enumerate() {
        for (j, &to) in ids.iter().enumerate() {
            if i != j {
                for k in 0..50u8 {
                    x.t.send(to, vec![raft(k)]);
                }
            }
        }
    }
    for (j, node) in n.iter_mut().enumerate() {
        let mut got: Vec<(NodeId, Vec<PeerMessage>)> = Vec::new();
        while got.iter().map(|(_, m)| m.len()).sum::<usize>() < 100 {
            let m = recv(&mut node.rx).await;
            got.push((m.from, m.msgs));
        }
        for (i, &from) in ids.iter().enumerate() {
            if i == j {
                continue;
            }
            let seq: Vec<PeerMessage> = got
                .iter()
                .filter(|(f, _)| *f == from)
                .flat_map(|(_, m)| m.clone())
                .collect();
            assert_eq!(
                seq,
                (0..50).map(raft).collect::<Vec<_>>(),
                "from {i} to {j}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t07_a_closed_node_gets_nothing_and_drop_stops_every_task() {
    let ca = ClusterCa::generate("t07").unwrap();
    let mut n = cluster(&ca, &["node-a", "node-b"]);
    discover_all(&n).await;
    let b = n.pop().unwrap();
    let mut a = n.pop().unwrap();
    a.t.close();
    b.t.send(a.t.local_id(), vec![raft(1)]);
    a.t.send(b.t.local_id(), vec![raft(2)]);
    quiet(&mut a.rx).await;
    // Dropping the last handle ends every task: they held the only other
    // senders of the incoming channel, so it closes.
    let Node { t, mut rx } = a;
    drop(t);
    let end = timeout(WAIT, async { while rx.recv().await.is_some() {} }).await;
    assert!(end.is_ok(), "tasks still hold the transport after drop");
    drop(b);
}
