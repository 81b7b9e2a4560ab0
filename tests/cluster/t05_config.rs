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
