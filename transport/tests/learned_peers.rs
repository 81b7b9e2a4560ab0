//! Learned members cost no tasks until they talk (issue 10, curve 5).
//!
//! Every node learns every member (its name and address, from the member
//! table), but a follower or learner talks only to its leader. A peer slot
//! (a writer, a bulk sender and their queues) for every member made a
//! cluster of n nodes hold n^2 tasks, and 1 000 nodes in one process did
//! not form. A learned member now gets its slot with its first message,
//! either way, and that first message is not lost. Over real sockets on
//! 127.0.0.1; every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::transport::{Incoming, PeerMessage, Transport};
use peerlock_core::NodeId;
use peerlock_transport::{ClusterCa, QuicTransport};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Long enough for anything on loopback; only reached when a test fails.
const WAIT: Duration = Duration::from_secs(5);

struct Node {
    t: Arc<QuicTransport>,
    rx: mpsc::Receiver<Incoming>,
    addr: SocketAddr,
}

/// A transport that was given no peers: it knows only what it learns.
fn start(ca: &ClusterCa, name: &str) -> Node {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let tls = ca.issue_node(name, &["127.0.0.1"]).unwrap();
    let (tx, rx) = mpsc::channel(256);
    let t = QuicTransport::bind_socket(sock, None, &tls, Vec::new(), tx).unwrap();
    Node { t, rx, addr }
}

fn learn(who: &Node, of: &Node) {
    who.t
        .learn_peer(of.t.local_id(), of.t.local_name(), of.addr);
}

async fn send_one(from: &Node, to: &mut Node, n: u8) {
    from.t
        .send(to.t.local_id(), vec![PeerMessage::Raft(vec![n; 3])]);
    let got = timeout(WAIT, to.rx.recv())
        .await
        .unwrap_or_else(|_| panic!("message {n}: nothing within {WAIT:?}"))
        .expect("channel open");
    assert_eq!(got.from, from.t.local_id());
    assert_eq!(got.msgs, vec![PeerMessage::Raft(vec![n; 3])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_issue_10_a_thousand_learned_members_make_no_slots() {
    let ca = ClusterCa::generate("lp01").unwrap();
    let me = start(&ca, "node-0");
    for i in 1..=1000u16 {
        let name = format!("member-{i}");
        let addr: SocketAddr = ([127, 0, 0, 1], 20_000 + i).into();
        me.t.learn_peer(NodeId::from_name(&name), &name, addr);
    }
    assert_eq!(me.t.peer_slots(), 0, "no slot before any message");
    assert_eq!(me.t.known_peers().len(), 1000, "every member is known");
    // A first message makes that one member's slot, and only its.
    me.t.send(
        NodeId::from_name("member-7"),
        vec![PeerMessage::Raft(vec![1])],
    );
    assert_eq!(me.t.peer_slots(), 1);
    assert_eq!(me.t.known_peers().len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_issue_10_the_first_message_to_a_learned_member_arrives_either_way() {
    let ca = ClusterCa::generate("lp02").unwrap();
    // Both orders of ids: the lower id owns the pair's connection, so the
    // first sender either dials or asks the other side to.
    for (round, (x, y)) in [("node-a", "node-b"), ("node-b", "node-a")]
        .into_iter()
        .enumerate()
    {
        let mut a = start(&ca, x);
        let mut b = start(&ca, y);
        learn(&a, &b);
        learn(&b, &a);
        assert_eq!((a.t.peer_slots(), b.t.peer_slots()), (0, 0));
        let n = u8::try_from(round).unwrap() * 10;
        send_one(&a, &mut b, n).await;
        send_one(&b, &mut a, n + 1).await;
        send_one(&a, &mut b, n + 2).await;
        assert_eq!((a.t.peer_slots(), b.t.peer_slots()), (1, 1));
        // The learned address is kept: the slot counts as configured.
        let known = a.t.known_peers();
        assert_eq!(known.len(), 1);
        assert_eq!(known[0].addr, b.addr);
        a.t.close();
        b.t.close();
    }
}
