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
use crate::client::status::{MemberRole, MemberStatus, NodeStatus, Role};
use crate::config::NodeConfig;
use crate::error::Error;
use crate::machine::{LockTable, MemberTable};
use crate::storage::{DiskStore, LogStore, MemStore};
use crate::transport::{Incoming, PeerMessage, Transport};
use crate::types::{NodeId, NodeName};

mod hello;

pub(crate) use hello::answer as answer_hello;
pub use hello::{MemoryPeers, PeerMemory, PeerRun};

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
    /// Which start of which data directory this is; `None` draws a random
    /// incarnation (in-memory nodes). A durable node passes the incarnation
    /// stored in its data directory with the boot count bumped and fsynced
    /// for this start, and a random run, so that peers recognise it after a
    /// restart and refuse an older copy of its directory (see [`PeerRun`]).
    pub incarnation: Option<PeerRun>,
    /// Where peers' starts are remembered. In memory by default; a durable
    /// node keeps them on disk, so that a peer which lost its data, or came
    /// back from an older copy of it, is still recognised after this node
    /// restarts.
    pub peer_memory: Box<dyn PeerMemory>,
    /// The simulator's seams; `Hooks::default()` in production.
    pub hooks: super::Hooks,
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
            role: if voters.contains(&m.id) {
                MemberRole::Voter
            } else {
                MemberRole::Learner
            },
        })
        .collect();

    let this_run = p.incarnation.unwrap_or_else(|| {
        let incarnation = random_u64();
        PeerRun {
            incarnation,
            boot: 1,
            run: incarnation,
        }
    });
    let founding = founding_list(&member_status);
    let incarnations = hello_round(&mut p, &me, &voters, this_run, &founding).await?;

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
        // No snapshot yet: the table starts from the founding members
        // (every founder builds the same one from the list the founders
        // compared in the hello round). A store whose writes block on the
        // disk keeps its Raft state: its node is durable.
        _ => {
            let founders = members
                .iter()
                .map(|m| (m.id, m.name.clone(), m.addr, store.blocks()))
                .collect();
            let table = MemberTable::founded_with_ids(0, 0, founders)
                .map_err(|e| Error::Config(format!("the initial cluster: {e}")))?;
            (LockTable::with_members(table), 0)
        }
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
        founding,
        peer_memory: p.peer_memory,
        pending: Proposals::default(),
        reads: Reads::new(me.id),
        keepalive_batch: Vec::new(),
        keepalive_counts: (0, 0),
        inbox_peak: 0,
        decoder: Default::default(),
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
        live_asks: Default::default(),
        hooks: p.hooks.clone(),
        clock: clock.clone(),
    };
    let ready_bound = driver.cfg.session_ttl * 2;
    let span = tracing::info_span!("peerlock", node = %me.name);
    let task = tokio::spawn(tracing::Instrument::instrument(driver.run(), span));
    Ok(NodeHandle::new(
        inbox_tx,
        status_rx,
        ready_rx,
        task,
        ready_bound,
    ))
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

/// How long a founder that found its initial cluster differs from a
/// peer's keeps answering hellos before it stops with the error.
const FOUNDING_LINGER: Duration = Duration::from_secs(1);

/// How long a restart waits for the peers beyond the majority.
const RESTART_GRACE: Duration = Duration::from_secs(1);

/// Says hello until every peer accepted a first start (founders compare
/// their initial clusters in the answers), or until a majority of voters
/// accepted a restart (and every peer answered or [`RESTART_GRACE`]
/// passed).
async fn hello_round(
    p: &mut StartParams,
    me: &Member,
    voters: &[NodeId],
    this_run: PeerRun,
    founding: &[String],
) -> Result<HashMap<NodeId, PeerRun>, Error> {
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
    let mut seen: HashMap<NodeId, PeerRun> = p.peer_memory.load();
    let now = Instant::now();
    let deadline = now
        .checked_add(p.join_timeout)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
    let mut resend = tokio::time::interval(Duration::from_millis(200));
    // A restart (boot > 1) also waits, a little, for the peers beyond the
    // majority: one of them may be the only peer that saw a later start of
    // this directory, and refuse it as an older copy.
    let mut grace: Option<Instant> = None;
    // A founder whose list differs from a peer's keeps answering hellos for
    // a moment before it stops, so every other founder hears its list too
    // (and stops on the same error rather than waiting for an answer).
    let mut differs: Option<(Error, Instant)> = None;
    loop {
        if let Some((_, until)) = &differs {
            if Instant::now() >= *until {
                if let Some((e, _)) = differs.take() {
                    return Err(e);
                }
            }
        }
        let all = differs.is_none() && others.iter().all(|id| accepted.contains(id));
        // A first start founds the cluster with every listed peer: each
        // must answer once, so every founder has compared its list with
        // every other's (issue 9) before any of them takes part.
        if this_run.boot <= 1 && all {
            break;
        }
        if this_run.boot > 1
            && differs.is_none()
            && accepted.iter().filter(|id| voters.contains(id)).count() >= needed
        {
            let until = *grace.get_or_insert_with(|| Instant::now() + RESTART_GRACE);
            if all || Instant::now() >= until {
                break;
            }
        }
        let wake = grace.map_or(deadline, |g| g.min(deadline));
        let wake = differs.as_ref().map_or(wake, |(_, until)| wake.min(*until));
        tokio::select! {
            biased;
            _ = resend.tick() => {
                for id in others.iter().filter(|id| !accepted.contains(id)) {
                    p.transport.send(*id, vec![this_run.hello()]);
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
                        PeerMessage::Hello { incarnation, boot, run } => {
                            let theirs = PeerRun { incarnation, boot, run };
                            if let Some(ack) = answer_hello(p.peer_memory.as_mut(), &mut seen, batch.from, theirs, founding) {
                                p.transport.send(batch.from, vec![ack]);
                            }
                        }
                        // An answer to an earlier start of this node, delivered late.
                        PeerMessage::HelloAck { run, .. } if run != this_run.run => {}
                        PeerMessage::HelloAck { founding: theirs, .. }
                            if !theirs.is_empty() && theirs != founding =>
                        {
                            differs.get_or_insert_with(|| {
                                let e = founding_differs(batch.from, founding, &theirs);
                                (e, Instant::now() + FOUNDING_LINGER)
                            });
                        }
                        PeerMessage::HelloAck { accepted: true, .. } => {
                            accepted.insert(batch.from);
                        }
                        PeerMessage::HelloAck { accepted: false, seen_boot, .. } => {
                            return Err(refused(batch.from, me, this_run.boot, seen_boot));
                        }
                        // Raft traffic before we take part is dropped; Raft retries.
                        _ => {}
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if differs.is_some() {
                    continue;
                }
                if grace.is_none() {
                    return Err(Error::NoQuorum);
                }
                // Past the grace (or the deadline) with a majority: go on.
                grace = Some(Instant::now());
            }
        }
    }
    Ok(seen)
}

/// The initial cluster as a node says it in its hello answers: one
/// `"name (voter)"` or `"name (learner)"` per member, sorted.
fn founding_list(members: &[MemberStatus]) -> Vec<String> {
    let mut out: Vec<String> = members
        .iter()
        .map(|m| {
            let role = if m.voter { "voter" } else { "learner" };
            format!("{} ({role})", m.name)
        })
        .collect();
    out.sort();
    out
}

/// The error of a start whose initial cluster differs from a peer's.
fn founding_differs(peer: NodeId, ours: &[String], theirs: &[String]) -> Error {
    Error::Config(format!(
        "this node was started with the cluster [{}] but peer {peer} with [{}]: nodes given different peer lists (or different max_voters) could disagree on who votes, and elect two leaders in one term. Give every node the same peers(..) list and max_voters",
        ours.join(", "),
        theirs.join(", ")
    ))
}

/// The error of a start a peer refused; `seen_boot` is 0 when the peer
/// remembers another incarnation, else the later boot it saw.
fn refused(peer: NodeId, me: &Member, boot: u64, seen_boot: u64) -> Error {
    const OUT: &str = "Do not copy another directory in, nor empty this one: either is refused too, or worse. Leave this node out (the cluster goes on while a majority of voters is up); a node that lost its state cannot rejoin under its identity until membership changes are available (README, Known limits)";
    if seen_boot > 0 {
        Error::Config(format!(
            "peer {peer} has seen start {seen_boot} of node {:?}'s data directory, but this is start {boot}: the directory is an older copy of itself (restored from a backup, a disk image or a VM snapshot) and its log misses what the node acknowledged since; taking part would roll that back. Start the node on its newest directory if it still exists. {OUT}",
            me.name.as_str()
        ))
    } else {
        Error::Config(format!(
            "peer {peer} remembers an earlier run of node {:?}: this node restarted without its state while the cluster kept running, and must not rejoin under the same identity (it could vote twice). Start it on the data directory it had, if it still exists. {OUT}",
            me.name.as_str()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageError;

    /// Advice that rolls a log back under a trusted identity (restoring a
    /// directory from a copy) or makes a node vote twice (emptying it), in
    /// any error a user reads when a node cannot start.
    fn unsafe_advice(msg: &str) -> bool {
        let m = msg.to_lowercase();
        [
            "restore its data directory",
            "restore this node's data directory",
            "empty it and",
            "use an empty directory",
        ]
        .iter()
        .any(|bad| m.contains(bad))
    }

    /// Issue 8 item 9: the errors of a refused start and of a corrupt log
    /// advised restoring the data directory (from a copy, which peers must
    /// now refuse: it rolls back what the node acknowledged) or emptying it
    /// (refused too: it could vote twice). Every such message now says not
    /// to, and what works: the newest directory, or leaving the node out.
    #[test]
    fn issue_8_no_error_advises_restoring_a_copy_or_emptying_a_directory() {
        let me = Member {
            id: NodeId(2),
            name: NodeName("node-2".into()),
            addr: ([127, 0, 0, 1], 1).into(),
        };
        let corrupt = StorageError::Corrupt {
            path: "raft/0000000000000001.wal".into(),
            offset: 12,
            reason: "bad record".into(),
        };
        let msgs = [
            refused(NodeId(1), &me, 3, 0).to_string(),
            refused(NodeId(1), &me, 3, 4).to_string(),
            corrupt.to_string(),
        ];
        for m in &msgs {
            assert!(!unsafe_advice(m), "{m}");
            assert!(
                m.contains("Leave this node out") || m.contains("cluster goes on"),
                "{m}"
            );
        }
        assert!(msgs[1].contains("older copy"), "{}", msgs[1]);
        assert!(msgs[0].contains("without its state"), "{}", msgs[0]);
    }
}
