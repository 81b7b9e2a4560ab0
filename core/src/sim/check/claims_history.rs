//! The clients' side of issue 11's claims: what `acquire_claims` answered
//! and what `is_held()` said, judged without the log (so it also judges
//! real processes, which have none).
//!
//! - **S1 per name**: an acknowledged grant acknowledged before another was
//!   invoked carries the smaller token on every name both claim (readers
//!   and permits granted together share a token, so equal tokens are
//!   allowed only between grants that may be held together: two grants
//!   sharing a token and a name, one of them exclusive, are reported).
//! - **At any instant** (S8, S9, S10; within the clock bound, like S4):
//!   each grant's holding is the span from its first to its last
//!   `is_held() == true` probe; per name, the spans alive when each span
//!   starts must fit together (permits within the count, no writer beside
//!   anyone), since the most holders at once are there at some start. And
//!   no grant says held after a grant it cannot be held beside, with a
//!   higher token, was acknowledged: that grant was made after this one
//!   ended (the stale rule of S4, per kind of claim).
//!
//! Limits: only sampled instants are seen (as S4).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::claims_replay::beside;
use super::{Property, Report};
use crate::machine::{Claim, ClaimKind};
use crate::sim::history::{Call, EventKind, History, Outcome};

/// An acknowledged grant.
struct Ack<'h> {
    process: u32,
    token: u64,
    claims: &'h [Claim],
    invoked: Duration,
    done: Duration,
}

pub(super) fn check(h: &History, r: &mut Report) {
    let acks = acknowledged(h);
    if acks.is_empty() {
        return;
    }
    for a in &acks {
        let kind = match a.claims {
            [one] => match one.kind {
                ClaimKind::Permits { .. } => 0,
                ClaimKind::Shared => 1,
                ClaimKind::Exclusive => 2,
            },
            _ => 3,
        };
        if let Some(n) = r.stats.claims_grants.get_mut(kind) {
            *n += 1;
        }
    }
    tokens(&acks, r);
    let found = instants(h, &acks);
    if h.params.expect_s4 {
        for (p, lock, detail) in found {
            r.add(p, Some(&lock), detail);
        }
    } else if !found.is_empty() {
        r.skipped.push((
            Property::S9ReadWrite,
            format!(
                "clock skew beyond the lease margin's bound: claims held at one instant not judged; {} conflicts seen",
                found.len()
            ),
        ));
    }
}

fn acknowledged(h: &History) -> Vec<Ack<'_>> {
    let mut open: BTreeMap<u64, (u32, &[Claim], Duration)> = BTreeMap::new();
    let mut acks = Vec::new();
    for e in &h.events {
        match &e.kind {
            EventKind::Invoke {
                op,
                call: Call::Claims { claims, .. },
            } => {
                open.insert(*op, (e.process, claims.as_slice(), e.at));
            }
            EventKind::Complete { op, outcome } => {
                let Some((process, claims, invoked)) = open.remove(op) else {
                    continue;
                };
                if let Outcome::Granted { token } = outcome {
                    acks.push(Ack {
                        process,
                        token: *token,
                        claims,
                        invoked,
                        done: e.at,
                    });
                }
            }
            _ => {}
        }
    }
    acks
}

/// S1 per name, and tokens shared by grants that cannot be held together.
fn tokens(acks: &[Ack<'_>], r: &mut Report) {
    // Per name: (invoked, done, token, kind).
    let mut per: BTreeMap<&str, Vec<(Duration, Duration, u64, ClaimKind)>> = BTreeMap::new();
    for a in acks {
        for c in a.claims {
            per.entry(c.lock.as_str())
                .or_default()
                .push((a.invoked, a.done, a.token, c.kind));
        }
    }
    for (name, mut gs) in per {
        gs.sort_by_key(|g| g.0);
        let mut by_done = gs.clone();
        by_done.sort_by_key(|g| g.1);
        let mut done = by_done.iter().peekable();
        let mut highest: Option<(u64, Duration)> = None;
        for (invoked, _, token, _) in &gs {
            while let Some(d) = done.next_if(|d| d.1 < *invoked) {
                if highest.is_none_or(|(t, _)| d.2 > t) {
                    highest = Some((d.2, d.1));
                }
            }
            if let Some((t, at)) = highest.filter(|(t, _)| token <= t) {
                r.add(
                    Property::S1Tokens,
                    Some(name),
                    format!("grant with token {token} invoked at {invoked:?} after token {t} was acknowledged at {at:?}"),
                );
            }
        }
        let mut by_token: BTreeMap<u64, Vec<ClaimKind>> = BTreeMap::new();
        for (_, _, token, kind) in &gs {
            by_token.entry(*token).or_default().push(*kind);
        }
        for (token, kinds) in by_token {
            let exclusive = kinds.iter().filter(|k| **k == ClaimKind::Exclusive).count();
            if kinds.len() > 1 && exclusive > 0 {
                r.add(
                    Property::S10MultiLock,
                    Some(name),
                    format!("token {token} acknowledged to {} grants on this name, {exclusive} of them exclusive", kinds.len()),
                );
            }
        }
    }
}

/// One grant's holding of one name, as its probes saw it.
#[derive(Clone, Copy)]
struct Span {
    start: Duration,
    end: Duration,
    token: u64,
    kind: ClaimKind,
    multi: bool,
}

/// Conflicts seen at one instant: (property, name, detail).
fn instants(h: &History, acks: &[Ack<'_>]) -> Vec<(Property, String, String)> {
    let by_key: BTreeMap<(u32, u64), &Ack<'_>> =
        acks.iter().map(|a| ((a.process, a.token), a)).collect();
    let mut spans: BTreeMap<(u32, u64), (Duration, Duration)> = BTreeMap::new();
    let mut samples: Vec<(Duration, u32, u64)> = Vec::new();
    for e in &h.events {
        if let EventKind::ClaimsHeld { token, held: true } = e.kind {
            let s = spans.entry((e.process, token)).or_insert((e.at, e.at));
            s.1 = s.1.max(e.at);
            samples.push((e.at, e.process, token));
        }
    }
    let mut per: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    for (key, (start, end)) in &spans {
        let Some(a) = by_key.get(key) else { continue };
        for c in a.claims {
            per.entry(c.lock.as_str()).or_default().push(Span {
                start: *start,
                end: *end,
                token: a.token,
                kind: c.kind,
                multi: a.claims.len() > 1,
            });
        }
    }
    let mut found = Vec::new();
    for (name, mut list) in per {
        list.sort_by_key(|s| (s.start, s.token));
        let mut alive: Vec<Span> = Vec::new();
        for s in list {
            alive.retain(|a| a.end >= s.start);
            let holders: Vec<(u64, ClaimKind, bool)> =
                alive.iter().map(|a| (a.token, a.kind, a.multi)).collect();
            if let Some((p, why)) = beside(&holders, s.kind) {
                let p = if s.multi || alive.iter().any(|a| a.multi) {
                    Property::S10MultiLock
                } else {
                    p
                };
                found.push((
                    p,
                    name.to_owned(),
                    format!(
                        "clients held at once: token {} ({:?}) from {:?}; {why}",
                        s.token, s.kind, s.start
                    ),
                ));
            }
            alive.push(s);
        }
    }
    stale(&by_key, &mut samples, &mut found);
    found
}

/// Per name: the distinct kinds of claim acknowledged, and for each prefix
/// of the grants by completion, the highest token of each kind.
struct Acked {
    kinds: Vec<ClaimKind>,
    done: Vec<Duration>,
    /// `highest[i * kinds.len() + k]`: the highest token of kind `k` among
    /// the first `i + 1` grants by completion.
    highest: Vec<u64>,
}

/// The stale rule: a probe that says held after a grant it conflicts with,
/// with a higher token, was acknowledged.
fn stale(
    by_key: &BTreeMap<(u32, u64), &Ack<'_>>,
    samples: &mut [(Duration, u32, u64)],
    found: &mut Vec<(Property, String, String)>,
) {
    let mut grants: BTreeMap<&str, Vec<(Duration, u64, ClaimKind)>> = BTreeMap::new();
    for a in by_key.values() {
        for c in a.claims {
            grants
                .entry(c.lock.as_str())
                .or_default()
                .push((a.done, a.token, c.kind));
        }
    }
    let mut acked: BTreeMap<&str, Acked> = BTreeMap::new();
    for (name, mut g) in grants {
        g.sort_by_key(|g| (g.0, g.1));
        let mut kinds: Vec<ClaimKind> = g.iter().map(|g| g.2).collect();
        kinds.sort();
        kinds.dedup();
        let mut highest = vec![0u64; g.len() * kinds.len()];
        let mut row = vec![0u64; kinds.len()];
        for (i, (_, token, kind)) in g.iter().enumerate() {
            if let Some(slot) = kinds
                .iter()
                .position(|k| k == kind)
                .and_then(|k| row.get_mut(k))
            {
                *slot = (*slot).max(*token);
            }
            if let Some(dst) = highest.get_mut(i * kinds.len()..(i + 1) * kinds.len()) {
                dst.copy_from_slice(&row);
            }
        }
        let done = g.iter().map(|g| g.0).collect();
        acked.insert(
            name,
            Acked {
                kinds,
                done,
                highest,
            },
        );
    }
    samples.sort();
    let mut reported = BTreeSet::new();
    for &(at, process, token) in samples.iter() {
        let Some(a) = by_key.get(&(process, token)) else {
            continue;
        };
        for c in a.claims {
            let Some(g) = acked.get(c.lock.as_str()) else {
                continue;
            };
            let Some(i) = g.done.partition_point(|d| *d < at).checked_sub(1) else {
                continue;
            };
            let row = g
                .highest
                .get(i * g.kinds.len()..(i + 1) * g.kinds.len())
                .unwrap_or_default();
            let later = g
                .kinds
                .iter()
                .zip(row)
                .find(|(k, t)| **t > token && beside(&[(**t, **k, false)], c.kind).is_some());
            if let Some((k, t)) = later {
                if reported.insert((process, token, c.lock.as_str())) {
                    let p = match c.kind {
                        _ if a.claims.len() > 1 => Property::S10MultiLock,
                        ClaimKind::Permits { .. } => Property::S8Permits,
                        _ => Property::S9ReadWrite,
                    };
                    found.push((p, c.lock.as_str().to_owned(), format!(
                        "token {token} ({:?}) held at {at:?} after token {t} ({k:?}) was acknowledged", c.kind
                    )));
                }
            }
        }
    }
}
