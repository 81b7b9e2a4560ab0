//! The cluster load benchmark: a 3-node peerlock cluster on 127.0.0.1 over
//! real QUIC, in one process, and the workloads of PERFORMANCE.md:
//!
//! - **U**  one client on one name, acquire -> release loop (pairs/s, p50/p99 per pair),
//!   with the client on the leader and on a follower;
//! - **C**  16 clients on one name (critical sections/s);
//! - **M**  64 clients, each on its own name (pairs/s).
//!
//! ```text
//! cargo bench --bench cluster_load                 # 10 s per workload, 3 runs each
//! PEERLOCK_BENCH_SECS=3 PEERLOCK_BENCH_RUNS=1 cargo bench --bench cluster_load
//! ```
//! Prints the median and range of the runs, ready for the README table.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock::certs::ClusterCa;
use peerlock::Node;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn cluster(data: Option<&std::path::Path>) -> Vec<Node> {
    let ca = ClusterCa::generate("bench").expect("CA");
    let socks: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let addrs: Vec<_> = socks
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect();
    let mut starts = Vec::new();
    for (i, s) in socks.into_iter().enumerate() {
        let tls = ca
            .issue_node(&format!("bench-{i}"), &["127.0.0.1"])
            .expect("cert");
        let b = Node::builder().socket(s).peers(addrs.clone()).tls(tls);
        let b = match data {
            Some(dir) => b.data_dir(dir.join(format!("node-{i}"))),
            None => b.in_memory(),
        };
        starts.push(tokio::spawn(b.start()));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.expect("join").expect("start"));
    }
    for n in &nodes {
        tokio::time::timeout(Duration::from_secs(30), n.ready())
            .await
            .expect("ready")
            .expect("ready");
    }
    nodes
}

struct RunResult {
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `clients` loops for `secs`; client `i` runs on `nodes[place(i)]`
/// with lock name `name(i)`.
async fn run(
    nodes: &[Node],
    clients: usize,
    secs: u64,
    place: impl Fn(usize) -> usize,
    name: impl Fn(usize) -> String,
) -> RunResult {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let node = nodes[place(i)].clone();
        let lock = name(i);
        let (stop, count) = (stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match node.lock(&lock).await {
                    Ok(g) => {
                        let _ = g.unlock().await;
                        lat.push(t.elapsed());
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("lock failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            lat
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let done = count.load(Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() - 1) as f64 * p).round() as usize;
        lat[i.min(lat.len() - 1)].as_secs_f64() * 1e3
    };
    RunResult {
        ops_per_sec: done as f64 / elapsed,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

/// This process's CPU time (user + system), from /proc (Linux only).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in clock ticks of 1/100 s on every common configuration.
    Some(Duration::from_millis(ticks * 10))
}

/// 4 KiB write + fdatasync latency on the disk under `dir` (p50, p99).
fn fsync_latency(dir: &std::path::Path) -> (f64, f64) {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let Ok(mut f) = std::fs::File::create(&path) else {
        return (0.0, 0.0);
    };
    let block = [0u8; 4096];
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        if f.write_all(&block).and_then(|()| f.sync_data()).is_err() {
            break;
        }
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let _ = std::fs::remove_file(&path);
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let pct = |p: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (pct(0.5), pct(0.99))
}

/// This process's resident set size in MiB, from /proc (Linux only).
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Idle cost: three nodes in this process doing nothing but ticks,
/// heartbeats and keepalives.
async fn idle(secs: u64) {
    let nodes = cluster(None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (Some(c0), t0) = (cpu_time(), Instant::now()) else {
        println!("idle: /proc not available");
        return;
    };
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (Some(c1), wall) = (cpu_time(), t0.elapsed()) else {
        return;
    };
    let per_node = (c1 - c0).as_secs_f64() / wall.as_secs_f64() / 3.0 * 100.0;
    println!(
        "idle: {per_node:.2} % of one core per node; process RSS with 3 nodes {:.1} MiB",
        rss_mib().unwrap_or(0.0)
    );
    for n in &nodes {
        let _ = n.shutdown().await;
    }
}

fn summary(label: &str, runs: &[RunResult]) {
    let med = |f: &dyn Fn(&RunResult) -> f64| -> (f64, f64, f64) {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (ops, lo, hi) = med(&|r| r.ops_per_sec);
    let (p50, _, _) = med(&|r| r.p50_ms);
    let (p99, _, _) = med(&|r| r.p99_ms);
    println!(
        "{label:<34} {ops:>9.0} /s  (range {lo:.0}-{hi:.0})   p50 {p50:.2} ms  p99 {p99:.2} ms"
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful: run a token workload then, so the target stays checked.
    let quick = std::env::args().any(|a| a == "--test");
    let secs = if quick {
        1
    } else {
        env_u64("PEERLOCK_BENCH_SECS", 10)
    };
    let runs = if quick {
        1
    } else {
        env_u64("PEERLOCK_BENCH_RUNS", 3) as usize
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "peerlock cluster_load: 3 nodes on 127.0.0.1, {secs} s x {runs} runs per workload"
        );
        // Idle first, in a fresh process, so its memory figure is not the
        // allocator's leftovers from the load runs.
        idle(secs).await;
        if std::env::var("PEERLOCK_BENCH_ONLY").is_ok_and(|v| v == "idle") {
            return;
        }
        let base = tempfile::tempdir_in(
            std::env::var("PEERLOCK_BENCH_DIR")
                .unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
        )
        .expect("bench data dir");
        let (f50, f99) = fsync_latency(base.path());
        println!("this disk: 4 KiB write + fdatasync p50 {f50:.3} ms, p99 {f99:.3} ms");
        for durable in [false, true] {
            let mut results: Vec<(&str, Vec<RunResult>)> = Vec::new();
            for r in 0..runs {
                let dir = base.path().join(format!("run-{r}"));
                let nodes = cluster(durable.then_some(dir.as_path())).await;
                let leader = nodes
                    .iter()
                    .position(|n| n.status().is_leader())
                    .unwrap_or(0);
                let follower = (leader + 1) % 3;
                let rows: [(&str, RunResult); 4] = [
                    (
                        "U  1 client, leader",
                        run(&nodes, 1, secs, |_| leader, |_| "u".into()).await,
                    ),
                    (
                        "U  1 client, follower",
                        run(&nodes, 1, secs, |_| follower, |_| "uf".into()).await,
                    ),
                    (
                        "C  16 clients, one name",
                        run(&nodes, 16, secs, |i| i % 3, |_| "c".into()).await,
                    ),
                    (
                        "M  64 clients, own names",
                        run(&nodes, 64, secs, |i| i % 3, |i| format!("m/{i}")).await,
                    ),
                ];
                for (i, (label, res)) in rows.into_iter().enumerate() {
                    if r == 0 {
                        results.push((label, Vec::new()));
                    }
                    results[i].1.push(res);
                }
                for n in &nodes {
                    let _ = n.shutdown().await;
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
            println!(
                "\n{} log:",
                if durable {
                    "durable (data_dir, fsync per Raft Ready)"
                } else {
                    "in-memory"
                }
            );
            for (label, rs) in &results {
                summary(label, rs);
            }
        }
    });
}
