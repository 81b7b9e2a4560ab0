//! The holder's view of its lease.
//!
//! A node stamps each keepalive with its own monotonic clock before sending
//! it. The leader acknowledges a keepalive only after a quorum round begun
//! after the keepalive arrived, so the leader cannot expire the session
//! before `sent_at + ttl` on its clock. The holder therefore trusts its lease
//! until `sent_at + ttl - margin`, where the margin covers clock-rate drift
//! between the two machines.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How many unacknowledged keepalive stamps are remembered.
const MAX_STAMPS: usize = 64;

/// One session's lease, as its own node computes it.
#[derive(Debug)]
pub struct HolderLease {
    ttl: Duration,
    margin: Duration,
    next_seq: u64,
    stamps: VecDeque<(u64, Instant)>,
    valid_until: Option<Instant>,
}

impl HolderLease {
    /// A lease with no acknowledgement yet (so not valid).
    pub fn new(ttl: Duration, margin: Duration) -> Self {
        Self {
            ttl,
            margin,
            next_seq: 1,
            stamps: VecDeque::new(),
            valid_until: None,
        }
    }

    /// Stamps a keepalive about to be sent at `now`; returns its sequence number.
    pub fn stamp(&mut self, now: Instant) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.stamps.len() == MAX_STAMPS {
            self.stamps.pop_front();
        }
        self.stamps.push_back((seq, now));
        seq
    }

    /// Records the leader's acknowledgement of keepalive `seq`. Returns the
    /// new end of the lease if it moved forward.
    pub fn acknowledged(&mut self, seq: u64) -> Option<Instant> {
        let sent_at = self
            .stamps
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, t)| *t)?;
        self.stamps.retain(|(s, _)| *s > seq);
        let until = sent_at + self.ttl.saturating_sub(self.margin);
        if self.valid_until.is_none_or(|cur| until > cur) {
            self.valid_until = Some(until);
            Some(until)
        } else {
            None
        }
    }

    /// When keepalive `seq` was stamped, if it is still unacknowledged.
    pub fn sent_at(&self, seq: u64) -> Option<Instant> {
        self.stamps.iter().find(|(s, _)| *s == seq).map(|(_, t)| *t)
    }

    /// When the newest keepalive still unacknowledged was stamped.
    pub fn newest_unacknowledged(&self) -> Option<Instant> {
        self.stamps.back().map(|(_, t)| *t)
    }

    /// When the lease ends, if it was ever acknowledged.
    pub fn valid_until(&self) -> Option<Instant> {
        self.valid_until
    }

    /// Whether the lease holds at `now`.
    pub fn is_valid(&self, now: Instant) -> bool {
        self.valid_until.is_some_and(|u| now < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);
    const MARGIN: Duration = Duration::from_secs(1);

    /// DESIGN "The holder's view": the lease runs until sent_at + ttl - margin.
    #[test]
    fn lease_counts_from_the_send_time_not_the_ack_time() {
        let t0 = Instant::now();
        let mut l = HolderLease::new(TTL, MARGIN);
        assert!(!l.is_valid(t0), "no lease before the first acknowledgement");
        let seq = l.stamp(t0);
        assert_eq!(l.acknowledged(seq), Some(t0 + Duration::from_secs(9)));
        assert!(l.is_valid(t0 + Duration::from_millis(8999)));
        assert!(!l.is_valid(t0 + Duration::from_secs(9)));
    }

    #[test]
    fn an_old_ack_never_shortens_the_lease_and_unknown_acks_are_ignored() {
        let t0 = Instant::now();
        let mut l = HolderLease::new(TTL, MARGIN);
        let a = l.stamp(t0);
        let b = l.stamp(t0 + Duration::from_secs(3));
        assert_eq!(l.acknowledged(b), Some(t0 + Duration::from_secs(12)));
        assert_eq!(
            l.acknowledged(a),
            None,
            "stamp a was dropped when b was acked"
        );
        assert_eq!(l.acknowledged(999), None);
        assert_eq!(l.valid_until(), Some(t0 + Duration::from_secs(12)));
    }
}
