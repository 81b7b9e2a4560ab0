//! The QUIC endpoint: binding, accepting, dialing, and the table of peers.
//!
//! One endpoint (one UDP socket) both accepts and dials. Each known peer has
//! a slot: a bounded queue that [`Transport::send`] pushes to, a writer task
//! that drains it (see `peer.rs`), and the pair's current connection.
//!
//! The rules (one connection per pair, unconfigured peers) are documented
//! on [`QuicTransport`].

use peerlock_core::collect::{id_key, sort_by_u128};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
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
/// How long a pair's connection may carry no message, either way, before
/// the lower id closes it (issue 10). Keeping every pair connected cost
/// about 2 n (n - 1) keep-alive pings a second for n nodes, though in a
/// Raft group only the leader talks to every member all the time; two
/// followers or learners talk only during an election. Longer than an
/// election (pre-vote and vote rounds, each within an election timeout,
/// 0.5 to 1 s at the default tick), so the connections a candidate opened
/// serve its whole election; short enough that an idle pair's pings (about
/// 4 datagrams a second) cost no more, over this time, than a few
/// handshakes. Re-opened on demand (see `writer.rs`).
pub const IDLE_CLOSE: Duration = Duration::from_secs(5);
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
    /// The transport key: [`NodeId::from_name`] of `name`.
    pub id: NodeId,
    /// The peer's name: the common name of its certificate, or the member
    /// name it claims when it shares this node's certificate.
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
    /// Asks the writer to send a heartbeat on the pair's connection now,
    /// or, with no connection, to get one (see `writer.rs`).
    poke: Arc<Notify>,
    /// When the pair last exchanged a message.
    activity: Arc<crate::activity::Activity>,
}

impl PeerSlot {
    /// Takes `info`'s name and address as the configured ones (from the
    /// member table or the application), which outlive the connection.
    fn configure(&mut self, info: PeerInfo) {
        self.info.addr = info.addr;
        self.info.name = info.name;
        self.configured = true;
    }
}

/// State shared by the transport handle and its tasks.
pub(crate) struct Shared {
    pub(crate) me: NodeId,
    /// This node's name: its member name, which is its certificate's
    /// common name unless it shares its certificate.
    pub(crate) name: String,
    /// Its certificate's common name (see `preamble::resolve`).
    pub(crate) cn: String,
    pub(crate) local_addr: SocketAddr,
    pub(crate) advertise: Option<SocketAddr>,
    /// The addresses this node was given (peers or seeds); seeds that a
    /// DNS name resolves to later are added (`add_seed_addrs`).
    pub(crate) configured: Mutex<Vec<SocketAddr>>,
    pub(crate) endpoint: Endpoint,
    pub(crate) incoming: mpsc::Sender<Incoming>,
    peers: Mutex<HashMap<NodeId, PeerSlot>>,
    /// Members learned but never talked to: no slot until a message goes
    /// to or comes from one (`Shared::learn`). Locked after `peers`.
    directory: Mutex<HashMap<NodeId, PeerInfo>>,
    /// Keying material of accepted connections that presented our own
    /// name: discovery matches its dials against it to recognise itself.
    pub(crate) self_keys: Mutex<HashSet<[u8; 32]>>,
    shutdown: watch::Sender<bool>,
    /// Where discovery is; see [`Shared::discovery_settled`].
    pub(crate) discovery: watch::Sender<Discovery>,
    /// [`IDLE_CLOSE`], in milliseconds; tests shorten it
    /// ([`QuicTransport::set_idle_close`]).
    idle_close_ms: AtomicU64,
    /// The TLS configuration of new connections (see `reload.rs`).
    pub(crate) tls: reload::TlsState,
    /// Why a peer refused this process's name (`name_in_use.rs`).
    pub(crate) name_in_use: Mutex<Option<String>>,
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
/// connections are probes from the higher side ([`QuicTransport::discover`]'s,
/// and dial requests, below), closed as soon as the peer's certificate has
/// been read.
///
/// # Connections on demand
///
/// A pair's connection is open only while the pair talks (issue 10): the
/// lower node dials when it has a message queued for the peer (or is asked
/// to), and closes the connection once no message went either way for
/// [`IDLE_CLOSE`]; so n idle nodes keep about n connections (each member's
/// with the leader, whose heartbeats keep them busy), not n (n - 1) / 2,
/// each pinged every [`KEEP_ALIVE`]. When the higher node has a message
/// queued and no connection, it asks for one with a probe (a dial request):
/// the lower node's accept side takes any probe from a higher node as the
/// cue to dial it at once, as it already did for a restarted peer. The
/// lower-id-dials rule is unchanged, so there is still one connection per
/// pair. Closing idle connections needs both nodes of ALPN
/// [`crate::ALPN_V4`]; with an older peer the connection is kept open.
/// A connection that dies while in use is re-dialed at once, as before;
/// one that was idle is re-dialed on demand.
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
///
/// Nodes that share one certificate share its key too: each mixes its
/// member name into the labels, so every incarnation of one member derives
/// the same keys, and another member other ones.
fn endpoint_config(tls: &TlsConfig) -> EndpointConfig {
    let label = |base: &[u8]| -> Vec<u8> {
        if tls.name_is_claimed() {
            [base, b" of ", tls.node_name().as_bytes()].concat()
        } else {
            base.to_vec()
        }
    };
    let reset: [u8; 32] = tls.derive_secret(&label(RESET_KEY_LABEL));
    let mut config = EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &reset,
    )));
    let cid_key = u64::from_le_bytes(tls.derive_secret(&label(CID_KEY_LABEL)));
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
        let (server, client) = reload::quic_configs(tls)?;
        let endpoint = Endpoint::new(
            endpoint_config(tls),
            Some(server),
            socket,
            Arc::new(TokioRuntime),
        )
        .map_err(|e| io_err(&e, format!("cannot start QUIC on {local_addr}: {e}")))?;

        let name = tls.node_name().to_owned();
        let me = NodeId::from_name(&name);
        let (shutdown, _) = watch::channel(false);
        let (discovery, _) = watch::channel(Discovery::Idle);
        let mut seen = HashSet::new();
        let configured: Vec<SocketAddr> = peers.into_iter().filter(|a| seen.insert(*a)).collect();
        let shared = Arc::new(Shared {
            me,
            name,
            cn: tls.common_name().to_owned(),
            local_addr,
            advertise,
            configured: Mutex::new(configured),
            endpoint,
            incoming,
            peers: Mutex::new(HashMap::new()),
            directory: Mutex::new(HashMap::new()),
            self_keys: Mutex::new(HashSet::new()),
            shutdown,
            discovery,
            idle_close_ms: AtomicU64::new(shared::duration_ms(IDLE_CLOSE)),
            tls: reload::TlsState::new(tls.clone(), client),
            name_in_use: Mutex::new(None),
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

    /// The address peers reach this node at: the advertised one if given,
    /// else the bound one.
    pub fn advertised_addr(&self) -> SocketAddr {
        self.shared.advertise.unwrap_or(self.shared.local_addr)
    }

    /// This node's transport key: [`NodeId::from_name`] of its name.
    pub fn local_id(&self) -> NodeId {
        self.shared.me
    }

    /// This node's name: its member name ([`TlsConfig::with_member_name`]),
    /// else its certificate's common name.
    pub fn local_name(&self) -> &str {
        &self.shared.name
    }

    /// The peers this transport currently knows (not including itself).
    pub fn known_peers(&self) -> Vec<PeerInfo> {
        let peers = self.shared.peers.lock();
        let learned = self.shared.directory.lock();
        let slots = peers.values().map(|s| s.info.clone());
        let mut out: Vec<PeerInfo> = slots.chain(learned.values().cloned()).collect();
        sort_by_u128(&mut out, |p| id_key(0, p.id));
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
        crate::discover::discover(&self.shared, deadline, true).await
    }

    /// Like [`QuicTransport::discover`], for a node that already knows its
    /// members ([`QuicTransport::add_peers`]): peers that answer by
    /// `deadline` are registered (at the address they answered at, which
    /// may be new), and those that do not are left to their slots' dials
    /// instead of failing the start (issue 9: one peer dead for good must
    /// not stop a restart).
    ///
    /// # Errors
    ///
    /// As [`QuicTransport::discover`], except for unreachable peers.
    pub async fn discover_reachable(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<PeerInfo>, Error> {
        crate::discover::discover(&self.shared, deadline, false).await
    }

    /// Registers peers this node knows already (a restart's recorded
    /// members), as configured peers: they are dialed and never forgotten.
    /// This node itself is skipped.
    pub fn add_peers(&self, peers: Vec<PeerInfo>) {
        for info in peers {
            self.shared.learn(info);
        }
    }

    /// Adds seed addresses found after the start (a DNS name re-resolved:
    /// a Kubernetes headless service lists pods as they come up); the
    /// next [`QuicTransport::discover_reachable`] dials them too. Returns
    /// how many were new.
    pub fn add_seed_addrs(&self, addrs: impl IntoIterator<Item = SocketAddr>) -> usize {
        let mut configured = self.shared.configured.lock();
        let before = configured.len();
        for a in addrs {
            if !configured.contains(&a) {
                configured.push(a);
            }
        }
        configured.len() - before
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

    fn learn_peer(&self, key: NodeId, name: &str, addr: SocketAddr) {
        self.shared.learn(PeerInfo {
            id: key,
            name: name.to_owned(),
            addr,
        });
    }
}

mod name_in_use;
mod reload;
mod shared;
mod test_hooks;
