//! The lock state machine. (Skeleton: the machine helper fills this in.)

mod command;
mod effect;

pub use command::{Command, DecodeError, RequestKey, COMMAND_VERSION, MAX_COMMAND_BYTES};
pub use effect::{Effect, Outcome};

use crate::types::{FencingToken, LockInfo, LockName, NodeId, NodeName, RequestId, SessionId};

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
#[derive(Clone, Debug, Default)]
pub struct LockTable {}

#[allow(clippy::unimplemented, unused_variables)]
impl LockTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }
    /// Applies the command of log entry `index`.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Vec<Effect> {
        unimplemented!()
    }
    /// The current holder of `lock`.
    pub fn holder(&self, lock: &LockName) -> Option<LockInfo> {
        unimplemented!()
    }
    /// Whether `session` is open.
    pub fn session_exists(&self, session: SessionId) -> bool {
        unimplemented!()
    }
    /// Every open session, in session order.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        unimplemented!()
    }
    /// The locks awaiting a handoff, in lock-name order.
    pub fn pending_handoffs(&self) -> Vec<PendingHandoff> {
        unimplemented!()
    }
    /// The recorded outcome of a request, if the table still remembers it.
    pub fn outcome(&self, session: SessionId, request: RequestId) -> Option<Outcome> {
        unimplemented!()
    }
    /// The locks `session` holds, with their tokens, in lock-name order.
    pub fn locks_of(&self, session: SessionId) -> Vec<(LockName, FencingToken)> {
        unimplemented!()
    }
    /// The index of the last entry applied.
    pub fn applied_index(&self) -> u64 {
        unimplemented!()
    }
    /// Encodes the whole table for a Raft snapshot.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        unimplemented!()
    }
    /// Rebuilds a table from [`LockTable::encode_snapshot`]'s bytes.
    pub fn restore(bytes: &[u8]) -> Result<Self, DecodeError> {
        unimplemented!()
    }
    /// A hash of the whole state, equal on nodes that applied the same log.
    pub fn state_hash(&self) -> u64 {
        unimplemented!()
    }
}
