//! The membership nemesis (issue 9), in membership runs only: nodes that
//! join at run time, graceful leaves, kill + blank restart (a new id),
//! kill + restart from disk after `dead_after`, a voter isolated past
//! `dead_after` then healed, bursts of ±k nodes, and a leader transfer while
//! the configuration is joint.
//!
//! Its choices come from the run's membership stream
//! ([`World::membership`]), so runs without learners draw exactly what they
//! drew before. Nothing here may cost the cluster its quorum for good: a
//! node is stopped for good only while every other voter of the latest
//! configuration can come back, and at least four nodes keep running.

use std::time::Duration;

use super::disk::SimDisk;
use super::mtrace::Conf;
use super::nemesis::{FaultCounts, FaultKind};
use super::rng::Rng;
use super::world::{DurablePeers, SimNode, World};
use crate::clock::SuspendSwitch;
use crate::raft::{Member, PauseGate};
use crate::types::{NodeId, NodeName};

/// Most nodes a run grows to (founders included).
const MAX_NODES: usize = 7;

/// Fewest nodes that keep running when one is stopped for good.
const MIN_RUNNING: usize = 4;

impl World {
    /// Draws from the membership stream (0 outside membership runs).
    pub(crate) fn m_below(&mut self, n: u64) -> u64 {
        self.membership.as_mut().map_or(0, |r| r.below(n))
    }

    /// Whether the next fault is a membership step (membership runs only).
    pub(crate) fn wants_membership_fault(&mut self) -> bool {
        self.membership.is_some() && self.m_below(1_000) < 400
    }

    /// The Raft id node `i` runs (or last ran, or will restart) under.
    pub(crate) fn raft_id(&self, i: usize) -> u64 {
        let Some(n) = self.nodes.get(i) else { return 0 };
        if let Some(h) = &n.handle {
            return h.status().id.0;
        }
        n.joined
            .lock()
            .as_ref()
            .map_or(n.member.id.0, |(id, _)| id.0)
    }

    /// The configuration of the highest index any node applied.
    pub(crate) fn latest_conf(&self) -> Conf {
        let t = self.shared.mtrace.lock();
        t.confs
            .iter()
            .max_by_key(|c| c.index)
            .map_or_else(|| t.initial.clone(), |c| c.conf.clone())
    }

    /// Nodes that run, or will be restarted (not stopped for good).
    fn staying(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes.get(*i).is_some_and(|n| !n.gone))
            .collect()
    }

    /// Whether node `i` may be stopped for good (or lose its identity):
    /// enough nodes stay, the configuration is not joint, and every other
    /// voter can come back.
    fn may_stop_for_good(&self, i: usize) -> bool {
        if self.staying().len() <= MIN_RUNNING {
            return false;
        }
        let conf = self.latest_conf();
        if conf.is_joint() {
            return false;
        }
        let me = self.raft_id(i);
        let n = self.nodes.len();
        let others_back = conf.voters.iter().filter(|v| **v != me).all(|v| {
            (0..n).any(|j| {
                j != i
                    && self.raft_id(j) == *v
                    && self.nodes.get(j).is_some_and(|x| !x.gone && !x.blank_next)
            })
        });
        others_back && self.nodes.get(i).is_some_and(|x| !x.gone)
    }

    /// A node of the current voters (by the latest configuration), or any.
    fn some_voter(&mut self) -> usize {
        let conf = self.latest_conf();
        let voters: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.is_up(*i) && conf.voters.contains(&self.raft_id(*i)))
            .collect();
        if voters.is_empty() {
            return self.m_below(self.nodes.len() as u64) as usize;
        }
        let k = self.m_below(voters.len() as u64) as usize;
        voters.get(k).copied().unwrap_or(0)
    }

    /// A new node, not started, whose first start joins as a new member.
    pub(crate) fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let name = format!("sim{i}");
        let key = NodeId::from_name(&name);
        let member = Member {
            id: key,
            name: NodeName(name),
            addr: super::MemNet::addr(key),
        };
        self.seeds.push(member.clone());
        let e = self.config.election_ticks;
        let used: Vec<usize> = self.nodes.iter().map(|n| n.election_ticks).collect();
        let free: Vec<usize> = (e..2 * e).filter(|t| !used.contains(t)).collect();
        let pick = self.m_below(free.len().max(1) as u64) as usize;
        let election_ticks = free.get(pick).copied().unwrap_or(e + i % e.max(1));
        let tick = self.config.tick.as_micros() as u64;
        let first_tick = Duration::from_micros(self.m_below(tick.max(1)));
        let incarnation = self.membership.as_mut().map_or(i as u64, Rng::next_u64);
        self.nodes.push(SimNode {
            member,
            handle: None,
            disk: SimDisk::new(),
            peers: DurablePeers::default(),
            incarnation,
            net_incarnation: 0,
            pause: PauseGate::default(),
            suspend: SuspendSwitch::default(),
            rate: 1.0,
            election_ticks,
            first_tick,
            clients: Vec::new(),
            gone: false,
            joined: Default::default(),
            blank_next: true,
            removed_at: None,
            leave_on_shutdown: false,
        });
        i
    }

    /// Loses node `i`'s data directory: its next start is blank and joins
    /// under a new id.
    fn wipe(&mut self, i: usize) {
        let incarnation = self.membership.as_mut().map_or(0, Rng::next_u64);
        if let Some(n) = self.nodes.get_mut(i) {
            n.disk = SimDisk::new();
            n.peers = DurablePeers::default();
            n.incarnation = incarnation;
            n.joined = Default::default();
            n.blank_next = true;
        }
    }

    /// Starts every node of `nodes` together (each needs the others'
    /// answers only if it founds; joiners need a leader).
    async fn start_together(&mut self, nodes: &[usize]) -> Result<(), String> {
        let mut tasks = Vec::new();
        for i in nodes {
            if let Some(t) = self.spawn_start(*i) {
                tasks.push((*i, t));
            }
        }
        for (i, t) in tasks {
            match t.await {
                Ok(Ok(h)) => {
                    self.record_run(i, &h);
                    if let Some(x) = self.nodes.get_mut(i) {
                        x.handle = Some(h);
                        x.blank_next = false;
                    }
                    self.spawn_clients(i);
                }
                Ok(Err(_)) => {
                    // No leader answered in time: restarted at the heal.
                    if let Some(x) = self.nodes.get(i) {
                        self.net.leave(x.member.id);
                    }
                }
                Err(e) => return Err(format!("start task of node {i} failed: {e}")),
            }
        }
        Ok(())
    }

    /// Stops node `i` for good, gracefully or by a crash.
    async fn stop_for_good(&mut self, i: usize, graceful: bool) {
        if graceful {
            self.shut_down(i).await;
        } else {
            self.crash(i);
        }
        if let Some(n) = self.nodes.get_mut(i) {
            n.gone = true;
        }
    }

    /// One membership step drawn from the membership stream, held and
    /// healed like the other faults.
    pub(crate) async fn membership_fault(
        &mut self,
        counts: &mut FaultCounts,
    ) -> Result<(), String> {
        let dead_after = self.shared.mtrace.lock().dead_after;
        let kinds = [
            FaultKind::Join,
            FaultKind::Join,
            FaultKind::Leave,
            FaultKind::BlankRestart,
            FaultKind::BlankRestart,
            FaultKind::DiskRestartLate,
            FaultKind::IsolateVoter,
            FaultKind::BurstUp,
            FaultKind::BurstDown,
            FaultKind::TransferInJoint,
        ];
        let k = self.m_below(kinds.len() as u64) as usize;
        let kind = kinds.get(k).copied().unwrap_or(FaultKind::Join);
        // Past `dead_after`, so the leader replaces a silent voter.
        let long = dead_after.mul_f64(1.2 + self.m_below(800) as f64 / 1_000.0);
        *counts.entry(kind).or_insert(0) += 1;
        match kind {
            FaultKind::Join | FaultKind::BurstUp => {
                let k = if kind == FaultKind::Join {
                    1
                } else {
                    2 + self.m_below(2) as usize
                };
                let room = MAX_NODES.saturating_sub(self.nodes.len());
                let new: Vec<usize> = (0..k.min(room)).map(|_| self.add_node()).collect();
                self.start_together(&new).await?;
                let settle = Duration::from_millis(500 + self.m_below(2_000));
                self.idle(settle).await;
            }
            FaultKind::Leave | FaultKind::BurstDown => {
                let k = if kind == FaultKind::Leave { 1 } else { 2 };
                for _ in 0..k {
                    let staying = self.staying();
                    let pick = self.m_below(staying.len().max(1) as u64) as usize;
                    let Some(&i) = staying.get(pick) else { break };
                    if self.may_stop_for_good(i) {
                        self.stop_for_good(i, kind == FaultKind::Leave).await;
                    }
                }
                self.idle(long).await;
            }
            FaultKind::BlankRestart => {
                let staying = self.staying();
                let pick = self.m_below(staying.len().max(1) as u64) as usize;
                let Some(&i) = staying.get(pick) else {
                    return Ok(());
                };
                if !self.may_stop_for_good(i) {
                    return Ok(());
                }
                self.crash(i);
                self.wipe(i);
                let down = Duration::from_millis(300 + self.m_below(3_000));
                self.idle(down).await;
                self.restart(i).await?;
            }
            FaultKind::DiskRestartLate => {
                let i = self.some_voter();
                self.crash(i);
                self.idle(long).await;
                self.restart(i).await?;
            }
            FaultKind::IsolateVoter | FaultKind::TransferInJoint => {
                let i = self.some_voter();
                let key = self.nodes.get(i).map_or(NodeId(0), |n| n.member.id);
                for j in 0..self.nodes.len() {
                    let other = self.nodes.get(j).map_or(NodeId(0), |n| n.member.id);
                    if j != i {
                        self.cut(key, other);
                        self.cut(other, key);
                    }
                }
                if kind == FaultKind::TransferInJoint {
                    self.transfer_when_joint(long).await;
                } else {
                    self.idle(long).await;
                }
                self.heal();
            }
            _ => {}
        }
        Ok(())
    }

    /// Waits up to `within` for a joint configuration, then heals the
    /// network and has the leader hand over while it is joint: to a voter
    /// the change demotes (then the leader is in the outgoing half only)
    /// or to any other voter.
    async fn transfer_when_joint(&mut self, within: Duration) {
        let end = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < end {
            let conf = self.latest_conf();
            if conf.is_joint() {
                self.heal();
                if let Some(l) = self.leader() {
                    let lid = self.raft_id(l);
                    let demoted: Vec<u64> =
                        conf.outgoing.difference(&conf.voters).copied().collect();
                    let others: Vec<u64> =
                        conf.voters.iter().copied().filter(|v| *v != lid).collect();
                    let pool = if !demoted.is_empty() && self.m_below(2) == 0 {
                        demoted
                    } else {
                        others
                    };
                    let k = self.m_below(pool.len().max(1) as u64) as usize;
                    if let (Some(to), Some(h)) = (
                        pool.get(k),
                        self.nodes.get(l).and_then(|n| n.handle.clone()),
                    ) {
                        h.transfer_leader(NodeId(*to));
                    }
                }
                tokio::time::sleep_until(end).await;
                return;
            }
            self.idle(Duration::from_millis(20)).await;
        }
    }
}
