//! Connections on demand (issue 10): a pair's connection is closed once the
//! pair stopped talking, and opened again, by either side, when one has a
//! message for the other; a restarted peer is still reached at once. Over
//! real sockets on 127.0.0.1, with the idle time shortened
//! (`set_idle_close`); every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::transport::{Incoming, PeerMessage, Transport};
use peerlock_core::NodeId;
use peerlock_transport::{ClusterCa, QuicTransport, TlsConfig};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// Long enough for anything on loopback; only reached when a test fails.
const WAIT: Duration = Duration::from_secs(5);
/// The idle time the tests give connections.
const IDLE: Duration = Duration::from_millis(300);
/// How fast a message to a peer with no connection must get through
/// (a dial request and a dial: two handshakes on loopback), and how fast a
/// restarted peer must be reached; as `quic/restart.rs`'s `AT_ONCE`.
const AT_ONCE: Duration = Duration::from_secs(1);

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

fn tls(ca: &ClusterCa, name: &str) -> TlsConfig {
    ca.issue_node(name, &["127.0.0.1"]).unwrap()
}

fn start(sock: UdpSocket, tls: &TlsConfig, peers: &[SocketAddr]) -> Node {
    let (tx, rx) = mpsc::channel(256);
    let t = QuicTransport::bind_socket(sock, None, tls, peers.to_vec(), tx).unwrap();
    t.set_idle_close(IDLE);
    Node { t, rx }
}

/// Two names ordered by Raft id: (lower, higher).
fn ordered(a: &'static str, b: &'static str) -> (&'static str, &'static str) {
    if NodeId::from_name(a) < NodeId::from_name(b) {
        (a, b)
    } else {
        (b, a)
    }
}

/// Starts one transport per name, all configured with all addresses, and
/// runs their discovery.
async fn cluster(ca: &ClusterCa, names: &[&str]) -> Vec<Node> {
    let socks: Vec<UdpSocket> = names.iter().map(|_| socket()).collect();
    let addrs: Vec<SocketAddr> = socks.iter().map(|s| s.local_addr().unwrap()).collect();
    let nodes: Vec<Node> = socks
        .into_iter()
        .zip(names)
        .map(|(s, n)| start(s, &tls(ca, n), &addrs))
        .collect();
    let deadline = Instant::now() + WAIT;
    let found = futures_join(nodes.iter().map(|n| n.t.clone()), deadline).await;
    assert!(found.iter().all(|&k| k == names.len()));
    nodes
}

async fn futures_join(
    ts: impl Iterator<Item = Arc<QuicTransport>>,
    deadline: Instant,
) -> Vec<usize> {
    let handles: Vec<_> = ts
        .map(|t| tokio::spawn(async move { t.discover(deadline).await.unwrap().len() }))
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Sends one message and waits for it, bounded by `within`; returns how
/// long it took.
async fn send_one(from: &Node, to: &mut Node, n: u8, within: Duration) -> Duration {
    let t0 = Instant::now();
    from.t
        .send(to.t.local_id(), vec![PeerMessage::Raft(vec![n; 3])]);
    let got = timeout(within, to.rx.recv())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} -> {}: nothing within {within:?}",
                from.t.local_name(),
                to.t.local_name()
            )
        })
        .expect("channel open");
    assert_eq!(got.from, from.t.local_id());
    assert_eq!(got.msgs, vec![PeerMessage::Raft(vec![n; 3])]);
    t0.elapsed()
}

/// Waits (bounded) until every node in `nodes` has `n` open connections.
async fn connections_become(nodes: &[&Node], n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now: Vec<usize> = nodes.iter().map(|x| x.t.open_connections()).collect();
        if now.iter().all(|&k| k == n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "open connections {now:?}, want {n} each, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_issue_10_an_idle_pair_closes_and_reopens_on_demand() {
    let ca = ClusterCa::generate("od01").unwrap();
    let (low, high) = ordered("node-a", "node-b");
    let mut v = cluster(&ca, &[low, high]).await;
    let mut h = v.pop().unwrap();
    let mut l = v.pop().unwrap();
    send_one(&l, &mut h, 1, WAIT).await;
    send_one(&h, &mut l, 2, WAIT).await;
    connections_become(&[&l, &h], 1, WAIT).await;
    // Unused: closed by the lower id, seen closed by both.
    connections_become(&[&l, &h], 0, IDLE + WAIT).await;
    // Either side's message opens it again, several times over.
    for round in 0..3u8 {
        let took = send_one(&l, &mut h, 10 + round, AT_ONCE).await;
        eprintln!("round {round}: lower -> higher on a closed pair took {took:?}");
        send_one(&h, &mut l, 20 + round, AT_ONCE).await;
        connections_become(&[&l, &h], 0, IDLE + WAIT).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_issue_10_the_higher_id_sending_first_gets_through_at_once() {
    let ca = ClusterCa::generate("od02").unwrap();
    let (low, high) = ordered("node-c", "node-d");
    let mut v = cluster(&ca, &[low, high]).await;
    let mut h = v.pop().unwrap();
    let mut l = v.pop().unwrap();
    connections_become(&[&l, &h], 0, IDLE + WAIT).await;
    let mut worst = Duration::ZERO;
    for round in 0..3u8 {
        // Only the higher id has something to say: it must ask the lower
        // one to dial (the lower id owns the pair's connection).
        let took = send_one(&h, &mut l, round, AT_ONCE).await;
        worst = worst.max(took);
        connections_become(&[&l, &h], 1, WAIT).await;
        connections_become(&[&l, &h], 0, IDLE + WAIT).await;
    }
    eprintln!("higher -> lower on a closed pair: worst {worst:?}");
    // And the answer goes back on the connection it opened.
    send_one(&h, &mut l, 9, AT_ONCE).await;
    send_one(&l, &mut h, 9, AT_ONCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t03_issue_10_a_pair_that_talks_stays_connected_and_others_close() {
    let ca = ClusterCa::generate("od03").unwrap();
    let mut v = cluster(&ca, &["node-e", "node-f", "node-g"]).await;
    let mut g = v.pop().unwrap();
    let f = v.pop().unwrap();
    let e = v.pop().unwrap();
    // e talks to g, as a leader to a member, for over 4 idle times; f is
    // silent, so its pairs close, and e's and g's pair never does.
    let until = Instant::now() + IDLE * 5;
    let mut n = 0u8;
    let mut saw_e_g_closed = false;
    while Instant::now() < until {
        send_one(&e, &mut g, n, WAIT).await;
        n = n.wrapping_add(1);
        tokio::time::sleep(IDLE / 4).await;
        if Instant::now() + IDLE * 3 < until {
            continue;
        }
        // By now every pair of f's has been idle for over an idle time.
        saw_e_g_closed |= e.t.open_connections() != 1 || g.t.open_connections() != 1;
        assert_eq!(f.t.open_connections(), 0, "f's pairs closed");
    }
    assert!(!saw_e_g_closed, "the pair that talks kept its connection");
}

/// Which node of an idle pair crashes (`kill -9`: no close frame leaves)
/// and comes back on the same address without running discovery.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Crash {
    Lower,
    Higher,
}

async fn crash_and_restart_while_idle(crash: Crash) {
    let ca = ClusterCa::generate("od04").unwrap();
    let (low, high) = ordered("node-h", "node-i");
    let (sl, sh) = (socket(), socket());
    let addrs = [sl.local_addr().unwrap(), sh.local_addr().unwrap()];
    let (doomed_name, doomed_sock, stay_name, stay_sock) = match crash {
        Crash::Lower => (low, sl, high, sh),
        Crash::Higher => (high, sh, low, sl),
    };
    let doomed_tls = tls(&ca, doomed_name);
    let mut s = start(stay_sock, &tls(&ca, stay_name), &addrs);
    // The doomed process gets a runtime of its own: dropping it drops
    // every task without running it again, so nothing says goodbye.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (dt, peers) = (doomed_tls.clone(), addrs.to_vec());
    let mut d = doomed
        .spawn(async move { start(doomed_sock, &dt, &peers) })
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let td = d.t.clone();
    let (rs, rd) = tokio::join!(
        s.t.discover(deadline),
        doomed.spawn(async move { td.discover(deadline).await })
    );
    assert_eq!(rs.unwrap().len(), 2);
    assert_eq!(rd.unwrap().unwrap().len(), 2);
    send_one(&s, &mut d, 1, WAIT).await;
    send_one(&d, &mut s, 2, WAIT).await;
    connections_become(&[&s, &d], 0, IDLE + WAIT).await;

    tokio::task::spawn_blocking(move || drop(doomed))
        .await
        .unwrap();
    drop(d);
    let doomed_addr = match crash {
        Crash::Lower => addrs[0],
        Crash::Higher => addrs[1],
    };
    let deadline = Instant::now() + WAIT;
    let sock = loop {
        match UdpSocket::bind(doomed_addr) {
            Ok(sock) => break sock,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("port not released: {e}"),
        }
    };
    let mut d = start(sock, &doomed_tls, &addrs);
    // It knows its peer (a restart's recorded members), runs no discovery.
    d.t.learn_peer(s.t.local_id(), stay_name, s.t.advertised_addr());
    let took = send_one(&s, &mut d, 3, AT_ONCE).await;
    eprintln!("{crash:?} restarted: the other reached it in {took:?}");
    send_one(&d, &mut s, 4, AT_ONCE).await;
    // And the restarted node speaking first, after the pair idled again.
    connections_become(&[&s, &d], 0, IDLE + WAIT).await;
    send_one(&d, &mut s, 5, AT_ONCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t04_issue_10_a_restarted_lower_peer_of_an_idle_pair_is_reached_at_once() {
    crash_and_restart_while_idle(Crash::Lower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t05_issue_10_a_restarted_higher_peer_of_an_idle_pair_is_reached_at_once() {
    crash_and_restart_while_idle(Crash::Higher).await;
}
