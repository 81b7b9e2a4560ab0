//! Regression tests for issue 8 ("Faults that production users of lock
//! services hit") that need the driver on the in-memory network: one per
//! fault kind, each failing on the code before its fix.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::time::{timeout, Instant};

use super::tests::{cluster_with, config, WAIT};
use crate::config::NodeConfig;
use crate::transport::PeerMessage;

/// Issue 8, item 4: one parked waiter must not make the table keep every
/// later outcome of its session. B holds `leader`, A waits for it (the
/// standby pattern) and meanwhile churns try_lock + unlock on its own
/// names. Before the fix the acknowledgement floor stayed at the parked
/// request and the table kept two outcomes per pair (about 1 200 here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_a_parked_waiter_keeps_the_table_bounded_by_live_state() {
    let (_net, _ids, nodes) = cluster_with(3, config()).await;
    let (a, b) = (nodes[1].clone(), nodes[2].clone());
    let held = timeout(WAIT, b.lock("leader")).await.unwrap().unwrap();
    let standby = {
        let a = a.clone();
        tokio::spawn(async move { a.lock("leader").await })
    };
    // Wait until the standby is queued behind B.
    let deadline = Instant::now() + WAIT;
    loop {
        let info = a.holder("leader").await.unwrap().unwrap();
        if info.waiters == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the standby never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut churn = Vec::new();
    for t in 0..4 {
        let a = a.clone();
        churn.push(tokio::spawn(async move {
            for i in 0..150 {
                let name = format!("own/{t}/{i}");
                let g = a.try_lock(&name).await.unwrap().unwrap();
                g.unlock().await.unwrap();
            }
        }));
    }
    for c in churn {
        timeout(WAIT * 3, c).await.unwrap().unwrap();
    }
    // One more request carries the final floor.
    drop(a.try_lock("last").await.unwrap());
    for n in &nodes {
        let seen = timeout(WAIT, n.inspect()).await.unwrap().unwrap();
        assert!(
            seen.remembered_outcomes <= 16,
            "after 600 pairs behind a parked waiter the table remembers {} outcomes",
            seen.remembered_outcomes
        );
    }
    drop(held);
    let g = timeout(WAIT, standby).await.unwrap().unwrap().unwrap();
    assert!(g.is_held(), "the parked waiter is still granted in the end");
}

/// Issue 8, item 7: graceful shutdown revokes this node's guards before it
/// proposes the close, so another node is never granted a lock while a
/// guard here still reads `is_held() == true`. The closing node's inbound
/// links are cut (it can send, not hear), which before the fix kept its
/// guard held for the rest of its lease after the lock went elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_shutdown_revokes_guards_before_another_node_is_granted() {
    let cfg = NodeConfig {
        session_ttl: Duration::from_secs(3),
        ..config()
    };
    let (net, ids, nodes) = cluster_with(3, cfg).await;
    let leader = nodes[0].status().leader.unwrap();
    let closing = (0..3).find(|i| ids[*i] != leader).unwrap();
    let waiter = (0..3).find(|i| *i != closing).unwrap();
    let g = timeout(WAIT, nodes[closing].lock("x"))
        .await
        .unwrap()
        .unwrap();
    let queued = {
        let n = nodes[waiter].clone();
        tokio::spawn(async move { n.lock("x").await })
    };
    let deadline = Instant::now() + WAIT;
    while nodes[waiter].holder("x").await.unwrap().unwrap().waiters == 0 {
        assert!(Instant::now() < deadline, "the waiter never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for other in ids.iter().filter(|id| **id != ids[closing]) {
        net.cut(*other, ids[closing]);
    }
    let granted = Arc::new(AtomicBool::new(false));
    let watcher = {
        let granted = granted.clone();
        tokio::spawn(async move {
            let mut overlap = 0u32;
            let end = Instant::now() + WAIT;
            while Instant::now() < end {
                let g_held = g.is_held();
                if granted.load(Ordering::SeqCst) && g_held {
                    overlap += 1;
                }
                if granted.load(Ordering::SeqCst) && !g_held {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            overlap
        })
    };
    let closer = {
        let n = nodes[closing].clone();
        tokio::spawn(async move { n.shutdown().await })
    };
    let other = timeout(WAIT, queued).await.unwrap().unwrap().unwrap();
    granted.store(true, Ordering::SeqCst);
    let overlap = timeout(WAIT, watcher).await.unwrap().unwrap();
    assert_eq!(
        overlap,
        0,
        "the closing node's guard still read held after {:?} was granted",
        other.token()
    );
    let _ = timeout(WAIT, closer).await.unwrap();
}

/// Issue 8, item 11: a keepalive renews only the sender's own session. A
/// peer that keeps sending keepalives for a crashed node's session (a bug
/// or a forged message from an authenticated peer) must not keep that
/// session, and its locks, alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_a_keepalive_for_another_nodes_session_is_ignored() {
    let cfg = config();
    let ttl = cfg.session_ttl;
    let (net, ids, nodes) = cluster_with(3, cfg).await;
    let leader = nodes[0].status().leader.unwrap();
    let li = ids.iter().position(|id| *id == leader).unwrap();
    let victim = (0..3).find(|i| *i != li).unwrap();
    let forger = (0..3).find(|i| *i != li && *i != victim).unwrap();
    let g = timeout(WAIT, nodes[victim].lock("v"))
        .await
        .unwrap()
        .unwrap();
    let session = nodes[victim].status().session.unwrap();
    let token = g.token();
    net.crash(ids[victim]);
    nodes[victim].kill().await;
    drop(g);
    let t0 = Instant::now();
    let mut seq = 1_000_000u64;
    loop {
        seq += 1;
        net.inject(
            ids[forger],
            leader,
            vec![PeerMessage::KeepAlive { session, seq }],
        );
        let freed = match timeout(Duration::from_millis(500), nodes[li].holder("v")).await {
            Ok(Ok(h)) => h.is_none_or(|h| h.token != token),
            _ => false,
        };
        if freed {
            break;
        }
        assert!(
            t0.elapsed() < ttl * 4,
            "forged keepalives kept the crashed node's session alive for {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 8, item 11: a Raft message addressed to another node is dropped,
/// not stepped. Here a message from a real peer, addressed elsewhere, with
/// a far higher term: stepped, it makes the node jump to that term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_a_raft_message_for_another_node_is_dropped() {
    let (net, ids, nodes) = cluster_with(3, config()).await;
    let term = nodes[0].status().term;
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = ids[1].0;
    m.to = ids[2].0;
    m.term = term + 50;
    net.inject(
        ids[1],
        ids[0],
        vec![PeerMessage::Raft(m.write_to_bytes().unwrap())],
    );
    // A marker that the node handled what came before it.
    let _ = timeout(WAIT, nodes[0].holder("marker")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        nodes[0].status().term < term + 50,
        "a message for node {} changed node {}'s term",
        ids[2],
        ids[0]
    );
}

/// Issue 8, item 10: keepalives share quorum rounds. Before the fix each
/// keepalive started its own ReadIndex round (a heartbeat broadcast), so
/// the leader's messages grew with sessions × nodes; now every keepalive
/// that arrives before a round starts rides on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_keepalives_that_arrive_together_share_one_quorum_round() {
    let (net, ids, nodes) = cluster_with(3, config()).await;
    let leader = nodes[0].status().leader.unwrap();
    let li = ids.iter().position(|id| *id == leader).unwrap();
    let sender = (li + 1) % 3;
    let session = nodes[sender].status().session.unwrap();
    let before = nodes[li].inspect().await.unwrap();
    for seq in 0..300u64 {
        net.inject(
            ids[sender],
            leader,
            vec![PeerMessage::KeepAlive {
                session,
                seq: u64::MAX - seq,
            }],
        );
    }
    let deadline = Instant::now() + WAIT;
    let after = loop {
        let now = nodes[li].inspect().await.unwrap();
        if now.keepalives_heard >= before.keepalives_heard + 300 {
            break now;
        }
        assert!(Instant::now() < deadline, "the leader never heard them");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let heard = after.keepalives_heard - before.keepalives_heard;
    let rounds = after.keepalive_rounds - before.keepalive_rounds;
    assert!(
        rounds * 10 <= heard,
        "{heard} keepalives took {rounds} quorum rounds"
    );
}

/// Issue 10 (cost as nodes grow): keepalives that arrive spread out, as
/// idle nodes' do, each started a quorum round of their own, so the
/// leader's keepalive traffic grew as nodes squared. Rounds are now paced
/// (at most one per TTL / 20): 40 keepalives 10 ms apart share a handful.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_keepalives_spread_out_share_paced_quorum_rounds() {
    let (net, ids, nodes) = cluster_with(3, config()).await;
    let leader = nodes[0].status().leader.unwrap();
    let li = ids.iter().position(|id| *id == leader).unwrap();
    let sender = (li + 1) % 3;
    let session = nodes[sender].status().session.unwrap();
    let before = nodes[li].inspect().await.unwrap();
    for seq in 0..40u64 {
        net.inject(
            ids[sender],
            leader,
            vec![PeerMessage::KeepAlive {
                session,
                seq: u64::MAX - seq,
            }],
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = nodes[li].inspect().await.unwrap();
    let heard = after.keepalives_heard - before.keepalives_heard;
    let rounds = after.keepalive_rounds - before.keepalive_rounds;
    assert!(heard >= 40, "the leader heard {heard}");
    // 400 ms at one round per 50 ms (TTL 1 s / 20), plus the nodes' own
    // keepalives: about 10 rounds; one per keepalive before the pacing.
    assert!(
        rounds * 3 <= heard,
        "{heard} keepalives took {rounds} quorum rounds"
    );
    // Sessions still renew: every node keeps a valid lease.
    for n in &nodes {
        let g = timeout(WAIT, n.lock(&format!("after-{}", n.status().id.0)))
            .await
            .unwrap()
            .unwrap();
        assert!(g.is_held());
    }
}

/// Issue 8, item 10: the client inbox is bounded. 12 000 `holder` calls
/// at once used to enter the driver's unbounded inbox together; now at
/// most `MAX_CALLS_IN_FLIGHT` wait there and the rest wait for a place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_a_burst_of_calls_does_not_grow_the_inbox_past_its_bound() {
    use crate::client::handle::MAX_CALLS_IN_FLIGHT;
    let (_net, _ids, nodes) = cluster_with(3, config()).await;
    let n = nodes[1].clone();
    let calls: Vec<_> = (0..12_000)
        .map(|i| {
            let n = n.clone();
            tokio::spawn(async move { n.holder(&format!("burst/{}", i % 7)).await })
        })
        .collect();
    for c in calls {
        // Under a loaded machine a read may miss its one-TTL deadline; what
        // is judged here is the inbox, not the reads' speed.
        let r = timeout(WAIT * 3, c).await.unwrap().unwrap();
        assert!(
            matches!(r, Ok(_) | Err(crate::error::Error::NoQuorum)),
            "{r:?}"
        );
    }
    let seen = n.inspect().await.unwrap();
    assert!(
        seen.inbox_peak <= MAX_CALLS_IN_FLIGHT + 64,
        "the inbox held {} inputs at once",
        seen.inbox_peak
    );
}

/// Issue 8, item 5: a follower catches up through a snapshot whose table is
/// decoded off its driver's task (at a million locks decoding takes about
/// a second, which on the driver would stall heartbeats and every caller).
/// A follower is cut off while the table grows past
/// `DECODE_OFF_DRIVER_BYTES` and the log is compacted; after the heal it
/// must converge, with the table decoded on a blocking thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_a_large_snapshot_is_decoded_off_the_driver() {
    let cfg = NodeConfig {
        compact_after: 200,
        ..config()
    };
    let (net, ids, nodes) = cluster_with(3, cfg).await;
    let leader = nodes[0].status().leader.unwrap();
    let li = ids.iter().position(|id| *id == leader).unwrap();
    let lagging = (li + 1) % 3;
    net.isolate(ids[lagging]);
    let pad = "p".repeat(240);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let n = nodes[li].clone();
        let pad = pad.clone();
        tasks.push(tokio::spawn(async move {
            let mut held = Vec::new();
            for i in 0..400 {
                let g = n
                    .try_lock(&format!("{pad}/{t}/{i}"))
                    .await
                    .unwrap()
                    .unwrap();
                held.push(g);
            }
            held
        }));
    }
    let mut guards = Vec::new();
    for t in tasks {
        guards.extend(timeout(WAIT * 3, t).await.unwrap().unwrap());
    }
    net.heal();
    let deadline = Instant::now() + WAIT * 2;
    loop {
        let want = nodes[li].state_hash().await.unwrap();
        let got = nodes[lagging].state_hash().await.unwrap();
        if got.1 == want.1 && got.0 >= want.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the follower never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = nodes[lagging].inspect().await.unwrap();
    assert!(
        seen.snapshots_decoded_off_driver >= 1,
        "the follower decoded its snapshot on the driver"
    );
    drop(guards);
}
