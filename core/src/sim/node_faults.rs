//! Faults of a whole node beyond crash and pause: the machine suspended
//! (process frozen, monotonic clock stopped, boot time running on), and a
//! graceful shutdown with the node's clients still running.

use std::time::Duration;

use super::world::World;

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
        let stopping = tokio::spawn(async move { h.shutdown().await });
        // Shutdown bounds each of its phases; this bound only keeps a stuck
        // one from stalling the run (the node is then killed below).
        let _ = tokio::time::timeout(Duration::from_secs(15), stopping).await;
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        if let Some(h) = n.handle.take() {
            h.abort();
        }
        for c in n.clients.drain(..) {
            c.abort();
        }
        self.shared.holding.lock().retain(|_, node| *node != i);
        self.net.leave(n.member.id);
        // What the node wrote and did not fsync may or may not be on disk
        // (the disk model's one rule for a process that ended).
        n.disk.crash(&mut self.rng);
        if !self.durable {
            n.gone = true;
        }
    }
}
