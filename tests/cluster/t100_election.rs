//! Issue 11, item 1: leader election over QUIC. Candidates are served in
//! order, the leader is read linearizably and watched in log order, and
//! `run_as_leader` runs its job on one node at a time, across a crash of
//! the leader's node and a stop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_stream::StreamExt;

use crate::common::{within, Cluster, Fenced};

/// Campaigns wait first come first served; `leader()` names the leader on
/// every node; `resign()` hands over to the next candidate with a higher
/// token; every clone of the old term sees the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t100_issue_11_candidates_lead_in_turn_with_rising_tokens() {
    let c = Cluster::start(3).await;
    let first = within(c.nodes[0].campaign("sched")).await.unwrap();
    assert!(first.is_leader());
    let n1 = c.nodes[1].clone();
    let second = tokio::spawn(async move { n1.campaign("sched").await });
    // The second candidate is queued before the third.
    crate::common::wait_until_async(|| async {
        let l = c.nodes[2].leader("sched").await.ok().flatten()?;
        (l.candidates == 1).then_some(())
    })
    .await;
    let n2 = c.nodes[2].clone();
    let third = tokio::spawn(async move { n2.campaign("sched").await });
    let info = within(c.nodes[2].leader("sched")).await.unwrap().unwrap();
    assert_eq!(info.token, first.token());
    assert_eq!(info.holder.as_str(), "node-0");

    let clone = first.clone();
    within(first.resign()).await.unwrap();
    assert!(!clone.is_leader(), "every clone sees the resignation");
    within(clone.lost()).await;
    let second = within(second).await.unwrap().unwrap();
    assert!(second.token() > first.token());
    let info = within(c.nodes[0].leader("sched")).await.unwrap().unwrap();
    assert_eq!(info.holder.as_str(), "node-1");
    assert!(!third.is_finished(), "the third waits its turn");
    within(second.resign()).await.unwrap();
    let third = within(third).await.unwrap().unwrap();
    assert!(third.token() > second.token());
    within(third.resign()).await.unwrap();
    let none = within(c.nodes[1].leader("sched")).await.unwrap();
    assert_eq!(none, None);
}

/// `watch_leader` shows each new leader as the node applies the log, never
/// an older one after a newer one, also across the crash of the leader's
/// node (its session expires and the next candidate is granted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t101_issue_11_watch_leader_moves_forward_across_a_leader_crash() {
    let c = Cluster::start(3).await;
    let raft_leader = c.leader().await;
    // The election's first leader lives on a node that is not the Raft
    // leader, so its crash tests the session's expiry, not an election.
    let victim = (raft_leader + 1) % 3;
    let watcher = (raft_leader + 2) % 3;
    let mut stream = c.nodes[watcher].watch_leader("sched");
    let first_seen = within(stream.next()).await.unwrap();
    assert_eq!(first_seen, None, "nobody leads yet");

    let l0 = within(c.nodes[victim].campaign("sched")).await.unwrap();
    let seen = within(stream.next()).await.unwrap().unwrap();
    assert_eq!(seen.token, l0.token());
    let n = c.nodes[watcher].clone();
    let next = tokio::spawn(async move { n.campaign("sched").await });
    crate::common::wait_until_async(|| async {
        let l = c.nodes[watcher].leader("sched").await.ok().flatten()?;
        (l.candidates == 1).then_some(())
    })
    .await;
    peerlock::testing::crash(&c.nodes[victim]).await;
    let l1 = within(next).await.unwrap().unwrap();
    assert!(l1.token() > l0.token());
    // The stream may show the gap (nobody, while the session expired),
    // then the new leader; never the old one again.
    let mut last = seen.token;
    loop {
        let v = within(stream.next()).await.unwrap();
        if let Some(v) = v {
            assert!(
                v.token > last,
                "the watch went back: {} after {last}",
                v.token
            );
            last = v.token;
            if v.token == l1.token() {
                break;
            }
        }
    }
}

/// `run_as_leader` on every node: the job runs on one node at a time; when
/// the leader's node crashes another node's job starts, with a higher
/// token, and the crashed leader's token is refused by the resource; a
/// stopped task's job is dropped before its leadership is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t102_issue_11_run_as_leader_runs_one_job_at_a_time_across_a_crash_and_a_stop() {
    let c = Cluster::start(3).await;
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let fenced = Arc::new(Mutex::new(Fenced::default()));
    let terms = Arc::new(Mutex::new(Vec::<(usize, u64)>::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, node) in c.nodes.iter().enumerate() {
        let (running, most, fenced, terms, refused) = (
            running.clone(),
            most.clone(),
            fenced.clone(),
            terms.clone(),
            refused.clone(),
        );
        tasks.push(node.run_as_leader("job", move |l| {
            let (running, most, fenced, terms, refused) = (
                running.clone(),
                most.clone(),
                fenced.clone(),
                terms.clone(),
                refused.clone(),
            );
            async move {
                /// Counts this job as running until its future is dropped.
                struct Running(Arc<AtomicUsize>);
                impl Drop for Running {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let _running = Running(running);
                terms.lock().push((i, l.token().get()));
                loop {
                    if !fenced.lock().write(l.token(), i as u64) {
                        // A job still running after a newer term began.
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    let first = crate::common::wait_until(|| terms.lock().first().copied()).await;
    let (leader_node, old_token) = first;
    peerlock::testing::crash(&c.nodes[leader_node]).await;
    let second = crate::common::wait_until(|| {
        terms
            .lock()
            .iter()
            .copied()
            .find(|(i, _)| *i != leader_node)
    })
    .await;
    assert!(second.1 > old_token, "the new term's token is higher");
    assert!(
        !fenced.lock().write(peerlock::FencingToken(old_token), 99),
        "the crashed leader's token is refused"
    );
    // Stop the new leader's task: its job is dropped, then it resigns, and
    // the last node's job starts.
    let mut tasks: Vec<_> = tasks.into_iter().map(Some).collect();
    within(tasks[second.0].take().unwrap().stop())
        .await
        .unwrap();
    let third = crate::common::wait_until(|| {
        terms
            .lock()
            .iter()
            .copied()
            .find(|(i, _)| *i != leader_node && *i != second.0)
    })
    .await;
    assert!(third.1 > second.1);
    assert_eq!(most.load(Ordering::SeqCst), 1, "never two jobs at once");
    assert_eq!(
        refused.load(Ordering::SeqCst),
        0,
        "no job wrote after a newer term began"
    );
    for t in tasks.into_iter().flatten() {
        let _ = within(t.stop()).await;
    }
    assert_eq!(running.load(Ordering::SeqCst), 0, "every job was dropped");
}

/// A job that returns by itself resigns, and the election goes round: the
/// other candidates lead in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t103_issue_11_a_job_that_returns_hands_the_election_on() {
    let c = Cluster::start(3).await;
    let terms = Arc::new(Mutex::new(Vec::<usize>::new()));
    let mut tasks = Vec::new();
    for (i, node) in c.nodes.iter().enumerate() {
        let terms = terms.clone();
        tasks.push(node.run_as_leader("round", move |_l| {
            let terms = terms.clone();
            async move {
                terms.lock().push(i);
                // Long enough for every other candidate to be queued.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }));
    }
    crate::common::wait_until(|| (terms.lock().len() >= 6).then_some(())).await;
    for t in tasks {
        within(t.stop()).await.unwrap();
    }
    let terms = terms.lock();
    for w in terms.windows(2) {
        assert_ne!(
            w[0], w[1],
            "a node that returned went to the back: {terms:?}"
        );
    }
}

/// A bad election name is a clear error, not a silent task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t104_issue_11_a_bad_election_name_is_refused() {
    let c = Cluster::start(1).await;
    let err = c.nodes[0].campaign("").await.unwrap_err();
    assert!(matches!(err, peerlock::Error::InvalidName { .. }), "{err}");
    let task = c.nodes[0].run_as_leader("", |_l| async {});
    let err = within(task.stop()).await.unwrap_err();
    assert!(matches!(err, peerlock::Error::InvalidName { .. }), "{err}");
    let mut s = c.nodes[0].watch_leader("");
    assert_eq!(within(s.next()).await, None, "the stream ends at once");
}

/// A job that panics ends its term, not its node's loop: the election
/// passes on, and the panicking node campaigns again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t106_issue_11_a_panicking_job_ends_its_term_not_the_loop() {
    let c = Cluster::start(3).await;
    let terms = Arc::new(Mutex::new(Vec::<usize>::new()));
    let mut tasks = Vec::new();
    for (i, node) in c.nodes.iter().enumerate().take(2) {
        let terms = terms.clone();
        tasks.push(node.run_as_leader("panics", move |_l| {
            let terms = terms.clone();
            async move {
                terms.lock().push(i);
                tokio::time::sleep(Duration::from_millis(200)).await;
                if i == 0 {
                    panic!("the job of node 0 fails");
                }
            }
        }));
    }
    crate::common::wait_until(|| {
        let t = terms.lock();
        (t.iter().filter(|i| **i == 0).count() >= 2 && t.contains(&1)).then_some(())
    })
    .await;
    assert!(!tasks[0].is_finished(), "node 0 still campaigns");
    for t in tasks {
        within(t.stop()).await.unwrap();
    }
}
