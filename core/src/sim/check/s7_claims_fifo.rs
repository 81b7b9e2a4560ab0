//! S7 for claims: per name, a request is granted only when no request that
//! queued on that name before it still waits there, and a request granted
//! at once (by its own `AcquireClaims`) finds every queue of its names
//! empty. This is the machine's grant rule (issue 11): FIFO per name, so
//! a reader never overtakes a waiting writer (no writer starvation), small
//! permit requests never overtake a large one at the head, and a later
//! multi-lock never overtakes an earlier one on a shared name.
//!
//! Readers or permits granted together in one entry are all taken out of
//! the queues before the check, so they may go in any order among
//! themselves. Queue order is only trusted on names whose queue the replay
//! knows entirely (see [`super::claims_replay`]).
//!
//! Limits: the converse ("the head is granted as soon as it fits") is not
//! checked: whether it fits depends on handoffs pending, which the log
//! shows only indirectly.

use super::claims_replay::{Claims, Granted};
use super::{Property, Report};

/// Judges grant `g` of entry `index`, once every grant of the entry is out
/// of the queues.
pub(super) fn after_grant(c: &mut Claims<'_>, index: u64, g: &Granted<'_>, r: &mut Report) {
    let (session, request) = g.req;
    for claim in g.claims {
        let Some(state) = c.names.get_mut(&claim.lock) else {
            continue;
        };
        if g.immediate {
            if let (true, Some((_, head))) = (state.known, state.waiters.first_key_value()) {
                r.add(
                    Property::S7Fifo,
                    Some(claim.lock.as_str()),
                    format!(
                        "entry {index} granted {session} request {request:?} ({:?}) at once while {head:?} waited",
                        claim.kind
                    ),
                );
            }
            // A grant at once shows the machine's queue empty.
            state.known = true;
            state.waiters.clear();
            continue;
        }
        let (Some(mine), true) = (g.arrival, state.known) else {
            continue;
        };
        if let Some((n, head)) = state.waiters.first_key_value() {
            if *n < mine {
                r.add(
                    Property::S7Fifo,
                    Some(claim.lock.as_str()),
                    format!(
                        "entry {index} granted {session} request {request:?} ({:?}) while {head:?}, queued earlier on this name, still waited",
                        claim.kind
                    ),
                );
            }
        }
    }
}
