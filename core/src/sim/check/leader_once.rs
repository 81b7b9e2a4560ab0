//! L1: at most one leader at any instant. No two terms of office of one
//! election said `is_leader() == true` at overlapping true times, no term
//! said so after a higher term of its election had been acknowledged, and
//! a term that said `false` never says `true` again.
//!
//! Why: "run the scheduler on exactly one instance" is what leader election
//! is for (issue 11, item 1), and `is_leader()` is the promise a leader acts
//! on. A campaign is a mutex acquire of the election's name, so S1, S2, S3,
//! S5, S6 and S7 judge the election's grants, tokens and fenced writes like
//! any lock's; this property judges the leader's own view, as S4 judges
//! `is_held()`, and with S4's sweep ([`super::s4_single_holder`]).
//!
//! Like S4 it rests on the lease margin's clock bound: when the run broke
//! it (`params.expect_s4 == false`) the overlaps are only counted, in
//! [`Report::skipped`]. The one-way rule holds under any skew.
//!
//! Limits: only sampled instants are seen (as S4).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::s4_single_holder::{overlaps, stale};
use super::{ops, Property, Report};
use crate::sim::history::{EventKind, History};

pub(super) fn check(h: &History, r: &mut Report) {
    // Per election: token -> (first, last) true probe; every true probe.
    let mut spans: BTreeMap<&str, BTreeMap<u64, (Duration, Duration)>> = BTreeMap::new();
    let mut samples: BTreeMap<&str, Vec<(Duration, u64)>> = BTreeMap::new();
    // Terms that said false, and terms reported for saying true after it.
    let mut said_false: BTreeMap<(&str, u64), Duration> = BTreeMap::new();
    let mut revived: BTreeSet<(&str, u64)> = BTreeSet::new();
    for e in &h.events {
        let EventKind::Leader { token, leader } = e.kind else {
            continue;
        };
        let key = (e.lock.as_str(), token);
        if !leader {
            said_false.entry(key).or_insert(e.at);
            continue;
        }
        if let Some(at) = said_false.get(&key) {
            if revived.insert(key) {
                r.add(
                    Property::L1OneLeader,
                    Some(&e.lock),
                    format!(
                        "term {token} said is_leader() at {:?} after it said it was not at {at:?}",
                        e.at
                    ),
                );
            }
        }
        let span = spans
            .entry(&e.lock)
            .or_default()
            .entry(token)
            .or_insert((e.at, e.at));
        span.0 = span.0.min(e.at);
        span.1 = span.1.max(e.at);
        samples.entry(&e.lock).or_default().push((e.at, token));
    }
    r.stats.leader_terms += spans.values().map(|t| t.len() as u64).sum::<u64>();
    if spans.is_empty() {
        return;
    }
    // Terms acknowledged (campaigns granted), per election.
    let mut grants: BTreeMap<&str, Vec<(Duration, u64)>> = BTreeMap::new();
    for op in ops::pair(h) {
        if !spans.contains_key(op.lock) {
            continue;
        }
        if let (Some(token), Some(done)) = (op.granted(), op.completed()) {
            grants.entry(op.lock).or_default().push((done, token));
        }
    }
    let mut found: Vec<(&str, String)> = Vec::new();
    for (name, by_token) in &spans {
        overlaps(name, by_token, &mut found);
    }
    for (name, mut s) in samples {
        let mut g = grants.remove(name).unwrap_or_default();
        s.sort();
        g.sort();
        stale(name, &s, &g, &mut found);
    }
    if h.params.expect_s4 {
        for (name, detail) in found {
            r.add(
                Property::L1OneLeader,
                Some(name),
                format!("two leaders: {detail}"),
            );
        }
    } else {
        r.skipped.push((
            Property::L1OneLeader,
            format!(
                "clock skew beyond the lease margin's bound: one leader not promised; {} overlaps seen",
                found.len()
            ),
        ));
    }
}
