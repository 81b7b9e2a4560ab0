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
//! The set of locks awaiting a handoff is derived state: it is not in the
//! image and is rebuilt here, so adding it changed nothing in the format.
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
pub const SNAPSHOT_VERSION: u8 = 2;

/// The version before the member table: still restored.
const SNAPSHOT_VERSION_1: u8 = 1;

/// The largest snapshot accepted when decoding (1 GiB), and the bincode
/// decode limit.
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

#[derive(Serialize, Deserialize)]
struct Image {
    sessions: BTreeMap<SessionId, Session>,
    locks: BTreeMap<LockName, Lock>,
    applied_index: u64,
    members: MemberTable,
}

/// A version 1 image: the same without the member table.
#[derive(Deserialize)]
struct ImageV1 {
    sessions: BTreeMap<SessionId, Session>,
    locks: BTreeMap<LockName, Lock>,
    applied_index: u64,
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
        if *version != SNAPSHOT_VERSION && *version != SNAPSHOT_VERSION_1 {
            return Err(DecodeError::Version(*version));
        }
        if bytes.len() > MAX_SNAPSHOT_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let image = if *version == SNAPSHOT_VERSION_1 {
            let v1: ImageV1 = decode_body(body)?;
            Image {
                sessions: v1.sessions,
                locks: v1.locks,
                applied_index: v1.applied_index,
                members: MemberTable::default(),
            }
        } else {
            decode_body(body)?
        };
        check(&image).map_err(DecodeError::Malformed)?;
        image
            .members
            .check(image.applied_index)
            .map_err(DecodeError::Malformed)?;
        let awaiting = image
            .locks
            .iter()
            .filter(|(_, l)| l.handoff.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        Ok(Self {
            sessions: image.sessions,
            locks: image.locks,
            applied_index: image.applied_index,
            awaiting,
            members: image.members,
        })
    }
}

/// Decodes a whole snapshot body (no trailing bytes) within the limit.
fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
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

/// Checks what the table's code guarantees and serde cannot: valid lock
/// names, no empty lock entries, and a one-to-one match between each lock's
/// holder and waiters and its sessions' `held` and `waiting`.
fn check(image: &Image) -> Result<(), String> {
    let mut holders = 0usize;
    let mut tokens = BTreeSet::new();
    let mut waiters = BTreeSet::new();
    for (name, lock) in &image.locks {
        LockName::new(name.as_str()).map_err(|e| e.to_string())?;
        if lock.is_free() {
            return Err(format!("lock {name} has an empty entry"));
        }
        if let Some(h) = lock.holder {
            let held = image
                .sessions
                .get(&h.session)
                .and_then(|s| s.held.get(name));
            if held != Some(&h.token) || lock.handoff.is_some() {
                return Err(format!("lock {name}'s holder disagrees with its session"));
            }
            if h.token.0
                > image
                    .members
                    .token_base()
                    .saturating_add(image.applied_index)
                || !tokens.insert(h.token)
            {
                return Err(format!("lock {name} has an impossible token"));
            }
            holders += 1;
        }
        if lock
            .handoff
            .is_some_and(|h| h.freed_at > image.applied_index)
        {
            return Err(format!("lock {name} awaits a handoff from the future"));
        }
        for (session, request) in lock.waiters.iter() {
            let queued = image
                .sessions
                .get(session)
                .and_then(|s| s.waiting.get(request));
            if queued != Some(name) || !waiters.insert((*session, *request)) {
                return Err(format!("lock {name}'s queue disagrees with its sessions"));
            }
        }
    }
    let held: usize = image.sessions.values().map(|s| s.held.len()).sum();
    let waiting: usize = image.sessions.values().map(|s| s.waiting.len()).sum();
    if held != holders || waiting != waiters.len() {
        return Err("sessions name grants or waiters the locks do not have".into());
    }
    Ok(())
}
