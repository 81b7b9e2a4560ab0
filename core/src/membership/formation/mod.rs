//! First formation with `bootstrap_expect(n)`: the pure decision of one
//! starting node (issue 9, design item 3).
//!
//! A blank node started with seeds and `bootstrap_expect(n)` that finds no
//! running cluster is a **candidate**. Every forming node tells every peer
//! it knows what it is ([`Heard::Candidate`]: its name, a number drawn at
//! random for this process, the `n` it was given, and whom it promised);
//! a member of a running cluster answers with its cluster id
//! ([`Heard::Cluster`]). From what it heard and the time, [`Formation`]
//! decides: wait, promise, found, join, or fail.
//!
//! # The rules, and where they come from
//!
//! 1. **A node that hears of a cluster joins it**, and never founds
//!    (Akka Cluster Bootstrap: a node that finds a contact point already in
//!    a cluster joins it; Consul: a server that finds a leader joins). It
//!    waits until the cluster has its id (chosen by its first leader; its
//!    members answer no join before), then until the first round of
//!    dialing the seeds has ended ([`Formation::seeds_dialing`]: every
//!    seed reached, or the round's time up) and every peer it can reach
//!    answered, at most [`JOIN_GRACE_MS`] after the first id for the
//!    answers, so that the other seeds answer too (a seed not reachable
//!    within the first round is not waited for): seeds naming **two
//!    different cluster ids**
//!    stop the start with an error (two clusters were formed, a split
//!    brain to repair by hand, not to join at random).
//! 2. **A candidate promises, when the set of candidates
//!    it sees is at least `n` and has not changed for [`STABLE_MARGIN_MS`]**
//!    (Akka Cluster Bootstrap's `stable-margin` and
//!    `required-contact-point-nr`; Consul's `bootstrap_expect`, which waits
//!    for that many servers before electing). It promises to the
//!    lowest-named candidate already gathering promises (one that promised
//!    to itself, or that another promised to; itself too), or else to the
//!    lowest-named one that has not promised to another (a candidate that
//!    promised away can never found); that may be itself. Preferring a
//!    founder in progress matters when a candidate arrives after the
//!    others promised: were it lower-named, promising to it would split
//!    the promises between two founders, neither reaching `n` (the network
//!    model in the tests found both forms of this with a fourth instance
//!    started a few seconds after three). The promise is to that
//!    process (name and run). **A candidate that once promised to another
//!    never founds**, and a promise moves only away from such a candidate,
//!    so no founding ever counts a promise that another counts too, even
//!    from a word delayed past later ones: **released** when the promisee
//!    announces a promise to another (the promiser chooses again by the
//!    same rule, never itself once it promised away; with nobody to
//!    choose it keeps its promise announced and waits),
//!    and **yielded** by a founder short of `n` that sees a lower-named
//!    live candidate that promised to itself (it promises to that one,
//!    and its own promisers are released in turn). Without the two, a
//!    split stayed split until the start-up deadline: candidates whose
//!    seeds show them different parts of the deployment promised to
//!    different lowest names (CI: five candidates with one seed each, in a
//!    ring; a founder short of three). Names order the yield, so it never
//!    goes round in a circle: the lowest-named founder that every
//!    candidate sees gathers them all. Consul and Akka avoid the split by
//!    giving every server the whole list; here the forming nodes also
//!    tell each other the peers they know (`PeerMessage::Forming`'s
//!    `peers`), so that the sets they see converge.
//! 3. **A candidate founds only with `n` promises**, its own included,
//!    from live candidates. A founder that founds never promises away, so
//!    a promise it counted never moves, and each process's promise counts
//!    towards at most one founding: two foundings
//!    need `2n` candidate processes before the first cluster answers: with
//!    `n` the number of instances first deployed, a split needs the
//!    deployment to double while it forms. The founder starts alone as the
//!    only voter; the others join it like any late node, and the leader
//!    promotes them.
//! 4. **Every candidate must have been given the same `n`**: one that
//!    differs stops the start with an error naming both counts (issue 9:
//!    founders cross-check what they were given).
//! 5. **A promise to a process that went away is not waited on for ever**:
//!    when the promisee is silent for [`PROMISEE_GONE_MS`], the start fails
//!    with an error. It does not promise again: a promisee that is only
//!    cut off could still found with the old promise (Consul and Akka have
//!    the same limit). A promisee that comes back as another process (a
//!    new run under its name: the run promised to is gone and never
//!    founds) releases the promise, as in rule 2. A start that never
//!    gathers `n` candidates fails at the start-up deadline, naming what
//!    it saw ([`Formation::give_up`]).
//!
//! No clock and no IO here: time is plain milliseconds from the caller.

use std::collections::{BTreeMap, BTreeSet};

mod error;
mod promise;
pub use error::FormationError;

/// How long the set of candidates must stay unchanged before a candidate
/// promises. Akka Cluster Bootstrap calls this the `stable-margin` (5 s by
/// default there); 3 s here, six announcements, is enough for every
/// candidate to have heard every other one twice on a LAN.
pub const STABLE_MARGIN_MS: u64 = 3_000;
/// How often a forming node announces itself to every peer it knows.
pub const ANNOUNCE_EVERY_MS: u64 = 500;
/// A candidate not heard from for this long no longer counts (ten missed
/// announcements: a loaded machine or a connection being set up must not
/// make the set flap and restart the margin).
pub const FORGET_AFTER_MS: u64 = 5_000;
/// How long a candidate that found another was given a different count
/// keeps announcing before it stops, so that the other hears it and stops
/// on the same error rather than waiting for its deadline.
pub const FAIL_LINGER_MS: u64 = 1_000;
/// How long a candidate that promised waits on a silent promisee before
/// the start fails (rule 5).
pub const PROMISEE_GONE_MS: u64 = 10_000;
/// How long a node that heard of a cluster waits for the answers of the
/// other peers it reached before it joins (rule 1). Every forming node
/// and every member answers at once; this bounds the wait on one that
/// does not (a node in its own join, a member restarting from its data
/// directory).
pub const JOIN_GRACE_MS: u64 = 2_000;

/// One forming process: its name and the number it drew at start.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Run {
    /// Its certificate-proven name.
    pub name: String,
    /// Random, drawn once per process.
    pub run: u64,
}

/// What a peer said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    /// A forming node. `expect` 0: it only joins (seeds without
    /// `bootstrap_expect`) and is not a candidate.
    Candidate {
        /// Its process number.
        run: u64,
        /// The `n` it was given, or 0.
        expect: u64,
        /// Whom it promised, if it did.
        promised: Option<Run>,
    },
    /// A member of a running cluster (`cluster_id` 0: founded, its id not
    /// chosen yet).
    Cluster {
        /// The cluster's id.
        cluster_id: u128,
    },
}

/// What the starting node does now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing yet: keep announcing and listening.
    Wait,
    /// It just promised to this process: announce it.
    Promise(Run),
    /// Found the cluster (this node its only voter); these candidates
    /// promised to it (itself included) and will join.
    Found(Vec<String>),
    /// Join the running cluster through these members.
    Join(Vec<String>),
    /// Stop the start.
    Fail(FormationError),
}

/// The latest announcement of one name.
#[derive(Clone, Debug)]
struct Peer {
    run: u64,
    expect: u64,
    promised: Option<Run>,
    heard_at: u64,
}

/// One starting node's formation state (see the module docs).
#[derive(Clone, Debug)]
pub struct Formation {
    me: Run,
    expect: u64,
    peers: BTreeMap<String, Peer>,
    /// The candidate set last seen, and since when it is unchanged.
    view: BTreeSet<Run>,
    view_since: u64,
    promised: Option<Run>,
    /// Whether the run promised to can no longer found: it announced a
    /// promise to another, or a new run came under its name (rules 2, 5).
    promisee_dead: bool,
    /// Cluster ids by member name.
    clusters: BTreeMap<String, u128>,
    first_cluster_at: Option<u64>,
    /// When a cluster with an id was first heard.
    first_id_at: Option<u64>,
    /// The peers the caller can reach now (see [`Formation::peers_known`]).
    known: BTreeSet<String>,
    /// Whether the first round of dialing the seeds is still going, and
    /// when it last ended (see [`Formation::seeds_dialing`]).
    dialing: bool,
    dialed_at: u64,
    /// A candidate given another count, and when it was found.
    differs: Option<(FormationError, u64)>,
}

impl Formation {
    /// A node named `me`, expecting `expect` candidates (0: join only),
    /// starting at `now_ms`.
    pub fn new(me: Run, expect: u64, now_ms: u64) -> Self {
        let view = crate::collect::btree_set([me.clone()]);
        Self {
            me,
            expect,
            peers: BTreeMap::new(),
            view,
            view_since: now_ms,
            promised: None,
            promisee_dead: false,
            clusters: BTreeMap::new(),
            first_cluster_at: None,
            first_id_at: None,
            known: BTreeSet::new(),
            dialing: false,
            dialed_at: 0,
            differs: None,
        }
    }

    /// This node.
    pub fn me(&self) -> &Run {
        &self.me
    }

    /// The count this node was given (0: join only).
    pub fn expect(&self) -> u64 {
        self.expect
    }

    /// Whether a member of a running cluster has answered.
    pub fn heard_cluster(&self) -> bool {
        self.first_cluster_at.is_some()
    }

    /// Whom this node promised.
    pub fn promised(&self) -> Option<&Run> {
        self.promised.as_ref()
    }

    /// The peers the caller knows and tells what it is: once every one
    /// of them answered, a node that heard of a cluster need not wait out
    /// [`JOIN_GRACE_MS`] for more answers.
    pub fn peers_known(&mut self, names: impl IntoIterator<Item = String>) {
        self.known = crate::collect::btree_set(names);
    }

    /// Whether the caller's first round of dialing the seeds is still
    /// going at `now_ms` (false until said otherwise). While it goes, a
    /// node that
    /// heard of a cluster does not join: the seeds not reached yet may be
    /// members of another cluster, and joining the first to answer would
    /// hide the split (CI found it: with two one-node clusters as seeds,
    /// one seed's connection came up and answered before the other's, and
    /// the node joined the first cluster in 1 start of 6). The seeds
    /// reached get [`JOIN_GRACE_MS`] from the round's end to answer.
    pub fn seeds_dialing(&mut self, dialing: bool, now_ms: u64) {
        if self.dialing && !dialing {
            self.dialed_at = now_ms;
        }
        self.dialing = dialing;
    }

    /// Records what `from` said at `now_ms`.
    pub fn hear(&mut self, from: &str, what: Heard, now_ms: u64) {
        if from == self.me.name {
            return;
        }
        match what {
            Heard::Cluster { cluster_id } => {
                self.clusters.insert(from.to_owned(), cluster_id);
                self.first_cluster_at.get_or_insert(now_ms);
                if cluster_id != 0 {
                    self.first_id_at.get_or_insert(now_ms);
                }
            }
            Heard::Candidate {
                run,
                expect,
                promised,
            } => {
                // Another run under the promisee's name is a new process,
                // unless it only joins (`expect` 0): the promisee heard of
                // a running cluster and asks "which cluster are you in?"
                // with its join's own number, and this node joins that
                // cluster once a member answers it (CI: a ring of five
                // candidates, one joined and its question failed a node
                // that had promised to it).
                // A new run under the promisee's name means the run
                // promised to is gone (a crash and a blank restart, or a
                // start over): it never founds, and the promise to it is
                // released (rule 2), as when it promises to another.
                if let Some(to) = &self.promised {
                    let restarted = to.run != run && expect > 0;
                    let away = to.run == run && promised.as_ref().is_some_and(|t| t != to);
                    if to.name == from && (restarted || away) {
                        self.promisee_dead = true;
                    }
                }
                // A member heard earlier that now says it is a candidate
                // (it restarted blank) still counts as a cluster: once a
                // cluster answered, this process never founds (rule 1).
                self.peers.insert(
                    from.to_owned(),
                    Peer {
                        run,
                        expect,
                        promised,
                        heard_at: now_ms,
                    },
                );
                self.refresh_view(now_ms);
            }
        }
    }

    /// Decides what to do at `now_ms` (see the module docs).
    pub fn decide(&mut self, now_ms: u64) -> Decision {
        // Rule 1: two clusters stop everything.
        let mut ids = self.clusters.iter().filter(|(_, id)| **id != 0);
        if let Some((a, a_id)) = ids.next() {
            if let Some((b, b_id)) = ids.find(|(_, id)| *id != a_id) {
                return Decision::Fail(FormationError::TwoClusters {
                    a: (a.clone(), *a_id),
                    b: (b.clone(), *b_id),
                });
            }
        }
        if self.first_cluster_at.is_some() {
            // Join once a cluster has its id (before, its members answer
            // no join), the first round of dialing the seeds ended, and
            // every reachable peer answered or the grace passed. A member
            // whose cluster has no id yet (0) is asked again: a second
            // cluster could not be told apart from it.
            let Some(first) = self.first_id_at else {
                return Decision::Wait;
            };
            if self.dialing {
                return Decision::Wait;
            }
            let first = first.max(self.dialed_at);
            let all_answered = self.known.iter().all(|n| match self.clusters.get(n) {
                Some(id) => *id != 0,
                None => self.peers.contains_key(n),
            });
            if all_answered || now_ms.saturating_sub(first) >= JOIN_GRACE_MS {
                return Decision::Join(self.clusters.keys().cloned().collect());
            }
            return Decision::Wait;
        }
        if self.expect == 0 {
            return Decision::Wait;
        }
        // Rule 4, after a moment in which this node still announces.
        if self.differs.is_none() {
            if let Some((name, p)) = self
                .peers
                .iter()
                .find(|(_, p)| p.expect > 0 && p.expect != self.expect)
            {
                let e = FormationError::ExpectDiffers {
                    peer: name.clone(),
                    theirs: p.expect,
                    ours: self.expect,
                };
                self.differs = Some((e, now_ms));
            }
        }
        if let Some((e, since)) = &self.differs {
            if now_ms.saturating_sub(*since) >= FAIL_LINGER_MS {
                return Decision::Fail(e.clone());
            }
            return Decision::Wait;
        }
        self.refresh_view(now_ms);
        match self.promised.clone() {
            None => {
                let stable = now_ms.saturating_sub(self.view_since) >= STABLE_MARGIN_MS;
                if self.view.len() < usize::try_from(self.expect).unwrap_or(usize::MAX) || !stable {
                    return Decision::Wait;
                }
                // Rule 2: the lowest-named candidate already gathering
                // promises, else the lowest-named that may still found.
                // Never `None` here: nothing promised yet, this node may
                // found.
                let to = self.choose().unwrap_or_else(|| self.me.clone());
                self.promised = Some(to.clone());
                Decision::Promise(to)
            }
            Some(to) if to == self.me => {
                // Rule 3.
                let promisers = self.promisers(now_ms);
                if promisers.len() as u64 >= self.expect {
                    return Decision::Found(promisers);
                }
                // Rule 2's yield: a lower-named founder in progress.
                match self.lower_founder(now_ms) {
                    Some(to) => {
                        self.promised = Some(to.clone());
                        Decision::Promise(to)
                    }
                    None => Decision::Wait,
                }
            }
            Some(to) => {
                // Rule 2's release: the promisee promised to another, so
                // it can never found; promise again. The promise to it
                // stays announced until another is made, so that nobody
                // takes this node for a founder; with nobody left who may
                // found, it starts over as a new run.
                if self.promisee_dead {
                    if let Some(again) = self.choose() {
                        self.promised = Some(again.clone());
                        self.promisee_dead = false;
                        return Decision::Promise(again);
                    }
                    self.start_over(now_ms);
                    return Decision::Wait;
                }
                // Rule 5.
                let heard = self.peers.get(&to.name).map_or(0, |p| p.heard_at);
                if now_ms.saturating_sub(heard) >= PROMISEE_GONE_MS {
                    return Decision::Fail(FormationError::PromiseeGone {
                        to: to.name,
                        how: format!("was silent for {} s", PROMISEE_GONE_MS / 1000),
                    });
                }
                Decision::Wait
            }
        }
    }

    /// The error of a start whose deadline passed at `now_ms`.
    pub fn give_up(&self, now_ms: u64) -> FormationError {
        FormationError::Deadline {
            expect: self.expect,
            seen: self
                .candidates(now_ms)
                .into_iter()
                .map(|c| c.name)
                .collect(),
            promised: self.promised.as_ref().map(|r| r.name.clone()),
            promises: self.promisers(now_ms).len(),
        }
    }
}
