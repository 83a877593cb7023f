//! Damage found before a clerk meets it (`vdx check`): every record's sealed object is where the
//! record says (the store's tree for at most [`super::INLINE_MAX`] bytes, else a spool file), of its
//! recorded size and SHA-256, and the ledger holds the entries that the record's state implies.
//!
//! Only what the store guarantees is expected. Every change of a record appends its entry in the
//! same sled transaction, so the entries below are there whatever a crash cut:
//!
//! | record | entries about its id |
//! |---|---|
//! | outgoing (a dispatch or a reply queued here) | `submitted` |
//! | incoming or relayed | `received` |
//! | relayed | `relayed` |
//! | sent | `sent` |
//! | failed | `failed`, or a `notice` (a refusal notice fails it in the notice's transaction) |
//! | registered | `registered` |
//! | refused | `refused` |
//! | with a delivery receipt | `receipt` |
//! | with N notices | at least N `notice` |
//!
//! A refused object is deleted after its record is committed (a crash may leave it), so a refused
//! record's object is neither expected nor checked. Objects without a record (orphans) are
//! listed apart, not as damage: a crash between an object and its record leaves one, never
//! acknowledged, and the next start removes it. Partial transfers (`spool/partial`) are
//! transfers in progress and not looked at.
//!
//! The walk reads the store as it is while the daemon runs: a record found damaged is read
//! again and checked once more, so that a change committed meanwhile (an object refused and
//! deleted) is not reported as damage.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vdx_protocol::hex;
use vdx_protocol::ledger::{Actor, Entry, EntryKind};
use vdx_protocol::wire::ObjectKind;

use super::objects::is_inline;
use super::{decode, io_error, Direction, DispatchState, Event, MessageId, ObjectReader, Record};
use super::{Store, StoreError};

/// Bytes read at a time while hashing an object.
const HASH_BUFFER: usize = 256 * 1024;

/// What is wrong with one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// The sealed object is not where the record says (deleted).
    Missing,
    /// The object has another size than recorded (truncated or grown).
    Size {
        /// Bytes the record says.
        recorded: u64,
        /// Bytes found.
        found: u64,
    },
    /// The object's SHA-256 is not the recorded one (changed).
    Digest {
        /// The record's SHA-256, hex.
        recorded: String,
        /// The SHA-256 of the bytes found, hex.
        found: String,
    },
    /// The object is there but cannot be read.
    Unreadable {
        /// The I/O error.
        error: String,
    },
    /// The ledger has no entry of this kind about the record, which its state implies.
    LedgerEntryMissing {
        /// The entry kind's name (`submitted`, `received`, …).
        entry: String,
    },
    /// The record itself does not decode (or its digest is not 64 hex digits).
    Record {
        /// Why.
        error: String,
    },
}

impl Problem {
    /// Whether this is about the object's bytes (not the ledger): such an object cannot be sent
    /// or released.
    pub fn is_object(&self) -> bool {
        matches!(
            self,
            Self::Missing | Self::Size { .. } | Self::Digest { .. } | Self::Unreadable { .. }
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("object missing"),
            Self::Size { recorded, found } => {
                write!(f, "size mismatch: {found} bytes, {recorded} recorded")
            }
            Self::Digest { recorded, found } => {
                write!(f, "digest mismatch: SHA-256 {found}, {recorded} recorded")
            }
            Self::Unreadable { error } => write!(f, "object unreadable: {error}"),
            Self::LedgerEntryMissing { entry } => write!(f, "ledger entry missing: {entry}"),
            Self::Record { error } => write!(f, "record unreadable: {error}"),
        }
    }
}

/// One damaged record: which dispatch (or reply), which way it travels, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damaged {
    /// Transfer id, 32 hex digits.
    pub id: String,
    /// Which way it travels (absent when the record itself does not decode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// A dispatch or a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ObjectKind>,
    /// Its status word (`queued`, `registered`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Sending agency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Recipient agency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// What is wrong, object first.
    pub problems: Vec<Problem>,
}

impl Damaged {
    fn of(record: &Record, problems: Vec<Problem>) -> Self {
        Self {
            id: record.id.to_string(),
            direction: Some(record.direction),
            kind: Some(record.kind),
            status: Some(record.status().to_owned()),
            from: Some(record.from.to_string()),
            to: Some(record.to.to_string()),
            problems,
        }
    }

    /// The agency at the other end: the recipient of what goes out, the sender of what came in.
    pub fn peer(&self) -> Option<&str> {
        match self.direction {
            Some(Direction::Outgoing) => self.to.as_deref(),
            _ => self.from.as_deref(),
        }
    }
}

/// An object without a record: not damage (see the module's documentation), shown apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// `spool` (a file in `spool/objects`) or `store` (the store's `objects` tree).
    pub place: String,
    /// The file name, or the transfer id.
    pub name: String,
    /// Bytes.
    pub size: u64,
}

/// What one check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Records looked at.
    pub records: u64,
    /// Objects read and hashed.
    pub objects: u64,
    /// Bytes hashed.
    pub bytes: u64,
    /// Ledger entries about the records, read.
    pub entries: u64,
    /// The damaged records, in id order.
    pub damaged: Vec<Damaged>,
    /// Objects without a record.
    pub orphans: Vec<Orphan>,
}

impl CheckReport {
    /// Whether anything is damaged (orphans are not damage).
    pub fn is_damaged(&self) -> bool {
        !self.damaged.is_empty()
    }

    /// The ledger's `audit` entry for this check by `actor`: what was checked and which
    /// dispatches were found damaged.
    pub fn event(&self, actor: Actor) -> Event {
        let ids: Vec<&str> = self.damaged.iter().map(|d| d.id.as_str()).collect();
        Event::new(EntryKind::Audit, None, actor)
            .field("query", "check")
            .field("records", self.records)
            .field("objects", self.objects)
            .field("bytes", self.bytes)
            .field("damaged", self.damaged.len())
            .field("ids", ids.join(" "))
    }
}

/// A counter of what a walk read.
#[derive(Default)]
struct Tally {
    objects: u64,
    bytes: u64,
    entries: u64,
}

impl Store {
    /// Checks every record's object and ledger entries, and lists objects without a record. Reads
    /// only; safe while the daemon runs.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport::default();
        let mut tally = Tally::default();
        for entry in self.dispatches.iter() {
            let (key, value) = entry?;
            report.records += 1;
            let record = match decode(&value) {
                Ok(record) => record,
                Err(e) => {
                    report.damaged.push(Damaged {
                        id: hex::encode(&key),
                        direction: None,
                        kind: None,
                        status: None,
                        from: None,
                        to: None,
                        problems: vec![Problem::Record {
                            error: e.to_string(),
                        }],
                    });
                    continue;
                }
            };
            let mut problems = self.check_record(&record, &mut tally)?;
            if !problems.is_empty() {
                // Changed since it was read (refused, its object deleted): the record as it is now.
                match self.get(record.id)? {
                    Some(now) if now != record => {
                        problems = self.check_record(&now, &mut tally)?;
                        if !problems.is_empty() {
                            report.damaged.push(Damaged::of(&now, problems));
                        }
                    }
                    Some(_) => report.damaged.push(Damaged::of(&record, problems)),
                    None => {}
                }
            }
        }
        report.objects = tally.objects;
        report.bytes = tally.bytes;
        report.entries = tally.entries;
        report.orphans = self.orphans()?;
        Ok(report)
    }

    /// What is wrong with `record` (nothing: empty).
    fn check_record(&self, record: &Record, tally: &mut Tally) -> Result<Vec<Problem>, StoreError> {
        let mut problems = Vec::new();
        // A copy carried by a fan-out object has no object of its own here.
        if !matches!(record.state, DispatchState::Refused { .. }) && record.carried_by.is_none() {
            match self.checked_object(record)? {
                Ok(_) => {
                    tally.objects += 1;
                    tally.bytes += record.size;
                }
                Err(problem) => {
                    if let Problem::Digest { .. } = problem {
                        tally.objects += 1;
                        tally.bytes += record.size;
                    }
                    problems.push(problem);
                }
            }
        }
        let found = self.entry_kinds_about(record.id, tally)?;
        let count = |kind| found.get(&kind).copied().unwrap_or(0);
        for kind in expected_entries(record) {
            if count(kind) == 0 {
                problems.push(Problem::LedgerEntryMissing {
                    entry: kind.name().to_owned(),
                });
            }
        }
        if matches!(record.state, DispatchState::Failed { .. })
            && count(EntryKind::Failed) + count(EntryKind::Notice) == 0
        {
            problems.push(Problem::LedgerEntryMissing {
                entry: "failed".into(),
            });
        }
        if (count(EntryKind::Notice) as usize) < record.notices.len() {
            problems.push(Problem::LedgerEntryMissing {
                entry: "notice".into(),
            });
        }
        Ok(problems)
    }

    /// How many entries of each kind the ledger holds about `id`.
    fn entry_kinds_about(
        &self,
        id: MessageId,
        tally: &mut Tally,
    ) -> Result<BTreeMap<EntryKind, u64>, StoreError> {
        let mut found = BTreeMap::new();
        for index in self.ledger_entries_about(id.0)? {
            let text = self.ledger_entry(index)?;
            let entry = Entry::parse(&text)
                .map_err(|e| StoreError::Corrupt(format!("ledger entry {index}: {e}")))?;
            tally.entries += 1;
            *found.entry(entry.kind).or_insert(0) += 1;
        }
        Ok(found)
    }

    /// The stored object of `record`, opened and checked against the record's size and SHA-256
    /// (read through once, streaming), and rewound: what is sent or released is the same open
    /// object that was checked. `Err(problem)` inside says why it cannot be used; the outer
    /// error is the store failing.
    pub fn checked_object(
        &self,
        record: &Record,
    ) -> Result<Result<ObjectReader, Problem>, StoreError> {
        let recorded = match record.sealed_digest() {
            Ok(digest) => digest,
            Err(e) => {
                return Ok(Err(Problem::Record {
                    error: e.to_string(),
                }))
            }
        };
        let mut object = match self.sized_object(record)? {
            Ok(object) => object,
            Err(problem) => return Ok(Err(problem)),
        };
        let digest = match sha256_of(&mut object) {
            Ok(digest) => digest,
            Err(e) => return Ok(Err(unreadable(e))),
        };
        if digest != recorded {
            return Ok(Err(Problem::Digest {
                recorded: record.sealed_sha256.clone(),
                found: hex::encode(&digest),
            }));
        }
        match object.seek(SeekFrom::Start(0)) {
            Ok(_) => Ok(Ok(object)),
            Err(e) => Ok(Err(unreadable(e))),
        }
    }

    /// The stored object of `record`, opened where the record's size says it is kept and of that
    /// size, at its start; not hashed (for a sender that hashes what it streams).
    pub fn sized_object(
        &self,
        record: &Record,
    ) -> Result<Result<ObjectReader, Problem>, StoreError> {
        let mut object = match self.object_as_recorded(record)? {
            Ok(object) => object,
            Err(problem) => return Ok(Err(problem)),
        };
        let found = match object.seek(SeekFrom::End(0)) {
            Ok(len) => len,
            Err(e) => return Ok(Err(unreadable(e))),
        };
        if found != record.size {
            return Ok(Err(Problem::Size {
                recorded: record.size,
                found,
            }));
        }
        match object.seek(SeekFrom::Start(0)) {
            Ok(_) => Ok(Ok(object)),
            Err(e) => Ok(Err(unreadable(e))),
        }
    }

    /// The object of `record` where the record's size says it is kept.
    fn object_as_recorded(
        &self,
        record: &Record,
    ) -> Result<Result<ObjectReader, Problem>, StoreError> {
        if is_inline(record.size) {
            return Ok(match self.objects.get(record.id.0)? {
                Some(bytes) => Ok(ObjectReader::Inline(io::Cursor::new(bytes))),
                None => Err(Problem::Missing),
            });
        }
        Ok(match File::open(self.object_path(record.id)) {
            Ok(file) => Ok(ObjectReader::File(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Problem::Missing),
            Err(e) => Err(Problem::Unreadable {
                error: e.to_string(),
            }),
        })
    }

    /// Spool files and small objects whose record is not (or no longer) there.
    fn orphans(&self) -> Result<Vec<Orphan>, StoreError> {
        let mut out = Vec::new();
        let dir = self.spool.join("objects");
        for entry in fs::read_dir(&dir).map_err(io_error("reading the spool"))? {
            let entry = entry.map_err(io_error("reading the spool"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name
                .strip_suffix(".p7m")
                .and_then(|stem| MessageId::try_from(stem.to_owned()).ok());
            let recorded = match id {
                Some(id) => self.dispatches.contains_key(id.0)?,
                None => false,
            };
            if !recorded {
                let size = entry.metadata().map_or(0, |m| m.len());
                out.push(Orphan {
                    place: "spool".into(),
                    name,
                    size,
                });
            }
        }
        for kv in self.objects.iter() {
            let (id, bytes) = kv?;
            if !self.dispatches.contains_key(&id)? {
                out.push(Orphan {
                    place: "store".into(),
                    name: hex::encode(&id),
                    size: bytes.len() as u64,
                });
            }
        }
        out.sort_by(|a, b| (&a.place, &a.name).cmp(&(&b.place, &b.name)));
        Ok(out)
    }
}

/// The entries the record's direction and state imply (besides `failed`-or-`notice` for a
/// failed one and a `notice` per notice seen, checked apart).
fn expected_entries(record: &Record) -> Vec<EntryKind> {
    let mut out = match record.direction {
        Direction::Outgoing => vec![EntryKind::Submitted],
        Direction::Incoming => vec![EntryKind::Received],
        Direction::Relayed => vec![EntryKind::Received, EntryKind::Relayed],
    };
    match record.state {
        DispatchState::Sent { .. } => out.push(EntryKind::Sent),
        DispatchState::Registered => out.push(EntryKind::Registered),
        // Kept aside is refused to its sender in the same transaction (its object stays).
        DispatchState::Refused { .. } | DispatchState::KeptAside { .. } => {
            out.push(EntryKind::Refused);
        }
        DispatchState::Queued
        | DispatchState::Failed { .. }
        | DispatchState::Received
        | DispatchState::Applied => {}
    }
    if record.delivery_receipt.is_some() {
        out.push(EntryKind::Receipt);
    }
    out
}

fn unreadable(e: io::Error) -> Problem {
    Problem::Unreadable {
        error: e.to_string(),
    }
}

/// SHA-256 of everything `reader` yields from where it stands, read in bounded pieces.
pub(crate) fn sha256_of(reader: &mut impl Read) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_BUFFER];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use vdx_protocol::ledger::Actor;
    use vdx_protocol::wire::Offer;

    use super::super::tests::{dispatch, peer, receive_whole};
    use super::*;
    use crate::testkit::example_header as header;

    /// A store holding: an outgoing small (1) and large (2) dispatch, a large incoming one
    /// registered (3), a small incoming one refused (4), and a small incoming one received (5).
    fn store_with_everything(dir: &std::path::Path) -> Store {
        let store = Store::open(dir).unwrap();
        for (n, len) in [(1u8, 1000usize), (2, 100_000)] {
            let body = vec![n; len];
            store.submit(&dispatch(n, 0, &body), &body[..], 5).unwrap();
        }
        let incoming = |n: u8, len: usize| {
            let body: Vec<u8> = (0..len).map(|i| (i as u8) ^ n).collect();
            let offer = Offer {
                size: len as u64,
                ..dispatch(n, 0, &body)
            };
            let receiving = receive_whole(&store, &offer, &body);
            store
                .complete_incoming(&offer, receiving, 6, &peer())
                .unwrap();
            MessageId(offer.id)
        };
        let registered = incoming(3, 200_000);
        store.register(registered, &header(), 2026, &[], 7).unwrap();
        let refused = incoming(4, 500);
        store.refuse(refused, "test".into()).unwrap();
        incoming(5, 700);
        store
    }

    fn ids(report: &CheckReport) -> Vec<(String, Vec<Problem>)> {
        report
            .damaged
            .iter()
            .map(|d| (d.id.clone(), d.problems.clone()))
            .collect()
    }

    #[test]
    fn an_intact_store_has_no_damage_and_every_object_is_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_everything(dir.path());
        let report = store.check().unwrap();
        assert_eq!(ids(&report), vec![]);
        assert!(!report.is_damaged());
        assert_eq!(report.records, 5);
        assert_eq!(report.objects, 4, "the refused object is not expected");
        assert_eq!(report.bytes, 1000 + 100_000 + 200_000 + 700);
        assert!(report.entries >= 7, "{report:?}");
        assert!(report.orphans.is_empty());
        // The audit entry names the check.
        let event = report.event(Actor::User(7));
        assert_eq!(event.fields["query"], "check");
        assert_eq!(event.fields["damaged"], "0");
    }

    #[test]
    fn deleted_changed_and_cut_objects_and_missing_entries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_everything(dir.path());
        let id = |n: u8| MessageId([n; 16]);
        // Outgoing large: deleted. Incoming large: one byte changed. Small outgoing: gone from
        // the tree. Small incoming: its `received` entry's index gone.
        fs::remove_file(store.object_path(id(2))).unwrap();
        let path = store.object_path(id(3));
        let original = fs::read(&path).unwrap();
        let mut bytes = original.clone();
        bytes[150_000] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        store.objects.remove(id(1).0).unwrap();
        let mut about = vec![b'i'];
        about.extend_from_slice(&id(5).0);
        for key in store.ledger.scan_prefix(&about).keys() {
            store.ledger.remove(key.unwrap()).unwrap();
        }
        // An object without a record is listed apart, not as damage.
        fs::File::create(store.object_path(id(9)))
            .unwrap()
            .write_all(b"orphan")
            .unwrap();

        let report = store.check().unwrap();
        let damaged = ids(&report);
        assert_eq!(damaged.len(), 4, "{damaged:?}");
        assert_eq!(damaged[0], (id(1).to_string(), vec![Problem::Missing]));
        assert_eq!(damaged[1], (id(2).to_string(), vec![Problem::Missing]));
        assert!(
            matches!(&damaged[2].1[..], [Problem::Digest { recorded, found }]
                if *recorded == hex::encode(&Sha256::digest(&original))
                    && *found == hex::encode(&Sha256::digest(&bytes))),
            "{damaged:?}"
        );
        assert_eq!(
            damaged[3],
            (
                id(5).to_string(),
                vec![Problem::LedgerEntryMissing {
                    entry: "received".into()
                }]
            )
        );
        let incoming = &report.damaged[2];
        assert_eq!(incoming.direction, Some(Direction::Incoming));
        assert_eq!(incoming.status.as_deref(), Some("registered"));
        assert_eq!(incoming.peer(), Some("000.00.00.G22"));
        assert_eq!(report.damaged[1].peer(), Some("000.00.00.H41"));
        assert_eq!(
            report.orphans,
            vec![Orphan {
                place: "spool".into(),
                name: format!("{}.p7m", id(9)),
                size: 6,
            }]
        );

        // Cut short: a size mismatch, found without hashing.
        let cut = fs::OpenOptions::new().write(true).open(&path).unwrap();
        cut.set_len(1000).unwrap();
        let record = store.get(id(3)).unwrap().unwrap();
        assert_eq!(
            store.checked_object(&record).unwrap().err(),
            Some(Problem::Size {
                recorded: 200_000,
                found: 1000
            })
        );
        assert!(report.event(Actor::User(7)).fields["ids"].contains(&id(2).to_string()));
    }

    #[test]
    fn a_checked_object_is_returned_rewound_with_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_everything(dir.path());
        for (n, len) in [(1u8, 1000usize), (2, 100_000)] {
            let record = store.get(MessageId([n; 16])).unwrap().unwrap();
            let mut object = store.checked_object(&record).unwrap().unwrap();
            let mut bytes = Vec::new();
            object.read_to_end(&mut bytes).unwrap();
            assert_eq!(bytes, vec![n; len]);
        }
    }

    #[test]
    fn problems_read_as_sentences() {
        assert_eq!(Problem::Missing.to_string(), "object missing");
        assert_eq!(
            Problem::Size {
                recorded: 10,
                found: 3
            }
            .to_string(),
            "size mismatch: 3 bytes, 10 recorded"
        );
        assert!(Problem::Digest {
            recorded: "aa".into(),
            found: "bb".into()
        }
        .to_string()
        .starts_with("digest mismatch"));
        assert!(!Problem::LedgerEntryMissing {
            entry: "sent".into()
        }
        .is_object());
        let json = serde_json::to_value(Problem::Missing).unwrap();
        assert_eq!(json["problem"], "missing");
    }
}
