//! The ground truth and the Raft facts the membership properties judge
//! (issue 9), as the simulated world records them: which process runs
//! under which Raft id, when a node is frozen or cut off, and what each
//! node's Raft observer reports.

use super::history::Committed;
use super::world::{Shared, World};
use crate::client::NodeHandle;
use crate::machine::{Command, Effect};
use crate::raft::RaftEvent;
use crate::types::NodeId;

impl World {
    /// Records (ground truth) that node `i` is not live for `why`, or is
    /// again.
    pub(crate) fn trace_down(&self, i: usize, why: &'static str, down: bool) {
        let Some(n) = self.nodes.get(i) else { return };
        let at = self.shared.now();
        let mut t = self.shared.mtrace.lock();
        if down {
            t.down(n.member.id, why, at);
        } else {
            t.up(n.member.id, why, at);
        }
    }

    /// Records (ground truth) that node `i` now runs as the Raft id its
    /// handle reports.
    pub(crate) fn record_run(&self, i: usize, h: &NodeHandle) {
        let Some(n) = self.nodes.get(i) else { return };
        let at = self.shared.now();
        let id = h.status().id;
        self.shared.mtrace.lock().run_started(n.member.id, id.0, at);
    }

    /// Cuts the link `from` → `to` (ground truth: both ends are cut off
    /// until the next heal).
    pub(crate) fn cut(&self, from: NodeId, to: NodeId) {
        let at = self.shared.now();
        {
            let mut t = self.shared.mtrace.lock();
            t.down(from, "cut", at);
            t.down(to, "cut", at);
        }
        self.net.cut(from, to);
    }

    /// Restores every link.
    pub(crate) fn heal(&self) {
        let at = self.shared.now();
        self.shared.mtrace.lock().up_all("cut", at);
        self.net.heal();
    }
}

/// The Raft observer: records what the membership properties judge.
pub(crate) fn record_raft(shared: &Shared, key: NodeId, me: NodeId, event: RaftEvent<'_>) {
    use super::mtrace::{Conf, ConfSeen, LeaderSeen, VoteSeen};
    let at = shared.now();
    let mut t = shared.mtrace.lock();
    match event {
        RaftEvent::Conf {
            index,
            conf,
            snapshot,
        } => t.confs.push(ConfSeen {
            node: me.0,
            key,
            index,
            at,
            conf: Conf::of(conf),
            snapshot,
        }),
        RaftEvent::Leader { term } => t.leaders.push(LeaderSeen {
            term,
            node: me.0,
            key,
            at,
        }),
        RaftEvent::VoteGranted { from, term } => t.votes.push(VoteSeen {
            term,
            from,
            to: me.0,
            key,
            at,
        }),
    }
}

/// The observer: records each applied entry once, and any disagreement.
pub(crate) fn record_apply(
    shared: &Shared,
    node: NodeId,
    index: u64,
    cmd: Option<&Command>,
    effects: &[Effect],
) {
    let at = shared.now();
    let mut log = shared.log.lock();
    match log.entries.get(&index) {
        Some(seen) => {
            if seen.command.as_ref() != cmd || seen.effects != effects {
                let msg = format!(
                    "index {index}: applied as {:?} (effects {:?}) and later by {node} as {cmd:?} (effects {effects:?})",
                    seen.command, seen.effects
                );
                log.divergences.push(msg);
            }
        }
        None => {
            log.entries.insert(
                index,
                Committed {
                    index,
                    at,
                    command: cmd.cloned(),
                    effects: effects.to_vec(),
                },
            );
        }
    }
}
