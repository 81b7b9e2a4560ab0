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
//! # What it cannot catch
//!
//! - A copy taken of a running node, or after its last start, restored
//!   before its next start: its boot is the newest, so nothing tells it
//!   from the real directory, while its log may miss what the node wrote
//!   after the copy. Never copy a running node's directory to restore it.
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
    /// The hello that announces this start.
    pub(crate) fn hello(&self) -> PeerMessage {
        PeerMessage::Hello {
            incarnation: self.incarnation,
            boot: self.boot,
            run: self.run,
        }
    }
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

/// Answers a hello from `from`, remembering an accepted new start (in
/// `seen` and durably in `memory`) before answering. `None`: the start
/// could not be recorded, so no answer (the peer says hello again).
pub(crate) fn answer(
    memory: &mut dyn PeerMemory,
    seen: &mut HashMap<NodeId, PeerRun>,
    from: NodeId,
    hello: PeerRun,
    founding: &[String],
) -> Option<PeerMessage> {
    let known = seen.get(&from).copied();
    let verdict = judge(known.as_ref(), &hello);
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
    }
    let accepted = matches!(verdict, Verdict::AcceptNew | Verdict::AcceptSame);
    let seen_boot = match verdict {
        Verdict::Older => known.map_or(0, |k| k.boot),
        _ => 0,
    };
    Some(PeerMessage::HelloAck {
        accepted,
        seen_boot,
        run: hello.run,
        founding: founding.to_vec(),
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
        let first = answer(&mut mem, &mut seen, a, run(7, 5, 1), &[]);
        assert_eq!(
            first,
            Some(PeerMessage::HelloAck {
                accepted: true,
                seen_boot: 0,
                run: 1,
                founding: vec![],
            })
        );
        assert_eq!(mem.load().get(&a), Some(&run(7, 5, 1)));
        let copy = answer(&mut mem, &mut seen, a, run(7, 4, 2), &[]);
        assert_eq!(
            copy,
            Some(PeerMessage::HelloAck {
                accepted: false,
                seen_boot: 5,
                run: 2,
                founding: vec![],
            })
        );
        assert_eq!(mem.load().get(&a), Some(&run(7, 5, 1)), "not remembered");
    }
}
