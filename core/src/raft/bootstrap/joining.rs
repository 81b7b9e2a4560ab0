//! A start that joins a running cluster as a new member (issue 9): ask the
//! members for a Raft id until one answers with the id the cluster
//! allocated (see `raft/join.rs` for the members' side).
//!
//! The ask carries a token drawn once per start, so an ask sent again
//! (an answer lost, a member that crashed before answering) is answered
//! with the same id: the `Join` is idempotent on its token.

use std::time::Duration;

use tokio::time::Instant;

use super::{random_u64, Member, StartParams};
use crate::error::Error;
use crate::transport::PeerMessage;
use crate::types::{NodeId, NodeName};

/// How often the ask goes out again while no member answered.
const ASK_EVERY: Duration = Duration::from_millis(500);

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
    let others: Vec<NodeId> = p
        .members
        .iter()
        .map(|m| NodeId::from_name(m.name.as_str()))
        .filter(|k| *k != my_key)
        .collect();
    tracing::info!(node = %me.name, "joining the running cluster as a new member");
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
