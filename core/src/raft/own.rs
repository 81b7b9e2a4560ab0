//! This node's own session: opening it, keeping it alive, and the lease
//! that guards watch.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::guard::LeaseView;
use crate::lease::holder::HolderLease;
use crate::types::{RequestId, SessionId};

/// A random 64-bit number from the standard library's randomly keyed
/// hasher (seeded from the OS), mixed with the time: session ids and
/// incarnations only need to be unique, not secret.
///
/// Under the simulator (feature `sim`) a thread that seeded
/// `seed_thread_random` gets numbers from that seed instead, so a run
/// replays exactly.
pub fn random_u64() -> u64 {
    #[cfg(any(test, feature = "sim"))]
    if let Some(v) = seeded::next() {
        return v;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Makes [`random_u64`] on this thread return a sequence drawn from
/// `seed` (`None` goes back to real randomness). The simulator runs each
/// seed on one thread.
#[cfg(any(test, feature = "sim"))]
pub fn seed_thread_random(seed: Option<u64>) {
    seeded::set(seed);
}

#[cfg(any(test, feature = "sim"))]
mod seeded {
    use std::cell::Cell;

    thread_local! {
        static STATE: Cell<Option<u64>> = const { Cell::new(None) };
    }

    pub(super) fn set(seed: Option<u64>) {
        STATE.with(|s| s.set(seed));
    }

    pub(super) fn active() -> bool {
        STATE.with(|s| s.get().is_some())
    }

    /// splitmix64: one step of the thread's seeded sequence, if seeded.
    pub(super) fn next() -> Option<u64> {
        STATE.with(|s| {
            let cur = s.get()?.wrapping_add(0x9E37_79B9_7F4A_7C15);
            s.set(Some(cur));
            let mut z = cur;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            Some(z ^ (z >> 31))
        })
    }
}

/// The fencing-token base a founder proposes: its wall clock in
/// microseconds since the Unix epoch. Tokens are `base + log index`, so a
/// cluster founded again after every disk was lost hands out tokens above
/// every token of the old one, as long as the founder's clock is not behind
/// the old founder's by more than the old cluster's age and the old cluster
/// committed fewer than one entry per microsecond on average (issue 9,
/// item 10). Under the simulator a seeded thread gets a fixed base, so a
/// run replays exactly and tokens still differ from indexes.
pub(crate) fn founding_token_base() -> u64 {
    #[cfg(any(test, feature = "sim"))]
    if seeded::active() {
        return crate::sim::TOKEN_BASE;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
}

/// The state of this node's current session.
#[derive(Debug)]
pub(crate) struct OwnSession {
    pub(crate) id: SessionId,
    pub(crate) opened: bool,
    pub(crate) open_proposed: Option<(Instant, u64)>,
    pub(crate) lease: HolderLease,
    pub(crate) lease_tx: watch::Sender<LeaseView>,
    pub(crate) next_keepalive: Instant,
    pub(crate) next_request: RequestId,
    /// Since when this node has had no valid lease (None while it has one).
    pub(crate) no_lease_since: Option<Instant>,
}

impl OwnSession {
    pub(crate) fn new(
        ttl: Duration,
        margin: Duration,
        now: Instant,
        no_lease_since: Option<Instant>,
    ) -> Self {
        let (lease_tx, _) = watch::channel(LeaseView::default());
        Self {
            id: SessionId(random_u64()),
            opened: false,
            open_proposed: None,
            lease: HolderLease::new(ttl, margin),
            lease_tx,
            next_keepalive: now,
            next_request: RequestId(1),
            no_lease_since: no_lease_since.or(Some(now)),
        }
    }

    /// Allocates the next request id.
    pub(crate) fn next_id(&mut self) -> RequestId {
        let r = self.next_request;
        self.next_request = RequestId(r.0 + 1);
        r
    }

    /// What a new grant of this session watches (its lease, on `clock`).
    pub(crate) fn lease_watch(
        &self,
        clock: &crate::clock::Clock,
    ) -> crate::client::guard::LeaseWatch {
        crate::client::guard::LeaseWatch::new(self.lease_tx.subscribe(), clock.clone())
    }

    /// Marks the session ended for every guard that watches it.
    pub(crate) fn end(&self) {
        self.lease_tx.send_modify(|v| v.ended = true);
    }

    /// Whether the lease holds at `now`.
    pub(crate) fn lease_valid(&self, now: Instant) -> bool {
        self.opened && self.lease.is_valid(now)
    }
}
