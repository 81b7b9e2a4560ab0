//! Breaking read-write locks as a user would (helper `break`, issue 11).

use std::time::{Duration, Instant};

use peerlock::{ClaimKind, Error};

use crate::common::{wait_until_async, within, Cluster};

/// `write_lock` and `lock()` on one name are the same exclusive hold: each
/// excludes the other and readers; the `try_` calls answer `None` while a
/// writer waits behind readers, and the waiting writer is granted next
/// with a token above every reader's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_rw_write_lock_and_lock_exclude_and_try_while_a_writer_waits() {
    let c = Cluster::start(3).await;
    let (a, b, d) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let w = within(a.write_lock("x")).await.unwrap();
    assert!(within(b.try_lock("x")).await.unwrap().is_none());
    assert!(within(b.try_read_lock("x")).await.unwrap().is_none());
    let info = within(b.holder("x")).await.unwrap().unwrap();
    assert_eq!(info.token, w.token(), "holder() sees the write lock");
    drop(w);
    let m = within(b.lock("x")).await.unwrap();
    assert!(within(d.try_write_lock("x")).await.unwrap().is_none());
    assert!(within(d.try_read_lock("x")).await.unwrap().is_none());
    drop(m);
    // Two readers, then a writer waits behind them.
    let r1 = within(a.read_lock("x")).await.unwrap();
    let r2 = within(b.read_lock("x")).await.unwrap();
    let writer = {
        let d = d.clone();
        tokio::spawn(async move { d.write_lock("x").await })
    };
    wait_until_async(|| async {
        let i = a.holders("x").await.ok().flatten()?;
        (i.waiters == 1).then_some(())
    })
    .await;
    assert!(within(a.try_read_lock("x")).await.unwrap().is_none());
    assert!(within(b.try_write_lock("x")).await.unwrap().is_none());
    assert!(within(d.try_lock("x")).await.unwrap().is_none());
    assert!(
        within(a.read_lock_timeout("x", Duration::from_millis(200)))
            .await
            .is_err(),
        "a reader overtook the waiting writer"
    );
    let top = r1.token().max(r2.token());
    drop(r1);
    within(r2.unlock()).await.unwrap();
    let w = within(writer).await.unwrap().unwrap();
    assert!(w.token() > top);
    let i = within(a.holders("x")).await.unwrap().unwrap();
    assert_eq!(i.waiters, 0, "the timed-out reader left a ghost");
    assert_eq!(i.holders.len(), 1);
    assert_eq!(i.holders[0].kind, ClaimKind::Exclusive);
}

/// A reader's node is killed while a writer waits: the reader's `lost()`
/// fires, and the writer is granted within about one TTL, with a token
/// above the reader's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_rw_a_readers_node_killed_lets_the_writer_in() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let victim = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let r = within(c.nodes[victim].read_lock("doc")).await.unwrap();
    let r_other = within(c.nodes[leader].read_lock("doc")).await.unwrap();
    let writer = {
        let n = c.nodes[other].clone();
        tokio::spawn(async move { n.write_lock("doc").await })
    };
    wait_until_async(|| async {
        let i = c.nodes[leader].holders("doc").await.ok().flatten()?;
        (i.waiters == 1).then_some(())
    })
    .await;
    drop(r_other);
    let killed = Instant::now();
    peerlock::testing::crash(&c.nodes[victim]).await;
    within(r.lost()).await;
    let w = within(writer).await.unwrap().unwrap();
    assert!(w.token() > r.token());
    assert!(
        killed.elapsed() < Duration::from_secs(8),
        "writer waited {:?}",
        killed.elapsed()
    );
}

/// The read-write calls on a name given as something a lock name cannot
/// be: `InvalidName`, not a hang or a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_rw_bad_names_are_invalid_name() {
    let c = Cluster::start(3).await;
    let long = "x".repeat(257);
    for name in ["", long.as_str()] {
        let n = &c.nodes[0];
        let e = within(n.read_lock(name)).await.unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
        let e = within(n.try_write_lock(name)).await.unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
        let e = within(n.semaphore(name, 2).acquire(1)).await.unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
        let e = within(n.holders(name)).await.unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    }
}

/// Readers and writers on three nodes churn for 4 s (timeouts and dropped
/// futures included) while a non-leader node is killed: a writer never
/// holds beside anyone (counted by the holders, who stop counting when
/// `lost()` fires), readers do share, and the name ends free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_rw_churn_never_lets_a_writer_beside_anyone() {
    use super::t119_break_sem::Rng;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;
    let c = Cluster::start(3).await;
    let victim = (c.leader().await + 1) % 3;
    // Readers count +1 each; a writer counts +1000.
    let state = Arc::new(AtomicI64::new(0));
    let max_readers = Arc::new(AtomicI64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for t in 0..9u64 {
        let i = (t % 3) as usize;
        let node = c.nodes[i].clone();
        let (state, max_readers) = (state.clone(), max_readers.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = Rng(0x2545_F491_4F6C_DD1D ^ ((t + 1) * 31_337));
            while Instant::now() < stop_at {
                let write = r.below(3) == 0;
                let d = Duration::from_millis(1 + r.below(200));
                let held: Result<Option<Box<dyn std::any::Any + Send + Sync>>, Error> = if write {
                    match node.write_lock_timeout("churn", d).await {
                        Ok(g) => Ok(Some(Box::new(g))),
                        Err(Error::Timeout) => Ok(None),
                        Err(e) => Err(e),
                    }
                } else {
                    match tokio::time::timeout(d, node.read_lock("churn")).await {
                        Ok(Ok(g)) => Ok(Some(Box::new(g))),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Ok(None),
                    }
                };
                let g = match held {
                    Ok(Some(g)) => g,
                    Ok(None) => continue,
                    Err(Error::Shutdown) if i == victim => return Ok(()),
                    Err(e) => return Err(format!("node {i}: {e}")),
                };
                let add = if write { 1000 } else { 1 };
                let now = state.fetch_add(add, Ordering::SeqCst) + add;
                if write {
                    assert_eq!(now, 1000, "a writer beside others ({now})");
                } else {
                    assert!(now < 1000, "a reader beside a writer ({now})");
                    max_readers.fetch_max(now, Ordering::SeqCst);
                }
                let lost = async {
                    if let Some(w) = g.downcast_ref::<peerlock::WriteGuard>() {
                        w.lost().await
                    } else if let Some(r) = g.downcast_ref::<peerlock::ReadGuard>() {
                        r.lost().await
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(r.below(25))) => {}
                    _ = lost => {}
                }
                state.fetch_sub(add, Ordering::SeqCst);
                drop(g);
            }
            Ok::<_, String>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    peerlock::testing::crash(&c.nodes[victim]).await;
    for t in tasks {
        within(t).await.unwrap().unwrap();
    }
    assert!(
        max_readers.load(Ordering::SeqCst) >= 2,
        "readers never shared"
    );
    let alive = (victim + 1) % 3;
    wait_until_async(|| async {
        c.nodes[alive]
            .holders("churn")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}
