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
    /// A member says the cluster removed the id this node restarts under
    /// (issue 9): it stops as a removed member does.
    Removed,
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
    /// The cluster's id as this node recorded it (0: none): a `Removed`
    /// answer for another cluster is not heeded.
    pub(super) cluster_id: u128,
    /// This node restarts under an id the cluster allocated when it
    /// joined (not a founder): see [`heed`].
    pub(super) joined: bool,
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
            cluster_id: 0,
            joined: false,
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
                    // A restarting peer asks which cluster this one is in
                    // (the facade's check of its directory, `foreign.rs`):
                    // the one this store records, so its check need not
                    // wait out its round while this node is here.
                    if let PeerMessage::Forming { .. } = msg {
                        if peers.cluster_id != 0 {
                            let answer = PeerMessage::InCluster { cluster_id: peers.cluster_id };
                            p.transport.send(batch.from, vec![answer]);
                        }
                        continue;
                    }
                    if let PeerMessage::Hello { boot, .. } = msg {
                        // A node that joined cannot vouch for a first start
                        // (as when it runs: `hello_answer.rs`).
                        if peers.joined && boot <= 1 {
                            let answer = PeerMessage::JoinInstead { cluster_id: peers.cluster_id };
                            p.transport.send(batch.from, vec![answer]);
                            continue;
                        }
                    }
                    if let PeerMessage::Hello { incarnation, boot, run, id, last_index, term } = msg {
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
                        continue;
                    }
                    let start = Start { me, run: this_run, log, founding };
                    match heed(peers, &start, batch.from, msg) {
                        Heard::Nothing => {}
                        Heard::Accepted => {
                            accepted.insert(from_id);
                        }
                        Heard::Differs(e) => {
                            differs.get_or_insert_with(|| (e, Instant::now() + FOUNDING_LINGER));
                        }
                        Heard::End(end) => return Err(end),
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

/// This start as [`heed`] needs it.
struct Start<'a> {
    me: &'a Member,
    run: PeerRun,
    log: LogEnd,
    founding: &'a [String],
}

/// What a start makes of one answer to its hello.
enum Heard {
    /// Nothing (an answer to an earlier start, a message for a running node).
    Nothing,
    /// The peer accepted this start.
    Accepted,
    /// The peer founded with another initial cluster.
    Differs(Error),
    /// The start ends.
    End(RoundEnd),
}

/// Reads one answer from `from` (a peer of `peers`).
///
/// A member that joined restarts under an id the cluster allocated, and
/// peers judge it by that id (`hello.rs`): no peer can remember another
/// incarnation of it, since one id has one directory, and a running
/// member never tells it to join (`hello_answer.rs`). So a "join instead"
/// or a refusal naming no later start comes only from a peer of an older
/// version, which judges by name (a founder of that name may have had
/// another incarnation): it is not heeded, and that peer does not count
/// towards the majority. Taking it at its word would mark a live member's
/// directory left and make it rejoin under a new id.
fn heed(peers: &RoundPeers, start: &Start<'_>, from: NodeId, msg: PeerMessage) -> Heard {
    let Start {
        me,
        run: this_run,
        log,
        founding,
    } = *start;
    match msg {
        // An answer to an earlier start of this node, delivered late.
        PeerMessage::HelloAck { run, .. } if run != this_run.run => Heard::Nothing,
        // A node that joined compares no initial cluster (it has none).
        PeerMessage::HelloAck {
            founding: theirs, ..
        } if !founding.is_empty() && !theirs.is_empty() && theirs != founding => {
            Heard::Differs(founding_differs(from, founding, &theirs))
        }
        PeerMessage::HelloAck { accepted: true, .. } => Heard::Accepted,
        // The leader: this log ends below what the node acknowledged to
        // it (a copy of it while it ran).
        PeerMessage::HelloAck {
            accepted: false,
            acknowledged,
            ..
        } if acknowledged > 0 => Heard::End(behind(from, me, log, acknowledged).into()),
        // Another incarnation of this name took part: this node lost its
        // state, and joins as a new member (not for a joined id: see above).
        PeerMessage::HelloAck {
            accepted: false,
            seen_boot: 0,
            ..
        } if peers.joined => Heard::Nothing,
        PeerMessage::HelloAck {
            accepted: false,
            seen_boot: 0,
            ..
        } => Heard::End(RoundEnd::Join),
        PeerMessage::HelloAck {
            accepted: false,
            seen_boot,
            ..
        } => Heard::End(refused(from, me, this_run.boot, seen_boot).into()),
        PeerMessage::JoinInstead { .. } if peers.joined => Heard::Nothing,
        // From a member of another cluster (see the message's docs).
        PeerMessage::JoinInstead { cluster_id }
            if peers.cluster_id != 0 && cluster_id != 0 && cluster_id != peers.cluster_id =>
        {
            tracing::warn!(node = %me.name, peer = %from, theirs = %format_args!("{cluster_id:032x}"), ours = %format_args!("{:032x}", peers.cluster_id), "a member of another cluster answered this node's hello (at an address this node recorded for a member of its own); ignored");
            Heard::Nothing
        }
        PeerMessage::JoinInstead { .. } => Heard::End(RoundEnd::Join),
        // A member's table (a prefix of the same log) removed this id.
        PeerMessage::Removed { cluster_id, id }
            if id == me.id && (peers.cluster_id == 0 || cluster_id == peers.cluster_id) =>
        {
            Heard::End(RoundEnd::Removed)
        }
        // Raft traffic before we take part is dropped; Raft retries.
        _ => Heard::Nothing,
    }
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
#[path = "round_tests.rs"]
mod tests;
