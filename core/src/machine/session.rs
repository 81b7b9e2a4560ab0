//! One session: its owner, its grants and waiting requests, and the
//! outcomes of its requests kept for retries (above its acknowledgement
//! floor).
//!
//! Grants and waits are keyed by request: one session may hold several
//! grants on one name (two read locks, two permit grants), and a grant of
//! several names (a multi-lock) is released as one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::claim::{Claim, ClaimKind};
use super::effect::Outcome;
use crate::types::{FencingToken, LockName, NodeId, NodeName, RequestId};

/// What one request asks for: a mutex `Acquire` (one exclusive claim, kept
/// apart so the mutex path allocates nothing more than it did), or a
/// request of claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Ask {
    /// `Command::Acquire`: the lock, exclusively.
    Lock(LockName),
    /// `Command::AcquireClaims`: validated claims on distinct names.
    Claims(Vec<Claim>),
}

/// The claims of an [`Ask`], as `(name, kind)` pairs.
pub(crate) type AskIter<'a> = std::iter::Chain<
    std::option::IntoIter<(&'a LockName, ClaimKind)>,
    std::iter::Map<std::slice::Iter<'a, Claim>, fn(&'a Claim) -> (&'a LockName, ClaimKind)>,
>;

fn pair(c: &Claim) -> (&LockName, ClaimKind) {
    (&c.lock, c.kind)
}

impl Ask {
    /// Each claim as `(name, kind)`.
    pub(crate) fn claims(&self) -> AskIter<'_> {
        let f: fn(&Claim) -> (&LockName, ClaimKind) = pair;
        match self {
            Self::Lock(name) => Some((name, ClaimKind::Exclusive))
                .into_iter()
                .chain([].iter().map(f)),
            Self::Claims(c) => None.into_iter().chain(c.iter().map(f)),
        }
    }

    /// How many claims: what it counts against `MAX_LOCK_ENTRIES`.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Lock(_) => 1,
            Self::Claims(c) => c.len(),
        }
    }

    /// The claim on `name`, if any.
    pub(crate) fn claim_on(&self, name: &LockName) -> Option<ClaimKind> {
        self.claims().find(|(n, _)| *n == name).map(|(_, k)| k)
    }
}

/// A grant: what was asked for, and the token of the entry that granted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    pub(crate) ask: Ask,
    pub(crate) token: FencingToken,
}

/// A session as the table records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) node: NodeId,
    pub(crate) name: NodeName,
    pub(crate) ttl_ms: u64,
    /// Every request below this number has been answered to the session.
    pub(crate) floor: RequestId,
    /// Outcomes of requests at or above the floor.
    pub(crate) results: BTreeMap<RequestId, Outcome>,
    /// Grants held, by the request they answered.
    pub(crate) held: BTreeMap<RequestId, Held>,
    /// Queued requests, by request.
    pub(crate) waiting: BTreeMap<RequestId, Ask>,
}

impl Session {
    pub(crate) fn new(node: NodeId, name: NodeName, ttl_ms: u64) -> Self {
        Self {
            node,
            name,
            ttl_ms,
            floor: RequestId(1),
            results: BTreeMap::new(),
            held: BTreeMap::new(),
            waiting: BTreeMap::new(),
        }
    }

    /// Records the outcome of `request`. Outcomes below the floor are not
    /// kept: the session promised it has them, and a request below the
    /// floor is ignored anyway.
    pub(crate) fn record(&mut self, request: RequestId, outcome: Outcome) {
        if request >= self.floor {
            self.results.insert(request, outcome);
        }
    }

    /// Raises the floor to `floor` and forgets outcomes below it.
    pub(crate) fn raise_floor(&mut self, floor: RequestId) {
        if floor > self.floor {
            self.floor = floor;
            self.results = self.results.split_off(&floor);
        }
    }
}
