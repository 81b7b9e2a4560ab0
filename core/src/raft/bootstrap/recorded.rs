//! What a restarting node reads from its own store before its hello round
//! (issue 9): where its log ends, and the voters it last recorded.
//!
//! # Why the recorded voters, not the founding ones
//!
//! A restart needs a majority of voters to accept it (see the parent
//! module). Counting the founding voters, as the first start must, stops
//! working once most of them have left for good and been replaced: after a
//! full power cut no founder could start again, although a majority of
//! the current voters is back (found by the simulator's membership runs).
//! The voters that count are those of the configuration this node last
//! applied, which the driver persists with each change (raft-rs's
//! `ConfState`, the source of truth for who votes: etcd and TiKV count
//! the applied configuration the same way). A joint configuration needs a
//! majority of each half. Members that joined after the founding are
//! found in the member table: the snapshot's, with the `Join`s in the log
//! after it replayed.

use crate::collect::{id_key, sort_by_u128};
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, EntryType,
};
use raft::{Changer, GetEntriesContext, ProgressTracker};

use super::hello::LogEnd;
use super::round::RoundPeers;
use super::Member;
use crate::error::Error;
use crate::machine::{Command, LockTable, MemberTable};
use crate::storage::LogStore;
use crate::types::NodeId;

/// Where the store's log ends (its last index, the snapshot's if the log
/// holds nothing after it) and the term of its hard state.
pub(super) fn log_end<S: LogStore>(store: &S) -> Result<LogEnd, Error> {
    let state = store.initial_state().map_err(damaged)?;
    let last_index = store.last_index().map_err(damaged)?;
    Ok(LogEnd {
        last_index,
        term: state.hard_state.term,
    })
}

/// The voters this store last recorded and every member to say hello to
/// (see the module docs); `None` when it recorded no configuration (the
/// founding members count then). A voter whose address the store does
/// not hold still counts (it cannot be asked, so it never answers).
pub(super) fn recorded_peers<S: LogStore>(
    store: &S,
    founders: &[Member],
    founders_conf: &ConfState,
    me: NodeId,
) -> Result<Option<RoundPeers>, Error> {
    let Recorded { conf, table } = recorded(store, founders, founders_conf)?;
    if conf.voters.is_empty() {
        return Ok(None);
    }
    let mut members: Vec<Member> = conf
        .voters
        .iter()
        .chain(&conf.voters_outgoing)
        .chain(&conf.learners)
        .chain(&conf.learners_next)
        .filter(|id| **id != me.0)
        .filter_map(|id| table.get(NodeId(*id)))
        .map(|m| Member {
            id: m.id,
            name: m.name.clone(),
            addr: m.addr,
        })
        .collect();
    sort_by_u128(&mut members, |m| id_key(0, m.id));
    members.dedup_by_key(|m| m.id);
    let sorted = |ids: &[u64]| {
        let mut v: Vec<NodeId> = ids.iter().map(|v| NodeId(*v)).collect();
        v.sort_unstable();
        v
    };
    Ok(Some(RoundPeers {
        voters: sorted(&conf.voters),
        outgoing: sorted(&conf.voters_outgoing),
        others: members
            .iter()
            .map(|m| (m.id, NodeId::from_name(m.name.as_str())))
            .collect(),
        members,
        cluster_id: table.cluster_id(),
        joined: false,
    }))
}

/// The id of the cluster `store` belongs to, as of its last committed
/// entry; `None` when it records none. Replayed onto the store's own
/// configuration: only the member table counts here.
#[cfg(feature = "disk")]
pub(in crate::raft) fn recorded_cluster_id<S: LogStore>(store: &S) -> Result<Option<u128>, Error> {
    let conf = store.initial_state().map_err(damaged)?.conf_state;
    let id = recorded(store, &[], &conf)?.table.cluster_id();
    Ok((id != 0).then_some(id))
}

/// The configuration and the member table as of the store's last
/// committed entry.
pub(super) struct Recorded {
    pub(super) conf: ConfState,
    pub(super) table: MemberTable,
}

/// Reads [`Recorded`]: the snapshot's configuration and member table (or
/// the founders' when there is no snapshot), with the committed entries
/// after it replayed: configuration changes the way raft-rs applies them
/// (its `Changer`), membership commands through the member table. The
/// configuration the store persisted is not enough: a start resets it to
/// the one in force at the snapshot, and a crash before raft-rs replayed
/// the later changes leaves it there.
pub(super) fn recorded<S: LogStore>(
    store: &S,
    founders: &[Member],
    founders_conf: &ConfState,
) -> Result<Recorded, Error> {
    // As in `start_with`: a store that cannot give a snapshot has none.
    let snap = store
        .snapshot(0, 0)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_default();
    let state = store.initial_state().map_err(damaged)?;
    let (mut table, mut conf) = if snap.is_empty() {
        // No snapshot: the log replays onto the founders' configuration,
        // as raft-rs does at start (the store's own may be a later one,
        // onto which a replay would apply changes twice).
        (founded(founders)?, founders_conf.clone())
    } else {
        let t = LockTable::restore(&snap.data).map_err(|e| {
            Error::Config(format!(
                "the stored snapshot does not decode ({e}); the data directory is damaged"
            ))
        })?;
        let table = if t.members().is_empty() {
            founded(founders)?
        } else {
            t.members().clone()
        };
        (table, snap.get_metadata().get_conf_state().clone())
    };
    let after = snap.get_metadata().index;
    let first = store.first_index().map_err(damaged)?.max(after + 1);
    let last = store
        .last_index()
        .map_err(damaged)?
        .min(state.hard_state.commit);
    if first > last || conf.voters.is_empty() {
        return Ok(Recorded { conf, table });
    }
    let entries = store
        .entries(first, last + 1, None, GetEntriesContext::empty(false))
        .map_err(damaged)?;
    let mut tracker = tracker_of(&conf);
    let mut fx = Vec::new();
    for e in &entries {
        match e.get_entry_type() {
            // An entry that does not decode is skipped, as the driver does.
            EntryType::EntryNormal => {
                if let Ok(cmd) = Command::decode(&e.data) {
                    table.apply(e.index, &cmd, &mut fx);
                    fx.clear();
                }
            }
            EntryType::EntryConfChange => {
                if let Ok(cc) = ConfChange::parse_from_bytes(&e.data) {
                    // raft-rs's `ConfChangeI::into_v2`: one simple change.
                    let mut v2 = ConfChangeV2::default();
                    v2.mut_changes()
                        .push(single(cc.node_id, cc.get_change_type()));
                    apply_change(&mut tracker, &mut conf, v2);
                }
            }
            EntryType::EntryConfChangeV2 => {
                if let Ok(cc) = ConfChangeV2::parse_from_bytes(&e.data) {
                    apply_change(&mut tracker, &mut conf, cc);
                }
            }
        }
    }
    Ok(Recorded { conf, table })
}

/// A progress tracker holding `conf` (raft-rs's `confchange::restore`,
/// which it does not export).
fn tracker_of(conf: &ConfState) -> ProgressTracker {
    let mut t = ProgressTracker::new(1);
    let add = |id: &u64, kind| single(*id, kind);
    let outgoing: Vec<ConfChangeSingle> = conf
        .voters_outgoing
        .iter()
        .map(|id| add(id, ConfChangeType::AddNode))
        .collect();
    let incoming: Vec<ConfChangeSingle> = conf
        .voters_outgoing
        .iter()
        .map(|id| add(id, ConfChangeType::RemoveNode))
        .chain(
            conf.voters
                .iter()
                .map(|id| add(id, ConfChangeType::AddNode)),
        )
        .chain(
            conf.learners
                .iter()
                .map(|id| add(id, ConfChangeType::AddLearnerNode)),
        )
        .chain(
            conf.learners_next
                .iter()
                .map(|id| add(id, ConfChangeType::AddLearnerNode)),
        )
        .collect();
    let simple = |t: &mut ProgressTracker, cc: ConfChangeSingle| {
        if let Ok((cfg, changes)) = Changer::new(t).simple(&[cc]) {
            t.apply_conf(cfg, changes, 1);
        }
    };
    if outgoing.is_empty() {
        for cc in incoming {
            simple(&mut t, cc);
        }
    } else {
        for cc in outgoing {
            simple(&mut t, cc);
        }
        if let Ok((cfg, changes)) = Changer::new(&t).enter_joint(conf.auto_leave, &incoming) {
            t.apply_conf(cfg, changes, 1);
        }
    }
    t
}

/// Applies one committed configuration change as raft-rs does
/// (`Raft::apply_conf_change`); a change raft-rs refuses changes nothing.
fn apply_change(t: &mut ProgressTracker, conf: &mut ConfState, cc: ConfChangeV2) {
    let changed = if let Some(auto_leave) = cc.enter_joint() {
        Changer::new(t).enter_joint(auto_leave, cc.get_changes())
    } else if cc.leave_joint() {
        Changer::new(t).leave_joint()
    } else {
        Changer::new(t).simple(cc.get_changes())
    };
    if let Ok((cfg, changes)) = changed {
        *conf = cfg.to_conf_state();
        t.apply_conf(cfg, changes, 1);
    }
}

fn single(id: u64, kind: ConfChangeType) -> ConfChangeSingle {
    let mut cc = ConfChangeSingle {
        node_id: id,
        ..Default::default()
    };
    cc.set_change_type(kind);
    cc
}

fn founded(founders: &[Member]) -> Result<MemberTable, Error> {
    MemberTable::founded_with_ids(
        0,
        0,
        founders
            .iter()
            .map(|m| (m.id, m.name.clone(), m.addr, true))
            .collect(),
    )
    .map_err(|e| Error::Config(format!("the initial cluster: {e}")))
}

fn damaged(e: raft::Error) -> Error {
    Error::Config(format!(
        "could not read the stored raft state ({e}); the data directory is damaged"
    ))
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::{ConfChangeTransition, Entry, HardState, Snapshot};

    use super::*;
    use crate::storage::MemStore;
    use crate::types::NodeName;

    fn founder(i: u64) -> Member {
        Member {
            id: NodeId(1000 + i),
            name: NodeName(format!("f{i}")),
            addr: ([127, 0, 0, 1], 7000 + i as u16).into(),
        }
    }

    fn conf(voters: &[u64], learners: &[u64]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            ..Default::default()
        }
    }

    fn normal(index: u64, cmd: &Command) -> Entry {
        Entry {
            index,
            term: 1,
            data: cmd.encode().into(),
            ..Default::default()
        }
    }

    fn change(index: u64, changes: &[(u64, ConfChangeType)], joint: bool) -> Entry {
        let mut cc = ConfChangeV2::default();
        for (id, kind) in changes {
            cc.mut_changes().push(single(*id, *kind));
        }
        if joint {
            cc.set_transition(ConfChangeTransition::Explicit);
        }
        Entry {
            index,
            term: 1,
            entry_type: EntryType::EntryConfChangeV2,
            data: cc.write_to_bytes().unwrap_or_default().into(),
            ..Default::default()
        }
    }

    fn join(token: u64, name: &str, port: u16) -> Command {
        Command::Join {
            token,
            name: NodeName(name.into()),
            addr: ([127, 0, 0, 1], port).into(),
            zone: None,
            durable: true,
        }
    }

    fn commit(store: &mut MemStore, commit: u64) {
        let hs = HardState {
            term: 1,
            commit,
            ..Default::default()
        };
        store.set_hard_state(&hs).unwrap();
    }

    /// Issue 9 (the simulator's membership seed 149): two of the three
    /// founding voters left for good and were replaced by members that
    /// joined. A founder's restart counts the voters it last recorded,
    /// with the joined ones' names and addresses from the replayed `Join`s;
    /// entries not committed yet do not count.
    #[test]
    fn a_restart_counts_the_recorded_voters_not_the_founding_ones() {
        let founders: Vec<Member> = (1..=3).map(founder).collect();
        let (a, b, c) = (1001, 1002, 1003);
        let cs = conf(&[a, b, c], &[]);
        let mut store = MemStore::new(cs.clone());
        // Ids allocated by joins are above the founders'.
        let (x, y) = (1004, 1005);
        let entries = vec![
            normal(1, &join(11, "x", 9001)),
            normal(2, &join(12, "y", 9002)),
            change(3, &[(x, ConfChangeType::AddLearnerNode)], false),
            change(4, &[(y, ConfChangeType::AddLearnerNode)], false),
            // Enter joint: x and y in, b and c out.
            change(
                5,
                &[
                    (x, ConfChangeType::AddNode),
                    (y, ConfChangeType::AddNode),
                    (b, ConfChangeType::RemoveNode),
                    (c, ConfChangeType::RemoveNode),
                ],
                true,
            ),
        ];
        store.append(&entries).unwrap();
        commit(&mut store, 5);
        let joint = recorded_peers(&store, &founders, &cs, NodeId(a))
            .unwrap()
            .unwrap();
        assert_eq!(joint.voters, vec![NodeId(a), NodeId(x), NodeId(y)]);
        assert_eq!(joint.outgoing, vec![NodeId(a), NodeId(b), NodeId(c)]);
        // Leave joint (committed later).
        store.append(&[change(6, &[], false)]).unwrap();
        let before = recorded_peers(&store, &founders, &cs, NodeId(a))
            .unwrap()
            .unwrap();
        assert!(!before.outgoing.is_empty(), "entry 6 is not committed yet");
        commit(&mut store, 6);
        let peers = recorded_peers(&store, &founders, &cs, NodeId(a))
            .unwrap()
            .unwrap();
        assert_eq!(peers.voters, vec![NodeId(a), NodeId(x), NodeId(y)]);
        assert!(peers.outgoing.is_empty());
        assert_eq!(
            peers.others,
            vec![
                (NodeId(x), NodeId::from_name("x")),
                (NodeId(y), NodeId::from_name("y"))
            ]
        );
        assert_eq!(peers.members[0].addr, ([127, 0, 0, 1], 9001).into());
        // The store's own configuration may say anything: a start resets it
        // to the founders' until the replay; the log is what counts.
        store.set_conf_state(&cs).unwrap();
        let again = recorded_peers(&store, &founders, &cs, NodeId(a))
            .unwrap()
            .unwrap();
        assert_eq!(again.voters, peers.voters);
        assert_eq!(
            log_end(&store).unwrap(),
            LogEnd {
                last_index: 6,
                term: 1
            }
        );
    }

    /// With a snapshot, the replay starts from its configuration and member
    /// table, and skips the entries it covers.
    #[test]
    fn a_restart_after_a_snapshot_replays_only_the_entries_after_it() {
        let founders: Vec<Member> = (1..=3).map(founder).collect();
        let (a, b, c) = (1001, 1002, 1003);
        let cs = conf(&[a, b, c], &[]);
        let mut table = LockTable::with_members(founded(&founders).unwrap());
        table.apply(1, &join(11, "x", 9001));
        let x = 1004;
        table.apply_conf(2, &[a, b, c], &[x]);
        let mut snap = Snapshot {
            data: table.encode_snapshot().into(),
            ..Default::default()
        };
        snap.mut_metadata().index = 2;
        snap.mut_metadata().term = 1;
        snap.mut_metadata().set_conf_state(conf(&[a, b, c], &[x]));
        let mut store = MemStore::new(cs.clone());
        store.apply_snapshot(snap).unwrap();
        store
            .append(&[change(
                3,
                &[
                    (x, ConfChangeType::AddNode),
                    (c, ConfChangeType::RemoveNode),
                ],
                true,
            )])
            .unwrap();
        store.append(&[change(4, &[], false)]).unwrap();
        commit(&mut store, 4);
        let peers = recorded_peers(&store, &founders, &cs, NodeId(a))
            .unwrap()
            .unwrap();
        assert_eq!(peers.voters, vec![NodeId(a), NodeId(b), NodeId(x)]);
        assert!(peers.outgoing.is_empty());
        assert!(peers.others.contains(&(NodeId(x), NodeId::from_name("x"))));
        assert_eq!(log_end(&store).unwrap().last_index, 4);
    }
}
