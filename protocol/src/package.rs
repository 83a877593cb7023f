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
/// Largest GNU long-name/long-link (`L`/`K`) or PAX extended header (`x`/`g`) body accepted: a
/// 255-byte name needs 256 bytes as a GNU long name and about 270 as a PAX record, so 4 KiB leaves
/// room for the other PAX records tar writers add (times, owner) and nothing near a memory budget.
pub const MAX_EXTENSION: u64 = 4096;

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
    /// A GNU long-name or long-link entry (`L`, `K`) or a PAX extended header (`x`, `g`) larger
    /// than [`MAX_EXTENSION`]: refused from its header, before any of it is read.
    #[error(
        "tar extension entry of type {kind:?} of {size} bytes exceeds the limit of {MAX_EXTENSION}"
    )]
    ExtensionTooLarge {
        /// The entry's type flag (`L`, `K`, `x` or `g`).
        kind: char,
        /// Its declared size.
        size: u64,
    },
    /// A 512-byte tar header that does not check: bad checksum, unreadable number, a PAX record
    /// that does not parse, a sparse file, or two names for one entry.
    #[error("not a valid package: bad tar header at byte {offset}: {what}")]
    BadHeader {
        /// Offset of the header block (or of the extension entry) in the package.
        offset: u64,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The stream ends inside a header or a file, or before the end-of-archive blocks.
    #[error("not a valid package: the tar stream ends early (after {offset} bytes)")]
    Truncated {
        /// Bytes read before the end.
        offset: u64,
    },
    /// Not a tar stream, or the caller's `on_file` failed.
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
///
/// The tar stream is parsed here, not by the `tar` crate, whose reader holds GNU long names and PAX
/// headers of any size in memory: this one holds at most [`MAX_EXTENSION`] bytes of them, the
/// header's [`MAX_HEADER`] bytes, one 512-byte block and the file digests. It stops after the
/// end-of-archive blocks and reads nothing beyond them.
pub fn read_package<R: Read>(
    input: R,
    mut on_file: impl FnMut(&str, &mut dyn Read) -> io::Result<()>,
) -> Result<PackageContents, PackageError> {
    let mut tar = TarReader {
        inner: input,
        offset: 0,
    };
    let header_json = match tar.next_entry()? {
        Some(entry) => {
            let name = entry_name(&entry)?;
            if name != HEADER_NAME || !entry.regular {
                return Err(PackageError::MissingHeader);
            }
            if entry.size > MAX_HEADER {
                return Err(PackageError::HeaderTooLarge(entry.size));
            }
            let mut json = Vec::new();
            let mut content = tar.content(entry.size);
            content.read_to_end(&mut json)?;
            content.finish()?;
            json
        }
        None => return Err(PackageError::MissingHeader),
    };
    let mut files = Vec::new();
    let mut names = HashSet::new();
    while let Some(entry) = tar.next_entry()? {
        let name = entry_name(&entry)?;
        if !entry.regular {
            return Err(PackageError::NotAFile { name });
        }
        check_name(&name)?;
        if name == HEADER_NAME || !names.insert(name.clone()) {
            return Err(PackageError::Duplicate(name));
        }
        if files.len() == MAX_FILES {
            return Err(PackageError::TooManyFiles);
        }
        let declared = entry.size;
        let mut hashing = HashingReader::new(tar.content(declared));
        on_file(&name, &mut hashing)?;
        io::copy(&mut hashing, &mut io::sink())?;
        let count = hashing.count;
        let sha256 = hashing.hasher.finalize().into();
        hashing.inner.finish()?;
        if count != declared {
            return Err(PackageError::SizeMismatch {
                name,
                declared,
                actual: count,
            });
        }
        files.push(FileDigest {
            name,
            size: declared,
            sha256,
        });
    }
    Ok(PackageContents { header_json, files })
}

fn entry_name(entry: &TarEntry) -> Result<String, PackageError> {
    String::from_utf8(entry.name.clone())
        .map_err(|e| PackageError::BadName(String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Size of a tar block: headers, and the unit file contents are padded to.
const BLOCK: usize = 512;

/// One member of the archive as its headers (and any GNU or PAX extensions before them) describe it.
struct TarEntry {
    name: Vec<u8>,
    /// Type flag `0` (or NUL, as old tars write it): a regular file.
    regular: bool,
    size: u64,
}

/// A pull reader of exactly the tar the package format allows (POSIX ustar, GNU long names, PAX
/// extended headers), counting the offset for errors.
struct TarReader<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> TarReader<R> {
    /// Fills `buf` completely; the end of the stream here is [`PackageError::Truncated`].
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), PackageError> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(PackageError::Truncated {
                offset: self.offset,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads and discards the padding after `size` bytes of content.
    fn skip_padding(&mut self, size: u64) -> Result<(), PackageError> {
        let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        let mut buf = [0u8; BLOCK];
        self.read_exact(&mut buf[..pad])
    }

    /// The next member, its extension entries applied; `None` after the two zero blocks that end
    /// the archive.
    fn next_entry(&mut self) -> Result<Option<TarEntry>, PackageError> {
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link = false;
        let mut pax: Option<Pax> = None;
        loop {
            let at = self.offset;
            let mut block = [0u8; BLOCK];
            self.read_exact(&mut block)?;
            if block.iter().all(|&b| b == 0) {
                self.read_exact(&mut block)?;
                if block.iter().any(|&b| b != 0)
                    || long_name.is_some()
                    || long_link
                    || pax.is_some()
                {
                    return Err(PackageError::BadHeader {
                        offset: at,
                        what: "a zero block in the middle of the archive",
                    });
                }
                return Ok(None);
            }
            let bad = |what| PackageError::BadHeader { offset: at, what };
            let stored = parse_number(&block[148..156]).ok_or(bad("unreadable checksum"))?;
            let sum: u64 = block
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(b)
                    }
                })
                .sum();
            if stored != sum {
                return Err(bad("checksum does not match"));
            }
            let size = parse_number(&block[124..136]).ok_or(bad("unreadable size"))?;
            let kind = block[156];
            match kind {
                b'L' | b'K' | b'x' | b'g' => {
                    if size > MAX_EXTENSION {
                        return Err(PackageError::ExtensionTooLarge {
                            kind: char::from(kind),
                            size,
                        });
                    }
                    // Bounded by MAX_EXTENSION just above.
                    let mut body = vec![0u8; size as usize];
                    self.read_exact(&mut body)?;
                    self.skip_padding(size)?;
                    match kind {
                        b'L' if long_name.is_none() => {
                            let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                            body.truncate(end);
                            long_name = Some(body);
                        }
                        // A link's target: links are refused below whatever it says.
                        b'K' if !long_link => long_link = true,
                        b'x' if pax.is_none() => {
                            pax = Some(Pax::parse(&body).ok_or(bad("bad PAX record"))?)
                        }
                        // Global records would apply to every later entry; only harmless ones pass.
                        b'g' => {
                            let global = Pax::parse(&body).ok_or(bad("bad PAX record"))?;
                            if global.path.is_some() || global.size.is_some() {
                                return Err(bad("a global PAX header setting path or size"));
                            }
                        }
                        _ => return Err(bad("two extension entries of one type for one member")),
                    }
                }
                _ => {
                    let (pax_path, pax_size) = pax.map_or((None, None), |p| (p.path, p.size));
                    let name = match (long_name, pax_path) {
                        (Some(_), Some(_)) => {
                            return Err(bad("both a GNU long name and a PAX path"))
                        }
                        (Some(name), None) | (None, Some(name)) => name,
                        (None, None) => header_name(&block),
                    };
                    return Ok(Some(TarEntry {
                        name,
                        regular: kind == b'0' || kind == 0,
                        size: pax_size.unwrap_or(size),
                    }));
                }
            }
        }
    }

    /// The content of the entry just returned: exactly `size` bytes, then its padding.
    fn content(&mut self, size: u64) -> Content<'_, R> {
        Content {
            tar: self,
            size,
            left: size,
            truncated: false,
        }
    }
}

/// The name in a header block: the 100-byte field up to its first NUL, after the 155-byte prefix
/// and a `/` when a POSIX ustar header has one (the `/` then fails the plain-name check).
fn header_name(block: &[u8; BLOCK]) -> Vec<u8> {
    let field = |bytes: &[u8]| {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        bytes[..end].to_vec()
    };
    let name = field(&block[..100]);
    if &block[257..263] == b"ustar\0" {
        let prefix = field(&block[345..500]);
        if !prefix.is_empty() {
            let mut full = prefix;
            full.push(b'/');
            full.extend_from_slice(&name);
            return full;
        }
    }
    name
}

/// A numeric header field: octal digits (leading spaces allowed, ended by NUL or space), or GNU
/// base-256 (first byte 0x80) for values the octal field cannot hold. Negative or empty: `None`.
fn parse_number(field: &[u8]) -> Option<u64> {
    if let Some((&first, rest)) = field.split_first() {
        if first & 0x80 != 0 {
            if first != 0x80 {
                return None;
            }
            return rest
                .iter()
                .try_fold(0u64, |n, &b| n.checked_mul(256)?.checked_add(u64::from(b)));
        }
    }
    let digits = field.iter().skip_while(|&&b| b == b' ');
    let mut value: Option<u64> = None;
    let mut ended = false;
    for &b in digits {
        match b {
            b'0'..=b'7' if !ended => {
                value = Some(
                    value
                        .unwrap_or(0)
                        .checked_mul(8)?
                        .checked_add(u64::from(b - b'0'))?,
                );
            }
            b' ' | 0 => ended = true,
            _ => return None,
        }
    }
    value
}

/// What a PAX extended header says that matters here.
struct Pax {
    path: Option<Vec<u8>>,
    size: Option<u64>,
}

impl Pax {
    /// Parses `"<len> <key>=<value>\n"` records; `None` when one does not parse, or describes a
    /// sparse file (whose stored bytes are not its content).
    fn parse(mut body: &[u8]) -> Option<Self> {
        let mut pax = Self {
            path: None,
            size: None,
        };
        // Writers may pad the body with NULs.
        while let Some(&first) = body.first() {
            if first == 0 {
                break;
            }
            let space = body.iter().position(|&b| b == b' ')?;
            let len: usize = std::str::from_utf8(&body[..space]).ok()?.parse().ok()?;
            if len <= space + 1 || len > body.len() || body[len - 1] != b'\n' {
                return None;
            }
            let record = &body[space + 1..len - 1];
            body = &body[len..];
            let eq = record.iter().position(|&b| b == b'=')?;
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            match key {
                b"path" => pax.path = Some(value.to_vec()),
                b"size" => {
                    let text = std::str::from_utf8(value).ok()?;
                    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    pax.size = Some(text.parse().ok()?);
                }
                _ if key.starts_with(b"GNU.sparse") => return None,
                _ => {}
            }
        }
        Some(pax)
    }
}

/// The bytes of one entry: reads stop at its size; the end of the stream before it is noted and
/// reported by [`Content::finish`] as [`PackageError::Truncated`].
struct Content<'a, R> {
    tar: &'a mut TarReader<R>,
    size: u64,
    left: u64,
    truncated: bool,
}

impl<R: Read> Read for Content<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || self.truncated {
            return Ok(0);
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.tar.inner.read(&mut buf[..n])?;
        if got == 0 {
            self.truncated = true;
        }
        self.left -= got as u64;
        self.tar.offset += got as u64;
        Ok(got)
    }
}

impl<R: Read> Content<'_, R> {
    /// Reads what the caller left, then the padding; a short entry is truncation.
    fn finish(mut self) -> Result<(), PackageError> {
        io::copy(&mut self, &mut io::sink())?;
        if self.truncated {
            return Err(PackageError::Truncated {
                offset: self.tar.offset,
            });
        }
        self.tar.skip_padding(self.size)
    }
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

    /// A package stream made lazily: `head`, then zeros up to `total` bytes, counting what was read.
    struct Lazy {
        head: Vec<u8>,
        total: u64,
        pos: u64,
    }

    impl Read for Lazy {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let left = self.total.saturating_sub(self.pos);
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            for (i, b) in buf[..n].iter_mut().enumerate() {
                let at = self.pos as usize + i;
                *b = self.head.get(at).copied().unwrap_or(0);
            }
            self.pos += n as u64;
            Ok(n)
        }
    }

    fn extension_header(kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    #[test]
    fn a_gigabyte_extension_entry_is_refused_from_its_header() {
        use tar::EntryType::{GNULongLink, GNULongName, XGlobalHeader, XHeader};
        let (good, _) = build(&[("a.txt", b"hello")]);
        // The package without its two end blocks: the huge entry comes after dispatch.json and a file.
        let body = &good[..good.len() - 1024];
        for kind in [GNULongName, GNULongLink, XHeader, XGlobalHeader] {
            for prefix in [&[][..], body] {
                let mut head = prefix.to_vec();
                head.extend(extension_header(kind, 1 << 30));
                let total = head.len() as u64 + (1 << 30) + 1024;
                let mut input = Lazy {
                    head,
                    total,
                    pos: 0,
                };
                let err = read_package(&mut input, |_, _| Ok(())).unwrap_err();
                assert!(
                    matches!(err, PackageError::ExtensionTooLarge { size, .. } if size == 1 << 30),
                    "{kind:?}: {err}"
                );
                // Refused from the header: nothing of the gigabyte was read.
                assert_eq!(input.pos, prefix.len() as u64 + 512, "{kind:?}");
            }
        }
        // Just within the limit is read (and, for a long name, used).
        let name = "n".repeat(200);
        let mut raw = extension_header(GNULongName, MAX_EXTENSION);
        let mut body = name.clone().into_bytes();
        body.resize(MAX_EXTENSION as usize, 0);
        raw.extend(&body);
        let (good, _) = build(&[("short.txt", b"x")]);
        // Insert the long name before the second entry (after dispatch.json's header and block).
        let json_end = 1024;
        let mut stream = good[..json_end].to_vec();
        stream.extend(&raw);
        stream.extend(&good[json_end..]);
        let read = read_package(&stream[..], |_, _| Ok(())).unwrap();
        assert_eq!(read.files[0].name, name);
    }

    #[test]
    fn gnu_tar_packages_read_in_every_format() {
        let dir = tempfile::tempdir().unwrap();
        // 255 bytes of UTF-8: the longest name the format allows.
        let mut long = String::new();
        for c in "Công văn số 7816 về việc thử nghiệm ".chars().cycle() {
            if long.len() + c.len_utf8() > 251 {
                break;
            }
            long.push(c);
        }
        long.push_str(".pdf");
        assert!(long.len() > 250, "{}", long.len());
        std::fs::write(dir.path().join("dispatch.json"), b"{}").unwrap();
        std::fs::write(dir.path().join(&long), b"long name").unwrap();
        std::fs::write(dir.path().join("b.txt"), vec![9u8; 1000]).unwrap();
        for format in ["gnu", "pax", "posix", "oldgnu"] {
            let tar_path = dir.path().join(format!("{format}.tar"));
            let status = std::process::Command::new("tar")
                .current_dir(dir.path())
                .arg(format!("--format={format}"))
                .arg("-cf")
                .arg(&tar_path)
                .args(["dispatch.json", long.as_str(), "b.txt"])
                .status()
                .unwrap();
            assert!(status.success());
            let bytes = std::fs::read(&tar_path).unwrap();
            let read = read_package(&bytes[..], |_, _| Ok(())).unwrap();
            assert_eq!(read.header_json, b"{}", "{format}");
            let names: Vec<&str> = read.files.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(names, [long.as_str(), "b.txt"], "{format}");
            assert_eq!(read.files[1].size, 1000);
        }
    }

    /// A raw header block with its checksum, for the cases the tar crate will not write.
    fn block(name: &[u8], kind: u8, size_field: &[u8]) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[..name.len()].copy_from_slice(name);
        b[100..108].copy_from_slice(b"0000644\0");
        b[124..124 + size_field.len()].copy_from_slice(size_field);
        b[156] = kind;
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        reseal(&mut b);
        b
    }

    /// Sets the checksum of the header block at the start of `b`.
    fn reseal(b: &mut [u8]) {
        b[148..156].copy_from_slice(b"        ");
        let sum: u32 = b[..512].iter().map(|&x| u32::from(x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    fn pax(records: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, v) in records {
            let inner = format!(" {k}={v}\n");
            let mut len = inner.len() + 1;
            while format!("{len}{inner}").len() != len {
                len += 1;
            }
            body.extend(format!("{len}{inner}").into_bytes());
        }
        let size = format!("{:011o}\0", body.len());
        let mut out = block(b"PaxHeaders/x", b'x', size.as_bytes()).to_vec();
        let padded = body.len().div_ceil(512) * 512;
        body.resize(padded, 0);
        out.extend(body);
        out
    }

    fn entry(name: &[u8], content: &[u8]) -> Vec<u8> {
        let size = format!("{:011o}\0", content.len());
        let mut out = block(name, b'0', size.as_bytes()).to_vec();
        let mut data = content.to_vec();
        data.resize(content.len().div_ceil(512) * 512, 0);
        out.extend(data);
        out
    }

    fn package(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = entry(b"dispatch.json", b"{}");
        for p in parts {
            out.extend(p);
        }
        out.extend([0u8; 1024]);
        out
    }

    #[test]
    fn headers_are_checked_field_by_field() {
        let ok = |_: &str, _: &mut dyn Read| Ok(());
        let read = |bytes: &[u8]| read_package(bytes, ok);
        // The hand-made blocks are valid as they stand, with a PAX path and size.
        let good = package(&[
            pax(&[("path", "from pax.txt"), ("mtime", "1.5")]),
            entry(b"ignored", b"abc"),
        ]);
        let files = read(&good).unwrap().files;
        assert_eq!(files[0].name, "from pax.txt");
        assert_eq!(files[0].size, 3);
        // Base-256 size (GNU), as tar writers use for files of 8 GiB and more.
        let mut b256 = [0u8; 12];
        b256[0] = 0x80;
        b256[11] = 3;
        let mut big = block(b"b256.txt", b'0', &b256).to_vec();
        big.extend([b'x'; 3]);
        big.resize(1024, 0);
        assert_eq!(read(&package(&[big])).unwrap().files[0].size, 3);

        let mut bad_sum = entry(b"a.txt", b"x");
        bad_sum[0] = b'b';
        let mut negative = [0xffu8; 12];
        negative[0] = 0xff;
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (package(&[bad_sum]), "checksum", "BadHeader"),
            (
                package(&[block(b"a", b'0', b"0000000009\0").to_vec()]),
                "octal",
                "BadHeader",
            ),
            (
                package(&[block(b"a", b'0', &negative).to_vec()]),
                "negative",
                "BadHeader",
            ),
            (
                package(&[pax(&[("path", "a/b")]), entry(b"x", b"")]),
                "pax path with a slash",
                "BadName",
            ),
            (
                package(&[pax(&[("GNU.sparse.size", "10")]), entry(b"x", b"")]),
                "sparse",
                "BadHeader",
            ),
            (
                package(&[pax(&[("size", "-1")]), entry(b"x", b"")]),
                "pax size",
                "BadHeader",
            ),
            (
                package(&[
                    pax(&[("path", "a")]),
                    pax(&[("path", "b")]),
                    entry(b"x", b""),
                ]),
                "two pax headers",
                "BadHeader",
            ),
            (
                package(&[pax(&[("path", "a")])]),
                "pax header before the end",
                "BadHeader",
            ),
            (
                package(&[{
                    let mut p = entry(b"a.txt", b"x");
                    p[345] = b'd'; // a POSIX prefix: "d/a.txt"
                    reseal(&mut p);
                    p
                }]),
                "ustar prefix",
                "BadName",
            ),
        ];
        for (bytes, what, variant) in cases {
            let err = read(&bytes).unwrap_err();
            assert!(format!("{err:?}").starts_with(variant), "{what}: {err:?}");
        }
        // The end of the archive must be there: both zero blocks.
        let whole = package(&[entry(b"a.txt", b"x")]);
        assert!(matches!(
            read(&whole[..whole.len() - 1024]),
            Err(PackageError::Truncated { .. })
        ));
        assert!(matches!(
            read(&whole[..whole.len() - 512]),
            Err(PackageError::Truncated { .. })
        ));
        let mut lone = whole[..whole.len() - 1024].to_vec();
        lone.extend([0u8; 512]);
        lone.extend(entry(b"b.txt", b"y"));
        lone.extend([0u8; 1024]);
        assert!(matches!(read(&lone), Err(PackageError::BadHeader { .. })));
    }

    #[test]
    fn the_manifest_is_capped() {
        let mut parts = Vec::new();
        for i in 0..=MAX_FILES {
            parts.push(entry(format!("f{i}").as_bytes(), b""));
        }
        assert!(matches!(
            read_package(&package(&parts)[..], |_, _| Ok(())),
            Err(PackageError::TooManyFiles)
        ));
        parts.pop();
        assert_eq!(
            read_package(&package(&parts)[..], |_, _| Ok(()))
                .unwrap()
                .files
                .len(),
            MAX_FILES
        );
    }
}
