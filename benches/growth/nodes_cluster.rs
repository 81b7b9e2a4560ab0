//! A peerlock cluster inside the benchmark process, for the `clients`,
//! `nodes` and `sessions` curves: every node binds 127.0.0.1 and talks real
//! QUIC with mutual TLS, through the public API only (`peerlock::Node`).
//!
//! As in `benches/scale.rs`, nodes that must be measured one by one run
//! on a tokio runtime of their own (everything a node spawns inherits the
//! runtime it was started on), so their CPU can be told apart; the
//! clients run on the caller's runtime. Nodes beyond those share one
//! runtime (the `sessions` curve's hundreds of learners: a runtime each
//! would be a thousand thread pools on 2 cores).
//!
//! The first `founders` nodes found the cluster together (`peers`, with
//! `max_voters(5)`: up to 5 vote, the rest start as learners); any further
//! node joins it through `seeds` as a learner, as a new instance of an
//! application would (issue 9).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use peerlock::certs::ClusterCa;
use peerlock::{MemberRole, MembershipConfig, Node, NodeStatus};

use crate::nodes_probe::NodeRuntime;

/// How a cluster is laid out.
pub struct Shape {
    /// Nodes in all.
    pub n: usize,
    /// How many of them found the cluster with `peers` (the rest join).
    pub founders: usize,
    /// How many (the first ones) get a runtime of their own.
    pub own_runtimes: usize,
    /// Worker threads per runtime.
    pub threads: usize,
    /// Data directories under this path (durable), or in-memory.
    pub data: Option<PathBuf>,
    /// How long forming may take before the benchmark gives up.
    pub form_timeout: Duration,
    /// The membership's `dead_after`, when not the default (20 s).
    pub dead_after: Option<Duration>,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// The runtimes of the first `own_runtimes` nodes, in node order.
    pub rts: Vec<NodeRuntime>,
    shared: Option<NodeRuntime>,
}

fn builder(ca: &ClusterCa, i: usize, shape: &Shape) -> peerlock::NodeBuilder {
    let tls = ca
        .issue_node(&format!("g-{i}"), &["127.0.0.1"])
        .expect("cert");
    let mut b = Node::builder().tls(tls).max_voters(5);
    if let Some(dead_after) = shape.dead_after {
        b = b.membership(MembershipConfig {
            dead_after,
            ..MembershipConfig::default()
        });
    }
    let data = &shape.data;
    match data {
        Some(dir) => b.data_dir(dir.join(format!("node-{i}"))),
        None => b.in_memory(),
    }
}

impl Cluster {
    /// Starts `shape`; `Err` says why it did not form in time (the nodes
    /// started are killed and their runtimes dropped without blocking).
    pub async fn start(shape: &Shape) -> Result<Cluster, String> {
        let rts: Vec<NodeRuntime> = (0..shape.own_runtimes.min(shape.n))
            .map(|i| NodeRuntime::new(&format!("node-{i}"), shape.threads))
            .collect();
        let shared = (shape.n > rts.len()).then(|| NodeRuntime::new("nodes", shape.threads));
        let mut cluster = Cluster {
            nodes: Vec::new(),
            rts,
            shared,
        };
        match cluster.fill(shape).await {
            Ok(()) => Ok(cluster),
            Err(e) => {
                cluster.stop().await;
                Err(e)
            }
        }
    }

    /// The runtime node `i` runs on.
    fn rt_of(&self, i: usize) -> tokio::runtime::Handle {
        match (self.rts.get(i), &self.shared) {
            (Some(r), _) => r.rt.handle().clone(),
            (None, Some(s)) => s.rt.handle().clone(),
            // `start` makes a shared runtime whenever some node has none.
            (None, None) => unreachable!("no runtime for node {i}"),
        }
    }

    async fn fill(&mut self, shape: &Shape) -> Result<(), String> {
        let t0 = Instant::now();
        let left = || shape.form_timeout.saturating_sub(t0.elapsed());
        let ca = ClusterCa::generate("growth").map_err(|e| e.to_string())?;
        let founders = shape.founders.clamp(1, shape.n);
        let socks: Vec<UdpSocket> = (0..founders)
            .map(|_| UdpSocket::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let addrs: Vec<SocketAddr> = socks
            .iter()
            .map(UdpSocket::local_addr)
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let mut starts = Vec::new();
        for (i, s) in socks.into_iter().enumerate() {
            let b = builder(&ca, i, shape).socket(s).peers(addrs.clone());
            starts.push(self.rt_of(i).spawn(b.start()));
        }
        for s in starts {
            let node = tokio::time::timeout(left(), s)
                .await
                .map_err(|_| {
                    format!(
                        "{founders} founders: not started in {:?}",
                        shape.form_timeout
                    )
                })?
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            self.nodes.push(node);
        }
        self.wait_formed(founders, left()).await?;
        // The rest join through the founders, a batch at a time: each
        // join is a membership change, one at a time in Raft.
        let mut i = founders;
        while i < shape.n {
            let batch = (shape.n - i).min(32);
            let mut joins = Vec::new();
            for k in i..i + batch {
                let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                let b = builder(&ca, k, shape)
                    .socket(sock)
                    .seeds(addrs.clone())
                    .startup_timeout(shape.form_timeout);
                joins.push(self.rt_of(k).spawn(b.start()));
            }
            for j in joins {
                let node = tokio::time::timeout(left(), j)
                    .await
                    .map_err(|_| {
                        format!(
                            "{} nodes: joins not done in {:?}",
                            shape.n, shape.form_timeout
                        )
                    })?
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                self.nodes.push(node);
            }
            i += batch;
            // Progress on large sizes: where a formation that does not
            // finish got to, and how its pace changed.
            if shape.n >= 300 && ((i / 32).is_multiple_of(4) || i >= shape.n) {
                eprintln!(
                    "    {i} of {} nodes started, {:.0} s, process RSS {:.0} MiB",
                    shape.n,
                    t0.elapsed().as_secs_f64(),
                    crate::nodes_probe::rss_mib().unwrap_or(0.0)
                );
            }
        }
        self.wait_formed(shape.n, left()).await
    }

    /// Waits until every node is ready and the leader sees `n` members,
    /// `min(n, 5)` of them voters, every one live, and every node has its
    /// session open.
    async fn wait_formed(&self, n: usize, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        if n >= 300 {
            self.report_catch_up(n, deadline).await;
        }
        for node in &self.nodes {
            // `ready` may fail for a moment (NoQuorum while a membership
            // change or an election is under way, as t79 found): a user's
            // start-up would retry, so this does, until the deadline.
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, node.ready()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) if Instant::now() >= deadline => return Err(format!("ready: {e}")),
                    Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(_) => {
                        let st = node.status();
                        return Err(format!(
                            "{n} nodes: {} not ready in {within:?} (role {:?}, leader {:?}, applied {}, session {:?})",
                            st.name, st.role, st.leader, st.applied_index, st.session
                        ));
                    }
                }
            }
        }
        let voters = n.min(5);
        // Read through `watch_status().borrow()`, not `status()`: a status
        // is a copy with every member in it, and copying it from every
        // node every 100 ms was itself n^2 work.
        loop {
            let formed = self.nodes.iter().any(|node| {
                let s = node.watch_status();
                let s = s.borrow();
                s.is_leader()
                    && s.members.len() == n
                    && s.members
                        .iter()
                        .filter(|m| m.role == MemberRole::Voter)
                        .count()
                        == voters
                    && s.members.iter().all(|m| m.live == Some(true))
            });
            let sessions = (self.nodes.iter()).all(|n| n.watch_status().borrow().session.is_some());
            if formed && sessions {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let open =
                    (self.nodes.iter()).filter(|n| n.watch_status().borrow().session.is_some());
                let view = self.leader_status().map(|(_, s)| {
                    let live = s.members.iter().filter(|m| m.live == Some(true)).count();
                    format!("the leader sees {} members, {live} live", s.members.len())
                });
                return Err(format!(
                    "{n} nodes: no leader seeing {voters} voters and every member live in {within:?} \
                     ({}; {} sessions open)",
                    view.unwrap_or_else(|| "no leader".into()),
                    open.count()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// On large sizes, before asking each node for `ready`: how many nodes
    /// have applied anything and opened their session, every 30 s, until
    /// all have or the deadline. Read from `watch_status` (no copies), so
    /// the pace of catching up shows even when formation does not finish.
    async fn report_catch_up(&self, n: usize, deadline: Instant) {
        let t0 = Instant::now();
        let mut next = t0;
        // Open sessions at the last report: a report with none opened
        // since names the nodes still waiting.
        let mut last_open = None;
        loop {
            let (mut applied, mut open) = (0, 0);
            for node in &self.nodes {
                let s = node.watch_status();
                let s = s.borrow();
                applied += usize::from(s.applied_index > 0);
                open += usize::from(s.session.is_some());
            }
            let done = open == self.nodes.len();
            let late = Instant::now() >= deadline;
            if done || late || Instant::now() >= next {
                let learners = self.leader_status().map_or(0, |(_, s)| {
                    (s.members.iter())
                        .filter(|m| m.role == MemberRole::Learner)
                        .count()
                });
                eprintln!(
                    "    {n} nodes, {:.0} s after the last start: {applied} applied something, \
                     {open} sessions open, the leader sees {learners} learners, process RSS {:.0} MiB",
                    t0.elapsed().as_secs_f64(),
                    crate::nodes_probe::rss_mib().unwrap_or(0.0)
                );
                if !done && (late || last_open == Some(open)) {
                    self.report_stragglers();
                }
                next += Duration::from_secs(30);
                last_open = Some(open);
            }
            if done || late {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Up to 10 nodes with no session yet, as they and the leader see them:
    /// whether the leader has them in its member table (once, or twice
    /// under one name), in which role, and live or not.
    fn report_stragglers(&self) {
        let leader = self.leader_status().map(|(_, s)| s);
        if let Some(s) = &leader {
            let mut names = std::collections::BTreeMap::new();
            for m in &s.members {
                *names.entry(m.name.as_str().to_owned()).or_insert(0) += 1;
            }
            let twice = names.values().filter(|k| **k > 1).count();
            let live = s.members.iter().filter(|m| m.live == Some(true)).count();
            eprintln!(
                "    the leader (term {}, applied {}) has {} members, {live} live, {twice} names more than once",
                s.term,
                s.applied_index,
                s.members.len()
            );
        }
        let stuck = (self.nodes.iter()).filter(|n| n.watch_status().borrow().session.is_none());
        for node in stuck.take(10) {
            let st = node.status();
            let seen: Vec<String> = leader
                .iter()
                .flat_map(|l| {
                    (l.members.iter())
                        .filter(|m| m.name == st.name)
                        .map(|m| format!("id {} {:?} live {:?}", m.id, m.role, m.live))
                        .collect::<Vec<_>>()
                })
                .collect();
            eprintln!(
                "    {} (id {}, {:?}, term {}, leader {:?}, applied {}): the leader has {}",
                st.name,
                st.id,
                st.role,
                st.term,
                st.leader,
                st.applied_index,
                if seen.is_empty() {
                    "no member of that name".to_owned()
                } else {
                    seen.join("; ")
                }
            );
        }
    }

    /// The index of the node that leads now, if any.
    pub fn leader(&self) -> Option<usize> {
        (self.nodes.iter()).position(|n| n.watch_status().borrow().is_leader())
    }

    /// The leader's status, if a node leads.
    pub fn leader_status(&self) -> Option<(usize, NodeStatus)> {
        let i = self.leader()?;
        Some((i, self.nodes[i].status()))
    }

    /// Kills every node (a crash: a benchmark has nothing to hand over, and
    /// graceful leaves would each wait for a membership change), then drops
    /// the runtimes without blocking.
    pub async fn stop(self) {
        let kills = async {
            for n in &self.nodes {
                peerlock::testing::crash(n).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(30), kills).await;
        drop(self.nodes);
        for r in self.rts.into_iter().chain(self.shared) {
            r.rt.shutdown_background();
        }
    }
}
