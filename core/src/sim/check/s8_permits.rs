//! S8: a semaphore never has more permits in use than its count, and while
//! it is in use every claim on it names the same count (issue 11, item 2).
//!
//! Judged twice, by [`super::claims_replay`] on the committed log (each
//! grant against the grants the log shows current: sound under any clock
//! skew) and by [`super::claims_history`] on what the clients saw (the
//! grants whose `is_held()` said true at one instant, within the clock
//! bound, as S4). Both call [`beside`].

use super::Property;
use crate::machine::ClaimKind;

/// Whether `n` permits of `count` fit beside `holders` (token, claim,
/// multi); `Some((property, why))` when they do not.
pub(super) fn beside(
    holders: &[(u64, ClaimKind, bool)],
    n: u32,
    count: u32,
) -> Option<(Property, String)> {
    let mut used: u64 = u64::from(n);
    for (token, kind, _) in holders {
        match *kind {
            ClaimKind::Permits { n: k, count: c } if c == count => used += u64::from(k),
            other => {
                return Some((
                    Property::S8Permits,
                    format!(
                    "the name is held as {other:?} (token {token}), not as a semaphore of {count}"
                ),
                ))
            }
        }
    }
    (used > u64::from(count)).then(|| {
        let tokens: Vec<u64> = holders.iter().map(|(t, ..)| *t).collect();
        (
            Property::S8Permits,
            format!("{used} permits in use of {count} (beside the grants with tokens {tokens:?})"),
        )
    })
}
