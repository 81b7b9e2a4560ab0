//! Curve `nodes` (issue 10, "Cost as the work grows", item 4): 3 -> 5 -> 9
//! -> 25 nodes, voters capped at 5 (`max_voters(5)`: the first 5 vote, the
//! rest are learners from the founding on), in-memory storage (the cost of
//! Raft, the lock machine and the transport, without 25 nodes' fsyncs
//! queueing on one disk), every node on 127.0.0.1 on a tokio runtime of its
//! own with 2 worker threads, as `benches/scale.rs` does, so each node's CPU
//! is read from its own threads (`nodes_probe`).
//!
//! Per size, on a fresh cluster:
//! - **idle**: after formation and 1 s to settle, a window with no lock
//!   traffic: the leader's CPU and the other nodes' (mean and max), as a
//!   share of one core (goal < 0.5 %), and loopback datagrams per second
//!   per node (which count only this process when it runs in a network
//!   namespace of its own; the table says whether it did);
//! - **RSS per node**: the nodes share this process, so the figure is the
//!   process's RSS after forming the size, minus its RSS before the first
//!   cluster of the curve, divided by the nodes (sizes ascend, and memory
//!   freed by a smaller cluster is reused by the next, so this is the
//!   footprint of the present cluster; goal < 15 MiB), and the growth per
//!   node added since the previous size;
//! - **U**: one client on the leader (pairs/s, p50);
//! - **M**: 64 clients on 64 names spread over every node (pairs/s), and
//!   the leader's CPU per commit (its threads' CPU over its applied-index
//!   delta).
//!
//! Messages per keepalive: not counted (the transport exposes no
//! counters); see [`KEEPALIVE_MODEL`], from the code, printed under the
//! table. Quick: 3 and 5 nodes.
//!
//! `PEERLOCK_BENCH_NODES=3,25` picks the sizes, and
//! `PEERLOCK_BENCH_IDLE_ONLY=1` measures the idle window alone (no U or M:
//! the idle figures in a third of the time, for A/B runs of the leader's
//! idle cost).

use std::time::{Duration, Instant};

use crate::nodes_cluster::{Cluster, Shape};
use crate::nodes_load::{pairs, stat, Window};
use crate::nodes_probe::{loadavg, private_netns, rss_mib, Net};

const SIZES: [usize; 4] = [3, 5, 9, 25];

/// What one keepalive costs, read from core/src/raft/tick.rs and
/// core/src/raft/mod.rs (printed with the table).
pub const KEEPALIVE_MODEL: &str = "Keepalive cost, from the code (core/src/raft/tick.rs, mod.rs): \
every node sends its one session's KeepAlive to the leader every ttl/4 (2.5 s at the default 10 s TTL) \
and gets one KeepAliveAck back: O(1) messages per node per keepalive round. The leader acknowledges \
only after a ReadIndex round begun after the keepalive arrived; every keepalive queued since the last \
pass of the driver loop shares one round, but a round is a heartbeat to every member (raft-rs \
`bcast_heartbeat_with_ctx` walks every progress, learners included) plus its answer: 2 (n - 1) messages. \
Keepalives from idle nodes arrive spread out, so at idle nearly each one gets its own round, and the \
leader's keepalive traffic is about (n / 2.5 s) x 2 (n - 1), next to Raft's own heartbeats, \
10 /s x 2 (n - 1). Per keepalive round each node costs O(1), but per unit of time the leader's total \
grows as n^2 (see the sessions curve).";

struct Point {
    idle_leader: f64,
    idle_others: f64,
    idle_others_max: f64,
    packets_per_node: f64,
    bytes_per_node: f64,
    rss_mib: f64,
    u: Window,
    m: Window,
}

pub fn run(cfg: &crate::Cfg) {
    let picked: Vec<usize> = std::env::var("PEERLOCK_BENCH_NODES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default();
    let sizes: &[usize] = if !picked.is_empty() {
        &picked
    } else if cfg.quick {
        &SIZES[..2]
    } else {
        &SIZES
    };
    let idle_only = std::env::var("PEERLOCK_BENCH_IDLE_ONLY").is_ok_and(|v| v != "0");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let load0 = loadavg();
    let rss0 = rss_mib().unwrap_or(0.0);
    let mut results: Vec<Vec<Point>> = sizes.iter().map(|_| Vec::new()).collect();
    for r in 0..cfg.runs {
        for (k, &n) in sizes.iter().enumerate() {
            let shape = Shape {
                n,
                founders: n,
                own_runtimes: n,
                threads: 2,
                data: None,
                form_timeout: Duration::from_secs(120),
                dead_after: None,
            };
            let p = rt.block_on(async {
                let c = match Cluster::start(&shape).await {
                    Ok(c) => c,
                    Err(e) => {
                        println!("nodes: {e}");
                        return None;
                    }
                };
                let p = point(&c, cfg.secs, idle_only).await;
                c.stop().await;
                p
            });
            if let Some(p) = p {
                println!(
                    "  nodes run {r}: {n:>2} nodes idle leader {:.2} % others {:.2} % (max {:.2} %) \
                     {:.0} datagrams/s/node process RSS {:.1} MiB U {:.0}/s M {:.0}/s leader {:.0} µs/commit",
                    p.idle_leader * 100.0,
                    p.idle_others * 100.0,
                    p.idle_others_max * 100.0,
                    p.packets_per_node,
                    p.rss_mib,
                    p.u.per_sec,
                    p.m.per_sec,
                    per_commit_us(&p.m)
                );
                results[k].push(p);
            }
        }
    }
    print_table(cfg, sizes, &results, rss0, &load0);
}

fn per_commit_us(w: &Window) -> f64 {
    w.leader_cpu.as_secs_f64() * 1e6 / w.commits.max(1) as f64
}

/// One size's figures on cluster `c`.
async fn point(c: &Cluster, secs: u64, idle_only: bool) -> Option<Point> {
    let n = c.nodes.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader = c.leader()?;
    let cpus0: Vec<Duration> = c.rts.iter().map(|r| r.cpu()).collect();
    let (net0, t0) = (Net::read().unwrap_or_default(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs.max(2))).await;
    let wall = t0.elapsed().as_secs_f64();
    let net = Net::read().unwrap_or_default().since(net0);
    let shares: Vec<f64> = c
        .rts
        .iter()
        .zip(&cpus0)
        .map(|(r, c0)| r.cpu().saturating_sub(*c0).as_secs_f64() / wall)
        .collect();
    let others: Vec<f64> = shares
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != leader)
        .map(|(_, s)| *s)
        .collect();
    let rss = rss_mib().unwrap_or(0.0);
    let window = Duration::from_secs(secs);
    let (u, m) = if idle_only {
        (Window::default(), Window::default())
    } else {
        let u = pairs(
            c,
            1,
            |_| leader,
            |_| "g/n/u".into(),
            Duration::from_millis(500),
            window,
        )
        .await;
        let m = pairs(
            c,
            64,
            |i| i % n,
            |i| format!("g/n/m/{i}"),
            Duration::from_secs(1),
            window,
        )
        .await;
        (u, m)
    };
    Some(Point {
        idle_leader: shares.get(leader).copied().unwrap_or(0.0),
        idle_others: others.iter().sum::<f64>() / others.len().max(1) as f64,
        idle_others_max: others.iter().copied().fold(0.0, f64::max),
        packets_per_node: net.packets as f64 / wall / n as f64,
        bytes_per_node: net.bytes as f64 / wall / n as f64,
        rss_mib: rss,
        u,
        m,
    })
}

fn print_table(cfg: &crate::Cfg, sizes: &[usize], results: &[Vec<Point>], rss0: f64, load0: &str) {
    println!("\n### nodes: 3 -> 25 nodes (max 5 voters, the rest learners), in-memory\n");
    println!(
        "`PEERLOCK_BENCH_CURVE=nodes cargo bench --bench growth`: {} s windows x {} run(s), \
         median (range); each node on its own 2-thread runtime; CPU as a share of one core; \
         RSS per node = (process RSS with the cluster formed - RSS before the curve) / nodes, \
         and per node added since the previous size (run 0); loopback traffic {}; \
         loadavg {load0} before, {} after\n",
        cfg.secs,
        cfg.runs,
        if private_netns() {
            "counted in a network namespace of its own (this process only)"
        } else {
            "counted in a SHARED network namespace (includes other processes: an upper bound)"
        },
        loadavg()
    );
    println!(
        "| nodes | idle CPU, leader | idle CPU, other node (mean, max) | RSS per node (added) | \
         idle datagrams/s per node (bytes/s) | U pairs/s (p50) | M pairs/s | leader CPU per commit (M) | \
         process CPU per M pair (every node) | errors, elections |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut prev: Option<(usize, f64)> = None;
    for (k, ps) in results.iter().enumerate() {
        if ps.is_empty() {
            continue;
        }
        let n = sizes[k];
        let (il, illo, ilhi) = stat(ps, |p| p.idle_leader * 100.0);
        let (io, _, _) = stat(ps, |p| p.idle_others * 100.0);
        let (iomax, _, _) = stat(ps, |p| p.idle_others_max * 100.0);
        let rss = ps[0].rss_mib;
        let per_node = (rss - rss0) / n as f64;
        let added = prev
            .map(|(pn, prss)| format!("{:.1}", (rss - prss) / (n - pn).max(1) as f64))
            .unwrap_or_else(|| "–".into());
        prev = Some((n, rss));
        let (pk, _, _) = stat(ps, |p| p.packets_per_node);
        let (by, _, _) = stat(ps, |p| p.bytes_per_node);
        let (u, ulo, uhi) = stat(ps, |p| p.u.per_sec);
        let (up50, _, _) = stat(ps, |p| p.u.p50_ms);
        let (m, mlo, mhi) = stat(ps, |p| p.m.per_sec);
        let (pc, pclo, pchi) = stat(ps, |p| per_commit_us(&p.m));
        let (pp, _, _) = stat(ps, |p| {
            p.m.process_cpu.as_secs_f64() * 1e6 / p.m.pairs.max(1) as f64
        });
        let errors: u64 = ps.iter().map(|p| p.u.errors + p.m.errors).sum();
        let elections = ps.iter().filter(|p| !p.u.stable || !p.m.stable).count();
        println!(
            "| {n} ({} voters + {} learners) | {il:.2} % ({illo:.2}–{ilhi:.2}) | {io:.2} %, {iomax:.2} % | \
             {per_node:.1} MiB ({added}) | {pk:.0} ({by:.0}) | {u:.0} ({ulo:.0}–{uhi:.0}), {up50:.2} ms | \
             {m:.0} ({mlo:.0}–{mhi:.0}) | {pc:.0} µs ({pclo:.0}–{pchi:.0}) | {pp:.0} µs | {errors}, {elections} |",
            n.min(5),
            n.saturating_sub(5)
        );
    }
    println!("\n{KEEPALIVE_MODEL}\n");
}
