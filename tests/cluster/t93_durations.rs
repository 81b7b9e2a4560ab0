//! Issue 8, item 6: every `Duration` parameter has one meaning at its
//! boundaries. `lock_timeout(name, 0)` is one attempt that never queues,
//! like `try_lock`, on every node (before the fix it granted 189 of 200
//! free locks on the leader and 156 on a follower); a huge timeout waits
//! like `lock`; builder durations are checked.

use std::time::Duration;

use peerlock::certs::ClusterCa;
use peerlock::{Error, Node};

use crate::common::{within, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t93_issue_8_a_zero_timeout_is_one_attempt_on_every_node() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let follower = (leader + 1) % 3;
    for node in [leader, follower] {
        let n = &c.nodes[node];
        for i in 0..100 {
            let name = format!("zero/{node}/{i}");
            let g = within(n.lock_timeout(&name, Duration::ZERO))
                .await
                .unwrap_or_else(|e| panic!("free lock {name} on node {node}: {e}"));
            within(g.unlock()).await.unwrap();
        }
        let out = within(n.with_lock_timeout(
            &format!("zero/{node}/w"),
            Duration::ZERO,
            async |g| g.token(),
        ))
        .await;
        assert!(out.is_ok(), "{out:?}");
    }
    let held = within(c.nodes[leader].lock("held")).await.unwrap();
    for n in &c.nodes {
        let r = within(n.lock_timeout("held", Duration::ZERO)).await;
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    }
    // Nothing was left queued by the zero timeouts.
    let info = within(c.nodes[follower].holder("held"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.waiters, 0);
    // A timeout too large for the clock waits like lock().
    let waiter = {
        let n = c.nodes[follower].clone();
        tokio::spawn(async move { n.lock_timeout("held", Duration::MAX).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = held.token();
    within(held.unlock()).await.unwrap();
    let g = within(waiter).await.unwrap().unwrap();
    assert!(g.token() > t);
    // A timeout longer than the TTL is fine too.
    let g2 = within(c.nodes[leader].lock_timeout("long", Duration::from_secs(3600))).await;
    assert!(g2.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t94_issue_8_builder_durations_at_their_boundaries() {
    let ca = ClusterCa::generate("dur").unwrap();
    let base = || {
        Node::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .peers(["127.0.0.1:1"])
            .tls(ca.issue_node("dur-node", &["127.0.0.1"]).unwrap())
            .in_memory()
            .startup_timeout(Duration::from_millis(300))
    };
    let config = |r: Result<Node, Error>| match r {
        Err(Error::Config(m)) => m,
        other => panic!("expected Error::Config, got {other:?}"),
    };
    for (what, b, needle) in [
        (
            "ttl zero",
            base().session_ttl(Duration::ZERO),
            "session_ttl",
        ),
        (
            "ttl 300 ms",
            base().session_ttl(Duration::from_millis(300)),
            "session_ttl",
        ),
        ("ttl huge", base().session_ttl(Duration::MAX), "session_ttl"),
        ("delay huge", base().lock_delay(Duration::MAX), "lock_delay"),
        ("tick zero", base().raft_tick(Duration::ZERO), "tick"),
        ("tick huge", base().raft_tick(Duration::MAX), "tick"),
        (
            "tick too coarse for the TTL",
            base()
                .session_ttl(Duration::from_secs(1))
                .raft_tick(Duration::from_millis(50)),
            "minimum is",
        ),
        (
            "startup zero",
            base().startup_timeout(Duration::ZERO),
            "startup_timeout",
        ),
    ] {
        let m = config(b.start().await);
        assert!(m.contains(needle), "{what}: {m}");
    }
    // A huge startup timeout is accepted (it does not overflow the clock);
    // the node then waits for its peer, which the test does not wait out.
    let start = base().startup_timeout(Duration::MAX).start();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), start)
            .await
            .is_err(),
        "still waiting for the peer"
    );
}
