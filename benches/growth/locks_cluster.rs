//! What the `locks` and `waiters` curves share: a 3-node cluster on
//! 127.0.0.1 (in memory or durable, each node on its own runtime when asked,
//! so its threads' CPU can be told apart), this process's RSS, per-thread
//! CPU from /proc, and latency histograms.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use peerlock::certs::ClusterCa;
use peerlock::Node;

/// A cluster of three nodes and what it takes to start it again.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub ca: ClusterCa,
    pub addrs: Vec<SocketAddr>,
    /// The data directories (durable) or `None` (in memory).
    pub dirs: Option<Vec<PathBuf>>,
}

/// How long `start` waits for the peers and `ready`: generous, since a
/// restart may read a large data directory.
pub const START_BOUND: Duration = Duration::from_secs(300);

/// `seeded`: the addresses are given as `seeds(..)`, the way a restart
/// in Kubernetes finds its cluster (a restart then first asks the seeds
/// which cluster they belong to); else as `peers(..)`.
fn builder(
    ca: &ClusterCa,
    i: usize,
    sock: UdpSocket,
    addrs: &[SocketAddr],
    seeded: bool,
) -> peerlock::NodeBuilder {
    let tls = ca
        .issue_node(&format!("growth-{i}"), &["127.0.0.1"])
        .expect("cert");
    let b = Node::builder().socket(sock).tls(tls);
    let b = if seeded {
        b.seeds(addrs.to_vec())
    } else {
        b.peers(addrs.to_vec())
    };
    b.startup_timeout(START_BOUND)
}

impl Cluster {
    /// Starts three nodes. `data`: durable under this directory, else in
    /// memory. `runtimes`: one per node (their tasks run there), else the
    /// current runtime.
    pub async fn start(
        data: Option<&Path>,
        runtimes: Option<&[tokio::runtime::Handle]>,
    ) -> Cluster {
        let ca = ClusterCa::generate("growth").expect("CA");
        let socks: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let addrs: Vec<SocketAddr> = socks
            .iter()
            .map(|s| s.local_addr().expect("addr"))
            .collect();
        let dirs = data.map(|d| {
            (0..3)
                .map(|i| d.join(format!("node-{i}")))
                .collect::<Vec<_>>()
        });
        let mut c = Cluster {
            nodes: Vec::new(),
            ca,
            addrs,
            dirs,
        };
        c.nodes = c.boot(socks, runtimes, false).await;
        c
    }

    async fn boot(
        &self,
        socks: Vec<UdpSocket>,
        runtimes: Option<&[tokio::runtime::Handle]>,
        seeded: bool,
    ) -> Vec<Node> {
        let mut starts = Vec::new();
        for (i, s) in socks.into_iter().enumerate() {
            let b = builder(&self.ca, i, s, &self.addrs, seeded);
            let b = match &self.dirs {
                Some(d) => b.data_dir(&d[i]),
                None => b.in_memory(),
            };
            starts.push(match runtimes {
                Some(rts) => rts[i].spawn(b.start()),
                None => tokio::spawn(b.start()),
            });
        }
        let mut nodes = Vec::new();
        for s in starts {
            nodes.push(s.await.expect("join").expect("start"));
        }
        for n in &nodes {
            tokio::time::timeout(START_BOUND, n.ready())
                .await
                .expect("ready in time")
                .expect("ready");
        }
        nodes
    }

    /// Kills every node as a crash would (nothing released) and starts them
    /// again on the same addresses and data directories: given the
    /// addresses as seeds when `PEERLOCK_BENCH_RESTART=seeds`, else as
    /// peers.
    pub async fn restart(&mut self) {
        let seeded = std::env::var("PEERLOCK_BENCH_RESTART").is_ok_and(|v| v == "seeds");
        for n in &self.nodes {
            peerlock::testing::crash(n).await;
        }
        self.nodes.clear();
        let mut socks = Vec::new();
        for a in &self.addrs {
            let t = Instant::now();
            socks.push(loop {
                match UdpSocket::bind(a) {
                    Ok(s) => break s,
                    Err(e) if t.elapsed() > Duration::from_secs(30) => panic!("rebind {a}: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            });
        }
        self.nodes = self.boot(socks, None, seeded).await;
    }

    /// The index of the node that believes it leads (0 if none yet).
    pub fn leader(&self) -> usize {
        self.nodes
            .iter()
            .position(|n| n.status().is_leader())
            .unwrap_or(0)
    }

    /// Stops every node as a crash would: quick, and nothing is released.
    pub async fn kill(&self) {
        for n in &self.nodes {
            peerlock::testing::crash(n).await;
        }
    }
}

/// This process's resident set size in bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time of this process's threads whose name starts with `prefix`,
/// from /proc/self/task/*/schedstat (nanoseconds on the CPU).
pub fn threads_cpu(prefix: &str) -> Duration {
    let mut ns = 0u64;
    let Ok(rd) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for t in rd.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(ns)
}

/// Total size of the files under `p`.
pub fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A latency histogram in microseconds, 1 µs to 10 minutes.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// Records `d` in `h` (clamped to its bounds).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// The `q` quantile of `h` in milliseconds.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1e3
}

/// Median, min and max of `v` (zeros when empty).
pub fn med(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) => (v[v.len() / 2], *lo, *hi),
        _ => (0.0, 0.0, 0.0),
    }
}

/// The machine's load average, as /proc/loadavg prints it.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
