//! Issue 9, item 1: a member the cluster removed is told so (`Removed`)
//! and stops; its directory then starts blank and joins under a new id.

use std::time::Duration;

use peerlock::{Error, MembershipConfig, NodeBuilder, NodeId, Role};

use crate::common::{init_tracing, members_until, rebind, sockets, start_ready, within};

fn builder(ca: &peerlock::certs::ClusterCa, i: usize, sock: std::net::UdpSocket) -> NodeBuilder {
    crate::common::member_builder(ca, &format!("node-{i}"), sock).max_voters(3)
}

/// The test timings of `member_builder`, without the rejoin.
fn no_rejoin() -> MembershipConfig {
    MembershipConfig {
        dead_after: Duration::from_secs(3),
        stabilization: Duration::from_secs(1),
        rejoin_when_removed: false,
        ..MembershipConfig::default()
    }
}

/// Three durable members; the third is killed and superseded by a blank
/// start of the same name, which is then killed too. Returns the nodes,
/// their addresses, and the superseded id.
async fn superseded_third(
    ca: &peerlock::certs::ClusterCa,
    dir: &dyn Fn(&str) -> std::path::PathBuf,
) -> (Vec<peerlock::Node>, Vec<std::net::SocketAddr>, NodeId) {
    let (socks, addrs) = sockets(3);
    let builders = socks.into_iter().enumerate().map(|(i, sock)| {
        builder(ca, i, sock)
            .peers(addrs.clone())
            .data_dir(dir(&format!("n{i}")))
    });
    let nodes = start_ready(builders).await;
    let old_id = nodes[2].status().id;
    peerlock::testing::crash(&nodes[2]).await;
    let fresh = builder(ca, 2, std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .seeds([addrs[0]])
        .data_dir(dir("fresh"))
        .start()
        .await
        .expect("a blank start joins");
    within(fresh.ready()).await.expect("ready");
    members_until(&nodes[0], |m| {
        m.iter().all(|x| x.id != old_id) && m.len() == 3
    })
    .await;
    peerlock::testing::crash(&fresh).await;
    (nodes, addrs, old_id)
}

/// Issue 9: a member's old disk came back after the cluster had removed
/// its id (a blank restart under the same name superseded it), and its
/// messages were dropped without a word: it waited for ever. Now every
/// peer answers it `Removed`: it stops, its calls fail with
/// `Error::Removed`, and its directory is marked, so its next start is
/// blank and joins as a new member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t79_issue_9_a_removed_member_is_told_and_rejoins_blank() {
    init_tracing();
    let ca = peerlock::certs::ClusterCa::generate("removed").unwrap();
    let base = tempfile::tempdir().unwrap();
    let dir = |name: &str| base.path().join(name);
    let (_nodes, addrs, old_id) = superseded_third(&ca, &dir).await;

    // The old disk comes back: told `Removed`, it stops (and stays
    // stopped: this test starts it again by hand).
    let back = builder(&ca, 2, rebind(addrs[2]).await)
        .membership(no_rejoin())
        .peers(addrs.clone())
        .data_dir(dir("n2"))
        .start()
        .await
        .expect("the old directory starts");
    let mut status = back.watch_status();
    within(status.wait_for(|s| s.role == Role::Removed))
        .await
        .expect("told it was removed");
    let err = within(back.lock("x")).await.unwrap_err();
    assert!(matches!(err, Error::Removed), "{err}");
    drop(back);

    // Its next start is blank: a new member, under a new id.
    let again = builder(&ca, 2, rebind(addrs[2]).await)
        .peers(addrs.clone())
        .data_dir(dir("n2"))
        .start()
        .await
        .expect("starts blank and joins");
    within(again.ready()).await.expect("ready");
    assert_ne!(again.status().id, old_id, "never the old id");
    let g = within(again.lock("after")).await.unwrap();
    within(g.unlock()).await.unwrap();
}

/// Issue 9, design item 1 (`rejoin_when_removed`, the default): the
/// removed node does not wait for someone to restart it. The same `Node`
/// starts again by itself, blank, joins under a new id, and takes locks
/// again; its old id is never a member again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t79_issue_9_a_removed_member_rejoins_by_itself() {
    init_tracing();
    let ca = peerlock::certs::ClusterCa::generate("rejoin").unwrap();
    let base = tempfile::tempdir().unwrap();
    let dir = |name: &str| base.path().join(name);
    let (nodes, addrs, old_id) = superseded_third(&ca, &dir).await;

    let back = builder(&ca, 2, rebind(addrs[2]).await)
        .peers(addrs.clone())
        .data_dir(dir("n2"))
        .start()
        .await
        .expect("the old directory starts");
    // `ready()` on the old run is answered only once the new run is
    // ready: it waits through the removal and the rejoin.
    within(back.ready()).await.expect("ready under a new id");
    assert_ne!(back.status().id, old_id, "rejoined under a new id");
    let new_id = back.status().id;
    let g = within(back.lock("after-rejoin")).await.unwrap();
    assert!(g.token() > peerlock::FencingToken(0));
    within(g.unlock()).await.unwrap();
    let m = members_until(&nodes[0], |m| m.iter().any(|x| x.id == new_id)).await;
    assert!(m.iter().all(|x| x.id != old_id), "old id is gone: {m:?}");
    assert!(
        m.iter().any(|x| x.id == new_id),
        "new id is a member: {m:?}"
    );
    let _ = within(back.shutdown()).await;
}
