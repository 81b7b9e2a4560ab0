//! Breaking the nested-acquire rule (issue 11, item 5) as a user would
//! (helper `break`): every pair of primitives, guards moved between tasks,
//! and several futures of one task.

use std::time::Duration;

use peerlock::{Error, Node};

use crate::common::{within, Cluster};

/// How a test first takes the name "x".
#[derive(Clone, Copy, Debug)]
enum First {
    Lock,
    Read,
    Write,
    Multi,
    Campaign,
}

async fn take(n: &Node, how: First) -> Box<dyn std::any::Any + Send> {
    match how {
        First::Lock => Box::new(n.lock("x").await.unwrap()),
        First::Read => Box::new(n.read_lock("x").await.unwrap()),
        First::Write => Box::new(n.write_lock("x").await.unwrap()),
        First::Multi => Box::new(n.lock_all(["w", "x"]).await.unwrap()),
        First::Campaign => Box::new(n.campaign("x").await.unwrap()),
    }
}

/// Every waiting call on "x" by the task that holds it, in every kind
/// (lock-kind names): `AlreadyHeld` at once, nothing queued; after the
/// guard is dropped the same task acquires again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_nested_every_pair_is_already_held_and_queues_nothing() {
    let c = Cluster::start(3).await;
    let n = c.nodes[0].clone();
    let t = Duration::from_secs(30);
    for first in [
        First::Lock,
        First::Read,
        First::Write,
        First::Multi,
        First::Campaign,
    ] {
        let held = within(take(&n, first)).await;
        let again: Vec<(&str, Error)> = vec![
            ("lock", within(n.lock("x")).await.unwrap_err()),
            (
                "lock_timeout",
                within(n.lock_timeout("x", t)).await.unwrap_err(),
            ),
            ("read_lock", within(n.read_lock("x")).await.unwrap_err()),
            (
                "read_lock_timeout",
                within(n.read_lock_timeout("x", t)).await.unwrap_err(),
            ),
            ("write_lock", within(n.write_lock("x")).await.unwrap_err()),
            (
                "write_lock_timeout",
                within(n.write_lock_timeout("x", t)).await.unwrap_err(),
            ),
            (
                "lock_all",
                within(n.lock_all(["x", "z"])).await.unwrap_err(),
            ),
            (
                "lock_all_timeout",
                within(n.lock_all_timeout(["z", "x"], t)).await.unwrap_err(),
            ),
            (
                "with_locks",
                within(n.with_locks(["x"], async |_| ())).await.unwrap_err(),
            ),
            (
                "with_lock",
                within(n.with_lock("x", async |_| ())).await.unwrap_err(),
            ),
            ("campaign", within(n.campaign("x")).await.unwrap_err()),
            (
                "campaign_timeout",
                within(n.campaign_timeout("x", t)).await.unwrap_err(),
            ),
        ];
        for (call, e) in again {
            assert!(
                matches!(e, Error::AlreadyHeld { .. }),
                "{first:?} then {call}: {e}"
            );
        }
        let i = within(c.nodes[1].holders("x")).await.unwrap().unwrap();
        assert_eq!(i.waiters, 0, "{first:?}: a refused call queued");
        for z in ["z", "w"] {
            if !matches!(first, First::Multi) || z == "z" {
                assert_eq!(within(c.nodes[1].holders(z)).await.unwrap(), None);
            }
        }
        drop(held);
        // Released: the same task may take it again, in any kind.
        let g = within(n.write_lock_timeout("x", Duration::from_secs(5)))
            .await
            .unwrap_or_else(|e| panic!("{first:?}: again after release: {e}"));
        drop(g);
    }
    // Semaphores: more permits may be asked for while some are held (a
    // task's concurrent jobs), unless what it holds plus what it asks
    // exceed the count: that would wait for its own permits for ever.
    let sem = n.semaphore("s", 4);
    let p = within(sem.acquire(1)).await.unwrap();
    let p2 = within(sem.acquire(2)).await.unwrap();
    let e = within(sem.acquire(2)).await.unwrap_err();
    assert!(matches!(e, Error::AlreadyHeld { .. }), "{e}");
    let e = within(sem.acquire_timeout(2, t)).await.unwrap_err();
    assert!(matches!(e, Error::AlreadyHeld { .. }), "{e}");
    // ... while try_acquire is not refused (it cannot wait).
    let q = within(sem.try_acquire(1)).await.unwrap();
    assert!(q.is_some());
    drop((p, p2, q));
    let p = within(sem.acquire_timeout(4, Duration::from_secs(5)))
        .await
        .unwrap();
    drop(p);
}
