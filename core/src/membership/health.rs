//! The planner's judgements about one node: live, healthy, stable, dead,
//! superseded. Each is a plain function of the [`PlanInput`], so a rule reads
//! as the sentence it implements.

use std::collections::{BTreeMap, BTreeSet};

use super::{MemberView, PeerHealth, PlanInput};
use crate::types::{NodeId, NodeName};

/// The judgements over one planner input, with the member table indexed by
/// id and by name (up to a thousand members, planned twice a second).
pub(super) struct Judge<'a, 'i> {
    pub(super) input: &'i PlanInput<'a>,
    rows: BTreeMap<NodeId, &'a MemberView>,
    by_name: BTreeMap<&'a NodeName, Vec<&'a MemberView>>,
}

impl<'a, 'i> Judge<'a, 'i> {
    pub(super) fn new(input: &'i PlanInput<'a>) -> Self {
        let mut rows = BTreeMap::new();
        let mut by_name: BTreeMap<&'a NodeName, Vec<&'a MemberView>> = BTreeMap::new();
        for m in input.members {
            rows.entry(m.id).or_insert(m);
            by_name.entry(&m.name).or_default().push(m);
        }
        Self {
            input,
            rows,
            by_name,
        }
    }

    fn health(&self, id: NodeId) -> PeerHealth {
        self.input.health.get(&id).copied().unwrap_or_default()
    }

    /// The member table's row for `id`, if it has one.
    pub(super) fn member(&self, id: NodeId) -> Option<&'a MemberView> {
        self.rows.get(&id).copied()
    }

    /// It answers this leader (the leader always does).
    pub(super) fn live(&self, id: NodeId) -> bool {
        id == self.input.leader || self.health(id).live
    }

    /// Live and caught up: it counts towards a working majority.
    pub(super) fn healthy(&self, id: NodeId) -> bool {
        id == self.input.leader || {
            let h = self.health(id);
            h.live && h.caught_up
        }
    }

    /// Healthy without a break for `stabilization_ms`: it may be promoted.
    pub(super) fn stable(&self, id: NodeId) -> bool {
        if id == self.input.leader {
            return true;
        }
        let h = self.health(id);
        h.live
            && h.caught_up
            && h.healthy_since_ms.is_some_and(|since| {
                self.input.now_ms.saturating_sub(since) >= self.input.cfg.stabilization_ms
            })
    }

    /// When it became healthy (for "longest stable" ordering; `u64::MAX` if
    /// it is not).
    pub(super) fn healthy_since(&self, id: NodeId) -> u64 {
        if id == self.input.leader {
            return 0;
        }
        self.health(id).healthy_since_ms.unwrap_or(u64::MAX)
    }

    /// Its matched index at the leader.
    pub(super) fn matched(&self, id: NodeId) -> u64 {
        self.health(id).matched
    }

    /// Silent for `dead_after_ms`, whether or not the leader watched it.
    pub(super) fn silent_long(&self, id: NodeId) -> bool {
        if self.live(id) {
            return false;
        }
        self.health(id).silent_since_ms.is_some_and(|since| {
            self.input.now_ms.saturating_sub(since) >= self.input.cfg.dead_after_ms
        })
    }

    /// This leader has led for `dead_after_ms`, so it has watched every
    /// peer long enough to call one dead.
    pub(super) fn watched_long_enough(&self) -> bool {
        self.input.now_ms.saturating_sub(self.input.leader_since_ms) >= self.input.cfg.dead_after_ms
    }

    /// Silent for `dead_after_ms`, and the leader watched it that long.
    pub(super) fn dead(&self, id: NodeId) -> bool {
        self.silent_long(id) && self.watched_long_enough()
    }

    /// It asked to leave.
    pub(super) fn leaving(&self, id: NodeId) -> bool {
        self.member(id).is_some_and(|m| m.leaving)
    }

    /// A newer member with its name exists (ids of one name, blank-disk
    /// restarts under one certificate): only with `same_name_supersedes`.
    fn newer_same_name(&self, id: NodeId) -> impl Iterator<Item = &'a MemberView> + '_ {
        let me = self
            .member(id)
            .filter(|_| self.input.cfg.same_name_supersedes);
        let same = me.and_then(|me| self.by_name.get(&me.name));
        same.into_iter().flatten().copied().filter(move |m| {
            me.is_some_and(|me| m.id != me.id && (m.joined_at, m.id) > (me.joined_at, me.id))
        })
    }

    /// Not live, and a newer member with its name is stable and not leaving:
    /// the newcomer is its blank-disk restart and replaces it at once.
    pub(super) fn superseded(&self, id: NodeId) -> bool {
        !self.live(id)
            && self
                .newer_same_name(id)
                .any(|m| !m.leaving && self.input.conf.contains(m.id) && self.stable(m.id))
    }

    /// A newer member with its name exists at all: an older incarnation not
    /// yet in the configuration is not worth adding.
    pub(super) fn stale(&self, id: NodeId) -> bool {
        self.newer_same_name(id).next().is_some()
    }

    /// How many of `set` are healthy.
    pub(super) fn healthy_count(&self, set: &BTreeSet<NodeId>) -> usize {
        set.iter().filter(|id| self.healthy(**id)).count()
    }
}

/// The smallest majority of `n` voters.
pub(super) fn majority(n: usize) -> usize {
    n / 2 + 1
}
