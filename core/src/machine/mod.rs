//! The lock state machine: what every node applies, in log order.
//!
//! `LockTable::apply(index, &command) -> Vec<Effect>` is pure: no clock, no
//! randomness, no IO, and only ordered collections, so every node that
//! applies the same log holds the same table, byte for byte.
//!
//! A request claims names: `Acquire` one lock exclusively (the mutex
//! path, unchanged since before issue 11), `AcquireClaims` a set of
//! claims, exclusive, shared (read) or permits of a semaphore (see
//! `claim.rs`), granted in one entry on all its names or not at all.
//!
//! Invariants (checked by `tests.rs`, `claims_tests.rs` and the proptests):
//!
//! - an exclusive grant on a name has no other grant beside it; a shared
//!   grant has only shared grants beside it; a semaphore's grants never
//!   use more permits than its count;
//! - a grant's token is the index of the entry that granted it plus the
//!   cluster's token base (fixed once, at founding). Every grant an entry
//!   makes carries that entry's token: several readers or permit holders
//!   granted together share one, and a multi-lock has one for all its
//!   names. So tokens never fall per name, and an exclusive grant's token
//!   is strictly above every earlier grant's on each of its names (a
//!   resource can fence writers against readers). The mutex path still
//!   grants at most one lock per entry, so its tokens are unique;
//! - a request is granted only when, on each of its names, no request
//!   queued before it still waits there and its claim fits beside the
//!   holders, where a grant whose session ended counts as held until the
//!   name's handoff: FIFO per name, no overtaking on a shared name, no
//!   partial grant. The earliest waiting request is never
//!   blocked by a waiter, so waiters cannot deadlock (a multi-lock never
//!   holds some names while waiting for others); a waiter whose session
//!   ended is never granted;
//! - a request retried with the same `(session, request)` gets its first
//!   outcome again and never a second grant;
//! - a release with a stale token or grant changes nothing;
//! - what a session held when it expired or closed is granted to no one
//!   else before a later `Handoff` entry, which the leader proposes after
//!   the lock-delay; until then its grant counts as held (`ending.rs`), so
//!   what it never held (the rest of a semaphore, a read beside a read)
//!   is still granted.
//!
//! Beside the locks the table carries the member table (`members.rs`):
//! Raft ids allocated by `Join` entries, never reused, and following every
//! applied configuration through [`LockTable::apply_conf`].
//!
//! Choices where the rules leave room:
//!
//! - A request's `floor` is clamped to the request itself: a floor above it
//!   would forget the request's own outcome, and its retry would execute a
//!   second time.
//! - Outcomes are kept only at or above the floor (a request below it is
//!   ignored, so its outcome could never be read).
//! - `Cancel` finds a queued target in the session's `waiting`, and a
//!   granted one by the holder's request, rather than only through the
//!   recorded outcome: the same answer while the outcome is remembered, and
//!   a waiter is still removable if a client raised its floor too early.

mod claim;
mod command;
pub(crate) mod cost;
mod effect;
mod ending;
mod grant;
mod lock;
mod members;
mod mutex;
mod query;
mod request;
mod session;
mod snapshot;
mod snapshot_check;
mod snapshot_v2;
mod snapshot_v3;

#[cfg(test)]
mod claims_tests;
#[cfg(test)]
mod cost_tests;
#[cfg(test)]
mod handoff_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod members_proptests;
#[cfg(test)]
mod members_tests;
#[cfg(test)]
mod probe_tests;
#[cfg(test)]
mod proptest_history;
#[cfg(test)]
mod proptest_model;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod snapshot_compat_tests;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub use claim::{validate_claims, Claim, ClaimError, ClaimKind, NameKind, MAX_CLAIMS, MAX_PERMITS};
pub use command::{Command, DecodeError, RequestKey, COMMAND_VERSION, MAX_COMMAND_BYTES};
pub use effect::{Effect, Outcome};
pub use members::{
    validate_member, validate_zone, FoundingError, JoinRefusal, MemberRecord, MemberTable,
    MAX_MEMBERS, MAX_MEMBER_NAME, MAX_ZONE,
};
pub use query::{GrantInfo, NameInfo, WaiterInfo};
pub use snapshot::{MAX_SNAPSHOT_BYTES, SNAPSHOT_VERSION};

use lock::Lock;
use session::Session;

use crate::types::{FencingToken, LockName, NodeId, NodeName, RequestId, SessionId};

/// The most lock entries the table holds at once: each claim held and each
/// claim waited on counts one (a mutex grant or waiter one, a multi-lock
/// of three names three, a read lock or a permit grant one). An acquire
/// that would pass it (a grant or a queued wait; a `try_` that finds its
/// names busy changes nothing) gets [`Outcome::TableFull`] instead, decided in the log like every
/// outcome, so every node agrees. Why a limit: the whole table travels as
/// one snapshot to a follower that fell behind, and at this count, even
/// with 256-byte names, that snapshot stays below [`MAX_SNAPSHOT_BYTES`].
pub const MAX_LOCK_ENTRIES: usize = 1_000_000;

/// What the table knows of one open session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session.
    pub session: SessionId,
    /// Its node.
    pub node: NodeId,
    /// Its node's name.
    pub name: NodeName,
    /// Its TTL in milliseconds.
    pub ttl_ms: u64,
}

/// A lock freed by session expiry or close that waits for a `Handoff`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingHandoff {
    /// The lock.
    pub lock: LockName,
    /// The index of the entry that freed it.
    pub freed_at: u64,
    /// Whether lock-delay applies (freed by expiry).
    pub delayed: bool,
}

/// The replicated lock table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockTable {
    sessions: BTreeMap<SessionId, Session>,
    locks: BTreeMap<LockName, Lock>,
    applied_index: u64,
    /// The locks whose `handoff` is set: derived state (rebuilt on
    /// restore, never encoded), so finding them costs O(pending), not a
    /// scan of every lock.
    awaiting: BTreeSet<LockName>,
    /// Who is a member, beside the locks (see `members.rs`).
    members: MemberTable,
    /// Claims held plus claims waited on: derived state (rebuilt on
    /// restore, never encoded), so the limit check is O(1).
    entries: usize,
}

impl LockTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the command of log entry `index`. Entries at or below the
    /// last applied index are ignored (already applied).
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Vec<Effect> {
        if index <= self.applied_index {
            return Vec::new();
        }
        self.applied_index = index;
        let mut fx = Vec::new();
        match cmd {
            Command::OpenSession {
                session,
                node,
                name,
                ttl_ms,
            } => {
                if !self.sessions.contains_key(session) {
                    self.sessions
                        .insert(*session, Session::new(*node, name.clone(), *ttl_ms));
                    fx.push(Effect::SessionOpened { session: *session });
                }
                fx.push(Effect::Reply {
                    session: *session,
                    request: RequestId(0),
                    outcome: Outcome::Opened,
                });
            }
            Command::CloseSession { session } => {
                self.end_session(index, *session, false, false, &mut fx)
            }
            Command::ExpireSession {
                session,
                lock_delay,
            } => self.end_session(index, *session, true, *lock_delay, &mut fx),
            Command::Acquire { key, lock, wait } => {
                if self.begin_request(key, &mut fx) {
                    let out = self.acquire(index, key, lock, *wait);
                    self.finish_request(key, out, &mut fx);
                }
            }
            Command::Release { key, lock, token } => {
                if self.begin_request(key, &mut fx) {
                    let out = self.release(index, key.session, lock, *token, &mut fx);
                    self.finish_request(key, out, &mut fx);
                }
            }
            Command::Cancel { key, target } => {
                if self.begin_request(key, &mut fx) {
                    let out = self.cancel(index, key.session, *target, &mut fx);
                    self.finish_request(key, out, &mut fx);
                }
            }
            Command::Handoff { lock, freed_at } => self.handoff(index, lock, *freed_at, &mut fx),
            Command::AcquireClaims { key, claims, wait } => {
                if self.begin_request(key, &mut fx) {
                    let out = self.acquire_claims(index, key, claims, *wait);
                    self.finish_request(key, out, &mut fx);
                }
            }
            Command::ReleaseGrant { key, grant } => {
                if self.begin_request(key, &mut fx) {
                    let out = self.release_grant(index, key.session, *grant, &mut fx);
                    self.finish_request(key, out, &mut fx);
                }
            }
            Command::Join { .. }
            | Command::SetAddr { .. }
            | Command::Leave { .. }
            | Command::Found { .. }
            | Command::SetZone { .. } => self.members.apply(index, cmd, &mut fx),
        }
        fx
    }

    /// Claims held plus claims waited on (what [`MAX_LOCK_ENTRIES`]
    /// bounds), kept as a count.
    pub fn lock_entries(&self) -> usize {
        self.entries
    }

    /// The common front of a request: false when it must not execute
    /// (unknown session, stale duplicate, or a retry answered from the
    /// recorded outcome).
    fn begin_request(&mut self, key: &RequestKey, fx: &mut Vec<Effect>) -> bool {
        let Some(s) = self.sessions.get_mut(&key.session) else {
            fx.push(Effect::Reply {
                session: key.session,
                request: key.request,
                outcome: Outcome::NoSession,
            });
            return false;
        };
        if key.request < s.floor {
            return false;
        }
        // A floor above the request itself would forget this request's own
        // outcome and let a retry execute twice: clamp it to the request.
        s.raise_floor(key.floor.min(key.request));
        if let Some(outcome) = s.results.get(&key.request) {
            fx.push(Effect::Reply {
                session: key.session,
                request: key.request,
                outcome: *outcome,
            });
            return false;
        }
        true
    }

    fn finish_request(&mut self, key: &RequestKey, outcome: Outcome, fx: &mut Vec<Effect>) {
        if let Some(s) = self.sessions.get_mut(&key.session) {
            s.record(key.request, outcome);
        }
        fx.push(Effect::Reply {
            session: key.session,
            request: key.request,
            outcome,
        });
    }

    /// The fencing token of a grant made by the entry at `index`: the
    /// index plus the cluster's token base. The base is fixed once, by the
    /// `Found` entry, so tokens still rise with the log; and because it is
    /// the founder's wall clock in microseconds, a cluster founded again
    /// after every disk was lost hands out tokens above the old one's
    /// (issue 9, item 10).
    fn token_at(&self, index: u64) -> FencingToken {
        FencingToken(self.members.token_base().saturating_add(index))
    }
}
