//! ReadIndex rounds: linearizable `holder` reads and keepalive acknowledgements.
//!
//! Both wait for the same proof: a quorum round, begun after the request,
//! that confirmed the leader, and then the local apply reaching the read
//! index. A context is `node id | counter` so that contexts from different
//! nodes never collide at the leader (raft-rs de-duplicates by context).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::tick::KeepAliveReq;
use crate::client::MemberInfo;
use crate::error::Error;
use crate::types::{LockInfo, LockName, NodeId};

/// What a read round is for.
#[derive(Debug)]
pub(crate) enum Purpose {
    /// The leader acknowledges every keepalive that arrived before the
    /// round began (one round for all of them).
    KeepAlives(Vec<KeepAliveReq>),
    /// A caller waits for `holder(lock)`.
    Holder {
        lock: LockName,
        reply: oneshot::Sender<Result<Option<LockInfo>, Error>>,
        deadline: Instant,
    },
    /// A caller waits for `holders(lock)` (issue 11).
    Holders {
        lock: LockName,
        reply: oneshot::Sender<Result<Option<crate::client::HoldersInfo>, Error>>,
        deadline: Instant,
    },
    /// A caller waits for a page of `locks()` (issue 12, item 6).
    Locks {
        after: Option<LockName>,
        limit: usize,
        reply: super::locks_query::LocksReply,
        deadline: Instant,
    },
    /// A caller waits for `members()` (issue 9).
    Members {
        reply: oneshot::Sender<Result<Vec<MemberInfo>, Error>>,
        deadline: Instant,
    },
}

impl Purpose {
    /// A caller's read's deadline; keepalive rounds have none.
    fn deadline(&self) -> Option<Instant> {
        match self {
            Self::KeepAlives(_) => None,
            Self::Holder { deadline, .. }
            | Self::Holders { deadline, .. }
            | Self::Locks { deadline, .. }
            | Self::Members { deadline, .. } => Some(*deadline),
        }
    }

    /// Answers a caller's read with `err`.
    fn fail(self, err: Error) {
        match self {
            Self::KeepAlives(_) => {}
            Self::Holder { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Self::Holders { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Self::Members { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Self::Locks { reply, .. } => {
                let _ = reply.send(Err(err));
            }
        }
    }
}

#[derive(Debug)]
struct Issued {
    purpose: Purpose,
    at: Instant,
}

/// Read rounds in flight and reads waiting for the apply to catch up.
#[derive(Debug)]
pub(crate) struct Reads {
    me: NodeId,
    counter: u64,
    issued: BTreeMap<Vec<u8>, Issued>,
    confirmed: Vec<(u64, Purpose)>,
    /// When the grants these reads report were applied here.
    pub(crate) ages: super::locks_query::GrantAges,
}

impl Reads {
    /// Read rounds for node `me`. The counter starts at a random point, so
    /// a restarted process never reuses a context of its previous run:
    /// raft-rs de-duplicates rounds by context, and a new request that
    /// matched an old round still pending at the leader would be answered
    /// by that round, begun before the request arrived (issue 8, item 11).
    /// `replayed_upto`: the index committed before this run began (see
    /// `GrantAges`).
    pub(crate) fn new(me: NodeId, replayed_upto: u64) -> Self {
        Self {
            ages: super::locks_query::GrantAges::new(replayed_upto),
            me,
            counter: super::own::random_u64() >> 1,
            issued: BTreeMap::new(),
            confirmed: Vec::new(),
        }
    }

    /// Registers a read and returns the context to pass to `read_index`.
    pub(crate) fn issue(&mut self, purpose: Purpose, now: Instant) -> Vec<u8> {
        self.counter = self.counter.wrapping_add(1);
        let mut ctx = Vec::with_capacity(16);
        ctx.extend_from_slice(&self.me.0.to_be_bytes());
        ctx.extend_from_slice(&self.counter.to_be_bytes());
        self.issued.insert(ctx.clone(), Issued { purpose, at: now });
        ctx
    }

    /// Raft confirmed the read for `ctx` at `index`.
    pub(crate) fn confirmed(&mut self, ctx: &[u8], index: u64) {
        if let Some(i) = self.issued.remove(ctx) {
            self.confirmed.push((index, i.purpose));
        }
    }

    /// Reads whose index is applied, ready to answer.
    pub(crate) fn take_applied(&mut self, applied: u64) -> Vec<Purpose> {
        if self.confirmed.is_empty() {
            return Vec::new();
        }
        let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(idx, _)| *idx <= applied);
        self.confirmed = wait;
        ready.into_iter().map(|(_, p)| p).collect()
    }

    /// Reads unanswered for `retry_after`: keepalive rounds are dropped (the
    /// node sends another), holder reads are returned to issue again, or
    /// failed with `NoQuorum` past their deadline. A holder read confirmed
    /// but still waiting for this node's apply to reach its index also
    /// fails at its deadline (a node that cannot catch up answers; issue 8,
    /// item 1).
    pub(crate) fn expire(&mut self, now: Instant, retry_after: Duration) -> Vec<Purpose> {
        let late = |p: &Purpose| p.deadline().is_some_and(|d| now >= d);
        if self.confirmed.iter().any(|(_, p)| late(p)) {
            let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
                .into_iter()
                .partition(|(_, p)| late(p));
            self.confirmed = keep;
            for (_, p) in gone {
                p.fail(Error::NoQuorum);
            }
        }
        let stale: Vec<Vec<u8>> = self
            .issued
            .iter()
            .filter(|(_, i)| now.saturating_duration_since(i.at) >= retry_after)
            .map(|(c, _)| c.clone())
            .collect();
        let mut retry = Vec::new();
        for ctx in stale {
            let Some(i) = self.issued.remove(&ctx) else {
                continue;
            };
            match i.purpose {
                Purpose::KeepAlives(_) => {}
                p if late(&p) => p.fail(Error::NoQuorum),
                p => retry.push(p),
            }
        }
        retry
    }

    /// Fails every waiting holder read with `err` (shutdown).
    pub(crate) fn fail_all(&mut self, err: fn() -> Error) {
        let all = std::mem::take(&mut self.issued)
            .into_values()
            .map(|i| i.purpose)
            .chain(self.confirmed.drain(..).map(|(_, p)| p));
        for p in all {
            p.fail(err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 8, item 11: a restarted process must not reuse the read
    /// contexts of its previous run (raft-rs de-duplicates by context).
    #[test]
    fn read_contexts_do_not_restart_with_the_process() {
        let now = Instant::now();
        let first = |_: ()| {
            let mut r = Reads::new(NodeId(3), 0);
            r.issue(Purpose::KeepAlives(Vec::new()), now)
        };
        let a = first(());
        let b = first(());
        assert_ne!(a, b, "two runs of node 3 issued the same first context");
    }
}
