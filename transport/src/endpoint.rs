//! The QUIC endpoint: binding, accepting, dialing, and the table of peers.
//!
//! One endpoint (one UDP socket) both accepts and dials. Each known peer has
//! a slot: a bounded queue that [`Transport::send`] pushes to, a writer task
//! that drains it (see `peer.rs`), and the pair's current connection.
//!
//! The rules (one connection per pair, unconfigured peers) are documented
//! on [`QuicTransport`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use peerlock_core::transport::{Incoming, PeerMessage, Transport};
use peerlock_core::{Error, NodeId};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, EndpointConfig, TokioRuntime, TransportConfig, VarInt};
use tokio::sync::{mpsc, watch, Notify};
use tracing::Instrument;

use crate::peer::{self, CLOSE_DUPLICATE, CLOSE_SHUTDOWN};
use crate::tls::TlsConfig;
use crate::TransportError;

/// How often an idle connection is pinged, so NATs and the peer keep it.
pub const KEEP_ALIVE: Duration = Duration::from_millis(500);
/// How long a silent connection lives: a dead peer is noticed this fast.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest a handshake may take.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// First delay before re-dialing a peer; doubles up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest delay between dials of one peer.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Batches queued per peer before [`Transport::send`] drops new ones.
pub const QUEUE_DEPTH: usize = 1024;
/// Large messages (snapshots) queued per peer before new ones are dropped.
pub const BULK_QUEUE_DEPTH: usize = 2;

/// A peer as [`QuicTransport::discover`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The Raft id: [`NodeId::from_name`] of `name`.
    pub id: NodeId,
    /// The common name of the peer's certificate.
    pub name: String,
    /// The address the peer is reached at.
    pub addr: SocketAddr,
}

/// One peer's slot.
struct PeerSlot {
    info: PeerInfo,
    /// Configured peers are never forgotten; accepted strangers may be.
    configured: bool,
    queue: crate::queue::Sender,
    /// Large messages, sent on bulk streams (see `bulk.rs`).
    bulk: mpsc::Sender<PeerMessage>,
    conn: watch::Sender<Option<Connection>>,
    /// Asks the writer to send a heartbeat on the pair's connection now.
    poke: Arc<Notify>,
}

/// State shared by the transport handle and its tasks.
pub(crate) struct Shared {
    pub(crate) me: NodeId,
    pub(crate) name: String,
    pub(crate) local_addr: SocketAddr,
    pub(crate) advertise: Option<SocketAddr>,
    pub(crate) configured: Vec<SocketAddr>,
    pub(crate) endpoint: Endpoint,
    pub(crate) incoming: mpsc::Sender<Incoming>,
    peers: Mutex<HashMap<NodeId, PeerSlot>>,
    /// Keying material of accepted connections that presented our own
    /// name: discovery matches its dials against it to recognise itself.
    pub(crate) self_keys: Mutex<HashSet<[u8; 32]>>,
    shutdown: watch::Sender<bool>,
    /// Where discovery is; see [`Shared::discovery_settled`].
    pub(crate) discovery: watch::Sender<Discovery>,
}

/// Where [`QuicTransport::discover`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Discovery {
    /// Not started (yet).
    Idle,
    /// Probing the configured addresses.
    Running,
    /// Finished, successfully or not.
    Done,
}

/// The least time a connection suspected stale is given to acknowledge a
/// heartbeat (see [`Shared::retire_stale`]).
const STALE_CHECK_MIN: Duration = Duration::from_millis(100);

/// How long a writer waits for discovery to start before dialing anyway.
const DISCOVERY_GRACE: Duration = Duration::from_secs(1);

/// The QUIC transport: implements [`Transport`] for the Raft driver.
///
/// Built with [`QuicTransport::bind`] as an `Arc`. [`QuicTransport::close`]
/// (or dropping the last `Arc`) closes the endpoint and stops every task:
/// after that nothing is sent or delivered.
///
/// # One connection per pair
///
/// The node with the lower [`NodeId`] owns the pair's connection: it dials,
/// and re-dials with exponential backoff (50 ms doubling to 1 s) when the
/// connection dies. The higher node never keeps a connection it dialed; it
/// waits for the lower node's. A connection accepted from a lower peer
/// replaces the pair's previous one (the lower node only dials again when it
/// lost the old connection or restarted). The only transient extra
/// connections are [`QuicTransport::discover`]'s probes from the higher
/// side, closed as soon as the peer's certificate has been read.
///
/// A peer that crashed and restarted on the same address is noticed at
/// once, not after [`IDLE_TIMEOUT`]: the first packet of its old
/// connection that reaches the new process is answered with a QUIC
/// stateless reset (every process of a node derives the same reset key
/// from its private key), which ends the old connection, and the lower
/// node re-dials. Keep-alives carry such a packet within [`KEEP_ALIVE`];
/// a discovery probe from the restarted higher node makes the lower one
/// send at once. A peer back on another address, or with a re-issued
/// certificate and key, cannot be reset that way (nothing answers at the
/// old address; a new key derives other reset keys): its discovery probe,
/// which comes from another address or presents another certificate than
/// the pair's connection, proves the connection stale, and it is closed at
/// once and re-dialed at the probe's address.
///
/// # Peers that were not configured
///
/// A connection from a node that is not in the configured list is accepted
/// (the cluster CA vouches for it, and a node joining later needs this): it
/// gets a slot addressed at the connection's remote address. If this node
/// owns the pair and cannot reach that address for a while, the slot is
/// forgotten again.
///
/// # Self
///
/// [`QuicTransport::discover`] recognises this node among the configured
/// addresses by its own name, and proves it by matching TLS keying material
/// with the handshake its own endpoint accepted: a *different* process
/// presenting the same certificate is a configuration error, not "self".
pub struct QuicTransport {
    shared: Arc<Shared>,
}

impl fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicTransport")
            .field("name", &self.shared.name)
            .field("id", &self.shared.me)
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

fn io_err(e: &std::io::Error, msg: String) -> Error {
    Error::Io(std::io::Error::new(e.kind(), msg))
}

/// Labels of the secrets derived from the node's key (see
/// [`endpoint_config`]).
const RESET_KEY_LABEL: &[u8] = b"peerlock/1 QUIC stateless reset key";
const CID_KEY_LABEL: &[u8] = b"peerlock/1 QUIC connection ID key";

/// quinn's endpoint configuration, with keys that outlive the process.
///
/// A node killed without closing its connections (a crash, `kill -9`)
/// leaves its peers holding connections to a process that is gone. When it
/// restarts on the same address, a peer's next packet on such a connection
/// reaches the new process, which answers with a QUIC stateless reset
/// (RFC 9000 §10.3), and the peer drops the connection at once instead of
/// waiting out [`IDLE_TIMEOUT`]. For that the new process must (1) compute
/// the same reset tokens the old one handed out, and (2) recognise the old
/// connection IDs as its own (quinn drops packets whose IDs its generator
/// does not validate). quinn's defaults draw both keys at random per
/// process; here both are derived from the node's private key, so every
/// incarnation of the node shares them and nobody else can forge them.
fn endpoint_config(tls: &TlsConfig) -> EndpointConfig {
    let reset: [u8; 32] = tls.derive_secret(RESET_KEY_LABEL);
    let mut config = EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &reset,
    )));
    let cid_key = u64::from_le_bytes(tls.derive_secret(CID_KEY_LABEL));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}

fn transport_config() -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    // Milliseconds; 3 000 fits a VarInt, so this conversion is exact.
    t.max_idle_timeout(Some(VarInt::from_u32(3_000).into()));
    // One long-lived stream per direction, one bulk stream at a time, and
    // a few spares for reconnects.
    t.max_concurrent_uni_streams(VarInt::from_u32(8));
    t.max_concurrent_bidi_streams(VarInt::from_u32(0));
    Arc::new(t)
}

impl QuicTransport {
    /// Binds `listen` (UDP; port 0 lets the OS choose) and starts accepting
    /// peers. `advertise` is the address peers reach this node at, if it is
    /// not the bound one; `peers` the configured cluster (it may include
    /// this node). Delivered messages go to `incoming`.
    ///
    /// Must be called inside a Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the address when it cannot be bound,
    /// [`Error::Tls`] when the TLS material is unusable, [`Error::Config`]
    /// outside a Tokio runtime.
    pub fn bind(
        listen: SocketAddr,
        advertise: Option<SocketAddr>,
        tls: &TlsConfig,
        peers: Vec<SocketAddr>,
        incoming: mpsc::Sender<Incoming>,
    ) -> Result<Arc<Self>, Error> {
        let socket = std::net::UdpSocket::bind(listen)
            .map_err(|e| io_err(&e, format!("cannot bind UDP address {listen}: {e}")))?;
        Self::bind_socket(socket, advertise, tls, peers, incoming)
    }

    /// Like [`QuicTransport::bind`] with a UDP socket bound already.
    ///
    /// # Errors
    ///
    /// As [`QuicTransport::bind`].
    pub fn bind_socket(
        socket: std::net::UdpSocket,
        advertise: Option<SocketAddr>,
        tls: &TlsConfig,
        peers: Vec<SocketAddr>,
        incoming: mpsc::Sender<Incoming>,
    ) -> Result<Arc<Self>, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Config(
                "the QUIC transport must be started inside a Tokio runtime".into(),
            ));
        }
        let local_addr = socket
            .local_addr()
            .map_err(|e| io_err(&e, format!("cannot read the bound UDP address: {e}")))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| io_err(&e, format!("cannot configure UDP socket {local_addr}: {e}")))?;
        let server_tls = tls
            .server_config()
            .map_err(|e| Error::Tls(format!("server configuration: {e}")))?;
        let client_tls = tls
            .client_config()
            .map_err(|e| Error::Tls(format!("client configuration: {e}")))?;
        let server_crypto = QuicServerConfig::try_from(server_tls)
            .map_err(|e| Error::Tls(format!("server configuration unusable for QUIC: {e}")))?;
        let client_crypto = QuicClientConfig::try_from(client_tls)
            .map_err(|e| Error::Tls(format!("client configuration unusable for QUIC: {e}")))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(transport_config());
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(transport_config());
        let mut endpoint = Endpoint::new(
            endpoint_config(tls),
            Some(server),
            socket,
            Arc::new(TokioRuntime),
        )
        .map_err(|e| io_err(&e, format!("cannot start QUIC on {local_addr}: {e}")))?;
        endpoint.set_default_client_config(client);

        let name = tls.node_name().to_owned();
        let me = NodeId::from_name(&name);
        let (shutdown, _) = watch::channel(false);
        let (discovery, _) = watch::channel(Discovery::Idle);
        let mut seen = HashSet::new();
        let configured: Vec<SocketAddr> = peers.into_iter().filter(|a| seen.insert(*a)).collect();
        let shared = Arc::new(Shared {
            me,
            name,
            local_addr,
            advertise,
            configured,
            endpoint,
            incoming,
            peers: Mutex::new(HashMap::new()),
            self_keys: Mutex::new(HashSet::new()),
            shutdown,
            discovery,
        });
        let span = tracing::info_span!("peerlock_transport", node = %shared.name);
        shared.spawn(crate::accept::accept_loop(Arc::clone(&shared)).instrument(span));
        tracing::debug!(node = %shared.name, addr = %local_addr, "QUIC endpoint bound");
        Ok(Arc::new(Self { shared }))
    }

    /// The bound UDP address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// This node's Raft id, derived from its certificate's name.
    pub fn local_id(&self) -> NodeId {
        self.shared.me
    }

    /// This node's name: its certificate's common name.
    pub fn local_name(&self) -> &str {
        &self.shared.name
    }

    /// The peers this transport currently knows (not including itself).
    pub fn known_peers(&self) -> Vec<PeerInfo> {
        let mut out: Vec<PeerInfo> = self
            .shared
            .peers
            .lock()
            .values()
            .map(|s| s.info.clone())
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }

    /// Connects to every configured peer address (retrying with backoff
    /// until `deadline`), learns each peer's identity from its certificate,
    /// and returns them all, this node included.
    ///
    /// A configured address that presents this node's own name and is
    /// proven to be this node (its handshake arrives at this endpoint)
    /// counts as this node; if none does, this node is added with its
    /// advertised (or bound) address.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when peers are still unreachable at `deadline`
    /// (naming them), when two addresses present the same name, or when
    /// another address presents this node's own name.
    /// [`Error::Shutdown`] if the transport is closed meanwhile.
    ///
    /// # Cancel safety
    ///
    /// Cancelling drops the probes; peers found so far stay registered.
    pub async fn discover(&self, deadline: tokio::time::Instant) -> Result<Vec<PeerInfo>, Error> {
        crate::discover::discover(&self.shared, deadline).await
    }

    /// Closes the endpoint (peers see the connections close at once) and
    /// stops every task. Idempotent.
    pub fn close(&self) {
        self.shared.close();
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Transport for QuicTransport {
    fn send(&self, to: NodeId, msgs: Vec<PeerMessage>) {
        self.shared.send(to, msgs);
    }
}

impl Shared {
    /// Spawns `fut` so that it stops when the transport closes.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
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

    fn close(&self) {
        if self.shutdown.send_replace(true) {
            return;
        }
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
        // Dropping the slots drops the queues' senders: writers end.
        self.peers.lock().clear();
        tracing::debug!(node = %self.name, "transport closed");
    }

    fn send(&self, to: NodeId, msgs: Vec<PeerMessage>) {
        if msgs.is_empty() || self.is_closed() {
            return;
        }
        if to == self.me {
            tracing::debug!("not sending to self");
            return;
        }
        let peers = self.peers.lock();
        let Some(slot) = peers.get(&to) else {
            tracing::debug!(peer = %to, n = msgs.len(), "unknown peer; messages dropped");
            return;
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

    /// Dials `addr` and returns the connection with the identity its
    /// certificate proves.
    pub(crate) async fn dial(
        &self,
        addr: SocketAddr,
    ) -> Result<(Connection, PeerInfo), TransportError> {
        // The peer's IP address is the TLS server name: certificates carry
        // IP SANs and are checked by standard webpki rules.
        let connecting = self.endpoint.connect(addr, &addr.ip().to_string())?;
        let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting)
            .await
            .map_err(|_| TransportError::HandshakeTimeout)??;
        let (id, name) = match peer::identity(&conn) {
            Ok(v) => v,
            Err(e) => {
                conn.close(VarInt::from_u32(peer::CLOSE_PROTOCOL), b"no identity");
                return Err(e);
            }
        };
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
                slot.info.addr = info.addr;
                slot.info.name = info.name;
                slot.configured = true;
            }
            if let Some(conn) = conn {
                replace(&slot.conn, conn);
            }
            return;
        }
        let (queue, rx) = crate::queue::channel(QUEUE_DEPTH, crate::QUEUE_BYTES);
        let (conn, conn_rx) = watch::channel(conn);
        let poke = Arc::new(Notify::new());
        let span = tracing::info_span!("peer", node = %self.name, peer = %info.name);
        tracing::debug!(peer = %info.name, id = %info.id, addr = %info.addr, configured, "new peer");
        let (bulk, bulk_rx) = mpsc::channel(BULK_QUEUE_DEPTH);
        let sender = peer::bulk_loop(Arc::clone(self), bulk_rx, conn_rx.clone());
        self.spawn(sender.instrument(span.clone()));
        let writer = peer::write_loop(Arc::clone(self), info.id, rx, conn_rx, Arc::clone(&poke));
        self.spawn(writer.instrument(span));
        peers.insert(
            info.id,
            PeerSlot {
                info,
                configured,
                queue,
                bulk,
                conn,
                poke,
            },
        );
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
        self.spawn(async move {
            let acks = old.stats().frame_rx.acks;
            poke.notify_one();
            tokio::time::sleep((old.rtt() * 4).max(STALE_CHECK_MIN)).await;
            if old.stats().frame_rx.acks != acks || old.close_reason().is_some() {
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
