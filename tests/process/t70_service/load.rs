//! t70's load: workers depositing to the live services, retrying a key on
//! another service after a failure, and what they sent.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;

use super::svc::post;
use super::{ACCOUNTS, REQUEST};

/// One deposit the test sent, under one idempotency key.
pub(super) struct Sent {
    pub(super) key: String,
    pub(super) account: String,
    pub(super) amount: i64,
    pub(super) acked: bool,
    pub(super) refused: bool,
}

#[derive(Default)]
pub(super) struct Tally {
    pub(super) requests: AtomicUsize,
    pub(super) duplicates: AtomicUsize,
    pub(super) conflicts: AtomicUsize,
}

/// Which services the workers send to, and how many requests each has in
/// flight (so the one about to be paused can be drained first).
pub(super) struct Targets {
    pub(super) live: Mutex<Vec<usize>>,
    pub(super) inflight: [AtomicUsize; 3],
}

impl Targets {
    pub(super) fn pick(&self, n: usize) -> Option<usize> {
        let live = self.live.lock();
        let t = *live.get(n % live.len().max(1))?;
        self.inflight[t].fetch_add(1, Ordering::SeqCst);
        Some(t)
    }
    pub(super) fn remove(&self, t: usize) {
        self.live.lock().retain(|&x| x != t);
    }
    pub(super) async fn drain(&self, t: usize) {
        self.remove(t);
        let deadline = Instant::now() + REQUEST + Duration::from_secs(5);
        while self.inflight[t].load(Ordering::SeqCst) > 0 {
            assert!(Instant::now() < deadline, "requests to {t} never finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn worker(
    w: usize,
    prefix: String,
    bases: Arc<Vec<String>>,
    http: reqwest::Client,
    targets: Arc<Targets>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 0..5_000usize {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        let account = format!("{prefix}-acct-{}", (w + n) % ACCOUNTS);
        let key = format!("{prefix}-w{w}-{n}");
        let amount = 1 + ((w * 7 + n * 13) % 100) as i64;
        let mut s = Sent {
            key,
            account,
            amount,
            acked: false,
            refused: false,
        };
        // The same key up to three times, on other services after a
        // failure: a retry must never apply twice.
        for attempt in 0..3 {
            let Some(t) = targets.pick(w + n + attempt) else {
                break;
            };
            tally.requests.fetch_add(1, Ordering::SeqCst);
            let path = format!("/accounts/{}/deposit", s.account);
            let body = json!({"amount": s.amount, "key": s.key});
            let (code, v) = post(&http, &bases[t], &path, body).await;
            targets.inflight[t].fetch_sub(1, Ordering::SeqCst);
            match code {
                200 => {
                    s.acked = true;
                    if v["outcome"] == "duplicate" {
                        tally.duplicates.fetch_add(1, Ordering::SeqCst);
                    }
                    break;
                }
                409 => {
                    tally.conflicts.fetch_add(1, Ordering::SeqCst);
                    // A first attempt refused was not applied; a retry's
                    // refusal says nothing of the attempts before it.
                    s.refused = attempt == 0;
                    break;
                }
                400 | 404 | 422 => panic!("deposit {} refused as invalid: {code} {v}", s.key),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        sent.push(s);
    }
    sent
}
