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
//! corruption (a bad record with data after it, which recovery refuses).

/// Header size: length, length checksum, payload checksum.
pub const HEADER: usize = 12;
/// The largest record accepted (a snapshot can be large).
pub const MAX_RECORD: usize = 1 << 30;

/// Frames `payload` as one record.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc32fast::hash(&len).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
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
    /// A bad record at `offset` with data after it.
    Corrupt {
        /// Where the bad record starts.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// The length of a valid record starting at `at`, if there is one.
fn valid_at(bytes: &[u8], at: usize) -> Option<usize> {
    let len = u32_at(bytes, at)?;
    if crc32fast::hash(&len.to_le_bytes()) != u32_at(bytes, at + 4)? {
        return None;
    }
    let len = len as usize;
    if len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(at + HEADER..at + HEADER + len)?;
    (crc32fast::hash(payload) == u32_at(bytes, at + 8)?).then_some(len)
}

/// Walks `bytes`, calling `each(offset, payload)` for every valid record.
///
/// The rule for what ends a segment: a bad record (cut short, or failing
/// a checksum) followed by no valid record anywhere after it is a torn
/// tail; a bad record with a valid record somewhere after it is
/// corruption, since dropping it would drop acknowledged data.
pub fn scan<'a>(bytes: &'a [u8], mut each: impl FnMut(usize, &'a [u8])) -> End {
    let mut at = 0;
    while at < bytes.len() {
        match valid_at(bytes, at) {
            Some(len) => {
                if let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) {
                    each(at, payload);
                }
                at += HEADER + len;
            }
            None => {
                let later = (at + 1..bytes.len()).find(|j| valid_at(bytes, *j).is_some());
                return match later {
                    None => End::Torn { offset: at },
                    Some(next) => End::Corrupt {
                        offset: at,
                        reason: format!(
                            "bad record, with a valid record after it at offset {next}"
                        ),
                    },
                };
            }
        }
    }
    End::Clean
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        frame(b"first", &mut out);
        frame(b"second record", &mut out);
        let last = out.len();
        frame(b"third and last", &mut out);
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
}
