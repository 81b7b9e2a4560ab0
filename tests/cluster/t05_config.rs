//! Wrong configuration is a clear `Error::Config`, before anything binds.

use std::time::Duration;

use peerlock::certs::ClusterCa;
use peerlock::{Error, Node};

fn config_error(r: Result<Node, Error>) -> String {
    match r {
        Err(Error::Config(msg)) => msg,
        Err(other) => panic!("expected Error::Config, got {other}"),
        Ok(_) => panic!("expected Error::Config, the node started"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t05_wrong_configuration_is_refused_with_a_clear_message() {
    let ca = ClusterCa::generate("cfg").unwrap();
    let tls = || ca.issue_node("cfg-node", &["127.0.0.1"]).unwrap();
    let base = || {
        Node::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .peers(["127.0.0.1:1"])
    };
    let msg = config_error(base().tls(tls()).start().await);
    assert!(msg.contains("in_memory"), "{msg}");
    let msg = config_error(
        base()
            .tls(tls())
            .data_dir("/tmp/x")
            .in_memory()
            .start()
            .await,
    );
    assert!(msg.contains("choose one"), "{msg}");
    let msg = config_error(base().in_memory().start().await);
    assert!(msg.contains("tls"), "{msg}");
    let msg = config_error(
        base()
            .tls(tls())
            .in_memory()
            .session_ttl(Duration::from_millis(1))
            .start()
            .await,
    );
    assert!(msg.contains("session_ttl"), "{msg}");
    let msg = config_error(base().tls(tls()).in_memory().max_voters(0).start().await);
    assert!(msg.contains("max_voters"), "{msg}");
    let msg = config_error(
        Node::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .peers(["not an address"])
            .tls(tls())
            .in_memory()
            .start()
            .await,
    );
    assert!(msg.contains("not an address"), "{msg}");
    let msg = config_error(
        Node::builder()
            .peers(["127.0.0.1:1"])
            .tls(tls())
            .in_memory()
            .start()
            .await,
    );
    assert!(msg.contains("listen"), "{msg}");
}

/// Issue 9: a node given an empty peer list (an unset environment
/// variable) started alone as a one-node cluster and granted every lock,
/// so instances misconfigured alike each held the same lock. An empty list
/// is now a configuration error; a one-node cluster is asked for with the
/// node's own address as its only peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t07_issue_9_an_empty_peer_list_is_refused_and_one_node_is_explicit() {
    let ca = ClusterCa::generate("cfg").unwrap();
    let tls = || ca.issue_node("alone", &["127.0.0.1"]).unwrap();
    let msg = config_error(
        Node::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .peers(Vec::<String>::new())
            .tls(tls())
            .in_memory()
            .start()
            .await,
    );
    assert!(msg.contains("peers") && msg.contains("empty"), "{msg}");
    // Nor is leaving peers(..) out a one-node cluster.
    let msg = config_error(
        Node::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .tls(tls())
            .in_memory()
            .start()
            .await,
    );
    assert!(msg.contains("peers"), "{msg}");

    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let own = sock.local_addr().unwrap();
    let node = Node::builder()
        .socket(sock)
        .peers([own])
        .tls(tls())
        .in_memory()
        .startup_timeout(Duration::from_secs(20))
        .start()
        .await
        .expect("a one-node cluster asked for by its own address starts");
    tokio::time::timeout(Duration::from_secs(20), node.ready())
        .await
        .expect("ready in time")
        .expect("ready");
    let g = node.try_lock("solo").await.unwrap();
    assert!(g.is_some());
    drop(g);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t06_tls_files_that_do_not_exist_or_do_not_fit_are_refused() {
    let r = peerlock::TlsConfig::from_pem_files(
        "/nonexistent/ca.pem",
        "/nonexistent/n.pem",
        "/nonexistent/n.key",
    );
    assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
    let ca = ClusterCa::generate("cfg").unwrap();
    let (cert, _) = ca.issue_node_pem("a", &["127.0.0.1"]).unwrap();
    let (_, key_b) = ca.issue_node_pem("b", &["127.0.0.1"]).unwrap();
    let r = peerlock::TlsConfig::from_pem(&ca.ca_pem(), &cert, &key_b);
    assert!(
        matches!(r, Err(Error::Tls(_))),
        "a key that is not the certificate's: {r:?}"
    );
}

/// Issue 9 (found by reading): each node derived the voters from its own
/// peer list and `max_voters`, and nothing compared them, so nodes started
/// with different lists could disagree on who votes, which makes two
/// leaders in one term possible. Founders now compare their initial
/// clusters, and a mismatch stops the start with an error naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t08_issue_9_founders_given_different_voters_refuse_to_start() {
    crate::common::init_tracing();
    let ca = ClusterCa::generate("cfg").unwrap();
    let (socks, addrs) = crate::common::sockets(3);
    let mut starts = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        let mut b = Node::builder()
            .socket(sock)
            .peers(addrs.clone())
            .tls(ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap())
            .in_memory()
            .startup_timeout(Duration::from_secs(10));
        if i == 2 {
            // One template set max_voters(1): this node thinks one votes.
            b = b.max_voters(1);
        }
        starts.push(tokio::spawn(b.start()));
    }
    let mut results = Vec::new();
    for s in starts {
        results.push(s.await.unwrap());
    }
    let odd = match results.pop().unwrap() {
        Err(Error::Config(msg)) => msg,
        Err(other) => panic!("expected Error::Config, got {other}"),
        Ok(_) => panic!("a founder with other voters started"),
    };
    assert!(
        odd.contains("(learner)") && odd.contains("(voter)") && odd.contains("same peers"),
        "{odd}"
    );
    // The others stop too: on the same error, or, when the odd node
    // stopped before answering them, for want of its answer.
    for r in results {
        if let Err(e) = r {
            assert!(matches!(e, Error::Config(_) | Error::NoQuorum), "{e}");
        }
    }
}
