//! When a pair last exchanged a message, for closing idle connections
//! (issue 10; see `writer.rs`).
//!
//! The writer and every reader of a pair's connection run as tasks of
//! their own, so the time is an atomic: milliseconds since the slot was
//! made. Only messages count (a frame with messages, a bulk message), not
//! the transport's own heartbeats or QUIC's keep-alives: those would keep
//! an unused connection open for ever, which is the cost this removes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The last time a message went either way between this node and a peer.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    /// Milliseconds from `epoch` to the last message.
    last_ms: AtomicU64,
}

impl Activity {
    /// Starts as if a message passed now.
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// A message passed now.
    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When the last message passed.
    pub(crate) fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_last_touch_is_kept() {
        let a = Activity::new();
        let t0 = a.last();
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(a.last(), t0);
        a.touch();
        assert_eq!(a.last(), t0 + Duration::from_millis(1500));
    }
}
