//! The scale benchmark (issue 9, "Scale"): workload **M** (64 clients, each
//! on its own name, acquire -> release pairs, clients spread over every
//! node) on 25 peerlock nodes (5 voters + 20 learners) and, in the same run,
//! on 3 nodes, with the leader's CPU per commit next to the throughput.
//!
//! ```text
//! cargo bench --bench scale                        # 10 s windows, 3 runs per size
//! PEERLOCK_BENCH_SECS=3 PEERLOCK_BENCH_RUNS=1 cargo bench --bench scale
//! ```
//!
//! Every node binds 127.0.0.1 and talks real QUIC with mutual TLS; storage
//! is in-memory by default (as cluster_load's in-memory rows), so the
//! figures are the cost of Raft, the lock machine and the transport,
//! without fsync noise; `PEERLOCK_BENCH_DURABLE=1` gives every node a data
//! directory under `PEERLOCK_BENCH_DIR` (default: the temp dir) instead.
//!
//! **Why nodes run in this process, each on a runtime of its own, rather
//! than as `examples/node` processes.** The node example answers its stdin
//! one command at a time (a `lock` waits before the next line is read), so
//! a process carries one client at a time: 3 processes cannot carry 64
//! concurrent clients, and workload M through them would measure the pipes
//! and the serialisation, not peerlock. So each node gets its own tokio
//! runtime (its own worker threads; the node's driver, transport and QUIC
//! endpoint run there, since everything the node spawns inherits the
//! runtime it was started on), and the clients run on the main runtime.
//! Each node runtime records its threads' ids as they start, and the
//! leader's CPU is the sum of utime + stime of its threads from
//! `/proc/self/task/<tid>/stat`, read before and after the measured window.
//! Commits in the window are the leader's applied-index delta. Blocking
//! threads are kept alive for the whole run so none of them exits (and
//! takes its CPU figure with it) inside a window.
//!
//! A third row holds 3 nodes to the pair rate the 25 reached in the same
//! run: per-commit CPU falls as more entries share one message, so only
//! the ratio at equal rate is the learners' fan-out cost. "Other nodes" is
//! the mean CPU per commit of every node but the leader; it includes
//! serving that node's share of the clients (64/n each).
//!
//! Before the load, 3 s idle give the leader's and the other nodes' idle
//! CPU (ticks, heartbeats to every member, keepalives). Each window opens
//! after a 1 s warm-up under load (sessions, connections
//! and the lock names' first grants), and the leader must be the same node,
//! in the same term, at both ends; otherwise the row says so.
//!
//! Environment: `PEERLOCK_BENCH_SECS` (window, default 10),
//! `PEERLOCK_BENCH_RUNS` (default 3; the rows alternate within a run),
//! `PEERLOCK_BENCH_NODES` (the large size, default 25),
//! `PEERLOCK_BENCH_NODE_THREADS` (worker threads per node runtime, default 2),
//! `PEERLOCK_BENCH_DURABLE=1` and `PEERLOCK_BENCH_DIR` (see above).
//! Without `--bench` (as `cargo test --benches` runs it) one 1 s window per
//! row.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use peerlock::certs::ClusterCa;
use peerlock::{MemberRole, Node};

// Not `benches/cpu.rs`: cargo would take that for a benchmark of its own.
#[path = "scale/cpu.rs"]
mod cpu;
use cpu::{process_ticks, NodeRuntime, TICK};

const CLIENTS: usize = 64;
const WARMUP: Duration = Duration::from_secs(1);
/// The idle window before the load: ticks, heartbeats and keepalives only.
const IDLE: Duration = Duration::from_secs(3);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Cluster {
    nodes: Vec<Node>,
    rts: Vec<NodeRuntime>,
}

/// `n` nodes (in-memory, or durable under `data`) founded together with
/// `max_voters(5)`: the first 5 (or all, if fewer) vote, the rest are
/// learners from the start. Returns once every node is ready and the
/// leader sees every member live.
async fn cluster(n: usize, threads: usize, data: Option<&std::path::Path>) -> Cluster {
    let ca = ClusterCa::generate("scale").expect("CA");
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let addrs: Vec<_> = socks
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect();
    let rts: Vec<NodeRuntime> = (0..n).map(|i| NodeRuntime::new(i, threads)).collect();
    let mut starts = Vec::new();
    for (i, s) in socks.into_iter().enumerate() {
        let tls = ca
            .issue_node(&format!("scale-{i}"), &["127.0.0.1"])
            .expect("cert");
        let b = Node::builder()
            .socket(s)
            .peers(addrs.clone())
            .tls(tls)
            .max_voters(5);
        let b = match data {
            Some(dir) => b.data_dir(dir.join(format!("node-{i}"))),
            None => b.in_memory(),
        };
        starts.push(rts[i].rt.spawn(b.start()));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.expect("join").expect("start"));
    }
    for n in &nodes {
        tokio::time::timeout(Duration::from_secs(60), n.ready())
            .await
            .expect("ready in 60 s")
            .expect("ready");
    }
    let voters = n.min(5);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let formed = nodes.iter().map(Node::status).any(|s| {
            s.is_leader()
                && s.members.len() == n
                && s.members
                    .iter()
                    .filter(|m| m.role == MemberRole::Voter)
                    .count()
                    == voters
                && s.members.iter().all(|m| m.live == Some(true))
        });
        if formed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} nodes: no leader seeing {voters} voters and every member live within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Cluster { nodes, rts }
}

impl Cluster {
    /// Kills every node (a crash: a benchmark has nothing to hand over,
    /// and 25 graceful leaves would each wait for a membership change),
    /// then drops the runtimes without blocking.
    async fn stop(self) {
        let kills: Vec<_> = self.nodes.iter().map(peerlock::testing::crash).collect();
        let _ = tokio::time::timeout(Duration::from_secs(10), await_each(kills)).await;
        drop(self.nodes);
        for r in self.rts {
            r.rt.shutdown_background();
        }
    }
}

/// Awaits every future, one after another (a kill is quick; the whole is
/// bounded by the caller's timeout).
async fn await_each<F: std::future::Future<Output = ()>>(fs: Vec<F>) {
    for f in fs {
        f.await;
    }
}

/// One measured window.
struct Window {
    pairs: u64,
    pairs_per_sec: f64,
    acquire_p50_ms: f64,
    acquire_p99_ms: f64,
    commits: u64,
    leader_cpu_per_commit_us: f64,
    leader_cpu_per_pair_us: f64,
    leader_core_share: f64,
    leader_idle_share: f64,
    others_idle_share: f64,
    others_cpu_per_commit_us: f64,
    process_cpu_per_pair_us: f64,
    leader_stable: bool,
    errors: u64,
}

const WARM: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// Every runtime's CPU but the leader's, in ticks.
fn others_ticks(c: &Cluster, leader: usize) -> u64 {
    c.rts
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != leader)
        .map(|(_, r)| r.ticks())
        .sum()
}

/// Workload M on `c`: client `i` on node `i % n`, lock `m/i`. With
/// `rate`, the clients together start at most that many pairs per second
/// (each one pair per `CLIENTS / rate` s; a late client skips, never bursts).
async fn run(c: &Cluster, secs: u64, rate: Option<f64>) -> Window {
    let n = c.nodes.len();
    // Idle first: what the leader pays to lead n - 1 members doing nothing.
    let leader = c.nodes.iter().position(|n| n.status().is_leader());
    let leader = leader.unwrap_or(0);
    let (l0, o0, t0) = (
        c.rts[leader].ticks(),
        others_ticks(c, leader),
        Instant::now(),
    );
    tokio::time::sleep(IDLE).await;
    let idle_wall = t0.elapsed().as_secs_f64();
    let share = |ticks: u64| (TICK * ticks as u32).as_secs_f64() / idle_wall;
    let leader_idle_share = share(c.rts[leader].ticks().saturating_sub(l0));
    let others_idle_share =
        share(others_ticks(c, leader).saturating_sub(o0)) / (n - 1).max(1) as f64;
    let phase = Arc::new(AtomicU8::new(WARM));
    let pairs = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let node = c.nodes[i % n].clone();
        let lock = format!("m/{i}");
        let (phase, pairs, errors) = (phase.clone(), pairs.clone(), errors.clone());
        let mut pace = rate.map(|r| {
            let every = Duration::from_secs_f64(CLIENTS as f64 / r.max(1.0));
            // Clients spread evenly over one period.
            let start = tokio::time::Instant::now() + every.mul_f64(i as f64 / CLIENTS as f64);
            let mut t = tokio::time::interval_at(start, every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            t
        });
        tasks.push(tokio::spawn(async move {
            // 1 µs to 60 s, 3 significant digits.
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            loop {
                if let Some(t) = pace.as_mut() {
                    t.tick().await;
                }
                let p = phase.load(Ordering::Relaxed);
                if p == STOP {
                    break;
                }
                let t = Instant::now();
                match node.lock(&lock).await {
                    Ok(g) => {
                        let acquire = t.elapsed();
                        let released = g.unlock().await.is_ok();
                        if p == MEASURE && phase.load(Ordering::Relaxed) == MEASURE {
                            hist.saturating_record(acquire.as_micros() as u64);
                            if released {
                                pairs.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("lock failed: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            hist
        }));
    }
    tokio::time::sleep(WARMUP).await;
    let leader = c
        .nodes
        .iter()
        .position(|n| n.status().is_leader())
        .unwrap_or(0);
    let s0 = c.nodes[leader].status();
    let (cpu0, proc0) = (c.rts[leader].ticks(), process_ticks().unwrap_or(0));
    let others0 = others_ticks(c, leader);
    let (pairs0, t0) = (pairs.load(Ordering::Relaxed), Instant::now());
    phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    phase.store(STOP, Ordering::Relaxed);
    let wall = t0.elapsed();
    let done = pairs.load(Ordering::Relaxed) - pairs0;
    let (cpu1, proc1) = (c.rts[leader].ticks(), process_ticks().unwrap_or(0));
    let others1 = others_ticks(c, leader);
    let s1 = c.nodes[leader].status();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for t in tasks {
        if let Ok(h) = t.await {
            let _ = hist.add(h);
        }
    }
    let commits = s1.applied_index.saturating_sub(s0.applied_index);
    let cpu = TICK * (cpu1.saturating_sub(cpu0) as u32);
    let others = TICK * (others1.saturating_sub(others0) as u32);
    let all = TICK * (proc1.saturating_sub(proc0) as u32);
    let per = |d: Duration, k: u64| d.as_secs_f64() * 1e6 / k.max(1) as f64;
    Window {
        pairs: done,
        pairs_per_sec: done as f64 / wall.as_secs_f64(),
        acquire_p50_ms: hist.value_at_quantile(0.5) as f64 / 1e3,
        acquire_p99_ms: hist.value_at_quantile(0.99) as f64 / 1e3,
        commits,
        leader_cpu_per_commit_us: per(cpu, commits),
        leader_cpu_per_pair_us: per(cpu, done),
        leader_core_share: cpu.as_secs_f64() / wall.as_secs_f64(),
        leader_idle_share,
        others_idle_share,
        others_cpu_per_commit_us: per(others, commits) / (n - 1).max(1) as f64,
        process_cpu_per_pair_us: per(all, done),
        leader_stable: s1.is_leader() && s1.term == s0.term,
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Median and range of one figure over the runs.
fn stat(ws: &[Window], f: impl Fn(&Window) -> f64) -> (f64, f64, f64) {
    let mut v: Vec<f64> = ws.iter().map(f).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn print_window(label: &str, r: usize, w: &Window) {
    println!(
        "  run {r} {label:<8}: {:>7.0} pairs/s  acquire p50 {:.2} ms p99 {:.2} ms  \
         commits {} ({:.2}/pair)  leader {:.1} µs/commit {:.1} µs/pair ({:.0} % of a core)  \
         other nodes {:.1} µs/commit each  process {:.1} µs/pair  \
         idle: leader {:.1} %, others {:.2} % of a core each{}{}",
        w.pairs_per_sec,
        w.acquire_p50_ms,
        w.acquire_p99_ms,
        w.commits,
        w.commits as f64 / w.pairs.max(1) as f64,
        w.leader_cpu_per_commit_us,
        w.leader_cpu_per_pair_us,
        w.leader_core_share * 100.0,
        w.others_cpu_per_commit_us,
        w.process_cpu_per_pair_us,
        w.leader_idle_share * 100.0,
        w.others_idle_share * 100.0,
        if w.leader_stable {
            ""
        } else {
            "  LEADER CHANGED"
        },
        if w.errors > 0 {
            format!("  {} errors", w.errors)
        } else {
            String::new()
        },
    );
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`)
    // gets a token run so the target stays checked.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs = if quick {
        1
    } else {
        env_u64("PEERLOCK_BENCH_SECS", 10)
    };
    let runs = if quick {
        1
    } else {
        env_u64("PEERLOCK_BENCH_RUNS", 3).max(1) as usize
    };
    let large = env_u64("PEERLOCK_BENCH_NODES", 25).max(3) as usize;
    let threads = env_u64("PEERLOCK_BENCH_NODE_THREADS", 2).max(1) as usize;
    let sizes = [3, large];
    let durable = std::env::var("PEERLOCK_BENCH_DURABLE").is_ok_and(|v| v == "1");
    let storage = if durable {
        "durable (data_dir, fsync per Raft Ready)"
    } else {
        "in-memory"
    };
    let base = durable.then(|| {
        tempfile::tempdir_in(
            std::env::var("PEERLOCK_BENCH_DIR")
                .unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
        )
        .expect("bench data dir")
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "peerlock scale: workload M ({CLIENTS} clients, own names, spread over every node), \
             {storage}, 127.0.0.1, {secs} s x {runs} runs, sizes {sizes:?} \
             (max_voters 5), {threads} worker threads per node runtime"
        );
        // Row 3 is the 3-node cluster held to the rate the 25 nodes reached
        // in the same run: CPU per commit depends on how many entries each
        // message carries, so the fan-out's own cost is the ratio at equal rate.
        let labels = ["3".to_owned(), large.to_string(), format!("3@{large}")];
        let mut results: Vec<Vec<Window>> = labels.iter().map(|_| Vec::new()).collect();
        for r in 0..runs {
            let mut large_rate = None;
            for (k, label) in labels.iter().enumerate() {
                let (n, rate) = match k {
                    0 => (3, None),
                    1 => (large, None),
                    _ => (3, large_rate),
                };
                let dir = base.as_ref().map(|b| b.path().join(format!("run-{r}-{k}")));
                let c = cluster(n, threads, dir.as_deref()).await;
                let w = run(&c, secs, rate).await;
                print_window(label, r, &w);
                if k == 1 {
                    large_rate = Some(w.pairs_per_sec);
                }
                results[k].push(w);
                c.stop().await;
                if let Some(dir) = dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
        println!(
            "\nmedians (range) of {runs} run(s); leader CPU = its runtime's threads, \
             utime + stime, over its applied-index delta; 3@{large} = 3 nodes paced \
             to the {large}-node rate of the same run"
        );
        println!(
            "| nodes | M pairs/s | acquire p50 | acquire p99 | leader CPU per commit | \
             leader CPU per pair | each other node, CPU per commit | process CPU per pair | \
             idle leader, idle other node (% of a core) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for (k, ws) in results.iter().enumerate() {
            let (ops, lo, hi) = stat(ws, |w| w.pairs_per_sec);
            let (p50, p50lo, p50hi) = stat(ws, |w| w.acquire_p50_ms);
            let (p99, p99lo, p99hi) = stat(ws, |w| w.acquire_p99_ms);
            let (cc, cclo, cchi) = stat(ws, |w| w.leader_cpu_per_commit_us);
            let (cp, _, _) = stat(ws, |w| w.leader_cpu_per_pair_us);
            let (oc, _, _) = stat(ws, |w| w.others_cpu_per_commit_us);
            let (pp, _, _) = stat(ws, |w| w.process_cpu_per_pair_us);
            let (li, _, _) = stat(ws, |w| w.leader_idle_share * 100.0);
            let (oi, _, _) = stat(ws, |w| w.others_idle_share * 100.0);
            let shape = match k {
                0 => "3 (3 voters)".to_owned(),
                1 => format!("{large} (5 voters + {} learners)", large.saturating_sub(5)),
                _ => format!("3, paced to the {large}-node rate"),
            };
            println!(
                "| {shape} | {ops:.0} ({lo:.0}–{hi:.0}) | {p50:.2} ms ({p50lo:.2}–{p50hi:.2}) | \
                 {p99:.2} ms ({p99lo:.2}–{p99hi:.2}) | {cc:.0} µs ({cclo:.0}–{cchi:.0}) | \
                 {cp:.0} µs | {oc:.0} µs | {pp:.0} µs | {li:.1} %, {oi:.2} % |"
            );
        }
    });
}
