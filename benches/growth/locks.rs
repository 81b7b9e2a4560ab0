//! Curve `locks` (issue 10, "Cost as the work grows", item 1): what held
//! locks cost as they grow from 1 000 to 1 000 000, with short (10-byte)
//! and 250-byte names.
//!
//! Each size runs in two fresh child processes (this binary again, told
//! what to do by `PEERLOCK_BENCH_LOCKS_CHILD`), so each memory figure is
//! the growth of a process that held nothing before, not the allocator's
//! leftovers of the previous size:
//!
//! - **table**: the pure `LockTable`, commands applied directly: heap per
//!   held lock (RSS growth / n), snapshot size, encode and restore time
//!   (the driver's snapshot is exactly `encode_snapshot`, installing it is
//!   `LockTable::restore` plus the storage write);
//! - **cluster**: three durable nodes in one process, filled with n held
//!   locks by 768 concurrent `try_lock` callers: RSS growth / n / 3 (three
//!   nodes, their clients and the n guards share the process), U and M
//!   throughput with the locks held, then every node killed and started
//!   again: time until `ready()` on all three and until `try_lock` on a
//!   held name answers Busy.
//!
//! The top size is 999 000, not 1 000 000: `MAX_LOCK_ENTRIES` is
//! 1 000 000 and U/M need a few entries of their own.
//!
//! `PEERLOCK_BENCH_LOCKS_SIZES=1000,10000` and `PEERLOCK_BENCH_LOCKS_LENS=10`
//! pick sizes and name lengths; `PEERLOCK_BENCH_RESTART=seeds` restarts
//! the nodes with their addresses as seeds instead of peers. With 250-byte names the cluster point
//! stops at 100 000 (the table point still runs at 999 000) unless
//! `PEERLOCK_BENCH_LOCKS_LONG_MAX=999000`. Compaction by log size made the
//! fill linear (it used to encode the whole table every 20 000 entries),
//! but a million 250-byte names is about 0.25 GB of names per node, three
//! nodes in this process, and its fill alone would take most of the
//! curve's 15 minutes on two shared cores.

#[path = "locks_cluster.rs"]
pub mod cluster;
#[path = "locks_point.rs"]
mod point;
#[path = "locks_table.rs"]
mod table;

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The child process's instruction: `table:<n>:<len>` or `cluster:<n>:<len>`.
const CHILD: &str = "PEERLOCK_BENCH_LOCKS_CHILD";
/// How a child reports: one line with this prefix, then `key=value` pairs.
const REPORT: &str = "@@locks";
/// No child may run longer than this.
const CHILD_BOUND: Duration = Duration::from_secs(900);

/// Lock name `i` of `len` bytes (at least 10).
pub fn name(i: usize, len: usize) -> String {
    format!("k{i:0>w$}", w = len.max(10) - 1)
}

fn list(var: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(var) {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

pub fn run(cfg: &crate::Cfg) {
    if let Ok(spec) = std::env::var(CHILD) {
        child(cfg, &spec);
        return;
    }
    let sizes = list(
        "PEERLOCK_BENCH_LOCKS_SIZES",
        if cfg.quick {
            &[1_000]
        } else {
            &[1_000, 10_000, 100_000, 999_000]
        },
    );
    let lens = list("PEERLOCK_BENCH_LOCKS_LENS", &[10, 250]);
    let started = Instant::now();
    println!("\ncurve locks: held locks on a 3-node durable cluster on 127.0.0.1");
    println!(
        "command: PEERLOCK_BENCH_CURVE=locks cargo bench --bench growth ({} s windows, {} runs)",
        cfg.secs, cfg.runs
    );
    println!(
        "started {} UTC-epoch-s, loadavg {}",
        epoch(),
        cluster::loadavg()
    );
    let mut rows = Vec::new();
    let long_max = crate::common::env_u64("PEERLOCK_BENCH_LOCKS_LONG_MAX", 100_000) as usize;
    for &len in &lens {
        for &n in &sizes {
            let t = spawn(cfg, &format!("table:{n}:{len}"));
            let c = if len > 10 && n > long_max {
                println!("({n} x {len} B: table only; the cluster point is above PEERLOCK_BENCH_LOCKS_LONG_MAX={long_max}, see the module docs)");
                HashMap::from([("skipped".to_string(), 1.0)])
            } else {
                spawn(cfg, &format!("cluster:{n}:{len}"))
            };
            eprintln!(
                "locks {n} x {len} B done after {:.0} s, loadavg {}",
                started.elapsed().as_secs_f64(),
                cluster::loadavg()
            );
            rows.push((n, len, t, c, cluster::loadavg()));
        }
    }
    let g = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    println!("\nMemory, snapshot and cold restart (memory: table = pure LockTable heap / lock; cluster = process RSS growth / lock / 3 nodes, guards included; goal <= name + 200 B)\n");
    println!("| held locks | name B | table B/lock | cluster B/lock/node | goal | disk B/lock/node | snapshot MiB | encode ms | clone ms (what a copy to encode elsewhere would cost the driver) | restore ms | fill s | restart: ready s | restart: held name Busy s | loadavg |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (n, len, t, c, load) in &rows {
        let row = format!(
            "| {n} | {len} | {:.0} | {:.0} | {} | {:.0} | {:.1} | {:.1} ({:.1}-{:.1}) | {:.1} | {:.1} ({:.1}-{:.1}) | {:.2} | {:.2} | {:.2} | {load} |",
            g(t, "bytes_per_lock"),
            g(c, "bytes_per_lock_node"),
            len + 200,
            g(c, "disk_per_lock_node"),
            g(t, "snapshot_bytes") / (1024.0 * 1024.0),
            g(t, "encode_ms"), g(t, "encode_lo"), g(t, "encode_hi"),
            g(t, "clone_ms"),
            g(t, "restore_ms"), g(t, "restore_lo"), g(t, "restore_hi"),
            g(c, "fill_s"),
            g(c, "ready_s"),
            g(c, "busy_s"),
        );
        // A point not measured (skipped, or its child failed) shows "-".
        println!("{}", row.replace("NaN", "-"));
    }
    println!("\nThroughput with the locks held (durable; U: 1 client on the leader, a fresh name per pair; M: 64 clients on 64 names, spread over the nodes; median (range) of {} runs; goal: flat within 20 %)\n", cfg.runs);
    println!("| held locks | name B | U pairs/s | U p50 ms | U vs smallest | M pairs/s | M p50 ms | M vs smallest |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut first: HashMap<usize, (f64, f64)> = HashMap::new();
    for (n, len, _, c, _) in rows.iter().filter(|r| !r.3.contains_key("skipped")) {
        let (u, m) = (g(c, "u"), g(c, "m"));
        let (u0, m0) = *first.entry(*len).or_insert((u, m));
        println!(
            "| {n} | {len} | {u:.0} ({:.0}-{:.0}) | {:.2} | {:.2} | {m:.0} ({:.0}-{:.0}) | {:.2} | {:.2} |",
            g(c, "u_lo"), g(c, "u_hi"), g(c, "u_p50"), u / u0,
            g(c, "m_lo"), g(c, "m_hi"), g(c, "m_p50"), m / m0,
        );
    }
    for (n, len, _, c, _) in &rows {
        let (lost, el, busy) = (g(c, "lost"), g(c, "elections"), g(c, "busy_s"));
        if c.contains_key("skipped") {
            continue;
        }
        let partial = g(c, "filled") < *n as f64;
        if partial || lost != 0.0 || el != 0.0 || busy.is_nan() || busy < 0.0 || c.is_empty() {
            println!("  {n} x {len} B: NOT CLEAN: {} filled, {lost} guards lost, {el} term changes, probe after restart {busy:.2} s (negative: free), report {}", g(c, "filled"), if c.is_empty() { "missing" } else { "present" });
        }
    }
    println!(
        "\ncurve locks took {:.0} s; loadavg at the end {}",
        started.elapsed().as_secs_f64(),
        cluster::loadavg()
    );
}

fn epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs this binary as a child for one point; its report as a map.
fn spawn(cfg: &crate::Cfg, spec: &str) -> HashMap<String, f64> {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .arg("--bench")
        .env("PEERLOCK_BENCH_CURVE", "locks")
        .env(CHILD, spec)
        .env("PEERLOCK_BENCH_QUICK", if cfg.quick { "1" } else { "0" })
        .env("PEERLOCK_BENCH_SECS", cfg.secs.to_string())
        .env("PEERLOCK_BENCH_RUNS", cfg.runs.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child starts");
    let at = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if at.elapsed() > CHILD_BOUND => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("locks {spec}: child killed after {CHILD_BOUND:?}");
                return HashMap::new();
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    let Some(line) = out.lines().find(|l| l.starts_with(REPORT)) else {
        eprintln!("locks {spec}: no report from the child");
        return HashMap::new();
    };
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// The child's side: measures one point and prints its report line.
fn child(cfg: &crate::Cfg, spec: &str) {
    // A panic ends the child at once (a runtime torn down by unwinding can
    // wait on its nodes); the parent then reports the point as missing.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("locks child: {info}");
        std::process::exit(101);
    }));
    let mut parts = spec.split(':');
    let (kind, n, len) = (
        parts.next().unwrap_or(""),
        parts
            .next()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1_000),
        parts
            .next()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(10),
    );
    if kind == "table" {
        let p = table::measure(n, len, cfg.runs);
        println!(
            "{REPORT} bytes_per_lock={} snapshot_bytes={} encode_ms={} encode_lo={} encode_hi={} restore_ms={} restore_lo={} restore_hi={} clone_ms={}",
            p.bytes_per_lock, p.snapshot_bytes, p.encode_ms.0, p.encode_ms.1, p.encode_ms.2,
            p.restore_ms.0, p.restore_ms.1, p.restore_ms.2, p.clone_ms.0
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let p = rt.block_on(point::measure(n, len, cfg.secs, cfg.runs));
    println!(
        "{REPORT} fill_s={} bytes_per_lock_node={} disk_per_lock_node={} u={} u_lo={} u_hi={} u_p50={} m={} m_lo={} m_hi={} m_p50={} ready_s={} busy_s={} lost={} elections={} filled={}",
        p.fill_s, p.bytes_per_lock_node, p.disk_per_lock_node, p.u.0, p.u.1, p.u.2, p.u_p50,
        p.m.0, p.m.1, p.m.2, p.m_p50, p.ready_s, p.busy_s, p.lost, p.elections, p.filled
    );
    // Exit at once: tearing down a million guards and three nodes measures
    // nothing, and the report is out.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(0);
}
