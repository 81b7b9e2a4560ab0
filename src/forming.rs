//! A start through seeds (issue 9): find the running cluster, or, with
//! `bootstrap_expect(n)`, form one with the other blank candidates.
//!
//! The decision is the pure `peerlock_core::membership::formation` state
//! machine (its module docs give the rules and their sources); this file
//! is the wiring: dial the seeds in rounds (a seed not up yet is found
//! when it comes), resolve the seeds' DNS names again every
//! [`RESOLVE_EVERY`] (a Kubernetes headless service lists each pod only
//! once it has an address, so the first pods up see few of the others),
//! tell every known peer what this node is every
//! `ANNOUNCE_EVERY_MS`, hand what peers say to the state machine, and act
//! on its decision.
//!
//! The steps other starts take the same way live here too, as small
//! helpers, so they cannot drift apart: [`announce`] (a message to every
//! known peer; `crate::join_seeds` and `crate::foreign` send the join's
//! `PeerMessage::joining` with it), [`seed_round`] (one bounded round of
//! dialing the seeds) and [`keep_new_seeds`] (the new addresses the seeds
//! resolve to, handed to the transport); a join that resolves its seeds
//! again (`crate::join_seeds`) uses the last two as forming does.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::membership::formation::{Decision, Formation, Heard, Run, ANNOUNCE_EVERY_MS};
use peerlock_core::raft::Member;
use peerlock_core::transport::{Incoming, PeerMessage, Transport, FORMING_PEERS_MAX};
use peerlock_core::{Error, NodeId, NodeName};
use peerlock_transport::{PeerInfo, QuicTransport};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::resolve::Reresolve;

/// How long one round of dialing the seeds lasts before the next (a seed
/// that is down must not hold the others up).
const SEED_ROUND: Duration = Duration::from_secs(3);

/// How often the seeds' DNS names are resolved again while forming.
const RESOLVE_EVERY: Duration = Duration::from_secs(2);

/// One round of dialing the seeds ([`seed_round`]).
pub(crate) type Round =
    Pin<Box<dyn std::future::Future<Output = Result<Vec<PeerInfo>, Error>> + Send>>;

/// How a start through seeds ended.
pub(crate) enum Formed {
    /// This node founds the cluster, alone as its only voter, at this
    /// address; the candidates that promised to it join it.
    Found(SocketAddr),
    /// Join the running cluster through these members (this node
    /// included, as `start_with` wants it among them).
    Join(Vec<Member>),
    /// No cluster answered by the deadline (only with `quiet`).
    Quiet,
}

/// Looks for a cluster through `seeds` (the addresses the transport was
/// bound with); `expect` > 0 also forms one (see the module docs).
/// `me_addr` is the address this node tells the others unless a seed
/// address proves to be this node. `quiet`: the deadline ends the search
/// with [`Formed::Quiet`] instead of an error (a probe for a running
/// cluster; with `expect` 0 only).
///
/// Boxed and never inlined, as `NodeBuilder::start` is (see
/// `builder_start.rs`): the search is awaited from two places, and each
/// codegen unit that awaited the `async fn` compiled its body again.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) fn form<'a>(
    transport: &'a Arc<QuicTransport>,
    incoming: &'a mut mpsc::Receiver<Incoming>,
    seeds: &'a [SocketAddr],
    reresolve: Option<Reresolve>,
    expect: u64,
    me_addr: SocketAddr,
    deadline: Instant,
    quiet: bool,
) -> Pin<Box<dyn Future<Output = Result<Formed, Error>> + Send + 'a>> {
    Box::pin(form_body(
        transport, incoming, seeds, reresolve, expect, me_addr, deadline, quiet,
    ))
}

/// [`form`]'s body.
#[allow(clippy::too_many_arguments)]
async fn form_body(
    transport: &Arc<QuicTransport>,
    incoming: &mut mpsc::Receiver<Incoming>,
    seeds: &[SocketAddr],
    reresolve: Option<Reresolve>,
    expect: u64,
    mut me_addr: SocketAddr,
    deadline: Instant,
    quiet: bool,
) -> Result<Formed, Error> {
    let start = Instant::now();
    let ms = |at: Instant| {
        u64::try_from(at.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX)
    };
    let me = Run {
        name: transport.local_name().to_owned(),
        run: peerlock_core::raft::random_u64(),
    };
    let mut f = Formation::new(me.clone(), expect, 0);
    // No join before the first round has reached every seed it can: a
    // seed not reached yet may be in another cluster (rule 1).
    f.seeds_dialing(true, 0);
    tracing::info!(node = %me.name, expect, "looking for a cluster through the seeds");
    let mut seeds = seeds.to_vec();
    let mut dialing = seed_round(transport, deadline);
    let mut resolve_tick = tokio::time::interval(RESOLVE_EVERY);
    resolve_tick.reset();
    let mut resolving: Pin<Box<dyn std::future::Future<Output = Vec<SocketAddr>> + Send>> =
        Box::pin(std::future::pending());
    let mut announce_every = tokio::time::interval(Duration::from_millis(ANNOUNCE_EVERY_MS));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut note = crate::startup_note::StartupNote::new(deadline);
    loop {
        // Seeds that are all this node (a template that filled in
        // the pod's own address) can never lead to a cluster
        // without bootstrap_expect: say so now, not at the
        // start-up deadline (issue 9, a newcomer's finding 4).
        // Names are resolved again, so they may still grow.
        let own = |a: &SocketAddr| *a == me_addr || *a == transport.local_addr();
        if expect == 0
            && !quiet
            && reresolve.is_none()
            && !seeds.is_empty()
            && seeds.iter().all(own)
        {
            return Err(Error::Config(format!(
                "the seeds ({}) name only this node: give the address of another member to join a running cluster, or bootstrap_expect(n) to form one (bootstrap_expect(1) for a one-node cluster)",
                seeds.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )));
        }
        if let Some(reason) = transport.name_in_use() {
            return Err(crate::join_seeds::name_in_use(&reason));
        }
        if !quiet {
            let silent = silent_seeds(transport, &seeds, me_addr);
            note.missing(
                &me.name,
                &silent,
                if f.heard_cluster() {
                    "a cluster answered; these seeds have not yet, and the join waits for the first round of dialing them to end (3 s at most: a seed of another cluster stops the start)"
                } else if expect > 1 {
                    "no cluster yet: waiting for the seeds to answer, to join a cluster or to form one with bootstrap_expect: start them, or check the seed addresses and the network"
                } else {
                    "no cluster has answered yet through the seeds: start a member, or check the seed addresses and the network"
                },
            );
        }
        tokio::select! {
            biased;
            r = &mut dialing => {
                // Errors here are configuration errors (a node presenting
                // this node's name, two addresses with one certificate).
                // This node's own entry carries the seed address that
                // proved to be this node (else advertise, else bound).
                let reached = r?;
                tracing::debug!(node = %me.name, reached = reached.len(), "a round of dialing the seeds ended");
                if let Some(me) = reached.into_iter().find(|p| p.id == transport.local_id()) {
                    me_addr = me.addr;
                }
                f.seeds_dialing(false, ms(Instant::now()));
                // Tell the peers just found at once (a join must not wait
                // for the next announcement).
                announce_every.reset_immediately();
                // Dial again only while a seed is missing: a round dials
                // every seed anew, and the new connection replaces the
                // pair's, dropping what was queued on it.
                if Instant::now() < deadline && !silent_seeds(transport, &seeds, me_addr).is_empty() {
                    dialing = seed_round(transport, deadline);
                } else {
                    dialing = Box::pin(std::future::pending());
                }
            }
            _ = announce_every.tick() => {
                let msg = PeerMessage::Forming {
                    name: me.name.clone(),
                    run: f.me().run,
                    expect,
                    promised: f.promised().map(|r| (r.name.clone(), r.run)),
                    peers: known_to_tell(transport, expect),
                };
                let known = announce(transport, &msg);
                tracing::debug!(node = %me.name, known, "announced");
            }
            batch = incoming.recv() => {
                let Some(batch) = batch else {
                    return Err(Error::Shutdown);
                };
                let now = ms(Instant::now());
                for msg in batch.msgs {
                    match msg {
                        PeerMessage::Forming { name, run, expect, promised, peers }
                            if NodeId::from_name(&name) == batch.from =>
                        {
                            tracing::debug!(node = %me.name, from = %name, expect, ?promised, "candidate heard");
                            learn_told(transport, &me.name, peers);
                            let promised = promised.map(|(name, run)| Run { name, run });
                            f.hear(&name, Heard::Candidate { run, expect, promised }, now);
                        }
                        PeerMessage::InCluster { cluster_id } => {
                            tracing::debug!(node = %me.name, from = %batch.from, cluster_id, "member heard");
                            if let Some(p) = peer(transport, batch.from) {
                                f.hear(&p.name, Heard::Cluster { cluster_id }, now);
                            }
                        }
                        // Raft traffic, hellos, asks: not for a start.
                        _ => {}
                    }
                }
            }
            _ = resolve_tick.tick(), if reresolve.is_some() => {
                if let Some(r) = &reresolve {
                    resolving = r();
                }
            }
            found = &mut resolving => {
                resolving = Box::pin(std::future::pending());
                let new = keep_new_seeds(transport, &mut seeds, found);
                if !new.is_empty() {
                    tracing::info!(node = %me.name, new = ?new, "the seeds resolve to new addresses; dialing them");
                    dialing = seed_round(transport, deadline);
                }
            }
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(deadline) => {
                if quiet && expect == 0 {
                    return Ok(Formed::Quiet);
                }
                return Err(Error::Config(f.give_up(ms(Instant::now())).to_string()));
            }
        }
        f.peers_known(transport.known_peers().into_iter().map(|p| p.name));
        let run = f.me().run;
        match f.decide(ms(Instant::now())) {
            Decision::Wait if f.me().run != run => {
                tracing::info!(node = %me.name, "every candidate this node could promise to promised to another: starting over as a new candidate");
                announce_every.reset_immediately();
            }
            Decision::Wait => {}
            Decision::Promise(to) => {
                tracing::info!(node = %me.name, to = %to.name, "promised to let this candidate found the cluster");
                // Tell everyone at once.
                announce_every.reset_immediately();
            }
            Decision::Found(promisers) => {
                tracing::info!(node = %me.name, promisers = %promisers.join(", "), "founding the cluster (bootstrap_expect)");
                return Ok(Formed::Found(me_addr));
            }
            Decision::Join(via) => {
                let mut members: Vec<Member> = via
                    .iter()
                    .filter_map(|name| peer(transport, NodeId::from_name(name)))
                    .map(|p| Member {
                        id: p.id,
                        name: NodeName(p.name),
                        addr: p.addr,
                    })
                    .collect();
                members.push(Member {
                    id: transport.local_id(),
                    name: NodeName(me.name.clone()),
                    addr: me_addr,
                });
                tracing::info!(node = %me.name, via = %via.join(", "), "a cluster answered; joining it");
                return Ok(Formed::Join(members));
            }
            Decision::Fail(e) => return Err(Error::Config(e.to_string())),
        }
    }
}

/// Sends `msg` to every peer the transport knows; returns how many.
pub(crate) fn announce(transport: &QuicTransport, msg: &PeerMessage) -> usize {
    let known = transport.known_peers();
    for p in &known {
        transport.send(p.id, vec![msg.clone()]);
    }
    known.len()
}

/// The peers a candidate tells the others it knows (none from a node
/// that only joins): see `PeerMessage::Forming`'s `peers`.
fn known_to_tell(transport: &QuicTransport, expect: u64) -> Vec<(String, SocketAddr)> {
    if expect == 0 {
        return Vec::new();
    }
    transport
        .known_peers()
        .into_iter()
        .take(FORMING_PEERS_MAX)
        .map(|p| (p.name, p.addr))
        .collect()
}

/// Learns the peers another forming node told of that this one does not
/// know yet (at most `FORMING_PEERS_MAX`), so that the next announcement
/// reaches them: candidates whose seeds each show a part of the
/// deployment come to see the same set (rule 2 of
/// `membership::formation`). Names are proven when the connection is
/// made, as for any peer.
fn learn_told(transport: &QuicTransport, me: &str, told: Vec<(String, SocketAddr)>) {
    let known = transport.known_peers();
    for (name, addr) in told.into_iter().take(FORMING_PEERS_MAX) {
        let id = NodeId::from_name(&name);
        if name == me || id == transport.local_id() || known.iter().any(|p| p.id == id) {
            continue;
        }
        tracing::debug!(node = %me, peer = %name, %addr, "a candidate told of a peer; dialing it");
        Transport::learn_peer(transport, id, &name, addr);
    }
}

/// One round of dialing the seeds the transport knows, ending at
/// [`SEED_ROUND`] from its start or at `deadline`, whichever comes first
/// (a seed that is down must not hold the others up).
pub(crate) fn seed_round(transport: &Arc<QuicTransport>, deadline: Instant) -> Round {
    let t = Arc::clone(transport);
    Box::pin(async move {
        let until = deadline.min(Instant::now() + SEED_ROUND);
        t.discover_reachable(until).await
    })
}

/// The addresses in `found` (the seeds resolved again) not in `seeds` yet,
/// sorted, each once: added to `seeds` and to the transport's seed
/// addresses, for the caller to dial. Empty when nothing is new.
pub(crate) fn keep_new_seeds(
    transport: &QuicTransport,
    seeds: &mut Vec<SocketAddr>,
    found: Vec<SocketAddr>,
) -> Vec<SocketAddr> {
    let mut new: Vec<SocketAddr> = found.into_iter().filter(|a| !seeds.contains(a)).collect();
    new.sort();
    new.dedup();
    if !new.is_empty() {
        transport.add_seed_addrs(new.iter().copied());
        seeds.extend(new.iter().copied());
    }
    new
}

/// The seed addresses that are neither this node nor a known peer's.
fn silent_seeds(
    transport: &QuicTransport,
    seeds: &[SocketAddr],
    me_addr: SocketAddr,
) -> Vec<SocketAddr> {
    let known: Vec<SocketAddr> = transport.known_peers().iter().map(|p| p.addr).collect();
    seeds
        .iter()
        .copied()
        .filter(|a| *a != me_addr && *a != transport.local_addr() && !known.contains(a))
        .collect()
}

/// The known peer with transport key `key`.
pub(crate) fn peer(transport: &QuicTransport, key: NodeId) -> Option<PeerInfo> {
    transport.known_peers().into_iter().find(|p| p.id == key)
}

#[cfg(test)]
#[path = "forming_tests.rs"]
mod tests;
