//! Restarts: a node that comes back without its state joins as a new
//! member under a new Raft id, never voting under its old one; a node that
//! comes back with an older copy of its state is refused.

use std::net::UdpSocket;
use std::time::Duration;

use peerlock::{Error, Node};

use crate::common::{within, Cluster};

/// Issue 9 (before it, issue 8's rule): an in-memory node that restarts
/// while the cluster runs must not vote again under its old identity. It
/// was refused for good, so a rolling restart of an in-memory deployment
/// ended the cluster; now it joins as a new member with a new id, and the
/// lock a survivor holds is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_issue_9_a_blank_restart_joins_under_a_new_id() {
    let c = Cluster::start(3).await;
    let g = within(c.nodes[0].lock("kept")).await.unwrap();
    let old = c.nodes[2].status().id;
    peerlock::testing::crash(&c.nodes[2]).await;
    let socket = crate::common::rebind(c.addrs[2]).await;
    let again = Node::builder()
        .socket(socket)
        .peers(c.addrs.clone())
        .tls(c.ca.issue_node("node-2", &["127.0.0.1"]).unwrap())
        .in_memory()
        .session_ttl(Duration::from_millis(1500))
        .raft_tick(Duration::from_millis(20))
        .startup_timeout(Duration::from_secs(10))
        .start()
        .await
        .expect("a blank restart joins as a new member");
    within(again.ready()).await.expect("ready");
    assert_ne!(again.status().id, old, "never under the id that voted");
    // The joined node sees the survivor's lock, and the survivor keeps it.
    let info = within(again.holder("kept")).await.unwrap().unwrap();
    assert_eq!(info.token, g.token());
    assert!(g.is_held());
    within(g.unlock()).await.unwrap();
    assert!(within(again.lock("kept")).await.is_ok());
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

async fn start_durable(
    c: &peerlock::certs::ClusterCa,
    addrs: &[std::net::SocketAddr],
    i: usize,
    socket: UdpSocket,
    dir: &std::path::Path,
) -> Result<Node, Error> {
    Node::builder()
        .socket(socket)
        .peers(addrs.to_vec())
        .tls(c.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap())
        .data_dir(dir)
        .session_ttl(Duration::from_millis(1500))
        .raft_tick(Duration::from_millis(20))
        .startup_timeout(Duration::from_secs(15))
        .start()
        .await
}

/// Three durable nodes on 127.0.0.1, each in its own directory under `base`.
struct DurableCluster {
    ca: peerlock::certs::ClusterCa,
    addrs: Vec<std::net::SocketAddr>,
    base: tempfile::TempDir,
    dirs: Vec<std::path::PathBuf>,
    nodes: Vec<Node>,
}

impl DurableCluster {
    async fn start() -> Self {
        crate::common::init_tracing();
        let ca = peerlock::certs::ClusterCa::generate("test").unwrap();
        let (socks, addrs) = crate::common::sockets(3);
        let base = tempfile::tempdir().unwrap();
        let dirs: Vec<_> = (0..3).map(|i| base.path().join(format!("n{i}"))).collect();
        let mut starts = Vec::new();
        for (i, sock) in socks.into_iter().enumerate() {
            let (ca, addrs, dir) = (ca.clone(), addrs.clone(), dirs[i].clone());
            starts.push(tokio::spawn(async move {
                start_durable(&ca, &addrs, i, sock, &dir).await
            }));
        }
        let mut nodes = Vec::new();
        for s in starts {
            nodes.push(s.await.unwrap().expect("node starts"));
        }
        for n in &nodes {
            within(n.ready()).await.expect("ready");
        }
        Self {
            ca,
            addrs,
            base,
            dirs,
            nodes,
        }
    }
}

/// Issue 8 item 9: a copy of a node's data directory, restored after the
/// node ran again, has the same incarnation, and peers let it in: its log
/// misses what the node acknowledged since, under a trusted identity. Now
/// each start bumps a boot count in `identity` and peers remember the
/// highest they accepted: start, stop, copy the directory, start and stop
/// again, restore the copy, start: refused, with an error that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t61_issue_8_a_restored_older_copy_of_a_data_directory_is_refused() {
    let DurableCluster {
        ca,
        addrs,
        base,
        dirs,
        nodes,
    } = DurableCluster::start().await;
    let g = within(nodes[2].lock("before-copy")).await.unwrap();
    within(g.unlock()).await.unwrap();

    // Stop node 2 and copy its directory.
    peerlock::testing::crash(&nodes[2]).await;
    let copy = base.path().join("copy");
    copy_dir(&dirs[2], &copy);

    // It runs again from its real directory, and takes part.
    let again = start_durable(
        &ca,
        &addrs,
        2,
        crate::common::rebind(addrs[2]).await,
        &dirs[2],
    )
    .await
    .expect("a restart from its own directory is accepted");
    within(again.ready()).await.expect("ready");
    let g = within(again.lock("after-copy")).await.unwrap();
    within(g.unlock()).await.unwrap();
    peerlock::testing::crash(&again).await;

    // The copy is restored: refused.
    std::fs::remove_dir_all(&dirs[2]).unwrap();
    copy_dir(&copy, &dirs[2]);
    let r = start_durable(
        &ca,
        &addrs,
        2,
        crate::common::rebind(addrs[2]).await,
        &dirs[2],
    )
    .await;
    match r {
        Err(Error::Config(msg)) => {
            assert!(msg.contains("older copy"), "{msg}");
            assert!(!msg.to_lowercase().contains("restore its"), "{msg}");
        }
        Err(other) => panic!("expected a Config error, got {other}"),
        Ok(_) => panic!("an older copy of the data directory must be refused"),
    }
    // The two others still serve.
    assert!(within(nodes[0].lock("after-restore")).await.is_ok());
}

/// Issue 9: every start re-ran discovery and needed *every* configured
/// peer to answer, so one machine dead for good plus one routine restart
/// left no quorum. A durable restart now starts from the members its
/// directory recorded and needs only a majority of voters (itself
/// included) to say hello: node 2 is killed for good, node 0 restarts, and
/// the two serve locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t62_issue_9_a_durable_restart_needs_only_a_majority_not_every_peer() {
    let DurableCluster {
        ca,
        addrs,
        base: _base,
        dirs,
        mut nodes,
    } = DurableCluster::start().await;
    let g = within(nodes[0].lock("before")).await.unwrap();
    within(g.unlock()).await.unwrap();

    // Node 2's machine is gone for good; node 0 restarts routinely.
    let dead = nodes.pop().unwrap();
    peerlock::testing::crash(&dead).await;
    let n0 = nodes.remove(0);
    peerlock::testing::crash(&n0).await;
    let again = start_durable(
        &ca,
        &addrs,
        0,
        crate::common::rebind(addrs[0]).await,
        &dirs[0],
    )
    .await
    .expect("a restart with a majority of voters up is accepted");
    within(again.ready()).await.expect("ready");
    let g = within(again.lock("after")).await.unwrap();
    assert!(g.is_held());
    within(g.unlock()).await.unwrap();
    let g = within(nodes[0].lock("after")).await.unwrap();
    within(g.unlock()).await.unwrap();
}

/// Issue 9: a node whose data directory was lost was refused for good. Now
/// it joins as a new member under a new id (recorded in its new directory
/// before its first Raft message), and a later restart from that directory
/// comes back as the same member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t63_issue_9_a_lost_data_directory_rejoins_and_then_restarts_as_itself() {
    let DurableCluster {
        ca,
        addrs,
        base: _base,
        dirs,
        mut nodes,
    } = DurableCluster::start().await;
    let old = nodes[2].status().id;
    peerlock::testing::crash(&nodes.pop().unwrap()).await;
    std::fs::remove_dir_all(&dirs[2]).unwrap();
    let again = start_durable(
        &ca,
        &addrs,
        2,
        crate::common::rebind(addrs[2]).await,
        &dirs[2],
    )
    .await
    .expect("a node that lost its directory joins as a new member");
    within(again.ready()).await.expect("ready");
    let joined = again.status().id;
    assert_ne!(joined, old, "never under the id that voted");
    let g = within(again.lock("rejoined")).await.unwrap();
    within(g.unlock()).await.unwrap();

    peerlock::testing::crash(&again).await;
    let back = start_durable(
        &ca,
        &addrs,
        2,
        crate::common::rebind(addrs[2]).await,
        &dirs[2],
    )
    .await
    .expect("a joined member restarts from its directory");
    within(back.ready()).await.expect("ready");
    assert_eq!(back.status().id, joined, "the same member");
    let g = within(back.lock("restarted")).await.unwrap();
    within(g.unlock()).await.unwrap();
    assert!(within(nodes[0].lock("restarted")).await.is_ok());
}
