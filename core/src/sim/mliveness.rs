//! M4, the membership's liveness promise (issue 9): once faults have
//! healed, within `dead_after + stabilization + 5 s` the configuration is
//! not joint, the voters are the target count (the largest odd number up
//! to `max_voters` and the live members) and every one of them runs, the
//! leader is one of them, and every running node is a member that applied
//! that configuration. A node answered `Removed` counts as a live process:
//! it must have started again, blank, and be one of those members.
//!
//! Judged on the simulator's ground truth (which nodes run, unfrozen) and
//! the configurations the nodes reported applying; polled, so a cluster
//! that converges early ends the wait early.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::check::{Property, Report};
use super::mtrace::Conf;
use super::world::World;

/// Waits up to `within` for M4 to hold; a violation if it never does.
pub(crate) async fn check(
    world: &mut World,
    max_voters: usize,
    within: Duration,
    report: &mut Report,
) {
    let deadline = Instant::now() + within;
    loop {
        // A node removed while it was away learns it now and starts
        // again blank (the facade's `rejoin_when_removed`).
        world.tend_removed().await;
        let verdict = judge(world, max_voters);
        let Err(why) = verdict else { return };
        if Instant::now() >= deadline {
            report.add(
                Property::M4Converges,
                None,
                format!("{within:?} after the faults healed: {why}"),
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The latest configuration node (`key`, `id`) applied, with its index.
fn latest(world: &World, key: crate::types::NodeId, id: u64) -> (u64, Conf) {
    let t = world.shared.mtrace.lock();
    t.confs
        .iter()
        .filter(|c| c.key == key && c.node == id)
        .max_by_key(|c| c.index)
        .map_or_else(|| (0, t.initial.clone()), |c| (c.index, c.conf.clone()))
}

fn judge(world: &World, max_voters: usize) -> Result<(), String> {
    // A process told `Removed` is live: it must be back as a member.
    if let Some(n) = world
        .nodes
        .iter()
        .find(|n| n.handle.is_none() && !n.gone && n.removed_at.is_some())
    {
        return Err(format!(
            "{} was removed and is not back as a member",
            n.member.name.0
        ));
    }
    let leader = world.leader().ok_or("no leader")?;
    let running: Vec<(crate::types::NodeId, u64)> = world
        .nodes
        .iter()
        .filter(|n| !n.pause.is_paused())
        .filter_map(|n| Some((n.member.id, n.handle.as_ref()?.status().id.0)))
        .collect();
    let lead = world.nodes.get(leader).ok_or("no leader")?;
    let lead_id = lead.handle.as_ref().ok_or("no leader")?.status().id.0;
    let (index, conf) = latest(world, lead.member.id, lead_id);
    if conf.is_joint() {
        return Err(format!("the configuration is joint: {conf:?}"));
    }
    // A leader outside the voters keeps leading and plans nothing
    // (tikv/raft-rs#373).
    if !conf.voters.contains(&lead_id) {
        return Err(format!("the leader {lead_id} is not a voter: {conf:?}"));
    }
    let live: BTreeSet<u64> = running.iter().map(|(_, id)| *id).collect();
    let target = crate::membership::target_voters(live.len(), max_voters);
    if conf.voters.len() != target {
        return Err(format!(
            "{} voters, target {target} ({} running: {live:?}): {conf:?}",
            conf.voters.len(),
            live.len()
        ));
    }
    if let Some(v) = conf.voters.iter().find(|v| !live.contains(v)) {
        return Err(format!(
            "voter {v} does not run: {conf:?}, running {live:?}"
        ));
    }
    let ids = conf.ids();
    if let Some(id) = live.iter().find(|id| !ids.contains(id)) {
        return Err(format!("node {id} runs and is no member: {conf:?}"));
    }
    // Compared by value: a snapshot reports its own index, not the index
    // of the change that made its configuration.
    for (key, id) in &running {
        let (at, own) = latest(world, *key, *id);
        if own != conf {
            return Err(format!(
                "node {id} applied {own:?} (index {at}), the leader {conf:?} (index {index})"
            ));
        }
    }
    Ok(())
}
