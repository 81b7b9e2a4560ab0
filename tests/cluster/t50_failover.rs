//! Crashes during contention: the leader, and the holder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::common::{within, Cluster, Fenced, Opts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_leader_crash_during_contention_keeps_granting_with_rising_tokens() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let fenced = Arc::new(Mutex::new(Fenced::default()));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for &i in &survivors {
        for _ in 0..2 {
            let node = c.nodes[i].clone();
            let (fenced, tokens, stop) = (fenced.clone(), tokens.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut done = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = node
                        .with_lock_timeout("hot", Duration::from_secs(10), async |g| {
                            let v = fenced.lock().value;
                            assert!(fenced.lock().write(g.token(), v + 1));
                            tokens.lock().push(g.token());
                        })
                        .await;
                    if r.is_ok() {
                        done += 1;
                    }
                }
                done
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = tokens.lock().len();
    peerlock::testing::crash(&c.nodes[leader]).await;
    // Grants continue after the crash.
    let t0 = Instant::now();
    loop {
        if tokens.lock().len() >= before + 20 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no grants after the leader crash"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        within(t).await.unwrap();
    }
    let tokens = tokens.lock();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens strictly increase"
    );
    assert_eq!(fenced.lock().stale_rejected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t51_holder_crash_grants_a_waiter_within_ttl_plus_election() {
    let opts = Opts::default();
    let c = Cluster::start_with(3, opts).await;
    let leader = c.leader().await;
    let holder = (0..3).find(|i| *i != leader).unwrap();
    let waiter = (0..3).find(|i| *i != leader && *i != holder).unwrap();
    let g = within(c.nodes[holder].lock("crash")).await.unwrap();
    let token = g.token();
    let w = {
        let n = c.nodes[waiter].clone();
        tokio::spawn(async move { n.lock("crash").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    peerlock::testing::crash(&c.nodes[holder]).await;
    let g2 = within(w).await.unwrap().unwrap();
    let took = t0.elapsed();
    assert!(g2.token() > token);
    assert!(
        took <= opts.ttl + Duration::from_secs(2),
        "granted after {took:?}; TTL {:?}",
        opts.ttl
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t52_shutdown_hands_locks_and_leadership_over() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let g = within(c.nodes[leader].lock("bye")).await.unwrap();
    let other = (leader + 1) % 3;
    let w = {
        let n = c.nodes[other].clone();
        tokio::spawn(async move { n.lock("bye").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    within(c.nodes[leader].shutdown()).await.unwrap();
    assert!(!g.is_held());
    let g2 = within(w).await.unwrap().unwrap();
    assert!(g2.token() > g.token());
    let after = c.nodes[leader].lock("x").await;
    assert!(matches!(after, Err(peerlock::Error::Shutdown)), "{after:?}");
}
