//! Curve `sessions` (issue 10, "Cost as the work grows", item 5): 3 -> 30
//! -> 100 -> 300 -> 1 000 sessions, and what they cost at idle: keepalive
//! traffic and the leader's CPU.
//!
//! Where sessions come from: a node opens exactly one session, its own
//! (`Command::OpenSession` in core/src/raft/tick.rs, proposed once the
//! cluster is founded; `NodeStatus::session` is an `Option`), and every
//! lock the node's callers take is held under it; the API opens no other.
//! So n sessions honestly means n nodes. Here the first 5 nodes found the
//! cluster (the voters, each on a runtime of its own so the leader's CPU
//! is read from its own threads), and the rest join through them as
//! learners, as new application instances would (`seeds`), all on one
//! shared 2-thread runtime, in-memory. The size stops at
//! `PEERLOCK_BENCH_SESSIONS_MAX` (default 1 000); a size that does not form
//! in its time says so, and the curve stops there.
//!
//! Per size, after formation and 3 s to settle, an idle window of at
//! least 5 s (two keepalive intervals at the default 10 s TTL): loopback
//! datagrams and bytes per second (this process alone only in a network
//! namespace of its own; the table says), the leader's CPU and the whole
//! process's as a share of one core, the RSS per node (the process's growth
//! since the curve began, over the nodes, from the first run), whether the leader
//! kept its term, and how many sessions hold a valid lease at the end.
//! Next to the traffic, the keepalive messages the code sends (one
//! KeepAlive and one KeepAliveAck per session per ttl/4) and the leader's
//! ReadIndex traffic they may cause (see `nodes::KEEPALIVE_MODEL`).
//! Quick: 3 sessions only.

use std::time::{Duration, Instant};

use crate::nodes::KEEPALIVE_MODEL;
use crate::nodes_cluster::{Cluster, Shape};
use crate::nodes_load::stat;
use crate::nodes_probe::{loadavg, private_netns, process_cpu, rss_mib, Net};

const SIZES: [usize; 5] = [3, 30, 100, 300, 1000];
/// The members' `dead_after` here: no node fails in this benchmark, but on
/// 2 shared cores a learner's answers can lag by tens of seconds while
/// hundreds of others join, and with the default 20 s the leader removed
/// live learners while 1 000 nodes formed (18 removal changes in one run,
/// 117 in one with more load), whose rejoins (handshakes, joins,
/// snapshots) loaded the machine further (issue 10, curve 5; README). What
/// is measured is idle cost, not failure detection.
const DEAD_AFTER: Duration = Duration::from_secs(600);
/// Default session TTL / 4, the keepalive interval (core/src/config.rs).
const KEEPALIVE_EVERY_S: f64 = 2.5;

struct Point {
    packets: f64,
    bytes: f64,
    leader_cpu: f64,
    process_cpu: f64,
    rss_per_node: f64,
    stable: bool,
    leased: usize,
    form_s: f64,
}

pub fn run(cfg: &crate::Cfg) {
    let max = crate::common::env_u64("PEERLOCK_BENCH_SESSIONS_MAX", 1000) as usize;
    let sizes: Vec<usize> = if cfg.quick {
        SIZES[..1].to_vec()
    } else {
        SIZES.iter().copied().filter(|&n| n <= max.max(3)).collect()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let load0 = loadavg();
    let rss0 = rss_mib().unwrap_or(0.0);
    let mut results: Vec<Vec<Point>> = sizes.iter().map(|_| Vec::new()).collect();
    let mut reached = sizes.len();
    for r in 0..cfg.runs {
        for (k, &n) in sizes.iter().enumerate().take(reached) {
            let shape = Shape {
                n,
                founders: n.min(5),
                own_runtimes: n.min(5),
                threads: 2,
                data: None,
                form_timeout: Duration::from_secs(60) + Duration::from_secs(1) * n as u32,
                dead_after: Some(DEAD_AFTER),
            };
            let p = rt.block_on(async {
                let t0 = Instant::now();
                let c = match Cluster::start(&shape).await {
                    Ok(c) => c,
                    Err(e) => {
                        println!("sessions: {e}");
                        return None;
                    }
                };
                let form_s = t0.elapsed().as_secs_f64();
                let p = idle(&c, cfg.secs, rss0, form_s).await;
                c.stop().await;
                p
            });
            match p {
                Some(p) => {
                    println!(
                        "  sessions run {r}: {n:>4} formed in {:.0} s, {:.0} datagrams/s {:.0} B/s, \
                         leader {:.1} % process {:.0} % of a core, RSS {:.1} MiB/node, leased {}/{n}{}",
                        p.form_s,
                        p.packets,
                        p.bytes,
                        p.leader_cpu * 100.0,
                        p.process_cpu * 100.0,
                        p.rss_per_node,
                        p.leased,
                        if p.stable { "" } else { " LEADER CHANGED" }
                    );
                    results[k].push(p);
                }
                None => {
                    reached = k;
                    println!(
                        "sessions: stopping at {} sessions",
                        sizes[..k].last().copied().unwrap_or(0)
                    );
                    break;
                }
            }
        }
    }
    print_table(cfg, &sizes, &results, &load0);
}

async fn idle(c: &Cluster, secs: u64, rss0: f64, form_s: f64) -> Option<Point> {
    let n = c.nodes.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (leader, s0) = c.leader_status()?;
    let rt = c.rts.get(leader)?;
    let (cpu0, proc0) = (rt.cpu(), process_cpu().unwrap_or_default());
    let (net0, t0) = (Net::read().unwrap_or_default(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs.max(5))).await;
    let wall = t0.elapsed().as_secs_f64();
    let net = Net::read().unwrap_or_default().since(net0);
    let (cpu1, proc1) = (rt.cpu(), process_cpu().unwrap_or_default());
    let s1 = c.nodes[leader].status();
    Some(Point {
        packets: net.packets as f64 / wall,
        bytes: net.bytes as f64 / wall,
        leader_cpu: cpu1.saturating_sub(cpu0).as_secs_f64() / wall,
        process_cpu: proc1.saturating_sub(proc0).as_secs_f64() / wall,
        rss_per_node: (rss_mib().unwrap_or(0.0) - rss0) / n as f64,
        stable: s1.is_leader() && s1.term == s0.term,
        leased: (c.nodes.iter())
            .filter(|x| x.watch_status().borrow().lease_valid)
            .count(),
        form_s,
    })
}

fn print_table(cfg: &crate::Cfg, sizes: &[usize], results: &[Vec<Point>], load0: &str) {
    println!("\n### sessions: one per node, 5 voters + learners, in-memory, idle\n");
    println!(
        "`PEERLOCK_BENCH_CURVE=sessions cargo bench --bench growth`: idle window of {} s x {} run(s), \
         median (range); traffic = loopback datagrams, {}; CPU as a share of one core; \
         keepalives (code) = 2 messages per session per {KEEPALIVE_EVERY_S} s; \
         loadavg {load0} before, {} after\n",
        cfg.secs.max(5),
        cfg.runs,
        if private_netns() {
            "in a network namespace of its own (this process only)"
        } else {
            "in a SHARED network namespace (includes other processes: an upper bound)"
        },
        loadavg()
    );
    println!(
        "| sessions (nodes) | datagrams/s (per session) | bytes/s (per session) | keepalive messages/s (code) | \
         leader CPU | process CPU | RSS per node | leases valid at the end | elections | formed in |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (k, ps) in results.iter().enumerate() {
        if ps.is_empty() {
            continue;
        }
        let n = sizes[k];
        let (pk, pklo, pkhi) = stat(ps, |p| p.packets);
        let (by, _, _) = stat(ps, |p| p.bytes);
        let (lc, lclo, lchi) = stat(ps, |p| p.leader_cpu * 100.0);
        let (pc, _, _) = stat(ps, |p| p.process_cpu * 100.0);
        // Run 0's: later runs start with the memory the allocator kept.
        let rss = ps[0].rss_per_node;
        let (leased, _, _) = stat(ps, |p| p.leased as f64);
        let (form, _, _) = stat(ps, |p| p.form_s);
        let elections = ps.iter().filter(|p| !p.stable).count();
        println!(
            "| {n} | {pk:.0} ({pklo:.0}–{pkhi:.0}); {:.1} | {by:.0}; {:.0} | {:.1} | {lc:.1} % ({lclo:.1}–{lchi:.1}) | \
             {pc:.0} % | {rss:.1} MiB | {leased:.0} / {n} | {elections} | {form:.0} s |",
            pk / n as f64,
            by / n as f64,
            2.0 * n as f64 / KEEPALIVE_EVERY_S,
        );
    }
    println!("\n{KEEPALIVE_MODEL}\n");
}
