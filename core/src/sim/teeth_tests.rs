//! The checker's teeth: each planted bug (see [`crate::teeth`]) must be
//! caught within 1,000 seeds, or this test fails. Seeds run in batches on
//! two threads, each thread with the bug planted.

use std::time::{Duration, Instant};

use super::check::Property;
use super::run::{run, SimConfig, Skew};
use crate::teeth::{plant, Bug};

/// The runs a bug is hunted in: the seed's own configuration, except that
/// the lease-margin bug is only a bug under clock skew (within the bound
/// the margin exists for), durable-only faults need durable runs, and the
/// suspend bug is judged by S4 (so within the clock bound).
fn config_for(bug: Bug, seed: u64) -> SimConfig {
    let mut c = SimConfig::from_seed(seed);
    match bug {
        Bug::ZeroLeaseMargin => {
            c.skew = Skew::WithinBound;
            c.lock_delay = Duration::ZERO;
        }
        Bug::AckBeforeFsync | Bug::TokenReuseAfterRestart => c.durable = true,
        // Blank restarts happen to in-memory nodes.
        Bug::ReuseIdOnBlankRestart => c.durable = false,
        // Caught by S4, which is only promised within the clock bound.
        Bug::LeaseClockStopsInSuspend if c.skew == Skew::BeyondBound => {
            c.skew = Skew::WithinBound;
        }
        _ => {}
    }
    c
}

/// Runs seeds with `bug` planted until one run reports a violation;
/// returns the seed and the properties it broke.
fn hunt(bug: Bug) -> Option<(u64, Vec<Property>)> {
    const BATCH: u64 = 4;
    let mut first = 0;
    while first < 1_000 {
        let seeds: Vec<u64> = (first..first + BATCH).collect();
        let (a, b) = seeds.split_at(seeds.len() / 2);
        let (a, b) = (a.to_vec(), b.to_vec());
        let other = std::thread::spawn(move || {
            plant(Some(bug));
            let out: Vec<_> = b.into_iter().map(|s| run(config_for(bug, s))).collect();
            plant(None);
            out
        });
        plant(Some(bug));
        let mut outs: Vec<_> = a.into_iter().map(|s| run(config_for(bug, s))).collect();
        plant(None);
        outs.extend(other.join().unwrap());
        if let Some(o) = outs.iter().find(|o| !o.report.is_ok()) {
            let mut props: Vec<Property> = o.report.violations.iter().map(|v| v.property).collect();
            props.sort();
            props.dedup();
            return Some((o.config.seed, props));
        }
        first += BATCH;
    }
    None
}

#[test]
fn every_planted_bug_is_caught_within_a_thousand_seeds() {
    let mut missed = Vec::new();
    // PEERLOCK_PLANT=<Bug name> hunts that one bug only.
    let only = std::env::var("PEERLOCK_PLANT").ok();
    for bug in Bug::ALL {
        if only.as_ref().is_some_and(|o| *o != format!("{bug:?}")) {
            continue;
        }
        let t0 = Instant::now();
        match hunt(bug) {
            Some((seed, props)) => eprintln!(
                "planted {bug:?}: caught at seed {seed} by {props:?} in {:?}",
                t0.elapsed()
            ),
            None => missed.push(bug),
        }
    }
    assert!(
        missed.is_empty(),
        "the checker missed planted bugs: {missed:?}"
    );
}
