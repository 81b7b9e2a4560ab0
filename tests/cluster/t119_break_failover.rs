//! Breaking the primitives through failover, shutdown and quick reuse
//! (helper `break`, issue 11).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock::Error;

use crate::common::{wait_until_async, within, Cluster};

/// Permit holders and waiters on all three nodes; the Raft leader's node
/// is killed. The survivors' waiters are all granted once the holders let
/// go, never more than the count at once, and the name ends free (the
/// dead node's waiters leave with its session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_failover_queued_permits_survive_the_leaders_death() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let alive: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let in_use = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let first = within(c.nodes[alive[0]].semaphore("f", 2).acquire(2))
        .await
        .unwrap();
    let mut waiters = Vec::new();
    for i in 0..6usize {
        let node = c.nodes[i % 3].clone();
        let (in_use, peak) = (in_use.clone(), peak.clone());
        let on_leader = i % 3 == leader;
        waiters.push((
            on_leader,
            tokio::spawn(async move {
                let p = node.semaphore("f", 2).acquire(1 + (i as u32 % 2)).await?;
                let n = u64::from(p.permits());
                let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                in_use.fetch_sub(n, Ordering::SeqCst);
                p.release().await
            }),
        ));
    }
    wait_until_async(|| async {
        let i = c.nodes[alive[1]].holders("f").await.ok().flatten()?;
        (i.waiters == 6).then_some(())
    })
    .await;
    peerlock::testing::crash(&c.nodes[leader]).await;
    drop(first);
    for (on_leader, w) in waiters {
        let out = within(w).await.unwrap();
        if !on_leader {
            out.unwrap_or_else(|e| panic!("a survivor's waiter failed: {e}"));
        }
    }
    assert!(peak.load(Ordering::SeqCst) <= 2);
    wait_until_async(|| async {
        c.nodes[alive[0]]
            .holders("f")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}

/// A node shut down while its tasks wait for permits, a write lock and a
/// multi-lock: each call returns `Shutdown` promptly, and the others'
/// waiters behind them are then granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_failover_shutdown_answers_waiters_and_frees_their_places() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let gone = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let p = within(c.nodes[leader].semaphore("sd", 1).acquire(1))
        .await
        .unwrap();
    let w = within(c.nodes[leader].write_lock("sdw")).await.unwrap();
    let mut calls = Vec::new();
    {
        let n = c.nodes[gone].clone();
        calls.push(tokio::spawn(async move {
            n.semaphore("sd", 1).acquire(1).await.map(|_| ())
        }));
        let n = c.nodes[gone].clone();
        calls.push(tokio::spawn(
            async move { n.read_lock("sdw").await.map(|_| ()) },
        ));
        let n = c.nodes[gone].clone();
        calls.push(tokio::spawn(async move {
            n.lock_all(["sdw", "sdx"]).await.map(|_| ())
        }));
    }
    let later_p = {
        let n = c.nodes[other].clone();
        tokio::spawn(async move { n.semaphore("sd", 1).acquire(1).await })
    };
    let later_x = {
        let n = c.nodes[other].clone();
        tokio::spawn(async move { n.lock("sdx").await })
    };
    wait_until_async(|| async {
        let i = c.nodes[other].holders("sd").await.ok().flatten()?;
        (i.waiters == 2).then_some(())
    })
    .await;
    let started = Instant::now();
    within(c.nodes[gone].shutdown()).await.unwrap();
    for call in calls {
        let out = within(call).await.unwrap();
        assert!(matches!(out, Err(Error::Shutdown)), "{out:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The multi-lock's place on sdx is gone: lock("sdx") is granted
    // though sdw is still write-held.
    let x = within(later_x).await.unwrap().unwrap();
    drop((p, w, x));
    let q = within(later_p).await.unwrap().unwrap();
    drop(q);
}

/// Dropping a permit and at once using the name with another count from
/// the same node: the drop's release goes first through the same node, so
/// the new count is accepted (never a transient `WrongKind`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_failover_drop_then_another_count_is_not_wrong_kind() {
    let c = Cluster::start(3).await;
    let n = &c.nodes[(c.leader().await + 1) % 3];
    for round in 0..10u32 {
        let p = within(n.semaphore("recount", 2 + round % 2).acquire(1))
            .await
            .unwrap();
        drop(p);
        let q = within(n.semaphore("recount", 2 + (round + 1) % 2).acquire(1))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        within(q.release()).await.unwrap();
    }
}

/// Small requests keep a semaphore of 4 busy from two nodes; a request for
/// all 4 on the third is still granted within seconds (FIFO head), and
/// while it holds, no small one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_failover_a_large_request_is_not_starved_by_a_stream() {
    let c = Cluster::start(3).await;
    let big_holds = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut smalls = Vec::new();
    for i in 0..6u64 {
        let sem = c.nodes[(i % 2) as usize].semaphore("stream", 4);
        let (big_holds, stop) = (big_holds.clone(), stop.clone());
        smalls.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(13 * i)).await;
            let deadline = Instant::now() + Duration::from_secs(15);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let p = sem.acquire(1).await?;
                assert!(!big_holds.load(Ordering::SeqCst), "a small beside the big");
                tokio::time::sleep(Duration::from_millis(80)).await;
                drop(p);
            }
            Ok::<_, Error>(())
        }));
    }
    wait_until_async(|| async {
        let i = c.nodes[2].holders("stream").await.ok().flatten()?;
        (i.permits_used >= 3).then_some(())
    })
    .await;
    let big = tokio::time::timeout(
        Duration::from_secs(5),
        c.nodes[2].semaphore("stream", 4).acquire(4),
    )
    .await
    .expect("the large request starved")
    .unwrap();
    big_holds.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    big_holds.store(false, Ordering::SeqCst);
    drop(big);
    stop.store(true, Ordering::SeqCst);
    for s in smalls {
        within(s).await.unwrap().unwrap();
    }
}

/// Churn on a semaphore of 3 from 9 tasks on 3 nodes (acquire, timeouts,
/// dropped futures) while the Raft leader's node is killed mid-run: the
/// survivors' calls fail only by `Timeout`, permits in use never pass 3
/// (a holder on the killed node stops counting when its `lost()` fires),
/// and the name ends free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_failover_churn_through_the_leaders_death() {
    use super::t119_break_sem::Rng;
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let in_use = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for t in 0..9u64 {
        let i = (t % 3) as usize;
        let sem = c.nodes[i].semaphore("churn", 3);
        let (in_use, peak) = (in_use.clone(), peak.clone());
        let doomed = i == leader;
        tasks.push(tokio::spawn(async move {
            let mut r = Rng(0xA076_1D64_78BD_642F ^ ((t + 1) * 65_537));
            while Instant::now() < stop_at {
                let n = 1 + r.below(3) as u32;
                let got = match r.below(3) {
                    0 => sem.acquire(n).await.map(Some),
                    1 => match sem
                        .acquire_timeout(n, Duration::from_millis(1 + r.below(300)))
                        .await
                    {
                        Err(Error::Timeout) => Ok(None),
                        x => x.map(Some),
                    },
                    _ => match tokio::time::timeout(
                        Duration::from_millis(r.below(80)),
                        sem.acquire(n),
                    )
                    .await
                    {
                        Ok(x) => x.map(Some),
                        Err(_) => Ok(None),
                    },
                };
                let p = match got {
                    Ok(Some(p)) => p,
                    Ok(None) => continue,
                    Err(Error::Shutdown) if doomed => return Ok(()),
                    Err(e) => return Err(format!("node {i}: {e}")),
                };
                let n = u64::from(n);
                let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(r.below(20))) => {}
                    _ = p.lost() => {}
                }
                in_use.fetch_sub(n, Ordering::SeqCst);
                drop(p);
            }
            Ok::<_, String>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    peerlock::testing::crash(&c.nodes[leader]).await;
    for t in tasks {
        within(t).await.unwrap().unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "{peak} permits of 3 in use");
    let alive = (leader + 1) % 3;
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

/// `drop(permit)` then at once `try_acquire` of all permits on the same
/// (follower) node, 20 rounds: the drop's release is proposed first by
/// the same node, so the try is granted every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_failover_drop_then_try_acquire_on_the_same_node() {
    let c = Cluster::start(3).await;
    let n = &c.nodes[(c.leader().await + 1) % 3];
    let sem = n.semaphore("again", 2);
    let mut p = within(sem.acquire(2)).await.unwrap();
    for round in 0..20 {
        drop(p);
        p = within(sem.try_acquire(2))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: the dropped permit was not back"));
    }
}
