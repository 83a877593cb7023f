//! Durable state of a node: records, the outbox queue and small sealed objects in sled, larger
//! sealed objects as spool files (see [`objects`]).
//!
//! The rule everywhere: a small object is written in the same sled transaction as its record; a
//! spool file first (written, fsynced, renamed into place, directory fsynced), then the record in
//! one sled transaction; then `flush` — and only then is anything acknowledged. A crash between
//! file and record leaves an object without a record, which was never acknowledged; `open`
//! removes it and the sender (or clerk) retries.
//!
//! Two changes are not flushed on their own, because nothing is acknowledged on them and a crash
//! that loses them only repeats them: the next hop's hop receipt taken ([`Store::mark_sent`]; the
//! object is offered again and the next hop answers with the receipt it gave), and a reply applied
//! to our dispatch ([`Store::apply_reply`]; the reply is still an arrival, applied again at
//! start). The next flush, anyone's, makes them durable.
//!
//! Layout under the data directory: one sled database that the host's tenants share, with a
//! namespace of trees per tenant, and a directory of files per tenant (see `database.rs` and
//! `docs/store-format.md`):
//!
//! ```text
//! meta/                       sled: "format", "tenants", and per tenant the trees
//!                             "t/<organ code>/<tree>":
//!                             "dispatches" (id -> record), "outbox" (priority key -> what the
//!                             scheduler needs of the object), "arrivals" (id -> ()) received but
//!                             not yet opened, "kept_aside" (id -> ()) arrivals no longer opened,
//!                             "counters" (số đến), "headers" (id -> dispatch header JSON, kept
//!                             apart so that the scheduler's reads of records stay small),
//!                             "objects" (id -> sealed object of at most 64 KiB), "sealed_uploads"
//!                             (digest -> a client's upload of at most 64 KiB, sealed at rest,
//!                             see [`uploads`]), "ledger" (see [`ledger`]), "guard" (see `restore.rs`)
//! tenants/<organ code>/
//!   upload-keys/<epoch>.key   the keys small uploads are sealed under (see [`uploads`])
//!   spool/objects/<id>.p7m    complete sealed objects larger than that
//!   spool/partial/<id>.part   incoming transfers in progress (resume from their synced length)
//!   spool/tmp/                outgoing objects being written
//! ```
//!
//! The code, by concern: `model.rs` (what a record is), this file (the [`Store`], opening and the
//! shared accessors), `outgoing.rs` (submission and the outbox), `incoming.rs` (transfers in,
//! arrivals), `registration.rs` (what becomes of an opened arrival), `ledger.rs`, `objects.rs`,
//! `uploads.rs`, `restore.rs`, `check.rs`, `database.rs`, `queue.rs`, `group_commit.rs`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sled::transaction::TransactionError;
use vdx_protocol::header::DispatchHeader;
use vdx_protocol::wire::ObjectKind;
use vdx_protocol::OrganCode;

pub use self::check::{CheckReport, Damaged, Orphan, Problem};
pub use self::database::{Database, FORMAT};
use self::group_commit::GroupCommit;
pub use self::ledger::{CheckpointError, Event, Witnessed};
use self::model::decode;
pub use self::model::{
    Direction, DispatchState, IncomingNumber, MessageId, NoticeSeen, OpenAttempt, Queued, Record,
};
pub use self::objects::{Copy, ObjectReader, Receiving, Sealed, INLINE_MAX};
use self::outgoing::submission_key;
use self::queue::Queue;
pub use self::restore::{Acknowledged, Restored};

mod base64_bytes;
pub mod check;
mod database;
mod group_commit;
mod incoming;
pub mod ledger;
mod model;
mod notices;
pub use self::notices::SentNotice;
mod objects;
mod outgoing;
mod queue;
mod registration;
mod restore;
mod uploads;

/// sled's page cache (its default, 1 GiB, would let a large backlog grow the daemon far past its
/// memory budget).
const SLED_CACHE_BYTES: u64 = 32 << 20;

/// sled's log segment. sled writes any page bigger than a quarter of it to a file of its own; a
/// leaf of 17 sealed objects of 10 KiB (sled splits leaves by count, not size) is bigger than a
/// quarter of sled's default 512 KiB, and writing it out as a new file on every rewrite cost about
/// 4 % of a busy sender's CPU. A store made with another segment size keeps it (see `open_sled`).
const SLED_SEGMENT_BYTES: usize = 4 << 20;

/// Why the store could not do what was asked. Nothing was acknowledged when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk is full: nothing new was accepted, nothing already accepted was lost.
    #[error("disk full while {0}")]
    DiskFull(&'static str),
    /// Another I/O failure.
    #[error("i/o error while {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
    /// sled failed.
    #[error("metadata store: {0}")]
    Db(sled::Error),
    /// The same id was submitted with different content.
    #[error("dispatch {0} already exists with different content")]
    Conflict(MessageId),
    /// The bytes do not hash to the announced digest.
    #[error("dispatch {0}: content does not match its SHA-256")]
    DigestMismatch(MessageId),
    /// The bytes are not as long as announced.
    #[error("dispatch {id}: {actual} bytes, not the {declared} announced")]
    SizeMismatch {
        /// Which.
        id: MessageId,
        /// Announced.
        declared: u64,
        /// Found.
        actual: u64,
    },
    /// No such dispatch.
    #[error("no dispatch {0}")]
    NotFound(MessageId),
    /// A record or file that should not be as it is.
    #[error("store is inconsistent: {0}")]
    Corrupt(String),
    /// A ledger question that has no answer (an entry or size past the end).
    #[error("ledger: {0}")]
    Ledger(String),
}

impl StoreError {
    /// Wraps an I/O error with what was being done; a full disk gets its own variant.
    pub fn from_io(context: &'static str) -> impl FnOnce(io::Error) -> Self {
        io_error(context)
    }
}

fn io_error(context: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    move |source| {
        if source.kind() == io::ErrorKind::StorageFull {
            StoreError::DiskFull(context)
        } else {
            StoreError::Io { context, source }
        }
    }
}

/// One tenant's durable state: its namespace of the host's [`Database`] and its files.
pub struct Store {
    db: sled::Db,
    dispatches: sled::Tree,
    outbox: sled::Tree,
    /// `outbox` in memory, for the scheduler.
    queue: Queue,
    arrivals: sled::Tree,
    /// Arrivals kept aside after their last opening attempt (id → nothing), for the status report.
    kept_aside: sled::Tree,
    counters: sled::Tree,
    headers: sled::Tree,
    objects: sled::Tree,
    /// Small uploads, sealed under `upload_keys` (see [`uploads`]).
    uploads: sled::Tree,
    upload_keys: uploads::UploadKeys,
    ledger: sled::Tree,
    /// A restore noticed and its acknowledgement (see [`restore`]).
    guard: sled::Tree,
    /// The file outside the store that a restored store is compared with (see [`restore`]).
    anchor: Option<restore::Anchor>,
    commit: GroupCommit,
    spool: PathBuf,
    /// Whose namespace this is.
    tenant: OrganCode,
    /// The tenant's directory under the data directory.
    files: PathBuf,
}

impl Store {
    /// Opens the store of tenant `code` in the data directory `dir`: the host's [`Database`]
    /// (format-1 data becomes `code`'s) and `code`'s namespace in it. For tools that work on one
    /// tenant of a stopped node.
    pub fn open_tenant(dir: &Path, code: &OrganCode) -> Result<Self, StoreError> {
        Database::open(dir, Some(code))?.tenant(code)
    }

    /// A store for tests: tenant `000.00.00.T01` of a database in `dir`.
    #[cfg(test)]
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_tenant(dir, &test_tenant())
    }

    /// Opens (or creates) tenant `code`'s trees in `db` and its files under `files`, and tidies
    /// what a crash may have left: temporary files, and objects whose record was never committed
    /// (so never acknowledged).
    pub(super) fn in_namespace(
        db: sled::Db,
        code: &OrganCode,
        files: &Path,
    ) -> Result<Self, StoreError> {
        let spool = files.join("spool");
        for sub in ["objects", "partial", "tmp"] {
            fs::create_dir_all(spool.join(sub)).map_err(io_error("creating the spool"))?;
        }
        let tree = |name: &str| db.open_tree(database::tree_name(code, name));
        let ledger = tree("ledger")?;
        let outbox = tree("outbox")?;
        let store = Self {
            queue: Queue::load(&outbox)?,
            outbox,
            commit: GroupCommit::new(ledger::size_at_open(&ledger)?),
            ledger,
            guard: tree("guard")?,
            anchor: None,
            dispatches: tree("dispatches")?,
            arrivals: tree("arrivals")?,
            kept_aside: tree("kept_aside")?,
            counters: tree("counters")?,
            headers: tree("headers")?,
            objects: tree("objects")?,
            uploads: tree("sealed_uploads")?,
            upload_keys: uploads::UploadKeys::open(&files.join("upload-keys"))?,
            tenant: code.clone(),
            files: files.to_owned(),
            db,
            spool,
        };
        store.recover()?;
        store.settle_uploads()?;
        Ok(store)
    }

    /// The agency whose namespace this is.
    pub fn tenant(&self) -> &OrganCode {
        &self.tenant
    }

    /// Where this tenant's files live (spool, upload keys, uploads).
    pub fn files(&self) -> &Path {
        &self.files
    }

    fn recover(&self) -> Result<(), StoreError> {
        for entry in fs::read_dir(self.spool.join("tmp")).map_err(io_error("reading the spool"))? {
            let path = entry.map_err(io_error("reading the spool"))?.path();
            fs::remove_file(&path).map_err(io_error("removing a temporary file"))?;
        }
        for entry in
            fs::read_dir(self.spool.join("objects")).map_err(io_error("reading the spool"))?
        {
            let path = entry.map_err(io_error("reading the spool"))?.path();
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| MessageId::try_from(s.to_owned()).ok());
            let recorded = match id {
                Some(id) => self.dispatches.contains_key(id.0)?,
                None => false,
            };
            if !recorded {
                fs::remove_file(&path).map_err(io_error("removing an unacknowledged object"))?;
            }
        }
        sync_dir(&self.spool.join("objects"))?;
        Ok(())
    }

    /// Makes everything committed so far durable, sharing the flush with concurrent changes: for
    /// answering with what another caller committed (and may still be flushing), and at shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.sync()
    }

    /// A stored sealed object, from the store's tree or its spool file.
    pub fn object(&self, id: MessageId) -> Result<ObjectReader, StoreError> {
        if let Some(bytes) = self.objects.get(id.0)? {
            return Ok(ObjectReader::Inline(io::Cursor::new(bytes)));
        }
        File::open(self.object_path(id))
            .map(ObjectReader::File)
            .map_err(io_error("opening an object"))
    }

    /// Path of a complete sealed object kept as a spool file.
    fn object_path(&self, id: MessageId) -> PathBuf {
        self.spool.join("objects").join(format!("{id}.p7m"))
    }

    fn partial_path(&self, id: MessageId) -> PathBuf {
        self.spool.join("partial").join(format!("{id}.part"))
    }

    /// The header of dispatch `id`: known for what was composed here, and for what was opened here.
    pub fn header(&self, id: MessageId) -> Result<Option<DispatchHeader>, StoreError> {
        self.headers_of(&[id])
            .map(|mut h| h.pop().flatten().map(Arc::unwrap_or_clone))
    }

    /// The headers of dispatches `ids`, in that order: a header the copies of one dispatch share
    /// is read and parsed once.
    pub fn headers_of(
        &self,
        ids: &[MessageId],
    ) -> Result<Vec<Option<Arc<DispatchHeader>>>, StoreError> {
        let mut shared: HashMap<sled::IVec, Arc<DispatchHeader>> = HashMap::new();
        let parse = |id: MessageId, json: &[u8]| {
            serde_json::from_slice::<DispatchHeader>(json)
                .map_err(|e| StoreError::Corrupt(format!("header of {id}: {e}")))
        };
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(value) = self.headers.get(id.0)? else {
                out.push(None);
                continue;
            };
            if !value.starts_with(b"h") {
                out.push(Some(Arc::new(parse(id, &value)?)));
                continue;
            }
            let header = match shared.get(&value) {
                Some(header) => header.clone(),
                None => {
                    let json = self.headers.get(&value)?.ok_or_else(|| {
                        StoreError::Corrupt(format!("the header of {id} is missing"))
                    })?;
                    let header = Arc::new(parse(id, &json)?);
                    shared.insert(value, header.clone());
                    header
                }
            };
            out.push(Some(header));
        }
        Ok(out)
    }

    /// The first copy of the dispatch submitted here under `message_id` (UUID text), whatever its
    /// recipients: a retry that names other recipients is caught by it.
    pub fn submitted_under(&self, message_id: &str) -> Result<Option<MessageId>, StoreError> {
        self.headers
            .get(submission_key(message_id))?
            .map(|id| MessageId::from_slice(&id))
            .transpose()
    }

    /// The transfer ids of the copies of the dispatch with this message id (UUID text) that this
    /// node holds with their header: the copies it sent, or the one it registered. A scan, for
    /// audit questions.
    pub fn copies_of(&self, message_id: &str) -> Result<Vec<MessageId>, StoreError> {
        let mut out = Vec::new();
        let shared = outgoing::header_key(message_id);
        for entry in self.headers.iter() {
            let (id, value) = entry?;
            if id.len() != 16 {
                continue; // a submission's message id, or a shared header (`submitted_under`)
            }
            let ours = if value.starts_with(b"h") {
                *value == *shared
            } else {
                let header: DispatchHeader = serde_json::from_slice(&value)
                    .map_err(|e| StoreError::Corrupt(format!("header: {e}")))?;
                header.message_id == message_id
            };
            if ours {
                out.push(MessageId(
                    id.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("header key".into()))?,
                ));
            }
        }
        Ok(out)
    }

    /// The record of `id`, if any.
    pub fn get(&self, id: MessageId) -> Result<Option<Record>, StoreError> {
        self.dispatches.get(id.0)?.map(|v| decode(&v)).transpose()
    }

    /// Every dispatch (not replies) that went `direction`, newest first.
    pub fn list(&self, direction: Direction) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        for entry in self.dispatches.iter() {
            let (_, value) = entry?;
            let record = decode(&value)?;
            if record.direction == direction && record.kind == ObjectKind::Dispatch {
                out.push(record);
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.created));
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing a spool directory"))
}

/// Opens sled at `path` with [`SLED_SEGMENT_BYTES`], or with sled's default segment size for a
/// store made before it was set: sled refuses to open a store with a segment size other than
/// the one it was made with.
fn open_sled(path: &Path) -> Result<sled::Db, StoreError> {
    let config = || {
        sled::Config::new()
            .path(path)
            .cache_capacity(SLED_CACHE_BYTES)
    };
    match config().segment_size(SLED_SEGMENT_BYTES).open() {
        Err(sled::Error::Unsupported(why)) if why.contains("io buffer size") => {
            tracing::info!(path = %path.display(), "metadata store made with sled's default segment size: kept");
            Ok(config().open()?)
        }
        opened => Ok(opened?),
    }
}

/// The tenant of the stores that tests open with [`Store::open`].
#[cfg(test)]
pub(crate) fn test_tenant() -> OrganCode {
    "000.00.00.T01".parse().expect("a valid organ code")
}

/// Where the files of the store [`Store::open`] opens in `dir` live.
#[cfg(test)]
pub(crate) fn test_files(dir: &Path) -> PathBuf {
    dir.join("tenants").join(test_tenant().as_str())
}

fn transaction_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

/// A full disk under sled is a full disk to the caller, like one under a spool file.
impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(e) if e.kind() == io::ErrorKind::StorageFull => {
                Self::DiskFull("writing the metadata store")
            }
            e => Self::Db(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use sha2::{Digest, Sha256};
    use vdx_protocol::wire::Offer;

    use super::*;

    /// Opens the store in `dir`, as a restarted process would. sled's background threads of a
    /// store just dropped may hold its lock a moment longer on a loaded machine: wait for it.
    pub(super) fn open_again(dir: &Path) -> Store {
        for _ in 0..200 {
            match Store::open(dir) {
                Err(StoreError::Db(e)) if e.to_string().contains("could not acquire lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => return other.unwrap(),
            }
        }
        panic!("the store in {} stayed locked", dir.display())
    }

    pub(super) fn peer() -> OrganCode {
        "000.00.00.G22".parse().unwrap()
    }

    pub(super) fn dispatch(n: u8, urgency: u8, content: &[u8]) -> Offer {
        Offer {
            id: [n; 16],
            from: "000.00.00.G22".parse().unwrap(),
            to: "000.00.00.H41".parse().unwrap(),
            size: content.len() as u64,
            sealed_sha256: Sha256::digest(content).into(),
            urgency,
            expires: 2_000_000_000,
            kind: vdx_protocol::wire::ObjectKind::Dispatch,
            hops: 0,
        }
    }

    /// All of the object `id` as the store gives it back.
    pub(super) fn read_object(store: &Store, id: MessageId) -> Vec<u8> {
        let mut bytes = Vec::new();
        store.object(id).unwrap().read_to_end(&mut bytes).unwrap();
        bytes
    }

    /// Receives all of `body` for `offer` in one piece.
    pub(super) fn receive_whole(store: &Store, offer: &Offer, body: &[u8]) -> Receiving {
        let mut receiving = store.receive(offer).unwrap();
        store.append_incoming(&mut receiving, 0, body).unwrap();
        receiving
    }

    #[test]
    fn a_store_made_with_sleds_default_segment_size_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"sealed".to_vec();
        {
            let db = sled::Config::new()
                .path(dir.path().join("meta"))
                .open()
                .unwrap();
            db.flush().unwrap();
        }
        let store = open_again(dir.path());
        store
            .submit(&dispatch(1, 0, &content), &content[..], 5)
            .unwrap();
        drop(store);
        let store = open_again(dir.path());
        assert_eq!(read_object(&store, MessageId([1; 16])), content);
    }

    #[test]
    fn a_full_disk_under_sled_is_reported_as_a_full_disk() {
        let full = sled::Error::Io(io::Error::from(io::ErrorKind::StorageFull));
        assert!(matches!(StoreError::from(full), StoreError::DiskFull(_)));
        let denied = sled::Error::Io(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(StoreError::from(denied), StoreError::Db(_)));
        let aborted = TransactionError::<StoreError>::Storage(sled::Error::Io(io::Error::from(
            io::ErrorKind::StorageFull,
        )));
        assert!(matches!(
            transaction_error(aborted),
            StoreError::DiskFull(_)
        ));
    }
}
