//! How often the leader sends a snapshot again to a peer that does not
//! answer (issue 10, curve 5): two election timeouts the first time (a
//! lost snapshot, `regression_a_lost_snapshot_is_sent_again`), then twice
//! as long each time, up to 16 times. Forming 1 000 nodes on 2 cores, the
//! leader sent 659 joiners a new copy every second while they were still
//! installing the last, 2 to 9 copies each, every one queued and
//! installed again.

use std::time::Duration;

use super::scenario::{follower_behind_compaction, paused_runtime};

#[test]
fn issue_10_a_snapshot_without_an_answer_is_sent_again_less_and_less_often() {
    paused_runtime().block_on(async {
        let (w, lead, lag) = follower_behind_compaction(5).await;
        let election = w.config.election_timeout();
        // Behind the compacted log, the follower can only catch up by
        // snapshot; every snapshot sent for the next 60 election timeouts
        // is lost.
        const LOST: u64 = 1_000;
        w.net.drop_snapshots(LOST);
        w.net.heal();
        tokio::time::sleep(election * 60).await;
        let sent = LOST - w.net.snapshots_to_drop();
        // Sent at 0, 2, 6, 14 and 30 election timeouts (the simulator draws
        // each node's timeout in [e, 2e), so up to twice as far apart): 3 to
        // 5 in 60. One every 2 would be 30.
        assert!(
            (2..=8).contains(&sent),
            "{sent} snapshots sent in 60 election timeouts to a peer that never answered"
        );
        // Once they arrive, the next one catches the follower up, within
        // the longest wait (32 of the leader's election timeouts, up to 64
        // of the configured ones).
        w.net.drop_snapshots(0);
        let target = lead.state_hash().await.unwrap();
        let caught_up = tokio::time::timeout(election * 80, async {
            while lag.state_hash().await.unwrap().0 < target.0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(caught_up.is_ok(), "the follower never caught up");
    });
}
