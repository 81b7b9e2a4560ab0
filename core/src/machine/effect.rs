//! What applying an entry tells the driver.

use std::net::SocketAddr;

use super::claim::{ClaimError, NameKind};
use super::members::JoinRefusal;
use crate::types::{FencingToken, LockName, NodeId, RequestId, SessionId};

/// The outcome of one request, as the table records it for retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// The session is open (answer to `OpenSession`).
    Opened,
    /// The lock was granted with this token.
    Granted(FencingToken),
    /// The acquire waits in the lock's queue; a later `Reply` with
    /// `Granted` or `Cancelled` follows for the same request.
    Queued,
    /// `try_lock` found the lock held (or awaiting handoff).
    Busy,
    /// The release (or a cancel that released a grant) freed the lock.
    Released,
    /// The release named a grant that is not the current one: nothing changed.
    NotHolder,
    /// The acquire was abandoned (answer to both the `Cancel` and the acquire).
    Cancelled,
    /// The session does not exist (it expired or was closed).
    NoSession,
    /// The acquire would have passed [`super::MAX_LOCK_ENTRIES`]: nothing
    /// changed. (After the others, so older encodings keep their variant
    /// numbers; issue 11's outcomes follow it for the same reason.)
    TableFull,
    /// A claim (at position `claim` of the request; 0 for `Acquire`) names
    /// a name in use as another kind, or a semaphore of another count:
    /// nothing changed. `actual` is what the name is.
    WrongKind {
        /// The position of the disagreeing claim in the request.
        claim: u8,
        /// What the name is while in use.
        actual: NameKind,
    },
    /// The request's claims break a limit: nothing changed.
    Invalid(ClaimError),
}

/// One thing the driver must act on after an apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A request reached an outcome (possibly answered from the retry
    /// cache, or a queued acquire granted by a later entry).
    Reply {
        /// The request's session.
        session: SessionId,
        /// The request.
        request: RequestId,
        /// What happened.
        outcome: Outcome,
    },
    /// A lock was freed by session expiry or close and waits for the leader
    /// to propose a `Handoff` (after its lock-delay when `delayed`).
    AwaitingHandoff {
        /// The lock.
        lock: LockName,
        /// The index of the entry that freed it.
        freed_at: u64,
        /// Whether lock-delay applies.
        delayed: bool,
    },
    /// A session was opened.
    SessionOpened {
        /// The session.
        session: SessionId,
    },
    /// A session ended; every lock it held is gone.
    SessionEnded {
        /// The session.
        session: SessionId,
        /// True for expiry, false for a graceful close.
        expired: bool,
    },
    /// A `Join` was given its id (also when a retry of the same token
    /// found its member already in the table).
    MemberJoined {
        /// The join's token.
        token: u64,
        /// The member's Raft id.
        id: NodeId,
    },
    /// A `Join` was refused; nothing changed.
    MemberJoinRefused {
        /// The join's token.
        token: u64,
        /// Why.
        reason: JoinRefusal,
    },
    /// A member asked to leave (reported once).
    MemberLeaving {
        /// The member.
        id: NodeId,
    },
    /// A member's recorded address changed.
    MemberAddrChanged {
        /// The member.
        id: NodeId,
        /// Its new address.
        addr: SocketAddr,
    },
}
