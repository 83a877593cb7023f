//! The `checkpoints` file: signed checkpoint notes, each followed by one blank line. A note is
//! three body lines, a blank line and one or more signature lines starting with `— `, so the
//! blank line after the last signature line is what ends it.

use std::io::{self, Write};

use super::{lines, BundleError, CHECKPOINTS};
use crate::ledger::{Checkpoint, LedgerError};

/// One well-formed note of a `checkpoints` file, signatures not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteText {
    /// The line of the file its origin is on (1-based), for findings.
    pub line: usize,
    /// Its body, as the note says.
    pub checkpoint: Checkpoint,
    /// The note's exact bytes, for signature verification.
    pub text: Vec<u8>,
}

/// Writes one note and the blank line after it. Refuses bytes that are not a checkpoint note.
pub fn write_checkpoint<W: Write>(out: &mut W, note: &[u8]) -> io::Result<()> {
    Checkpoint::parse_note(note).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    out.write_all(note)?;
    out.write_all(b"\n")
}

/// Splits a `checkpoints` file into its notes and parses each strictly; errors name the line.
/// The order of sizes is not checked here: that is a finding of the verifier.
pub fn read_checkpoints(file: &[u8]) -> Result<Vec<NoteText>, BundleError> {
    let mut notes = Vec::new();
    let mut cursor = Cursor {
        lines: lines(file).peekable(),
        last: 0,
    };
    while cursor.lines.peek().is_some() {
        let first_line = cursor.last + 1;
        let mut start = 0;
        for what in ["the origin", "the size", "the root"] {
            let (n, offset, line) = cursor.next(what)?;
            if line.is_empty() {
                return Err(BundleError::line(
                    CHECKPOINTS,
                    n,
                    format!("expected {what}, found a blank line"),
                ));
            }
            if n == first_line {
                start = offset;
            }
        }
        let (n, _, line) = cursor.next("a blank line")?;
        if !line.is_empty() {
            return Err(BundleError::line(
                CHECKPOINTS,
                n,
                "expected a blank line after the body",
            ));
        }
        let mut signatures = 0;
        let end = loop {
            let (n, offset, line) = cursor.next("a signature line or a blank line")?;
            if line.is_empty() {
                break offset;
            }
            if !line.starts_with("— ".as_bytes()) {
                return Err(BundleError::line(
                    CHECKPOINTS,
                    n,
                    "expected a signature line `— NAME BASE64`",
                ));
            }
            signatures += 1;
        };
        if signatures == 0 {
            return Err(BundleError::line(
                CHECKPOINTS,
                first_line + 4,
                "a checkpoint needs a signature line",
            ));
        }
        let text = &file[start..end];
        let (checkpoint, _) =
            Checkpoint::parse_note(text).map_err(|e| note_error(first_line, &e))?;
        notes.push(NoteText {
            line: first_line,
            checkpoint,
            text: text.to_vec(),
        });
    }
    Ok(notes)
}

/// Lines of the file one by one, remembering the last line number for "ends early" errors.
struct Cursor<I: Iterator> {
    lines: std::iter::Peekable<I>,
    last: usize,
}

impl<'a, I: Iterator<Item = Result<(usize, usize, &'a [u8]), usize>>> Cursor<I> {
    fn next(&mut self, what: &str) -> Result<(usize, usize, &'a [u8]), BundleError> {
        match self.lines.next() {
            Some(Ok(line)) => {
                self.last = line.0;
                Ok(line)
            }
            Some(Err(n)) => Err(BundleError::line(
                CHECKPOINTS,
                n,
                "the file must end with a line feed",
            )),
            None => Err(BundleError::line(
                CHECKPOINTS,
                self.last + 1,
                format!("the file ends inside a checkpoint: expected {what}"),
            )),
        }
    }
}

/// A note's parse error at its line in the file.
fn note_error(first_line: usize, e: &LedgerError) -> BundleError {
    match e {
        LedgerError::Line { line, what } => {
            BundleError::line(CHECKPOINTS, first_line + line - 1, *what)
        }
        other => BundleError::line(CHECKPOINTS, first_line, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::NoteSignature;

    fn note(size: u64, signatures: usize) -> String {
        let checkpoint = Checkpoint {
            origin: "vdx/000.00.00.H41".into(),
            size,
            root: [size as u8; 32],
        };
        let sigs: Vec<_> = (0..signatures)
            .map(|n| NoteSignature {
                name: format!("key{n}"),
                key_id: [n as u8; 4],
                signature: vec![1, 2, 3],
            })
            .collect();
        checkpoint.note(&sigs)
    }

    fn file(notes: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in notes {
            write_checkpoint(&mut out, n.as_bytes()).unwrap();
        }
        out
    }

    #[test]
    fn notes_round_trip_with_their_line_numbers() {
        let notes = [note(1, 1), note(5, 2), note(9, 1)];
        let bytes = file(&notes);
        let read = read_checkpoints(&bytes).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read.iter().map(|n| n.line).collect::<Vec<_>>(), [1, 7, 14]);
        for (got, want) in read.iter().zip(&notes) {
            assert_eq!(got.text, want.as_bytes());
        }
        assert_eq!(read[1].checkpoint.size, 5);
        assert!(read_checkpoints(b"").unwrap().is_empty());
        assert!(write_checkpoint(&mut Vec::new(), b"not a note\n").is_err());
    }

    #[test]
    fn malformed_files_name_the_line() {
        let good = String::from_utf8(file(&[note(1, 1), note(5, 1)])).unwrap();
        let cases = [
            (good.trim_end().to_owned(), 11),
            (format!("{good}\n"), 13),
            (good.replacen("\n\nvdx", "\nx\nvdx", 1), 6),
            (good.replacen("\n\nvdx", "\nvdx", 1), 6),
            (good.replacen("— ", "- ", 1), 5),
            (good.replacen("\n5\n", "\n05\n", 1), 8),
            (good.replacen("\n5\n", "\n\n", 1), 8),
            (good[..good.len() - 1].to_owned(), 12),
            (good[..20].to_owned(), 3),
        ];
        for (bad, line) in cases {
            match read_checkpoints(bad.as_bytes()) {
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
