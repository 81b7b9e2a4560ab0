//! Encode and restore times of large lock tables (issue 8, item 5): a long
//! run that prints figures, outside the pure state machine's folder (which
//! must not read a clock).
//!
//! `cargo test --release -p peerlock-core --test snapshot_codec -- --ignored --nocapture`

use std::time::Instant;

use peerlock_core::machine::{Command, LockTable, RequestKey};
use peerlock_core::types::{LockName, NodeId, NodeName, RequestId, SessionId};

#[test]
#[ignore = "long run: prints figures"]
fn stress_snapshot_codec_times() {
    for (count, len) in [(1_000_000usize, 8usize), (150_000, 250)] {
        let mut t = LockTable::new();
        let session = SessionId(1);
        t.apply(
            1,
            &Command::OpenSession {
                session,
                node: NodeId(1),
                name: NodeName("a".into()),
                ttl_ms: 10_000,
            },
        );
        for n in 0..count {
            let r = RequestId(n as u64 + 1);
            let key = RequestKey {
                session,
                request: r,
                floor: r,
            };
            let lock = LockName::new(&format!("{n:0>len$}")).unwrap();
            t.apply(
                n as u64 + 2,
                &Command::Acquire {
                    key,
                    lock,
                    wait: false,
                },
            );
        }
        let at = Instant::now();
        let bytes = t.encode_snapshot();
        let encode = at.elapsed();
        let at = Instant::now();
        let r = LockTable::restore(&bytes).unwrap();
        let restore = at.elapsed();
        assert_eq!(r.lock_count(), count);
        println!(
            "{count} locks, {len}-byte names: snapshot {} MiB, encode {encode:?}, restore {restore:?}",
            bytes.len() >> 20
        );
    }
}
