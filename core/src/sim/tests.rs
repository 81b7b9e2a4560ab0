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
    let blank: u64 = outcomes.iter().map(|o| o.blank_refused).sum();
    let replaced = outcomes.iter().filter(|o| o.voters_changed).count();
    let sim: Duration = outcomes.iter().map(|o| o.sim_time).sum();
    let mut churn = super::rejoin::Churn::default();
    for o in outcomes {
        churn.add(&o.churn);
    }
    let mut faults = std::collections::BTreeMap::new();
    for o in outcomes {
        for (k, v) in &o.faults {
            *faults.entry(*k).or_insert(0u64) += v;
        }
    }
    let mut claims = [0u64; 4];
    for o in outcomes {
        for (sum, n) in claims.iter_mut().zip(o.report.stats.claims_grants) {
            *sum += n;
        }
    }
    let terms: u64 = outcomes.iter().map(|o| o.report.stats.leader_terms).sum();
    format!(
        "{} seeds, {:.1} h simulated, {ops} ops, {grants} grants, claims grants (permits, read, write, multi) {claims:?}, {terms} terms of office, {refused} stale writes refused, {blank} blank restarts kept off their old id, {replaced} runs ended with other voters, {churn:?}, faults {faults:?}",
        outcomes.len(),
        sim.as_secs_f64() / 3600.0
    )
}

#[test]
fn replay_one_seed() {
    let seed = env_u64("PEERLOCK_SIM_SEED").unwrap_or(1);
    // PEERLOCK_PLANT=<Bug name> replays a canary's run (feature `teeth`).
    let mut config = SimConfig::from_seed(seed);
    // PEERLOCK_SIM_MEMBERSHIP=1 makes the seed's run a membership run.
    if env_u64("PEERLOCK_SIM_MEMBERSHIP") == Some(1) {
        config = config.membership_run();
    }
    #[cfg(feature = "teeth")]
    if let Ok(name) = std::env::var("PEERLOCK_PLANT") {
        let bug = crate::teeth::Bug::ALL
            .into_iter()
            .find(|b| format!("{b:?}") == name)
            .expect("PEERLOCK_PLANT names a Bug");
        crate::teeth::plant(Some(bug));
        // The run the canary hunt ran for this seed.
        config = super::teeth_tests::config_for(bug, seed);
    }
    let t0 = Instant::now();
    let o = run(config);
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

/// The CI run: 500 seeds (about half with 3 voters, half with 5), each a
/// minute of simulated time under faults, every one checked. The seed also
/// picks the workload (mostly mixed; 15 % mass timeouts, 10 % a large
/// table), and the faults include suspends and graceful shutdowns.
#[test]
fn five_hundred_seeds_keep_every_promise() {
    let n = env_u64("PEERLOCK_SIM_SEEDS").unwrap_or(500);
    let first = env_u64("PEERLOCK_SIM_FIRST").unwrap_or(0);
    let t0 = Instant::now();
    let outcomes = run_many((first..first + n).collect(), SimConfig::from_seed);
    eprintln!("{} in {:?}", summary(&outcomes), t0.elapsed());
    for o in &outcomes {
        assert!(
            o.ops >= 200,
            "seed {} ran only {} operations",
            o.config.seed,
            o.ops
        );
        assert!(o.sim_time >= Duration::from_secs(60));
    }
    let failures: Vec<String> = outcomes.iter().filter_map(SimOutcome::failure).collect();
    // Issue 11: every primitive was used, in most seeds.
    let using = |f: fn(&super::check::Stats) -> bool| {
        outcomes.iter().filter(|o| f(&o.report.stats)).count()
    };
    let used = [
        ("permits", using(|s| s.claims_grants[0] > 0)),
        ("read locks", using(|s| s.claims_grants[1] > 0)),
        ("write locks", using(|s| s.claims_grants[2] > 0)),
        ("multi-locks", using(|s| s.claims_grants[3] > 0)),
        ("leadership", using(|s| s.leader_terms > 0)),
    ];
    for (what, seeds) in used {
        assert!(
            n < 50 || seeds * 10 >= outcomes.len() * 9,
            "{what} granted in only {seeds} of {} seeds",
            outcomes.len()
        );
    }
    for o in outcomes.iter().filter(|o| !o.report.is_ok()) {
        let first = o
            .report
            .violations
            .first()
            .map(|v| v.to_string())
            .unwrap_or_default();
        eprintln!(
            "FAILED seed {} ({} voters, durable {}, {:?}): {}",
            o.config.seed,
            o.config.voters,
            o.config.durable,
            o.config.skew,
            first.chars().take(300).collect::<String>()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {n} seeds failed; the first:\n{}",
        failures.len(),
        failures.first().map_or("", String::as_str)
    );
    let both = outcomes.iter().any(|o| o.config.voters == 3)
        && outcomes.iter().any(|o| o.config.voters == 5);
    assert!(both || n < 10, "the seeds cover 3 and 5 voters");
    // Issue 9: at least a fifth of the seeds run with learners, whose
    // leader replaces silent voters.
    let membership = outcomes
        .iter()
        .filter(|o| o.config.max_voters < o.config.voters)
        .count();
    assert!(
        n < 50 || membership * 5 >= outcomes.len(),
        "only {membership} of {} seeds exercise membership",
        outcomes.len()
    );
    use super::nemesis::FaultKind;
    // And the membership nemesis ran every one of its steps.
    let membership_steps = [
        FaultKind::Join,
        FaultKind::Leave,
        FaultKind::BlankRestart,
        FaultKind::DiskRestartLate,
        FaultKind::IsolateVoter,
        FaultKind::BurstUp,
        FaultKind::BurstDown,
        FaultKind::TransferInJoint,
    ];
    let missing: Vec<&FaultKind> = membership_steps
        .iter()
        .filter(|k| !outcomes.iter().any(|o| o.faults.contains_key(k)))
        .collect();
    assert!(
        n < 100 || missing.is_empty(),
        "no seed ran the membership steps {missing:?}"
    );
    // Leaving and removal (issue 9): in a good share of the membership
    // seeds a graceful stop leaves, a left node starts blank, a voter cut
    // off past `dead_after` is removed and told so at the heal, a node
    // back from an old disk is refused as removed, and removed nodes join
    // again under a new id.
    let seeds_with =
        |f: fn(&super::rejoin::Churn) -> u64| outcomes.iter().filter(|o| f(&o.churn) > 0).count();
    let cases = [
        ("finished a graceful leave", seeds_with(|c| c.left)),
        (
            "started blank after leaving",
            seeds_with(|c| c.left_blank_starts),
        ),
        ("removed while cut off", seeds_with(|c| c.removed_live)),
        (
            "removed, back from an old disk",
            seeds_with(|c| c.removed_from_disk),
        ),
        ("rejoined after removal", seeds_with(|c| c.rejoined)),
    ];
    eprintln!("membership seeds {membership}; seeds where a node {cases:?}");
    for (what, seeds) in cases {
        assert!(
            n < 100 || seeds * 10 >= membership,
            "a node {what} in only {seeds} of {membership} membership seeds"
        );
    }
    use super::run::Workload;
    let every_mode = [
        Workload::Mixed,
        Workload::MassTimeouts,
        Workload::LargeTable,
    ]
    .iter()
    .all(|w| outcomes.iter().any(|o| o.config.workload == *w))
        && [
            FaultKind::Suspend,
            FaultKind::Shutdown,
            FaultKind::ShutdownInboundCut,
        ]
        .iter()
        .all(|k| outcomes.iter().any(|o| o.faults.contains_key(k)));
    assert!(
        every_mode || n < 100,
        "the seeds cover every workload, suspends and graceful shutdowns"
    );
}

/// Nondeterminism caught the day it creeps in: a sample of seeds run twice
/// gives the same trace.
#[test]
fn the_same_seed_gives_the_same_trace() {
    use super::run::Workload;
    // And a seed of each workload that spawns tasks in bulk.
    let first = |w: Workload| {
        (0..1_000u64)
            .find(|s| SimConfig::from_seed(*s).workload == w)
            .expect("the seeds draw every workload")
    };
    let membership = (100..1_000u64)
        .find(|s| SimConfig::from_seed(*s).membership())
        .expect("the seeds draw membership runs");
    let seeds: Vec<u64> = vec![
        7,
        1_000_003,
        42_424_242,
        first(Workload::MassTimeouts),
        first(Workload::LargeTable),
        membership,
    ];
    let a = run_many(seeds.clone(), SimConfig::from_seed);
    let b = run_many(seeds, SimConfig::from_seed);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.trace_hash, y.trace_hash,
            "seed {} ran differently twice: nondeterminism in the simulator or the driver",
            x.config.seed
        );
        assert!(x.ops > 0);
    }
}

/// The soak: `PEERLOCK_SIM_SEEDS=100000 cargo test --release -p peerlock-core --features sim stress_ -- --ignored --nocapture`
#[test]
#[ignore = "long soak; run by hand (see the README's Tested faults)"]
fn stress_many_seeds() {
    let n = env_u64("PEERLOCK_SIM_SEEDS").unwrap_or(100_000);
    let first = env_u64("PEERLOCK_SIM_FIRST").unwrap_or(1_000_000);
    let t0 = Instant::now();
    let mut failures = Vec::new();
    let mut all = Vec::new();
    for chunk in (first..first + n).collect::<Vec<_>>().chunks(1_000) {
        let outcomes = run_many(chunk.to_vec(), SimConfig::from_seed);
        for f in outcomes.iter().filter_map(SimOutcome::failure) {
            eprintln!("{f}");
            failures.push(f);
        }
        all.extend(outcomes.into_iter().map(|mut o| {
            o.report.violations.truncate(3);
            o
        }));
        eprintln!(
            "{} seeds done in {:?}, {} failed",
            all.len(),
            t0.elapsed(),
            failures.len()
        );
    }
    eprintln!("{} in {:?}", summary(&all), t0.elapsed());
    assert!(
        failures.is_empty(),
        "{} seeds failed; the first:\n{}",
        failures.len(),
        failures[0]
    );
}
/// Regression: seed 94 made raft-rs panic ("applied(..) is out of range
/// [prev_applied, min(committed, persisted)]") when the driver reported a
/// snapshot applied before its Ready was durable (`Driver::advance_applied`).
#[test]
fn regression_seed_94_snapshot_applied_only_once_durable() {
    let o = run(SimConfig::from_seed(94).classic());
    assert!(o.report.is_ok(), "{}", o.failure().unwrap_or_default());
}

/// Regressions found by the membership properties (issue 9): seed 23 (M3)
/// had a node restarted from disk replay the configuration changes after
/// its snapshot on top of the latest stored configuration; forced
/// membership seed 130 had a joiner without its snapshot tell every
/// founder to join as new after a power cut, and the cluster never came
/// back (liveness); forced membership seed 1571 (M4) had leadership move to
/// a demoted voter while a leave-joint was in flight, and it led on as a
/// learner (raft-rs does not step it down; the planner now hands over).
/// With removal and rejoin simulated: forced membership seed 3 (M4) had a
/// learner removed while it was down come back from its disk and wait in
/// silence as a non-member (learners now probe their peers); seed 5 (S6, a
/// log divergence) had a founder whose id was removed told to join, and
/// join under a new id on top of its old log (it now stops `Removed` and
/// starts blank); seed 672 (M4) had a joiner removed before its first
/// snapshot come back with no table, and never hear `Removed` (it probes,
/// and trusts, the members it joined through). Forced membership seeds
/// 149, 733 and 3137: after a power cut the founders could not restart
/// once most founding voters had left (the hello round counted the
/// founding voters; it counts the recorded ones now).
#[test]
fn regression_membership_seeds() {
    let o = run(SimConfig::from_seed(23));
    assert!(o.report.is_ok(), "{}", o.failure().unwrap_or_default());
    for seed in [130, 1571, 3, 5, 672, 149, 733, 3137] {
        let o = run(SimConfig::from_seed(seed).membership_run());
        assert!(o.report.is_ok(), "{}", o.failure().unwrap_or_default());
    }
}

/// Regression (first seen as seed 331 of an earlier workload): a follower
/// stayed behind forever once the network lost the snapshot the leader
/// sent it, since raft-rs waits for `report_snapshot` before sending
/// another (`Driver::retry_lost_snapshots`).
#[test]
fn regression_a_lost_snapshot_is_sent_again() {
    let rt = super::scenario::paused_runtime();
    rt.block_on(async {
        let (w, lead, lag) = super::scenario::follower_behind_compaction(5).await;
        // The follower is now behind the leader's compacted log: it can
        // only catch up by snapshot, and the first one is lost.
        w.net.drop_snapshots(1);
        w.net.heal();
        let target = lead.state_hash().await.unwrap();
        let caught_up = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if lag.state_hash().await.unwrap().0 >= target.0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert_eq!(w.net.snapshots_to_drop(), 0, "a snapshot was sent and lost");
        assert!(
            caught_up.is_ok(),
            "the follower never caught up after its snapshot was lost"
        );
    });
}

/// Seeds the soak flagged where the judge, not peerlock, was wrong: a
/// handoff check whose holder lost its lock before the crash (1007192), a
/// `Busy` while another acquire was retried under a new session (1008812),
/// a keepalive sent a tick late (1014593). They must pass.
#[test]
fn regression_soak_seeds_pass() {
    let outs = run_many(vec![1_007_192, 1_008_812, 1_014_593], |s| {
        SimConfig::from_seed(s).classic()
    });
    for o in outs {
        assert!(o.report.is_ok(), "{}", o.failure().unwrap_or_default());
    }
}

/// Issue 8 item 7: graceful shutdown while the links into the closing node
/// are cut (`FaultKind::ShutdownInboundCut`). With the driver of 5f959e9
/// these seeds broke S4: the close committed and the lock was granted on
/// another node while the closing node, hearing nothing back, still had a
/// guard reading `is_held() == true`. Shutdown now revokes this node's
/// guards before it proposes the close.
#[test]
fn issue_8_shutdown_under_an_inbound_cut_keeps_one_holder() {
    use super::nemesis::FaultKind;
    let outs = run_many(vec![4, 5, 6, 12], SimConfig::from_seed);
    for o in outs {
        assert!(
            o.faults.contains_key(&FaultKind::ShutdownInboundCut),
            "seed {} no longer shuts a node down under a cut: pick new seeds",
            o.config.seed
        );
        assert!(o.report.is_ok(), "{}", o.failure().unwrap_or_default());
    }
}

/// Every seed as a membership run (issue 9), for the membership nemesis
/// and properties M1 to M5:
/// `PEERLOCK_SIM_SEEDS=1000 cargo test --release -p peerlock-core --features sim membership_soak -- --ignored --nocapture`
#[test]
#[ignore = "long soak; run by hand"]
fn membership_soak() {
    let n = env_u64("PEERLOCK_SIM_SEEDS").unwrap_or(1_000);
    let first = env_u64("PEERLOCK_SIM_FIRST").unwrap_or(0);
    let t0 = Instant::now();
    let outcomes = run_many((first..first + n).collect(), |s| {
        SimConfig::from_seed(s).membership_run()
    });
    eprintln!("{} in {:?}", summary(&outcomes), t0.elapsed());
    let failures: Vec<String> = outcomes.iter().filter_map(SimOutcome::failure).collect();
    // Issue 11: every primitive was used, in most seeds.
    let using = |f: fn(&super::check::Stats) -> bool| {
        outcomes.iter().filter(|o| f(&o.report.stats)).count()
    };
    let used = [
        ("permits", using(|s| s.claims_grants[0] > 0)),
        ("read locks", using(|s| s.claims_grants[1] > 0)),
        ("write locks", using(|s| s.claims_grants[2] > 0)),
        ("multi-locks", using(|s| s.claims_grants[3] > 0)),
        ("leadership", using(|s| s.leader_terms > 0)),
    ];
    for (what, seeds) in used {
        assert!(
            n < 50 || seeds * 10 >= outcomes.len() * 9,
            "{what} granted in only {seeds} of {} seeds",
            outcomes.len()
        );
    }
    for o in outcomes.iter().filter(|o| !o.report.is_ok()) {
        let first = o
            .report
            .violations
            .first()
            .map(|v| v.to_string())
            .unwrap_or_default();
        eprintln!(
            "FAILED seed {}: {}",
            o.config.seed,
            first.chars().take(400).collect::<String>()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {n} membership seeds failed; the first:\n{}",
        failures.len(),
        failures.first().map_or("", String::as_str)
    );
}
