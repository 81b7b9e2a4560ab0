//! Node configuration, checked once at start-up.

use std::time::Duration;

use crate::error::Error;

/// Timing and sizing of one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// How long a session lives without an acknowledged keepalive.
    pub session_ttl: Duration,
    /// How long a lock freed by session expiry stays ungranted.
    pub lock_delay: Duration,
    /// How many peers vote; the rest are learners.
    pub max_voters: usize,
    /// Raft's logical clock period.
    pub tick: Duration,
    /// Election timeout in ticks (raft-rs randomises it up to twice this).
    pub election_ticks: usize,
    /// Heartbeat period in ticks.
    pub heartbeat_ticks: usize,
    /// Applied entries kept in the log before it is compacted behind a snapshot.
    pub compact_after: u64,
    /// How the leader keeps the voters (issue 9).
    pub membership: MembershipConfig,
    /// Whether a graceful shutdown leaves the membership (issue 9, item
    /// 7): on by default; off for nodes that come back with their disk.
    pub leave_on_shutdown: bool,
    /// This node's failure zone (at most 64 bytes), a hint for choosing
    /// voters: the leader promotes learners of zones the voters lack first
    /// (issue 9). Recorded in the member table at join, or by the node
    /// itself once it runs (a founder, or a restart with another zone).
    pub zone: Option<String>,
    /// Whether member names are proven by certificates (default true: one
    /// certificate per node, its common name the member name). False with
    /// a certificate shared by every instance, where any holder can claim
    /// any name: the same-name fast replacement of a silent voter is then
    /// off, and `dead_after` applies (issue 9, design item 6).
    pub names_authenticated: bool,
}

/// How the leader reconciles the voters with the live members (issue 9).
///
/// The leader keeps the largest odd number of voters not above
/// `max_voters` and the live, caught-up members; a voter silent for
/// `dead_after` is replaced by a learner that has been live and caught up
/// for `stabilization`, in one joint configuration change (Raft
/// dissertation §4.3), and only while the live voters are a majority of
/// both the old and the new voter sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipConfig {
    /// Silence after which a voter is replaced (default 20 s). At least the
    /// session TTL, so a member's session has normally expired before it
    /// stops voting (Hazelcast CP's rule for its missing-member removal).
    pub dead_after: Duration,
    /// How long a learner must have been live and caught up, without a
    /// break, before it is promoted (default 5 s; Consul autopilot's
    /// server stabilization time).
    pub stabilization: Duration,
    /// The fewest voters silence alone may leave (default 3; Consul
    /// autopilot's `min_quorum`). Odd: 1, 3, 5 or 7. The voters are kept
    /// at an odd count, so an even value would act as the odd number below
    /// it (2 as 1); [`NodeConfig::validate`] refuses it with
    /// [`Error::Config`], as it refuses an even `max_voters`.
    pub min_voters: usize,
    /// Whether a node the cluster removed (it was replaced while it was
    /// partitioned or stopped) starts again by itself, blank, and joins
    /// under a new id (default `true`; etcd's removed member stops
    /// instead, and needs an operator). Its old id never counts again
    /// either way. Read by the `peerlock` crate's `Node`.
    pub rejoin_when_removed: bool,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            dead_after: Duration::from_secs(20),
            stabilization: Duration::from_secs(5),
            min_voters: 3,
            rejoin_when_removed: true,
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(10),
            lock_delay: Duration::ZERO,
            max_voters: 5,
            tick: Duration::from_millis(50),
            election_ticks: 10,
            heartbeat_ticks: 2,
            compact_after: 20_000,
            membership: MembershipConfig::default(),
            leave_on_shutdown: true,
            zone: None,
            names_authenticated: true,
        }
    }
}

impl NodeConfig {
    /// The shortest session TTL accepted: the shortest whose lease survives
    /// a leader change at the fastest derived tick (issue 8, item 3).
    pub const MIN_TTL: Duration = Duration::from_secs(1);

    /// The Raft tick used when none is set: the default 50 ms, or `ttl / 80`
    /// for a TTL under 4 s, which leaves a third of the lease spare after
    /// a leader change (see [`NodeConfig::min_ttl_for_failover`]).
    pub fn tick_for_ttl(ttl: Duration) -> Duration {
        let derived =
            Duration::from_millis(u64::try_from((ttl / 80).as_millis()).unwrap_or(u64::MAX));
        Self::default()
            .tick
            .min(derived)
            .max(Duration::from_millis(1))
    }

    /// The longest a leader change takes with this Raft timing, from the
    /// leader's crash to the new leader's first commit and quorum round:
    /// a follower starts an election within twice the election timeout of
    /// the last heartbeat (raft-rs randomises it in `[et, 2 et)`), and the
    /// pre-vote, vote, first commit and ReadIndex rounds get one more
    /// election timeout.
    pub fn failover_bound(&self) -> Duration {
        self.election_timeout() * 3
    }

    /// The shortest TTL whose lease survives one leader change. When the
    /// leader crashes, the holder's lease has at least
    /// `ttl - margin - keepalive_interval = ttl × (1 - 1/10 - 1/4)` left
    /// (its last acknowledged keepalive was sent at most one interval
    /// earlier); that must cover [`NodeConfig::failover_bound`] plus one
    /// keepalive resend.
    pub fn min_ttl_for_failover(&self) -> Duration {
        ((self.failover_bound() + self.keepalive_resend()) * 20) / 13
    }

    /// How long an unacknowledged keepalive waits before another is sent
    /// (a lost keepalive, or one a new leader dropped): half an election
    /// timeout.
    pub fn keepalive_resend(&self) -> Duration {
        (self.election_timeout() / 2).max(self.tick)
    }

    /// Checks the options, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        if self.session_ttl < Self::MIN_TTL {
            return Err(Error::Config(format!(
                "session_ttl is {:?}; it must be at least {:?}, so a lease outlives a leader change",
                self.session_ttl,
                Self::MIN_TTL
            )));
        }
        if self.session_ttl > Duration::from_secs(3600) {
            return Err(Error::Config(format!(
                "session_ttl is {:?}; at most one hour is accepted",
                self.session_ttl
            )));
        }
        if self.lock_delay > Duration::from_secs(3600) {
            return Err(Error::Config(format!(
                "lock_delay is {:?}; at most one hour is accepted",
                self.lock_delay
            )));
        }
        // An even count is refused rather than rounded down (issue 9,
        // finding 3 of a newcomer's trial): the leader aims for the
        // largest odd number of voters (an even one tolerates no more
        // failures than the odd one below it and needs one more answer,
        // Raft dissertation §4.2.1), so `max_voters(2)` would silently
        // run three instances on one voter.
        if !(1..=7).contains(&self.max_voters) || self.max_voters.is_multiple_of(2) {
            return Err(Error::Config(format!(
                "max_voters is {}; use 3 or 5 (1, 3, 5 or 7 accepted: an even number of voters tolerates no more failures than the odd number below it)",
                self.max_voters
            )));
        }
        if self.tick.is_zero()
            || self.tick > Duration::from_secs(1)
            || self.election_ticks <= self.heartbeat_ticks
            || self.heartbeat_ticks == 0
        {
            return Err(Error::Config(format!(
                "raft timing: tick is {:?}; it must be more than zero and at most 1 s, with election_ticks > heartbeat_ticks > 0",
                self.tick
            )));
        }
        let m = &self.membership;
        if m.dead_after < self.session_ttl || m.dead_after > Duration::from_secs(7 * 86_400) {
            return Err(Error::Config(format!(
                "membership dead_after is {:?}; it must be at least the session_ttl ({:?}), so a member's session has expired before it stops voting, and at most 7 days",
                m.dead_after, self.session_ttl
            )));
        }
        if m.stabilization > Duration::from_secs(3600) {
            return Err(Error::Config(format!(
                "membership stabilization is {:?}; at most one hour is accepted",
                m.stabilization
            )));
        }
        // An even floor is refused for the reason an even max_voters is:
        // the planner keeps the voters at an odd count and takes the floor
        // down to the odd number below (`membership/planner.rs`), so
        // `min_voters: 2` would let silence leave one voter.
        if !(1..=7).contains(&m.min_voters) || m.min_voters.is_multiple_of(2) {
            return Err(Error::Config(format!(
                "membership min_voters is {}; use 3 (1, 3, 5 or 7 accepted: the voters are kept at an odd count, so an even min_voters would act as the odd number below it)",
                m.min_voters
            )));
        }
        if let Some(z) = self.zone.as_deref() {
            if crate::machine::validate_zone(Some(z)).is_err() {
                return Err(Error::Config(format!(
                    "zone {z:?} is {} bytes; a zone is at most {} bytes",
                    z.len(),
                    crate::machine::MAX_ZONE
                )));
            }
        }
        let min = self.min_ttl_for_failover();
        if self.session_ttl < min {
            return Err(Error::Config(format!(
                "session_ttl is {:?}, too short to keep locks across a leader change with raft_tick {:?}: the minimum is {:?}; raise session_ttl, or lower raft_tick (or leave it unset: it is then derived from the TTL)",
                self.session_ttl, self.tick, min
            )));
        }
        Ok(())
    }

    /// The safety margin the holder subtracts from its lease to cover clock
    /// rate differences between itself and the leader: a tenth of the TTL.
    pub fn lease_margin(&self) -> Duration {
        if crate::teeth::planted(crate::teeth::Bug::ZeroLeaseMargin) {
            return Duration::ZERO;
        }
        self.session_ttl / 10
    }

    /// How often a node sends its session a keepalive: a quarter of the
    /// TTL, so three quarters of the lease (less the margin) are left when
    /// the leader crashes just before a renewal (issue 8, item 3).
    pub fn keepalive_interval(&self) -> Duration {
        self.session_ttl / 4
    }

    /// The election timeout as a duration (the lower bound of raft-rs's
    /// randomised timeout).
    pub fn election_timeout(&self) -> Duration {
        self.tick * self.election_ticks as u32
    }

    /// The planner's knobs, from these options.
    pub fn plan_config(&self) -> crate::membership::PlanConfig {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        crate::membership::PlanConfig {
            max_voters: self.max_voters,
            min_voters: self.membership.min_voters,
            dead_after_ms: ms(self.membership.dead_after),
            stabilization_ms: ms(self.membership.stabilization),
            same_name_supersedes: self.names_authenticated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_named() {
        assert!(NodeConfig::default().validate().is_ok());
        let c = NodeConfig {
            session_ttl: Duration::from_millis(10),
            ..NodeConfig::default()
        };
        assert!(matches!(c.validate(), Err(Error::Config(m)) if m.contains("session_ttl")));
        let c = NodeConfig {
            max_voters: 0,
            ..NodeConfig::default()
        };
        assert!(matches!(c.validate(), Err(Error::Config(m)) if m.contains("max_voters")));
        for even in [2, 4, 6] {
            let c = NodeConfig {
                max_voters: even,
                ..NodeConfig::default()
            };
            assert!(
                matches!(c.validate(), Err(Error::Config(ref m)) if m.contains("odd number")),
                "max_voters {even} must be refused"
            );
        }
        let c = NodeConfig {
            session_ttl: Duration::from_secs(30),
            ..NodeConfig::default()
        };
        assert!(matches!(c.validate(), Err(Error::Config(m)) if m.contains("dead_after")));
    }

    /// The planner keeps the voters at an odd count and takes the floor
    /// down to the odd number below an even `min_voters`
    /// (`membership/planner.rs`, `odd_floor`), so `min_voters: 2` let
    /// silence leave one voter: refused, as an even `max_voters` is.
    #[test]
    fn an_even_min_voters_is_refused_like_an_even_max_voters() {
        let with = |min_voters| NodeConfig {
            membership: MembershipConfig {
                min_voters,
                ..MembershipConfig::default()
            },
            ..NodeConfig::default()
        };
        for even in [2, 4, 6] {
            let r = with(even).validate();
            assert!(
                matches!(r, Err(Error::Config(ref m)) if m.contains("min_voters") && m.contains("use 3")),
                "min_voters {even} must be refused: {r:?}"
            );
        }
        for odd in [1, 3, 5, 7] {
            assert!(with(odd).validate().is_ok(), "min_voters {odd}");
        }
        assert!(with(0).validate().is_err() && with(9).validate().is_err());
    }

    #[test]
    fn zone_length_is_checked_and_shared_names_turn_the_fast_path_off() {
        let zone = |z: String| NodeConfig {
            zone: Some(z),
            ..NodeConfig::default()
        };
        assert!(zone("z".repeat(crate::machine::MAX_ZONE))
            .validate()
            .is_ok());
        let err = zone("z".repeat(crate::machine::MAX_ZONE + 1)).validate();
        assert!(matches!(err, Err(Error::Config(m)) if m.contains("zone")));
        assert!(NodeConfig::default().plan_config().same_name_supersedes);
        let shared = NodeConfig {
            names_authenticated: false,
            ..NodeConfig::default()
        };
        assert!(!shared.plan_config().same_name_supersedes);
    }

    /// Issue 8, item 3: a TTL that cannot survive a leader change with the
    /// tick in use is refused, naming the minimum; a derived tick makes
    /// every accepted TTL survive one.
    #[test]
    fn a_ttl_shorter_than_a_failover_is_refused_and_the_derived_tick_fits_every_ttl() {
        let c = NodeConfig {
            session_ttl: Duration::from_secs(1),
            ..NodeConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("minimum is"), "{err}");
        for ms in [1_000u64, 1_500, 2_000, 3_000, 10_000, 3_600_000] {
            let ttl = Duration::from_millis(ms);
            let c = NodeConfig {
                session_ttl: ttl,
                tick: NodeConfig::tick_for_ttl(ttl),
                membership: MembershipConfig {
                    dead_after: ttl.max(Duration::from_secs(20)),
                    ..MembershipConfig::default()
                },
                ..NodeConfig::default()
            };
            assert!(c.validate().is_ok(), "ttl {ttl:?} tick {:?}", c.tick);
            assert!(c.min_ttl_for_failover() <= ttl);
        }
        assert_eq!(
            NodeConfig::tick_for_ttl(Duration::from_secs(10)),
            Duration::from_millis(50)
        );
        let c = NodeConfig {
            session_ttl: Duration::from_millis(300),
            tick: NodeConfig::tick_for_ttl(Duration::from_millis(300)),
            ..NodeConfig::default()
        };
        assert!(c.validate().is_err(), "below MIN_TTL");
    }
}
