//! Test harness: N nodes on 127.0.0.1 with ports chosen by the OS, a fresh
//! cluster CA, and condition waits with deadlines (never fixed sleeps).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use peerlock::certs::ClusterCa;
use peerlock::{Node, NodeStatus};

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

/// Options for a test cluster.
#[derive(Clone, Copy)]
pub struct Opts {
    pub ttl: Duration,
    pub lock_delay: Duration,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            ttl: Duration::from_millis(1500),
            lock_delay: Duration::ZERO,
        }
    }
}

pub struct Cluster {
    pub ca: ClusterCa,
    pub addrs: Vec<SocketAddr>,
    pub nodes: Vec<Node>,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEERLOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}

/// Binds `n` UDP sockets on 127.0.0.1:0 so every address is known up front.
pub fn sockets(n: usize) -> (Vec<UdpSocket>, Vec<SocketAddr>) {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind loopback"))
        .collect();
    let addrs = socks.iter().map(|s| s.local_addr().unwrap()).collect();
    (socks, addrs)
}

impl Cluster {
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, Opts::default()).await
    }

    pub async fn start_with(n: usize, opts: Opts) -> Self {
        init_tracing();
        let ca = ClusterCa::generate("test").unwrap();
        let (socks, addrs) = sockets(n);
        let builders = socks.into_iter().enumerate().map(|(i, sock)| {
            let tls = ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap();
            Node::builder()
                .socket(sock)
                .peers(addrs.clone())
                .tls(tls)
                .in_memory()
                .session_ttl(opts.ttl)
                .lock_delay(opts.lock_delay)
                .raft_tick(Duration::from_millis(20))
                .startup_timeout(WAIT)
        });
        let nodes = start_ready(builders).await;
        Cluster { ca, addrs, nodes }
    }

    /// The index of the current leader (as node 0.. sees it, waiting for one).
    pub async fn leader(&self) -> usize {
        wait_until(|| self.nodes.iter().position(|n| n.status().is_leader())).await
    }
}

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("waited longer than the test deadline")
}

/// Polls `cond` every 10 ms until it returns Some, bounded by [`WAIT`].
pub async fn wait_until<T>(mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met before the test deadline"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls the async `cond` every 50 ms until it returns Some, bounded by
/// [`WAIT`].
pub async fn wait_until_async<T, F: Future<Output = Option<T>>>(mut cond: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met before the test deadline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `node`'s status satisfies `pred`.
pub async fn wait_status(node: &Node, pred: impl Fn(&NodeStatus) -> bool) {
    let mut rx = node.watch_status();
    within(async {
        loop {
            if pred(&rx.borrow_and_update()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await
}

/// A resource that accepts a write only with a token at least as high as
/// the highest it has seen: what a user puts behind a lock.
#[derive(Default)]
pub struct Fenced {
    pub highest: u64,
    pub value: u64,
    pub accepted: u64,
    pub stale_rejected: u64,
}

impl Fenced {
    /// Writes `value` with `token`; false (and counted) if the token is stale.
    pub fn write(&mut self, token: peerlock::FencingToken, value: u64) -> bool {
        if token.get() < self.highest {
            self.stale_rejected += 1;
            return false;
        }
        self.highest = token.get();
        self.value = value;
        self.accepted += 1;
        true
    }
}

/// Every gauge of one snapshot of a `metrics-util` debugging recorder, by
/// name: a gauge's change since the last snapshot (a snapshot swaps every
/// value to 0), or its last `set` value.
pub fn gauges(recorder: &DebuggingRecorder) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        if let DebugValue::Gauge(g) = value {
            out.insert(key.key().name().to_owned(), g.into_inner());
        }
    }
    out
}

/// Runs `f` on a current-thread runtime with `recorder` as this thread's
/// metrics recorder (so no other test sees what it records).
pub fn with_recorder<T, F: Future<Output = T>>(
    recorder: &dyn metrics::Recorder,
    f: impl FnOnce() -> F,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || rt.block_on(f()))
}

/// A `tracing` writer into a shared buffer, for a test's own subscriber
/// (`tracing::subscriber::with_default` on a current-thread runtime, so
/// no other test's lines land in it).
#[derive(Clone, Default)]
pub struct LogBuf(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

impl LogBuf {
    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
    /// Forgets what was written so far.
    pub fn clear(&self) {
        self.0.lock().clear();
    }
    /// A plain-text subscriber at `level` and above that writes here.
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let w = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish()
    }
}

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Binds `addr` again once a crashed node's endpoint has let go of it.
pub async fn rebind(addr: SocketAddr) -> UdpSocket {
    for _ in 0..400 {
        if let Ok(s) = UdpSocket::bind(addr) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("could not bind {addr} again");
}

/// A node builder with the membership tests' timings: TTL 1.5 s, tick
/// 20 ms, `dead_after` 3 s, `stabilization` 1 s; in memory unless the
/// test gives it a data directory.
pub fn member_builder(ca: &ClusterCa, name: &str, sock: UdpSocket) -> peerlock::NodeBuilder {
    Node::builder()
        .socket(sock)
        .tls(ca.issue_node(name, &["127.0.0.1"]).unwrap())
        .session_ttl(Duration::from_millis(1500))
        .raft_tick(Duration::from_millis(20))
        .membership(peerlock::MembershipConfig {
            dead_after: Duration::from_secs(3),
            stabilization: Duration::from_secs(1),
            ..peerlock::MembershipConfig::default()
        })
        .startup_timeout(WAIT)
}

/// [`member_builder`], in memory.
pub fn in_memory_member(ca: &ClusterCa, name: &str, sock: UdpSocket) -> peerlock::NodeBuilder {
    member_builder(ca, name, sock).in_memory()
}

/// Starts `n` [`in_memory_member`]s `node-0`.. (CA `ca_name`) that list
/// each other as peers, with `max_voters` if given, and waits until every
/// one is ready.
pub async fn start_members(
    ca_name: &str,
    n: usize,
    max_voters: Option<usize>,
) -> (Vec<Node>, ClusterCa) {
    init_tracing();
    let ca = ClusterCa::generate(ca_name).unwrap();
    let (socks, addrs) = sockets(n);
    let builders = socks.into_iter().enumerate().map(|(i, sock)| {
        let b = in_memory_member(&ca, &format!("node-{i}"), sock).peers(addrs.clone());
        match max_voters {
            Some(max) => b.max_voters(max),
            None => b,
        }
    });
    (start_ready(builders).await, ca)
}

/// Starts every builder at once (founders must find each other) and
/// waits until every node is ready; the nodes in the builders' order.
pub async fn start_ready(builders: impl IntoIterator<Item = peerlock::NodeBuilder>) -> Vec<Node> {
    let starts: Vec<_> = builders
        .into_iter()
        .map(|b| tokio::spawn(b.start()))
        .collect();
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().expect("node starts"));
    }
    for n in &nodes {
        within(n.ready()).await.expect("node ready");
    }
    nodes
}

/// Waits until `node` reports `voters` live voters and `learners` live
/// learners (out of any joint configuration), and returns the members.
pub async fn converge(node: &Node, voters: usize, learners: usize) -> Vec<peerlock::MemberInfo> {
    use peerlock::MemberRole;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = Vec::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(3), node.members()).await {
            let count = |role| m.iter().filter(|x| x.role == role && x.live).count();
            if count(MemberRole::Voter) == voters
                && count(MemberRole::Learner) == learners
                && m.iter().filter(|x| x.role == MemberRole::Voter).count() == voters
            {
                return m;
            }
            last = m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("members did not converge to {voters} voters and {learners} learners: {last:?}");
}

/// Polls `node.members()` until `done` holds and returns that view. A
/// transient error (a `NoQuorum` while a leader is elected during a
/// membership change, on a loaded machine) counts as "not yet", as a
/// user's polling loop would treat it; the last view or error is in the
/// panic message at `WAIT`.
pub async fn members_until(
    node: &Node,
    done: impl Fn(&[peerlock::MemberInfo]) -> bool,
) -> Vec<peerlock::MemberInfo> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(3), node.members()).await {
            Ok(Ok(m)) if done(&m) => return m,
            Ok(Ok(m)) => last = format!("{m:?}"),
            Ok(Err(e)) => last = format!("error: {e}"),
            Err(_) => last = "members() took over 3 s".to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("members did not reach the condition; last: {last}");
}
