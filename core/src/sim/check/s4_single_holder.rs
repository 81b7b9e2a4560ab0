//! S4: no two guards of one lock said `is_held() == true` at overlapping
//! true times, and no guard said so after a higher token of its lock had
//! been acknowledged.
//!
//! Why: `is_held()` is the lease half of the safety story (fencing is the
//! other). The holder's lease ends `margin` before the leader may expire
//! its session, so while clock rates stay within the margin's bound a guard
//! that answers true is the only holder. This judges that promise from the
//! clients' side, in true time.
//!
//! How: per lock, each token's holding is the span from its first to its
//! last `Held { held: true }` sample (an `is_held()` that went false does
//! not come back true while the grant is current, and any true after the
//! grant ended is itself a breach). Spans sorted by start are swept once,
//! keeping the one that reaches furthest: a span starting at or before that
//! end overlaps it. Separately, the samples and the acknowledged grants of
//! each lock are merged in time order, keeping the highest token
//! acknowledged strictly before each sample.
//!
//! When the run broke the clock bound (`params.expect_s4 == false`), S4 is
//! not promised: the overlaps are counted and reported in
//! [`Report::skipped`] instead.
//!
//! Limits: only sampled instants are seen; two holders whose samples never
//! interleave (one sampled rarely) can overlap unseen. Each token is
//! reported at most once per rule.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::ops;
use super::{Property, Report};
use crate::sim::history::{EventKind, History};

pub(super) fn check(h: &History, r: &mut Report) {
    // Per lock: token -> (first, last) true sample; and every true sample.
    let mut spans: BTreeMap<&str, BTreeMap<u64, (Duration, Duration)>> = BTreeMap::new();
    let mut samples: BTreeMap<&str, Vec<(Duration, u64)>> = BTreeMap::new();
    for e in &h.events {
        if let EventKind::Held { token, held: true } = e.kind {
            let span = spans
                .entry(&e.lock)
                .or_default()
                .entry(token)
                .or_insert((e.at, e.at));
            span.0 = span.0.min(e.at);
            span.1 = span.1.max(e.at);
            samples.entry(&e.lock).or_default().push((e.at, token));
        }
    }
    let mut grants: BTreeMap<&str, Vec<(Duration, u64)>> = BTreeMap::new();
    for op in ops::pair(h) {
        if let (Some(token), Some(done)) = (op.granted(), op.completed()) {
            grants.entry(op.lock).or_default().push((done, token));
        }
    }
    let mut found: Vec<(&str, String)> = Vec::new();
    for (lock, by_token) in &spans {
        overlaps(lock, by_token, &mut found);
    }
    for (lock, mut s) in samples {
        let mut g = grants.remove(lock).unwrap_or_default();
        s.sort();
        g.sort();
        stale(lock, &s, &g, &mut found);
    }
    if h.params.expect_s4 {
        for (lock, detail) in found {
            r.add(Property::S4SingleHolder, Some(lock), detail);
        }
    } else {
        r.skipped.push((
            Property::S4SingleHolder,
            format!(
                "clock skew beyond the lease margin's bound: S4 not promised; {} overlaps seen",
                found.len()
            ),
        ));
    }
}

/// Spans of distinct tokens that overlap.
pub(super) fn overlaps<'a>(
    lock: &'a str,
    by_token: &BTreeMap<u64, (Duration, Duration)>,
    found: &mut Vec<(&'a str, String)>,
) {
    let mut spans: Vec<(Duration, Duration, u64)> =
        by_token.iter().map(|(t, (a, b))| (*a, *b, *t)).collect();
    spans.sort();
    let mut reach: Option<(Duration, u64)> = None;
    for (start, end, token) in spans {
        if let Some((until, other)) = reach {
            if start <= until {
                found.push((
                    lock,
                    format!("token {token} held from {start:?} while token {other} was held until {until:?}"),
                ));
            }
        }
        if reach.is_none_or(|(until, _)| end > until) {
            reach = Some((end, token));
        }
    }
}

/// True samples of a token after a higher token was acknowledged.
pub(super) fn stale<'a>(
    lock: &'a str,
    samples: &[(Duration, u64)],
    grants: &[(Duration, u64)],
    found: &mut Vec<(&'a str, String)>,
) {
    let mut reported = BTreeSet::new();
    let mut acked = grants.iter().peekable();
    let mut highest: Option<(u64, Duration)> = None;
    for (at, token) in samples {
        while let Some((done, t)) = acked.next_if(|(done, _)| done < at) {
            if highest.is_none_or(|(h, _)| *t > h) {
                highest = Some((*t, *done));
            }
        }
        if let Some((h, done)) = highest {
            if h > *token && reported.insert(*token) {
                found.push((
                    lock,
                    format!(
                        "token {token} held at {at:?} after token {h} was acknowledged at {done:?}"
                    ),
                ));
            }
        }
    }
}
