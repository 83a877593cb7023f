//! Outgoing dispatches: submission (one copy per recipient, all or none), the outbox that the
//! scheduler serves, and what happens to a queued object (attempts, hop receipt, giving up), with
//! the helpers that keep a record, its outbox entry and the outbox's mirror in memory in step.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sled::transaction::{ConflictableTransactionError, Transactional};
use vdx_protocol::header::DispatchHeader;
use vdx_protocol::ledger::{Actor, EntryKind};
use vdx_protocol::wire::{ObjectKind, Offer};
use vdx_protocol::{hex, OrganCode};

use super::model::{encode, load, same_content};
use super::objects::{self, Placed};
use super::{io_error, ledger, sync_dir, transaction_error};
use super::{
    Copy, Direction, DispatchState, Event, MessageId, Queued, Record, Sealed, Store, StoreError,
};

/// An outgoing object as its transaction writes it.
pub(super) struct Outgoing {
    record: Record,
    /// Its outbox key (also in `record`) and what the scheduler needs of it (the outbox index's
    /// value); none for a copy carried by a fan-out object.
    pub(super) queued: Option<(Vec<u8>, Queued)>,
    /// `record`, encoded.
    value: Vec<u8>,
    /// Its ledger entry.
    event: Event,
    /// Its bytes, when kept in the store.
    inline: Option<Vec<u8>>,
}

/// Writes outgoing objects in a transaction: record, outbox entry, header, small object and
/// ledger entry each. An id already recorded aborts it as a conflict.
pub(super) fn insert_outgoing(
    rows: &[Outgoing],
    header: Option<&Composed>,
    dispatches: &sled::transaction::TransactionalTree,
    outbox: &sled::transaction::TransactionalTree,
    headers: &sled::transaction::TransactionalTree,
    objects: &sled::transaction::TransactionalTree,
    ledger: &sled::transaction::TransactionalTree,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    // A fan-out object is no copy of the dispatch (`docs/broadcast.md` rule 4): it has no header,
    // and the message id names a recipient's copy.
    let copies = || rows.iter().filter(|r| r.record.kind != ObjectKind::FanOut);
    if let (Some(header), Some(first)) = (header, copies().next()) {
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
        headers.insert(header_key(&header.message_id), header.json.as_slice())?;
    }
    for row in rows {
        let id = row.record.id;
        if dispatches.get(id.0)?.is_some() {
            return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
                id,
            )));
        }
        dispatches.insert(&id.0, row.value.as_slice())?;
        if let Some((key, queued)) = &row.queued {
            outbox.insert(key.as_slice(), queued.encode())?;
        }
        if let (Some(header), false) = (header, row.record.kind == ObjectKind::FanOut) {
            // Each copy names the header, kept once: a dispatch to 3,000 agencies has a header of
            // some 400 KB.
            headers.insert(&id.0, header_key(&header.message_id))?;
        }
        if let Some(bytes) = &row.inline {
            objects.insert(&id.0, bytes.as_slice())?;
        }
        ledger::append(ledger, &row.event)?;
    }
    Ok(())
}

/// The header of a dispatch composed here, as its copies' transaction writes it.
pub(super) struct Composed {
    json: Vec<u8>,
    message_id: String,
}

/// Where the `headers` tree keeps a submission's first copy by message id: `m` ‖ the UUID text,
/// never 16 bytes long like the transfer ids that key the headers themselves.
pub(super) fn submission_key(message_id: &str) -> Vec<u8> {
    let mut key = b"m".to_vec();
    key.extend_from_slice(message_id.as_bytes());
    key
}

/// Where the `headers` tree keeps the header of a dispatch composed here, once for all its
/// copies (each copy's entry is this key): `h` ‖ the UUID text. A header itself is JSON, and
/// starts with `{`.
pub(super) fn header_key(message_id: &str) -> Vec<u8> {
    let mut key = b"h".to_vec();
    key.extend_from_slice(message_id.as_bytes());
    key
}

pub(super) fn encode_header(header: &DispatchHeader) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(header).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
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

    /// Queues one copy of a dispatch composed here per recipient (`copies`: one offer each, with
    /// the object it offers, or the fan-out object that carries it; objects may be shared), and
    /// the fan-out objects among them, keeping its header for the clerk: all or none. `by` is the
    /// submission's ledger event without the object: who submitted it (and their role).
    pub fn submit_copies(
        &self,
        copies: &[(Offer, Copy<'_>)],
        header: &DispatchHeader,
        now: u64,
        by: &Event,
    ) -> Result<Vec<Record>, StoreError> {
        for (copy, _) in copies {
            if self.get(MessageId(copy.id))?.is_some() {
                return Err(StoreError::Conflict(MessageId(copy.id)));
            }
        }
        let mut synced: Vec<&Path> = Vec::new();
        for (_, copy) in copies {
            if let Copy::Own(Sealed::File(path)) = *copy {
                if !synced.contains(&path) {
                    File::open(path)
                        .and_then(|f| f.sync_all())
                        .map_err(io_error("syncing the sealed object"))?;
                    synced.push(path);
                }
            }
        }
        let mut records = Vec::new();
        let mut result = Ok(());
        for (offer, copy) in copies {
            let placed = match *copy {
                Copy::Own(Sealed::Memory(bytes)) => self.place_object(offer, bytes),
                Copy::Own(Sealed::File(path)) => self.link_object(offer, path),
                Copy::CarriedBy(carrier) => Ok(Placed::Carried(carrier)),
            };
            match placed {
                Ok(placed) => {
                    let mut record =
                        Record::new(offer, Direction::Outgoing, DispatchState::Queued, now);
                    if offer.kind == ObjectKind::FanOut {
                        record.members = copies
                            .iter()
                            .filter(|(_, c)| matches!(c, Copy::CarriedBy(by) if by.0 == offer.id))
                            .map(|(o, _)| MessageId(o.id))
                            .collect();
                    }
                    records.push((record, placed));
                }
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
                Placed::Inline(_) | Placed::Carried(_) => None,
            })
            .collect();
        let result = result
            .and_then(|()| match synced.is_empty() {
                false => sync_dir(&self.spool.join("objects")),
                true => Ok(()),
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
    pub(super) fn place_object(
        &self,
        new: &Offer,
        sealed: impl Read,
    ) -> Result<Placed, StoreError> {
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
        self.sync_and_queue(rows.iter().filter_map(|row| row.queued.clone()))?;
        Ok(rows.into_iter().map(|row| row.record).collect())
    }

    /// Gives each outgoing object its outbox key and encodes what its transaction writes.
    pub(super) fn outgoing(
        &self,
        placed: Vec<(Record, Placed)>,
        by: &Event,
    ) -> Result<Vec<Outgoing>, StoreError> {
        placed
            .into_iter()
            .map(|(mut record, object)| {
                let queued = match object {
                    Placed::Carried(carrier) => {
                        record.carried_by = Some(carrier);
                        None
                    }
                    _ => {
                        let key = self.outbox_key(record.urgency, record.id)?;
                        record.outbox_key = Some(key.clone());
                        Some((key, Queued::of(&record)))
                    }
                };
                Ok(Outgoing {
                    queued,
                    value: encode(&record)?,
                    event: record.event(by),
                    inline: match object {
                        Placed::Inline(bytes) => Some(bytes),
                        Placed::Spooled(_) | Placed::Carried(_) => None,
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
    pub(super) fn sync_and_queue(
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
    pub(super) fn unqueue(
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
    pub(super) fn records_named_by(
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
        let (record, _) = self.modify(id, false, None, |r, _| {
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
        let state = DispatchState::Sent {
            receipt,
            held_by: Some(by.clone()),
        };
        let (record, _) = self.finish(id, state, event, 1)?;
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
        let moves = |r: &Record| {
            r.state == DispatchState::Queued && !(failing && r.delivery_receipt.is_some())
        };
        self.modify(id, true, Some(&event), |r, carried| {
            if !moves(r) {
                return false;
            }
            r.state = state.clone();
            r.attempts += attempts;
            // A fan-out object's copies go with it (`docs/broadcast.md` rule 5).
            for member in carried {
                if moves(member) {
                    member.state = state.clone();
                }
            }
            true
        })
    }

    /// Reads, changes and writes one record in a transaction (so concurrent changes to other
    /// fields are not lost), optionally taking it off the outbox (under the key its record names),
    /// and recording `event` (with the record's `to`) if `change` changed it; `change` returns
    /// false when it left the record as it was. `change` also gets the copies a fan-out object
    /// carries, written back (each with `event` about it) when they change. Returns the record
    /// and whether it changed. The caller syncs.
    fn modify(
        &self,
        id: MessageId,
        off_outbox: bool,
        event: Option<&Event>,
        change: impl Fn(&mut Record, &mut [Record]) -> bool,
    ) -> Result<(Record, bool), StoreError> {
        let (record, changed, outbox_key) = (&self.dispatches, &self.outbox, &self.ledger)
            .transaction(|(dispatches, outbox, ledger)| {
                let mut record = load(dispatches, id)?;
                let mut carried = record
                    .members
                    .iter()
                    .map(|m| load(dispatches, *m))
                    .collect::<Result<Vec<_>, _>>()?;
                let before = carried.clone();
                let changed = change(&mut record, &mut carried);
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
                for (member, was) in carried.iter().zip(&before) {
                    if member == was {
                        continue;
                    }
                    let value = encode(member).map_err(ConflictableTransactionError::Abort)?;
                    dispatches.insert(&member.id.0, value)?;
                    if let Some(event) = event {
                        let mut about = event.clone().field("to", &member.to);
                        about.id = Some(member.id.0);
                        ledger::append(ledger, &about)?;
                    }
                }
                Ok((record, changed, outbox_key))
            })
            .map_err(transaction_error)?;
        if let Some(key) = &outbox_key {
            self.queue.remove(key);
        }
        Ok((record, changed))
    }

    pub(super) fn outbox_key(&self, urgency: u8, id: MessageId) -> Result<Vec<u8>, StoreError> {
        let mut key = Vec::with_capacity(25);
        key.push(u8::MAX - urgency);
        key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        key.extend_from_slice(&id.0);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{dispatch, open_again, peer, read_object, receive_whole};
    use super::*;
    use crate::store::test_files;
    use crate::testkit::example_header as header;
    use vdx_protocol::wire::ObjectKind;

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
            let sealed = Copy::Own(if content.len() < 1000 {
                Sealed::Memory(&content)
            } else {
                Sealed::File(&file)
            });
            let by = Event::new(EntryKind::Submitted, None, Actor::User(1000));
            let (a, b) = (dispatch(1, 2, &content), dispatch(2, 2, &content));
            let records = store
                .submit_copies(&[(a.clone(), sealed), (b, sealed)], &header(), 5, &by)
                .unwrap();
            assert_eq!(records.len(), 2);
            assert_eq!(store.outbox().unwrap().len(), 2);
            assert!(store.header(MessageId([2; 16])).unwrap().is_some());

            // A batch with a copy that cannot be queued (its id is taken) queues nothing.
            let c = dispatch(3, 2, &content);
            let mut other = header();
            other.message_id = "0d1e2f30-4152-4637-8899-aabbccddeeff".into();
            let err = store
                .submit_copies(&[(c, sealed), (a, sealed)], &other, 6, &by)
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
    fn copies_carried_by_a_fan_out_go_with_it_and_only_it_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_again(dir.path());
        let by = Event::new(EntryKind::Submitted, None, Actor::User(1000));
        let fanout = b"a fan-out object".to_vec();
        let alone = b"a copy of its own".to_vec();
        let submit = |n: u8, other: u8| {
            let carrier = Offer {
                kind: ObjectKind::FanOut,
                ..dispatch(n, 1, &fanout)
            };
            let id = MessageId(carrier.id);
            let mut header = header();
            header.message_id = format!("0d1e2f30-4152-4637-8899-aabbccddee{n:02x}");
            let copies = [
                (dispatch(n + 1, 1, b"variant 1"), Copy::CarriedBy(id)),
                (dispatch(n + 2, 1, b"variant 2"), Copy::CarriedBy(id)),
                (
                    dispatch(other, 1, &alone),
                    Copy::Own(Sealed::Memory(&alone)),
                ),
                (carrier, Copy::Own(Sealed::Memory(&fanout))),
            ];
            store.submit_copies(&copies, &header, 5, &by).unwrap()
        };
        let records = submit(10, 13);
        assert_eq!(
            records[3].members,
            [MessageId([11; 16]), MessageId([12; 16])]
        );
        assert_eq!(records[0].carried_by, Some(MessageId([10; 16])));
        let queued = store.outbox().unwrap();
        let ids: Vec<(u8, bool)> = queued.iter().map(|q| (q.id.0[0], q.direct)).collect();
        assert_eq!(
            ids,
            [(13, false), (10, true)],
            "carried copies are not queued"
        );
        assert_eq!(queued[1].urgency, 1);
        // The header names the dispatch by a recipient's copy, never by the fan-out.
        assert_eq!(
            store
                .submitted_under("0d1e2f30-4152-4637-8899-aabbccddee0a")
                .unwrap(),
            Some(MessageId([11; 16]))
        );
        assert!(store.header(MessageId([10; 16])).unwrap().is_none());
        assert!(store.header(MessageId([11; 16])).unwrap().is_some());
        // Its hop receipt is theirs too, in one transaction, each with its ledger entry.
        let before = store.ledger_size().unwrap();
        store
            .mark_sent(MessageId([10; 16]), b"receipt".to_vec(), &peer())
            .unwrap();
        assert_eq!(store.ledger_size().unwrap(), before + 3);
        for n in [10, 11, 12] {
            assert_eq!(
                store.get(MessageId([n; 16])).unwrap().unwrap().status(),
                "sent"
            );
        }
        // And its failure.
        submit(20, 23);
        store
            .mark_failed(MessageId([20; 16]), "refused by the next hop".into())
            .unwrap();
        for n in [21, 22] {
            let record = store.get(MessageId([n; 16])).unwrap().unwrap();
            assert_eq!(record.reason(), Some("refused by the next hop"));
        }
        // `vdx check` expects no object of a carried copy.
        let report = store.check().unwrap();
        assert!(!report.is_damaged(), "{report:?}");
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
            store.submit_copies(
                &[(copy, Copy::Own(Sealed::Memory(&content)))],
                &header(),
                5,
                &by,
            )
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
}
