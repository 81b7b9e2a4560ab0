//! One name: its kind, its holders, its FIFO queue, and whether it awaits
//! a handoff.
//!
//! An exclusive grant (a mutex, a write lock, a multi-lock's name) is the
//! `holder`, exactly as before issue 11, so the mutex path pays for
//! nothing new; shared grants (readers, permits) are in `shared`, keyed by
//! their request, beside the count of permits they use.
//!
//! The queue is indexed both ways (position -> waiter and waiter ->
//! position), so removing any waiter is O(log n): 10 000 waiters giving up
//! together cost O(n log n) on every node, not O(n²) (issue 8 item 10). It
//! is encoded exactly as the `VecDeque` it replaced (a sequence of waiters
//! in queue order): positions are derived state, renumbered on decode, so
//! the snapshot format and `state_hash` are unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::claim::{ClaimKind, NameKind};
use crate::types::{FencingToken, NodeId, NodeName, RequestId, SessionId};

/// The current grant of a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holder {
    pub(crate) session: SessionId,
    pub(crate) request: RequestId,
    pub(crate) token: FencingToken,
}

/// A lock freed by session expiry or close, waiting for the leader's
/// `Handoff` entry, as snapshots of version 3 and older encode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingHandoffState {
    pub(crate) freed_at: u64,
    pub(crate) delayed: bool,
}

/// A grant whose session ended while its name awaits the handoff: still
/// counted as held (its permits in use, a reader excluding writers, an
/// exclusive grant excluding everyone) until the `Handoff` entry, because
/// the dead holder may still act on it until its lease runs out. Its node
/// is kept so `holders` can say whose grant it was (the session is gone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Expired {
    pub(crate) token: FencingToken,
    pub(crate) kind: ClaimKind,
    pub(crate) node: NodeId,
    pub(crate) name: NodeName,
}

/// A name awaiting the leader's `Handoff` entry after a session's end,
/// and the ended grants it keeps until then (issue 11: lock-delay keeps
/// what the dead holder held, not what it never had).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Awaiting {
    /// The entry that freed it last (what the `Handoff` names).
    pub(crate) freed_at: u64,
    /// Whether lock-delay applies.
    pub(crate) delayed: bool,
    /// Restored from a snapshot of version 3 or older, which does not say
    /// what the ended grants held: every grant on the name waits for the
    /// handoff (the rule before), so the lock-delay is never cut short.
    pub(crate) whole: bool,
    /// The ended grants, by request; all kept until the handoff.
    pub(crate) grants: BTreeMap<Waiter, Expired>,
    /// The permits `grants` use: derived (rebuilt on restore, never encoded).
    #[serde(skip)]
    pub(crate) permits: u64,
    /// Whether one of `grants` is exclusive (then it is the only one):
    /// derived, like `permits`.
    #[serde(skip)]
    pub(crate) exclusive: bool,
}

impl Awaiting {
    /// An awaited handoff from an old snapshot (see `whole`).
    pub(crate) fn whole(h: PendingHandoffState) -> Self {
        Self {
            freed_at: h.freed_at,
            delayed: h.delayed,
            whole: true,
            grants: BTreeMap::new(),
            permits: 0,
            exclusive: false,
        }
    }

    /// As an old snapshot encodes it.
    #[cfg(test)]
    pub(crate) fn state(&self) -> PendingHandoffState {
        PendingHandoffState {
            freed_at: self.freed_at,
            delayed: self.delayed,
        }
    }

    /// Keeps the ended grant of `w` until the handoff.
    pub(crate) fn keep(&mut self, w: Waiter, e: Expired) {
        self.grants.insert(w, e);
        self.recount();
    }

    /// Rebuilds the derived counts from `grants`.
    pub(crate) fn recount(&mut self) {
        self.permits = self
            .grants
            .values()
            .map(|e| u64::from(e.kind.permits()))
            .sum();
        self.exclusive = self.grants.values().any(|e| e.kind == ClaimKind::Exclusive);
    }

    /// Nothing at all fits beside it: an exclusive grant awaits its
    /// handoff, or what the ended grants held is not known.
    pub(crate) fn blocks_all(&self) -> bool {
        self.whole || self.exclusive
    }
}

/// One queued acquire.
pub(crate) type Waiter = (SessionId, RequestId);

/// A FIFO queue of waiters with O(log n) removal of any one of them.
#[derive(Clone, Debug, Default)]
pub(crate) struct WaitQueue {
    /// Waiters by queue position (increasing from the front).
    order: BTreeMap<u64, Waiter>,
    /// The position of each waiter.
    position: BTreeMap<Waiter, u64>,
    /// The position the next `push_back` takes.
    next: u64,
}

impl WaitQueue {
    /// Queues `w` at the back; false (and nothing changes) if it already waits.
    pub(crate) fn push_back(&mut self, w: Waiter) -> bool {
        if self.position.contains_key(&w) {
            return false;
        }
        self.position.insert(w, self.next);
        self.order.insert(self.next, w);
        self.next += 1;
        true
    }

    /// The waiter at the front.
    pub(crate) fn front(&self) -> Option<Waiter> {
        self.order.first_key_value().map(|(_, w)| *w)
    }

    /// The waiter at the back.
    pub(crate) fn back(&self) -> Option<Waiter> {
        self.order.last_key_value().map(|(_, w)| *w)
    }

    /// Takes the waiter at the front.
    pub(crate) fn pop_front(&mut self) -> Option<Waiter> {
        let (_, w) = self.order.pop_first()?;
        self.position.remove(&w);
        Some(w)
    }

    /// Takes the waiter at the back.
    pub(crate) fn pop_back(&mut self) -> Option<Waiter> {
        let (_, w) = self.order.pop_last()?;
        self.position.remove(&w);
        Some(w)
    }

    /// Removes `w` wherever it is in the queue; true if it was queued.
    pub(crate) fn remove(&mut self, w: Waiter) -> bool {
        super::cost::step(1);
        match self.position.remove(&w) {
            Some(at) => self.order.remove(&at).is_some(),
            None => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The waiters in queue order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Waiter> + '_ {
        self.order.values()
    }
}

/// Two queues are equal when they hold the same waiters in the same order
/// (positions are numbering only: a decoded queue renumbers from 0).
impl PartialEq for WaitQueue {
    fn eq(&self, other: &Self) -> bool {
        self.order.values().eq(other.order.values())
    }
}

impl Eq for WaitQueue {}

impl FromIterator<Waiter> for WaitQueue {
    fn from_iter<I: IntoIterator<Item = Waiter>>(iter: I) -> Self {
        let mut q = Self::default();
        for w in iter {
            q.push_back(w);
        }
        q
    }
}

impl Serialize for WaitQueue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.order.values())
    }
}

impl<'de> Deserialize<'de> for WaitQueue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Waiter>::deserialize(d)?;
        let mut q = Self::default();
        for w in list {
            if !q.push_back(w) {
                return Err(serde::de::Error::custom("a waiter is queued twice"));
            }
        }
        Ok(q)
    }
}

/// A shared grant on a name: a reader's, or a permit holder's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Share {
    pub(crate) token: FencingToken,
    /// Permits taken (0 for a reader).
    pub(crate) permits: u32,
}

/// One name's state. A name with no holder, no pending handoff and no
/// waiters is removed from the table (and its kind forgotten).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lock {
    /// Fixed while the name is in the table.
    pub(crate) kind: NameKind,
    /// The exclusive grant, if any.
    pub(crate) holder: Option<Holder>,
    /// Shared grants (readers, permits), by request.
    pub(crate) shared: BTreeMap<Waiter, Share>,
    /// Set while the name awaits a handoff, with the ended grants it keeps.
    pub(crate) handoff: Option<Awaiting>,
    pub(crate) waiters: WaitQueue,
    /// The permits `shared` uses: derived (rebuilt on restore, never encoded).
    #[serde(skip)]
    pub(crate) used: u64,
}

impl Lock {
    /// A new entry of `kind`, with nobody in it yet.
    pub(crate) fn of(kind: NameKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    /// Free right now: nobody holds it, nobody waits, no handoff pending.
    /// Such a lock has nothing left to remember and leaves the table.
    pub(crate) fn is_free(&self) -> bool {
        self.holder.is_none()
            && self.shared.is_empty()
            && self.handoff.is_none()
            && self.waiters.is_empty()
    }

    /// Whether a claim of `kind` fits beside the current holders and the
    /// ended grants awaiting the handoff (queue aside): exclusive needs
    /// nobody; shared needs no exclusive grant; permits need room in the
    /// count. An ended grant counts as held until its handoff.
    pub(crate) fn admits(&self, kind: ClaimKind) -> bool {
        use crate::teeth::{planted, Bug};
        let (blocked, ended, ended_permits) = match &self.handoff {
            None => (false, false, 0),
            Some(h) => (h.blocks_all(), !h.grants.is_empty(), h.permits),
        };
        if self.holder.is_some() || blocked {
            return false;
        }
        match kind {
            ClaimKind::Exclusive => {
                (self.shared.is_empty() && !ended) || planted(Bug::WriterBesideReader)
            }
            ClaimKind::Shared => true,
            ClaimKind::Permits { n, .. } => {
                let count = match self.kind {
                    NameKind::Semaphore { count } => u64::from(count),
                    NameKind::Lock => 0,
                };
                let slack = u64::from(planted(Bug::PermitOverCount));
                self.used + ended_permits + u64::from(n) <= count + slack
            }
        }
    }

    /// Records a grant of `kind` to `(session, request)`.
    pub(crate) fn add_grant(&mut self, w: Waiter, token: FencingToken, kind: ClaimKind) {
        if kind == ClaimKind::Exclusive {
            let (session, request) = w;
            self.holder = Some(Holder {
                session,
                request,
                token,
            });
        } else {
            let permits = kind.permits();
            self.used += u64::from(permits);
            self.shared.insert(w, Share { token, permits });
        }
    }

    /// Removes the grant of `(session, request)`; true if it held here.
    pub(crate) fn remove_grant(&mut self, w: Waiter) -> bool {
        if self.holder.is_some_and(|h| (h.session, h.request) == w) {
            self.holder = None;
            return true;
        }
        match self.shared.remove(&w) {
            Some(s) => {
                self.used = self.used.saturating_sub(u64::from(s.permits));
                true
            }
            None => false,
        }
    }

    /// Removes a waiter; true if it was queued.
    pub(crate) fn remove_waiter(&mut self, session: SessionId, request: RequestId) -> bool {
        self.waiters.remove((session, request))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// The queue encodes exactly as the `VecDeque` it replaced, so
    /// snapshots written before and after decode alike and hash alike.
    #[test]
    fn queue_encodes_as_the_old_vecdeque_and_keeps_fifo_order() {
        let ws: Vec<Waiter> = (1..=5).map(|i| (SessionId(i), RequestId(i * 10))).collect();
        let mut q: WaitQueue = ws.iter().copied().collect();
        let old: VecDeque<Waiter> = ws.iter().copied().collect();
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&q, cfg).unwrap();
        assert_eq!(bytes, bincode::serde::encode_to_vec(&old, cfg).unwrap());
        let back: WaitQueue = bincode::serde::decode_from_slice(&bytes, cfg).unwrap().0;
        assert_eq!(back, q);
        assert!(q.remove(ws[2]));
        assert!(!q.remove(ws[2]), "removed once");
        assert!(!q.push_back(ws[0]), "queued once");
        assert_eq!(q.pop_front(), Some(ws[0]));
        assert_eq!(q.pop_back(), Some(ws[4]));
        assert!(q.push_back(ws[0]));
        let left: Vec<Waiter> = q.iter().copied().collect();
        assert_eq!(left, vec![ws[1], ws[3], ws[0]]);
        assert_ne!(back, q);
        let twice = bincode::serde::encode_to_vec(vec![ws[0], ws[0]], cfg).unwrap();
        assert!(bincode::serde::decode_from_slice::<WaitQueue, _>(&twice, cfg).is_err());
    }
}
