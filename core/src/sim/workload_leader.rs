//! The clients' leader election (issue 11, item 1): a client campaigns on
//! [`ELECTION`], and while it leads it probes `is_leader()`, watches
//! `lost()`, and writes to the election's fenced resource with its term's
//! token; then it resigns, or drops the term (released in the background),
//! or its node is paused, cut off or crashed meanwhile by the nemesis,
//! which picks nodes whose clients hold something.
//!
//! A campaign is a mutex acquire of the election's name, so it is recorded
//! as one (`Call::Acquire` on [`ELECTION`]) and S1, S2, S3, S5, S6 and S7
//! judge it; the probes are `Leader` events, which L1 judges
//! (`check/leader_once.rs`).

use std::time::Duration;

use super::history::{Call, EventKind, Outcome};
use super::workload::Client;
use crate::client::Leadership;

/// The election the clients campaign in (a name no other client uses).
pub(crate) const ELECTION: &str = "lead";

impl Client {
    /// One `campaign_timeout`, recorded; leads for a while if elected.
    pub(super) async fn campaign(&mut self) {
        let wait = Duration::from_millis(self.rng.between(200, 3_000));
        let op = self.invoke(ELECTION, Call::Acquire);
        let got = self.handle.campaign_timeout(ELECTION, wait).await;
        self.gate().await;
        match got {
            Ok(l) => {
                let token = super::token_index(l.token().get());
                self.complete(ELECTION, op, Outcome::Granted { token });
                self.lead(l, token).await;
            }
            Err(e) => self.complete(
                ELECTION,
                op,
                Outcome::Failed {
                    error: e.to_string(),
                },
            ),
        }
    }

    /// Leads: probe `is_leader()`, wait (watching `lost()`), write; then
    /// resign or drop the term.
    async fn lead(&mut self, l: Leadership, token: u64) {
        self.shared.holding.lock().insert(self.process, self.node);
        let rounds = if self.rng.chance(200) {
            self.rng.between(20, 100)
        } else {
            self.rng.between(2, 10)
        };
        for _ in 0..rounds {
            let leader = l.is_leader();
            self.record(ELECTION, EventKind::Leader { token, leader });
            if !leader {
                break;
            }
            let nap = Duration::from_millis(self.rng.between(0, 60));
            let lost = tokio::select! {
                biased;
                () = l.lost() => true,
                () = tokio::time::sleep(nap) => false,
            };
            if lost {
                // Told of the loss: from now on `is_leader()` must say no
                // (L1 reports a `true` after this `false`).
                self.record(
                    ELECTION,
                    EventKind::Leader {
                        token,
                        leader: false,
                    },
                );
                continue;
            }
            // A pause may fall between the probe and the write.
            self.gate().await;
            self.write(ELECTION, token);
            self.sleep_ms(1, 10).await;
        }
        self.shared.holding.lock().remove(&self.process);
        if self.rng.chance(850) {
            let op = self.invoke(ELECTION, Call::Release { token });
            let out = l.resign().await;
            self.gate().await;
            let outcome = match out {
                Ok(()) => Outcome::Resigned,
                Err(e) => Outcome::Failed {
                    error: e.to_string(),
                },
            };
            self.complete(ELECTION, op, outcome);
        } else {
            drop(l); // released in the background
        }
    }
}
