//! Counting semaphores on a `Node` (issue 11, item 2): "at most 8
//! instances talk to the payment provider at once", as Curator's
//! `InterProcessSemaphoreV2`, Redisson's `RPermitExpirableSemaphore` and
//! Hazelcast's `ISemaphore` offer it, with a fencing token per grant and a
//! holder that learns of its loss (`Permit::lost`) first.
//!
//! Rules (all agreed through the Raft log, in the lock table):
//! - The permit count is fixed by first use while the name is in use
//!   (held or waited on); a use with another count is `Error::WrongKind`,
//!   never a silent resize (Curator's `maxLeases` must also agree among
//!   its users, but nothing checks it there). Once nobody holds or waits
//!   for the name, its count is forgotten.
//! - FIFO: a request at the head of the queue is never overtaken by
//!   smaller ones behind it, so a large request is not starved.
//! - Permits come back when their holder's session expires, after the
//!   lock-delay, as a mutex does.

use std::time::Duration;

use peerlock_core::{Error, Permit};

use crate::node::Node;

/// A handle on the counting semaphore `name` of `permits` permits, from
/// [`Node::semaphore`]. Cheap to clone; holds nothing by itself.
///
/// ```no_run
/// # async fn demo(node: peerlock::Node) -> Result<(), peerlock::Error> {
/// let sem = node.semaphore("payments", 8);
/// let permit = sem.acquire(1).await?; // waits, FIFO
/// call_the_provider(permit.token()).await; // hand the token along
/// permit.release().await?; // or drop it
/// # Ok(()) }
/// # async fn call_the_provider(_: peerlock::FencingToken) {}
/// ```
///
/// `cargo run --example semaphore` runs one across three nodes.
#[derive(Clone, Debug)]
pub struct Semaphore {
    node: Node,
    name: String,
    permits: u32,
}

impl Node {
    /// The counting semaphore `name` of `permits` permits (1 to
    /// 1 000 000). Nothing is checked or sent until the first acquire: a
    /// bad name or count is the acquire's `InvalidName` or
    /// `InvalidRequest`, and a count that differs from the one in use its
    /// `WrongKind`.
    pub fn semaphore(&self, name: &str, permits: u32) -> Semaphore {
        Semaphore {
            node: self.clone(),
            name: name.to_owned(),
            permits,
        }
    }
}

impl Semaphore {
    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its permit count, as this handle uses it.
    pub fn permits(&self) -> u32 {
        self.permits
    }

    /// Acquires `n` permits, waiting in the semaphore's FIFO queue.
    ///
    /// Cancel safety: dropping the future leaves the queue (and gives the
    /// permits back if they were granted meanwhile).
    ///
    /// # Errors
    ///
    /// - `InvalidRequest`: `n` is 0 or above the count, or the count is
    ///   outside 1..=1 000 000 (nothing is proposed).
    /// - `InvalidName`: the name is not 1 to 256 bytes of UTF-8.
    /// - `WrongKind`: the name is in use as a lock, or as a semaphore with
    ///   another count; use one count everywhere.
    /// - `AlreadyHeld`: this task holds permits of it (or it in any kind)
    ///   through this node already: a second wait could queue behind a
    ///   large request that waits for the first (issue 11, item 5).
    /// - `NoQuorum` after about one session TTL without a quorum;
    ///   `TableFull`, `Shutdown`, `Removed`.
    pub async fn acquire(&self, n: u32) -> Result<Permit, Error> {
        let h = self.node.handle();
        h.acquire_permits(&self.name, n, self.permits).await
    }

    /// Acquires `n` permits only if the FIFO rule grants them right now
    /// (enough are free and nobody waits ahead); `Ok(None)` otherwise.
    /// Never waits in the queue.
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire`], but never `AlreadyHeld`.
    pub async fn try_acquire(&self, n: u32) -> Result<Option<Permit>, Error> {
        let h = self.node.handle();
        h.try_acquire_permits(&self.name, n, self.permits).await
    }

    /// [`Semaphore::acquire`] that gives up after `timeout` with
    /// `Error::Timeout` and leaves the queue. `Duration::ZERO` is one
    /// attempt that never queues.
    ///
    /// # Errors
    ///
    /// `Timeout` when `timeout` passes first (nothing is held or queued
    /// then); otherwise as [`Semaphore::acquire`].
    pub async fn acquire_timeout(&self, n: u32, timeout: Duration) -> Result<Permit, Error> {
        let h = self.node.handle();
        h.acquire_permits_timeout(&self.name, n, self.permits, timeout)
            .await
    }
}
