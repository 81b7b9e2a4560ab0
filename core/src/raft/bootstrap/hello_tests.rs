//! Tests of `hello.rs`.

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

/// Issue 9: starts are remembered by Raft id. A founder `a` (id = its
/// name's key) lost its disk and its name rejoined under the allocated id
/// 40; that member's restarts say hello from the same connection key.
/// Remembered by name they looked like the founder back blank (the first
/// attempt, withdrawn); by id, they are judged as themselves, and an older
/// copy of the joined member's directory is refused.
#[test]
fn starts_are_remembered_by_raft_id_so_a_rejoined_names_restarts_are_its_own() {
    let mut mem = MemoryPeers::default();
    let mut seen = HashMap::new();
    let key = NodeId::from_name("a");
    let founder = run(7, 3, 1);
    mem.remember(key, founder).unwrap();
    seen.insert(key, founder);
    let joined = NodeId(40);
    let hello = |r: PeerRun| HelloFrom {
        from: key,
        id: joined,
        run: r,
        log: LogEnd::default(),
    };
    let first = answer(&mut mem, &mut seen, hello(run(9, 2, 5)), None, &[]);
    assert!(
        matches!(first, Some(PeerMessage::HelloAck { accepted: true, .. })),
        "{first:?}"
    );
    assert_eq!(mem.load().get(&joined), Some(&run(9, 2, 5)));
    assert_eq!(mem.load().get(&key), Some(&founder), "the founder's own");
    // The joined member's next start, then a copy restored from before it.
    let next = answer(&mut mem, &mut seen, hello(run(9, 3, 6)), None, &[]);
    assert!(matches!(
        next,
        Some(PeerMessage::HelloAck { accepted: true, .. })
    ));
    let copy = answer(&mut mem, &mut seen, hello(run(9, 3, 7)), None, &[]);
    assert_eq!(
        copy,
        Some(PeerMessage::HelloAck {
            accepted: false,
            seen_boot: 3,
            run: 7,
            founding: vec![],
            acknowledged: 0,
        })
    );
    // The founder's old directory, back under its own id: judged by the
    // founder's memory (a later boot of it is let in, to be told Removed
    // once it runs).
    let old = HelloFrom {
        from: key,
        id: key,
        run: run(7, 4, 8),
        log: LogEnd::default(),
    };
    assert!(matches!(
        answer(&mut mem, &mut seen, old, None, &[]),
        Some(PeerMessage::HelloAck { accepted: true, .. })
    ));
}
