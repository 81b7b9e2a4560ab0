//! The hello rule: which start of a peer may take part.
//!
//! A durable node's data directory holds its incarnation (random, drawn
//! when the directory was created) and a boot counter, bumped and fsynced
//! at every start before the node says hello. Each start also draws a
//! random `run` number. A peer remembers, for every Raft id, the last
//! `(incarnation, boot, run)` it accepted, durably, before answering. A
//! hello is accepted when the peer knows nothing of the node yet, when its
//! boot is higher than the one remembered (a later start of the same
//! directory), or when it is the very start already accepted (same boot
//! and run: a hello sent again because an answer was lost). It is refused
//! when the incarnation differs (the node lost its state: it could vote
//! twice) and when the boot is not higher under another run: the
//! directory is an older copy of itself (restored from a backup, a disk
//! image or a VM snapshot), whose log misses what the node acknowledged
//! since, so taking part would roll the log back under a trusted identity.
//!
//! # Keyed by the Raft id, not the name
//!
//! A founder's Raft id is the key of its name, so for founders the two are
//! one. A member that joined through seeds has an id the cluster allocated
//! with a committed `Join`, and ids are never reused (issue 9, design item
//! 1), while a name is: a founder of that name may have had another
//! incarnation before it lost its disk and rejoined under a new id.
//! Remembered by name, every restart of such a joined member looked like
//! the founder coming back blank, and was told to join again (a first
//! attempt at a hello round for joined members was withdrawn for it).
//! Remembered by id, one id has exactly one data directory: the one that
//! received it (etcd tracks members, and the ones it removed, by member
//! id the same way: `RaftCluster::IsIDRemoved`, never by name).
//!
//! # Crash cases
//!
//! - A crash after the boot counter is bumped but before the hello: the
//!   next start bumps again; peers only need the boots to rise, not to be
//!   consecutive.
//! - A crash after a peer remembered a boot but before the answer arrived:
//!   the next start has a higher boot.
//! - A peer that crashes before its memory is durable never answered.
//!
//! # A copy of a running node: the log's end
//!
//! A copy taken of a running node (or after its last start) and restored
//! before its next start has the newest boot: the count cannot tell it
//! from the real directory, while its log misses what the node
//! acknowledged after the copy. So the hello also carries where the
//! starting node's log ends ([`LogEnd`]: last index and term), and the
//! leader refuses a start whose log ends below the index it recorded the
//! node as having acknowledged (raft-rs's `Progress::matched`) under the
//! Raft id the hello names (a name may be a member under a newer id, after
//! a blank start of it rejoined; an old id is not judged here: the cluster
//! tells it `Removed` once it runs): a
//! restarted node that keeps its log on disk fsyncs before it
//! acknowledges, so an honest restart always ends at or past `matched`.
//! A log that went back under a trusted identity is what openraft's FAQ
//! calls log reversion (a wiped or restored node "can panic the leader or
//! lose data", `allow_log_reversion`); raft-rs panics on such a follower
//! ("to_commit N is out of range [last_index M]"), and a committed entry it
//! counted for can be lost. No false positive, because:
//!
//! - `matched` only grows while one leader leads (raft-rs `maybe_update`),
//!   and only from acknowledgements, which a durable node sends after its
//!   fsync; a snapshot installed counts as acknowledged up to its index,
//!   and the log never ends below its snapshot.
//! - Within one term only its leader writes to a follower's log, and it
//!   never truncates below what it matched (the entries agree). A newer
//!   leader may truncate what an older one matched: a start whose term is
//!   above the answering leader's is therefore not judged (that leader is
//!   stale). A durable node persists the leader's term before
//!   acknowledging it, so an honest start never says a lower term.
//! - Only a node still in its hello round heeds the answer, and it has
//!   sent no Raft message yet: `matched` comes from earlier starts only. A
//!   late hello that reaches the leader after the node took part (and
//!   acknowledged more) may be answered with a refusal, which the running
//!   node ignores.
//! - A new leader's `matched` starts at 0: it cannot judge, and lets the
//!   start in (the check is as good as the leader's memory).
//!
//! A first start (boot 1) whose log ends below `matched` lost its state
//! (an in-memory node, or a directory emptied and made again): it is told
//! to join as a new member, like another incarnation.
//!
//! # What it cannot catch
//!
//! - A copy of a running node restored while the leader that recorded its
//!   acknowledgements is gone or no longer leads (a new leader knows no
//!   `matched` yet), or one whose stored term is above that leader's.
//! - A restart goes on once a majority accepted it and every peer answered,
//!   or 1 s after the majority (`RESTART_GRACE`): a leader whose
//!   answer comes later is not heard.
//! - A member that joined but never received its first snapshot restarts
//!   without a hello round: it recorded no configuration to count, and
//!   acknowledged nothing a copy could roll back.
//! - A peer can only refuse a start it has seen a later one of. A starting
//!   node takes part once a majority of voters, itself included, accepted
//!   it; if every peer that saw the later starts is down, the old copy gets
//!   in. With three nodes the copy needs one peer that was down or cut off
//!   through every later start.
//! - A copy of the peers' own memory (`peers`) restored with them forgets
//!   the boots seen since.

use std::collections::HashMap;

use crate::error::Error;
use crate::transport::PeerMessage;
use crate::types::NodeId;

/// Which start of which data directory a node is: what it says in its
/// hello, and what its peers remember of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerRun {
    /// The data directory's incarnation (random, drawn when it was made;
    /// for an in-memory node, drawn at each start).
    pub incarnation: u64,
    /// How many times the directory was started, this start included.
    pub boot: u64,
    /// Random, drawn at each start: tells a hello sent again from another
    /// start with the same boot.
    pub run: u64,
}

impl PeerRun {
    /// The hello that announces this start of Raft id `id`, whose log
    /// ends at `log`.
    pub(crate) fn hello(&self, id: NodeId, log: LogEnd) -> PeerMessage {
        PeerMessage::Hello {
            incarnation: self.incarnation,
            boot: self.boot,
            run: self.run,
            id: id.0,
            last_index: log.last_index,
            term: log.term,
        }
    }
}

/// Where a starting node's log ends, as its hello says it: what the
/// leader compares with what it recorded the node acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogEnd {
    /// The index of the last entry (or of the snapshot, if the log holds
    /// nothing after it); 0 for an empty log.
    pub last_index: u64,
    /// The term in the node's stored hard state.
    pub term: u64,
}

/// What the answering node knows of the starting node's log: set only on
/// the leader, from raft-rs's progress of that member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Recorded {
    /// The leader's term.
    pub(crate) term: u64,
    /// The highest index the member acknowledged to this leader.
    pub(crate) matched: u64,
}

/// The log rule (see the module docs): `Some(matched)` when the start's
/// log ends below what it acknowledged to this leader.
pub(crate) fn behind(recorded: Option<Recorded>, log: LogEnd) -> Option<u64> {
    let r = recorded?;
    // A start in a later term than this leader's: this leader is stale,
    // and a newer one may have truncated what it matched.
    if log.term > r.term {
        return None;
    }
    (log.last_index < r.matched).then_some(r.matched)
}

/// Remembers the last start of each peer that was accepted, by the Raft
/// id it started under (for a founder, the key of its name).
pub trait PeerMemory: Send {
    /// Every start remembered so far.
    fn load(&self) -> HashMap<NodeId, PeerRun>;
    /// Records (durably, for a durable node) that Raft id `peer` took part
    /// as `run`, before the peer is told it was accepted.
    fn remember(&mut self, peer: NodeId, run: PeerRun) -> Result<(), Error>;
}

/// Peer starts kept in memory only.
#[derive(Debug, Default)]
pub struct MemoryPeers(HashMap<NodeId, PeerRun>);

impl PeerMemory for MemoryPeers {
    fn load(&self) -> HashMap<NodeId, PeerRun> {
        self.0.clone()
    }

    fn remember(&mut self, peer: NodeId, run: PeerRun) -> Result<(), Error> {
        self.0.insert(peer, run);
        Ok(())
    }
}

/// What a peer makes of a hello.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Accept; remember the start first.
    AcceptNew,
    /// Accept: the start already remembered.
    AcceptSame,
    /// Refuse: another incarnation (the node lost its state).
    Blank,
    /// Refuse: an older copy of the directory (the boot does not rise).
    Older,
    /// Refuse: an older copy of the directory whose boot rises (a copy of
    /// the running node): its log ends below the index it acknowledged.
    Behind(u64),
}

/// The rule (see the module docs).
pub(crate) fn judge(known: Option<&PeerRun>, hello: &PeerRun) -> Verdict {
    match known {
        None => Verdict::AcceptNew,
        Some(k) if k.incarnation != hello.incarnation => Verdict::Blank,
        Some(k) if hello.boot > k.boot => Verdict::AcceptNew,
        Some(k) if hello.boot == k.boot && hello.run == k.run => Verdict::AcceptSame,
        Some(_) => Verdict::Older,
    }
}

/// [`judge`], then the log rule for a start it lets in.
pub(crate) fn judge_with_log(
    known: Option<&PeerRun>,
    hello: &PeerRun,
    log: LogEnd,
    recorded: Option<Recorded>,
) -> Verdict {
    match judge(known, hello) {
        v @ (Verdict::AcceptNew | Verdict::AcceptSame) => match behind(recorded, log) {
            // A first start that took part before: it lost its state.
            Some(_) if hello.boot <= 1 => Verdict::Blank,
            Some(matched) => Verdict::Behind(matched),
            None => v,
        },
        v => v,
    }
}

/// A hello as the answering node sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HelloFrom {
    /// The sender's transport key.
    pub(crate) from: NodeId,
    /// The Raft id it says it starts under.
    pub(crate) id: NodeId,
    /// Its start.
    pub(crate) run: PeerRun,
    /// Where its log ends.
    pub(crate) log: LogEnd,
}

/// Answers a hello, remembering an accepted new start (in `seen` and
/// durably in `memory`, under the Raft id the hello names) before
/// answering. `recorded`: what the leader
/// knows of the sender's log (`None` elsewhere). `None`: the start could
/// not be recorded, so no answer (the peer says hello again).
pub(crate) fn answer(
    memory: &mut dyn PeerMemory,
    seen: &mut HashMap<NodeId, PeerRun>,
    hello: HelloFrom,
    recorded: Option<Recorded>,
    founding: &[String],
) -> Option<PeerMessage> {
    let HelloFrom {
        from,
        id,
        run: hello,
        log,
    } = hello;
    // By Raft id (see the module docs): a founder's id is its name's key.
    let known = seen.get(&id).copied();
    let verdict = judge_with_log(known.as_ref(), &hello, log, recorded);
    match verdict {
        Verdict::AcceptNew => {
            if let Err(e) = memory.remember(id, hello) {
                tracing::error!(peer = %from, %id, error = %e, "could not record a peer's start; not answering");
                return None;
            }
            seen.insert(id, hello);
        }
        Verdict::AcceptSame => {}
        Verdict::Blank => {
            tracing::warn!(peer = %from, "peer restarted without its state; refused (it must not vote again under its old identity)");
        }
        Verdict::Older => {
            tracing::warn!(peer = %from, boot = hello.boot, seen = known.map_or(0, |k| k.boot), "peer started from an older copy of its data directory; refused (its log would roll back what it acknowledged)");
        }
        Verdict::Behind(matched) => {
            tracing::warn!(peer = %from, last_index = log.last_index, matched, "peer started from an older copy of its data directory: its log ends below what it acknowledged; refused");
        }
    }
    let accepted = matches!(verdict, Verdict::AcceptNew | Verdict::AcceptSame);
    let seen_boot = match verdict {
        Verdict::Older => known.map_or(0, |k| k.boot),
        _ => 0,
    };
    let acknowledged = match verdict {
        Verdict::Behind(matched) => matched,
        _ => 0,
    };
    Some(PeerMessage::HelloAck {
        accepted,
        seen_boot,
        run: hello.run,
        founding: founding.to_vec(),
        acknowledged,
    })
}

#[cfg(test)]
#[path = "hello_tests.rs"]
mod tests;
