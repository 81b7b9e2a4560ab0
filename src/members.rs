//! How a start finds the members it starts with (issue 9):
//!
//! - a **restart** of a durable node starts from the members its directory
//!   recorded (and looks for their current addresses in the background),
//!   so it needs a majority of voters, not every peer;
//! - a node given **seeds** asks whichever of them answer, and joins the
//!   running cluster through them; with `bootstrap_expect(n)`, a blank
//!   node that finds no cluster forms one with the other candidates
//!   (`crate::forming`); seeds that name two clusters stop the start;
//! - otherwise a **first start** dials every listed peer: all must answer,
//!   and the founders compare what they were given. A first start that
//!   finds the cluster already running joins it instead (see
//!   `peerlock_core::raft::start_with`).

use peerlock_core::collect::btree_set;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::raft::Member;
use peerlock_core::transport::Incoming;
use peerlock_core::{Error, NodeId, NodeName};
use peerlock_transport::{PeerInfo, QuicTransport};

use tokio::sync::mpsc;

use crate::durable::Durable;
use crate::forming::Formed;

/// What a start begins with.
pub(crate) struct Found {
    /// This node's id among `members`.
    pub(crate) me: NodeId,
    pub(crate) members: Vec<Member>,
    /// `Some(id)`: a member that joined earlier, restarting.
    pub(crate) joined: Option<NodeId>,
    /// Join through `members` (seeds); never found.
    pub(crate) join_only: bool,
}

fn member(p: PeerInfo) -> Member {
    Member {
        id: p.id,
        name: NodeName(p.name),
        addr: p.addr,
    }
}

/// A start through seeds.
pub(crate) struct Seeded<'a> {
    /// Every seed address.
    pub(crate) seeds: &'a [SocketAddr],
    /// The seeds' DNS names resolved again (`None`: addresses only).
    pub(crate) reresolve: Option<crate::resolve::Reresolve>,
    /// `bootstrap_expect`, or 0 (join only).
    pub(crate) expect: u64,
    /// The address this node tells the others.
    pub(crate) me_addr: SocketAddr,
}

/// How a start without recorded members finds them.
pub(crate) enum First<'a> {
    /// Through seeds (`.seeds(..)`).
    Seeded(Seeded<'a>),
    /// From the listed peers (`.peers(..)`).
    Static(Static<'a>),
}

/// A first start with `.peers(..)`.
pub(crate) struct Static<'a> {
    /// Every listed address.
    pub(crate) peers: &'a [SocketAddr],
    /// The address this node tells the others.
    pub(crate) me_addr: SocketAddr,
}

/// How long each look for a running cluster waits for an answer.
const CLUSTER_PROBE: Duration = Duration::from_millis(1500);
/// How long one round of dialing the listed peers lasts.
const DIAL_ROUND: Duration = Duration::from_secs(1);

/// A first start with `.peers(..)`: every listed peer must answer before
/// the founders compare their lists, but once the cluster runs, a listed
/// peer may be dead for good. So while some listed peer is silent, ask
/// those that answer whether they run a cluster already, and if so join
/// it through them, as a start through seeds would (issue 9: a node that
/// lost its disk, or was removed, comes back blank while another listed
/// peer is dead). `None`: every listed peer answered, none runs a
/// cluster yet: found statically (or join, if the hellos say so).
async fn running_cluster(
    transport: &Arc<QuicTransport>,
    incoming: &mut mpsc::Receiver<Incoming>,
    peers: &[SocketAddr],
    me_addr: SocketAddr,
    deadline: tokio::time::Instant,
) -> Result<Option<Vec<Member>>, Error> {
    let listed: std::collections::BTreeSet<SocketAddr> = btree_set(peers.iter().copied());
    let mut note = crate::startup_note::StartupNote::new(deadline);
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let found = transport
            .discover_reachable(deadline.min(now + DIAL_ROUND))
            .await?;
        let answered: std::collections::BTreeSet<SocketAddr> =
            btree_set(found.iter().map(|p| p.addr));
        if listed.is_subset(&answered) {
            return Ok(None);
        }
        let missing: Vec<SocketAddr> = listed
            .difference(&answered)
            .copied()
            .filter(|a| *a != me_addr && *a != transport.local_addr())
            .collect();
        note.missing(
            transport.local_name(),
            &missing,
            "first start: waiting for every peer listed in peers(..) to answer (a cluster is founded by all of them, or joined through any that runs one): start them, or check their addresses and the network",
        );
        let until = deadline.min(tokio::time::Instant::now() + CLUSTER_PROBE);
        match crate::forming::form(transport, incoming, peers, None, 0, me_addr, until, true)
            .await?
        {
            Formed::Join(members) => return Ok(Some(members)),
            Formed::Quiet | Formed::Found(_) => {}
        }
    }
}

/// A start that joins the running cluster through `members`.
fn joining(transport: &QuicTransport, members: Vec<Member>) -> Found {
    Found {
        me: transport.local_id(),
        members,
        joined: None,
        join_only: true,
    }
}

/// Finds the members; see the module docs.
pub(crate) async fn find(
    transport: &Arc<QuicTransport>,
    recorded: Option<Vec<Member>>,
    joined: Option<NodeId>,
    first: First<'_>,
    durable: Option<&Durable>,
    incoming: &mut mpsc::Receiver<Incoming>,
    deadline: tokio::time::Instant,
) -> Result<Found, Error> {
    if let Some(members) = recorded {
        transport.add_peers(
            members
                .iter()
                .filter(|m| NodeId::from_name(m.name.as_str()) != transport.local_id())
                .map(|m| PeerInfo {
                    id: NodeId::from_name(m.name.as_str()),
                    name: m.name.0.clone(),
                    addr: m.addr,
                })
                .collect(),
        );
        let t = Arc::clone(transport);
        peerlock_core::task::spawn(async move {
            if let Err(e) = t.discover_reachable(deadline).await {
                tracing::error!(error = %e, "discovery at restart");
            }
        });
        // This node may have come back on a new address: its own entry
        // says where it is reached now (the driver records it with a
        // `SetAddr`).
        let mut members = members;
        let me = joined.unwrap_or_else(|| transport.local_id());
        for m in members.iter_mut().filter(|m| m.id == me) {
            m.addr = transport.advertised_addr();
        }
        return Ok(Found {
            me,
            members,
            joined,
            join_only: false,
        });
    }
    if let First::Seeded(Seeded {
        seeds,
        reresolve,
        expect,
        me_addr,
    }) = first
    {
        return match crate::forming::form(
            transport, incoming, seeds, reresolve, expect, me_addr, deadline, false,
        )
        .await?
        {
            Formed::Join(members) => Ok(joining(transport, members)),
            Formed::Quiet => Err(Error::Config(
                "no cluster answered through the seeds before the start-up deadline".into(),
            )),
            Formed::Found(me_addr) => {
                // Alone as the only voter, like `peers([own address])`;
                // the candidates that promised join it.
                let members = vec![Member {
                    id: transport.local_id(),
                    name: NodeName(transport.local_name().to_owned()),
                    addr: me_addr,
                }];
                if let Some(d) = durable {
                    d.save_members(&members)?;
                }
                Ok(Found {
                    me: transport.local_id(),
                    members,
                    joined: None,
                    join_only: false,
                })
            }
        };
    }
    if let First::Static(Static { peers, me_addr }) = first {
        if let Some(members) =
            running_cluster(transport, incoming, peers, me_addr, deadline).await?
        {
            return Ok(joining(transport, members));
        }
    }
    let members: Vec<Member> = transport
        .discover(deadline)
        .await?
        .into_iter()
        .map(member)
        .collect();
    if let Some(d) = durable {
        d.save_members(&members)?;
    }
    Ok(Found {
        me: transport.local_id(),
        members,
        joined: None,
        join_only: false,
    })
}
