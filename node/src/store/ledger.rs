//! The node's ledger (spec: `docs/ledger.md`) inside the store: every state change appends its
//! entry in the same sled transaction, so there is never a change without its entry or an entry
//! without its change. One sled tree, `ledger`, holds:
//!
//! ```text
//! head                          size (u64 BE) ‖ leaf hash of the last entry ‖ its time (i64 BE)
//! e ‖ index (u64 BE)            the entry's canonical text (the Merkle leaf)
//! h ‖ stored-hash index         32-byte tree hashes, numbered as `merkle::stored_hash_index`
//! i ‖ transfer id ‖ index       () — which entries are about a transfer, for proofs
//! c ‖ size (u64 BE)             a checkpoint note this node signed
//! w ‖ origin ‖ 0 ‖ size ‖ root  a peer's checkpoint note seen in its receipts (witnessing)
//! x ‖ origin ‖ 0 ‖ SHA-256      why ‖ 0 ‖ note: a checkpoint in a peer's receipt that did not
//!                               verify, kept as evidence (the receipt itself was accepted)
//! d ‖ what                      digest of a configuration file, to record its changes
//! ```

use std::collections::BTreeMap;

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use time::OffsetDateTime;
use vdx_protocol::ledger::{Actor, Checkpoint, Entry, EntryKind};
use vdx_protocol::merkle::{self, Hash, HashReader, TreeError};

use super::{transaction_error, Store, StoreError};

const HEAD: &[u8] = b"head";

/// A change to record: the store's operations fill in kind, id and fields; the caller says who.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: EntryKind,
    /// The transfer id it is about, if any.
    pub id: Option<[u8; 16]>,
    /// Who caused it.
    pub actor: Actor,
    /// Details (`field NAME VALUE` lines).
    pub fields: BTreeMap<String, String>,
}

impl Event {
    /// An event without fields yet.
    pub fn new(kind: EntryKind, id: Option<[u8; 16]>, actor: Actor) -> Self {
        Self {
            kind,
            id,
            actor,
            fields: BTreeMap::new(),
        }
    }

    /// Adds a field (values are cut to the format's 1024 bytes, on a character boundary).
    pub fn field(mut self, name: &str, value: impl ToString) -> Self {
        let mut value = value.to_string().replace(['\n', '\r'], " ");
        if value.len() > vdx_protocol::ledger::MAX_VALUE {
            let mut cut = vdx_protocol::ledger::MAX_VALUE;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
        }
        if !value.is_empty() {
            self.fields.insert(name.to_owned(), value);
        }
        self
    }
}

/// The ledger's size, last leaf hash and last time.
#[derive(Debug, Clone, Copy, Default)]
struct Head {
    size: u64,
    last_leaf: Hash,
    last_time: i64,
}

impl Head {
    fn decode(bytes: Option<&[u8]>) -> Result<Self, StoreError> {
        let Some(bytes) = bytes else {
            return Ok(Self::default());
        };
        let bytes: &[u8; 48] = bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt("ledger head".into()))?;
        let (size, rest) = bytes.split_at(8);
        let (leaf, time) = rest.split_at(32);
        Ok(Self {
            size: u64::from_be_bytes(size.try_into().unwrap_or_default()),
            last_leaf: leaf.try_into().unwrap_or_default(),
            last_time: i64::from_be_bytes(time.try_into().unwrap_or_default()),
        })
    }

    fn encode(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[..8].copy_from_slice(&self.size.to_be_bytes());
        out[8..40].copy_from_slice(&self.last_leaf);
        out[40..].copy_from_slice(&self.last_time.to_be_bytes());
        out
    }
}

fn key(tag: u8, n: u64) -> [u8; 9] {
    let mut out = [tag; 9];
    out[1..].copy_from_slice(&n.to_be_bytes());
    out
}

fn about_key(id: &[u8; 16], index: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(25);
    out.push(b'i');
    out.extend_from_slice(id);
    out.extend_from_slice(&index.to_be_bytes());
    out
}

fn witness_prefix(origin: &str) -> Vec<u8> {
    prefixed(b'w', origin)
}

/// Where a witnessed checkpoint is kept: by origin, size, then root (so that two roots of one
/// size, a fork, sit side by side).
fn witness_key(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut key = witness_prefix(&checkpoint.origin);
    key.extend_from_slice(&checkpoint.size.to_be_bytes());
    key.extend_from_slice(&checkpoint.root);
    key
}

fn invalid_prefix(origin: &str) -> Vec<u8> {
    prefixed(b'x', origin)
}

fn prefixed(tag: u8, origin: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(origin.len() + 2);
    out.push(tag);
    out.extend_from_slice(origin.as_bytes());
    out.push(0);
    out
}

/// Appends `event` inside a transaction on the ledger tree; returns the entry's index.
pub(super) fn append(
    tx: &TransactionalTree,
    event: &Event,
) -> Result<u64, ConflictableTransactionError<StoreError>> {
    let head =
        Head::decode(tx.get(HEAD)?.as_deref()).map_err(ConflictableTransactionError::Abort)?;
    let now = OffsetDateTime::now_utc()
        .unix_timestamp()
        .max(head.last_time);
    let entry = Entry {
        index: head.size,
        prev: (head.size > 0).then_some(head.last_leaf),
        time: OffsetDateTime::from_unix_timestamp(now).map_err(|_| {
            ConflictableTransactionError::Abort(StoreError::Corrupt("clock".into()))
        })?,
        kind: event.kind,
        id: event.id,
        actor: event.actor.clone(),
        fields: event.fields.clone(),
    };
    let text = entry
        .to_text()
        .map_err(|e| ConflictableTransactionError::Abort(StoreError::Corrupt(e.to_string())))?;
    let leaf = merkle::leaf_hash(text.as_bytes());
    let hashes = merkle::stored_hashes(head.size, &leaf, &TxHashes(tx)).map_err(|e| match e {
        TreeError::Read(e) => e,
        other => ConflictableTransactionError::Abort(StoreError::Corrupt(other.to_string())),
    })?;
    let first = merkle::stored_hash_count(head.size);
    for (n, hash) in hashes.iter().enumerate() {
        tx.insert(&key(b'h', first + n as u64), hash)?;
    }
    tx.insert(&key(b'e', head.size), text.as_bytes())?;
    if let Some(id) = &event.id {
        tx.insert(about_key(id, head.size), &[])?;
    }
    let next = Head {
        size: head.size + 1,
        last_leaf: leaf,
        last_time: now,
    };
    tx.insert(HEAD, &next.encode()[..])?;
    Ok(head.size)
}

/// Stored hashes read inside a transaction.
struct TxHashes<'a>(&'a TransactionalTree);

impl HashReader for TxHashes<'_> {
    type Error = ConflictableTransactionError<StoreError>;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error> {
        indexes
            .iter()
            .map(|&i| {
                let bytes = self.0.get(key(b'h', i))?;
                decode_hash(bytes.as_deref(), i).map_err(ConflictableTransactionError::Abort)
            })
            .collect()
    }
}

/// Stored hashes read outside a transaction (roots and proofs of committed sizes).
struct TreeHashes<'a>(&'a sled::Tree);

impl HashReader for TreeHashes<'_> {
    type Error = StoreError;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        indexes
            .iter()
            .map(|&i| decode_hash(self.0.get(key(b'h', i))?.as_deref(), i))
            .collect()
    }
}

fn decode_hash(bytes: Option<&[u8]>, index: u64) -> Result<Hash, StoreError> {
    bytes
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("ledger hash {index} missing")))
}

fn tree_error(e: TreeError<StoreError>) -> StoreError {
    match e {
        TreeError::Read(e) => e,
        other => StoreError::Ledger(other.to_string()),
    }
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

/// A peer's checkpoint this node has seen, with the note as received.
#[derive(Debug, Clone)]
pub struct Witnessed {
    /// The parsed body.
    pub checkpoint: Checkpoint,
    /// The signed note.
    pub note: Vec<u8>,
}

impl Store {
    /// Entries committed so far (durable or about to be).
    pub fn ledger_size(&self) -> Result<u64, StoreError> {
        Ok(Head::decode(self.ledger.get(HEAD)?.as_deref())?.size)
    }

    /// Entries known to be on disk: the largest size a checkpoint may sign.
    pub fn durable_ledger_size(&self) -> u64 {
        self.commit.durable_ledger_size()
    }

    /// Records an event on its own (a fetch, an audit query, a configuration change) and makes it
    /// durable.
    pub fn record(&self, event: &Event) -> Result<u64, StoreError> {
        let index = self
            .ledger
            .transaction(|tx| append(tx, event))
            .map_err(transaction_error)?;
        self.sync()?;
        Ok(index)
    }

    /// Records a `config` event when the digest of `what` differs from the one last recorded (or
    /// none was): how key, configuration and directory changes made while the daemon was stopped
    /// enter the ledger at its next start. Returns whether it recorded one.
    pub fn record_config(&self, what: &str, sha256_hex: &str) -> Result<bool, StoreError> {
        let mut digest_key = b"d".to_vec();
        digest_key.extend_from_slice(what.as_bytes());
        let changed = self
            .ledger
            .transaction(|tx| {
                if tx.get(&digest_key)?.as_deref() == Some(sha256_hex.as_bytes()) {
                    return Ok(false);
                }
                tx.insert(digest_key.as_slice(), sha256_hex.as_bytes())?;
                let event = Event::new(EntryKind::Config, None, Actor::Node)
                    .field("what", what)
                    .field("sha256", sha256_hex);
                append(tx, &event)?;
                Ok(true)
            })
            .map_err(transaction_error)?;
        if changed {
            self.sync()?;
        }
        Ok(changed)
    }

    /// The entries with indexes in `from..to`, in order.
    pub fn ledger_entries(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<sled::IVec, StoreError>> + '_ {
        self.ledger
            .range(key(b'e', from)..key(b'e', to))
            .map(|kv| Ok(kv?.1))
    }

    /// The indexes of the entries about transfer `id`.
    pub fn ledger_entries_about(&self, id: [u8; 16]) -> Result<Vec<u64>, StoreError> {
        let mut prefix = vec![b'i'];
        prefix.extend_from_slice(&id);
        self.ledger
            .scan_prefix(&prefix)
            .keys()
            .map(|k| {
                let k = k?;
                u64_at(&k, 17).ok_or_else(|| StoreError::Corrupt("ledger index key".into()))
            })
            .collect()
    }

    /// One entry's text.
    pub fn ledger_entry(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        self.ledger
            .get(key(b'e', index))?
            .map(|v| v.to_vec())
            .ok_or_else(|| StoreError::Ledger(format!("no entry {index}")))
    }

    /// The Merkle root of the first `size` entries.
    pub fn ledger_root(&self, size: u64) -> Result<Hash, StoreError> {
        self.check_size(size)?;
        merkle::tree_root(size, &TreeHashes(&self.ledger)).map_err(tree_error)
    }

    /// The audit path of entry `index` in the tree of `size` entries (RFC 9162 §2.1.3).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(size)?;
        merkle::prove_inclusion(index, size, &TreeHashes(&self.ledger)).map_err(tree_error)
    }

    /// The consistency proof between sizes `old ≤ new` (RFC 9162 §2.1.4).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(new)?;
        merkle::prove_consistency(old, new, &TreeHashes(&self.ledger)).map_err(tree_error)
    }

    /// The roots of the perfect subtrees that make up the first `size` entries, left to right:
    /// what a bundle starting at `size` needs to recompute roots of later sizes.
    pub fn ledger_prefix(&self, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(size)?;
        merkle::compact_range(size, &TreeHashes(&self.ledger)).map_err(tree_error)
    }

    fn check_size(&self, size: u64) -> Result<(), StoreError> {
        let have = self.ledger_size()?;
        if size > have {
            return Err(StoreError::Ledger(format!(
                "the ledger has {have} entries, not {size}"
            )));
        }
        Ok(())
    }

    /// A signed checkpoint of the durable ledger: the one already signed at that size, else a new
    /// one made by `sign` (and kept). Checkpoints never cover entries a crash could still lose,
    /// so a peer holding one can never mistake a crash for a rewritten history.
    pub fn checkpoint<E>(
        &self,
        origin: &str,
        sign: impl FnOnce(&Checkpoint) -> Result<String, E>,
    ) -> Result<Vec<u8>, CheckpointError<E>> {
        self.checkpoint_at(origin, self.durable_ledger_size(), sign)
    }

    /// A signed checkpoint of the first `size` entries, which must be on disk (see
    /// [`Store::checkpoint`]).
    pub fn checkpoint_at<E>(
        &self,
        origin: &str,
        size: u64,
        sign: impl FnOnce(&Checkpoint) -> Result<String, E>,
    ) -> Result<Vec<u8>, CheckpointError<E>> {
        let durable = self.durable_ledger_size();
        if size > durable {
            return Err(
                StoreError::Ledger(format!("{size} entries asked, {durable} are on disk")).into(),
            );
        }
        if let Some(note) = self.ledger.get(key(b'c', size))? {
            return Ok(note.to_vec());
        }
        let checkpoint = Checkpoint {
            origin: origin.to_owned(),
            size,
            root: self.ledger_root(size)?,
        };
        let note = sign(&checkpoint).map_err(CheckpointError::Sign)?;
        // Two callers may sign the same size at once: the first kept is the one handed out.
        match self.ledger.compare_and_swap(
            key(b'c', size),
            None as Option<&[u8]>,
            Some(note.as_bytes()),
        )? {
            Ok(()) => {
                self.anchor_checkpoint(size, &checkpoint.root, false)?;
                Ok(note.into_bytes())
            }
            Err(current) => Ok(current.current.map_or_else(Vec::new, |c| c.to_vec())),
        }
    }

    /// The newest checkpoint this node signed, and its size.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let last = self
            .ledger
            .range(key(b'c', 0)..=key(b'c', u64::MAX))
            .next_back();
        last.map(|kv| {
            let (k, v) = kv?;
            let size = u64_at(&k, 1).ok_or_else(|| StoreError::Corrupt("checkpoint key".into()))?;
            Ok((size, v.to_vec()))
        })
        .transpose()
    }

    /// The checkpoints this node signed with sizes in `from..=to`, smallest first.
    pub fn checkpoints(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.ledger
            .range(key(b'c', from)..=key(b'c', to))
            .map(|kv| {
                let (k, v) = kv?;
                let size =
                    u64_at(&k, 1).ok_or_else(|| StoreError::Corrupt("checkpoint key".into()))?;
                Ok((size, v.to_vec()))
            })
            .collect()
    }

    /// Whether this exact note of `origin` was kept by [`Store::witness`]: it was verified then,
    /// so the same bytes need neither a verification nor a write again (receipts carry the same
    /// checkpoint for a while).
    pub fn has_witnessed(&self, origin: &str, note: &[u8]) -> Result<bool, StoreError> {
        let Ok((checkpoint, _)) = Checkpoint::parse_note(note) else {
            return Ok(false);
        };
        if checkpoint.origin != origin {
            return Ok(false);
        }
        Ok(self
            .ledger
            .get(witness_key(&checkpoint))?
            .is_some_and(|kept| kept == note))
    }

    /// Keeps a peer's checkpoint (already verified against its certificate). Returns the
    /// checkpoints of the same origin and size with another root: non-empty means the peer has
    /// shown two histories (a fork), and both are kept as evidence.
    pub fn witness(&self, seen: &Witnessed) -> Result<Vec<Witnessed>, StoreError> {
        let key = witness_key(&seen.checkpoint);
        let prefix = &key[..key.len() - seen.checkpoint.root.len()];
        let mut conflicting = Vec::new();
        for kv in self.ledger.scan_prefix(prefix) {
            let (k, note) = kv?;
            if k != key {
                conflicting.push(parse_witnessed(&note)?);
            }
        }
        self.ledger.insert(key, seen.note.as_slice())?;
        Ok(conflicting)
    }

    /// Keeps a checkpoint note from a verified receipt of `origin`'s agency that did not verify
    /// (`why`), as evidence for the witness report: the receipt moved custody and is kept, but a
    /// peer signing bad checkpoints is something an officer must see. The same note is kept once.
    pub fn keep_invalid_checkpoint(
        &self,
        origin: &str,
        why: &str,
        note: &[u8],
    ) -> Result<(), StoreError> {
        use sha2::Digest as _;
        let mut key = invalid_prefix(origin);
        key.extend_from_slice(&sha2::Sha256::digest(note));
        let mut value = why.replace('\0', " ").into_bytes();
        value.push(0);
        value.extend_from_slice(note);
        self.ledger.insert(key, value)?;
        Ok(())
    }

    /// Every invalid peer checkpoint kept, by origin: why it did not verify.
    pub fn invalid_checkpoints(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for kv in self.ledger.scan_prefix(b"x") {
            let (key, value) = kv?;
            let origin = key[1..]
                .split(|&b| b == 0)
                .next()
                .map(|o| String::from_utf8_lossy(o).into_owned())
                .unwrap_or_default();
            let why = value.split(|&b| b == 0).next().unwrap_or_default();
            out.entry(origin)
                .or_default()
                .push(String::from_utf8_lossy(why).into_owned());
        }
        Ok(out)
    }

    /// Drops a peer checkpoint that a larger one of the same peer was proven to extend: the larger
    /// one is the evidence from now on, so the witness check only ever proves what is new.
    pub fn forget_witnessed(&self, seen: &Checkpoint) -> Result<(), StoreError> {
        let mut key = witness_prefix(&seen.origin);
        key.extend_from_slice(&seen.size.to_be_bytes());
        key.extend_from_slice(&seen.root);
        self.ledger.remove(key)?;
        Ok(())
    }

    /// The largest checkpoint of `origin` kept here (its note): what this node answers when that
    /// peer asks which of its checkpoints we hold (HELD).
    pub fn newest_witnessed(&self, origin: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.ledger.scan_prefix(witness_prefix(origin)).next_back() {
            Some(kv) => Ok(Some(kv?.1.to_vec())),
            None => Ok(None),
        }
    }

    /// Up to `limit` origins whose checkpoints are kept, from the keys alone (one read per origin,
    /// nothing parsed): the peers to compare checkpoints with at start.
    pub fn witnessed_origins(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut origins = Vec::new();
        let mut from = vec![b'w'];
        while origins.len() < limit {
            let Some(kv) = self.ledger.range(from.as_slice()..).next() else {
                break;
            };
            let (key, _) = kv?;
            let Some(origin) = key
                .strip_prefix(b"w")
                .and_then(|rest| rest.split(|&b| b == 0).next())
            else {
                break;
            };
            // Past every key of this origin: its prefix with the 0 that ends it raised to 1.
            from = prefixed(b'w', &String::from_utf8_lossy(origin));
            if let Some(last) = from.last_mut() {
                *last = 1;
            }
            origins.push(String::from_utf8_lossy(origin).into_owned());
        }
        Ok(origins)
    }

    /// Every peer checkpoint kept, by origin, smallest size first.
    pub fn witnessed(&self) -> Result<BTreeMap<String, Vec<Witnessed>>, StoreError> {
        let mut out: BTreeMap<String, Vec<Witnessed>> = BTreeMap::new();
        for kv in self.ledger.scan_prefix(b"w") {
            let (_, note) = kv?;
            let seen = parse_witnessed(&note)?;
            out.entry(seen.checkpoint.origin.clone())
                .or_default()
                .push(seen);
        }
        Ok(out)
    }

    /// Makes every committed change durable, sharing the flush with concurrent callers.
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        self.commit.sync(&self.db, || self.ledger_size())
    }
}

fn parse_witnessed(note: &[u8]) -> Result<Witnessed, StoreError> {
    let (checkpoint, _) = Checkpoint::parse_note(note)
        .map_err(|e| StoreError::Corrupt(format!("witnessed checkpoint: {e}")))?;
    Ok(Witnessed {
        checkpoint,
        note: note.to_vec(),
    })
}

/// Why a checkpoint could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError<E> {
    /// Reading the ledger.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing.
    #[error("signing a checkpoint: {0}")]
    Sign(E),
}

impl<E> From<sled::Error> for CheckpointError<E> {
    fn from(e: sled::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Where the group commit starts: the ledger's size at open is on disk.
pub(super) fn size_at_open(tree: &sled::Tree) -> Result<u64, StoreError> {
    Ok(Head::decode(tree.get(HEAD)?.as_deref())?.size)
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};
    use vdx_protocol::wire::{ObjectKind, Offer};

    use super::*;
    use crate::store::MessageId;

    fn offer(n: u8) -> (Offer, Vec<u8>) {
        let body = vec![n; 64];
        let offer = Offer {
            id: [n; 16],
            from: "000.00.00.G22".parse().unwrap(),
            to: "000.00.00.H41".parse().unwrap(),
            size: body.len() as u64,
            sealed_sha256: Sha256::digest(&body).into(),
            urgency: 0,
            expires: 0,
            kind: ObjectKind::Dispatch,
            hops: 0,
        };
        (offer, body)
    }

    /// A note with a made-up signature: the store keeps notes, it does not check them.
    fn fake_sign(c: &Checkpoint) -> Result<String, std::convert::Infallible> {
        Ok(c.note(&[vdx_protocol::ledger::NoteSignature {
            name: c.origin.clone(),
            key_id: [1, 2, 3, 4],
            signature: vec![5; 8],
        }]))
    }

    #[test]
    fn every_state_change_appends_a_chained_entry_that_the_tree_covers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let peer: vdx_protocol::OrganCode = "000.00.00.H41".parse().unwrap();
        for n in 1..=5u8 {
            let (o, body) = offer(n);
            store.submit(&o, &body[..], 1).unwrap();
            store
                .mark_sent(MessageId(o.id), b"receipt".to_vec(), &peer)
                .unwrap();
        }
        let (o, _) = offer(3);
        store
            .record(
                &Event::new(EntryKind::Fetched, Some(o.id), Actor::User(1000))
                    .field("role", "clerk"),
            )
            .unwrap();
        assert_eq!(store.ledger_size().unwrap(), 11);
        assert_eq!(store.durable_ledger_size(), 11);

        let entries: Vec<Vec<u8>> = store
            .ledger_entries(0, 11)
            .map(|e| e.unwrap().to_vec())
            .collect();
        let mut leaves = Vec::new();
        for (i, bytes) in entries.iter().enumerate() {
            let entry = Entry::parse(bytes).unwrap();
            assert_eq!(entry.index, i as u64);
            assert_eq!(entry.prev, leaves.last().copied());
            let expected = if i == 10 {
                EntryKind::Fetched
            } else if i % 2 == 0 {
                EntryKind::Submitted
            } else {
                EntryKind::Sent
            };
            assert_eq!(entry.kind, expected, "entry {i}");
            leaves.push(merkle::leaf_hash(bytes));
        }
        // The stored tree agrees with a tree built from the leaves alone, at every size.
        for size in 0..=11u64 {
            assert_eq!(
                store.ledger_root(size).unwrap(),
                reference_root(&leaves[..size as usize]),
                "size {size}"
            );
        }
        let root = store.ledger_root(11).unwrap();
        for index in 0..11 {
            let proof = store.inclusion_proof(index, 11).unwrap();
            merkle::verify_inclusion(&leaves[index as usize], index, 11, &proof, &root).unwrap();
        }
        let proof = store.consistency_proof(4, 11).unwrap();
        merkle::verify_consistency(4, 11, &proof, &store.ledger_root(4).unwrap(), &root).unwrap();
        assert_eq!(store.ledger_entries_about(o.id).unwrap(), vec![4, 5, 10]);
        assert!(store.ledger_root(12).is_err());

        // The prefix hashes of a bundle starting at 6 rebuild the roots of later sizes.
        let prefix = store.ledger_prefix(6).unwrap();
        assert_eq!(prefix.len(), 2, "6 = 4 + 2");
        assert_eq!(prefix[0], reference_root(&leaves[..4]));
        assert_eq!(prefix[1], reference_root(&leaves[4..6]));

        // Reopening keeps the head: the next entry chains on.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.durable_ledger_size(), 11);
        store
            .record(&Event::new(EntryKind::Audit, None, Actor::User(0)).field("query", "log"))
            .unwrap();
        let last = Entry::parse(&store.ledger_entry(11).unwrap()).unwrap();
        assert_eq!(last.prev, Some(leaves[10]));
    }

    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => merkle::EMPTY_ROOT,
            1 => leaves[0],
            n => {
                let split = n.next_power_of_two() / 2;
                merkle::node_hash(
                    &reference_root(&leaves[..split]),
                    &reference_root(&leaves[split..]),
                )
            }
        }
    }

    #[test]
    fn checkpoints_cover_only_durable_entries_and_are_signed_once_per_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store.checkpoint("vdx/000.00.00.H41", fake_sign).unwrap();
        let (c, _) = Checkpoint::parse_note(&first).unwrap();
        assert_eq!((c.size, c.root), (0, merkle::EMPTY_ROOT));
        let (o, body) = offer(1);
        store.submit(&o, &body[..], 1).unwrap();
        let note = store.checkpoint("vdx/000.00.00.H41", fake_sign).unwrap();
        let (c, _) = Checkpoint::parse_note(&note).unwrap();
        assert_eq!((c.size, c.root), (1, store.ledger_root(1).unwrap()));
        let again = store
            .checkpoint("vdx/000.00.00.H41", |_| Err("must not sign again"))
            .unwrap();
        assert_eq!(again, note);
        assert!(store
            .checkpoint_at("vdx/000.00.00.H41", 2, fake_sign)
            .is_err());
        assert_eq!(
            store.latest_checkpoint().unwrap().unwrap(),
            (1, note.clone())
        );
        assert_eq!(store.checkpoints(0, 1).unwrap().len(), 2);
    }

    #[test]
    fn a_peer_signing_two_trees_of_one_size_is_a_fork_kept_as_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let seen = |size, root| {
            let checkpoint = Checkpoint {
                origin: "vdx/000.00.00.H41".into(),
                size,
                root,
            };
            Witnessed {
                note: fake_sign(&checkpoint).unwrap().into_bytes(),
                checkpoint,
            }
        };
        assert!(store.witness(&seen(5, [1; 32])).unwrap().is_empty());
        assert!(
            store.witness(&seen(5, [1; 32])).unwrap().is_empty(),
            "the same again"
        );
        assert!(store.witness(&seen(9, [2; 32])).unwrap().is_empty());
        let fork = store.witness(&seen(5, [3; 32])).unwrap();
        assert_eq!(fork.len(), 1);
        assert_eq!(fork[0].checkpoint.root, [1; 32]);
        let kept = &store.witnessed().unwrap()["vdx/000.00.00.H41"];
        assert_eq!(
            kept.iter().map(|w| w.checkpoint.size).collect::<Vec<_>>(),
            vec![5, 5, 9]
        );

        // Notes that did not verify are kept apart, once each, with the reason.
        assert!(store.invalid_checkpoints().unwrap().is_empty());
        for _ in 0..2 {
            store
                .keep_invalid_checkpoint("vdx/000.00.00.H41", "bad signature", b"junk\0note")
                .unwrap();
        }
        let invalid = store.invalid_checkpoints().unwrap();
        assert_eq!(invalid["vdx/000.00.00.H41"], vec!["bad signature"]);
        assert_eq!(
            store.witnessed().unwrap().len(),
            1,
            "not taken for valid ones"
        );
    }

    #[test]
    fn configuration_changes_are_recorded_once_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store
            .record_config("directory directory.json", "aa")
            .unwrap());
        assert!(!store
            .record_config("directory directory.json", "aa")
            .unwrap());
        assert!(store
            .record_config("directory directory.json", "bb")
            .unwrap());
        assert_eq!(store.ledger_size().unwrap(), 2);
        let entry = Entry::parse(&store.ledger_entry(1).unwrap()).unwrap();
        assert_eq!(entry.kind, EntryKind::Config);
        assert_eq!(entry.fields["sha256"], "bb");
    }
}
