//! Scenarios a user-style test found failing (issue 11), each fixed as a
//! kind and kept as its regression test. (A guard moved to another task
//! is left: the hold stays with the task that acquired it; see the
//! README's "Known limits".)

use std::time::Duration;

use peerlock::Error;

use crate::common::{within, Cluster};

/// Several futures of one task (`join!`, `FuturesUnordered`, a test
/// body): a task that runs two jobs concurrently, each taking one permit
/// of a semaphore of 4, should get both (nobody waits behind itself: 2
/// permits are free). Found: the second was refused with `AlreadyHeld`;
/// now only a task whose own permits plus its request exceed the count is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_issue_11_two_jobs_of_one_task_each_take_a_permit() {
    let c = Cluster::start(3).await;
    let sem = c.nodes[0].semaphore("jobs", 4);
    let job = move |delay: u64| {
        let sem = sem.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let p = sem.acquire(1).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            drop(p);
            Ok::<_, Error>(())
        }
    };
    // One spawned task runs both jobs (as `FuturesUnordered` would).
    let (a, b) = within(tokio::spawn(async move { tokio::join!(job(0), job(200)) }))
        .await
        .unwrap();
    a.unwrap();
    b.expect("the second job of the task got a permit");
}

/// An election on a name in use as a semaphore or read lock: `campaign` is
/// `WrongKind` (semaphore) or waits (read lock); `leader()` of a semaphore
/// is `WrongKind`, and of a name held by readers names no leader. Found:
/// it named the oldest permit holder or reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_issue_11_leader_names_no_permit_holder_or_reader() {
    let c = Cluster::start(3).await;
    let p = within(c.nodes[0].semaphore("sched", 3).acquire(1))
        .await
        .unwrap();
    let e = within(c.nodes[1].campaign("sched")).await.unwrap_err();
    assert!(matches!(e, Error::WrongKind { .. }), "{e}");
    let r = within(c.nodes[0].read_lock("sched2")).await.unwrap();
    let r2 = within(c.nodes[2].read_lock("sched2")).await.unwrap();
    let l_sem = within(c.nodes[1].leader("sched")).await;
    let l_read = within(c.nodes[1].leader("sched2")).await.unwrap();
    let mut watch = c.nodes[1].watch_leader("sched2");
    let watched = within(futures_next(&mut watch)).await;
    drop((p, r, r2));
    assert!(
        matches!(l_sem, Err(Error::WrongKind { .. })),
        "leader() of a semaphore: {l_sem:?}"
    );
    assert!(
        l_read.is_none(),
        "leader() names a reader of a read-locked name: {l_read:?}"
    );
    assert_eq!(watched, Some(None), "watch_leader names a reader");
}

/// The same hole through `run_as_leader`: the job runs in a task of its
/// own, holding the leadership it was handed, and locks the election's
/// name (say, a `with_lock("scheduler")` left over from before the
/// election). Expected `AlreadyHeld`; it waited behind its own leadership
/// (the job's task is now a holder of the term: `Leadership::scoped`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_issue_11_a_leader_job_locking_its_election_is_refused() {
    let c = Cluster::start(3).await;
    let node = c.nodes[0].clone();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = c.nodes[0].run_as_leader("sched", move |_l| {
        let (node, tx) = (node.clone(), tx.clone());
        async move {
            let again = node.lock_timeout("sched", Duration::from_secs(3)).await;
            let _ = tx.send(again.map(|g| g.token()));
            std::future::pending::<()>().await
        }
    });
    let mut rx = rx;
    let again = within(rx.recv()).await.unwrap();
    within(task.stop()).await.unwrap();
    assert!(
        matches!(again, Err(Error::AlreadyHeld { .. })),
        "the leader's job locked its own election and got {again:?} (Timeout = it waited behind itself)"
    );
}

/// The stream's next item.
async fn futures_next<S: tokio_stream::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    tokio_stream::StreamExt::next(s).await
}
