//! Seams the simulator uses to run the real driver deterministically and
//! to watch it; all of them are inert by default (production).
//!
//! - `clock`: the node's clock (skewed in simulation, see [`Clock`]).
//! - `election_ticks`: a fixed randomized election timeout. raft-rs draws
//!   it from the thread's RNG, which no seed controls; the simulator fixes a
//!   distinct value per node (drawn from its seed) so runs replay.
//! - `first_tick`: delays the first tick, so nodes started together do not
//!   tick in lockstep.
//! - `pause`: a gate the driver waits at before each step: the simulator
//!   closes it to freeze the node as SIGSTOP would.
//! - `observer`: told of every entry the node applies, for the checker.
//! - `fsync_in_task`: run a blocking store's fsyncs on a runtime task that
//!   takes this long, instead of on a thread (threads are not replayable).
//! - `raft_observer`: told of what the membership properties judge (each
//!   applied configuration, each leadership won, each vote counted).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::machine::{Command, Effect};
use crate::types::NodeId;

/// Told of each entry a node applies: the node, the entry's index, its
/// command (`None` if it carries none) and the effects applying it had.
pub type ApplyObserver = Arc<dyn Fn(NodeId, u64, Option<&Command>, &[Effect]) + Send + Sync>;

/// What a [`RaftObserver`] is told: the Raft-level facts the simulator's
/// membership properties judge (issue 9), seen where the driver acts on
/// them.
#[derive(Debug)]
pub enum RaftEvent<'a> {
    /// The node applied configuration `conf` at log index `index`: from a
    /// committed configuration change, or (`snapshot`) from a snapshot it
    /// installed.
    Conf {
        /// The entry's (or the snapshot's) index.
        index: u64,
        /// The configuration now in force at this node.
        conf: &'a raft::eraftpb::ConfState,
        /// Whether it came with a snapshot rather than an entry.
        snapshot: bool,
    },
    /// The node became leader of `term`.
    Leader {
        /// The term it leads.
        term: u64,
    },
    /// The node stepped a vote granted to it by `from` for `term` (raft-rs
    /// counts it if `from` is a voter of this node's configuration).
    VoteGranted {
        /// The voter.
        from: u64,
        /// The election's term.
        term: u64,
    },
}

/// Told of each [`RaftEvent`] of the node whose Raft id is given.
pub type RaftObserver = Arc<dyn Fn(NodeId, RaftEvent<'_>) + Send + Sync>;

/// The simulator's seams into a node (all inert by default).
#[derive(Clone, Default)]
pub struct Hooks {
    /// The node's clock.
    pub clock: Clock,
    /// A fixed election timeout in ticks, instead of raft-rs's random draw.
    pub election_ticks: Option<usize>,
    /// Delay before the first tick.
    pub first_tick: Duration,
    /// While this is closed, the node is frozen.
    pub pause: Option<PauseGate>,
    /// Told of every applied entry.
    pub observer: Option<ApplyObserver>,
    /// Fsync on a task taking this long, not on a thread.
    pub fsync_in_task: Option<Duration>,
    /// Told of configurations applied, leaderships won and votes counted.
    pub raft_observer: Option<RaftObserver>,
    /// The snapshot size from which the log's size decides compaction and
    /// the table is encoded off the driver, instead of 1 MiB (tests).
    pub size_rule_from: Option<u64>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("clock", &self.clock)
            .field("election_ticks", &self.election_ticks)
            .field("first_tick", &self.first_tick)
            .field("pause", &self.pause.is_some())
            .field("observer", &self.observer.is_some())
            .field("fsync_in_task", &self.fsync_in_task)
            .field("raft_observer", &self.raft_observer.is_some())
            .field("size_rule_from", &self.size_rule_from)
            .finish()
    }
}

impl Hooks {
    /// Completes when the node is paused (never, without a pause gate).
    pub(crate) async fn until_paused(&self) {
        match &self.pause {
            Some(p) => p.wait_until(true).await,
            None => std::future::pending::<()>().await,
        }
    }

    /// Tells the Raft observer, if any, of `event` at node `me`.
    pub(crate) fn raft_event(&self, me: NodeId, event: RaftEvent<'_>) {
        if let Some(o) = &self.raft_observer {
            o(me, event);
        }
    }

    /// Tells the Raft observer, if any, that node `me` applied `conf` at
    /// `index` (from a snapshot if `snapshot`).
    pub(crate) fn conf_applied(
        &self,
        me: NodeId,
        index: u64,
        conf: &raft::eraftpb::ConfState,
        snapshot: bool,
    ) {
        self.raft_event(
            me,
            RaftEvent::Conf {
                index,
                conf,
                snapshot,
            },
        );
    }

    /// Waits while the node is paused.
    pub(crate) async fn wait_unpaused(&self) {
        if let Some(p) = &self.pause {
            p.wait_until(false).await;
        }
    }
}

/// A gate that freezes a node (and its clients) while closed.
///
/// Not a `tokio::sync::watch`: watch spreads its waiters over shards picked
/// by the runtime's unseeded RNG, so the order in which they wake varies
/// from run to run, and the simulator would not replay (found by its
/// same-seed trace check). `Notify` wakes waiters in the order they came.
#[derive(Clone, Debug, Default)]
pub struct PauseGate(Arc<Gate>);

#[derive(Debug, Default)]
struct Gate {
    paused: AtomicBool,
    changed: Notify,
}

impl PauseGate {
    /// Closes (`true`) or opens the gate.
    pub fn set(&self, paused: bool) {
        self.0.paused.store(paused, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }

    /// Whether the gate is closed.
    pub fn is_paused(&self) -> bool {
        self.0.paused.load(Ordering::SeqCst)
    }

    /// Waits until the gate is closed (`true`) or open.
    pub async fn wait_until(&self, paused: bool) {
        loop {
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.is_paused() == paused {
                return;
            }
            changed.await;
        }
    }
}
