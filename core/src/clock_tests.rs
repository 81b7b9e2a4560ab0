//! Tests of `clock.rs`: the boot clock, suspend readings, rates.

use super::*;
use crate::lease::holder::HolderLease;

/// A boot-time clock a test moves by hand.
#[derive(Debug, Clone)]
struct FakeBoot(Arc<Mutex<Readings>>);

impl FakeBoot {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Readings {
            monotonic: Duration::from_secs(100),
            boot: Duration::from_secs(100),
        })))
    }
    /// Both clocks run (the host is awake).
    fn run(&self, d: Duration) {
        let mut r = self.0.lock();
        r.monotonic += d;
        r.boot += d;
    }
    /// Only boot time runs (the host sleeps).
    fn sleep(&self, d: Duration) {
        self.0.lock().boot += d;
    }
}

impl BootClock for FakeBoot {
    fn read(&self) -> Option<Readings> {
        Some(*self.0.lock())
    }
}

#[tokio::test(start_paused = true)]
async fn a_fast_clock_reads_ahead_and_maps_back() {
    let c = Clock::skewed(1.5, Duration::from_secs(7));
    let t0 = c.now();
    tokio::time::advance(Duration::from_secs(2)).await;
    let t1 = c.now();
    assert_eq!(t1 - t0, Duration::from_secs(3));
    let deadline = t1 + Duration::from_millis(300);
    let true_deadline = c.true_instant(deadline);
    assert_eq!(true_deadline - Instant::now(), Duration::from_millis(200));
    assert_eq!(
        c.true_duration(Duration::from_millis(300)),
        Duration::from_millis(200)
    );
}

/// Without a suspend, the real clock is the runtime clock (the OS's
/// boot and monotonic times run together; their read gap is noise).
#[tokio::test(start_paused = true)]
async fn the_real_clock_is_the_runtime_clock() {
    let c = Clock::real();
    assert_eq!(c.now(), Instant::now());
    assert_eq!(c.rate(), 1.0);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(c.now(), Instant::now());
    assert_eq!(c.true_instant(c.now()), Instant::now());
}

/// Issue 8 item 8: a lease acknowledged before the host slept ends by
/// boot time. The monotonic (runtime) clock has moved 1 s, boot time
/// 31 s: the 9 s lease is over, and a deadline read on this clock maps
/// back to a runtime instant already past.
#[tokio::test(start_paused = true)]
async fn a_lease_ends_by_boot_time_across_a_suspend() {
    let boot = FakeBoot::new();
    let c = Clock::with_boot_clock(Box::new(boot.clone()));
    let mut lease = HolderLease::new(Duration::from_secs(10), Duration::from_secs(1));
    let seq = lease.stamp(c.now());
    let until = lease.acknowledged(seq).expect("first ack moves the lease");
    tokio::time::advance(Duration::from_secs(1)).await;
    boot.run(Duration::from_secs(1));
    assert!(lease.is_valid(c.now()), "awake for 1 s of a 9 s lease");
    boot.sleep(Duration::from_secs(30));
    assert!(
        !lease.is_valid(c.now()),
        "the host slept 30 s: boot time says the lease is over"
    );
    assert!(
        lease.is_valid(Instant::now()),
        "the monotonic clock alone still says held (the old bug)"
    );
    assert!(c.true_instant(until) <= Instant::now());
    // Never goes back, and read noise is not a suspend.
    let after = c.now();
    boot.0.lock().monotonic += Duration::from_micros(300);
    assert!(c.now() >= after);
}

/// A guard's `lost()` waiting across a suspend completes within
/// `LOST_RECHECK` of the resume, though its timer (monotonic) was set
/// for the lease's end on the clock before the host slept.
#[tokio::test(start_paused = true)]
async fn lost_completes_promptly_after_a_resume() {
    use crate::client::guard::{LeaseView, LeaseWatch, LockGuard, LOST_RECHECK};
    use crate::types::{FencingToken, LockName, SessionId};
    let boot = FakeBoot::new();
    let clock = Clock::with_boot_clock(Box::new(boot.clone()));
    let (_tx, lease) = tokio::sync::watch::channel(LeaseView {
        valid_until: Some(clock.now() + Duration::from_secs(60)),
        ended: false,
    });
    let (inbox, _rx) = tokio::sync::mpsc::unbounded_channel();
    let g = LockGuard {
        name: LockName::new("x").expect("a valid name"),
        token: FencingToken(1),
        session: SessionId(1),
        inbox,
        released: false,
        task_hold: None,
        watch: LeaseWatch::new(lease, clock),
    };
    let lost = g.lost();
    tokio::pin!(lost);
    let early = tokio::time::timeout(Duration::from_secs(1), lost.as_mut()).await;
    assert!(early.is_err(), "the lease holds for a minute");
    assert!(g.is_held());
    boot.sleep(Duration::from_secs(120));
    assert!(!g.is_held());
    tokio::time::timeout(LOST_RECHECK + Duration::from_millis(1), lost)
        .await
        .expect("lost() completes within LOST_RECHECK of the resume");
}

/// The simulator's suspend: monotonic time stands still, boot time runs,
/// and the clock reads boot time (monotonic with the planted bug).
#[tokio::test(start_paused = true)]
async fn a_simulated_suspend_stops_only_monotonic_time() {
    let switch = SuspendSwitch::default();
    let c = Clock::simulated(2.0, Duration::from_secs(3), switch.clone());
    let t0 = c.now();
    switch.set(true);
    tokio::time::advance(Duration::from_secs(4)).await;
    switch.set(false);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(c.now() - t0, Duration::from_secs(10), "boot time ran on");
    let deadline = c.now() + Duration::from_secs(2);
    assert_eq!(
        c.true_instant(deadline) - Instant::now(),
        Duration::from_secs(1)
    );
    // A restart on the same machine starts from its own origin.
    let again = Clock::simulated(1.0, Duration::ZERO, switch);
    assert_eq!(again.now(), Instant::now());
}

/// A [`FakeBoot`] that also answers boot time alone, counting full reads.
#[derive(Debug, Clone)]
struct CheapBoot(FakeBoot, Arc<AtomicU64>);

impl BootClock for CheapBoot {
    fn read(&self) -> Option<Readings> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.read()
    }
    fn boot(&self) -> Option<Duration> {
        Some(self.0 .0.lock().boot)
    }
}

/// Issue 10: within [`FRESH`] of boot time after a full reading, the
/// clock reuses it (one boot-time read); a suspend moves boot time past
/// the window and is seen whole at the very next reading; a reused
/// value is never behind by [`FRESH`] or more, and never goes back.
#[tokio::test(start_paused = true)]
async fn issue_10_a_suspend_is_seen_at_once_though_readings_are_reused() {
    let boot = FakeBoot::new();
    let full = Arc::new(AtomicU64::new(0));
    let c = Clock::with_boot_clock(Box::new(CheapBoot(boot.clone(), full.clone())));
    let reads = || full.load(Ordering::SeqCst);
    let _ = c.now();
    let after_first = reads();
    for _ in 0..100 {
        let _ = c.now();
    }
    assert_eq!(reads(), after_first, "reused within the window");
    // Awake time passing beyond the window makes the next reading full.
    tokio::time::advance(FRESH).await;
    boot.run(FRESH);
    let _ = c.now();
    assert_eq!(reads(), after_first + 1);
    // A suspend of 30 s: seen at once, whole.
    let before = c.now();
    boot.sleep(Duration::from_secs(30));
    assert_eq!(c.now() - before, Duration::from_secs(30));
    // A sleep shorter than the window may be read late, by less than it
    // (and, below NOISE, as none, as before).
    let t = c.now();
    boot.sleep(FRESH / 2);
    let u = c.now();
    assert!(u >= t && u - t < FRESH, "{:?}", u - t);
    // Never goes back, whatever the readings.
    boot.0.lock().monotonic += Duration::from_millis(5);
    assert!(c.now() >= u);
}
