//! Two live processes presenting one name (issue 9): the newcomer is told.
//!
//! A node's name is its identity on the wire: the pair's connection, the
//! member table and Raft's routing all go by it. A second process started
//! under a live member's name (a copy of its certificate, or the same
//! `name(..)` with a shared one) is not a restart: both answer. A peer
//! kept the live process's connection (it still acknowledges, see
//! [`Shared::retire_stale`]) or swapped between the two, so the newcomer
//! heard nothing back and waited for its start-up timeout.
//!
//! Now a peer that holds an open connection to a process under that name
//! at another address, and sees it acknowledge a heartbeat after the
//! newcomer connected, refuses the newcomer: it closes the newcomer's
//! connection with [`peer::CLOSE_NAME_IN_USE`] and a reason that names the
//! live process's address and what to do, and dials the newcomer to close
//! that connection the same way (the newcomer's own connection may be a
//! probe it closed at once). The newcomer's transport records the reason
//! ([`QuicTransport::name_in_use`]), and its start stops with a
//! configuration error.
//!
//! Never for a process that is gone: a dead process acknowledges nothing
//! (QUIC acknowledgements come from the process, not the kernel), so the
//! blank restart of a crashed member, at any address, is let in as before,
//! and a process that stopped gracefully closed its connections. The
//! heartbeat is given four round trips, at least [`STALE_CHECK_MIN`].

use super::*;

impl Shared {
    /// The pair's connection to `peer` when it is open at an address other
    /// than `newcomer`'s (a moved peer's old process, or a second process).
    pub(crate) fn open_elsewhere(&self, peer: NodeId, newcomer: &Connection) -> Option<Connection> {
        let peers = self.peers.lock();
        let old = peers.get(&peer)?.conn.borrow().clone()?;
        (old.close_reason().is_none() && old.remote_address() != newcomer.remote_address())
            .then_some(old)
    }

    /// Whether `old`, the pair's connection to `peer`, acknowledges a
    /// heartbeat within four round trips (at least [`STALE_CHECK_MIN`]).
    pub(crate) async fn still_answers(&self, peer: NodeId, old: &Connection) -> bool {
        let acks = old.stats().frame_rx.acks;
        self.poke(peer);
        tokio::time::sleep((old.rtt() * 4).max(STALE_CHECK_MIN)).await;
        old.stats().frame_rx.acks != acks && old.close_reason().is_none()
    }

    /// Refuses `newcomer`, a connection from a second live process under
    /// `peer`'s name (the live one answers at `live`); see the module docs.
    pub(crate) fn refuse_name(
        self: &Arc<Self>,
        peer: NodeId,
        live: SocketAddr,
        newcomer: &Connection,
    ) {
        let name = self
            .peers
            .lock()
            .get(&peer)
            .map_or_else(String::new, |s| s.info.name.clone());
        let at = newcomer.remote_address();
        tracing::warn!(peer = %name, live = %live, newcomer = %at, "a second process presents a live member's name; refused");
        let reason = format!(
            "{:?} refused this process: the name {name:?} belongs to a live member at {live}, which still answers; every instance needs its own name (its own certificate, or its own name(..) when they share one); if the process at {live} is this node's previous run, stop it first",
            self.name
        );
        let code = VarInt::from_u32(peer::CLOSE_NAME_IN_USE);
        newcomer.close(code, reason.as_bytes());
        let shared = Arc::clone(self);
        self.spawn(async move {
            match shared.dial(at).await {
                Ok((conn, info)) if info.id == peer => conn.close(code, reason.as_bytes()),
                Ok((conn, _)) => conn.close(VarInt::from_u32(peer::CLOSE_PROBE), b"not the newcomer"),
                Err(e) => tracing::debug!(%at, error = %e, "could not tell the newcomer its name is in use"),
            }
        });
    }

    /// A peer closed a connection with [`peer::CLOSE_NAME_IN_USE`]: keep
    /// its reason for [`QuicTransport::name_in_use`].
    pub(crate) fn note_name_in_use(&self, e: &quinn::ConnectionError) {
        if let quinn::ConnectionError::ApplicationClosed(c) = e {
            if c.error_code.into_inner() == u64::from(peer::CLOSE_NAME_IN_USE) {
                let reason = String::from_utf8_lossy(&c.reason).into_owned();
                self.name_in_use.lock().get_or_insert(reason);
            }
        }
    }
}

impl QuicTransport {
    /// Why a peer refused this process because another live process runs
    /// under its name (see the module docs), once one did: a start stops
    /// on it.
    pub fn name_in_use(&self) -> Option<String> {
        self.shared.name_in_use.lock().clone()
    }
}
