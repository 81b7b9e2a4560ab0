//! The leader's reconciler: keeps the voters in line with the live members
//! (issue 9), by running the pure planner (`crate::membership::plan`) every
//! [`PLAN_EVERY`] and carrying out what it asks, one change at a time.
//!
//! The planner decides; this file only measures and acts:
//!
//! - **Health** is judged from what this leader saw in its own term (a new
//!   leader has no history, so nothing is judged dead before it has watched
//!   for `dead_after`; etcd's `HealthInterval` rule). A peer is *live* when
//!   it answered one of this leader's appends or heartbeats within two
//!   election timeouts (responses, not any traffic, so a one-way link counts
//!   as dead), and *caught up* when its matched index is within
//!   [`CAUGHT_UP_LAG`] entries of the leader's log and it is not being sent
//!   a snapshot (Consul autopilot's trailing-logs rule, TiKV's
//!   truncated-index rule).
//! - **Acting**: a configuration change is proposed as one `ConfChangeV2`;
//!   raft-rs holds a second one back until the first is applied
//!   (`has_pending_conf`), which the planner is told. A joint configuration
//!   is entered with an explicit transition and left by an explicit empty
//!   change, never raft-rs's auto-leave (etcd#12136). A leader that is to be
//!   demoted hands leadership over first (raft-rs#373: a removed leader does
//!   not step down by itself).
//! - **Removal** of learners the planner gives up on: leaving, superseded
//!   by a newer member of the same name, or dead for `dead_after` (a dead
//!   voter is first demoted, then removed). A durable member removed while
//!   it was away is answered `Removed` when it comes back from its disk
//!   (`removed.rs`): it wipes its state and joins under a new id, so its
//!   old id never counts again (issue 9, P3 and P4).

use crate::collect::btree_set;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use super::Driver;
use crate::machine::Command;
use crate::membership::{plan, Change, ConfView, MemberView, PeerHealth, Plan, PlanInput};
use crate::storage::LogStore;
use crate::types::NodeId;

/// How often the leader runs the planner.
pub(crate) const PLAN_EVERY: Duration = Duration::from_millis(500);

/// How far behind the leader's last index a peer may be and still count as
/// caught up (Consul autopilot's `max_trailing_logs` is 250; a lock service
/// commits in bursts, so a little more).
pub(crate) const CAUGHT_UP_LAG: u64 = 1_000;

/// What the leader watched of its peers in its term.
#[derive(Debug)]
pub(crate) struct Watch {
    /// When this leader's term began here: the planner's time zero.
    since: Instant,
    /// Each peer's last response to this leader.
    heard: HashMap<NodeId, Instant>,
    /// When each peer was first seen in the configuration this term (a
    /// learner added later is not silent from before it existed).
    known: HashMap<NodeId, Instant>,
    /// Since when each peer has been live and caught up without a break.
    healthy: HashMap<NodeId, Instant>,
    next_plan: Instant,
    /// Whether this term proposed the cluster id already.
    found_proposed: bool,
}

impl Watch {
    /// A new term's watch: nothing heard yet.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            since: now,
            heard: HashMap::new(),
            known: HashMap::new(),
            healthy: HashMap::new(),
            next_plan: now + PLAN_EVERY,
            found_proposed: false,
        }
    }

    /// `peer` answered an append or a heartbeat of this leader.
    pub(crate) fn heard(&mut self, peer: NodeId, now: Instant) {
        self.heard.insert(peer, now);
    }

    /// The peers that answered within `window` of `now`.
    pub(crate) fn live(&self, now: Instant, window: Duration) -> Vec<NodeId> {
        self.heard
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) <= window)
            .map(|(id, _)| *id)
            .collect()
    }

    fn ms(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.since).as_millis()).unwrap_or(u64::MAX)
    }
}

/// The applied configuration as the planner sees it.
pub(crate) fn conf_view(cs: &raft::eraftpb::ConfState) -> ConfView {
    let set = |ids: &[u64]| btree_set(ids.iter().map(|id| NodeId(*id)));
    ConfView {
        voters: set(&cs.voters),
        voters_outgoing: set(&cs.voters_outgoing),
        learners: set(&cs.learners),
        learners_next: set(&cs.learners_next),
    }
}

impl<S: LogStore + Send + 'static> Driver<S> {
    /// Runs the planner if it is due and this node leads, and acts on it.
    pub(super) fn reconcile(&mut self, now: Instant) {
        let term = self.raw.raft.term;
        let Some(duty) = self.leader.as_mut().filter(|d| d.is_for(term)) else {
            return;
        };
        // Checked every tick, not every plan: no node opens its session
        // before the cluster is founded (see `open_session_if_needed`).
        let committed_in_term = self.raw.raft.commit_to_current_term();
        if committed_in_term && self.table.members().cluster_id() == 0 && !duty.watch.found_proposed
        {
            // The first leader names the cluster (a random id, so seeds
            // that answer for two clusters are told apart) and fixes the
            // token base (its wall clock, so tokens of a cluster founded
            // again after total loss rise above the old ones).
            let cluster_id =
                (u128::from(super::random_u64()) << 64) | u128::from(super::random_u64());
            let cmd = Command::Found {
                cluster_id: cluster_id.max(1),
                token_base: super::own::founding_token_base(),
            };
            if self.raw.propose(Vec::new(), cmd.encode()).is_ok() {
                duty.watch.found_proposed = true;
            }
        }
        if now < duty.watch.next_plan {
            return;
        }
        duty.watch.next_plan = now + PLAN_EVERY;
        // The leader's judgment of liveness, in `status().members`.
        self.refresh_member_status();
        if self.shutdown.is_some() {
            return;
        }
        let cs = self.raw.raft.prs().conf().to_conf_state();
        let conf = conf_view(&cs);
        let health = self.health(now, &conf);
        let members: Vec<MemberView> = self
            .table
            .members()
            .iter()
            .map(|m| MemberView {
                id: m.id,
                name: m.name.clone(),
                durable: m.durable,
                leaving: m.leaving,
                zone: m.zone.clone(),
                joined_at: m.joined_at,
            })
            .collect();
        let Some(duty) = self.leader.as_ref() else {
            return;
        };
        let cfg = self.cfg.plan_config();
        let input = PlanInput {
            leader: self.me,
            leader_since_ms: 0,
            committed_in_term,
            conf_pending: self.raw.raft.has_pending_conf(),
            conf: &conf,
            members: &members,
            health: &health,
            now_ms: duty.watch.ms(now).saturating_add(
                if crate::teeth::planted(crate::teeth::Bug::RemoveRightAfterElection) {
                    cfg.dead_after_ms
                } else {
                    0
                },
            ),
            cfg: &cfg,
        };
        let planned = plan(&input);
        self.publish_membership_metrics(&conf, &health, &cfg);
        match planned {
            Plan::Idle => {}
            Plan::Skip(reason) => {
                metrics::counter!(crate::metrics::MEMBERSHIP_SKIPS, "reason" => reason.as_str())
                    .increment(1);
            }
            Plan::Change(Change::TransferLeader { to }) => {
                tracing::info!(node = %self.name, %to, "handing leadership over before a membership change");
                metrics::counter!(crate::metrics::MEMBERSHIP_CHANGES, "kind" => "transfer_leader")
                    .increment(1);
                self.raw.transfer_leader(to.0);
            }
            Plan::Change(change) => {
                let Some(cc) = change.to_conf_change() else {
                    return;
                };
                match self.raw.propose_conf_change(Vec::new(), cc) {
                    Ok(()) => {
                        tracing::info!(node = %self.name, ?change, "membership change proposed");
                        metrics::counter!(crate::metrics::MEMBERSHIP_CHANGES, "kind" => change.kind())
                            .increment(1);
                    }
                    Err(e) => {
                        tracing::debug!(node = %self.name, error = %e, "membership change not proposed")
                    }
                }
            }
        }
    }

    /// A configuration change applied: on the leader, the planner runs at
    /// the next tick instead of up to [`PLAN_EVERY`] later, so a joint
    /// configuration is left one commit after it was entered. While joint,
    /// the half being left still decides: after a 1 → 3 promotion the
    /// founder alone could stop every commit for as long as it lasted
    /// (issue 9, a newcomer's finding 6).
    pub(super) fn plan_at_next_tick(&mut self) {
        let term = self.raw.raft.term;
        if let Some(duty) = self.leader.as_mut().filter(|d| d.is_for(term)) {
            duty.watch.next_plan = duty.watch.since;
        }
    }

    /// Each peer's health as this leader saw it in its term.
    fn health(&mut self, now: Instant, conf: &ConfView) -> BTreeMap<NodeId, PeerHealth> {
        let window = self.cfg.election_timeout() * 2;
        let last = self.raw.raft.raft_log.last_index();
        let first = self.raw.raft.raft_log.first_index();
        let Some(duty) = self.leader.as_mut() else {
            return BTreeMap::new();
        };
        let w = &mut duty.watch;
        let ids: BTreeSet<NodeId> = btree_set(
            conf.voters
                .iter()
                .chain(&conf.voters_outgoing)
                .chain(&conf.learners)
                .chain(&conf.learners_next)
                .copied()
                .filter(|id| *id != self.me),
        );
        let mut out = BTreeMap::new();
        for id in ids {
            let known = *w.known.entry(id).or_insert(now);
            let heard = w.heard.get(&id).copied();
            let live = heard.is_some_and(|t| now.saturating_duration_since(t) <= window);
            let pr = self.raw.raft.prs().get(id.0);
            let matched = pr.map_or(0, |p| p.matched);
            let caught_up = pr.is_some_and(|p| {
                p.state != raft::ProgressState::Snapshot
                    && p.matched + CAUGHT_UP_LAG >= last
                    && p.matched + 1 >= first
            });
            let healthy_since = if live && caught_up {
                Some(*w.healthy.entry(id).or_insert(now))
            } else {
                w.healthy.remove(&id);
                None
            };
            let silent_since = (!live).then(|| heard.unwrap_or(known).max(known));
            out.insert(
                id,
                PeerHealth {
                    live,
                    caught_up,
                    healthy_since_ms: healthy_since.map(|t| w.ms(t)),
                    silent_since_ms: silent_since.map(|t| w.ms(t)),
                    matched,
                },
            );
        }
        out
    }

    /// Members by role and live voters against the target, for dashboards.
    fn publish_membership_metrics(
        &self,
        conf: &ConfView,
        health: &BTreeMap<NodeId, PeerHealth>,
        cfg: &crate::membership::PlanConfig,
    ) {
        let live = |id: &NodeId| *id == self.me || health.get(id).is_some_and(|h| h.live);
        let voters_live = conf.voters.iter().filter(|v| live(v)).count();
        let eligible = conf
            .voters
            .iter()
            .chain(&conf.learners)
            .filter(|id| live(id))
            .count();
        let target = crate::membership::target_voters(eligible, cfg.max_voters);
        metrics::gauge!(crate::metrics::MEMBERS, "role" => "voter").set(conf.voters.len() as f64);
        metrics::gauge!(crate::metrics::MEMBERS, "role" => "learner")
            .set(conf.learners.len() as f64);
        metrics::gauge!(crate::metrics::VOTERS_LIVE).set(voters_live as f64);
        metrics::gauge!(crate::metrics::VOTERS_TARGET).set(target as f64);
    }
}
