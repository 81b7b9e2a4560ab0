//! S10: a multi-lock (a grant of several claims) is all or nothing: one
//! entry grants every name, with one token, while no name has a holder its
//! claim conflicts with, and a request is granted at most once (issue 11,
//! item 4). A token is the granting entry's index, so "one token, strictly
//! above each name's previous tokens" holds in the log by construction; the
//! clients' side of it is judged by [`super::claims_history`] (tokens
//! rising per name, and an exclusive grant's token never shared).
//!
//! A conflict on a name is reported here rather than under S8 or S9 when
//! either grant involved is a multi-lock (see [`super::claims_replay`]): a
//! multi-lock granted on some names while another holds the rest
//! (Curator's and Redisson's one-by-one `MultiLock`) shows as exactly that.

use super::claims_replay::Granted;
use super::{Property, Report};

/// A request granted a second time (in another entry: partially, or again).
pub(super) fn granted_twice(index: u64, g: &Granted<'_>, r: &mut Report) {
    let (session, request) = g.req;
    let names: Vec<&str> = g.claims.iter().map(|c| c.lock.as_str()).collect();
    r.add(
        Property::S10MultiLock,
        names.first().copied(),
        format!(
            "entry {index} granted {session} request {request:?} on {names:?} a second time (a grant is one entry)"
        ),
    );
}
