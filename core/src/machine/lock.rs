//! One lock: its holder, its FIFO queue, and whether it awaits a handoff.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::types::{FencingToken, RequestId, SessionId};

/// The current grant of a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holder {
    pub(crate) session: SessionId,
    pub(crate) request: RequestId,
    pub(crate) token: FencingToken,
}

/// A lock freed by session expiry or close, waiting for the leader's
/// `Handoff` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingHandoffState {
    pub(crate) freed_at: u64,
    pub(crate) delayed: bool,
}

/// One lock's state. A lock with no holder, no pending handoff and no
/// waiters is removed from the table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lock {
    pub(crate) holder: Option<Holder>,
    pub(crate) handoff: Option<PendingHandoffState>,
    pub(crate) waiters: VecDeque<(SessionId, RequestId)>,
}

impl Lock {
    /// Free right now: nobody holds it, nobody waits, no handoff pending.
    /// Such a lock has nothing left to remember and leaves the table.
    pub(crate) fn is_free(&self) -> bool {
        self.holder.is_none() && self.handoff.is_none() && self.waiters.is_empty()
    }

    /// Removes a waiter; true if it was queued.
    pub(crate) fn remove_waiter(&mut self, session: SessionId, request: RequestId) -> bool {
        let before = self.waiters.len();
        self.waiters.retain(|w| *w != (session, request));
        self.waiters.len() != before
    }
}
