//! Driver tests of issue 11's claims acquire over the in-memory network:
//! the same plumbing as the mutex acquire (retries, abandon, typed errors,
//! release on drop), seen from `NodeHandle`.

use std::time::Duration;

use tokio::time::timeout;

use super::tests::{cluster_with, config, WAIT};
use crate::error::Error;
use crate::machine::{Claim, ClaimKind, NameKind};
use crate::types::LockName;

fn name(s: &str) -> LockName {
    LockName::new(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_are_counted_across_nodes_and_come_back_on_drop() {
    let (_net, _ids, nodes) = cluster_with(3, config()).await;
    let a = timeout(WAIT, nodes[0].acquire_permits("pay", 2, 3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.permits(), 2);
    let b = timeout(WAIT, nodes[1].acquire_permits("pay", 1, 3))
        .await
        .unwrap()
        .unwrap();
    let busy = timeout(WAIT, nodes[2].try_acquire_permits("pay", 1, 3))
        .await
        .unwrap()
        .unwrap();
    assert!(busy.is_none(), "a fourth permit of three");
    let info = timeout(WAIT, nodes[2].holders("pay"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(info.kind, NameKind::Semaphore { count: 3 });
    assert_eq!(info.permits_used, 3);
    assert_eq!(info.holders.len(), 2);
    // A timed-out waiter leaves the queue.
    let err = nodes[2]
        .acquire_permits_timeout("pay", 1, 3, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err}");
    drop(a);
    let c = timeout(WAIT, nodes[2].acquire_permits("pay", 2, 3))
        .await
        .unwrap()
        .unwrap();
    assert!(c.is_held());
    let info = timeout(WAIT, nodes[0].holders("pay"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((info.permits_used, info.waiters), (3, 0));
    timeout(WAIT, b.release()).await.unwrap().unwrap();
    timeout(WAIT, c.release()).await.unwrap().unwrap();
    assert!(timeout(WAIT, nodes[1].holders("pay"))
        .await
        .unwrap()
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_kind_and_bad_input_are_typed_and_spend_no_entry() {
    let (_net, _ids, nodes) = cluster_with(3, config()).await;
    let p = timeout(WAIT, nodes[0].acquire_permits("sem", 1, 4))
        .await
        .unwrap()
        .unwrap();
    let e = timeout(WAIT, nodes[1].lock("sem"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, Error::WrongKind { .. }), "{e}");
    assert!(e.to_string().contains("a semaphore of 4 permits"), "{e}");
    let e = timeout(WAIT, nodes[1].acquire_permits("sem", 1, 5))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, Error::WrongKind { .. }), "{e}");
    let e = timeout(WAIT, nodes[1].lock_all(["free", "sem"]))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&e, Error::WrongKind { name, .. } if name == "sem"),
        "{e}"
    );
    // Bad input never reaches the log.
    let (before, _) = nodes[1].state_hash().await.unwrap();
    let empty: [&str; 0] = [];
    for e in [
        nodes[1].lock_all(empty).await.unwrap_err(),
        nodes[1].lock_all(["a", "b", "a"]).await.unwrap_err(),
        nodes[1]
            .lock_all((0..65).map(|i| format!("n{i}")))
            .await
            .unwrap_err(),
        nodes[1].acquire_permits("s2", 0, 4).await.unwrap_err(),
        nodes[1].acquire_permits("s2", 5, 4).await.unwrap_err(),
        nodes[1].acquire_permits("s2", 1, 0).await.unwrap_err(),
        nodes[1]
            .acquire_claims(vec![Claim::shared(name("x")), Claim::shared(name("x"))])
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, Error::InvalidRequest { .. }), "{e}");
    }
    assert!(matches!(
        nodes[1].read_lock("").await.unwrap_err(),
        Error::InvalidName { .. }
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (after, _) = nodes[1].state_hash().await.unwrap();
    // Keepalives are not log entries; nothing else ran meanwhile.
    assert_eq!(before, after, "a refused request spent a log entry");
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_share_a_writer_waits_and_a_nested_acquire_is_refused() {
    let (_net, _ids, nodes) = cluster_with(3, config()).await;
    let r1 = timeout(WAIT, nodes[0].read_lock("cat"))
        .await
        .unwrap()
        .unwrap();
    let r2 = timeout(WAIT, nodes[1].read_lock("cat"))
        .await
        .unwrap()
        .unwrap();
    // Nested: this task holds "cat" (read); any waiting acquire of it is refused.
    for e in [
        nodes[0].read_lock("cat").await.unwrap_err(),
        nodes[0].write_lock("cat").await.unwrap_err(),
        nodes[0].lock("cat").await.unwrap_err(),
        nodes[0].lock_all(["dog", "cat"]).await.unwrap_err(),
    ] {
        assert!(matches!(e, Error::AlreadyHeld { .. }), "{e}");
    }
    let writer = {
        let n = nodes[2].clone();
        tokio::spawn(async move { n.write_lock("cat").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writer.is_finished(), "a writer beside readers");
    // A reader behind the queued writer waits (no writer starvation).
    assert!(timeout(WAIT, nodes[2].try_read_lock("cat"))
        .await
        .unwrap()
        .unwrap()
        .is_none());
    let top = r1.token().max(r2.token());
    timeout(WAIT, r1.unlock()).await.unwrap().unwrap();
    drop(r2);
    let w = timeout(WAIT, writer).await.unwrap().unwrap().unwrap();
    assert!(w.token() > top);
    let info = timeout(WAIT, nodes[0].holders("cat"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(info.holders.len(), 1);
    assert_eq!(info.holders[0].kind, ClaimKind::Exclusive);
    assert_eq!(info.holders[0].token, w.token());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_holders_permits_come_back_and_a_dropped_waiter_leaves() {
    let (net, ids, nodes) = cluster_with(3, config()).await;
    let leader = nodes[0].status().leader.unwrap();
    let h = ids.iter().position(|id| *id != leader).unwrap();
    let w = (0..3).find(|i| *i != h).unwrap();
    let p = timeout(WAIT, nodes[h].acquire_permits("k", 2, 2))
        .await
        .unwrap()
        .unwrap();
    // A waiter whose future is dropped leaves the queue.
    let gone = tokio::time::timeout(
        Duration::from_millis(200),
        nodes[w].acquire_permits("k", 1, 2),
    )
    .await;
    assert!(gone.is_err());
    net.crash(ids[h]);
    let q = timeout(WAIT, nodes[w].acquire_permits("k", 2, 2))
        .await
        .unwrap()
        .unwrap();
    assert!(q.token() > p.token());
    assert!(!p.is_held(), "the crashed holder's view turned first");
    let info = timeout(WAIT, nodes[w].holders("k"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((info.permits_used, info.waiters), (2, 0));
    nodes[h].kill().await;
}

/// Every claims call has a bounded wait when the cluster cannot answer: on
/// a node cut off from the others, an acquire, a `holders` read and a
/// release each end within a few TTLs (`NoQuorum`, or `Ok` for a release
/// whose lease is gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_calls_are_bounded_without_a_quorum() {
    let (net, ids, nodes) = cluster_with(3, config()).await;
    let leader = nodes[0].status().leader.unwrap();
    let cut = ids.iter().position(|id| *id != leader).unwrap();
    let w = timeout(WAIT, nodes[cut].write_lock("held"))
        .await
        .unwrap()
        .unwrap();
    net.isolate(ids[cut]);
    let bound = Duration::from_secs(5);
    let e = timeout(bound, nodes[cut].lock_all(["a", "b"]))
        .await
        .expect("lock_all bounded")
        .unwrap_err();
    assert!(matches!(e, Error::NoQuorum), "{e}");
    let e = timeout(bound, nodes[cut].holders("a"))
        .await
        .expect("holders bounded")
        .unwrap_err();
    assert!(matches!(e, Error::NoQuorum), "{e}");
    timeout(bound, w.unlock())
        .await
        .expect("unlock bounded")
        .unwrap();
}
