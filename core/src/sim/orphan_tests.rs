//! A joiner removed before its first snapshot while it still names a
//! leader (issue 10, curve 5: forming 1 000 nodes in one process left five
//! such joiners waiting for good).
//!
//! The joiner hears the leader (its probe appends and heartbeats) but is
//! never heard back, so after `dead_after` the leader removes it. A
//! learner never campaigns and raft-rs keeps its leader id, and a joiner
//! before its snapshot has no session whose keepalive would draw a
//! `Removed`: it used to wait as a follower of that leader for ever, which
//! talks to it no more. It must learn it was removed once the network
//! heals (and the facade then starts it again under a new id).

use std::time::Duration;

use super::nemesis::calm;
use super::rng::Rng;
use super::world::World;
use crate::client::Role;
use crate::config::{MembershipConfig, NodeConfig};

/// Polls `f` every 100 ms of simulated time for up to `within`.
async fn until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    tokio::time::timeout(within, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok()
}

#[test]
fn issue_10_a_joiner_removed_while_it_names_a_leader_learns_it() {
    super::scenario::paused_runtime().block_on(async {
        let ttl = Duration::from_secs(2);
        let cfg = NodeConfig {
            session_ttl: ttl,
            tick: NodeConfig::tick_for_ttl(ttl),
            max_voters: 3,
            membership: MembershipConfig {
                dead_after: ttl * 2,
                stabilization: Duration::from_secs(1),
                ..MembershipConfig::default()
            },
            ..NodeConfig::default()
        };
        let mut w = World::new(Rng::new(11), 3, cfg, false, vec![1.0; 3]);
        w.clients_per_node = 0;
        w.net.set_weather(calm());
        w.membership = Some(Rng::new(11));
        w.start_all().await.unwrap();
        let founders: Vec<_> = w.nodes.iter().map(|n| n.member.id).collect();
        let lead = w.nodes[w.leader().unwrap()].handle.clone().unwrap();

        let j = w.add_node();
        let joiner = w.spawn_start(j).unwrap().await.unwrap().unwrap();
        let id = joiner.status().id;
        // From its `Joined` on, nothing the joiner sends arrives.
        let key = w.nodes[j].member.id;
        for f in &founders {
            w.net.cut(key, *f);
        }
        let named = until(Duration::from_secs(10), || {
            let s = joiner.status();
            s.leader.is_some() && s.applied_index == 0
        })
        .await;
        assert!(
            named,
            "the joiner never heard its leader: {:?}",
            joiner.status()
        );
        let removed = until(Duration::from_secs(30), || {
            let s = lead.status();
            s.commit_index > 0 && s.members.iter().all(|m| m.id != id)
        })
        .await;
        assert!(removed, "the leader never removed the silent joiner");
        assert!(joiner.status().leader.is_some(), "it still names a leader");

        w.net.heal();
        let told = until(Duration::from_secs(15), || {
            joiner.status().role == Role::Removed
        })
        .await;
        assert!(
            told,
            "a joiner removed while it named a leader was never told: {:?}",
            joiner.status()
        );
    });
}
