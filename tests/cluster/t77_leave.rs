//! Issue 9, item 7: a graceful shutdown leaves the membership, so the
//! voters never go on counting an instance that is gone; with
//! `leave_on_shutdown(false)` a node comes back from its disk as itself.

use std::path::Path;
use std::time::Duration;

use peerlock::{MemberRole, Node, NodeBuilder};

use crate::common::{init_tracing, sockets, start_ready, within, WAIT};

fn builder(ca: &peerlock::certs::ClusterCa, i: usize, sock: std::net::UdpSocket) -> NodeBuilder {
    crate::common::member_builder(ca, &format!("node-{i}"), sock).max_voters(3)
}

/// Four nodes (three voters and a learner), in memory or each in its own
/// directory under `base`.
async fn start_four(
    ca: &peerlock::certs::ClusterCa,
    base: Option<&Path>,
) -> (Vec<Node>, Vec<std::net::SocketAddr>) {
    init_tracing();
    let (socks, addrs) = sockets(4);
    let builders = socks.into_iter().enumerate().map(|(i, sock)| {
        let b = builder(ca, i, sock)
            .peers(addrs.clone())
            .leave_on_shutdown(leaves(i));
        match base {
            Some(base) => b.data_dir(base.join(format!("n{i}"))),
            None => b.in_memory(),
        }
    });
    let nodes = start_ready(builders).await;
    converge(&nodes[0], 3, 1).await;
    (nodes, addrs)
}

/// Waits until `node` sees `voters` live voters and `learners` live
/// learners and no other member, and returns the members.
async fn converge(node: &Node, voters: usize, learners: usize) -> Vec<peerlock::MemberInfo> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = crate::common::converge(node, voters, learners).await;
        if m.len() == voters + learners {
            return m;
        }
        assert!(tokio::time::Instant::now() < deadline, "others left: {m:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 9: `shutdown()` stopped without leaving, so the voters counted a
/// stopped instance until `dead_after` (one more failure then lost the
/// quorum). Now the leader itself shuts down: it hands leadership over,
/// its `Leave` commits, and `shutdown()` returns only once the learner has
/// taken its place: the very next `members()` shows three live voters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t77_issue_9_shutdown_leaves_and_a_learner_takes_the_voters_place() {
    let ca = peerlock::certs::ClusterCa::generate("leave").unwrap();
    let (nodes, _) = start_four(&ca, None).await;
    let leader = loop {
        if let Some(i) = nodes.iter().position(|n| n.status().is_leader()) {
            break i;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let gone = nodes[leader].status().id;
    let started = tokio::time::Instant::now();
    within(nodes[leader].shutdown())
        .await
        .expect("a clean shutdown");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(11), "shutdown took {took:?}");
    let other = &nodes[(leader + 1) % 4];
    let m = within(other.members()).await.unwrap();
    let voters: Vec<_> = m
        .iter()
        .filter(|x| x.role == MemberRole::Voter)
        .map(|x| x.id)
        .collect();
    assert!(!voters.contains(&gone), "the leaver still votes: {m:?}");
    assert_eq!(voters.len(), 3, "{m:?}");
    // Then it is removed for good: three voters, no one else.
    let m = converge(other, 3, 0).await;
    assert!(m.iter().all(|x| x.id != gone), "{m:?}");
    let g = within(other.lock("after")).await.unwrap();
    within(g.unlock()).await.unwrap();
}

/// Issue 9: what a durable node's directory holds after a graceful
/// shutdown. One that left comes back blank and joins under a new id (its
/// old id was removed, so its old state could never take part again); one
/// started with `leave_on_shutdown(false)` (a StatefulSet with volumes)
/// comes back as itself, with no membership change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t78_issue_9_a_durable_leaver_rejoins_blank_and_a_stayer_keeps_its_id() {
    let ca = peerlock::certs::ClusterCa::generate("leave").unwrap();
    let base = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = start_four(&ca, Some(base.path())).await;

    // Node 3 stays a member across its restart.
    let kept = nodes[3].status().id;
    nodes[3] = restart(&ca, &addrs, base.path(), 3, &nodes[3]).await;
    assert_eq!(nodes[3].status().id, kept, "the same member");
    converge(&nodes[0], 3, 1).await;

    // Node 1 leaves, and comes back blank under a new id.
    let old = nodes[1].status().id;
    nodes[1] = restart(&ca, &addrs, base.path(), 1, &nodes[1]).await;
    assert_ne!(nodes[1].status().id, old, "a new member");
    let m = converge(&nodes[0], 3, 1).await;
    assert!(m.iter().all(|x| x.id != old), "the old id is gone: {m:?}");
    let g = within(nodes[1].lock("after")).await.unwrap();
    within(g.unlock()).await.unwrap();
}

/// Shuts node `i` down, then starts it again on its address and directory
/// with the same leave setting.
async fn restart(
    ca: &peerlock::certs::ClusterCa,
    addrs: &[std::net::SocketAddr],
    base: &Path,
    i: usize,
    node: &Node,
) -> Node {
    within(node.shutdown()).await.expect("a clean shutdown");
    let sock = crate::common::rebind(addrs[i]).await;
    let again = builder(ca, i, sock)
        .leave_on_shutdown(leaves(i))
        .peers(addrs.to_vec())
        .data_dir(base.join(format!("n{i}")))
        .start()
        .await
        .expect("starts again");
    within(again.ready()).await.expect("ready");
    again
}

/// Node 3 is the StatefulSet kind: it keeps its membership across restarts.
fn leaves(i: usize) -> bool {
    i != 3
}
