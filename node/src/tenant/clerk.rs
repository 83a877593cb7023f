//! What a clerk says about a dispatch once it is in the mailbox (`docs/status-notices.md`): the
//! workflow's notices 02-06 about one received, a recall (13) of one sent, and the answer to a
//! recall (15, 16). Each is checked against the workflow ([`Flow`]), signed, kept with the
//! dispatch, ledgered and queued for the other agency in one transaction.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use vdx_protocol::ledger::{Actor, EntryKind};
use vdx_protocol::notice::Notice;
use vdx_protocol::wire::{ObjectKind, Offer};
use vdx_protocol::OrganCode;

use crate::store::{
    Direction, Event, MessageId, NoticeSeen, Record, SentNotice, Store, StoreError,
};
use crate::tenant::compose::reply_id;
use crate::tenant::receipts::{ReceiptError, ReceiptSigner};
use crate::tenant::workflow::Flow;

/// The longest text a notice carries (`docs/status-notices.md` rule 7).
const MAX_TEXT: usize = 1024;

/// Why a clerk's notice was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClerkError {
    /// No such dispatch in this mailbox (received, for 02-06 and 15-16; sent, for 13).
    #[error("no dispatch {0} here to send that notice about")]
    NotFound(String),
    /// The workflow does not allow it now.
    #[error("{0}")]
    Transition(String),
    /// A missing or malformed field (a reason, whom it is assigned to).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The notice could not be signed.
    #[error("cannot sign the notice: {0}")]
    Sign(#[from] ReceiptError),
}

/// A tenant's clerk: its store and its signing key.
pub struct Clerk<'a> {
    /// The mailbox.
    pub store: &'a Store,
    /// Signs the notices.
    pub signer: &'a ReceiptSigner,
}

impl Clerk<'_> {
    /// Sends workflow notice `code` (02-06) about dispatch `id` received here: `text` is whom it
    /// is assigned to (04) or why it is refused (02), required for those two.
    pub fn notify(
        &self,
        id: MessageId,
        code: &str,
        text: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Record, ClerkError> {
        if !["02", "03", "04", "05", "06"].contains(&code) {
            return Err(ClerkError::Invalid(format!(
                "{code:?} is not a workflow notice (02, 03, 04, 05, 06)"
            )));
        }
        let text = checked_text(text, matches!(code, "02" | "04"), code)?;
        let record = self.received(id)?;
        self.send(&record, &record.from, code, text, now, false, |r| {
            Flow::of(&r.notices).may_notify(code)
        })
    }

    /// Asks for dispatch `id`, sent from here, back (13), saying why.
    pub fn recall(
        &self,
        id: MessageId,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Record, ClerkError> {
        let reason = checked_text(Some(reason), true, "13")?;
        let record = self
            .store
            .get(id)?
            .filter(|r| r.kind == ObjectKind::Dispatch)
            .ok_or_else(|| ClerkError::NotFound(id.to_string()))?;
        if record.direction != Direction::Outgoing {
            return Err(ClerkError::Transition(format!(
                "dispatch {id} was received here: only its sender recalls it"
            )));
        }
        if record.status() == "failed" {
            return Err(ClerkError::Transition(format!(
                "the copy to {} failed: there is nothing to recall",
                record.to
            )));
        }
        self.send(&record, &record.to, "13", reason, now, false, |r| {
            Flow::of(&r.notices).may_recall()
        })
    }

    /// Answers the recall of dispatch `id`, received here: agreeing (15) destroys its sealed
    /// object; refusing (16) needs a reason.
    pub fn answer_recall(
        &self,
        id: MessageId,
        agree: bool,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Record, ClerkError> {
        let code = if agree { "15" } else { "16" };
        let reason = checked_text(reason, !agree, code)?;
        let record = self.received(id)?;
        self.send(&record, &record.from, code, reason, now, agree, |r| {
            Flow::of(&r.notices).may_answer(code)
        })
    }

    /// A dispatch received and opened here.
    fn received(&self, id: MessageId) -> Result<Record, ClerkError> {
        let record = self
            .store
            .get(id)?
            .filter(|r| r.kind == ObjectKind::Dispatch)
            .ok_or_else(|| ClerkError::NotFound(id.to_string()))?;
        match (record.direction, record.incoming_number) {
            (Direction::Incoming, Some(_)) => Ok(record),
            (Direction::Incoming, None) => Err(ClerkError::Transition(format!(
                "dispatch {id} is {}: only a registered dispatch moves on",
                record.status()
            ))),
            _ => Err(ClerkError::Transition(format!(
                "dispatch {id} was sent from here: its recipient's clerk sends its notices"
            ))),
        }
    }

    /// Signs notice `code` about `about` for `to`, and keeps, ledgers and queues it if `allow`
    /// passes on the record in the store's transaction.
    #[allow(clippy::too_many_arguments)] // Each is one fact of the notice.
    fn send(
        &self,
        about: &Record,
        to: &OrganCode,
        code: &str,
        text: Option<&str>,
        now: OffsetDateTime,
        destroy: bool,
        allow: impl Fn(&Record) -> Result<(), crate::tenant::workflow::NotAllowed>,
    ) -> Result<Record, ClerkError> {
        // Each notice of a code after the first gets an id of its own (a copy assigned twice).
        let earlier = about.notices.iter().filter(|n| n.status == code).count();
        let tag = match earlier {
            0 => code.to_owned(),
            n => format!("{code}/{}", n + 1),
        };
        let id = reply_id(about.id, ObjectKind::Notice, &tag);
        let notice = Notice::new(
            about.id.0,
            code,
            self.signer.organ_code().clone(),
            now,
            text,
        );
        let signed = self.signer.sign_text(notice.to_text().as_bytes())?;
        let offer = Offer {
            id: id.0,
            from: self.signer.organ_code().clone(),
            to: to.clone(),
            size: signed.len() as u64,
            sealed_sha256: Sha256::digest(&signed).into(),
            urgency: about.urgency,
            expires: 0,
            kind: ObjectKind::Notice,
            hops: 0,
        };
        let seen = NoticeSeen {
            status: code.to_owned(),
            by: notice.by.clone(),
            time: notice.time.unix_timestamp(),
            reason: notice.reason.clone(),
        };
        let event = Event::new(EntryKind::Notice, Some(about.id.0), Actor::Node)
            .field("status", code)
            .field("by", &notice.by)
            .field("to", to)
            .field("reason", notice.reason.as_deref().unwrap_or(""))
            .field("notice", MessageId(offer.id));
        let sent = SentNotice {
            seen,
            reply: (offer, signed),
            event,
            destroy,
        };
        let done = self.store.record_notice(
            about.id,
            &sent,
            |r| allow(r).map_err(|e| e.to_string()),
            now.unix_timestamp() as u64,
        )?;
        done.map_err(ClerkError::Transition)
    }
}

/// `text` as a notice carries it: one line, at most [`MAX_TEXT`] bytes, present when `required`.
fn checked_text<'t>(
    text: Option<&'t str>,
    required: bool,
    code: &str,
) -> Result<Option<&'t str>, ClerkError> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    match text {
        None if required => Err(ClerkError::Invalid(format!(
            "notice {code} needs {}",
            if code == "04" {
                "whom it is assigned to"
            } else {
                "a reason"
            }
        ))),
        Some(t) if t.len() > MAX_TEXT || t.chars().any(char::is_control) => {
            Err(ClerkError::Invalid(format!(
                "a notice's text is one line of at most {MAX_TEXT} bytes"
            )))
        }
        text => Ok(text),
    }
}
