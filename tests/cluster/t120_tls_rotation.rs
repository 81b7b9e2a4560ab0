//! Issue 12, item 5: certificates rotate without a restart, under lock
//! load, with no lost lock and no refused peer: every node's certificate
//! (same CA), then the CA itself in three reloads (trust both, move the
//! nodes to the new CA, drop the old one). After each step every node's
//! connections are closed (`testing::close_connections`), so the step's
//! configuration is proven by new handshakes: each node checks the
//! certificate its peers presented on the new connections. At the end a
//! certificate of the dropped CA is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use peerlock::certs::ClusterCa;
use peerlock::{Error, FencingToken, Node, TlsConfig};

use crate::common::{within, Cluster, WAIT};

const NAMES: [&str; 3] = ["rotate/a", "rotate/b", "rotate/c"];

/// What the load saw.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    ops: AtomicU64,
    last: Mutex<HashMap<&'static str, FencingToken>>,
    faults: Mutex<Vec<String>>,
}

impl Load {
    fn fault(&self, f: String) {
        self.faults.lock().push(f);
    }
}

/// Locks and unlocks the names in turn through `node` until told to stop:
/// each grant's token must be above the name's last one (holders of a
/// name record it in grant order, inside their critical section), and no
/// guard may be lost.
async fn load(node: Node, who: usize, load: Arc<Load>) {
    let mut i = who;
    while !load.stop.load(Ordering::SeqCst) {
        let name = NAMES[i % NAMES.len()];
        i += 1;
        let g = match node.lock_timeout(name, Duration::from_secs(5)).await {
            Ok(g) => g,
            Err(e) => {
                load.fault(format!("node {who}: lock {name}: {e}"));
                continue;
            }
        };
        {
            let mut last = load.last.lock();
            if let Some(prev) = last.get(name) {
                if g.token() <= *prev {
                    load.fault(format!(
                        "{name}: token {} after {prev}: not strictly increasing",
                        g.token()
                    ));
                }
            }
            last.insert(name, g.token());
        }
        tokio::select! {
            () = g.lost() => load.fault(format!("node {who}: guard of {name} lost")),
            () = tokio::time::sleep(Duration::from_millis(3)) => {}
        }
        if !g.is_held() {
            load.fault(format!("node {who}: guard of {name} not held"));
        }
        match g.unlock().await {
            Ok(()) => {
                load.ops.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => load.fault(format!("node {who}: unlock {name}: {e}")),
        }
    }
}

/// Waits until the load has made `n` more operations.
async fn progress(load: &Load, n: u64, step: &str) {
    let start = load.ops.load(Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + WAIT;
    while load.ops.load(Ordering::SeqCst) < start + n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{step}: the lock load stalled; faults: {:?}",
            load.faults.lock()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reloads every node with its configuration in `tls`, closes every
/// connection, and waits until each node's connections are new ones that
/// carry its peers' certificates of `tls` (and the leader has one with
/// each peer), the load making progress meanwhile.
async fn step(c: &Cluster, load: &Load, tls: &[TlsConfig], what: &str) {
    for (node, t) in c.nodes.iter().zip(tls) {
        node.reload_tls(t.clone())
            .unwrap_or_else(|e| panic!("{what}: reload refused: {e}"));
    }
    let closed: usize = c
        .nodes
        .iter()
        .map(peerlock::testing::close_connections)
        .sum();
    assert!(closed >= 2, "{what}: the leader's connections were open");
    let want: HashMap<String, Vec<u8>> = tls
        .iter()
        .map(|t| (t.node_name().to_owned(), t.certificate_der().to_vec()))
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let leader = c.leader().await;
        let mut ok = true;
        let mut report = Vec::new();
        for (i, node) in c.nodes.iter().enumerate() {
            let seen = peerlock::testing::peer_certificates(node);
            let right = seen
                .iter()
                .filter(|(name, der)| want.get(name) == Some(der))
                .count();
            ok &= right == seen.len() && (i != leader || right == c.nodes.len() - 1);
            report.push((i, seen.len(), right));
        }
        if ok {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: connections do not carry the new certificates: (node, open, right) {report:?}; faults: {:?}",
            load.faults.lock()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress(load, 20, what).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t120_certificates_and_the_ca_rotate_under_lock_load() {
    let c = Cluster::start(3).await;
    let names: Vec<String> = (0..3).map(|i| format!("node-{i}")).collect();
    let state = Arc::new(Load::default());
    let tasks: Vec<_> = c
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| tokio::spawn(load(n.clone(), i, Arc::clone(&state))))
        .collect();
    progress(&state, 20, "before").await;

    // Each node's own certificate, same CA.
    let renewed: Vec<TlsConfig> = names
        .iter()
        .map(|n| c.ca.issue_node(n, &[]).unwrap())
        .collect();
    step(&c, &state, &renewed, "renew").await;

    // The CA: 1) trust both, 2) certificates from the new one, 3) drop
    // the old one.
    let new = ClusterCa::generate("test-2").unwrap();
    let both = ClusterCa::bundle_pem(&[&new, &c.ca]);
    let trusting: Vec<TlsConfig> = renewed
        .iter()
        .map(|t| t.with_ca_bundle(&both).unwrap())
        .collect();
    step(&c, &state, &trusting, "1: trust both CAs").await;
    let moved: Vec<TlsConfig> = names
        .iter()
        .map(|n| new.issue_node_trusting(n, &[], &both).unwrap())
        .collect();
    step(&c, &state, &moved, "2: certificates of the new CA").await;
    // A certificate of the old CA still gets in (the control for below).
    let stranger = c.ca.issue_node_trusting("intruder", &[], &both).unwrap();
    let probe = |to| {
        let tls = stranger.clone();
        async move {
            peerlock_transport::testing::send_raw(&tls, to, b"", Duration::from_millis(300)).await
        }
    };
    let admitted = probe(c.addrs[0]).await;
    assert!(admitted.is_ok(), "{admitted:?}");
    let alone: Vec<TlsConfig> = moved
        .iter()
        .map(|t| t.with_ca_bundle(&new.ca_pem()).unwrap())
        .collect();
    step(&c, &state, &alone, "3: the old CA dropped").await;

    // Refused now, by every node.
    for addr in &c.addrs {
        let refused = probe(*addr).await;
        assert!(matches!(refused, Err(Error::Tls(_))), "{addr}: {refused:?}");
    }
    // A rotation cannot rename a member; nothing changes.
    let renamed = new.issue_node("node-9", &[]).unwrap();
    assert!(matches!(
        c.nodes[0].reload_tls(renamed),
        Err(Error::TlsIdentityChanged { .. })
    ));
    progress(&state, 20, "after").await;

    state.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        within(t).await.unwrap();
    }
    let faults = state.faults.lock().clone();
    assert!(faults.is_empty(), "faults under rotation: {faults:?}");
    let ops = state.ops.load(Ordering::SeqCst);
    eprintln!("t120: {ops} lock/unlock operations across the rotation");
}

/// A durable node records its data directory under the CA of its start;
/// after the CA rotated away without a restart it must still start on it
/// (the reloads moved the record to the new CA), with its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t120b_a_durable_node_restarts_on_its_directory_after_the_ca_rotation() {
    crate::common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (
        ClusterCa::generate("durable").unwrap(),
        ClusterCa::generate("durable-2").unwrap(),
    );
    let (mut socks, addrs) = crate::common::sockets(1);
    let start = |sock, tls| {
        Node::builder()
            .socket(sock)
            .peers(addrs.clone())
            .tls(tls)
            .data_dir(dir.path())
            .session_ttl(Duration::from_millis(1500))
            .raft_tick(Duration::from_millis(20))
            .startup_timeout(WAIT)
            .start()
    };
    let first = old.issue_node("solo", &[]).unwrap();
    let node = within(start(socks.pop().unwrap(), first.clone()))
        .await
        .unwrap();
    within(node.ready()).await.unwrap();
    let g = within(node.lock("kept")).await.unwrap();
    let before = g.token();
    within(g.unlock()).await.unwrap();

    let both = ClusterCa::bundle_pem(&[&new, &old]);
    node.reload_tls(first.with_ca_bundle(&both).unwrap())
        .unwrap();
    let moved = new.issue_node_trusting("solo", &[], &both).unwrap();
    node.reload_tls(moved.clone()).unwrap();
    let last = moved.with_ca_bundle(&new.ca_pem()).unwrap();
    node.reload_tls(last.clone()).unwrap();
    peerlock::testing::crash(&node).await;
    drop(node);

    let sock = crate::common::rebind(addrs[0]).await;
    let node = within(start(sock, last))
        .await
        .expect("starts on its directory with the new CA alone");
    within(node.ready()).await.unwrap();
    let g = within(node.lock("kept")).await.unwrap();
    assert!(
        g.token() > before,
        "the state was kept: {} after {before}",
        g.token()
    );
    within(g.unlock()).await.unwrap();
    within(node.shutdown()).await.unwrap();
}
