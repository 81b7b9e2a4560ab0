//! Issue 11's cluster tests run on three durable nodes (each with its own
//! data directory, fsynced log) over QUIC on 127.0.0.1: the primitives must
//! work end to end with durable storage, not only in memory.

use std::time::Duration;

use peerlock::Node;

use crate::common::{init_tracing, sockets, within, WAIT};

/// Three durable nodes; dropped with their directories.
pub struct Durable {
    pub nodes: Vec<Node>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Durable {
    /// Three nodes with session TTL `ttl` and lock-delay `lock_delay`.
    pub async fn start(ttl: Duration, lock_delay: Duration) -> Self {
        init_tracing();
        let ca = peerlock::certs::ClusterCa::generate("issue-11").unwrap();
        let (socks, addrs) = sockets(3);
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut starts = Vec::new();
        for (i, sock) in socks.into_iter().enumerate() {
            let builder = Node::builder()
                .socket(sock)
                .peers(addrs.clone())
                .tls(ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap())
                .data_dir(dirs[i].path())
                .session_ttl(ttl)
                .lock_delay(lock_delay)
                .raft_tick(Duration::from_millis(20))
                .startup_timeout(WAIT);
            starts.push(tokio::spawn(builder.start()));
        }
        let mut nodes = Vec::new();
        for s in starts {
            nodes.push(s.await.unwrap().expect("node starts"));
        }
        for n in &nodes {
            within(n.ready()).await.expect("node ready");
        }
        Self { nodes, _dirs: dirs }
    }

    /// The default: a 1.5 s TTL and no lock-delay.
    pub async fn default_start() -> Self {
        Self::start(Duration::from_millis(1500), Duration::ZERO).await
    }

    /// The index of a node that is not the Raft leader.
    pub async fn follower(&self) -> usize {
        let leader =
            crate::common::wait_until(|| self.nodes.iter().position(|n| n.status().is_leader()))
                .await;
        (leader + 1) % self.nodes.len()
    }
}
