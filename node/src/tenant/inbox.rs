//! What happens to an object once it is stored here: a dispatch for us is opened and verified
//! (DESIGN §3 "Open"), registered with its incoming number and answered with a signed delivery
//! receipt and status notice 01 — or refused, answered with notice 02 and deleted; a reply (receipt
//! or notice) is checked and applied to the outgoing dispatch it is about.
//!
//! Every step may be repeated after a crash: replies are queued under fixed ids (queued once), and
//! registering or applying is one store transaction that also takes the object off the arrivals.
//! Each opening attempt is counted durably before it starts; an arrival that [`MAX_OPEN_ATTEMPTS`]
//! attempts did not settle (each failed, or killed the process) is not opened again but refused to
//! its sender and kept aside for the operator, so that no object can make the node fail at every
//! restart.

use std::io::{self, BufReader, Read};

use openssl::x509::X509;
use time::OffsetDateTime;
use vdx_crypto::{Opener, PrivateKey};
use vdx_pki::{IndexedDirectory, TrustStore};
use vdx_protocol::header::DispatchHeader;
use vdx_protocol::hex;
use vdx_protocol::ledger::{Actor, EntryKind};
use vdx_protocol::notice::Notice;
use vdx_protocol::package::read_package;
use vdx_protocol::receipt::{Receipt, ReceiptKind};
use vdx_protocol::replies;
use vdx_protocol::wire::{ObjectKind, Offer};

use crate::store::{
    Direction, DispatchState, Event, MessageId, NoticeSeen, OpenAttempt, Record, Store, StoreError,
    INLINE_MAX,
};
use crate::tenant::compose::{reply_id, transfer_id, uuid_bytes};
use crate::tenant::receipts::{check_receipt, verify_signed_text, ReceiptSigner};

/// Largest reply object read (receipts and notices are a few KiB).
const MAX_REPLY: u64 = 64 * 1024;

/// Attempts to open one arrival before it is kept aside: one for the opening, and two more for a
/// failure that was not the object's (a full disk, a restart in the middle).
pub const MAX_OPEN_ATTEMPTS: u32 = 3;

/// Why an arrival could not be processed now; it stays an arrival and is processed again later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our receipt or notice could not be signed.
    #[error("cannot sign a reply: {0}")]
    Sign(#[from] crate::tenant::receipts::ReceiptError),
}

/// What became of an arrival.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// A dispatch, opened, verified and numbered.
    Registered(Record),
    /// Refused, with the reason kept in the record.
    Refused(Record),
    /// Not settled by [`MAX_OPEN_ATTEMPTS`] attempts: refused to its sender, kept for the operator.
    KeptAside(Record),
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
    pub directory: &'a IndexedDirectory,
}

impl Inbox<'_> {
    /// Processes one arrival (a record in state `Received`): counts the attempt durably, then
    /// opens or applies it; or, past [`MAX_OPEN_ATTEMPTS`], keeps it aside unopened.
    pub fn process(&self, record: &Record, now: OffsetDateTime) -> Result<Outcome, InboxError> {
        if let OpenAttempt::Exhausted(attempts) =
            self.store.begin_open(record.id, MAX_OPEN_ATTEMPTS)?
        {
            return self.keep_aside(record, attempts, now);
        }
        match record.kind {
            ObjectKind::Dispatch => self.dispatch(record, now),
            _ => self.reply_arrived(record),
        }
    }

    fn dispatch(&self, record: &Record, now: OffsetDateTime) -> Result<Outcome, InboxError> {
        match self.open(record) {
            Ok(header) => {
                // The delivery receipt and notice 01 travel back as one object.
                let replies: Vec<_> = self
                    .reply(record, ObjectKind::Replies, "01", || {
                        let receipt = self.signer.sign(
                            ReceiptKind::Delivery,
                            record,
                            now,
                            self.signer.receipt_checkpoint(self.store),
                        )?;
                        let notice = self.notice(record, "01", None, now)?;
                        Ok(replies::join(&[&receipt, &notice]))
                    })?
                    .into_iter()
                    .collect();
                let year = now.to_offset(crate::tenant::compose::VIETNAM).year();
                let secs = now.unix_timestamp() as u64;
                Ok(Outcome::Registered(
                    self.store
                        .register(record.id, &header, year, &replies, secs)?,
                ))
            }
            Err(reason) => {
                self.send_refusal(record, &reason, now)?;
                Ok(Outcome::Refused(self.store.refuse(record.id, reason)?))
            }
        }
    }

    /// Queues notice 02 with `reason` back to the dispatch's sender (once, under its fixed id).
    fn send_refusal(
        &self,
        record: &Record,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), InboxError> {
        let refusal = self.reply(record, ObjectKind::Notice, "02", || {
            self.notice(record, "02", Some(reason), now)
        })?;
        if let Some((offer, signed)) = refusal {
            self.store
                .submit(&offer, signed.as_slice(), now.unix_timestamp() as u64)?;
        }
        Ok(())
    }

    /// Refuses an arrival that `attempts` openings did not settle, keeping its object: a dispatch
    /// is answered with notice 02 (a reply is not answered, as no refused reply is).
    fn keep_aside(
        &self,
        record: &Record,
        attempts: u32,
        now: OffsetDateTime,
    ) -> Result<Outcome, InboxError> {
        let reason =
            format!("could not be opened after {attempts} attempts; kept aside for the operator");
        if record.kind == ObjectKind::Dispatch {
            self.send_refusal(record, &reason, now)?;
        }
        Ok(Outcome::KeptAside(
            self.store.keep_aside(record.id, reason)?,
        ))
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
        // The sender checked this against its directory; ours may say less (a newer zone, or a
        // pilot's hand-made entry at the sender): refused, and the sender told why.
        let allowed = self
            .directory
            .get(me.as_str())
            .and_then(|e| e.max_classification.as_deref());
        crate::classification::may_receive(me.as_str(), allowed, header.classification)
            .map_err(|e| format!("refused by the classification policy: {e}"))?;
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

    /// A reply of `kind` about `about` for its sender (what `sign` makes) and its offer, unless
    /// it is already queued (or the sender is not in the directory, so cannot be answered): then
    /// nothing is signed.
    fn reply(
        &self,
        about: &Record,
        kind: ObjectKind,
        status: &str,
        sign: impl FnOnce() -> Result<Vec<u8>, InboxError>,
    ) -> Result<Option<(Offer, Vec<u8>)>, InboxError> {
        let id = reply_id(about.id, kind, status);
        if self.store.get(id)?.is_some() || self.directory.get(about.from.as_str()).is_none() {
            return Ok(None);
        }
        let signed = sign()?;
        let offer = Offer {
            id: id.0,
            from: self.signer.organ_code().clone(),
            to: about.from.clone(),
            size: signed.len() as u64,
            sealed_sha256: sha256(&signed),
            urgency: about.urgency,
            expires: 0,
            kind,
            hops: 0,
        };
        Ok(Some((offer, signed)))
    }

    /// A signed status notice about `about`.
    fn notice(
        &self,
        about: &Record,
        status: &str,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, InboxError> {
        let notice = Notice::new(
            about.id.0,
            status,
            self.signer.organ_code().clone(),
            now,
            reason,
        );
        Ok(self.signer.sign_text(notice.to_text().as_bytes())?)
    }

    fn reply_arrived(&self, record: &Record) -> Result<Outcome, InboxError> {
        let mut signed = Vec::new();
        self.store
            .object(record.id)?
            .take(MAX_REPLY)
            .read_to_end(&mut signed)
            .map_err(StoreError::from_io("reading a reply"))?;
        let (target, parts) = match self.check_reply(record, &signed) {
            Ok(checked) => checked,
            Err(reason) => return Ok(Outcome::Refused(self.store.refuse(record.id, reason)?)),
        };
        // Only a reply accepted whole leaves its signer's checkpoint with us.
        for part in &parts {
            if let Part::Receipt {
                receipt, signer, ..
            } = part
            {
                if let Err(e) = crate::tenant::witness::keep(self.store, receipt, signer) {
                    tracing::error!(peer = %record.from, error = %e, "peer checkpoint");
                }
            }
        }
        let by = Actor::Peer(record.from.clone());
        let events: Vec<Event> = parts
            .iter()
            .map(|part| {
                match part {
                    Part::Receipt { .. } => {
                        Event::new(EntryKind::Receipt, Some(target.0), by.clone())
                    }
                    Part::Notice(notice) => {
                        Event::new(EntryKind::Notice, Some(target.0), by.clone())
                            .field("status", &notice.status)
                            .field("reason", notice.reason.as_deref().unwrap_or(""))
                    }
                }
                .field("reply", record.id)
            })
            .collect();
        let applied = self.store.apply_reply(record.id, target, &events, |r| {
            for part in &parts {
                match part {
                    Part::Receipt { signed, .. } => r.delivery_receipt = Some(signed.clone()),
                    Part::Notice(notice) => {
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
                }
            }
        })?;
        Ok(Outcome::Applied(self.store.get(target)?.unwrap_or(applied)))
    }

    /// Which outgoing dispatch a reply is about, and what it says: a receipt, a notice, or (kind
    /// 3) a delivery receipt and notice 01, each checked as if it had come alone.
    fn check_reply(
        &self,
        record: &Record,
        signed: &[u8],
    ) -> Result<(MessageId, Vec<Part>), String> {
        let parts: Vec<(&[u8], ObjectKind)> = match record.kind {
            ObjectKind::Replies => {
                let [receipt, notice] = replies::split(signed).map_err(|e| e.to_string())?;
                vec![(receipt, ObjectKind::Receipt), (notice, ObjectKind::Notice)]
            }
            kind => vec![(signed, kind)],
        };
        let mut target = None;
        let mut checked = Vec::new();
        for (part, kind) in parts {
            let (about, part) = self.check_part(record, part, kind)?;
            if target.is_some_and(|t| t != about) {
                return Err("the replies name different dispatches".into());
            }
            target = Some(about);
            checked.push(part);
        }
        let target = target.ok_or("an empty reply")?;
        if let [Part::Receipt { .. }, Part::Notice(notice)] = checked.as_slice() {
            if notice.status != "01" {
                return Err(format!(
                    "notice {} beside a delivery receipt",
                    notice.status
                ));
            }
        }
        Ok((target, checked))
    }

    /// Checks one signed reply of `kind` from `record.from`: its signature and signer, and that
    /// it names a dispatch we sent to that agency (a receipt: that dispatch exactly).
    fn check_part(
        &self,
        record: &Record,
        signed: &[u8],
        kind: ObjectKind,
    ) -> Result<(MessageId, Part), String> {
        let (text, signer) =
            verify_signed_text(signed, &record.from, self.trust).map_err(|e| e.to_string())?;
        let (target, reply) = match kind {
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
        // A recall (13) comes from the sender of a dispatch received here; every other reply
        // from the recipient of one sent from here.
        let recall = matches!(&reply, Reply::Notice(n) if n.status == "13");
        let dispatch = self
            .store
            .get(target)
            .map_err(|e| e.to_string())?
            .filter(|d| match recall {
                true => d.direction == Direction::Incoming && d.from == record.from,
                false => d.direction == Direction::Outgoing && d.to == record.from,
            })
            .ok_or_else(|| match recall {
                true => format!("no dispatch {target} came from {}", record.from),
                false => format!("no dispatch {target} was sent to {}", record.from),
            })?;
        let part = match reply {
            Reply::Receipt(receipt) => {
                check_receipt(&receipt, &dispatch, &record.from).map_err(|e| e.to_string())?;
                // A hop receipt from the recipient says custody, not delivery.
                if receipt.kind != ReceiptKind::Delivery {
                    return Err("a hop receipt where a delivery receipt belongs".into());
                }
                Part::Receipt {
                    signed: signed.to_vec(),
                    receipt,
                    signer,
                }
            }
            Reply::Notice(n) => Part::Notice(NoticeSeen {
                status: n.status,
                by: n.by,
                time: n.time.unix_timestamp(),
                reason: n.reason,
            }),
        };
        Ok((target, part))
    }
}

/// One checked part of a reply, as it is applied to our dispatch.
enum Part {
    /// The signed delivery receipt (kept with the dispatch), what it says and who signed it.
    Receipt {
        signed: Vec<u8>,
        receipt: Receipt,
        signer: X509,
    },
    Notice(NoticeSeen),
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

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};
    use vdx_pki::{Ca, TrustStore};
    use vdx_protocol::OrganCode;

    use super::*;
    use crate::testkit::{agency, owned_key, receipt_signer, role};

    /// G22 sent a dispatch to H41; replies from H41 arrive at G22 as kind 3 objects.
    #[test]
    fn signed_replies_apply_whole_or_are_refused_whole() {
        let mut ca = Ca::create("Root", vdx_crypto::KeyKind::EcP256, 30).unwrap();
        let (g22, h41) = (
            agency(&mut ca, "000.00.00.G22"),
            agency(&mut ca, "000.00.00.H41"),
        );
        let trust = TrustStore::new(vec![ca.cert().to_owned()], vec![], vec![]).unwrap();
        let (ours, theirs) = (
            receipt_signer(&g22, "000.00.00.G22"),
            receipt_signer(&h41, "000.00.00.H41"),
        );
        let (enc_cert, enc_key) = role(&g22, "enc");
        let enc_key = owned_key(enc_key);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let directory = IndexedDirectory::default();
        let inbox = Inbox {
            store: &store,
            signer: &ours,
            enc_cert: &enc_cert,
            enc_key: &enc_key,
            trust: &trust,
            directory: &directory,
        };
        let h41_code: OrganCode = "000.00.00.H41".parse().unwrap();
        let sent: Vec<Record> = [1u8, 2]
            .map(|n| {
                let body = vec![n; 100];
                let offer = Offer {
                    id: [n; 16],
                    from: ours.organ_code().clone(),
                    to: h41_code.clone(),
                    size: 100,
                    sealed_sha256: Sha256::digest(&body).into(),
                    urgency: 0,
                    expires: 0,
                    kind: ObjectKind::Dispatch,
                    hops: 0,
                };
                store.submit(&offer, &body[..], 1).unwrap()
            })
            .into();
        let now = OffsetDateTime::now_utc();
        let signed_by_them = |kind, about: &Record| theirs.sign(kind, about, now, None).unwrap();
        let receipt = |about: &Record| signed_by_them(ReceiptKind::Delivery, about);
        let notice = |about: &Record, status: &str| {
            let reason = (status == "02").then_some("bad");
            let text = Notice::new(about.id.0, status, h41_code.clone(), now, reason).to_text();
            theirs.sign_text(text.as_bytes()).unwrap()
        };
        let mut next_id = 10u8;
        let mut arrive_as = |object: Vec<u8>, kind: ObjectKind| {
            next_id += 1;
            let offer = Offer {
                id: [next_id; 16],
                from: h41_code.clone(),
                to: ours.organ_code().clone(),
                size: object.len() as u64,
                sealed_sha256: Sha256::digest(&object).into(),
                urgency: 0,
                expires: 0,
                kind,
                hops: 0,
            };
            let mut receiving = store.receive(&offer).unwrap();
            store.append_incoming(&mut receiving, 0, &object).unwrap();
            let (record, _) = store
                .complete_incoming(&offer, receiving, 2, &h41_code)
                .unwrap();
            inbox.process(&record, now).unwrap()
        };
        let mut arrive = |object: Vec<u8>| arrive_as(object, ObjectKind::Replies);

        // Not applied, each refused whole: the wrong order, notice 02 beside a receipt, parts
        // about two dispatches, a hop receipt (custody, not delivery), one part only, a cut object.
        let (first, second) = (&sent[0], &sent[1]);
        let refused = [
            replies::join(&[&notice(first, "01"), &receipt(first)]),
            replies::join(&[&receipt(first), &notice(first, "02")]),
            replies::join(&[&receipt(first), &notice(second, "01")]),
            replies::join(&[
                &signed_by_them(ReceiptKind::Hop, first),
                &notice(first, "01"),
            ]),
            replies::join(&[&receipt(first)]),
            replies::join(&[&receipt(first), &notice(first, "01")])[..200].to_vec(),
        ];
        for object in refused {
            let outcome = arrive(object);
            assert!(matches!(outcome, Outcome::Refused(_)), "{outcome:?}");
            let record = store.get(first.id).unwrap().unwrap();
            assert!(record.delivery_receipt.is_none() && record.notices.is_empty());
        }

        // Receipt then notice 01 about the same dispatch: both applied.
        let signed_receipt = receipt(first);
        let outcome = arrive(replies::join(&[&signed_receipt, &notice(first, "01")]));
        let Outcome::Applied(record) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(record.id, first.id);
        assert_eq!(
            record.delivery_receipt.as_deref(),
            Some(&signed_receipt[..])
        );
        assert_eq!(record.notices.len(), 1);
        assert_eq!(record.notices[0].status, "01");
        assert!(store.arrivals().unwrap().is_empty());

        // A refusal after the delivery receipt is listed, and fails nothing.
        let outcome = arrive_as(notice(first, "02"), ObjectKind::Notice);
        let Outcome::Applied(record) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(record.notices.len(), 2);
        assert_eq!((record.status(), record.reason()), ("delivered", None));
    }
}
