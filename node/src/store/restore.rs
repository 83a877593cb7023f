//! A store put back to an older state — an old backup restored, or damage that sled's recovery
//! silently truncates — must not carry on as if nothing happened: it would number incoming
//! dispatches again with numbers already issued, and send replies a second time. Two witnesses
//! know better than the store itself (format: `docs/ledger.md`, "Restores"):
//!
//! - the **anchor**, a small file the node keeps outside the store (`[store] anchor`): the size
//!   and root of its latest checkpoint, written at most once a second, and the incoming numbers
//!   reserved ahead of their use, written *before* any of them is issued;
//! - its **peers**, who hold the checkpoints it signed (they travel in its receipts) and hand
//!   the newest back when asked (HELD/NOTE, `docs/wire-frames.md`).
//!
//! When either knows a longer ledger, or another root at a size the store has, the store keeps a
//! [`Restored`] notice: the node stops numbering and sending until an admin acknowledges it
//! ([`Store::acknowledge_restore`]), which resumes every incoming-number series above anything
//! that may have been issued and records the event in the ledger.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sled::transaction::Transactional;
use vdx_protocol::hex;
use vdx_protocol::ledger::{Actor, Checkpoint, EntryKind};

use super::{io_error, ledger, transaction_error, Event, Store, StoreError};

/// Incoming numbers reserved at a time: the anchor is written once per this many numbers.
const RESERVE: u64 = 16;
/// The anchor's ledger part is written at most this often.
const ANCHOR_EVERY: Duration = Duration::from_secs(1);
/// The key of the notice in the tree "guard".
const NOTICE: &[u8] = b"restored";
/// The key of the largest size of an acknowledged older history.
const ACKNOWLEDGED: &[u8] = b"acknowledged_until";

/// What the node knew of its store before it was restored, and who knew it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// The anchor file or the peer that knew more.
    pub noticed_by: String,
    /// Entries the ledger had (at least).
    pub known_size: u64,
    /// Entries the store's ledger had when it was noticed.
    pub found_size: u64,
    /// The store has `known_size` entries or more, but other ones: a rewritten history.
    pub forked: bool,
    /// Unix seconds when it was noticed.
    pub noticed_at: u64,
}

impl Restored {
    /// The finding in words, for the operator.
    pub fn describe(&self) -> String {
        if self.forked {
            format!(
                "the store's ledger is not the one {} knew at {} entries: it was replaced or rewritten",
                self.noticed_by, self.known_size
            )
        } else {
            format!(
                "the store was restored from an older copy: {} knew a ledger of {} entries, the store has {}",
                self.noticed_by, self.known_size, self.found_size
            )
        }
    }
}

/// What acknowledging a restore did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Acknowledged {
    /// The notice acknowledged.
    pub restored: Restored,
    /// Each incoming-number series ("YEAR/regular", "YEAR/classified") and the next number it
    /// issues now.
    pub next_numbers: BTreeMap<String, u64>,
}

/// The anchor file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorFile {
    version: u32,
    /// Entries of the latest checkpoint.
    size: u64,
    /// Its root, hex.
    root: String,
    /// Per series, the highest incoming number that may have been issued.
    reserved: BTreeMap<String, u64>,
}

/// The anchor: its path and what was last written to it.
pub(super) struct Anchor {
    path: PathBuf,
    state: Mutex<(AnchorFile, Option<Instant>)>,
}

impl Anchor {
    fn write(&self, content: &AnchorFile) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(content)
            .map_err(|e| StoreError::Corrupt(format!("anchor: {e}")))?;
        let temp = self.path.with_extension("partial");
        let mut file = fs::File::create(&temp).map_err(io_error("writing the anchor"))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(io_error("writing the anchor"))?;
        fs::rename(&temp, &self.path).map_err(io_error("writing the anchor"))?;
        if let Some(dir) = self.path.parent() {
            super::sync_dir(dir)?;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (AnchorFile, Option<Instant>)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store {
    /// Keeps an anchor at `path` (outside the store) and compares the store with it: a store
    /// older than its anchor gets a [`Restored`] notice. A missing anchor is written afresh.
    pub fn anchor_at(mut self, path: &Path, now: u64) -> Result<Self, StoreError> {
        let size = self.ledger_size()?;
        let found = match fs::read(path) {
            Ok(bytes) => Some(serde_json::from_slice::<AnchorFile>(&bytes).map_err(|e| {
                StoreError::Corrupt(format!("the anchor {} does not parse: {e}", path.display()))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error("reading the anchor")(e)),
        };
        let anchor = Anchor {
            path: path.to_owned(),
            state: Mutex::new((AnchorFile::default(), None)),
        };
        let mut current = AnchorFile {
            version: 1,
            size,
            root: hex::encode(&self.ledger_root(size)?),
            reserved: self.counters()?,
        };
        if let Some(old) = found {
            let noticed_by = format!("the anchor file {}", path.display());
            if let Some(restored) = self.compare(&noticed_by, old.size, &old.root, now)? {
                self.notice_restore(&restored)?;
            }
            for (series, number) in old.reserved {
                let kept = current.reserved.entry(series).or_default();
                *kept = (*kept).max(number);
            }
        }
        if self.restored()?.is_none() {
            anchor.write(&current)?;
        }
        *anchor.lock() = (current, None);
        self.anchor = Some(anchor);
        Ok(self)
    }

    /// `None` if a ledger of `size` entries with root `root_hex` (as `who` knew it) is this
    /// store's ledger or a prefix of it; else what it shows, noticed at `now` (Unix seconds).
    fn compare(
        &self,
        who: &str,
        size: u64,
        root_hex: &str,
        now: u64,
    ) -> Result<Option<Restored>, StoreError> {
        let acknowledged = self
            .guard
            .get(ACKNOWLEDGED)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        if size <= acknowledged {
            // Part of the older history an admin has already acknowledged.
            return Ok(None);
        }
        let have = self.ledger_size()?;
        let forked = size <= have && hex::encode(&self.ledger_root(size)?) != root_hex;
        if size <= have && !forked {
            return Ok(None);
        }
        Ok(Some(Restored {
            noticed_by: who.to_owned(),
            known_size: size,
            found_size: have,
            forked,
            noticed_at: now,
        }))
    }

    /// Compares one of our own checkpoints that `peer` held with the store; a newer or other
    /// history is kept as a [`Restored`] notice (returned).
    pub fn check_own_checkpoint(
        &self,
        peer: &str,
        checkpoint: &Checkpoint,
        now: u64,
    ) -> Result<Option<Restored>, StoreError> {
        let restored = self.compare(
            &format!("peer {peer}"),
            checkpoint.size,
            &hex::encode(&checkpoint.root),
            now,
        )?;
        if let Some(restored) = &restored {
            self.notice_restore(restored)?;
        }
        Ok(restored)
    }

    /// Keeps `restored` (durably), unless a notice that knew as much is kept already.
    fn notice_restore(&self, restored: &Restored) -> Result<(), StoreError> {
        if let Some(kept) = self.restored()? {
            if kept.known_size >= restored.known_size {
                return Ok(());
            }
        }
        let value = serde_json::to_vec(restored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.guard.insert(NOTICE, value)?;
        self.sync()
    }

    /// The restore noticed and not yet acknowledged, if any: while there is one, the node
    /// numbers nothing and sends nothing.
    pub fn restored(&self) -> Result<Option<Restored>, StoreError> {
        self.guard
            .get(NOTICE)?
            .map(|v| {
                serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Corrupt(format!("the restore notice: {e}")))
            })
            .transpose()
    }

    /// An admin has looked at the restore: every incoming-number series resumes above whatever
    /// may have been issued — the anchor's reservations, and one number per ledger entry lost
    /// (each entry registers at most one) — the event is recorded in the ledger, and the node
    /// numbers and sends again. `None` if there was nothing to acknowledge.
    pub fn acknowledge_restore(&self, by: Actor) -> Result<Option<Acknowledged>, StoreError> {
        let Some(restored) = self.restored()? else {
            return Ok(None);
        };
        let lost = restored.known_size.saturating_sub(restored.found_size);
        let reserved = self
            .anchor
            .as_ref()
            .map(|a| a.lock().0.reserved.clone())
            .unwrap_or_default();
        let mut next_numbers = BTreeMap::new();
        for (series, issued) in self.counters()? {
            let floor = reserved.get(&series).copied().unwrap_or(0);
            next_numbers.insert(series, issued.max(floor).max(issued + lost) + 1);
        }
        for (series, floor) in &reserved {
            next_numbers
                .entry(series.clone())
                .or_insert((*floor).max(lost) + 1);
        }
        let mut event = Event::new(EntryKind::Config, None, by)
            .field("what", "restore acknowledged")
            .field("noticed-by", &restored.noticed_by)
            .field("known-size", restored.known_size)
            .field("found-size", restored.found_size);
        for (series, next) in &next_numbers {
            event = event.field(&format!("next-{}", series.replace('/', "-")), next);
        }
        (&self.counters, &self.guard, &self.ledger)
            .transaction(|(counters, guard, ledger)| {
                for (series, next) in &next_numbers {
                    counters.insert(series.as_bytes(), &(next - 1).to_be_bytes())?;
                }
                guard.remove(NOTICE)?;
                guard.insert(ACKNOWLEDGED, &restored.known_size.to_be_bytes())?;
                ledger::append(ledger, &event)?;
                Ok(())
            })
            .map_err(transaction_error)?;
        self.sync()?;
        if let Some(anchor) = &self.anchor {
            let size = self.durable_ledger_size();
            let mut state = anchor.lock();
            state.0.size = size;
            state.0.root = hex::encode(&self.ledger_root(size)?);
            for (series, next) in &next_numbers {
                state.0.reserved.insert(series.clone(), next - 1);
            }
            anchor.write(&state.0)?;
            state.1 = Some(Instant::now());
        }
        Ok(Some(Acknowledged {
            restored,
            next_numbers,
        }))
    }

    /// Before number `next` of `series` is issued: reserves a block in the anchor first, so that
    /// no restore can make the node issue it again.
    pub(super) fn reserve_number(&self, series: &str, next: u64) -> Result<(), StoreError> {
        let Some(anchor) = &self.anchor else {
            return Ok(());
        };
        let mut state = anchor.lock();
        if state.0.reserved.get(series).copied().unwrap_or(0) >= next {
            return Ok(());
        }
        state
            .0
            .reserved
            .insert(series.to_owned(), next + RESERVE - 1);
        anchor.write(&state.0)
    }

    /// After a checkpoint of `size` entries with `root`: the anchor follows (at most once a
    /// second unless `now`; never while a restore waits for its acknowledgement, so that it
    /// stays evidence).
    pub(super) fn anchor_checkpoint(
        &self,
        size: u64,
        root: &[u8; 32],
        now: bool,
    ) -> Result<(), StoreError> {
        let Some(anchor) = &self.anchor else {
            return Ok(());
        };
        let mut state = anchor.lock();
        let recent = state.1.is_some_and(|at| at.elapsed() < ANCHOR_EVERY);
        if state.0.size >= size || (recent && !now) {
            return Ok(());
        }
        if self.guard.contains_key(NOTICE)? {
            return Ok(());
        }
        state.0.size = size;
        state.0.root = hex::encode(root);
        anchor.write(&state.0)?;
        state.1 = Some(Instant::now());
        Ok(())
    }

    /// Brings the anchor up to the latest checkpoint now (at a clean stop).
    pub fn anchor_latest(&self) -> Result<(), StoreError> {
        if let Some((size, _)) = self.latest_checkpoint()? {
            self.anchor_checkpoint(size, &self.ledger_root(size)?, true)?;
        }
        Ok(())
    }

    /// The last number issued in each series.
    fn counters(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.counters.iter() {
            let (k, v) = item?;
            let (Ok(series), Ok(n)) = (
                String::from_utf8(k.to_vec()),
                <[u8; 8]>::try_from(v.as_ref()),
            ) else {
                return Err(StoreError::Corrupt("an incoming-number counter".into()));
            };
            out.insert(series, u64::from_be_bytes(n));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event::new(EntryKind::Config, None, Actor::Node).field("what", format!("change {n}"))
    }

    fn sign(c: &Checkpoint) -> Result<String, std::convert::Infallible> {
        Ok(format!("{}\n{}\n-\n", c.origin, c.size))
    }

    #[test]
    fn a_store_older_than_its_anchor_or_a_peer_halts_until_acknowledged_past_every_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let anchor = dir.path().join("anchor.json");
        let (old, new) = (dir.path().join("old"), dir.path().join("new"));
        // The store grows to 40 entries and reserves numbers 1..=16 of a series.
        let store = Store::open(&new).unwrap().anchor_at(&anchor, 1).unwrap();
        for n in 0..40 {
            store.record(&event(n)).unwrap();
        }
        store.reserve_number("2026/regular", 1).unwrap();
        store.checkpoint("vdx/test", sign).unwrap();
        store.anchor_latest().unwrap();
        let root_at_40 = store.ledger_root(40).unwrap();
        assert!(store.restored().unwrap().is_none());
        drop(store);

        // A store holding 10 other entries is opened against that anchor: a restore.
        let restored = Store::open(&old).unwrap();
        for n in 0..10 {
            restored.record(&event(100 + n)).unwrap();
        }
        let store = restored.anchor_at(&anchor, 1).unwrap();
        let noticed = store.restored().unwrap().unwrap();
        assert_eq!((noticed.known_size, noticed.found_size), (40, 10));
        assert_eq!(noticed.noticed_at, 1, "at the time it was handed");
        assert!(!noticed.forked);
        assert!(
            noticed.describe().contains("anchor"),
            "{}",
            noticed.describe()
        );
        // The anchor is left as it was, as evidence, even after a checkpoint.
        store.checkpoint("vdx/test", sign).unwrap();
        store.anchor_latest().unwrap();
        let kept: AnchorFile = serde_json::from_slice(&fs::read(&anchor).unwrap()).unwrap();
        assert_eq!(kept.size, 40);

        // A peer's checkpoint of the longer history counts as the same finding, not a new one.
        let theirs = Checkpoint {
            origin: "vdx/test".into(),
            size: 30,
            root: root_at_40,
        };
        assert!(store
            .check_own_checkpoint("000.00.00.G22", &theirs, 2)
            .unwrap()
            .is_some());
        assert_eq!(store.restored().unwrap().unwrap().known_size, 40);

        let done = store.acknowledge_restore(Actor::User(0)).unwrap().unwrap();
        // Past the 16 reserved and the 30 entries lost, though the store itself issued none.
        assert_eq!(done.next_numbers["2026/regular"], 31);
        assert!(store.restored().unwrap().is_none());
        assert!(store.acknowledge_restore(Actor::User(0)).unwrap().is_none());
        // The older history is not compared again; a longer unknown one is.
        assert!(store
            .check_own_checkpoint("000.00.00.G22", &theirs, 2)
            .unwrap()
            .is_none());
        let beyond = Checkpoint { size: 41, ..theirs };
        let again = store
            .check_own_checkpoint("000.00.00.G22", &beyond, 2)
            .unwrap()
            .unwrap();
        assert_eq!(again.noticed_by, "peer 000.00.00.G22");
    }

    #[test]
    fn another_history_of_the_same_length_is_a_fork_and_a_prefix_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for n in 0..8 {
            store.record(&event(n)).unwrap();
        }
        let ours = Checkpoint {
            origin: "vdx/test".into(),
            size: 5,
            root: store.ledger_root(5).unwrap(),
        };
        assert!(store
            .check_own_checkpoint("peer", &ours, 2)
            .unwrap()
            .is_none());
        let other = Checkpoint {
            root: [9; 32],
            ..ours
        };
        let fork = store
            .check_own_checkpoint("peer", &other, 2)
            .unwrap()
            .unwrap();
        assert!(fork.forked, "{fork:?}");
        assert!(fork.describe().contains("rewritten"));
    }
}
