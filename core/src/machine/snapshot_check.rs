//! What restore checks before accepting an image: what the table's own
//! code guarantees and serde cannot, so `apply` never meets a table it
//! could not have built (a snapshot comes from the network).
//!
//! - names are valid and no name's entry is empty;
//! - a name's kind is sane (a semaphore's count in 1..=`MAX_PERMITS`), an
//!   exclusive holder is alone and not awaiting a handoff, a lock's shared
//!   grants take no permits, a semaphore's take some and never more than
//!   its count in all;
//! - every grant and every waiter on a name is a claim of that kind on
//!   that name in its session's `held` or `waiting`, with the same token,
//!   and no token is above what the applied index can have granted;
//! - every claim in the sessions appears on its name: the counts match,
//!   and the names within one request are distinct (validated), so the
//!   two sides correspond one to one;
//! - no handoff comes from an entry not yet applied; a name awaiting one
//!   keeps at least one ended grant (unless restored from version 3), of
//!   the name's kind, an exclusive one alone, and its permits count
//!   against the semaphore's.
//!
//! It also rebuilds the derived state of each name (permits in use, and
//! those of the ended grants awaiting the handoff) and
//! returns the number of lock entries.

use super::claim::{validate_claims, ClaimKind, NameKind, MAX_PERMITS};
use super::lock::Waiter;
use super::session::Ask;
use super::snapshot::Image;
use crate::types::{FencingToken, LockName};

/// Checks `image` (see the module doc); sets each name's permits in use
/// and returns the count of claims held and waited on.
pub(super) fn check(image: &mut Image) -> Result<usize, String> {
    let max_token = image
        .members
        .token_base()
        .saturating_add(image.applied_index);
    let mut on_names = 0usize;
    let mut queued = 0usize;
    let mut used_by_name = Vec::new();
    for (name, lock) in &image.locks {
        LockName::new(name.as_str()).map_err(|e| e.to_string())?;
        if lock.is_free() {
            return Err(format!("lock {name} has an empty entry"));
        }
        if let NameKind::Semaphore { count } = lock.kind {
            if count == 0 || count > MAX_PERMITS {
                return Err(format!("semaphore {name} has a count of {count}"));
            }
        }
        let grant = |w: Waiter, token: FencingToken, kind: ClaimKind| {
            let held = image.sessions.get(&w.0).and_then(|s| s.held.get(&w.1));
            let ok = held.is_some_and(|h| h.token == token && h.ask.claim_on(name) == Some(kind));
            if !ok {
                return Err(format!("lock {name}'s holder disagrees with its session"));
            }
            if token.0 > max_token {
                return Err(format!("lock {name} has an impossible token"));
            }
            Ok(())
        };
        if let Some(h) = lock.holder {
            if lock.kind != NameKind::Lock || !lock.shared.is_empty() || lock.handoff.is_some() {
                return Err(format!("lock {name}'s exclusive holder is not alone"));
            }
            grant((h.session, h.request), h.token, ClaimKind::Exclusive)?;
            on_names += 1;
        }
        let mut used = 0u64;
        for (w, share) in &lock.shared {
            let kind = match lock.kind {
                NameKind::Lock if share.permits == 0 => ClaimKind::Shared,
                NameKind::Semaphore { count } if share.permits > 0 => ClaimKind::Permits {
                    n: share.permits,
                    count,
                },
                _ => return Err(format!("lock {name} has a grant of the wrong kind")),
            };
            grant(*w, share.token, kind)?;
            used += u64::from(share.permits);
            on_names += 1;
        }
        let mut ended = 0u64;
        if let Some(h) = &lock.handoff {
            if h.freed_at > image.applied_index {
                return Err(format!("lock {name} awaits a handoff from the future"));
            }
            if !h.whole && h.grants.is_empty() {
                return Err(format!("lock {name} awaits a handoff for no grant"));
            }
            for e in h.grants.values() {
                let ok = match (lock.kind, e.kind) {
                    (NameKind::Lock, ClaimKind::Exclusive) => {
                        h.grants.len() == 1 && lock.shared.is_empty()
                    }
                    (NameKind::Lock, ClaimKind::Shared) => true,
                    (NameKind::Semaphore { count }, ClaimKind::Permits { n, count: c }) => {
                        c == count && n > 0
                    }
                    _ => false,
                };
                if !ok {
                    return Err(format!("lock {name} keeps an impossible ended grant"));
                }
                if e.token.0 > max_token {
                    return Err(format!("lock {name} has an impossible token"));
                }
                ended += u64::from(e.kind.permits());
            }
        }
        if let NameKind::Semaphore { count } = lock.kind {
            if used + ended > u64::from(count) {
                return Err(format!(
                    "semaphore {name} has more permits out than its count"
                ));
            }
        }
        used_by_name.push(used);
        for (session, request) in lock.waiters.iter() {
            let ask = image
                .sessions
                .get(session)
                .and_then(|s| s.waiting.get(request));
            let kind = ask.and_then(|a| a.claim_on(name));
            if kind.is_none_or(|k| k.name_kind() != lock.kind) {
                return Err(format!("lock {name}'s queue disagrees with its sessions"));
            }
            queued += 1;
        }
    }
    let mut held = 0usize;
    let mut waiting = 0usize;
    for s in image.sessions.values() {
        for h in s.held.values() {
            valid(&h.ask)?;
            held += h.ask.len();
        }
        for ask in s.waiting.values() {
            valid(ask)?;
            waiting += ask.len();
        }
    }
    if held != on_names || waiting != queued {
        return Err("sessions name grants or waiters the locks do not have".into());
    }
    for (lock, used) in image.locks.values_mut().zip(used_by_name) {
        lock.used = used;
        if let Some(h) = &mut lock.handoff {
            h.recount();
        }
    }
    Ok(held + waiting)
}

fn valid(ask: &Ask) -> Result<(), String> {
    match ask {
        Ask::Lock(_) => Ok(()),
        Ask::Claims(c) => validate_claims(c).map_err(|e| e.to_string()),
    }
}
