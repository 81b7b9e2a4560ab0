//! Spawning a task boxed, so that tokio's task machinery is compiled once.
//!
//! tokio compiles its task machinery (harness, poll, drop, join output)
//! once per spawned future type, about 7 KiB each, in every crate that
//! spawns it. Peerlock's long-lived tasks (the Raft driver, discovery at
//! restart, the rejoin watch, the transport's connections and streams)
//! are boxed as one type and spawned by one non-generic function, so all
//! of them share one copy (issue 12, item 9). The cost is one allocation
//! per spawn and one indirect call per poll; none of these tasks is
//! spawned per lock call.

use std::future::Future;
use std::pin::Pin;

use tokio::task::JoinHandle;

/// A spawned task's future, boxed.
pub type BoxTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Spawns `fut` on the current tokio runtime, boxed (see the module docs).
///
/// # Panics
///
/// Outside a tokio runtime, as `tokio::spawn` does.
pub fn spawn<F>(fut: F) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    spawn_boxed(Box::pin(fut))
}

/// [`spawn`] of a future boxed already; never inlined, so its one copy of
/// tokio's machinery lives here.
///
/// # Panics
///
/// Outside a tokio runtime, as `tokio::spawn` does.
#[inline(never)]
pub fn spawn_boxed(fut: BoxTask) -> JoinHandle<()> {
    tokio::spawn(fut)
}
