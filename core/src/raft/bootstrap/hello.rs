//! The hello rule: which start of a peer may take part.
//!
//! A durable node's data directory holds its incarnation (random, drawn
//! when the directory was created) and a boot counter, bumped and fsynced
//! at every start before the node says hello. Each start also draws a
//! random `run` number. A peer remembers, for every node, the last
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
//! - A member that joined (rather than founded) restarts without a hello
//!   round, so neither the boot count nor the log's end protects it.
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

/// Remembers the last start of each peer that was accepted.
pub trait PeerMemory: Send {
    /// Every start remembered so far.
    fn load(&self) -> HashMap<NodeId, PeerRun>;
    /// Records (durably, for a durable node) that `peer` took part as
    /// `run`, before the peer is told it was accepted.
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
/// durably in `memory`) before answering. `recorded`: what the leader
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
        run: hello,
        log,
        ..
    } = hello;
    let known = seen.get(&from).copied();
    let verdict = judge_with_log(known.as_ref(), &hello, log, recorded);
    match verdict {
        Verdict::AcceptNew => {
            if let Err(e) = memory.remember(from, hello) {
                tracing::error!(peer = %from, error = %e, "could not record a peer's start; not answering");
                return None;
            }
            seen.insert(from, hello);
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
mod tests {
    use super::*;

    fn run(incarnation: u64, boot: u64, run: u64) -> PeerRun {
        PeerRun {
            incarnation,
            boot,
            run,
        }
    }

    #[test]
    fn later_starts_and_resends_are_accepted_older_copies_and_blanks_are_not() {
        let k = run(7, 3, 100);
        assert_eq!(judge(None, &k), Verdict::AcceptNew);
        assert_eq!(judge(Some(&k), &run(7, 4, 5)), Verdict::AcceptNew);
        assert_eq!(judge(Some(&k), &run(7, 9, 5)), Verdict::AcceptNew);
        assert_eq!(judge(Some(&k), &k), Verdict::AcceptSame);
        // A copy restored after start 3 bumps to 3 again, under a new run.
        assert_eq!(judge(Some(&k), &run(7, 3, 101)), Verdict::Older);
        assert_eq!(judge(Some(&k), &run(7, 2, 100)), Verdict::Older);
        assert_eq!(judge(Some(&k), &run(8, 4, 5)), Verdict::Blank);
        // What peers remembered before boot counters (boot 0) lets any start in.
        assert_eq!(
            judge(Some(&run(7, 0, 0)), &run(7, 1, 5)),
            Verdict::AcceptNew
        );
    }

    #[test]
    fn an_older_copy_is_told_the_boot_the_peer_saw() {
        let mut mem = MemoryPeers::default();
        let mut seen = HashMap::new();
        let a = NodeId(1);
        let first = answer(&mut mem, &mut seen, from(a, run(7, 5, 1)), None, &[]);
        assert_eq!(
            first,
            Some(PeerMessage::HelloAck {
                accepted: true,
                seen_boot: 0,
                run: 1,
                founding: vec![],
                acknowledged: 0,
            })
        );
        assert_eq!(mem.load().get(&a), Some(&run(7, 5, 1)));
        let copy = answer(&mut mem, &mut seen, from(a, run(7, 4, 2)), None, &[]);
        assert_eq!(
            copy,
            Some(PeerMessage::HelloAck {
                accepted: false,
                seen_boot: 5,
                run: 2,
                founding: vec![],
                acknowledged: 0,
            })
        );
        assert_eq!(mem.load().get(&a), Some(&run(7, 5, 1)), "not remembered");
    }

    fn from(from: NodeId, run: PeerRun) -> HelloFrom {
        HelloFrom {
            from,
            id: from,
            run,
            log: LogEnd::default(),
        }
    }

    fn log(last_index: u64, term: u64) -> LogEnd {
        LogEnd { last_index, term }
    }

    fn leader(term: u64, matched: u64) -> Option<Recorded> {
        Some(Recorded { term, matched })
    }

    /// P6 (issue 9): a copy of a running node's directory has the newest
    /// boot, so the boot rule lets it in; its log ends below what the
    /// node acknowledged to the leader, and the leader refuses it.
    #[test]
    fn a_log_that_ends_below_what_the_node_acknowledged_is_refused_by_the_leader() {
        // The copy: boot rises (the real directory never started again),
        // its log ends at 40, the leader matched 55 in its term 3.
        let known = run(7, 4, 1);
        let copy = run(7, 5, 2);
        assert_eq!(
            judge_with_log(Some(&known), &copy, log(40, 3), leader(3, 55)),
            Verdict::Behind(55)
        );
        // A copy from an earlier term is behind too (an honest node wrote
        // the leader's term before acknowledging it).
        assert_eq!(
            judge_with_log(Some(&known), &copy, log(40, 2), leader(3, 55)),
            Verdict::Behind(55)
        );
        // An honest restart ends at or past what it acknowledged.
        for end in [55, 56, 500] {
            assert_eq!(
                judge_with_log(Some(&known), &copy, log(end, 3), leader(3, 55)),
                Verdict::AcceptNew
            );
        }
        // Not the leader, or a leader that recorded nothing yet (a new
        // one): nothing to compare.
        assert_eq!(
            judge_with_log(Some(&known), &copy, log(40, 3), None),
            Verdict::AcceptNew
        );
        assert_eq!(
            judge_with_log(Some(&known), &copy, log(0, 0), leader(9, 0)),
            Verdict::AcceptNew
        );
        // The boot rule comes first: an older boot says so.
        assert_eq!(
            judge_with_log(Some(&known), &run(7, 3, 2), log(40, 3), leader(3, 55)),
            Verdict::Older
        );
        assert_eq!(
            judge_with_log(Some(&known), &run(8, 5, 2), log(0, 0), leader(3, 55)),
            Verdict::Blank
        );
    }

    /// A stale leader (its term below the start's) may have matched
    /// entries a newer leader truncated since: it does not judge.
    #[test]
    fn a_stale_leader_does_not_judge_a_log_a_newer_leader_truncated() {
        let known = run(7, 4, 1);
        let next = run(7, 5, 2);
        assert_eq!(behind(leader(3, 55), log(50, 4)), None);
        assert_eq!(
            judge_with_log(Some(&known), &next, log(50, 4), leader(3, 55)),
            Verdict::AcceptNew
        );
        assert_eq!(behind(leader(4, 55), log(50, 4)), Some(55));
    }

    /// A first start (boot 1) with an empty log that the leader knows took
    /// part lost its state: it joins as a new member, not "an older copy".
    #[test]
    fn a_first_start_behind_the_leader_lost_its_state_and_joins() {
        assert_eq!(
            judge_with_log(None, &run(9, 1, 3), log(0, 0), leader(3, 55)),
            Verdict::Blank
        );
    }

    /// The refusal names the index acknowledged, is not remembered, and a
    /// resent hello of a start already accepted is judged again.
    #[test]
    fn the_leaders_refusal_says_what_was_acknowledged_and_is_not_remembered() {
        let mut mem = MemoryPeers::default();
        let mut seen = HashMap::new();
        let a = NodeId(1);
        let before = run(7, 4, 1);
        mem.remember(a, before).unwrap();
        seen.insert(a, before);
        let hello = HelloFrom {
            from: a,
            id: a,
            run: run(7, 5, 2),
            log: log(40, 3),
        };
        let ack = answer(&mut mem, &mut seen, hello, leader(3, 55), &[]);
        assert_eq!(
            ack,
            Some(PeerMessage::HelloAck {
                accepted: false,
                seen_boot: 0,
                run: 2,
                founding: vec![],
                acknowledged: 55,
            })
        );
        assert_eq!(mem.load().get(&a), Some(&before), "not remembered");
        assert_eq!(seen.get(&a), Some(&before));
        // A follower lets the same start in.
        let ack = answer(&mut mem, &mut seen, hello, None, &[]);
        assert!(matches!(
            ack,
            Some(PeerMessage::HelloAck {
                accepted: true,
                acknowledged: 0,
                ..
            })
        ));
    }
}
