//! The inclusion proof file (`vdx audit prove`): everything needed to show one entry is in a
//! signed checkpoint, given the node's certificate. Lines `vdx-proof/1`, `index N`, `size N`,
//! `leaf BASE64(entry)`, one `hash BASE64` line per audit path hash (RFC 9162 §2.1.3 order), a
//! blank line, then the signed checkpoint note.

use super::{b64, decimal, from_b64, hash_line, lines, BundleError};
use crate::ledger::{Checkpoint, LedgerError, MAX_ENTRY};
use crate::merkle::Hash;

/// The first line of a proof file: format and version.
pub const PROOF_MAGIC: &str = "vdx-proof/1";

/// Most hashes an audit path can have (a tree of 2^64 leaves).
const MAX_PATH: usize = 64;

const FILE: &str = "proof";

/// An inclusion proof as written in a file: nothing here is checked against a key or a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The entry's index (its leaf index).
    pub index: u64,
    /// The tree size the path leads to (must equal the checkpoint's).
    pub size: u64,
    /// The entry's exact bytes (the leaf).
    pub leaf: Vec<u8>,
    /// The audit path, RFC 9162 order.
    pub path: Vec<Hash>,
    /// The signed checkpoint note the path leads to.
    pub checkpoint: Vec<u8>,
}

impl Proof {
    /// The file's bytes.
    pub fn to_text(&self) -> Vec<u8> {
        let mut out = format!(
            "{PROOF_MAGIC}\nindex {}\nsize {}\nleaf {}\n",
            self.index,
            self.size,
            b64(&self.leaf)
        );
        for hash in &self.path {
            out.push_str(&format!("hash {}\n", b64(hash)));
        }
        out.push('\n');
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Parses a proof file strictly (canonical numbers and base64, a well-formed note, the
    /// index inside the size); errors name the line.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let bad = |line, what: &str| BundleError::line(FILE, line, what);
        let mut lines = lines(bytes);
        let mut next = |n: usize| match lines.next() {
            Some(Ok((_, offset, line))) => Ok((offset, line)),
            Some(Err(_)) | None => Err(bad(n, "the file ends early")),
        };
        if next(1)?.1 != PROOF_MAGIC.as_bytes() {
            return Err(bad(1, "expected vdx-proof/1"));
        }
        let index = next(2)?
            .1
            .strip_prefix(b"index ")
            .and_then(decimal)
            .ok_or_else(|| bad(2, "expected `index N`"))?;
        let size = next(3)?
            .1
            .strip_prefix(b"size ")
            .and_then(decimal)
            .ok_or_else(|| bad(3, "expected `size N`"))?;
        if index >= size {
            return Err(bad(2, "the index must be below the size"));
        }
        let leaf = next(4)?
            .1
            .strip_prefix(b"leaf ")
            .and_then(from_b64)
            .filter(|l| (1..=MAX_ENTRY).contains(&l.len()))
            .ok_or_else(|| bad(4, "expected `leaf BASE64` of 1 to 4096 bytes"))?;
        let mut path = Vec::new();
        let mut n = 5;
        let note_start = loop {
            let (offset, line) = next(n)?;
            if line.is_empty() {
                break offset + 1;
            }
            if path.len() == MAX_PATH {
                return Err(bad(n, "more than 64 hash lines"));
            }
            path.push(hash_line(line).ok_or_else(|| bad(n, "expected `hash BASE64` of 32 bytes"))?);
            n += 1;
        };
        let checkpoint = bytes.get(note_start..).unwrap_or_default().to_vec();
        Checkpoint::parse_note(&checkpoint).map_err(|e| match e {
            LedgerError::Line { line, what } => bad(n + line, what),
            other => bad(n + 1, &other.to_string()),
        })?;
        Ok(Self {
            index,
            size,
            leaf,
            path,
            checkpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::NoteSignature;

    fn proof(path: usize) -> Proof {
        let checkpoint = Checkpoint {
            origin: "vdx/000.00.00.H41".into(),
            size: 5,
            root: [5; 32],
        }
        .note(&[NoteSignature {
            name: "vdx/000.00.00.H41".into(),
            key_id: [1, 2, 3, 4],
            signature: vec![9; 70],
        }]);
        Proof {
            index: 3,
            size: 5,
            leaf: b"vdx-ledger/1\nindex 3\n".to_vec(),
            path: (0..path).map(|n| [n as u8; 32]).collect(),
            checkpoint: checkpoint.into_bytes(),
        }
    }

    #[test]
    fn proofs_round_trip() {
        for n in [0, 1, 3] {
            let p = proof(n);
            let text = p.to_text();
            assert_eq!(Proof::parse(&text).unwrap(), p);
        }
        let text = String::from_utf8(proof(2).to_text()).unwrap();
        assert!(text.starts_with(
            "vdx-proof/1\nindex 3\nsize 5\nleaf dmR4LWxlZGdlci8xCmluZGV4IDMK\nhash AAAA"
        ));
        assert!(text.contains("=\n\nvdx/000.00.00.H41\n5\n"), "{text}");
    }

    #[test]
    fn other_shapes_are_refused_with_their_line() {
        let good = String::from_utf8(proof(2).to_text()).unwrap();
        let cases = [
            (good.replace("vdx-proof/1", "vdx-proof/2"), 1),
            (good.replace("index 3", "index 03"), 2),
            (good.replace("index 3", "index 5"), 2),
            (good.replace("size 5\n", "size x\n"), 3),
            (good.replace("leaf dmR4", "leaf  dmR4"), 4),
            (good.replacen("hash AAAA", "hash AAA", 1), 5),
            (good.replacen("=\n\nvdx", "=\nvdx", 1), 7),
            (good.replace("\n5\n", "\n05\n"), 9),
            (good.trim_end().to_owned(), 12),
            (good[..30].to_owned(), 4),
        ];
        for (bad, line) in cases {
            match Proof::parse(bad.as_bytes()) {
                Err(BundleError::Line {
                    line: got, what, ..
                }) => {
                    assert_eq!(got, line, "{bad:?}: {what}");
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
