//! How a start finds the members it starts with (issue 9):
//!
//! - a **restart** of a durable node starts from the members its directory
//!   recorded (and looks for their current addresses in the background),
//!   so it needs a majority of voters, not every peer;
//! - a node given **seeds** asks whichever of them answer, and joins the
//!   running cluster through them (it never founds one);
//! - otherwise a **first start** dials every listed peer: all must answer,
//!   and the founders compare what they were given. A first start that
//!   finds the cluster already running joins it instead (see
//!   `peerlock_core::raft::start_with`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::raft::Member;
use peerlock_core::{Error, NodeId, NodeName};
use peerlock_transport::{PeerInfo, QuicTransport};

use crate::data_dir;

/// How long one round of dialing the seeds lasts before the seeds that
/// answered are asked (a dead seed must not hold the start up).
const SEED_ROUND: Duration = Duration::from_secs(3);

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

/// Finds the members; see the module docs.
pub(crate) async fn find(
    transport: &Arc<QuicTransport>,
    recorded: Option<Vec<Member>>,
    joined: Option<NodeId>,
    join_only: bool,
    data_dir: Option<&Path>,
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
        tokio::spawn(async move {
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
    if join_only {
        loop {
            let round = deadline.min(tokio::time::Instant::now() + SEED_ROUND);
            let infos = transport.discover_reachable(round).await?;
            if infos.iter().any(|p| p.id != transport.local_id()) {
                return Ok(Found {
                    me: transport.local_id(),
                    members: infos.into_iter().map(member).collect(),
                    joined: None,
                    join_only: true,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Config(
                    "no seed answered before the start-up deadline; check that the seeds run, that UDP is open between the nodes, and that their certificates come from this cluster's CA".into(),
                ));
            }
        }
    }
    let members: Vec<Member> = transport
        .discover(deadline)
        .await?
        .into_iter()
        .map(member)
        .collect();
    if let Some(dir) = data_dir {
        data_dir::save_members(dir, &members)?;
    }
    Ok(Found {
        me: transport.local_id(),
        members,
        joined: None,
        join_only: false,
    })
}
