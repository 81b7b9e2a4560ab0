//! A durable restart through seeds checks that the seeds answer for the
//! cluster its data directory belongs to (issue 9, design item 2).
//!
//! # Why
//!
//! A restart needs only a majority of the voters its directory recorded,
//! so a directory kept from another cluster (a volume reused from a test
//! cluster, with the same CA) restarts that old cluster: a one-node one
//! elects itself at once and grants the same lock names as the cluster
//! the seeds name, two lock services the application takes for one. etcd
//! refuses such a start ("cluster ID mismatch"); so does this check,
//! before Raft starts, so before the node can grant anything.
//!
//! # Bounded, best effort
//!
//! The restart must not wait for seeds that do not answer (a full
//! restart, seeds down, a seed list wider than the cluster): the check
//! asks the seeds for one seed round ([`CHECK_ROUND`], 3 s, as
//! `crate::forming`'s round; at most a third of the start-up timeout),
//! and ends sooner once every seed answered.
//! A seed that answers nothing, or answers cluster 0 (one still founding),
//! does not count; only an answer naming another cluster id fails the
//! start. Members answer `PeerMessage::Forming` with `InCluster`, as for a
//! blank node looking for a cluster; `expect` 0 makes this node no
//! candidate for another's formation.
//!
//! # A node in the check answers too
//!
//! With the cluster id its directory records. When every node restarts
//! at once (a power cut, a redeploy that recreates every instance), they
//! are all in this check together: answering nobody, each waited out the
//! whole round (3 s added to every full restart through seeds), and a
//! directory of another cluster among them went unnoticed. Answering, the
//! round ends once the seeds answered, and such a directory stops the
//! start of the nodes that hear it, loudly, as a running member's answer
//! would: which of the two clusters is the right one is the operator's
//! call, not this check's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::raft::OpenedLog;
use peerlock_core::transport::{Incoming, PeerMessage, Transport};
use peerlock_core::Error;
use peerlock_transport::QuicTransport;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long the check asks the seeds at most.
const CHECK_ROUND: Duration = Duration::from_secs(3);
/// How often the seeds are asked again within it.
const ASK_EVERY: Duration = Duration::from_millis(200);
/// How long a node that heard a seed of another cluster goes on answering
/// before its start fails: in a full restart the seed it heard is in this
/// check too, and must hear this node's answer (five asks) before this one
/// is gone, or it would restart its other cluster unopposed (found by a
/// newcomer's trial).
const LINGER: Duration = Duration::from_secs(1);

/// Opens the store in `raft_dir` (of the data directory `dir`) and fails
/// with [`Error::Config`] if a seed answers for a cluster other than the
/// one it records; a store that records none is not checked. The store
/// is returned open, for the start: opening it replays its log. Messages
/// that are not answers are dropped, as during `crate::forming` (the
/// hello round that follows sends its own again).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn open_checked(
    transport: &Arc<QuicTransport>,
    incoming: &mut mpsc::Receiver<Incoming>,
    seeds: &[SocketAddr],
    me_addr: SocketAddr,
    dir: &Path,
    raft_dir: &Path,
    deadline: Instant,
) -> Result<OpenedLog, Error> {
    let log = OpenedLog::open(raft_dir.to_owned())?;
    if let Some(ours) = log.cluster_id()? {
        check(transport, incoming, seeds, me_addr, dir, ours, deadline).await?;
    }
    Ok(log)
}

#[allow(clippy::too_many_arguments)]
async fn check(
    transport: &Arc<QuicTransport>,
    incoming: &mut mpsc::Receiver<Incoming>,
    seeds: &[SocketAddr],
    me_addr: SocketAddr,
    dir: &Path,
    ours: u128,
    deadline: Instant,
) -> Result<(), Error> {
    let others: BTreeSet<SocketAddr> = peerlock_core::collect::btree_set(
        seeds
            .iter()
            .copied()
            .filter(|a| *a != me_addr && *a != transport.local_addr()),
    );
    if others.is_empty() {
        return Ok(());
    }
    // At most a third of what is left of the start-up timeout: the
    // restart itself needs the rest.
    let now = Instant::now();
    let until = now + CHECK_ROUND.min(deadline.saturating_duration_since(now) / 3);
    let t = Arc::clone(transport);
    let mut dialing = Box::pin(async move { t.discover_reachable(until).await });
    let mut dialed = false;
    // Seeds that answered for this directory's cluster, by address, with
    // their names for the error.
    let mut agree: BTreeMap<SocketAddr, String> = BTreeMap::new();
    // The first seed of another cluster heard, and until when this node
    // goes on answering before it stops (see LINGER).
    let mut refused: Option<(Mismatch, Instant)> = None;
    let mut ask = tokio::time::interval(ASK_EVERY);
    let msg = PeerMessage::joining(transport.local_name(), peerlock_core::raft::random_u64());
    loop {
        let wake = refused.as_ref().map_or(until, |(_, at)| *at);
        tokio::select! {
            biased;
            r = &mut dialing, if !dialed => {
                dialed = true;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "asking the seeds for their cluster id");
                }
                ask.reset_immediately();
            }
            _ = ask.tick() => {
                crate::forming::announce(transport, &msg);
            }
            batch = incoming.recv() => {
                let Some(batch) = batch else {
                    return Err(Error::Shutdown);
                };
                for m in batch.msgs {
                    let cluster_id = match m {
                        PeerMessage::InCluster { cluster_id } => cluster_id,
                        // A peer asks which cluster this node is in: the
                        // one its directory records. Every node of a full
                        // restart is here at once, and none would answer
                        // the others otherwise: each waited out the round.
                        PeerMessage::Forming { .. } => {
                            let answer = PeerMessage::InCluster { cluster_id: ours };
                            transport.send(batch.from, vec![answer]);
                            continue;
                        }
                        _ => continue,
                    };
                    let Some(p) = crate::forming::peer(transport, batch.from) else {
                        continue;
                    };
                    if cluster_id == 0 {
                        continue;
                    }
                    if cluster_id != ours {
                        if refused.is_none() {
                            let m = Mismatch { theirs: cluster_id, name: p.name.to_string(), addr: p.addr };
                            refused = Some((m, Instant::now() + LINGER));
                        }
                        continue;
                    }
                    agree.insert(p.addr, p.name.to_string());
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if let Some((m, _)) = refused {
                    return Err(m.error(ours, dir, &agree));
                }
                tracing::info!(
                    node = %transport.local_name(),
                    answered = agree.len(),
                    seeds = others.len(),
                    "restart: not every seed answered for its cluster id; going on with the recorded members"
                );
                return Ok(());
            }
        }
        if refused.is_none() && dialed && others.iter().all(|a| agree.contains_key(a)) {
            return Ok(());
        }
    }
}

/// A seed that answered for another cluster.
struct Mismatch {
    theirs: u128,
    name: String,
    addr: SocketAddr,
}

impl Mismatch {
    /// The error naming both clusters, the seeds on this directory's side
    /// (`agree`), and what to do.
    fn error(&self, ours: u128, dir: &Path, agree: &BTreeMap<SocketAddr, String>) -> Error {
        let Self { theirs, name, addr } = self;
        let side = if agree.is_empty() {
            "no seed answered for this directory's cluster".to_owned()
        } else {
            let names: Vec<&str> = agree.values().map(String::as_str).collect();
            format!(
                "seeds {} answered for this directory's cluster",
                names.join(", ")
            )
        };
        let advice = if agree.is_empty() {
            "To join the seeds' cluster as a new member, empty the data directory (its old state is lost); to restart this node's own cluster, give seeds(..) of that cluster".to_owned()
        } else {
            format!("Find which directory is the stray one before emptying any: if it is {name}'s, empty that one (not this one) and start {name} again, and start this node again; if it is this one, empty it to join as a new member (its old state is lost)")
        };
        Error::Config(format!(
            "cluster id mismatch: the data directory {} belongs to cluster {ours:032x}, but seed {name} at {addr} is a member of cluster {theirs:032x} ({side}). A directory was kept from another cluster (a volume reused from a test cluster?), or the seeds name another cluster; restarting would run a second cluster granting the same lock names. {advice}",
            dir.display()
        ))
    }
}
