//! The lock state machine alone: no Raft, no IO. How fast every node can
//! apply committed entries, how a long FIFO queue scales, and what a
//! snapshot of a large table costs.
//!
//! Run with `cargo bench --bench machine` (CI runs `-- --test`, one pass).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use peerlock_core::machine::{Command, Effect, LockTable, Outcome, RequestKey};
use peerlock_core::{FencingToken, LockName, NodeId, NodeName, RequestId, SessionId};

/// Sessions 1..=n opened at indexes 1..=n.
fn table_with_sessions(n: u64) -> LockTable {
    let mut t = LockTable::new();
    for s in 1..=n {
        let cmd = Command::OpenSession {
            session: SessionId(s),
            node: NodeId(s),
            name: NodeName(format!("node-{s}")),
            ttl_ms: 10_000,
        };
        t.apply(s, &cmd);
    }
    t
}

/// A request whose floor is itself: the session has every earlier answer,
/// so the table keeps one outcome per session, as in a healthy cluster.
fn key(session: u64, request: u64) -> RequestKey {
    RequestKey {
        session: SessionId(session),
        request: RequestId(request),
        floor: RequestId(request),
    }
}

fn granted_token(fx: &[Effect]) -> Option<FencingToken> {
    fx.iter().find_map(|e| match e {
        Effect::Reply {
            outcome: Outcome::Granted(t),
            ..
        } => Some(*t),
        _ => None,
    })
}

/// One session takes and releases a free lock: two entries per iteration.
fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(2));
    let lock = LockName::new("orders/42").expect("valid name");
    let mut t = table_with_sessions(1);
    let mut index = t.applied_index();
    g.bench_function("uncontended_acquire_release", |b| {
        b.iter(|| {
            index += 1;
            let acquire = Command::Acquire {
                key: key(1, index),
                lock: lock.clone(),
                wait: true,
            };
            let token = granted_token(&t.apply(index, &acquire)).unwrap_or(FencingToken(0));
            index += 1;
            let release = Command::Release {
                key: key(1, index),
                lock: lock.clone(),
                token,
            };
            black_box(t.apply(index, &release));
        })
    });
    g.finish();
}

/// A lock with 1,000 queued sessions: each iteration the holder releases
/// (granting the head of the queue) and queues again at the back, so the
/// queue stays 1,000 long.
fn contended(c: &mut Criterion) {
    const WAITERS: u64 = 1_000;
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(2));
    let lock = LockName::new("hot").expect("valid name");
    let mut t = table_with_sessions(WAITERS + 1);
    let mut index = t.applied_index();
    for s in 1..=WAITERS + 1 {
        index += 1;
        let cmd = Command::Acquire {
            key: key(s, index),
            lock: lock.clone(),
            wait: true,
        };
        t.apply(index, &cmd);
    }
    assert_eq!(t.holder(&lock).map(|h| h.waiters), Some(WAITERS as usize));
    g.bench_function("release_grants_next_of_1000_waiters", |b| {
        b.iter(|| {
            let Some(holder) = t.holder(&lock) else {
                return;
            };
            let s = holder.session.0;
            index += 1;
            let release = Command::Release {
                key: key(s, index),
                lock: lock.clone(),
                token: holder.token,
            };
            black_box(t.apply(index, &release));
            index += 1;
            let again = Command::Acquire {
                key: key(s, index),
                lock: lock.clone(),
                wait: true,
            };
            black_box(t.apply(index, &again));
        })
    });
    g.finish();
}

/// n waiters on one held lock all give up together (issue 8 item 10): the
/// first half cancel their acquire (their `lock_timeout` ran out), the
/// rest expire with their session. Throughput is per waiter, so a flat
/// time per element across sizes is the O(n) (here O(n log n)) curve the
/// issue asks for; a queue searched linearly doubles it with each doubling.
fn mass_timeout(c: &mut Criterion) {
    let mut g = c.benchmark_group("mass_timeout");
    for n in [1_000u64, 10_000, 20_000] {
        let lock = LockName::new("hot").expect("valid name");
        let mut t = table_with_sessions(n + 1);
        let mut index = t.applied_index();
        for s in 1..=n + 1 {
            index += 1;
            let cmd = Command::Acquire {
                key: key(s, 1),
                lock: lock.clone(),
                wait: true,
            };
            t.apply(index, &cmd);
        }
        assert_eq!(t.holder(&lock).map(|h| h.waiters), Some(n as usize));
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("waiters", n), &n, |b, &n| {
            b.iter_batched(
                || t.clone(),
                |mut t| {
                    let mut i = index;
                    for s in 2..=n + 1 {
                        i += 1;
                        let cmd = if s <= n / 2 + 1 {
                            Command::Cancel {
                                key: key(s, 2),
                                target: RequestId(1),
                            }
                        } else {
                            Command::ExpireSession {
                                session: SessionId(s),
                                lock_delay: true,
                            }
                        };
                        black_box(t.apply(i, &cmd));
                    }
                    assert_eq!(t.holder(&lock).map(|h| h.waiters), Some(0));
                    t
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// 100 sessions holding 10,000 locks, each lock with one waiter.
fn big_table() -> LockTable {
    const SESSIONS: u64 = 100;
    const LOCKS: u64 = 10_000;
    let mut t = table_with_sessions(SESSIONS);
    let mut index = t.applied_index();
    for l in 0..LOCKS {
        let lock = LockName::new(&format!("tenant-{}/account-{l}", l % 37)).expect("valid name");
        for s in [l % SESSIONS + 1, (l + 1) % SESSIONS + 1] {
            index += 1;
            let cmd = Command::Acquire {
                key: key(s, index),
                lock: lock.clone(),
                wait: true,
            };
            t.apply(index, &cmd);
        }
    }
    assert_eq!(t.lock_count(), LOCKS as usize);
    t
}

fn snapshot(c: &mut Criterion) {
    let t = big_table();
    let bytes = t.encode_snapshot();
    let mut g = c.benchmark_group("snapshot_10k_locks");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(t.encode_snapshot())));
    g.bench_function("restore", |b| {
        b.iter(|| black_box(LockTable::restore(&bytes)))
    });
    g.bench_function("state_hash", |b| b.iter(|| black_box(t.state_hash())));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = uncontended, contended, mass_timeout, snapshot
}
criterion_main!(benches);
