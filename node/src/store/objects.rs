//! Where a sealed object's bytes live. Objects of at most [`INLINE_MAX`] bytes — receipts, notices,
//! most dispatches — are values of the store's `objects` tree, written in the same sled
//! transaction as their record: no file to create, fsync, rename and fsync the directory of, and
//! the group commit's one flush covers them with everything else. Creating and deleting small files
//! was the largest single cost of a delivery (ext4's inode allocation alone took a fifth of the
//! daemons' CPU). Larger objects are spool files: streamed, never held in memory, and an incoming
//! one resumes from its synced length after a cut.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use vdx_protocol::wire::Offer;

use super::{io_error, MessageId, StoreError};

/// Largest object kept in the store's own tree rather than in a spool file.
pub const INLINE_MAX: u64 = 64 * 1024;

/// Whether an object of `size` bytes is kept inline.
pub(super) fn is_inline(size: u64) -> bool {
    size <= INLINE_MAX
}

/// A stored object opened for reading, wherever it is kept.
pub enum ObjectReader {
    /// Kept in the store's tree.
    Inline(Cursor<sled::IVec>),
    /// A spool file.
    File(File),
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Inline(bytes) => bytes.read(buf),
            Self::File(file) => file.read(buf),
        }
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            Self::Inline(bytes) => bytes.seek(pos),
            Self::File(file) => file.seek(pos),
        }
    }
}

/// A sealed object composed here, to be queued once per recipient.
#[derive(Debug, Clone, Copy)]
pub enum Sealed<'a> {
    /// In memory (small dispatches).
    Memory(&'a [u8]),
    /// A complete file on the store's file system, of the size and digest its offers announce
    /// (computed as it was written): synced once and hard-linked into the spool for every copy,
    /// never copied or hashed again.
    File(&'a Path),
}

/// What a copy of a dispatch composed here travels as.
#[derive(Debug, Clone, Copy)]
pub enum Copy<'a> {
    /// Its own object.
    Own(Sealed<'a>),
    /// Inside the fan-out object with this id, queued in the same submission
    /// (`docs/broadcast.md` rule 3).
    CarriedBy(super::MessageId),
}

/// An outgoing object, checked and placed before its record is committed.
pub(super) enum Placed {
    /// Small: its bytes, to be written in the record's transaction.
    Inline(Vec<u8>),
    /// Large: already durable in the spool, at this path.
    Spooled(std::path::PathBuf),
    /// None here: the copy travels inside this fan-out object (`docs/broadcast.md` rule 3).
    Carried(super::MessageId),
}

/// An incoming object being received. A small one is held in memory and stored with its record;
/// a cut transfer of one simply starts again. A large one goes to a partial spool file.
pub struct Receiving {
    pub(super) id: MessageId,
    pub(super) held: Held,
    pub(super) resume_from: u64,
}

/// Where an incoming object's bytes are until it is complete.
pub(super) enum Held {
    /// Small: in memory, stored with the record.
    Memory(Vec<u8>),
    /// Large, or already stored: in the partial spool file (if any).
    Partial,
}

impl Receiving {
    /// How many bytes are already held: where the sender is asked to continue.
    pub fn resume_from(&self) -> u64 {
        self.resume_from
    }
}

/// Appends to a small object held in memory; `offset` must be its current length.
pub(super) fn append(
    buffer: &mut Vec<u8>,
    id: MessageId,
    offset: u64,
    bytes: &[u8],
) -> Result<u64, StoreError> {
    let end = offset.saturating_add(bytes.len() as u64);
    if offset != buffer.len() as u64 || end > INLINE_MAX {
        return Err(StoreError::Corrupt(format!(
            "transfer {id} holds {} bytes in memory, data came for offset {offset}",
            buffer.len()
        )));
    }
    buffer.extend_from_slice(bytes);
    Ok(end)
}

/// Reads all of `content` into memory, checking it against the offer's size and digest.
pub(super) fn read_verified(mut content: impl Read, new: &Offer) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    content
        .by_ref()
        .take(INLINE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error("reading the submission"))?;
    verify(&bytes, new)?;
    Ok(bytes)
}

/// Checks bytes held in memory against the offer's size and digest.
pub(super) fn verify(bytes: &[u8], new: &Offer) -> Result<(), StoreError> {
    check(new, bytes.len() as u64, Sha256::digest(bytes).into())
}

/// Writes `content` to a new file at `path`, checking size and digest, and fsyncs it.
pub(super) fn write_verified(
    path: &Path,
    mut content: impl Read,
    new: &Offer,
) -> Result<(), StoreError> {
    let mut file = File::create(path).map_err(io_error("creating an object"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = content
            .read(&mut buf)
            .map_err(io_error("reading the submission"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(io_error("writing an object"))?;
        total += n as u64;
    }
    check(new, total, hasher.finalize().into())?;
    file.sync_all().map_err(io_error("syncing an object"))
}

/// Checks a complete spool file against the offer and fsyncs it.
pub(super) fn check_file(mut file: File, new: &Offer) -> Result<(), StoreError> {
    let mut hasher = Sha256::new();
    let total = io::copy(&mut file, &mut hasher).map_err(io_error("reading a partial transfer"))?;
    check(new, total, hasher.finalize().into())?;
    file.sync_all().map_err(io_error("syncing an object"))
}

fn check(new: &Offer, total: u64, digest: [u8; 32]) -> Result<(), StoreError> {
    if total != new.size {
        return Err(StoreError::SizeMismatch {
            id: MessageId(new.id),
            declared: new.size,
            actual: total,
        });
    }
    if digest != new.sealed_sha256 {
        return Err(StoreError::DigestMismatch(MessageId(new.id)));
    }
    Ok(())
}
