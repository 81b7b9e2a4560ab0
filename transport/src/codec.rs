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
///
/// Written in one pass into one buffer sized up front (issue 10): the
/// header's length is patched in after the payload, instead of encoding the
/// payload into a buffer of its own that grows by doubling and copying it
/// behind a header.
pub fn encode(body: &FrameBody) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(HEADER + size_hint(body));
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&[0; 4]);
    bincode::serde::encode_into_writer(body, Tail(&mut out), bincode::config::standard())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    let payload = out.len() - HEADER;
    if payload > MAX_FRAME {
        return Err(CodecError::TooLarge {
            len: payload,
            max: MAX_FRAME,
        });
    }
    let len = u32::try_from(payload).map_err(|_| CodecError::TooLarge {
        len: payload,
        max: MAX_FRAME,
    })?;
    if let Some(field) = out.get_mut(4..HEADER) {
        field.copy_from_slice(&len.to_be_bytes());
    }
    Ok(out)
}

/// At least the payload's size for most bodies: a Raft message's bytes plus
/// its variant tag and length, a fixed allowance for the small control
/// messages. Only a capacity hint; a body larger than it still encodes.
fn size_hint(body: &FrameBody) -> usize {
    body.msgs
        .iter()
        .map(|m| match m {
            PeerMessage::Raft(bytes) => bytes.len() + 10,
            _ => 48,
        })
        .sum::<usize>()
        + 20
}

/// Appends bincode's output to a `Vec` (the frame after its header).
struct Tail<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for Tail<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
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

    /// The frame as version 1 wrote it (payload encoded on its own, a
    /// `Vec<u8>` as a sequence of `u8`, then copied behind the header):
    /// what peers not yet upgraded send and expect.
    fn encode_v1_as_before(body: &FrameBody) -> Vec<u8> {
        #[derive(Serialize)]
        enum OldMessage<'a> {
            Raft(&'a Vec<u8>),
        }
        #[derive(Serialize)]
        struct OldBody<'a> {
            from: NodeId,
            msgs: Vec<OldMessage<'a>>,
        }
        let old = OldBody {
            from: body.from,
            msgs: body
                .msgs
                .iter()
                .map(|m| match m {
                    PeerMessage::Raft(b) => OldMessage::Raft(b),
                    _ => unreachable!("only raft messages in this test"),
                })
                .collect(),
        };
        let payload = bincode::serde::encode_to_vec(&old, bincode::config::standard()).unwrap();
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Issue 10: a Raft message is written as one byte string now; the
    /// bytes on the wire are exactly what version 1 wrote (a sequence of
    /// `u8`), both ways, so a mixed-version cluster keeps talking and the
    /// frame version stays 1. Sizes cross the varint steps (250, 2^16).
    #[test]
    fn raft_bytes_are_the_same_on_the_wire_as_before() {
        for n in [0usize, 1, 250, 251, 300, 65_535, 65_536, 70_000] {
            let body = FrameBody {
                from: NodeId(u64::MAX - 3),
                msgs: vec![
                    PeerMessage::Raft((0..n).map(|i| i as u8).collect()),
                    PeerMessage::Raft(vec![0xff; n / 2]),
                ],
            };
            let new = encode(&body).unwrap();
            assert_eq!(new, encode_v1_as_before(&body), "{n} bytes");
            let mut d = FrameDecoder::new();
            d.extend(&encode_v1_as_before(&body));
            assert_eq!(d.decode().unwrap(), Some(body), "{n} bytes");
        }
    }

    /// A Raft message that claims more bytes than its frame holds is a
    /// typed error, not a panic or an allocation of the claimed size.
    #[test]
    fn a_raft_message_claiming_more_than_its_frame_is_malformed() {
        let mut frame = encode(&FrameBody {
            from: NodeId(1),
            msgs: vec![PeerMessage::Raft(vec![9; 40])],
        })
        .unwrap();
        // Payload: from (1), msgs len (1), variant (1), then the length byte.
        let at = HEADER + 3;
        assert_eq!(frame[at], 40);
        frame[at] = 0xfd; // a u64 length follows
        let mut claim = u64::MAX.to_le_bytes().to_vec();
        claim.truncate(8);
        frame.splice(at + 1..at + 1, claim);
        let len = (frame.len() - HEADER) as u32;
        frame[4..HEADER].copy_from_slice(&len.to_be_bytes());
        let mut d = FrameDecoder::new();
        d.extend(&frame);
        assert!(matches!(d.decode(), Err(CodecError::Malformed(_))));
    }

    /// The length patched into the header is the payload's, for bodies
    /// larger and smaller than the size hint.
    #[test]
    fn the_header_length_is_the_payload_length() {
        let many = FrameBody {
            from: NodeId(3),
            msgs: (0..100)
                .map(|i| PeerMessage::LiveTell {
                    seq: i,
                    live: vec![u64::MAX; 20],
                })
                .collect(),
        };
        for body in [body(), many] {
            let bytes = encode(&body).unwrap();
            let len = u32::from_be_bytes(bytes[4..HEADER].try_into().unwrap()) as usize;
            assert_eq!(len, bytes.len() - HEADER);
            let mut d = FrameDecoder::new();
            d.extend(&bytes);
            assert_eq!(d.decode().unwrap(), Some(body));
        }
    }

    proptest! {
        #[test]
        fn random_raft_batches_round_trip_and_match_v1(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..8)) {
            let body = FrameBody { from: NodeId(7), msgs: msgs.into_iter().map(PeerMessage::Raft).collect() };
            let bytes = encode(&body).unwrap();
            prop_assert_eq!(&bytes, &encode_v1_as_before(&body));
            let mut d = FrameDecoder::new();
            d.extend(&bytes);
            prop_assert_eq!(d.decode().unwrap(), Some(body));
        }

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
