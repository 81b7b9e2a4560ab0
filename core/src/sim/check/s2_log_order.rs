//! S2: in the committed log, each grant of a lock comes after the previous
//! grant of that lock ended (released, cancelled, or its session ended),
//! and after an expiry with lock-delay, not before the delay ran out.
//!
//! Why check the log and not only the clients: the log is the one order
//! every node applies, so a grant made while another was current is a bug
//! of the state machine or of log replication, whatever the clients saw.
//! It also catches the leader proposing a `Handoff` too early, which no
//! client can see (the lock-delay exists for holders that went silent).
//!
//! The delay applies after an `ExpireSession` with `lock_delay: true` (the
//! leader sets it when its configured delay is not zero) and when
//! `params.lock_delay` is not zero. It is measured from the expiry entry's `at` (the first
//! apply anywhere) to the granting entry's `at`. The leader starts the
//! delay when it applies the expiry (at or after that first apply) on its
//! own clock, which may run fast by up to `max_clock_drift_ppm`, so the
//! tolerance is `lock_delay × drift + 1 ms`.
//!
//! Limits: after a gap in the log the lock's previous grant is unknown, so
//! the first grant after it is not judged. An entry that grants more than
//! one lock is reported (a token is the granting entry's index, so two
//! grants in one entry would share a token).

use std::collections::BTreeMap;
use std::time::Duration;

use super::replay::{FreedBy, Replay, Req};
use super::{Property, Report};
use crate::sim::history::History;
use crate::types::LockName;

/// What the log says of one lock (absent: nothing known, no constraint).
#[derive(Clone, Copy, Debug)]
enum State {
    /// Granted with this token to this request, not seen ending.
    Held { token: u64, req: Req },
    /// Free; `expired_at` is the expiry entry's time when the last grant
    /// ended by an expiry that asked for the lock-delay.
    Free { expired_at: Option<Duration> },
}

pub(super) fn check(h: &History, r: &mut Report) {
    if h.log.is_empty() {
        r.skipped
            .push((Property::S2LogOrder, "no committed log".to_owned()));
        return;
    }
    let delay = h.params.lock_delay;
    let tolerance = drift_tolerance(delay, h.params.max_clock_drift_ppm);
    let mut locks: BTreeMap<&LockName, State> = BTreeMap::new();
    for step in Replay::new(&h.log) {
        if step.after_gap {
            locks.clear();
        }
        for f in &step.frees {
            let Some(lock) = f.lock else { continue };
            let delayed = matches!(f.by, FreedBy::SessionEnd { delayed: true, .. });
            let freed = State::Free {
                expired_at: delayed.then_some(step.at),
            };
            match locks.get(lock) {
                Some(State::Held { token, req }) if f.ends(*req, *token) => {
                    locks.insert(lock, freed);
                }
                // A free of some other grant (a retry answered from the
                // cache) changes nothing; a lock already free stays so.
                Some(_) => {}
                None => {
                    locks.insert(lock, freed);
                }
            }
        }
        if step.grants.len() > 1 {
            r.add(
                Property::S2LogOrder,
                None,
                format!(
                    "entry {} granted {} requests (a token must be unique)",
                    step.index,
                    step.grants.len()
                ),
            );
        }
        for g in &step.grants {
            let Some(lock) = g.lock() else { continue };
            match locks.get(lock) {
                Some(State::Held { token, .. }) => r.add(
                    Property::S2LogOrder,
                    Some(lock.as_str()),
                    format!(
                        "entry {} granted the lock while token {token} was neither released nor its session ended",
                        step.index
                    ),
                ),
                Some(State::Free {
                    expired_at: Some(at),
                }) if !delay.is_zero() => {
                    let earliest = at.saturating_add(delay).saturating_sub(tolerance);
                    if step.at < earliest {
                        r.add(
                            Property::S2LogOrder,
                            Some(lock.as_str()),
                            format!(
                                "entry {} granted the lock at {:?}, {:?} after the expiry applied at {at:?}; lock-delay is {delay:?}",
                                step.index,
                                step.at,
                                step.at.saturating_sub(*at)
                            ),
                        );
                    }
                }
                _ => {}
            }
            locks.insert(
                lock,
                State::Held {
                    token: step.index,
                    req: g.req,
                },
            );
        }
    }
}

/// How much earlier than `lock_delay` after the expiry a grant may come:
/// the leader's clock may run fast by `ppm`, plus 1 ms of rounding.
pub(super) fn drift_tolerance(lock_delay: Duration, ppm: u64) -> Duration {
    let nanos = lock_delay.as_nanos().saturating_mul(u128::from(ppm)) / 1_000_000;
    let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
    Duration::from_nanos(nanos).saturating_add(Duration::from_millis(1))
}
