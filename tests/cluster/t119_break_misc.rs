//! Odd uses of the new primitives (helper `break`, issue 11): huge
//! timeouts, guards outliving their node, linearizable `holders`.

use std::time::Duration;

use peerlock::Error;

use crate::common::{within, Cluster};

/// `Duration::MAX` timeouts wait (and are granted) rather than panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_misc_huge_timeouts_wait_and_do_not_panic() {
    let c = Cluster::start(3).await;
    let n = &c.nodes[0];
    let p = within(n.semaphore("h", 2).acquire_timeout(2, Duration::MAX))
        .await
        .unwrap();
    drop(p);
    let r = within(n.read_lock_timeout("h2", Duration::MAX))
        .await
        .unwrap();
    drop(r);
    let w = within(n.write_lock_timeout("h2", Duration::MAX))
        .await
        .unwrap();
    drop(w);
    let m = within(n.lock_all_timeout(["h3", "h4"], Duration::MAX))
        .await
        .unwrap();
    drop(m);
    let l = within(n.campaign_timeout("h5", Duration::MAX))
        .await
        .unwrap();
    drop(l);
}

/// After `release().await` / `unlock().await` returns on one node,
/// `holders` on another never shows the grant; after an acquire returns,
/// it always does (linearizable reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_misc_holders_is_linearizable_across_nodes() {
    let c = Cluster::start(3).await;
    for round in 0..10usize {
        let (a, b) = (&c.nodes[round % 3], &c.nodes[(round + 1) % 3]);
        let p = within(a.semaphore("lin", 3).acquire(2)).await.unwrap();
        let i = within(b.holders("lin")).await.unwrap().unwrap();
        assert!(
            i.holders.iter().any(|h| h.token == p.token()),
            "round {round}"
        );
        within(p.release()).await.unwrap();
        assert_eq!(
            within(b.holders("lin")).await.unwrap(),
            None,
            "round {round}"
        );
        let r = within(a.read_lock("linr")).await.unwrap();
        assert_eq!(
            within(b.holders("linr")).await.unwrap().unwrap().holders[0].token,
            r.token()
        );
        within(r.unlock()).await.unwrap();
        assert_eq!(
            within(b.holders("linr")).await.unwrap(),
            None,
            "round {round}"
        );
    }
}

/// Guards outlive their node: dropping every `Node` handle of a node that
/// holds permits and a read lock shuts it down; the guards' `lost()`
/// completes, the names are granted elsewhere, and dropping or releasing
/// the guards afterwards neither panics nor hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_misc_guards_outlive_their_node() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let victim = (leader + 1) % 3;
    let node = c.nodes.remove(victim);
    let p = within(node.semaphore("o", 1).acquire(1)).await.unwrap();
    let r = within(node.read_lock("or")).await.unwrap();
    let m = within(node.lock_all(["o1", "o2"])).await.unwrap();
    drop(node);
    within(p.lost()).await;
    within(r.lost()).await;
    within(m.lost()).await;
    assert!(!p.is_held() && !r.is_held() && !m.is_held());
    let other = &c.nodes[0];
    let q = within(other.semaphore("o", 1).acquire(1)).await.unwrap();
    let w = within(other.write_lock("or")).await.unwrap();
    let mm = within(other.lock_all(["o2", "o1"])).await.unwrap();
    let released = within(p.release()).await;
    assert!(
        matches!(released, Ok(()) | Err(Error::Shutdown)),
        "{released:?}"
    );
    drop((r, m, q, w, mm));
}

/// A `with_locks` closure that panics: the panic reaches the caller's
/// task, and every name is released (granted at once elsewhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_misc_a_panicking_with_locks_releases_every_name() {
    let c = Cluster::start(3).await;
    let n = c.nodes[0].clone();
    let out = tokio::spawn(async move {
        n.with_locks(["pa", "pb"], async |_| -> () { panic!("boom") })
            .await
    })
    .await;
    assert!(out.unwrap_err().is_panic());
    let g = within(c.nodes[1].lock_all_timeout(["pb", "pa"], Duration::from_secs(5)))
        .await
        .unwrap();
    drop(g);
    let sem = c.nodes[0].semaphore("pp", 1);
    let out = tokio::spawn(async move {
        let _p = sem.acquire(1).await.unwrap();
        panic!("boom");
    })
    .await;
    assert!(out.unwrap_err().is_panic());
    let p = within(
        c.nodes[2]
            .semaphore("pp", 1)
            .acquire_timeout(1, Duration::from_secs(5)),
    )
    .await
    .unwrap();
    drop(p);
}
