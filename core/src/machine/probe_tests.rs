//! A fixed mutex workload for instruction counts (callgrind) of the mutex
//! path, the same loops as `benches/machine.rs`'s uncontended and
//! contended cases: `PEERLOCK_PROBE=u|u1|c` picks one. Ignored by default.

use super::*;

fn k(session: u64, request: u64) -> RequestKey {
    RequestKey {
        session: SessionId(session),
        request: RequestId(request),
        floor: RequestId(request),
    }
}

fn token_of(fx: &[Effect]) -> FencingToken {
    fx.iter()
        .find_map(|e| match e {
            Effect::Reply {
                outcome: Outcome::Granted(t),
                ..
            } => Some(*t),
            _ => None,
        })
        .unwrap_or(FencingToken(0))
}

#[test]
#[ignore]
fn mutex_path_probe() {
    const N: u64 = 100_000;
    const WAITERS: u64 = 1_000;
    let mode = std::env::var("PEERLOCK_PROBE").unwrap_or_default();
    // `u1`: uncontended with one session open, as in the bench.
    let sessions = if mode == "u1" { 1 } else { WAITERS + 1 };
    let mut t = LockTable::new();
    let mut index = 0;
    for s in 1..=sessions {
        index += 1;
        let name = NodeName(format!("node-{s}"));
        let cmd = Command::OpenSession {
            session: SessionId(s),
            node: NodeId(s),
            name,
            ttl_ms: 10_000,
        };
        t.apply(index, &cmd);
    }
    let lock = LockName::new("orders/42").unwrap();
    if mode.starts_with('u') {
        for _ in 0..N {
            index += 1;
            let acquire = Command::Acquire {
                key: k(1, index),
                lock: lock.clone(),
                wait: true,
            };
            let token = token_of(&t.apply(index, &acquire));
            index += 1;
            let release = Command::Release {
                key: k(1, index),
                lock: lock.clone(),
                token,
            };
            std::hint::black_box(t.apply(index, &release));
        }
    }
    if mode == "c" {
        for s in 1..=WAITERS + 1 {
            index += 1;
            let cmd = Command::Acquire {
                key: k(s, index),
                lock: lock.clone(),
                wait: true,
            };
            t.apply(index, &cmd);
        }
        for _ in 0..N {
            let holder = t.holder(&lock).unwrap();
            let s = holder.session.0;
            index += 1;
            let release = Command::Release {
                key: k(s, index),
                lock: lock.clone(),
                token: holder.token,
            };
            std::hint::black_box(t.apply(index, &release));
            index += 1;
            let again = Command::Acquire {
                key: k(s, index),
                lock: lock.clone(),
                wait: true,
            };
            std::hint::black_box(t.apply(index, &again));
        }
    }
}
