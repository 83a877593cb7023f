//! The `prefix` file of a bundle that starts at entry `from` > 0: a line `size FROM`, then one
//! `hash BASE64` line per perfect subtree covering leaves `[0, from)`, largest first (one per set
//! bit of `from`, high to low). With it the auditor recomputes every root from `from` on without
//! the earlier entries.

use std::io::{self, Write};

use super::{b64, decimal, hash_line, lines, BundleError, PREFIX};
use crate::merkle::{CompactRange, Hash};

/// Writes the prefix of a bundle starting at `from`, given [`crate::merkle::compact_range`]`(from)`.
/// Refuses a number of hashes other than one per set bit of `from`.
pub fn write_prefix<W: Write>(out: &mut W, from: u64, hashes: &[Hash]) -> io::Result<()> {
    if hashes.len() != from.count_ones() as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a prefix of size {from} has {} hashes, not {}",
                from.count_ones(),
                hashes.len()
            ),
        ));
    }
    writeln!(out, "size {from}")?;
    for hash in hashes {
        writeln!(out, "hash {}", b64(hash))?;
    }
    Ok(())
}

/// Reads a `prefix` file strictly into the tree it stands for: its size is the bundle's first
/// index. (A bundle without the file starts at 0: use [`CompactRange::new`].)
pub fn read_prefix(file: &[u8]) -> Result<CompactRange, BundleError> {
    let bad = |line, what: &str| BundleError::line(PREFIX, line, what);
    let mut lines = lines(file);
    let size = match lines.next() {
        Some(Ok((_, _, line))) => line
            .strip_prefix(b"size ")
            .and_then(decimal)
            .ok_or_else(|| bad(1, "expected `size N`"))?,
        Some(Err(n)) => return Err(bad(n, "the file must end with a line feed")),
        None => return Err(bad(1, "expected `size N`")),
    };
    let expected = size.count_ones() as usize;
    let mut hashes = Vec::with_capacity(expected);
    for line in lines {
        let (n, _, line) = line.map_err(|n| bad(n, "the file must end with a line feed"))?;
        if hashes.len() == expected {
            return Err(bad(n, "more hash lines than set bits in the size"));
        }
        hashes.push(hash_line(line).ok_or_else(|| bad(n, "expected `hash BASE64` of 32 bytes"))?);
    }
    if hashes.len() != expected {
        return Err(bad(
            hashes.len() + 2,
            "fewer hash lines than set bits in the size",
        ));
    }
    CompactRange::from_prefix(size, hashes).map_err(|e| bad(1, &e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_round_trip_and_refuse_other_shapes() {
        let hashes = [[1u8; 32], [2; 32], [3; 32]];
        let mut text = Vec::new();
        write_prefix(&mut text, 0b1011, &hashes).unwrap();
        let range = read_prefix(&text).unwrap();
        assert_eq!(range.size(), 11);
        assert_eq!(range.hashes(), hashes);
        assert!(write_prefix(&mut Vec::new(), 4, &hashes).is_err());
        assert_eq!(read_prefix(b"size 0\n").unwrap(), CompactRange::new());

        let good = String::from_utf8(text).unwrap();
        let cases = [
            (good.replace("size 11", "size 011"), 1),
            (good.replace("size 11", "size 12"), 4),
            (good.replace("size 11", "size 8"), 3),
            (good.replace("size 11", "size 15"), 5),
            (good.replacen("hash ", "hash  ", 1), 2),
            (good.replacen("=\n", "\n", 1), 2),
            (good.trim_end().to_owned(), 4),
            (format!("{good}\n"), 5),
            (String::new(), 1),
        ];
        for (bad, line) in cases {
            match read_prefix(bad.as_bytes()) {
                Err(BundleError::Line { line: got, .. }) => assert_eq!(got, line, "{bad:?}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
