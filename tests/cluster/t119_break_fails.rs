//! Failing scenarios found by helper `break` (issue 11): each is a
//! minimal repro, described in the break notes.

use std::time::Duration;

use peerlock::Error;

use crate::common::{within, Cluster};

/// A guard moved to another task: that task now holds the lock, so its
/// own `lock()` on the name must not wait behind itself for ever (the
/// promise of item 5: `AlreadyHeld`, or any answer, but not a hang).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_fails_a_task_holding_a_moved_guard_waits_behind_itself() {
    let c = Cluster::start(3).await;
    let n = c.nodes[0].clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let acquirer = {
        let n = n.clone();
        tokio::spawn(async move {
            let g = n.lock("moved").await.unwrap();
            tx.send(g).unwrap();
        })
    };
    within(acquirer).await.unwrap();
    let holder = {
        let n = n.clone();
        tokio::spawn(async move {
            let g = rx.await.unwrap();
            // This task holds "moved" now and asks for it again.
            let again = n.lock_timeout("moved", Duration::from_secs(3)).await;
            drop(g);
            again.map(|g| g.token())
        })
    };
    let again = within(holder).await.unwrap();
    assert!(
        matches!(again, Err(Error::AlreadyHeld { .. })),
        "the task holding a moved guard asked again and got {again:?} \
         (Timeout = it waited behind itself)"
    );
}

/// Several futures of one task (`join!`, `FuturesUnordered`, a test
/// body): a task that runs two jobs concurrently, each taking one permit
/// of a semaphore of 4, should get both (nobody waits behind itself: 2
/// permits are free). Found: the second is refused with `AlreadyHeld`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_fails_two_jobs_of_one_task_cannot_each_take_a_permit() {
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
/// `WrongKind` (semaphore) or waits (read lock); `leader()` on a name no
/// one campaigned for, held by permits or readers, names no leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_fails_leader_names_a_permit_holder_or_a_reader() {
    let c = Cluster::start(3).await;
    let p = within(c.nodes[0].semaphore("sched", 3).acquire(1))
        .await
        .unwrap();
    let e = within(c.nodes[1].campaign("sched")).await.unwrap_err();
    assert!(matches!(e, Error::WrongKind { .. }), "{e}");
    let r = within(c.nodes[0].read_lock("sched2")).await.unwrap();
    let r2 = within(c.nodes[2].read_lock("sched2")).await.unwrap();
    let l_sem = within(c.nodes[1].leader("sched")).await.unwrap();
    let l_read = within(c.nodes[1].leader("sched2")).await.unwrap();
    drop((p, r, r2));
    assert!(
        l_sem.is_none() && l_read.is_none(),
        "leader() names a leader of a semaphore ({l_sem:?}) or of a read-locked name ({l_read:?})"
    );
}

/// The same hole through `run_as_leader`: the job runs in a task of its
/// own, holding the leadership it was handed, and locks the election's
/// name (say, a `with_lock("scheduler")` left over from before the
/// election). Expected `AlreadyHeld`; it waits behind its own leadership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_fails_a_leader_job_locking_its_election_waits_behind_itself() {
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
