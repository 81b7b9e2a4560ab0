//! A full restart through seeds (issue 9): every durable node of a
//! cluster crashes, and all start again at once with the cluster's
//! addresses as `seeds(..)`, as a redeploy that recreates every instance
//! of a Kubernetes StatefulSet does. Each first asks its seeds which
//! cluster they belong to (a directory of another cluster is refused);
//! the others are in that same check, and answered nobody, so every node
//! waited out the check's whole round and said so ("not every seed
//! answered"). Now a node in the check answers with the cluster its
//! directory records. Run under a `tracing` subscriber of its own, on a
//! current-thread runtime, so no other test's lines are read.

use std::net::UdpSocket;
use std::path::Path;

use peerlock::certs::ClusterCa;

use crate::common::{member_builder, rebind, sockets, start_ready, within, LogBuf};

fn durable(ca: &ClusterCa, i: usize, sock: UdpSocket, dir: &Path) -> peerlock::NodeBuilder {
    member_builder(ca, &format!("node-{i}"), sock).data_dir(dir)
}

#[test]
fn t66_issue_9_a_full_restart_through_seeds_does_not_wait_out_the_cluster_check() {
    let buf = LogBuf::default();
    let subscriber = buf.subscriber(tracing::Level::INFO);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..3).map(|i| base.path().join(format!("n{i}"))).collect();
    let ca = ClusterCa::generate("t66").unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let (socks, addrs) = sockets(3);
            let builders = socks.into_iter().enumerate();
            let builders = builders.map(|(i, s)| durable(&ca, i, s, &dirs[i]).peers(addrs.clone()));
            let nodes = start_ready(builders).await;
            let token = within(nodes[0].lock("kept")).await.unwrap().token();
            for n in &nodes {
                peerlock::testing::crash(n).await;
            }
            buf.clear();

            let mut builders = Vec::new();
            for (i, a) in addrs.iter().enumerate() {
                builders.push(durable(&ca, i, rebind(*a).await, &dirs[i]).seeds(addrs.clone()));
            }
            let nodes = start_ready(builders).await;
            // The same cluster, its state kept: the lock the crashed
            // holder took is still recorded (until its session expires),
            // and a new grant's token is above it.
            let next = within(nodes[1].lock("other")).await.unwrap().token();
            assert!(next > token, "{token} -> {next}");
            for n in &nodes {
                peerlock::testing::crash(n).await;
            }
        })
    });
    let logs = buf.text();
    assert!(
        !logs.contains("not every seed answered"),
        "a restarting node waited out the check's round:\n{logs}"
    );
}

/// The other side of the same fault: a directory kept from another
/// cluster among the nodes of a full restart. Nobody answered during the
/// check, so it went unnoticed: node 2, restarted from the directory of a
/// one-node cluster it once founded, elected itself and granted the same
/// lock names as the cluster its seeds name. Now the others answer, and
/// its start is refused with the cluster id mismatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t66_issue_9_a_foreign_directory_in_a_full_restart_is_refused() {
    crate::common::init_tracing();
    let base = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..3).map(|i| base.path().join(format!("n{i}"))).collect();
    let other = base.path().join("other");
    let ca = ClusterCa::generate("t66").unwrap();

    // A one-node cluster, founded by "node-2" in `other`.
    let (mut socks, addrs) = sockets(1);
    let lone = durable(&ca, 2, socks.pop().unwrap(), &other)
        .peers(addrs)
        .start()
        .await
        .unwrap();
    within(lone.ready()).await.unwrap();
    let _g = within(lone.lock("kept")).await.unwrap();
    peerlock::testing::crash(&lone).await;

    // The three-node cluster; node 2's directory is then swapped for it.
    let (socks, addrs) = sockets(3);
    let builders = socks.into_iter().enumerate();
    let nodes =
        start_ready(builders.map(|(i, s)| durable(&ca, i, s, &dirs[i]).peers(addrs.clone()))).await;
    for n in &nodes {
        peerlock::testing::crash(n).await;
    }
    std::fs::remove_dir_all(&dirs[2]).unwrap();
    std::fs::rename(&other, &dirs[2]).unwrap();

    let mut starts = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let b = durable(&ca, i, rebind(*a).await, &dirs[i]).seeds(addrs.clone());
        starts.push(tokio::spawn(b.start()));
    }
    let mut results = Vec::new();
    for s in starts {
        results.push(s.await.unwrap());
    }
    match &results[2] {
        Err(peerlock::Error::Config(m)) => assert!(m.contains("cluster id mismatch"), "{m}"),
        Err(e) => panic!("refused, but not for the mismatch: {e}"),
        Ok(n) => panic!(
            "node 2 restarted the other cluster: {:?}",
            n.status().members
        ),
    }
    for n in results.iter().flatten() {
        peerlock::testing::crash(n).await;
    }
}
