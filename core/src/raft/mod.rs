//! The Raft driver: the one task that owns raft-rs's `RawNode`.
//!
//! Everything that touches Raft goes through this task's inbox, so nothing
//! else ever holds the `RawNode` or the lock table. The loop has one shape:
//!
//! ```text
//! loop {
//!     select! { biased; inbox.recv_many(..), network.recv_many(..), tick }
//!     if raw.has_ready() { ready::handle(..) }     // raft-rs's documented order
//!     answer reads whose index is applied; publish status
//! }
//! ```
//!
//! Inputs are batched (`recv_many`): a burst of proposals is one Ready, append and send.

mod answer;
mod bootstrap;
mod compaction;
mod entry;
mod hello_answer;
mod hooks;
mod input;
mod join;
mod leader;
mod locks_query;
mod logger;
mod members_query;
mod outbox;
mod own;
mod proposals;
mod reads;
mod ready;
mod reconcile;
mod removed;
mod shutdown;
mod snapshot_decode;
mod syncer;
mod tick;
mod watches;

#[cfg(test)]
mod claims_tests;
#[cfg(test)]
mod compact_tests;
#[cfg(test)]
mod issue8_tests;
#[cfg(test)]
mod nemesis_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod watch_tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::Message;
use raft::RawNode;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::client::status::{NodeStatus, Role};
use crate::clock::Clock;
use crate::config::NodeConfig;
use crate::machine::LockTable;
use crate::storage::LogStore;
use crate::transport::{Incoming, PeerMessage, Transport};
use crate::types::{NodeId, NodeName};

pub use bootstrap::{
    start_with, Member, MemoryPeers, OnJoined, OnLeft, PeerMemory, PeerRun, StartParams,
};
pub use entry::{start, StartFuture};
#[cfg(feature = "disk")]
pub use entry::{start_on_disk, start_on_opened, OpenedLog};
pub use hooks::{ApplyObserver, Hooks, PauseGate, RaftEvent, RaftObserver};
#[cfg(any(test, feature = "sim"))]
pub use input::Inspection;
pub(crate) use input::{deliver, Input};
pub use logger::TIMELINE;
pub use own::random_u64;
#[cfg(any(test, feature = "sim"))]
pub use own::seed_thread_random;
pub(crate) use proposals::AcquireReply;
pub use watches::HolderView;

use leader::LeaderDuty;
use own::OwnSession;
use proposals::Proposals;
use reads::Reads;
use shutdown::Shutdown;

/// The driver's whole state. Owned by its task.
pub(crate) struct Driver<S: LogStore + Send + 'static> {
    cfg: NodeConfig,
    /// This node's Raft id.
    me: NodeId,
    /// This node's transport key (see `join.rs`: a founder's is its id).
    key: NodeId,
    name: NodeName,
    raw: RawNode<S>,
    table: LockTable,
    transport: Arc<dyn Transport>,
    inbox: mpsc::UnboundedReceiver<Input>,
    inbox_tx: mpsc::UnboundedSender<Input>,
    net: mpsc::Receiver<Incoming>,
    status_tx: watch::Sender<NodeStatus>,
    ready_tx: watch::Sender<bool>,
    incarnations: HashMap<NodeId, bootstrap::PeerRun>,
    /// The initial cluster this node was started with, as its hello
    /// answers say it (see `PeerMessage::HelloAck::founding`).
    founding: Vec<String>,
    peer_memory: Box<dyn bootstrap::PeerMemory>,
    own: OwnSession,
    pending: Proposals,
    reads: Reads,
    /// Watches on who holds a name (`watch_leader`, issue 11).
    watches: watches::Watches,
    /// Keepalives that wait for the leader's next batched quorum round.
    keepalive_batch: Vec<tick::KeepAliveReq>,
    /// Keepalives this node heard as leader, and the quorum rounds it ran
    /// for them (they share rounds; issue 8, item 10).
    keepalive_counts: (u64, u64),
    /// The most inputs seen waiting in the inbox at once.
    inbox_peak: usize,
    /// Large received snapshots decoded off this task.
    decoder: snapshot_decode::SnapshotDecoder,
    leader: Option<LeaderDuty>,
    shutdown: Option<Shutdown>,
    /// The leader id and term seen after the last Ready, to notice changes.
    seen_leader: (u64, u64),
    stopped: bool,
    on_stop: Option<Box<dyn FnOnce() + Send>>,
    /// Where this node is reached now (its member record follows it).
    addr: std::net::SocketAddr,
    /// See `StartParams::on_left`.
    on_left: Option<OnLeft>,
    /// Removed peers told so lately (see `removed.rs`).
    told: removed::Told,
    /// What calls fail with once stopped, if not `Shutdown`: `Removed`
    /// after this node was told it is no longer a member.
    stop_error: Option<fn() -> crate::error::Error>,
    /// The fsync thread, for a store whose writes block on the disk.
    syncer: Option<syncer::Syncer>,
    /// The newest Ready handed to the fsync thread and not yet reported durable.
    unsynced_upto: Option<u64>,
    /// The term and vote last written to the log store.
    written_vote: (u64, u64),
    /// The last entry applied to the table (or the snapshot it was restored from).
    applied_entry: u64,
    /// The applied index this run started from.
    started_at: u64,
    /// When to compact, and the snapshot waiting for its tail (`compaction.rs`).
    compaction: compaction::Compaction,
    /// `members()` calls waiting for the leader's liveness answer.
    live_asks: members_query::LiveAsks,
    /// When `status().members` was last rebuilt, and whether it is behind.
    status_pace: members_query::StatusPace,
    /// Joiners waiting for their `Join` to apply here.
    join_waiters: join::JoinWaiters,
    /// The members this node started with, Raft id → transport key: routes
    /// a joiner's messages until its snapshot brings the member table.
    directory: BTreeMap<NodeId, NodeId>,
    /// The simulator's seams (inert in production).
    hooks: Hooks,
    /// This node's clock (`hooks.clock`).
    clock: Clock,
}

impl<S: LogStore + Send + 'static> Driver<S> {
    /// Runs until shutdown, a kill, or a fatal error.
    pub(crate) async fn run(mut self) {
        let period = self.clock.true_duration(self.cfg.tick);
        let mut tick = tokio::time::interval_at(Instant::now() + self.hooks.first_tick, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut inputs = Vec::with_capacity(256);
        let mut incoming = Vec::with_capacity(64);
        while !self.stopped {
            self.hooks.wait_unpaused().await;
            tokio::select! {
                biased;
                // Frozen from the moment the gate closes (the simulator's pause).
                _ = self.hooks.until_paused() => continue,
                n = self.inbox.recv_many(&mut inputs, 512) => {
                    if n == 0 {
                        break;
                    }
                    self.inbox_peak = self.inbox_peak.max(n + self.inbox.len());
                    let now = self.clock.now();
                    for input in inputs.drain(..) {
                        self.on_input(input, now);
                    }
                }
                n = self.net.recv_many(&mut incoming, 128) => {
                    if n == 0 {
                        tracing::warn!(node = %self.name, "transport closed; stopping");
                        break;
                    }
                    let now = self.clock.now();
                    for batch in incoming.drain(..) {
                        self.on_incoming(batch, now);
                    }
                }
                Some(done) = synced(&mut self.syncer) => self.on_synced(done),
                _ = tick.tick() => {
                    self.raw.tick();
                    self.on_tick(self.clock.now());
                }
            }
            if self.stopped {
                break;
            }
            // Take in whatever else is already waiting, so one Ready (and,
            // on disk, one fsync) covers as much as possible.
            self.drain_waiting();
            if self.stopped {
                break;
            }
            let now = self.clock.now();
            self.flush_keepalives(now);
            self.handle_ready();
            let now = self.clock.now();
            self.after_ready(now);
            // A leader that just committed in its term serves the
            // keepalives it held back, in this same pass.
            if self.flush_keepalives(now) {
                self.handle_ready();
                self.after_ready(self.clock.now());
            }
            self.publish_status(now);
        }
        self.finish();
    }

    /// The disk caught up with the Readies up to `done.number`: tell Raft,
    /// and send the messages that waited for it.
    fn on_synced(&mut self, done: syncer::Done) {
        if let Some(e) = done.error {
            tracing::error!(node = %self.name, error = %e, "fsync of the raft log failed; stopping the node");
            self.stopped = true;
            return;
        }
        tracing::trace!(target: TIMELINE, node = %self.name, ready = done.number, msgs = done.msgs.len(), "persisted");
        self.raw.on_persist_ready(done.number);
        self.advance_applied();
        if self.unsynced_upto.is_some_and(|n| n <= done.number) {
            self.unsynced_upto = None;
        }
        self.send_raft(done.msgs);
    }

    /// Handles inputs and messages that arrived meanwhile, without waiting.
    fn drain_waiting(&mut self) {
        let now = self.clock.now();
        for _ in 0..1024 {
            match self.net.try_recv() {
                Ok(batch) => self.on_incoming(batch, now),
                Err(_) => break,
            }
        }
        for _ in 0..1024 {
            match self.inbox.try_recv() {
                Ok(input) => self.on_input(input, now),
                Err(_) => break,
            }
        }
    }

    /// Handles one batch of messages from an authenticated peer.
    fn on_incoming(&mut self, batch: Incoming, now: Instant) {
        let from = batch.from;
        for msg in batch.msgs {
            match msg {
                PeerMessage::Raft(bytes) => self.step_raft(from, &bytes, now),
                PeerMessage::KeepAlive { session, seq } => {
                    self.on_keepalive(from, session, seq, now)
                }
                PeerMessage::KeepAliveAck {
                    session,
                    seq,
                    alive,
                } => self.on_keepalive_ack(session, seq, alive, now),
                // A starting peer (see `hello_answer.rs`).
                PeerMessage::Hello {
                    incarnation,
                    boot,
                    run,
                    id,
                    last_index,
                    term,
                } => self.on_hello(bootstrap::HelloFrom {
                    from,
                    id: NodeId(id),
                    run: bootstrap::PeerRun {
                        incarnation,
                        boot,
                        run,
                    },
                    log: bootstrap::LogEnd { last_index, term },
                }),
                PeerMessage::HelloAck { .. } => {}
                PeerMessage::LiveAsk { seq } => self.on_live_ask(from, seq, now),
                PeerMessage::LiveTell { seq, live } => self.on_live_tell(seq, live),
                PeerMessage::JoinAsk {
                    token,
                    name,
                    addr,
                    durable,
                    zone,
                } => self.on_join_ask(from, token, name, addr, durable, zone),
                // A starting node looks for a cluster (issue 9): this one.
                PeerMessage::Forming { .. } => {
                    let cluster_id = self.table.members().cluster_id();
                    self.transport
                        .send(from, vec![PeerMessage::InCluster { cluster_id }]);
                }
                // Answers meant for a joiner, or for a start (not this driver).
                PeerMessage::Joined { .. }
                | PeerMessage::JoinRefused { .. }
                | PeerMessage::JoinInstead { .. }
                | PeerMessage::InCluster { .. } => {}
                PeerMessage::Removed { cluster_id, id } => self.on_removed(from, cluster_id, id),
            }
        }
    }

    /// Steps one Raft message from `from`. `now` is the batch's reading,
    /// taken once for every message of it (issue 10: two clock readings
    /// per message were a share of the 5-7 % of CPU in `clock_gettime`):
    /// here it only rate-limits telling a removed member, and dates a
    /// follower's answer for membership liveness (`reconcile.rs`: windows
    /// of seconds). Lease judgements read the clock afresh.
    fn step_raft(&mut self, from: NodeId, bytes: &[u8], now: Instant) {
        let mut msg = Message::default();
        if let Err(e) = msg.merge_from_bytes(bytes) {
            tracing::warn!(node = %self.name, peer = %from, error = %e, "undecodable raft message; dropped");
            return;
        }
        tracing::trace!(target: TIMELINE, node = %self.name, from = msg.from, kind = ?msg.get_msg_type(), index = msg.index, entries = msg.entries.len(), "recv");
        if msg.to != self.me.0 {
            // Routine (a blank restart gets its old id's traffic until that id is removed).
            tracing::debug!(node = %self.name, peer = %from, to = msg.to, "raft message for another node; dropped");
            return;
        }
        if self.sent_by_removed(from, NodeId(msg.from), now) {
            return;
        }
        if msg.get_msg_type() == raft::eraftpb::MessageType::MsgUnreachable {
            // A learner's membership probe (`removed.rs`): answered above
            // if its sender was removed, and otherwise nothing to step.
            return;
        }
        if self.key_of(NodeId(msg.from)) != Some(from) {
            tracing::warn!(node = %self.name, peer = %from, claimed = msg.from, "raft message claims another sender; dropped");
            return;
        }
        if matches!(
            msg.get_msg_type(),
            raft::eraftpb::MessageType::MsgAppendResponse
                | raft::eraftpb::MessageType::MsgHeartbeatResponse
        ) && msg.term == self.raw.raft.term
        {
            if let Some(duty) = self.leader.as_mut() {
                duty.watch.heard(NodeId(msg.from), now);
            }
        }
        if msg.get_msg_type() == raft::eraftpb::MessageType::MsgRequestVoteResponse && !msg.reject {
            let (from, term) = (msg.from, msg.term);
            self.hooks
                .raft_event(self.me, hooks::RaftEvent::VoteGranted { from, term });
        }
        if !self.snapshot_for_joiner(&msg) {
            return;
        }
        let Some(msg) = self.hold_large_snapshot(msg) else {
            return;
        };
        let sender = msg.from;
        if let Err(e) = self.raw.step(msg) {
            tracing::debug!(node = %self.name, peer = %from, error = %e, "raft refused a message");
        }
        self.heard_from(sender, now);
    }

    fn role(&self) -> Role {
        if self.stop_error.is_some() {
            return Role::Removed;
        }
        if self.stopped {
            return Role::Stopped;
        }
        match self.raw.raft.state {
            raft::StateRole::Leader => Role::Leader,
            raft::StateRole::Candidate => Role::Candidate,
            raft::StateRole::PreCandidate => Role::PreCandidate,
            raft::StateRole::Follower => Role::Follower,
        }
    }

    fn is_leader(&self) -> bool {
        self.raw.raft.state == raft::StateRole::Leader
    }

    fn leader_id(&self) -> Option<NodeId> {
        match self.raw.raft.leader_id {
            0 => None,
            id => Some(NodeId(id)),
        }
    }

    fn publish_status(&mut self, now: Instant) {
        let role = self.role();
        let leader = self.leader_id();
        let term = self.raw.raft.term;
        let commit_index = self.raw.raft.raft_log.committed;
        let applied_index = self.raw.raft.raft_log.applied;
        let session = self.own.opened.then_some(self.own.id);
        let lease_valid = self.own.lease_valid(now);
        // Compare first, so the hot path allocates nothing.
        self.status_tx.send_if_modified(|s| {
            let same = s.role == role
                && s.leader == leader
                && s.term == term
                && s.commit_index == commit_index
                && s.applied_index == applied_index
                && s.session == session
                && s.lease_valid == lease_valid;
            if same {
                return false;
            }
            crate::metrics::status(leader.is_some(), term, commit_index);
            s.role = role;
            s.leader = leader;
            s.term = term;
            s.commit_index = commit_index;
            s.applied_index = applied_index;
            s.session = session;
            s.lease_valid = lease_valid;
            true
        });
        let ready = !self.stopped
            && self.shutdown.is_none()
            && self.own.lease_valid(now)
            && self.leader_id().is_some();
        self.ready_tx.send_if_modified(|r| {
            let changed = *r != ready;
            *r = ready;
            changed
        });
    }
}

/// The next fsync completion, or never when there is no fsync thread.
async fn synced(syncer: &mut Option<syncer::Syncer>) -> Option<syncer::Done> {
    match syncer {
        Some(s) => s.done.recv().await,
        None => std::future::pending().await,
    }
}
