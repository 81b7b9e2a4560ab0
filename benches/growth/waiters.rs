//! Curve `waiters` (issue 10, "Cost as the work grows", item 3): many
//! waiters on one lock, 16 -> 1 024 -> 10 000.
//!
//! Three in-memory nodes on 127.0.0.1, each on its own tokio runtime whose
//! threads are named after it, so the leader's CPU is read from its
//! threads alone (/proc/self/task/*/schedstat); the waiters run on a
//! separate client runtime, spread over the three nodes (a node's session
//! may queue behind itself; 10 000 waiters are 3 334 calls in flight per
//! node, under the 4 096 a node admits).
//!
//! - **hand-off**: node 0 holds the lock while every waiter queues, then
//!   releases; each waiter takes the lock and releases it at once. Rate =
//!   waiters / time from the first release to the last grant; the gap
//!   between successive grants goes to a histogram. O(1) per hand-off
//!   means a flat rate and flat leader CPU per hand-off.
//! - **mass time-out**: node 0 holds the lock, every waiter calls
//!   `lock_timeout` with the same deadline, and the lock stays held. From
//!   the deadline: time until every caller has its `Timeout`, time until
//!   the leader's table shows no waiter (every cancel committed), and the
//!   leader's CPU over that span (O(waiters) in total: flat per waiter).

#[path = "waiters_run.rs"]
mod one;

use std::time::Duration;

use crate::locks::cluster::{loadavg, med};

pub fn run(cfg: &crate::Cfg) {
    let sizes: &[usize] = if cfg.quick {
        &[16]
    } else {
        &[16, 1_024, 10_000]
    };
    println!(
        "\ncurve waiters: waiters on one lock, 3 in-memory nodes on 127.0.0.1 (one runtime each)"
    );
    println!(
        "command: PEERLOCK_BENCH_CURVE=waiters cargo bench --bench growth ({} runs per size)",
        cfg.runs
    );
    println!("loadavg at start {}", loadavg());
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gw-client")
        .enable_all()
        .build()
        .expect("client runtime");
    let mut rows = Vec::new();
    for &w in sizes {
        let nodes: Vec<tokio::runtime::Runtime> = (0..3)
            .map(|i| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(format!("gw-node{i}"))
                    .enable_all()
                    .build()
                    .expect("node runtime")
            })
            .collect();
        let handles: Vec<_> = nodes.iter().map(|r| r.handle().clone()).collect();
        let runs = client.block_on(one::size(w, cfg.runs, &handles));
        // Outside any runtime: a runtime must not be dropped inside one.
        for r in nodes {
            r.shutdown_timeout(Duration::from_secs(5));
        }
        rows.push((w, runs, loadavg()));
    }
    client.shutdown_timeout(Duration::from_secs(5));
    println!(
        "\nmedian (range) of {} runs; leader CPU = CPU of the leader's runtime threads\n",
        cfg.runs
    );
    println!("| waiters | queued in s | hand-offs/s | gap p50 ms | gap p99 ms | leader CPU µs/hand-off | time-out: all callers answered ms | time-out: queue empty ms | leader CPU ms | leader CPU µs/waiter | loadavg |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (w, runs, load) in rows {
        let f = |k: fn(&one::Run) -> f64| med(&runs.iter().map(k).collect::<Vec<_>>());
        let (rate, lo, hi) = f(|r| r.handoffs_per_s);
        let (ans, alo, ahi) = f(|r| r.answered_ms);
        let (dr, dlo, dhi) = f(|r| r.drained_ms);
        let (cpu, clo, chi) = f(|r| r.timeout_cpu_ms);
        println!(
            "| {w} | {:.2} | {rate:.0} ({lo:.0}-{hi:.0}) | {:.2} | {:.2} | {:.0} | {ans:.0} ({alo:.0}-{ahi:.0}) | {dr:.0} ({dlo:.0}-{dhi:.0}) | {cpu:.1} ({clo:.1}-{chi:.1}) | {:.0} | {load} |",
            f(|r| r.queue_s).0,
            f(|r| r.gap_p50_ms).0,
            f(|r| r.gap_p99_ms).0,
            f(|r| r.handoff_cpu_us).0,
            cpu * 1e3 / w as f64,
        );
        if runs.iter().any(|r| r.late > 0 || r.not_timeout > 0) {
            let late: usize = runs.iter().map(|r| r.late).sum();
            let other: usize = runs.iter().map(|r| r.not_timeout).sum();
            println!("  ({late} waiters were not queued by the deadline, {other} answered other than Timeout)");
        }
    }
}
