//! The catalog reaches a recorder (issue 12, item 1): a lock and an
//! unlock on a three-node in-memory cluster, under a `metrics-util`
//! debugging recorder installed for this thread only (so no other test of
//! this binary sees it or clashes with it). The cluster runs on a
//! current-thread runtime, so every node task records on this thread.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::time::timeout;

use crate::config::NodeConfig;
use crate::raft::{start, Member, MemoryPeers, StartParams};
use crate::sim::MemNet;
use crate::types::{NodeId, NodeName};

const WAIT: Duration = Duration::from_secs(10);

fn params(net: &MemNet, me: &Member, members: &[Member]) -> StartParams {
    let (transport, incoming) = net.join(me.id);
    StartParams {
        config: NodeConfig {
            session_ttl: Duration::from_millis(1000),
            tick: Duration::from_millis(10),
            ..NodeConfig::default()
        },
        me: me.id,
        members: members.to_vec(),
        transport: transport as Arc<dyn crate::transport::Transport>,
        incoming,
        join_timeout: WAIT,
        on_stop: None,
        incarnation: None,
        peer_memory: Box::new(MemoryPeers::default()),
        hooks: crate::raft::Hooks::default(),
        joined: None,
        join_only: false,
        durable: false,
        on_joined: None,
        on_left: None,
    }
}

/// Starts three nodes, locks and unlocks on each, lets a tick pass, and
/// stops them.
async fn lock_and_unlock() {
    let net = MemNet::new();
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let name = format!("m{i}");
            let id = NodeId::from_name(&name);
            let addr = MemNet::addr(id);
            Member {
                id,
                name: NodeName(name),
                addr,
            }
        })
        .collect();
    // Started together: each start waits for a quorum of the others.
    let starts: Vec<_> = members
        .iter()
        .map(|m| tokio::spawn(timeout(WAIT, start(params(&net, m, &members)))))
        .collect();
    let mut nodes = Vec::new();
    for s in starts {
        let node = s.await.expect("the start task ran");
        nodes.push(node.expect("started in time").expect("starts"));
    }
    for n in &nodes {
        timeout(WAIT, n.ready())
            .await
            .expect("in time")
            .expect("ready");
    }
    for n in &nodes {
        let g = timeout(WAIT, n.lock("m"))
            .await
            .expect("in time")
            .expect("granted");
        timeout(WAIT, g.unlock())
            .await
            .expect("in time")
            .expect("unlocked");
    }
    let busy = nodes[0].lock("held").await.expect("granted");
    let try_again = nodes[1].try_lock("held").await.expect("answered");
    assert!(try_again.is_none(), "busy");
    drop(busy);
    // A leader's membership round (every 500 ms) and a few ticks.
    tokio::time::sleep(Duration::from_millis(700)).await;
    for n in &nodes {
        let _ = timeout(WAIT, n.shutdown()).await;
    }
}

/// Every metric's value in the recorder, by name and labels.
fn values(recorder: &DebuggingRecorder) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let v = match value {
            DebugValue::Counter(c) => c as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.len() as f64,
        };
        out.insert(format!("{}{{{}}}", key.name(), labels.join(",")), v);
    }
    out
}

#[test]
fn a_lock_and_unlock_reach_every_name_of_the_catalog() {
    let recorder = DebuggingRecorder::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    metrics::with_local_recorder(&recorder, || rt.block_on(lock_and_unlock()));
    let seen = values(&recorder);
    let has = |name: &str| seen.keys().any(|k| k.starts_with(&format!("{name}{{")));
    // The TLS expiry gauges are set by the QUIC transport, which this
    // in-memory cluster does not run (the scrape test, process t72, sees
    // them); every other name is the core's own.
    let by_transport = [super::TLS_CERT_EXPIRY_SECONDS, super::TLS_CERTS_EXPIRING];
    let missing: Vec<&str> = super::ALL
        .iter()
        .copied()
        .filter(|n| !by_transport.contains(n) && !has(n))
        .collect();
    assert!(
        missing.is_empty(),
        "not recorded: {missing:?}\nseen: {seen:#?}"
    );
    let value = |k: &str| seen.get(k).copied().unwrap_or(0.0);
    // Values moved, not only names registered.
    assert!(value("peerlock_locks_granted_total{}") >= 4.0, "{seen:#?}");
    assert!(value("peerlock_locks_released_total{}") >= 4.0, "{seen:#?}");
    assert_eq!(value("peerlock_locks_held{}"), 0.0, "every guard went away");
    assert!(value("peerlock_acquires_total{kind=mutex,outcome=granted}") >= 4.0);
    assert!(value("peerlock_acquires_total{kind=mutex,outcome=busy}") >= 1.0);
    assert!(value("peerlock_acquire_wait_seconds{kind=mutex}") >= 4.0);
    assert!(value("peerlock_hold_seconds{}") >= 4.0);
    assert!(value("peerlock_commit_duration_seconds{}") >= 1.0);
    assert!(value("peerlock_keepalive_round_trip_seconds{}") >= 1.0);
    assert!(value("peerlock_leader_changes_total{}") >= 1.0);
    assert!(value("peerlock_proposals_committed_total{}") >= 4.0);
    assert!(value("peerlock_term{}") >= 1.0);
    assert!(value("peerlock_commit_index{}") >= 1.0);
}
