//! Curve `clients` (issue 10, "Cost as the work grows", item 2): concurrent
//! clients on distinct names, 1 -> 64 -> 1 024 -> 8 192, over 3 nodes on
//! 127.0.0.1. Each client is an acquire -> release loop on its own name;
//! client `i` runs on node `i % 3`, so the clients are spread over the
//! leader and both followers. Throughput should rise, then plateau once
//! the leader's CPU or the disk is the limit; p99 per pair must stay
//! bounded; errors and elections must be 0 (an election shows as the
//! leader's term moving between the window's two ends).
//!
//! Storage: durable (a data directory per node, under `PEERLOCK_BENCH_DIR`
//! or the temp dir; the goals are durable) and in-memory, each its
//! own table; `PEERLOCK_BENCH_MODE=memory|durable` runs one. Every run
//! starts a fresh cluster per mode and goes through the sizes in order on
//! it; the table gives the median (and range) over the runs.
//! Quick: sizes 1 and 64, durable only.

use std::time::Duration;

use crate::nodes_cluster::{Cluster, Shape};
use crate::nodes_load::{pairs, stat, Window};
use crate::nodes_probe::loadavg;

const SIZES: [usize; 4] = [1, 64, 1024, 8192];

pub fn run(cfg: &crate::Cfg) {
    let sizes: &[usize] = if cfg.quick { &SIZES[..2] } else { &SIZES };
    let mode = std::env::var("PEERLOCK_BENCH_MODE").unwrap_or_default();
    let modes: Vec<bool> = [true, false]
        .into_iter()
        .filter(|&durable| match mode.as_str() {
            "memory" => !durable,
            "durable" => durable,
            _ => durable || !cfg.quick,
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let base = tempfile::tempdir_in(
        std::env::var("PEERLOCK_BENCH_DIR")
            .unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
    )
    .expect("bench data dir");
    for durable in modes {
        let load0 = loadavg();
        let mut results: Vec<Vec<Window>> = sizes.iter().map(|_| Vec::new()).collect();
        for r in 0..cfg.runs {
            let data = durable.then(|| base.path().join(format!("clients-{r}")));
            let shape = Shape {
                n: 3,
                founders: 3,
                own_runtimes: 3,
                threads: 2,
                data: data.clone(),
                form_timeout: Duration::from_secs(60),
                dead_after: None,
            };
            rt.block_on(async {
                let c = match Cluster::start(&shape).await {
                    Ok(c) => c,
                    Err(e) => {
                        println!("clients: cluster did not form: {e}");
                        return;
                    }
                };
                for (k, &clients) in sizes.iter().enumerate() {
                    // Long enough for every client's first grant.
                    let warmup = Duration::from_millis(1000 + clients as u64 / 2);
                    let w = pairs(
                        &c,
                        clients,
                        |i| i % 3,
                        |i| format!("g/c/{i}"),
                        warmup,
                        Duration::from_secs(cfg.secs),
                    )
                    .await;
                    println!(
                        "  clients run {r} {}: {clients:>5} clients {:>8.0} pairs/s p50 {:.2} ms p99 {:.2} ms errors {} {}",
                        if durable { "durable" } else { "memory" },
                        w.per_sec,
                        w.p50_ms,
                        w.p99_ms,
                        w.errors,
                        if w.stable { "" } else { "LEADER CHANGED" }
                    );
                    results[k].push(w);
                }
                c.stop().await;
            });
            if let Some(d) = data {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        print_table(cfg, durable, sizes, &results, &load0);
    }
}

fn print_table(
    cfg: &crate::Cfg,
    durable: bool,
    sizes: &[usize],
    results: &[Vec<Window>],
    load0: &str,
) {
    println!(
        "\n### clients: concurrent clients on distinct names, 3 nodes, {}\n",
        if durable {
            "durable (data_dir, fsync per Raft Ready)"
        } else {
            "in-memory"
        }
    );
    println!(
        "`PEERLOCK_BENCH_CURVE=clients cargo bench --bench growth`: {} s window x {} run(s), \
         median (range); clients spread over the 3 nodes; pair = acquire + release; \
         loadavg {load0} before, {} after\n",
        cfg.secs,
        cfg.runs,
        loadavg()
    );
    println!(
        "| clients | pairs/s | pair p50 | pair p99 | CPU per pair (process) | errors | elections |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (k, ws) in results.iter().enumerate() {
        if ws.is_empty() {
            continue;
        }
        let (ops, lo, hi) = stat(ws, |w| w.per_sec);
        let (p50, p50lo, p50hi) = stat(ws, |w| w.p50_ms);
        let (p99, p99lo, p99hi) = stat(ws, |w| w.p99_ms);
        let (cpu, _, _) = stat(ws, |w| {
            w.process_cpu.as_secs_f64() * 1e6 / w.pairs.max(1) as f64
        });
        let errors: u64 = ws.iter().map(|w| w.errors).sum();
        let elections = ws.iter().filter(|w| !w.stable).count();
        println!(
            "| {} | {ops:.0} ({lo:.0}–{hi:.0}) | {p50:.2} ms ({p50lo:.2}–{p50hi:.2}) | \
             {p99:.2} ms ({p99lo:.2}–{p99hi:.2}) | {cpu:.0} µs | {errors} | {elections} |",
            sizes[k]
        );
    }
    println!();
}
