//! Peers and bytes that must be refused: another CA's certificate, a
//! frame claiming another sender, malformed frames, random datagrams; the
//! honest pair keeps talking after each.

use std::time::Duration;

use peerlock_core::transport::Transport;
use peerlock_core::{Error, NodeId};
use peerlock_transport::codec::{self, FrameBody, MAGIC, VERSION};
use peerlock_transport::testing::send_raw;
use peerlock_transport::ClusterCa;
use tokio::time::Instant;

use crate::harness::{
    cluster, deliver, discover_all, ordered, quiet, raft, socket, start, tls, CLOSE_DUPLICATE,
    CLOSE_PROTOCOL, CLOSE_SPOOFED, QUIET, WAIT,
};

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
