//! `QuicTransport`: a quinn endpoint per node, peer discovery, and the
//! core's `Transport` trait.
//!
//! Start-up: bind, then [`QuicTransport::discover`] dials every configured
//! address and learns each peer's identity from its certificate. After
//! that, one writer task per peer keeps the pair's single connection and
//! sends batched frames; every connection gets a reader task.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use peerlock_core::transport::{Incoming, PeerMessage, Transport};
use peerlock_core::{Error, NodeId};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, VarInt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::TransportError;
use crate::peer::{identity, read_connection, write_loop, CLOSE_DUPLICATE, CLOSE_SHUTDOWN};
use crate::tls::TlsConfig;

/// Messages queued per peer before new ones are dropped (Raft retries).
const QUEUE: usize = 4096;
/// How long one dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);

/// A peer found by discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its id, from its certificate name.
    pub id: NodeId,
    /// Its certificate name.
    pub name: String,
    /// Where it is reached.
    pub addr: SocketAddr,
}

/// State shared by the transport's tasks.
pub(crate) struct Shared {
    pub(crate) me: NodeId,
    pub(crate) endpoint: Endpoint,
    pub(crate) incoming: mpsc::Sender<Incoming>,
    /// The current connection of each pair, by peer.
    pairs: Mutex<HashMap<NodeId, Connection>>,
    pairs_changed: watch::Sender<u64>,
    closed: watch::Sender<bool>,
}

impl Shared {
    /// Dials `addr`; if `expect` is given, the certificate must prove that id.
    pub(crate) async fn dial(&self, addr: SocketAddr, expect: Option<NodeId>) -> Result<Connection, TransportError> {
        let connecting = self.endpoint.connect(addr, &addr.ip().to_string())?;
        let conn = match tokio::time::timeout(DIAL_TIMEOUT, connecting).await {
            Ok(r) => r?,
            Err(_) => return Err(TransportError::Connection(quinn::ConnectionError::TimedOut)),
        };
        if let Some(want) = expect {
            let (id, _) = identity(&conn)?;
            if id != want {
                conn.close(VarInt::from_u32(CLOSE_DUPLICATE), b"unexpected identity");
                return Err(TransportError::NoIdentity);
            }
        }
        Ok(conn)
    }

    pub(crate) fn set_pair(&self, peer: NodeId, conn: Connection) {
        self.pairs.lock().insert(peer, conn);
        self.pairs_changed.send_modify(|n| *n += 1);
    }

    /// Waits for a live pair connection to `peer` (dialed by the peer).
    /// `None` once the transport is closed.
    pub(crate) async fn wait_pair(&self, peer: NodeId) -> Option<Connection> {
        let mut changed = self.pairs_changed.subscribe();
        let mut closed = self.closed.subscribe();
        loop {
            if *closed.borrow() {
                return None;
            }
            if let Some(c) = self.pairs.lock().get(&peer) {
                if c.close_reason().is_none() {
                    return Some(c.clone());
                }
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return None; },
                r = closed.changed() => if r.is_err() { return None; },
            }
        }
    }
}

/// The QUIC transport of one node.
pub struct QuicTransport {
    shared: Arc<Shared>,
    name: String,
    local_addr: SocketAddr,
    advertise: SocketAddr,
    configured: Vec<SocketAddr>,
    peers: Mutex<HashMap<NodeId, mpsc::Sender<Vec<PeerMessage>>>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

fn io_err(what: String, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(e.kind(), format!("{what}: {e}")))
}

impl QuicTransport {
    /// Binds `listen` (port 0 lets the OS choose) and starts accepting.
    /// Must be called inside a tokio runtime.
    pub fn bind(
        listen: SocketAddr,
        advertise: Option<SocketAddr>,
        tls: &TlsConfig,
        peers: Vec<SocketAddr>,
        incoming: mpsc::Sender<Incoming>,
    ) -> Result<Arc<Self>, Error> {
        let socket = UdpSocket::bind(listen).map_err(|e| io_err(format!("cannot bind UDP {listen}"), e))?;
        Self::bind_socket(socket, advertise, tls, peers, incoming)
    }

    /// Like [`QuicTransport::bind`], with a UDP socket bound by the caller.
    pub fn bind_socket(
        socket: UdpSocket,
        advertise: Option<SocketAddr>,
        tls: &TlsConfig,
        peers: Vec<SocketAddr>,
        incoming: mpsc::Sender<Incoming>,
    ) -> Result<Arc<Self>, Error> {
        let local_addr = socket
            .local_addr()
            .map_err(|e| io_err("cannot read the socket's address".into(), e))?;
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(Duration::from_millis(500)));
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(Duration::from_secs(3))
                .map_err(|e| Error::Config(format!("idle timeout: {e}")))?,
        ));
        let transport = Arc::new(transport);
        let server_crypto = QuicServerConfig::try_from(tls.server_config()?)
            .map_err(|e| Error::Tls(format!("QUIC server: {e}")))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(transport.clone());
        let client_crypto = QuicClientConfig::try_from(tls.client_config()?)
            .map_err(|e| Error::Tls(format!("QUIC client: {e}")))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(transport);
        let runtime = quinn::default_runtime()
            .ok_or_else(|| Error::Config("peerlock must run inside a tokio runtime".into()))?;
        let mut endpoint = Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket, runtime)
            .map_err(|e| io_err(format!("cannot start QUIC on {local_addr}"), e))?;
        endpoint.set_default_client_config(client);
        let (pairs_changed, _) = watch::channel(0);
        let (closed, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            me: NodeId::from_name(tls.node_name()),
            endpoint,
            incoming,
            pairs: Mutex::new(HashMap::new()),
            pairs_changed,
            closed,
        });
        let this = Arc::new(Self {
            shared: shared.clone(),
            name: tls.node_name().to_owned(),
            local_addr,
            advertise: advertise.unwrap_or(local_addr),
            configured: peers,
            peers: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(shared));
        this.tasks.lock().push(accept.abort_handle());
        Ok(this)
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id (from its certificate name).
    pub fn local_id(&self) -> NodeId {
        self.shared.me
    }

    /// This node's certificate name.
    pub fn local_name(&self) -> &str {
        &self.name
    }

    /// Dials every configured peer until each answered or `deadline`
    /// passed, and returns every member, this node included.
    pub async fn discover(&self, deadline: Instant) -> Result<Vec<PeerInfo>, Error> {
        let mut dials = JoinSet::new();
        for addr in self.configured.clone() {
            let shared = self.shared.clone();
            dials.spawn(async move {
                let mut backoff = Duration::from_millis(50);
                loop {
                    match shared.dial(addr, None).await {
                        Ok(conn) => return (addr, Ok(conn)),
                        Err(e) => {
                            if Instant::now() + backoff >= deadline {
                                return (addr, Err(e));
                            }
                            tracing::debug!(%addr, error = %e, "peer not reachable yet");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_millis(500));
                        }
                    }
                }
            });
        }
        let mut found: Vec<(PeerInfo, Connection)> = Vec::new();
        let mut unreachable = Vec::new();
        while let Some(joined) = dials.join_next().await {
            let Ok((addr, result)) = joined else {
                continue;
            };
            match result.and_then(|c| identity(&c).map(|(id, name)| (c, id, name))) {
                Ok((conn, id, name)) => found.push((PeerInfo { id, name, addr }, conn)),
                Err(e) => unreachable.push(format!("{addr} ({e})")),
            }
        }
        if !unreachable.is_empty() {
            for (_, c) in &found {
                c.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"start-up failed");
            }
            unreachable.sort();
            return Err(Error::Config(format!(
                "could not reach peers {} before the start-up deadline; check that they run, that the addresses are right, and that their certificates come from the same cluster CA",
                unreachable.join(", ")
            )));
        }
        let mut members: Vec<PeerInfo> = Vec::new();
        let mut keep: HashMap<NodeId, Connection> = HashMap::new();
        for (info, conn) in found {
            if let Some(other) = members.iter().find(|m| m.id == info.id) {
                if info.id != self.shared.me || other.addr != info.addr {
                    return Err(Error::Config(format!(
                        "peers {} and {} present the same certificate name {:?}; every node needs its own certificate",
                        other.addr, info.addr, info.name
                    )));
                }
            }
            if info.id == self.shared.me {
                conn.close(VarInt::from_u32(CLOSE_DUPLICATE), b"self");
            } else if self.shared.me < info.id {
                keep.insert(info.id, conn);
            } else {
                // The peer dials the pair's connection; this one only told us who it is.
                conn.close(VarInt::from_u32(CLOSE_DUPLICATE), b"discovery only");
            }
            members.push(info);
        }
        if !members.iter().any(|m| m.id == self.shared.me) {
            members.push(PeerInfo {
                id: self.shared.me,
                name: self.name.clone(),
                addr: self.advertise,
            });
        }
        let mut peers = self.peers.lock();
        let mut tasks = self.tasks.lock();
        for m in members.iter().filter(|m| m.id != self.shared.me) {
            let (tx, rx) = mpsc::channel(QUEUE);
            peers.insert(m.id, tx);
            let initial = keep.remove(&m.id);
            if let Some(c) = &initial {
                self.shared.set_pair(m.id, c.clone());
                let reader = tokio::spawn(read_connection(self.shared.clone(), c.clone(), m.id));
                tasks.push(reader.abort_handle());
            }
            let writer = tokio::spawn(write_loop(self.shared.clone(), m.clone(), rx, initial));
            tasks.push(writer.abort_handle());
        }
        Ok(members)
    }

    /// Stops everything: closes the endpoint and every task. After this,
    /// nothing is sent or received.
    pub fn close(&self) {
        self.shared.closed.send_replace(true);
        self.peers.lock().clear();
        self.shared
            .endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }

    /// Opens a fresh stream to `to` and writes `bytes` as they are: for
    /// tests of how peers treat malformed or spoofed frames.
    #[doc(hidden)]
    pub async fn send_raw_for_tests(&self, to: NodeId, bytes: &[u8]) -> Result<(), Error> {
        let conn = self
            .shared
            .pairs
            .lock()
            .get(&to)
            .cloned()
            .ok_or_else(|| Error::Config(format!("no connection to {to}")))?;
        let mut s = conn
            .open_uni()
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        s.write_all(bytes).await.map_err(|e| Error::Config(e.to_string()))?;
        let _ = s.finish();
        Ok(())
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.close();
    }
}

impl Transport for QuicTransport {
    fn send(&self, to: NodeId, msgs: Vec<PeerMessage>) {
        let peers = self.peers.lock();
        let Some(tx) = peers.get(&to) else {
            tracing::debug!(peer = %to, "message for an unknown peer dropped");
            return;
        };
        if tx.try_send(msgs).is_err() {
            tracing::debug!(peer = %to, "peer queue full or closed; message dropped");
        }
    }
}

/// Accepts connections; each one proves its identity with its certificate.
async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "refused a connection (TLS handshake failed)");
                    return;
                }
            };
            let (peer, name) = match identity(&conn) {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "refused a connection without a usable identity");
                    conn.close(VarInt::from_u32(crate::peer::CLOSE_PROTOCOL), b"no identity");
                    return;
                }
            };
            tracing::debug!(peer = %peer, %name, remote = %conn.remote_address(), "accepted a connection");
            if peer < shared.me {
                // The lower id dials the pair's connection: this is it.
                shared.set_pair(peer, conn.clone());
            }
            read_connection(shared, conn, peer).await;
        });
    }
}
