//! The peer frame decoder on arbitrary bytes, fed in chunks (the first
//! byte picks the chunk size, so frames split across reads).
//!
//! - `FrameDecoder::decode` returns a frame, asks for more, or returns a
//!   typed `CodecError` (after which the stream is dropped); never a panic.
//! - It never holds more than the bytes fed to it, and never buffers a
//!   frame announced over `MAX_FRAME`.
//! - Every frame it returns encodes to a frame that decodes to the same
//!   body; feeding the same bytes in one piece yields the same frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerlock_transport::codec::{encode, FrameBody, FrameDecoder};

/// Frames decoded from `bytes` fed `chunk` bytes at a time, and whether
/// the stream ended in an error.
fn decode_all(bytes: &[u8], chunk: usize) -> (Vec<FrameBody>, bool) {
    let mut dec = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    for part in bytes.chunks(chunk) {
        dec.extend(part);
        fed += part.len();
        loop {
            assert!(dec.buffered() <= fed);
            match dec.decode() {
                Ok(Some(body)) => frames.push(body),
                Ok(None) => break,
                // A typed error: the connection is dropped.
                Err(_) => return (frames, true),
            }
        }
    }
    (frames, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((c, bytes)) = data.split_first() else {
        return;
    };
    let (frames, failed) = decode_all(bytes, usize::from(*c).max(1));
    let (whole, whole_failed) = decode_all(bytes, bytes.len().max(1));
    assert_eq!(frames, whole, "chunking changes nothing");
    assert_eq!(failed, whole_failed, "chunking changes nothing");
    for body in frames {
        let again = encode(&body).expect("a decoded frame encodes");
        let mut dec = FrameDecoder::new();
        dec.extend(&again);
        assert_eq!(dec.decode().expect("re-decodes"), Some(body));
        assert_eq!(dec.buffered(), 0);
    }
});
