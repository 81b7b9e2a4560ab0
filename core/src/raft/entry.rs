//! The two ways the facade starts a node, behind a boxed future.
//!
//! Why: the body of an `async fn` is a coroutine, and rustc instantiates
//! coroutines (like closures and generics) in every crate, and every
//! codegen unit, that polls them. `bootstrap::start` and
//! `on_disk` await `start_with::<S, _>`, which runs the
//! whole Raft driver (`Driver<S>` and raft-rs's `RawNode<S>`): awaited
//! from the facade, all of it was compiled a second time there, once per
//! store type, about 0.5 MiB of machine code in every application's
//! release binary (issue 12, item 9). A non-generic function that is
//! never inlined elsewhere and returns the future boxed keeps the one
//! copy here, and both starts run on the one store type
//! [`NodeStore`](crate::storage::NodeStore), so that copy is not made
//! twice either (0.3 MiB more). Starting a node is not a hot path: one allocation and a
//! dynamic `poll` per start.
//!
//! The durable starts are items here under the `disk` feature (on by
//! default), not a module of their own: in another module their
//! `start_with` would be compiled again in another codegen unit (33 KiB).
//! Without the feature `NodeStore` has only its memory variant, and the
//! log files, their recovery, the fsync thread and the old snapshot
//! decoders drop out of the link (0.26 MiB, issue 12, item 9).

use std::future::Future;
#[cfg(feature = "disk")]
use std::path::{Path, PathBuf};
use std::pin::Pin;

use super::{bootstrap, StartParams};
#[cfg(feature = "disk")]
use crate::storage::{DiskStore, LogStore, NodeStore};
use crate::{Error, NodeHandle};

/// The future [`start`] and the durable starts (`start_on_disk`,
/// `start_on_opened`, feature `disk`) return.
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
#[cfg(feature = "disk")]
#[inline(never)]
pub fn start_on_disk(p: StartParams, dir: PathBuf) -> StartFuture {
    Box::pin(on_disk(p, dir, None))
}

/// A durable log store opened before its node starts, so that what the
/// start needs to read from it first (the cluster it belongs to) and the
/// start itself share one opening: opening replays the whole log and
/// decodes the snapshot, seconds for a large lock table.
#[cfg(feature = "disk")]
pub struct OpenedLog {
    dir: PathBuf,
    /// Always `NodeStore::Disk`: the type the start runs on, so reading
    /// the cluster id here compiles the replay once, not once more for
    /// `DiskStore` (issue 12, item 9).
    store: NodeStore,
}

#[cfg(feature = "disk")]
impl OpenedLog {
    /// Opens (or creates) the durable log store in `dir`.
    ///
    /// # Errors
    ///
    /// `Io` when the store cannot be read or is damaged (the message names
    /// `dir`).
    pub fn open(dir: PathBuf) -> Result<Self, Error> {
        let store = NodeStore::Disk(DiskStore::open(&dir).map_err(|e| storage_error(&dir, &e))?);
        Ok(Self { dir, store })
    }

    /// The id of the cluster this store belongs to, as of its last
    /// committed entry; `None` when it records none (never founded, or the
    /// founding not yet committed). The facade reads it before a restart
    /// through seeds, to refuse a directory kept from another cluster
    /// (issue 9) before the node can elect itself and grant a lock.
    ///
    /// # Errors
    ///
    /// `Config` when the stored snapshot does not decode; `Io` when the
    /// store cannot be read.
    pub fn cluster_id(&self) -> Result<Option<u128>, Error> {
        bootstrap::recorded_cluster_id(&self.store)
    }
}

/// Starts a node on a store opened already ([`start_on_disk`] otherwise).
#[cfg(feature = "disk")]
#[inline(never)]
pub fn start_on_opened(p: StartParams, log: OpenedLog) -> StartFuture {
    Box::pin(on_disk(p, log.dir, Some(log.store)))
}

#[cfg(feature = "disk")]
fn storage_error(dir: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!(
        "storage in {}: {e}",
        dir.display()
    )))
}

#[cfg(feature = "disk")]
async fn on_disk(
    p: StartParams,
    dir: PathBuf,
    opened: Option<NodeStore>,
) -> Result<NodeHandle, Error> {
    bootstrap::start_with(p, move |cs| {
        let err = |e: &dyn std::fmt::Display| storage_error(&dir, e);
        let mut store = match opened {
            Some(store) => store,
            None => NodeStore::Disk(DiskStore::open(&dir).map_err(|e| err(&e))?),
        };
        let state = raft::Storage::initial_state(&store).map_err(|e| err(&e))?;
        let blank = raft::Storage::last_index(&store).map_err(|e| err(&e))? == 0
            && state.conf_state.voters.is_empty()
            && state.hard_state.term == 0;
        if blank {
            store.set_conf_state(&cs).map_err(|e| err(&e))?;
        }
        Ok(store)
    })
    .await
}
