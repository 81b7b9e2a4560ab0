//! One test per rule of the member table (`members.rs`), through
//! `LockTable::apply` and `LockTable::apply_conf` as the driver calls them.

use std::net::SocketAddr;

use super::*;

pub(super) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

pub(super) fn node(s: &str) -> NodeName {
    NodeName(s.into())
}

pub(super) fn join_cmd(token: u64, name: &str) -> Command {
    Command::Join {
        token,
        name: node(name),
        addr: addr(7100),
        zone: None,
        durable: true,
    }
}

fn joined(token: u64, id: u64) -> Effect {
    Effect::MemberJoined {
        token,
        id: NodeId(id),
    }
}

/// A table founded with a, b, c (ids 1, 2, 3).
fn founded() -> LockTable {
    let initial = ["a", "b", "c"]
        .iter()
        .zip(1..)
        .map(|(n, p)| (node(n), addr(p), true))
        .collect();
    LockTable::with_members(MemberTable::founded(77, 1000, initial).unwrap())
}

fn ids(t: &LockTable) -> Vec<u64> {
    t.members().iter().map(|r| r.id.0).collect()
}

#[test]
fn founding_members_get_ids_one_to_n_in_the_order_given() {
    let t = founded();
    let m = t.members();
    assert_eq!((m.cluster_id(), m.token_base(), m.next_id()), (77, 1000, 4));
    assert_eq!(ids(&t), [1, 2, 3]);
    let b = m.get(NodeId(2)).unwrap();
    assert_eq!((b.name.as_str(), b.addr, b.added), ("b", addr(2), true));
    assert_eq!((b.joined_at, b.join_token, b.leaving), (0, 0, false));
    assert!(!m.is_removed(NodeId(2)) && !m.is_removed(NodeId(4)));
    assert!(!m.is_removed(NodeId(0)), "0 is never allocated");
    let bad = MemberTable::founded(1, 0, vec![(node(""), addr(1), true)]);
    assert!(matches!(
        bad,
        Err(FoundingError::Invalid {
            reason: JoinRefusal::InvalidName,
            ..
        })
    ));
    let many = vec![(node("x"), addr(1), false); MAX_MEMBERS + 1];
    assert!(matches!(
        MemberTable::founded(1, 0, many),
        Err(FoundingError::TooMany { .. })
    ));
}

#[test]
fn join_allocates_the_next_id_and_a_replayed_token_gets_the_same_one() {
    let mut t = founded();
    assert_eq!(t.apply(10, &join_cmd(500, "d")), [joined(500, 4)]);
    assert_eq!(t.apply(11, &join_cmd(501, "e")), [joined(501, 5)]);
    let before = t.members().clone();
    // A retried join (same token, even with other fields) changes nothing.
    assert_eq!(t.apply(12, &join_cmd(500, "d")), [joined(500, 4)]);
    assert_eq!(t.apply(13, &join_cmd(500, "zz")), [joined(500, 4)]);
    assert_eq!(t.members(), &before);
    let d = t.members().get(NodeId(4)).unwrap();
    assert_eq!((d.joined_at, d.join_token, d.added), (10, 500, false));
    assert_eq!(t.members().by_token(501).map(|r| r.id), Some(NodeId(5)));
    // Founding members carry token 0 but were not joined: token 0 joins.
    assert_eq!(t.apply(14, &join_cmd(0, "f")), [joined(0, 6)]);
}

#[test]
fn ids_are_never_reused_after_a_removal() {
    let mut t = founded();
    t.apply(10, &join_cmd(500, "d"));
    // d becomes a learner, then the configuration drops c and d.
    assert!(t.apply_conf(11, &[1, 2, 3], &[4]).is_empty());
    assert!(t.members().get(NodeId(4)).unwrap().added);
    assert_eq!(t.apply_conf(12, &[1, 2], &[]), [NodeId(3), NodeId(4)]);
    assert_eq!(ids(&t), [1, 2]);
    let m = t.members();
    assert!(m.is_removed(NodeId(3)) && m.is_removed(NodeId(4)));
    // The same name (and even the same token) joins again as a new id.
    assert_eq!(t.apply(13, &join_cmd(500, "d")), [joined(500, 5)]);
    assert_eq!(t.apply(14, &join_cmd(600, "c")), [joined(600, 6)]);
    assert_eq!(t.members().next_id(), 7);
    assert!(t.members().is_removed(NodeId(4)));
}

#[test]
fn a_joiner_not_yet_added_keeps_its_record() {
    let mut t = founded();
    t.apply(10, &join_cmd(500, "d"));
    assert!(t.apply_conf(11, &[1, 2], &[3]).is_empty());
    let m = t.members();
    assert!(m.get(NodeId(4)).is_some_and(|r| !r.added));
    assert!(!m.is_removed(NodeId(4)), "waiting to be added, not removed");
    // Joint configs: outgoing voters and learners_next count as members.
    assert!(t.apply_conf(12, &[1, 2, 4], &[3]).is_empty());
    assert_eq!(ids(&t), [1, 2, 3, 4]);
}

#[test]
fn apply_conf_counts_as_an_applied_entry() {
    let mut t = founded();
    t.apply(10, &join_cmd(500, "d"));
    t.apply_conf(11, &[1, 2, 3, 4], &[]);
    assert_eq!(t.applied_index(), 11);
    let before = t.clone();
    // A replay at or below the applied index is ignored.
    assert!(t.apply_conf(11, &[1], &[]).is_empty());
    assert!(t.apply_conf(5, &[1], &[]).is_empty());
    assert!(t.apply(11, &join_cmd(9, "x")).is_empty());
    assert_eq!(t, before);
}

#[test]
fn found_sets_the_cluster_id_once() {
    let mut t = LockTable::new();
    assert_eq!(t.members().cluster_id(), 0);
    let found = |cluster_id, token_base| Command::Found {
        cluster_id,
        token_base,
    };
    assert!(t.apply(1, &found(0, 5)).is_empty(), "0 means none");
    assert_eq!((t.members().cluster_id(), t.members().token_base()), (0, 0));
    t.apply(2, &found(u128::MAX, 9));
    t.apply(3, &found(42, 10));
    let m = t.members();
    assert_eq!((m.cluster_id(), m.token_base()), (u128::MAX, 9));
    let mut f = founded();
    f.apply(1, &found(42, 10));
    assert_eq!(f.members().cluster_id(), 77, "a founded table keeps its id");
}

/// Issue 9, item 10: after `Found`, a grant's token is the token base plus
/// its index, so a cluster founded again (a new base from a later wall
/// clock) hands out tokens above the old cluster's; tokens keep rising
/// across the `Found` entry, and a snapshot keeps the base.
#[test]
fn tokens_after_found_are_the_base_plus_the_index() {
    let mut t = LockTable::new();
    let open = |s: u64| Command::OpenSession {
        session: SessionId(s),
        node: NodeId(1),
        name: node("n1"),
        ttl_ms: 10_000,
    };
    let acquire = |s: u64, lock: &str| Command::Acquire {
        key: RequestKey {
            session: SessionId(s),
            request: RequestId(1),
            floor: RequestId(1),
        },
        lock: LockName::new(lock).unwrap(),
        wait: true,
    };
    let token = |fx: Vec<Effect>| {
        fx.iter()
            .find_map(|e| match e {
                Effect::Reply {
                    outcome: Outcome::Granted(t),
                    ..
                } => Some(t.0),
                _ => None,
            })
            .expect("a grant")
    };
    t.apply(1, &open(1));
    t.apply(2, &open(2));
    assert_eq!(token(t.apply(3, &acquire(1, "before"))), 3, "no base yet");
    let base = 1_700_000_000_000_000;
    t.apply(
        4,
        &Command::Found {
            cluster_id: 5,
            token_base: base,
        },
    );
    assert_eq!(token(t.apply(5, &acquire(2, "after"))), base + 5);
    let restored = LockTable::restore(&t.encode_snapshot()).unwrap();
    assert_eq!(restored.members().token_base(), base);
    assert_eq!(
        restored
            .holder(&LockName::new("after").unwrap())
            .unwrap()
            .token,
        FencingToken(base + 5),
        "the snapshot check accepts a token above the applied index"
    );
}

#[test]
fn set_addr_and_leave_change_known_members_only() {
    let mut t = founded();
    let set = |id, port| Command::SetAddr {
        id: NodeId(id),
        addr: addr(port),
    };
    let moved = Effect::MemberAddrChanged {
        id: NodeId(2),
        addr: addr(9),
    };
    assert_eq!(t.apply(10, &set(2, 9)), [moved]);
    assert!(t.apply(11, &set(2, 9)).is_empty(), "no change, no effect");
    assert_eq!(t.members().get(NodeId(2)).unwrap().addr, addr(9));
    let before = t.clone();
    assert!(t.apply(12, &set(8, 9)).is_empty());
    assert!(t.apply(13, &Command::Leave { id: NodeId(8) }).is_empty());
    assert_eq!(t.members(), before.members());
    let leaving = Effect::MemberLeaving { id: NodeId(3) };
    assert_eq!(t.apply(14, &Command::Leave { id: NodeId(3) }), [leaving]);
    assert!(t.apply(15, &Command::Leave { id: NodeId(3) }).is_empty());
    assert!(t.members().get(NodeId(3)).unwrap().leaving);
}

#[test]
fn joins_are_bounded_and_validated() {
    let mut t = LockTable::new();
    let refused = |token, reason| Effect::MemberJoinRefused { token, reason };
    assert_eq!(
        t.apply(1, &join_cmd(1, "")),
        [refused(1, JoinRefusal::InvalidName)]
    );
    let long = "n".repeat(MAX_MEMBER_NAME + 1);
    assert_eq!(
        t.apply(2, &join_cmd(2, &long)),
        [refused(2, JoinRefusal::InvalidName)]
    );
    let zoned = |zone: &str| Command::Join {
        token: 3,
        name: node("z"),
        addr: addr(1),
        zone: Some(zone.into()),
        durable: false,
    };
    let zone = "z".repeat(MAX_ZONE + 1);
    assert_eq!(
        t.apply(3, &zoned(&zone)),
        [refused(3, JoinRefusal::InvalidZone)]
    );
    assert_eq!(t.members().next_id(), 1, "refusals allocate nothing");
    assert_eq!(t.apply(4, &zoned(&zone[1..])), [joined(3, 1)]);
    let mut index = 5;
    for token in 100..100 + MAX_MEMBERS as u64 - 1 {
        t.apply(index, &join_cmd(token, "m"));
        index += 1;
    }
    assert_eq!(t.members().len(), MAX_MEMBERS);
    let full = JoinRefusal::Full { limit: MAX_MEMBERS };
    assert_eq!(t.apply(index, &join_cmd(7, "late")), [refused(7, full)]);
    // A retry of a member's own join is still answered when full.
    assert_eq!(t.apply(index + 1, &join_cmd(100, "m")), [joined(100, 2)]);
    assert_eq!(t.members().by_name(&node("m")).count(), MAX_MEMBERS - 1);
}

#[test]
fn member_commands_keep_the_lock_commands_variant_numbers() {
    // Entries on disk: `Handoff` is variant 6 and stays so; the membership
    // commands follow it.
    let handoff = Command::Handoff {
        lock: LockName::new("x").unwrap(),
        freed_at: 3,
    };
    assert_eq!(&handoff.encode()[..2], [COMMAND_VERSION, 6]);
    let cmds = [
        join_cmd(5, "d"),
        Command::SetAddr {
            id: NodeId(4),
            addr: "[::1]:7100".parse().unwrap(),
        },
        Command::Leave { id: NodeId(4) },
        Command::Found {
            cluster_id: u128::MAX - 1,
            token_base: 3,
        },
        Command::SetZone {
            id: NodeId(4),
            zone: Some("eu-west-1a".into()),
        },
    ];
    for (cmd, variant) in cmds.iter().zip(7u8..) {
        let bytes = cmd.encode();
        assert_eq!(&bytes[..2], [COMMAND_VERSION, variant]);
        assert_eq!(&Command::decode(&bytes).unwrap(), cmd);
    }
    // A join with an invalid name or zone does not decode.
    for bad in [
        join_cmd(1, ""),
        Command::Join {
            token: 1,
            name: node("a"),
            addr: addr(1),
            zone: Some("z".repeat(MAX_ZONE + 1)),
            durable: true,
        },
        Command::SetZone {
            id: NodeId(1),
            zone: Some("z".repeat(MAX_ZONE + 1)),
        },
    ] {
        let err = Command::decode(&bad.encode());
        assert!(matches!(err, Err(DecodeError::Malformed(_))), "{err:?}");
    }
}

#[test]
fn set_zone_changes_a_members_zone_and_nothing_else() {
    let mut t = founded();
    assert_eq!(t.members().get(NodeId(2)).unwrap().zone, None);
    let set = |id: u64, zone: Option<&str>| Command::SetZone {
        id: NodeId(id),
        zone: zone.map(str::to_owned),
    };
    let before = t.members().clone();
    assert!(t.apply(1, &set(2, Some("eu-1b"))).is_empty());
    let b = t.members().get(NodeId(2)).unwrap();
    assert_eq!(b.zone.as_deref(), Some("eu-1b"));
    assert_eq!((&b.name, b.addr, b.durable), (&node("b"), addr(2), true));
    // Unknown ids and oversized zones change nothing; None clears.
    let zoned = t.members().clone();
    t.apply(2, &set(9, Some("x")));
    t.apply(3, &set(1, Some(&"z".repeat(MAX_ZONE + 1))));
    assert_eq!(t.members(), &zoned);
    t.apply(4, &set(2, None));
    assert_eq!(t.members(), &before);
}

/// A table with members in every state: founded, joined, added, leaving,
/// moved, removed; plus a session holding a lock.
pub(super) fn busy_table() -> LockTable {
    let mut t = founded();
    super::tests::open(&mut t, 1, super::tests::A);
    super::tests::acq(&mut t, 2, super::tests::A, 1, "x", true);
    t.apply(3, &join_cmd(500, "d"));
    let zoned = Command::Join {
        token: 501,
        name: node("e"),
        addr: "[::1]:7100".parse().unwrap(),
        zone: Some("eu-1a".into()),
        durable: false,
    };
    t.apply(4, &zoned);
    t.apply_conf(5, &[1, 2, 3], &[4]);
    t.apply_conf(6, &[1, 2, 4], &[]);
    t.apply(7, &Command::Leave { id: NodeId(1) });
    let set = Command::SetAddr {
        id: NodeId(2),
        addr: addr(9),
    };
    t.apply(8, &set);
    t
}

#[test]
fn snapshots_carry_the_member_table() {
    let t = busy_table();
    assert_eq!(ids(&t), [1, 2, 4, 5]);
    let bytes = t.encode_snapshot();
    assert_eq!(bytes[0], SNAPSHOT_VERSION);
    assert_eq!(bytes, t.clone().encode_snapshot(), "deterministic bytes");
    let mut r = LockTable::restore(&bytes).unwrap();
    assert_eq!(r, t);
    assert_eq!(r.state_hash(), t.state_hash());
    assert!(r.members().is_removed(NodeId(3)));
    // The hash sees the members: a join alone changes it.
    let mut other = t.clone();
    other.apply(9, &join_cmd(502, "f"));
    r.applied_index = 9;
    assert_ne!(other.state_hash(), r.state_hash());
    // And the restored table goes on allocating where it left off.
    assert_eq!(r.apply(10, &join_cmd(502, "f")), [joined(502, 6)]);
}

/// Data directories written before membership was replicated hold
/// version 1 snapshots: the same image without the member table.
#[test]
fn version_1_snapshots_restore_with_an_empty_member_table() {
    // An empty table as version 1 wrote it: no sessions, no locks, index 0.
    let empty = LockTable::restore(&[1, 0, 0, 0]).unwrap();
    assert_eq!(empty, LockTable::new());
    assert_eq!(empty.members().next_id(), 1);
    // A busy lock table: version 2's body is version 1's plus the members.
    let mut t = super::tests::table();
    super::tests::acq(&mut t, 10, super::tests::A, 1, "x", true);
    super::tests::acq(&mut t, 11, super::tests::B, 1, "x", true);
    let v2 = super::snapshot_v2::encode_v2(&t);
    let tail = bincode::serde::encode_to_vec(t.members(), bincode::config::standard()).unwrap();
    let mut v1 = vec![1];
    v1.extend_from_slice(&v2[1..v2.len() - tail.len()]);
    let r = LockTable::restore(&v1).unwrap();
    assert_eq!(r, t);
    assert_eq!(r.members(), &MemberTable::default());
    // A version 1 body with a member table behind it has trailing bytes.
    let mut mixed = v2.clone();
    mixed[0] = 1;
    assert!(matches!(
        LockTable::restore(&mixed),
        Err(DecodeError::Malformed(_))
    ));
}

/// Restore re-checks the member table's invariants.
#[test]
fn restore_rejects_an_impossible_member_table() {
    let t = busy_table();
    let broken: [fn(&mut MemberTable); 8] = [
        |m| m.next_id = 5,
        |m| m.next_id = 0,
        |m| {
            let r = m.members.remove(&NodeId(2)).unwrap();
            m.members.insert(NodeId(3), r);
        },
        |m| {
            let mut r = m.members[&NodeId(2)].clone();
            r.id = NodeId(0);
            m.members.insert(NodeId(0), r);
        },
        |m| m.members.get_mut(&NodeId(2)).unwrap().name = node(""),
        |m| m.members.get_mut(&NodeId(2)).unwrap().zone = Some("z".repeat(MAX_ZONE + 1)),
        |m| m.members.get_mut(&NodeId(5)).unwrap().join_token = 500,
        |m| m.members.get_mut(&NodeId(5)).unwrap().joined_at = 99,
    ];
    for (n, f) in broken.iter().enumerate() {
        let mut bad = t.clone();
        f(&mut bad.members);
        let err = LockTable::restore(&bad.encode_snapshot());
        assert!(
            matches!(err, Err(DecodeError::Malformed(_))),
            "case {n}: {err:?}"
        );
    }
}

/// A table restored from a version 1 snapshot adopts the founding members
/// its node was started with; one that has members keeps its own.
#[test]
fn a_version_1_table_adopts_the_founding_members_and_no_other_does() {
    let mut old = LockTable::restore(&[1, 0, 0, 0]).unwrap();
    let f = founded();
    assert!(old.adopt_members(f.members().clone()));
    assert_eq!(old.members(), f.members());
    let mut t = founded();
    let other = MemberTable::founded(5, 0, vec![(node("z"), addr(9), false)]).unwrap();
    assert!(!t.adopt_members(other));
    assert_eq!(t.members(), f.members());
}
