//! The node's clock: monotonic, and counting the time the host was
//! suspended.
//!
//! Every time judgement the driver and the guards make (lease ends, TTLs,
//! ticks, lock-delay) reads this clock instead of the runtime's directly, so
//! that (1) the simulator can give each node a clock that runs fast or slow
//! against true time, and (2) a suspended host does not keep its leases.
//!
//! # Suspend
//!
//! The runtime's clock (`tokio::time::Instant`, `CLOCK_MONOTONIC` on Linux)
//! stands still while the host is suspended (laptop lid, VM paused by its
//! hypervisor, `systemctl suspend`). The other nodes' clocks run on: they
//! expire this node's session and grant its locks elsewhere, while a lease
//! judged on the monotonic clock would still read as held after resume for
//! the rest of its old length. So [`Clock::now`] is the runtime's clock
//! plus the time the host spent suspended since the process started: on
//! Linux (and Android) `CLOCK_BOOTTIME − CLOCK_MONOTONIC`, read through
//! `rustix`. Reading the difference (rather than mapping `CLOCK_BOOTTIME`
//! onto an origin instant directly) keeps the runtime's paused test clock
//! working: the difference only grows while the host sleeps. The two reads
//! are not atomic; differences under [`NOISE`] are read as none.
//!
//! Elsewhere, the monotonic clock is used as is: on macOS and the BSDs a
//! lease held across a suspend may read as held after resume until the
//! holder's next keepalive round fails, so there do not rely on `is_held()`
//! alone across a sleep; fence writes with the token.
//!
//! Timers (`tokio::time::sleep`) still run on the monotonic clock, so a
//! deadline read on this clock may fire late by the suspended time: waiters
//! that must notice a lease's end (`LockGuard::lost`) wake at a bounded
//! period to look again.
//!
//! # Skew (simulator)
//!
//! A skewed clock is `local = local_origin + (true - origin) × rate`: the
//! rate is fixed for the life of the clock (a node that restarts may get a
//! new one). A forward jump of a monotonic clock is indistinguishable from
//! a pause of the process, which the simulator injects as such. The
//! simulator's suspend ([`SuspendSwitch`]) stops the node's monotonic time
//! while its boot time runs on.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::teeth::{planted, Bug};

/// Differences between boot time and monotonic time smaller than this are
/// read as noise (the two clocks are read one after the other), not as a
/// suspend.
pub const NOISE: Duration = Duration::from_millis(1);

/// A reading of both system clocks, as durations since an arbitrary epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readings {
    /// Time that stops while the host is suspended (`CLOCK_MONOTONIC`).
    pub monotonic: Duration,
    /// Time that counts the suspended time too (`CLOCK_BOOTTIME`).
    pub boot: Duration,
}

/// Where the suspended time comes from: the OS, or a test.
pub trait BootClock: Send + Sync + fmt::Debug {
    /// Both clocks now, or `None` if this platform has no boot-time clock.
    fn read(&self) -> Option<Readings>;

    /// Boot time alone, one cheap read, if the source has it: lets a
    /// reading within [`FRESH`] of boot time after a full one reuse that
    /// one's suspended time (see `Suspension::suspended`). `None` (the
    /// default) makes every reading a full one.
    fn boot(&self) -> Option<Duration> {
        None
    }
}

/// How long, in boot time, a full reading of the suspended time is reused
/// (issue 10: a full reading costs 3 to 9 `clock_gettime` calls, the
/// bracket in `OsClocks::read`, and the driver reads the clock several
/// times per pass; the profile of the M workload had 5-7 % of the CPU in
/// `clock_gettime`). The host cannot have been suspended for longer than
/// the boot time that passed since the full reading, so a reused value is
/// behind the truth by less than this; with [`NOISE`] (read as none) a
/// reading is behind by less than 1.5 ms in all. The holder's lease
/// margin, a tenth of a TTL of at least 1 s, is at least 100 ms: the bound
/// stays far inside it, as `NOISE` alone did. A real suspend (seconds)
/// moves boot time past the window, so the next reading is a full one and
/// sees all of it.
pub const FRESH: Duration = Duration::from_micros(500);

/// The host's clocks.
#[derive(Debug)]
struct OsClocks;

impl BootClock for OsClocks {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn read(&self) -> Option<Readings> {
        use rustix::time::{clock_gettime, ClockId};
        fn dur(t: rustix::time::Timespec) -> Duration {
            Duration::new(
                u64::try_from(t.tv_sec).unwrap_or(0),
                u32::try_from(t.tv_nsec).unwrap_or(0),
            )
        }
        // Monotonic, boot, monotonic: the tightest of a few tries brackets
        // the boot reading, so the difference is off by at most the gap.
        let mut best: Option<(Duration, Readings)> = None;
        for _ in 0..3 {
            let a = dur(clock_gettime(ClockId::Monotonic));
            let boot = dur(clock_gettime(ClockId::Boottime));
            let b = dur(clock_gettime(ClockId::Monotonic));
            let gap = b.saturating_sub(a);
            let r = Readings {
                monotonic: a + gap / 2,
                boot,
            };
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, r));
            }
            if gap < NOISE / 20 {
                break;
            }
        }
        best.map(|(_, r)| r)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn boot(&self) -> Option<Duration> {
        use rustix::time::{clock_gettime, ClockId};
        let t = clock_gettime(ClockId::Boottime);
        Some(Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        ))
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn read(&self) -> Option<Readings> {
        None
    }
}

/// Suspended time since a first reading of a [`BootClock`].
#[derive(Debug)]
struct Suspension {
    source: Box<dyn BootClock>,
    origin: Option<Readings>,
    /// The most suspended time seen, in nanoseconds (never goes back).
    seen: AtomicU64,
    /// Boot time of the newest full reading, in nanoseconds since the
    /// source's epoch (0: none yet). Stored after `seen` took that
    /// reading's value (release/acquire), so a reader that trusts it also
    /// sees that value.
    checked: AtomicU64,
}

impl Suspension {
    fn new(source: Box<dyn BootClock>) -> Self {
        let origin = source.read();
        Self {
            source,
            origin,
            seen: AtomicU64::new(0),
            checked: AtomicU64::new(0),
        }
    }

    /// Time the host spent suspended since the origin reading.
    ///
    /// Within [`FRESH`] of boot time after a full reading, that reading's
    /// value (the most seen) is returned after one boot-time read: a
    /// suspend long enough to matter moves boot time past the window, and
    /// the next reading is a full one. Boot time never goes back, so a
    /// reading that finds it below the stored one (another thread stored a
    /// later full reading meanwhile) is within the window too.
    fn suspended(&self) -> Duration {
        let Some(o) = self.origin else {
            return Duration::ZERO;
        };
        if let Some(boot) = self.source.boot() {
            let boot = u64::try_from(boot.as_nanos()).unwrap_or(u64::MAX);
            let checked = self.checked.load(Ordering::Acquire);
            let fresh = u64::try_from(FRESH.as_nanos()).unwrap_or(u64::MAX);
            if checked != 0 && boot.saturating_sub(checked) < fresh {
                return Duration::from_nanos(self.seen.load(Ordering::Acquire));
            }
        }
        let Some(now) = self.source.read() else {
            return Duration::ZERO;
        };
        let d = self.judge(o, now);
        let boot = u64::try_from(now.boot.as_nanos()).unwrap_or(u64::MAX);
        self.checked.fetch_max(boot.max(1), Ordering::AcqRel);
        d
    }

    /// The suspended time a full reading `now` shows against `o`.
    fn judge(&self, o: Readings, now: Readings) -> Duration {
        let boot = now.boot.saturating_sub(o.boot);
        let mono = now.monotonic.saturating_sub(o.monotonic);
        let d = boot.saturating_sub(mono);
        if d < NOISE {
            return Duration::from_nanos(self.seen.load(Ordering::Acquire));
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let prev = self.seen.fetch_max(nanos, Ordering::AcqRel);
        Duration::from_nanos(prev.max(nanos))
    }
}

/// The host's suspension, shared by every real clock of the process.
fn os_suspension() -> &'static Suspension {
    static S: OnceLock<Suspension> = OnceLock::new();
    S.get_or_init(|| Suspension::new(Box::new(OsClocks)))
}

/// The simulator's suspend switch for one node: while on, the node's
/// monotonic time stands still and its boot time runs on. It outlives the
/// node's restarts (it is the machine, not the process).
#[derive(Clone, Debug, Default)]
pub struct SuspendSwitch(Arc<Mutex<SwitchState>>);

#[derive(Debug, Default)]
struct SwitchState {
    /// True time spent suspended, over past suspends.
    total: Duration,
    /// The true instant the current suspend began.
    since: Option<Instant>,
}

impl SuspendSwitch {
    /// Suspends (`true`) or resumes the machine.
    pub fn set(&self, suspended: bool) {
        let mut s = self.0.lock();
        let now = Instant::now();
        match (suspended, s.since) {
            (true, None) => s.since = Some(now),
            (false, Some(since)) => {
                s.total += now - since;
                s.since = None;
            }
            _ => {}
        }
    }

    /// True time spent suspended so far, the current suspend included.
    fn stopped(&self) -> Duration {
        let s = self.0.lock();
        s.total + s.since.map_or(Duration::ZERO, |t| Instant::now() - t)
    }
}

/// A node's clock. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone, Debug, Default)]
enum Kind {
    /// The runtime's clock plus the host's suspended time.
    #[default]
    Real,
    /// The runtime's clock plus the suspended time of an injected source.
    Injected(Arc<Suspension>),
    /// The simulator's clock.
    Sim(Arc<Skew>),
}

#[derive(Debug)]
struct Skew {
    origin: Instant,
    local_origin: Instant,
    rate: f64,
    switch: SuspendSwitch,
    /// The switch's stopped time when this clock began.
    stopped_at_origin: Duration,
}

impl Clock {
    /// The runtime's clock, counting the host's suspended time.
    pub fn real() -> Self {
        Self::default()
    }

    /// The runtime's clock counting the suspended time `source` reports
    /// (tests inject a source whose boot and monotonic times diverge).
    pub fn with_boot_clock(source: Box<dyn BootClock>) -> Self {
        Self {
            kind: Kind::Injected(Arc::new(Suspension::new(source))),
        }
    }

    /// A clock that runs at `rate` times true time (1.01 is 1 % fast) and
    /// reads `offset` ahead of true time now.
    pub fn skewed(rate: f64, offset: Duration) -> Self {
        Self::simulated(rate, offset, SuspendSwitch::default())
    }

    /// Like [`Clock::skewed`], on a machine that `switch` suspends.
    pub fn simulated(rate: f64, offset: Duration, switch: SuspendSwitch) -> Self {
        let origin = Instant::now();
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let stopped_at_origin = switch.stopped();
        Self {
            kind: Kind::Sim(Arc::new(Skew {
                origin,
                local_origin: origin + offset,
                rate,
                switch,
                stopped_at_origin,
            })),
        }
    }

    /// The rate against true time (1.0 for the real clock).
    pub fn rate(&self) -> f64 {
        match &self.kind {
            Kind::Sim(s) => s.rate,
            _ => 1.0,
        }
    }

    /// How far this clock reads ahead of the runtime's (real clocks: the
    /// suspended time), or for the simulator, how far its monotonic time
    /// reads behind its boot time. Zero with the planted bug
    /// [`Bug::LeaseClockStopsInSuspend`], which judges on monotonic time.
    fn suspended(&self) -> Duration {
        if planted(Bug::LeaseClockStopsInSuspend) {
            return Duration::ZERO;
        }
        match &self.kind {
            Kind::Real => os_suspension().suspended(),
            Kind::Injected(s) => s.suspended(),
            Kind::Sim(s) => s
                .switch
                .stopped()
                .saturating_sub(s.stopped_at_origin)
                .mul_f64(s.rate),
        }
    }

    /// This node's reading of now.
    pub fn now(&self) -> Instant {
        let now = Instant::now();
        match &self.kind {
            Kind::Real | Kind::Injected(_) => now + self.suspended(),
            Kind::Sim(s) => {
                // Boot time, less the stopped time unless it is counted.
                let boot = s.local_origin + (now - s.origin).mul_f64(s.rate);
                let stopped = s
                    .switch
                    .stopped()
                    .saturating_sub(s.stopped_at_origin)
                    .mul_f64(s.rate);
                boot - stopped + self.suspended()
            }
        }
    }

    /// The true (runtime) instant at which this clock will read `local`,
    /// if the host is not suspended meanwhile (for sleeping until a local
    /// deadline).
    pub fn true_instant(&self, local: Instant) -> Instant {
        match &self.kind {
            Kind::Real | Kind::Injected(_) => local
                .checked_sub(self.suspended())
                .unwrap_or_else(Instant::now),
            Kind::Sim(s) => {
                let stopped = s
                    .switch
                    .stopped()
                    .saturating_sub(s.stopped_at_origin)
                    .mul_f64(s.rate);
                // What boot time will read then.
                let boot = local + stopped - self.suspended();
                s.origin
                    + boot
                        .saturating_duration_since(s.local_origin)
                        .div_f64(s.rate)
            }
        }
    }

    /// How long in true time this clock takes to advance by `local`.
    pub fn true_duration(&self, local: Duration) -> Duration {
        local.div_f64(self.rate())
    }
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod tests;
