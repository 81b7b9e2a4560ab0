//! The clients' semaphores, read-write locks and multi-locks (issue 11): a
//! client asks for one set of claims with `acquire_claims_timeout` or
//! `try_acquire_claims`, and holding the grant it probes `is_held()` and
//! writes with its token to the fenced resource of every name it holds
//! exclusively; then releases, or drops the grant.
//!
//! The claims' names are their own ([`SEMAPHORE`], [`RW_LOCK`], [`MULTI`]),
//! apart from the mutex clients' locks: a name's kind is fixed while it is
//! in use, so a mutex acquire on a semaphore would only be refused. A
//! multi-lock takes two or three of [`MULTI`], sometimes with the write
//! lock, so multi-locks overlap one another and the write lock's readers.
//!
//! Recorded as a `Claims` call (the event's lock is a label naming the
//! claims; the checks read the claims themselves), `ClaimsHeld` probes and
//! `Write`s per name, and a `ReleaseGrant`.

use std::time::Duration;

use super::history::{Call, EventKind, Outcome};
use super::workload::Client;
use crate::client::Grant;
use crate::machine::{Claim, ClaimKind};
use crate::types::LockName;

/// The semaphore, of [`PERMITS`] permits.
pub(crate) const SEMAPHORE: &str = "sem";
/// The semaphore's count: requests take 1 to 3 of it.
pub(crate) const PERMITS: u32 = 3;
/// The read-write lock.
pub(crate) const RW_LOCK: &str = "rw";
/// The names multi-locks take.
pub(crate) const MULTI: [&str; 3] = ["m1", "m2", "m3"];

fn name(n: &str) -> Option<LockName> {
    LockName::new(n).ok()
}

impl Client {
    /// Draws what to ask for: permits, a read or write lock, or a
    /// multi-lock.
    fn pick_claims(&mut self) -> Vec<Claim> {
        let mut claims = Vec::new();
        match self.rng.below(10) {
            0..=3 => {
                let n = match self.rng.below(10) {
                    0..=5 => 1,
                    6..=8 => 2,
                    _ => PERMITS,
                };
                claims.extend(name(SEMAPHORE).map(|s| Claim::permits(s, n, PERMITS)));
            }
            4..=6 => {
                let rw = name(RW_LOCK);
                if self.rng.chance(700) {
                    claims.extend(rw.map(Claim::shared));
                } else {
                    claims.extend(rw.map(Claim::exclusive));
                }
            }
            _ => {
                // Two or three of the names, drawn without repeats.
                let mut names: Vec<&str> = MULTI.to_vec();
                let skip = self.rng.below(4) as usize;
                if skip < names.len() {
                    names.remove(skip);
                }
                if self.rng.chance(250) {
                    names.push(RW_LOCK);
                }
                claims.extend(names.into_iter().filter_map(name).map(Claim::exclusive));
            }
        }
        claims
    }

    /// One claims acquire (waiting with a timeout, or a try), recorded;
    /// holds the grant if granted.
    pub(super) async fn claims(&mut self) {
        let claims = self.pick_claims();
        let label = claims
            .iter()
            .map(|c| c.lock.as_str())
            .collect::<Vec<_>>()
            .join("+");
        let wait = self.rng.chance(700);
        let call = Call::Claims {
            claims: claims.clone(),
            wait,
        };
        let op = self.invoke(&label, call);
        let got = if wait {
            let d = Duration::from_millis(self.rng.between(200, 3_000));
            self.handle
                .acquire_claims_timeout(claims, d)
                .await
                .map(Some)
        } else {
            self.handle.try_acquire_claims(claims).await
        };
        self.gate().await;
        match got {
            Ok(Some(g)) => {
                let token = super::token_index(g.token().get());
                self.complete(&label, op, Outcome::Granted { token });
                self.hold_claims(&label, g, token).await;
            }
            Ok(None) => self.complete(&label, op, Outcome::Busy),
            Err(e) => self.complete(
                &label,
                op,
                Outcome::Failed {
                    error: e.to_string(),
                },
            ),
        }
    }

    /// Holds `g`: probe, write where exclusive, and release (or drop it).
    async fn hold_claims(&mut self, label: &str, g: Grant, token: u64) {
        self.shared.holding.lock().insert(self.process, self.node);
        let exclusive: Vec<String> = g
            .claims()
            .iter()
            .filter(|c| c.kind == ClaimKind::Exclusive)
            .map(|c| c.lock.as_str().to_owned())
            .collect();
        let rounds = if self.rng.chance(150) {
            self.rng.between(20, 100)
        } else {
            self.rng.between(1, 8)
        };
        for _ in 0..rounds {
            let held = g.is_held();
            self.record(label, EventKind::ClaimsHeld { token, held });
            if !held {
                break;
            }
            // A pause may fall between the probe and the writes.
            self.sleep_ms(0, 50).await;
            for n in &exclusive {
                self.write(n, token);
            }
            self.sleep_ms(1, 10).await;
        }
        self.shared.holding.lock().remove(&self.process);
        if self.rng.chance(850) {
            let op = self.invoke(label, Call::ReleaseGrant { token });
            let out = g.release().await;
            self.gate().await;
            let outcome = match out {
                Ok(true) => Outcome::Released,
                Ok(false) => Outcome::NotHeld,
                Err(e) => Outcome::Failed {
                    error: e.to_string(),
                },
            };
            self.complete(label, op, outcome);
        } else {
            drop(g); // released in the background
        }
    }
}
