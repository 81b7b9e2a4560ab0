//! S3: a fenced resource (accepts a write only with a token at least the
//! highest it saw) never accepted a write after a higher token wrote. The
//! refused stale writes are counted: they show the faults reached the case
//! fencing exists for.

use std::collections::BTreeMap;

use super::{Property, Report};
use crate::sim::history::{EventKind, History};

pub(super) fn check(h: &History, r: &mut Report) {
    let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &h.events {
        let EventKind::Write { token, accepted } = e.kind else {
            continue;
        };
        let top = highest.entry(e.lock.as_str()).or_insert(0);
        let should = token >= *top;
        if accepted {
            r.stats.writes_accepted += 1;
        } else {
            r.stats.stale_writes_refused += 1;
        }
        if accepted && !should {
            r.add(
                Property::S3Fencing,
                Some(&e.lock),
                format!(
                    "write with token {token} accepted at {:?} after token {top} wrote",
                    e.at
                ),
            );
        }
        if !accepted && should {
            r.add(
                Property::S3Fencing,
                Some(&e.lock),
                format!(
                    "write with token {token} refused at {:?} though the highest was {top}",
                    e.at
                ),
            );
        }
        if accepted {
            *top = (*top).max(token);
        }
    }
}
