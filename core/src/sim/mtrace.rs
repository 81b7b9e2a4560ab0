//! What the membership properties (M1 to M5, see [`super::mcheck`]) judge:
//! the Raft-level facts the nodes report through their
//! [`RaftObserver`](crate::raft::RaftObserver) hook (configurations applied,
//! leaderships won, votes counted), and the simulator's ground truth of
//! which process ran under which Raft id and when it was crashed, frozen,
//! cut off or leaving.
//!
//! Times are true (simulated) time since the run began.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use raft::eraftpb::ConfState;

use crate::types::NodeId;

/// A configuration, as sets of Raft ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Conf {
    /// Voters (the incoming half of a joint configuration).
    pub(crate) voters: BTreeSet<u64>,
    /// The outgoing voters of a joint configuration (empty otherwise).
    pub(crate) outgoing: BTreeSet<u64>,
    pub(crate) learners: BTreeSet<u64>,
    /// Voters that become learners when the joint configuration is left.
    pub(crate) learners_next: BTreeSet<u64>,
}

impl Conf {
    pub(crate) fn of(cs: &ConfState) -> Self {
        let set = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
        Self {
            voters: set(&cs.voters),
            outgoing: set(&cs.voters_outgoing),
            learners: set(&cs.learners),
            learners_next: set(&cs.learners_next),
        }
    }

    pub(crate) fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Every id the configuration names, in any role.
    pub(crate) fn ids(&self) -> BTreeSet<u64> {
        self.voters
            .iter()
            .chain(&self.outgoing)
            .chain(&self.learners)
            .chain(&self.learners_next)
            .copied()
            .collect()
    }

    /// The voter halves: one, or two while joint.
    pub(crate) fn halves(&self) -> Vec<&BTreeSet<u64>> {
        if self.is_joint() {
            vec![&self.voters, &self.outgoing]
        } else {
            vec![&self.voters]
        }
    }
}

/// A node applied a configuration.
#[derive(Clone, Debug)]
pub(crate) struct ConfSeen {
    pub(crate) node: u64,
    pub(crate) key: NodeId,
    pub(crate) index: u64,
    pub(crate) at: Duration,
    pub(crate) conf: Conf,
    pub(crate) snapshot: bool,
}

/// A node became leader.
#[derive(Clone, Debug)]
pub(crate) struct LeaderSeen {
    pub(crate) term: u64,
    pub(crate) node: u64,
    pub(crate) key: NodeId,
    pub(crate) at: Duration,
}

/// A candidate stepped a granted vote.
#[derive(Clone, Debug)]
pub(crate) struct VoteSeen {
    pub(crate) term: u64,
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) key: NodeId,
    pub(crate) at: Duration,
}

/// A span of true time; `to: None` while it lasts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub(crate) from: Duration,
    pub(crate) to: Option<Duration>,
}

impl Span {
    /// Whether the span overlaps `[a, b]`.
    pub(crate) fn overlaps(&self, a: Duration, b: Duration) -> bool {
        self.from <= b && self.to.is_none_or(|t| t >= a)
    }
}

/// Everything the membership properties judge.
#[derive(Debug, Default)]
pub(crate) struct MembershipTrace {
    /// The founders' configuration (in no log entry).
    pub(crate) initial: Conf,
    pub(crate) confs: Vec<ConfSeen>,
    pub(crate) leaders: Vec<LeaderSeen>,
    pub(crate) votes: Vec<VoteSeen>,
    /// Ground truth: each process run under a Raft id, by transport key.
    pub(crate) runs: Vec<(u64, NodeId, Span)>,
    /// Ground truth: when each process (by key) was crashed-free but not
    /// live: frozen, suspended, or on a cut link; with why.
    pub(crate) down: Vec<(NodeId, &'static str, Span)>,
    /// Raft ids that were shut down gracefully (they may leave).
    pub(crate) leavers: BTreeSet<u64>,
    /// The membership's `dead_after`.
    pub(crate) dead_after: Duration,
    open_runs: BTreeMap<NodeId, usize>,
    open_down: BTreeMap<(NodeId, &'static str), usize>,
}

impl MembershipTrace {
    /// The process `key` now runs under Raft id `id`.
    pub(crate) fn run_started(&mut self, key: NodeId, id: u64, at: Duration) {
        self.run_ended(key, at);
        self.open_runs.insert(key, self.runs.len());
        self.runs.push((id, key, Span { from: at, to: None }));
    }

    /// The process `key` stopped (crashed, shut down, or was stopped).
    pub(crate) fn run_ended(&mut self, key: NodeId, at: Duration) {
        if let Some(i) = self.open_runs.remove(&key) {
            if let Some(r) = self.runs.get_mut(i) {
                r.2.to = Some(at);
            }
        }
    }

    /// `key` is not live from `at` for reason `why`, until [`Self::up`].
    pub(crate) fn down(&mut self, key: NodeId, why: &'static str, at: Duration) {
        if self.open_down.contains_key(&(key, why)) {
            return;
        }
        self.open_down.insert((key, why), self.down.len());
        self.down.push((key, why, Span { from: at, to: None }));
    }

    /// `key` is live again as far as `why` goes.
    pub(crate) fn up(&mut self, key: NodeId, why: &'static str, at: Duration) {
        if let Some(i) = self.open_down.remove(&(key, why)) {
            if let Some(d) = self.down.get_mut(i) {
                d.2.to = Some(at);
            }
        }
    }

    /// Ends every open span of reason `why` (a heal of every link).
    pub(crate) fn up_all(&mut self, why: &'static str, at: Duration) {
        let keys: Vec<NodeId> = self
            .open_down
            .keys()
            .filter(|(_, w)| *w == why)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.up(k, why, at);
        }
    }

    /// When Raft id `id` was first seen removed: the earliest time a node
    /// applied a configuration without it at an index above every one that
    /// had it (the founders' configuration counts as index 0). `None` if it
    /// was never in one, or is in the latest.
    pub(crate) fn removed_at(&self, id: u64) -> Option<Duration> {
        let had = self
            .confs
            .iter()
            .filter(|c| c.conf.ids().contains(&id))
            .map(|c| c.index)
            .max()
            .or_else(|| self.initial.ids().contains(&id).then_some(0))?;
        self.confs
            .iter()
            .filter(|c| c.index > had && !c.conf.ids().contains(&id))
            .map(|c| c.at)
            .min()
    }

    /// Whether the process that ran as `id` came back blank under another
    /// id before `t`: the same-name rule replaces `id` without waiting for
    /// `dead_after` (it is not live).
    fn superseded(&self, id: u64, t: Duration) -> bool {
        self.runs
            .iter()
            .filter(|(rid, _, _)| *rid == id)
            .any(|(_, key, old)| {
                self.runs.iter().any(|(other, k, new)| {
                    k == key && *other != id && new.from >= old.from && new.from <= t
                })
            })
    }

    /// Whether Raft id `id` could rightly look silent for `dead_after` to
    /// a leader deciding at `t` (ground truth): it was shutting down, or
    /// in the window before `t` it was not running under that id, frozen,
    /// suspended or on a cut link for one stretch of at least 70 % of
    /// `dead_after` (a leader's clock may run up to 30 % fast; stretches less
    /// than 500 ms apart count as one), or its
    /// process came back blank under a new id (superseded). A shorter
    /// stretch (a pause of a second) never justifies a removal.
    pub(crate) fn could_look_dead(&self, id: u64, t: Duration) -> bool {
        if self.leavers.contains(&id) || self.superseded(id, t) {
            return true;
        }
        let window = t.saturating_sub(self.dead_after * 2 + Duration::from_secs(2));
        let mut runs: Vec<(NodeId, Span)> = self
            .runs
            .iter()
            .filter(|(rid, _, span)| *rid == id && span.overlaps(window, t))
            .map(|(_, key, span)| (*key, *span))
            .collect();
        runs.sort_by_key(|(_, s)| s.from);
        // Stretches not running under `id`, then stretches down while running.
        let mut out: Vec<(Duration, Duration)> = Vec::new();
        let mut cursor = window;
        for (_, span) in &runs {
            if span.from > cursor {
                out.push((cursor, span.from.min(t)));
            }
            cursor = cursor.max(span.to.unwrap_or(t));
        }
        if cursor < t {
            out.push((cursor, t));
        }
        for (key, run) in &runs {
            for (k, _, span) in &self.down {
                if k == key
                    && span.overlaps(window, t)
                    && run.overlaps(span.from, span.to.unwrap_or(t))
                {
                    out.push((span.from.max(window), span.to.unwrap_or(t).min(t)));
                }
            }
        }
        out.sort();
        let mut longest = Duration::ZERO;
        let mut cur: Option<(Duration, Duration)> = None;
        for (a, b) in out {
            cur = match cur {
                // A gap too short for a heartbeat and its answer to be
                // sure to pass does not end the silence.
                Some((ca, cb)) if a <= cb + Duration::from_millis(500) => Some((ca, cb.max(b))),
                Some((ca, cb)) => {
                    longest = longest.max(cb.saturating_sub(ca));
                    Some((a, b))
                }
                None => Some((a, b)),
            };
        }
        if let Some((ca, cb)) = cur {
            longest = longest.max(cb.saturating_sub(ca));
        }
        longest >= self.dead_after.mul_f64(0.7)
    }
}
