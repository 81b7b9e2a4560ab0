//! peerlock-transport: QUIC (quinn) with mutual TLS (rustls, ring), the
//! frame codec, and the cluster CA (rcgen).
//!
//! # Wire format
//!
//! One QUIC connection per pair of peers; each side sends on its own
//! long-lived unidirectional stream. A stream carries frames:
//!
//! ```text
//! | "PLK" | version (1) | length u32 BE | bincode 2 payload: { from: NodeId, msgs: Vec<PeerMessage> } |
//! ```
//!
//! Raft messages travel inside as protobuf bytes. Frames are batched: every
//! message queued for a peer since the last write goes out in one frame.
//!
//! # Identity
//!
//! A peer's identity is the common name of its certificate, which the
//! cluster CA signed; its Raft id is `NodeId::from_name(name)`. A frame
//! whose `from` is not that identity closes the connection and never
//! reaches the driver. Connections from any certificate the CA signed are
//! accepted; the driver drops messages from ids that are not members.
//!
//! # Limits
//!
//! A frame's payload is at most [`codec::MAX_FRAME`] bytes, checked before
//! allocation. Malformed, oversized or unknown-version frames close that
//! connection with a log line; the lower-id peer re-dials with backoff.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod certs;
pub mod codec;
mod endpoint;
pub mod error;
mod peer;
mod tls;

pub use certs::ClusterCa;
pub use endpoint::{PeerInfo, QuicTransport};
pub use error::{CodecError, TransportError};
pub use tls::TlsConfig;
