//! Time-based judgements, as pure functions of `now`.
//!
//! Nothing here reads a clock: callers pass `now`, so the rules can be
//! tested exactly. [`holder`] is the holder's conservative view of its own
//! lease; [`liveness`] is the leader's view of which sessions went silent.

pub mod holder;
pub mod liveness;
