//! What is written in the Raft log: one [`Command`] per entry.
//!
//! Entries are encoded as one version byte followed by the bincode 2
//! (serde, standard config) encoding of the command. An entry that does not
//! decode is skipped by every node alike (it can only come from a newer or
//! broken peer), so the lock tables stay identical.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::claim::Claim;
use crate::types::{FencingToken, LockName, NodeId, NodeName, RequestId, SessionId};

/// The encoding version written before every command.
pub const COMMAND_VERSION: u8 = 1;

/// The largest encoded command accepted when decoding.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// A request's identity and the session's acknowledgement floor.
///
/// `floor` promises that the session has received the outcome of every
/// request numbered below it, so the table may forget those outcomes (the
/// Raft dissertation's client-acknowledgement rule, section 6.3). A request
/// numbered below the floor is a stale duplicate and is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestKey {
    /// The session sending the request.
    pub session: SessionId,
    /// The request's number within the session.
    pub request: RequestId,
    /// Every request of this session below this number is finished.
    pub floor: RequestId,
}

/// One log entry's worth of intent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A node starts a session. Idempotent: opening an open session is a
    /// no-op that answers `Opened` again.
    OpenSession {
        /// The new session.
        session: SessionId,
        /// The node that owns it.
        node: NodeId,
        /// That node's name, reported by `holder`.
        name: NodeName,
        /// The session's TTL in milliseconds, used by the leader's liveness check.
        ttl_ms: u64,
    },
    /// Graceful close: the session's waiters are dropped and its locks are
    /// freed (awaiting a [`Command::Handoff`], with no lock-delay).
    CloseSession {
        /// The session to close.
        session: SessionId,
    },
    /// Proposed by the leader when the session was silent for its TTL. Its
    /// locks are freed awaiting a [`Command::Handoff`]; with `lock_delay`
    /// the leader waits its lock-delay before proposing that handoff.
    ExpireSession {
        /// The session to expire.
        session: SessionId,
        /// Whether the leader applies a lock-delay to the freed locks.
        lock_delay: bool,
    },
    /// Take `lock`: granted at this entry if free; else queued (FIFO) when
    /// `wait`, or answered `Busy` when not.
    Acquire {
        /// Who asks.
        key: RequestKey,
        /// Which lock.
        lock: LockName,
        /// Queue when held (`lock`), or fail at once (`try_lock`).
        wait: bool,
    },
    /// Release the grant identified by `token`. A stale token (a grant that
    /// already ended) changes nothing and answers `NotHolder`.
    Release {
        /// Who asks.
        key: RequestKey,
        /// Which lock.
        lock: LockName,
        /// The token of the grant being released.
        token: FencingToken,
    },
    /// Abandon the acquire numbered `target` of the same session: remove it
    /// from the queue, or release the lock if that acquire was granted, or,
    /// if the acquire has not arrived yet, record it as cancelled so it
    /// never takes effect.
    Cancel {
        /// Who asks (the cancel is a request of its own).
        key: RequestKey,
        /// The acquire to abandon.
        target: RequestId,
    },
    /// Proposed by the leader: grant a lock freed by session expiry or close
    /// to its next waiter. Only acts if the lock is still awaiting the
    /// handoff of the entry at index `freed_at`, so a stale duplicate can
    /// never cut a later lock-delay short.
    Handoff {
        /// The lock.
        lock: LockName,
        /// The index of the entry that freed it.
        freed_at: u64,
    },
    // Membership. These come after the lock commands: bincode writes the
    // variant's number, and entries already on disk must keep decoding.
    /// A node asks to become a member: allocates it the next Raft id
    /// (answered by `Effect::MemberJoined`), or refuses it
    /// (`Effect::MemberJoinRefused`). Idempotent on `token`: a retry while
    /// its member is still in the table gets the same id.
    Join {
        /// Chosen at random by the joiner, once per incarnation.
        token: u64,
        /// Its name (certificate CN or configured name), 1 to 256 bytes.
        name: NodeName,
        /// Where it listens.
        addr: SocketAddr,
        /// Its failure zone, at most 64 bytes.
        #[serde(deserialize_with = "crate::types::opt_string_as_read")]
        zone: Option<String>,
        /// Whether it keeps its Raft state on disk.
        durable: bool,
    },
    /// A member's new address (proposed by the member itself on start, or
    /// on its behalf when its authenticated connection comes from a new
    /// address). An unknown id changes nothing.
    SetAddr {
        /// The member.
        id: NodeId,
        /// Its address now.
        addr: SocketAddr,
    },
    /// A member asks to leave (graceful shutdown); the leader then replaces
    /// or demotes it. An unknown id changes nothing.
    Leave {
        /// The member.
        id: NodeId,
    },
    /// Records the cluster's identity. The first one wins (a cluster is
    /// founded once); a later one, or a cluster id of 0, changes nothing.
    Found {
        /// The cluster's random id (0 means none).
        cluster_id: u128,
        /// Kept beside the cluster id.
        token_base: u64,
    },
    /// A member's zone, proposed by the member itself when the zone it was
    /// started with differs from its record: a founding member has none
    /// recorded (the founders' table is built from what each founder can
    /// see of the others, which holds no zone), and a restart may name
    /// another. An unknown id changes nothing.
    SetZone {
        /// The member.
        id: NodeId,
        /// Its zone now, at most 64 bytes (`None` clears it).
        #[serde(deserialize_with = "crate::types::opt_string_as_read")]
        zone: Option<String>,
    },
    // Issue 11's primitives. Appended, for the same reason as membership.
    /// Take every claim at once (a read lock, a write lock, permits of a
    /// semaphore, a multi-lock, or any mix): granted in this entry when the
    /// FIFO rule allows it on every name, else queued when `wait` (FIFO,
    /// granted later in one entry on all names at once), else `Busy`.
    /// Refused with `Invalid` past the limits of
    /// [`super::validate_claims`], and with `WrongKind` when a name in use
    /// is of another kind or count; neither changes anything.
    AcquireClaims {
        /// Who asks.
        key: RequestKey,
        /// What it asks for: 1 to 64 claims on distinct names.
        claims: Vec<Claim>,
        /// Queue when not grantable now, or fail at once (`try_`).
        wait: bool,
    },
    /// Release every claim of the grant that answered request `grant` of
    /// the same session (an `AcquireClaims` or an `Acquire`). A grant that
    /// already ended answers `NotHolder` and changes nothing.
    ReleaseGrant {
        /// Who asks.
        key: RequestKey,
        /// The request whose grant is released.
        grant: RequestId,
    },
}

/// Why an entry's bytes are not a command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty command")]
    Empty,
    /// Written by a version this node does not know.
    #[error("unknown command version {0}")]
    Version(u8),
    /// Larger than [`MAX_COMMAND_BYTES`].
    #[error("command of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The bytes are not a valid encoding (or name an invalid lock).
    #[error("malformed command: {0}")]
    Malformed(String),
}

impl Command {
    /// Encodes the command as it is stored in a log entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![COMMAND_VERSION];
        // Encoding into a Vec cannot fail for these plain data types; fall
        // back to an empty payload (which will fail to decode everywhere
        // alike) rather than panic.
        match bincode::serde::encode_to_vec(self, bincode::config::standard()) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(e) => tracing::error!(error = %e, "command failed to encode"),
        }
        out
    }

    /// Decodes a log entry's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if *version != COMMAND_VERSION {
            return Err(DecodeError::Version(*version));
        }
        if bytes.len() > MAX_COMMAND_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let config = bincode::config::standard().with_limit::<MAX_COMMAND_BYTES>();
        let (cmd, used): (Self, usize) = bincode::serde::decode_from_slice(body, config)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if used != body.len() {
            return Err(DecodeError::Malformed(format!(
                "{} trailing bytes",
                body.len() - used
            )));
        }
        cmd.check()?;
        Ok(cmd)
    }

    /// Re-checks invariants serde cannot (lock names, member names and
    /// zones decoded from bytes).
    fn check(&self) -> Result<(), DecodeError> {
        let lock = match self {
            Self::Acquire { lock, .. }
            | Self::Release { lock, .. }
            | Self::Handoff { lock, .. } => lock,
            Self::Join { name, zone, .. } => {
                return super::members::validate_member(name, zone.as_deref())
                    .map_err(|e| DecodeError::Malformed(e.to_string()));
            }
            Self::SetZone { zone, .. } => {
                return super::members::validate_zone(zone.as_deref())
                    .map_err(|e| DecodeError::Malformed(e.to_string()));
            }
            // The claims' limits are the table's to answer (`Invalid`), so
            // the client hears why; names are checked here like all names.
            Self::AcquireClaims { claims, .. } => {
                for c in claims {
                    LockName::new(c.lock.as_str())
                        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        LockName::new(lock.as_str())
            .map(|_| ())
            .map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}
