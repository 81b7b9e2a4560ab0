//! Issue 11, items 4 and 5: atomic multi-locks over QUIC with durable
//! storage, `with_locks` cancelled on the loss of the lease, and a nested
//! acquire refused with `AlreadyHeld` whatever the primitives.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use peerlock::{Error, FencingToken};

use super::t11_support::Durable;
use crate::common::within;

/// What the holders saw: who holds each name now, and each name's highest
/// token so far.
#[derive(Default)]
struct Seen {
    holder: HashMap<String, usize>,
    top: HashMap<String, FencingToken>,
}

impl Seen {
    /// A grant of `names` to `who` with `token`: no name held by another,
    /// and the token above each name's previous one.
    fn granted(&mut self, who: usize, names: &[&str], token: FencingToken) {
        for n in names {
            if let Some(other) = self.holder.insert((*n).to_owned(), who) {
                panic!("{n} granted to {who} while {other} held it");
            }
            if let Some(prev) = self.top.insert((*n).to_owned(), token) {
                assert!(token > prev, "{n}: token {token} not above {prev}");
            }
        }
    }

    fn released(&mut self, names: &[&str]) {
        for n in names {
            self.holder.remove(*n);
        }
    }
}

/// Two nodes take overlapping names in opposite orders, and a third takes
/// one of them alone, over and over: nobody deadlocks (all finish within
/// the deadline), every grant holds all its names at once and no name is
/// held twice, and each grant's one token is above the previous tokens of
/// each of its names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t112_issue_11_opposite_orders_never_deadlock_and_grants_are_whole() {
    let c = Durable::default_start().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let orders: [&[&str]; 3] = [&["a", "b", "c"], &["c", "b", "a"], &["b"]];
    let mut tasks = Vec::new();
    for (who, names) in orders.into_iter().enumerate() {
        let (node, seen) = (c.nodes[who].clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..12 {
                let g = node.lock_all(names.iter().copied()).await?;
                assert_eq!(g.names(), names, "all names, in the order asked");
                assert!(g.is_held());
                seen.lock().granted(who, names, g.token());
                tokio::time::sleep(Duration::from_millis(3)).await;
                seen.lock().released(names);
                g.unlock().await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        within(t).await.unwrap().unwrap();
    }
    let seen = seen.lock();
    assert_eq!(seen.top.len(), 3);
}

/// `try_lock_all` is all or nothing: with one name held elsewhere it takes
/// none of them (the others stay free).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t112_issue_11_try_lock_all_takes_none_when_one_is_held() {
    let c = Durable::default_start().await;
    let b = within(c.nodes[0].lock("y")).await.unwrap();
    let none = within(c.nodes[1].try_lock_all(["x", "y", "z"]))
        .await
        .unwrap();
    assert!(none.is_none());
    for n in ["x", "z"] {
        assert_eq!(within(c.nodes[2].holders(n)).await.unwrap(), None, "{n}");
    }
    let err = within(c.nodes[1].lock_all_timeout(["x", "y"], Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err}");
    // The timed-out waiter leaves the queues once its cancel commits.
    crate::common::wait_until_async(|| async {
        c.nodes[2].holders("x").await.ok()?.is_none().then_some(())
    })
    .await;
    let bt = b.token();
    drop(b);
    let g = within(c.nodes[1].lock_all(["x", "y", "z"])).await.unwrap();
    assert!(g.token() > bt);
    for n in ["x", "y", "z"] {
        let info = within(c.nodes[2].holders(n)).await.unwrap().unwrap();
        assert_eq!(info.holders.len(), 1);
        assert_eq!(info.holders[0].token, g.token(), "one token for all");
    }
}

/// `with_locks` runs its closure holding every name and drops it when the
/// lease may be gone (here: the node is killed), returning `LockLost`;
/// the names are then granted elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t112_issue_11_with_locks_cancels_the_closure_on_loss() {
    let c = Durable::default_start().await;
    let victim = c.follower().await;
    let other = (victim + 1) % 3;
    let ran = Arc::new(Mutex::new(None));
    let run = {
        let (node, ran) = (c.nodes[victim].clone(), ran.clone());
        tokio::spawn(async move {
            node.with_locks(["p", "q"], async |g| {
                *ran.lock() = Some(g.token());
                std::future::pending::<()>().await
            })
            .await
        })
    };
    let first = crate::common::wait_until(|| *ran.lock()).await;
    let next = {
        let node = c.nodes[other].clone();
        tokio::spawn(async move { node.with_locks(["q"], async |g| g.token()).await })
    };
    peerlock::testing::crash(&c.nodes[victim]).await;
    let out = within(run).await.unwrap();
    assert!(matches!(out, Err(Error::LockLost { .. })), "{out:?}");
    let token = within(next).await.unwrap().unwrap();
    assert!(token > first);
}

/// Issue 11, item 5: a task that holds a name in any kind (permits, a
/// read lock, one name of a multi-lock, a leadership) and asks the same
/// node for it again, through any primitive (for permits: more than the
/// count leaves), gets `AlreadyHeld` at once
/// instead of waiting behind itself; another task asking waits as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t112_issue_11_a_nested_acquire_of_any_kind_is_already_held() {
    let c = Durable::default_start().await;
    let n = &c.nodes[0];
    let sem = n.semaphore("s", 4);
    let p = within(sem.acquire(1)).await.unwrap();
    let r = within(n.read_lock("r")).await.unwrap();
    let m = within(n.lock_all(["m1", "m2"])).await.unwrap();
    let l = within(n.campaign("e")).await.unwrap();
    let nested = [
        // Permits: refused only past the count (1 held + 4 > 4); below
        // it a task's concurrent jobs may each take one (t119).
        within(sem.acquire(4)).await.unwrap_err(),
        within(n.read_lock("r")).await.unwrap_err(),
        within(n.write_lock("r")).await.unwrap_err(),
        within(n.lock("r")).await.unwrap_err(),
        within(n.lock_all(["x", "m2"])).await.unwrap_err(),
        within(n.write_lock("m1")).await.unwrap_err(),
        within(n.lock_all(["e"])).await.unwrap_err(),
        within(n.campaign("e")).await.unwrap_err(),
    ];
    for e in nested {
        assert!(matches!(e, Error::AlreadyHeld { .. }), "{e}");
    }
    // Another task is not refused: it waits (here: times out) as usual.
    let n2 = n.clone();
    let e =
        tokio::spawn(async move { n2.write_lock_timeout("r", Duration::from_millis(200)).await })
            .await
            .unwrap()
            .unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e}");
    drop((p, r, m, l));
}
