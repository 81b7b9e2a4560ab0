//! Driver tests over the in-memory network: several nodes in one process,
//! real time with short TTLs, every wait bounded.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;

use super::{start, Member, StartParams};
use crate::client::NodeHandle;
use crate::config::NodeConfig;
use crate::error::Error;
use crate::sim::MemNet;
use crate::types::{NodeId, NodeName};

pub(super) const WAIT: Duration = Duration::from_secs(10);

pub(super) fn config() -> NodeConfig {
    NodeConfig {
        session_ttl: Duration::from_millis(1000),
        tick: Duration::from_millis(10),
        ..NodeConfig::default()
    }
}

pub(super) fn params(net: &MemNet, m: &Member, members: &[Member], cfg: NodeConfig) -> StartParams {
    let (transport, incoming) = net.join(m.id);
    StartParams {
        config: cfg,
        me: m.id,
        members: members.to_vec(),
        transport: transport as Arc<dyn crate::transport::Transport>,
        incoming,
        join_timeout: WAIT,
        on_stop: None,
        incarnation: None,
        peer_memory: Box::new(super::MemoryPeers::default()),
        hooks: super::Hooks::default(),
        joined: None,
        join_only: false,
        durable: false,
        on_joined: None,
        on_left: None,
    }
}

pub(super) fn members(n: usize, prefix: &str) -> Vec<Member> {
    (0..n)
        .map(|i| {
            let name = format!("{prefix}{i}");
            let id = NodeId::from_name(&name);
            Member {
                id,
                name: NodeName(name),
                addr: MemNet::addr(id),
            }
        })
        .collect()
}

/// A cluster for the nemesis: short TTL, fast ticks.
pub(super) async fn cluster_for_nemesis(n: usize) -> (MemNet, Vec<NodeId>, Vec<NodeHandle>) {
    cluster(n).await
}

async fn cluster(n: usize) -> (MemNet, Vec<NodeId>, Vec<NodeHandle>) {
    cluster_with(n, config()).await
}

pub(super) async fn cluster_with(
    n: usize,
    cfg: NodeConfig,
) -> (MemNet, Vec<NodeId>, Vec<NodeHandle>) {
    let net = MemNet::new();
    let members = members(n, "n");
    let mut starts = Vec::new();
    for m in &members {
        let params = params(&net, m, &members, cfg.clone());
        starts.push(tokio::spawn(start(params)));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().unwrap());
    }
    for n in &nodes {
        timeout(WAIT, n.ready()).await.unwrap().unwrap();
    }
    (net, members.iter().map(|m| m.id).collect(), nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_unlock_and_try_lock_across_nodes() {
    let (_net, _ids, nodes) = cluster(3).await;
    let g = timeout(WAIT, nodes[1].lock("a")).await.unwrap().unwrap();
    assert!(g.is_held());
    assert!(timeout(WAIT, nodes[2].try_lock("a"))
        .await
        .unwrap()
        .unwrap()
        .is_none());
    let info = timeout(WAIT, nodes[0].holder("a"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(info.token, g.token());
    assert_eq!(info.holder.as_str(), "n1");
    let t1 = g.token();
    timeout(WAIT, g.unlock()).await.unwrap().unwrap();
    assert!(timeout(WAIT, nodes[0].holder("a"))
        .await
        .unwrap()
        .unwrap()
        .is_none());
    let g2 = timeout(WAIT, nodes[2].try_lock("a"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(g2.token() > t1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiter_is_granted_when_holder_drops_and_timeout_leaves_queue() {
    let (_net, _ids, nodes) = cluster(3).await;
    let g = timeout(WAIT, nodes[0].lock("q")).await.unwrap().unwrap();
    let err = nodes[1]
        .lock_timeout("q", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout));
    let waiter = {
        let n = nodes[2].clone();
        tokio::spawn(async move { n.lock("q").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = g.token();
    drop(g);
    let g2 = timeout(WAIT, waiter).await.unwrap().unwrap().unwrap();
    assert!(g2.token() > t);
    let info = timeout(WAIT, nodes[1].holder("q"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(info.waiters, 0, "the timed-out waiter left the queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_holder_session_expires_and_waiter_gets_the_lock() {
    let (net, ids, nodes) = cluster(3).await;
    // Hold on a follower, so the crash also exercises the leader's expiry.
    let leader = nodes[0].status().leader.unwrap();
    let holder_ix = ids.iter().position(|id| *id != leader).unwrap();
    let waiter_ix = (0..3).find(|i| *i != holder_ix).unwrap();
    let g = timeout(WAIT, nodes[holder_ix].lock("c"))
        .await
        .unwrap()
        .unwrap();
    let token = g.token();
    net.crash(ids[holder_ix]);
    let g2 = timeout(WAIT, nodes[waiter_ix].lock("c"))
        .await
        .unwrap()
        .unwrap();
    assert!(g2.token() > token);
    // The cut-off holder's own view turned false before the grant elsewhere.
    assert!(!g.is_held());
    nodes[holder_ix].kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_holder_sees_lost_within_ttl() {
    let (net, ids, nodes) = cluster(3).await;
    let g = timeout(WAIT, nodes[2].lock("iso")).await.unwrap().unwrap();
    net.isolate(ids[2]);
    timeout(Duration::from_secs(3), g.lost())
        .await
        .expect("lost() within the TTL");
    assert!(!g.is_held());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_locks_for_waiters() {
    let (_net, _ids, nodes) = cluster(3).await;
    let g = timeout(WAIT, nodes[0].lock("s")).await.unwrap().unwrap();
    let waiter = {
        let n = nodes[1].clone();
        tokio::spawn(async move { n.lock("s").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    timeout(WAIT, nodes[0].shutdown()).await.unwrap().unwrap();
    assert!(!g.is_held());
    let g2 = timeout(WAIT, waiter).await.unwrap().unwrap().unwrap();
    assert!(g2.token() > g.token());
    assert!(matches!(nodes[0].lock("s").await, Err(Error::Shutdown)));
}

/// A follower cut off while the log was compacted is caught up by snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_is_caught_up_by_snapshot_after_compaction() {
    let cfg = NodeConfig {
        session_ttl: Duration::from_secs(5),
        compact_after: 40,
        ..config()
    };
    let (net, ids, nodes) = cluster_with(3, cfg).await;
    let leader = nodes[0].status().leader.unwrap();
    let lagging = ids.iter().position(|id| *id != leader).unwrap();
    let worker = (0..3).find(|i| *i != lagging).unwrap();
    net.isolate(ids[lagging]);
    let mut last = None;
    for i in 0..150 {
        let g = timeout(WAIT, nodes[worker].lock(&format!("k{}", i % 5)))
            .await
            .unwrap()
            .unwrap();
        last = Some(g.token());
        timeout(WAIT, g.unlock()).await.unwrap().unwrap();
    }
    let held = timeout(WAIT, nodes[worker].lock("kept"))
        .await
        .unwrap()
        .unwrap();
    net.heal();
    // The lagging node answers a linearizable read with the current holder.
    let info = timeout(WAIT, async {
        loop {
            if let Ok(Some(info)) = nodes[lagging].holder("kept").await {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(info.token, held.token());
    assert!(held.token() > last.unwrap());
    // And it takes part again: it can lock.
    let g = timeout(WAIT, nodes[lagging].lock("after"))
        .await
        .unwrap()
        .unwrap();
    assert!(g.token() > held.token());
}

/// DESIGN "The holder's view": a deposed leader, cut off with its minority,
/// cannot extend anyone's lease, not even its own node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_cannot_extend_its_own_lease() {
    let (net, ids, nodes) = cluster(3).await;
    let leader = nodes[0].status().leader.unwrap();
    let li = ids.iter().position(|id| *id == leader).unwrap();
    let g = timeout(WAIT, nodes[li].lock("own")).await.unwrap().unwrap();
    net.isolate(leader);
    let t0 = tokio::time::Instant::now();
    timeout(Duration::from_secs(3), g.lost())
        .await
        .expect("lost() within the TTL");
    assert!(
        t0.elapsed() <= config().session_ttl,
        "lost after {:?}",
        t0.elapsed()
    );
    // The majority elects a new leader and hands the lock on after the TTL.
    let other = (0..3).find(|i| *i != li).unwrap();
    let g2 = timeout(WAIT, nodes[other].lock("own"))
        .await
        .unwrap()
        .unwrap();
    assert!(g2.token() > g.token());
    assert!(!g.is_held());
}

/// A log store that starts failing on demand, like a disk that broke.
struct Flaky {
    inner: crate::storage::MemStore,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl Flaky {
    fn broken(&self) -> raft::Result<()> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            Err(raft::Error::Io(std::io::Error::other(
                "injected disk failure",
            )))
        } else {
            Ok(())
        }
    }
}

impl raft::Storage for Flaky {
    fn initial_state(&self) -> raft::Result<raft::RaftState> {
        self.inner.initial_state()
    }
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: raft::GetEntriesContext,
    ) -> raft::Result<Vec<raft::eraftpb::Entry>> {
        self.inner.entries(low, high, max_size, context)
    }
    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.inner.term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.inner.first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.inner.last_index()
    }
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<raft::eraftpb::Snapshot> {
        self.inner.snapshot(request_index, to)
    }
}

impl crate::storage::LogStore for Flaky {
    fn append(&mut self, entries: &[raft::eraftpb::Entry]) -> raft::Result<()> {
        self.broken()?;
        self.inner.append(entries)
    }
    fn set_hard_state(&mut self, hs: &raft::eraftpb::HardState) -> raft::Result<()> {
        self.broken()?;
        self.inner.set_hard_state(hs)
    }
    fn set_commit(&mut self, commit: u64) -> raft::Result<()> {
        self.broken()?;
        self.inner.set_commit(commit)
    }
    fn set_conf_state(&mut self, cs: &raft::eraftpb::ConfState) -> raft::Result<()> {
        self.broken()?;
        self.inner.set_conf_state(cs)
    }
    fn apply_snapshot(&mut self, snapshot: raft::eraftpb::Snapshot) -> raft::Result<()> {
        self.broken()?;
        self.inner.apply_snapshot(snapshot)
    }
    fn compact(&mut self, snapshot: raft::eraftpb::Snapshot) -> raft::Result<()> {
        self.broken()?;
        self.inner.compact(snapshot)
    }
}

/// Issue 4: a storage write that fails stops the node, and every later
/// call returns an error, rather than acknowledging anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_storage_write_stops_the_node_and_every_later_call_errs() {
    let net = MemNet::new();
    let members = members(3, "f");
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut starts = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let params = params(&net, m, &members, config());
        let fail = (i == 0).then(|| fail.clone());
        starts.push(tokio::spawn(async move {
            match fail {
                Some(fail) => {
                    super::start_with(params, move |cs| {
                        Ok(Flaky {
                            inner: crate::storage::MemStore::new(cs),
                            fail,
                        })
                    })
                    .await
                }
                None => start(params).await,
            }
        }));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().unwrap());
    }
    for n in &nodes {
        timeout(WAIT, n.ready()).await.unwrap().unwrap();
    }
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    // The broken node's next write fails: it stops, and says so.
    let r = timeout(WAIT, nodes[0].lock("x")).await.unwrap();
    assert!(matches!(r, Err(Error::Shutdown | Error::NoQuorum)), "{r:?}");
    assert!(matches!(nodes[0].lock("y").await, Err(Error::Shutdown)));
    assert!(matches!(nodes[0].holder("y").await, Err(Error::Shutdown)));
    assert_eq!(nodes[0].status().role, crate::client::Role::Stopped);
    // The others go on.
    let g = timeout(WAIT, nodes[1].lock("x")).await.unwrap().unwrap();
    assert!(g.is_held());
}

/// The asynchronous fsync path (durable store): contention from every
/// node keeps tokens rising and loses no update.
#[cfg(feature = "disk")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_nodes_with_the_fsync_thread_serialise_contention() {
    let net = MemNet::new();
    let members = members(3, "d");
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut starts = Vec::new();
    for (m, dir) in members.iter().zip(&dirs) {
        let params = params(&net, m, &members, config());
        starts.push(tokio::spawn(super::start_on_disk(
            params,
            dir.path().to_owned(),
        )));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().unwrap());
    }
    for n in &nodes {
        timeout(WAIT, n.ready()).await.unwrap().unwrap();
    }
    let counter = Arc::new(parking_lot::Mutex::new((0u64, 0u64)));
    let mut tasks = Vec::new();
    for t in 0..6 {
        let node = nodes[t % 3].clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..15 {
                let g = node.lock("c").await.unwrap();
                {
                    let mut c = counter.lock();
                    assert!(g.token().get() > c.1, "token did not rise");
                    c.1 = g.token().get();
                    c.0 += 1;
                }
                g.unlock().await.unwrap();
            }
        }));
    }
    for t in tasks {
        timeout(WAIT, t).await.unwrap().unwrap();
    }
    assert_eq!(counter.lock().0, 90);
}
