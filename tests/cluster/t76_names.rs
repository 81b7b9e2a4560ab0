//! Issue 9: `name(..)` for a certificate shared by every instance, and
//! `zone(..)` as a hint for choosing voters.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use peerlock::{MemberInfo, MemberRole, MembershipConfig, Node, NodeBuilder, TlsConfig};
use tokio::time::Instant;

use crate::common::{init_tracing, rebind, sockets, start_ready, wait_until, within, WAIT};

fn builder(tls: TlsConfig, sock: UdpSocket, dead_after: Duration) -> NodeBuilder {
    Node::builder()
        .socket(sock)
        .tls(tls)
        .in_memory()
        .session_ttl(Duration::from_millis(1500))
        .raft_tick(Duration::from_millis(20))
        .membership(MembershipConfig {
            dead_after,
            stabilization: Duration::from_secs(1),
            ..MembershipConfig::default()
        })
        .startup_timeout(WAIT)
}

/// Three nodes, one certificate (common name "app"), named a, b and c.
async fn shared_cluster(dead_after: Duration) -> (Vec<Node>, TlsConfig, Vec<SocketAddr>) {
    init_tracing();
    let ca = peerlock::certs::ClusterCa::generate("names").unwrap();
    let shared = ca.issue_node("app", &[]).unwrap();
    let (socks, addrs) = sockets(3);
    let builders = socks.into_iter().zip(["a", "b", "c"]).map(|(sock, name)| {
        builder(shared.clone(), sock, dead_after)
            .name(name)
            .peers(addrs.clone())
            .max_voters(3)
    });
    let nodes = start_ready(builders).await;
    (nodes, shared, addrs)
}

/// `members()` from `node`, retried past a leader change.
async fn members(node: &Node) -> Vec<MemberInfo> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(3), node.members()).await {
            return m;
        }
        assert!(Instant::now() < deadline, "members() never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names(m: &[MemberInfo]) -> Vec<String> {
    let mut n: Vec<String> = m.iter().map(|x| x.name.0.clone()).collect();
    n.sort();
    n
}

fn is_voter(m: &[MemberInfo], id: peerlock::NodeId) -> bool {
    m.iter().any(|x| x.id == id && x.role == MemberRole::Voter)
}

/// With one certificate the transport knew every node by the same common
/// name, so they were one peer and no cluster formed. Named, they are
/// three members; locks work across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t76_issue_9_three_nodes_sharing_one_certificate_form_a_cluster_by_name() {
    let (nodes, _, _) = shared_cluster(Duration::from_secs(3)).await;
    for (n, name) in nodes.iter().zip(["a", "b", "c"]) {
        assert_eq!(n.status().name.0, name);
    }
    let m = members(&nodes[0]).await;
    assert_eq!(names(&m), ["a", "b", "c"], "{m:?}");
    assert_eq!(m.iter().filter(|x| x.role == MemberRole::Voter).count(), 3);

    let g = within(nodes[0].lock("shared")).await.unwrap();
    assert!(within(nodes[1].try_lock("shared")).await.unwrap().is_none());
    let info = within(nodes[2].holder("shared")).await.unwrap().unwrap();
    assert_eq!(info.token, g.token());
    within(g.unlock()).await.unwrap();
    let g2 = within(nodes[2].lock("shared")).await.unwrap();
    assert!(g2.token() > info.token);
}

/// A bad name or zone is a configuration error at `start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t76_issue_9_a_bad_name_or_zone_is_refused_at_start() {
    init_tracing();
    let ca = peerlock::certs::ClusterCa::generate("names").unwrap();
    let tls = ca.issue_node("app", &[]).unwrap();
    let start = |name: String, zone: String| {
        let (mut socks, addrs) = sockets(1);
        builder(tls.clone(), socks.remove(0), Duration::from_secs(3))
            .peers(addrs)
            .name(name)
            .zone(zone)
            .start()
    };
    let err = start(String::new(), "z".into()).await.err();
    assert!(
        matches!(&err, Some(peerlock::Error::Config(m)) if m.contains("member name")),
        "{err:?}"
    );
    let err = start("n".repeat(257), "z".into()).await.err();
    assert!(matches!(&err, Some(peerlock::Error::Config(_))), "{err:?}");
    let err = start("ok".into(), "z".repeat(65)).await.err();
    assert!(
        matches!(&err, Some(peerlock::Error::Config(m)) if m.contains("zone")),
        "{err:?}"
    );
}

/// With a shared certificate a name proves nothing, so a newcomer under a
/// silent voter's name does not replace it early (with per-node
/// certificates it would, once stable: t74): the blank restart of "c"
/// joins under a new id and waits as a learner, and the old "c" stays a
/// voter until it has been silent for `dead_after`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t76_issue_9_a_blank_restart_with_a_shared_certificate_waits_for_dead_after() {
    let dead_after = Duration::from_secs(12);
    let (mut nodes, shared, addrs) = shared_cluster(dead_after).await;
    let leader = wait_until(|| nodes.iter().position(|n| n.status().is_leader())).await;
    let victim = (0..3).rev().find(|i| *i != leader).unwrap();
    let name = ["a", "b", "c"][victim];
    let old = nodes[victim].status().id;
    peerlock::testing::crash(&nodes[victim]).await;
    let killed = Instant::now();

    let sock = rebind(addrs[victim]).await;
    let again = builder(shared.clone(), sock, dead_after)
        .name(name)
        .peers(addrs.clone())
        .max_voters(3)
        .start()
        .await
        .expect("a blank restart joins as a new member");
    within(again.ready()).await.expect("ready");
    let new = again.status().id;
    assert_ne!(new, old, "never the old id");
    nodes[victim] = again;
    let watcher = &nodes[leader];

    // The newcomer is a live learner; give the fast path (stabilization
    // 1 s, planned every 500 ms) twice what it would need.
    let mut live_since = None;
    loop {
        let m = members(watcher).await;
        assert!(
            is_voter(&m, old),
            "the old {name} lost its vote early: {m:?}"
        );
        assert!(!is_voter(&m, new), "the newcomer was promoted early: {m:?}");
        let learner = m
            .iter()
            .any(|x| x.id == new && x.live && x.role == MemberRole::Learner);
        let since = *live_since.get_or_insert_with(Instant::now);
        if !learner {
            live_since = None;
        } else if since.elapsed() >= Duration::from_millis(2500) {
            break;
        }
        assert!(
            killed.elapsed() + Duration::from_secs(1) < dead_after,
            "too slow to tell the fast path from dead_after: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // After dead_after the newcomer replaces the old id.
    let deadline = Instant::now() + WAIT;
    loop {
        let m = members(watcher).await;
        let live_voters = m
            .iter()
            .filter(|x| x.role == MemberRole::Voter && x.live)
            .count();
        if is_voter(&m, new) && !is_voter(&m, old) && live_voters == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "not replaced: {m:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(killed.elapsed() >= dead_after, "{:?}", killed.elapsed());
    let g = within(nodes[victim].lock("after")).await.unwrap();
    within(g.unlock()).await.unwrap();
}

/// Five nodes in three zones, three voters. The founders a, b (zone z1)
/// and c (z2) vote; d (z1) joins, then e (z3). When b dies, the leader
/// replaces it with e, the learner of the zone the voters lack, though d
/// has been stable longer (and has the lower id): the voters span the
/// three zones. The founders' zones, which the founding table cannot
/// know, are recorded by the founders themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t76_issue_9_voters_are_chosen_across_zones() {
    init_tracing();
    let dead_after = Duration::from_secs(3);
    let ca = peerlock::certs::ClusterCa::generate("zones").unwrap();
    let node = |name: &str, zone: &str, sock: UdpSocket| {
        builder(ca.issue_node(name, &[]).unwrap(), sock, dead_after)
            .zone(zone)
            .max_voters(3)
    };
    let (socks, addrs) = sockets(3);
    let mut starts = Vec::new();
    for (sock, (name, zone)) in socks
        .into_iter()
        .zip([("a", "z1"), ("b", "z1"), ("c", "z2")])
    {
        starts.push(tokio::spawn(
            node(name, zone, sock).peers(addrs.clone()).start(),
        ));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().expect("founder starts"));
    }
    for n in &nodes {
        within(n.ready()).await.expect("ready");
    }
    for (name, zone) in [("d", "z1"), ("e", "z3")] {
        let (mut socks, _) = sockets(1);
        let n = node(name, zone, socks.remove(0))
            .seeds([addrs[0]])
            .start()
            .await
            .expect("joins");
        within(n.ready()).await.expect("ready");
        nodes.push(n);
    }
    // Every zone recorded, d and e live learners.
    let deadline = Instant::now() + WAIT;
    loop {
        let m = members(&nodes[0]).await;
        let zones: Vec<(String, Option<String>)> = {
            let mut z: Vec<_> = m
                .iter()
                .map(|x| (x.name.0.clone(), x.zone.clone()))
                .collect();
            z.sort();
            z
        };
        let want: Vec<(String, Option<String>)> = [
            ("a", "z1"),
            ("b", "z1"),
            ("c", "z2"),
            ("d", "z1"),
            ("e", "z3"),
        ]
        .iter()
        .map(|(n, z)| ((*n).to_owned(), Some((*z).to_owned())))
        .collect();
        let learners = m
            .iter()
            .filter(|x| x.role == MemberRole::Learner && x.live)
            .count();
        if zones == want && learners == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{m:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Kill whichever of a and b does not lead: z1 keeps one voter.
    let leader = wait_until(|| nodes.iter().position(|n| n.status().is_leader())).await;
    let victim = if leader == 1 { 0 } else { 1 };
    peerlock::testing::crash(&nodes[victim]).await;
    let watcher = &nodes[if victim == 0 { 1 } else { 0 }];
    let deadline = Instant::now() + WAIT;
    loop {
        let m = members(watcher).await;
        let voters: Vec<&MemberInfo> = m
            .iter()
            .filter(|x| x.role == MemberRole::Voter && x.live)
            .collect();
        let all = m.iter().filter(|x| x.role == MemberRole::Voter).count();
        let gone = !m
            .iter()
            .any(|x| x.role == MemberRole::Voter && x.name.0 == ["a", "b"][victim]);
        if gone && voters.len() == 3 && all == 3 {
            let mut zones: Vec<&str> = voters.iter().filter_map(|x| x.zone.as_deref()).collect();
            zones.sort_unstable();
            assert_eq!(zones, ["z1", "z2", "z3"], "{m:?}");
            assert!(voters.iter().any(|x| x.name.0 == "e"), "{m:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{m:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
