//! The simulated cluster: nodes running the real driver and state machine
//! on a [`SimNet`] and [`SimDisk`]s, each with its own clock, pause gate
//! and client tasks; and what crashing, pausing and restarting them means.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::disk::SimDisk;
use super::history::{Committed, History};
use super::net::SimNet;
use super::rng::Rng;
use super::run::Workload;
use crate::client::{NodeHandle, Role};
use crate::clock::{Clock, SuspendSwitch};
use crate::config::NodeConfig;
use crate::error::Error;
use crate::machine::{Command, Effect};
use crate::raft::{
    start, start_with, Hooks, Member, PauseGate, PeerMemory, PeerRun, RaftEvent, StartParams,
};
use crate::types::{NodeId, NodeName};

/// Peer incarnations that survive the node's crashes (its data directory).
#[derive(Clone, Default)]
pub(crate) struct DurablePeers(Arc<Mutex<HashMap<NodeId, PeerRun>>>);

impl PeerMemory for DurablePeers {
    fn load(&self) -> HashMap<NodeId, PeerRun> {
        self.0.lock().clone()
    }

    fn remember(&mut self, peer: NodeId, run: PeerRun) -> Result<(), Error> {
        self.0.lock().insert(peer, run);
        Ok(())
    }
}

/// The committed log as nodes apply it, and any disagreement between them.
#[derive(Default)]
pub(crate) struct LogRecorder {
    pub(crate) entries: BTreeMap<u64, Committed>,
    /// Two nodes applied different commands at one index.
    pub(crate) divergences: Vec<String>,
}

/// What clients and the nemesis share.
pub(crate) struct Shared {
    pub(crate) start: Instant,
    pub(crate) history: Mutex<History>,
    pub(crate) log: Mutex<LogRecorder>,
    /// Per lock, the highest token its fenced resource accepted.
    pub(crate) resources: Mutex<BTreeMap<String, u64>>,
    pub(crate) next_op: AtomicU64,
    pub(crate) stop: AtomicBool,
    /// Which node each client process holding a lock runs on.
    pub(crate) holding: Mutex<BTreeMap<u32, usize>>,
    /// Process numbers for the one-operation clients of bursts and bulk
    /// holds (above every ordinary client's).
    pub(crate) next_extra_process: AtomicU32,
    /// What the membership properties judge (issue 9).
    pub(crate) mtrace: Mutex<super::mtrace::MembershipTrace>,
}

impl Shared {
    /// A fresh process number for a one-operation client.
    pub(crate) fn extra_process(&self) -> u32 {
        self.next_extra_process.fetch_add(1, Ordering::Relaxed)
    }
}

impl Shared {
    /// True time since the run began.
    pub(crate) fn now(&self) -> Duration {
        Instant::now() - self.start
    }
}

/// The Raft id and members a node was told when it joined, as its data
/// directory records them.
pub(crate) type JoinedRecord = Arc<Mutex<Option<(NodeId, Vec<Member>)>>>;

/// One simulated node and everything of it that outlives a crash.
pub(crate) struct SimNode {
    pub(crate) member: Member,
    pub(crate) handle: Option<NodeHandle>,
    pub(crate) disk: SimDisk,
    pub(crate) peers: DurablePeers,
    /// The incarnation stored in its data directory (durable runs).
    pub(crate) incarnation: u64,
    /// Network incarnation: bumped by each (re)join.
    pub(crate) net_incarnation: u64,
    pub(crate) pause: PauseGate,
    /// Suspends the machine: its monotonic clock stands still (with the
    /// pause gate closed, its driver and clients are frozen too).
    pub(crate) suspend: SuspendSwitch,
    pub(crate) rate: f64,
    pub(crate) election_ticks: usize,
    pub(crate) first_tick: Duration,
    pub(crate) clients: Vec<JoinHandle<()>>,
    /// An in-memory node that crashed: its identity may never vote again.
    /// In membership runs also a node stopped for good (left, or the old
    /// identity of a blank restart).
    pub(crate) gone: bool,
    /// The Raft id and members this node was told when it joined (its
    /// data directory's record; a restart from disk comes back as it).
    pub(crate) joined: JoinedRecord,
    /// Its next start is blank and joins through the others as seeds.
    pub(crate) blank_next: bool,
    /// When its process stopped `Removed` (it starts again blank soon).
    pub(crate) removed_at: Option<Duration>,
    /// Whether its current run leaves the membership on a graceful stop.
    pub(crate) leave_on_shutdown: bool,
}

/// The cluster.
pub(crate) struct World {
    pub(crate) rng: Rng,
    pub(crate) net: SimNet,
    pub(crate) members: Vec<Member>,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) config: NodeConfig,
    pub(crate) durable: bool,
    pub(crate) fsync_latency: Duration,
    pub(crate) shared: Arc<Shared>,
    pub(crate) next_process: u32,
    pub(crate) clients_per_node: usize,
    /// Blank (in-memory) restarts the peers refused, as they must.
    pub(crate) blank_refused: u64,
    /// What the clients do.
    pub(crate) workload: Workload,
    /// Locks each node's bulk holder takes (large-table runs).
    pub(crate) bulk_per_node: usize,
    /// Whether the nemesis may also suspend machines and shut nodes down
    /// (off only to replay seeds recorded before those faults existed).
    pub(crate) extended_faults: bool,
    /// Membership runs: the nemesis's own random stream for membership
    /// steps (so other runs draw exactly what they drew before).
    pub(crate) membership: Option<Rng>,
    /// Every node of the run by its transport key (a blank start's seeds).
    pub(crate) seeds: Vec<Member>,
    /// Leaves, `left` marks and removals seen (see `rejoin.rs`).
    pub(crate) churn: super::rejoin::Churn,
}

impl World {
    /// Builds `voters` nodes (not started) with clocks running at `rates`.
    pub(crate) fn new(
        mut rng: Rng,
        voters: usize,
        config: NodeConfig,
        durable: bool,
        rates: Vec<f64>,
    ) -> Self {
        let net = SimNet::new(rng.fork());
        let members: Vec<Member> = (0..voters)
            .map(|i| {
                let name = format!("sim{i}");
                let id = NodeId::from_name(&name);
                Member {
                    id,
                    name: NodeName(name),
                    addr: super::MemNet::addr(id),
                }
            })
            .collect();
        // Distinct election timeouts in [e, 2e): raft-rs's own draw is not
        // seeded, and equal timeouts could split votes forever.
        let e = config.election_ticks;
        let mut ticks: Vec<usize> = (e..2 * e).collect();
        let mut nodes = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let pick = rng.below(ticks.len() as u64) as usize;
            let election_ticks = if pick < ticks.len() {
                ticks.swap_remove(pick)
            } else {
                e + i
            };
            let pause = PauseGate::default();
            nodes.push(SimNode {
                member: m.clone(),
                handle: None,
                disk: SimDisk::new(),
                peers: DurablePeers::default(),
                incarnation: rng.next_u64(),
                net_incarnation: 0,
                pause,
                suspend: SuspendSwitch::default(),
                rate: rates.get(i).copied().unwrap_or(1.0),
                election_ticks,
                first_tick: Duration::from_micros(rng.below(config.tick.as_micros() as u64)),
                clients: Vec::new(),
                gone: false,
                joined: Arc::default(),
                blank_next: false,
                removed_at: None,
                leave_on_shutdown: false,
            });
        }
        let fsync_latency = Duration::from_micros(rng.between(200, 3_000));
        Self {
            rng,
            net,
            nodes,
            config,
            durable,
            fsync_latency,
            shared: Arc::new(Shared {
                start: Instant::now(),
                history: Mutex::new(History::default()),
                log: Mutex::new(LogRecorder::default()),
                resources: Mutex::new(BTreeMap::new()),
                next_op: AtomicU64::new(1),
                stop: AtomicBool::new(false),
                holding: Mutex::new(BTreeMap::new()),
                next_extra_process: AtomicU32::new(1_000_000),
                mtrace: Mutex::default(),
            }),
            next_process: 0,
            clients_per_node: 2,
            blank_refused: 0,
            workload: Workload::Mixed,
            bulk_per_node: 0,
            extended_faults: false,
            membership: None,
            seeds: members.clone(),
            churn: Default::default(),
            members,
        }
    }

    /// The start parameters and hooks of node `i`'s next run.
    fn params(&mut self, i: usize) -> Option<(StartParams, SimDisk)> {
        let shared = self.shared.clone();
        // Membership runs: two graceful stops in three leave the
        // membership (a scale-down, or a pod without a persistent volume).
        let leave = self.membership.is_some() && self.m_below(3) < 2;
        let node = self.nodes.get_mut(i)?;
        if node.disk.is_left() {
            // The facade wipes a directory marked `left` at start.
            super::rejoin::wipe_node(node);
            self.churn.left_blank_starts += 1;
        }
        node.leave_on_shutdown = leave;
        node.net_incarnation += 1;
        let (transport, incoming) = self.net.join(node.member.id, node.net_incarnation);
        let key = node.member.id;
        let traced = shared.clone();
        let raft_observer: crate::raft::RaftObserver =
            Arc::new(move |me: NodeId, event: RaftEvent<'_>| {
                super::world_trace::record_raft(&traced, key, me, event)
            });
        let observer: crate::raft::ApplyObserver = Arc::new(
            move |node: NodeId, index: u64, cmd: Option<&Command>, effects: &[Effect]| {
                super::world_trace::record_apply(&shared, node, index, cmd, effects);
            },
        );
        let hooks = Hooks {
            clock: Clock::simulated(
                node.rate,
                Duration::from_secs(1 + i as u64),
                node.suspend.clone(),
            ),
            election_ticks: Some(node.election_ticks),
            first_tick: node.first_tick,
            pause: Some(node.pause.clone()),
            observer: Some(observer),
            fsync_in_task: self.durable.then_some(self.fsync_latency),
            raft_observer: Some(raft_observer),
            size_rule_from: None,
        };
        // Founders start from the founding list; a node that joined
        // restarts as the member it became; a blank start joins through
        // every node of the run as seeds (itself among them).
        let joined = node.joined.lock().clone();
        let (me, members, joined_id, join_only) = match joined {
            _ if node.blank_next => (key, self.seeds.clone(), None, true),
            Some((id, members)) => (id, members, Some(id), false),
            None => (key, self.members.clone(), None, false),
        };
        let record = node.joined.clone();
        let left_disk = node.disk.clone();
        let on_left: Option<crate::raft::OnLeft> = self.durable.then(|| -> crate::raft::OnLeft {
            Box::new(move || {
                left_disk.mark_left();
                Ok(())
            })
        });
        let mut config = self.config.clone();
        config.leave_on_shutdown = leave;
        let on_joined: Option<crate::raft::OnJoined> =
            self.durable.then(|| -> crate::raft::OnJoined {
                Box::new(move |id: NodeId, members: &[Member]| {
                    *record.lock() = Some((id, members.to_vec()));
                    Ok(())
                })
            });
        let params = StartParams {
            config,
            me,
            members,
            transport,
            incoming,
            join_timeout: Duration::from_secs(3),
            on_stop: None,
            // Each start of a durable node is its directory's next boot.
            incarnation: self.durable.then_some(PeerRun {
                incarnation: node.incarnation,
                boot: node.net_incarnation,
                run: node.net_incarnation,
            }),
            peer_memory: if self.durable {
                Box::new(node.peers.clone())
            } else {
                Box::new(crate::raft::MemoryPeers::default())
            },
            hooks,
            joined: joined_id,
            join_only,
            durable: self.durable,
            on_joined,
            on_left,
        };
        Some((params, node.disk.clone()))
    }

    /// Starts node `i` (its hello round included).
    pub(crate) fn spawn_start(
        &mut self,
        i: usize,
    ) -> Option<JoinHandle<Result<NodeHandle, Error>>> {
        let (params, disk) = self.params(i)?;
        let durable = self.durable;
        Some(tokio::spawn(async move {
            if durable {
                start_with(params, move |cs| Ok(disk.open(cs))).await
            } else {
                start(params).await
            }
        }))
    }

    /// Starts every node together and waits until all are ready.
    pub(crate) async fn start_all(&mut self) -> Result<(), Error> {
        let mut starts = Vec::new();
        for i in 0..self.nodes.len() {
            starts.push(self.spawn_start(i));
        }
        for (i, s) in starts.into_iter().enumerate() {
            let Some(s) = s else { continue };
            let handle = s
                .await
                .map_err(|e| Error::Config(format!("start task: {e}")))??;
            self.record_run(i, &handle);
            if let Some(n) = self.nodes.get_mut(i) {
                n.handle = Some(handle);
            }
        }
        for n in &self.nodes {
            if let Some(h) = &n.handle {
                tokio::time::timeout(Duration::from_secs(10), h.ready())
                    .await
                    .map_err(|_| Error::NoQuorum)??;
            }
        }
        for i in 0..self.nodes.len() {
            self.spawn_clients(i);
        }
        Ok(())
    }

    /// Starts node `i`'s client tasks (a new process number each).
    pub(crate) fn spawn_clients(&mut self, i: usize) {
        let Some(handle) = self.nodes.get(i).and_then(|n| n.handle.clone()) else {
            return;
        };
        for _ in 0..self.clients_per_node {
            let process = self.next_process;
            self.next_process += 1;
            let client = super::workload::Client {
                process,
                node: i,
                handle: handle.clone(),
                pause: self.nodes.get(i).map(|n| n.pause.clone()),
                shared: self.shared.clone(),
                rng: self.rng.fork(),
                workload: self.workload,
            };
            let task = tokio::spawn(client.run());
            if let Some(n) = self.nodes.get_mut(i) {
                n.clients.push(task);
            }
        }
        if self.workload == Workload::LargeTable && self.bulk_per_node > 0 {
            let bulk = super::workload::Bulk {
                node: i,
                handle,
                pause: self.nodes.get(i).map(|n| n.pause.clone()),
                shared: self.shared.clone(),
                count: self.bulk_per_node,
            };
            let task = tokio::spawn(bulk.run());
            if let Some(n) = self.nodes.get_mut(i) {
                n.clients.push(task);
            }
        }
    }

    /// Whether node `i` runs.
    pub(crate) fn is_up(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| n.handle.is_some())
    }

    /// Kills node `i`'s process: its driver and clients stop mid-step,
    /// what was in flight to it is lost, and its disk keeps only what was
    /// durable (plus a random prefix of the rest).
    pub(crate) fn crash(&mut self, i: usize) {
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        let Some(h) = n.handle.take() else {
            return;
        };
        h.abort();
        for c in n.clients.drain(..) {
            c.abort();
        }
        self.shared.holding.lock().retain(|_, node| *node != i);
        self.net.leave(n.member.id);
        let at = self.shared.now();
        self.shared.mtrace.lock().run_ended(n.member.id, at);
        n.disk.crash(&mut self.rng);
        n.disk.set_failing(false);
        n.pause.set(false);
        if !self.durable {
            n.gone = true;
        }
    }

    /// Freezes or thaws node `i` (SIGSTOP / SIGCONT).
    pub(crate) fn set_paused(&self, i: usize, paused: bool) {
        if let Some(n) = self.nodes.get(i) {
            n.pause.set(paused);
            self.trace_down(i, "paused", paused);
        }
    }

    /// The index of the node that leads in the highest term, if any.
    pub(crate) fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let s = n.handle.as_ref()?.status();
                (s.role == Role::Leader && !n.pause.is_paused()).then_some((s.term, i))
            })
            .max()
            .map(|(_, i)| i)
    }

    /// The node of some client that holds a lock now, if any.
    pub(crate) fn holder_node(&mut self) -> Option<usize> {
        let nodes: Vec<usize> = self.shared.holding.lock().values().copied().collect();
        self.rng.pick(&nodes).copied()
    }

    /// Nodes that run (not crashed).
    pub(crate) fn up(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.is_up(*i)).collect()
    }
}
