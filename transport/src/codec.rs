//! The frame format, pure (no IO).
//!
//! ```text
//! | magic "PLK" (3) | version u8 (1) | length u32 big-endian (4) | payload |
//! ```
//!
//! The payload is the bincode 2 (serde, standard config) encoding of a
//! [`FrameBody`]: the sender's claimed id and a batch of messages. The
//! length is checked against [`MAX_FRAME`] before anything is allocated,
//! and decoding is bounded by the announced length, so garbage can neither
//! panic the node nor make it allocate without bound.

use bytes::{Buf, BytesMut};
use serde::{Deserialize, Serialize};

use peerlock_core::transport::PeerMessage;
use peerlock_core::NodeId;

use crate::error::CodecError;

/// The magic bytes that open every frame.
pub const MAGIC: [u8; 3] = *b"PLK";
/// The frame format version.
pub const VERSION: u8 = 1;
/// Header size: magic, version, length.
pub const HEADER: usize = 8;
/// The largest payload accepted (Raft snapshots travel in frames).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// The bound on what bincode may allocate while decoding one payload.
const DECODE_LIMIT: usize = 2 * MAX_FRAME;

/// What one frame carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameBody {
    /// The sender as it claims to be; checked against its certificate.
    pub from: NodeId,
    /// The messages, in order. None is a heartbeat: receivers skip it.
    pub msgs: Vec<PeerMessage>,
}

/// Encodes one frame.
pub fn encode(body: &FrameBody) -> Result<Vec<u8>, CodecError> {
    let payload = bincode::serde::encode_to_vec(body, bincode::config::standard())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if payload.len() > MAX_FRAME {
        return Err(CodecError::TooLarge {
            len: payload.len(),
            max: MAX_FRAME,
        });
    }
    let len = u32::try_from(payload.len()).map_err(|_| CodecError::TooLarge {
        len: payload.len(),
        max: MAX_FRAME,
    })?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes frames from a byte stream as it arrives.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or an
    /// error after which the stream must be dropped.
    pub fn decode(&mut self) -> Result<Option<FrameBody>, CodecError> {
        let Some(header) = self.buf.get(..HEADER) else {
            // Check what we have of the magic early, so garbage fails fast.
            let n = self.buf.len().min(MAGIC.len());
            if self.buf.get(..n) != MAGIC.get(..n) {
                return Err(CodecError::BadMagic);
            }
            return Ok(None);
        };
        if header.get(..3) != Some(&MAGIC[..]) {
            return Err(CodecError::BadMagic);
        }
        let version = header.get(3).copied().unwrap_or(0);
        if version != VERSION {
            return Err(CodecError::UnsupportedVersion(version));
        }
        let mut len_bytes = [0u8; 4];
        if let Some(l) = header.get(4..8) {
            len_bytes.copy_from_slice(l);
        }
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len > MAX_FRAME {
            return Err(CodecError::TooLarge {
                len,
                max: MAX_FRAME,
            });
        }
        if self.buf.len() < HEADER + len {
            // Not reserving `len` up front: memory grows with the bytes that
            // actually arrive, not with what a header announces.
            return Ok(None);
        }
        self.buf.advance(HEADER);
        let payload = self.buf.split_to(len);
        // Second guard: bincode refuses any collection whose claimed size
        // exceeds the limit, so a small payload cannot claim a huge vector.
        let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
        let (body, used): (FrameBody, usize) = bincode::serde::decode_from_slice(&payload, config)
            .map_err(|e| CodecError::Malformed(e.to_string()))?;
        if used != payload.len() {
            return Err(CodecError::Malformed(format!(
                "{} trailing bytes",
                payload.len() - used
            )));
        }
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerlock_core::SessionId;
    use proptest::prelude::*;

    fn body() -> FrameBody {
        FrameBody {
            from: NodeId(42),
            msgs: vec![
                PeerMessage::Raft(vec![1, 2, 3]),
                PeerMessage::KeepAlive {
                    session: SessionId(7),
                    seq: 9,
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_two_frames_in_one_buffer() {
        let bytes = encode(&body()).unwrap();
        let mut d = FrameDecoder::new();
        d.extend(&bytes);
        d.extend(&bytes);
        assert_eq!(d.decode().unwrap(), Some(body()));
        assert_eq!(d.decode().unwrap(), Some(body()));
        assert_eq!(d.decode().unwrap(), None);
    }

    #[test]
    fn every_prefix_asks_for_more() {
        let bytes = encode(&body()).unwrap();
        for cut in 0..bytes.len() {
            let mut d = FrameDecoder::new();
            d.extend(&bytes[..cut]);
            assert_eq!(d.decode().unwrap(), None, "prefix of {cut} bytes");
        }
    }

    #[test]
    fn bad_magic_version_and_length_are_typed_errors() {
        let mut bytes = encode(&body()).unwrap();
        let mut d = FrameDecoder::new();
        d.extend(b"GET / HTTP/1.1\r\n");
        assert_eq!(d.decode(), Err(CodecError::BadMagic));
        bytes[3] = 9;
        let mut d = FrameDecoder::new();
        d.extend(&bytes);
        assert_eq!(d.decode(), Err(CodecError::UnsupportedVersion(9)));
        let mut huge = MAGIC.to_vec();
        huge.push(VERSION);
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut d = FrameDecoder::new();
        d.extend(&huge);
        assert!(matches!(d.decode(), Err(CodecError::TooLarge { .. })));
    }

    #[test]
    fn malformed_payload_is_an_error() {
        let mut frame = MAGIC.to_vec();
        frame.push(VERSION);
        frame.extend_from_slice(&4u32.to_be_bytes());
        frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        let mut d = FrameDecoder::new();
        d.extend(&frame);
        assert!(matches!(d.decode(), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn a_small_payload_cannot_claim_a_huge_vector() {
        // from = 0, then a message vector claiming u64::MAX elements.
        let mut payload = vec![0x00, 0xfd];
        payload.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut frame = MAGIC.to_vec();
        frame.push(VERSION);
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        let mut d = FrameDecoder::new();
        d.extend(&frame);
        assert!(matches!(d.decode(), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn a_snapshot_sized_message_round_trips() {
        let big = FrameBody {
            from: NodeId(1),
            msgs: vec![PeerMessage::Raft(vec![7; 5 * 1024 * 1024])],
        };
        let bytes = encode(&big).unwrap();
        let mut d = FrameDecoder::new();
        for chunk in bytes.chunks(64 * 1024) {
            assert_eq!(d.decode().unwrap(), None);
            d.extend(chunk);
        }
        assert_eq!(d.decode().unwrap(), Some(big));
        assert_eq!(d.buffered(), 0);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut d = FrameDecoder::new();
            d.extend(&bytes);
            let _ = d.decode();
        }

        #[test]
        fn random_payload_behind_a_valid_header_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut frame = MAGIC.to_vec();
            frame.push(VERSION);
            frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            frame.extend_from_slice(&payload);
            let mut d = FrameDecoder::new();
            d.extend(&frame);
            let _ = d.decode();
        }
    }
}
