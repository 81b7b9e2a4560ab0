//! A build without the `disk` feature (issue 12, item 9): nodes keep their
//! Raft log in memory only, and locking, fencing tokens and failover work
//! as in the default build. `.ci/run` runs this file with
//! `cargo test -p peerlock --no-default-features --test in_memory_only`;
//! the README's test command runs it on the default build too.

mod common;

use peerlock::{Error, Node};

use common::{within, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_durable_storage_locks_fences_and_fails_over() {
    let c = Cluster::start(3).await;
    let g = within(c.nodes[0].lock("jobs/nightly")).await.unwrap();
    let first = g.token();
    assert!(within(c.nodes[1].try_lock("jobs/nightly"))
        .await
        .unwrap()
        .is_none());
    // The holder's node goes away with the lock held; the other two are
    // a majority and hand the lock on, under a higher token.
    within(c.nodes[0].shutdown()).await.unwrap();
    let next = within(c.nodes[1].lock("jobs/nightly")).await.unwrap();
    assert!(next.token() > first, "{} then {}", first, next.token());
    assert!(!g.is_held());
    within(next.unlock()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_storage_chosen_is_told_what_this_build_offers() {
    let ca = peerlock::certs::ClusterCa::generate("test").unwrap();
    let started = Node::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .tls(ca.issue_node("node-0", &["127.0.0.1"]).unwrap())
        .start()
        .await;
    let Err(Error::Config(msg)) = started else {
        panic!("no storage chosen, yet not a Config error")
    };
    assert!(msg.contains(".in_memory()"), "{msg}");
    if cfg!(feature = "disk") {
        assert!(msg.contains(".data_dir(path)"), "{msg}");
    } else {
        assert!(!msg.contains(".data_dir"), "{msg}");
        assert!(msg.contains("`disk` feature is off"), "{msg}");
    }
}
