//! Certificate rotation without a restart (issue 12, item 5), at the
//! handshake level: `reload_tls` changes what new connections present and
//! trust, on the accepting and the dialing side; connections already up
//! stay up; a CA dropped from the bundle is refused; a reload cannot
//! rename a node. Over real sockets on 127.0.0.1; every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::transport::{Incoming, PeerMessage, Transport};
use peerlock_core::Error;
use peerlock_transport::{testing, ClusterCa, QuicTransport, TlsConfig};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// Long enough for anything on loopback; only reached when a test fails.
const WAIT: Duration = Duration::from_secs(5);

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

/// Two transports of `ca`, `names` in order, each configured with both
/// addresses, after discovery.
async fn pair(ca: &ClusterCa, names: [&str; 2]) -> (Node, Node) {
    let socks = [socket(), socket()];
    let addrs: Vec<SocketAddr> = socks.iter().map(|s| s.local_addr().unwrap()).collect();
    let mut nodes = Vec::new();
    for (s, n) in socks.into_iter().zip(names) {
        let (tx, rx) = mpsc::channel(256);
        let tls = ca.issue_node(n, &[]).unwrap();
        let t = QuicTransport::bind_socket(s, None, &tls, addrs.clone(), tx).unwrap();
        nodes.push(Node { t, rx });
    }
    let deadline = Instant::now() + WAIT;
    let (a, b) = (nodes[0].t.clone(), nodes[1].t.clone());
    let (ra, rb) = tokio::join!(a.discover(deadline), b.discover(deadline));
    assert_eq!((ra.unwrap().len(), rb.unwrap().len()), (2, 2));
    let b = nodes.pop().unwrap();
    (nodes.pop().unwrap(), b)
}

/// Sends one message from `from` to `to` and waits for it.
async fn one_way(from: &Node, to: &mut Node, n: u8) {
    from.t
        .send(to.t.local_id(), vec![PeerMessage::Raft(vec![n; 3])]);
    let got = timeout(WAIT, to.rx.recv())
        .await
        .unwrap_or_else(|_| panic!("message {n}: nothing within {WAIT:?}"))
        .unwrap();
    assert_eq!(got.msgs, vec![PeerMessage::Raft(vec![n; 3])]);
}

/// Sends one message each way and waits for both.
async fn exchange(a: &mut Node, b: &mut Node, n: u8) {
    one_way(a, b, n).await;
    one_way(b, a, n).await;
}

/// The leaf certificate (DER) of a configuration.
fn leaf(tls: &TlsConfig) -> Vec<u8> {
    tls.certificate_der().to_vec()
}

/// Issues `name` from `ca`, trusting `bundle`.
fn issue(ca: &ClusterCa, name: &str, bundle: &str) -> TlsConfig {
    ca.issue_node_trusting(name, &[], bundle).unwrap()
}

/// Closes the pair's connection, sends both ways (which re-makes it: a
/// new handshake), and checks what each side's peer presented in it.
async fn reconnect_and_check(a: &mut Node, b: &mut Node, n: u8, a_cert: &[u8], b_cert: &[u8]) {
    let closed = a.t.close_connections();
    assert!(closed >= 1, "the pair had its connection");
    exchange(a, b, n).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = |by: &Node, of: &Node| {
            by.t.peer_certificates()
                .into_iter()
                .find(|(name, _)| name == of.t.local_name())
                .map(|(_, cert)| cert)
        };
        let (seen_by_a, seen_by_b) = (seen(a, b), seen(b, a));
        let ok = seen_by_a.as_deref() == Some(b_cert) && seen_by_b.as_deref() == Some(a_cert);
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "step {n}: the new connection does not carry the expected certificates (a sees b's: {}, b sees a's: {}; None: no connection)",
            seen_by_a.map(|c| c == b_cert).map_or("None", |m| if m { "right" } else { "old" }),
            seen_by_b.map(|c| c == a_cert).map_or("None", |m| if m { "right" } else { "old" }),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_a_ca_rolls_in_three_reloads_and_every_new_handshake_uses_the_new_material() {
    let old = ClusterCa::generate("rot-old").unwrap();
    let new = ClusterCa::generate("rot-new").unwrap();
    let both = ClusterCa::bundle_pem(&[&old, &new]);
    let (mut a, mut b) = pair(&old, ["rot-a", "rot-b"]).await;
    exchange(&mut a, &mut b, 1).await;

    // A certificate of the old CA, to probe with (trusting both CAs, so
    // only the probed node can refuse): accepted until the old CA leaves
    // the probed node's bundle.
    let stranger = issue(&old, "rot-x", &both);
    let probe = |to: SocketAddr, tls: TlsConfig| async move {
        testing::send_raw(&tls, to, b"", Duration::from_millis(200)).await
    };

    // Step 1: both trust both CAs, same certificates.
    let a1 = issue(&old, "rot-a", &both);
    let b1 = issue(&old, "rot-b", &both);
    a.t.reload_tls(&a1).unwrap();
    b.t.reload_tls(&b1).unwrap();
    reconnect_and_check(&mut a, &mut b, 2, &leaf(&a1), &leaf(&b1)).await;

    // Step 2: re-issued from the new CA, one node after the other. The
    // connection made before the reload stays up and keeps working.
    let b2 = issue(&new, "rot-b", &both);
    b.t.reload_tls(&b2).unwrap();
    assert_eq!(a.t.open_connections(), 1, "a reload closes nothing");
    exchange(&mut a, &mut b, 3).await;
    let b_seen = a.t.peer_certificates();
    assert_eq!(b_seen.len(), 1);
    assert_eq!(b_seen[0].1, leaf(&b1), "no new handshake yet");
    reconnect_and_check(&mut a, &mut b, 4, &leaf(&a1), &leaf(&b2)).await;
    let a2 = issue(&new, "rot-a", &both);
    a.t.reload_tls(&a2).unwrap();
    reconnect_and_check(&mut a, &mut b, 5, &leaf(&a2), &leaf(&b2)).await;
    // The old CA is still trusted here.
    assert!(probe(a.t.local_addr(), stranger.clone()).await.is_ok());

    // Step 3: the old CA dropped.
    a.t.reload_tls(&a2.with_ca_bundle(&new.ca_pem()).unwrap())
        .unwrap();
    b.t.reload_tls(&b2.with_ca_bundle(&new.ca_pem()).unwrap())
        .unwrap();
    reconnect_and_check(&mut a, &mut b, 6, &leaf(&a2), &leaf(&b2)).await;

    // Refused now on the accepting side: a client certificate of the old
    // CA does not get a connection...
    for t in [&a.t, &b.t] {
        let refused = probe(t.local_addr(), stranger.clone()).await;
        assert!(matches!(refused, Err(Error::Tls(_))), "{refused:?}");
    }
    // ... and on the dialing side: a node presenting an old-CA server
    // certificate is not taken as a peer (it trusts both, so only the
    // dialer's check can refuse).
    let (tx, _rx) = mpsc::channel(16);
    let x =
        QuicTransport::bind_socket(socket(), None, &issue(&old, "rot-y", &both), Vec::new(), tx)
            .unwrap();
    assert_eq!(a.t.add_seed_addrs([x.local_addr()]), 1);
    let found =
        a.t.discover_reachable(Instant::now() + Duration::from_millis(500))
            .await
            .unwrap();
    assert!(
        found.iter().all(|p| p.name != "rot-y"),
        "a peer of the dropped CA was taken: {found:?}"
    );
    // The pair still works.
    exchange(&mut a, &mut b, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_a_reload_cannot_rename_the_node_and_changes_nothing_when_refused() {
    let ca = ClusterCa::generate("rot-names").unwrap();
    let (mut a, mut b) = pair(&ca, ["ren-a", "ren-b"]).await;
    let before = a.t.tls_config();
    for bad in [
        ca.issue_node("ren-z", &[]).unwrap(),
        ca.issue_node("ren-a", &[])
            .unwrap()
            .with_member_name("ren-q")
            .unwrap(),
    ] {
        let e = a.t.reload_tls(&bad).unwrap_err();
        match &e {
            Error::TlsIdentityChanged { running, offered } => {
                assert_eq!(running, "ren-a");
                assert!(offered.contains(bad.node_name()), "{offered}");
            }
            other => panic!("expected TlsIdentityChanged, got {other:?}"),
        }
        assert!(e.to_string().contains("cannot rename"), "{e}");
        assert!(a.t.check_tls(&bad).is_err());
    }
    assert_eq!(a.t.tls_config().not_after(), before.not_after());
    // Still the node it was, with the certificate it had.
    a.t.close_connections();
    exchange(&mut a, &mut b, 1).await;
    let fresh = ca.issue_node("ren-a", &[]).unwrap();
    a.t.check_tls(&fresh).unwrap();
    a.t.reload_tls(&fresh).unwrap();
    a.t.close();
    assert!(matches!(a.t.reload_tls(&fresh), Err(Error::Shutdown)));
}
