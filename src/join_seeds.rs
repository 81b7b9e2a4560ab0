//! A node that joins keeps resolving its seeds (issue 9, design item 2).
//!
//! A start through seeds resolves their DNS names again while it looks for
//! the cluster (`crate::forming`), but once it found members and asked to
//! join, it asked only those. With a Kubernetes headless service, a pod
//! that starts during a rollout may resolve the service to pods that are
//! being replaced: they answer, then go away before the join completes,
//! while the name already lists the new pods. So while the join runs (a
//! first join, and the rejoin of a removed node, `crate::rejoin`, which
//! starts the same way), this resolves the seeds again every
//! [`RESOLVE_EVERY`], dials the new addresses, and announces the node to
//! every peer it knows; members answer with `InCluster`, and the core's
//! join asks them too (`peerlock_core::raft`'s `bootstrap/joining.rs`).
//!
//! Every [`RESOLVE_EVERY`], as while forming, not the 10 s the design
//! first proposed: a node that is not a member yet serves nothing, one
//! lookup every two seconds per starting node is cheap, and a rollout
//! replaces a pod within seconds. The resolver's own cache (CoreDNS: 30 s
//! for a headless service by default) bounds how fresh the answer is.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::membership::formation::ANNOUNCE_EVERY_MS;
use peerlock_core::transport::PeerMessage;
use peerlock_core::Error;
use peerlock_transport::QuicTransport;
use tokio::time::Instant;

use crate::forming;
use crate::resolve::Reresolve;

/// How often the seeds' DNS names are resolved again while joining (the
/// same period as while forming, `crate::forming`).
pub(crate) const RESOLVE_EVERY: Duration = Duration::from_secs(2);

/// What a join needs to keep looking through the seeds.
pub(crate) struct Reseed {
    pub(crate) transport: Arc<QuicTransport>,
    pub(crate) reresolve: Reresolve,
    /// The addresses already known (dialed at the start).
    pub(crate) known: Vec<SocketAddr>,
}

impl Reseed {
    /// What a start that joins (`join_only`) through seeds whose names
    /// `reresolve` resolves again needs; `None` for any other start.
    pub(crate) fn new(
        transport: &Arc<QuicTransport>,
        reresolve: Option<Reresolve>,
        join_only: bool,
        known: &[SocketAddr],
    ) -> Option<Self> {
        let reresolve = reresolve.filter(|_| join_only)?;
        Some(Self {
            transport: Arc::clone(transport),
            reresolve,
            known: known.to_vec(),
        })
    }
}

/// How often a start checks whether a peer refused its name.
const NAME_CHECK_EVERY: Duration = Duration::from_millis(100);

/// The error of a start whose name a peer refused: another live process
/// runs under it (`peerlock_transport`'s `endpoint/name_in_use.rs`).
pub(crate) fn name_in_use(reason: &str) -> Error {
    Error::Config(format!(
        "another process is running under this node's name, so this one stops: {reason}"
    ))
}

/// Runs `start` (the core's start, which may join), and meanwhile, with
/// `reseed`, looks for more members through the seeds until `deadline`;
/// stops it with an error when a peer refuses this node's name (another
/// live process runs under it). Returns what `start` returns.
pub(crate) async fn while_joining<F, T>(
    transport: &QuicTransport,
    start: F,
    reseed: Option<Reseed>,
    deadline: Instant,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let looking = async {
        if let Some(reseed) = reseed {
            look(reseed, deadline).await;
        }
        // Past the deadline: the start ends by itself at the same one.
        std::future::pending::<()>().await;
    };
    let refused = async {
        let mut every = tokio::time::interval(NAME_CHECK_EVERY);
        loop {
            every.tick().await;
            if let Some(reason) = transport.name_in_use() {
                return name_in_use(&reason);
            }
        }
    };
    tokio::select! {
        biased;
        r = start => r,
        e = refused => Err(e),
        () = looking => Err(Error::Shutdown),
    }
}

/// Resolves the seeds every [`RESOLVE_EVERY`] until `deadline`, dials the
/// new addresses, and announces this node to every known peer.
async fn look(mut r: Reseed, deadline: Instant) {
    let t = &r.transport;
    let name = t.local_name().to_owned();
    let hello = PeerMessage::joining(name.as_str(), peerlock_core::raft::random_u64());
    let mut tick = tokio::time::interval(RESOLVE_EVERY);
    tick.reset();
    // Announcements repeat (a lost one, a peer dialed late) but only while
    // new addresses were found recently: members answer each one.
    let mut announce_left: u32 = 0;
    let mut announce_tick = tokio::time::interval(Duration::from_millis(ANNOUNCE_EVERY_MS));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tick.tick() => {
                let found = tokio::time::timeout_at(deadline, (r.reresolve)()).await.unwrap_or_default();
                let new = forming::keep_new_seeds(t, &mut r.known, found);
                if new.is_empty() {
                    continue;
                }
                tracing::info!(node = %name, new = ?new, "the seeds resolve to new addresses while joining; dialing them");
                if let Err(e) = forming::seed_round(t, deadline).await {
                    tracing::warn!(node = %name, error = %e, "dialing the seeds' new addresses");
                }
                forming::announce(t, &hello);
                announce_left = 10;
            }
            _ = announce_tick.tick(), if announce_left > 0 => {
                announce_left -= 1;
                forming::announce(t, &hello);
            }
        }
    }
}

#[cfg(test)]
#[path = "join_seeds_tests.rs"]
mod tests;
