//! One session: its owner, its locks and waiters, and the outcomes of its
//! requests kept for retries (above its acknowledgement floor).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::effect::Outcome;
use crate::types::{FencingToken, LockName, NodeId, NodeName, RequestId};

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
    /// Locks held, with their tokens.
    pub(crate) held: BTreeMap<LockName, FencingToken>,
    /// Queued acquires, by request.
    pub(crate) waiting: BTreeMap<RequestId, LockName>,
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
