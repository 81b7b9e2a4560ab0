//! What must happen once faults heal and a majority is connected:
//!
//! - a leader within two of the longest election timeouts;
//! - a free lock acquirable;
//! - a dead session's lock granted to the next waiter no earlier than
//!   TTL + lock-delay after its last possible keepalive, and no later than
//!   TTL + lock-delay + 1 s after the crash (both stretched by the clocks'
//!   drift);
//! - every live node converges to the same state hash.
//!
//! Times are true (simulated) time, stretched by the slowest clock, since a
//! node measures its timeouts on its own clock.

use std::time::Duration;

use tokio::time::{timeout, Instant};

use super::check::{Property, Report};
use super::history::FinalState;
use super::run::Skew;
use super::world::World;
use crate::config::NodeConfig;

fn fail(report: &mut Report, msg: String) {
    report.add(Property::Liveness, None, msg);
}

/// The nodes that count: all of them, except in a durable run those a
/// membership step stopped for good.
fn staying(world: &World) -> usize {
    let durable = world.durable;
    world.nodes.iter().filter(|n| !(durable && n.gone)).count()
}

/// The liveness checks after healing (before the clients stop), but the
/// handoff ([`handoff_after_crash`]).
pub(crate) async fn check(
    world: &mut World,
    cfg: &NodeConfig,
    max_drift_ppm: u64,
    report: &mut Report,
) {
    for (i, n) in world.nodes.iter().enumerate() {
        // A removed node stops by design (and starts again blank).
        let stopped = n
            .handle
            .as_ref()
            .is_some_and(|h| h.has_stopped() && h.status().role != crate::client::Role::Removed);
        if stopped {
            fail(
                report,
                format!("node {i} stopped on its own (a fatal error or a panic in its driver)"),
            );
        }
    }
    let up = world.up();
    if up.len() <= staying(world) / 2 {
        fail(report, format!("only {} nodes run after healing", up.len()));
        return;
    }
    let slowest = 1.0 - max_drift_ppm as f64 / 1e6;
    let stretch = |d: Duration| d.div_f64(slowest.max(0.5));
    // A leader within two of the longest election timeouts.
    let longest = cfg.tick * (2 * cfg.election_ticks as u32);
    let bound = stretch(longest * 2);
    let healed = Instant::now();
    let mut led = false;
    while healed.elapsed() <= bound {
        if world.leader().is_some() {
            led = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !led {
        fail(report, format!("no leader within {bound:?} of healing"));
        return;
    }
    // A free lock is acquirable from every running node.
    for i in world.up() {
        let Some(h) = world.nodes.get(i).and_then(|n| n.handle.clone()) else {
            continue;
        };
        let name = format!("free-{i}");
        match timeout(stretch(cfg.session_ttl * 3), h.lock(&name)).await {
            Ok(Ok(g)) => {
                let _ = g.unlock().await;
            }
            Ok(Err(e)) => {
                let s = h.status();
                fail(
                    report,
                    format!(
                        "node {i} could not take a free lock: {e} (role {:?}, term {}, leader {:?}, commit {}, applied {})",
                        s.role, s.term, s.leader, s.commit_index, s.applied_index
                    ),
                )
            }
            Err(_) => fail(
                report,
                format!("node {i} could not take a free lock in time"),
            ),
        }
    }
}

/// A holder crashes while another node waits: the waiter gets the lock
/// within TTL + lock-delay (+1 s), and not before its session can expire.
/// Run after [`check`] (and, in membership runs, after M4 held: before it,
/// a voter stopped for good may still vote, and crashing the holder
/// would leave no quorum).
pub(crate) async fn handoff_after_crash(
    world: &mut World,
    cfg: &NodeConfig,
    skew: Skew,
    max_drift_ppm: u64,
    report: &mut Report,
) {
    let up = world.up();
    if up.len() - 1 <= staying(world) / 2 {
        // In memory, crashed nodes are gone for good: one more crash
        // would leave no majority to hand anything on.
        report.skipped.push((
            Property::Liveness,
            format!("handoff after a crash: only {} nodes left", up.len()),
        ));
        return;
    }
    let leader = world.leader();
    // Hold on a follower (a leader's crash adds an election).
    let Some(&holder) = up.iter().find(|i| Some(**i) != leader) else {
        return;
    };
    let Some(&waiter) = up.iter().find(|i| **i != holder) else {
        return;
    };
    let (Some(hh), Some(wh)) = (
        world.nodes.get(holder).and_then(|n| n.handle.clone()),
        world.nodes.get(waiter).and_then(|n| n.handle.clone()),
    ) else {
        return;
    };
    // The holder's session may still end on its own just after healing
    // (a leader that had not heard from it for a TTL): then the waiter is
    // granted before any crash, and the check starts again (three tries).
    let mut attempt = 0;
    let (g, waiting) = loop {
        attempt += 1;
        let name = format!("handoff-{attempt}");
        let g = match timeout(cfg.session_ttl * 3, hh.lock(&name)).await {
            Ok(Ok(g)) => g,
            _ => {
                fail(report, "the handoff check could not take its lock".into());
                return;
            }
        };
        let wh = wh.clone();
        let waiting = tokio::spawn(async move { wh.lock(&name).await });
        // Let the waiter queue.
        tokio::time::sleep(cfg.session_ttl / 4).await;
        if g.is_held() && !waiting.is_finished() {
            break (g, waiting);
        }
        if attempt == 3 {
            fail(
                report,
                "the handoff check's holder kept losing its lock before the crash".into(),
            );
            return;
        }
        waiting.abort();
        drop(g);
    };
    let crashed = Instant::now();
    std::mem::forget(g); // the process dies holding it: no release is sent
    world.crash(holder);
    // The leader expires the session a TTL after it last heard from it (on
    // its own clock, which may run fast), and the last keepalive left at
    // most one keepalive interval (plus a tick: keepalives go out on ticks)
    // before the crash, on the holder's clock, which may run slow; then
    // lock-delay, on the leader's clock again.
    let drift = max_drift_ppm as f64 / 1e6;
    let lower = (cfg.session_ttl + cfg.lock_delay)
        .div_f64(1.0 + drift)
        .saturating_sub((cfg.keepalive_interval() + cfg.tick).div_f64(1.0 - drift))
        .saturating_sub(Duration::from_millis(5));
    let upper = (cfg.session_ttl + cfg.lock_delay + Duration::from_secs(1)).div_f64(1.0 - drift);
    let got = timeout(upper * 3, waiting).await;
    let took = crashed.elapsed();
    match got {
        Ok(Ok(Ok(g2))) => {
            drop(g2);
            if skew == Skew::BeyondBound {
                // Timing bounds assume clocks within the margin's bound.
            } else if took < lower || took > upper {
                fail(
                    report,
                    format!("a dead session's lock passed to the waiter after {took:?}; expected between {lower:?} and {upper:?}"),
                );
            }
        }
        other => fail(
            report,
            format!("the waiter never got the dead session's lock ({other:?})"),
        ),
    }
    // The crashed node comes back (durable) for the convergence check.
    let _ = world.restart(holder).await;
}

/// Waits until every running node applied the same index, and returns
/// their states.
pub(crate) async fn converge(world: &mut World, report: &mut Report) -> Vec<FinalState> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut finals = Vec::new();
        for n in &world.nodes {
            let Some(h) = &n.handle else { continue };
            if let Ok(Ok((applied, hash))) = timeout(Duration::from_secs(1), h.state_hash()).await {
                finals.push(FinalState {
                    node: n.member.id,
                    applied,
                    hash,
                });
            }
        }
        let same = finals.windows(2).all(|w| match w {
            [a, b] => a.applied == b.applied,
            _ => true,
        });
        if same || Instant::now() >= deadline {
            if !same {
                fail(
                    report,
                    format!("nodes did not catch up within 10 s: {finals:?}"),
                );
            }
            return finals;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
