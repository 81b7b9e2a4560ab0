//! Discovery's edge cases: a node listed by its own address, names shared
//! by two addresses, unreachable peers and addresses already bound.

use std::time::Duration;

use peerlock_core::transport::Transport;
use peerlock_core::{Error, NodeId};
use peerlock_transport::{ClusterCa, QuicTransport};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::harness::{raft, socket, start, tls, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t09_self_in_the_peer_list_counts_once_and_shared_names_are_refused() {
    let ca = ClusterCa::generate("t09").unwrap();
    // Listed by its own address: found as itself, with that address.
    let s = socket();
    let addr = s.local_addr().unwrap();
    let a = start(s, &tls(&ca, "node-a"), &[addr]);
    let found = a.t.discover(Instant::now() + WAIT).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].id, found[0].addr), (a.t.local_id(), addr));
    // Not listed at all: added with its bound address.
    let a2 = start(socket(), &tls(&ca, "node-a2"), &[]);
    let found = a2.t.discover(Instant::now() + WAIT).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].addr, a2.t.local_addr());

    // Two addresses presenting node-b's certificate.
    let (s0, s1, s2) = (socket(), socket(), socket());
    let addrs = [
        s0.local_addr().unwrap(),
        s1.local_addr().unwrap(),
        s2.local_addr().unwrap(),
    ];
    let x = start(s0, &tls(&ca, "node-x"), &addrs);
    let b_tls = tls(&ca, "node-b");
    let _b1 = start(s1, &b_tls, &[]);
    let _b2 = start(s2, &b_tls, &[]);
    match x.t.discover(Instant::now() + WAIT).await {
        Err(Error::Config(msg)) => assert!(msg.contains("node-b"), "{msg}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    // Another address presenting this node's own name.
    let (s0, s1) = (socket(), socket());
    let addrs = [s0.local_addr().unwrap(), s1.local_addr().unwrap()];
    let y_tls = tls(&ca, "node-y");
    let y = start(s0, &y_tls, &addrs);
    let _twin = start(s1, &y_tls, &[]);
    match y.t.discover(Instant::now() + WAIT).await {
        Err(Error::Config(msg)) => assert!(msg.contains(&addrs[1].to_string()), "{msg}"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_unreachable_peers_and_bad_binds_are_clear_errors() {
    let ca = ClusterCa::generate("t10").unwrap();
    let silent = socket(); // bound, but nothing answers QUIC on it
    let dead = silent.local_addr().unwrap();
    let a = start(socket(), &tls(&ca, "node-a"), &[dead]);
    match a
        .t
        .discover(Instant::now() + Duration::from_millis(600))
        .await
    {
        Err(Error::Config(msg)) => {
            assert!(
                msg.contains(&dead.to_string()) && msg.contains("could not reach"),
                "{msg}"
            )
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    let (tx, _rx) = mpsc::channel(1);
    let taken = a.t.local_addr();
    match QuicTransport::bind(taken, None, &tls(&ca, "node-b"), vec![], tx) {
        Err(Error::Io(e)) => assert!(e.to_string().contains(&taken.to_string()), "{e}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    // Unknown destinations and empty batches are dropped quietly.
    a.t.send(NodeId::from_name("nobody"), vec![raft(1)]);
    a.t.send(a.t.local_id(), vec![raft(1)]);
}
