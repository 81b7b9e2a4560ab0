//! Issue 11, item 1: leader election between processes. The leader's
//! process is paused past its TTL (SIGSTOP), or killed: the next candidate
//! leads within TTL + election time with a higher token, the paused one
//! learns it lost before it can act again (`leading` false on resume), and
//! its write with the old token is refused by the fenced resource.

use std::time::{Duration, Instant};

use crate::common::Fenced;
use crate::procs::{leading_token, start, Proc};

/// Starts `campaign NAME` on `p` in the background; the task hands the
/// process back with its answer once it leads.
fn campaign(mut p: Proc, name: &str) -> tokio::task::JoinHandle<(Proc, String)> {
    let cmd = format!("campaign {name}");
    tokio::spawn(async move {
        let line = p.ask(&cmd).await;
        (p, line)
    })
}

/// The next candidate is queued once the leader's `leader` read counts it.
async fn wait_candidates(p: &mut Proc, name: &str, n: usize) {
    let start = Instant::now();
    loop {
        let line = p.ask(&format!("leader {name}")).await;
        if line.split_whitespace().nth(4) == Some(&n.to_string()) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{line}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_issue_11_a_paused_leader_is_deposed_and_fenced() {
    let ttl = Duration::from_millis(1500);
    let (_spec, procs) = start(3, ttl).await;
    let mut procs: Vec<Option<Proc>> = procs.into_iter().map(Some).collect();
    let mut p0 = procs[0].take().unwrap();
    let t0 = leading_token(&p0.ask("campaign sched").await);
    let mut resource = Fenced::default();
    assert!(resource.write(peerlock::FencingToken(t0), 1));
    let next = campaign(procs[1].take().unwrap(), "sched");
    wait_candidates(&mut p0, "sched", 1).await;

    let paused = Instant::now();
    p0.signal("STOP");
    let (mut p1, line) = next.await.unwrap();
    let took = paused.elapsed();
    let t1 = leading_token(&line);
    assert!(t1 > t0, "token rose: {t0} -> {t1}");
    // TTL, plus an election when the paused process also led Raft, plus
    // the keepalive period: well inside 4 TTLs.
    assert!(took < ttl * 4, "a new leader after {took:?}");
    assert!(resource.write(peerlock::FencingToken(t1), 2));
    tokio::time::sleep(ttl).await;
    p0.signal("CONT");
    assert_eq!(p0.ask("leading sched").await, "leading sched false");
    assert!(
        !resource.write(peerlock::FencingToken(t0), 3),
        "the old leader is fenced"
    );
    assert_eq!(resource.value, 2);
    assert_eq!(p1.ask("leading sched").await, "leading sched true");
    let leader = p0.ask("leader sched").await;
    assert!(leader.starts_with("leader sched proc-1 "), "{leader}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_issue_11_a_killed_leaders_successor_leads_within_the_ttl() {
    let ttl = Duration::from_millis(1500);
    let (_spec, procs) = start(3, ttl).await;
    let mut procs: Vec<Option<Proc>> = procs.into_iter().map(Some).collect();
    let mut p2 = procs[2].take().unwrap();
    let t2 = leading_token(&p2.ask("campaign sched").await);
    let next = campaign(procs[0].take().unwrap(), "sched");
    wait_candidates(&mut p2, "sched", 1).await;
    let killed = Instant::now();
    p2.kill9().await;
    let (mut p0, line) = next.await.unwrap();
    let took = killed.elapsed();
    assert!(leading_token(&line) > t2);
    assert!(took < ttl * 4, "a new leader after {took:?}");
    let mut p1 = procs[1].take().unwrap();
    let leader = p1.ask("leader sched").await;
    assert!(leader.starts_with("leader sched proc-0 "), "{leader}");
    assert_eq!(p0.ask("resign sched").await, "resigned sched");
    assert_eq!(p1.ask("leader sched").await, "leader sched none");
}
