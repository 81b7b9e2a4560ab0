//! The node's monotonic clock.
//!
//! Every time judgement the driver and the guards make (lease ends, TTLs,
//! ticks, lock-delay) reads this clock instead of the runtime's directly, so
//! the simulator can give each node a clock that runs fast or slow against
//! true time. In production it is the runtime's clock, unchanged: `now()`
//! is `tokio::time::Instant::now()`.
//!
//! A skewed clock is `local = local_origin + (true - origin) × rate`: the
//! rate is fixed for the life of the clock (a node that restarts may get a
//! new one). A forward jump of a monotonic clock is indistinguishable from
//! a pause of the process, which the simulator injects as such.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// A node's clock. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    skew: Option<Arc<Skew>>,
}

#[derive(Debug)]
struct Skew {
    origin: Instant,
    local_origin: Instant,
    rate: f64,
}

impl Clock {
    /// The runtime's clock.
    pub fn real() -> Self {
        Self::default()
    }

    /// A clock that runs at `rate` times true time (1.01 is 1 % fast) and
    /// reads `offset` ahead of true time now.
    pub fn skewed(rate: f64, offset: Duration) -> Self {
        let origin = Instant::now();
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        Self {
            skew: Some(Arc::new(Skew {
                origin,
                local_origin: origin + offset,
                rate,
            })),
        }
    }

    /// The rate against true time (1.0 for the real clock).
    pub fn rate(&self) -> f64 {
        self.skew.as_ref().map_or(1.0, |s| s.rate)
    }

    /// This node's reading of now.
    pub fn now(&self) -> Instant {
        let now = Instant::now();
        match &self.skew {
            None => now,
            Some(s) => s.local_origin + (now - s.origin).mul_f64(s.rate),
        }
    }

    /// The true instant at which this clock will read `local` (for
    /// sleeping until a local deadline).
    pub fn true_instant(&self, local: Instant) -> Instant {
        match &self.skew {
            None => local,
            Some(s) => {
                s.origin
                    + local
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
mod tests {
    use super::*;

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

    #[tokio::test(start_paused = true)]
    async fn the_real_clock_is_the_runtime_clock() {
        let c = Clock::real();
        assert_eq!(c.now(), Instant::now());
        assert_eq!(c.rate(), 1.0);
    }
}
