//! The shared state's operations: peer slots, connection replacement and
//! retirement of stale connections, sending, forgetting peers, and what
//! connections on demand need (issue 10: dial requests, the idle time). Split
//! from `endpoint.rs` (which holds the types, configuration and the
//! transport handle) to keep each file to one job.

use std::collections::hash_map::Entry;
use std::sync::atomic::Ordering;

use super::*;

impl Shared {
    /// Spawns `fut` so that it stops when the transport closes.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.spawn_boxed(Box::pin(fut));
    }

    /// [`Shared::spawn`] of a boxed future. Why boxed: tokio compiles its
    /// task machinery (harness, poll, drop, join) and this `select!` once
    /// per spawned future type, about 7 KiB each; the transport spawns a
    /// dozen types (readers, writers, dials, accepts), and boxed they share
    /// one (issue 12, item 9). The `select!` around it is boxed again by
    /// `peerlock_core::task`, whose one copy of tokio's task machinery
    /// every peerlock task shares. The cost is two allocations per spawn
    /// (per connection or stream, not per message) and two indirect calls
    /// per poll.
    #[inline(never)]
    fn spawn_boxed(&self, fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) {
        let mut stop = self.shutdown.subscribe();
        peerlock_core::task::spawn(async move {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => {}
                () = fut => {}
            }
        });
    }

    /// Completes once the transport is closed.
    pub(crate) async fn stopped(&self) {
        let mut stop = self.shutdown.subscribe();
        let _ = stop.wait_for(|s| *s).await;
    }

    /// Completes when no discovery is running (waiting a moment for one
    /// that has not started yet). Discovery's probes are dials: a writer
    /// that dialed at the same time would make a second connection for the
    /// pair, and the two would replace each other, losing frames.
    pub(crate) async fn discovery_settled(&self) {
        let mut rx = self.discovery.subscribe();
        let _ = tokio::time::timeout(DISCOVERY_GRACE, rx.wait_for(|d| *d != Discovery::Idle)).await;
        let _ = rx.wait_for(|d| *d != Discovery::Running).await;
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(super) fn close(&self) {
        if self.shutdown.send_replace(true) {
            return;
        }
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
        // Dropping the slots drops the queues' senders: writers end.
        self.peers.lock().clear();
        self.directory.lock().clear();
        tracing::debug!(node = %self.name, "transport closed");
    }

    pub(super) fn send(self: &Arc<Self>, to: NodeId, msgs: Vec<PeerMessage>) {
        if msgs.is_empty() || self.is_closed() {
            return;
        }
        if to == self.me {
            tracing::debug!("not sending to self");
            return;
        }
        let mut peers = self.peers.lock();
        let slot = match peers.entry(to) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(vacant) => {
                // A learned member's first message: its slot starts now.
                let Some(info) = self.directory.lock().remove(&to) else {
                    tracing::debug!(peer = %to, n = msgs.len(), "unknown peer; messages dropped");
                    return;
                };
                vacant.insert(self.new_slot(info, true, None))
            }
        };
        let (bulk, msgs): (Vec<PeerMessage>, Vec<PeerMessage>) =
            msgs.into_iter().partition(crate::bulk::is_bulk);
        for m in bulk {
            if slot.bulk.try_send(m).is_err() {
                tracing::debug!(peer = %to, "bulk queue full; large message dropped");
            }
        }
        if msgs.is_empty() {
            return;
        }
        if let Err(e) = slot.queue.try_send(msgs) {
            let n = match &e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => {
                    m.len()
                }
            };
            tracing::debug!(peer = %to, n, "peer queue full; messages dropped");
        }
    }

    /// Dials `addr` and returns the connection with its peer's identity
    /// (see `peer::identify`).
    pub(crate) async fn dial(
        &self,
        addr: SocketAddr,
    ) -> Result<(Connection, PeerInfo), TransportError> {
        // One fixed server name for every peer: the certificate is checked
        // against the cluster CAs, not the address (see `tls/verify.rs`),
        // and the identity is its common name, read below.
        // The client configuration of now: a reload changes it (reload.rs).
        let connecting =
            self.endpoint
                .connect_with(self.tls.client(), addr, crate::tls::SERVER_NAME)?;
        let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting)
            .await
            .map_err(|_| TransportError::HandshakeTimeout)??;
        let (id, name) = peer::identify(self, &conn).await?;
        Ok((conn, PeerInfo { id, name, addr }))
    }

    /// Creates `info`'s slot and writer if it has none, and makes `conn`
    /// (if any) the pair's connection, in one step so the writer never
    /// starts without it. A configured address replaces one learned from
    /// an accepted connection.
    pub(crate) fn ensure_peer(
        self: &Arc<Self>,
        info: PeerInfo,
        configured: bool,
        conn: Option<Connection>,
    ) {
        if self.is_closed() || info.id == self.me {
            return;
        }
        let mut peers = self.peers.lock();
        if let Some(slot) = peers.get_mut(&info.id) {
            if configured {
                slot.configure(info);
            }
            if let Some(conn) = conn {
                replace(&slot.conn, conn);
            }
            return;
        }
        // A learned member keeps its learned address and stays configured,
        // as it would had its slot existed; a newer configuration wins.
        let learned = self.directory.lock().remove(&info.id);
        let (info, configured) = match learned {
            Some(known) if !configured => (known, true),
            Some(_) => (info, true),
            None => (info, configured),
        };
        peers.insert(info.id, self.new_slot(info, configured, conn));
    }

    /// Makes `info`'s slot: its queues, and starts its writer and its bulk
    /// sender. The caller puts it in `peers`, whose lock it holds.
    fn new_slot(
        self: &Arc<Self>,
        info: PeerInfo,
        configured: bool,
        conn: Option<Connection>,
    ) -> PeerSlot {
        let (queue, rx) = crate::queue::channel(QUEUE_DEPTH, crate::QUEUE_BYTES);
        let (conn, conn_rx) = watch::channel(conn);
        let poke = Arc::new(Notify::new());
        let activity = Arc::new(crate::activity::Activity::new());
        let span = tracing::info_span!("peer", node = %self.name, peer = %info.name);
        tracing::debug!(peer = %info.name, id = %info.id, addr = %info.addr, configured, "new peer");
        let (bulk, bulk_rx) = mpsc::channel(BULK_QUEUE_DEPTH);
        let sender = peer::bulk_loop(
            Arc::clone(self),
            bulk_rx,
            conn_rx.clone(),
            Arc::clone(&poke),
            Arc::clone(&activity),
        );
        self.spawn(sender.instrument(span.clone()));
        let writer = crate::writer::write_loop(
            Arc::clone(self),
            info.id,
            rx,
            conn_rx,
            Arc::clone(&poke),
            Arc::clone(&activity),
        );
        self.spawn(writer.instrument(span));
        PeerSlot {
            info,
            configured,
            queue,
            bulk,
            conn,
            poke,
            activity,
        }
    }

    /// Registers a peer this node learned of (from its data directory or
    /// the member table, not from a connection the peer made).
    ///
    /// It used to announce this process at once to a peer that owns the
    /// pair's connection (the lower id), so that the peer would dial it
    /// (at a new address, after a restart). Since issue 10 the first
    /// message queued for that peer does (a dial request, see `writer.rs`),
    /// with the same probe; announcing to every member a joining node
    /// learns cost n / 2 handshakes per join, n^2 / 4 for a cluster formed
    /// by joins, for pairs that may never talk.
    ///
    /// Nor does it make the peer's slot (its writer and bulk sender, two
    /// tasks, and their queues) before a message goes to the peer or comes
    /// from it: every node learns every member, and a slot for each cost
    /// n^2 tasks and about 8 KiB each across a cluster of n, which stopped
    /// 1 000 nodes from forming (issue 10, curve 5), though a follower or
    /// learner talks only to its leader. The name and address wait in the
    /// directory until then.
    pub(crate) fn learn(self: &Arc<Self>, info: PeerInfo) {
        if self.is_closed() || info.id == self.me {
            return;
        }
        let mut peers = self.peers.lock();
        if let Some(slot) = peers.get_mut(&info.id) {
            slot.configure(info);
            return;
        }
        self.directory.lock().insert(info.id, info);
    }

    /// Dials `addr` once and closes the connection at once, like a
    /// discovery probe. The peer there owns the pair's connection and only
    /// it dials; a probe is how it learns that this node wants a
    /// connection (issue 10: a dial request) and that this node runs as a
    /// new process, maybe at a new address: its accept side retires the
    /// connection to the previous process and dials at the probe's address
    /// ([`Shared::retire_stale`]). Start-up discovery probes only the
    /// configured addresses (a joined node's seeds); without this, a node
    /// restarted at a new address would never be dialed there by the other
    /// members whose pairs they own, and could not reach a leader among
    /// them.
    pub(crate) fn announce(self: &Arc<Self>, addr: SocketAddr) {
        let shared = Arc::clone(self);
        self.spawn(async move {
            match shared.dial(addr).await {
                Ok((conn, _)) => {
                    conn.close(VarInt::from_u32(peer::CLOSE_PROBE), b"address announce")
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "could not announce this process to a peer")
                }
            }
        });
    }

    /// Makes `peer`'s writer send a heartbeat on the pair's connection now
    /// (if it has one). Called when `peer` may have restarted: if the
    /// connection belongs to its previous process, the heartbeat draws a
    /// stateless reset from the new one (see [`endpoint_config`]), and the
    /// dead connection is dropped and re-dialed at once.
    pub(crate) fn poke(&self, peer: NodeId) {
        if let Some(slot) = self.peers.lock().get(&peer) {
            slot.poke.notify_one();
        }
    }

    /// Closes the pair's connection to `peer` when `probe`, a newer
    /// authenticated connection from `peer`, shows it belongs to an older
    /// process that is gone. The probe comes from another address (one
    /// endpoint has one socket) or presents another certificate (a
    /// re-issued key): no stateless reset would tell us then, as nothing
    /// answers at the old address and a new key derives other reset and
    /// connection-ID keys. But another live process holding the same
    /// certificate could probe too, so the old connection is tested first:
    /// a heartbeat on it, and it is retired only if nothing acknowledges it
    /// within a few round trips. The writer then re-dials at once, at the
    /// probe's address.
    pub(crate) fn retire_stale(self: &Arc<Self>, peer: NodeId, probe: &Connection) {
        let (old, poke) = {
            let mut peers = self.peers.lock();
            let Some(slot) = peers.get_mut(&peer) else {
                return;
            };
            let moved = slot.info.addr != probe.remote_address();
            let current = slot.conn.borrow().clone();
            match current {
                Some(old)
                    if old.close_reason().is_none()
                        && (old.remote_address() != probe.remote_address()
                            || peer_cert(&old) != peer_cert(probe)) =>
                {
                    (old, Arc::clone(&slot.poke))
                }
                Some(old) if old.close_reason().is_none() => return,
                _ => {
                    // No connection to test: the probe's address is the
                    // best there is.
                    if moved {
                        tracing::info!(peer = %slot.info.name, new = %probe.remote_address(), "peer seen at a new address");
                        slot.info.addr = probe.remote_address();
                        slot.poke.notify_one();
                    }
                    return;
                }
            }
        };
        let shared = Arc::clone(self);
        let new_addr = probe.remote_address();
        let probe = probe.clone();
        self.spawn(async move {
            let acks = old.stats().frame_rx.acks;
            poke.notify_one();
            tokio::time::sleep((old.rtt() * 4).max(STALE_CHECK_MIN)).await;
            if old.close_reason().is_some() {
                return;
            }
            if old.stats().frame_rx.acks != acks {
                // Alive: a second process under its name, if elsewhere.
                if old.remote_address() != new_addr {
                    shared.refuse_name(peer, old.remote_address(), &probe);
                }
                return;
            }
            let mut peers = shared.peers.lock();
            let Some(slot) = peers.get_mut(&peer) else {
                return;
            };
            let current = slot.conn.borrow().as_ref().map(Connection::stable_id);
            if current != Some(old.stable_id()) {
                return;
            }
            tracing::info!(peer = %slot.info.name, old = %old.remote_address(), new = %new_addr, "peer restarted; dropping the connection to its previous process");
            slot.info.addr = new_addr;
            slot.conn.send_replace(None);
            old.close(VarInt::from_u32(CLOSE_DUPLICATE), b"stale");
            slot.poke.notify_one();
        });
    }

    /// Makes `conn` the pair's connection, closing the one it replaces.
    pub(crate) fn install(&self, peer: NodeId, conn: Connection) {
        if let Some(slot) = self.peers.lock().get(&peer) {
            replace(&slot.conn, conn);
        }
    }

    /// The address to dial `peer` at, and whether it was configured.
    pub(crate) fn peer_addr(&self, peer: NodeId) -> Option<(SocketAddr, bool)> {
        self.peers
            .lock()
            .get(&peer)
            .map(|s| (s.info.addr, s.configured))
    }

    /// Forgets an unconfigured peer that stayed unreachable.
    pub(crate) fn forget(&self, peer: NodeId) -> bool {
        let mut peers = self.peers.lock();
        if peers.get(&peer).is_some_and(|s| !s.configured) {
            peers.remove(&peer);
            return true;
        }
        false
    }
}

/// Sets the pair's connection, closing the one it replaces.
fn replace(slot: &watch::Sender<Option<Connection>>, conn: Connection) {
    let id = conn.stable_id();
    if let Some(old) = slot.send_replace(Some(conn)) {
        if old.stable_id() != id {
            old.close(VarInt::from_u32(CLOSE_DUPLICATE), b"replaced");
        }
    }
}

/// The leaf certificate a connection's peer presented.
fn peer_cert(conn: &Connection) -> Option<Vec<u8>> {
    let any = conn.peer_identity()?;
    let certs = any
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    certs.first().map(|c| c.as_ref().to_vec())
}

pub(super) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Shared {
    /// See [`QuicTransport::set_idle_close`].
    pub(super) fn set_idle_close(&self, idle: Duration) {
        self.idle_close_ms
            .store(duration_ms(idle), Ordering::Relaxed);
    }

    /// See [`IDLE_CLOSE`].
    pub(crate) fn idle_close(&self) -> Duration {
        Duration::from_millis(self.idle_close_ms.load(Ordering::Relaxed))
    }

    /// See [`QuicTransport::open_connections`].
    pub(super) fn open_connections(&self) -> usize {
        self.peers
            .lock()
            .values()
            .filter(|s| {
                s.conn
                    .borrow()
                    .as_ref()
                    .is_some_and(|c| c.close_reason().is_none())
            })
            .count()
    }

    /// See [`QuicTransport::peer_slots`].
    pub(super) fn peer_slots(&self) -> usize {
        self.peers.lock().len()
    }

    /// See [`QuicTransport::close_connections`].
    pub(super) fn close_connections(&self) -> usize {
        let peers = self.peers.lock();
        let mut n = 0;
        for slot in peers.values() {
            if let Some(c) = slot.conn.borrow().as_ref() {
                if c.close_reason().is_none() {
                    c.close(VarInt::from_u32(peer::CLOSE_RECONNECT), b"reconnect");
                    n += 1;
                }
            }
        }
        n
    }

    /// See [`QuicTransport::peer_certificates`].
    pub(super) fn peer_certificates(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = self
            .peers
            .lock()
            .values()
            .filter_map(|s| {
                let c = s.conn.borrow().clone()?;
                if c.close_reason().is_some() {
                    return None;
                }
                Some((s.info.name.clone(), peer_cert(&c)?))
            })
            .collect();
        out.sort();
        out
    }

    /// When the pair with `peer` last exchanged a message, for its readers.
    pub(crate) fn activity(&self, peer: NodeId) -> Option<Arc<crate::activity::Activity>> {
        self.peers
            .lock()
            .get(&peer)
            .map(|s| Arc::clone(&s.activity))
    }

    /// Asks `peer`, which owns the pair's connection, to dial this node: a
    /// probe, as [`Shared::announce`] sends, at the address its slot has.
    pub(crate) fn request_dial(self: &Arc<Self>, peer: NodeId) {
        if let Some((addr, _)) = self.peer_addr(peer) {
            self.announce(addr);
        }
    }
}
