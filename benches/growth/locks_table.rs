//! The pure lock table at one size, in a fresh process: the heap it takes
//! per held lock (RSS growth while commands are applied directly, no Raft,
//! no client), and the snapshot the driver makes of it: encode time (what
//! the leader pays at every compaction and for a lagging follower) and
//! restore time (what installing it costs a follower or a restart).

use std::hint::black_box;
use std::time::Instant;

use peerlock_core::machine::{Command, LockTable, RequestKey};
use peerlock_core::{LockName, NodeId, NodeName, RequestId, SessionId};

use super::cluster::{med, rss_bytes};
use super::name;

/// What one table point measured.
pub struct TablePoint {
    pub bytes_per_lock: f64,
    pub snapshot_bytes: usize,
    pub encode_ms: (f64, f64, f64),
    pub restore_ms: (f64, f64, f64),
    /// What a clone of the table costs: the price of encoding off the
    /// driver on a copy (issue 10), measured beside the encode.
    pub clone_ms: (f64, f64, f64),
}

/// `n` locks named as the cluster point names them, held by 3 sessions
/// (one per node, as in the cluster), applied one entry each.
fn build(n: usize, len: usize) -> LockTable {
    let mut t = LockTable::new();
    let mut index = 0;
    for s in 1..=3u64 {
        index += 1;
        t.apply(
            index,
            &Command::OpenSession {
                session: SessionId(s),
                node: NodeId(s),
                name: NodeName(format!("growth-{s}")),
                ttl_ms: 10_000,
            },
        );
    }
    for i in 0..n {
        index += 1;
        let s = (i % 3) as u64 + 1;
        let cmd = Command::Acquire {
            key: RequestKey {
                session: SessionId(s),
                request: RequestId(index),
                floor: RequestId(index),
            },
            lock: LockName::new(&name(i, len)).expect("valid name"),
            wait: false,
        };
        t.apply(index, &cmd);
    }
    t
}

/// Runs the point: `runs` encodes and restores each (at least one).
pub fn measure(n: usize, len: usize, runs: usize) -> TablePoint {
    // Below 100 000 locks one table is a few pages of RSS: build copies
    // up to 100 000 locks in all, so the page granularity drowns.
    let copies = (100_000 / n.max(1)).max(1);
    let before = rss_bytes();
    let mut tables: Vec<LockTable> = (0..copies).map(|_| build(n, len)).collect();
    let after = rss_bytes();
    tables.truncate(1);
    let t = tables.pop().expect("one table built");
    assert_eq!(t.lock_count(), n, "every lock held");
    let (mut enc, mut res, mut cl) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = Vec::new();
    for _ in 0..runs.max(1) {
        let at = Instant::now();
        let copy = black_box(t.clone());
        cl.push(at.elapsed().as_secs_f64() * 1e3);
        drop(copy);
        let at = Instant::now();
        bytes = black_box(t.encode_snapshot());
        enc.push(at.elapsed().as_secs_f64() * 1e3);
        let at = Instant::now();
        let back = LockTable::restore(&bytes).expect("restores");
        res.push(at.elapsed().as_secs_f64() * 1e3);
        assert_eq!(back.lock_count(), n);
        drop(black_box(back));
    }
    TablePoint {
        bytes_per_lock: after.saturating_sub(before) as f64 / (n * copies) as f64,
        snapshot_bytes: bytes.len(),
        encode_ms: med(&enc),
        restore_ms: med(&res),
        clone_ms: med(&cl),
    }
}
