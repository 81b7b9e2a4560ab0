//! S5: per lock, what clients were told (grants, `Busy`, releases, holder
//! reads) could have happened in one order that respects real time, on a
//! mutex whose holder may also lose the lock at a moment nobody sees (its
//! session expired).
//!
//! Why: this is the contract of the API as a whole, beyond the pieces S1
//! to S4 look at one by one. A general linearizability search is
//! exponential; fencing tokens make it linear. A token is the index of the
//! granting entry, so the grants of one lock happened in token order, and
//! every other operation only has to fit between two consecutive grants.
//!
//! The algorithm, per lock (`≤` throughout: equal instants are allowed, so
//! the check stays sound on a coarse clock):
//!
//! 1. **The chain.** Acknowledged grants sorted by token each get the
//!    earliest linearization point they can have: `p = max(previous point,
//!    invoked)`. If the grant's token was released (`Released`), the
//!    release's point `max(p, release invoked)` follows it, and the next
//!    grant's point must follow that (a release that freed a grant comes
//!    before the next grant of the lock). A point after the operation's own
//!    completion is a violation. Taking every point as early as possible is
//!    optimal for a chain of windows, so a violation here has no valid
//!    order at all.
//! 2. **Holding windows.** Token `t` can hold the lock at most from its
//!    point `p_t` to `end_t` = the earliest of its release's completion and
//!    the completion of any acknowledged grant with a higher token (that
//!    grant's point is no later, and `t` ended before it).
//! 3. **`Holder { token: Some(t) }`** over `[inv, done]` needs its window
//!    to meet `[p_t, end_t]`. For `t` no client saw granted (an
//!    indeterminate acquire, or a grant made for a crashed node), only the
//!    higher grants bound it: a read invoked after a higher token was
//!    acknowledged must not see `t`. A token acknowledged on another lock
//!    is a violation outright (tokens are unique across locks).
//! 4. **`Holder { token: None }`** is a violation only when a token was
//!    provably held across the whole read: acknowledged before the read was
//!    invoked, sampled `is_held() == true` at or after the read completed,
//!    and no release of it invoked by then. This leans on S4's lease
//!    promise, so it is skipped when `params.expect_s4` is false.
//! 5. **`Busy`** needs the lock held at some point of its window. The
//!    checker only claims the lock was free between an acknowledged
//!    release's completion and the next grant's earliest point, and only
//!    when no acquire on the lock that may have been granted unseen (failed
//!    or cut short) was invoked before the `Busy` completed, and no other
//!    acquire was running during the `Busy` (an acquire whose grant went
//!    to a session that expired before its node heard of it is retried
//!    under the next session, so even an acquire that ends granted or
//!    `Busy` may have held the lock unseen meanwhile). A `Busy` entirely
//!    inside such a window is a violation.
//!
//! Indeterminate operations (`Failed`, or no `Complete`) constrain nothing:
//! a token seen only in `Held`, `Write` or `Holder` events is fine. A
//! holder lost at an invisible moment only shortens its window, which the
//! checks above never assume is long. `NotHeld` answers constrain nothing.
//!
//! Limits: the check is necessary, not complete. The `Busy` rule gives up
//! once any acquire on the lock is indeterminate, reads are each checked
//! against bounds valid in every order rather than jointly, and a lock
//! before its first acknowledged grant is never assumed free.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ops;
use super::{Property, Report};
use crate::sim::history::{Call, EventKind, History, Outcome};

/// The operations of one lock, as far as S5 uses them.
#[derive(Default)]
struct LockOps {
    /// Acknowledged grants: token, invoked, completed.
    grants: Vec<(u64, Duration, Duration)>,
    /// Acknowledged `Released`, by token: invoked, completed.
    released: BTreeMap<u64, Vec<(Duration, Duration)>>,
    /// The first invocation of any release of each token.
    release_invoked: BTreeMap<u64, Duration>,
    /// `Busy` answers: invoked, completed.
    busy: Vec<(Duration, Duration)>,
    /// Holder reads: invoked, completed, answer.
    reads: Vec<(Duration, Duration, Option<u64>)>,
    /// The first invocation of an acquire that may have been granted unseen.
    unsure_from: Option<Duration>,
    /// Every acquire and try: invoked, completed (if it did). Any of them
    /// may have been granted unseen while it ran, even one that ended with
    /// a different grant or `Busy`: a grant whose session expired before
    /// the node heard of it is retried under the node's next session.
    acquiring: Vec<(Duration, Option<Duration>)>,
}

/// One acknowledged grant in token order.
struct Link {
    token: u64,
    done: Duration,
    /// Its earliest linearization point.
    point: Duration,
    /// When its `Released` completed.
    released: Option<Duration>,
}

/// What the per-lock judgement needs from the whole history.
struct Ctx<'h> {
    lock: &'h str,
    /// Acknowledged grants' locks, by token.
    token_lock: &'h BTreeMap<u64, &'h str>,
    /// The last `is_held() == true` sample, by (lock, token).
    last_held: &'h BTreeMap<(&'h str, u64), Duration>,
    expect_s4: bool,
}

impl Ctx<'_> {
    fn add(&self, r: &mut Report, detail: String) {
        r.add(Property::S5Linearizable, Some(self.lock), detail);
    }
}

pub(super) fn check(h: &History, r: &mut Report) {
    let mut locks: BTreeMap<&str, LockOps> = BTreeMap::new();
    let mut token_lock: BTreeMap<u64, &str> = BTreeMap::new();
    for op in ops::pair(h) {
        let l = locks.entry(op.lock).or_default();
        if op.maybe_granted() {
            l.unsure_from = Some(l.unsure_from.map_or(op.invoked, |u| u.min(op.invoked)));
        }
        if matches!(op.call, Call::Acquire | Call::TryAcquire) {
            l.acquiring.push((op.invoked, op.done.map(|(d, _)| d)));
        }
        match (op.call, op.done) {
            (Call::Acquire | Call::TryAcquire, Some((done, Outcome::Granted { token }))) => {
                l.grants.push((*token, op.invoked, done));
                token_lock.entry(*token).or_insert(op.lock);
            }
            (Call::TryAcquire, Some((done, Outcome::Busy))) => l.busy.push((op.invoked, done)),
            (Call::Release { token }, done) => {
                let first = l.release_invoked.entry(*token).or_insert(op.invoked);
                *first = (*first).min(op.invoked);
                if let Some((done, Outcome::Released)) = done {
                    l.released
                        .entry(*token)
                        .or_default()
                        .push((op.invoked, done));
                }
            }
            (Call::Holder, Some((done, Outcome::Holder { token }))) => {
                l.reads.push((op.invoked, done, *token));
            }
            _ => {}
        }
    }
    let mut last_held: BTreeMap<(&str, u64), Duration> = BTreeMap::new();
    for e in &h.events {
        if let EventKind::Held { token, held: true } = e.kind {
            let last = last_held.entry((&e.lock, token)).or_insert(e.at);
            *last = (*last).max(e.at);
        }
    }
    for (lock, ops) in locks {
        let ctx = Ctx {
            lock,
            token_lock: &token_lock,
            last_held: &last_held,
            expect_s4: h.params.expect_s4,
        };
        judge(&ctx, ops, r);
    }
}

fn judge(ctx: &Ctx<'_>, mut ops: LockOps, r: &mut Report) {
    ops.grants.sort_by_key(|g| g.0);
    // A token acknowledged twice is S1's to report; keep its first grant.
    ops.grants.dedup_by_key(|g| g.0);
    let chain = chain(ctx, &ops, r);
    // end_bound[i]: the earliest completion of a grant at or after i.
    let mut end_bound: Vec<Option<Duration>> = vec![None; chain.len() + 1];
    for (i, link) in chain.iter().enumerate().rev() {
        let next = end_bound.get(i + 1).copied().flatten();
        if let Some(slot) = end_bound.get_mut(i) {
            *slot = Some(next.map_or(link.done, |n| n.min(link.done)));
        }
    }
    // The grants by completion, each with the highest token acknowledged
    // by then (an index into the chain).
    let mut by_done: Vec<(Duration, usize)> =
        chain.iter().enumerate().map(|(i, l)| (l.done, i)).collect();
    by_done.sort();
    let mut best: Option<usize> = None;
    for entry in &mut by_done {
        if best.is_none_or(|b| entry.1 > b) {
            best = Some(entry.1);
        }
        entry.1 = best.unwrap_or(entry.1);
    }
    for &(invoked, done, token) in &ops.reads {
        match token {
            Some(t) => read_some(ctx, &chain, &end_bound, (invoked, done), t, r),
            None if ctx.expect_s4 => {
                let before = by_done.partition_point(|(d, _)| *d < invoked);
                let highest = before
                    .checked_sub(1)
                    .and_then(|i| by_done.get(i))
                    .and_then(|(_, i)| chain.get(*i));
                if let Some(link) = highest {
                    read_none(ctx, &ops, link, (invoked, done), r);
                }
            }
            None => {}
        }
    }
    busy(ctx, &ops, &chain, r);
}

/// Step 1: the earliest points of the grants and releases, in token order.
fn chain(ctx: &Ctx<'_>, ops: &LockOps, r: &mut Report) -> Vec<Link> {
    let mut chain = Vec::with_capacity(ops.grants.len());
    // The point the next grant must follow: (point, token, what).
    let mut prev: Option<(Duration, u64, &str)> = None;
    for &(token, invoked, done) in &ops.grants {
        let mut point = prev.map_or(invoked, |(p, ..)| p.max(invoked));
        if point > done {
            if let Some((p, t, what)) = prev {
                ctx.add(r, format!(
                    "grant of token {token} (invoked {invoked:?}, acknowledged {done:?}) must follow the {what} of token {t}, which cannot take effect before {p:?}"
                ));
            }
            point = invoked;
        }
        prev = Some((point, token, "grant"));
        let mut released = None;
        let rels = ops
            .released
            .get(&token)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if rels.len() > 1 {
            ctx.add(
                r,
                format!("token {token} was released {} times", rels.len()),
            );
        }
        if let Some(&(rel_invoked, rel_done)) = rels.first() {
            let mut at = point.max(rel_invoked);
            if at > rel_done {
                ctx.add(r, format!(
                    "release of token {token} acknowledged at {rel_done:?}, before its grant could take effect at {point:?}"
                ));
                at = rel_invoked;
            }
            prev = Some((at, token, "release"));
            released = Some(rel_done);
        }
        chain.push(Link {
            token,
            done,
            point,
            released,
        });
    }
    chain
}

/// Step 3: a read that saw token `t`.
fn read_some(
    ctx: &Ctx<'_>,
    chain: &[Link],
    end_bound: &[Option<Duration>],
    (invoked, done): (Duration, Duration),
    t: u64,
    r: &mut Report,
) {
    if let Some(other) = ctx.token_lock.get(&t).filter(|l| **l != ctx.lock) {
        ctx.add(
            r,
            format!(
            "holder read at [{invoked:?}, {done:?}] saw token {t}, which was granted on {other:?}"
        ),
        );
        return;
    }
    let higher = chain.partition_point(|l| l.token <= t);
    let own = higher
        .checked_sub(1)
        .and_then(|i| chain.get(i))
        .filter(|l| l.token == t);
    if let Some(bound) = end_bound.get(higher).copied().flatten() {
        if invoked > bound {
            ctx.add(r, format!(
                "holder read invoked at {invoked:?} saw token {t}, but a higher token was acknowledged at {bound:?}"
            ));
            return;
        }
    }
    let Some(link) = own else { return };
    if let Some(rel) = link.released.filter(|rel| invoked > *rel) {
        ctx.add(r, format!(
            "holder read invoked at {invoked:?} saw token {t}, whose release was acknowledged at {rel:?}"
        ));
    } else if done < link.point {
        ctx.add(r, format!(
            "holder read completed at {done:?} saw token {t}, which cannot have been granted before {:?}",
            link.point
        ));
    }
}

/// Step 4: a read that saw the lock free while a token provably held it.
///
/// `link` is the highest token acknowledged before the read: any lower one
/// ended before that grant, so only this one can have been held throughout.
fn read_none(
    ctx: &Ctx<'_>,
    ops: &LockOps,
    link: &Link,
    (invoked, done): (Duration, Duration),
    r: &mut Report,
) {
    let t = link.token;
    let sampled = ctx
        .last_held
        .get(&(ctx.lock, t))
        .is_some_and(|at| *at >= done);
    let unreleased = ops.release_invoked.get(&t).is_none_or(|at| *at > done);
    if sampled && unreleased {
        ctx.add(r, format!(
            "holder read at [{invoked:?}, {done:?}] saw the lock free, but token {t} was acknowledged at {:?} and still held after the read",
            link.done
        ));
    }
}

/// Step 5: `Busy` answers inside a window where the lock was provably free.
fn busy(ctx: &Ctx<'_>, ops: &LockOps, chain: &[Link], r: &mut Report) {
    // Free windows: (release acknowledged, released token, next grant's
    // earliest point or never), non-empty ones only.
    let mut free: Vec<(Duration, u64, Option<Duration>)> = Vec::new();
    for (i, link) in chain.iter().enumerate() {
        let Some(rel) = link.released else { continue };
        let until = chain.get(i + 1).map(|n| n.point);
        if until.is_none_or(|u| rel < u) {
            free.push((rel, link.token, until));
        }
    }
    free.sort();
    for &(invoked, done) in &ops.busy {
        if ops.unsure_from.is_some_and(|u| u <= done) {
            continue;
        }
        // Another acquire running during the window may hold the lock
        // unseen (found by the soak: seed 1008812).
        let overlapping = ops.acquiring.iter().any(|&(i, d)| {
            (i, d) != (invoked, Some(done)) && i <= done && d.is_none_or(|d| d >= invoked)
        });
        if overlapping {
            continue;
        }
        let i = free.partition_point(|f| f.0 < invoked);
        let Some(&(rel, token, until)) = i.checked_sub(1).and_then(|i| free.get(i)) else {
            continue;
        };
        if until.is_none_or(|u| done < u) {
            ctx.add(r, format!(
                "try at [{invoked:?}, {done:?}] answered Busy, but the lock was free from the release of token {token} (acknowledged {rel:?}) until {until:?}"
            ));
        }
    }
}
