//! Bulk streams: one large Raft message (in practice a snapshot) per QUIC
//! stream, beside the pair's long-lived frame stream.
//!
//! Why: a snapshot of a large lock table is bigger than a frame may be
//! ([`crate::codec::MAX_FRAME`]), and even one that fits would make every
//! heartbeat, vote and keepalive reply queued behind it wait for it. A
//! stream of its own is flow-controlled by QUIC on its own, is sent at a
//! lower priority than the frame stream (quinn sends a higher priority
//! stream's data first), and a cut loses only that message: the receiver
//! drops a stream that ends early whole, and raft-rs sends the snapshot
//! again once the driver reports it failed.
//!
//! ```text
//! | "PLB" | version u8 = 1 | from u64 BE | total u64 BE | message (total bytes) | end of stream |
//! ```
//!
//! The message is a protobuf-encoded raft-rs message, delivered to the
//! driver as one ordinary [`PeerMessage::Raft`]. `total` is checked against
//! [`MAX_BULK`] before anything is reserved, memory then grows with the
//! bytes that arrive, and each connection reassembles at most one bulk
//! message at a time (a second stream waits, unread, so QUIC flow control
//! holds its sender back), so a peer can make this node hold at most
//! [`MAX_BULK`] per connection.
//!
//! Only connections that negotiated ALPN [`crate::ALPN_V2`] carry bulk
//! streams; to an older peer a large message goes as one ordinary frame
//! on a stream of its own (dropped, as before, if it passes the frame limit).

use bytes::Bytes;
use peerlock_core::machine::MAX_SNAPSHOT_BYTES;
use peerlock_core::transport::PeerMessage;
use peerlock_core::NodeId;
use quinn::{Connection, RecvStream};

use crate::codec::{self, FrameBody};
use crate::error::{CodecError, TransportError};

/// The magic bytes that open a bulk stream.
pub const BULK_MAGIC: [u8; 3] = *b"PLB";
/// The bulk stream format version.
pub const BULK_VERSION: u8 = 1;
/// Bulk header size: magic, version, sender, total length.
pub const BULK_HEADER: usize = 20;
/// Raft messages at least this large travel on a bulk stream. Above the
/// driver's largest log append (raft-rs `max_size_per_msg`, 1 MiB), so in
/// practice only snapshots do: appends stay in order on the frame stream.
pub const BULK_THRESHOLD: usize = 2 * 1024 * 1024;
/// The largest message a bulk stream may carry: the largest snapshot the
/// lock table decodes ([`MAX_SNAPSHOT_BYTES`]) plus room for raft-rs's
/// envelope around it.
pub const MAX_BULK: usize = MAX_SNAPSHOT_BYTES + (1 << 20);

/// Stream priority of bulk streams (the frame stream has 0): quinn sends
/// the frame stream's data first.
pub(crate) const BULK_PRIORITY: i32 = -1;

/// Whether a message takes a bulk stream rather than the frame stream.
pub(crate) fn is_bulk(m: &PeerMessage) -> bool {
    matches!(m, PeerMessage::Raft(b) if b.len() >= BULK_THRESHOLD)
}

/// Whether `conn` negotiated bulk streams (ALPN 2, or 3 which adds the
/// name preamble to 2, or 4 which adds connections on demand to 3).
pub(crate) fn supports_bulk(conn: &Connection) -> bool {
    protocol(conn)
        .is_some_and(|p| p == crate::ALPN_V2 || p == crate::ALPN_V3 || p == crate::ALPN_V4)
}

/// Whether `conn` negotiated connections on demand (ALPN 4): only then may
/// the lower id close it when idle, since only such a peer asks for a new
/// one when it has something to send.
pub(crate) fn on_demand(conn: &Connection) -> bool {
    protocol(conn).is_some_and(|p| p == crate::ALPN_V4)
}

/// The ALPN id `conn` negotiated.
pub(crate) fn protocol(conn: &Connection) -> Option<Vec<u8>> {
    conn.handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol)
}

/// The header of a bulk stream.
pub fn encode_header(from: NodeId, total: u64) -> [u8; BULK_HEADER] {
    let mut h = [0u8; BULK_HEADER];
    let (magic, rest) = h.split_at_mut(3);
    magic.copy_from_slice(&BULK_MAGIC);
    let (version, rest) = rest.split_at_mut(1);
    version.copy_from_slice(&[BULK_VERSION]);
    let (id, len) = rest.split_at_mut(8);
    id.copy_from_slice(&from.0.to_be_bytes());
    len.copy_from_slice(&total.to_be_bytes());
    h
}

/// Parses a bulk header: the sender and the message length, checked
/// against [`MAX_BULK`].
pub fn decode_header(h: &[u8; BULK_HEADER]) -> Result<(NodeId, usize), CodecError> {
    let (magic, rest) = h.split_at(3);
    if magic != BULK_MAGIC {
        return Err(CodecError::BadMagic);
    }
    let (version, rest) = rest.split_at(1);
    if version != [BULK_VERSION] {
        return Err(CodecError::UnsupportedVersion(
            version.first().copied().unwrap_or(0),
        ));
    }
    let (id, len) = rest.split_at(8);
    let mut b = [0u8; 8];
    b.copy_from_slice(id);
    let from = NodeId(u64::from_be_bytes(b));
    b.copy_from_slice(len);
    let total = u64::from_be_bytes(b);
    match usize::try_from(total) {
        Ok(n) if n <= MAX_BULK => Ok((from, n)),
        _ => Err(CodecError::TooLarge {
            len: usize::try_from(total).unwrap_or(usize::MAX),
            max: MAX_BULK,
        }),
    }
}

/// Sends one message on a new stream of `conn` and waits until the peer
/// has it all (or stopped the stream), so the next bulk message opens its
/// stream only after this one is received.
pub(crate) async fn send(
    me: NodeId,
    conn: &Connection,
    msg: PeerMessage,
) -> Result<(), TransportError> {
    let mut stream = conn.open_uni().await?;
    // Only fails on a stream already closed; the write below then fails.
    let _ = stream.set_priority(BULK_PRIORITY);
    if supports_bulk(conn) {
        let PeerMessage::Raft(bytes) = msg else {
            return Ok(());
        };
        let total = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if bytes.len() > MAX_BULK {
            tracing::error!(
                len = bytes.len(),
                max = MAX_BULK,
                "message larger than a bulk stream may carry; dropped"
            );
            return Ok(());
        }
        stream.write_all(&encode_header(me, total)).await?;
        stream.write_chunk(Bytes::from(bytes)).await?;
    } else {
        match codec::encode(&FrameBody {
            from: me,
            msgs: vec![msg],
        }) {
            Ok(frame) => stream.write_chunk(Bytes::from(frame)).await?,
            Err(e) => {
                tracing::error!(error = %e, "message cannot be framed for an older peer; dropped");
                return Ok(());
            }
        }
    }
    let _ = stream.finish();
    if let Ok(Some(code)) = stream.stopped().await {
        tracing::debug!(%code, "peer stopped a bulk stream; message dropped");
    }
    Ok(())
}

/// Reads the rest of a bulk stream whose first bytes (`head`, at least
/// [`BULK_HEADER`] of them) have been read. Returns the message, or `None`
/// when the stream ended early (a cut: dropped whole).
pub(crate) async fn receive(
    mut stream: RecvStream,
    head: &[u8],
    peer: NodeId,
) -> Result<Option<PeerMessage>, TransportError> {
    let mut h = [0u8; BULK_HEADER];
    let (hb, rest) = head.split_at(BULK_HEADER.min(head.len()));
    h.copy_from_slice(hb);
    let (from, total) = decode_header(&h)?;
    if from != peer {
        return Err(TransportError::Spoofed {
            claimed: from,
            actual: peer,
        });
    }
    if rest.len() > total {
        return Err(CodecError::Malformed("bytes after a bulk message".into()).into());
    }
    // Grow with what arrives; the announced total only caps it.
    let mut buf = Vec::with_capacity(total.min(4 << 20));
    buf.extend_from_slice(rest);
    while buf.len() < total {
        match stream.read_chunk(total - buf.len(), true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => {
                tracing::debug!(got = buf.len(), total, "bulk stream ended early; dropped");
                return Ok(None);
            }
            Err(e) => {
                tracing::debug!(error = %e, got = buf.len(), total, "bulk stream cut; dropped");
                return Ok(None);
            }
        }
    }
    // The stream must end right after the message.
    match stream.read_chunk(1, true).await {
        Ok(None) => Ok(Some(PeerMessage::Raft(buf))),
        Ok(Some(_)) => Err(CodecError::Malformed("bytes after a bulk message".into()).into()),
        Err(e) => {
            tracing::debug!(error = %e, "bulk stream cut at its end; dropped");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_bad_ones_are_typed_errors() {
        let h = encode_header(NodeId(7), 123);
        assert_eq!(decode_header(&h), Ok((NodeId(7), 123)));
        let mut bad = h;
        bad[0] = b'X';
        assert_eq!(decode_header(&bad), Err(CodecError::BadMagic));
        let mut bad = h;
        bad[3] = 9;
        assert_eq!(decode_header(&bad), Err(CodecError::UnsupportedVersion(9)));
        let huge = encode_header(NodeId(7), MAX_BULK as u64 + 1);
        assert!(matches!(
            decode_header(&huge),
            Err(CodecError::TooLarge { .. })
        ));
        let max = encode_header(NodeId(7), u64::MAX);
        assert!(matches!(
            decode_header(&max),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn only_large_raft_messages_are_bulk() {
        assert!(is_bulk(&PeerMessage::Raft(vec![0; BULK_THRESHOLD])));
        assert!(!is_bulk(&PeerMessage::Raft(vec![0; BULK_THRESHOLD - 1])));
        assert!(!is_bulk(&PeerMessage::Hello {
            incarnation: 1,
            boot: 1,
            run: 1,
            id: 1,
            last_index: 1,
            term: 1,
        }));
    }
}
