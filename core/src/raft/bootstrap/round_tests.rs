//! Tests of `round.rs`.

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
        cluster_id: 0,
        joined: false,
    };
    assert!(!plain.quorum(&set(&[1])));
    assert!(plain.quorum(&set(&[1, 3])));
    assert!(!plain.quorum(&set(&[1, 7, 8])), "non-voters do not count");
    let joint = RoundPeers {
        voters: ids(&[1, 2, 4]),
        outgoing: ids(&[1, 2, 3]),
        others: Vec::new(),
        members: Vec::new(),
        cluster_id: 0,
        joined: false,
    };
    assert!(joint.quorum(&set(&[1, 2])));
    assert!(!joint.quorum(&set(&[1, 4])), "outgoing half: 1 of 3");
    assert!(!joint.quorum(&set(&[1, 3])), "incoming half: 1 of 3");
    let none = RoundPeers {
        voters: Vec::new(),
        outgoing: Vec::new(),
        others: Vec::new(),
        members: Vec::new(),
        cluster_id: 0,
        joined: false,
    };
    assert!(!none.quorum(&set(&[1, 2, 3])));
}

fn ack(accepted: bool, seen_boot: u64, acknowledged: u64, founding: &[&str]) -> PeerMessage {
    PeerMessage::HelloAck {
        accepted,
        seen_boot,
        run: 5,
        founding: founding.iter().map(|f| (*f).to_string()).collect(),
        acknowledged,
    }
}

fn peers(joined: bool) -> RoundPeers {
    RoundPeers {
        voters: ids(&[1, 2, 9]),
        outgoing: Vec::new(),
        others: vec![(NodeId(1), NodeId(11)), (NodeId(2), NodeId(12))],
        members: Vec::new(),
        cluster_id: 77,
        joined,
    }
}

fn what(heard: Heard) -> String {
    match heard {
        Heard::Nothing => "nothing".into(),
        Heard::Accepted => "accepted".into(),
        Heard::Differs(e) => format!("differs: {e}"),
        Heard::End(RoundEnd::Join) => "join".into(),
        Heard::End(RoundEnd::Removed) => "removed".into(),
        Heard::End(RoundEnd::Failed(e)) => format!("failed: {e}"),
    }
}

/// Issue 9: a member that joined (id 9, allocated) restarts with a hello
/// round. A copy of its directory is refused with the founders' advice,
/// both kinds (a later start seen, or a log below what the leader
/// recorded); a "join instead" or a refusal naming no later start (only
/// an older peer that judges by name sends them) is not heeded: heeding
/// it would make a live member give up its id. A member whose table
/// removed the id stops the start as `Removed`.
#[test]
fn a_joined_restart_heeds_copies_and_removal_but_never_joins_again() {
    let me = Member {
        id: NodeId(9),
        name: NodeName("joined-9".into()),
        addr: ([127, 0, 0, 1], 1).into(),
    };
    let log = LogEnd {
        last_index: 40,
        term: 3,
    };
    let run = PeerRun {
        incarnation: 3,
        boot: 4,
        run: 5,
    };
    let start = Start {
        me: &me,
        run,
        log,
        founding: &[],
    };
    let joined = peers(true);
    let heed = |m: PeerMessage| what(heed(&joined, &start, NodeId(11), m));
    assert_eq!(heed(ack(true, 0, 0, &[])), "accepted");
    // A founder answers with its initial cluster; a joined node has none.
    assert_eq!(heed(ack(true, 0, 0, &["a (voter)"])), "accepted");
    let older = heed(ack(false, 6, 0, &[]));
    assert!(older.contains("older copy of itself"), "{older}");
    assert!(older.contains("empty its data directory"), "{older}");
    let behind = heed(ack(false, 0, 55, &[]));
    assert!(behind.contains("older copy of itself"), "{behind}");
    assert!(behind.contains("acknowledged log entry 55"), "{behind}");
    assert!(behind.contains("empty its data directory"), "{behind}");
    assert_eq!(heed(ack(false, 0, 0, &[])), "nothing");
    assert_eq!(heed(PeerMessage::JoinInstead { cluster_id: 77 }), "nothing");
    let removed = |cluster_id, id| PeerMessage::Removed { cluster_id, id };
    assert_eq!(heed(removed(77, NodeId(9))), "removed");
    assert_eq!(heed(removed(78, NodeId(9))), "nothing", "another cluster");
    assert_eq!(heed(removed(77, NodeId(8))), "nothing", "another id");
    // An answer to an earlier start of this node.
    let late = PeerMessage::HelloAck {
        accepted: false,
        seen_boot: 0,
        run: 4,
        founding: Vec::new(),
        acknowledged: 55,
    };
    assert_eq!(heed(late), "nothing");
}

/// A founder's round reads its answers as before joined members had one.
#[test]
fn a_founders_restart_reads_its_answers_as_before() {
    let me = Member {
        id: NodeId(11),
        name: NodeName("a".into()),
        addr: ([127, 0, 0, 1], 1).into(),
    };
    let founding = vec!["a (voter)".to_string()];
    let start = Start {
        me: &me,
        run: PeerRun {
            incarnation: 3,
            boot: 4,
            run: 5,
        },
        log: LogEnd::default(),
        founding: &founding,
    };
    let founder = peers(false);
    let heed = |m: PeerMessage| what(heed(&founder, &start, NodeId(12), m));
    assert_eq!(heed(ack(true, 0, 0, &["a (voter)"])), "accepted");
    assert!(heed(ack(true, 0, 0, &["b (voter)"])).starts_with("differs"));
    assert_eq!(heed(ack(false, 0, 0, &[])), "join");
    assert_eq!(heed(PeerMessage::JoinInstead { cluster_id: 77 }), "join");
    // Not chosen yet on their side: taken, as before ids existed.
    assert_eq!(heed(PeerMessage::JoinInstead { cluster_id: 0 }), "join");
    // A member of another cluster at an address this node recorded.
    assert_eq!(heed(PeerMessage::JoinInstead { cluster_id: 78 }), "nothing");
    assert!(heed(ack(false, 6, 0, &[])).contains("older copy of itself"));
}
