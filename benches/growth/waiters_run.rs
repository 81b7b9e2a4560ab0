//! One size of the `waiters` curve: a fresh cluster, then `runs` rounds of
//! hand-off and mass time-out on it (see `waiters.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use peerlock::{Error, Node};

use crate::locks::cluster::{histogram, ms, record, threads_cpu, Cluster};

/// What one round measured.
pub struct Run {
    pub queue_s: f64,
    pub handoffs_per_s: f64,
    pub gap_p50_ms: f64,
    pub gap_p99_ms: f64,
    pub handoff_cpu_us: f64,
    pub answered_ms: f64,
    pub drained_ms: f64,
    pub timeout_cpu_ms: f64,
    /// Waiters not yet queued at the deadline.
    pub late: usize,
    /// Answers other than `Timeout` in the mass time-out.
    pub not_timeout: usize,
}

const LOCK: &str = "hot";
/// Bound on every wait of a round.
const BOUND: Duration = Duration::from_secs(180);

/// Waiters on `LOCK` as the leader's table sees them.
async fn waiters(node: &Node) -> Option<usize> {
    match tokio::time::timeout(Duration::from_secs(5), node.holder(LOCK)).await {
        Ok(Ok(info)) => Some(info.map_or(0, |i| i.waiters)),
        _ => None,
    }
}

/// Polls until `want(waiters)`, bounded; the time it took.
async fn until(node: &Node, want: impl Fn(usize) -> bool) -> Duration {
    let at = Instant::now();
    while at.elapsed() < BOUND {
        if waiters(node).await.is_some_and(&want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    at.elapsed()
}

pub async fn size(w: usize, runs: usize, rts: &[tokio::runtime::Handle]) -> Vec<Run> {
    let c = Cluster::start(None, Some(rts)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut out = Vec::new();
    for _ in 0..runs.max(1) {
        let leader = c.leader();
        let cpu = || threads_cpu(&format!("gw-node{leader}"));
        let lead = c.nodes[leader].clone();
        // Hand-off.
        let held = c.nodes[0].lock(LOCK).await.expect("holder");
        let gaps = Arc::new(Mutex::new((Instant::now(), histogram(), Instant::now())));
        let mut tasks = Vec::new();
        for i in 0..w {
            let (node, gaps) = (c.nodes[i % 3].clone(), gaps.clone());
            tasks.push(tokio::spawn(async move {
                if let Ok(Ok(g)) = tokio::time::timeout(BOUND, node.lock(LOCK)).await {
                    {
                        let mut s = gaps.lock();
                        let now = Instant::now();
                        let gap = now - s.0;
                        record(&mut s.1, gap);
                        s.0 = now;
                        s.2 = now;
                    }
                    let _ = g.unlock().await;
                }
            }));
        }
        let queue_s = until(&lead, |n| n >= w).await.as_secs_f64();
        let c0 = cpu();
        let t0 = Instant::now();
        gaps.lock().0 = t0;
        let _ = held.unlock().await;
        for t in tasks {
            let _ = tokio::time::timeout(BOUND, t).await;
        }
        let handoff_cpu = cpu().saturating_sub(c0);
        let (gap_p50_ms, gap_p99_ms, last) = {
            let s = gaps.lock();
            (ms(&s.1, 0.5), ms(&s.1, 0.99), s.2)
        };
        let span = last.saturating_duration_since(t0).as_secs_f64().max(1e-9);

        // Mass time-out: the same deadline for every waiter.
        let held = c.nodes[0].lock(LOCK).await.expect("holder");
        let ahead = Duration::from_secs_f64((3.0 * queue_s + 1.0).max(2.0));
        let deadline = Instant::now() + ahead;
        let mut tasks = Vec::new();
        for i in 0..w {
            let node = c.nodes[i % 3].clone();
            tasks.push(tokio::spawn(async move {
                let left = deadline.saturating_duration_since(Instant::now());
                let r = node.lock_timeout(LOCK, left).await;
                (Instant::now(), matches!(r, Err(Error::Timeout)))
            }));
        }
        let queued = until(&lead, |n| n >= w).await;
        let late = if queued >= ahead {
            w.saturating_sub(waiters(&lead).await.unwrap_or(0))
        } else {
            0
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
        let c0 = cpu();
        let (mut answered, mut not_timeout) = (deadline, 0);
        for t in tasks {
            match tokio::time::timeout(BOUND, t).await {
                Ok(Ok((at, true))) => answered = answered.max(at),
                _ => not_timeout += 1,
            }
        }
        until(&lead, |n| n == 0).await;
        let drained = Instant::now();
        let timeout_cpu = cpu().saturating_sub(c0);
        let _ = held.unlock().await;
        out.push(Run {
            queue_s,
            handoffs_per_s: w as f64 / span,
            gap_p50_ms,
            gap_p99_ms,
            handoff_cpu_us: handoff_cpu.as_secs_f64() * 1e6 / w as f64,
            answered_ms: answered.saturating_duration_since(deadline).as_secs_f64() * 1e3,
            drained_ms: drained.saturating_duration_since(deadline).as_secs_f64() * 1e3,
            timeout_cpu_ms: timeout_cpu.as_secs_f64() * 1e3,
            late,
            not_timeout,
        });
    }
    c.kill().await;
    out
}
