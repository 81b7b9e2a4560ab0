//! One size of the `locks` curve on a durable 3-node cluster, in a fresh
//! process: fill it with `n` held locks, measure the RSS growth, U and M
//! throughput with them held, then kill every node and time the cold
//! restart from the data directories.
//!
//! The fill is the fastest honest way through the public API: 256
//! concurrent `try_lock` callers on each of the three nodes (three sessions,
//! 768 calls in flight, well under the 4 096 a node admits), each keeping
//! its guards; the leader batches the proposals into few Raft entries per
//! fsync.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock::{LockGuard, Node};

use super::cluster::{dir_bytes, histogram, med, ms, record, rss_bytes, Cluster};
use super::name;

/// What one cluster point measured.
pub struct ClusterPoint {
    pub fill_s: f64,
    /// Process RSS growth over the fill / n / 3 nodes.
    pub bytes_per_lock_node: f64,
    /// The three data directories after the fill, bytes per lock per node.
    pub disk_per_lock_node: f64,
    /// U pairs/s (median, min, max over runs) and p50 ms (median).
    pub u: (f64, f64, f64),
    pub u_p50: f64,
    /// M pairs/s (median, min, max) and p50 ms.
    pub m: (f64, f64, f64),
    pub m_p50: f64,
    /// Cold restart: until every node is ready, and until a held name
    /// answers Busy on try_lock (negative when it answered free).
    pub ready_s: f64,
    pub busy_s: f64,
    /// Guards whose lease was gone after the load (a session expired:
    /// the point is then not what it claims).
    pub lost: usize,
    /// Raft term rises from the fill's start to the kill (elections).
    pub elections: u64,
    /// Locks the fill took within its bound (n when clean).
    pub filled: usize,
}

const CALLERS_PER_NODE: usize = 256;
/// No fill may take longer than this.
const FILL_BOUND: Duration = Duration::from_secs(600);

async fn fill(nodes: &[Node], n: usize, len: usize) -> Vec<LockGuard> {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + FILL_BOUND;
    let mut tasks = Vec::new();
    for c in 0..CALLERS_PER_NODE * nodes.len() {
        let (node, next) = (nodes[c % nodes.len()].clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut held = Vec::new();
            let mut i = next.fetch_add(1, Ordering::Relaxed);
            while i < n && Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_secs(60), node.try_lock(&name(i, len)))
                    .await
                {
                    Ok(Ok(Some(g))) => {
                        held.push(g);
                        i = next.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok(None)) => panic!("fresh name {i} was busy"),
                    // A transient NoQuorum or a slow answer: ask again.
                    Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            held
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    if all.len() < n {
        eprintln!(
            "locks {n} x {len} B: only {} filled within {FILL_BOUND:?}",
            all.len()
        );
    }
    all
}

/// As many callers as the fill take and release a lock each, so what the
/// fill's concurrency costs (task slots, buffers) is in the baseline RSS
/// and not counted per lock: at 1 000 locks it would dominate.
async fn warm_up(nodes: &[Node]) {
    let mut tasks = Vec::new();
    for c in 0..CALLERS_PER_NODE * nodes.len() {
        let node = nodes[c % nodes.len()].clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("warm-{c}");
            let call = node.try_lock(&name);
            if let Ok(Ok(Some(g))) = tokio::time::timeout(Duration::from_secs(30), call).await {
                let _ = g.unlock().await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// `clients` loops of acquire -> release for `secs`; client `i` on node
/// `i % 3` (U: one client on the leader), on a fresh name every pair (U)
/// or its own name (M). Returns pairs/s and p50 ms.
async fn load(nodes: &[Node], leader: usize, clients: usize, secs: u64, tag: &str) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let node = nodes[if clients == 1 {
            leader
        } else {
            c % nodes.len()
        }]
        .clone();
        let (stop, count, tag) = (stop.clone(), count.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let lock = if clients == 1 {
                    format!("{tag}/{k}")
                } else {
                    format!("{tag}/{c}")
                };
                k += 1;
                let t = Instant::now();
                match tokio::time::timeout(Duration::from_secs(10), node.lock(&lock)).await {
                    Ok(Ok(g)) => {
                        let _ = g.unlock().await;
                        record(&mut h, t.elapsed());
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            h
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let done = count.load(Ordering::Relaxed);
    let rate = done as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut h = histogram();
    for t in tasks {
        if let Ok(Ok(th)) = tokio::time::timeout(Duration::from_secs(15), t).await {
            let _ = h.add(th);
        }
    }
    (rate, ms(&h, 0.5))
}

/// Runs the point in this process (a child of the curve).
pub async fn measure(n: usize, len: usize, secs: u64, runs: usize) -> ClusterPoint {
    let base = tempfile::tempdir_in(
        std::env::var("PEERLOCK_BENCH_DIR")
            .unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
    )
    .expect("bench data dir");
    let mut c = Cluster::start(Some(base.path()), None).await;
    warm_up(&c.nodes).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss0 = rss_bytes();
    let term0 = c.nodes[0].status().term;
    let at = Instant::now();
    let guards = fill(&c.nodes, n, len).await;
    let fill_s = at.elapsed().as_secs_f64();
    let filled = guards.len();
    // Let compaction and the followers settle before reading RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_bytes();
    let dirs = c.dirs.clone().unwrap_or_default();
    let disk: u64 = dirs.iter().map(|d| dir_bytes(d)).sum();
    let leader = c.leader();
    let (mut u, mut up, mut m, mut mp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..runs.max(1) {
        let (rate, p50) = load(&c.nodes, leader, 1, secs, &format!("u{r}")).await;
        u.push(rate);
        up.push(p50);
        let (rate, p50) = load(&c.nodes, leader, 64, secs, &format!("m{r}")).await;
        m.push(rate);
        mp.push(p50);
    }
    let lost = guards.iter().filter(|g| !g.is_held()).count();
    let elections = c.nodes[0].status().term.saturating_sub(term0);
    if lost > 0 || elections > 0 {
        eprintln!(
            "locks {n} x {len} B: {lost} guards lost, {elections} term changes during the point"
        );
    }
    let probe = guards
        .first()
        .map(|g| g.name().to_string())
        .unwrap_or_default();
    // Crash every node first: a guard dropped while its node runs would
    // release its lock.
    c.kill().await;
    drop(guards);
    let at = Instant::now();
    c.restart().await;
    let ready_s = at.elapsed().as_secs_f64();
    let node = c.nodes[0].clone();
    let busy_s = loop {
        if at.elapsed() > super::cluster::START_BOUND {
            break f64::NAN;
        }
        match tokio::time::timeout(Duration::from_secs(10), node.try_lock(&probe)).await {
            Ok(Ok(None)) => break at.elapsed().as_secs_f64(),
            Ok(Ok(Some(_))) => break -at.elapsed().as_secs_f64(),
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    c.kill().await;
    ClusterPoint {
        fill_s,
        bytes_per_lock_node: rss1.saturating_sub(rss0) as f64 / filled.max(1) as f64 / 3.0,
        disk_per_lock_node: disk as f64 / filled.max(1) as f64 / 3.0,
        u: med(&u),
        u_p50: med(&up).0,
        m: med(&m),
        m_p50: med(&mp).0,
        ready_s,
        busy_s,
        lost,
        elections,
        filled,
    }
}
