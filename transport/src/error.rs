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

/// A connection-level failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer sent bytes that are not a valid frame.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A frame claimed a sender other than the certificate's identity.
    #[error("frame claims sender {claimed} but the certificate says {actual}")]
    Spoofed {
        /// What the frame said.
        claimed: peerlock_core::NodeId,
        /// What the certificate proves.
        actual: peerlock_core::NodeId,
    },
    /// The peer's certificate carries no usable node name.
    #[error("peer certificate has no usable common name")]
    NoIdentity,
    /// QUIC connection failure.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Stream read failure.
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    /// Stream write failure.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// Dial failure.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
}
