//! Random membership histories: joins (with replayed tokens), leaves,
//! address and zone changes, foundings and configurations naming random subsets of
//! the known ids, applied to two tables, one of which is snapshotted and
//! restored at random points. Checked on every entry:
//!
//! - both tables stay equal, with equal snapshot bytes;
//! - a naive model (a list of records) agrees on every record;
//! - a new id is above every id allocated before, and `next_id` above
//!   every id ever allocated;
//! - a removed id never reappears (in the table or in a join's answer) and
//!   stays `is_removed`;
//! - `restore(encode(t)) == t`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use proptest::prelude::*;

use super::members_tests::{addr, join_cmd, node};
use super::*;

const NAMES: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Debug)]
enum Op {
    /// A join with a token from a small range (so replays are common).
    Join(u64, u8, Option<u8>),
    Leave(u64),
    SetAddr(u64, u16),
    /// A zone for an id (`Some(3)`: one byte over the limit, changes nothing).
    SetZone(u64, Option<u8>),
    Found(u8, u64),
    /// A configuration: the known ids picked by `pick`, split into voters
    /// and learners by `voter`; sometimes an id the table never allocated.
    Conf {
        pick: u64,
        voter: u64,
        foreign: bool,
    },
    /// An entry of `n` entries ago applied again at its own index.
    OldIndex(usize),
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    let zone = prop_oneof![Just(None), (0..3u8).prop_map(Some)];
    prop_oneof![
        6 => (0..12u64, 0..3u8, zone).prop_map(|(t, n, z)| Op::Join(t, n, z)),
        2 => (0..10u64).prop_map(Op::Leave),
        2 => (0..10u64, 1..4u16).prop_map(|(i, p)| Op::SetAddr(i, p)),
        2 => (0..10u64, prop_oneof![Just(None), (0..4u8).prop_map(Some)])
            .prop_map(|(i, z)| Op::SetZone(i, z)),
        1 => (0..3u8, any::<u64>()).prop_map(|(c, b)| Op::Found(c, b)),
        5 => (any::<u64>(), any::<u64>(), proptest::bool::weighted(0.1))
            .prop_map(|(pick, voter, foreign)| Op::Conf { pick, voter, foreign }),
        1 => (0..6usize).prop_map(Op::OldIndex),
        1 => Just(Op::Snapshot),
    ]
}

/// What was applied at an index, to re-apply it as a replay.
#[derive(Clone)]
enum Entry {
    Cmd(Command),
    Conf(Vec<u64>, Vec<u64>),
}

/// The naive model: every record in a list, searched linearly.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    cluster_id: u128,
    next_id: u64,
    records: Vec<MemberRecord>,
}

impl Model {
    fn apply(&mut self, index: u64, e: &Entry) {
        match e {
            Entry::Cmd(Command::Join {
                token,
                name,
                addr,
                zone,
                durable,
            }) => {
                let known = self
                    .records
                    .iter()
                    .any(|r| r.joined_at != 0 && r.join_token == *token);
                if !known && self.records.len() < MAX_MEMBERS {
                    self.records.push(MemberRecord {
                        id: NodeId(self.next_id),
                        name: name.clone(),
                        addr: *addr,
                        zone: zone.clone(),
                        durable: *durable,
                        leaving: false,
                        joined_at: index,
                        join_token: *token,
                        added: false,
                    });
                    self.next_id += 1;
                }
            }
            Entry::Cmd(Command::Leave { id }) => {
                self.records
                    .iter_mut()
                    .filter(|r| r.id == *id)
                    .for_each(|r| r.leaving = true);
            }
            Entry::Cmd(Command::SetAddr { id, addr }) => {
                self.records
                    .iter_mut()
                    .filter(|r| r.id == *id)
                    .for_each(|r| r.addr = *addr);
            }
            Entry::Cmd(Command::SetZone { id, zone }) => {
                if zone.as_ref().is_none_or(|z| z.len() <= MAX_ZONE) {
                    self.records
                        .iter_mut()
                        .filter(|r| r.id == *id)
                        .for_each(|r| r.zone.clone_from(zone));
                }
            }
            Entry::Cmd(Command::Found { cluster_id, .. }) => {
                if self.cluster_id == 0 {
                    self.cluster_id = *cluster_id;
                }
            }
            Entry::Cmd(_) => {}
            Entry::Conf(voters, learners) => {
                let inside = |id: NodeId| voters.contains(&id.0) || learners.contains(&id.0);
                self.records.retain(|r| inside(r.id) || !r.added);
                for r in &mut self.records {
                    r.added |= inside(r.id);
                }
            }
        }
    }
}

fn apply(t: &mut LockTable, index: u64, e: &Entry) -> Vec<Effect> {
    match e {
        Entry::Cmd(cmd) => t.apply(index, cmd),
        Entry::Conf(voters, learners) => {
            t.apply_conf(index, voters, learners);
            Vec::new()
        }
    }
}

fn entry(op: &Op, next_id: u64) -> Option<Entry> {
    let cmd = match *op {
        Op::Join(token, n, zone) => {
            let name = NAMES.get(usize::from(n)).copied().unwrap_or("a");
            let mut cmd = join_cmd(token, name);
            if let Command::Join { zone: z, .. } = &mut cmd {
                *z = zone.map(|z| format!("zone-{z}"));
            }
            cmd
        }
        Op::Leave(id) => Command::Leave { id: NodeId(id) },
        Op::SetAddr(id, port) => Command::SetAddr {
            id: NodeId(id),
            addr: addr(port),
        },
        Op::SetZone(id, zone) => Command::SetZone {
            id: NodeId(id),
            zone: zone.map(|z| match z {
                3 => "z".repeat(MAX_ZONE + 1),
                z => format!("zone-{z}"),
            }),
        },
        Op::Found(c, base) => Command::Found {
            cluster_id: u128::from(c) << 100,
            token_base: base,
        },
        Op::Conf {
            pick,
            voter,
            foreign,
        } => {
            let (mut voters, mut learners) = (Vec::new(), Vec::new());
            for id in 1..next_id {
                let bit = 1u64 << ((id - 1) % 64);
                if pick & bit != 0 {
                    if voter & bit != 0 {
                        voters.push(id);
                    } else {
                        learners.push(id);
                    }
                }
            }
            if foreign {
                learners.push(next_id + 3);
            }
            return Some(Entry::Conf(voters, learners));
        }
        Op::OldIndex(_) | Op::Snapshot => return None,
    };
    Some(Entry::Cmd(cmd))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn member_histories_keep_the_table_rules(
        founders in 0..4usize,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let initial: Vec<(NodeName, SocketAddr, bool)> =
            (0..founders).map(|i| (node(&format!("f{i}")), addr(1), i % 2 == 0)).collect();
        // No founders: no cluster id yet either, so `Found` sets one.
        let cluster_id = if founders == 0 { 0 } else { 9 };
        let start = MemberTable::founded(cluster_id, 4, initial).unwrap();
        let mut a = LockTable::with_members(start.clone());
        let mut b = a.clone();
        let mut model = Model {
            cluster_id,
            next_id: start.next_id(),
            records: start.iter().cloned().collect(),
        };
        let mut log: Vec<(u64, Entry)> = Vec::new();
        let mut allocated: BTreeMap<u64, u64> = BTreeMap::new(); // id -> token
        let mut removed: BTreeSet<u64> = BTreeSet::new();
        let mut index = 0u64;
        for op in &ops {
            match op {
                Op::Snapshot => {
                    b = LockTable::restore(&b.encode_snapshot()).unwrap();
                    continue;
                }
                Op::OldIndex(n) => {
                    if let Some((i, e)) = log.len().checked_sub(n + 1).and_then(|k| log.get(k)) {
                        prop_assert!(apply(&mut a, *i, e).is_empty());
                        prop_assert!(apply(&mut b, *i, e).is_empty());
                    }
                    continue;
                }
                _ => {}
            }
            let Some(e) = entry(op, a.members().next_id()) else { continue };
            index += 1;
            let before: BTreeSet<u64> = a.members().iter().map(|r| r.id.0).collect();
            let max_before = a.members().next_id();
            let fx = apply(&mut a, index, &e);
            prop_assert_eq!(&fx, &apply(&mut b, index, &e));
            model.apply(index, &e);
            log.push((index, e));
            for f in &fx {
                if let Effect::MemberJoined { token, id } = f {
                    prop_assert!(!removed.contains(&id.0), "removed id {} answered", id.0);
                    match allocated.get(&id.0) {
                        Some(t) => prop_assert_eq!(t, token, "an id answered to two tokens"),
                        None => {
                            prop_assert!(id.0 == max_before && !before.contains(&id.0));
                            allocated.insert(id.0, *token);
                        }
                    }
                }
            }
            let m = a.members();
            let now: BTreeSet<u64> = m.iter().map(|r| r.id.0).collect();
            removed.extend(before.difference(&now));
            for id in &removed {
                prop_assert!(!now.contains(id) && m.is_removed(NodeId(*id)));
            }
            prop_assert!(m.iter().all(|r| r.id.0 < m.next_id()));
            prop_assert!(allocated.keys().all(|id| *id < m.next_id()));
            prop_assert_eq!(m.next_id(), model.next_id);
            prop_assert_eq!(m.cluster_id(), model.cluster_id);
            let records: Vec<MemberRecord> = m.iter().cloned().collect();
            prop_assert_eq!(&records, &model.records);
            prop_assert_eq!(&a, &b);
            let bytes = a.encode_snapshot();
            prop_assert_eq!(&bytes, &b.encode_snapshot());
            prop_assert_eq!(&LockTable::restore(&bytes).unwrap(), &a);
        }
    }
}
