//! The QUIC transport over real sockets on 127.0.0.1 (port 0). Every wait
//! is bounded; the whole file runs in a few seconds.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::transport::{Incoming, PeerMessage, Transport};
use peerlock_core::{Error, NodeId, SessionId};
use peerlock_transport::codec::{self, FrameBody, MAGIC, VERSION};
use peerlock_transport::testing::send_raw;
use peerlock_transport::{ClusterCa, QuicTransport, TlsConfig};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// Long enough for anything on loopback; only reached when a test fails.
const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched.
const QUIET: Duration = Duration::from_millis(400);
/// Close codes the transport uses (see `peer.rs`).
const CLOSE_PROTOCOL: u64 = 1;
const CLOSE_SPOOFED: u64 = 2;
const CLOSE_DUPLICATE: u64 = 3;

struct Node {
    t: Arc<QuicTransport>,
    rx: mpsc::Receiver<Incoming>,
}

/// Logs to the test's output when `RUST_LOG` is set.
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn socket() -> UdpSocket {
    logs();
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn tls(ca: &ClusterCa, name: &str) -> TlsConfig {
    ca.issue_node(name, &["127.0.0.1"]).unwrap()
}

fn start(sock: UdpSocket, tls: &TlsConfig, peers: &[SocketAddr]) -> Node {
    let (tx, rx) = mpsc::channel(256);
    let t = QuicTransport::bind_socket(sock, None, tls, peers.to_vec(), tx).unwrap();
    Node { t, rx }
}

/// Starts one transport per name, all configured with all addresses.
fn cluster(ca: &ClusterCa, names: &[&str]) -> Vec<Node> {
    let socks: Vec<UdpSocket> = names.iter().map(|_| socket()).collect();
    let addrs: Vec<SocketAddr> = socks.iter().map(|s| s.local_addr().unwrap()).collect();
    socks
        .into_iter()
        .zip(names)
        .map(|(s, n)| start(s, &tls(ca, n), &addrs))
        .collect()
}

async fn discover_all(nodes: &[Node]) {
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

fn raft(n: u8) -> PeerMessage {
    PeerMessage::Raft(vec![n; 3])
}

async fn recv(rx: &mut mpsc::Receiver<Incoming>) -> Incoming {
    timeout(WAIT, rx.recv())
        .await
        .expect("a message in time")
        .expect("channel open")
}

async fn quiet(rx: &mut mpsc::Receiver<Incoming>) {
    if let Ok(Some(m)) = timeout(QUIET, rx.recv()).await {
        panic!("nothing should arrive, got {m:?}");
    }
}

/// Sends until one message gets through (a connection may be re-forming).
async fn deliver(from: &Node, to: &mut Node) {
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

/// Two names ordered by Raft id: (lower, higher).
fn ordered(a: &'static str, b: &'static str) -> (&'static str, &'static str) {
    if NodeId::from_name(a) < NodeId::from_name(b) {
        (a, b)
    } else {
        (b, a)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_two_nodes_discover_each_other_and_exchange_both_ways() {
    let ca = ClusterCa::generate("t01").unwrap();
    let mut n = cluster(&ca, &["node-a", "node-b"]);
    let deadline = Instant::now() + WAIT;
    let (a, b) = (n[0].t.clone(), n[1].t.clone());
    let (ra, rb) = tokio::join!(a.discover(deadline), b.discover(deadline));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    for list in [&ra, &rb] {
        assert_eq!(list.len(), 2);
        assert!(list.iter().any(|p| p.name == "node-a"
            && p.id == NodeId::from_name("node-a")
            && p.addr == a.local_addr()));
        assert!(list
            .iter()
            .any(|p| p.name == "node-b" && p.addr == b.local_addr()));
    }
    a.send(b.local_id(), vec![raft(1), raft(2)]);
    let m = recv(&mut n[1].rx).await;
    assert_eq!(m.from, a.local_id());
    assert_eq!(m.msgs, vec![raft(1), raft(2)]);
    let ka = PeerMessage::KeepAlive {
        session: SessionId(9),
        seq: 3,
    };
    b.send(a.local_id(), vec![ka.clone()]);
    let m = recv(&mut n[0].rx).await;
    assert_eq!((m.from, m.msgs), (b.local_id(), vec![ka]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_three_nodes_every_pair_exchanges_and_order_is_kept() {
    let ca = ClusterCa::generate("t02").unwrap();
    let mut n = cluster(&ca, &["n1", "n2", "n3"]);
    discover_all(&n).await;
    let ids: Vec<NodeId> = n.iter().map(|x| x.t.local_id()).collect();
    for (i, x) in n.iter().enumerate() {
        for (j, &to) in ids.iter().enumerate() {
            if i != j {
                for k in 0..50u8 {
                    x.t.send(to, vec![raft(k)]);
                }
            }
        }
    }
    for (j, node) in n.iter_mut().enumerate() {
        let mut got: Vec<(NodeId, Vec<PeerMessage>)> = Vec::new();
        while got.iter().map(|(_, m)| m.len()).sum::<usize>() < 100 {
            let m = recv(&mut node.rx).await;
            got.push((m.from, m.msgs));
        }
        for (i, &from) in ids.iter().enumerate() {
            if i == j {
                continue;
            }
            let seq: Vec<PeerMessage> = got
                .iter()
                .filter(|(f, _)| *f == from)
                .flat_map(|(_, m)| m.clone())
                .collect();
            assert_eq!(
                seq,
                (0..50).map(raft).collect::<Vec<_>>(),
                "from {i} to {j}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t03_a_certificate_from_another_ca_is_refused() {
    let ca = ClusterCa::generate("t03").unwrap();
    let other = ClusterCa::generate("t03-other").unwrap();
    let (sa, sm) = (socket(), socket());
    let addrs = [sa.local_addr().unwrap(), sm.local_addr().unwrap()];
    let mut a = start(sa, &tls(&ca, "node-a"), &addrs);
    let mallory_tls = tls(&other, "node-m");
    let m = start(sm, &mallory_tls, &addrs);
    let deadline = Instant::now() + Duration::from_millis(1200);
    let (ra, rm) = tokio::join!(a.t.discover(deadline), m.t.discover(deadline));
    match ra {
        Err(Error::Config(msg)) => assert!(msg.contains(&addrs[1].to_string()), "{msg}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    assert!(matches!(rm, Err(Error::Config(_))));
    // Even a well-formed frame never gets past the handshake.
    let frame = codec::encode(&FrameBody {
        from: NodeId::from_name("node-m"),
        msgs: vec![raft(1)],
    })
    .unwrap();
    let sent = send_raw(&mallory_tls, addrs[0], &frame, QUIET).await;
    assert!(matches!(sent, Err(Error::Tls(_))), "{sent:?}");
    m.t.send(a.t.local_id(), vec![raft(1)]);
    quiet(&mut a.rx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t04_a_frame_claiming_another_sender_is_dropped() {
    let ca = ClusterCa::generate("t04").unwrap();
    let mut n = cluster(&ca, &["node-a", "node-b"]);
    discover_all(&n).await;
    let a_addr = n[0].t.local_addr();
    // A valid member of the cluster (same CA) claims to be node-b.
    let frame = codec::encode(&FrameBody {
        from: n[1].t.local_id(),
        msgs: vec![raft(66)],
    })
    .unwrap();
    let code = send_raw(&tls(&ca, "mallory"), a_addr, &frame, WAIT)
        .await
        .unwrap();
    assert_eq!(code, Some(CLOSE_SPOOFED));
    // node-b itself claiming to be node-c is refused alike.
    let frame = codec::encode(&FrameBody {
        from: NodeId::from_name("node-c"),
        msgs: vec![raft(67)],
    })
    .unwrap();
    let code = send_raw(&tls(&ca, "node-b"), a_addr, &frame, WAIT)
        .await
        .unwrap();
    assert_eq!(code, Some(CLOSE_SPOOFED));
    quiet(&mut n[0].rx).await;
    let (a, b) = n.split_at_mut(1);
    deliver(&b[0], &mut a[0]).await;
    deliver(&a[0], &mut b[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t05_bad_bytes_close_only_that_connection_and_the_pair_recovers() {
    let ca = ClusterCa::generate("t05").unwrap();
    // The raw client presents the *lower* node's certificate, so its
    // connection replaces the pair's real one at the higher node; the pair
    // must recover when the lower node re-dials.
    let (low, high) = ordered("node-a", "node-b");
    let mut n = cluster(&ca, &[high, low]);
    discover_all(&n).await;
    let high_addr = n[0].t.local_addr();
    let low_tls = tls(&ca, low);
    let mut huge = MAGIC.to_vec();
    huge.push(VERSION);
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    let mut future_version = codec::encode(&FrameBody {
        from: NodeId::from_name(low),
        msgs: vec![raft(1)],
    })
    .unwrap();
    future_version[3] = VERSION + 1;
    let mut bad_payload = MAGIC.to_vec();
    bad_payload.push(VERSION);
    bad_payload.extend_from_slice(&5u32.to_be_bytes());
    bad_payload.extend_from_slice(&[0xff; 5]);
    let garbage = [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        huge,
        future_version,
        bad_payload,
    ];
    // Presenting the higher node's name to the lower node: such a
    // connection is never the pair's, so the close is always ours.
    let (high_tls, low_addr) = (tls(&ca, high), n[1].t.local_addr());
    for g in &garbage {
        let code = send_raw(&high_tls, low_addr, g, WAIT).await.unwrap();
        assert_eq!(code, Some(CLOSE_PROTOCOL), "{g:?}");
    }
    // Presenting the lower node's name to the higher node: it becomes the
    // pair's connection, and the real lower node re-dials, which may in
    // turn replace it before the garbage is read.
    for g in &garbage {
        let code = send_raw(&low_tls, high_addr, g, WAIT).await.unwrap();
        assert!(
            matches!(code, Some(CLOSE_PROTOCOL | CLOSE_DUPLICATE)),
            "{code:?} for {g:?}"
        );
    }
    quiet(&mut n[1].rx).await;
    quiet(&mut n[0].rx).await;
    let (h, l) = n.split_at_mut(1);
    deliver(&l[0], &mut h[0]).await;
    deliver(&h[0], &mut l[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t06_random_udp_datagrams_do_not_disturb_an_established_pair() {
    let ca = ClusterCa::generate("t06").unwrap();
    let mut n = cluster(&ca, &["node-a", "node-b"]);
    discover_all(&n).await;
    let junk = socket();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..300usize {
        let len = 1 + (i * 37) % 1400;
        let mut d = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            d.push(x as u8);
        }
        if i % 3 == 0 {
            d[0] = 0xc0; // looks like a QUIC long header
        }
        junk.send_to(&d, n[0].t.local_addr()).unwrap();
        junk.send_to(&d, n[1].t.local_addr()).unwrap();
    }
    let (a, b) = n.split_at_mut(1);
    deliver(&a[0], &mut b[0]).await;
    deliver(&b[0], &mut a[0]).await;
    quiet(&mut a[0].rx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t07_a_closed_node_gets_nothing_and_drop_stops_every_task() {
    let ca = ClusterCa::generate("t07").unwrap();
    let mut n = cluster(&ca, &["node-a", "node-b"]);
    discover_all(&n).await;
    let b = n.pop().unwrap();
    let mut a = n.pop().unwrap();
    a.t.close();
    b.t.send(a.t.local_id(), vec![raft(1)]);
    a.t.send(b.t.local_id(), vec![raft(2)]);
    quiet(&mut a.rx).await;
    // Dropping the last handle ends every task: they held the only other
    // senders of the incoming channel, so it closes.
    let Node { t, mut rx } = a;
    drop(t);
    let end = timeout(WAIT, async { while rx.recv().await.is_some() {} }).await;
    assert!(end.is_ok(), "tasks still hold the transport after drop");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t08_a_restarted_peer_on_the_same_address_is_reconnected() {
    let ca = ClusterCa::generate("t08").unwrap();
    // Restart the node that dials (lower id), then the one that waits.
    let (low, high) = ordered("node-a", "node-b");
    let mut n = cluster(&ca, &[low, high]);
    discover_all(&n).await;
    let addrs = [n[0].t.local_addr(), n[1].t.local_addr()];
    for (victim, name) in [(0, low), (1, high)] {
        let old = std::mem::replace(&mut n[victim], start(socket(), &tls(&ca, "spare"), &[]));
        old.t.close();
        drop(old);
        // Rebind its port (the old socket goes once its tasks are gone).
        let deadline = Instant::now() + WAIT;
        let sock = loop {
            match UdpSocket::bind(addrs[victim]) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("port not released: {e}"),
            }
        };
        n[victim] = start(sock, &tls(&ca, name), &addrs);
        let found = n[victim].t.discover(Instant::now() + WAIT).await.unwrap();
        assert_eq!(found.len(), 2);
        let (x, y) = n.split_at_mut(1);
        deliver(&x[0], &mut y[0]).await;
        deliver(&y[0], &mut x[0]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t09_self_in_the_peer_list_counts_once_and_shared_names_are_refused() {
    let ca = ClusterCa::generate("t09").unwrap();
    // Listed by its own address: found as itself, with that address.
    let s = socket();
    let addr = s.local_addr().unwrap();
    let a = start(s, &tls(&ca, "node-a"), &[addr]);
    let found = a.t.discover(Instant::now() + WAIT).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].id, found[0].addr), (a.t.local_id(), addr));
    // Not listed at all: added with its bound address.
    let a2 = start(socket(), &tls(&ca, "node-a2"), &[]);
    let found = a2.t.discover(Instant::now() + WAIT).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].addr, a2.t.local_addr());

    // Two addresses presenting node-b's certificate.
    let (s0, s1, s2) = (socket(), socket(), socket());
    let addrs = [
        s0.local_addr().unwrap(),
        s1.local_addr().unwrap(),
        s2.local_addr().unwrap(),
    ];
    let x = start(s0, &tls(&ca, "node-x"), &addrs);
    let b_tls = tls(&ca, "node-b");
    let _b1 = start(s1, &b_tls, &[]);
    let _b2 = start(s2, &b_tls, &[]);
    match x.t.discover(Instant::now() + WAIT).await {
        Err(Error::Config(msg)) => assert!(msg.contains("node-b"), "{msg}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    // Another address presenting this node's own name.
    let (s0, s1) = (socket(), socket());
    let addrs = [s0.local_addr().unwrap(), s1.local_addr().unwrap()];
    let y_tls = tls(&ca, "node-y");
    let y = start(s0, &y_tls, &addrs);
    let _twin = start(s1, &y_tls, &[]);
    match y.t.discover(Instant::now() + WAIT).await {
        Err(Error::Config(msg)) => assert!(msg.contains(&addrs[1].to_string()), "{msg}"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_unreachable_peers_and_bad_binds_are_clear_errors() {
    let ca = ClusterCa::generate("t10").unwrap();
    let silent = socket(); // bound, but nothing answers QUIC on it
    let dead = silent.local_addr().unwrap();
    let a = start(socket(), &tls(&ca, "node-a"), &[dead]);
    match a
        .t
        .discover(Instant::now() + Duration::from_millis(600))
        .await
    {
        Err(Error::Config(msg)) => {
            assert!(
                msg.contains(&dead.to_string()) && msg.contains("could not reach"),
                "{msg}"
            )
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    let (tx, _rx) = mpsc::channel(1);
    let taken = a.t.local_addr();
    match QuicTransport::bind(taken, None, &tls(&ca, "node-b"), vec![], tx) {
        Err(Error::Io(e)) => assert!(e.to_string().contains(&taken.to_string()), "{e}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    // Unknown destinations and empty batches are dropped quietly.
    a.t.send(NodeId::from_name("nobody"), vec![raft(1)]);
    a.t.send(a.t.local_id(), vec![raft(1)]);
}

/// Restarting must take well under the dead connection's idle timeout.
const AT_ONCE: Duration = Duration::from_secs(1);

/// How the crashed node comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Back {
    /// Same address, same certificate and key.
    Same,
    /// Another address (same certificate).
    NewAddress,
    /// Another address, and the lower peer is not among its configured
    /// addresses: it learns it (as a restarted member learns the others
    /// from its data directory or the member table, issue 9).
    NewAddressLearned,
    /// Same address, a re-issued certificate with a new key.
    NewKey,
}

/// Connects a lower and a higher node, crashes the higher one (no close
/// frame: its peer keeps a connection to a process that is gone), leaves it
/// down for `down`, restarts it with the same identity on the same address
/// (running discovery if `discover`), and checks both directions deliver
/// within [`AT_ONCE`] of the restart.
async fn crash_and_restart_the_higher_node(cluster: &str, down: Duration, discover: bool) {
    crash_and_restart(cluster, down, discover, Back::Same).await;
}

/// As [`crash_and_restart_the_higher_node`], coming back as `back` says.
async fn crash_and_restart(cluster: &str, down: Duration, discover: bool, back: Back) {
    assert!(AT_ONCE < peerlock_transport::IDLE_TIMEOUT);
    let ca = ClusterCa::generate(cluster).unwrap();
    let (low, high) = ordered("node-a", "node-b");
    let (sl, sh) = (socket(), socket());
    let addrs = [sl.local_addr().unwrap(), sh.local_addr().unwrap()];
    let high_tls = tls(&ca, high);
    let mut l = start(sl, &tls(&ca, low), &addrs);
    // The doomed process gets a runtime of its own: dropping it drops
    // every task without running it again, so nothing says goodbye.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tls_h, peers) = (high_tls.clone(), addrs.to_vec());
    let mut h = doomed
        .spawn(async move { start(sh, &tls_h, &peers) })
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let th = h.t.clone();
    let (rl, rh) = tokio::join!(
        l.t.discover(deadline),
        doomed.spawn(async move { th.discover(deadline).await })
    );
    assert_eq!(rl.unwrap().len(), 2);
    assert_eq!(rh.unwrap().unwrap().len(), 2);
    deliver(&l, &mut h).await;
    deliver(&h, &mut l).await;

    // kill -9: the runtime is gone (every task dropped, none polled again)
    // before the handle is dropped, so no close frame can leave.
    tokio::task::spawn_blocking(move || drop(doomed))
        .await
        .unwrap();
    drop(h);
    tokio::time::sleep(down).await;
    let deadline = Instant::now() + WAIT;
    let sock = loop {
        if matches!(back, Back::NewAddress | Back::NewAddressLearned) {
            break socket();
        }
        match UdpSocket::bind(addrs[1]) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("port not released: {e}"),
        }
    };
    let high_tls = match back {
        Back::NewKey => tls(&ca, high),
        Back::Same | Back::NewAddress | Back::NewAddressLearned => high_tls,
    };
    let addrs = [addrs[0], sock.local_addr().unwrap()];
    let restarted = Instant::now();
    let mut h = if back == Back::NewAddressLearned {
        let h = start(sock, &high_tls, &addrs[1..]);
        h.t.learn_peer(NodeId::from_name(low), low, addrs[0]);
        h
    } else {
        start(sock, &high_tls, &addrs)
    };
    if discover {
        let found = timeout(WAIT, h.t.discover(Instant::now() + WAIT))
            .await
            .expect("discovery in time")
            .unwrap();
        assert_eq!(found.len(), 2);
    }
    // Both ways, well within the idle timeout of the dead connection.
    // (Without discovery the restarted node learns of the lower one from
    // its connection, so the lower node must notice on its own.)
    let within = |what: &str| {
        let took = restarted.elapsed();
        assert!(took < AT_ONCE, "{what} took {took:?} after the restart");
    };
    timeout(AT_ONCE, deliver(&h, &mut l))
        .await
        .unwrap_or_else(|_| panic!("restarted {high} -> {low}: nothing within {AT_ONCE:?}"));
    within("restarted -> lower");
    timeout(AT_ONCE, deliver(&l, &mut h))
        .await
        .unwrap_or_else(|_| panic!("{low} -> restarted {high}: nothing within {AT_ONCE:?}"));
    within("lower -> restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t11_a_crashed_and_restarted_peer_is_reachable_at_once() {
    // The higher id waits for the lower id's connection. When it crashes
    // and restarts on the same address, the lower node must drop the dead
    // process's connection and re-dial at once, not after the 3 s idle
    // timeout. Restarting runs discovery, whose probe is the cue.
    crash_and_restart_the_higher_node("t11", Duration::ZERO, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_a_peer_restarted_later_without_discovery_is_noticed_at_once() {
    // Down for half the idle timeout, and no discovery probe to cue the
    // lower node: its keep-alives (every 500 ms, answered or not) reach
    // the new process, which must reset the dead connection.
    crash_and_restart_the_higher_node("t12", Duration::from_millis(1500), false).await;
}

/// A message of `len` bytes whose content says where each byte was.
fn big(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Waits (bounded by `wait`) for a delivery whose one message is `want`.
async fn recv_whole(rx: &mut mpsc::Receiver<Incoming>, want: &[u8], wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = timeout(left, rx.recv())
            .await
            .expect("the large message in time")
            .expect("channel open");
        for msg in m.msgs {
            if let PeerMessage::Raft(b) = msg {
                if b.len() == want.len() {
                    assert!(b == want, "the large message arrived altered");
                    return;
                }
            }
        }
    }
}

/// Two discovered nodes, (lower, higher).
async fn pair(cluster_name: &str) -> (Node, Node) {
    let ca = ClusterCa::generate(cluster_name).unwrap();
    let (low, high) = ordered("node-a", "node-b");
    let mut n = cluster(&ca, &[low, high]);
    discover_all(&n).await;
    let h = n.pop().unwrap();
    let l = n.pop().unwrap();
    (l, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_issue_8_a_message_larger_than_a_frame_arrives_whole() {
    // A snapshot of a large lock table is bigger than the 64 MiB frame
    // limit: it used to be dropped at framing, every time. Both
    // directions (the lower node dialed the pair's connection).
    let (mut l, mut h) = pair("t13").await;
    deliver(&l, &mut h).await;
    deliver(&h, &mut l).await;
    let msg = big(codec::MAX_FRAME + 5 * 1024 * 1024);
    l.t.send(h.t.local_id(), vec![PeerMessage::Raft(msg.clone())]);
    recv_whole(&mut h.rx, &msg, Duration::from_secs(60)).await;
    h.t.send(l.t.local_id(), vec![PeerMessage::Raft(msg.clone())]);
    recv_whole(&mut l.rx, &msg, Duration::from_secs(60)).await;
    // Small messages still flow.
    deliver(&l, &mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_issue_8_control_messages_are_not_queued_behind_a_bulk_transfer() {
    // A heartbeat sent right after a 60 MiB snapshot (small enough for one
    // frame) used to wait for all of it on the pair's one stream.
    let (l, mut h) = pair("t14").await;
    deliver(&l, &mut h).await;
    let snapshot = big(60 * 1024 * 1024);
    l.t.send(h.t.local_id(), vec![PeerMessage::Raft(snapshot.clone())]);
    l.t.send(h.t.local_id(), vec![raft(9)]);
    let first = recv(&mut h.rx).await;
    assert_eq!(
        first.msgs,
        vec![raft(9)],
        "the heartbeat-sized message came after the bulk one"
    );
    recv_whole(&mut h.rx, &snapshot, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t15_issue_8_a_cut_bulk_stream_is_dropped_whole_and_the_next_arrives() {
    use peerlock_transport::bulk::{encode_header, MAX_BULK};
    let ca = ClusterCa::generate("t15").unwrap();
    let mut b = start(socket(), &tls(&ca, "node-b"), &[]);
    let x_tls = tls(&ca, "node-x");
    let x = NodeId::from_name("node-x");
    let to = b.t.local_addr();
    let msg = big(3 * 1024 * 1024);
    // Cut: the header announces 3 MiB, the stream ends after 1 MiB.
    let mut cut = encode_header(x, msg.len() as u64).to_vec();
    cut.extend_from_slice(&msg[..1024 * 1024]);
    let code = send_raw(&x_tls, to, &cut, QUIET).await.unwrap();
    assert_eq!(code, None, "a cut stream is not a protocol violation");
    quiet(&mut b.rx).await;
    // Whole: delivered as one ordinary Raft message.
    let mut whole = encode_header(x, msg.len() as u64).to_vec();
    whole.extend_from_slice(&msg);
    send_raw(&x_tls, to, &whole, Duration::from_millis(100))
        .await
        .unwrap();
    let got = recv(&mut b.rx).await;
    assert_eq!(got.from, x);
    assert!(got.msgs == vec![PeerMessage::Raft(msg)]);
    // Over the maximum: refused from the header, before any allocation.
    let huge = encode_header(x, MAX_BULK as u64 + 1);
    let code = send_raw(&x_tls, to, &huge, WAIT).await.unwrap();
    assert_eq!(code, Some(CLOSE_PROTOCOL));
    // Claiming another sender: refused too.
    let spoofed = encode_header(NodeId::from_name("node-y"), 10);
    let code = send_raw(&x_tls, to, &spoofed, WAIT).await.unwrap();
    assert_eq!(code, Some(CLOSE_SPOOFED));
    quiet(&mut b.rx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t16_issue_8_a_transfer_cut_by_a_restart_is_sent_again_whole() {
    // The receiver restarts in the middle of a 100 MiB transfer: nothing
    // partial is delivered, and the message sent again (as Raft does)
    // arrives whole over the new connection.
    let ca = ClusterCa::generate("t16").unwrap();
    let (low, high) = ordered("node-a", "node-b");
    let mut n = cluster(&ca, &[low, high]);
    discover_all(&n).await;
    let addrs = [n[0].t.local_addr(), n[1].t.local_addr()];
    let (x, y) = n.split_at_mut(1);
    deliver(&x[0], &mut y[0]).await;
    let msg = big(100 * 1024 * 1024);
    x[0].t
        .send(y[0].t.local_id(), vec![PeerMessage::Raft(msg.clone())]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let old = n.pop().unwrap();
    old.t.close();
    let Node { t, mut rx } = old;
    drop(t);
    while let Ok(Some(m)) = timeout(QUIET, rx.recv()).await {
        for msg in m.msgs {
            if let PeerMessage::Raft(b) = msg {
                assert!(b.len() < 1024, "a partial transfer was delivered");
            }
        }
    }
    let deadline = Instant::now() + WAIT;
    let sock = loop {
        match UdpSocket::bind(addrs[1]) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("port not released: {e}"),
        }
    };
    n.push(start(sock, &tls(&ca, high), &addrs));
    n[1].t.discover(Instant::now() + WAIT).await.unwrap();
    let (x, y) = n.split_at_mut(1);
    deliver(&x[0], &mut y[0]).await;
    x[0].t
        .send(y[0].t.local_id(), vec![PeerMessage::Raft(msg.clone())]);
    recv_whole(&mut y[0].rx, &msg, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t17_issue_8_a_peer_restarted_on_a_new_address_is_reachable_at_once() {
    // Nothing answers at the old address, so no stateless reset ends the
    // lower node's connection to the dead process: the restarted node's
    // discovery probe (from its new address) must retire it, and the lower
    // node must dial the new address.
    crash_and_restart("t17", Duration::ZERO, true, Back::NewAddress).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t18_issue_8_a_peer_restarted_with_a_reissued_key_is_reachable_at_once() {
    // A new key derives other reset and connection-ID keys, so the new
    // process cannot reset the old connection: the probe presenting
    // another certificate must retire it.
    crash_and_restart("t18", Duration::ZERO, true, Back::NewKey).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t22_issue_9_a_peer_restarted_on_a_new_address_that_learns_the_lower_peer_is_reachable_at_once(
) {
    // A joined member restarts from its data directory on a new address;
    // its start-up discovery probes only its seeds, and the lower peer is
    // not one. Only the lower peer dials the pair, so learning it must
    // send it a probe from the new address, or the two never talk again.
    crash_and_restart("t22", Duration::ZERO, false, Back::NewAddressLearned).await;
}

/// A certificate with no SANs at all, as cert-manager or SPIFFE issue them
/// before the pod's address exists: only the common name matters.
fn tls_no_sans(ca: &ClusterCa, name: &str) -> TlsConfig {
    ca.issue_node(name, &[]).unwrap()
}

fn frame_from(name: &str) -> Vec<u8> {
    codec::encode(&FrameBody {
        from: NodeId::from_name(name),
        msgs: vec![raft(1)],
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t19_issue_9_certificates_without_ip_sans_connect() {
    let ca = ClusterCa::generate("t19").unwrap();
    let (sa, sb) = (socket(), socket());
    let addrs = [sa.local_addr().unwrap(), sb.local_addr().unwrap()];
    let mut a = start(sa, &tls_no_sans(&ca, "node-a"), &addrs);
    let mut b = start(sb, &tls_no_sans(&ca, "node-b"), &addrs);
    let deadline = Instant::now() + WAIT;
    let (ra, rb) = tokio::join!(a.t.discover(deadline), b.t.discover(deadline));
    for list in [ra.unwrap(), rb.unwrap()] {
        let mut names: Vec<String> = list.into_iter().map(|p| p.name).collect();
        names.sort();
        assert_eq!(names, ["node-a", "node-b"]);
    }
    deliver(&a, &mut b).await;
    deliver(&b, &mut a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_issue_9_another_cas_certificate_is_refused_by_dialer_and_acceptor() {
    let ca = ClusterCa::generate("t20").unwrap();
    let other = ClusterCa::generate("t20-other").unwrap();
    let (sa, sm) = (socket(), socket());
    let addrs = [sa.local_addr().unwrap(), sm.local_addr().unwrap()];
    let mut a = start(sa, &tls_no_sans(&ca, "node-a"), &addrs);
    // Mallory trusts this cluster's CA as well as her own, so she accepts
    // node-a's certificate: every refusal below is node-a's.
    let (cert, key) = other.issue_node_pem("node-m", &[]).unwrap();
    let bundle = format!("{}{}", ca.ca_pem(), other.ca_pem());
    let mallory_tls = TlsConfig::from_pem(&bundle, &cert, &key).unwrap();
    let m = start(sm, &mallory_tls, &[addrs[1]]);

    // node-a dials: its verifier refuses Mallory's server certificate.
    match a
        .t
        .discover(Instant::now() + Duration::from_millis(1200))
        .await
    {
        Err(Error::Config(msg)) => assert!(msg.contains(&addrs[1].to_string()), "{msg}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    // Mallory dials: node-a's acceptor refuses her client certificate, so
    // not even a well-formed frame gets through.
    let sent = send_raw(&mallory_tls, addrs[0], &frame_from("node-m"), QUIET).await;
    assert!(!matches!(sent, Ok(Some(_))), "{sent:?}");
    m.t.add_peers(vec![peerlock_transport::PeerInfo {
        id: a.t.local_id(),
        name: "node-a".into(),
        addr: addrs[0],
    }]);
    m.t.send(a.t.local_id(), vec![raft(1)]);
    quiet(&mut a.rx).await;
    assert!(a.t.known_peers().iter().all(|p| p.name != "node-m"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t21_issue_9_a_ca_bundle_lets_old_and_new_ca_nodes_talk_during_rotation() {
    let (ca1, ca2) = (
        ClusterCa::generate("t21").unwrap(),
        ClusterCa::generate("t21-new").unwrap(),
    );
    let bundle = format!("{}{}", ca1.ca_pem(), ca2.ca_pem());
    let with_bundle = |ca: &ClusterCa, name: &str| {
        let (cert, key) = ca.issue_node_pem(name, &[]).unwrap();
        TlsConfig::from_pem(&bundle, &cert, &key).unwrap()
    };
    // node-a already moved to the new CA, node-b not yet; both trust both.
    let a_tls = with_bundle(&ca2, "node-a");
    let b_tls = with_bundle(&ca1, "node-b");
    let c_tls = tls_no_sans(&ca1, "node-c");
    // The data directory check sees one cluster throughout.
    assert_eq!(a_tls.ca_fingerprint(), c_tls.ca_fingerprint());
    assert_eq!(b_tls.ca_fingerprint(), c_tls.ca_fingerprint());

    let (sa, sb, sc) = (socket(), socket(), socket());
    let addrs = [
        sa.local_addr().unwrap(),
        sb.local_addr().unwrap(),
        sc.local_addr().unwrap(),
    ];
    let mut a = start(sa, &a_tls, &addrs[..2]);
    let mut b = start(sb, &b_tls, &addrs[..2]);
    let deadline = Instant::now() + WAIT;
    let (ra, rb) = tokio::join!(a.t.discover(deadline), b.t.discover(deadline));
    assert_eq!((ra.unwrap().len(), rb.unwrap().len()), (2, 2));
    deliver(&a, &mut b).await;
    deliver(&b, &mut a).await;

    // node-c trusts only the old CA: it refuses node-a as a server ...
    let mut c = start(sc, &c_tls, &[addrs[2], addrs[0]]);
    match c
        .t
        .discover(Instant::now() + Duration::from_millis(1200))
        .await
    {
        Err(Error::Config(msg)) => assert!(msg.contains(&addrs[0].to_string()), "{msg}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    // ... and as a client.
    let sent = send_raw(&a_tls, addrs[2], &frame_from("node-a"), QUIET).await;
    assert!(!matches!(sent, Ok(Some(_))), "{sent:?}");
    quiet(&mut c.rx).await;
    assert!(c.t.known_peers().iter().all(|p| p.name != "node-a"));
}
