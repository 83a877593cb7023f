//! Incoming transfers: receiving an object (resumable for a large one), recording it exactly
//! once, and the arrivals waiting to be opened, with the count of opening attempts that keeps an
//! object that kills its opener from being opened forever.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};

use sled::transaction::{ConflictableTransactionError, Transactional};
use vdx_protocol::ledger::{Actor, EntryKind};
use vdx_protocol::wire::Offer;
use vdx_protocol::OrganCode;

use super::model::{encode, load, same_content};
use super::objects::{self, Held};
use super::{io_error, ledger, sync_dir, transaction_error};
use super::{
    Direction, DispatchState, Event, MessageId, OpenAttempt, Receiving, Record, Store, StoreError,
};

/// An incoming transfer is fsynced each time it crosses a multiple of this many bytes.
const PARTIAL_SYNC_EVERY: u64 = 64 << 20;

impl Store {
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
        let record = Record {
            came_from: Some(peer.clone()),
            ..Record::new(new, Direction::Incoming, DispatchState::Received, now)
        };
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::{dispatch, open_again, peer, read_object, receive_whole};
    use super::*;
    use crate::store::test_files;

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
}
