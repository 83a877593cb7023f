//! Writing a bundle directory: what the node's export calls. The directory is created (or must be
//! empty), so an export never mixes with older files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{
    write_checkpoint, write_entry, write_prefix, BundleError, CHAIN, CHECKPOINTS, ENTRIES, PREFIX,
    README,
};
use crate::ledger::Checkpoint;
use crate::merkle::Hash;

/// Writes a bundle entry by entry, so the node can stream its ledger out: [`BundleWriter::create`],
/// [`BundleWriter::entry`] for each entry from `from` on, then [`BundleWriter::finish`].
#[derive(Debug)]
pub struct BundleWriter {
    dir: PathBuf,
    entries: BufWriter<File>,
    from: u64,
    next: u64,
}

impl BundleWriter {
    /// Creates `dir` (or takes it if it exists and is empty) and writes the `prefix` file when
    /// `from` > 0: `prefix` is [`crate::merkle::compact_range`]`(from)`.
    pub fn create(dir: &Path, from: u64, prefix: &[Hash]) -> Result<Self, BundleError> {
        let name = dir.display().to_string();
        match fs::read_dir(dir) {
            Ok(mut listing) => {
                if listing.next().is_some() {
                    return Err(BundleError::NotEmpty(name));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(BundleError::io(&name))?;
            }
            Err(e) => return Err(BundleError::io(&name)(e)),
        }
        if from > 0 {
            let mut text = Vec::new();
            write_prefix(&mut text, from, prefix).map_err(BundleError::io(PREFIX))?;
            write_new(dir, PREFIX, &text)?;
        }
        let entries = create_new(dir, ENTRIES)?;
        Ok(Self {
            dir: dir.to_owned(),
            entries: BufWriter::with_capacity(1 << 20, entries),
            from,
            next: from,
        })
    }

    /// Appends the entry with the next index (the caller gives them in order, from `from`).
    pub fn entry(&mut self, entry: &[u8]) -> Result<(), BundleError> {
        write_entry(&mut self.entries, entry).map_err(|e| BundleError::Entry {
            index: self.next,
            what: e.to_string(),
        })?;
        self.next += 1;
        Ok(())
    }

    /// Writes the signed checkpoint notes (in increasing size order, including one at the
    /// bundle's end and one at the size before it, so the verifier can localise a change to the
    /// last entry), the node's chain (signing certificate first, PEM) and `README.txt`. Returns
    /// the bundle's end (one past its last index).
    pub fn finish<I>(mut self, checkpoints: I, chain_pem: &[u8]) -> Result<u64, BundleError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.entries.flush().map_err(BundleError::io(ENTRIES))?;
        let end = self.next;
        let mut notes = Vec::new();
        let mut sizes = Vec::new();
        for note in checkpoints {
            let note = note.as_ref();
            let (checkpoint, _) = Checkpoint::parse_note(note)
                .map_err(|e| BundleError::Checkpoints(format!("not a note: {e}")))?;
            let size = checkpoint.size;
            if let Some(&last) = sizes.last().filter(|&&last| last > size) {
                return Err(BundleError::Checkpoints(format!(
                    "size {size} after size {last}"
                )));
            }
            sizes.push(size);
            write_checkpoint(&mut notes, note).map_err(BundleError::io(CHECKPOINTS))?;
        }
        let needed = [Some(end), end.checked_sub(1).filter(|&s| s >= self.from)];
        for size in needed.into_iter().flatten() {
            if !sizes.contains(&size) {
                return Err(BundleError::Checkpoints(format!(
                    "none of size {size}: a bundle ending at {end} needs checkpoints at {end} and \
                     the size before"
                )));
            }
        }
        if sizes.last() != Some(&end) {
            return Err(BundleError::Checkpoints(format!(
                "a checkpoint of size {:?} after the bundle's end {end}",
                sizes.last()
            )));
        }
        write_new(&self.dir, CHECKPOINTS, &notes)?;
        write_new(&self.dir, CHAIN, chain_pem)?;
        write_new(&self.dir, README, readme(self.from, end).as_bytes())?;
        Ok(end)
    }
}

/// Writes a whole bundle at once (see [`BundleWriter`]); returns its end.
pub fn write_bundle<E, C>(
    dir: &Path,
    from: u64,
    prefix: &[Hash],
    entries: E,
    checkpoints: C,
    chain_pem: &[u8],
) -> Result<u64, BundleError>
where
    E: IntoIterator,
    E::Item: AsRef<[u8]>,
    C: IntoIterator,
    C::Item: AsRef<[u8]>,
{
    let mut writer = BundleWriter::create(dir, from, prefix)?;
    for entry in entries {
        writer.entry(entry.as_ref())?;
    }
    writer.finish(checkpoints, chain_pem)
}

/// The auditor's instructions for a bundle of entries `from..end`.
pub fn readme(from: u64, end: u64) -> String {
    let range = if end > from {
        format!("entries {from} to {}", end - 1)
    } else {
        "no entries".to_owned()
    };
    format!(
        "Audit bundle of a vdx ledger: {range}, the checkpoints the node signed over them, and the
node's signing certificate with its chain (chain.pem, signing certificate first).

To check it:    vdx audit verify THIS_DIRECTORY --ca YOUR_CA.pem

It recomputes every leaf hash and Merkle root, checks each checkpoint's signature with the first
certificate of chain.pem and its root against the entries, and names the first changed entry.
By hand, without vdx, follow docs/ledger.md (\"Proofs and bundles\"): the leaf hash of each entry
in `entries` is SHA-256(0x00 || entry) (RFC 9162 tree; `prefix`, if present, holds the subtrees
before the first entry); check each note in `checkpoints` with
`openssl dgst -sha256 -verify PUBKEY.pem -signature SIG.bin BODY.txt`.
"
    )
}

fn create_new(dir: &Path, name: &str) -> Result<File, BundleError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(name))
        .map_err(BundleError::io(name))
}

fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), BundleError> {
    create_new(dir, name)?
        .write_all(bytes)
        .map_err(BundleError::io(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{read_checkpoints, read_prefix, EntryReader};
    use crate::ledger::NoteSignature;

    fn note(size: u64) -> String {
        Checkpoint {
            origin: "vdx/000.00.00.H41".into(),
            size,
            root: [size as u8; 32],
        }
        .note(&[NoteSignature {
            name: "vdx/000.00.00.H41".into(),
            key_id: [1, 2, 3, 4],
            signature: vec![9; 8],
        }])
    }

    #[test]
    fn a_bundle_is_written_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("export/one");
        let entries = [b"a\n".to_vec(), b"bc\n".to_vec()];
        let end = write_bundle(
            &dir,
            3,
            &[[1; 32], [2; 32]],
            &entries,
            [note(4), note(5)],
            b"PEM",
        )
        .unwrap();
        assert_eq!(end, 5);
        let read: Vec<_> = EntryReader::new(&fs::read(dir.join(ENTRIES)).unwrap()[..], 3)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, entries);
        assert_eq!(
            read_prefix(&fs::read(dir.join(PREFIX)).unwrap())
                .unwrap()
                .size(),
            3
        );
        let notes = read_checkpoints(&fs::read(dir.join(CHECKPOINTS)).unwrap()).unwrap();
        assert_eq!(notes.len(), 2);
        assert_eq!(fs::read(dir.join(CHAIN)).unwrap(), b"PEM");
        let readme = fs::read_to_string(dir.join(README)).unwrap();
        assert!(readme.contains("entries 3 to 4"), "{readme}");

        // A non-empty directory is refused; an existing empty one is used; no prefix from 0.
        assert!(matches!(
            BundleWriter::create(&dir, 0, &[]),
            Err(BundleError::NotEmpty(_))
        ));
        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        assert_eq!(
            write_bundle(&empty, 0, &[], [b"x\n"], [note(0), note(1)], b"").unwrap(),
            1
        );
        assert!(!empty.join(PREFIX).exists());
    }

    #[test]
    fn bad_input_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |n: &str| tmp.path().join(n);
        assert!(BundleWriter::create(&dir("a"), 3, &[[1; 32]]).is_err());
        let mut w = BundleWriter::create(&dir("b"), 0, &[]).unwrap();
        assert!(matches!(
            w.entry(b""),
            Err(BundleError::Entry { index: 0, .. })
        ));
        let bundle = |name: &str, n: usize| {
            let mut w = BundleWriter::create(&dir(name), 0, &[]).unwrap();
            for _ in 0..n {
                w.entry(b"x\n").unwrap();
            }
            w
        };
        for (case, (n, notes)) in [
            (5, vec![note(5), note(4)]),
            (5, vec![note(5)]),
            (5, vec![note(4)]),
            (5, vec![note(3), note(5)]),
            (5, vec![note(4), note(5), note(6)]),
        ]
        .into_iter()
        .enumerate()
        {
            let w = bundle(&format!("c{case}"), n);
            let notes: Vec<String> = notes;
            assert!(
                matches!(w.finish(&notes, b""), Err(BundleError::Checkpoints(_))),
                "{notes:?}"
            );
        }
        let w = bundle("d", 0);
        assert!(matches!(
            w.finish(["garbage"], b""),
            Err(BundleError::Checkpoints(_))
        ));
        assert_eq!(bundle("e", 0).finish([note(0)], b"").unwrap(), 0);
    }
}
