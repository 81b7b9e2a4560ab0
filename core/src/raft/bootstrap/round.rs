//! The hello round: who may take part, and founders comparing their
//! initial clusters (see the parent module's docs and `hello.rs`).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use super::hello::HelloFrom;
use super::{answer_hello, LogEnd, Member, PeerRun, StartParams};
use crate::client::status::MemberStatus;
use crate::error::Error;
use crate::transport::PeerMessage;
use crate::types::NodeId;

/// Why a hello round did not let this start take part as it is.
pub(super) enum RoundEnd {
    /// The cluster runs and this node is not a member of it, or a peer
    /// remembers another incarnation of its name (it lost its state): it
    /// joins as a new member under a new id (issue 9).
    Join,
    /// The start fails with this error.
    Failed(Error),
}

impl From<Error> for RoundEnd {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// How long a founder that found its initial cluster differs from a
/// peer's keeps answering hellos before it stops with the error.
const FOUNDING_LINGER: Duration = Duration::from_secs(1);

/// How long a restart waits for the peers beyond the majority.
const RESTART_GRACE: Duration = Duration::from_secs(1);

/// Who a hello round counts, and where to say hello.
pub(super) struct RoundPeers {
    /// The voters whose majority a restart needs (the incoming half of a
    /// joint configuration), by Raft id.
    pub(super) voters: Vec<NodeId>,
    /// The outgoing half of a joint configuration (empty otherwise): a
    /// restart needs a majority of it too.
    pub(super) outgoing: Vec<NodeId>,
    /// Every other member to say hello to: (Raft id, transport key).
    pub(super) others: Vec<(NodeId, NodeId)>,
    /// Their names and addresses, for the transport.
    pub(super) members: Vec<Member>,
}

impl RoundPeers {
    /// A founder's first start, or a restart with no recorded
    /// configuration: the founding members, whose Raft ids are their keys.
    pub(super) fn founding(members: &[Member], voters: &[NodeId], me: NodeId) -> Self {
        Self {
            voters: voters.to_vec(),
            outgoing: Vec::new(),
            others: members
                .iter()
                .filter(|m| m.id != me)
                .map(|m| (m.id, m.id))
                .collect(),
            members: Vec::new(),
        }
    }

    /// Whether `accepted` (Raft ids, this node's included) holds a
    /// majority of each half of the voters.
    fn quorum(&self, accepted: &BTreeSet<NodeId>) -> bool {
        let majority = |half: &[NodeId]| {
            half.is_empty()
                || accepted.iter().filter(|id| half.contains(id)).count() > half.len() / 2
        };
        !self.voters.is_empty() && majority(&self.voters) && majority(&self.outgoing)
    }

    fn id_of(&self, key: NodeId) -> Option<NodeId> {
        self.others
            .iter()
            .find(|(_, k)| *k == key)
            .map(|(id, _)| *id)
    }
}

/// Says hello until every peer accepted a first start (founders compare
/// their initial clusters in the answers), or until a majority of voters
/// accepted a restart (and every peer answered or [`RESTART_GRACE`]
/// passed). A restart counts the voters this node last recorded
/// (`peers`), so it needs a majority of the current voters, not of the
/// founding ones, which may have left for good.
pub(super) async fn hello_round(
    p: &mut StartParams,
    me: &Member,
    peers: &RoundPeers,
    this_run: PeerRun,
    log: LogEnd,
    founding: &[String],
) -> Result<HashMap<NodeId, PeerRun>, RoundEnd> {
    let mut accepted: BTreeSet<NodeId> = BTreeSet::new();
    if peers.voters.contains(&me.id) || peers.outgoing.contains(&me.id) {
        accepted.insert(me.id);
    }
    let mut seen: HashMap<NodeId, PeerRun> = p.peer_memory.load();
    let now = Instant::now();
    let deadline = now
        .checked_add(p.join_timeout)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
    let mut resend = tokio::time::interval(Duration::from_millis(200));
    // A restart (boot > 1) also waits, a little, for the peers beyond the
    // majority: one of them may be the only peer that saw a later start of
    // this directory, or the leader, which knows what this node
    // acknowledged; either refuses an older copy.
    let mut grace: Option<Instant> = None;
    // A founder whose list differs from a peer's keeps answering hellos for
    // a moment before it stops, so every other founder hears its list too
    // (and stops on the same error rather than waiting for an answer).
    let mut differs: Option<(Error, Instant)> = None;
    loop {
        if let Some((_, until)) = &differs {
            if Instant::now() >= *until {
                if let Some((e, _)) = differs.take() {
                    return Err(e.into());
                }
            }
        }
        let all = differs.is_none() && peers.others.iter().all(|(id, _)| accepted.contains(id));
        // A first start founds the cluster with every listed peer: each
        // must answer once, so every founder has compared its list with
        // every other's (issue 9) before any of them takes part.
        if this_run.boot <= 1 && all {
            break;
        }
        if this_run.boot > 1 && differs.is_none() && peers.quorum(&accepted) {
            let until = *grace.get_or_insert_with(|| Instant::now() + RESTART_GRACE);
            if all || Instant::now() >= until {
                break;
            }
        }
        let wake = grace.map_or(deadline, |g| g.min(deadline));
        let wake = differs.as_ref().map_or(wake, |(_, until)| wake.min(*until));
        tokio::select! {
            biased;
            _ = resend.tick() => {
                for (_, key) in peers.others.iter().filter(|(id, _)| !accepted.contains(id)) {
                    p.transport.send(*key, vec![this_run.hello(me.id, log)]);
                }
            }
            batch = p.incoming.recv() => {
                let Some(batch) = batch else {
                    return Err(Error::Shutdown.into());
                };
                let Some(from_id) = peers.id_of(batch.from) else {
                    continue;
                };
                for msg in batch.msgs {
                    match msg {
                        PeerMessage::Hello { incarnation, boot, run, id, last_index, term } => {
                            let theirs = HelloFrom {
                                from: batch.from,
                                id: NodeId(id),
                                run: PeerRun { incarnation, boot, run },
                                log: LogEnd { last_index, term },
                            };
                            // Not leading: nothing recorded of their log.
                            if let Some(ack) = answer_hello(p.peer_memory.as_mut(), &mut seen, theirs, None, founding) {
                                p.transport.send(batch.from, vec![ack]);
                            }
                        }
                        // An answer to an earlier start of this node, delivered late.
                        PeerMessage::HelloAck { run, .. } if run != this_run.run => {}
                        PeerMessage::HelloAck { founding: theirs, .. }
                            if !theirs.is_empty() && theirs != founding =>
                        {
                            differs.get_or_insert_with(|| {
                                let e = founding_differs(batch.from, founding, &theirs);
                                (e, Instant::now() + FOUNDING_LINGER)
                            });
                        }
                        PeerMessage::HelloAck { accepted: true, .. } => {
                            accepted.insert(from_id);
                        }
                        // The leader: this log ends below what the node
                        // acknowledged to it (a copy of it while it ran).
                        PeerMessage::HelloAck { accepted: false, acknowledged, .. } if acknowledged > 0 => {
                            return Err(behind(batch.from, me, log, acknowledged).into());
                        }
                        // Another incarnation of this name took part: this
                        // node lost its state, and joins as a new member.
                        PeerMessage::HelloAck { accepted: false, seen_boot: 0, .. } => {
                            return Err(RoundEnd::Join);
                        }
                        PeerMessage::HelloAck { accepted: false, seen_boot, .. } => {
                            return Err(refused(batch.from, me, this_run.boot, seen_boot).into());
                        }
                        PeerMessage::JoinInstead => return Err(RoundEnd::Join),
                        // Raft traffic before we take part is dropped; Raft retries.
                        _ => {}
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if differs.is_some() {
                    continue;
                }
                if grace.is_none() {
                    return Err(Error::NoQuorum.into());
                }
                // Past the grace (or the deadline) with a majority: go on.
                grace = Some(Instant::now());
            }
        }
    }
    Ok(seen)
}

/// The initial cluster as a node says it in its hello answers: one
/// `"name (voter)"` or `"name (learner)"` per member, sorted.
pub(super) fn founding_list(members: &[MemberStatus]) -> Vec<String> {
    let mut out: Vec<String> = members
        .iter()
        .map(|m| {
            let role = if m.voter { "voter" } else { "learner" };
            format!("{} ({role})", m.name)
        })
        .collect();
    out.sort();
    out
}

/// The error of a start whose initial cluster differs from a peer's.
fn founding_differs(peer: NodeId, ours: &[String], theirs: &[String]) -> Error {
    Error::Config(format!(
        "this node was started with the cluster [{}] but peer {peer} with [{}]: nodes given different peer lists (or different max_voters) could disagree on who votes, and elect two leaders in one term. Give every node the same peers(..) list and max_voters",
        ours.join(", "),
        theirs.join(", ")
    ))
}

/// The error of a start whose log ends below what the node acknowledged
/// to the leader `peer`: an older copy of a running node's directory.
fn behind(peer: NodeId, me: &Member, log: LogEnd, acknowledged: u64) -> Error {
    Error::Config(format!(
        "the leader, peer {peer}, recorded that node {:?} acknowledged log entry {acknowledged}, but this data directory's log ends at entry {}: the directory is an older copy of itself (copied while the node ran, from a backup, a disk image or a VM snapshot) and misses entries the node acknowledged; taking part would roll them back. Start the node on its newest directory if it still exists. {OUT}",
        me.name.as_str(),
        log.last_index
    ))
}

/// How every refusal of a start ends: what to do.
const OUT: &str = "Do not copy another directory in. The cluster goes on without this node while a majority of voters is up; to bring this node back, empty its data directory: it then joins as a new member under a new id and never votes under the old one (README, Membership)";

/// The error of a start a peer refused; `seen_boot` is 0 when the peer
/// remembers another incarnation, else the later boot it saw.
fn refused(peer: NodeId, me: &Member, boot: u64, seen_boot: u64) -> Error {
    if seen_boot > 0 {
        Error::Config(format!(
            "peer {peer} has already seen start {seen_boot} of node {:?}'s data directory, and this is start {boot}: the directory is an older copy of itself (restored from a backup, a disk image or a VM snapshot) and its log misses what the node acknowledged since; taking part would roll that back. Start the node on its newest directory if it still exists. {OUT}",
            me.name.as_str()
        ))
    } else {
        Error::Config(format!(
            "peer {peer} remembers an earlier run of node {:?}: this node restarted without its state while the cluster kept running, and must not rejoin under the same identity (it could vote twice). Start it on the data directory it had, if it still exists. {OUT}",
            me.name.as_str()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageError;
    use crate::types::NodeName;

    /// Advice that rolls a log back under a trusted identity (restoring a
    /// directory from a copy) or makes a node vote twice (emptying it), in
    /// any error a user reads when a node cannot start.
    fn unsafe_advice(msg: &str) -> bool {
        let m = msg.to_lowercase();
        [
            "restore its data directory",
            "restore this node's data directory",
            "empty it and",
            "use an empty directory",
        ]
        .iter()
        .any(|bad| m.contains(bad))
    }

    /// Issue 8 item 9: the errors of a refused start and of a corrupt log
    /// advised restoring the data directory (from a copy, which peers must
    /// now refuse: it rolls back what the node acknowledged) or emptying it
    /// (refused too: it could vote twice). Every such message now says not
    /// to, and what works: the newest directory, or leaving the node out.
    #[test]
    fn issue_8_no_error_advises_restoring_a_copy_or_emptying_a_directory() {
        let me = Member {
            id: NodeId(2),
            name: NodeName("node-2".into()),
            addr: ([127, 0, 0, 1], 1).into(),
        };
        let corrupt = StorageError::Corrupt {
            path: "raft/0000000000000001.wal".into(),
            offset: 12,
            reason: "bad record".into(),
        };
        let msgs = [
            refused(NodeId(1), &me, 3, 0).to_string(),
            refused(NodeId(1), &me, 3, 4).to_string(),
            corrupt.to_string(),
            behind(
                NodeId(1),
                &me,
                LogEnd {
                    last_index: 40,
                    term: 3,
                },
                55,
            )
            .to_string(),
        ];
        for m in &msgs {
            assert!(!unsafe_advice(m), "{m}");
            assert!(
                m.contains("Leave this node out") || m.contains("cluster goes on"),
                "{m}"
            );
        }
        assert!(msgs[1].contains("older copy"), "{}", msgs[1]);
        assert!(msgs[0].contains("without its state"), "{}", msgs[0]);
        // P6: the leader's refusal of a copy of the running node says it
        // is an older copy, what it misses, and that it must be emptied.
        assert!(msgs[3].contains("older copy of itself"), "{}", msgs[3]);
        assert!(msgs[3].contains("acknowledged log entry 55"), "{}", msgs[3]);
        assert!(msgs[3].contains("ends at entry 40"), "{}", msgs[3]);
        assert!(msgs[3].contains("empty its data directory"), "{}", msgs[3]);
    }

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().map(|i| NodeId(*i)).collect()
    }

    fn set(v: &[u64]) -> BTreeSet<NodeId> {
        v.iter().map(|i| NodeId(*i)).collect()
    }

    /// A restart needs a majority of the voters it counts, of each half of
    /// a joint configuration.
    #[test]
    fn a_restart_needs_a_majority_of_each_half_of_the_recorded_voters() {
        let plain = RoundPeers {
            voters: ids(&[1, 2, 3]),
            outgoing: Vec::new(),
            others: Vec::new(),
            members: Vec::new(),
        };
        assert!(!plain.quorum(&set(&[1])));
        assert!(plain.quorum(&set(&[1, 3])));
        assert!(!plain.quorum(&set(&[1, 7, 8])), "non-voters do not count");
        let joint = RoundPeers {
            voters: ids(&[1, 2, 4]),
            outgoing: ids(&[1, 2, 3]),
            others: Vec::new(),
            members: Vec::new(),
        };
        assert!(joint.quorum(&set(&[1, 2])));
        assert!(!joint.quorum(&set(&[1, 4])), "outgoing half: 1 of 3");
        assert!(!joint.quorum(&set(&[1, 3])), "incoming half: 1 of 3");
        let none = RoundPeers {
            voters: Vec::new(),
            outgoing: Vec::new(),
            others: Vec::new(),
            members: Vec::new(),
        };
        assert!(!none.quorum(&set(&[1, 2, 3])));
    }
}
