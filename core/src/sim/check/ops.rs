//! Client operations, paired from a history's events: each `Invoke` with
//! its `Complete`, if one was recorded.
//!
//! The properties that judge what clients were told (S4, S5, S6) share this
//! one pairing, so they agree on which operations were acknowledged. An
//! operation without a `Complete` (its node crashed) and one that completed
//! `Failed` are both indeterminate: they may or may not have taken effect.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::sim::history::{Call, EventKind, History, OpId, Outcome};

/// One operation on one lock.
#[derive(Clone, Copy, Debug)]
pub(super) struct Op<'a> {
    /// The lock it was about (from its `Invoke`).
    pub(super) lock: &'a str,
    /// What was called.
    pub(super) call: &'a Call,
    /// When it was invoked.
    pub(super) invoked: Duration,
    /// When and how it completed; `None` if it never did.
    pub(super) done: Option<(Duration, &'a Outcome)>,
}

impl Op<'_> {
    /// The token of an acknowledged grant (an acquire or try that
    /// completed `Granted`).
    pub(super) fn granted(&self) -> Option<u64> {
        match (self.call, self.done) {
            (Call::Acquire | Call::TryAcquire, Some((_, Outcome::Granted { token }))) => {
                Some(*token)
            }
            _ => None,
        }
    }

    /// When it completed, if it did.
    pub(super) fn completed(&self) -> Option<Duration> {
        self.done.map(|(at, _)| at)
    }

    /// Whether this is an acquire or try that may have been granted
    /// without the client learning it: it failed or never completed.
    pub(super) fn maybe_granted(&self) -> bool {
        matches!(self.call, Call::Acquire | Call::TryAcquire)
            && !matches!(
                self.done,
                Some((_, Outcome::Granted { .. } | Outcome::Busy))
            )
    }
}

/// Every operation of `h`, in invocation order. A `Complete` whose op was
/// never invoked is ignored; an op id invoked twice starts a new operation
/// (the earlier one stays without completion).
pub(super) fn pair(h: &History) -> Vec<Op<'_>> {
    let mut ops: Vec<Op<'_>> = Vec::new();
    let mut open: BTreeMap<OpId, usize> = BTreeMap::new();
    for e in &h.events {
        match &e.kind {
            EventKind::Invoke { op, call } => {
                open.insert(*op, ops.len());
                ops.push(Op {
                    lock: &e.lock,
                    call,
                    invoked: e.at,
                    done: None,
                });
            }
            EventKind::Complete { op, outcome } => {
                if let Some(o) = open.remove(op).and_then(|i| ops.get_mut(i)) {
                    o.done = Some((e.at, outcome));
                }
            }
            EventKind::Held { .. }
            | EventKind::Write { .. }
            | EventKind::Leader { .. }
            | EventKind::ClaimsHeld { .. } => {}
        }
    }
    ops
}
