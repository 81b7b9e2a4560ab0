//! S6 for claims (issue 11): every claims grant a client was told of is in
//! the committed log as the entry whose index is its token, granting a
//! request with the same claims, and no node applied it after the client
//! heard.
//!
//! Limits as S6: an acknowledgement whose entry fell into a gap of the log,
//! or granted a request whose `AcquireClaims` fell into one, is counted in
//! [`Stats::unverifiable`](super::Stats::unverifiable); the log does not say
//! which client an entry answered, so a grant of the same claims to another
//! request at that index would pass. Releases are not checked here.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Property, Report};
use crate::machine::Claim;
use crate::sim::history::{Call, EventKind, History, Outcome};

/// What the log showed: per index, its time and the claims it granted.
pub(super) struct Granted<'a> {
    pub(super) at: BTreeMap<u64, Duration>,
    /// `None`: a grant of a request whose claims the log did not show.
    pub(super) claims: BTreeMap<u64, Vec<Option<&'a [Claim]>>>,
}

pub(super) fn check(h: &History, log: &Granted<'_>, r: &mut Report) {
    let last = log.at.keys().next_back().copied().unwrap_or(0);
    let mut open: BTreeMap<u64, (&[Claim], &str)> = BTreeMap::new();
    for e in &h.events {
        match &e.kind {
            EventKind::Invoke {
                op,
                call: Call::Claims { claims, .. },
            } => {
                open.insert(*op, (claims.as_slice(), e.lock.as_str()));
            }
            EventKind::Complete {
                op,
                outcome: Outcome::Granted { token },
            } => {
                let Some((claims, label)) = open.remove(op) else {
                    continue;
                };
                let lost = |why: String| {
                    format!("grant of token {token} acknowledged at {:?} {why}", e.at)
                };
                match log.at.get(token) {
                    None if *token > last => r.add(
                        Property::S6Durability,
                        Some(label),
                        lost(format!("beyond the last committed entry {last}")),
                    ),
                    None => r.stats.unverifiable += 1,
                    Some(at) => {
                        let made = log.claims.get(token).map(Vec::as_slice).unwrap_or_default();
                        if made.contains(&None) && !made.contains(&Some(claims)) {
                            r.stats.unverifiable += 1;
                        } else if !made.contains(&Some(claims)) {
                            r.add(
                                Property::S6Durability,
                                Some(label),
                                lost(format!("but entry {token} granted {made:?}")),
                            );
                        } else if *at > e.at {
                            r.add(
                                Property::S6Durability,
                                Some(label),
                                lost(format!("before any node applied entry {token} (at {at:?})")),
                            );
                        }
                    }
                }
            }
            EventKind::Complete { op, .. } => {
                open.remove(op);
            }
            _ => {}
        }
    }
}
