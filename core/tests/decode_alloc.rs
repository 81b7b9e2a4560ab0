//! Decoding what arrives from outside (snapshots, log entries) allocates in
//! proportion to the bytes it is given, not to the lengths those bytes
//! announce. A test binary of its own: it installs an allocator that
//! records the largest allocation each thread makes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use peerlock_core::machine::{Command, DecodeError, LockTable};

struct Track;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the slot is gone while the thread is being torn down.
    let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Track {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Track = Track;

/// The largest single allocation `f` makes on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|m| m.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

/// A bincode varint announcing `n` (a u32 behind the 252 marker).
fn len_u32(n: u32) -> Vec<u8> {
    let mut v = vec![252];
    v.extend_from_slice(&n.to_le_bytes());
    v
}

/// Found by fuzzing (fuzz target `snapshot`): a ~30-byte snapshot whose
/// session's node name claims 640 MiB made bincode allocate the 640 MiB
/// before finding the bytes missing.
#[test]
fn a_tiny_snapshot_claiming_a_huge_node_name_allocates_nothing_large() {
    // Version, one session (id 7, node 1), then the name's length.
    let mut bytes = vec![1, 1, 7, 1];
    bytes.extend(len_u32(640 << 20));
    bytes.extend_from_slice(b"short");
    let (res, largest) = largest_allocation(|| LockTable::restore(&bytes));
    assert!(matches!(res, Err(DecodeError::Malformed(_))), "{res:?}");
    assert!(
        largest <= 1 << 20,
        "allocated {largest} bytes for a {}-byte snapshot",
        bytes.len()
    );
}

/// The same through a lock name (a map key of the snapshot's lock table).
#[test]
fn a_tiny_snapshot_claiming_a_huge_lock_name_allocates_nothing_large() {
    // Version, no sessions, one lock, then its name's length.
    let mut bytes = vec![1, 0, 1];
    bytes.extend(len_u32(900 << 20));
    bytes.extend_from_slice(b"x");
    let (res, largest) = largest_allocation(|| LockTable::restore(&bytes));
    assert!(matches!(res, Err(DecodeError::Malformed(_))), "{res:?}");
    assert!(
        largest <= 1 << 20,
        "allocated {largest} bytes for a {}-byte snapshot",
        bytes.len()
    );
}

/// Log entries: a command's lock name claiming more than the entry holds.
#[test]
fn a_command_claiming_a_long_lock_name_allocates_nothing_large() {
    // Version, `Handoff` (variant 6), then the lock name's length.
    let mut bytes = vec![1, 6];
    bytes.extend(len_u32(60_000));
    let (res, largest) = largest_allocation(|| Command::decode(&bytes));
    assert!(matches!(res, Err(DecodeError::Malformed(_))), "{res:?}");
    assert!(
        largest < 4096,
        "allocated {largest} bytes for a {}-byte command",
        bytes.len()
    );
}

/// Valid snapshots still restore through the new path.
#[test]
fn names_still_round_trip() {
    let cmd = Command::Handoff {
        lock: peerlock_core::LockName::new("jobs/nightly").unwrap(),
        freed_at: 3,
    };
    assert_eq!(Command::decode(&cmd.encode()).unwrap(), cmd);
    let mut t = LockTable::new();
    t.apply(
        1,
        &Command::OpenSession {
            session: peerlock_core::SessionId(7),
            node: peerlock_core::NodeId(1),
            name: peerlock_core::NodeName("node-a".into()),
            ttl_ms: 1000,
        },
    );
    let back = LockTable::restore(&t.encode_snapshot()).unwrap();
    assert_eq!(back.state_hash(), t.state_hash());
    assert_eq!(back.sessions()[0].name.as_str(), "node-a");
}

/// Replaces the first `len | bytes` run of `needle` in `bytes` with a
/// length claim of `claim` followed by the same bytes.
fn claim_longer(bytes: &[u8], needle: &[u8], claim: u32) -> Vec<u8> {
    let mut run = vec![needle.len() as u8];
    run.extend_from_slice(needle);
    let at = bytes
        .windows(run.len())
        .position(|w| w == run.as_slice())
        .expect("the needle is in the encoding");
    let mut out = bytes[..at].to_vec();
    out.extend(len_u32(claim));
    out.extend_from_slice(&bytes[at + 1..]);
    out
}

fn join_with_zone(zone: &str) -> Command {
    Command::Join {
        token: 1,
        name: peerlock_core::NodeName("node-a".into()),
        addr: "10.0.0.1:7100".parse().unwrap(),
        zone: Some(zone.into()),
        durable: true,
    }
}

/// A member's zone (an optional string in snapshots and `Join` entries)
/// claiming more than the bytes hold allocates nothing large either.
#[test]
fn a_member_zone_claiming_a_huge_length_allocates_nothing_large() {
    let mut t = LockTable::new();
    t.apply(1, &join_with_zone("zzzz"));
    let snap = claim_longer(&t.encode_snapshot(), b"zzzz", 640 << 20);
    let (res, largest) = largest_allocation(|| LockTable::restore(&snap));
    assert!(matches!(res, Err(DecodeError::Malformed(_))), "{res:?}");
    assert!(largest <= 1 << 20, "allocated {largest} bytes");
    let entry = claim_longer(&join_with_zone("zzzz").encode(), b"zzzz", 60_000);
    let (res, largest) = largest_allocation(|| Command::decode(&entry));
    assert!(matches!(res, Err(DecodeError::Malformed(_))), "{res:?}");
    assert!(largest < 4096, "allocated {largest} bytes");
}
