//! Client operations on node processes, recorded into a [`History`] for the
//! checker, and the contention workload the fault tests share.
//!
//! Every operation is stamped on the test process's one monotonic clock
//! (`Instant` offsets from the test's start): `Invoke` before the command
//! line is written, `Complete` after its answer is read. An operation whose
//! node died or went silent gets no `Complete` (indeterminate). A `held`
//! probe is stamped when it was sent: `is_held()` ran at some point after
//! that, so a `true` is never claimed later than it was seen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use peerlock::FencingToken;
use peerlock_core::sim::check::{check, Report};
use peerlock_core::sim::history::{Call, EventKind, History, Outcome, Params};

use crate::common::Fenced;
use crate::procs::{Gone, Proc};

/// What the controller knows of one node, kept fresh by its client.
#[derive(Clone, Copy, Debug, Default)]
pub struct View {
    pub pid: u32,
    /// Its last `status` said Leader, in `term`.
    pub leader: bool,
    pub term: u64,
    /// When that status was read.
    pub seen: Option<Instant>,
    /// Its client holds a grant right now (between grant and unlock).
    pub holding: bool,
    /// Its process is up (not killed, not yet restarted).
    pub up: bool,
    /// Set by the controller: its client, once granted, stalls inside the
    /// critical section until this is cleared (a paused application).
    pub stall: bool,
    /// Its client is stalled holding a grant (see `stall`).
    pub stalled: bool,
}

struct Resource {
    fenced: Fenced,
    /// The last write's time: writes get strictly increasing times, so the
    /// merged history keeps the resource's order.
    last: Duration,
}

/// State shared by every client of one test run.
pub struct Shared {
    t0: Instant,
    next_op: AtomicU64,
    next_client: AtomicU32,
    resources: Mutex<BTreeMap<String, Resource>>,
    pub views: Mutex<Vec<View>>,
    /// Per node: `members` asked by the controller, answered by its client
    /// between operations (see [`Shared::members`]).
    probes: Mutex<Vec<MembersProbe>>,
    /// Acknowledged grants so far (all clients).
    pub grants: AtomicU64,
    pub stop: AtomicBool,
    /// The lease margin (a tenth of the TTL), see [`Client::release`].
    margin: Duration,
}

impl Shared {
    pub fn new(nodes: usize, ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            t0: Instant::now(),
            next_op: AtomicU64::new(1),
            next_client: AtomicU32::new(1),
            resources: Mutex::new(BTreeMap::new()),
            views: Mutex::new(vec![View::default(); nodes]),
            probes: Mutex::new(vec![MembersProbe::default(); nodes]),
            grants: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            margin: ttl / 10,
        })
    }

    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Writes to `lock`'s fenced resource with `token`: (accepted, at).
    fn write(&self, lock: &str, token: u64) -> (bool, Duration) {
        let mut res = self.resources.lock();
        let r = res.entry(lock.to_owned()).or_insert(Resource {
            fenced: Fenced::default(),
            last: Duration::ZERO,
        });
        let at = self.now().max(r.last + Duration::from_nanos(1));
        r.last = at;
        let accepted = r.fenced.write(FencingToken(token), token);
        (accepted, at)
    }

    /// The node whose fresh (under `fresh` old) status says Leader in the
    /// highest term, if any.
    pub fn leader(&self, fresh: Duration) -> Option<usize> {
        let views = self.views.lock();
        views
            .iter()
            .enumerate()
            .filter(|(_, v)| v.up && v.leader && v.seen.is_some_and(|s| s.elapsed() < fresh))
            .max_by_key(|(_, v)| v.term)
            .map(|(i, _)| i)
    }

    /// A node whose client holds a grant right now, if any.
    pub fn holder(&self) -> Option<usize> {
        self.views.lock().iter().position(|v| v.up && v.holding)
    }
}

/// A `members` request from the controller to one node's client.
#[derive(Clone, Debug, Default)]
struct MembersProbe {
    wanted: bool,
    /// The last answer and when its command was sent.
    answer: Option<(Instant, String)>,
}

impl Shared {
    /// Asks `members` on whichever of `nodes` has its client between
    /// operations first (a node's stdin serves one command at a time);
    /// the answer line and when its command was sent, or `None` if none
    /// answered within `timeout`.
    pub async fn members(&self, nodes: &[usize], timeout: Duration) -> Option<(Instant, String)> {
        let asked = Instant::now();
        for &i in nodes {
            self.probes.lock()[i].wanted = true;
        }
        let found = loop {
            let got = nodes.iter().find_map(|&i| {
                self.probes.lock()[i]
                    .answer
                    .clone()
                    .filter(|(sent, _)| *sent >= asked)
            });
            if got.is_some() || asked.elapsed() > timeout {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        for &i in nodes {
            self.probes.lock()[i].wanted = false;
        }
        found
    }
}

/// How an acquire is asked.
#[derive(Clone, Copy, Debug)]
pub enum Acquire {
    /// `lock NAME MS`.
    Lock(Duration),
    /// `try NAME`.
    Try,
}

/// One client: a node process and the history of the operations on it.
pub struct Client {
    pub id: u32,
    pub node: usize,
    pub proc: Proc,
    pub history: History,
    shared: Arc<Shared>,
    /// The last `held` probe: (token, answer, sent at).
    last_held: Option<(u64, bool, Duration)>,
    /// Bound on every answer (a lock's own timeout comes on top).
    pub ask_timeout: Duration,
}

impl Client {
    pub fn new(shared: &Arc<Shared>, node: usize, proc: Proc) -> Self {
        {
            let mut views = shared.views.lock();
            views[node] = View {
                pid: proc.pid(),
                up: true,
                ..View::default()
            };
        }
        Self {
            id: shared.next_client.fetch_add(1, Ordering::Relaxed),
            node,
            proc,
            history: History::default(),
            shared: Arc::clone(shared),
            last_held: None,
            ask_timeout: Duration::from_secs(20),
        }
    }

    fn push(&mut self, at: Duration, lock: &str, kind: EventKind) {
        self.history.push(at, self.id, lock, kind);
    }

    /// Runs one operation: `Invoke`, the command, then `Complete` with the
    /// outcome `parse` reads from the answer (none if the node is gone).
    async fn op(
        &mut self,
        lock: &str,
        call: Call,
        cmd: &str,
        timeout: Duration,
        parse: impl FnOnce(&str) -> Outcome,
    ) -> Result<Outcome, Gone> {
        let op = self.shared.next_op.fetch_add(1, Ordering::Relaxed);
        let at = self.shared.now();
        self.push(at, lock, EventKind::Invoke { op, call });
        let line = self.proc.try_ask(cmd, timeout).await?;
        let outcome = match line.strip_prefix("error ") {
            Some(e) => Outcome::Failed {
                error: e.to_owned(),
            },
            None => parse(&line),
        };
        let at = self.shared.now();
        self.push(
            at,
            lock,
            EventKind::Complete {
                op,
                outcome: outcome.clone(),
            },
        );
        Ok(outcome)
    }

    /// `lock`/`try`: the outcome (Granted, Busy or Failed).
    pub async fn acquire(&mut self, lock: &str, how: Acquire) -> Result<Outcome, Gone> {
        let (call, cmd, timeout) = match how {
            Acquire::Lock(t) => (
                Call::Acquire,
                format!("lock {lock} {}", t.as_millis()),
                self.ask_timeout + t,
            ),
            Acquire::Try => (Call::TryAcquire, format!("try {lock}"), self.ask_timeout),
        };
        let out = self
            .op(lock, call, &cmd, timeout, |line| {
                let w: Vec<&str> = line.split_whitespace().collect();
                match w.as_slice() {
                    ["granted", _, t] => Outcome::Granted {
                        token: t.parse().expect("token"),
                    },
                    ["busy", _] => Outcome::Busy,
                    _ => panic!("unexpected answer to {cmd}: {line:?}"),
                }
            })
            .await?;
        if matches!(out, Outcome::Granted { .. }) {
            self.shared.grants.fetch_add(1, Ordering::Relaxed);
        }
        Ok(out)
    }

    /// `held NAME` for the guard with `token`.
    pub async fn held(&mut self, lock: &str, token: u64) -> Result<bool, Gone> {
        let at = self.shared.now();
        let line = self
            .proc
            .try_ask(&format!("held {lock}"), self.ask_timeout)
            .await?;
        let held = match line.split_whitespace().nth(2) {
            Some("true") => true,
            Some("false") => false,
            _ => panic!("unexpected answer to held: {line:?}"),
        };
        self.push(at, lock, EventKind::Held { token, held });
        self.last_held = Some((token, held, at));
        Ok(held)
    }

    /// Writes to `lock`'s fenced resource with `token`; whether accepted.
    pub fn write(&mut self, lock: &str, token: u64) -> bool {
        let (accepted, at) = self.shared.write(lock, token);
        self.push(at, lock, EventKind::Write { token, accepted });
        accepted
    }

    /// `unlock NAME` of the guard with `token`.
    ///
    /// The node answers `released` both when the release freed the lock and
    /// when it found the guard no longer current (`LockGuard::unlock` is
    /// `Ok(())` either way). It is recorded as `Released` only when that is
    /// certain: the last probe before it, sent at `p`, saw `is_held()` true,
    /// and the answer came before `p + margin`. The lease held at some
    /// instant after `p`, so the leader cannot expire the session before
    /// `p + margin` (it waits a full TTL after the keepalive; the lease
    /// ends `margin` earlier): the release committed while the session
    /// still held the lock. Otherwise it is recorded as indeterminate.
    pub async fn release(&mut self, lock: &str, token: u64) -> Result<Outcome, Gone> {
        let probe = match self.last_held {
            Some((t, true, at)) if t == token => Some(at),
            _ => None,
        };
        let cmd = format!("unlock {lock}");
        let timeout = self.ask_timeout;
        let shared = Arc::clone(&self.shared);
        self.op(lock, Call::Release { token }, &cmd, timeout, |line| {
            assert!(
                line.starts_with("released "),
                "unexpected answer to unlock: {line:?}"
            );
            if probe.is_some_and(|p| shared.now() < p + shared.margin) {
                Outcome::Released
            } else {
                Outcome::Failed {
                    error: "released, but not certainly while the lease held: freed, or not the holder any more".into(),
                }
            }
        })
        .await
    }

    /// `status`: (is leader, term); also refreshes this node's view.
    pub async fn status(&mut self) -> Result<(bool, u64), Gone> {
        let line = self.proc.try_ask("status", self.ask_timeout).await?;
        let leader = line.starts_with("status Leader ");
        let term = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("term="))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let mut views = self.shared.views.lock();
        let v = &mut views[self.node];
        v.leader = leader;
        v.term = term;
        v.seen = Some(Instant::now());
        Ok((leader, term))
    }

    fn set_holding(&self, holding: bool) {
        self.shared.views.lock()[self.node].holding = holding;
    }

    /// One critical section: acquire, probe, hold a moment, write, release.
    /// The outcome of the acquire.
    pub async fn critical_section(
        &mut self,
        lock: &str,
        how: Acquire,
        hold: Duration,
    ) -> Result<Outcome, Gone> {
        let out = self.acquire(lock, how).await?;
        if let Outcome::Granted { token } = out {
            self.set_holding(true);
            self.held(lock, token).await?;
            let stalled = Instant::now();
            while {
                let mut views = self.shared.views.lock();
                let v = &mut views[self.node];
                v.stalled = v.stall;
                v.stall
            } {
                assert!(
                    stalled.elapsed() < Duration::from_secs(30),
                    "stalled for 30 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(hold).await;
            if stalled.elapsed() > Duration::from_millis(100) {
                // Look again after a long stall (false once the lease
                // lapsed); the write goes out anyway: the resource is what
                // must refuse a stale token.
                self.held(lock, token).await?;
            }
            // The application writes with its token whatever it believes:
            // the resource is what refuses a stale one.
            self.write(lock, token);
            self.release(lock, token).await?;
            self.set_holding(false);
        }
        Ok(out)
    }
}

/// Contends for `lock` until `shared.stop` (or the node dies or goes
/// silent): acquire with `lock_timeout`, hold up to `max_hold`, release;
/// refreshes the node's status every 100 ms between operations.
pub async fn contend(
    mut c: Client,
    lock: String,
    lock_timeout: Duration,
    max_hold: Duration,
) -> (Client, Option<Gone>) {
    let mut rng =
        0x9E37_79B9_7F4A_7C15u64 ^ (u64::from(c.id) << 32) ^ c.shared.now().as_nanos() as u64;
    let mut last_status: Option<Instant> = None;
    while !c.shared.stop.load(Ordering::Relaxed) {
        if last_status.is_none_or(|t| t.elapsed() > Duration::from_millis(100)) {
            if let Err(g) = c.status().await {
                return (c, Some(g));
            }
            last_status = Some(Instant::now());
        }
        if c.shared.probes.lock()[c.node].wanted {
            let sent = Instant::now();
            match c.proc.try_ask("members", c.ask_timeout).await {
                Ok(line) => c.shared.probes.lock()[c.node].answer = Some((sent, line)),
                Err(g) => return (c, Some(g)),
            }
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let hold = max_hold.mul_f64((rng % 1000) as f64 / 1000.0);
        match c
            .critical_section(&lock, Acquire::Lock(lock_timeout), hold)
            .await
        {
            Err(g) => return (c, Some(g)),
            Ok(Outcome::Failed { .. }) => tokio::time::sleep(Duration::from_millis(20)).await,
            Ok(_) => {}
        }
    }
    (c, None)
}

/// Merges the clients' histories, runs the checker, prints the report and
/// asserts that every property held and that the run saw `min_grants`.
pub fn judge(what: &str, parts: Vec<History>, ttl: Duration, min_grants: u64) -> Report {
    let mut history = History::merge(parts);
    history.params = Params {
        ttl,
        lock_delay: Duration::ZERO,
        max_clock_drift_ppm: 0,
        expect_s4: true,
    };
    let report = check(&history);
    println!(
        "{what}: checker over {} events: {report}skipped: {:?}",
        history.events.len(),
        report.skipped.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    assert!(
        report.is_ok(),
        "{what}: the checker found violations:\n{report}"
    );
    assert!(
        report.stats.grants >= min_grants,
        "{what}: only {} grants; expected real contention (>= {min_grants})",
        report.stats.grants
    );
    report
}
