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
//! Prints the median and range of the runs, ready for the README table,
//! and, measured in the same run, the floor the goals of issue 10 are set
//! against: floor = 2 x (loopback QUIC round trip + 4 KiB write+fdatasync
//! p50). Each workload's figure is printed as a ratio to its goal.
//!
//! `PEERLOCK_BENCH_QUICK=1` (or `cargo test --benches`) is a smoke run for
//! CI: 1 s windows, one run, every part (idle, floor, U, C, M in both modes,
//! and a 5-pair timeline), in well under a minute; it asserts nothing
//! about speed (issue 10, "Rules").
//!
//! `PEERLOCK_BENCH_ONLY=idle|floor|U|C|M|timeline` runs one part (for
//! profiles: `perf record` on the binary with `PEERLOCK_BENCH_ONLY=M`, and
//! `PEERLOCK_BENCH_MODE=memory|durable` for one mode);
//! `timeline` prints where the time of one durable U pair goes (see
//! `benches/timeline.rs`).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock::certs::ClusterCa;
use peerlock::Node;

#[path = "cluster_load/floor.rs"]
mod floor;
#[path = "cluster_load/timeline.rs"]
mod timeline;

use floor::{cpu_time, Floor};

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
    /// CPU of the whole process (3 nodes and the clients) per pair, in µs.
    cpu_us: f64,
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
    let (t0, c0, n0) = (Instant::now(), cpu_time(), count.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (c1, n1) = (cpu_time(), count.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let done = count.load(Ordering::Relaxed);
    let cpu_us = match (c0, c1) {
        (Some(a), Some(b)) if n1 > n0 => (b - a).as_secs_f64() * 1e6 / (n1 - n0) as f64,
        _ => 0.0,
    };
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
        cpu_us,
    }
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
async fn idle(secs: u64, quick: bool) {
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
    stop(&nodes, quick).await;
}

/// Stops the nodes: gracefully, or, in the smoke run, by a kill (a graceful
/// leave waits seconds for a membership change, the smoke run's largest cost).
async fn stop(nodes: &[Node], quick: bool) {
    for n in nodes {
        if quick {
            peerlock::testing::crash(n).await;
        } else {
            let _ = n.shutdown().await;
        }
    }
}

/// Prints a row and returns its medians (pairs/s, p50, p99, CPU µs/pair).
fn summary(label: &str, runs: &[RunResult]) -> (f64, f64, f64, f64) {
    let med = |f: &dyn Fn(&RunResult) -> f64| -> (f64, f64, f64) {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (ops, lo, hi) = med(&|r| r.ops_per_sec);
    let (p50, _, _) = med(&|r| r.p50_ms);
    let (p99, _, _) = med(&|r| r.p99_ms);
    let (cpu, clo, chi) = med(&|r| r.cpu_us);
    if hi == 0.0 {
        // Not run (PEERLOCK_BENCH_ONLY).
        return (ops, p50, p99, cpu);
    }
    println!(
        "{label:<34} {ops:>9.0} /s  (range {lo:.0}-{hi:.0})   p50 {p50:.2} ms  p99 {p99:.2} ms   CPU {cpu:.0} µs/pair ({clo:.0}-{chi:.0})"
    );
    (ops, p50, p99, cpu)
}

/// Each workload against its goal (issue 10), from the floor of this run.
/// A ratio >= 1 meets the goal (for U: floor / p50 against 1 / 1.1).
fn against_goals(durable: bool, f: &Floor, rows: &[(f64, f64, f64, f64)]) {
    let [u, uf, c, m] = rows else { return };
    if durable && u.0 > 0.0 {
        println!(
            "  vs floor: U p50 {:.2} ms = {:.2} x floor {:.2} ms (goal <= 1.10; p99/p50 {:.2}, goal <= 2)",
            u.1,
            u.1 / f.pair_ms(),
            f.pair_ms(),
            u.2 / u.1.max(1e-9)
        );
        println!(
            "            U follower p50 {:.2} ms - leader {:.2} ms = {:.2} RTT (goal <= 1)",
            uf.1,
            u.1,
            (uf.1 - u.1) / f.rtt_ms.max(1e-9)
        );
        println!(
            "            C {:.0} /s = {:.2} x goal {:.0} /s (0.8 / (RTT + fsync))",
            c.0,
            c.0 / f.c_goal(),
            f.c_goal()
        );
    } else if u.0 > 0.0 {
        println!(
            "  vs floor: U p50 {:.2} ms = {:.2} x 2 RTT {:.2} ms (no fsync in memory)",
            u.1,
            u.1 / f.mem_pair_ms().max(1e-9),
            f.mem_pair_ms(),
        );
    }
    if m.0 == 0.0 {
        return;
    }
    println!(
        "            M {:.0} pairs/s = {:.2} x goal 25 000; CPU {:.0} µs/pair = {:.2} x goal 40 µs",
        m.0,
        m.0 / 25_000.0,
        m.3,
        m.3 / 40.0
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful: run a token workload then, so the target stays checked.
    // Without either (the binary run by hand, under `perf record`), the
    // full windows, unless PEERLOCK_BENCH_QUICK asks for the smoke run.
    let quick = std::env::args().any(|a| a == "--test")
        || std::env::var("PEERLOCK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
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
    let only = std::env::var("PEERLOCK_BENCH_ONLY").unwrap_or_default();
    let wants = |part: &str| only.is_empty() || only.eq_ignore_ascii_case(part);
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
        if wants("idle") {
            idle(secs, quick).await;
        }
        let base = tempfile::tempdir_in(
            std::env::var("PEERLOCK_BENCH_DIR")
                .unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
        )
        .expect("bench data dir");
        if only.eq_ignore_ascii_case("timeline") {
            timeline::run(base.path(), 50).await;
            return;
        }
        if only.eq_ignore_ascii_case("idle") {
            return;
        }
        let fl = floor::measure(base.path()).await;
        if only.eq_ignore_ascii_case("floor") {
            return;
        }
        let mut mem_rows: Vec<f64> = Vec::new();
        // PEERLOCK_BENCH_MODE=memory|durable runs one mode (for profiles).
        let mode = std::env::var("PEERLOCK_BENCH_MODE").unwrap_or_default();
        for durable in [false, true] {
            if (durable && mode == "memory") || (!durable && mode == "durable") {
                continue;
            }
            let mut results: Vec<(&str, Vec<RunResult>)> = Vec::new();
            // The disk comes in bursts: the floor is taken again before
            // every durable run, and the goals use the median of them.
            let mut floors = vec![fl];
            for r in 0..runs {
                if durable {
                    floors.push(floor::measure(base.path()).await);
                }
                let dir = base.path().join(format!("run-{r}"));
                let nodes = cluster(durable.then_some(dir.as_path())).await;
                let leader = nodes
                    .iter()
                    .position(|n| n.status().is_leader())
                    .unwrap_or(0);
                let follower = (leader + 1) % 3;
                let skip = || RunResult {
                    ops_per_sec: 0.0,
                    p50_ms: 0.0,
                    p99_ms: 0.0,
                    cpu_us: 0.0,
                };
                let mut rows: Vec<(&str, RunResult)> = Vec::new();
                let (u, c, m) = (wants("U"), wants("C"), wants("M"));
                rows.push(("U  1 client, leader", if u { run(&nodes, 1, secs, |_| leader, |_| "u".into()).await } else { skip() }));
                rows.push(("U  1 client, follower", if u { run(&nodes, 1, secs, |_| follower, |_| "uf".into()).await } else { skip() }));
                rows.push(("C  16 clients, one name", if c { run(&nodes, 16, secs, |i| i % 3, |_| "c".into()).await } else { skip() }));
                rows.push(("M  64 clients, own names", if m { run(&nodes, 64, secs, |i| i % 3, |i| format!("m/{i}")).await } else { skip() }));
                for (i, (label, res)) in rows.into_iter().enumerate() {
                    if r == 0 {
                        results.push((label, Vec::new()));
                    }
                    results[i].1.push(res);
                }
                stop(&nodes, quick).await;
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
            let medians: Vec<_> = results.iter().map(|(label, rs)| summary(label, rs)).collect();
            if durable {
                let durable_ops: Vec<f64> = medians.iter().map(|m| m.0).collect();
                let fl = floor::median(&floors);
                println!(
                    "  median floor of the {} measures: RTT {:.3} ms + fsync {:.3} ms; U pair floor {:.3} ms",
                    floors.len(),
                    fl.rtt_ms,
                    fl.fsync_ms,
                    fl.pair_ms()
                );
                against_goals(true, &fl, &medians);
                // The in-memory rows against the durable ones of this run.
                let mem = std::mem::take(&mut mem_rows);
                if mem.len() == 4 {
                    let mem_u = mem.first().copied().unwrap_or(0.0);
                    let mem_c = mem.get(2).copied().unwrap_or(0.0);
                    println!(
                        "  in-memory / durable: U {:.2}, C {:.2} (goal >= 3)",
                        mem_u / durable_ops.first().copied().unwrap_or(1.0).max(1e-9),
                        mem_c / durable_ops.get(2).copied().unwrap_or(1.0).max(1e-9),
                    );
                }
            } else {
                against_goals(false, &fl, &medians);
                mem_rows = medians.iter().map(|m| m.0).collect();
            }
        }
        // The smoke run also goes through the timeline (it installs the
        // process's tracing subscriber, so it comes last).
        if quick && only.is_empty() {
            println!();
            timeline::run(base.path(), 5).await;
        }
    });
}
