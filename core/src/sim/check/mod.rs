//! The history checker: judges a [`History`] against the properties every
//! safety test promises (S1 to S7, and convergence), and issue 11's
//! primitives: S8 permits, S9 read-write, S10 multi-locks, L1 one leader;
//! S1, S2, S6 and S7 extend to the claims per name (`claims_*.rs`).
//!
//! Each property lives in its own file and only adds violations to the
//! [`Report`]; none of them trusts another. A property that needs data the
//! history does not have (the committed log, for real processes) checks
//! nothing and says so in [`Report::skipped`].

use std::fmt;

use super::history::History;

mod claims_history;
mod claims_replay;
mod convergence;
mod leader_once;
mod ops;
mod replay;
mod s10_multi;
mod s1_tokens;
mod s2_log_order;
mod s3_fencing;
mod s4_single_holder;
mod s5_linearizable;
mod s6_claims;
mod s6_durability;
mod s7_claims_fifo;
mod s7_fifo;
mod s8_permits;
mod s9_rw;

#[cfg(test)]
mod claims_tests;
#[cfg(test)]
mod log_proptests;
#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod tests;

/// The properties (see the README's "Tested faults").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    /// Acknowledged grants of a lock carry increasing, unique tokens.
    S1Tokens,
    /// In the committed log, a grant follows the previous grant's release
    /// or expiry (plus lock-delay).
    S2LogOrder,
    /// The fenced resource never accepted a write below a higher token.
    S3Fencing,
    /// No two holders had `is_held() == true` at the same true instant.
    S4SingleHolder,
    /// The operations on each lock are linearizable against a mutex.
    S5Linearizable,
    /// Nothing acknowledged was lost.
    S6Durability,
    /// Waiters are granted in commit order; an expired waiter never is.
    S7Fifo,
    /// Permits in use never exceed a semaphore's count (issue 11).
    S8Permits,
    /// No reader beside a writer, nor two writers, on a read-write lock
    /// (issue 11).
    S9ReadWrite,
    /// A multi-lock is granted all at once: one entry, one token, every
    /// name free of conflicting holders (issue 11).
    S10MultiLock,
    /// At most one `is_leader() == true` at any instant, and none after a
    /// higher term was acknowledged (issue 11; within the clock bound).
    L1OneLeader,
    /// Every live node ended in the same state.
    Convergence,
    /// After healing: a leader, a free lock acquirable, a dead session's
    /// lock handed on within its bounds (judged by the simulator itself).
    Liveness,
    /// Membership (issue 9, simulator only): at most one leader per term.
    M1OneLeaderPerTerm,
    /// Membership: no vote from a removed id is counted.
    M2RemovedNotCounted,
    /// Membership: committed configurations form a chain, one change at a
    /// time, and a removed id never returns.
    M3ConfChain,
    /// Membership: once faults heal, the configuration is not joint, the
    /// voters are the target count and all live, and every live node is a
    /// member that applied it.
    M4Converges,
    /// Membership: no voter that was live (the simulator's ground truth) is
    /// removed for silence.
    M5NoLiveVoterRemoved,
}

/// One broken promise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which property.
    pub property: Property,
    /// The lock involved, if one.
    pub lock: Option<String>,
    /// What was seen, with times and tokens.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.lock {
            Some(l) => write!(f, "{:?} on {l:?}: {}", self.property, self.detail),
            None => write!(f, "{:?}: {}", self.property, self.detail),
        }
    }
}

/// Counts that show the faults reached the dangerous cases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations invoked.
    pub ops: u64,
    /// Operations that failed or never completed (indeterminate).
    pub indeterminate: u64,
    /// Acknowledged grants.
    pub grants: u64,
    /// Writes the fenced resources accepted.
    pub writes_accepted: u64,
    /// Stale writes the fenced resources refused (a holder that had lost
    /// its lock tried to write).
    pub stale_writes_refused: u64,
    /// Acknowledgements S6 could not check because their entries fell into
    /// a gap of the log (covered by a snapshot).
    pub unverifiable: u64,
    /// Acknowledged claims grants (issue 11): permits, read locks, write
    /// locks (one exclusive claim), multi-locks (several claims).
    pub claims_grants: [u64; 4],
    /// Terms of office whose leader said `is_leader() == true` at least once.
    pub leader_terms: u64,
}

/// The checker's verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Every violation found (empty when all properties hold).
    pub violations: Vec<Violation>,
    /// Properties that could not be checked, and why.
    pub skipped: Vec<(Property, String)>,
    /// Counts.
    pub stats: Stats,
}

impl Report {
    /// Whether every checked property held.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether some violation of `p` was found.
    pub fn violates(&self, p: Property) -> bool {
        self.violations.iter().any(|v| v.property == p)
    }

    pub(crate) fn add(&mut self, property: Property, lock: Option<&str>, detail: String) {
        self.violations.push(Violation {
            property,
            lock: lock.map(str::to_owned),
            detail,
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:?}", self.stats)?;
        for v in self.violations.iter().take(20) {
            writeln!(f, "  {v}")?;
        }
        if self.violations.len() > 20 {
            writeln!(f, "  ... and {} more", self.violations.len() - 20)?;
        }
        Ok(())
    }
}

/// Checks every property the history has the data for.
pub fn check(history: &History) -> Report {
    let mut report = Report::default();
    s1_tokens::check(history, &mut report);
    s2_log_order::check(history, &mut report);
    s3_fencing::check(history, &mut report);
    s4_single_holder::check(history, &mut report);
    s5_linearizable::check(history, &mut report);
    s6_durability::check(history, &mut report);
    s7_fifo::check(history, &mut report);
    claims_replay::check(history, &mut report);
    claims_history::check(history, &mut report);
    leader_once::check(history, &mut report);
    convergence::check(history, &mut report);
    report
}
