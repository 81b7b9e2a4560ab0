//! Whom a candidate promises to, and who promised to it: the views the
//! rules of the parent module's docs (rule 2, rule 3) are judged on.

use std::collections::BTreeSet;

use super::{Formation, Run, FORGET_AFTER_MS};

impl Formation {
    /// Notes when the set of live candidates last changed.
    pub(super) fn refresh_view(&mut self, now_ms: u64) {
        let view = self.candidates(now_ms);
        if view != self.view {
            self.view = view;
            self.view_since = now_ms;
        }
    }

    /// The live candidates, this node included.
    pub(super) fn candidates(&self, now_ms: u64) -> BTreeSet<Run> {
        let mut out = crate::collect::btree_set([self.me.clone()]);
        for (name, p) in &self.peers {
            if p.expect > 0 && now_ms.saturating_sub(p.heard_at) < FORGET_AFTER_MS {
                out.insert(Run {
                    name: name.clone(),
                    run: p.run,
                });
            }
        }
        out
    }

    /// The live candidates that promised to this node, itself included.
    pub(super) fn promisers(&self, now_ms: u64) -> Vec<String> {
        let mut out = Vec::new();
        if self.promised.as_ref() == Some(&self.me) {
            out.push(self.me.name.clone());
        }
        for (name, p) in &self.peers {
            if p.promised.as_ref() == Some(&self.me)
                && now_ms.saturating_sub(p.heard_at) < FORGET_AFTER_MS
            {
                out.push(name.clone());
            }
        }
        out.sort();
        out
    }

    /// Whom to promise to (rule 2): among the live candidates that may
    /// still found (not promised to another), the lowest-named one already
    /// gathering promises (it promised to itself, or another promised to
    /// it), else the lowest-named. This node is among them only while it
    /// never promised to another: a candidate that did never founds, which
    /// is what lets the promises to it move (so `None` when nobody else
    /// may found; before any promise it is `Some`, itself at worst).
    pub(super) fn choose(&self) -> Option<Run> {
        let promised_to = |c: &Run| -> Option<Run> {
            if *c == self.me {
                self.promised.clone()
            } else {
                self.peers.get(&c.name).and_then(|p| p.promised.clone())
            }
        };
        let may_found = |c: &&Run| promised_to(c).is_none_or(|to| to == **c);
        let gathering = |c: &&Run| {
            promised_to(c).as_ref() == Some(*c)
                || self.peers.values().any(|p| p.promised.as_ref() == Some(*c))
        };
        self.view
            .iter()
            .filter(may_found)
            .find(gathering)
            .or_else(|| self.view.iter().find(may_found))
            .cloned()
    }

    /// The lowest-named live candidate below this node that promised to
    /// itself: a founder in progress this founder yields to (rule 2).
    pub(super) fn lower_founder(&self, now_ms: u64) -> Option<Run> {
        self.view
            .iter()
            .take_while(|c| c.name < self.me.name)
            .find(|c| {
                self.peers.get(&c.name).is_some_and(|p| {
                    p.run == c.run
                        && p.promised.as_ref() == Some(*c)
                        && now_ms.saturating_sub(p.heard_at) < FORGET_AFTER_MS
                })
            })
            .cloned()
    }

    /// Starts over as a new run (rule 2): this run promised away and its
    /// promisee can no longer found, nor can any candidate it sees, so no
    /// promise it made or was made can ever be counted (every one is to a
    /// run that promised away). The new run is a new candidate: the
    /// promises to the old one are not counted for it, and it promises
    /// afresh once the set it sees (changed by its own new run) is stable
    /// again. Without this, candidates that promised to each other at the
    /// same moment (each saw the other unpromised) waited until the
    /// start-up deadline.
    pub(super) fn start_over(&mut self, now_ms: u64) {
        self.me.run = self.me.run.wrapping_add(1);
        self.promised = None;
        self.promisee_dead = false;
        self.refresh_view(now_ms);
    }
}
