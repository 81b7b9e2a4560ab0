//! Issue 12, item 7: `peerlock::blocking` from plain threads, with no
//! runtime of the test's own: two blocking nodes contend for one lock,
//! tokens rise in grant order, dropping a guard releases, and a call made
//! inside a Tokio runtime is refused instead of panicking.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerlock::blocking;
use peerlock::certs::ClusterCa;
use peerlock::Error;

use crate::common::{init_tracing, sockets, WAIT};

/// `n` blocking nodes of one cluster, started together (a first start
/// waits for every peer, so each starts on a thread of its own).
/// `n` blocking in-memory nodes on 127.0.0.1, started from plain threads
/// and ready (shared with the user-style tests, t123).
pub(crate) fn start_blocking(n: usize) -> Vec<blocking::Node> {
    init_tracing();
    let ca = ClusterCa::generate("test").unwrap();
    let (socks, addrs) = sockets(n);
    let starts: Vec<_> = socks
        .into_iter()
        .enumerate()
        .map(|(i, sock)| {
            let builder = peerlock::Node::builder()
                .socket(sock)
                .peers(addrs.clone())
                .tls(ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap())
                .in_memory()
                .session_ttl(Duration::from_millis(1500))
                .raft_tick(Duration::from_millis(20))
                .startup_timeout(WAIT);
            std::thread::spawn(move || blocking::Node::start(builder))
        })
        .collect();
    let nodes: Vec<blocking::Node> = starts
        .into_iter()
        .map(|s| s.join().unwrap().expect("node starts"))
        .collect();
    for n in &nodes {
        n.ready().expect("node ready");
    }
    nodes
}

#[test]
fn t122_issue_12_blocking_nodes_contend_with_rising_tokens() {
    let nodes = start_blocking(2);
    let inside = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for t in 0..4 {
        let node = nodes[t % 2].clone();
        let (inside, tokens) = (Arc::clone(&inside), Arc::clone(&tokens));
        threads.push(std::thread::spawn(move || {
            for _ in 0..5 {
                node.with_lock_timeout("counter", WAIT, |g| {
                    assert!(g.is_held());
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                    tokens.lock().unwrap().push(g.token());
                    std::thread::sleep(Duration::from_millis(5));
                    inside.store(false, Ordering::SeqCst);
                })
                .expect("with_lock");
            }
        }));
    }
    for t in threads {
        t.join().expect("a contending thread failed");
    }
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 20);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens not rising in grant order: {tokens:?}"
    );

    // A guard's drop releases: the other node gets the lock.
    let g = nodes[0].lock("x").unwrap();
    assert!(nodes[1].try_lock("x").unwrap().is_none(), "held by node 0");
    let first = g.token();
    drop(g);
    let g = nodes[1].lock_timeout("x", WAIT).expect("released by drop");
    assert!(g.token() > first);

    // Inside a Tokio runtime: calls are refused, a guard's drop is safe.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let n0 = nodes[0].clone();
    let refused = rt.block_on(async move { n0.lock("y").map(|_| ()) });
    assert!(
        matches!(refused, Err(Error::InvalidRequest { .. })),
        "{refused:?}"
    );
    rt.block_on(async move { drop(g) });
    let g = nodes[0]
        .lock_timeout("x", WAIT)
        .expect("released by a drop inside a runtime");
    g.unlock().unwrap();
    for n in &nodes {
        n.shutdown().unwrap();
    }
}
