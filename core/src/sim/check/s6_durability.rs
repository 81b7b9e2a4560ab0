//! S6: nothing acknowledged was lost. Every grant a client was told of is
//! in the committed log as the entry whose index is its token, granting
//! that lock; every release a client was told freed the lock is in the log
//! as a `Release` (or `Cancel`) that freed that token. And neither was
//! acknowledged before any node applied it.
//!
//! Why: a leader that answers before the entry is committed (or a store
//! that loses an fsynced entry) lets a client act on a grant the cluster
//! later forgets; the next holder then gets a lower-or-equal token, or the
//! same index is reused by another command. This is the only property that
//! ties what clients saw to what the cluster agreed on.
//!
//! Limits: entries missing from the log (a gap a snapshot covered) cannot
//! be checked; an acknowledgement that falls into one is counted in
//! [`Stats::unverifiable`](super::Stats::unverifiable), not reported. The
//! log's tail is taken as complete (a snapshot covers a prefix, and the
//! node that answered a client had applied the entry one by one), so a
//! token above the last entry of the log is reported. The log does not say
//! which client an entry answered, so a grant of the right lock at the
//! right index to another session would pass.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ops::{self, Op};
use super::replay::{FreedBy, Replay};
use super::{Property, Report};
use crate::sim::history::{Call, History, Outcome};
use crate::types::LockName;

/// What the log shows, by token.
struct Log<'h> {
    /// Tokens granted: the lock (if known) and the entry's time.
    granted: BTreeMap<u64, (Option<&'h LockName>, Duration)>,
    /// Tokens freed by a `Release` or `Cancel`: the first such entry's
    /// index and time (a retry answered from the cache frees again).
    freed: BTreeMap<u64, (u64, Duration)>,
    /// Every index present, ascending.
    present: Vec<u64>,
}

impl Log<'_> {
    fn last(&self) -> u64 {
        self.present.last().copied().unwrap_or(0)
    }

    fn has(&self, index: u64) -> bool {
        self.present.binary_search(&index).is_ok()
    }

    /// Whether some index in `from..=last` is missing.
    fn gap_from(&self, from: u64) -> bool {
        self.gap_in(from, self.last().saturating_add(1))
    }

    /// Whether some index in `from..to` is missing.
    fn gap_in(&self, from: u64, to: u64) -> bool {
        let start = self.present.partition_point(|i| *i < from);
        let end = self.present.partition_point(|i| *i < to);
        let have = end.saturating_sub(start) as u64;
        have < to.saturating_sub(from)
    }
}

pub(super) fn check(h: &History, r: &mut Report) {
    if h.log.is_empty() {
        r.skipped
            .push((Property::S6Durability, "no committed log".to_owned()));
        return;
    }
    let mut log = Log {
        granted: BTreeMap::new(),
        freed: BTreeMap::new(),
        present: Vec::with_capacity(h.log.len()),
    };
    for step in Replay::new(&h.log) {
        log.present.push(step.index);
        if let Some(g) = step.grants.first() {
            log.granted.insert(step.index, (g.lock(), step.at));
        }
        for f in &step.frees {
            if let (FreedBy::Release | FreedBy::Cancel, Some(t)) = (f.by, f.token) {
                log.freed.entry(t).or_insert((step.index, step.at));
            }
        }
    }
    for op in ops::pair(h) {
        let Some((done, outcome)) = op.done else {
            continue;
        };
        if let Some(token) = op.granted() {
            check_grant(&log, &op, token, done, r);
        }
        if let (Call::Release { token }, Outcome::Released) = (op.call, outcome) {
            check_release(&log, &op, *token, done, r);
        }
    }
}

fn check_grant(log: &Log<'_>, op: &Op<'_>, token: u64, done: Duration, r: &mut Report) {
    let lost = |why: String| format!("grant of token {token} acknowledged at {done:?} {why}");
    match log.granted.get(&token) {
        Some((lock, at)) => {
            if let Some(l) = lock.filter(|l| l.as_str() != op.lock) {
                r.add(
                    Property::S6Durability,
                    Some(op.lock),
                    lost(format!("but entry {token} granted {:?}", l.as_str())),
                );
            }
            if *at > done {
                r.add(
                    Property::S6Durability,
                    Some(op.lock),
                    lost(format!("before any node applied entry {token} (at {at:?})")),
                );
            }
        }
        None if token > log.last() => r.add(
            Property::S6Durability,
            Some(op.lock),
            lost(format!("beyond the last committed entry {}", log.last())),
        ),
        None if !log.has(token) => r.stats.unverifiable += 1,
        None => r.add(
            Property::S6Durability,
            Some(op.lock),
            lost(format!("but committed entry {token} granted nothing")),
        ),
    }
}

fn check_release(log: &Log<'_>, op: &Op<'_>, token: u64, done: Duration, r: &mut Report) {
    match log.freed.get(&token) {
        // The first free seen may be a retry's answer if a gap hides the
        // entry that really freed it.
        Some((index, at)) if *at > done && !log.gap_in(token, *index) => r.add(
            Property::S6Durability,
            Some(op.lock),
            format!("release of token {token} acknowledged at {done:?} before any node applied it (at {at:?})"),
        ),
        Some(_) => {}
        None if log.gap_from(token) => r.stats.unverifiable += 1,
        None => r.add(
            Property::S6Durability,
            Some(op.lock),
            format!("release of token {token} acknowledged at {done:?}, but no committed entry released it"),
        ),
    }
}
