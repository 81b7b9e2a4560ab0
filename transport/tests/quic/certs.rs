//! Issue 9: certificates without IP SANs, another CA's certificate refused
//! whichever side dials, and a CA bundle during a CA rotation.

use std::time::Duration;

use peerlock_core::transport::Transport;
use peerlock_core::{Error, NodeId};
use peerlock_transport::codec::{self, FrameBody};
use peerlock_transport::testing::send_raw;
use peerlock_transport::{ClusterCa, TlsConfig};
use tokio::time::Instant;

use crate::harness::{deliver, quiet, raft, socket, start, QUIET, WAIT};

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
