//! `NodeBuilder::start`, apart from its body so that the body is compiled
//! once (issue 12, item 9: what peerlock adds to a binary).
//!
//! An `async fn`'s body is a coroutine, and rustc instantiates coroutines,
//! like closures and generics, in every crate and codegen unit that polls
//! them. The start path (binding, forming or joining, the rejoin watch) is
//! large, and as an `async fn` it was compiled again into every
//! application, in each codegen unit that awaited it. Returned boxed as a
//! `dyn Future` from a function that is never inlined, it is compiled
//! here only, and a caller polls it through its vtable. Starting is not a
//! hot path: one allocation per start.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use peerlock_core::{Error, NodeHandle};

use super::NodeBuilder;
use crate::node::Node;

/// The future `NodeBuilder::start_core` returns: the core handle and the
/// bound address.
pub(crate) type CoreStart =
    Pin<Box<dyn Future<Output = Result<(NodeHandle, SocketAddr), Error>> + Send>>;

impl NodeBuilder {
    /// Binds, finds the peers, and starts the node.
    ///
    /// With `rejoin_when_removed` (the default, see
    /// [`MembershipConfig`](crate::MembershipConfig)), a node the cluster
    /// removes later starts again by itself: blank, under a new id, at the
    /// same address and with these options.
    ///
    /// # Errors
    ///
    /// `Config` for a wrong or missing option (it names the option: an empty
    /// peer list, a TTL too short for the Raft tick, founders given different
    /// peer lists, ...); `Tls` when the certificate does not fit the cluster;
    /// `Io` when the socket cannot be bound or the data directory cannot be
    /// used (refused directories say why: another node's or cluster's, an
    /// older copy); `NoQuorum`, or `Config` naming what it saw, when the
    /// peers or seeds did not answer within
    /// [`NodeBuilder::startup_timeout`] (60 s by default; it logs at WARN
    /// every 10 s what it waits for).
    #[inline(never)]
    pub fn start(self) -> impl Future<Output = Result<Node, Error>> + Send {
        let boxed: Pin<Box<dyn Future<Output = Result<Node, Error>> + Send>> =
            Box::pin(self.start_inner());
        boxed
    }

    /// [`NodeBuilder::start`] without the rejoin watch: the core handle and
    /// the bound address. Boxed and never inlined for the reason in the
    /// module docs: it is awaited both by the start and by a rejoin
    /// (`rejoin::start_blank`), and each codegen unit that awaited the
    /// `async fn` compiled its 30 KiB body again.
    #[inline(never)]
    pub(crate) fn start_core(self) -> CoreStart {
        Box::pin(self.start_core_body())
    }
}
