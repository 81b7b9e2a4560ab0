//! The clients: each runs on one simulated node, as a task of that node's
//! "process" (frozen when it is paused, gone when it crashes), and records
//! every call it makes in the shared history.
//!
//! A client picks one of a few locks and calls `lock_timeout`, `try_lock`
//! or `holder`. Holding a lock, it probes `is_held()` and writes to the
//! lock's fenced resource, with a chance of being paused between the probe
//! and the write: exactly the window fencing exists for.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::history::{Call, EventKind, Outcome};
use super::rng::Rng;
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
}

impl Client {
    fn record(&self, lock: &str, kind: EventKind) {
        let at = self.shared.now();
        self.shared
            .history
            .lock()
            .push(at, self.process, lock, kind);
    }

    fn invoke(&self, lock: &str, call: Call) -> u64 {
        let op = self.shared.next_op.fetch_add(1, Ordering::Relaxed);
        self.record(lock, EventKind::Invoke { op, call });
        op
    }

    fn complete(&self, lock: &str, op: u64, outcome: Outcome) {
        self.record(lock, EventKind::Complete { op, outcome });
    }

    /// Waits while this client's node is paused.
    async fn gate(&mut self) {
        if let Some(p) = &self.pause {
            p.wait_until(false).await;
        }
    }

    async fn sleep_ms(&mut self, lo: u64, hi: u64) {
        let ms = self.rng.between(lo, hi);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.gate().await;
    }

    pub(crate) async fn run(mut self) {
        while !self.shared.stop.load(Ordering::Relaxed) {
            self.gate().await;
            let lock = *self.rng.pick(&LOCKS).unwrap_or(&"a");
            let dice = self.rng.below(100);
            if dice < 55 {
                let wait = Duration::from_millis(self.rng.between(200, 3_000));
                let op = self.invoke(lock, Call::Acquire);
                let got = self.handle.lock_timeout(lock, wait).await;
                self.gate().await;
                match got {
                    Ok(g) => {
                        let token = g.token().get();
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
            } else if dice < 80 {
                let op = self.invoke(lock, Call::TryAcquire);
                let got = self.handle.try_lock(lock).await;
                self.gate().await;
                match got {
                    Ok(Some(g)) => {
                        let token = g.token().get();
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
                        token: info.map(|i| i.token.get()),
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

    /// Holds `g` for a while: probe, write, and release (or drop it).
    async fn hold(&mut self, lock: &str, g: LockGuard) {
        let token = g.token().get();
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
    fn write(&self, lock: &str, token: u64) {
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
