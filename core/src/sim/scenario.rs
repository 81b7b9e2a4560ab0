//! Set-ups shared by the simulator's hand-written scenario tests (as
//! opposed to the seeded runs): a runtime on simulated time, calm nodes,
//! and a follower left behind the leader's compacted log.

use std::time::Duration;

use super::nemesis::calm;
use super::rng::Rng;
use super::world::World;
use crate::client::NodeHandle;
use crate::config::NodeConfig;

/// A current-thread runtime whose clock only moves when every task waits.
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds")
}

/// `n` in-memory nodes of `cfg` on a calm network with no clients, started
/// and ready; seed `seed`.
pub(crate) async fn calm_world(seed: u64, n: usize, cfg: NodeConfig) -> World {
    let mut w = World::new(Rng::new(seed), n, cfg, false, vec![1.0; n]);
    w.clients_per_node = 0;
    w.net.set_weather(calm());
    w.start_all().await.expect("the nodes start");
    w
}

/// Three nodes (2 s TTL, compaction every 40 entries); one follower is cut
/// off both ways while the leader commits 120 lock pairs, so it can only
/// catch up by snapshot. The links stay cut. Returns the world, the
/// leader's handle and the follower's.
pub(crate) async fn follower_behind_compaction(seed: u64) -> (World, NodeHandle, NodeHandle) {
    let ttl = Duration::from_secs(2);
    let cfg = NodeConfig {
        session_ttl: ttl,
        tick: NodeConfig::tick_for_ttl(ttl),
        compact_after: 40,
        ..NodeConfig::default()
    };
    let w = calm_world(seed, 3, cfg).await;
    let leader = w.leader().expect("a leader after start");
    let lagging = (leader + 1) % 3;
    let handle = |i: usize| w.nodes[i].handle.clone().expect("started");
    let (lead, lag) = (handle(leader), handle(lagging));
    let (l, f) = (w.nodes[leader].member.id, w.nodes[lagging].member.id);
    w.net.cut(l, f);
    w.net.cut(f, l);
    for i in 0..120 {
        let g = lead.lock(&format!("k{i}")).await.expect("lock");
        g.unlock().await.expect("unlock");
    }
    (w, lead, lag)
}
