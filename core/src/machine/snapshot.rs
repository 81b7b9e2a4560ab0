//! Encoding the whole table for a Raft snapshot, and restoring it.
//!
//! Format: one version byte, then the bincode 2 (serde, standard config)
//! encoding of the table. Ordered maps make the bytes deterministic, so
//! `state_hash` can compare nodes. Restoring never panics: garbage, a
//! truncated snapshot or an unknown version is a `DecodeError`, and lock
//! names are re-validated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lock::Lock;
use super::session::Session;
use super::{DecodeError, LockTable};
use crate::types::{LockName, SessionId};

/// The snapshot encoding version.
pub const SNAPSHOT_VERSION: u8 = 1;

/// The largest snapshot accepted when decoding (1 GiB).
const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

#[derive(Serialize, Deserialize)]
struct Image {
    sessions: BTreeMap<SessionId, Session>,
    locks: BTreeMap<LockName, Lock>,
    applied_index: u64,
}

#[derive(Serialize)]
struct ImageRef<'a> {
    sessions: &'a BTreeMap<SessionId, Session>,
    locks: &'a BTreeMap<LockName, Lock>,
    applied_index: u64,
}

impl LockTable {
    /// Encodes the whole table for a Raft snapshot.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let image = ImageRef {
            sessions: &self.sessions,
            locks: &self.locks,
            applied_index: self.applied_index,
        };
        let mut out = vec![SNAPSHOT_VERSION];
        match bincode::serde::encode_to_vec(&image, bincode::config::standard()) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            // Plain data always encodes; an empty body fails to restore
            // loudly rather than restoring a wrong table.
            Err(e) => tracing::error!(error = %e, "lock table failed to encode"),
        }
        out
    }

    /// Rebuilds a table from [`LockTable::encode_snapshot`]'s bytes.
    pub fn restore(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if *version != SNAPSHOT_VERSION {
            return Err(DecodeError::Version(*version));
        }
        if bytes.len() > MAX_SNAPSHOT_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let config = bincode::config::standard().with_limit::<MAX_SNAPSHOT_BYTES>();
        let (image, used): (Image, usize) = bincode::serde::decode_from_slice(body, config)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if used != body.len() {
            return Err(DecodeError::Malformed(format!(
                "{} trailing bytes",
                body.len() - used
            )));
        }
        for name in image.locks.keys() {
            LockName::new(name.as_str()).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        }
        for s in image.sessions.values() {
            for name in s.held.keys().chain(s.waiting.values()) {
                LockName::new(name.as_str()).map_err(|e| DecodeError::Malformed(e.to_string()))?;
            }
        }
        Ok(Self {
            sessions: image.sessions,
            locks: image.locks,
            applied_index: image.applied_index,
        })
    }
}
