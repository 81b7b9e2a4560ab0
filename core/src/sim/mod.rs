//! Testing support (feature `sim`): an in-memory network, a deterministic
//! simulator that runs whole clusters from one seed, the history every test
//! of safety records, and the checker that judges it.
//!
//! The checker ([`check`]) is shared: the simulator, the in-process cluster
//! tests and the real-process tests all record a [`history::History`] and
//! judge it with the same properties S1 to S7 (see the README's "Tested
//! faults"), and issue 11's primitives with S8 (permits), S9 (read-write),
//! S10 (multi-locks) and L1 (one leader), beside S1 to S7 per name.

pub mod check;
pub mod disk;
pub mod history;
mod liveness;
mod mcheck;
mod memnet;
mod mliveness;
mod mnemesis;
mod mtrace;
pub mod nemesis;
pub mod net;
mod node_faults;
pub mod rejoin;
pub mod rng;
pub mod run;
mod workload;
mod workload_claims;
mod workload_leader;
mod world;
mod world_trace;

pub use memnet::{MemNet, MemTransport};

/// The fencing-token base of every simulated cluster: its founder's `Found`
/// entry sets it (a real founder takes its wall clock, issue 9 item 10), so
/// tokens are never bare log indexes and a checker that mixed the two up
/// would show it.
pub(crate) const TOKEN_BASE: u64 = 1 << 40;

/// The log index of the entry that granted `token` (the checker works in
/// indexes). A token below the base came from a grant before `Found`.
pub(crate) fn token_index(token: u64) -> u64 {
    token.checked_sub(TOKEN_BASE).unwrap_or(token)
}
pub use run::{run, SimConfig, SimOutcome, Skew, Workload};
#[cfg(test)]
mod orphan_tests;
#[cfg(test)]
mod scenario;
#[cfg(test)]
mod snapshot_retry_tests;
#[cfg(test)]
#[cfg(feature = "teeth")]
mod teeth_tests;
#[cfg(test)]
mod tests;
