//! Snapshots, replays and decoding: what the table accepts from outside
//! (see `tests.rs` for the helpers).

use super::tests::*;
use super::*;

/// Snapshots compact the log: a restored table equals the original, has
/// the same hash, and behaves the same from then on.
#[test]
fn snapshot_round_trip_preserves_state_and_behaviour() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    acq(&mut t, 11, B, 1, "x", true);
    acq(&mut t, 12, C, 1, "y", true);
    expire(&mut t, 13, C, true);
    let bytes = t.encode_snapshot();
    assert_eq!(bytes, t.clone().encode_snapshot(), "deterministic bytes");
    let mut r = LockTable::restore(&bytes).unwrap();
    assert_eq!(r, t);
    assert_eq!((r.state_hash(), r.applied_index()), (t.state_hash(), 13));
    assert!(
        acq(&mut r, 13, C, 2, "z", true).is_empty(),
        "applied index kept"
    );
    assert_eq!(
        rel(&mut r, 14, A, 2, "x", 10),
        rel(&mut t, 14, A, 2, "x", 10)
    );
    assert_eq!(handoff(&mut r, 15, "y", 13), handoff(&mut t, 15, "y", 13));
    assert_eq!(r.state_hash(), t.state_hash());
    assert_ne!(r.state_hash(), LockTable::new().state_hash());
}

/// Snapshots come from the network: garbage, a truncated snapshot or an
/// unknown version is a typed error, never a panic.
#[test]
fn restore_rejects_garbage_without_panicking() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    acq(&mut t, 11, B, 1, "x", true);
    let bytes = t.encode_snapshot();
    assert!(matches!(LockTable::restore(&[]), Err(DecodeError::Empty)));
    let mut wrong = bytes.clone();
    wrong[0] = SNAPSHOT_VERSION + 1;
    let err = LockTable::restore(&wrong);
    assert!(matches!(err, Err(DecodeError::Version(v)) if v == SNAPSHOT_VERSION + 1));
    for cut in 1..bytes.len() {
        assert!(
            LockTable::restore(&bytes[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        LockTable::restore(&trailing),
        Err(DecodeError::Malformed(_))
    ));
    // Every single-byte corruption either fails or restores a table that
    // passes the consistency check; pseudo-random junk never panics.
    for at in 1..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0xff;
        let _ = LockTable::restore(&bad);
    }
    let mut x: u32 = 12345;
    for len in 0..400 {
        let mut junk = vec![SNAPSHOT_VERSION];
        for _ in 0..len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            junk.push((x >> 16) as u8);
        }
        let _ = LockTable::restore(&junk);
    }
    // A huge claimed length is refused without allocating it.
    let huge = [
        SNAPSHOT_VERSION,
        0xfd,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0x7f,
    ];
    assert!(LockTable::restore(&huge).is_err());
}

/// Restore re-checks what serde cannot: valid lock names, and sessions and
/// locks that agree on every grant and waiter.
#[test]
fn restore_rejects_an_inconsistent_table() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    acq(&mut t, 11, B, 1, "x", true);
    let broken: [fn(&mut LockTable); 5] = [
        |t| {
            let l = t.locks.remove(&name("x")).unwrap();
            // Serde does not validate lock names: only restore does.
            let empty: LockName =
                bincode::serde::decode_from_slice(&[0], bincode::config::standard())
                    .unwrap()
                    .0;
            t.locks.insert(empty, l);
        },
        |t| {
            t.sessions.remove(&B);
        },
        // A waiter its session does not know of. (A waiter queued twice
        // cannot be built in memory any more; its bytes fail to decode,
        // see `lock::tests`.)
        |t| {
            t.locks
                .get_mut(&name("x"))
                .unwrap()
                .waiters
                .push_back((C, RequestId(1)));
        },
        |t| {
            t.sessions.get_mut(&C).unwrap().held.insert(
                RequestId(9),
                session::Held {
                    ask: session::Ask::Lock(name("y")),
                    token: FencingToken(4),
                },
            );
        },
        |t| {
            t.locks.insert(name("y"), lock::Lock::default());
        },
    ];
    for (n, f) in broken.iter().enumerate() {
        let mut bad = t.clone();
        f(&mut bad);
        let err = LockTable::restore(&bad.encode_snapshot());
        assert!(
            matches!(err, Err(DecodeError::Malformed(_))),
            "case {n}: {err:?}"
        );
    }
}

/// Every node applies every committed entry once: re-applying an entry at
/// or below the applied index is a no-op.
#[test]
fn reapplying_an_old_index_is_a_no_op() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    let before = t.clone();
    assert!(acq(&mut t, 10, B, 1, "x", true).is_empty());
    assert!(acq(&mut t, 5, B, 1, "x", true).is_empty());
    assert!(expire(&mut t, 9, A, true).is_empty());
    assert_eq!(t, before);
}

/// Log entries decode only from well-formed, versioned bytes.
#[test]
fn command_decoding_refuses_bad_bytes() {
    let cmd = Command::Acquire {
        key: key(A, 1),
        lock: name("x"),
        wait: true,
    };
    let bytes = cmd.encode();
    assert_eq!(Command::decode(&bytes).unwrap(), cmd);
    assert!(matches!(Command::decode(&[]), Err(DecodeError::Empty)));
    assert!(matches!(
        Command::decode(&[7, 1, 2]),
        Err(DecodeError::Version(7))
    ));
    for cut in 1..bytes.len() {
        assert!(Command::decode(&bytes[..cut]).is_err());
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(Command::decode(&trailing).is_err());
}
