//! A lock-table snapshot from arbitrary bytes (it arrives from the leader
//! over the network, or from disk).
//!
//! - `LockTable::restore` returns a typed `DecodeError` or a table; never a
//!   panic, never an allocation the bytes do not pay for.
//! - A restored table's own snapshot restores to the same state (same
//!   `state_hash`).
//! - `restore` only accepts tables `apply` can work on: applying commands
//!   that touch the restored sessions and locks (acquire, release, cancel,
//!   expiry, handoff, close) never panics, and every table reached that way
//!   snapshots and restores again with the same hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerlock_core::machine::{Command, LockTable, RequestKey};
use peerlock_core::{LockName, RequestId};

fn round_trip(table: &LockTable, step: &str) {
    let bytes = table.encode_snapshot();
    let back = LockTable::restore(&bytes)
        .unwrap_or_else(|e| panic!("a table's own snapshot must restore ({step}): {e}"));
    assert_eq!(back.state_hash(), table.state_hash(), "{step}");
    assert_eq!(back.applied_index(), table.applied_index(), "{step}");
}

/// Commands aimed at what the restored table holds.
fn commands(table: &LockTable) -> Vec<Command> {
    let mut cmds = Vec::new();
    let sessions = table.sessions();
    let handoffs = table.pending_handoffs();
    let spare = LockName::new("fuzz/spare").ok();
    if let Some(s) = sessions.first() {
        let held = table.locks_of(s.session);
        let lock = held
            .first()
            .map(|(n, _)| n.clone())
            .or_else(|| handoffs.first().map(|h| h.lock.clone()))
            .or_else(|| spare.clone());
        let key = |n: u64| RequestKey {
            session: s.session,
            request: RequestId(u64::MAX / 2 + n),
            floor: RequestId(0),
        };
        if let Some(lock) = lock {
            cmds.push(Command::Acquire {
                key: key(0),
                lock,
                wait: true,
            });
        }
        for (i, (lock, token)) in (1..).zip(held) {
            cmds.push(Command::Release {
                key: key(i),
                lock,
                token,
            });
        }
        cmds.push(Command::Cancel {
            key: key(1000),
            target: RequestId(u64::MAX / 2),
        });
        cmds.push(Command::ExpireSession {
            session: s.session,
            lock_delay: true,
        });
    }
    for s in sessions.iter().skip(1) {
        for (i, (lock, _)) in (0..).zip(table.locks_of(s.session)) {
            cmds.push(Command::Acquire {
                key: RequestKey {
                    session: s.session,
                    request: RequestId(u64::MAX / 2 + i),
                    floor: RequestId(0),
                },
                lock,
                wait: false,
            });
        }
        cmds.push(Command::CloseSession { session: s.session });
    }
    cmds
}

fuzz_target!(|data: &[u8]| {
    // A typed error is a fine answer to garbage.
    let Ok(mut table) = LockTable::restore(data) else {
        return;
    };
    round_trip(&table, "restored");
    let mut index = table.applied_index();
    for cmd in commands(&table) {
        let Some(i) = index.checked_add(1) else {
            return;
        };
        index = i;
        table.apply(index, &cmd);
        round_trip(&table, &format!("after {cmd:?}"));
        // Hand off whatever the command freed, as the leader would.
        for h in table.pending_handoffs() {
            let Some(i) = index.checked_add(1) else {
                return;
            };
            index = i;
            let cmd = Command::Handoff {
                lock: h.lock,
                freed_at: h.freed_at,
            };
            table.apply(index, &cmd);
            round_trip(&table, &format!("after {cmd:?}"));
        }
    }
});
