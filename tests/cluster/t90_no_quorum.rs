//! Issue 8, item 1: every public async call returns within about one TTL
//! when the node is cut off from its quorum. Node 0 holds `x` and is inside
//! `with_lock("y", ..)` with a 500 ms closure when both other nodes die.
//! Before the fix `unlock()` and the finished `with_lock` never returned.

use std::time::Duration;

use peerlock::Error;
use tokio::time::{timeout, Instant};

use crate::common::{within, Cluster, Opts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t90_issue_8_every_call_is_bounded_without_quorum() {
    let opts = Opts::default();
    let bound = opts.ttl * 3;
    let c = Cluster::start_with(3, opts).await;
    let a = c.nodes[0].clone();
    let x = within(a.lock("x")).await.unwrap();
    let dropped = within(a.lock("dropped")).await.unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let in_section = {
        let a = a.clone();
        tokio::spawn(async move {
            a.with_lock("y", async |_g| {
                let _ = started_tx.send(());
                tokio::time::sleep(Duration::from_millis(500)).await;
                7
            })
            .await
        })
    };
    within(started_rx).await.unwrap();
    peerlock::testing::crash(&c.nodes[1]).await;
    peerlock::testing::crash(&c.nodes[2]).await;
    let t0 = Instant::now();

    let unlock = tokio::spawn(x.unlock());
    drop(dropped);
    let holder = {
        let a = a.clone();
        tokio::spawn(async move { a.holder("x").await })
    };
    let lock = {
        let a = a.clone();
        tokio::spawn(async move { a.lock("z").await.map(|_| ()) })
    };
    let try_lock = {
        let a = a.clone();
        tokio::spawn(async move { a.try_lock("z2").await.map(|_| ()) })
    };
    let zero = {
        let a = a.clone();
        tokio::spawn(async move { a.lock_timeout("z3", Duration::ZERO).await.map(|_| ()) })
    };
    let with_lock_new = {
        let a = a.clone();
        tokio::spawn(async move { a.with_lock("z4", async |_g| ()).await })
    };

    let took = |what: &str| {
        let e = t0.elapsed();
        assert!(e <= bound, "{what} took {e:?}, bound {bound:?}");
    };
    let r = timeout(bound, unlock)
        .await
        .expect("unlock() is bounded")
        .unwrap();
    assert!(matches!(r, Ok(()) | Err(Error::NoQuorum)), "unlock: {r:?}");
    took("unlock");
    let r = timeout(bound, in_section)
        .await
        .expect("with_lock is bounded")
        .unwrap();
    assert!(
        matches!(r, Ok(7) | Err(Error::LockLost { .. })),
        "with_lock: {r:?}"
    );
    took("with_lock");
    let r = timeout(bound, holder)
        .await
        .expect("holder() is bounded")
        .unwrap();
    assert!(matches!(r, Err(Error::NoQuorum)), "holder: {r:?}");
    took("holder");
    for (what, h) in [
        ("lock", lock),
        ("try_lock", try_lock),
        ("lock_timeout(0)", zero),
    ] {
        let r = timeout(bound, h).await.expect(what).unwrap();
        assert!(matches!(r, Err(Error::NoQuorum)), "{what}: {r:?}");
        took(what);
    }
    let r = timeout(bound, with_lock_new)
        .await
        .expect("with_lock")
        .unwrap();
    assert!(matches!(r, Err(Error::NoQuorum)), "with_lock: {r:?}");
    took("with_lock (acquire)");
    let r = timeout(bound, a.ready()).await.expect("ready() is bounded");
    assert!(matches!(r, Err(Error::NoQuorum)), "ready: {r:?}");
    // shutdown's phases are bounded (close 3 s, handoff 1.5 s, transfer 1 s).
    let t1 = Instant::now();
    let r = timeout(Duration::from_secs(8), a.shutdown())
        .await
        .expect("shutdown() is bounded");
    assert!(matches!(r, Err(Error::NoQuorum)), "shutdown: {r:?}");
    assert!(t1.elapsed() <= Duration::from_secs(8));
}
