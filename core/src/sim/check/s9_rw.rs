//! S9: no reader beside a writer, nor two writers, on a read-write lock
//! (an exclusive claim is a mutex, a write lock, or one name of a
//! multi-lock; a shared claim is a read lock). Issue 11, item 3.
//!
//! Judged on the committed log by [`super::claims_replay`] and on what the
//! clients saw by [`super::claims_history`], both with [`beside`] (see
//! [`super::s8_permits`] for why twice).

use super::Property;
use crate::machine::ClaimKind;

/// Whether a lock claim `kind` (exclusive or shared) fits beside
/// `holders`; `Some((property, why))` when it does not.
pub(super) fn beside(
    holders: &[(u64, ClaimKind, bool)],
    kind: ClaimKind,
) -> Option<(Property, String)> {
    for (token, other, _) in holders {
        let clash = match (kind, *other) {
            (_, ClaimKind::Permits { .. }) => {
                return Some((
                    Property::S8Permits,
                    format!("the name is a semaphore ({other:?}, token {token}), not a lock"),
                ))
            }
            (ClaimKind::Exclusive, _) | (_, ClaimKind::Exclusive) => true,
            _ => false,
        };
        if clash {
            let what = if kind == ClaimKind::Exclusive && *other == ClaimKind::Exclusive {
                "two writers"
            } else {
                "a reader beside a writer"
            };
            return Some((
                Property::S9ReadWrite,
                format!("{what}: held {other:?} with token {token}"),
            ));
        }
    }
    None
}
