//! What happens to an object once it is stored here: a dispatch for us is opened and verified
//! (DESIGN §3 "Open"), registered with its incoming number and answered with a signed delivery
//! receipt and status notice 01 — or refused, answered with notice 02 and deleted; a reply (receipt
//! or notice) is checked and applied to the outgoing dispatch it is about.
//!
//! Every step may be repeated after a crash: replies are queued under fixed ids (queued once), and
//! registering or applying is one store transaction that also takes the object off the arrivals.

use std::io::{self, BufReader, Read};

use openssl::x509::X509;
use time::OffsetDateTime;
use vdx_crypto::{Opener, PrivateKey};
use vdx_pki::{Directory, TrustStore};
use vdx_protocol::header::DispatchHeader;
use vdx_protocol::hex;
use vdx_protocol::ledger::{Actor, EntryKind};
use vdx_protocol::notice::Notice;
use vdx_protocol::package::read_package;
use vdx_protocol::receipt::{Receipt, ReceiptKind};
use vdx_protocol::wire::{ObjectKind, Offer};

use crate::compose::{reply_id, transfer_id, uuid_bytes};
use crate::receipts::{check_receipt, verify_signed_text, ReceiptSigner};
use crate::store::{
    Direction, DispatchState, Event, MessageId, NoticeSeen, Record, Store, StoreError, INLINE_MAX,
};

/// Largest reply object read (receipts and notices are a few KiB).
const MAX_REPLY: u64 = 64 * 1024;

/// Why an arrival could not be processed now; it stays an arrival and is processed again later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our receipt or notice could not be signed.
    #[error("cannot sign a reply: {0}")]
    Sign(#[from] crate::receipts::ReceiptError),
}

/// What became of an arrival.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// A dispatch, opened, verified and numbered.
    Registered(Record),
    /// Refused, with the reason kept in the record.
    Refused(Record),
    /// A reply, applied to the dispatch it is about (returned).
    Applied(Record),
}

/// Everything the inbox needs from the node.
pub struct Inbox<'a> {
    /// Where objects and records are.
    pub store: &'a Store,
    /// Our agency: signs receipts and notices.
    pub signer: &'a ReceiptSigner,
    /// Our encryption certificate and key: open dispatches.
    pub enc_cert: &'a X509,
    /// See `enc_cert`.
    pub enc_key: &'a PrivateKey,
    /// Decides whether a signer is trusted.
    pub trust: &'a TrustStore,
    /// Who is who.
    pub directory: &'a Directory,
}

impl Inbox<'_> {
    /// Processes one arrival (a record in state `Received`).
    pub fn process(&self, record: &Record, now: OffsetDateTime) -> Result<Outcome, InboxError> {
        match record.kind {
            ObjectKind::Dispatch => self.dispatch(record, now),
            _ => self.reply_arrived(record),
        }
    }

    fn dispatch(&self, record: &Record, now: OffsetDateTime) -> Result<Outcome, InboxError> {
        match self.open(record) {
            Ok(header) => {
                let replies: Vec<_> = [
                    self.reply(record, ObjectKind::Receipt, "", None, now)?,
                    self.reply(record, ObjectKind::Notice, "01", None, now)?,
                ]
                .into_iter()
                .flatten()
                .collect();
                let year = now.to_offset(crate::compose::VIETNAM).year();
                let secs = now.unix_timestamp() as u64;
                Ok(Outcome::Registered(
                    self.store
                        .register(record.id, &header, year, &replies, secs)?,
                ))
            }
            Err(reason) => {
                if let Some((offer, signed)) =
                    self.reply(record, ObjectKind::Notice, "02", Some(&reason), now)?
                {
                    self.store
                        .submit(&offer, signed.as_slice(), now.unix_timestamp() as u64)?;
                }
                Ok(Outcome::Refused(self.store.refuse(record.id, reason)?))
            }
        }
    }

    /// Opens and checks the dispatch; the error is the refusal reason the sender will read.
    fn open(&self, record: &Record) -> Result<DispatchHeader, String> {
        let me = self.signer.organ_code();
        let object = self
            .store
            .object(record.id)
            .map_err(|e| format!("the stored object cannot be read: {e}"))?;
        let opener = Opener::new(self.enc_cert, self.enc_key)
            .map_err(|e| format!("our decryption key: {e}"))?;
        let (opened, contents) = if record.size <= INLINE_MAX {
            // Small: opened into memory, which costs less than an opening thread and a pipe.
            let mut plain = Vec::new();
            let opened = opener.open(object, &mut plain).map_err(describe);
            (opened, read_package(plain.as_slice(), |_, _| Ok(())))
        } else {
            let (mut reader, writer) = io::pipe().map_err(|e| e.to_string())?;
            std::thread::scope(|scope| {
                let opening = scope.spawn(move || opener.open(BufReader::new(object), writer));
                let contents = read_package(&mut reader, |_, _| Ok(()));
                // Drain what follows the archive's end so the opener can finish and verify.
                let _ = io::copy(&mut reader, &mut io::sink());
                drop(reader);
                let opened = opening
                    .join()
                    .map_err(|_| "opening failed".to_owned())
                    .and_then(|r| r.map_err(describe));
                (opened, contents)
            })
        };
        let opened = opened.map_err(|e| format!("the dispatch does not open: {e}"))?;
        let contents =
            contents.map_err(|e| format!("the content is not a dispatch package: {e}"))?;

        let mut agency = None;
        for signer in opened.signers() {
            let valid = self
                .trust
                .validate_signer(
                    signer.certificate(),
                    opened.certificates(),
                    signer.signing_time(),
                )
                .map_err(|e| format!("a signer is not trusted: {e}"))?;
            if valid.organ_code() == Some(record.from.as_str()) {
                agency = Some(valid);
            }
        }
        if agency.is_none() {
            return Err(format!("not signed by the sending agency {}", record.from));
        }
        let header: DispatchHeader = serde_json::from_slice(&contents.header_json)
            .map_err(|e| format!("dispatch.json: {e}"))?;
        header
            .validate()
            .map_err(|e| format!("dispatch.json: {e}"))?;
        if header.from.organ_id != record.from {
            return Err(format!(
                "the header's From is {} but {} sent it",
                header.from.organ_id, record.from
            ));
        }
        if !header.to.iter().any(|p| p.organ_id == *me) {
            return Err(format!("not addressed to {me}"));
        }
        let message_id = uuid_bytes(&header.message_id).map_err(|e| e.to_string())?;
        if transfer_id(&message_id, me) != record.id {
            return Err("the transfer id does not belong to this dispatch (a replay?)".into());
        }
        if header.files.len() != contents.files.len() {
            return Err(format!(
                "the manifest lists {} files, the package holds {}",
                header.files.len(),
                contents.files.len()
            ));
        }
        for (listed, found) in header.files.iter().zip(&contents.files) {
            if listed.name != found.name
                || listed.size != found.size
                || listed.sha256 != hex::encode(&found.sha256)
            {
                return Err(format!("file {} does not match the manifest", found.name));
            }
        }
        Ok(header)
    }

    /// A signed reply about `about` for its sender and its offer, unless it is already queued
    /// (or the sender is not in the directory, so cannot be answered).
    fn reply(
        &self,
        about: &Record,
        kind: ObjectKind,
        status: &str,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Option<(Offer, Vec<u8>)>, InboxError> {
        let id = reply_id(about.id, kind, status);
        if self.store.get(id)?.is_some() || self.directory.get(about.from.as_str()).is_none() {
            return Ok(None);
        }
        let me = self.signer.organ_code().clone();
        let signed = match kind {
            ObjectKind::Receipt => self.signer.sign(
                ReceiptKind::Delivery,
                about,
                now,
                self.signer.checkpoint(self.store),
            ),
            _ => self.signer.sign_text(
                Notice::new(about.id.0, status, me.clone(), now, reason)
                    .to_text()
                    .as_bytes(),
            ),
        }?;
        let offer = Offer {
            id: id.0,
            from: me,
            to: about.from.clone(),
            size: signed.len() as u64,
            sealed_sha256: sha256(&signed),
            urgency: about.urgency,
            expires: 0,
            kind,
        };
        Ok(Some((offer, signed)))
    }

    fn reply_arrived(&self, record: &Record) -> Result<Outcome, InboxError> {
        let mut signed = Vec::new();
        self.store
            .object(record.id)?
            .take(MAX_REPLY)
            .read_to_end(&mut signed)
            .map_err(StoreError::from_io("reading a reply"))?;
        match self.check_reply(record, &signed) {
            Ok((target, seen)) => {
                let by = Actor::Peer(record.from.clone());
                let event = match &seen {
                    None => Event::new(EntryKind::Receipt, Some(target.0), by),
                    Some(notice) => Event::new(EntryKind::Notice, Some(target.0), by)
                        .field("status", &notice.status)
                        .field("reason", notice.reason.as_deref().unwrap_or("")),
                }
                .field("reply", record.id);
                let applied =
                    self.store
                        .apply_reply(record.id, target, &event, |r| match &seen {
                            None => r.delivery_receipt = Some(signed.clone()),
                            Some(notice) => {
                                if notice.status == "02" {
                                    r.state = DispatchState::Failed {
                                        reason: format!(
                                            "refused by {}: {}",
                                            notice.by,
                                            notice.reason.as_deref().unwrap_or("no reason given")
                                        ),
                                    };
                                }
                                r.notices.push(notice.clone());
                            }
                        })?;
                Ok(Outcome::Applied(self.store.get(target)?.unwrap_or(applied)))
            }
            Err(reason) => Ok(Outcome::Refused(self.store.refuse(record.id, reason)?)),
        }
    }

    /// Which outgoing dispatch a reply is about, and the notice it carries (`None` for a receipt).
    fn check_reply(
        &self,
        record: &Record,
        signed: &[u8],
    ) -> Result<(MessageId, Option<NoticeSeen>), String> {
        let (text, signer) =
            verify_signed_text(signed, &record.from, self.trust).map_err(|e| e.to_string())?;
        let (target, reply) = match record.kind {
            ObjectKind::Receipt => {
                let receipt = Receipt::parse(&text).map_err(|e| e.to_string())?;
                (MessageId(receipt.id), Reply::Receipt(receipt))
            }
            _ => {
                let notice = Notice::parse(&text).map_err(|e| e.to_string())?;
                if notice.by != record.from {
                    return Err("the notice names another agency".into());
                }
                (MessageId(notice.id), Reply::Notice(notice))
            }
        };
        let dispatch = self
            .store
            .get(target)
            .map_err(|e| e.to_string())?
            .filter(|d| d.direction == Direction::Outgoing && d.to == record.from)
            .ok_or_else(|| format!("no dispatch {target} was sent to {}", record.from))?;
        let seen = match reply {
            Reply::Receipt(receipt) => {
                check_receipt(&receipt, &dispatch, &record.from).map_err(|e| e.to_string())?;
                if let Err(e) = crate::witness::keep(self.store, &receipt, &signer) {
                    tracing::error!(peer = %record.from, error = %e, "peer checkpoint");
                }
                None
            }
            Reply::Notice(n) => Some(NoticeSeen {
                status: n.status,
                by: n.by,
                time: n.time.unix_timestamp(),
                reason: n.reason,
            }),
        };
        Ok((target, seen))
    }
}

/// What a reply says, once its signature checked.
enum Reply {
    Receipt(Receipt),
    Notice(Notice),
}

/// An opening error as the sender's clerk reads it: the message and its stable code.
fn describe(e: vdx_crypto::Error) -> String {
    format!("{} ({})", e, e.code())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
