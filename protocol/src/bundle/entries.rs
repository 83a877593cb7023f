//! The `entries` file: each entry preceded by a line `length N` (decimal, no leading zeros,
//! 1 ≤ N ≤ [`MAX_ENTRY`]) and followed by nothing else. Read as a stream, one entry at a time,
//! so a million entries never need to be in memory together.

use std::io::{self, BufRead, Read, Write};

use super::{decimal, BundleError, ENTRIES};
use crate::ledger::MAX_ENTRY;

/// The longest well-formed `length N` line, LF included: `length 4096\n`.
const MAX_LENGTH_LINE: u64 = 12;

/// Writes one framed entry. Refuses an empty entry or one longer than [`MAX_ENTRY`], which no
/// reader would accept.
pub fn write_entry<W: Write>(out: &mut W, entry: &[u8]) -> io::Result<()> {
    if entry.is_empty() || entry.len() > MAX_ENTRY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("an entry has 1 to {MAX_ENTRY} bytes, not {}", entry.len()),
        ));
    }
    writeln!(out, "length {}", entry.len())?;
    out.write_all(entry)
}

/// Reads framed entries one by one; errors name the index the entry has by its position.
#[derive(Debug)]
pub struct EntryReader<R> {
    input: R,
    next: u64,
    failed: bool,
}

impl<R: BufRead> EntryReader<R> {
    /// Reads from `input`, whose first entry should have index `first` (the bundle's `from`).
    pub fn new(input: R, first: u64) -> Self {
        Self {
            input,
            next: first,
            failed: false,
        }
    }

    /// The index the next entry will have by its position.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// The next entry's bytes into `buf` (replacing what it held): `Ok(false)` at the clean end of
    /// the file. After an error the reader stays at the end.
    pub fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, BundleError> {
        if self.failed {
            return Ok(false);
        }
        let result = self.read_framed(buf);
        match result {
            Ok(true) => self.next += 1,
            Ok(false) => {}
            Err(_) => self.failed = true,
        }
        result
    }

    fn read_framed(&mut self, buf: &mut Vec<u8>) -> Result<bool, BundleError> {
        let index = self.next;
        let bad = |what: String| BundleError::Entry { index, what };
        let mut line = Vec::with_capacity(MAX_LENGTH_LINE as usize);
        (&mut self.input)
            .take(MAX_LENGTH_LINE)
            .read_until(b'\n', &mut line)
            .map_err(BundleError::io(ENTRIES))?;
        if line.is_empty() {
            return Ok(false);
        }
        let length = line
            .strip_suffix(b"\n")
            .and_then(|l| l.strip_prefix(b"length "))
            .and_then(decimal)
            .ok_or_else(|| {
                bad(format!(
                    "expected a line `length N`, found {:?}",
                    lossy(&line)
                ))
            })?;
        let length = usize::try_from(length)
            .ok()
            .filter(|n| (1..=MAX_ENTRY).contains(n))
            .ok_or_else(|| bad(format!("length {length} is not between 1 and {MAX_ENTRY}")))?;
        buf.clear();
        buf.resize(length, 0);
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                bad(format!(
                    "the file ends inside the entry ({length} bytes announced)"
                ))
            } else {
                BundleError::io(ENTRIES)(e)
            }
        })?;
        Ok(true)
    }
}

impl<R: BufRead> Iterator for EntryReader<R> {
    type Item = Result<Vec<u8>, BundleError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        self.read_into(&mut buf)
            .map(|more| more.then_some(buf))
            .transpose()
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(entries: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries {
            write_entry(&mut out, e).unwrap();
        }
        out
    }

    fn read(bytes: &[u8], first: u64) -> Result<Vec<Vec<u8>>, BundleError> {
        EntryReader::new(bytes, first).collect()
    }

    #[test]
    fn entries_round_trip_with_their_framing() {
        let bytes = framed(&[b"one\n", b"two\nlines\n"]);
        assert_eq!(bytes, b"length 4\none\nlength 10\ntwo\nlines\n");
        assert_eq!(
            read(&bytes, 7).unwrap(),
            vec![b"one\n".to_vec(), b"two\nlines\n".to_vec()]
        );
        assert!(read(b"", 0).unwrap().is_empty());
        let mut big = vec![b'x'; MAX_ENTRY];
        assert_eq!(read(&framed(&[&big]), 0).unwrap(), vec![big.clone()]);
        big.push(b'x');
        assert!(write_entry(&mut Vec::new(), &big).is_err());
        assert!(write_entry(&mut Vec::new(), b"").is_err());
    }

    #[test]
    fn bad_framing_names_the_entry() {
        let good = framed(&[b"one\n", b"two\n"]);
        let cases: Vec<(Vec<u8>, u64)> = vec![
            (b"length 04\none\n".to_vec(), 5),
            (b"length 4\none\nlength 0\n".to_vec(), 6),
            (b"length 4097\n".to_vec(), 5),
            (b"length 99999999999999\n".to_vec(), 5),
            (b"Length 4\none\n".to_vec(), 5),
            (b"length 4 \none\n".to_vec(), 5),
            (b"length 4\none\nlength 4\ntw".to_vec(), 6),
            (b"length 4\none\nlength 4".to_vec(), 6),
            (b"length 4\none\n\n".to_vec(), 6),
            (good[..good.len() - 1].to_vec(), 6),
            ([&good[..], b"x"].concat(), 7),
        ];
        for (bytes, index) in cases {
            match read(&bytes, 5) {
                Err(
                    BundleError::Entry { index: got, .. }
                    | BundleError::LengthLine { index: got, .. },
                ) => {
                    assert_eq!(got, index, "{:?}", lossy(&bytes));
                }
                other => panic!("{:?} gave {other:?}", lossy(&bytes)),
            }
        }
    }

    #[test]
    fn the_reader_stops_after_an_error() {
        let mut reader = EntryReader::new(&b"length 4\none\nlength x\nlength 4\ntwo\n"[..], 0);
        assert!(reader.next().unwrap().is_ok());
        assert!(reader.next().unwrap().is_err());
        assert!(reader.next().is_none());
        assert_eq!(reader.next_index(), 1);
    }
}
