//! A watch of who holds a name never goes back, also when its node catches
//! up from a snapshot (issue 11: `watch_leader`; etcd's watches once went
//! back in time after a member restored a snapshot, etcd-io/etcd#15271).
//!
//! The watch is fed after every applied batch and after a snapshot is
//! restored (`watches.rs`); this test cuts a watching node off while the
//! holder changes several times and the leader compacts far past the
//! cut-off node's log, so it can only catch up by installing a snapshot,
//! and checks every value the watch showed.
//!
//! Compaction runs on the tick (`compaction.rs`): the table is encoded at
//! a tick once `compact_after` entries are past the snapshot, and the log
//! is cut at a later tick once the tail has been applied after it. The
//! fill below (some 130 entries) takes about one tick of 10 ms here, so
//! healing right after it raced the leader's compaction against the
//! cut-off node's catch-up by entries; the test waits for the compaction
//! on the nodes that can lead before it heals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::timeout;

use super::compact_tests::Counting;
use super::tests::{members, params, WAIT};
use super::{start, HolderView};
use crate::config::NodeConfig;
use crate::sim::MemNet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_a_watch_moves_forward_across_a_snapshot_install() {
    let cfg = NodeConfig {
        session_ttl: Duration::from_secs(5),
        tick: Duration::from_millis(10),
        compact_after: 20,
        ..NodeConfig::default()
    };
    let net = MemNet::new();
    let members = members(3, "w");
    let snapshots = Arc::new(AtomicU64::new(0));
    let mut starts = Vec::new();
    for m in &members {
        let mut p = params(&net, m, &members, cfg.clone());
        p.transport = Arc::new(Counting {
            inner: p.transport,
            snapshots: Arc::clone(&snapshots),
        });
        starts.push(tokio::spawn(start(p)));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().unwrap());
    }
    for n in &nodes {
        timeout(WAIT, n.ready()).await.unwrap().unwrap();
    }
    let leader = nodes[0].status().leader.unwrap();
    let li = members.iter().position(|m| m.id == leader).unwrap();
    let other = (li + 1) % 3;
    let cut = (li + 2) % 3;

    // Every value the cut-off node's watch shows, in order.
    let mut rx = timeout(WAIT, nodes[cut].watch_holder("e"))
        .await
        .unwrap()
        .unwrap();
    let seen: Arc<Mutex<Vec<HolderView>>> = Arc::new(Mutex::new(vec![rx.borrow().clone()]));
    let recorder = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let v = rx.borrow_and_update().clone();
                seen.lock().push(v);
            }
        })
    };
    let first = timeout(WAIT, nodes[li].campaign("e"))
        .await
        .unwrap()
        .unwrap();
    // The cut-off node saw the first term before the cut.
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen
        .lock()
        .last()
        .and_then(|v| v.holder.as_ref())
        .map(|h| h.token)
        != Some(first.token())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watch never showed the first term"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    net.isolate(members[cut].id);
    // The cut-off node holds nothing past this but what was in flight at
    // the cut: no entry is proposed between its watch showing the first
    // term and the cut (the margin below covers a stray one).
    let cut_at = nodes[li].status().commit_index;
    first.resign().await.unwrap();
    let mut last = None;
    for term in 0..4 {
        let l = timeout(WAIT, nodes[[other, li][term % 2]].campaign("e"))
            .await
            .unwrap()
            .unwrap();
        // Far more entries than the log keeps after a compaction.
        for i in 0..15 {
            let g = timeout(WAIT, nodes[li].lock(&format!("fill{i}")))
                .await
                .unwrap()
                .unwrap();
            timeout(WAIT, g.unlock()).await.unwrap().unwrap();
        }
        if term < 3 {
            l.resign().await.unwrap();
        } else {
            last = Some(l);
        }
    }
    let last = last.unwrap();
    // Both nodes that can lead compact past everything the cut-off node
    // holds before the heal, so entries cannot catch it up. The tail rule
    // needs entries applied after the snapshot is taken: a pair is
    // committed per round until the compaction is done.
    let mut rounds = 0;
    loop {
        let mut compacted = true;
        for n in [&nodes[li], &nodes[other]] {
            let first = n.inspect().await.unwrap().log_first_index;
            compacted &= first > cut_at + 10;
        }
        if compacted {
            break;
        }
        rounds += 1;
        assert!(rounds < 200, "the log was not compacted past {cut_at} + 10");
        let g = timeout(WAIT, nodes[li].lock("tail"))
            .await
            .unwrap()
            .unwrap();
        timeout(WAIT, g.unlock()).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    net.heal();

    let deadline = tokio::time::Instant::now() + WAIT;
    while seen
        .lock()
        .last()
        .and_then(|v| v.holder.as_ref())
        .map(|h| h.token)
        != Some(last.token())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watch did not move to the newest term after the snapshot: {:?}",
            seen.lock().last()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        snapshots.load(Ordering::Relaxed) > 0,
        "the cut-off node caught up without a snapshot: the test did not test it"
    );
    recorder.abort();
    let seen = seen.lock().clone();
    for pair in seen.windows(2) {
        assert!(
            pair[0].index <= pair[1].index,
            "the watch went back: {seen:?}"
        );
        let token = |v: &HolderView| v.holder.as_ref().map(|h| h.token);
        if let (Some(a), Some(b)) = (token(&pair[0]), token(&pair[1])) {
            assert!(a <= b, "an older term after a newer one: {seen:?}");
        }
    }
    drop(last);
}
