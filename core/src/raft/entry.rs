//! The two ways the facade starts a node, behind a boxed future.
//!
//! Why: the body of an `async fn` is a coroutine, and rustc instantiates
//! coroutines (like closures and generics) in every crate, and every
//! codegen unit, that polls them. `bootstrap::start` and
//! `bootstrap::start_on_disk` await `start_with::<S, _>`, which runs the
//! whole Raft driver (`Driver<S>` and raft-rs's `RawNode<S>`): awaited
//! from the facade, all of it was compiled a second time there, once per
//! store type, about 0.5 MiB of machine code in every application's
//! release binary (issue 12, item 9). A non-generic function that is
//! never inlined elsewhere and returns the future boxed keeps the one
//! copy here, and both starts run on the one store type
//! [`NodeStore`](crate::storage::NodeStore), so that copy is not made
//! twice either (0.3 MiB more). Starting a node is not a hot path: one allocation and a
//! dynamic `poll` per start.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use super::{bootstrap, StartParams};
use crate::{Error, NodeHandle};

/// The future [`start`] and [`start_on_disk`] return.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<NodeHandle, Error>> + Send>>;

/// Starts a node with its log in memory: returns once it may take part in
/// Raft; call `NodeHandle::ready` to wait for a leader and an open session.
#[inline(never)]
pub fn start(p: StartParams) -> StartFuture {
    Box::pin(bootstrap::start(p))
}

/// Starts a node on the durable log store in `dir` (created if missing).
/// A store with no state yet is given the initial membership durably
/// before Raft starts; one with state brings its own.
#[inline(never)]
pub fn start_on_disk(p: StartParams, dir: PathBuf) -> StartFuture {
    Box::pin(bootstrap::start_on_disk(p, dir))
}
