//! peerlock-transport: the network under peerlock's Raft group. QUIC
//! (quinn) with mutual TLS (rustls, ring), a small frame codec (bincode),
//! and certificate tooling (rcgen).
//!
//! It implements [`peerlock_core::transport::Transport`]: the driver calls
//! `send(to, msgs)` and receives [`peerlock_core::transport::Incoming`]
//! batches on a channel it handed to [`QuicTransport::bind`].
//!
//! # Identity
//!
//! A node's identity is its name: the common name (CN) of its certificate,
//! or, with a certificate shared by several nodes, the member name it was
//! given ([`TlsConfig::with_member_name`]) and claims on every connection
//! (see [`preamble`]). Its transport key is
//! [`peerlock_core::NodeId::from_name`] of that name. Every
//! connection is mutually authenticated against the cluster CA, so the
//! sender of a frame is *who the certificate proves*, never who the frame
//! says: a frame whose `from` differs from the certificate's identity is
//! dropped, logged with `warn`, and its connection closed. A node whose
//! certificate the CA did not sign fails the handshake and never gets a
//! frame through. The dialer does not match the certificate against the
//! address it dialed, so node certificates need no IP SANs and can be
//! issued before the node's address is known ([`ClusterCa::issue_node`],
//! cert-manager, SPIFFE). The CA input may be a bundle, to rotate the CA
//! ([`TlsConfig::from_pem`]).
//!
//! Why the CN and not the address: addresses change (restarts, NAT,
//! advertise addresses), and an address proves nothing. The certificate is
//! what the CA vouches for.
//!
//! A claimed name counts only from a peer that presents this node's own
//! CN (the two share a certificate); a peer with a certificate of its own
//! is its CN, and a claim to another name closes its connection. So with
//! per-node certificates nobody can pose as a member without its
//! certificate. With one shared certificate names are claims: any holder
//! can pose as any member. That is allowed, and weaker: the planner's
//! same-name fast replacement is off there (a voter is replaced only after
//! `dead_after`). Mixing both kinds in one cluster is refused.
//!
//! # Wire format
//!
//! One QUIC connection per pair of peers (the lower id dials; see
//! [`QuicTransport`]), one long-lived unidirectional stream per direction,
//! carrying frames (see [`codec`]):
//!
//! ```text
//! | "PLK" | version u8 = 1 | length u32 big-endian | payload (length bytes) |
//! payload = bincode 2 (serde, standard config) of FrameBody { from: NodeId, msgs: Vec<PeerMessage> }
//! ```
//!
//! Raft messages of [`BULK_THRESHOLD`] bytes or more (snapshots) do not go
//! on that stream: each gets a unidirectional stream of its own, sent at a
//! lower priority, so heartbeats, votes and keepalive replies never wait
//! behind one (see [`bulk`]):
//!
//! ```text
//! | "PLB" | version u8 = 1 | from u64 BE | total u64 BE | message (total bytes) | end of stream |
//! ```
//!
//! ALPN is `peerlock/3`: both sides first send a name preamble on a
//! unidirectional stream of its own, and nothing is read from the
//! connection until the peer's has arrived and been checked ([`preamble`]):
//!
//! ```text
//! | "PLN" | version u8 = 1 | length u16 big-endian | name (1 to 256 bytes, UTF-8) | end of stream |
//! ```
//!
//! It falls back to `peerlock/2` (frames and bulk streams, no preamble: the
//! peer is its CN) and to `peerlock/1` (frames only) with older nodes; to
//! the latter a large message goes as one frame on a stream of its own. A future incompatible format
//! gets a new version byte and a new ALPN id, so old and new nodes refuse
//! each other cleanly.
//!
//! # Limits
//!
//! - A frame's payload is at most [`codec::MAX_FRAME`] (64 MiB), and a
//!   bulk stream's message at most [`MAX_BULK`] (the largest snapshot the
//!   lock table decodes, 1 GiB, plus 1 MiB); both are checked from the
//!   header *before* memory is reserved, and a connection reassembles one
//!   bulk message at a time (a bulk stream cut short is dropped whole: Raft
//!   sends the snapshot again); bincode decodes with its own allocation limit as a
//!   second guard. Bad magic, an unknown version, an oversized length or a
//!   malformed payload closes that connection with a log line. None of it
//!   panics or reaches the driver.
//! - Each peer has a queue of [`QUEUE_DEPTH`] batches and about
//!   [`QUEUE_BYTES`] bytes. `send` never blocks: when the queue is full the
//!   messages are dropped (Raft retries). Queued
//!   messages for a peer that stays unreachable are dropped too.
//! - Delivery to the driver awaits channel capacity, so a slow driver slows
//!   the peers (QUIC flow control) instead of buffering without bound.
//! - Keep-alive every [`KEEP_ALIVE`], idle timeout [`IDLE_TIMEOUT`]: a dead
//!   peer is noticed within seconds, and the lower id re-dials with
//!   exponential backoff (50 ms doubling to 1 s).
//! - Connections on demand (issue 10): a pair's connection that carried no
//!   message for [`IDLE_CLOSE`] is closed, and opened again when either
//!   side has a message for the other, so idle traffic grows with the
//!   members, not with their pairs (see [`QuicTransport`]). A peer that crashed and
//!   restarted on the same address is noticed at once (a stateless reset
//!   from the new process; see [`QuicTransport`]), and so is one restarted
//!   on another address or with a re-issued key (its discovery probe
//!   retires the pair's old connection).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod accept;
mod activity;
pub mod bulk;
mod certs;
pub mod codec;
mod discover;
mod endpoint;
mod error;
mod peer;
pub mod preamble;
mod queue;
#[doc(hidden)]
pub mod testing;
mod tls;
mod writer;

pub use bulk::{BULK_THRESHOLD, MAX_BULK};
pub use certs::{ClusterCa, CA_CERT_VALIDITY, CERT_BACKDATE, NODE_CERT_VALIDITY};
pub use endpoint::{
    PeerInfo, QuicTransport, BULK_QUEUE_DEPTH, IDLE_CLOSE, IDLE_TIMEOUT, KEEP_ALIVE, QUEUE_DEPTH,
};
pub use error::{CodecError, TransportError};
pub use queue::QUEUE_BYTES;
pub use tls::expiry::{CERTS_EXPIRING, CERT_EXPIRY_SECONDS, CERT_EXPIRY_WARNING};
pub use tls::{TlsConfig, ALPN, ALPN_V2, ALPN_V3, ALPN_V4};
