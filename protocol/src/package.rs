//! The dispatch package (spec: `docs/dispatch-package.md`): a tar stream of `dispatch.json` and the
//! files, written the same way every time and read back with every entry checked.

use std::collections::HashSet;
use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use crate::header::DispatchHeader;

/// Name of the header entry, always first.
pub const HEADER_NAME: &str = DispatchHeader::FILE_NAME;
/// Largest header accepted: a header at every limit of the header spec fits.
pub const MAX_HEADER: u64 = DispatchHeader::MAX_JSON_BYTES as u64;
/// Most files in one dispatch.
pub const MAX_FILES: usize = DispatchHeader::MAX_FILES;

/// Why a package could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// The first entry is not `dispatch.json`.
    #[error("the package does not start with dispatch.json")]
    MissingHeader,
    /// The header is larger than [`MAX_HEADER`].
    #[error("dispatch.json of {0} bytes exceeds the limit of {MAX_HEADER}")]
    HeaderTooLarge(u64),
    /// An entry that is not a regular file.
    #[error("entry {name:?} is not a regular file")]
    NotAFile {
        /// Its name.
        name: String,
    },
    /// A name that is not a plain file name.
    #[error("entry name {0:?} is not a plain file name")]
    BadName(String),
    /// The same name twice.
    #[error("entry {0:?} appears twice")]
    Duplicate(String),
    /// More than [`MAX_FILES`] files.
    #[error("more than {MAX_FILES} files")]
    TooManyFiles,
    /// A file shorter than it said it was.
    #[error("file {name:?} has {actual} bytes, not the {declared} given")]
    SizeMismatch {
        /// Its name.
        name: String,
        /// Bytes announced.
        declared: u64,
        /// Bytes read.
        actual: u64,
    },
    /// Not a tar stream, or a truncated one.
    #[error("not a valid package: {0}")]
    Tar(#[from] io::Error),
}

/// One file as read (or written): what the caller compares with the header's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Plain file name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

/// A package read back: the header bytes (for the caller to parse) and every file's digest.
#[derive(Debug, Clone)]
pub struct PackageContents {
    /// The bytes of `dispatch.json`.
    pub header_json: Vec<u8>,
    /// The files in order.
    pub files: Vec<FileDigest>,
}

/// Writes a package: the header first, then each file as it is added.
pub struct PackageWriter<W: Write> {
    tar: tar::Builder<W>,
    names: HashSet<String>,
}

impl<W: Write> PackageWriter<W> {
    /// Starts the stream with `dispatch.json`.
    pub fn new(out: W, header_json: &[u8]) -> Result<Self, PackageError> {
        if header_json.len() as u64 > MAX_HEADER {
            return Err(PackageError::HeaderTooLarge(header_json.len() as u64));
        }
        let mut writer = Self {
            tar: tar::Builder::new(out),
            names: HashSet::new(),
        };
        writer.append(HEADER_NAME, header_json.len() as u64, header_json)?;
        Ok(writer)
    }

    /// Appends a file of exactly `size` bytes read from `content`; returns its digest for the manifest.
    /// After an error the output is unusable: discard it.
    pub fn add_file(
        &mut self,
        name: &str,
        size: u64,
        content: impl Read,
    ) -> Result<FileDigest, PackageError> {
        check_name(name)?;
        if self.names.len() == MAX_FILES {
            return Err(PackageError::TooManyFiles);
        }
        if !self.names.insert(name.to_owned()) || name == HEADER_NAME {
            return Err(PackageError::Duplicate(name.to_owned()));
        }
        let mut hashing = HashingReader::new(content.take(size));
        self.append(name, size, &mut hashing)?;
        if hashing.count != size {
            return Err(PackageError::SizeMismatch {
                name: name.to_owned(),
                declared: size,
                actual: hashing.count,
            });
        }
        Ok(FileDigest {
            name: name.to_owned(),
            size,
            sha256: hashing.finish(),
        })
    }

    /// Writes the end of the archive and hands back the output.
    pub fn finish(self) -> Result<W, PackageError> {
        Ok(self.tar.into_inner()?)
    }

    fn append(&mut self, name: &str, size: u64, content: impl Read) -> Result<(), PackageError> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        self.tar.append_data(&mut header, name, content)?;
        Ok(())
    }
}

/// Reads a package, handing each file's bytes to `on_file` (which may store or discard them) while
/// computing its digest. The caller checks the result against the header's manifest.
pub fn read_package<R: Read>(
    input: R,
    mut on_file: impl FnMut(&str, &mut dyn Read) -> io::Result<()>,
) -> Result<PackageContents, PackageError> {
    let mut archive = tar::Archive::new(input);
    let mut entries = archive.entries()?;
    let mut header_json = Vec::new();
    match entries.next() {
        Some(entry) => {
            let entry = entry?;
            let name = entry_name(&entry)?;
            if name != HEADER_NAME || entry.header().entry_type() != tar::EntryType::Regular {
                return Err(PackageError::MissingHeader);
            }
            let size = entry.size();
            if size > MAX_HEADER {
                return Err(PackageError::HeaderTooLarge(size));
            }
            entry.take(MAX_HEADER).read_to_end(&mut header_json)?;
        }
        None => return Err(PackageError::MissingHeader),
    }
    let mut files = Vec::new();
    let mut names = HashSet::new();
    for entry in entries {
        let entry = entry?;
        let name = entry_name(&entry)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(PackageError::NotAFile { name });
        }
        check_name(&name)?;
        if name == HEADER_NAME || !names.insert(name.clone()) {
            return Err(PackageError::Duplicate(name));
        }
        if files.len() == MAX_FILES {
            return Err(PackageError::TooManyFiles);
        }
        let declared = entry.size();
        let mut hashing = HashingReader::new(entry);
        on_file(&name, &mut hashing)?;
        io::copy(&mut hashing, &mut io::sink())?;
        if hashing.count != declared {
            return Err(PackageError::SizeMismatch {
                name,
                declared,
                actual: hashing.count,
            });
        }
        files.push(FileDigest {
            name,
            size: declared,
            sha256: hashing.finish(),
        });
    }
    Ok(PackageContents { header_json, files })
}

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, PackageError> {
    let bytes = entry.path_bytes();
    String::from_utf8(bytes.into_owned())
        .map_err(|e| PackageError::BadName(String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// A plain file name: what may stand in the manifest and be written under an output directory.
pub fn check_name(name: &str) -> Result<(), PackageError> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if plain {
        Ok(())
    } else {
        Err(PackageError::BadName(name.to_owned()))
    }
}

/// Counts and hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(files: &[(&str, &[u8])]) -> (Vec<u8>, Vec<FileDigest>) {
        let mut w = PackageWriter::new(Vec::new(), br#"{"version":1}"#).unwrap();
        let digests = files
            .iter()
            .map(|(name, bytes)| w.add_file(name, bytes.len() as u64, *bytes).unwrap())
            .collect();
        (w.finish().unwrap(), digests)
    }

    #[test]
    fn round_trip_is_deterministic_and_digests_agree() {
        let long_name = format!("{}.pdf", "Công văn số 7816 về việc thử nghiệm ".repeat(4));
        let files: Vec<(&str, &[u8])> = vec![
            ("7816-VPCP-TTDT.pdf", b"%PDF-1.7 ..."),
            ("Phụ lục 1.xlsx", &[0u8; 20_000]),
            (long_name.as_str(), b"long"),
            ("empty.txt", b""),
        ];
        let (bytes, written) = build(&files);
        assert_eq!(build(&files).0, bytes, "same dispatch, same bytes");
        let mut seen = Vec::new();
        let read = read_package(&bytes[..], |name, r| {
            let mut content = Vec::new();
            r.read_to_end(&mut content)?;
            seen.push((name.to_owned(), content));
            Ok(())
        })
        .unwrap();
        assert_eq!(read.header_json, br#"{"version":1}"#);
        assert_eq!(read.files, written);
        for ((name, content), (want_name, want)) in seen.iter().zip(&files) {
            assert_eq!(name, want_name);
            assert_eq!(content.as_slice(), *want);
        }
        let expected: [u8; 32] = Sha256::digest(b"%PDF-1.7 ...").into();
        assert_eq!(written[0].sha256, expected);
    }

    #[test]
    fn standard_tar_reads_what_we_write() {
        let (bytes, _) = build(&[("a.txt", b"hello")]);
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["dispatch.json", "a.txt"]);
    }

    #[test]
    fn writer_refuses_bad_names_duplicates_and_short_files() {
        let mut w = PackageWriter::new(Vec::new(), b"{}").unwrap();
        for bad in ["", ".", "..", "a/b", "a\\b", "tab\there", "dispatch.json"] {
            assert!(w.add_file(bad, 1, &b"x"[..]).is_err(), "{bad:?}");
        }
        w.add_file("a", 1, &b"x"[..]).unwrap();
        assert!(matches!(
            w.add_file("a", 1, &b"x"[..]),
            Err(PackageError::Duplicate(_))
        ));
        assert!(matches!(
            w.add_file("short", 10, &b"abc"[..]),
            Err(PackageError::SizeMismatch { .. }) | Err(PackageError::Tar(_))
        ));
    }

    fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Raw name bytes: `set_path` itself refuses some of the names under test.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn reader_refuses_every_kind_of_bad_package() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let ok = |_: &str, _: &mut dyn Read| Ok(());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (raw_tar(&[("a.txt", Regular, b"x")]), "missing header"),
            (
                raw_tar(&[("dispatch.json", Regular, b"{}"), ("d", Directory, b"")]),
                "directory",
            ),
            (
                raw_tar(&[("dispatch.json", Regular, b"{}"), ("l", Symlink, b"")]),
                "link",
            ),
            (
                raw_tar(&[("dispatch.json", Regular, b"{}"), ("../x", Regular, b"x")]),
                "parent path",
            ),
            (
                raw_tar(&[("dispatch.json", Regular, b"{}"), ("sub/x", Regular, b"x")]),
                "sub path",
            ),
            (
                raw_tar(&[
                    ("dispatch.json", Regular, b"{}"),
                    ("x", Regular, b"1"),
                    ("x", Regular, b"2"),
                ]),
                "duplicate",
            ),
            (
                raw_tar(&[
                    ("dispatch.json", Regular, b"{}"),
                    ("dispatch.json", Regular, b"{}"),
                ]),
                "second header",
            ),
            (
                b"not a tar stream at all, just text that goes on for a while".repeat(20),
                "garbage",
            ),
        ];
        for (bytes, what) in cases {
            assert!(read_package(&bytes[..], ok).is_err(), "{what} accepted");
        }
        let (good, _) = build(&[("a.txt", &[7u8; 5000])]);
        for cut in [10, 600, 1100, 3000, good.len() - 1030] {
            assert!(
                read_package(&good[..cut], ok).is_err(),
                "truncated at {cut} accepted"
            );
        }
    }
}
