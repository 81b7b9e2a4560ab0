//! The simulator's tests: many seeds in CI, replay of one seed, the same
//! trace from the same seed, and (ignored) the long soak.
//!
//! Replay a failing seed with the command its failure prints:
//! `PEERLOCK_SIM_SEED=<seed> cargo test --release -p peerlock-core --features sim sim::tests::replay_one_seed -- --nocapture`

use std::time::{Duration, Instant};

use super::run::{run, SimConfig, SimOutcome};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs `seeds` on two threads; returns every outcome.
pub(crate) fn run_many(seeds: Vec<u64>, make: fn(u64) -> SimConfig) -> Vec<SimOutcome> {
    let half = seeds.len() / 2;
    let (a, b) = seeds.split_at(half);
    let (a, b) = (a.to_vec(), b.to_vec());
    let other = std::thread::spawn(move || b.into_iter().map(|s| run(make(s))).collect::<Vec<_>>());
    let mut out: Vec<SimOutcome> = a.into_iter().map(|s| run(make(s))).collect();
    out.extend(other.join().unwrap());
    out
}

fn summary(outcomes: &[SimOutcome]) -> String {
    let ops: u64 = outcomes.iter().map(|o| o.ops).sum();
    let refused: u64 = outcomes
        .iter()
        .map(|o| o.report.stats.stale_writes_refused)
        .sum();
    let grants: u64 = outcomes.iter().map(|o| o.report.stats.grants).sum();
    let mut faults = std::collections::BTreeMap::new();
    for o in outcomes {
        for (k, v) in &o.faults {
            *faults.entry(*k).or_insert(0u64) += v;
        }
    }
    format!(
        "{} seeds, {ops} ops, {grants} grants, {refused} stale writes refused, faults {faults:?}",
        outcomes.len()
    )
}

#[test]
fn replay_one_seed() {
    let seed = env_u64("PEERLOCK_SIM_SEED").unwrap_or(1);
    let t0 = Instant::now();
    let o = run(SimConfig::from_seed(seed));
    eprintln!(
        "seed {seed}: {:?}, {} ops, sim {:?} in {:?}, trace {:016x}, faults {:?}, messages {:?}\n{}",
        o.config,
        o.ops,
        o.sim_time,
        t0.elapsed(),
        o.trace_hash,
        o.faults,
        o.messages,
        o.report
    );
    if let Some(f) = o.failure() {
        panic!("{f}");
    }
}
