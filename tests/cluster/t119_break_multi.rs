//! Breaking multi-locks as a user would (helper `break`, issue 11).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock::Error;

use crate::common::{within, Cluster};

/// Two nodes take `[a, b]` and `[b, a]` in a loop, a third `[b]`, with
/// `try_lock_all` and timeouts mixed in, for 3 s: nobody deadlocks, and an
/// observer that reads `holders(a)`, `holders(b)`, `holders(a)` never sees
/// a multi-grant hold `a` across both reads of `a` without holding `b`
/// (a partial grant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_multi_opposite_orders_and_no_partial_grant_seen() {
    let c = Cluster::start(3).await;
    let stop_at = Instant::now() + Duration::from_secs(3);
    let grants = Arc::new(AtomicU64::new(0));
    let orders: [&[&str]; 3] = [&["a", "b"], &["b", "a"], &["b"]];
    let mut tasks = Vec::new();
    for (who, names) in orders.into_iter().enumerate() {
        let (node, grants) = (c.nodes[who].clone(), grants.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < stop_at {
                i += 1;
                let g = match i % 3 {
                    0 => node.try_lock_all(names.iter().copied()).await?,
                    1 => match node
                        .lock_all_timeout(names.iter().copied(), Duration::from_millis(150))
                        .await
                    {
                        Ok(g) => Some(g),
                        Err(Error::Timeout) => None,
                        Err(e) => return Err(e),
                    },
                    _ => Some(node.lock_all(names.iter().copied()).await?),
                };
                if let Some(g) = g {
                    grants.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    g.unlock().await?;
                }
            }
            Ok::<_, Error>(())
        }));
    }
    let done = Arc::new(AtomicBool::new(false));
    let observer = {
        let (n, done) = (c.nodes[2].clone(), done.clone());
        tokio::spawn(async move {
            let mut checked = 0u32;
            while !done.load(Ordering::SeqCst) {
                let a1 = n.holders("a").await?;
                let b = n.holders("b").await?;
                let a2 = n.holders("a").await?;
                let tok = |i: &Option<peerlock::HoldersInfo>| {
                    i.as_ref().and_then(|i| i.holders.first().map(|h| h.token))
                };
                if let (Some(t1), Some(t2)) = (tok(&a1), tok(&a2)) {
                    if t1 == t2 {
                        checked += 1;
                        // Continuously held by one grant: if that grant
                        // is a multi-lock it holds b too. (`a` is only
                        // taken with `b`.)
                        assert_eq!(tok(&b), Some(t1), "a held by {t1} without b: {b:?}");
                    }
                }
            }
            Ok::<_, Error>(checked)
        })
    };
    for t in tasks {
        within(t).await.unwrap().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let _checked = within(observer).await.unwrap().unwrap();
    assert!(grants.load(Ordering::SeqCst) > 6);
    for n in ["a", "b"] {
        assert_eq!(within(c.nodes[0].holders(n)).await.unwrap(), None, "{n}");
    }
}

/// The request limits: no name, a name twice, 65 names are
/// `InvalidRequest`; 64 names are granted with one token on each; a
/// semaphore among the names is `WrongKind` and queues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_multi_limits_and_a_semaphore_in_the_list() {
    let c = Cluster::start(3).await;
    let n = &c.nodes[0];
    let invalid = |e: &Error| matches!(e, Error::InvalidRequest { .. });
    let e = within(n.lock_all(Vec::<String>::new())).await.unwrap_err();
    assert!(invalid(&e), "empty: {e}");
    let e = within(n.try_lock_all(["d", "e", "d"])).await.unwrap_err();
    assert!(invalid(&e), "duplicate: {e}");
    let e = within(n.with_locks(["d", "d"], async |_| ()))
        .await
        .unwrap_err();
    assert!(invalid(&e), "duplicate with_locks: {e}");
    let names: Vec<String> = (0..65).map(|i| format!("n{i}")).collect();
    let e = within(n.lock_all(&names)).await.unwrap_err();
    assert!(invalid(&e), "65: {e}");
    let e = within(n.lock_all_timeout(&names, Duration::ZERO))
        .await
        .unwrap_err();
    assert!(invalid(&e), "65 with a zero timeout: {e}");
    let g = within(n.lock_all(&names[..64])).await.unwrap();
    for name in [&names[0], &names[63]] {
        let i = within(c.nodes[1].holders(name)).await.unwrap().unwrap();
        assert_eq!(i.holders[0].token, g.token());
    }
    drop(g);
    let p = within(c.nodes[1].semaphore("sem", 3).acquire(1))
        .await
        .unwrap();
    let e = within(n.lock_all(["free1", "sem"])).await.unwrap_err();
    assert!(matches!(e, Error::WrongKind { .. }), "{e}");
    assert_eq!(within(n.holders("free1")).await.unwrap(), None);
    assert_eq!(within(n.holders("sem")).await.unwrap().unwrap().waiters, 0);
    drop(p);
}

/// A multi-lock waits for one busy name without taking the free one; when
/// the busy one is freed, the grant's token is above both names' earlier
/// tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_multi_waits_without_holding_and_token_rises() {
    let c = Cluster::start(3).await;
    let t_p = within(c.nodes[0].lock("p")).await.unwrap().token();
    let q = within(c.nodes[0].lock("q")).await.unwrap();
    let waiter = {
        let n = c.nodes[1].clone();
        tokio::spawn(async move { n.lock_all(["p", "q"]).await })
    };
    crate::common::wait_until_async(|| async {
        let i = c.nodes[2].holders("q").await.ok().flatten()?;
        (i.waiters == 1).then_some(())
    })
    .await;
    let p_info = within(c.nodes[2].holders("p")).await.unwrap().unwrap();
    assert!(p_info.holders.is_empty(), "p held while q is waited for");
    let t_q = q.token();
    drop(q);
    let g = within(waiter).await.unwrap().unwrap();
    assert!(g.token() > t_p && g.token() > t_q);
}

/// FIFO across names: `X = [a, b]` waits for `a`; `Y = [b]` behind it must
/// not overtake it on `b` when `b` is freed, while `Z = [c]` on another
/// name is granted at once. When X times out and leaves, Y goes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_multi_a_later_request_never_overtakes_on_a_shared_name() {
    let c = Cluster::start(3).await;
    let ha = within(c.nodes[0].lock("fa")).await.unwrap();
    let hb = within(c.nodes[0].lock("fb")).await.unwrap();
    let x = {
        let n = c.nodes[1].clone();
        tokio::spawn(async move {
            n.lock_all_timeout(["fa", "fb"], Duration::from_secs(3))
                .await
        })
    };
    crate::common::wait_until_async(|| async {
        let i = c.nodes[2].holders("fb").await.ok().flatten()?;
        (i.waiters == 1).then_some(())
    })
    .await;
    let y = {
        let n = c.nodes[2].clone();
        tokio::spawn(async move { n.lock_all(["fb"]).await })
    };
    crate::common::wait_until_async(|| async {
        let i = c.nodes[2].holders("fb").await.ok().flatten()?;
        (i.waiters == 2).then_some(())
    })
    .await;
    drop(hb);
    let z = within(c.nodes[2].lock_all(["fc"])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!y.is_finished(), "Y overtook X on fb");
    let e = within(x).await.unwrap().unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e}");
    let started = Instant::now();
    let yg = within(y).await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let i = within(c.nodes[0].holders("fa")).await.unwrap().unwrap();
    assert_eq!(i.waiters, 0, "X left a ghost on fa");
    drop((ha, yg, z));
}

/// Wide multi-locks: six tasks on three nodes take overlapping windows of
/// 64 of 100 names (timeouts and dropped futures included) for 3 s. No
/// name is ever held by two grants at once (each holder marks its names),
/// and every name ends free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_multi_wide_overlapping_windows_churn() {
    use super::t119_break_sem::Rng;
    use parking_lot::Mutex;
    let c = Cluster::start(3).await;
    let marks = Arc::new(Mutex::new(vec![0u8; 100]));
    let stop_at = Instant::now() + Duration::from_secs(3);
    let grants = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..6u64 {
        let node = c.nodes[(t % 3) as usize].clone();
        let (marks, grants) = (marks.clone(), grants.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = Rng(0x94D0_49BB_1331_11EB ^ ((t + 1) * 977));
            while Instant::now() < stop_at {
                let start = r.below(37) as usize;
                let mut names: Vec<usize> = (start..start + 64).collect();
                if r.below(2) == 0 {
                    names.reverse();
                }
                let list: Vec<String> = names.iter().map(|i| format!("w{i}")).collect();
                let d = Duration::from_millis(1 + r.below(150));
                let g = match tokio::time::timeout(d, node.lock_all(&list)).await {
                    Ok(g) => g?,
                    Err(_) => continue,
                };
                grants.fetch_add(1, Ordering::SeqCst);
                {
                    let mut m = marks.lock();
                    for &i in &names {
                        assert_eq!(m[i], 0, "w{i} held twice");
                        m[i] = 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(r.below(10))).await;
                {
                    let mut m = marks.lock();
                    for &i in &names {
                        m[i] = 0;
                    }
                }
                drop(g);
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        within(t).await.unwrap().unwrap();
    }
    assert!(grants.load(Ordering::SeqCst) >= 3);
    for i in [0, 36, 50, 63, 99] {
        let name = format!("w{i}");
        crate::common::wait_until_async(|| async {
            c.nodes[1]
                .holders(&name)
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await;
    }
}
