//! Testing support (feature `sim`): an in-memory network, a deterministic
//! simulator that runs whole clusters from one seed, the history every test
//! of safety records, and the checker that judges it.
//!
//! The checker ([`check`]) is shared: the simulator, the in-process cluster
//! tests and the real-process tests all record a [`history::History`] and
//! judge it with the same properties S1 to S7 (see the README's "Tested
//! faults").

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
pub mod rng;
pub mod run;
mod workload;
mod world;
mod world_trace;

pub use memnet::{MemNet, MemTransport};
pub use run::{run, SimConfig, SimOutcome, Skew, Workload};
#[cfg(test)]
#[cfg(feature = "teeth")]
mod teeth_tests;
#[cfg(test)]
mod tests;
