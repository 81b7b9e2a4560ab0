//! An in-memory node that restarts while the cluster runs must not vote
//! again under its old identity: it is refused with a clear error.

use std::net::UdpSocket;
use std::time::Duration;

use peerlock::{Error, Node};

use crate::common::{within, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_blank_restart_under_the_same_identity_is_refused() {
    let c = Cluster::start(3).await;
    let g = within(c.nodes[0].lock("kept")).await.unwrap();
    c.nodes[2].kill().await;
    // The crashed endpoint lets go of its port once its tasks wind down.
    let mut socket = None;
    for _ in 0..200 {
        if let Ok(s) = UdpSocket::bind(c.addrs[2]) {
            socket = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let socket = socket.expect("rebind the crashed node's address");
    let r = Node::builder()
        .socket(socket)
        .peers(c.addrs.clone())
        .tls(c.ca.issue_node("node-2", &["127.0.0.1"]).unwrap())
        .in_memory()
        .startup_timeout(Duration::from_secs(10))
        .start()
        .await;
    match r {
        Err(Error::Config(msg)) => assert!(msg.contains("restarted without its state"), "{msg}"),
        Err(other) => panic!("expected a Config error, got {other}"),
        Ok(_) => panic!("a blank restart must be refused"),
    }
    // The two survivors still form a quorum.
    assert!(g.is_held());
    within(g.unlock()).await.unwrap();
    assert!(within(c.nodes[1].lock("kept")).await.is_ok());
}
