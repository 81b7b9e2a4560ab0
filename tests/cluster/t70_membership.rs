//! Issue 9: the leader keeps the voters in line with the live members.

use std::time::Duration;

use peerlock::{MemberRole, MembershipConfig, Node};

use crate::common::{
    converge, in_memory_member, init_tracing, sockets, start_members, start_ready, within, WAIT,
};

/// Issue 9: nothing replaced a dead voter. Seven instances, five voters
/// and two learners; the leader and another voter are killed. The three
/// live voters are a majority of five, so the cluster keeps serving, and
/// once the new leader has watched them silent for `dead_after` it swaps
/// both for the two learners in one joint change: five live voters again,
/// the dead ones kept as learners (they may come back). A lock held by a
/// learner stays held throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_issue_9_dead_voters_are_replaced_by_learners() {
    let (nodes, _ca) = start_members("members", 7, Some(5)).await;
    let members = within(nodes[0].members()).await.unwrap();
    assert_eq!(members.len(), 7);
    let voters: Vec<_> = members
        .iter()
        .filter(|m| m.role == MemberRole::Voter)
        .map(|m| m.id)
        .collect();
    assert_eq!(voters.len(), 5, "{members:?}");
    let index_of = |id| nodes.iter().position(|n| n.status().id == id).unwrap();
    let learner = members
        .iter()
        .find(|m| m.role == MemberRole::Learner)
        .map(|m| index_of(m.id))
        .unwrap();
    let held = within(nodes[learner].lock("kept")).await.unwrap();

    let leader =
        crate::common::wait_until(|| nodes.iter().position(|n| n.status().is_leader())).await;
    let other = voters
        .iter()
        .map(|id| index_of(*id))
        .find(|i| *i != leader)
        .unwrap();
    let dead = [nodes[leader].status().id, nodes[other].status().id];
    peerlock::testing::crash(&nodes[leader]).await;
    peerlock::testing::crash(&nodes[other]).await;

    let survivor = (0..7).find(|i| *i != leader && *i != other).unwrap();
    // Five voters, all live, out of the joint configuration too.
    let last = converge(&nodes[survivor], 5, 0).await;
    // Demoted to learners; being in memory they can never come back, so
    // the leader may already have removed them.
    for id in dead {
        if let Some(m) = last.iter().find(|m| m.id == id) {
            assert_eq!(m.role, MemberRole::Learner, "{last:?}");
            assert!(!m.live, "{last:?}");
        }
    }
    assert!(held.is_held(), "the learner's lock was lost");
    let g = within(nodes[survivor].try_lock("after")).await.unwrap();
    assert!(g.is_some());
}

/// Issue 9: `members()` answers alike on the leader and on a follower,
/// with liveness as the leader judges it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t71_issue_9_members_is_the_same_on_every_node() {
    let (nodes, _ca) = start_members("members", 4, Some(3)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut views = Vec::new();
        for n in &nodes {
            views.push(within(n.members()).await.unwrap());
        }
        let all_live = views[0].iter().all(|m| m.live);
        if all_live && views.iter().all(|v| *v == views[0]) {
            let voters = views[0]
                .iter()
                .filter(|m| m.role == MemberRole::Voter)
                .count();
            assert_eq!(voters, 3, "{:?}", views[0]);
            assert_eq!(views[0].len(), 4);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{views:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue 9: three of five voters dead at once leave no majority of the
/// old configuration, so nothing automatic may happen (an automatic "fix"
/// would make two clusters): calls fail with `NoQuorum`, no membership
/// change commits, and one voter returning from its disk restores the
/// quorum with the same five voters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t72_issue_9_three_of_five_voters_dead_change_nothing() {
    init_tracing();
    let ca = peerlock::certs::ClusterCa::generate("members").unwrap();
    let (socks, addrs) = sockets(5);
    let base = tempfile::tempdir().unwrap();
    let builder = |i: usize, sock: std::net::UdpSocket| {
        Node::builder()
            .socket(sock)
            .peers(addrs.clone())
            .tls(ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap())
            .data_dir(base.path().join(format!("n{i}")))
            .session_ttl(Duration::from_millis(1500))
            .raft_tick(Duration::from_millis(20))
            .membership(MembershipConfig {
                dead_after: Duration::from_secs(2),
                stabilization: Duration::from_secs(1),
                ..MembershipConfig::default()
            })
            .startup_timeout(WAIT)
    };
    let mut nodes = start_ready(socks.into_iter().enumerate().map(|(i, s)| builder(i, s))).await;
    let before = within(nodes[0].members()).await.unwrap();
    assert_eq!(
        before
            .iter()
            .filter(|m| m.role == MemberRole::Voter)
            .count(),
        5
    );
    for n in nodes.drain(2..) {
        peerlock::testing::crash(&n).await;
    }
    // Well past dead_after: still no quorum, and still the same voters.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = tokio::time::timeout(WAIT, nodes[0].members())
        .await
        .unwrap();
    assert!(matches!(r, Err(peerlock::Error::NoQuorum)), "{r:?}");
    let voters = |s: &peerlock::NodeStatus| {
        s.members
            .iter()
            .filter(|m| m.role == MemberRole::Voter)
            .count()
    };
    assert_eq!(voters(&nodes[0].status()), 5);
    assert_eq!(voters(&nodes[1].status()), 5);

    // One returns from its disk: the quorum is back, with the same five.
    let sock = crate::common::rebind(addrs[2]).await;
    let back = builder(2, sock)
        .start()
        .await
        .expect("a voter returns from its disk");
    within(back.ready()).await.expect("ready");
    let after = within(nodes[0].members()).await.unwrap();
    let ids = |v: &[peerlock::MemberInfo]| {
        let mut ids: Vec<_> = v
            .iter()
            .filter(|m| m.role == MemberRole::Voter)
            .map(|m| m.id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&after), ids(&before));
    let g = within(back.lock("after")).await.unwrap();
    within(g.unlock()).await.unwrap();
}

/// Issue 9: a fourth instance could not join. Three founders run; a
/// fourth and a fifth start with only a seed address: each is given a new
/// Raft id by the cluster, applies the state from a snapshot, takes locks
/// like the others, and the leader promotes them, 3 voters then 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t73_issue_9_instances_join_with_a_seed_and_are_promoted() {
    let (nodes, ca) = start_members("members", 3, Some(5)).await;
    let g = within(nodes[0].lock("before")).await.unwrap();
    let seed = nodes[1].local_addr();
    let (socks, _) = sockets(2);
    let mut joiners = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        let n = in_memory_member(&ca, &format!("new-{i}"), sock)
            .seeds([seed])
            .start()
            .await
            .expect("joins through a seed");
        within(n.ready()).await.expect("ready");
        joiners.push(n);
    }
    let ids: Vec<_> = nodes.iter().map(|n| n.status().id).collect();
    for j in &joiners {
        assert!(!ids.contains(&j.status().id), "a new id");
    }
    let m = converge(&nodes[0], 5, 0).await;
    assert_eq!(m.len(), 5, "{m:?}");
    // The joiner sees the lock held by a founder, and takes its own.
    let info = within(joiners[0].holder("before")).await.unwrap().unwrap();
    assert_eq!(info.token, g.token());
    let mine = within(joiners[1].try_lock("mine")).await.unwrap();
    assert!(mine.is_some());
    drop(g);
}

/// Issue 9: an in-memory node that restarts (or a node whose data
/// directory was lost) was refused for good, so a rolling restart of an
/// in-memory deployment ended the cluster. Now it joins as a new member
/// under a new id, and the leader replaces the old id's voter by it: a
/// rolling restart of all three founders keeps the cluster serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t74_issue_9_a_rolling_restart_of_in_memory_nodes_keeps_the_cluster() {
    let (mut nodes, ca) = start_members("members", 3, Some(3)).await;
    let addrs: Vec<_> = nodes.iter().map(|n| n.local_addr()).collect();
    for i in 0..3 {
        let old = nodes[i].status().id;
        peerlock::testing::crash(&nodes[i]).await;
        let sock = crate::common::rebind(addrs[i]).await;
        let again = in_memory_member(&ca, &format!("node-{i}"), sock)
            .peers(addrs.clone())
            .max_voters(3)
            .start()
            .await
            .expect("a blank restart joins as a new member");
        let r = within(again.ready()).await;
        assert!(r.is_ok(), "restart {i}: {r:?} {:?}", again.status());
        assert_ne!(again.status().id, old, "never the old id");
        nodes[i] = again;
        let m = converge(&nodes[(i + 1) % 3], 3, 0).await;
        assert!(
            m.iter()
                .any(|x| x.id == nodes[i].status().id && x.role == MemberRole::Voter),
            "{m:?}"
        );
        let g = within(nodes[i].lock("rolling")).await.unwrap();
        within(g.unlock()).await.unwrap();
    }
    // The old ids kept their state in memory and can never come back:
    // once dead for `dead_after` they are removed, three members are left.
    crate::common::members_until(&nodes[0], |m| m.len() == 3).await;
}

/// Issue 9: a node started with `.peers(..)` that lost its state (in
/// memory here; a wiped or removed directory alike) came back only once
/// every listed peer answered, so one listed peer dead for good kept it
/// out for ever (the start failed at its timeout). Every listed peer must
/// answer only to found the cluster; once it runs, the blank start joins
/// it through the peers that answer, as a start through seeds does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t74_issue_9_a_blank_restart_with_peers_joins_while_a_listed_peer_is_dead() {
    let (mut nodes, ca) = start_members("members", 5, Some(5)).await;
    let addrs: Vec<_> = nodes.iter().map(|n| n.local_addr()).collect();
    peerlock::testing::crash(&nodes[4]).await; // dead for good
    let old = nodes[3].status().id;
    peerlock::testing::crash(&nodes[3]).await;
    let sock = crate::common::rebind(addrs[3]).await;
    let again = in_memory_member(&ca, "node-3", sock)
        .peers(addrs.clone())
        .startup_timeout(Duration::from_secs(15))
        .start()
        .await
        .expect("a blank restart joins although node 4 does not answer");
    within(again.ready()).await.expect("ready");
    assert_ne!(again.status().id, old, "never the old id");
    let g = within(again.lock("one-dead")).await.unwrap();
    within(g.unlock()).await.unwrap();
    nodes[3] = again;
}
