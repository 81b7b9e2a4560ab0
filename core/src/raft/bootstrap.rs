//! Starting a node: check the configuration, make sure this identity may
//! take part (the hello round), build the `RawNode`, spawn the driver.
//!
//! # Why the hello round
//!
//! A node with empty storage must never vote under an identity that already
//! voted: it could vote twice in one term and let two leaders be elected.
//! Each start draws a random incarnation number and says hello to every
//! peer; a peer that remembers another incarnation under the same identity
//! refuses it. A node takes part in Raft only once a majority of voters
//! accepted it, so every incarnation that ever took part is remembered by a
//! majority, and any majority a restarted node reaches includes one of them.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raft::eraftpb::ConfState;
use raft::{RawNode, ReadOnlyOption};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::leader::LeaderDuty;
use super::logger;
use super::own::{random_u64, OwnSession};
use super::proposals::Proposals;
use super::reads::Reads;
use super::Driver;
use crate::client::handle::NodeHandle;
use crate::client::status::{MemberStatus, NodeStatus, Role};
use crate::config::NodeConfig;
use crate::error::Error;
use crate::machine::LockTable;
use crate::storage::{DiskStore, LogStore, MemStore};
use crate::transport::{Incoming, PeerMessage, Transport};
use crate::types::{NodeId, NodeName};

/// One member of the initial cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its id (from its certificate name).
    pub id: NodeId,
    /// Its certificate name.
    pub name: NodeName,
    /// Its address.
    pub addr: SocketAddr,
}

/// Everything `start` needs.
pub struct StartParams {
    /// Timing and sizing.
    pub config: NodeConfig,
    /// This node's id; must be one of `members`.
    pub me: NodeId,
    /// The initial cluster, including this node.
    pub members: Vec<Member>,
    /// The network.
    pub transport: Arc<dyn Transport>,
    /// Where the transport delivers incoming messages.
    pub incoming: mpsc::Receiver<Incoming>,
    /// How long to wait for a majority of voters to answer the hello round.
    pub join_timeout: Duration,
    /// Called once when the driver stops (e.g. to close the transport).
    pub on_stop: Option<Box<dyn FnOnce() + Send>>,
    /// This run's incarnation; `None` draws a random one (in-memory nodes).
    /// A durable node passes the one stored in its data directory, so that
    /// peers recognise it after a restart.
    pub incarnation: Option<u64>,
    /// Where peers' incarnations are remembered. In memory by default; a
    /// durable node keeps them on disk, so that a peer which lost its data
    /// is still recognised after this node restarts.
    pub peer_memory: Box<dyn PeerMemory>,
    /// The simulator's seams; `Hooks::default()` in production.
    pub hooks: super::Hooks,
}

/// Remembers the incarnation each peer took part under.
pub trait PeerMemory: Send {
    /// Every incarnation remembered so far.
    fn load(&self) -> HashMap<NodeId, u64>;
    /// Records (durably, for a durable node) that `peer` took part as
    /// `incarnation`, before the peer is told it was accepted.
    fn remember(&mut self, peer: NodeId, incarnation: u64) -> Result<(), Error>;
}

/// Peer incarnations kept in memory only.
#[derive(Debug, Default)]
pub struct MemoryPeers(HashMap<NodeId, u64>);

impl PeerMemory for MemoryPeers {
    fn load(&self) -> HashMap<NodeId, u64> {
        self.0.clone()
    }

    fn remember(&mut self, peer: NodeId, incarnation: u64) -> Result<(), Error> {
        self.0.insert(peer, incarnation);
        Ok(())
    }
}

/// Starts a node with its log in memory: returns once it may take part in
/// Raft; call `NodeHandle::ready` to wait for a leader and an open session.
pub async fn start(p: StartParams) -> Result<NodeHandle, Error> {
    start_with(p, |cs| Ok(MemStore::new(cs))).await
}

/// Starts a node on the log store `make_store` opens. It is given the
/// initial membership, which a store that already holds state ignores. A
/// store that holds a snapshot restores the lock table from it, and Raft
/// replays the committed entries after it.
pub async fn start_with<S, F>(mut p: StartParams, make_store: F) -> Result<NodeHandle, Error>
where
    S: LogStore + Send + 'static,
    F: FnOnce(ConfState) -> Result<S, Error>,
{
    p.config.validate()?;
    let mut members = p.members.clone();
    members.sort_by_key(|m| m.id);
    members.dedup_by_key(|m| m.id);
    let me = members
        .iter()
        .find(|m| m.id == p.me)
        .cloned()
        .ok_or_else(|| Error::Config("this node is not among its own peers".into()))?;
    let voter_count = p.config.max_voters.min(members.len());
    let voters: Vec<NodeId> = members.iter().take(voter_count).map(|m| m.id).collect();
    let learners: Vec<NodeId> = members.iter().skip(voter_count).map(|m| m.id).collect();
    let member_status: Vec<MemberStatus> = members
        .iter()
        .map(|m| MemberStatus {
            id: m.id,
            name: m.name.clone(),
            addr: m.addr,
            voter: voters.contains(&m.id),
        })
        .collect();

    let incarnation = p.incarnation.unwrap_or_else(random_u64);
    let incarnations = hello_round(&mut p, &me, &voters, incarnation).await?;

    let cfg = p.config.clone();
    let raft_cfg = raft::Config {
        id: me.id.0,
        election_tick: cfg.election_ticks,
        heartbeat_tick: cfg.heartbeat_ticks,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        read_only_option: ReadOnlyOption::Safe,
        ..Default::default()
    };
    let raft_cfg = match p.hooks.election_ticks {
        // A range of one value: raft-rs's random draw cannot vary.
        Some(k) => raft::Config {
            min_election_tick: k,
            max_election_tick: k + 1,
            ..raft_cfg
        },
        None => raft_cfg,
    };
    raft_cfg
        .validate()
        .map_err(|e| Error::Config(format!("raft configuration: {e}")))?;
    let cs = ConfState {
        voters: voters.iter().map(|v| v.0).collect(),
        learners: learners.iter().map(|v| v.0).collect(),
        ..Default::default()
    };
    let store = make_store(cs)?;
    let (table, applied) = match raft::Storage::snapshot(&store, 0, me.id.0) {
        Ok(snap) if !snap.is_empty() => {
            let table = LockTable::restore(&snap.data).map_err(|e| {
                Error::Config(format!(
                    "the stored snapshot does not decode ({e}); the data directory is damaged"
                ))
            })?;
            (table, snap.get_metadata().index)
        }
        _ => (LockTable::new(), 0),
    };
    let raft_cfg = raft::Config {
        applied,
        ..raft_cfg
    };
    let syncer = match (store.blocks(), p.hooks.fsync_in_task) {
        (false, _) => None,
        (true, None) => Some(super::syncer::Syncer::spawn(me.name.as_str()).map_err(Error::Io)?),
        (true, Some(latency)) => Some(super::syncer::Syncer::spawn_task(latency)),
    };
    let logger = logger::logger(me.name.as_str());
    let raw = RawNode::new(&raft_cfg, store, &logger)
        .map_err(|e| Error::Config(format!("raft could not start: {e}")))?;
    let written_vote = (raw.raft.term, raw.raft.vote);

    let clock = p.hooks.clock.clone();
    let now = clock.now();
    let (inbox_tx, inbox) = mpsc::unbounded_channel();
    let initial = NodeStatus {
        id: me.id,
        name: me.name.clone(),
        role: Role::Starting,
        leader: None,
        term: 0,
        commit_index: 0,
        applied_index: 0,
        session: None,
        lease_valid: false,
        members: member_status,
    };
    let (status_tx, status_rx) = watch::channel(initial);
    let (ready_tx, ready_rx) = watch::channel(false);
    let driver = Driver {
        own: OwnSession::new(cfg.session_ttl, cfg.lease_margin(), now, None),
        cfg,
        me: me.id,
        name: me.name.clone(),
        peers: members
            .iter()
            .map(|m| m.id)
            .filter(|id| *id != me.id)
            .collect::<BTreeSet<_>>(),
        raw,
        table,
        transport: p.transport.clone(),
        inbox,
        inbox_tx: inbox_tx.clone(),
        net: p.incoming,
        status_tx,
        ready_tx,
        incarnations,
        peer_memory: p.peer_memory,
        pending: Proposals::default(),
        reads: Reads::new(me.id),
        leader: None::<LeaderDuty>,
        shutdown: None,
        seen_leader: (0, 0),
        stopped: false,
        on_stop: p.on_stop.take(),
        syncer,
        unsynced_upto: None,
        written_vote,
        applied_entry: applied,
        started_at: applied,
        compact_next: None,
        hooks: p.hooks.clone(),
        clock: clock.clone(),
    };
    let span = tracing::info_span!("peerlock", node = %me.name);
    let task = tokio::spawn(tracing::Instrument::instrument(driver.run(), span));
    Ok(NodeHandle::new(inbox_tx, status_rx, ready_rx, task))
}

/// Starts a node on the durable log store in `dir` (created if missing).
/// A store with no state yet is given the initial membership durably
/// before Raft starts; one with state brings its own.
pub async fn start_on_disk(p: StartParams, dir: std::path::PathBuf) -> Result<NodeHandle, Error> {
    start_with(p, move |cs| {
        let storage_err = |e: &dyn std::fmt::Display| {
            Error::Io(std::io::Error::other(format!(
                "storage in {}: {e}",
                dir.display()
            )))
        };
        let mut store = DiskStore::open(&dir).map_err(|e| storage_err(&e))?;
        let state = raft::Storage::initial_state(&store).map_err(|e| storage_err(&e))?;
        let blank = raft::Storage::last_index(&store).map_err(|e| storage_err(&e))? == 0
            && state.conf_state.voters.is_empty()
            && state.hard_state.term == 0;
        if blank {
            store.set_conf_state(&cs).map_err(|e| storage_err(&e))?;
        }
        Ok(store)
    })
    .await
}

/// Says hello until a majority of voters accepted this incarnation.
async fn hello_round(
    p: &mut StartParams,
    me: &Member,
    voters: &[NodeId],
    incarnation: u64,
) -> Result<HashMap<NodeId, u64>, Error> {
    let needed = voters.len() / 2 + 1;
    let others: Vec<NodeId> = p
        .members
        .iter()
        .map(|m| m.id)
        .filter(|id| *id != me.id)
        .collect();
    let mut accepted: BTreeSet<NodeId> = BTreeSet::new();
    if voters.contains(&me.id) {
        accepted.insert(me.id);
    }
    let mut seen: HashMap<NodeId, u64> = p.peer_memory.load();
    let deadline = Instant::now() + p.join_timeout;
    let mut resend = tokio::time::interval(Duration::from_millis(200));
    while accepted.iter().filter(|id| voters.contains(id)).count() < needed {
        tokio::select! {
            biased;
            _ = resend.tick() => {
                for id in others.iter().filter(|id| !accepted.contains(id)) {
                    p.transport.send(*id, vec![PeerMessage::Hello { incarnation }]);
                }
            }
            batch = p.incoming.recv() => {
                let Some(batch) = batch else {
                    return Err(Error::Shutdown);
                };
                if !others.contains(&batch.from) {
                    continue;
                }
                for msg in batch.msgs {
                    match msg {
                        PeerMessage::Hello { incarnation: theirs } => {
                            let ok = match seen.get(&batch.from) {
                                Some(known) => *known == theirs,
                                None => match p.peer_memory.remember(batch.from, theirs) {
                                    Ok(()) => {
                                        seen.insert(batch.from, theirs);
                                        true
                                    }
                                    Err(e) => {
                                        tracing::error!(peer = %batch.from, error = %e, "could not record a peer's incarnation; not answering");
                                        continue;
                                    }
                                },
                            };
                            p.transport.send(batch.from, vec![PeerMessage::HelloAck { accepted: ok }]);
                        }
                        PeerMessage::HelloAck { accepted: true } => {
                            accepted.insert(batch.from);
                        }
                        PeerMessage::HelloAck { accepted: false } => {
                            return Err(Error::Config(format!(
                                "peer {} remembers an earlier run of node {:?}: this node restarted without its state while the cluster kept running, and must not rejoin under the same identity (it could vote twice). Restore its data directory, or give it a new identity (a certificate with a new name) once membership changes are available",
                                batch.from, me.name.as_str()
                            )));
                        }
                        // Raft traffic before we take part is dropped; Raft retries.
                        _ => {}
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Error::NoQuorum);
            }
        }
    }
    Ok(seen)
}
