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
        }
    }
}

impl NodeConfig {
    /// The shortest session TTL accepted.
    pub const MIN_TTL: Duration = Duration::from_millis(300);

    /// Checks the options, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        if self.session_ttl < Self::MIN_TTL {
            return Err(Error::Config(format!(
                "session_ttl is {:?}; it must be at least {:?} so keepalives (every ttl/3) can arrive in time",
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
        if !(1..=7).contains(&self.max_voters) {
            return Err(Error::Config(format!(
                "max_voters is {}; use 3 or 5 (1 to 7 accepted)",
                self.max_voters
            )));
        }
        if self.tick.is_zero()
            || self.election_ticks <= self.heartbeat_ticks
            || self.heartbeat_ticks == 0
        {
            return Err(Error::Config(
                "raft timing: tick must be non-zero and election_ticks > heartbeat_ticks > 0"
                    .into(),
            ));
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

    /// How often a node sends its session a keepalive.
    pub fn keepalive_interval(&self) -> Duration {
        self.session_ttl / 3
    }

    /// The election timeout as a duration (the lower bound of raft-rs's
    /// randomised timeout).
    pub fn election_timeout(&self) -> Duration {
        self.tick * self.election_ticks as u32
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
    }
}
