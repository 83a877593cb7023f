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
//! start). The next flush, anyone's, makes them durable. Layout under the data directory:
//!
//! ```text
//! meta/                       sled: trees "dispatches" (id -> record), "outbox" (priority key -> id),
//!                             "arrivals" (id -> ()) received but not yet opened, "counters" (số đến),
//!                             "headers" (id -> dispatch header JSON, kept apart so that the
//!                             scheduler's reads of records stay small), "objects" (id -> sealed
//!                             object of at most 64 KiB), "sealed_uploads" (digest -> a client's
//!                             upload of at most 64 KiB, sealed at rest, see [`uploads`]),
//!                             "ledger" (see [`ledger`])
//! upload-keys/<epoch>.key     the keys small uploads are sealed under (see [`uploads`])
//! spool/objects/<id>.p7m      complete sealed objects larger than that
//! spool/partial/<id>.part     incoming transfers in progress (resume from their synced length)
//! spool/tmp/                  outgoing objects being written
//! ```

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use vdx_protocol::header::DispatchHeader;
use vdx_protocol::ledger::{Actor, EntryKind};
use vdx_protocol::wire::{ObjectKind, Offer};
use vdx_protocol::{hex, OrganCode};

pub use self::check::{CheckReport, Damaged, Orphan, Problem};
pub use self::database::{Database, FORMAT};
use self::group_commit::GroupCommit;
pub use self::ledger::{CheckpointError, Event, Witnessed};
use self::objects::{Held, Placed};
pub use self::objects::{ObjectReader, Receiving, Sealed, INLINE_MAX};
use self::queue::Queue;
pub use self::restore::{Acknowledged, Restored};

mod base64_bytes;
pub mod check;
mod database;
mod group_commit;
pub mod ledger;
mod objects;
mod queue;
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

/// An incoming transfer is fsynced each time it crosses a multiple of this many bytes.
const PARTIAL_SYNC_EVERY: u64 = 64 << 20;

/// A dispatch's message id (UUID bytes); shown and stored as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MessageId(pub [u8; 16]);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> Self {
        id.to_string()
    }
}

impl MessageId {
    /// The id stored as a value (16 bytes); anything else is a corrupt store.
    fn from_slice(bytes: &[u8]) -> Result<Self, StoreError> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| StoreError::Corrupt("a stored transfer id is not 16 bytes".into()))
    }
}

impl TryFrom<String> for MessageId {
    type Error = StoreError;

    fn try_from(s: String) -> Result<Self, StoreError> {
        hex::decode(&s)
            .map(Self)
            .ok_or_else(|| StoreError::Corrupt(format!("bad message id {s:?}")))
    }
}

/// Which way a dispatch travels through this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Direction {
    /// Submitted here, to be sent.
    Outgoing,
    /// Received here.
    Incoming,
    /// Received here for another agency, and forwarded (or to be): this node is its relay.
    Relayed,
}

/// Where a dispatch stands. Every change is a record update in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum DispatchState {
    /// In the outbox, waiting for (another) attempt.
    Queued,
    /// The next hop answered STORED; its receipt is kept.
    Sent {
        /// The hop receipt as received.
        #[serde(with = "base64_bytes")]
        receipt: Vec<u8>,
    },
    /// Given up; the reason is what the clerk sees.
    Failed {
        /// Why.
        reason: String,
    },
    /// Stored here, durably, from a peer; not yet opened (or, at a relay, not yet forwarded).
    Received,
    /// Opened and verified here, and given its incoming number (số đến).
    Registered,
    /// Opened here and refused: the sealed object is deleted, the reason kept and sent back.
    Refused {
        /// Why, in words the sender's clerk can read.
        reason: String,
    },
    /// A reply (receipt or notice) that has been checked and applied to the dispatch it is about.
    Applied,
    /// Received here and not opened after [`Store::begin_open`] allowed its last attempt (each
    /// attempt failed, or killed the process): refused to its sender, but its sealed object is
    /// kept for the operator, and nothing opens it again.
    KeptAside {
        /// Why, in words the sender's clerk and the operator can read.
        reason: String,
    },
}

/// What [`Store::begin_open`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenAttempt {
    /// Open it: this is attempt number `.0` (from 1), durably counted before the opening starts.
    Go(u32),
    /// Do not open it again: this many attempts were made and none finished.
    Exhausted(u32),
}

/// The incoming number (số đến) given to a registered dispatch: consecutive per year, in one series
/// for ordinary dispatches and a separate one for classified dispatches (Decree 30/2020).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingNumber {
    /// Calendar year of registration.
    pub year: i32,
    /// Whether this is the classified (mật) series.
    pub classified: bool,
    /// 1, 2, 3, … within the year and series.
    pub number: u64,
}

impl fmt::Display for IncomingNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let series = if self.classified { "M" } else { "" };
        write!(f, "{series}{}/{}", self.number, self.year)
    }
}

/// A status notice received about an outgoing dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeSeen {
    /// edXML status code, e.g. "01" (arrived) or "02" (refused).
    pub status: String,
    /// Which agency sent it.
    pub by: OrganCode,
    /// Unix seconds it was signed.
    pub time: i64,
    /// The reason, for a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the scheduler needs of a queued object, kept as the outbox index's value so that a pass
/// over the queue decodes no records: id ‖ urgency ‖ expires (u64 BE) ‖ recipient organ code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The transfer id.
    pub id: MessageId,
    /// The recipient agency (the next hop is chosen from it).
    pub to: OrganCode,
    /// Độ khẩn 0-4.
    pub urgency: u8,
    /// Unix seconds after which delivery is pointless (0: never).
    pub expires: u64,
}

impl Queued {
    fn of(record: &Record) -> Self {
        Self {
            id: record.id,
            to: record.to.clone(),
            urgency: record.urgency,
            expires: record.expires,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25 + self.to.as_str().len());
        out.extend_from_slice(&self.id.0);
        out.push(self.urgency);
        out.extend_from_slice(&self.expires.to_be_bytes());
        out.extend_from_slice(self.to.as_str().as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (id, rest) = bytes.split_first_chunk::<16>()?;
        let (urgency, rest) = rest.split_first()?;
        let (expires, to) = rest.split_first_chunk::<8>()?;
        Some(Self {
            id: MessageId(*id),
            to: std::str::from_utf8(to).ok()?.parse().ok()?,
            urgency: *urgency,
            expires: u64::from_be_bytes(*expires),
        })
    }
}

/// What is known about one dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Message id.
    pub id: MessageId,
    /// Outgoing or incoming.
    pub direction: Direction,
    /// Sending agency.
    pub from: OrganCode,
    /// Recipient agency.
    pub to: OrganCode,
    /// Bytes of the sealed object.
    pub size: u64,
    /// SHA-256 of the sealed object, hex.
    pub sealed_sha256: String,
    /// Độ khẩn 0-4: the outbox serves higher first.
    pub urgency: u8,
    /// Unix seconds after which delivery is pointless.
    pub expires: u64,
    /// Unix seconds of submission or arrival.
    pub created: u64,
    /// Send attempts so far (outgoing and relayed); for an arrival to open here, opening
    /// attempts so far (see [`Store::begin_open`]).
    pub attempts: u32,
    /// Current state.
    #[serde(flatten)]
    pub state: DispatchState,
    /// A sealed dispatch or a reply travelling back.
    #[serde(default)]
    pub kind: ObjectKind,
    /// Số đến, once registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_number: Option<IncomingNumber>,
    /// The recipient agency's signed delivery receipt, once it came back (outgoing only).
    #[serde(
        default,
        with = "base64_bytes::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivery_receipt: Option<Vec<u8>>,
    /// Its key in the outbox index while queued (so that taking it off needs no scan).
    #[serde(
        default,
        with = "base64_bytes::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub outbox_key: Option<Vec<u8>>,
    /// Status notices received about this dispatch, oldest first (outgoing only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<NoticeSeen>,
}

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

/// An outgoing object as its transaction writes it.
struct Outgoing {
    record: Record,
    /// Its outbox key (also in `record`).
    key: Vec<u8>,
    /// `record`, encoded.
    value: Vec<u8>,
    /// Its ledger entry.
    event: Event,
    /// What the scheduler needs of it (the outbox index's value).
    queued: Queued,
    /// Its bytes, when kept in the store.
    inline: Option<Vec<u8>>,
}

/// Writes outgoing objects in a transaction: record, outbox entry, header, small object and
/// ledger entry each. An id already recorded aborts it as a conflict.
fn insert_outgoing(
    rows: &[Outgoing],
    header: Option<&Composed>,
    dispatches: &sled::transaction::TransactionalTree,
    outbox: &sled::transaction::TransactionalTree,
    headers: &sled::transaction::TransactionalTree,
    objects: &sled::transaction::TransactionalTree,
    ledger: &sled::transaction::TransactionalTree,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if let (Some(header), Some(first)) = (header, rows.first()) {
        // One dispatch per message id, whoever its recipients: a submission racing another under
        // the same id is refused here, where the two cannot both pass.
        let key = submission_key(&header.message_id);
        if let Some(earlier) = headers.get(&key)? {
            let earlier =
                MessageId::from_slice(&earlier).map_err(ConflictableTransactionError::Abort)?;
            return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
                earlier,
            )));
        }
        headers.insert(key, &first.record.id.0)?;
    }
    for row in rows {
        let id = row.record.id;
        if dispatches.get(id.0)?.is_some() {
            return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
                id,
            )));
        }
        dispatches.insert(&id.0, row.value.as_slice())?;
        outbox.insert(row.key.as_slice(), row.queued.encode())?;
        if let Some(header) = header {
            headers.insert(&id.0, header.json.as_slice())?;
        }
        if let Some(bytes) = &row.inline {
            objects.insert(&id.0, bytes.as_slice())?;
        }
        ledger::append(ledger, &row.event)?;
    }
    Ok(())
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
        self.headers
            .get(id.0)?
            .map(|v| {
                serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Corrupt(format!("header of {id}: {e}")))
            })
            .transpose()
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
        for entry in self.headers.iter() {
            let (id, json) = entry?;
            if id.len() != 16 {
                continue; // a submission's message id (see `submitted_under`)
            }
            let header: DispatchHeader = serde_json::from_slice(&json)
                .map_err(|e| StoreError::Corrupt(format!("header: {e}")))?;
            if header.message_id == message_id {
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

    /// Accepts a sealed dispatch for sending. Returns once object and record are durable; the same
    /// submission again returns the existing record (idempotent), different content is a conflict.
    pub fn submit(&self, new: &Offer, sealed: impl Read, now: u64) -> Result<Record, StoreError> {
        if let Some(existing) = self.get(MessageId(new.id))? {
            return same_content(existing, new);
        }
        let placed = self.place_object(new, sealed)?;
        let record = Record::new(new, Direction::Outgoing, DispatchState::Queued, now);
        let by = Event::new(EntryKind::Submitted, None, Actor::Node);
        let mut committed = self.commit_outgoing(vec![(record, placed)], None, &by)?;
        committed
            .pop()
            .ok_or(StoreError::NotFound(MessageId(new.id)))
    }

    /// Queues one copy of a dispatch composed here per recipient (`copies`: one offer each, all
    /// of the object `sealed`), keeping its header for the clerk: all copies or none. `by` is the
    /// submission's ledger event without the object: who submitted it (and their role).
    pub fn submit_copies(
        &self,
        copies: &[Offer],
        header: &DispatchHeader,
        sealed: Sealed<'_>,
        now: u64,
        by: &Event,
    ) -> Result<Vec<Record>, StoreError> {
        for copy in copies {
            if self.get(MessageId(copy.id))?.is_some() {
                return Err(StoreError::Conflict(MessageId(copy.id)));
            }
        }
        if let Sealed::File(path) = sealed {
            File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(io_error("syncing the sealed object"))?;
        }
        let mut records = Vec::new();
        let mut result = Ok(());
        for copy in copies {
            let placed = match sealed {
                Sealed::Memory(bytes) => self.place_object(copy, bytes),
                Sealed::File(path) => self.link_object(copy, path),
            };
            match placed {
                Ok(placed) => records.push((
                    Record::new(copy, Direction::Outgoing, DispatchState::Queued, now),
                    placed,
                )),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let spooled: Vec<PathBuf> = records
            .iter()
            .filter_map(|(_, placed)| match placed {
                Placed::Spooled(path) => Some(path.clone()),
                Placed::Inline(_) => None,
            })
            .collect();
        let result = result
            .and_then(|()| match sealed {
                Sealed::File(_) => sync_dir(&self.spool.join("objects")),
                Sealed::Memory(_) => Ok(()),
            })
            .and_then(|()| encode_header(header))
            .and_then(|json| {
                let composed = Composed {
                    json,
                    message_id: header.message_id.clone(),
                };
                self.commit_outgoing(records, Some(&composed), by)
            });
        if result.is_err() {
            for path in spooled {
                let _ = fs::remove_file(path);
            }
        }
        result
    }

    /// Checks an outgoing object's size and digest and places it: a small one in memory, to be
    /// committed with its record; a larger one in the spool (temp, fsync, rename, directory fsync).
    fn place_object(&self, new: &Offer, sealed: impl Read) -> Result<Placed, StoreError> {
        if objects::is_inline(new.size) {
            return objects::read_verified(sealed, new).map(Placed::Inline);
        }
        let temp = self
            .spool
            .join("tmp")
            .join(format!("{}.p7m", MessageId(new.id)));
        if let Err(e) = objects::write_verified(&temp, sealed, new) {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        let object = self.object_path(MessageId(new.id));
        fs::rename(&temp, &object).map_err(io_error("moving the object into the spool"))?;
        sync_dir(&self.spool.join("objects"))?;
        Ok(Placed::Spooled(object))
    }

    /// Places a copy of the synced file at `path` as the object of `copy`: a hard link (the caller
    /// syncs the directory), or its bytes if small or if the spool is on another file system.
    fn link_object(&self, copy: &Offer, path: &Path) -> Result<Placed, StoreError> {
        let len = fs::metadata(path)
            .map_err(io_error("reading the sealed object"))?
            .len();
        if len != copy.size {
            return Err(StoreError::SizeMismatch {
                id: MessageId(copy.id),
                declared: copy.size,
                actual: len,
            });
        }
        let object = self.object_path(MessageId(copy.id));
        if !objects::is_inline(copy.size) {
            match fs::hard_link(path, &object) {
                Ok(()) => return Ok(Placed::Spooled(object)),
                Err(e) if e.kind() != io::ErrorKind::CrossesDevices => {
                    return Err(io_error("linking the object into the spool")(e))
                }
                Err(_) => {}
            }
        }
        let file = File::open(path).map_err(io_error("reading the sealed object"))?;
        self.place_object(copy, file)
    }

    /// Records outgoing objects (with their header, if composed here) and queues them, in one
    /// transaction with their `by` entries and their bytes if small.
    fn commit_outgoing(
        &self,
        placed: Vec<(Record, Placed)>,
        header: Option<&Composed>,
        by: &Event,
    ) -> Result<Vec<Record>, StoreError> {
        let rows = self.outgoing(placed, by)?;
        (
            &self.dispatches,
            &self.outbox,
            &self.headers,
            &self.objects,
            &self.ledger,
        )
            .transaction(|(dispatches, outbox, headers, objects, ledger)| {
                insert_outgoing(&rows, header, dispatches, outbox, headers, objects, ledger)
            })
            .map_err(transaction_error)?;
        self.sync_and_queue(rows.iter().map(|row| (row.key.clone(), row.queued.clone())))?;
        Ok(rows.into_iter().map(|row| row.record).collect())
    }

    /// Gives each outgoing object its outbox key and encodes what its transaction writes.
    fn outgoing(
        &self,
        placed: Vec<(Record, Placed)>,
        by: &Event,
    ) -> Result<Vec<Outgoing>, StoreError> {
        placed
            .into_iter()
            .map(|(mut record, object)| {
                let key = self.outbox_key(record.urgency, record.id)?;
                record.outbox_key = Some(key.clone());
                Ok(Outgoing {
                    key,
                    value: encode(&record)?,
                    event: record.event(by),
                    queued: Queued::of(&record),
                    inline: match object {
                        Placed::Inline(bytes) => Some(bytes),
                        Placed::Spooled(_) => None,
                    },
                    record,
                })
            })
            .collect()
    }

    /// Makes committed outgoing objects durable, then shows them to the scheduler: nothing leaves
    /// before it is on disk here (a copy sent and then lost in a crash would be submitted again
    /// under a new id, and arrive twice). If the flush fails they are shown all the same: they
    /// are committed, and the error goes to whoever is waiting for them.
    fn sync_and_queue(
        &self,
        entries: impl IntoIterator<Item = (Vec<u8>, Queued)>,
    ) -> Result<(), StoreError> {
        let synced = self.sync();
        for (key, queued) in entries {
            self.queue.insert(key, queued);
        }
        synced
    }

    /// Takes `record` off the outbox inside a transaction: the key its record names, else (for
    /// records written before the key was kept in them) the one in the mirror. Returns the key,
    /// for [`Queue::remove`] once the transaction committed.
    fn unqueue(
        &self,
        record: &mut Record,
        outbox: &sled::transaction::TransactionalTree,
    ) -> Result<Option<Vec<u8>>, sled::transaction::UnabortableTransactionError> {
        let key = record
            .outbox_key
            .take()
            .or_else(|| self.queue.key_of(record.id));
        if let Some(key) = &key {
            outbox.remove(key.as_slice())?;
        }
        Ok(key)
    }

    /// The queued outgoing dispatches, hỏa tốc first, then in order of submission.
    pub fn outbox(&self) -> Result<Vec<Arc<Queued>>, StoreError> {
        self.outbox_head(usize::MAX)
    }

    /// The first `limit` queued outgoing dispatches in priority order: what a scheduler pass looks
    /// at, so that its cost does not grow with the backlog. Read from the index's mirror in memory.
    pub fn outbox_head(&self, limit: usize) -> Result<Vec<Arc<Queued>>, StoreError> {
        Ok(self.queue.head(limit))
    }

    /// The records whose ids `ids` yields, in that order.
    fn records_named_by(
        &self,
        ids: impl Iterator<Item = sled::Result<sled::IVec>>,
        index: &str,
    ) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        for id in ids {
            let id = MessageId(
                id?.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(format!("{index} entry")))?,
            );
            out.push(self.get(id)?.ok_or(StoreError::NotFound(id))?);
        }
        Ok(out)
    }

    /// Counts an attempt (for backoff and for the clerk). Not flushed on its own: a count lost in
    /// a crash only shortens one backoff.
    pub fn record_attempt(&self, id: MessageId) -> Result<Record, StoreError> {
        let (record, _) = self.modify(id, false, None, |r| {
            r.attempts += 1;
            true
        })?;
        Ok(record)
    }

    /// The next hop (`by`, who signed the hop receipt) took custody: out of the outbox, receipt
    /// kept, this attempt counted. Not flushed (see the module's documentation). A dispatch no
    /// longer queued (a refusal notice came while it was being sent) keeps its state, and the
    /// hop receipt is not kept.
    pub fn mark_sent(
        &self,
        id: MessageId,
        receipt: Vec<u8>,
        by: &OrganCode,
    ) -> Result<Record, StoreError> {
        let digest = hex::encode(Sha256::digest(&receipt).as_slice());
        let event = Event::new(EntryKind::Sent, Some(id.0), Actor::Peer(by.clone()))
            .field("receipt-sha256", digest);
        let (record, _) = self.finish(id, DispatchState::Sent { receipt }, event, 1)?;
        Ok(record)
    }

    /// Giving up (permanent refusal or expiry): out of the outbox, reason kept for the clerk.
    /// Returns the failed record, or `None` when the dispatch was not failed (see
    /// [`Store::finish`]).
    pub fn mark_failed(&self, id: MessageId, reason: String) -> Result<Option<Record>, StoreError> {
        let event = Event::new(EntryKind::Failed, Some(id.0), Actor::Node).field("reason", &reason);
        let (record, changed) = self.finish(id, DispatchState::Failed { reason }, event, 0)?;
        if !changed {
            return Ok(None);
        }
        self.sync()?;
        Ok(Some(record))
    }

    /// Takes `id` off the outbox in `state`, counting `attempts` more (the one that succeeded);
    /// returns the record as it is afterwards, and whether it moved. Only a queued dispatch
    /// moves: one that finished meanwhile (its transfer ended during the scheduler's pass, a
    /// reply arrived) keeps its state, and so does a delivered one that would fail (it expired,
    /// or the next hop refused it, after its delivery receipt came ahead of its hop receipt).
    /// Either way it leaves the outbox: nothing more is sent for it.
    fn finish(
        &self,
        id: MessageId,
        state: DispatchState,
        event: Event,
        attempts: u32,
    ) -> Result<(Record, bool), StoreError> {
        let failing = matches!(state, DispatchState::Failed { .. });
        self.modify(id, true, Some(&event), |r| {
            if r.state != DispatchState::Queued || (failing && r.delivery_receipt.is_some()) {
                return false;
            }
            r.state = state.clone();
            r.attempts += attempts;
            true
        })
    }

    /// Reads, changes and writes one record in a transaction (so concurrent changes to other
    /// fields are not lost), optionally taking it off the outbox (under the key its record names),
    /// and recording `event` (with the record's `to`) if `change` changed it; `change` returns
    /// false when it left the record as it was. Returns the record and whether it changed. The
    /// caller syncs.
    fn modify(
        &self,
        id: MessageId,
        off_outbox: bool,
        event: Option<&Event>,
        change: impl Fn(&mut Record) -> bool,
    ) -> Result<(Record, bool), StoreError> {
        let (record, changed, outbox_key) = (&self.dispatches, &self.outbox, &self.ledger)
            .transaction(|(dispatches, outbox, ledger)| {
                let mut record = load(dispatches, id)?;
                let changed = change(&mut record);
                let outbox_key = if off_outbox {
                    self.unqueue(&mut record, outbox)?
                } else {
                    None
                };
                if !changed && outbox_key.is_none() {
                    return Ok((record, false, None));
                }
                let value = encode(&record).map_err(ConflictableTransactionError::Abort)?;
                dispatches.insert(&id.0, value)?;
                if let (true, Some(event)) = (changed, event) {
                    ledger::append(ledger, &event.clone().field("to", &record.to))?;
                }
                Ok((record, changed, outbox_key))
            })
            .map_err(transaction_error)?;
        if let Some(key) = &outbox_key {
            self.queue.remove(key);
        }
        Ok((record, changed))
    }

    fn outbox_key(&self, urgency: u8, id: MessageId) -> Result<Vec<u8>, StoreError> {
        let mut key = Vec::with_capacity(25);
        key.push(u8::MAX - urgency);
        key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        key.extend_from_slice(&id.0);
        Ok(key)
    }

    /// Starts receiving the object `offer` announces. Its resume point is how many bytes are
    /// held: the size if it is already stored (a repeat: answer STORED again), else the synced
    /// length of a large object's partial file, else 0.
    pub fn receive(&self, offer: &Offer) -> Result<Receiving, StoreError> {
        let id = MessageId(offer.id);
        let (held, resume_from) = if let Some(record) = self.get(id)? {
            (Held::Partial, record.size)
        } else if objects::is_inline(offer.size) {
            (Held::Memory(Vec::with_capacity(offer.size as usize)), 0)
        } else {
            match fs::metadata(self.partial_path(id)) {
                Ok(meta) => (Held::Partial, meta.len()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => (Held::Partial, 0),
                Err(e) => return Err(io_error("reading a partial transfer")(e)),
            }
        };
        Ok(Receiving {
            id,
            held,
            resume_from,
        })
    }

    /// Appends received bytes at `offset` (which must be the current length); returns the new
    /// length, which is what a resumed transfer of a large object starts from.
    pub fn append_incoming(
        &self,
        receiving: &mut Receiving,
        offset: u64,
        bytes: &[u8],
    ) -> Result<u64, StoreError> {
        match &mut receiving.held {
            Held::Memory(buffer) => objects::append(buffer, receiving.id, offset, bytes),
            Held::Partial => self.append_partial(receiving.id, offset, bytes),
        }
    }

    /// Appends to a large object's partial file. The file is fsynced every 64 MiB; should a power
    /// cut leave a damaged tail, the digest check at the end discards it and the transfer starts
    /// again.
    fn append_partial(&self, id: MessageId, offset: u64, bytes: &[u8]) -> Result<u64, StoreError> {
        let path = self.partial_path(id);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error("opening a partial transfer"))?;
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(io_error("reading a partial transfer"))?;
        if len != offset {
            return Err(StoreError::Corrupt(format!(
                "partial transfer {id} holds {len} bytes, data came for offset {offset}"
            )));
        }
        file.write_all(bytes)
            .map_err(io_error("writing a partial transfer"))?;
        // Custody moves only at STORED, after `complete_incoming` checks the digest and fsyncs the
        // whole object; syncing here only bounds what a power cut makes the sender send again.
        let end = offset + bytes.len() as u64;
        if end / PARTIAL_SYNC_EVERY != offset / PARTIAL_SYNC_EVERY {
            file.sync_data()
                .map_err(io_error("syncing a partial transfer"))?;
        }
        if offset == 0 {
            sync_dir(&self.spool.join("partial"))?;
        }
        Ok(offset + bytes.len() as u64)
    }

    /// Makes a fully received object durable and recorded, exactly once: returns the record and
    /// whether it was already there. A digest mismatch discards the partial file (retry from 0).
    /// `peer` is the node it came from (the TLS peer), for the ledger.
    pub fn complete_incoming(
        &self,
        new: &Offer,
        receiving: Receiving,
        now: u64,
        peer: &OrganCode,
    ) -> Result<(Record, bool), StoreError> {
        if let Some(existing) = self.get(MessageId(new.id))? {
            // Committed by a concurrent receive that may still be flushing: durable before the
            // caller acknowledges it.
            let existing = same_content(existing, new)?;
            self.sync()?;
            return Ok((existing, true));
        }
        let inline = match receiving.held {
            Held::Memory(bytes) => {
                objects::verify(&bytes, new)?;
                Some(bytes)
            }
            Held::Partial => {
                self.spool_partial(new)?;
                None
            }
        };
        let record = Record::new(new, Direction::Incoming, DispatchState::Received, now);
        let value = encode(&record)?;
        let event = record.event(&Event::new(
            EntryKind::Received,
            None,
            Actor::Peer(peer.clone()),
        ));
        (
            &self.dispatches,
            &self.arrivals,
            &self.objects,
            &self.ledger,
        )
            .transaction(|(dispatches, arrivals, objects, ledger)| {
                dispatches.insert(&record.id.0, value.as_slice())?;
                arrivals.insert(&record.id.0, &[])?;
                if let Some(bytes) = &inline {
                    objects.insert(&record.id.0, bytes.as_slice())?;
                }
                ledger::append(ledger, &event)?;
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(transaction_error)?;
        self.sync()?;
        Ok((record, false))
    }

    /// Drops what is held of an incoming transfer its sender has given up (it found its own copy
    /// damaged, REJECT `corrupt`): nothing of it would ever be resumed.
    pub fn abandon_incoming(&self, receiving: Receiving) -> Result<(), StoreError> {
        if let Held::Partial = receiving.held {
            match fs::remove_file(self.partial_path(receiving.id)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error("removing an abandoned transfer")(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks a large object's complete partial file and moves it into the spool, durably; a
    /// digest mismatch discards it (the transfer starts again from 0).
    fn spool_partial(&self, new: &Offer) -> Result<(), StoreError> {
        let partial = self.partial_path(MessageId(new.id));
        let checked = File::open(&partial)
            .map_err(io_error("opening a partial transfer"))
            .and_then(|f| objects::check_file(f, new));
        if let Err(e) = checked {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
        fs::rename(&partial, self.object_path(MessageId(new.id)))
            .map_err(io_error("moving the object into the spool"))?;
        sync_dir(&self.spool.join("objects"))?;
        sync_dir(&self.spool.join("partial"))
    }

    /// Received objects not yet opened or applied, most urgent first, then oldest; after a crash
    /// these are simply processed again.
    pub fn arrivals(&self) -> Result<Vec<Record>, StoreError> {
        let mut out = self.records_named_by(
            self.arrivals.iter().map(|e| e.map(|(id, _)| id)),
            "arrivals",
        )?;
        out.sort_by_key(|r| (u8::MAX - r.urgency, r.created));
        Ok(out)
    }

    /// How many arrivals wait, without reading their records (for the status report).
    pub fn arrivals_count(&self) -> usize {
        self.arrivals.len()
    }

    /// Counts an attempt to open the arrival `id`, durably, before the opening starts: an opening
    /// that fails, or kills the process (an out-of-memory kill, an abort), still counts, so no
    /// arrival is opened again at every restart. Once `max` attempts were counted it answers
    /// [`OpenAttempt::Exhausted`] and counts nothing (the caller keeps it aside, [`Self::keep_aside`]).
    /// One small record write and the shared flush.
    pub fn begin_open(&self, id: MessageId, max: u32) -> Result<OpenAttempt, StoreError> {
        let attempt = self
            .dispatches
            .transaction(|dispatches| {
                let mut record = load(dispatches, id)?;
                if record.attempts >= max {
                    return Ok(OpenAttempt::Exhausted(record.attempts));
                }
                record.attempts += 1;
                let value = encode(&record).map_err(ConflictableTransactionError::Abort)?;
                dispatches.insert(&id.0, value)?;
                Ok(OpenAttempt::Go(record.attempts))
            })
            .map_err(transaction_error)?;
        if let OpenAttempt::Go(_) = attempt {
            self.sync()?;
        }
        Ok(attempt)
    }

    /// Gives back the attempt [`Self::begin_open`] counted when the opening ended in an error of
    /// this node's own (the store, signing a reply) rather than a verdict on the object: such an
    /// arrival is tried again at the inbox's pace for as long as the error lasts (a full disk),
    /// not kept aside for it. Not flushed: a crash only leaves the attempt counted.
    pub fn forgive_open(&self, id: MessageId) -> Result<(), StoreError> {
        self.dispatches
            .transaction(|dispatches| {
                let mut record = load(dispatches, id)?;
                if record.state == DispatchState::Received && record.attempts > 0 {
                    record.attempts -= 1;
                    let value = encode(&record).map_err(ConflictableTransactionError::Abort)?;
                    dispatches.insert(&id.0, value)?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// Takes the arrival `id` off the arrivals without deleting its object: it is recorded as
    /// refused (`refused` ledger entry with `kept aside`) and listed by [`Self::kept_aside`] for
    /// the operator. Returns once durable.
    pub fn keep_aside(&self, id: MessageId, reason: String) -> Result<Record, StoreError> {
        let event = Event::new(EntryKind::Refused, Some(id.0), Actor::Node)
            .field("kept", "aside")
            .field("reason", &reason);
        let record = (
            &self.dispatches,
            &self.arrivals,
            &self.kept_aside,
            &self.ledger,
        )
            .transaction(|(dispatches, arrivals, kept_aside, ledger)| {
                let mut record = load(dispatches, id)?;
                if record.state != DispatchState::Received {
                    return Ok(record);
                }
                record.state = DispatchState::KeptAside {
                    reason: reason.clone(),
                };
                let value = encode(&record).map_err(ConflictableTransactionError::Abort)?;
                dispatches.insert(&id.0, value)?;
                arrivals.remove(&id.0)?;
                kept_aside.insert(&id.0, &[])?;
                ledger::append(ledger, &event)?;
                Ok(record)
            })
            .map_err(transaction_error)?;
        self.sync()?;
        Ok(record)
    }

    /// The arrivals kept aside (see [`Self::keep_aside`]), in id order: the operator's to look at.
    pub fn kept_aside(&self) -> Result<Vec<MessageId>, StoreError> {
        self.kept_aside
            .iter()
            .keys()
            .map(|id| MessageId::from_slice(&id?))
            .collect()
    }

    /// Registers an opened dispatch: keeps its header, gives it the next incoming number of
    /// `year` in its series and queues its `replies` (signed objects for its sender: the delivery
    /// receipt and notice 01), in one transaction and one flush. Registering again returns the
    /// first registration.
    pub fn register(
        &self,
        id: MessageId,
        header: &DispatchHeader,
        year: i32,
        replies: &[(Offer, Vec<u8>)],
        now: u64,
    ) -> Result<Record, StoreError> {
        let classified = header.classification.is_classified();
        let counter = format!(
            "{year}/{}",
            if classified { "classified" } else { "regular" }
        );
        let header_json = encode_header(header)?;
        let issued = self
            .counters
            .get(counter.as_bytes())?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        self.reserve_number(&counter, issued + 1)?;
        let mut placed = Vec::new();
        for (offer, signed) in replies {
            let record = Record::new(offer, Direction::Outgoing, DispatchState::Queued, now);
            placed.push((record, self.place_object(offer, signed.as_slice())?));
        }
        let rows = self.outgoing(placed, &Event::new(EntryKind::Submitted, None, Actor::Node))?;
        let (record, queued) = (
            &self.dispatches,
            &self.arrivals,
            &self.counters,
            &self.headers,
            &self.outbox,
            &self.objects,
            &self.ledger,
        )
            .transaction(
                |(dispatches, arrivals, counters, headers, outbox, objects, ledger)| {
                    let mut record = load(dispatches, id)?;
                    if record.incoming_number.is_some() {
                        return Ok((record, false));
                    }
                    let number = counters
                        .get(counter.as_bytes())?
                        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                        .map_or(0, u64::from_be_bytes)
                        + 1;
                    counters.insert(counter.as_bytes(), &number.to_be_bytes())?;
                    record.state = DispatchState::Registered;
                    headers.insert(&id.0, header_json.as_slice())?;
                    record.incoming_number = Some(IncomingNumber {
                        year,
                        classified,
                        number,
                    });
                    let value = encode(&record).map_err(ConflictableTransactionError::Abort)?;
                    dispatches.insert(&id.0, value)?;
                    arrivals.remove(&id.0)?;
                    let event = Event::new(EntryKind::Registered, Some(id.0), Actor::Node)
                        .field("from", &record.from)
                        .field("number", number_text(&record));
                    ledger::append(ledger, &event)?;
                    insert_outgoing(&rows, None, dispatches, outbox, headers, objects, ledger)?;
                    Ok((record, true))
                },
            )
            .map_err(transaction_error)?;
        let rows = if queued { rows.as_slice() } else { &[] };
        self.sync_and_queue(rows.iter().map(|row| (row.key.clone(), row.queued.clone())))?;
        Ok(record)
    }

    /// Refuses a received object after opening it: the reason is kept, the object deleted, so
    /// nothing refused is ever shown or fetched as valid.
    pub fn refuse(&self, id: MessageId, reason: String) -> Result<Record, StoreError> {
        let event =
            Event::new(EntryKind::Refused, Some(id.0), Actor::Node).field("reason", &reason);
        let record = self.settle(id, None, std::slice::from_ref(&event), |r| {
            r.state = DispatchState::Refused {
                reason: reason.clone(),
            }
        })?;
        self.sync()?;
        self.objects.remove(id.0)?;
        match fs::remove_file(self.object_path(id)) {
            Ok(()) => Ok(record),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(record),
            Err(e) => Err(io_error("removing a refused object")(e)),
        }
    }

    /// Applies a checked reply (`reply`, an arrival) to the outgoing dispatch `target`, in one
    /// transaction with marking the reply applied and recording `events` (a receipt, a notice, or both).
    /// Not flushed (see the module's documentation).
    pub fn apply_reply(
        &self,
        reply: MessageId,
        target: MessageId,
        events: &[Event],
        change: impl Fn(&mut Record),
    ) -> Result<Record, StoreError> {
        self.settle(reply, Some((target, &change)), events, |r| {
            r.state = DispatchState::Applied;
        })
    }

    /// Takes `id` off the arrivals with `settle` applied to its record, and `change` applied to
    /// another record if given, all in one transaction with recording `events`. A record that
    /// `change` moves out of the queued state (a refusal notice about a dispatch whose hop
    /// receipt was lost in a crash) leaves the outbox in the same transaction. The caller syncs,
    /// if it must.
    fn settle(
        &self,
        id: MessageId,
        other: Option<(MessageId, Change<'_>)>,
        events: &[Event],
        settle: impl Fn(&mut Record),
    ) -> Result<Record, StoreError> {
        let (record, off_outbox) = (&self.dispatches, &self.arrivals, &self.outbox, &self.ledger)
            .transaction(|(dispatches, arrivals, outbox, ledger)| {
                let mut record = load(dispatches, id)?;
                settle(&mut record);
                let mut off_outbox = None;
                if let Some((other, change)) = &other {
                    let mut target = load(dispatches, *other)?;
                    let was_queued = target.state == DispatchState::Queued;
                    change(&mut target);
                    if was_queued && target.state != DispatchState::Queued {
                        off_outbox = self.unqueue(&mut target, outbox)?;
                    }
                    let value = encode(&target).map_err(ConflictableTransactionError::Abort)?;
                    dispatches.insert(&other.0, value)?;
                }
                let value = encode(&record).map_err(ConflictableTransactionError::Abort)?;
                dispatches.insert(&id.0, value)?;
                arrivals.remove(&id.0)?;
                for event in events {
                    ledger::append(ledger, event)?;
                }
                Ok((record, off_outbox))
            })
            .map_err(transaction_error)?;
        if let Some(key) = &off_outbox {
            self.queue.remove(key);
        }
        Ok(record)
    }

    /// Queues a received object for another agency for forwarding, in one transaction: it leaves
    /// the arrivals, enters the outbox, and its record says it is relayed.
    pub fn forward(&self, id: MessageId) -> Result<Record, StoreError> {
        let current = self.get(id)?.ok_or(StoreError::NotFound(id))?;
        let key = self.outbox_key(current.urgency, id)?;
        let event = current.event(&Event::new(EntryKind::Relayed, None, Actor::Node));
        let record = (&self.dispatches, &self.arrivals, &self.outbox, &self.ledger)
            .transaction(|(dispatches, arrivals, outbox, ledger)| {
                let mut record = load(dispatches, id)?;
                if record.direction == Direction::Relayed {
                    return Ok(record);
                }
                record.direction = Direction::Relayed;
                record.state = DispatchState::Queued;
                record.outbox_key = Some(key.clone());
                record.attempts = 0;
                let value = encode(&record).map_err(ConflictableTransactionError::Abort)?;
                dispatches.insert(&id.0, value)?;
                arrivals.remove(&id.0)?;
                outbox.insert(key.as_slice(), Queued::of(&record).encode())?;
                ledger::append(ledger, &event)?;
                Ok(record)
            })
            .map_err(transaction_error)?;
        let queued = (record.outbox_key.as_ref() == Some(&key)).then(|| (key, Queued::of(&record)));
        self.sync_and_queue(queued)?;
        Ok(record)
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

impl Record {
    /// One word for people and scripts: queued, sent, delivered, failed (outgoing); received,
    /// registered, refused, kept_aside (incoming); applied (a reply). A verified delivery receipt outweighs
    /// the rest: a dispatch whose hop receipt was lost in a crash and that expired before the
    /// restart was still delivered if its delivery receipt comes.
    pub fn status(&self) -> &'static str {
        match &self.state {
            DispatchState::Queued | DispatchState::Sent { .. } | DispatchState::Failed { .. }
                if self.delivery_receipt.is_some() =>
            {
                "delivered"
            }
            DispatchState::Queued => "queued",
            DispatchState::Sent { .. } => "sent",
            DispatchState::Failed { .. } => "failed",
            DispatchState::Received => "received",
            DispatchState::Registered => "registered",
            DispatchState::Refused { .. } => "refused",
            DispatchState::Applied => "applied",
            DispatchState::KeptAside { .. } => "kept_aside",
        }
    }

    /// Why it failed or was refused, if it was (and was not delivered after all).
    pub fn reason(&self) -> Option<&str> {
        match &self.state {
            DispatchState::Failed { .. } if self.delivery_receipt.is_some() => None,
            DispatchState::Failed { reason }
            | DispatchState::Refused { reason }
            | DispatchState::KeptAside { reason } => Some(reason),
            _ => None,
        }
    }

    /// The sealed object's SHA-256 as bytes (the record keeps it as hex for people).
    pub fn sealed_digest(&self) -> Result<[u8; 32], StoreError> {
        hex::decode(&self.sealed_sha256)
            .ok_or_else(|| StoreError::Corrupt(format!("digest of {}", self.id)))
    }

    /// `base` (kind, actor, the actor's own fields) about this record's object: its id, who it is
    /// from and to, what it is (replies say which kind), its size and digest.
    fn event(&self, base: &Event) -> Event {
        let mut event = base.clone();
        event.id = Some(self.id.0);
        let event = event
            .field("from", &self.from)
            .field("to", &self.to)
            .field("size", self.size)
            .field("sealed-sha256", &self.sealed_sha256);
        match self.kind {
            ObjectKind::Dispatch => event,
            other => event.field("object", format!("{other:?}").to_lowercase()),
        }
    }

    fn new(new: &Offer, direction: Direction, state: DispatchState, now: u64) -> Self {
        Self {
            id: MessageId(new.id),
            direction,
            from: new.from.clone(),
            to: new.to.clone(),
            size: new.size,
            sealed_sha256: hex::encode(&new.sealed_sha256),
            urgency: new.urgency,
            expires: new.expires,
            kind: new.kind,
            created: now,
            attempts: 0,
            state,
            incoming_number: None,
            delivery_receipt: None,
            outbox_key: None,
            notices: Vec::new(),
        }
    }
}

fn number_text(record: &Record) -> String {
    record
        .incoming_number
        .map(|n| n.to_string())
        .unwrap_or_default()
}

fn same_content(existing: Record, new: &Offer) -> Result<Record, StoreError> {
    if existing.sealed_sha256 == hex::encode(&new.sealed_sha256) && existing.size == new.size {
        Ok(existing)
    } else {
        Err(StoreError::Conflict(MessageId(new.id)))
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing a spool directory"))
}

fn encode(record: &Record) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Corrupt(e.to_string()))
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

/// The header of a dispatch composed here, as its copies' transaction writes it.
struct Composed {
    json: Vec<u8>,
    message_id: String,
}

/// Where the `headers` tree keeps a submission's first copy by message id: `m` ‖ the UUID text,
/// never 16 bytes long like the transfer ids that key the headers themselves.
fn submission_key(message_id: &str) -> Vec<u8> {
    let mut key = b"m".to_vec();
    key.extend_from_slice(message_id.as_bytes());
    key
}

fn encode_header(header: &DispatchHeader) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(header).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode(bytes: &[u8]) -> Result<Record, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("record: {e}")))
}

/// A change to a record, applied inside a transaction.
type Change<'a> = &'a dyn Fn(&mut Record);

/// A record read inside a transaction.
fn load(
    dispatches: &sled::transaction::TransactionalTree,
    id: MessageId,
) -> Result<Record, ConflictableTransactionError<StoreError>> {
    match dispatches.get(id.0)? {
        Some(bytes) => decode(&bytes).map_err(ConflictableTransactionError::Abort),
        None => Err(ConflictableTransactionError::Abort(StoreError::NotFound(
            id,
        ))),
    }
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
    use super::*;
    use crate::testkit::example_header as header;

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
        }
    }

    fn read_object(store: &Store, id: MessageId) -> Vec<u8> {
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
    fn copies_to_several_recipients_are_queued_all_or_none() {
        // A small object sealed in memory, and a large one in a file linked into the spool.
        let small = b"one sealed object for two agencies".to_vec();
        let large = vec![0x5a; 200_000];
        for content in [small, large] {
            let dir = tempfile::tempdir().unwrap();
            let store = open_again(dir.path());
            let file = dir.path().join("sealed.p7m");
            fs::write(&file, &content).unwrap();
            let sealed = if content.len() < 1000 {
                Sealed::Memory(&content)
            } else {
                Sealed::File(&file)
            };
            let by = Event::new(EntryKind::Submitted, None, Actor::User(1000));
            let (a, b) = (dispatch(1, 2, &content), dispatch(2, 2, &content));
            let records = store
                .submit_copies(&[a.clone(), b], &header(), sealed, 5, &by)
                .unwrap();
            assert_eq!(records.len(), 2);
            assert_eq!(store.outbox().unwrap().len(), 2);
            assert!(store.header(MessageId([2; 16])).unwrap().is_some());

            // A batch with a copy that cannot be queued (its id is taken) queues nothing.
            let c = dispatch(3, 2, &content);
            let mut other = header();
            other.message_id = "0d1e2f30-4152-4637-8899-aabbccddeeff".into();
            let err = store
                .submit_copies(&[c, a], &other, sealed, 6, &by)
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict(_)), "{err}");
            assert!(store.get(MessageId([3; 16])).unwrap().is_none());
            assert!(store.object(MessageId([3; 16])).is_err());
            assert_eq!(store.outbox().unwrap().len(), 2);
            assert_eq!(read_object(&store, MessageId([1; 16])), content);
            assert_eq!(read_object(&store, MessageId([2; 16])), content);
        }
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
    fn a_message_id_holds_one_dispatch_whatever_its_recipients() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"sealed".to_vec();
        let by = Event::new(EntryKind::Submitted, None, Actor::User(1000));
        // A copy of the example header's dispatch under transfer id `n`, as a copy to another
        // recipient would have.
        let submit = |store: &Store, n: u8| {
            let copy = dispatch(n, 0, &content);
            store.submit_copies(&[copy], &header(), Sealed::Memory(&content), 5, &by)
        };
        submit(&open_again(dir.path()), 1).unwrap();
        // After a restart, the same message id to an entirely different recipient (another
        // transfer id) is still refused, and nothing of it is kept.
        let store = open_again(dir.path());
        let message_id = header().message_id;
        assert_eq!(
            store.submitted_under(&message_id).unwrap(),
            Some(MessageId([1; 16]))
        );
        let err = submit(&store, 2).unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(MessageId([1, ..]))),
            "{err}"
        );
        assert!(store.get(MessageId([2; 16])).unwrap().is_none());
        assert_eq!(store.outbox().unwrap().len(), 1);
        // The index is not mistaken for a header by the audit's scan.
        assert_eq!(
            store.copies_of(&message_id).unwrap(),
            vec![MessageId([1; 16])]
        );
    }

    #[test]
    fn outbox_serves_the_most_urgent_first_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let order = [(1, 0), (2, 3), (3, 1), (4, 3), (5, 0)];
        {
            let store = open_again(dir.path());
            for (n, urgency) in order {
                // Odd ones small (kept inline), even ones large (spool files).
                let body = vec![n; if n % 2 == 1 { 1000 } else { 100_000 }];
                store
                    .submit(&dispatch(n, urgency, &body), &body[..], 100)
                    .unwrap();
            }
        }
        let store = open_again(dir.path());
        let ids: Vec<u8> = store.outbox().unwrap().iter().map(|r| r.id.0[0]).collect();
        assert_eq!(ids, [2, 4, 3, 1, 5]);
        assert_eq!(read_object(&store, MessageId([3; 16])), vec![3u8; 1000]);
        assert_eq!(read_object(&store, MessageId([4; 16])), vec![4u8; 100_000]);
        assert!(store.object_path(MessageId([4; 16])).exists());
        assert!(!store.object_path(MessageId([3; 16])).exists());

        store
            .mark_sent(MessageId([2; 16]), b"receipt".to_vec(), &peer())
            .unwrap();
        store
            .mark_failed(MessageId([1; 16]), "expired".into())
            .unwrap();
        let ids: Vec<u8> = store.outbox().unwrap().iter().map(|r| r.id.0[0]).collect();
        assert_eq!(ids, [4, 3, 5]);
        let failed = store.get(MessageId([1; 16])).unwrap().unwrap();
        assert_eq!(
            failed.state,
            DispatchState::Failed {
                reason: "expired".into()
            }
        );
        assert_eq!(
            store.record_attempt(MessageId([4; 16])).unwrap().attempts,
            1
        );
    }

    #[test]
    fn submissions_are_idempotent_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_again(dir.path());
        let d = dispatch(1, 0, b"sealed");
        let first = store.submit(&d, &b"sealed"[..], 1).unwrap();
        assert_eq!(store.submit(&d, &b"sealed"[..], 2).unwrap(), first);
        let other = Offer {
            sealed_sha256: [0; 32],
            ..d.clone()
        };
        assert!(matches!(
            store.submit(&other, &b"x"[..], 3),
            Err(StoreError::Conflict(_))
        ));
        let wrong = dispatch(2, 0, b"announced");
        assert!(matches!(
            store.submit(&wrong, &b"different"[..], 4),
            Err(StoreError::DigestMismatch(_))
        ));
        assert!(store.get(MessageId(wrong.id)).unwrap().is_none());
        assert!(store.object(MessageId(wrong.id)).is_err());
        let large = vec![7u8; 100_000];
        let wrong = Offer {
            size: large.len() as u64,
            ..dispatch(3, 0, b"announced")
        };
        assert!(matches!(
            store.submit(&wrong, &large[..], 4),
            Err(StoreError::DigestMismatch(_))
        ));
        assert!(store.object(MessageId(wrong.id)).is_err());
        assert_eq!(
            fs::read_dir(test_files(dir.path()).join("spool/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    /// An arrival whose opening never finishes (the process dies each time) is counted across
    /// restarts, then kept aside: refused in the ledger, off the arrivals, its object kept.
    #[test]
    fn openings_are_counted_across_restarts_then_the_arrival_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let small = b"a sealed object that kills its opener".to_vec();
        let large = vec![0x42; 100_000]; // kept as a spool file
        let offers = [dispatch(1, 0, &small), dispatch(2, 0, &large)];
        {
            let store = open_again(dir.path());
            for (offer, body) in offers.iter().zip([&small, &large]) {
                let receiving = receive_whole(&store, offer, body);
                store
                    .complete_incoming(offer, receiving, 1, &peer())
                    .unwrap();
            }
        }
        for attempt in 1..=3 {
            // Each attempt starts in a new process and is never completed (a crash).
            let store = open_again(dir.path());
            assert_eq!(store.arrivals().unwrap().len(), 2);
            for offer in &offers {
                let id = MessageId(offer.id);
                // A failure of the node's own first gives its attempt back.
                assert_eq!(store.begin_open(id, 3).unwrap(), OpenAttempt::Go(attempt));
                store.forgive_open(id).unwrap();
                assert_eq!(store.begin_open(id, 3).unwrap(), OpenAttempt::Go(attempt));
            }
        }
        let store = open_again(dir.path());
        let size = store.ledger_size().unwrap();
        for (offer, body) in offers.iter().zip([&small, &large]) {
            let id = MessageId(offer.id);
            assert_eq!(store.begin_open(id, 3).unwrap(), OpenAttempt::Exhausted(3));
            let record = store.keep_aside(id, "could not be opened".into()).unwrap();
            assert_eq!(record.status(), "kept_aside");
            assert_eq!(record.reason(), Some("could not be opened"));
            assert_eq!(record.attempts, 3);
            assert_eq!(&read_object(&store, id), body, "the object is kept");
        }
        assert!(store.arrivals().unwrap().is_empty());
        assert_eq!(
            store.kept_aside().unwrap(),
            offers.iter().map(|o| MessageId(o.id)).collect::<Vec<_>>()
        );
        let entry = String::from_utf8(store.ledger_entry(size).unwrap()).unwrap();
        assert!(entry.contains("kind refused\n"), "{entry}");
        assert!(entry.contains(&format!("id {}\n", MessageId(offers[0].id))));
        assert!(entry.contains("field kept aside\nfield reason could not be opened\n"));
        assert_eq!(store.ledger_size().unwrap(), size + 2);

        // Kept aside once: again changes nothing, and a restart keeps it so.
        store
            .keep_aside(MessageId(offers[0].id), "again".into())
            .unwrap();
        assert_eq!(store.ledger_size().unwrap(), size + 2);
        drop(store);
        let store = open_again(dir.path());
        assert!(store.arrivals().unwrap().is_empty());
        assert_eq!(store.kept_aside().unwrap().len(), 2);
        assert_eq!(read_object(&store, MessageId(offers[1].id)), large);
    }

    #[test]
    fn large_incoming_transfers_resume_and_complete_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let d = dispatch(9, 2, &body);
        {
            let store = open_again(dir.path());
            let mut receiving = store.receive(&d).unwrap();
            assert_eq!(receiving.resume_from(), 0);
            assert_eq!(
                store
                    .append_incoming(&mut receiving, 0, &body[..40_000])
                    .unwrap(),
                40_000
            );
            assert!(store
                .append_incoming(&mut receiving, 30_000, &body[40_000..50_000])
                .is_err());
        }
        let store = open_again(dir.path());
        let mut receiving = store.receive(&d).unwrap();
        assert_eq!(
            receiving.resume_from(),
            40_000,
            "synced bytes survive a restart"
        );
        store
            .append_incoming(&mut receiving, 40_000, &body[40_000..])
            .unwrap();
        let (record, duplicate) = store.complete_incoming(&d, receiving, 5, &peer()).unwrap();
        assert!(!duplicate);
        assert_eq!(record.state, DispatchState::Received);
        assert_eq!(fs::read(store.object_path(MessageId(d.id))).unwrap(), body);
        let again = store.receive(&d).unwrap();
        assert_eq!(again.resume_from(), body.len() as u64);
        let (_, duplicate) = store.complete_incoming(&d, again, 6, &peer()).unwrap();
        assert!(
            duplicate,
            "the same dispatch again is recognised, not stored twice"
        );
        assert!(store.outbox().unwrap().is_empty());
    }

    #[test]
    fn small_incoming_objects_are_stored_with_their_record_and_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"a small sealed receipt".to_vec();
        let d = dispatch(6, 2, &body);
        {
            let store = open_again(dir.path());
            // Cut mid-transfer: nothing of a small object is kept, it starts again from 0.
            let mut receiving = store.receive(&d).unwrap();
            store
                .append_incoming(&mut receiving, 0, &body[..5])
                .unwrap();
            assert!(store
                .append_incoming(&mut receiving, 3, &body[5..])
                .is_err());
        }
        let store = open_again(dir.path());
        let receiving = store.receive(&d).unwrap();
        assert_eq!(receiving.resume_from(), 0);
        drop(receiving);
        let receiving = receive_whole(&store, &d, &body);
        let (record, duplicate) = store.complete_incoming(&d, receiving, 5, &peer()).unwrap();
        assert!(!duplicate);
        assert_eq!(record.state, DispatchState::Received);
        assert_eq!(read_object(&store, MessageId(d.id)), body);
        assert_eq!(
            fs::read_dir(test_files(dir.path()).join("spool/objects"))
                .unwrap()
                .count()
                + fs::read_dir(test_files(dir.path()).join("spool/partial"))
                    .unwrap()
                    .count(),
            0,
            "no file for a small object"
        );
        let again = receive_whole(&store, &d, &body);
        let (_, duplicate) = store.complete_incoming(&d, again, 6, &peer()).unwrap();
        assert!(duplicate);
        // Refused: its bytes are gone with it.
        store.refuse(MessageId(d.id), "test".into()).unwrap();
        assert!(store.object(MessageId(d.id)).is_err());
    }

    #[test]
    fn registration_queues_its_replies_in_the_same_transaction_once() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"a dispatch from G22".to_vec();
        let d = dispatch(7, 2, &body);
        let reply = |n: u8, kind| {
            let signed = vec![n; 300];
            let offer = Offer {
                id: [n; 16],
                from: d.to.clone(),
                to: d.from.clone(),
                kind,
                expires: 0,
                ..dispatch(n, 2, &signed)
            };
            (offer, signed)
        };
        let replies = [reply(8, ObjectKind::Receipt), reply(9, ObjectKind::Notice)];
        {
            let store = open_again(dir.path());
            let receiving = receive_whole(&store, &d, &body);
            store.complete_incoming(&d, receiving, 5, &peer()).unwrap();
            let first = store
                .register(MessageId(d.id), &header(), 2026, &replies, 6)
                .unwrap();
            assert_eq!(first.state, DispatchState::Registered);
            let ids: Vec<u8> = store.outbox().unwrap().iter().map(|r| r.id.0[0]).collect();
            assert_eq!(ids, [8, 9]);
            // Again (as after a crash before the arrival was taken off): same number, no copies.
            let again = store
                .register(MessageId(d.id), &header(), 2026, &replies, 7)
                .unwrap();
            assert_eq!(again.incoming_number, first.incoming_number);
            assert_eq!(store.outbox().unwrap().len(), 2);
        }
        // The scheduler's view of the outbox is rebuilt from the store at open.
        let store = open_again(dir.path());
        let queued = store.outbox().unwrap();
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[0].to, d.from);
        assert_eq!(read_object(&store, MessageId([9; 16])), vec![9u8; 300]);
        assert!(store.arrivals().unwrap().is_empty());
        store
            .mark_sent(MessageId([8; 16]), b"hop receipt".to_vec(), &peer())
            .unwrap();
        let ids: Vec<u8> = store.outbox().unwrap().iter().map(|r| r.id.0[0]).collect();
        assert_eq!(ids, [9]);
    }

    #[test]
    fn only_a_queued_dispatch_finishes_and_a_refusal_takes_it_off_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_again(dir.path());
        for n in 1..=3 {
            let body = vec![n; 100];
            store.submit(&dispatch(n, 0, &body), &body[..], 5).unwrap();
        }
        let ledger_size = || store.ledger_size().unwrap();
        let expired = |n: u8| store.mark_failed(MessageId([n; 16]), "expired".into());

        // Sent during the scheduler's pass, then found expired by that pass: still sent.
        store
            .mark_sent(MessageId([1; 16]), b"hop receipt".to_vec(), &peer())
            .unwrap();
        let before = ledger_size();
        assert!(expired(1).unwrap().is_none());
        let status = |n: u8| store.get(MessageId([n; 16])).unwrap().unwrap().status();
        assert_eq!(status(1), "sent");
        assert_eq!(ledger_size(), before, "nothing recorded");

        // Its delivery receipt came first (the hop receipt was lost in a crash): never failed.
        let arrival = |n: u8, id: u8| {
            let signed = vec![n; 50];
            let offer = Offer {
                id: [n; 16],
                from: "000.00.00.H41".parse().unwrap(),
                to: peer(),
                kind: ObjectKind::Replies,
                expires: 0,
                ..dispatch(n, 0, &signed)
            };
            let receiving = receive_whole(&store, &offer, &signed);
            store
                .complete_incoming(&offer, receiving, 6, &peer())
                .unwrap();
            (MessageId([n; 16]), MessageId([id; 16]))
        };
        let (reply, target) = arrival(8, 2);
        store
            .apply_reply(reply, target, &[], |r| {
                r.delivery_receipt = Some(b"receipt".to_vec())
            })
            .unwrap();
        let queued: Vec<u8> = store.outbox().unwrap().iter().map(|r| r.id.0[0]).collect();
        assert_eq!(queued, [2, 3], "still offered, for its hop receipt");
        let before = ledger_size();
        assert!(expired(2).unwrap().is_none());
        assert_eq!(status(2), "delivered");
        assert_eq!(ledger_size(), before, "nothing recorded");
        let queued: Vec<u8> = store.outbox().unwrap().iter().map(|r| r.id.0[0]).collect();
        assert_eq!(queued, [3], "expired: offered no more, and not failed");
        // Or it expired first (the crash and the expiry both before the restart): its delivery
        // receipt, when it comes, still says delivered.
        let body = vec![4; 100];
        store.submit(&dispatch(4, 0, &body), &body[..], 5).unwrap();
        assert_eq!(expired(4).unwrap().unwrap().reason(), Some("expired"));
        let (reply, target) = arrival(7, 4);
        store
            .apply_reply(reply, target, &[], |r| {
                r.delivery_receipt = Some(b"receipt".to_vec())
            })
            .unwrap();
        let record = store.get(MessageId([4; 16])).unwrap().unwrap();
        assert_eq!((record.status(), record.reason()), ("delivered", None));

        // Refused by the recipient while still queued here: off the outbox at once, for good.
        let (reply, target) = arrival(9, 3);
        store
            .apply_reply(reply, target, &[], |r| {
                r.state = DispatchState::Failed {
                    reason: "refused".into(),
                }
            })
            .unwrap();
        assert!(store.outbox().unwrap().is_empty());
        drop(store);
        let store = open_again(dir.path());
        assert!(store.outbox().unwrap().is_empty());
        assert_eq!(
            store.get(MessageId([3; 16])).unwrap().unwrap().reason(),
            Some("refused")
        );
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

    #[test]
    fn corrupt_transfers_are_discarded_and_orphans_removed_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let small = dispatch(6, 0, b"expected content");
        let tampered = receive_whole(&open_again(dir.path()), &small, b"tampered content");
        let orphan = {
            let store = open_again(dir.path());
            assert!(matches!(
                store.complete_incoming(&small, tampered, 1, &peer()),
                Err(StoreError::DigestMismatch(_))
            ));
            assert!(store.get(MessageId(small.id)).unwrap().is_none());
            let expected = vec![1u8; 100_000];
            let mut large = dispatch(7, 0, &expected);
            large.size = expected.len() as u64;
            let receiving = receive_whole(&store, &large, &vec![2u8; 100_000]);
            assert!(matches!(
                store.complete_incoming(&large, receiving, 1, &peer()),
                Err(StoreError::DigestMismatch(_))
            ));
            assert_eq!(
                store.receive(&large).unwrap().resume_from(),
                0,
                "retry starts from zero"
            );
            // A crash between the object's rename and its record: the object was never acknowledged.
            let orphan = store.object_path(MessageId([8; 16]));
            fs::write(&orphan, b"unacknowledged").unwrap();
            fs::write(test_files(dir.path()).join("spool/tmp/half-written"), b"x").unwrap();
            orphan
        };
        let _store = open_again(dir.path());
        assert!(!orphan.exists());
        assert_eq!(
            fs::read_dir(test_files(dir.path()).join("spool/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn message_ids_print_and_parse_as_hex() {
        let id = MessageId([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(MessageId::try_from(id.to_string()).unwrap(), id);
        assert!(MessageId::try_from("zz".repeat(16)).is_err());
        assert!(MessageId::try_from(String::from("ab")).is_err());
    }
}
