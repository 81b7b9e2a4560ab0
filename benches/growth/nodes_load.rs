//! The acquire -> release loop the `clients` and `nodes` curves measure:
//! `clients` tasks, each on its own lock name (or the names the caller
//! gives), each on the node the caller places it on, pairs counted only
//! inside the measured window, after a warm-up (sessions, connections and
//! each name's first grant). Latency per pair (acquire + release) goes to
//! an hdrhistogram, sharded so thousands of clients neither contend on one
//! lock nor carry a histogram each.
//!
//! Every pair is bounded by [`PAIR_TIMEOUT`] (a pair that takes longer is
//! an error), and the tasks are stopped, or aborted, within a bound after
//! the window: no loop here runs unbounded.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::task::JoinSet;

use crate::nodes_cluster::Cluster;
use crate::nodes_probe::process_cpu;

/// A pair slower than this counts as an error.
const PAIR_TIMEOUT: Duration = Duration::from_secs(10);
const SHARDS: usize = 16;
const WARM: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// One measured window.
#[derive(Clone, Debug, Default)]
pub struct Window {
    pub pairs: u64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Failed or timed-out pairs during warm-up and window.
    pub errors: u64,
    /// Whether the leader was the same node, in the same term, at both ends.
    pub stable: bool,
    /// The leader's applied-index delta over the window.
    pub commits: u64,
    /// The leader's CPU over the window (zero if it has no runtime of its own).
    pub leader_cpu: Duration,
    /// The whole process's CPU over the window (every node and the clients).
    pub process_cpu: Duration,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Runs the loop: client `i` on node `place(i)`, lock `name(i)`.
pub async fn pairs(
    c: &Cluster,
    clients: usize,
    place: impl Fn(usize) -> usize,
    name: impl Fn(usize) -> String,
    warmup: Duration,
    window: Duration,
) -> Window {
    let phase = Arc::new(AtomicU8::new(WARM));
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let hists: Arc<Vec<Mutex<Histogram<u64>>>> =
        Arc::new((0..SHARDS).map(|_| Mutex::new(histogram())).collect());
    let mut tasks = JoinSet::new();
    for i in 0..clients {
        let node = c.nodes[place(i) % c.nodes.len()].clone();
        let lock = name(i);
        let (phase, count, errors, hists) =
            (phase.clone(), count.clone(), errors.clone(), hists.clone());
        tasks.spawn(async move {
            loop {
                let p = phase.load(Ordering::Relaxed);
                if p == STOP {
                    break;
                }
                let t = Instant::now();
                let pair = tokio::time::timeout(PAIR_TIMEOUT, async {
                    let g = node.lock(&lock).await?;
                    g.unlock().await
                })
                .await;
                match pair {
                    Ok(Ok(())) => {
                        if p == MEASURE && phase.load(Ordering::Relaxed) == MEASURE {
                            hists[i % SHARDS]
                                .lock()
                                .saturating_record(t.elapsed().as_micros() as u64);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    other => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            match other {
                                Ok(Err(e)) => eprintln!("pair failed: {e}"),
                                _ => eprintln!("pair took over {PAIR_TIMEOUT:?}"),
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    tokio::time::sleep(warmup).await;
    let before = c.leader_status();
    let leader = before.as_ref().map(|(i, _)| *i);
    let leader_cpu = |l: Option<usize>| {
        l.and_then(|i| c.rts.get(i))
            .map(|r| r.cpu())
            .unwrap_or_default()
    };
    let (cpu0, proc0) = (leader_cpu(leader), process_cpu().unwrap_or_default());
    let (n0, t0) = (count.load(Ordering::Relaxed), Instant::now());
    phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(window).await;
    phase.store(STOP, Ordering::Relaxed);
    let wall = t0.elapsed();
    let done = count.load(Ordering::Relaxed) - n0;
    let (cpu1, proc1) = (leader_cpu(leader), process_cpu().unwrap_or_default());
    let after = leader.map(|i| c.nodes[i].status());
    // Every pair in flight ends within PAIR_TIMEOUT; give it that, then abort.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(PAIR_TIMEOUT + Duration::from_secs(1), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    let mut hist = histogram();
    for h in hists.iter() {
        let _ = hist.add(&*h.lock());
    }
    let (stable, commits) = match (&before, &after) {
        (Some((_, s0)), Some(s1)) => (
            s1.is_leader() && s1.term == s0.term,
            s1.applied_index.saturating_sub(s0.applied_index),
        ),
        _ => (false, 0),
    };
    Window {
        pairs: done,
        per_sec: done as f64 / wall.as_secs_f64(),
        p50_ms: hist.value_at_quantile(0.5) as f64 / 1e3,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1e3,
        errors: errors.load(Ordering::Relaxed),
        stable,
        commits,
        leader_cpu: cpu1.saturating_sub(cpu0),
        process_cpu: proc1.saturating_sub(proc0),
    }
}

/// Median, minimum and maximum of one figure over the runs.
pub fn stat<T>(xs: &[T], f: impl Fn(&T) -> f64) -> (f64, f64, f64) {
    let mut v: Vec<f64> = xs.iter().map(f).collect();
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}
