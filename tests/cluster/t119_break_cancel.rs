//! Cancel safety, bounded waits without a quorum, and election interplay
//! (helper `break`, issue 11).

use std::time::{Duration, Instant};

use peerlock::Error;

use super::t119_break_sem::Rng;
use crate::common::{wait_until_async, within, Cluster};

/// Eighteen tasks on three nodes start read, write, multi and permit
/// acquires on three names and drop each future at a random moment (some
/// after the grant arrived), for 3 s. Afterwards no name has a holder or a
/// waiter left on any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_cancel_dropped_futures_leave_no_ghosts() {
    let c = Cluster::start(3).await;
    let stop_at = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for t in 0..18u64 {
        let node = c.nodes[(t % 3) as usize].clone();
        tasks.push(tokio::spawn(async move {
            let mut r = Rng(0xD1B5_4A32_D192_ED03 ^ ((t + 1) * 104_729));
            let sem = node.semaphore("cs", 3);
            while Instant::now() < stop_at {
                let d = Duration::from_millis(r.below(80));
                let name = ["c1", "c2"][r.below(2) as usize];
                let out: Result<bool, Error> = match r.below(5) {
                    0 => tokio::time::timeout(d, node.read_lock(name))
                        .await
                        .map_or(Ok(false), |g| g.map(|_| true)),
                    1 => tokio::time::timeout(d, node.write_lock(name))
                        .await
                        .map_or(Ok(false), |g| g.map(|_| true)),
                    2 => tokio::time::timeout(d, node.lock_all(["c2", "c1"]))
                        .await
                        .map_or(Ok(false), |g| g.map(|_| true)),
                    3 => tokio::time::timeout(d, node.lock(name))
                        .await
                        .map_or(Ok(false), |g| g.map(|_| true)),
                    _ => tokio::time::timeout(d, sem.acquire(1 + r.below(3) as u32))
                        .await
                        .map_or(Ok(false), |g| g.map(|_| true)),
                };
                out?;
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        within(t).await.unwrap().unwrap();
    }
    for n in &c.nodes {
        for name in ["c1", "c2", "cs"] {
            wait_until_async(|| async { n.holders(name).await.ok()?.is_none().then_some(()) })
                .await;
        }
    }
}

/// With two of three nodes stopped, every call on the third returns
/// within a bound (NoQuorum, Timeout, or for a release Ok), never hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_cancel_every_call_is_bounded_without_a_quorum() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let me = (leader + 1) % 3;
    let n = c.nodes[me].clone();
    let sem = n.semaphore("b", 2);
    let held_permit = within(sem.acquire(1)).await.unwrap();
    let held_read = within(n.read_lock("r")).await.unwrap();
    let held_multi = within(n.lock_all(["m1", "m2"])).await.unwrap();
    for i in 0..3 {
        if i != me {
            peerlock::testing::crash(&c.nodes[i]).await;
        }
    }
    // Every call at once, each timed on its own (one after the other they
    // would take about one TTL each).
    let bound = Duration::from_secs(8);
    let mut calls = Vec::new();
    macro_rules! bounded {
        ($what:literal, |$n:ident| $call:expr) => {{
            let $n = n.clone();
            let s = Instant::now();
            calls.push((
                $what,
                tokio::spawn(async move {
                    let out = $call.await.map(|_| ());
                    (s.elapsed(), out)
                }),
            ));
        }};
    }
    bounded!("acquire", |n| n.semaphore("b2", 2).acquire(1));
    bounded!("try_acquire", |n| n.semaphore("b2", 2).try_acquire(1));
    bounded!("acquire_timeout", |n| n
        .semaphore("b2", 2)
        .acquire_timeout(1, Duration::from_secs(3600)));
    bounded!("read_lock", |n| n.read_lock("q"));
    bounded!("try_read_lock", |n| n.try_read_lock("q"));
    bounded!("write_lock", |n| n.write_lock("q"));
    bounded!("try_write_lock", |n| n.try_write_lock("q"));
    bounded!("lock_all", |n| n.lock_all(["q1", "q2"]));
    bounded!("try_lock_all", |n| n.try_lock_all(["q1", "q2"]));
    bounded!("with_locks", |n| n.with_locks(["q3"], async |_| ()));
    bounded!("holders", |n| n.holders("b"));
    bounded!("campaign", |n| n.campaign("el"));
    bounded!("leader", |n| n.leader("el"));
    let s = Instant::now();
    let releases = tokio::spawn(async move {
        held_permit.release().await?;
        held_read.unlock().await?;
        held_multi.unlock().await
    });
    for (what, call) in calls {
        let (took, out) = tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .unwrap_or_else(|_| panic!("{what} hung for 20 s"))
            .unwrap();
        assert!(took < bound, "{what} took {took:?}");
        if what == "acquire" {
            assert!(matches!(out, Err(Error::NoQuorum)), "{out:?}");
        }
    }
    within(releases).await.unwrap().unwrap();
    assert!(s.elapsed() < bound, "the releases took {:?}", s.elapsed());
}

/// Calls already queued (behind holders on another node) when two of three
/// nodes stop: each returns within a bound (`NoQuorum`), not never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_cancel_queued_calls_are_bounded_when_the_quorum_goes() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let me = (leader + 1) % 3;
    let holder = (leader + 2) % 3;
    let h = &c.nodes[holder];
    let p = within(h.semaphore("qb", 1).acquire(1)).await.unwrap();
    let w = within(h.write_lock("qr")).await.unwrap();
    let g = within(h.lock("qm")).await.unwrap();
    let n = c.nodes[me].clone();
    let calls: Vec<(&str, tokio::task::JoinHandle<Result<(), Error>>)> = vec![
        ("acquire", {
            let n = n.clone();
            tokio::spawn(async move { n.semaphore("qb", 1).acquire(1).await.map(|_| ()) })
        }),
        ("read_lock", {
            let n = n.clone();
            tokio::spawn(async move { n.read_lock("qr").await.map(|_| ()) })
        }),
        ("lock_all", {
            let n = n.clone();
            tokio::spawn(async move { n.lock_all(["qx", "qm"]).await.map(|_| ()) })
        }),
        ("campaign", {
            let n = n.clone();
            tokio::spawn(async move { n.campaign("qm").await.map(|_| ()) })
        }),
    ];
    wait_until_async(|| async {
        let i = n.holders("qm").await.ok().flatten()?;
        (i.waiters == 2).then_some(())
    })
    .await;
    let started = Instant::now();
    peerlock::testing::crash(&c.nodes[leader]).await;
    peerlock::testing::crash(&c.nodes[holder]).await;
    for (what, call) in calls {
        let out = tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .unwrap_or_else(|_| panic!("{what} hung"))
            .unwrap();
        assert!(matches!(out, Err(Error::NoQuorum)), "{what}: {out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{what} took {:?}",
            started.elapsed()
        );
    }
    drop((p, w, g));
}
