//! The nemesis: a schedule of faults drawn from the seed, each applied,
//! held for a while, and healed. Targets are a random node, the current
//! leader, or the node of a client that holds a lock right now.

use std::collections::BTreeMap;
use std::time::Duration;

use super::net::LinkFaults;
use super::world::World;
use crate::types::NodeId;

/// The kinds of fault, for the run's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// kill -9 one node, restart it later (durable) or never (in memory).
    Crash,
    /// Every node at once (durable runs: a power cut).
    CrashAll,
    /// SIGSTOP for 0.5 to 3 TTLs.
    Pause,
    /// One node cut off.
    Isolate,
    /// A minority and a majority.
    Split,
    /// Two sides that only one node can reach both of.
    Bridge,
    /// Each node reaches only its ring neighbours.
    Ring,
    /// Some links drop in one direction only.
    OneWay,
    /// Loss, duplication and delay (with reordering) on every link.
    LinkChaos,
    /// The leader hands over to another node.
    LeaderTransfer,
    /// A node's disk fails; it stops, and restarts on a working disk.
    StorageFailure,
    /// The machine is suspended for 0.5 to 3 TTLs: process frozen and
    /// monotonic clock stopped, boot time running on (issue 8 item 8).
    Suspend,
    /// Graceful shutdown under load; durable nodes restart from disk later.
    Shutdown,
    /// Graceful shutdown while every link into the node is cut (it can
    /// propose its close but hears nothing back; issue 8 item 7).
    ShutdownInboundCut,
    /// Membership runs (issue 9): a new node joins at run time.
    Join,
    /// A node shuts down gracefully and never returns.
    Leave,
    /// kill -9, then a start with an empty data directory (a new id).
    BlankRestart,
    /// kill -9 of a voter, restarted from its disk after `dead_after`.
    DiskRestartLate,
    /// A voter cut off past `dead_after`, then healed.
    IsolateVoter,
    /// Two or three nodes join at once.
    BurstUp,
    /// Two nodes stop for good at once.
    BurstDown,
    /// A voter cut off past `dead_after`; while the leader replaces it in
    /// a joint configuration, leadership moves to another voter.
    TransferInJoint,
}

/// How many of each fault a run injected.
pub type FaultCounts = BTreeMap<FaultKind, u64>;

/// Calm weather: small, even delays (no loss).
pub(crate) fn calm() -> LinkFaults {
    LinkFaults {
        loss_permille: 0,
        dup_permille: 0,
        delay_min: Duration::from_micros(100),
        delay_max: Duration::from_micros(1_500),
    }
}

impl World {
    fn id(&self, i: usize) -> NodeId {
        self.nodes.get(i).map_or(NodeId(0), |n| n.member.id)
    }

    fn cut_both(&self, a: usize, b: usize) {
        self.cut(self.id(a), self.id(b));
        self.cut(self.id(b), self.id(a));
    }

    /// Cuts every link between the sides.
    fn split(&self, side: &[usize]) {
        let n = self.nodes.len();
        for a in side {
            for b in (0..n).filter(|b| !side.contains(b)) {
                self.cut_both(*a, b);
            }
        }
    }

    /// A target: the leader, a holder's node, or any node.
    fn target(&mut self) -> usize {
        let n = self.nodes.len() as u64;
        match self.rng.below(10) {
            0..=3 => self.leader().unwrap_or_else(|| self.rng.below(n) as usize),
            4..=6 => match self.holder_node() {
                Some(i) => i,
                None => self.rng.below(n) as usize,
            },
            _ => self.rng.below(n) as usize,
        }
    }

    /// A random subset of `k` nodes.
    fn subset(&mut self, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..self.nodes.len()).collect();
        let mut out = Vec::new();
        while out.len() < k && !all.is_empty() {
            let i = self.rng.below(all.len() as u64) as usize;
            out.push(all.swap_remove(i));
        }
        out
    }

    /// Applies one fault drawn from the seed, holds it, heals it.
    /// Returns what it was, or an error message for a broken promise seen
    /// on the way (a blank node accepted again).
    pub(crate) async fn one_fault(&mut self, counts: &mut FaultCounts) -> Result<(), String> {
        if self.wants_membership_fault() {
            return self.membership_fault(counts).await;
        }
        let n = self.nodes.len();
        let ttl = self.config.session_ttl;
        let mut kinds = vec![
            FaultKind::Crash,
            FaultKind::Pause,
            FaultKind::Pause,
            FaultKind::Isolate,
            FaultKind::Isolate,
            FaultKind::Split,
            FaultKind::Bridge,
            FaultKind::Ring,
            FaultKind::OneWay,
            FaultKind::LinkChaos,
            FaultKind::LeaderTransfer,
        ];
        if self.durable {
            kinds.extend([
                FaultKind::CrashAll,
                FaultKind::Crash,
                FaultKind::StorageFailure,
            ]);
        }
        if self.extended_faults {
            kinds.extend([
                FaultKind::Suspend,
                FaultKind::Suspend,
                FaultKind::Shutdown,
                FaultKind::ShutdownInboundCut,
            ]);
        }
        let kind = self.rng.pick(&kinds).copied().unwrap_or(FaultKind::Isolate);
        let hold = Duration::from_millis(self.rng.between(300, 4_000));
        *counts.entry(kind).or_insert(0) += 1;
        let mut violation = Ok(());
        match kind {
            FaultKind::Crash => {
                let i = self.target();
                let gone = self.nodes.iter().filter(|x| x.gone).count();
                // In memory a crash is for good: keep a majority alive.
                if !self.durable && gone + 1 > (n - 1) / 2 {
                    self.set_paused(i, true);
                    self.idle(hold).await;
                    self.set_paused(i, false);
                    return Ok(());
                }
                self.crash(i);
                self.idle(hold).await;
                violation = self.restart(i).await.map(|_| ());
            }
            FaultKind::CrashAll => {
                for i in 0..n {
                    self.crash(i);
                }
                let d = Duration::from_millis(self.rng.between(50, 1_500));
                self.idle(d).await;
                violation = self.restart_all().await;
            }
            FaultKind::Suspend => {
                let i = self.target();
                let d = ttl.mul_f64(self.rng.float(0.5, 3.0));
                self.set_suspended(i, true);
                self.idle(d).await;
                self.set_suspended(i, false);
            }
            FaultKind::Shutdown | FaultKind::ShutdownInboundCut => {
                let i = self.target();
                let gone = self.nodes.iter().filter(|x| x.gone).count();
                // In memory a stopped node is gone for good: keep a
                // majority alive (as for crashes).
                if !self.is_up(i) || (!self.durable && gone + 1 > (n - 1) / 2) {
                    self.idle(hold).await;
                    return Ok(());
                }
                if kind == FaultKind::ShutdownInboundCut {
                    for j in (0..n).filter(|j| *j != i) {
                        self.cut(self.id(j), self.id(i));
                    }
                }
                self.shut_down(i).await;
                self.heal();
                self.idle(hold).await;
                if self.durable {
                    violation = self.restart(i).await.map(|_| ());
                }
            }
            FaultKind::Pause => {
                let i = self.target();
                let d = ttl.mul_f64(self.rng.float(0.5, 3.0));
                self.set_paused(i, true);
                self.idle(d).await;
                self.set_paused(i, false);
            }
            FaultKind::Isolate => {
                let i = self.target();
                self.split(&[i]);
                self.idle(hold).await;
                self.heal();
            }
            FaultKind::Split => {
                let k = (n - 1) / 2;
                let side = self.subset(k.max(1));
                self.split(&side);
                self.idle(hold).await;
                self.heal();
            }
            FaultKind::Bridge => {
                let order = self.subset(n);
                if let Some((&bridge, rest)) = order.split_first() {
                    let (left, right) = rest.split_at(rest.len() / 2);
                    for a in left {
                        for b in right {
                            self.cut_both(*a, *b);
                        }
                    }
                    let _ = bridge;
                }
                self.idle(hold).await;
                self.heal();
            }
            FaultKind::Ring => {
                let order = self.subset(n);
                for x in 0..n {
                    for y in (x + 1)..n {
                        let adjacent = y == x + 1 || (x == 0 && y == n - 1);
                        if !adjacent {
                            if let (Some(a), Some(b)) = (order.get(x), order.get(y)) {
                                self.cut_both(*a, *b);
                            }
                        }
                    }
                }
                self.idle(hold).await;
                self.heal();
            }
            FaultKind::OneWay => {
                let i = self.target();
                let outbound = self.rng.chance(500);
                for j in (0..n).filter(|j| *j != i) {
                    if outbound {
                        self.cut(self.id(i), self.id(j));
                    } else {
                        self.cut(self.id(j), self.id(i));
                    }
                }
                self.idle(hold).await;
                self.heal();
            }
            FaultKind::LinkChaos => {
                let max = self.rng.between(2, 80);
                self.net.set_weather(LinkFaults {
                    loss_permille: self.rng.between(0, 300),
                    dup_permille: self.rng.between(0, 100),
                    delay_min: Duration::from_micros(100),
                    delay_max: Duration::from_millis(max),
                });
                self.idle(hold).await;
                self.net.set_weather(calm());
            }
            FaultKind::LeaderTransfer => {
                if let Some(l) = self.leader() {
                    let to = (l + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                    if let Some(h) = self.nodes.get(l).and_then(|x| x.handle.clone()) {
                        h.transfer_leader(self.id(to));
                    }
                }
                self.idle(hold).await;
            }
            FaultKind::StorageFailure => {
                let i = self.target();
                if let Some(x) = self.nodes.get(i) {
                    x.disk.set_failing(true);
                }
                // Ground truth: a node whose disk fails stops answering.
                self.trace_down(i, "disk", true);
                self.idle(hold).await;
                self.trace_down(i, "disk", false);
                // The node stopped on its failed write (or will have to):
                // its process is restarted on a working disk.
                self.crash(i);
                violation = self.restart(i).await.map(|_| ());
            }
            // Membership steps (`membership_fault`), never drawn here.
            _ => {}
        }
        violation
    }

    /// Restarts every crashed node (durable runs), together, since each
    /// needs a majority to answer its hello round.
    pub(crate) async fn restart_all(&mut self) -> Result<(), String> {
        let mut tasks = Vec::new();
        for i in 0..self.nodes.len() {
            if self.is_up(i) || self.nodes.get(i).is_none_or(|x| x.gone) {
                continue;
            }
            if let Some(t) = self.spawn_start(i) {
                tasks.push((i, t));
            }
        }
        for (i, t) in tasks {
            match t.await {
                Ok(Ok(h)) => {
                    self.record_run(i, &h);
                    if let Some(x) = self.nodes.get_mut(i) {
                        x.handle = Some(h);
                        x.blank_next = false;
                        if x.removed_at.take().is_some() {
                            self.churn.rejoined += 1;
                        }
                    }
                    self.spawn_clients(i);
                }
                Ok(Err(crate::error::Error::Removed)) => {
                    // Removed while down: its disk is marked left; the
                    // next start (M4's wait tends it) is blank.
                    self.churn.removed_from_disk += 1;
                    let at = self.shared.now();
                    if let Some(x) = self.nodes.get_mut(i) {
                        x.removed_at = Some(at);
                        self.net.leave(x.member.id);
                    }
                }
                Ok(Err(e)) => {
                    if std::env::var_os("PEERLOCK_SIM_DEBUG").is_some() {
                        eprintln!("{:?}: node {i} did not restart: {e}", self.shared.now());
                    }
                    if let Some(x) = self.nodes.get(i) {
                        self.net.leave(x.member.id);
                    }
                }
                Err(e) => return Err(format!("restart task of node {i} failed: {e}")),
            }
        }
        Ok(())
    }
}
