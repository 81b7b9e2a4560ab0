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
//!
//! A restart (a durable node's later boot) reads its store first: its hello
//! says where its log ends, so the leader can refuse an older copy of a
//! running node's directory (see `bootstrap/hello.rs`), and it counts the
//! voters of the configuration its log last recorded, not the founding
//! ones, which may have left for good (see `bootstrap/recorded.rs`). A
//! member that joined through seeds restarts the same way under the Raft
//! id the cluster allocated it, by which its peers remember its starts
//! (issue 9: a copy of its directory is refused like a founder's).

use crate::collect::{id_key, sort_by_u128};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raft::eraftpb::ConfState;
use raft::{RawNode, ReadOnlyOption};
use tokio::sync::{mpsc, watch};

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
use crate::storage::{LogStore, MemStore, NodeStore};
use crate::transport::{Incoming, Transport};
use crate::types::{NodeId, NodeName};

mod hello;
mod joining;
mod recorded;
mod round;

pub(crate) use hello::{answer as answer_hello, HelloFrom, LogEnd, Recorded};
pub use hello::{MemoryPeers, PeerMemory, PeerRun};
#[cfg(feature = "disk")]
pub(super) use recorded::recorded_cluster_id;
use round::{founding_list, hello_round, RoundEnd, RoundPeers};

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
    /// `Some(id)`: this node joined the cluster earlier as member `id` and
    /// restarts from its store (no founding; issue 9). Its hello round
    /// names `id`, and counts the voters its store last recorded.
    pub joined: Option<NodeId>,
    /// Never found a cluster: join the running one through `members`
    /// (the seeds that answered; issue 9).
    pub join_only: bool,
    /// Whether this node keeps its Raft state on disk (told to the cluster
    /// when it joins: durable members are preferred as voters).
    pub durable: bool,
    /// Called with the allocated id and the members once this node joined,
    /// before it sends its first Raft message: a durable node records its
    /// id there (fsynced), so that a restart comes back as the same member.
    pub on_joined: Option<OnJoined>,
    /// Called once when a graceful shutdown has left the voters (issue 9,
    /// item 7): a durable node marks its directory so the next start is
    /// blank and joins under a new id (the old one is being removed).
    pub on_left: Option<OnLeft>,
}

/// See [`StartParams::on_joined`].
pub type OnJoined = Box<dyn FnOnce(NodeId, &[Member]) -> Result<(), Error> + Send>;

/// See [`StartParams::on_left`].
pub type OnLeft = Box<dyn FnOnce() -> Result<(), Error> + Send>;

/// Starts a node with its log in memory: returns once it may take part in
/// Raft; call `NodeHandle::ready` to wait for a leader and an open session.
pub async fn start(p: StartParams) -> Result<NodeHandle, Error> {
    start_with(p, |cs| Ok(NodeStore::Memory(MemStore::new(cs)))).await
}

/// Starts a node on the log store `make_store` opens. It is given the
/// initial membership, which a store that already holds state ignores. A
/// store that holds a snapshot restores the lock table from it, and Raft
/// replays the committed entries after it.
pub async fn start_with<S, F>(p: StartParams, make_store: F) -> Result<NodeHandle, Error>
where
    S: LogStore + Send + 'static,
    F: FnOnce(ConfState) -> Result<S, Error> + Send + 'static,
{
    start_on_store::<S>(p, Box::new(make_store)).await
}

/// How [`start_with`] opens its store, boxed: the start's 20 KiB body
/// ([`start_on_store`]) is then compiled once per store type, not once
/// per caller's closure (issue 12, item 9).
type MakeStore<S> = Box<dyn FnOnce(ConfState) -> Result<S, Error> + Send>;

async fn start_on_store<S>(mut p: StartParams, make: MakeStore<S>) -> Result<NodeHandle, Error>
where
    S: LogStore + Send + 'static,
{
    p.config.validate()?;
    crate::metrics::register_all();
    let mut members = p.members.clone();
    sort_by_u128(&mut members, |m| id_key(0, m.id));
    members.dedup_by_key(|m| m.id);
    let mut me = members
        .iter()
        .find(|m| m.id == p.me)
        .cloned()
        .ok_or_else(|| Error::Config("this node is not among its own peers".into()))?;
    // Founders know the whole initial cluster; a node that joins (or
    // joined) starts with no configuration and learns everything from a
    // snapshot the leader sends it (see `raft/join.rs`).
    let mut joiner = p.joined.is_some() || p.join_only;
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
            live: None,
            durable: false,
            zone: None,
            leaving: false,
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
    let founders_cs = ConfState {
        voters: voters.iter().map(|v| v.0).collect(),
        learners: learners.iter().map(|v| v.0).collect(),
        ..Default::default()
    };
    let mut make_store = Some(make);
    let mut early: Option<S> = None;
    let mut log = LogEnd::default();
    let mut round_peers = RoundPeers::founding(&members, &voters, me.id);
    // A restart reads its store first: its hello says where its log ends
    // (the leader refuses an older copy of a running node's directory),
    // and it counts the voters it last recorded (see `recorded.rs`). So
    // does a member that joined, under the id the cluster allocated it:
    // peers remember starts by Raft id (see `hello.rs`), so a founder of
    // the same name that had another incarnation does not make it look
    // blank. One that joined but recorded no configuration yet (it never
    // received its first snapshot) has nothing to count, and acknowledged
    // nothing a copy could roll back: it restarts without a round.
    let mut hello = !joiner;
    let restart_joined = p.joined.is_some() && this_run.boot > 1;
    if (!joiner || restart_joined) && this_run.boot > 1 {
        let open = make_store
            .take()
            .ok_or_else(|| Error::Config("the store was opened twice".into()))?;
        // A member that joined starts from the snapshot it was sent: no
        // founders, no founding configuration.
        let no_founders = ConfState::default();
        let (founders, founders_conf) = if joiner {
            (&[][..], &no_founders)
        } else {
            (&members[..], &founders_cs)
        };
        let store = open(founders_conf.clone())?;
        log = recorded::log_end(&store)?;
        let counted = recorded::recorded_peers(&store, founders, founders_conf, me.id)?;
        if let Some(mut peers) = counted {
            for m in &peers.members {
                let key = NodeId::from_name(m.name.as_str());
                if !members
                    .iter()
                    .any(|f| NodeId::from_name(f.name.as_str()) == key)
                {
                    p.transport.learn_peer(key, m.name.as_str(), m.addr);
                }
            }
            peers.joined = joiner;
            hello = true;
            round_peers = peers;
        }
        early = Some(store);
    }
    let mut founding = founding_list(&member_status);
    if joiner {
        founding.clear();
    }
    let mut incarnations = p.peer_memory.load();
    if hello {
        match hello_round(&mut p, &me, &round_peers, this_run, log, &founding).await {
            Ok(seen) => incarnations = seen,
            Err(RoundEnd::Join)
                if crate::teeth::planted(crate::teeth::Bug::ReuseIdOnBlankRestart) => {}
            // A durable directory that ran before (its boot count rose)
            // told to join: the cluster no longer has this id (removed
            // while the node was away). Joining under a new id on top of
            // the old log would apply the cluster's entries onto that log
            // with an empty member table (the simulator saw a log
            // divergence; process test t54 saw every Raft message dropped),
            // so it stops as a removed member does: marked, its next start
            // is blank.
            Err(RoundEnd::Join) if p.durable && this_run.boot > 1 => {
                // Logged where `Removed` is handled (the facade's restart,
                // or the application), not here too.
                tracing::debug!(node = %me.name, id = %me.id, "the cluster removed this node's id while it was away; its directory is marked, and its next start (at once, with rejoin_when_removed) is blank and joins under a new id");
                if let Some(on_left) = p.on_left.take() {
                    on_left()?;
                }
                return Err(Error::Removed);
            }
            // A member that joined, removed while it was away: marked as
            // above (its id is told `Removed` instead of a join).
            Err(RoundEnd::Removed) => {
                tracing::debug!(node = %me.name, id = %me.id, "the cluster removed this node's id while it was away; its directory is marked, and its next start is blank");
                if let Some(on_left) = p.on_left.take() {
                    on_left()?;
                }
                return Err(Error::Removed);
            }
            Err(RoundEnd::Join) => joiner = true,
            Err(RoundEnd::Failed(e)) => return Err(e),
        }
    }
    if joiner && p.joined.is_none() {
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(p.join_timeout)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
        let durable = p.durable;
        let (id, joined) = joining::join_cluster(&mut p, &me, durable, deadline).await?;
        if let Some(record) = p.on_joined.take() {
            record(id, &joined)?;
        }
        me.id = id;
        members = joined;
    }
    let member_status = if joiner { Vec::new() } else { member_status };
    if joiner {
        founding.clear();
    }

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
    let cs = if joiner {
        ConfState::default()
    } else {
        founders_cs
    };
    let mut store = match (early, make_store) {
        (Some(store), _) => store,
        (None, Some(open)) => open(cs.clone())?,
        // `make_store` is taken only where `early` is set.
        (None, None) => return Err(Error::Config("the store was not opened".into())),
    };
    // The founding members (every founder builds the same table from the
    // list the founders compared in the hello round). A store whose writes
    // block on the disk keeps its Raft state: its node is durable.
    let founders = members
        .iter()
        .map(|m| (m.id, m.name.clone(), m.addr, store.blocks()))
        .collect();
    let founded = MemberTable::founded_with_ids(0, 0, founders)
        .map_err(|e| Error::Config(format!("the initial cluster: {e}")))?;
    let mut snapshot_bytes = 0;
    let (table, applied, conf_at_applied) = match raft::Storage::snapshot(&store, 0, me.id.0) {
        Ok(snap) if !snap.is_empty() => {
            snapshot_bytes = snap.data.len() as u64;
            let mut table = LockTable::restore(&snap.data).map_err(|e| {
                Error::Config(format!(
                    "the stored snapshot does not decode ({e}); the data directory is damaged"
                ))
            })?;
            // A snapshot written before member tables (version 1).
            if !joiner {
                table.adopt_members(founded);
            }
            let conf = snap.get_metadata().get_conf_state().clone();
            (table, snap.get_metadata().index, conf)
        }
        // No snapshot yet: a joiner waits for one; a founder's table
        // starts from the founding members.
        _ if joiner => (LockTable::new(), 0, cs),
        _ => (LockTable::with_members(founded), 0, cs),
    };
    // raft-rs replays the committed entries after `applied` onto the
    // store's configuration, which the driver persists as each change
    // applies: the latest one, not the one in force at `applied`. A change
    // replayed onto the configuration it already produced gives another
    // (an enter-joint replayed after its leave-joint makes a joint
    // configuration with equal halves, and a leave-joint replayed inside a
    // later joint configuration leaves that one), so a restarted node
    // would apply other configurations than its peers at the same indexes
    // (found by the simulator's M3). Start from the configuration in force
    // at `applied`: the snapshot's, or the founders' before any snapshot.
    store
        .set_conf_state(&conf_at_applied)
        .map_err(|e| Error::Config(format!("could not reset the stored configuration: {e}")))?;
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
    let replayed_upto = raw.raft.raft_log.committed;

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
        key: NodeId::from_name(me.name.as_str()),
        addr: me.addr,
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
        reads: Reads::new(me.id, replayed_upto),
        watches: Default::default(),
        keepalive_batch: Vec::new(),
        keepalive_counts: (0, 0),
        inbox_peak: 0,
        decoder: Default::default(),
        leader: None::<LeaderDuty>,
        shutdown: None,
        seen_leader: (0, 0),
        stopped: false,
        on_stop: p.on_stop.take(),
        on_left: p.on_left.take(),
        told: Default::default(),
        stop_error: None,
        syncer,
        unsynced_upto: None,
        written_vote,
        applied_entry: applied,
        started_at: applied,
        compaction: super::compaction::Compaction::new(snapshot_bytes),
        live_asks: Default::default(),
        status_pace: Default::default(),
        join_waiters: Default::default(),
        // Extended, not collected: see `crate::collect` (issue 12, item 9).
        directory: {
            let mut d = std::collections::BTreeMap::new();
            d.extend(
                members
                    .iter()
                    .map(|m| (m.id, NodeId::from_name(m.name.as_str()))),
            );
            d
        },
        hooks: p.hooks.clone(),
        clock: clock.clone(),
    };
    // The transport learns every member the restored table knows (members
    // that joined after the first start are in no file).
    driver.teach_transport();
    let ready_bound = driver.cfg.session_ttl * 2;
    let span = tracing::info_span!("peerlock", node = %me.name);
    let task = crate::task::spawn(tracing::Instrument::instrument(driver.run(), span));
    Ok(NodeHandle::new(
        inbox_tx,
        status_rx,
        ready_rx,
        task,
        ready_bound,
    ))
}
