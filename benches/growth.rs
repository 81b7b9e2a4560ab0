//! The growth benchmark (issue 10, "Cost as the work grows"): how each cost
//! of peerlock grows with the work, one curve per dimension, each printed as
//! a small markdown table ready for the README.
//!
//! ```text
//! cargo bench --bench growth                          # every curve
//! PEERLOCK_BENCH_CURVE=locks cargo bench --bench growth   # one curve
//! PEERLOCK_BENCH_QUICK=1 cargo bench --bench growth   # smoke run, under a minute
//! ```
//!
//! Curves (`PEERLOCK_BENCH_CURVE`): `locks` (held locks 1 000 -> 1 000 000),
//! `clients` (concurrent clients on distinct names 1 -> 8 192), `waiters`
//! (waiters on one lock 16 -> 10 000), `nodes` (3 -> 25 nodes), `sessions`
//! (3 -> 1 000 sessions). `PEERLOCK_BENCH_QUICK=1` shrinks every curve to
//! its smallest sizes and shortest windows: it checks that the benchmark
//! compiles and runs, and asserts nothing about speed.

#[path = "growth/common.rs"]
mod common;

#[path = "growth/clients.rs"]
mod clients;
#[path = "growth/locks.rs"]
mod locks;
#[path = "growth/nodes.rs"]
mod nodes;
// What the clients, nodes and sessions curves share: a cluster in this
// process, the pair loop, and the readings from /proc.
#[path = "growth/nodes_cluster.rs"]
mod nodes_cluster;
#[path = "growth/nodes_load.rs"]
mod nodes_load;
#[path = "growth/nodes_probe.rs"]
mod nodes_probe;
#[path = "growth/sessions.rs"]
mod sessions;
#[path = "growth/waiters.rs"]
mod waiters;

use common::Cfg;

fn main() {
    let cfg = Cfg::from_env();
    // Logs only when asked (`RUST_LOG=peerlock=info`, say), to stderr:
    // a formation that stalls can then be read from the nodes' own words.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let curve = std::env::var("PEERLOCK_BENCH_CURVE").unwrap_or_default();
    let wants = |name: &str| curve.is_empty() || curve.eq_ignore_ascii_case(name);
    println!(
        "peerlock growth: quick={}, window {} s, {} runs",
        cfg.quick, cfg.secs, cfg.runs
    );
    if wants("locks") {
        locks::run(&cfg);
    }
    if wants("clients") {
        clients::run(&cfg);
    }
    if wants("waiters") {
        waiters::run(&cfg);
    }
    if wants("nodes") {
        nodes::run(&cfg);
    }
    if wants("sessions") {
        sessions::run(&cfg);
    }
}
