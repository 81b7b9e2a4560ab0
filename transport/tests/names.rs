//! Issue 9: member names when one certificate is shared by every node (the
//! name preamble of ALPN `peerlock/3`), over real sockets on 127.0.0.1.
//! Every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::machine::MAX_MEMBER_NAME;
use peerlock_core::transport::{Incoming, PeerMessage, Transport};
use peerlock_core::{Error, NodeId};
use peerlock_transport::codec::{self, FrameBody};
use peerlock_transport::preamble;
use peerlock_transport::testing::{send_raw, send_streams};
use peerlock_transport::{ClusterCa, QuicTransport, TlsConfig};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(400);
/// Close codes the transport uses (see `peer.rs`).
const CLOSE_SPOOFED: u64 = 2;
const CLOSE_NAME: u64 = 5;

struct Node {
    t: Arc<QuicTransport>,
    rx: mpsc::Receiver<Incoming>,
}

fn socket() -> UdpSocket {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn start(sock: UdpSocket, tls: &TlsConfig, peers: &[SocketAddr]) -> Node {
    let (tx, rx) = mpsc::channel(256);
    let t = QuicTransport::bind_socket(sock, None, tls, peers.to_vec(), tx).unwrap();
    Node { t, rx }
}

/// One transport per name, all with `shared`'s certificate.
async fn shared_cluster(shared: &TlsConfig, names: &[&str]) -> Vec<Node> {
    let socks: Vec<UdpSocket> = names.iter().map(|_| socket()).collect();
    let addrs: Vec<SocketAddr> = socks.iter().map(|s| s.local_addr().unwrap()).collect();
    let nodes: Vec<Node> = socks
        .into_iter()
        .zip(names)
        .map(|(s, n)| start(s, &shared.clone().with_member_name(n).unwrap(), &addrs))
        .collect();
    let deadline = Instant::now() + WAIT;
    let found: Vec<_> = nodes
        .iter()
        .map(|n| {
            let t = n.t.clone();
            tokio::spawn(async move { t.discover(deadline).await })
        })
        .collect();
    for (h, _) in found.into_iter().zip(names) {
        let list = h.await.unwrap().unwrap();
        let mut seen: Vec<String> = list.into_iter().map(|p| p.name).collect();
        seen.sort();
        let mut want: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        want.sort();
        assert_eq!(seen, want);
    }
    nodes
}

fn raft(n: u8) -> PeerMessage {
    PeerMessage::Raft(vec![n; 3])
}

/// Sends until one message gets through, and checks its sender.
async fn deliver(from: &Node, to: &mut Node) {
    let deadline = Instant::now() + WAIT;
    loop {
        from.t.send(to.t.local_id(), vec![raft(7)]);
        if let Ok(Some(m)) = timeout(Duration::from_millis(100), to.rx.recv()).await {
            assert_eq!(m.from, from.t.local_id());
            while to.rx.try_recv().is_ok() {}
            return;
        }
        assert!(Instant::now() < deadline, "no delivery");
    }
}

async fn quiet(rx: &mut mpsc::Receiver<Incoming>) {
    if let Ok(Some(m)) = timeout(QUIET, rx.recv()).await {
        panic!("nothing should arrive, got {m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_issue_9_nodes_sharing_one_certificate_are_told_apart_by_name() {
    let ca = ClusterCa::generate("n01").unwrap();
    let shared = ca.issue_node("app", &[]).unwrap();
    let mut n = shared_cluster(&shared, &["a", "b", "c"]).await;
    for (node, name) in n.iter().zip(["a", "b", "c"]) {
        assert_eq!(node.t.local_name(), name);
        assert_eq!(node.t.local_id(), NodeId::from_name(name));
    }
    // Every pair, both ways, keyed by name.
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                let (from, to) = if i < j {
                    let (l, r) = n.split_at_mut(j);
                    (&l[i], &mut r[0])
                } else {
                    let (l, r) = n.split_at_mut(i);
                    (&r[0], &mut l[j])
                };
                deliver(from, to).await;
            }
        }
    }
    // A frame claiming another member's key on a's connection is spoofed.
    let frame = codec::encode(&FrameBody {
        from: NodeId::from_name("b"),
        msgs: vec![raft(9)],
    })
    .unwrap();
    let as_a = shared.clone().with_member_name("a").unwrap();
    let code = send_raw(&as_a, n[2].t.local_addr(), &frame, WAIT)
        .await
        .unwrap();
    assert_eq!(code, Some(CLOSE_SPOOFED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_issue_9_a_malformed_or_oversized_name_is_refused_and_nothing_is_lost() {
    let ca = ClusterCa::generate("n02").unwrap();
    let shared = ca.issue_node("app", &[]).unwrap();
    let mut n = shared_cluster(&shared, &["a", "b"]).await;
    let to = n[0].t.local_addr();
    let frame = codec::encode(&FrameBody {
        from: NodeId::from_name("x"),
        msgs: vec![raft(1)],
    })
    .unwrap();
    let mut bad_magic = preamble::encode("x");
    bad_magic[0] = b'Q';
    let mut short = preamble::encode("xy");
    short.pop();
    let bad: Vec<Vec<u8>> = vec![
        preamble::encode(""),
        preamble::encode(&"n".repeat(MAX_MEMBER_NAME + 1)),
        vec![b'P'; 64 * 1024],
        bad_magic,
        short,
        // No preamble at all: a frame where the name should be.
        frame.clone(),
    ];
    for b in &bad {
        let code = send_streams(&shared, to, &[b, &frame], WAIT).await.unwrap();
        assert_eq!(code, Some(CLOSE_NAME), "{:?}", b.get(..8));
    }
    // Nothing got through, and the pair is as it was.
    quiet(&mut n[0].rx).await;
    let (a, b) = n.split_at_mut(1);
    deliver(&b[0], &mut a[0]).await;
    deliver(&a[0], &mut b[0]).await;
    assert!(a[0].t.known_peers().iter().all(|p| p.name == "b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t03_issue_9_a_certificate_of_its_own_cannot_claim_another_name() {
    let ca = ClusterCa::generate("n03").unwrap();
    let (sa, sb) = (socket(), socket());
    let addrs = [sa.local_addr().unwrap(), sb.local_addr().unwrap()];
    let mut a = start(sa, &ca.issue_node("node-a", &[]).unwrap(), &addrs);
    let b = start(sb, &ca.issue_node("node-b", &[]).unwrap(), &addrs);
    let deadline = Instant::now() + WAIT;
    let (ra, rb) = tokio::join!(a.t.discover(deadline), b.t.discover(deadline));
    assert_eq!((ra.unwrap().len(), rb.unwrap().len()), (2, 2));
    // Mallory's own certificate, claiming node-b's name: refused before
    // any frame is read, whatever the frame says.
    let mallory = ca
        .issue_node("mallory", &[])
        .unwrap()
        .with_member_name("node-b")
        .unwrap();
    let frame = codec::encode(&FrameBody {
        from: NodeId::from_name("node-b"),
        msgs: vec![raft(66)],
    })
    .unwrap();
    let code = send_raw(&mallory, addrs[0], &frame, WAIT).await.unwrap();
    assert_eq!(code, Some(CLOSE_NAME));
    quiet(&mut a.rx).await;
    assert!(a.t.known_peers().iter().all(|p| p.name == "node-b"));
    deliver(&b, &mut a).await;
    // The same certificate under its own name is an ordinary peer.
    let plain = ca.issue_node("mallory", &[]).unwrap();
    let frame = codec::encode(&FrameBody {
        from: NodeId::from_name("mallory"),
        msgs: vec![raft(3)],
    })
    .unwrap();
    let _ = send_raw(&plain, addrs[0], &frame, QUIET).await.unwrap();
    let m = timeout(WAIT, a.rx.recv()).await.unwrap().unwrap();
    assert_eq!(m.from, NodeId::from_name("mallory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t04_issue_9_two_nodes_claiming_one_name_on_a_shared_certificate_are_refused() {
    let ca = ClusterCa::generate("n04").unwrap();
    let shared = ca.issue_node("app", &[]).unwrap();
    let (s0, s1, s2) = (socket(), socket(), socket());
    let addrs = [
        s0.local_addr().unwrap(),
        s1.local_addr().unwrap(),
        s2.local_addr().unwrap(),
    ];
    let x = start(s0, &shared.clone().with_member_name("x").unwrap(), &addrs);
    let twin = shared.clone().with_member_name("b").unwrap();
    let _b1 = start(s1, &twin, &[]);
    let _b2 = start(s2, &twin, &[]);
    match x.t.discover(Instant::now() + WAIT).await {
        Err(Error::Config(msg)) => {
            assert!(msg.contains("\"b\"") && msg.contains("name(..)"), "{msg}")
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    // Names are checked when set.
    assert!(matches!(
        shared.clone().with_member_name(""),
        Err(Error::Config(_))
    ));
    let long = "n".repeat(MAX_MEMBER_NAME + 1);
    assert!(matches!(
        shared.with_member_name(&long),
        Err(Error::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t05_issue_9_a_claimed_name_among_per_node_certificates_is_a_clear_error() {
    let ca = ClusterCa::generate("n05").unwrap();
    let (sa, sx) = (socket(), socket());
    let addrs = [sa.local_addr().unwrap(), sx.local_addr().unwrap()];
    let _a = start(sa, &ca.issue_node("node-a", &[]).unwrap(), &addrs);
    // node-x has a certificate of its own but was given name(..).
    let x_tls = ca
        .issue_node("node-x", &[])
        .unwrap()
        .with_member_name("pod-x")
        .unwrap();
    let x = start(sx, &x_tls, &addrs);
    let started = Instant::now();
    match x.t.discover(Instant::now() + WAIT).await {
        Err(Error::Config(msg)) => {
            assert!(msg.contains("pod-x") && msg.contains("node-a"), "{msg}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    assert!(
        started.elapsed() < WAIT,
        "refused at once, not at the deadline"
    );
}
