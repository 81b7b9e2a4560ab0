//! The locks-held and waiters gauges return to 0 (helper "break", issue
//! 12, item 1): guards dropped, permits, read locks, `with_lock`, a lease
//! lost, timed-out waiters, under a thread-local `metrics-util` debugging
//! recorder on a current-thread runtime (so no other test sees it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder};
use metrics::{SharedString, Unit};
use metrics_util::debugging::DebuggingRecorder;
use parking_lot::Mutex;
use peerlock::Error;

use crate::common::{gauges, with_recorder, within, Cluster, Opts};

/// A debugging recorder that also keeps the highest value each gauge was
/// set to. The nodes of one process set the same unlabelled gauge once a
/// tick each, so a snapshot reads whichever node ticked last: a node with
/// nothing to report could hide the others' values for a whole run
/// (t123g saw no waiters in two CI runs while two nodes had them).
struct PeakRecorder {
    inner: DebuggingRecorder,
    peaks: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl PeakRecorder {
    fn new() -> Self {
        Self {
            inner: DebuggingRecorder::new(),
            peaks: Arc::default(),
        }
    }

    /// The highest value `name` was set to so far.
    fn peak(&self, name: &str) -> f64 {
        self.peaks.lock().get(name).copied().unwrap_or(0.0)
    }
}

/// One gauge of a [`PeakRecorder`]: forwards, and keeps the peak of sets.
struct Tee {
    inner: Gauge,
    name: String,
    peaks: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl GaugeFn for Tee {
    fn increment(&self, value: f64) {
        self.inner.increment(value);
    }
    fn decrement(&self, value: f64) {
        self.inner.decrement(value);
    }
    fn set(&self, value: f64) {
        self.inner.set(value);
        let mut peaks = self.peaks.lock();
        let peak = peaks.entry(self.name.clone()).or_insert(value);
        *peak = peak.max(value);
    }
}

impl Recorder for PeakRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.inner.register_counter(key, metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Tee {
            inner: self.inner.register_gauge(key, metadata),
            name: key.name().to_owned(),
            peaks: Arc::clone(&self.peaks),
        }))
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.inner.register_histogram(key, metadata)
    }
}

/// `peerlock_locks_held` is moved only by increments and decrements, so
/// its value is the sum of the snapshots' deltas; every snapshot goes
/// through [`Held::snap`] so that none is lost.
struct Held<'a> {
    rec: &'a DebuggingRecorder,
    sum: f64,
}

impl Held<'_> {
    /// One snapshot: adds the held delta, returns every gauge.
    fn snap(&mut self) -> std::collections::BTreeMap<String, f64> {
        let g = gauges(self.rec);
        self.sum += g.get("peerlock_locks_held").copied().unwrap_or(0.0);
        g
    }

    /// Waits until the held gauge reads `want` (bounded).
    async fn reaches(&mut self, want: f64, step: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            self.snap();
            if self.sum == want || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(self.sum, want, "peerlock_locks_held after {step}");
    }

    /// Waits until the `set` gauge `name` reads `want` (bounded).
    async fn set_gauge_reaches(&mut self, name: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut v;
        loop {
            v = self.snap().get(name).copied().unwrap_or(0.0);
            if v == want || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(v, want, "{name}");
    }
}

#[test]
fn t123e_locks_held_returns_to_zero_after_a_plain_guard_and_a_permit() {
    let rec = DebuggingRecorder::new();
    with_recorder(&rec, || async {
        let mut held = Held {
            rec: &rec,
            sum: 0.0,
        };
        let c = Cluster::start(3).await;
        let g = within(c.nodes[0].lock("h/a")).await.unwrap();
        held.reaches(1.0, "a lock").await;
        drop(g);
        held.reaches(0.0, "its drop").await;
        let p = within(c.nodes[1].semaphore("h/s", 2).acquire(1))
            .await
            .unwrap();
        held.reaches(1.0, "a permit").await;
        drop(p);
        held.reaches(0.0, "the permit's drop").await;
        let r = within(c.nodes[1].read_lock("h/rw")).await.unwrap();
        held.reaches(1.0, "a read lock").await;
        r.unlock().await.unwrap();
        held.reaches(0.0, "its unlock").await;
        let ok = within(c.nodes[2].with_lock("h/w", async |_g| 7)).await;
        assert_eq!(ok.unwrap(), 7);
        held.reaches(0.0, "with_lock").await;
    });
}

#[test]
fn t123f_locks_held_returns_to_zero_after_lease_loss_and_lock_lost() {
    let rec = DebuggingRecorder::new();
    with_recorder(&rec, || async {
        let mut held = Held {
            rec: &rec,
            sum: 0.0,
        };
        let c = Cluster::start_with(3, Opts::default()).await;
        let g = within(c.nodes[0].lock("h/lost")).await.unwrap();
        let others = [c.nodes[1].clone(), c.nodes[2].clone()];
        let r: Result<(), Error> = within(c.nodes[0].with_lock("h/wl", async |_g| {
            for n in &others {
                peerlock::testing::crash(n).await;
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }))
        .await;
        assert!(matches!(r, Err(Error::LockLost { .. })), "{r:?}");
        within(g.lost()).await;
        drop(g);
        held.reaches(0.0, "a lease lost and a with_lock cut by LockLost")
            .await;
    });
}

#[test]
fn t123g_waiters_return_to_zero_after_timed_out_waiters() {
    let rec = PeakRecorder::new();
    with_recorder(&rec, || async {
        let mut held = Held {
            rec: &rec.inner,
            sum: 0.0,
        };
        let c = Cluster::start(3).await;
        let g = within(c.nodes[0].lock("w/a")).await.unwrap();
        let mut waits = Vec::new();
        for n in c.nodes.iter().skip(1) {
            let n = n.clone();
            waits.push(tokio::spawn(async move {
                n.lock_timeout("w/a", Duration::from_millis(1000)).await
            }));
        }
        // Seen while they wait (the gauge is set once a tick).
        let w1 = c.nodes[1].clone();
        let long =
            tokio::spawn(async move { w1.lock_timeout("w/a", Duration::from_millis(1500)).await });
        // Until the longest waiter gives up; the peak of every node's sets
        // (the holder's node sets 0 each tick too).
        let deadline = Instant::now() + Duration::from_millis(3000);
        while Instant::now() < deadline && rec.peak("peerlock_waiters") < 1.0 && !long.is_finished()
        {
            held.snap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let peak = rec.peak("peerlock_waiters");
        for w in waits {
            let r = w.await.unwrap();
            assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        }
        let r = long.await.unwrap();
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        assert!(peak >= 1.0, "waiters never seen: peak {peak}");
        held.set_gauge_reaches("peerlock_waiters", 0.0).await;
        drop(g);
        held.reaches(0.0, "timed-out waiters").await;
    });
}
