//! The transport's own errors. Public calls convert them into
//! `peerlock_core::Error` with a message that says what to do.

/// Why bytes from a peer are not a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame does not start with the magic bytes.
    #[error("not a peerlock frame (bad magic bytes)")]
    BadMagic,
    /// A frame version this node does not speak.
    #[error("unsupported frame version {0}")]
    UnsupportedVersion(u8),
    /// The announced length is over the limit.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload does not decode.
    #[error("malformed frame payload: {0}")]
    Malformed(String),
}

/// Why a connection to a peer failed or was closed. Internal: these are
/// logged, and the public calls report [`peerlock_core::Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer sent bytes that are not a valid frame.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A frame claimed a sender other than the certificate's identity.
    #[error("frame claims sender {claimed} but the certificate proves {actual}")]
    Spoofed {
        /// What the frame said.
        claimed: peerlock_core::NodeId,
        /// What the certificate proves.
        actual: peerlock_core::NodeId,
    },
    /// The peer's certificate carries no usable node name.
    #[error("peer certificate has no common name (node name)")]
    NoIdentity,
    /// The node at a peer's address is not the node expected there.
    #[error("expected node {expected} at {addr} but found {found:?}")]
    WrongPeer {
        /// The address dialed.
        addr: std::net::SocketAddr,
        /// The node expected there.
        expected: peerlock_core::NodeId,
        /// The name in the certificate presented.
        found: String,
    },
    /// The peer's name preamble is malformed (see `preamble.rs`).
    #[error("the peer's name preamble is malformed: {0}")]
    BadName(String),
    /// The peer claims a member name its certificate does not prove.
    #[error("the peer claims the member name {claimed:?} but its certificate names {cn:?}; a name other than the certificate's is accepted only from a node that shares this node's certificate (give every node its own certificate, or every node the one shared certificate and its own name(..))")]
    NameNotProven {
        /// The name claimed.
        claimed: String,
        /// The certificate's common name.
        cn: String,
    },
    /// This node claims a name other than its certificate's, and the peer
    /// presents a certificate of its own (see `preamble::resolve`).
    #[error("this node claims the member name {own:?}, which only peers sharing its certificate accept, but the peer presents a certificate of its own ({peer_cn:?}); use one certificate per node without name(..), or one shared certificate on every node, each with its own name(..)")]
    MixedCertificates {
        /// This node's name.
        own: String,
        /// The peer's certificate's common name.
        peer_cn: String,
    },
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The QUIC connection failed or was closed (this includes TLS
    /// handshake failures, such as a certificate from another CA).
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Reading a stream failed.
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing a stream failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// A dial could not even start (for example, an unusable address).
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
}

impl TransportError {
    /// True when the peer refused this node's name (it closed the
    /// connection with the name-refused code): trying again cannot help.
    pub fn is_name_refusal(&self) -> bool {
        match self {
            Self::MixedCertificates { .. } => true,
            Self::Connection(quinn::ConnectionError::ApplicationClosed(c)) => {
                c.error_code.into_inner() == u64::from(crate::peer::CLOSE_NAME)
            }
            _ => false,
        }
    }

    /// True when the peer broke the protocol (as opposed to the network
    /// failing): the connection is closed and a warning logged.
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            Self::Codec(_)
                | Self::Spoofed { .. }
                | Self::NoIdentity
                | Self::BadName(_)
                | Self::NameNotProven { .. }
                | Self::MixedCertificates { .. }
        )
    }
}
