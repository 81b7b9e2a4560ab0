//! The small value types every layer shares: node identities, sessions,
//! request ids, validated lock names and fencing tokens.
//!
//! They live in one place so that the state machine, the driver, the
//! transport and the public API agree on one spelling of each idea.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A node's Raft id. Derived from the node name in its certificate
/// ([`NodeId::from_name`]), so the identity a peer proves in the TLS
/// handshake is the identity it has in Raft.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The id of the node whose certificate names it `name`: a 64-bit
    /// FNV-1a hash, never 0 (Raft reserves 0 for "no node").
    pub fn from_name(name: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Self(if h == 0 { 1 } else { h })
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Deserializes a string through `deserialize_str`, so that a decoder
/// reading from a slice (bincode's, for log entries and snapshots) checks
/// the announced length against the bytes actually there before anything is
/// allocated. Through `deserialize_string`, bincode allocates the announced
/// length first: a 30-byte snapshot could claim a string of up to the decode
/// limit (1 GiB) and have it allocated (found by the `snapshot` fuzz target).
/// The bytes on the wire are the same either way.
pub(crate) fn string_as_read<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Read;
    impl serde::de::Visitor<'_> for Read {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<String, E> {
            Ok(s.to_owned())
        }
        fn visit_string<E: serde::de::Error>(self, s: String) -> Result<String, E> {
            Ok(s)
        }
    }
    d.deserialize_str(Read)
}

/// [`string_as_read`] for an optional string (a member's zone): the same
/// guard against a claimed length the bytes do not hold.
pub(crate) fn opt_string_as_read<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    struct Read;
    impl<'de> serde::de::Visitor<'de> for Read {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an optional string")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            string_as_read(d).map(Some)
        }
    }
    d.deserialize_option(Read)
}

/// A node's human name: the common name of its certificate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeName(#[serde(deserialize_with = "string_as_read")] pub String);

impl NodeName {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One running node instance's session. Chosen at random by the node when it
/// starts (and again after its session expired), opened by a log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{:016x}", self.0)
    }
}

/// A request's number within its session. Allocated by the session's node,
/// strictly increasing; a retry of the same request reuses its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// The longest lock name, in bytes.
pub const MAX_LOCK_NAME: usize = 256;

/// A validated lock name: UTF-8, 1 to [`MAX_LOCK_NAME`] bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LockName(#[serde(deserialize_with = "string_as_read")] String);

impl LockName {
    /// Checks `name` and wraps it; `Error::InvalidName` says what is wrong.
    ///
    /// # Errors
    ///
    /// `InvalidName` for an empty name or one over [`MAX_LOCK_NAME`] bytes.
    pub fn new(name: &str) -> Result<Self, Error> {
        if name.is_empty() {
            return Err(Error::InvalidName {
                reason: "a lock name must not be empty".into(),
            });
        }
        if name.len() > MAX_LOCK_NAME {
            return Err(Error::InvalidName {
                reason: format!(
                    "a lock name is at most {MAX_LOCK_NAME} bytes, this one has {}",
                    name.len()
                ),
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fencing token: the Raft log index of the entry that granted the lock,
/// plus the cluster's token base (the founder's wall clock in microseconds
/// since the Unix epoch, set once by the `Found` entry: a cluster founded
/// again after every disk was lost still hands out higher tokens, issue 9).
///
/// Pass it to the resource the lock protects, and have the resource refuse
/// any write that carries a token lower than the highest it has seen. That,
/// not the lease, is what stops a holder that was paused or cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FencingToken(pub u64);

impl FencingToken {
    /// The token as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What `Node::holder` reports about a held lock.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockInfo {
    /// The holder's fencing token.
    pub token: FencingToken,
    /// The name of the node whose session holds it.
    pub holder: NodeName,
    /// The id of that node.
    pub holder_id: NodeId,
    /// The holding session.
    pub session: SessionId,
    /// How many requests are queued behind the holder.
    pub waiters: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_are_checked() {
        assert!(LockName::new("orders/42").is_ok());
        assert!(matches!(LockName::new(""), Err(Error::InvalidName { .. })));
        assert!(LockName::new(&"x".repeat(256)).is_ok());
        assert!(matches!(
            LockName::new(&"x".repeat(257)),
            Err(Error::InvalidName { .. })
        ));
    }

    #[test]
    fn node_ids_are_stable_and_nonzero() {
        assert_eq!(NodeId::from_name("node-a"), NodeId::from_name("node-a"));
        assert_ne!(NodeId::from_name("node-a"), NodeId::from_name("node-b"));
        assert_ne!(NodeId::from_name("").0, 0);
    }
}
