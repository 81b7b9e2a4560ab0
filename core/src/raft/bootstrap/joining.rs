//! A start that joins a running cluster as a new member (issue 9): ask the
//! members for a Raft id until one answers with the id the cluster
//! allocated (see `raft/join.rs` for the members' side).
//!
//! The ask carries a token drawn once per start, so an ask sent again
//! (an answer lost, a member that crashed before answering) is answered
//! with the same id: the `Join` is idempotent on its token.
//!
//! The members asked are those the start found, and every peer that says
//! it is a member while the join goes on ([`PeerMessage::InCluster`], the
//! answer to the `Forming` announcement the facade sends to seed addresses
//! it resolves again meanwhile). Issue 9, design item 2: with a Kubernetes
//! headless service, a pod that starts during a rollout may find only
//! members that are being replaced; asking only them, its join waited for
//! the start-up timeout although the seed name listed the new pods. A
//! member of another cluster (its id differs from the first heard, the
//! members found being asked for theirs first) stops the join, as two
//! cluster ids stop a start through seeds: a late answer to the start's
//! announcements, from a seed of another cluster, is caught here too.

use crate::collect::btree_set;
use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::{random_u64, Member, StartParams};
use crate::error::Error;
use crate::transport::PeerMessage;
use crate::types::{NodeId, NodeName};

/// How often the ask goes out again while no member answered.
const ASK_EVERY: Duration = Duration::from_millis(500);

/// At most this many members are asked (the list grows as members answer).
const MAX_ASKED: usize = 1024;

/// Asks every known member to let `me` join, until one answers or
/// `deadline` passes. Returns the allocated id and the members (the joiner
/// included), whose addresses the transport has learned.
pub(super) async fn join_cluster(
    p: &mut StartParams,
    me: &Member,
    durable: bool,
    deadline: Instant,
) -> Result<(NodeId, Vec<Member>), Error> {
    let token = random_u64();
    let ask = PeerMessage::JoinAsk {
        token,
        name: me.name.0.clone(),
        addr: me.addr,
        durable,
        zone: p.config.zone.clone(),
    };
    let my_key = NodeId::from_name(me.name.as_str());
    let mut others: BTreeSet<NodeId> = btree_set(
        p.members
            .iter()
            .map(|m| NodeId::from_name(m.name.as_str()))
            .filter(|k| *k != my_key),
    );
    // The first cluster id a member named during the join.
    let mut cluster: Option<u128> = None;
    tracing::info!(node = %me.name, "joining the running cluster as a new member");
    // The members found answer with their cluster id, against which a
    // late answer to the start's announcements, or a member found later,
    // is checked.
    let hello = PeerMessage::joining(me.name.as_str(), token);
    for key in &others {
        p.transport.send(*key, vec![hello.clone()]);
    }
    let mut resend = tokio::time::interval(ASK_EVERY);
    loop {
        tokio::select! {
            biased;
            _ = resend.tick() => {
                for key in &others {
                    p.transport.send(*key, vec![ask.clone()]);
                }
            }
            batch = p.incoming.recv() => {
                let Some(batch) = batch else {
                    return Err(Error::Shutdown);
                };
                for msg in batch.msgs {
                    match msg {
                        PeerMessage::Joined { token: t, id, members } if t == token => {
                            let members: Vec<Member> = members
                                .into_iter()
                                .map(|m| Member {
                                    id: NodeId(m.id),
                                    name: NodeName(m.name),
                                    addr: m.addr,
                                })
                                .collect();
                            for m in &members {
                                let key = NodeId::from_name(m.name.as_str());
                                if key != my_key {
                                    p.transport.learn_peer(key, m.name.as_str(), m.addr);
                                }
                            }
                            tracing::info!(node = %me.name, id, "joined the cluster");
                            return Ok((NodeId(id), members));
                        }
                        PeerMessage::JoinRefused { token: t, reason } if t == token => {
                            return Err(Error::Config(format!(
                                "the cluster refused this node's join: {reason}"
                            )));
                        }
                        // A member found while joining (0: its cluster has
                        // no id yet and takes no join).
                        PeerMessage::InCluster { cluster_id } if cluster_id != 0 => {
                            match cluster {
                                Some(first) if first != cluster_id => {
                                    return Err(Error::Config(format!(
                                        "the seeds reach members of two different clusters (ids {first:032x} and {cluster_id:032x}) while this node joins: a seed address or DNS name lists nodes of another cluster; give seeds of one cluster only"
                                    )));
                                }
                                _ => cluster = Some(cluster_id),
                            }
                            if batch.from != my_key
                                && others.len() < MAX_ASKED
                                && others.insert(batch.from)
                            {
                                tracing::info!(node = %me.name, member = %batch.from, "a member found while joining; asking it too");
                                p.transport.send(batch.from, vec![ask.clone()]);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Error::NoQuorum);
            }
        }
    }
}
