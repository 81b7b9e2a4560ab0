//! Writes small seed corpora for the fuzz targets from real values:
//! commands, lock-table snapshots, frames, peer messages and data
//! directories written by a real `DiskStore`.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds [-- OUT_DIR]
//! ```
//!
//! OUT_DIR defaults to `fuzz/corpus`; each target's seeds are named
//! `seed-*` (the only corpus files git keeps).

use std::path::{Path, PathBuf};

use peerlock_core::machine::{Command, LockTable, RequestKey};
use peerlock_core::storage::{DiskStore, LogStore};
use peerlock_core::transport::PeerMessage;
use peerlock_core::{FencingToken, LockName, NodeId, NodeName, RequestId, SessionId};
use peerlock_transport::codec::{encode, FrameBody, HEADER};
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Message, MessageType, Snapshot};

fn lock(name: &str) -> LockName {
    LockName::new(name).expect("a valid lock name")
}

fn key(session: u64, request: u64) -> RequestKey {
    RequestKey {
        session: SessionId(session),
        request: RequestId(request),
        floor: RequestId(request),
    }
}

fn commands() -> Vec<Command> {
    vec![
        Command::OpenSession {
            session: SessionId(1),
            node: NodeId(1),
            name: NodeName("node-a".into()),
            ttl_ms: 10_000,
        },
        Command::OpenSession {
            session: SessionId(2),
            node: NodeId(2),
            name: NodeName("node-b".into()),
            ttl_ms: 5_000,
        },
        Command::Acquire {
            key: key(1, 1),
            lock: lock("jobs/nightly"),
            wait: true,
        },
        Command::Acquire {
            key: key(2, 1),
            lock: lock("jobs/nightly"),
            wait: true,
        },
        Command::Acquire {
            key: key(2, 2),
            lock: lock("leader"),
            wait: false,
        },
        Command::Release {
            key: key(2, 3),
            lock: lock("leader"),
            token: FencingToken(5),
        },
        Command::Cancel {
            key: key(2, 4),
            target: RequestId(1),
        },
        Command::ExpireSession {
            session: SessionId(1),
            lock_delay: true,
        },
        Command::Handoff {
            lock: lock("jobs/nightly"),
            freed_at: 8,
        },
        Command::CloseSession {
            session: SessionId(2),
        },
    ]
}

/// Tables after each prefix of `commands()` applied at indexes 1, 2, ...
fn tables() -> Vec<LockTable> {
    let mut t = LockTable::new();
    let mut out = vec![t.clone()];
    for (i, cmd) in (1..).zip(commands()) {
        t.apply(i, &cmd);
        out.push(t.clone());
    }
    out
}

fn entry(index: u64, term: u64, cmd: &Command) -> Entry {
    let mut e = Entry::default();
    e.index = index;
    e.term = term;
    e.data = cmd.encode().into();
    e
}

fn conf(voters: &[u64]) -> ConfState {
    let mut cs = ConfState::default();
    cs.voters = voters.to_vec();
    cs
}

fn snapshot(index: u64, term: u64, table: &LockTable) -> Snapshot {
    let mut s = Snapshot::default();
    s.data = table.encode_snapshot().into();
    let meta = s.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.set_conf_state(conf(&[1, 2, 3]));
    s
}

fn raft_messages() -> Vec<Message> {
    let cmds = commands();
    let mut append = Message::default();
    append.set_msg_type(MessageType::MsgAppend);
    append.from = 1;
    append.to = 2;
    append.term = 3;
    append.log_term = 3;
    append.index = 4;
    append.commit = 4;
    append.entries = (5..)
        .zip(&cmds)
        .take(3)
        .map(|(i, c)| entry(i, 3, c))
        .collect();
    let mut vote = Message::default();
    vote.set_msg_type(MessageType::MsgRequestVote);
    vote.from = 2;
    vote.to = 3;
    vote.term = 4;
    vote.log_term = 3;
    vote.index = 7;
    let mut snap = Message::default();
    snap.set_msg_type(MessageType::MsgSnapshot);
    snap.from = 1;
    snap.to = 3;
    snap.term = 3;
    let tables = tables();
    snap.set_snapshot(snapshot(8, 3, &tables[8]));
    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    heartbeat.from = 1;
    heartbeat.to = 2;
    heartbeat.term = 3;
    heartbeat.commit = 7;
    vec![append, vote, snap, heartbeat]
}

fn frames() -> Vec<FrameBody> {
    let raft: Vec<PeerMessage> = raft_messages()
        .iter()
        .map(|m| PeerMessage::Raft(m.write_to_bytes().expect("a message serializes")))
        .collect();
    vec![
        FrameBody {
            from: NodeId(1),
            msgs: raft[..2].to_vec(),
        },
        FrameBody {
            from: NodeId(1),
            msgs: vec![raft[2].clone()],
        },
        FrameBody {
            from: NodeId(2),
            msgs: vec![
                PeerMessage::Hello {
                    incarnation: 77,
                    boot: 3,
                    run: 9,
                    id: 2,
                    last_index: 41,
                    term: 2,
                },
                PeerMessage::HelloAck {
                    accepted: true,
                    seen_boot: 0,
                    run: 9,
                    founding: vec!["node-1 (voter)".into()],
                    acknowledged: 0,
                },
                PeerMessage::KeepAlive {
                    session: SessionId(2),
                    seq: 9,
                },
                PeerMessage::KeepAliveAck {
                    session: SessionId(2),
                    seq: 9,
                    alive: false,
                },
                raft[3].clone(),
            ],
        },
    ]
}

/// The files of a data directory: the snapshot file (if any) and the
/// segments, oldest first.
fn dir_files(dir: &Path) -> (Option<Vec<u8>>, Vec<Vec<u8>>) {
    let snapshot = std::fs::read(dir.join("snapshot")).ok();
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the data dir")
        .map(|e| e.expect("a dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    let segs = segs
        .iter()
        .map(|p| std::fs::read(p).expect("read a segment"))
        .collect();
    (snapshot, segs)
}

fn hard(term: u64, vote: u64, commit: u64) -> HardState {
    let mut hs = HardState::default();
    hs.term = term;
    hs.vote = vote;
    hs.commit = commit;
    hs
}

/// Data directories a real store leaves, packed for the `wal` target.
fn wal_seeds() -> Vec<Vec<u8>> {
    let cmds = commands();
    let tables = tables();
    let mut out = Vec::new();
    let mut push = |dir: &Path, cut: usize| {
        let (snap, mut segs) = dir_files(dir);
        if let Some(last) = segs.last_mut() {
            last.truncate(last.len().saturating_sub(cut));
        }
        let refs: Vec<&[u8]> = segs.iter().map(Vec::as_slice).collect();
        out.push(peerlock_fuzz::pack(snap.as_deref(), &refs).expect("small files pack"));
    };

    // A new store.
    let tmp = tempfile::tempdir().expect("temp dir");
    drop(DiskStore::open(tmp.path()).expect("open"));
    push(tmp.path(), 0);

    // Entries, a hard state, a membership and a commit; then a torn tail.
    let tmp = tempfile::tempdir().expect("temp dir");
    {
        let mut s = DiskStore::open(tmp.path()).expect("open");
        s.set_conf_state(&conf(&[1, 2, 3])).expect("conf");
        let entries: Vec<Entry> = (1..)
            .zip(&cmds)
            .take(6)
            .map(|(i, c)| entry(i, 2, c))
            .collect();
        s.persist(&entries[..4], Some(&hard(2, 1, 3)))
            .expect("persist");
        s.persist(&entries[4..], None).expect("persist");
        s.set_commit(5).expect("commit");
        // A conflicting suffix from a new leader replaces entries 5 and 6.
        s.persist(&[entry(5, 3, &cmds[6])], Some(&hard(3, 2, 5)))
            .expect("persist");
    }
    push(tmp.path(), 0);
    push(tmp.path(), 7);

    // Compacted: a snapshot file and a segment starting from it.
    let tmp = tempfile::tempdir().expect("temp dir");
    {
        let mut s = DiskStore::open(tmp.path()).expect("open");
        s.set_conf_state(&conf(&[1, 2, 3])).expect("conf");
        let entries: Vec<Entry> = (1..).zip(&cmds).map(|(i, c)| entry(i, 2, c)).collect();
        s.persist(&entries, Some(&hard(2, 1, 8))).expect("persist");
        s.compact(snapshot(6, 2, &tables[6])).expect("compact");
    }
    let (snap, segs) = dir_files(tmp.path());
    push(tmp.path(), 0);
    // The same with the older segment a crash mid-rotation leaves behind.
    let old = {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut s = DiskStore::open(tmp.path()).expect("open");
        s.persist(&[entry(1, 1, &cmds[0])], Some(&hard(1, 1, 1)))
            .expect("persist");
        drop(s);
        dir_files(tmp.path()).1.remove(0)
    };
    let refs: Vec<&[u8]> = std::iter::once(old.as_slice())
        .chain(segs.iter().map(Vec::as_slice))
        .collect();
    out.push(peerlock_fuzz::pack(snap.as_deref(), &refs).expect("small files pack"));
    out
}

fn write(root: &Path, target: &str, seeds: &[Vec<u8>]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus dir");
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), s).expect("write a seed");
    }
    println!("{target}: {} seeds", seeds.len());
}

fn main() {
    let root = std::env::args().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        PathBuf::from,
    );

    let cmds: Vec<Vec<u8>> = commands().iter().map(Command::encode).collect();
    write(&root, "command", &cmds);

    let tables = tables();
    let snaps: Vec<Vec<u8>> = [0, 3, 4, 5, 8]
        .iter()
        .map(|i| tables[*i].encode_snapshot())
        .collect();
    write(&root, "snapshot", &snaps);

    let encoded: Vec<Vec<u8>> = frames()
        .iter()
        .map(|f| encode(f).expect("a frame encodes"))
        .collect();
    // The frame target's first byte is the chunk size it feeds.
    let mut frame_seeds: Vec<Vec<u8>> = encoded.iter().map(|f| [&[255][..], f].concat()).collect();
    frame_seeds.push([&[7][..], &encoded[0], &encoded[2]].concat());
    write(&root, "frame", &frame_seeds);

    let payloads: Vec<Vec<u8>> = encoded.iter().map(|f| f[HEADER..].to_vec()).collect();
    write(&root, "peer_message", &payloads);

    write(&root, "wal", &wal_seeds());
}
