//! A peer that comes back (closed and restarted, or killed without a close
//! frame and restarted on the same or a new address, or with a new key) is
//! reachable again at once, well under the dead connection's idle timeout.

use std::time::Duration;

use peerlock_core::transport::Transport;
use peerlock_core::NodeId;
use peerlock_transport::ClusterCa;
use tokio::time::{timeout, Instant};

use crate::harness::{cluster, deliver, discover_all, ordered, rebind, socket, start, tls, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t08_a_restarted_peer_on_the_same_address_is_reconnected() {
    let ca = ClusterCa::generate("t08").unwrap();
    // Restart the node that dials (lower id), then the one that waits.
    let (low, high) = ordered("node-a", "node-b");
    let mut n = cluster(&ca, &[low, high]);
    discover_all(&n).await;
    let addrs = [n[0].t.local_addr(), n[1].t.local_addr()];
    for (victim, name) in [(0, low), (1, high)] {
        let old = std::mem::replace(&mut n[victim], start(socket(), &tls(&ca, "spare"), &[]));
        old.t.close();
        drop(old);
        let sock = rebind(addrs[victim]).await;
        n[victim] = start(sock, &tls(&ca, name), &addrs);
        let found = n[victim].t.discover(Instant::now() + WAIT).await.unwrap();
        assert_eq!(found.len(), 2);
        let (x, y) = n.split_at_mut(1);
        deliver(&x[0], &mut y[0]).await;
        deliver(&y[0], &mut x[0]).await;
    }
}

/// Restarting must take well under the dead connection's idle timeout.
const AT_ONCE: Duration = Duration::from_secs(1);

/// How the crashed node comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Back {
    /// Same address, same certificate and key.
    Same,
    /// Another address (same certificate).
    NewAddress,
    /// Another address, and the lower peer is not among its configured
    /// addresses: it learns it (as a restarted member learns the others
    /// from its data directory or the member table, issue 9).
    NewAddressLearned,
    /// Same address, a re-issued certificate with a new key.
    NewKey,
}

/// Connects a lower and a higher node, crashes the higher one (no close
/// frame: its peer keeps a connection to a process that is gone), leaves it
/// down for `down`, restarts it with the same identity on the same address
/// (running discovery if `discover`), and checks both directions deliver
/// within [`AT_ONCE`] of the restart.
async fn crash_and_restart_the_higher_node(cluster: &str, down: Duration, discover: bool) {
    crash_and_restart(cluster, down, discover, Back::Same).await;
}

/// As [`crash_and_restart_the_higher_node`], coming back as `back` says.
async fn crash_and_restart(cluster: &str, down: Duration, discover: bool, back: Back) {
    assert!(AT_ONCE < peerlock_transport::IDLE_TIMEOUT);
    let ca = ClusterCa::generate(cluster).unwrap();
    let (low, high) = ordered("node-a", "node-b");
    let (sl, sh) = (socket(), socket());
    let addrs = [sl.local_addr().unwrap(), sh.local_addr().unwrap()];
    let high_tls = tls(&ca, high);
    let mut l = start(sl, &tls(&ca, low), &addrs);
    // The doomed process gets a runtime of its own: dropping it drops
    // every task without running it again, so nothing says goodbye.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tls_h, peers) = (high_tls.clone(), addrs.to_vec());
    let mut h = doomed
        .spawn(async move { start(sh, &tls_h, &peers) })
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let th = h.t.clone();
    let (rl, rh) = tokio::join!(
        l.t.discover(deadline),
        doomed.spawn(async move { th.discover(deadline).await })
    );
    assert_eq!(rl.unwrap().len(), 2);
    assert_eq!(rh.unwrap().unwrap().len(), 2);
    deliver(&l, &mut h).await;
    deliver(&h, &mut l).await;

    // kill -9: the runtime is gone (every task dropped, none polled again)
    // before the handle is dropped, so no close frame can leave.
    tokio::task::spawn_blocking(move || drop(doomed))
        .await
        .unwrap();
    drop(h);
    tokio::time::sleep(down).await;
    let sock = if matches!(back, Back::NewAddress | Back::NewAddressLearned) {
        socket()
    } else {
        rebind(addrs[1]).await
    };
    let high_tls = match back {
        Back::NewKey => tls(&ca, high),
        Back::Same | Back::NewAddress | Back::NewAddressLearned => high_tls,
    };
    let addrs = [addrs[0], sock.local_addr().unwrap()];
    let restarted = Instant::now();
    let mut h = if back == Back::NewAddressLearned {
        let h = start(sock, &high_tls, &addrs[1..]);
        h.t.learn_peer(NodeId::from_name(low), low, addrs[0]);
        h
    } else {
        start(sock, &high_tls, &addrs)
    };
    if discover {
        let found = timeout(WAIT, h.t.discover(Instant::now() + WAIT))
            .await
            .expect("discovery in time")
            .unwrap();
        assert_eq!(found.len(), 2);
    }
    // Both ways, well within the idle timeout of the dead connection.
    // (Without discovery the restarted node learns of the lower one from
    // its connection, so the lower node must notice on its own.)
    let within = |what: &str| {
        let took = restarted.elapsed();
        assert!(took < AT_ONCE, "{what} took {took:?} after the restart");
    };
    timeout(AT_ONCE, deliver(&h, &mut l))
        .await
        .unwrap_or_else(|_| panic!("restarted {high} -> {low}: nothing within {AT_ONCE:?}"));
    within("restarted -> lower");
    timeout(AT_ONCE, deliver(&l, &mut h))
        .await
        .unwrap_or_else(|_| panic!("{low} -> restarted {high}: nothing within {AT_ONCE:?}"));
    within("lower -> restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t11_a_crashed_and_restarted_peer_is_reachable_at_once() {
    // The higher id waits for the lower id's connection. When it crashes
    // and restarts on the same address, the lower node must drop the dead
    // process's connection and re-dial at once, not after the 3 s idle
    // timeout. Restarting runs discovery, whose probe is the cue.
    crash_and_restart_the_higher_node("t11", Duration::ZERO, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_a_peer_restarted_later_without_discovery_is_noticed_at_once() {
    // Down for half the idle timeout, and no discovery probe to cue the
    // lower node: its keep-alives (every 500 ms, answered or not) reach
    // the new process, which must reset the dead connection.
    crash_and_restart_the_higher_node("t12", Duration::from_millis(1500), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t17_issue_8_a_peer_restarted_on_a_new_address_is_reachable_at_once() {
    // Nothing answers at the old address, so no stateless reset ends the
    // lower node's connection to the dead process: the restarted node's
    // discovery probe (from its new address) must retire it, and the lower
    // node must dial the new address.
    crash_and_restart("t17", Duration::ZERO, true, Back::NewAddress).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t18_issue_8_a_peer_restarted_with_a_reissued_key_is_reachable_at_once() {
    // A new key derives other reset and connection-ID keys, so the new
    // process cannot reset the old connection: the probe presenting
    // another certificate must retire it.
    crash_and_restart("t18", Duration::ZERO, true, Back::NewKey).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t22_issue_9_a_peer_restarted_on_a_new_address_that_learns_the_lower_peer_is_reachable_at_once(
) {
    // A joined member restarts from its data directory on a new address;
    // its start-up discovery probes only its seeds, and the lower peer is
    // not one. Only the lower peer dials the pair, so learning it must
    // send it a probe from the new address, or the two never talk again.
    crash_and_restart("t22", Duration::ZERO, false, Back::NewAddressLearned).await;
}
