//! What every case of the `quic` binary shares: transports bound to
//! sockets on 127.0.0.1, certificates from a fresh CA, and bounded waits
//! for a delivery or for silence.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::transport::{Incoming, PeerMessage, Transport};
use peerlock_core::NodeId;
use peerlock_transport::{ClusterCa, QuicTransport, TlsConfig};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// Long enough for anything on loopback; only reached when a test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched.
pub(crate) const QUIET: Duration = Duration::from_millis(400);
/// Close codes the transport uses (see `peer.rs`).
pub(crate) const CLOSE_PROTOCOL: u64 = 1;
pub(crate) const CLOSE_SPOOFED: u64 = 2;
pub(crate) const CLOSE_DUPLICATE: u64 = 3;

/// One transport and the channel its deliveries arrive on.
pub(crate) struct Node {
    pub(crate) t: Arc<QuicTransport>,
    pub(crate) rx: mpsc::Receiver<Incoming>,
}

/// Logs to the test's output when `RUST_LOG` is set.
pub(crate) fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub(crate) fn socket() -> UdpSocket {
    logs();
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

pub(crate) fn tls(ca: &ClusterCa, name: &str) -> TlsConfig {
    ca.issue_node(name, &["127.0.0.1"]).unwrap()
}

pub(crate) fn start(sock: UdpSocket, tls: &TlsConfig, peers: &[SocketAddr]) -> Node {
    let (tx, rx) = mpsc::channel(256);
    let t = QuicTransport::bind_socket(sock, None, tls, peers.to_vec(), tx).unwrap();
    Node { t, rx }
}

/// Starts one transport per name, all configured with all addresses.
pub(crate) fn cluster(ca: &ClusterCa, names: &[&str]) -> Vec<Node> {
    let socks: Vec<UdpSocket> = names.iter().map(|_| socket()).collect();
    let addrs: Vec<SocketAddr> = socks.iter().map(|s| s.local_addr().unwrap()).collect();
    socks
        .into_iter()
        .zip(names)
        .map(|(s, n)| start(s, &tls(ca, n), &addrs))
        .collect()
}

pub(crate) async fn discover_all(nodes: &[Node]) {
    let deadline = Instant::now() + WAIT;
    let handles: Vec<_> = nodes
        .iter()
        .map(|n| {
            let t = n.t.clone();
            tokio::spawn(async move { t.discover(deadline).await })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap().len(), nodes.len());
    }
}

pub(crate) fn raft(n: u8) -> PeerMessage {
    PeerMessage::Raft(vec![n; 3])
}

pub(crate) async fn recv(rx: &mut mpsc::Receiver<Incoming>) -> Incoming {
    timeout(WAIT, rx.recv())
        .await
        .expect("a message in time")
        .expect("channel open")
}

pub(crate) async fn quiet(rx: &mut mpsc::Receiver<Incoming>) {
    if let Ok(Some(m)) = timeout(QUIET, rx.recv()).await {
        panic!("nothing should arrive, got {m:?}");
    }
}

/// Sends until one message gets through (a connection may be re-forming).
pub(crate) async fn deliver(from: &Node, to: &mut Node) {
    let deadline = Instant::now() + WAIT;
    loop {
        from.t.send(to.t.local_id(), vec![raft(7)]);
        if let Ok(Some(m)) = timeout(Duration::from_millis(100), to.rx.recv()).await {
            assert_eq!(m.from, from.t.local_id());
            while to.rx.try_recv().is_ok() {}
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery {} -> {}",
            from.t.local_name(),
            to.t.local_name()
        );
    }
}

/// Binds `addr` again once a stopped transport has let it go (its socket
/// closes when the last of its tasks ends), waiting at most [`WAIT`].
pub(crate) async fn rebind(addr: SocketAddr) -> UdpSocket {
    let deadline = Instant::now() + WAIT;
    loop {
        match UdpSocket::bind(addr) {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("port not released: {e}"),
        }
    }
}

/// Two names ordered by Raft id: (lower, higher).
pub(crate) fn ordered(a: &'static str, b: &'static str) -> (&'static str, &'static str) {
    if NodeId::from_name(a) < NodeId::from_name(b) {
        (a, b)
    } else {
        (b, a)
    }
}
