//! What a `NodeBuilder` derives from its options: the core's
//! configuration, and a copy of the options for a rejoin (`rejoin.rs`).
//! A child of `builder`, so it reads the builder's private fields.

use std::net::SocketAddr;
use std::time::Duration;

use peerlock_core::config::{MembershipConfig, NodeConfig};

use super::NodeBuilder;

impl NodeBuilder {
    /// The core's configuration from these options (`peer_count`: how
    /// many peers were listed or resolved).
    pub(super) fn config(&self, peer_count: usize) -> NodeConfig {
        let defaults = NodeConfig::default();
        // A node that joins through seeds takes the default of 5: the
        // cluster grows to it as instances come.
        let max_voters = self
            .max_voters
            .unwrap_or(if peer_count >= 5 || self.peers.is_empty() {
                5
            } else {
                3
            });
        let session_ttl = self.session_ttl.unwrap_or(defaults.session_ttl);
        NodeConfig {
            session_ttl,
            lock_delay: self.lock_delay.unwrap_or(defaults.lock_delay),
            // Unset: 20 s, or twice a longer TTL (a voter is never
            // replaced while its session may still be alive).
            membership: self.membership.clone().unwrap_or_else(|| MembershipConfig {
                dead_after: session_ttl.saturating_mul(2).max(Duration::from_secs(20)),
                ..MembershipConfig::default()
            }),
            max_voters,
            leave_on_shutdown: self.leave_on_shutdown.unwrap_or(true),
            tick: self
                .tick
                .unwrap_or_else(|| NodeConfig::tick_for_ttl(session_ttl)),
            zone: self.zone.clone(),
            names_authenticated: self.name.is_none(),
            ..defaults
        }
    }

    /// The bound address asked for, if any.
    pub(crate) fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// A re-resolution of the seeds' DNS names (`None`: addresses only).
    pub(crate) fn reresolve(&self) -> Option<crate::resolve::Reresolve> {
        #[cfg(test)]
        if let Some(r) = &self.reresolve_for_tests {
            return Some(r.clone());
        }
        crate::resolve::reresolve(&self.seeds)
    }

    /// These options again, for a rejoin: all but a socket handed over
    /// (the rejoin binds the address the first run was bound to).
    pub(crate) fn again(&self) -> NodeBuilder {
        NodeBuilder {
            listen: self.listen,
            socket: None,
            advertise: self.advertise,
            peers: self.peers.clone(),
            seeds: self.seeds.clone(),
            tls: self.tls.clone(),
            data_dir: self.data_dir.clone(),
            in_memory: self.in_memory,
            session_ttl: self.session_ttl,
            lock_delay: self.lock_delay,
            max_voters: self.max_voters,
            tick: self.tick,
            startup_timeout: self.startup_timeout,
            membership: self.membership.clone(),
            leave_on_shutdown: self.leave_on_shutdown,
            name: self.name.clone(),
            zone: self.zone.clone(),
            bootstrap_expect: self.bootstrap_expect,
            cert_expiry_warning: self.cert_expiry_warning,
            #[cfg(test)]
            reresolve_for_tests: self.reresolve_for_tests.clone(),
            tls_slot: self.tls_slot.clone(),
        }
    }
}
