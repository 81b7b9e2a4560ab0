//! Restoring version 2 and version 1 snapshots, written before issue 11:
//! every name is a lock, every grant a mutex grant kept in the lock's
//! `holder` and in the session's `held` by lock name, every waiter a mutex
//! waiter. Version 1 lacks the member table (found empty, as before).
//!
//! The old types are kept here exactly as they were encoded (bincode
//! writes fields in order, without names), and converted to the current
//! ones; `snapshot_check.rs` then checks the result like any image.
//!
//! A map the decoder only walks is read as a `Vec` of pairs: bincode
//! writes a map as its length and its pairs, as it writes a sequence of
//! pairs, so the bytes are the same, and no B-tree code is compiled for a
//! type only these old images use (issue 12, item 9: about 7 KiB a type).
//! The old code wrote its maps in key order, which `sorted` checks where
//! the decoder looks a name up.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::effect::Outcome;
use super::lock::{Awaiting, Holder, Lock, PendingHandoffState, WaitQueue};
use super::members::MemberTable;
use super::session::{Ask, Held, Session};
use super::snapshot::{decode_body, Image, SNAPSHOT_VERSION_1};
use crate::types::{FencingToken, LockName, NodeId, NodeName, RequestId, SessionId};

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct LockV2 {
    holder: Option<Holder>,
    handoff: Option<PendingHandoffState>,
    waiters: WaitQueue,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct SessionV2 {
    node: NodeId,
    name: NodeName,
    ttl_ms: u64,
    floor: RequestId,
    results: BTreeMap<RequestId, Outcome>,
    held: Vec<(LockName, FencingToken)>,
    waiting: Vec<(RequestId, LockName)>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct ImageV2 {
    sessions: Vec<(SessionId, SessionV2)>,
    locks: Vec<(LockName, LockV2)>,
    applied_index: u64,
    members: MemberTable,
}

#[derive(Deserialize)]
struct ImageV1 {
    sessions: Vec<(SessionId, SessionV2)>,
    locks: Vec<(LockName, LockV2)>,
    applied_index: u64,
}

/// Decodes a version 2 (or 1) body into a current image.
pub(super) fn decode(version: u8, body: &[u8]) -> Result<Image, String> {
    let old: ImageV2 = if version == SNAPSHOT_VERSION_1 {
        let v1: ImageV1 = decode_body(body).map_err(|e| e.to_string())?;
        ImageV2 {
            sessions: v1.sessions,
            locks: v1.locks,
            applied_index: v1.applied_index,
            members: MemberTable::default(),
        }
    } else {
        decode_body(body).map_err(|e| e.to_string())?
    };
    sorted(&old.locks, "locks")?;
    let holder = |name: &LockName| {
        let at = old.locks.binary_search_by(|(n, _)| n.cmp(name)).ok()?;
        old.locks.get(at)?.1.holder
    };
    let mut sessions = BTreeMap::new();
    for (id, s) in old.sessions {
        let mut held = BTreeMap::new();
        for (name, token) in s.held {
            // The grant's request is the lock's holder's.
            let h = holder(&name)
                .filter(|h| h.session == id && h.token == token)
                .ok_or_else(|| format!("lock {name}'s holder disagrees with its session"))?;
            let ask = Ask::Lock(name);
            if held.insert(h.request, Held { ask, token }).is_some() {
                return Err(format!("session {id} holds two locks by one request"));
            }
        }
        let mut waiting = BTreeMap::new();
        for (r, name) in s.waiting {
            waiting.insert(r, Ask::Lock(name));
        }
        let session = Session {
            node: s.node,
            name: s.name,
            ttl_ms: s.ttl_ms,
            floor: s.floor,
            results: s.results,
            held,
            waiting,
        };
        if sessions.insert(id, session).is_some() {
            return Err(format!("session {id} is in the image twice"));
        }
    }
    // Inserted one by one, not collected: a collect into a B-tree map
    // compiles a sort and a bulk build for its types (13 KiB of every
    // binary, issue 12, item 9), and `sorted` has checked the order.
    let mut locks = BTreeMap::new();
    for (name, l) in old.locks {
        let lock = Lock {
            holder: l.holder,
            // What the ended grant held is not recorded: the whole
            // name waits for the handoff, as it did then.
            handoff: l.handoff.map(Awaiting::whole),
            waiters: l.waiters,
            ..Lock::default()
        };
        locks.insert(name, lock);
    }
    Ok(Image {
        sessions,
        locks,
        applied_index: old.applied_index,
        members: old.members,
    })
}

/// Refuses an old image's list whose names are not in strictly increasing
/// order: the old code wrote a B-tree map, so a list out of order (or with
/// a name twice) is not one it wrote.
pub(super) fn sorted<V>(pairs: &[(LockName, V)], what: &str) -> Result<(), String> {
    for pair in pairs.windows(2) {
        if let [(a, _), (b, _)] = pair {
            if a >= b {
                return Err(format!("{what} out of order at {b}"));
            }
        }
    }
    Ok(())
}

/// The version 2 encoding of a table that has only mutexes, written as the
/// version 2 code wrote it (tests build old snapshots with it; that it is
/// byte-exact is checked against a fixture the old code wrote).
#[cfg(test)]
pub(super) fn encode_v2(t: &super::LockTable) -> Vec<u8> {
    let sessions = t
        .sessions
        .iter()
        .map(|(id, s)| {
            let held = s
                .held
                .values()
                .filter_map(|h| match &h.ask {
                    Ask::Lock(name) => Some((name.clone(), h.token)),
                    Ask::Claims(_) => None,
                })
                // In name order, as the old map wrote them.
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect();
            let waiting = s
                .waiting
                .iter()
                .filter_map(|(r, a)| match a {
                    Ask::Lock(name) => Some((*r, name.clone())),
                    Ask::Claims(_) => None,
                })
                .collect();
            let old = SessionV2 {
                node: s.node,
                name: s.name.clone(),
                ttl_ms: s.ttl_ms,
                floor: s.floor,
                results: s.results.clone(),
                held,
                waiting,
            };
            (*id, old)
        })
        .collect();
    let locks = t
        .locks
        .iter()
        .map(|(name, l)| {
            let old = LockV2 {
                holder: l.holder,
                handoff: l.handoff.as_ref().map(Awaiting::state),
                waiters: l.waiters.clone(),
            };
            (name.clone(), old)
        })
        .collect();
    let image = ImageV2 {
        sessions,
        locks,
        applied_index: t.applied_index,
        members: t.members.clone(),
    };
    let mut out = vec![super::snapshot::SNAPSHOT_VERSION_2];
    out.extend(bincode::serde::encode_to_vec(&image, bincode::config::standard()).unwrap());
    out
}
