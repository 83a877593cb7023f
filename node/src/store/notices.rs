//! Notices a clerk sends about a dispatch (`docs/status-notices.md`): the workflow's 02-06 about
//! one received here, and a recall (13) or its answer (15, 16). Each is kept with the dispatch,
//! ledgered and queued for the other side in one transaction, after the workflow's check on the
//! record as that transaction reads it (two clerks at once cannot both pass it).

use std::fs;
use std::io;

use sled::transaction::{ConflictableTransactionError, Transactional};
use vdx_protocol::ledger::{Actor, EntryKind};
use vdx_protocol::wire::Offer;

use super::model::{encode, load};
use super::outgoing::insert_outgoing;
use super::{io_error, transaction_error};
use super::{Direction, DispatchState, Event, MessageId, NoticeSeen, Record, Store, StoreError};

/// A notice sent from here, as [`Store::record_notice`] keeps it.
pub struct SentNotice {
    /// What is kept with the dispatch.
    pub seen: NoticeSeen,
    /// The signed notice for the other side, and its offer.
    pub reply: (Offer, Vec<u8>),
    /// Its ledger entry.
    pub event: Event,
    /// Whether the dispatch's sealed object is destroyed with it (15, a recall agreed).
    pub destroy: bool,
}

impl Store {
    /// Keeps `sent` with dispatch `id` and queues its reply, in one transaction with its ledger
    /// entry, if `allow` passes on the record; else `Ok(Err(why))` and nothing changes. A
    /// destroyed object's record, số đến and ledger entries stay. Durable when it returns.
    pub fn record_notice(
        &self,
        id: MessageId,
        sent: &SentNotice,
        allow: impl Fn(&Record) -> Result<(), String>,
        now: u64,
    ) -> Result<Result<Record, String>, StoreError> {
        let (offer, signed) = &sent.reply;
        let (notice, event, destroy) = (&sent.seen, &sent.event, sent.destroy);
        let placed = self.place_object(offer, signed.as_slice())?;
        let queued = Record::new(offer, Direction::Outgoing, DispatchState::Queued, now);
        let by = Event::new(EntryKind::Submitted, None, Actor::Node);
        let rows = self.outgoing(vec![(queued, placed)], &by)?;
        let answer = (
            &self.dispatches,
            &self.outbox,
            &self.headers,
            &self.objects,
            &self.ledger,
        )
            .transaction(|(dispatches, outbox, headers, objects, ledger)| {
                let mut record = load(dispatches, id)?;
                if dispatches.get(offer.id)?.is_some() {
                    // The same notice again (a retry after a lost answer): already queued.
                    return Ok(Ok(record));
                }
                if let Err(why) = allow(&record) {
                    return Ok(Err(why));
                }
                record.notices.push(notice.clone());
                let value = encode(&record).map_err(ConflictableTransactionError::Abort)?;
                dispatches.insert(&id.0, value)?;
                if destroy {
                    objects.remove(&id.0)?;
                }
                super::ledger::append(ledger, event)?;
                insert_outgoing(&rows, None, dispatches, outbox, headers, objects, ledger)?;
                Ok(Ok(record))
            })
            .map_err(transaction_error)?;
        if answer.is_err() {
            return Ok(answer);
        }
        self.sync_and_queue(rows.iter().filter_map(|row| row.queued.clone()))?;
        if destroy {
            match fs::remove_file(self.object_path(id)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error("destroying a recalled object")(e))
                }
                _ => {}
            }
        }
        Ok(answer)
    }
}
