//! Faults of a whole node beyond crash and pause: the machine suspended
//! (process frozen, monotonic clock stopped, boot time running on), a
//! graceful shutdown with the node's clients still running, and what a
//! restart after any of them means.

use std::time::Duration;

use super::world::World;
use crate::error::Error;
use crate::types::NodeId;

impl World {
    /// Suspends or resumes node `i`'s machine: its process is frozen and
    /// its monotonic clock stands still, while its boot-time clock (and
    /// every other node's clock) runs on.
    pub(crate) fn set_suspended(&self, i: usize, suspended: bool) {
        if let Some(n) = self.nodes.get(i) {
            if suspended {
                n.pause.set(true);
                n.suspend.set(true);
            } else {
                n.suspend.set(false);
                n.pause.set(false);
            }
            self.trace_down(i, "suspended", suspended);
        }
    }

    /// Shuts node `i` down gracefully, its clients running on until the
    /// node has stopped (the window in which a closing node's guards must
    /// not read held while its locks go elsewhere); then its process ends.
    /// In memory, a stopped node is gone for good, as after a crash.
    pub(crate) async fn shut_down(&mut self, i: usize) {
        let Some(h) = self.nodes.get(i).and_then(|n| n.handle.clone()) else {
            return;
        };
        let id = h.status().id;
        self.shared.mtrace.lock().leavers.insert(id.0);
        let stopping = tokio::spawn(async move { h.shutdown().await });
        // Shutdown bounds each of its phases; this bound only keeps a stuck
        // one from stalling the run (the node is then killed below).
        let _ = tokio::time::timeout(Duration::from_secs(15), stopping).await;
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        if n.leave_on_shutdown {
            self.churn.leave_stops += 1;
            if n.disk.is_left() {
                self.churn.left += 1;
            }
        }
        if let Some(h) = n.handle.take() {
            h.abort();
        }
        for c in n.clients.drain(..) {
            c.abort();
        }
        self.shared.holding.lock().retain(|_, node| *node != i);
        self.net.leave(n.member.id);
        let at = self.shared.now();
        self.shared.mtrace.lock().run_ended(n.member.id, at);
        // What the node wrote and did not fsync may or may not be on disk
        // (the disk model's one rule for a process that ended).
        n.disk.crash(&mut self.rng);
        if !self.durable {
            n.gone = true;
        }
    }

    /// Restarts a crashed node. A durable node comes back as itself; an
    /// in-memory one must be refused (it would vote again under the same
    /// identity): an `Ok` for it is returned as an error message.
    pub(crate) async fn restart(&mut self, i: usize) -> Result<bool, String> {
        if self.is_up(i) {
            return Ok(true);
        }
        if self.durable && self.nodes.get(i).is_some_and(|n| n.gone) {
            // Stopped for good (a membership run's leave).
            return Ok(false);
        }
        let Some(task) = self.spawn_start(i) else {
            return Ok(false);
        };
        let started = match task.await {
            Ok(r) => r,
            Err(e) => return Err(format!("start task failed: {e}")),
        };
        let blank = !self.durable;
        if let Some(n) = self.nodes.get_mut(i) {
            if started.is_ok() {
                n.blank_next = false;
            }
        }
        match started {
            // A blank restart joins as a new member under a new id (issue
            // 9); under its old id it could vote twice. The simulator keeps
            // its model (an in-memory crash is for good): the new member is
            // stopped at once, and stays a dead member the leader removes.
            Ok(h) if blank => {
                let old = self.nodes.get(i).map(|n| n.member.id);
                let id = h.status().id;
                h.abort();
                if Some(id) == old {
                    return Err(format!(
                        "node {i} restarted blank (in memory) and was accepted under its old identity"
                    ));
                }
                self.blank_refused += 1;
                if let Some(n) = self.nodes.get(i) {
                    self.net.leave(n.member.id);
                }
                Ok(false)
            }
            Ok(h) => {
                self.record_run(i, &h);
                if let Some(n) = self.nodes.get_mut(i) {
                    n.handle = Some(h);
                }
                self.spawn_clients(i);
                Ok(true)
            }
            Err(Error::Config(_)) if blank => {
                self.blank_refused += 1;
                self.net
                    .leave(self.nodes.get(i).map_or(NodeId(0), |n| n.member.id));
                Ok(false)
            }
            Err(Error::Removed) => {
                // Its id was removed while it was down: its disk is marked
                // left, and it starts again blank soon.
                self.churn.removed_from_disk += 1;
                let at = self.shared.now();
                if let Some(n) = self.nodes.get_mut(i) {
                    n.removed_at = Some(at);
                    self.net.leave(n.member.id);
                }
                Ok(false)
            }
            Err(_) => {
                // No majority answered the hello round in time: try later.
                if let Some(n) = self.nodes.get(i) {
                    self.net.leave(n.member.id);
                }
                Ok(false)
            }
        }
    }
}
