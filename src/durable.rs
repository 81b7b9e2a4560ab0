//! A node's data directory as the start sees it: opened and checked before
//! anything binds, then the durable start (feature `disk`, on by default).
//!
//! Without the `disk` feature, [`Durable`] is a type with no values. The
//! builder's start reads as one path for both kinds of node, and the
//! compiler removes the durable branch, so an application built with
//! `default-features = false` links no log files, no recovery, no fsync
//! thread and no data-directory code: 0.26 MiB less (issue 12,
//! item 9). `NodeBuilder::data_dir` does not exist in such a build.

#[cfg(feature = "disk")]
pub(crate) use on_disk::{recluster, Durable};

#[cfg(not(feature = "disk"))]
pub(crate) use in_memory_only::{recluster, Durable};

#[cfg(feature = "disk")]
mod on_disk {
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use peerlock_core::raft::{
        Member, OnJoined, OnLeft, OpenedLog, PeerRun, StartFuture, StartParams,
    };
    use peerlock_core::transport::Incoming;
    use peerlock_core::types::NodeId;
    use peerlock_core::Error;
    use peerlock_transport::{QuicTransport, TlsConfig};
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use crate::data_dir;

    pub(crate) use data_dir::recluster;

    /// An opened data directory: this node's identity in it, what it
    /// recorded of the cluster, and the Raft log once checked.
    pub(crate) struct Durable {
        dir: PathBuf,
        this_run: PeerRun,
        raft_dir: PathBuf,
        peers: data_dir::FilePeers,
        recorded: Option<Vec<Member>>,
        joined: Option<NodeId>,
        opened: Option<OpenedLog>,
    }

    impl Durable {
        /// Opens `dir` (created if missing) for the node `tls` names.
        ///
        /// # Errors
        ///
        /// `Config` when the directory is another node's or another
        /// cluster's; `Io` when it cannot be read.
        pub(crate) fn open(dir: &Path, tls: &TlsConfig) -> Result<Self, Error> {
            let (identity, raft_dir) =
                data_dir::open_bundle(dir, tls.node_name(), &tls.ca_fingerprints())?;
            Ok(Self {
                dir: dir.to_owned(),
                this_run: identity.this_run(),
                raft_dir,
                peers: data_dir::FilePeers::open(dir)?,
                recorded: data_dir::load_members(dir)?,
                joined: data_dir::load_member_id(dir)?,
                opened: None,
            })
        }

        /// Records the members a first start found.
        pub(crate) fn save_members(&self, members: &[Member]) -> Result<(), Error> {
            data_dir::save_members(&self.dir, members)
        }

        /// The members this directory last recorded (a restart).
        pub(crate) fn recorded(&self) -> Option<Vec<Member>> {
            self.recorded.clone()
        }

        /// The id this node joined under, if it joined through seeds.
        pub(crate) fn joined(&self) -> Option<NodeId> {
            self.joined
        }

        /// Issue 9: refuses a directory kept from another cluster before
        /// Raft starts (see `foreign.rs`), keeping the log it opened for
        /// the start.
        pub(crate) async fn check_foreign(
            &mut self,
            transport: &Arc<QuicTransport>,
            incoming: &mut mpsc::Receiver<Incoming>,
            seeds: &[SocketAddr],
            me_addr: SocketAddr,
            deadline: Instant,
        ) -> Result<(), Error> {
            let log = crate::foreign::open_checked(
                transport,
                incoming,
                seeds,
                me_addr,
                &self.dir,
                &self.raft_dir,
                deadline,
            )
            .await?;
            self.opened = Some(log);
            Ok(())
        }

        /// Records the members and this node's id once it joined.
        pub(crate) fn on_joined(&self) -> OnJoined {
            let dir = self.dir.clone();
            Box::new(move |id, members| {
                data_dir::save_members(&dir, members)?;
                data_dir::save_member_id(&dir, id)
            })
        }

        /// Marks the directory as left (a graceful leave).
        pub(crate) fn on_left(&self) -> OnLeft {
            let dir = self.dir.clone();
            Box::new(move || data_dir::mark_left(&dir))
        }

        /// Starts the node on the log in this directory.
        pub(crate) fn start(self, mut params: StartParams) -> StartFuture {
            params.incarnation = Some(self.this_run);
            params.peer_memory = Box::new(self.peers);
            match self.opened {
                Some(log) => peerlock_core::raft::start_on_opened(params, log),
                None => peerlock_core::raft::start_on_disk(params, self.raft_dir),
            }
        }
    }
}

#[cfg(not(feature = "disk"))]
mod in_memory_only {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;

    use peerlock_core::raft::{Member, OnJoined, OnLeft, StartFuture, StartParams};
    use peerlock_core::transport::Incoming;
    use peerlock_core::types::NodeId;
    use peerlock_core::Error;
    use peerlock_transport::{QuicTransport, TlsConfig};
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    /// Nothing to move: a build without the `disk` feature is never given
    /// a data directory (`NodeBuilder::data_dir` does not exist in it).
    pub(crate) fn recluster(_dir: &Path, _running: &[u64], _clusters: &[u64]) -> Result<(), Error> {
        Ok(())
    }

    /// No data directory can be opened in a build without the `disk`
    /// feature: this type has no values, so every method below is never
    /// called, and says so to the compiler with an empty `match`.
    pub(crate) enum Durable {}

    impl Durable {
        /// Always a `Config` error: this build has no durable storage.
        pub(crate) fn open(dir: &Path, _tls: &TlsConfig) -> Result<Self, Error> {
            Err(Error::Config(format!(
                "data directory {}: this build of peerlock has no durable storage (its `disk` feature is off); use .in_memory() or enable the feature",
                dir.display()
            )))
        }

        pub(crate) fn save_members(&self, _members: &[Member]) -> Result<(), Error> {
            match *self {}
        }

        pub(crate) fn recorded(&self) -> Option<Vec<Member>> {
            match *self {}
        }

        pub(crate) fn joined(&self) -> Option<NodeId> {
            match *self {}
        }

        pub(crate) async fn check_foreign(
            &mut self,
            _transport: &Arc<QuicTransport>,
            _incoming: &mut mpsc::Receiver<Incoming>,
            _seeds: &[SocketAddr],
            _me_addr: SocketAddr,
            _deadline: Instant,
        ) -> Result<(), Error> {
            match *self {}
        }

        pub(crate) fn on_joined(&self) -> OnJoined {
            match *self {}
        }

        pub(crate) fn on_left(&self) -> OnLeft {
            match *self {}
        }

        pub(crate) fn start(self, _params: StartParams) -> StartFuture {
            match self {}
        }
    }
}
