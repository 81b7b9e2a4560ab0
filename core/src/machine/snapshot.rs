//! Encoding the whole table for a Raft snapshot, and restoring it.
//!
//! Format: one version byte, then the bincode 2 (serde, standard config)
//! encoding of the table. Ordered maps make the bytes deterministic, so
//! `state_hash` can compare nodes. Restoring never panics: garbage, a
//! truncated snapshot or an unknown version is a `DecodeError`. Serde
//! cannot check what the table's own code guarantees, so restore checks it
//! before accepting the bytes: lock names are valid, a lock entry is never
//! empty, and sessions and locks agree on every grant and every waiter (so
//! `apply` never meets a table it could not have built).
//!
//! Version 2 adds the member table after the version 1 fields. Version 1
//! images (written before membership was replicated, found in existing
//! data directories) still restore, with an empty member table. Restore
//! checks the member table too: ids below `next_id`, valid names and
//! zones, keys matching ids.
//!
//! Version 3 (issue 11) adds each name's kind and shared grants, and keys
//! a session's grants by request (a session may hold a name twice, as two
//! read locks). Version 2 and 1 images still restore: every grant and
//! waiter in them is a mutex's (`snapshot_v2.rs` converts them).
//!
//! Version 4 (issue 11) keeps, on a name awaiting a handoff, the grants of
//! the ended sessions (they count as held until the handoff, and the
//! session is gone). Version 3 images still restore (`snapshot_v3.rs`):
//! a pending handoff there blocks the whole name, as it did.
//!
//! The set of locks awaiting a handoff, each semaphore's permits in use and
//! the count of lock entries are derived state: not in the image, rebuilt
//! here.
//!
//! The decode limit bounds what garbage can make us allocate. bincode counts
//! every integer at its full width against that limit (a one-byte varint
//! counts 8), so a snapshot decodes as long as its body is below
//! [`MAX_SNAPSHOT_BYTES`] / 8 (128 MiB, millions of locks); larger tables
//! are refused as malformed rather than risking unbounded allocation.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::lock::Lock;
use super::members::MemberTable;
use super::session::Session;
use super::{DecodeError, LockTable};
use crate::types::{LockName, SessionId};

/// The snapshot encoding version.
pub const SNAPSHOT_VERSION: u8 = 4;

/// The version before a name awaiting a handoff kept its ended grants:
/// still restored.
pub(super) const SNAPSHOT_VERSION_3: u8 = 3;

/// The version before issue 11's primitives: still restored.
pub(super) const SNAPSHOT_VERSION_2: u8 = 2;

/// The version before the member table: still restored.
pub(super) const SNAPSHOT_VERSION_1: u8 = 1;

/// The largest snapshot accepted when decoding (1 GiB), and the bincode
/// decode limit.
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

#[derive(Serialize, Deserialize)]
pub(super) struct Image {
    pub(super) sessions: BTreeMap<SessionId, Session>,
    pub(super) locks: BTreeMap<LockName, Lock>,
    pub(super) applied_index: u64,
    pub(super) members: MemberTable,
}

#[derive(Serialize)]
struct ImageRef<'a> {
    sessions: &'a BTreeMap<SessionId, Session>,
    locks: &'a BTreeMap<LockName, Lock>,
    applied_index: u64,
    members: &'a MemberTable,
}

impl LockTable {
    /// Encodes the whole table for a Raft snapshot.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let image = ImageRef {
            sessions: &self.sessions,
            locks: &self.locks,
            applied_index: self.applied_index,
            members: &self.members,
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
        if bytes.len() > MAX_SNAPSHOT_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let mut image = match *version {
            SNAPSHOT_VERSION => decode_body(body)?,
            SNAPSHOT_VERSION_3 => {
                super::snapshot_v3::decode(body).map_err(DecodeError::Malformed)?
            }
            SNAPSHOT_VERSION_2 | SNAPSHOT_VERSION_1 => {
                super::snapshot_v2::decode(*version, body).map_err(DecodeError::Malformed)?
            }
            v => return Err(DecodeError::Version(v)),
        };
        let entries = super::snapshot_check::check(&mut image).map_err(DecodeError::Malformed)?;
        image
            .members
            .check(image.applied_index)
            .map_err(DecodeError::Malformed)?;
        // Inserted one by one: a collect into a B-tree set compiles a sort
        // and a bulk build for the type (issue 12, item 9).
        let mut awaiting = BTreeSet::new();
        for (name, l) in &image.locks {
            if l.handoff.is_some() {
                awaiting.insert(name.clone());
            }
        }
        Ok(Self {
            sessions: image.sessions,
            locks: image.locks,
            applied_index: image.applied_index,
            awaiting,
            members: image.members,
            entries,
        })
    }
}

/// Decodes a whole snapshot body (no trailing bytes) within the limit.
pub(super) fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let config = bincode::config::standard().with_limit::<MAX_SNAPSHOT_BYTES>();
    let (image, used): (T, usize) = bincode::serde::decode_from_slice(body, config)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(DecodeError::Malformed(format!(
            "{} trailing bytes",
            body.len() - used
        )));
    }
    Ok(image)
}
