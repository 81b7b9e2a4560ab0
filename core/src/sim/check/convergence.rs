//! Convergence: after healing, every live node applied the same log to the
//! same point and holds the same lock table (equal `state_hash`).
//!
//! Why: the state machine must be deterministic and every node must apply
//! the one committed log; a node that skipped, reordered or re-applied an
//! entry (or restored a bad snapshot) ends with a different table, even if
//! no client happened to notice before the run ended.
//!
//! Nodes are grouped by `(applied, hash)`; more than one group is one
//! violation that lists them all. Limits: a node that stopped applying
//! early is reported too (the test is expected to let them catch up before
//! recording finals); fewer than two finals check nothing.

use std::collections::BTreeMap;

use super::{Property, Report};
use crate::sim::history::History;
use crate::types::NodeId;

pub(super) fn check(h: &History, r: &mut Report) {
    if h.finals.len() < 2 {
        r.skipped.push((
            Property::Convergence,
            format!("{} final states: nothing to compare", h.finals.len()),
        ));
        return;
    }
    let mut groups: BTreeMap<(u64, u64), Vec<NodeId>> = BTreeMap::new();
    for f in &h.finals {
        groups.entry((f.applied, f.hash)).or_default().push(f.node);
    }
    if groups.len() > 1 {
        let parts: Vec<String> = groups
            .iter()
            .map(|((applied, hash), nodes)| {
                let nodes: Vec<String> = nodes.iter().map(ToString::to_string).collect();
                format!(
                    "applied {applied} hash {hash:016x} on [{}]",
                    nodes.join(", ")
                )
            })
            .collect();
        r.add(
            Property::Convergence,
            None,
            format!("nodes diverged: {}", parts.join("; ")),
        );
    }
}
