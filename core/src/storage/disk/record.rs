//! Record framing for the write-ahead log, pure (no IO).
//!
//! ```text
//! | len u32 LE | crc32(len bytes) u32 LE | crc32(payload) u32 LE | payload (len bytes) |
//! ```
//!
//! The length has its own checksum, so a corrupted length is told apart
//! from a write that was cut short. [`scan`] walks a segment's bytes and
//! classifies what ends it: a clean end, a torn tail (the last record cut
//! short or garbled, which a crash can leave and recovery drops), or
//! corruption (a bad record with a valid record after it, which recovery
//! refuses). The payload is a version byte and a bincode-encoded [`Rec`].

use serde::{Deserialize, Serialize};

/// Header size: length, length checksum, payload checksum.
pub const HEADER: usize = 12;
/// The largest record accepted (a snapshot can be large).
pub const MAX_RECORD: usize = 1 << 30;
/// The version byte that opens every payload.
pub const VERSION: u8 = 1;

/// Frames `payload` as one record; `None` (and nothing written) if it is
/// larger than [`MAX_RECORD`], which recovery would refuse.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if payload.len() > MAX_RECORD {
        return None;
    }
    let len = u32::try_from(payload.len()).ok()?.to_le_bytes();
    out.reserve(HEADER + payload.len());
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc32fast::hash(&len).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Some(())
}

/// What a log record says. Raft messages inside are protobuf bytes.
/// New variants go at the end: bincode numbers them in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rec {
    /// Entries to append; the first may replace a suffix of the log.
    Entries(Vec<Vec<u8>>),
    /// The hard state.
    Hard {
        /// Current term.
        term: u64,
        /// Vote in that term.
        vote: u64,
        /// Commit index.
        commit: u64,
    },
    /// The membership (a `ConfState`).
    Conf(Vec<u8>),
    /// A new commit index alone.
    Commit(u64),
    /// Opens every segment: the snapshot the segment's state starts from.
    Base {
        /// Snapshot index.
        index: u64,
        /// Snapshot term.
        term: u64,
    },
    /// Every byte of this segment before this offset was fsynced when the
    /// record was written (see "Holes in the tail" in the `disk` docs).
    Synced(u64),
}

/// Why a record could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// bincode failed.
    #[error("record encoding failed: {0}")]
    Bincode(#[from] bincode::error::EncodeError),
    /// Larger than [`MAX_RECORD`].
    #[error("a log record of {0} bytes is larger than the {MAX_RECORD}-byte limit")]
    TooLarge(usize),
}

/// Encodes and frames `rec`, appending to `out`.
pub fn encode(rec: &Rec, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut payload = vec![VERSION];
    bincode::serde::encode_into_std_write(rec, &mut payload, bincode::config::standard())?;
    frame(&payload, out).ok_or(EncodeError::TooLarge(payload.len()))
}

/// Why a payload is not a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No bytes at all (not even the version byte).
    #[error("empty record")]
    Empty,
    /// Written by a format version this node does not know.
    #[error("unknown record version {0}")]
    Version(u8),
    /// The bytes after the version are not a bincode [`Rec`].
    #[error("malformed record: {0}")]
    Bincode(#[from] bincode::error::DecodeError),
    /// A whole record, followed by this many bytes that belong to none.
    #[error("{0} stray bytes after the record")]
    Trailing(usize),
}

/// Decodes a payload that [`scan`] found valid.
pub fn decode(payload: &[u8]) -> Result<Rec, DecodeError> {
    let (v, body) = payload.split_first().ok_or(DecodeError::Empty)?;
    if *v != VERSION {
        return Err(DecodeError::Version(*v));
    }
    let (rec, used): (Rec, usize) = bincode::serde::decode_from_slice(
        body,
        bincode::config::standard().with_limit::<{ MAX_RECORD }>(),
    )?;
    if used != body.len() {
        return Err(DecodeError::Trailing(body.len() - used));
    }
    Ok(rec)
}

/// How a scan of a segment ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Every byte belonged to a valid record.
    Clean,
    /// The bytes from `offset` on are the remains of a cut-short or garbled
    /// last record.
    Torn {
        /// Where the last good record ends.
        offset: usize,
    },
    /// A bad record at `offset` with a valid record after it.
    Corrupt {
        /// Where the bad record starts.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// What lies at an offset.
enum At {
    /// A valid record with a payload of this length.
    Valid(usize),
    /// Fewer than [`HEADER`] bytes, or a length whose checksum fails (or
    /// that is too large): where the record ends is unknown.
    BadHeader,
    /// A good header whose payload is cut short by the end of the bytes.
    Short,
    /// A good header and a whole payload that fails its checksum: the
    /// record ends at this offset.
    BadPayload(usize),
}

fn check_at(bytes: &[u8], at: usize) -> At {
    let (Some(len), Some(len_crc), Some(crc)) = (
        u32_at(bytes, at),
        u32_at(bytes, at + 4),
        u32_at(bytes, at + 8),
    ) else {
        return At::BadHeader;
    };
    let n = len as usize;
    if crc32fast::hash(&len.to_le_bytes()) != len_crc || n > MAX_RECORD {
        return At::BadHeader;
    }
    let end = at + HEADER + n;
    match bytes.get(at + HEADER..end) {
        None => At::Short,
        Some(p) if crc32fast::hash(p) == crc => At::Valid(n),
        Some(_) => At::BadPayload(end),
    }
}

/// Walks `bytes`, calling `each(offset, payload)` for every valid record,
/// and says what ends them.
///
/// The rule: a bad record followed by no valid record is a torn tail
/// (what a crash mid-write leaves, including zero-fill after it); a bad
/// record with a valid record after it is corruption, since dropping it
/// would drop data written after it. Where the bad record's header is
/// intact, the search for a later record starts past its payload, so a
/// flipped payload byte never makes bytes inside the payload count.
pub fn scan<'a>(bytes: &'a [u8], mut each: impl FnMut(usize, &'a [u8])) -> End {
    let mut at = 0;
    while at < bytes.len() {
        let from = match check_at(bytes, at) {
            At::Valid(len) => {
                if let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) {
                    each(at, payload);
                }
                at += HEADER + len;
                continue;
            }
            At::Short => return End::Torn { offset: at },
            At::BadHeader => at + 1,
            At::BadPayload(end) => end,
        };
        let later = (from..bytes.len()).find(|j| matches!(check_at(bytes, *j), At::Valid(_)));
        return match later {
            None => End::Torn { offset: at },
            Some(next) => End::Corrupt {
                offset: at,
                reason: format!("bad record, with a valid record after it at offset {next}"),
            },
        };
    }
    End::Clean
}

/// Calls `each(offset, payload)` for every valid record, including those
/// after a bad one (the walk picks up again at the next valid record), as
/// far as the bytes go.
pub fn walk_all<'a>(bytes: &'a [u8], mut each: impl FnMut(usize, &'a [u8])) {
    let mut at = 0;
    while at < bytes.len() {
        let from = match check_at(bytes, at) {
            At::Valid(len) => {
                if let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) {
                    each(at, payload);
                }
                at += HEADER + len;
                continue;
            }
            At::Short => return,
            At::BadHeader => at + 1,
            At::BadPayload(end) => end,
        };
        match (from..bytes.len()).find(|j| matches!(check_at(bytes, *j), At::Valid(_))) {
            Some(next) => at = next,
            None => return,
        }
    }
}

/// The highest [`Rec::Synced`] offset any valid record of `bytes` states,
/// bad records skipped; `None` if no record states one (a segment written
/// before these records existed).
pub fn synced_upto(bytes: &[u8]) -> Option<u64> {
    let mut best = None;
    walk_all(bytes, |_, p| {
        if let Ok(Rec::Synced(n)) = decode(p) {
            best = best.max(Some(n));
        }
    });
    best
}

/// The first record's payload, if the bytes open with a valid one.
pub fn first(bytes: &[u8]) -> Option<&[u8]> {
    match check_at(bytes, 0) {
        At::Valid(len) => bytes.get(HEADER..HEADER + len),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        frame(b"first", &mut out).unwrap();
        frame(b"second record", &mut out).unwrap();
        let last = out.len();
        frame(b"third and last", &mut out).unwrap();
        (out, last)
    }

    #[test]
    fn clean_scan_sees_every_record() {
        let (bytes, _) = three();
        let mut seen = Vec::new();
        assert_eq!(scan(&bytes, |_, p| seen.push(p.to_vec())), End::Clean);
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn every_cut_inside_the_last_record_is_a_torn_tail() {
        let (bytes, last) = three();
        for cut in last + 1..bytes.len() {
            let mut n = 0;
            assert_eq!(
                scan(&bytes[..cut], |_, _| n += 1),
                End::Torn { offset: last },
                "cut at {cut}"
            );
            assert_eq!(n, 2);
        }
    }

    #[test]
    fn a_flipped_byte_in_the_last_record_is_torn_and_earlier_is_corrupt() {
        let (bytes, last) = three();
        for i in last..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            let mut n = 0;
            assert_eq!(
                scan(&b, |_, _| n += 1),
                End::Torn { offset: last },
                "byte {i}"
            );
            assert_eq!(n, 2);
        }
        for i in 0..last {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(
                matches!(scan(&b, |_, _| {}), End::Corrupt { .. }),
                "byte {i}"
            );
        }
        // A payload flip in the middle record, with a record after it, is corruption.
        let mut b = bytes.clone();
        b[HEADER + 5 + HEADER + 2] ^= 1;
        assert!(matches!(scan(&b, |_, _| {}), End::Corrupt { offset, .. } if offset == HEADER + 5));
    }

    #[test]
    fn zero_fill_after_the_last_record_is_torn() {
        let (mut bytes, _) = three();
        let end = bytes.len();
        bytes.extend_from_slice(&[0u8; 100]);
        assert_eq!(scan(&bytes, |_, _| {}), End::Torn { offset: end });
    }

    #[test]
    fn a_frame_inside_the_last_payload_does_not_make_a_flip_corruption() {
        let mut inner = Vec::new();
        frame(b"looks like a record", &mut inner).unwrap();
        let (mut bytes, _) = three();
        let last = bytes.len();
        frame(&inner, &mut bytes).unwrap();
        // Flip a byte of the outer payload before the embedded frame.
        let mut b = bytes.clone();
        b[last + HEADER] ^= 1;
        b.extend_from_slice(&[0u8; 7]);
        assert_eq!(scan(&b, |_, _| {}), End::Torn { offset: last });
    }

    #[test]
    fn records_round_trip_and_a_foreign_version_is_refused() {
        let recs = [
            Rec::Entries(vec![vec![1, 2, 3], vec![]]),
            Rec::Hard {
                term: 3,
                vote: 2,
                commit: 9,
            },
            Rec::Conf(vec![8, 1]),
            Rec::Commit(12),
            Rec::Base { index: 5, term: 2 },
        ];
        let mut out = Vec::new();
        for r in &recs {
            encode(r, &mut out).unwrap();
        }
        let mut got = Vec::new();
        assert_eq!(scan(&out, |_, p| got.push(decode(p).unwrap())), End::Clean);
        assert_eq!(got, recs);
        assert!(matches!(decode(&[2, 0]), Err(DecodeError::Version(2))));
        assert!(matches!(decode(&[]), Err(DecodeError::Empty)));
        let mut commit = vec![VERSION];
        bincode::serde::encode_into_std_write(
            Rec::Commit(3),
            &mut commit,
            bincode::config::standard(),
        )
        .unwrap();
        assert_eq!(decode(&commit).unwrap(), Rec::Commit(3));
        commit.push(0);
        assert!(matches!(decode(&commit), Err(DecodeError::Trailing(1))));
        assert!(matches!(
            decode(&[VERSION, 200]),
            Err(DecodeError::Bincode(_))
        ));
    }
}
