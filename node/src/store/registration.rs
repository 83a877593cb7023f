//! What becomes of an arrival once opened: registered under its incoming number (số đến) with
//! its replies queued, refused, applied as a reply to a dispatch sent from here, or forwarded to
//! another agency. Each takes the arrival off the arrivals in the same transaction.

use std::fs;
use std::io;

use sled::transaction::{ConflictableTransactionError, Transactional};
use vdx_protocol::header::DispatchHeader;
use vdx_protocol::ledger::{Actor, EntryKind};
use vdx_protocol::wire::Offer;

use super::model::{encode, load};
use super::outgoing::{encode_header, insert_outgoing};
use super::{io_error, ledger, transaction_error};
use super::{
    Direction, DispatchState, Event, IncomingNumber, MessageId, Queued, Record, Store, StoreError,
};

fn number_text(record: &Record) -> String {
    record
        .incoming_number
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// A change to a record, applied inside a transaction.
type Change<'a> = &'a dyn Fn(&mut Record);

impl Store {
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
        self.sync_and_queue(rows.iter().filter_map(|row| row.queued.clone()))?;
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
    /// the arrivals, enters the outbox, and its record says it is relayed, with one more hop.
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
                // This node is one more relay crossed.
                record.hops = record.hops.saturating_add(1);
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

    /// A fan-out object received here was split (`docs/broadcast.md` rule 6): every part is held
    /// by the store that takes custody of it, so it leaves the arrivals as relayed, `applied`, with
    /// one ledger entry naming how many parts it made. Its object stays, for `vdx check`.
    pub fn split_done(&self, id: MessageId, parts: usize) -> Result<Record, StoreError> {
        let record = (&self.dispatches, &self.arrivals, &self.ledger)
            .transaction(|(dispatches, arrivals, ledger)| {
                let mut record = load(dispatches, id)?;
                if record.direction == Direction::Relayed {
                    return Ok(record);
                }
                record.direction = Direction::Relayed;
                record.state = DispatchState::Applied;
                let value = encode(&record).map_err(ConflictableTransactionError::Abort)?;
                dispatches.insert(&id.0, value)?;
                arrivals.remove(&id.0)?;
                let event = Event::new(EntryKind::Relayed, None, Actor::Node).field("parts", parts);
                ledger::append(ledger, &record.event(&event))?;
                Ok(record)
            })
            .map_err(transaction_error)?;
        self.sync()?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{dispatch, open_again, peer, read_object, receive_whole};
    use super::*;
    use crate::testkit::example_header as header;
    use vdx_protocol::wire::ObjectKind;

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
}
