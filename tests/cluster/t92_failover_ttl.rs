//! Issue 8, item 3: the smallest accepted TTL keeps every lock across a
//! leader change. Three durable nodes with `NodeConfig::MIN_TTL` (1 s) and
//! the tick derived from it; 20 times, a holder on a follower runs
//! `with_lock` while the leader is killed (and then restarted from its data
//! directory). Before the fix a 1 s TTL was accepted with the 50 ms tick
//! and the holder got `LockLost` in 4 of 4 trials (and the first keepalive
//! after each election was dropped by the new leader).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use peerlock::certs::ClusterCa;
use peerlock::Node;

use crate::common::{init_tracing, sockets, wait_until, within, WAIT};

const TTL: Duration = Duration::from_secs(1);
const TRIALS: usize = 20;

fn builder(
    ca: &ClusterCa,
    i: usize,
    sock: UdpSocket,
    addrs: &[SocketAddr],
    dir: &Path,
) -> peerlock::NodeBuilder {
    Node::builder()
        .socket(sock)
        .peers(addrs.to_vec())
        .tls(ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap())
        .data_dir(dir)
        .session_ttl(TTL)
        .startup_timeout(WAIT)
}

async fn rebind(addr: SocketAddr) -> UdpSocket {
    for _ in 0..400 {
        if let Ok(s) = UdpSocket::bind(addr) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("could not rebind {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t92_issue_8_the_smallest_ttl_keeps_locks_across_twenty_leader_kills() {
    init_tracing();
    let ca = ClusterCa::generate("failover-ttl").unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (socks, addrs) = sockets(3);
    let mut starts = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        starts.push(tokio::spawn(
            builder(&ca, i, sock, &addrs, dirs[i].path()).start(),
        ));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().unwrap());
    }
    for n in &nodes {
        within(n.ready()).await.unwrap();
    }
    let mut lost = Vec::new();
    for trial in 0..TRIALS {
        let leader = wait_until(|| nodes.iter().position(|n| n.status().is_leader())).await;
        let holder = (leader + 1) % 3;
        let (in_tx, in_rx) = tokio::sync::oneshot::channel();
        let section = {
            let n = nodes[holder].clone();
            tokio::spawn(async move {
                n.with_lock(&format!("held/{trial}"), async |g| {
                    let _ = in_tx.send(());
                    // Spans the kill and the whole failover.
                    tokio::time::sleep(TTL * 2).await;
                    g.token()
                })
                .await
            })
        };
        within(in_rx).await.unwrap();
        tokio::time::sleep(TTL / 4).await;
        let killed = std::time::Instant::now();
        tracing::info!(trial, leader, holder, "killing the leader");
        peerlock::testing::crash(&nodes[leader]).await;
        match within(section).await.unwrap() {
            Ok(_) => {}
            Err(e) => {
                tracing::info!(trial, after = ?killed.elapsed(), "lost");
                lost.push((trial, e.to_string()))
            }
        }
        // Bring the killed node back from its data directory.
        let sock = rebind(addrs[leader]).await;
        nodes[leader] = within(builder(&ca, leader, sock, &addrs, dirs[leader].path()).start())
            .await
            .unwrap();
        for n in &nodes {
            within(n.ready()).await.unwrap();
        }
    }
    assert!(
        lost.is_empty(),
        "locks lost across a leader kill at TTL {TTL:?}: {lost:?}"
    );
}
