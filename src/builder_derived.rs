//! What a `NodeBuilder` derives from its options: the core's
//! configuration, and a copy of the options for a rejoin (`rejoin.rs`).
//! A child of `builder`, so it reads the builder's private fields.

use std::net::SocketAddr;
use std::time::Duration;

use peerlock_core::config::{MembershipConfig, NodeConfig};

use super::NodeBuilder;

impl NodeBuilder {
    /// Refuses address lists that cannot work together (issue 9, a
    /// newcomer's finding 11: both lists were taken and the start waited
    /// for its timeout), a `bootstrap_expect` they cannot satisfy, and an
    /// empty list.
    pub(super) fn check_lists(&self) -> Result<(), peerlock_core::Error> {
        if !self.peers.is_empty() && !self.seeds.is_empty() {
            return Err(peerlock_core::Error::Config(
                "peers(..) and seeds(..) were both given: peers(..) founds a static initial cluster of exactly the listed nodes (and joins through them once it runs), seeds(..) joins a running cluster or forms one with bootstrap_expect(n); choose one".into(),
            ));
        }
        match self.bootstrap_expect {
            Some(0) => {
                return Err(peerlock_core::Error::Config(
                    "bootstrap_expect(0): a cluster needs at least one founding member; give the number of instances first deployed (bootstrap_expect(1) for a one-node cluster)".into(),
                ))
            }
            Some(n) if !self.peers.is_empty() => {
                return Err(peerlock_core::Error::Config(format!(
                    "bootstrap_expect({n}) and peers(..) were both given: peers(..) founds a static initial cluster of exactly the listed nodes, bootstrap_expect(n) forms one from the seeds; choose one (to form through these addresses, pass them to seeds(..))"
                )))
            }
            Some(n) if n > 1 && self.seeds.is_empty() => {
                return Err(peerlock_core::Error::Config(format!(
                    "bootstrap_expect({n}) needs seeds(..): the addresses where this node finds the {} other candidate{}",
                    n - 1,
                    if n == 2 { "" } else { "s" }
                )))
            }
            _ => {}
        }
        if self.peers.is_empty() && self.seeds.is_empty() && self.bootstrap_expect.is_none() {
            // Issue 9: an unset variable or a bad template gave every
            // instance an empty list, and each founded a one-node cluster of
            // its own that granted every lock.
            return Err(peerlock_core::Error::Config(
                "no peers given: peers(..) is empty. An empty list is refused so that instances misconfigured alike (an unset variable, a bad template) cannot each found a cluster of their own and all grant the same lock. List the cluster's addresses (or seeds(..) to join a running cluster, with bootstrap_expect(n) to form one); for a one-node cluster, give this node's own address as its only peer, or bootstrap_expect(1)".into(),
            ));
        }
        Ok(())
    }

    /// Refuses to become a member at an address no peer can dial (issue 9,
    /// a newcomer's finding 10: a node listening on `0.0.0.0` was recorded,
    /// and promoted, at `0.0.0.0:PORT`). A seed that proved to be this node
    /// gives its address, so `listen(0.0.0.0:P)` with the node's own
    /// address among the seeds (a Kubernetes headless service) is fine.
    pub(super) fn check_member_addr(
        found: &crate::members::Found,
        first_start: bool,
    ) -> Result<(), peerlock_core::Error> {
        let me = found.members.iter().find(|m| m.id == found.me);
        if let Some(addr) = me
            .map(|m| m.addr)
            .filter(|a| first_start && a.ip().is_unspecified())
        {
            return Err(peerlock_core::Error::Config(format!(
                "this node would be recorded at {addr}, which no peer can dial: give advertise(..) the address peers reach it at (or listen on that address)"
            )));
        }
        Ok(())
    }

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
