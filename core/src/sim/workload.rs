//! The clients: each runs on one simulated node, as a task of that node's
//! "process" (frozen when it is paused, gone when it crashes), and records
//! every call it makes in the shared history.
//!
//! A client picks one of a few locks and calls `lock_timeout`, `try_lock`
//! or `holder`. Holding a lock, it probes `is_held()` and writes to the
//! lock's fenced resource, with a chance of being paused between the probe
//! and the write: exactly the window fencing exists for.
//!
//! Now and then a client campaigns in the leader election instead
//! (`workload_leader.rs`), or asks for permits of a semaphore, a read or
//! write lock, or a multi-lock (`workload_claims.rs`; issue 11).
//!
//! In mass-timeout runs a client now and then starts a burst: many waiters
//! (one-operation clients, each its own process) queue on one lock with the
//! same short timeout, so they time out together. In large-table runs a
//! [`Bulk`] holder on each node takes a few hundred locks of its own and
//! holds them until its process ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::history::{Call, EventKind, Outcome};
use super::rng::Rng;
use super::run::Workload;
use super::world::Shared;
use crate::client::{LockGuard, NodeHandle};

/// The locks clients contend for.
pub(crate) const LOCKS: [&str; 3] = ["a", "b", "c"];

pub(crate) struct Client {
    pub(crate) process: u32,
    pub(crate) node: usize,
    pub(crate) handle: NodeHandle,
    pub(crate) pause: Option<crate::raft::PauseGate>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) rng: Rng,
    pub(crate) workload: Workload,
}

impl Client {
    pub(super) fn record(&self, lock: &str, kind: EventKind) {
        let at = self.shared.now();
        self.shared
            .history
            .lock()
            .push(at, self.process, lock, kind);
    }

    pub(super) fn invoke(&self, lock: &str, call: Call) -> u64 {
        let op = self.shared.next_op.fetch_add(1, Ordering::Relaxed);
        self.record(lock, EventKind::Invoke { op, call });
        op
    }

    pub(super) fn complete(&self, lock: &str, op: u64, outcome: Outcome) {
        self.record(lock, EventKind::Complete { op, outcome });
    }

    /// Waits while this client's node is paused.
    pub(super) async fn gate(&mut self) {
        if let Some(p) = &self.pause {
            p.wait_until(false).await;
        }
    }

    pub(super) async fn sleep_ms(&mut self, lo: u64, hi: u64) {
        let ms = self.rng.between(lo, hi);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.gate().await;
    }

    pub(crate) async fn run(mut self) {
        while !self.shared.stop.load(Ordering::Relaxed) {
            self.gate().await;
            let lock = *self.rng.pick(&LOCKS).unwrap_or(&"a");
            if self.workload == Workload::MassTimeouts && self.rng.chance(8) {
                self.burst(lock).await;
                continue;
            }
            let dice = self.rng.below(100);
            if dice >= 80 {
                self.claims().await;
            } else if dice >= 70 {
                self.campaign().await;
            } else if dice < 40 {
                let wait = Duration::from_millis(self.rng.between(200, 3_000));
                self.acquire(lock, wait).await;
            } else if dice < 58 {
                let op = self.invoke(lock, Call::TryAcquire);
                let got = self.handle.try_lock(lock).await;
                self.gate().await;
                match got {
                    Ok(Some(g)) => {
                        let token = super::token_index(g.token().get());
                        self.complete(lock, op, Outcome::Granted { token });
                        self.hold(lock, g).await;
                    }
                    Ok(None) => self.complete(lock, op, Outcome::Busy),
                    Err(e) => self.complete(
                        lock,
                        op,
                        Outcome::Failed {
                            error: e.to_string(),
                        },
                    ),
                }
            } else {
                let op = self.invoke(lock, Call::Holder);
                let got = self.handle.holder(lock).await;
                self.gate().await;
                let outcome = match got {
                    Ok(info) => Outcome::Holder {
                        token: info.map(|i| super::token_index(i.token.get())),
                    },
                    Err(e) => Outcome::Failed {
                        error: e.to_string(),
                    },
                };
                self.complete(lock, op, outcome);
            }
            self.sleep_ms(0, 30).await;
        }
    }

    /// One `lock_timeout`, recorded; holds the lock if granted.
    async fn acquire(&mut self, lock: &str, wait: Duration) {
        let op = self.invoke(lock, Call::Acquire);
        let got = self.handle.lock_timeout(lock, wait).await;
        self.gate().await;
        match got {
            Ok(g) => {
                let token = super::token_index(g.token().get());
                self.complete(lock, op, Outcome::Granted { token });
                self.hold(lock, g).await;
            }
            Err(e) => self.complete(
                lock,
                op,
                Outcome::Failed {
                    error: e.to_string(),
                },
            ),
        }
    }

    /// Many waiters on `lock` with one short timeout, each a process of
    /// its own, all queued at once so their timeouts expire together (the
    /// queue's removal of many waiters in one tick, on every node). Ends
    /// when all have ended; a crash of this process ends them with it.
    async fn burst(&mut self, lock: &'static str) {
        let n = self.rng.between(20, 80);
        let wait = Duration::from_millis(self.rng.between(50, 400));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let mut one = Client {
                process: self.shared.extra_process(),
                node: self.node,
                handle: self.handle.clone(),
                pause: self.pause.clone(),
                shared: self.shared.clone(),
                rng: self.rng.fork(),
                workload: Workload::Mixed,
            };
            set.spawn(async move { one.acquire(lock, wait).await });
        }
        while set.join_next().await.is_some() {}
    }

    /// Holds `g` for a while: probe, write, and release (or drop it).
    async fn hold(&mut self, lock: &str, g: LockGuard) {
        let token = super::token_index(g.token().get());
        self.shared.holding.lock().insert(self.process, self.node);
        // Mostly short holds; some long ones, which faults are likelier to
        // land in the middle of.
        let rounds = if self.rng.chance(150) {
            self.rng.between(20, 100)
        } else {
            self.rng.between(1, 8)
        };
        for _ in 0..rounds {
            let held = g.is_held();
            self.record(lock, EventKind::Held { token, held });
            if !held {
                break;
            }
            // A pause may fall between the probe and the write: the
            // window fencing exists for.
            self.sleep_ms(0, 50).await;
            self.write(lock, token);
            self.sleep_ms(1, 10).await;
        }
        self.shared.holding.lock().remove(&self.process);
        if self.rng.chance(850) {
            let op = self.invoke(lock, Call::Release { token });
            let out = g.release().await;
            self.gate().await;
            let outcome = match out {
                Ok(true) => Outcome::Released,
                Ok(false) => Outcome::NotHeld,
                Err(e) => Outcome::Failed {
                    error: e.to_string(),
                },
            };
            self.complete(lock, op, outcome);
        } else {
            // Dropped: released in the background, outcome unknown.
            drop(g);
        }
    }

    /// Writes to the lock's fenced resource with `token`.
    pub(super) fn write(&self, lock: &str, token: u64) {
        let accepted = {
            let mut res = self.shared.resources.lock();
            let top = res.entry(lock.to_owned()).or_insert(0);
            if token >= *top {
                *top = token;
                true
            } else {
                false
            }
        };
        self.record(lock, EventKind::Write { token, accepted });
    }
}

/// A large-table run's holder of many locks on one node: takes `count`
/// locks of its own (each acquire recorded as a process of its own) and
/// holds them until its process ends, so the table and every snapshot
/// carry them, and a crash, suspend or shutdown of the node ends them all
/// at once.
pub(crate) struct Bulk {
    pub(crate) node: usize,
    pub(crate) handle: NodeHandle,
    pub(crate) pause: Option<crate::raft::PauseGate>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) count: usize,
}

impl Bulk {
    pub(crate) async fn run(self) {
        if let Some(p) = &self.pause {
            p.wait_until(false).await;
        }
        let mut set = tokio::task::JoinSet::new();
        for k in 0..self.count {
            let name = format!("bulk/{}/{k}", self.node);
            let process = self.shared.extra_process();
            let handle = self.handle.clone();
            let shared = self.shared.clone();
            set.spawn(async move {
                let record = |kind: EventKind| {
                    let at = shared.now();
                    shared.history.lock().push(at, process, &name, kind);
                };
                let op = shared.next_op.fetch_add(1, Ordering::Relaxed);
                record(EventKind::Invoke {
                    op,
                    call: Call::TryAcquire,
                });
                let got = handle.try_lock(&name).await;
                let (outcome, guard) = match got {
                    Ok(Some(g)) => (
                        Outcome::Granted {
                            token: super::token_index(g.token().get()),
                        },
                        Some(g),
                    ),
                    Ok(None) => (Outcome::Busy, None),
                    Err(e) => (
                        Outcome::Failed {
                            error: e.to_string(),
                        },
                        None,
                    ),
                };
                record(EventKind::Complete { op, outcome });
                guard
            });
        }
        let mut held = Vec::with_capacity(self.count);
        while let Some(r) = set.join_next().await {
            if let Ok(Some(g)) = r {
                held.push(g);
            }
        }
        // Held until this process ends (a crash or the run's end).
        std::future::pending::<()>().await;
        drop(held);
    }
}
