//! Leaving and coming back under a new id (issue 9): what the facade does
//! around the driver, modelled in the simulator.
//!
//! - **A `left` mark.** A durable node that finished a graceful leave, or
//!   was answered `Removed`, marks its data directory (the driver calls
//!   `StartParams::on_left`); the next start wipes the directory and joins
//!   blank under a new id (the facade's `data_dir.rs`). Here the mark lives
//!   on the [`SimDisk`], survives crashes, and [`World::params`] turns it
//!   into a blank start.
//! - **Rejoin when removed.** A node the cluster removed stops with
//!   `Role::Removed`; the facade (`rejoin_when_removed`, on by default)
//!   starts it again blank, under a new id. Here [`World::tend_removed`]
//!   ends such a process and, after [`REJOIN_AFTER`], starts it blank; the
//!   nemesis waits through [`World::idle`], which tends removed nodes as
//!   time passes (membership runs; other runs sleep as they always did, so
//!   their traces are unchanged).
//!
//! [`Churn`] counts what happened, so tests can assert these paths run.

use std::time::Duration;

use super::disk::SimDisk;
use super::world::{DurablePeers, SimNode, World};
use crate::client::Role;

/// How long a removed node waits before it starts again blank.
pub(crate) const REJOIN_AFTER: Duration = Duration::from_millis(500);

/// The slice [`World::idle`] sleeps between two looks at removed nodes.
const TEND_EVERY: Duration = Duration::from_millis(200);

/// How leaving and removal went in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Churn {
    /// Graceful stops of nodes that ran with `leave_on_shutdown`.
    pub leave_stops: u64,
    /// Of those, the ones that finished leaving (the node marked its disk).
    pub left: u64,
    /// Starts that found the `left` mark and began blank.
    pub left_blank_starts: u64,
    /// Nodes answered `Removed` whose run began before their id was
    /// removed (isolated past `dead_after`, then healed).
    pub removed_live: u64,
    /// Nodes answered `Removed` whose run began after their id was removed
    /// (restarted from an old disk).
    pub removed_from_disk: u64,
    /// Removed nodes that joined again, blank, under a new id.
    pub rejoined: u64,
}

impl Churn {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &Churn) {
        self.leave_stops += o.leave_stops;
        self.left += o.left;
        self.left_blank_starts += o.left_blank_starts;
        self.removed_live += o.removed_live;
        self.removed_from_disk += o.removed_from_disk;
        self.rejoined += o.rejoined;
    }
}

/// Forgets a node's data directory: a new disk, new peer memory, a new
/// incarnation (derived from the old one, so no random draw moves), no
/// joined record; its next start joins blank.
pub(crate) fn wipe_node(n: &mut SimNode) {
    n.disk = SimDisk::new();
    n.peers = DurablePeers::default();
    n.incarnation = n
        .incarnation
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(1);
    n.joined = Default::default();
    n.blank_next = true;
}

impl World {
    /// Sleeps `d`; in membership runs, tends removed nodes meanwhile.
    pub(crate) async fn idle(&mut self, d: Duration) {
        if self.membership.is_none() {
            tokio::time::sleep(d).await;
            return;
        }
        let end = tokio::time::Instant::now() + d;
        loop {
            self.tend_removed().await;
            let now = tokio::time::Instant::now();
            if now >= end {
                return;
            }
            tokio::time::sleep((end - now).min(TEND_EVERY)).await;
        }
    }

    /// Ends the process of every node that stopped `Removed`.
    fn reap_every_removed(&mut self, now: Duration) {
        for i in 0..self.nodes.len() {
            let removed = self
                .nodes
                .get(i)
                .and_then(|n| n.handle.as_ref())
                .is_some_and(|h| h.status().role == Role::Removed);
            if removed {
                self.reap_removed(i, now);
            }
        }
    }

    /// Ends the process of every node that stopped `Removed`, and starts
    /// blank every one removed at least [`REJOIN_AFTER`] ago.
    pub(crate) async fn tend_removed(&mut self) {
        let now = self.shared.now();
        self.reap_every_removed(now);
        for i in 0..self.nodes.len() {
            let due = self
                .nodes
                .get(i)
                .and_then(|n| n.removed_at)
                .is_some_and(|at| now >= at + REJOIN_AFTER);
            if self.is_up(i) {
                // Started again by another path (a nemesis restart).
                if let Some(n) = self.nodes.get_mut(i) {
                    n.removed_at = None;
                }
            } else if due {
                self.rejoin(i).await;
            }
        }
    }

    /// Ends node `i`'s removed process (its driver stopped already) and
    /// counts why it was removed.
    fn reap_removed(&mut self, i: usize, now: Duration) {
        let durable = self.durable;
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        let Some(h) = n.handle.take() else { return };
        let id = h.status().id.0;
        h.abort();
        for c in n.clients.drain(..) {
            c.abort();
        }
        let key = n.member.id;
        n.removed_at = Some(now);
        if !durable {
            // No directory to mark: the facade starts it blank.
            wipe_node(n);
        }
        self.shared.holding.lock().retain(|_, node| *node != i);
        self.net.leave(key);
        let mut t = self.shared.mtrace.lock();
        let began = t
            .runs
            .iter()
            .rev()
            .find(|r| r.1 == key && r.0 == id)
            .map(|r| r.2.from);
        let gone_at = t.removed_at(id);
        t.run_ended(key, now);
        drop(t);
        match (began, gone_at) {
            (Some(b), Some(g)) if b > g => self.churn.removed_from_disk += 1,
            _ => self.churn.removed_live += 1,
        }
    }

    /// Starts removed node `i` again; a durable node's `left` mark makes
    /// the start blank. Tried again after [`REJOIN_AFTER`] if it fails (no
    /// leader answered), and at the heal.
    async fn rejoin(&mut self, i: usize) {
        let Some(task) = self.spawn_start(i) else {
            return;
        };
        let started = task.await;
        let now = self.shared.now();
        match started {
            Ok(Ok(h)) => {
                self.record_run(i, &h);
                if let Some(n) = self.nodes.get_mut(i) {
                    n.handle = Some(h);
                    n.blank_next = false;
                    n.removed_at = None;
                }
                self.churn.rejoined += 1;
                self.spawn_clients(i);
            }
            _ => {
                if let Some(n) = self.nodes.get_mut(i) {
                    n.removed_at = Some(now);
                    self.net.leave(n.member.id);
                }
            }
        }
    }

    /// After the heal: waits (up to 3 s) until every running node whose id
    /// the cluster removed has been told so, then ends those processes (the
    /// restart at the heal starts them blank). Returns at once when no
    /// running node has a removed id, as in every run without membership
    /// changes.
    pub(crate) async fn settle_removed(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let now = self.shared.now();
            self.reap_every_removed(now);
            let waiting = {
                let t = self.shared.mtrace.lock();
                self.nodes.iter().any(|n| {
                    n.handle.as_ref().is_some_and(|h| {
                        t.removed_at(h.status().id.0).is_some() && h.status().role != Role::Removed
                    })
                })
            };
            if !waiting || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
