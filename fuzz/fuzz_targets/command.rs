//! A log entry's command from arbitrary bytes (entries come from the
//! leader, and from disk).
//!
//! `Command::decode` returns a typed `DecodeError` or a command, never a
//! panic; a command that decodes encodes to bytes that decode to the same
//! command, and it applies to an empty table without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerlock_core::machine::{Command, LockTable};

fuzz_target!(|data: &[u8]| {
    let Ok(cmd) = Command::decode(data) else {
        return;
    };
    let again = cmd.encode();
    assert_eq!(
        Command::decode(&again).expect("a decoded command re-decodes"),
        cmd
    );
    let mut table = LockTable::new();
    table.apply(1, &cmd);
    let _ = LockTable::restore(&table.encode_snapshot()).expect("the table restores");
});
