//! The plain files an auditor gets (spec: `docs/ledger.md`, "Proofs and bundles"): an audit bundle
//! (`entries`, `checkpoints`, `prefix`, `chain.pem`, `README.txt` in one directory) and an
//! inclusion proof file. Each format has a writer and a strict reader whose errors say where
//! (the entry's index, or the line number); the checking itself is the auditor's (`vdx audit`).
//!
//! Everything here works on `Read`/`Write` and bytes except [`BundleWriter`], the one place in
//! this crate that touches the disk: it creates the bundle directory the node exports into.

use std::io;

use base64::Engine as _;

use crate::merkle::Hash;

mod dir;
mod entries;
mod notes;
mod prefix;
mod proof;

pub use dir::{readme, write_bundle, BundleWriter};
pub use entries::{write_entry, EntryReader};
pub use notes::{read_checkpoints, write_checkpoint, NoteText};
pub use prefix::{read_prefix, write_prefix};
pub use proof::{Proof, PROOF_MAGIC};

/// File name of the framed entries in a bundle.
pub const ENTRIES: &str = "entries";
/// File name of the signed checkpoints in a bundle.
pub const CHECKPOINTS: &str = "checkpoints";
/// File name of the prefix subtree hashes (bundles that do not start at entry 0).
pub const PREFIX: &str = "prefix";
/// File name of the node's signing certificate and its chain.
pub const CHAIN: &str = "chain.pem";
/// File name of the auditor's instructions.
pub const README: &str = "README.txt";

/// Why a bundle file or a proof is malformed, or could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The `entries` file is badly framed at the entry with this index (its position).
    #[error("entries: entry {index}: {what}")]
    Entry {
        /// The index the entry has by its position (the bundle's first index plus its rank).
        index: u64,
        /// What is wrong.
        what: String,
    },
    /// Where the `entries` file should have a `length N` line, it has something else (when the
    /// line is part of an entry, the entry before was announced shorter than it is).
    #[error("entries: entry {index}: expected a line `length N`, found {found:?}")]
    LengthLine {
        /// The index the entry would have by its position.
        index: u64,
        /// The line found (at most 12 bytes of it, lossily decoded).
        found: String,
    },
    /// A line of a line-based file (`checkpoints`, `prefix`, a proof) is wrong.
    #[error("{file}: line {line}: {what}")]
    Line {
        /// Which file.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// What was expected.
        what: String,
    },
    /// The checkpoints handed to the writer do not make a verifiable bundle (not a note, out of
    /// order, or none at the bundle's end or the size before it).
    #[error("checkpoints: {0}")]
    Checkpoints(String),
    /// The target directory of an export already holds files.
    #[error("{0}: the directory is not empty")]
    NotEmpty(String),
    /// Reading or writing a file failed.
    #[error("{file}: {source}")]
    Io {
        /// Which file.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl BundleError {
    fn line(file: &'static str, line: usize, what: impl Into<String>) -> Self {
        Self::Line {
            file,
            line,
            what: what.into(),
        }
    }

    fn io(file: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let file = file.into();
        move |source| Self::Io { file, source }
    }
}

/// A decimal number without leading zeros (the only spelling vdx writes), from raw file bytes.
fn decimal(s: &[u8]) -> Option<u64> {
    std::str::from_utf8(s).ok().and_then(crate::ledger::decimal)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Standard base64 in its one canonical spelling.
fn from_b64(text: &[u8]) -> Option<Vec<u8>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    (b64(&bytes).as_bytes() == text).then_some(bytes)
}

/// A `hash BASE64` line's value: 32 bytes.
fn hash_line(line: &[u8]) -> Option<Hash> {
    from_b64(line.strip_prefix(b"hash ")?)?.try_into().ok()
}

/// Splits `text` into lines that each end in LF: (number from 1, offset of the line's first
/// byte, the line without its LF); `Err(n)` when the last line (number `n`) has no LF.
fn lines(text: &[u8]) -> impl Iterator<Item = Result<(usize, usize, &[u8]), usize>> {
    let mut offset = 0;
    let mut number = 0;
    std::iter::from_fn(move || {
        let rest = text.get(offset..).filter(|r| !r.is_empty())?;
        number += 1;
        let start = offset;
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                offset += end + 1;
                Some(Ok((number, start, &rest[..end])))
            }
            None => {
                offset = text.len();
                Some(Err(number))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_base64_have_one_spelling() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"4096"), Some(4096));
        for bad in [&b""[..], b"01", b"+1", b"1 ", b"99999999999999999999999"] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
        assert_eq!(from_b64(b"AAE="), Some(vec![0, 1]));
        assert_eq!(from_b64(b"AAF="), None);
        assert_eq!(from_b64(b"AAE"), None);
        let hash = [9u8; 32];
        assert_eq!(
            hash_line(format!("hash {}", b64(&hash)).as_bytes()),
            Some(hash)
        );
        assert_eq!(
            hash_line(format!("hash {}", b64(&[9; 31])).as_bytes()),
            None
        );
    }

    #[test]
    fn lines_need_their_line_feed() {
        let got: Vec<_> = lines(b"a\n\nb").collect();
        assert_eq!(
            got,
            vec![Ok((1, 0, &b"a"[..])), Ok((2, 2, &b""[..])), Err(3)]
        );
        assert_eq!(lines(b"").count(), 0);
    }
}
