//! S1: per lock, every acknowledged grant has a token strictly above every
//! grant acknowledged before it was invoked, and no two grants (of any
//! lock: a token is the granting entry's index) share a token.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Property, Report};
use crate::sim::history::{Call, EventKind, History, Outcome};

pub(super) fn check(h: &History, r: &mut Report) {
    // op -> (lock, invoked at, is an acquire)
    let mut open: BTreeMap<u64, (String, Duration, bool)> = BTreeMap::new();
    // Per lock: (invoked, completed, token) of every acknowledged grant.
    let mut grants: BTreeMap<String, Vec<(Duration, Duration, u64)>> = BTreeMap::new();
    let mut owner: BTreeMap<u64, String> = BTreeMap::new();
    for e in &h.events {
        match &e.kind {
            EventKind::Invoke { op, call } => {
                r.stats.ops += 1;
                let acquire = matches!(call, Call::Acquire | Call::TryAcquire);
                open.insert(*op, (e.lock.clone(), e.at, acquire));
            }
            EventKind::Complete { op, outcome } => {
                let Some((lock, invoked, acquire)) = open.remove(op) else {
                    continue;
                };
                match outcome {
                    Outcome::Failed { .. } => r.stats.indeterminate += 1,
                    Outcome::Granted { token } if acquire => {
                        r.stats.grants += 1;
                        if let Some(other) = owner.insert(*token, lock.clone()) {
                            r.add(
                                Property::S1Tokens,
                                Some(&lock),
                                format!("token {token} granted twice (also on {other:?})"),
                            );
                        }
                        grants
                            .entry(lock)
                            .or_default()
                            .push((invoked, e.at, *token));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    r.stats.indeterminate += open.len() as u64;
    for (lock, mut gs) in grants {
        // A grant acknowledged before another was invoked must carry the
        // smaller token. Sorted by invocation, the highest token among
        // grants completed before each invocation must be below it.
        gs.sort_by_key(|g| g.0);
        let mut by_done = gs.clone();
        by_done.sort_by_key(|g| g.1);
        let mut done = by_done.iter().peekable();
        let mut highest: Option<(u64, Duration)> = None;
        for (invoked, _, token) in &gs {
            while let Some(d) = done.next_if(|d| d.1 < *invoked) {
                if highest.is_none_or(|(t, _)| d.2 > t) {
                    highest = Some((d.2, d.1));
                }
            }
            if let Some((t, at)) = highest {
                if *token <= t {
                    r.add(
                        Property::S1Tokens,
                        Some(&lock),
                        format!(
                            "grant with token {token} invoked at {invoked:?} after token {t} was acknowledged at {at:?}"
                        ),
                    );
                }
            }
        }
    }
}
