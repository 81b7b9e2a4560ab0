//! Helpers shared by the fuzz targets and the seed generator.
//!
//! The `wal` target fuzzes a whole data directory: a snapshot file (or
//! none) and one to three segments. Its input packs those files as
//!
//! ```text
//! | flags u8 | len u16 LE | file | len u16 LE | file | ... | last file (the rest) |
//! ```
//!
//! where bit 0 of `flags` says whether a snapshot file comes first and
//! `(flags >> 1) % 3 + 1` is the number of segments. A length past the end
//! of the input takes what is left, so every input unpacks to something.

/// The files of a fuzzed data directory.
#[derive(Debug, Default)]
pub struct DataDir<'a> {
    /// The `snapshot` file's bytes, if there is one.
    pub snapshot: Option<&'a [u8]>,
    /// The segments' bytes, oldest first (named `1.wal`, `2.wal`, ...).
    pub segments: Vec<&'a [u8]>,
}

/// Splits a fuzz input into the files of a data directory.
pub fn unpack(data: &[u8]) -> DataDir<'_> {
    let Some((flags, mut rest)) = data.split_first() else {
        return DataDir::default();
    };
    let has_snapshot = flags & 1 == 1;
    let segments = usize::from((flags >> 1) % 3) + 1;
    let files = segments + usize::from(has_snapshot);
    let mut parts = Vec::with_capacity(files);
    for i in 0..files {
        if i + 1 == files {
            parts.push(rest);
            break;
        }
        let len = match rest {
            [a, b, tail @ ..] => {
                rest = tail;
                usize::from(u16::from_le_bytes([*a, *b]))
            }
            _ => {
                let all = rest;
                rest = &[];
                all.len()
            }
        };
        let (file, tail) = rest.split_at(len.min(rest.len()));
        parts.push(file);
        rest = tail;
    }
    let mut parts = parts.into_iter();
    let snapshot = if has_snapshot { parts.next() } else { None };
    DataDir {
        snapshot,
        segments: parts.collect(),
    }
}

/// The inverse of [`unpack`], for seeds: `None` if there are not one to
/// three segments or a file other than the last is over 64 KiB.
pub fn pack(snapshot: Option<&[u8]>, segments: &[&[u8]]) -> Option<Vec<u8>> {
    if segments.is_empty() || segments.len() > 3 {
        return None;
    }
    let flags = u8::from(snapshot.is_some()) | (u8::try_from(segments.len() - 1).ok()? << 1);
    let mut out = vec![flags];
    let files: Vec<&[u8]> = snapshot
        .into_iter()
        .chain(segments.iter().copied())
        .collect();
    let (last, init) = files.split_last()?;
    for f in init {
        out.extend_from_slice(&u16::try_from(f.len()).ok()?.to_le_bytes());
        out.extend_from_slice(f);
    }
    out.extend_from_slice(last);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_then_unpack() {
        let packed = pack(Some(b"snap"), &[b"one", b"", b"three"]).unwrap();
        let dir = unpack(&packed);
        assert_eq!(dir.snapshot, Some(&b"snap"[..]));
        assert_eq!(dir.segments, vec![&b"one"[..], b"", b"three"]);
        let packed = pack(None, &[b"only"]).unwrap();
        let dir = unpack(&packed);
        assert_eq!((dir.snapshot, dir.segments), (None, vec![&b"only"[..]]));
    }

    #[test]
    fn short_inputs_unpack() {
        for data in [&[][..], &[1], &[5, 9], &[5, 200, 200, 1]] {
            let dir = unpack(data);
            assert!(dir.segments.len() <= 3);
        }
    }
}
