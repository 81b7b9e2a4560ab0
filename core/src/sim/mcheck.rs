//! The membership properties over a [`MembershipTrace`] (issue 9); M4,
//! which needs the running cluster, lives in [`super::mliveness`].
//!
//! - **M1** at most one leader per term (a blank disk that voted again
//!   under an old id elects two).
//! - **M2** nothing from a removed id is counted. Observable form: every
//!   leadership won must have a majority of each voter half of the
//!   winner's own configuration among the votes it stepped *from ids not
//!   removed by then* (its own vote included). A removed id is one that a
//!   committed configuration dropped (first applied by any node). raft-rs
//!   drops appends' responses from an id without progress, and the removed
//!   id left every configuration, so acks cannot be counted without the
//!   configuration naming it again, which M3 forbids; votes are the one
//!   place a stale configuration could count one.
//! - **M3** committed configurations form a chain, one change at a time:
//!   all nodes agree on the configuration at each index; from one to the
//!   next either one id changes role (a simple change), or a joint
//!   configuration is entered whose outgoing half is the old voters, or it
//!   is left (incoming voters kept, `learners_next` become learners); never
//!   a change while joint; an id that left never comes back. A snapshot's
//!   configuration is the chain's at its index.
//! - **M5** no voter that was live (ground truth: running under that id, not
//!   frozen or suspended, no cut link, not shutting down, not superseded by
//!   its own blank restart under a new id; a stretch of such
//!   faults shorter than 70 % of `dead_after` does not count, see
//!   [`MembershipTrace::could_look_dead`]) is demoted or removed for
//!   silence. A change that demotes
//!   live voters is only right when it shrinks the voters because others
//!   died (it demotes at least as many non-live voters as it promotes, and
//!   at least one).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::check::{Property, Report};
use super::mtrace::{Conf, MembershipTrace};

/// Every membership property the trace has the data for.
pub(crate) fn check(t: &MembershipTrace, r: &mut Report) {
    m1_one_leader_per_term(t, r);
    let chain = m3_chain(t, r);
    m2_no_removed_vote_counted(t, &chain, r);
    m5_no_live_voter_removed(t, &chain, r);
}

/// One link of the committed chain: the configuration applied at `index`,
/// first at `at`.
struct Link {
    index: u64,
    at: Duration,
    conf: Conf,
}

fn m1_one_leader_per_term(t: &MembershipTrace, r: &mut Report) {
    let mut by_term: BTreeMap<u64, BTreeSet<(u64, u64)>> = BTreeMap::new();
    for l in &t.leaders {
        by_term.entry(l.term).or_default().insert((l.node, l.key.0));
    }
    for (term, leaders) in by_term.iter().filter(|(_, l)| l.len() > 1) {
        let list: Vec<String> = leaders
            .iter()
            .map(|(id, key)| format!("id {id} (process {key:x})"))
            .collect();
        r.add(
            Property::M1OneLeaderPerTerm,
            None,
            format!(
                "term {term} had {} leaders: {}",
                leaders.len(),
                list.join(", ")
            ),
        );
    }
}

/// Builds the chain of configurations from the entries nodes applied,
/// checking M3 on the way.
fn m3_chain(t: &MembershipTrace, r: &mut Report) -> Vec<Link> {
    let mut at_index: BTreeMap<u64, Link> = BTreeMap::new();
    for c in t.confs.iter().filter(|c| !c.snapshot) {
        match at_index.get_mut(&c.index) {
            Some(l) if l.conf != c.conf => r.add(
                Property::M3ConfChain,
                None,
                format!(
                    "index {}: node {} applied {:?}, another node {:?}",
                    c.index, c.node, c.conf, l.conf
                ),
            ),
            Some(l) => l.at = l.at.min(c.at),
            None => {
                at_index.insert(
                    c.index,
                    Link {
                        index: c.index,
                        at: c.at,
                        conf: c.conf.clone(),
                    },
                );
            }
        }
    }
    let chain: Vec<Link> = at_index.into_values().collect();
    let mut prev = &t.initial;
    let mut gone: BTreeSet<u64> = BTreeSet::new();
    for l in &chain {
        if let Err(why) = one_step(prev, &l.conf) {
            r.add(
                Property::M3ConfChain,
                None,
                format!(
                    "index {} at {:?}: {why}: {prev:?} -> {:?}",
                    l.index, l.at, l.conf
                ),
            );
        }
        let ids = l.conf.ids();
        let back: Vec<&u64> = ids.intersection(&gone).collect();
        if !back.is_empty() {
            r.add(
                Property::M3ConfChain,
                None,
                format!("index {}: removed ids {back:?} are members again", l.index),
            );
        }
        gone.extend(prev.ids().difference(&ids));
        prev = &l.conf;
    }
    // A snapshot carries the configuration in force at its index.
    for c in t.confs.iter().filter(|c| c.snapshot) {
        let want = chain
            .iter()
            .rev()
            .find(|l| l.index <= c.index)
            .map_or(&t.initial, |l| &l.conf);
        if *want != c.conf {
            r.add(
                Property::M3ConfChain,
                None,
                format!(
                    "node {} installed a snapshot at index {} with {:?}; the chain has {want:?}",
                    c.node, c.index, c.conf
                ),
            );
        }
    }
    chain
}

/// Whether `next` follows `prev` by one configuration change.
fn one_step(prev: &Conf, next: &Conf) -> Result<(), &'static str> {
    match (prev.is_joint(), next.is_joint()) {
        (true, true) => Err("a change while joint"),
        (false, true) => {
            if next.outgoing != prev.voters {
                return Err("the joint configuration's outgoing half is not the old voters");
            }
            if !next.learners_next.is_subset(&prev.voters) {
                return Err("learners_next names an id that was not a voter");
            }
            Ok(())
        }
        (true, false) => {
            let learners: BTreeSet<u64> =
                prev.learners.union(&prev.learners_next).copied().collect();
            if next.voters != prev.voters || next.learners != learners {
                return Err("leaving the joint configuration changed more than the halves");
            }
            Ok(())
        }
        (false, false) => {
            let role = |c: &Conf, id: u64| {
                if c.voters.contains(&id) {
                    1
                } else if c.learners.contains(&id) {
                    2
                } else {
                    0
                }
            };
            let ids: BTreeSet<u64> = prev.ids().union(&next.ids()).copied().collect();
            let changed = ids
                .iter()
                .filter(|id| role(prev, **id) != role(next, **id))
                .count();
            if changed > 1 {
                return Err("a simple change changed more than one member");
            }
            Ok(())
        }
    }
}

/// When each id was removed: the first time a configuration without it
/// (after one with it) was applied.
fn removals(t: &MembershipTrace, chain: &[Link]) -> BTreeMap<u64, Duration> {
    let mut out = BTreeMap::new();
    let mut prev = &t.initial;
    for l in chain {
        for id in prev.ids().difference(&l.conf.ids()) {
            out.entry(*id).or_insert(l.at);
        }
        prev = &l.conf;
    }
    out
}

fn m2_no_removed_vote_counted(t: &MembershipTrace, chain: &[Link], r: &mut Report) {
    let removed = removals(t, chain);
    for l in &t.leaders {
        // The winner's configuration when it won.
        let conf = t
            .confs
            .iter()
            .filter(|c| c.node == l.node && c.key == l.key && c.at <= l.at)
            .max_by_key(|c| (c.at, c.index))
            .map_or(&t.initial, |c| &c.conf);
        let mut votes: BTreeSet<u64> = t
            .votes
            .iter()
            .filter(|v| v.term == l.term && v.to == l.node && v.key == l.key && v.at <= l.at)
            .map(|v| v.from)
            .collect();
        votes.insert(l.node);
        let gone = |id: &u64| removed.get(id).is_some_and(|at| *at <= l.at);
        for half in conf.halves() {
            let need = half.len() / 2 + 1;
            let counted: Vec<u64> = votes.intersection(half).copied().collect();
            let sound = counted.iter().filter(|id| !gone(id)).count();
            if counted.len() >= need && sound < need {
                let bad: Vec<&u64> = counted.iter().filter(|id| gone(id)).collect();
                r.add(
                    Property::M2RemovedNotCounted,
                    None,
                    format!(
                        "id {} won term {} at {:?} counting the votes of removed ids {bad:?} (voters {half:?}, votes {votes:?})",
                        l.node, l.term, l.at
                    ),
                );
            }
        }
    }
}

fn m5_no_live_voter_removed(t: &MembershipTrace, chain: &[Link], r: &mut Report) {
    let mut prev = &t.initial;
    for l in chain {
        // A decision to demote is taken where a joint configuration is
        // entered, or by a simple change (leaving joint decides nothing).
        if !prev.is_joint() {
            let demoted: Vec<u64> = prev.voters.difference(&l.conf.voters).copied().collect();
            let promoted = l.conf.voters.difference(&prev.voters).count();
            let (dead, live): (Vec<u64>, Vec<u64>) =
                demoted.iter().partition(|id| t.could_look_dead(**id, l.at));
            if !live.is_empty() && (dead.is_empty() || dead.len() < promoted) {
                r.add(
                    Property::M5NoLiveVoterRemoved,
                    None,
                    format!(
                        "index {} at {:?} demoted voters {live:?}, never silent for long (with them: silent {dead:?}, {promoted} promoted)",
                        l.index, l.at
                    ),
                );
            }
        }
        prev = &l.conf;
    }
}
