//! One simulated run: build the cluster a seed describes, run clients and
//! the nemesis for the run's simulated time, heal, check liveness, and
//! hand the history to the checker.
//!
//! Everything runs on one thread, in a current-thread runtime whose clock
//! is paused and jumps to the next timer whenever every task waits, so a
//! minute of simulated time takes a fraction of a second, and the same seed
//! gives the same run (compare [`SimOutcome::trace_hash`]).

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::check::{self, Property, Report};
use super::history::{History, Params};
use super::nemesis::{calm, FaultCounts};
use super::rng::Rng;
use super::world::World;
use crate::config::NodeConfig;

/// How far clocks may run from true time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skew {
    /// Every clock runs true.
    None,
    /// Rates within ±5 %: inside the lease margin's bound (a margin of
    /// TTL/10 covers a ratio of up to 1/0.9 ≈ 1.11 between the leader's
    /// and the holder's clock; 1.05/0.95 ≈ 1.105), so S4 is promised.
    WithinBound,
    /// Rates within ±30 %: beyond the bound. S4 is not promised; S1 to S3
    /// must still hold.
    BeyondBound,
}

/// What the clients do, besides contending for a few locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Clients contend for a few locks (acquire, try, holder reads).
    Mixed,
    /// As `Mixed`, and now and then a burst of many waiters queues on one
    /// lock with one short timeout, so they all time out together.
    MassTimeouts,
    /// As `Mixed`, and every node also holds a few hundred locks of its
    /// own for the whole run, so the table (and every snapshot) is large,
    /// and a crash or suspend expires hundreds of grants at once.
    LargeTable,
}

/// What one run simulates.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed every choice is drawn from.
    pub seed: u64,
    /// Voters (3 or 5).
    pub voters: usize,
    /// Durable storage (crashes keep what was fsynced) or in memory
    /// (a crashed node is gone for good, and its restart refused).
    pub durable: bool,
    /// Clock skew.
    pub skew: Skew,
    /// Simulated time of faults and load (healing and checks come after).
    pub duration: Duration,
    /// The session TTL.
    pub ttl: Duration,
    /// The lock-delay after an expiry.
    pub lock_delay: Duration,
    /// Whether to inject faults at all.
    pub faults: bool,
    /// What the clients do.
    pub workload: Workload,
    /// Whether the nemesis may also suspend machines and shut nodes down
    /// gracefully (off only to replay seeds recorded before these faults).
    pub extended_faults: bool,
    /// How many of the nodes vote (the rest are learners); below `voters`
    /// in the membership runs, where the leader replaces voters silent for
    /// `dead_after` with learners (issue 9).
    pub max_voters: usize,
    /// The membership's `dead_after` (short in the membership runs, so the
    /// nemesis's crashes and partitions outlast it).
    pub dead_after: Duration,
    /// Every disk's fsync latency, when set; else drawn per run (0.2 to 3
    /// ms). The hunt for `AckBeforeFsync` sets a slow disk, where the
    /// window that bug opens is wide enough to be hit within a few seeds.
    pub fsync_latency: Option<Duration>,
}

impl SimConfig {
    /// The run seed `seed` describes: voters, storage, skew and lock-delay
    /// are drawn from it too.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x5EED_0FC0_FFEE);
        let voters = if rng.chance(500) { 3 } else { 5 };
        let durable = rng.chance(750);
        let skew = match rng.below(10) {
            0..=1 => Skew::None,
            2..=7 => Skew::WithinBound,
            _ => Skew::BeyondBound,
        };
        let lock_delay = if rng.chance(500) {
            Duration::ZERO
        } else {
            Duration::from_millis(rng.between(100, 800))
        };
        // Drawn after the older choices, so those stay what they were.
        let workload = match rng.below(20) {
            0..=2 => Workload::MassTimeouts,
            3..=4 => Workload::LargeTable,
            _ => Workload::Mixed,
        };
        // Membership runs, drawn from a stream of their own so the older
        // choices stay what they were: five durable nodes of which three
        // vote, with voters replaced after 2 TTLs of silence (issue 9). A
        // crashed durable node comes back, so a majority of the voters
        // always returns; in memory it would not.
        let mut m = Rng::new(seed ^ 0x4D45_4D42_4552_5331);
        let membership = voters == 5 && durable && m.below(3) < 2;
        let ttl = Duration::from_secs(2);
        Self {
            max_voters: if membership { 3 } else { voters },
            dead_after: if membership {
                ttl * 2
            } else {
                crate::config::MembershipConfig::default().dead_after
            },
            seed,
            voters,
            durable,
            skew,
            duration: Duration::from_secs(60),
            ttl,
            lock_delay,
            faults: true,
            workload,
            extended_faults: true,
            fsync_latency: None,
        }
    }

    /// This seed's run made a membership run: five durable nodes of which
    /// three vote, `dead_after` two TTLs (for the membership teeth).
    pub fn membership_run(mut self) -> Self {
        self.voters = 5;
        self.durable = true;
        self.max_voters = 3;
        self.dead_after = self.ttl * 2;
        self
    }

    /// The run this seed described before the large-table and
    /// mass-timeout workloads and the suspend and shutdown faults were
    /// added (for regression seeds found then).
    pub fn classic(mut self) -> Self {
        self.workload = Workload::Mixed;
        self.extended_faults = false;
        self
    }

    /// Whether this is a membership run: learners beside the voters, which
    /// the leader promotes in place of silent voters (issue 9).
    pub fn membership(&self) -> bool {
        self.max_voters < self.voters
    }

    /// The command that replays this seed.
    pub fn replay_command(&self) -> String {
        format!(
            "PEERLOCK_SIM_SEED={} cargo test --release -p peerlock-core --features sim sim::tests::replay_one_seed -- --nocapture",
            self.seed
        )
    }
}

/// What a run saw.
#[derive(Debug)]
pub struct SimOutcome {
    /// The run's configuration.
    pub config: SimConfig,
    /// The checker's verdict, with liveness failures and log divergences
    /// added as violations.
    pub report: Report,
    /// A hash of everything the run recorded: the same seed must give the
    /// same hash.
    pub trace_hash: u64,
    /// Faults injected.
    pub faults: FaultCounts,
    /// Client operations invoked.
    pub ops: u64,
    /// Simulated time the run took, in all.
    pub sim_time: Duration,
    /// Messages delivered and dropped.
    pub messages: (u64, u64),
    /// Blank restarts of crashed in-memory nodes kept off their old id:
    /// joined under a new one (issue 9), or refused.
    pub blank_refused: u64,
    /// Graceful leaves, `left` marks, removals and rejoins (issue 9).
    pub churn: super::rejoin::Churn,
    /// Whether the voters at the end differ from those at the start: the
    /// leader replaced a silent voter (issue 9).
    pub voters_changed: bool,
}

impl SimOutcome {
    /// A failure message naming the seed and the replay command.
    pub fn failure(&self) -> Option<String> {
        if self.report.is_ok() {
            return None;
        }
        Some(format!(
            "seed {} ({:?}) violated:\n{}replay: {}",
            self.config.seed,
            self.config,
            self.report,
            self.config.replay_command()
        ))
    }
}

/// Runs one seed to the end (on this thread).
pub fn run(config: SimConfig) -> SimOutcome {
    crate::raft::seed_thread_random(Some(config.seed.wrapping_mul(31).wrapping_add(7)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build();
    let outcome = match rt {
        Ok(rt) => rt.block_on(simulate(config.clone())),
        Err(e) => {
            let mut report = Report::default();
            report.add(Property::Liveness, None, format!("no runtime: {e}"));
            SimOutcome {
                config,
                report,
                trace_hash: 0,
                faults: FaultCounts::new(),
                ops: 0,
                sim_time: Duration::ZERO,
                messages: (0, 0),
                blank_refused: 0,
                churn: Default::default(),
                voters_changed: false,
            }
        }
    };
    crate::raft::seed_thread_random(None);
    outcome
}

fn node_config(c: &SimConfig) -> NodeConfig {
    NodeConfig {
        session_ttl: c.ttl,
        lock_delay: c.lock_delay,
        tick: NodeConfig::tick_for_ttl(c.ttl),
        compact_after: 300,
        max_voters: c.max_voters,
        membership: crate::config::MembershipConfig {
            dead_after: c.dead_after,
            stabilization: Duration::from_secs(1),
            ..Default::default()
        },
        // Drawn per start in membership runs (`World::params`); off in the
        // others, whose graceful stops come back from the same disk (the
        // StatefulSet mode).
        leave_on_shutdown: false,
        ..NodeConfig::default()
    }
}

async fn simulate(c: SimConfig) -> SimOutcome {
    let mut rng = Rng::new(c.seed);
    let rates: Vec<f64> = (0..c.voters)
        .map(|_| match c.skew {
            Skew::None => 1.0,
            Skew::WithinBound => rng.float(0.95, 1.05),
            Skew::BeyondBound => rng.float(0.7, 1.3),
        })
        .collect();
    let max_drift_ppm = rates
        .iter()
        .map(|r| ((r - 1.0).abs() * 1e6) as u64)
        .max()
        .unwrap_or(0);
    let cfg = node_config(&c);
    let mut world = World::new(rng.fork(), c.voters, cfg.clone(), c.durable, rates);
    world.workload = c.workload;
    if let Some(f) = c.fsync_latency {
        world.fsync_latency = f;
    }
    world.extended_faults = c.extended_faults;
    if c.workload == Workload::LargeTable {
        // Two thousand held locks in all (kept small enough that a seed
        // stays fast: each is a proposal, and in every snapshot).
        world.bulk_per_node = (2_000 / c.voters).max(1);
    }
    world.net.set_weather(calm());
    if c.membership() {
        world.membership = Some(Rng::new(c.seed ^ 0x4D45_4D42_4E45_4D31));
    }
    {
        // The founders' configuration: the first `max_voters` ids vote.
        let mut ids: Vec<u64> = world.members.iter().map(|m| m.id.0).collect();
        ids.sort_unstable();
        let mut t = world.shared.mtrace.lock();
        t.dead_after = c.dead_after;
        t.initial.voters = ids.iter().take(c.max_voters).copied().collect();
        t.initial.learners = ids.iter().skip(c.max_voters).copied().collect();
    }
    let mut report = Report::default();
    let mut faults = FaultCounts::new();
    if let Err(e) = world.start_all().await {
        report.add(
            Property::Liveness,
            None,
            format!("the cluster did not start: {e}"),
        );
    }
    let initial_voters = voter_set(&world);
    let end = world.shared.start + c.duration;
    // The nemesis, until the run's time is up.
    tokio::time::sleep(Duration::from_millis(rng.between(500, 2_000))).await;
    while c.faults && tokio::time::Instant::now() + Duration::from_secs(3) < end {
        if let Err(e) = world.one_fault(&mut faults).await {
            report.add(Property::S6Durability, None, e);
        }
        let gap = Duration::from_millis(rng.between(0, 1_500));
        world.idle(gap).await;
    }
    world
        .idle(end.saturating_duration_since(tokio::time::Instant::now()))
        .await;

    // Heal everything, then the liveness promises.
    world.heal();
    world.net.set_weather(calm());
    for i in 0..world.nodes.len() {
        world.set_suspended(i, false);
        world.set_paused(i, false);
    }
    // Nodes the cluster removed learn it from their peers now, and start
    // again blank with the others.
    world.settle_removed().await;
    if let Err(e) = world.restart_all().await {
        report.add(Property::Liveness, None, e);
    }
    super::liveness::check(&mut world, &cfg, max_drift_ppm, &mut report).await;
    if c.membership() {
        let within = c.dead_after + cfg.membership.stabilization + Duration::from_secs(5);
        super::mliveness::check(&mut world, c.max_voters, within, &mut report).await;
    }
    if !report.violates(Property::Liveness) {
        super::liveness::handoff_after_crash(&mut world, &cfg, c.skew, max_drift_ppm, &mut report)
            .await;
    }

    // Stop the clients, let the dust settle, collect.
    world.shared.stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let finals = super::liveness::converge(&mut world, &mut report).await;
    for n in &mut world.nodes {
        for t in n.clients.drain(..) {
            t.abort();
        }
    }
    let sim_time = world.shared.now();
    let mut history = std::mem::take(&mut *world.shared.history.lock());
    let log = std::mem::take(&mut *world.shared.log.lock());
    history.log = log.entries.into_values().collect();
    history.finals = finals;
    history.params = Params {
        ttl: c.ttl,
        lock_delay: c.lock_delay,
        max_clock_drift_ppm: max_drift_ppm,
        expect_s4: c.skew != Skew::BeyondBound,
    };
    if let Ok(path) = std::env::var("PEERLOCK_SIM_DUMP") {
        let mut text = String::new();
        for e in &history.events {
            let _ = writeln!(text, "{e:?}");
        }
        for c in &history.log {
            let _ = writeln!(text, "{c:?}");
        }
        let t = world.shared.mtrace.lock();
        for c in &t.confs {
            let _ = writeln!(text, "{c:?}");
        }
        for l in &t.leaders {
            let _ = writeln!(text, "{l:?}");
        }
        for r in &t.runs {
            let _ = writeln!(text, "{r:?}");
        }
        for d in &t.down {
            let _ = writeln!(text, "{d:?}");
        }
        let _ = std::fs::write(path, text);
    }
    for d in log.divergences {
        report.add(Property::S6Durability, None, format!("log divergence: {d}"));
    }
    super::mcheck::check(&world.shared.mtrace.lock(), &mut report);
    let checked = check::check(&history);
    report.violations.extend(checked.violations);
    report.skipped.extend(checked.skipped);
    report.stats = checked.stats;
    let messages = world.net.counts();
    let voters_changed = voter_set(&world) != initial_voters;
    for n in &world.nodes {
        if let Some(h) = &n.handle {
            h.abort();
        }
    }
    SimOutcome {
        trace_hash: trace_hash(&history),
        ops: report.stats.ops,
        config: c,
        report,
        faults,
        sim_time,
        messages,
        blank_refused: world.blank_refused,
        churn: world.churn,
        voters_changed,
    }
}

/// A hash of the history and the log: equal runs give equal hashes.
fn trace_hash(h: &History) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut line = String::new();
    for e in &h.events {
        line.clear();
        let _ = write!(line, "{e:?}");
        line.hash(&mut hasher);
    }
    for c in &h.log {
        line.clear();
        let _ = write!(line, "{c:?}");
        line.hash(&mut hasher);
    }
    for f in &h.finals {
        (f.applied, f.hash).hash(&mut hasher);
    }
    hasher.finish()
}

/// The voters the most advanced running node applied last.
fn voter_set(world: &World) -> std::collections::BTreeSet<crate::types::NodeId> {
    world
        .nodes
        .iter()
        .filter_map(|n| n.handle.as_ref().map(|h| h.status()))
        .max_by_key(|s| s.applied_index)
        .map(|s| s.members.iter().filter(|m| m.voter).map(|m| m.id).collect())
        .unwrap_or_default()
}
