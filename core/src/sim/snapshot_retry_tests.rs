//! How often the leader sends a snapshot again to a peer that does not
//! answer (issue 10, curve 5): two election timeouts the first time (a
//! lost snapshot, `regression_a_lost_snapshot_is_sent_again`), then twice
//! as long each time, up to 16 times. Forming 1 000 nodes on 2 cores, the
//! leader sent 659 joiners a new copy every second while they were still
//! installing the last, 2 to 9 copies each, every one queued and
//! installed again.

use std::time::Duration;

use super::nemesis::calm;
use super::rng::Rng;
use super::world::World;
use crate::config::NodeConfig;

#[test]
fn issue_10_a_snapshot_without_an_answer_is_sent_again_less_and_less_often() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let ttl = Duration::from_secs(2);
        let cfg = NodeConfig {
            session_ttl: ttl,
            tick: NodeConfig::tick_for_ttl(ttl),
            compact_after: 40,
            ..NodeConfig::default()
        };
        let election = cfg.election_timeout();
        let mut w = World::new(Rng::new(5), 3, cfg, false, vec![1.0; 3]);
        w.clients_per_node = 0;
        w.net.set_weather(calm());
        w.start_all().await.unwrap();
        let leader = w.leader().unwrap();
        let lagging = (leader + 1) % 3;
        let (lead, lag) = (
            w.nodes[leader].handle.clone().unwrap(),
            w.nodes[lagging].handle.clone().unwrap(),
        );
        let (l, f) = (w.nodes[leader].member.id, w.nodes[lagging].member.id);
        w.net.cut(l, f);
        w.net.cut(f, l);
        for i in 0..120 {
            let g = lead.lock(&format!("k{i}")).await.unwrap();
            g.unlock().await.unwrap();
        }
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
