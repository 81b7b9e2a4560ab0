//! Bad input from outside: foreign certificates, random datagrams.

use std::net::UdpSocket;
use std::time::Duration;

use peerlock::certs::ClusterCa;
use peerlock::Node;

use crate::common::{sockets, within, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t80_a_certificate_from_another_ca_is_refused() {
    let c = Cluster::start(3).await;
    let stranger_ca = ClusterCa::generate("elsewhere").unwrap();
    let (mut socks, addrs) = sockets(1);
    let mut peers = c.addrs.clone();
    peers.extend(addrs);
    let result = Node::builder()
        .socket(socks.remove(0))
        .peers(peers)
        .tls(stranger_ca.issue_node("intruder", &["127.0.0.1"]).unwrap())
        .in_memory()
        .startup_timeout(Duration::from_secs(2))
        .start()
        .await;
    assert!(
        result.is_err(),
        "a node with a foreign certificate must not join"
    );
    // The cluster is undisturbed.
    let g = within(c.nodes[1].lock("still-fine")).await.unwrap();
    assert!(g.is_held());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t81_random_datagrams_do_not_disturb_the_cluster() {
    let c = Cluster::start(3).await;
    let noise = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..2000 {
        let len = (i % 1400) + 1;
        let mut buf = vec![0u8; len];
        for b in &mut buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let _ = noise.send_to(&buf, c.addrs[i % 3]);
    }
    for (i, n) in c.nodes.iter().enumerate() {
        let g = within(n.lock(&format!("after-noise-{i}"))).await.unwrap();
        assert!(g.is_held());
    }
}
