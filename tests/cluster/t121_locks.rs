//! Issue 12, item 6: `node.locks()`, the operator's paged listing of the
//! names in use. Every kind (mutex, semaphore, read-write lock, multi-lock
//! names), holder member names, tokens, waiters and ages; pages that chain
//! by cursor; a follower answering as the leader does; a released name
//! gone; a page too large refused; no quorum bounded like `holder()`.

use std::collections::BTreeMap;
use std::time::Duration;

use peerlock::{ClaimKind, Error, LockEntry, NameKind, Node, MAX_LOCKS_PAGE};
use tokio::time::{timeout, Instant};

use crate::common::{wait_until_async, within, Cluster};

/// Every page from `node`, `limit` names at a time, and how many pages.
async fn all_pages(node: &Node, limit: usize) -> (Vec<LockEntry>, usize) {
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    for pages in 1..=100 {
        let page = within(node.locks(after.as_deref(), limit)).await.unwrap();
        assert!(page.locks.len() <= limit, "a page past its limit");
        rows.extend(page.locks);
        match page.next {
            Some(n) => after = Some(n.as_str().to_owned()),
            None => return (rows, pages),
        }
    }
    panic!("more than 100 pages");
}

/// A row without its ages (they move between two reads): name, kind,
/// (token, holder, claim) per grant, permits used, waiters.
type Plain = (String, NameKind, Vec<(u64, String, ClaimKind)>, u64, usize);

fn plain(rows: &[LockEntry]) -> Vec<Plain> {
    rows.iter()
        .map(|r| {
            let grants = r
                .info
                .holders
                .iter()
                .map(|g| (g.token.get(), g.holder.to_string(), g.kind))
                .collect();
            (
                r.name.to_string(),
                r.info.kind,
                grants,
                r.info.permits_used,
                r.info.waiters,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t121_issue_12_locks_lists_every_kind_paged_and_linearizable() {
    let c = Cluster::start(3).await;
    let name = |i: usize| c.nodes[i].status().name.to_string();
    let t0 = Instant::now();

    // Seven mutexes on node 0, one with a waiter from node 1.
    let mut mutexes = Vec::new();
    for i in 0..7 {
        mutexes.push(within(c.nodes[0].lock(&format!("a/m{i}"))).await.unwrap());
    }
    let waiter = {
        let n = c.nodes[1].clone();
        tokio::spawn(async move { n.lock("a/m0").await })
    };
    // Two permits of a semaphore of 3, on nodes 1 and 2.
    let p1 = within(c.nodes[1].semaphore("b/sem", 3).acquire(1))
        .await
        .unwrap();
    let p2 = within(c.nodes[2].semaphore("b/sem", 3).acquire(1))
        .await
        .unwrap();
    // Two readers of a read-write lock; a multi-lock on two names.
    let r1 = within(c.nodes[1].read_lock("c/rw")).await.unwrap();
    let r2 = within(c.nodes[2].read_lock("c/rw")).await.unwrap();
    let multi = within(c.nodes[2].lock_all(["d/1", "d/2"])).await.unwrap();
    wait_until_async(|| async {
        let h = c.nodes[0].holder("a/m0").await.ok().flatten()?;
        (h.waiters == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let leader = c.leader().await;
    let follower = (leader + 1) % 3;
    let (rows, pages) = all_pages(&c.nodes[follower], 3).await;
    assert!(pages >= 4, "11 names in pages of 3 took {pages} pages");
    let names: Vec<String> = rows.iter().map(|r| r.name.to_string()).collect();
    let mut expected: Vec<String> = (0..7).map(|i| format!("a/m{i}")).collect();
    expected.extend(["b/sem", "c/rw", "d/1", "d/2"].map(String::from));
    assert_eq!(names, expected, "every name once, in name order");
    let by: BTreeMap<String, &LockEntry> = rows.iter().map(|r| (r.name.to_string(), r)).collect();

    // Mutexes: node 0's member name, the guard's token, the waiter counted.
    for (i, g) in mutexes.iter().enumerate() {
        let row = by[&format!("a/m{i}")];
        assert_eq!(row.info.kind, NameKind::Lock);
        assert_eq!(row.info.holders.len(), 1);
        let h = &row.info.holders[0];
        assert_eq!(h.holder.to_string(), name(0));
        assert_eq!(h.token, g.token());
        assert_eq!(h.kind, ClaimKind::Exclusive);
        assert_eq!(row.info.waiters, usize::from(i == 0));
        // Age on the answering node's clock: held since before the sleep,
        // and not longer than the test has run.
        let age = h.age.expect("a grant applied during this run has an age");
        assert!(age >= Duration::from_millis(250), "age {age:?}");
        assert!(age <= t0.elapsed(), "age {age:?} beyond the test's run");
    }
    // The semaphore: its count, both permit holders, two permits in use.
    let sem = by["b/sem"];
    assert_eq!(sem.info.kind, NameKind::Semaphore { count: 3 });
    assert_eq!(sem.info.permits_used, 2);
    let holders: Vec<(String, u64)> = sem
        .info
        .holders
        .iter()
        .map(|h| (h.holder.to_string(), h.token.get()))
        .collect();
    assert_eq!(
        holders,
        vec![(name(1), p1.token().get()), (name(2), p2.token().get())]
    );
    // The read-write lock: both readers, shared.
    let rw = by["c/rw"];
    assert_eq!(rw.info.holders.len(), 2);
    assert!(rw.info.holders.iter().all(|h| h.kind == ClaimKind::Shared));
    assert_eq!(
        rw.info.holders.iter().map(|h| h.token).collect::<Vec<_>>(),
        vec![r1.token(), r2.token()]
    );
    // The multi-lock: both names, one token, node 2.
    for n in ["d/1", "d/2"] {
        let h = &by[n].info.holders[0];
        assert_eq!((h.token, h.holder.to_string()), (multi.token(), name(2)));
    }

    // The leader answers the same (ages aside), in one page or several.
    let (from_leader, _) = all_pages(&c.nodes[leader], MAX_LOCKS_PAGE).await;
    assert_eq!(
        plain(&from_leader),
        plain(&rows),
        "leader and follower differ"
    );

    // A released name is gone; the waiter's grant shows with its holder.
    within(mutexes.remove(1).unlock()).await.unwrap();
    within(mutexes.remove(0).unlock()).await.unwrap();
    let g = within(waiter).await.unwrap().unwrap();
    let (rows, _) = all_pages(&c.nodes[follower], 2).await;
    assert!(
        rows.iter().all(|r| r.name.as_str() != "a/m1"),
        "a/m1 released"
    );
    let m0 = rows.iter().find(|r| r.name.as_str() == "a/m0").unwrap();
    assert_eq!(m0.info.waiters, 0);
    assert_eq!(m0.info.holders[0].holder.to_string(), name(1));
    assert_eq!(m0.info.holders[0].token, g.token());

    // A page starting past every name is empty; bad requests are refused.
    let page = within(c.nodes[0].locks(Some("z"), 10)).await.unwrap();
    assert!(page.locks.is_empty() && page.next.is_none());
    for limit in [0, MAX_LOCKS_PAGE + 1, usize::MAX] {
        let r = c.nodes[0].locks(None, limit).await;
        assert!(
            matches!(r, Err(Error::InvalidRequest { .. })),
            "limit {limit}: {r:?}"
        );
    }

    // Without a quorum the call fails like holder(): within about one TTL.
    peerlock::testing::crash(&c.nodes[1]).await;
    peerlock::testing::crash(&c.nodes[2]).await;
    let t1 = Instant::now();
    let r = timeout(Duration::from_secs(5), c.nodes[0].locks(None, 10))
        .await
        .expect("locks() is bounded without a quorum");
    assert!(matches!(r, Err(Error::NoQuorum)), "no quorum: {r:?}");
    assert!(t1.elapsed() <= Duration::from_secs(4), "{:?}", t1.elapsed());
    drop((p1, p2, r1, r2, multi, g, mutexes));
}
