//! One dispatch over one QUIC stream (spec: `docs/wire-frames.md`): the sender offers from its store,
//! the receiver resumes from what it durably holds, and custody moves only on STORED, after the
//! receiver's store has made the object durable. The frame order is enforced by
//! `vdx_protocol::transfer`; a violation resets the stream with the spec's error code. A stream
//! may instead carry one PROVE/PROOF exchange: a witness asking for a consistency proof of this
//! node's ledger.

use std::io::{Read, Seek, SeekFrom};

use quinn::{RecvStream, SendStream, VarInt};
use sha2::{Digest, Sha256};
use vdx_protocol::merkle::Hash;
use vdx_protocol::transfer::{Inbound, InboundEvent, Outbound, OutboundEvent};
use vdx_protocol::wire::{Frame, FrameDecoder, Offer, RejectCode, WireError};
use vdx_protocol::{hex, OrganCode};

use crate::store::{MessageId, ObjectReader, Problem, Record, Store, StoreError, INLINE_MAX};

/// Bytes per DATA frame.
const CHUNK: usize = 256 * 1024;
/// How long a sender whose DATA was stopped waits for the receiver's REJECT.
const REJECT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a transfer stopped before an answer. The dispatch stays queued; the scheduler retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The peer broke the protocol (the stream was reset with the matching code).
    #[error("protocol violation: {0}")]
    Wire(#[from] WireError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The connection or stream failed.
    #[error("connection: {0}")]
    Connection(String),
    /// The stream ended before the exchange did.
    #[error("the peer closed the stream early")]
    Closed,
    /// The next hop answered STORED with a receipt that does not check: custody is not taken as
    /// moved, and the dispatch stays queued.
    #[error("unacceptable receipt: {0}")]
    BadReceipt(String),
    /// The peer refused a request (a PROVE it cannot answer).
    #[error("refused: {0}")]
    Refused(String),
    /// The peer's ledger is shorter than a size it signed a checkpoint of (PROVE answered
    /// `short_ledger`): it lost or rolled back part of its history.
    #[error("the peer's ledger is shorter than it signed: {0}")]
    ShortLedger(String),
    /// The stored object is deleted, cut or changed: it cannot be delivered, and the dispatch
    /// is marked failed with this reason (nothing of it was taken as delivered).
    #[error("dispatch {id}: the stored object is damaged: {problem}")]
    Damaged {
        /// Which dispatch.
        id: MessageId,
        /// What is wrong with its object.
        problem: Problem,
    },
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// Custody moved; the receipt is stored with the record.
    Stored {
        /// The next hop's receipt.
        receipt: Vec<u8>,
        /// Where the transfer resumed (0 for a fresh one; the size for a repeat).
        resumed_from: u64,
    },
    /// The next hop refused; permanent refusals mark the dispatch failed.
    Rejected {
        /// Why.
        code: RejectCode,
        /// Why, in words.
        reason: String,
    },
}

fn connection(e: impl std::fmt::Display) -> TransferError {
    TransferError::Connection(e.to_string())
}

/// Frames out of a receive stream.
pub(crate) struct FrameReader {
    recv: RecvStream,
    decoder: FrameDecoder,
    buf: Vec<u8>,
}

impl FrameReader {
    pub(crate) fn new(recv: RecvStream) -> Self {
        Self {
            recv,
            decoder: FrameDecoder::new(),
            buf: vec![0; 64 * 1024],
        }
    }

    /// Takes ZONE frames (up to 4 MiB) from now on: the stream exchanges zones.
    pub(crate) fn allow_zones(&mut self) {
        self.decoder.allow_zones();
    }

    pub(crate) async fn next(&mut self) -> Result<Frame, TransferError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(frame);
            }
            match self.recv.read(&mut self.buf).await.map_err(connection)? {
                Some(n) => self.decoder.feed(&self.buf[..n]),
                None => return Err(TransferError::Closed),
            }
        }
    }
}

pub(crate) async fn write_frame(send: &mut SendStream, frame: &Frame) -> Result<(), TransferError> {
    let mut out = Vec::new();
    frame.encode(&mut out)?;
    send.write_all(&out).await.map_err(connection)
}

/// Resets both directions with the code of a protocol violation, so the peer learns why.
pub(crate) fn close_with(send: &mut SendStream, reader: &mut FrameReader, error: &TransferError) {
    if let TransferError::Wire(e) = error {
        let code = VarInt::from_u32(e.stream_code());
        let _ = send.reset(code);
        let _ = reader.recv.stop(code);
    }
}

/// Checks a hop receipt for a record before custody is taken as moved (see
/// `receipts::verify_receipt`); returns the organ code that signed it.
pub type ReceiptCheck<'a> = &'a (dyn Fn(&Record, &[u8]) -> Result<OrganCode, String> + Sync);

/// Sends the queued dispatch `id` over a new stream of `conn`, and records the outcome.
pub async fn send_dispatch(
    conn: &quinn::Connection,
    store: &Store,
    id: MessageId,
    check_receipt: ReceiptCheck<'_>,
) -> Result<SendOutcome, TransferError> {
    let record = store.get(id)?.ok_or(StoreError::NotFound(id))?;
    let offer = offer_of(&record)?;
    let result = match object_to_send(store, &record) {
        Ok(object) => {
            let (mut send, recv) = conn.open_bi().await.map_err(connection)?;
            let mut reader = FrameReader::new(recv);
            let result = drive_send(&mut send, &mut reader, object, offer).await;
            if let Err(e) = &result {
                close_with(&mut send, &mut reader, e);
            }
            result
        }
        Err(e) => Err(e),
    };
    settle(store, &record, result, check_receipt)
}

/// Records what came of handing over `record`: sent (the hop receipt checked), failed for good
/// (a damaged object, a permanent refusal), or one more attempt.
fn settle(
    store: &Store,
    record: &Record,
    result: Result<SendOutcome, TransferError>,
    check_receipt: ReceiptCheck<'_>,
) -> Result<SendOutcome, TransferError> {
    let id = record.id;
    if let Err(TransferError::Damaged { problem, .. }) = &result {
        // Sending it again would not mend it: failed, with the reason the clerk sees.
        tracing::error!(%id, to = %record.to, %problem, "the stored object is damaged: not sent");
        store.mark_failed(id, format!("the stored object is damaged: {problem}"))?;
        return result;
    }
    let rejected = match result {
        Ok(SendOutcome::Stored {
            receipt,
            resumed_from,
        }) => match check_receipt(record, &receipt) {
            Ok(by) => {
                // Counts this attempt too, in the same transaction.
                store.mark_sent(id, receipt.clone(), &by)?;
                return Ok(SendOutcome::Stored {
                    receipt,
                    resumed_from,
                });
            }
            Err(e) => Err(TransferError::BadReceipt(e)),
        },
        Ok(SendOutcome::Rejected { code, reason }) => Ok((code, reason)),
        Err(e) => Err(e),
    };
    store.record_attempt(id)?;
    let (code, reason) = rejected?;
    if code.is_permanent() {
        store.mark_failed(id, format!("refused by the next hop: {reason}"))?;
    }
    Ok(SendOutcome::Rejected { code, reason })
}

/// Hands the queued object `id` of `store` to `custody`, an agency hosted by this same node,
/// without the network (DESIGN §1): the same steps as over QUIC — the offer admitted by
/// `admit`, the object taken into the receiver's store with its digest checked and made
/// durable, a hop receipt signed by the receiver and checked by `check_receipt` — with the
/// bytes copied from one store to the other. `host` is recorded as the hop it came through.
pub fn hand_over_locally<C: Custody>(
    store: &Store,
    id: MessageId,
    admit: impl FnOnce(&Offer) -> Result<C, (RejectCode, String)>,
    host: &OrganCode,
    now: u64,
    check_receipt: ReceiptCheck<'_>,
) -> Result<SendOutcome, TransferError> {
    let record = store.get(id)?.ok_or(StoreError::NotFound(id))?;
    let offer = offer_of(&record)?;
    let result = object_to_send(store, &record).and_then(|object| match admit(&offer) {
        Err((code, reason)) => Ok(SendOutcome::Rejected { code, reason }),
        Ok(custody) => take_locally(&custody, &offer, object, host, now),
    });
    settle(store, &record, result, check_receipt)
}

/// What `store` already holds under `offer`'s id: `Ok` the same object, made durable first (a
/// repeat whose STORED was lost is answered again, exactly once stored; its record may be
/// committed but not yet flushed, and custody is acknowledged only once it is on disk), `Err`
/// the refusal of a different object under that id; `None` when nothing is.
fn stored_before(
    store: &Store,
    offer: &Offer,
) -> Result<Option<Result<Record, String>>, TransferError> {
    let id = MessageId(offer.id);
    let Some(existing) = store.get(id)? else {
        return Ok(None);
    };
    if existing.size != offer.size || existing.sealed_digest()? != offer.sealed_sha256 {
        return Ok(Some(Err(format!(
            "a different object is already stored under id {id}"
        ))));
    }
    store.flush()?;
    Ok(Some(Ok(existing)))
}

/// The receiving half of [`hand_over_locally`]: what `drive_receive` does with an offer and its
/// chunks, from a reader.
fn take_locally(
    custody: &impl Custody,
    offer: &Offer,
    mut object: impl Read + Seek,
    host: &OrganCode,
    now: u64,
) -> Result<SendOutcome, TransferError> {
    let to = custody.store();
    match stored_before(to, offer)? {
        Some(Ok(existing)) => {
            return Ok(SendOutcome::Stored {
                receipt: custody.receipt(&existing),
                resumed_from: 0,
            })
        }
        Some(Err(reason)) => {
            return Ok(SendOutcome::Rejected {
                code: RejectCode::BadOffer,
                reason,
            })
        }
        None => {}
    }
    let mut receiving = to.receive(offer)?;
    let resumed_from = receiving.resume_from().min(offer.size);
    object
        .seek(SeekFrom::Start(resumed_from))
        .map_err(StoreError::from_io("reading the object to hand over"))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut offset = resumed_from;
    loop {
        let n = object
            .read(&mut buf)
            .map_err(StoreError::from_io("reading the object to hand over"))?;
        if n == 0 {
            break;
        }
        to.append_incoming(&mut receiving, offset, &buf[..n])?;
        offset += n as u64;
    }
    let (record, _) = to.complete_incoming(offer, receiving, now, host)?;
    Ok(SendOutcome::Stored {
        receipt: custody.receipt(&record),
        resumed_from,
    })
}

/// The object of `record`, ready to send: a small one checked against its digest here (it is
/// at most 64 KiB), a spool file of the recorded size (its digest is checked as it is streamed,
/// see [`drive_send`]). A deleted, cut or (small) changed object is [`TransferError::Damaged`].
fn object_to_send(store: &Store, record: &Record) -> Result<ObjectReader, TransferError> {
    let object = if record.size <= INLINE_MAX {
        store.checked_object(record)?
    } else {
        store.sized_object(record)?
    };
    object.map_err(|problem| match problem {
        Problem::Unreadable { error } => {
            // Perhaps a permission the operator can mend: retried, not failed.
            TransferError::Store(StoreError::Corrupt(format!(
                "the object of {} cannot be read: {error}",
                record.id
            )))
        }
        problem => TransferError::Damaged {
            id: record.id,
            problem,
        },
    })
}

/// Hashes the first `len` bytes of `object` (those the next hop already holds), in pieces,
/// letting other tasks run between them.
async fn hash_prefix(
    object: &mut ObjectReader,
    len: u64,
    hasher: &mut Sha256,
) -> Result<(), TransferError> {
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        object
            .read_exact(&mut buf[..n])
            .map_err(StoreError::from_io("reading an object"))?;
        hasher.update(&buf[..n]);
        left -= n as u64;
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Drives one transfer of `object`. Its SHA-256 is computed over the whole object as it is sent
/// (the prefix a resumed transfer skips is read and hashed first): before the last DATA frame
/// leaves, a digest other than the offered one answers the next hop with REJECT (`corrupt`)
/// instead, so that nothing damaged is ever stored there, and the transfer ends as
/// [`TransferError::Damaged`].
async fn drive_send(
    send: &mut SendStream,
    reader: &mut FrameReader,
    mut object: ObjectReader,
    offer: Offer,
) -> Result<SendOutcome, TransferError> {
    let id = MessageId(offer.id);
    let (size, offered) = (offer.size, offer.sealed_sha256);
    let (mut machine, first) = Outbound::new(offer);
    write_frame(send, &first).await?;
    let mut resumed_from = 0;
    loop {
        match machine.handle(reader.next().await?)? {
            OutboundEvent::SendFrom(offset) => {
                resumed_from = offset;
                let mut hasher = Sha256::new();
                if offset < size {
                    object
                        .seek(SeekFrom::Start(0))
                        .map_err(StoreError::from_io("reading an object"))?;
                    hash_prefix(&mut object, offset, &mut hasher).await?;
                }
                while let Some((offset, len)) = machine.next_chunk(CHUNK) {
                    let mut bytes = vec![0; len];
                    object
                        .read_exact(&mut bytes)
                        .map_err(StoreError::from_io("reading an object"))?;
                    hasher.update(&bytes);
                    if offset + len as u64 == size {
                        let found: [u8; 32] = hasher.clone().finalize().into();
                        if found != offered {
                            let reason = "the sender's stored object is damaged";
                            let reject = Frame::Reject {
                                code: RejectCode::Corrupt,
                                reason: reason.into(),
                            };
                            let _ = write_frame(send, &reject).await;
                            let _ = send.finish();
                            return Err(TransferError::Damaged {
                                id,
                                problem: Problem::Digest {
                                    recorded: hex::encode(&offered),
                                    found: hex::encode(&found),
                                },
                            });
                        }
                    }
                    if let Err(e) = write_frame(send, &Frame::Data { offset, bytes }).await {
                        // A receiver that refuses mid-transfer (a full disk) stops reading; its
                        // REJECT, already on the way, says why.
                        let answer = tokio::time::timeout(REJECT_GRACE, reader.next()).await;
                        if let Ok(Ok(frame)) = answer {
                            if let OutboundEvent::Rejected { code, reason } =
                                machine.handle(frame)?
                            {
                                return Ok(SendOutcome::Rejected { code, reason });
                            }
                        }
                        return Err(e);
                    }
                }
            }
            OutboundEvent::Stored(receipt) => {
                let _ = send.finish();
                return Ok(SendOutcome::Stored {
                    receipt,
                    resumed_from,
                });
            }
            OutboundEvent::Rejected { code, reason } => {
                return Ok(SendOutcome::Rejected { code, reason })
            }
            _ => return Err(WireError::Unexpected("unknown outbound event").into()),
        }
    }
}

fn offer_of(record: &Record) -> Result<Offer, TransferError> {
    let sha = record.sealed_digest()?;
    Ok(Offer {
        id: record.id.0,
        from: record.from.clone(),
        to: record.to.clone(),
        size: record.size,
        sealed_sha256: sha,
        urgency: record.urgency,
        expires: record.expires,
        kind: record.kind,
        hops: record.hops,
    })
}

/// What the receiving node decides about an offer, and how it signs custody.
pub trait ReceivePolicy {
    /// Who takes custody of an admitted offer: the agency it is for, or that relays it.
    type Custody<'a>: Custody
    where
        Self: 'a;
    /// Who takes `offer` from `peer` (the TLS peer's organ code), or a refusal the sender's
    /// clerk will read.
    fn admit<'a>(
        &'a self,
        offer: &Offer,
        peer: &OrganCode,
    ) -> Result<Self::Custody<'a>, (RejectCode, String)>;
    /// The store whose ledger PROVE and HELD speak of: the host's own agency's (the peer knows
    /// the node by its TLS identity, which is that agency's).
    fn ledger(&self) -> &Store;
    /// Unix seconds, for the record.
    fn now(&self) -> u64;
    /// An offer was answered with REJECT `code` (counted for monitoring).
    fn refused(&self, _code: RejectCode) {}
    /// `peer` handed over the newest checkpoint of our ledger it holds (HELD; maybe empty).
    fn held(&self, _peer: &OrganCode, _note: &[u8]) {}
    /// `peer` listed the directory zones it has (ZONES): the files of ours it lacks, and the
    /// versions of ours. None on a node without a signed directory.
    fn zones_for(
        &self,
        _peer: &OrganCode,
        _theirs: &[(String, u64)],
    ) -> (Vec<Vec<u8>>, Vec<(String, u64)>) {
        (Vec::new(), Vec::new())
    }
    /// `peer` sent a zone file (ZONE): checked, and taken up if it passes.
    fn zone_received(&self, _peer: &OrganCode, _file: &[u8]) {}
    /// What bounds the zone exchanges answered at once (each may hold a 4 MiB frame); none: no
    /// bound.
    fn zone_streams(&self) -> Option<&tokio::sync::Semaphore> {
        None
    }
}

/// The agency that takes custody of an incoming object: where it is stored, and who signs the
/// hop receipt.
pub trait Custody {
    /// Where the object and its record go.
    fn store(&self) -> &Store;
    /// The hop receipt for a stored object.
    fn receipt(&self, record: &Record) -> Vec<u8>;
}

/// Asks the peer on `conn` for the consistency proof of its ledger between sizes `old` and `new`.
pub async fn ask_consistency(
    conn: &quinn::Connection,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, TransferError> {
    let (mut send, recv) = conn.open_bi().await.map_err(connection)?;
    let mut reader = FrameReader::new(recv);
    write_frame(&mut send, &Frame::Prove { old, new }).await?;
    let _ = send.finish();
    match reader.next().await? {
        Frame::Proof { hashes } => Ok(hashes),
        Frame::Reject {
            code: RejectCode::ShortLedger,
            reason,
        } => Err(TransferError::ShortLedger(reason)),
        Frame::Reject { reason, .. } => Err(TransferError::Refused(reason)),
        _ => Err(WireError::Unexpected("PROVE is answered by PROOF or REJECT").into()),
    }
}

/// Hands the peer on `conn` the newest checkpoint of its ledger we hold (`theirs`, maybe empty)
/// and asks for the newest of ours it holds (HELD/NOTE); an empty note when it holds none.
pub async fn exchange_held(
    conn: &quinn::Connection,
    theirs: Vec<u8>,
) -> Result<Vec<u8>, TransferError> {
    let (mut send, recv) = conn.open_bi().await.map_err(connection)?;
    let mut reader = FrameReader::new(recv);
    write_frame(&mut send, &Frame::Held { note: theirs }).await?;
    let _ = send.finish();
    match reader.next().await? {
        Frame::Note { note } => Ok(note),
        Frame::Reject { reason, .. } => Err(TransferError::Refused(reason)),
        _ => Err(WireError::Unexpected("HELD is answered by NOTE or REJECT").into()),
    }
}

/// Serves one incoming stream from `peer` (the TLS peer's organ code): returns the stored record,
/// `None` when refused, a repeat, or a PROVE answered.
pub async fn receive_dispatch(
    mut send: SendStream,
    recv: RecvStream,
    policy: &impl ReceivePolicy,
    peer: &OrganCode,
) -> Result<Option<Record>, TransferError> {
    let mut reader = FrameReader::new(recv);
    let result = drive_receive(&mut send, &mut reader, policy, peer).await;
    match &result {
        Err(e) => close_with(&mut send, &mut reader, e),
        Ok(_) => {
            let _ = send.finish();
            let _ = send.stopped().await;
        }
    }
    result
}

async fn drive_receive(
    send: &mut SendStream,
    reader: &mut FrameReader,
    policy: &impl ReceivePolicy,
    peer: &OrganCode,
) -> Result<Option<Record>, TransferError> {
    let mut machine = Inbound::new();
    let first = reader.next().await?;
    let store = policy.ledger();
    if let Frame::Prove { old, new } = first {
        let durable = store.durable_ledger_size();
        let answer = match store.consistency_proof(old, new) {
            _ if new > durable => Frame::Reject {
                code: RejectCode::ShortLedger,
                reason: format!("the ledger has {durable} entries, not {new}"),
            },
            Ok(hashes) => Frame::Proof { hashes },
            Err(e) => Frame::Reject {
                code: RejectCode::BadOffer,
                reason: e.to_string(),
            },
        };
        write_frame(send, &answer).await?;
        return Ok(None);
    }
    if let Frame::Held { note: ours } = first {
        // Compared (and a restore noticed, durably) before the answer: the peer sends nothing
        // else on this connection until it has it.
        policy.held(peer, &ours);
        let origin = vdx_protocol::ledger::Checkpoint::origin_of(peer);
        let note = store.newest_witnessed(&origin)?.unwrap_or_default();
        write_frame(send, &Frame::Note { note }).await?;
        return Ok(None);
    }
    if let Frame::Zones { versions } = first {
        crate::net::zones::answer(send, reader, policy, peer, &versions).await?;
        return Ok(None);
    }
    let InboundEvent::Offered(offer) = machine.handle(first)? else {
        return Err(WireError::Unexpected("the first frame must be OFFER").into());
    };
    let id = MessageId(offer.id);
    let custody = match policy.admit(&offer, peer) {
        Ok(custody) => custody,
        Err((code, reason)) => {
            refuse(send, &mut machine, policy, code, reason).await?;
            return Ok(None);
        }
    };
    let store = custody.store();
    if let Some(earlier) = stored_before(store, &offer)? {
        let existing = match earlier {
            Ok(existing) => existing,
            Err(reason) => {
                refuse(send, &mut machine, policy, RejectCode::BadOffer, reason).await?;
                return Ok(None);
            }
        };
        let accept = machine.accept(offer.size)?;
        write_frame(send, &accept).await?;
        write_frame(
            send,
            &Frame::Stored {
                receipt: custody.receipt(&existing),
            },
        )
        .await?;
        return Ok(None);
    }
    let mut receiving = store.receive(&offer)?;
    let resume = receiving.resume_from().min(offer.size);
    if resume > 0 {
        tracing::info!(%id, from = %offer.from, resume_from = resume, size = offer.size, "resuming a cut transfer");
    }
    write_frame(send, &machine.accept(resume)?).await?;
    while !machine.is_complete() {
        match machine.handle(reader.next().await?)? {
            InboundEvent::Chunk { offset, bytes, .. } => {
                if let Err(e) = store.append_incoming(&mut receiving, offset, &bytes) {
                    refuse(send, &mut machine, policy, reject_code(&e), e.to_string()).await?;
                    return Err(e.into());
                }
            }
            InboundEvent::Rejected { code, reason } => {
                if code == RejectCode::Corrupt {
                    tracing::warn!(%id, from = %offer.from, %reason, "the sender gave up its damaged object");
                    store.abandon_incoming(receiving)?;
                }
                return Ok(None);
            }
            _ => return Err(WireError::Unexpected("frame not allowed while receiving").into()),
        }
    }
    match store.complete_incoming(&offer, receiving, policy.now(), peer) {
        Ok((record, _)) => {
            let stored = Frame::Stored {
                receipt: custody.receipt(&record),
            };
            // Custody is taken once stored, whether or not the sender hears it (it offers again,
            // and is answered as a repeat).
            if let Err(e) = write_frame(send, &stored).await {
                tracing::warn!(%id, error = %e, "stored, but STORED did not reach the sender");
            }
            Ok(Some(record))
        }
        Err(e) => {
            refuse(send, &mut machine, policy, reject_code(&e), e.to_string()).await?;
            Err(e.into())
        }
    }
}

async fn refuse(
    send: &mut SendStream,
    machine: &mut Inbound,
    policy: &impl ReceivePolicy,
    code: RejectCode,
    reason: String,
) -> Result<(), TransferError> {
    policy.refused(code);
    write_frame(send, &machine.reject(code, reason)).await
}

fn reject_code(e: &StoreError) -> RejectCode {
    match e {
        StoreError::DiskFull(_) => RejectCode::DiskFull,
        StoreError::DigestMismatch(_) | StoreError::SizeMismatch { .. } => RejectCode::Corrupt,
        StoreError::Conflict(_) => RejectCode::BadOffer,
        _ => RejectCode::Internal,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sha2::{Digest, Sha256};
    use vdx_crypto::KeyKind;
    use vdx_pki::Ca;

    use time::OffsetDateTime;
    use vdx_pki::TrustStore;
    use vdx_protocol::receipt::ReceiptKind;

    use super::*;
    use crate::net::tls::{client_config, server_config};
    use crate::store::DispatchState;
    use crate::tenant::receipts::{verify_receipt, ReceiptSigner};
    use crate::testkit::{agency, policy, receipt_signer, tls_identity};

    /// Receives for 000.00.00.H41 only, into its store, and signs real hop receipts.
    struct ForH41(ReceiptSigner, Arc<Store>);

    impl Custody for &ForH41 {
        fn store(&self) -> &Store {
            &self.1
        }
        fn receipt(&self, record: &Record) -> Vec<u8> {
            self.0
                .sign(ReceiptKind::Hop, record, OffsetDateTime::now_utc(), None)
                .unwrap_or_default()
        }
    }

    impl ReceivePolicy for ForH41 {
        type Custody<'a> = &'a Self;
        fn admit<'a>(
            &'a self,
            offer: &Offer,
            _peer: &OrganCode,
        ) -> Result<&'a Self, (RejectCode, String)> {
            if offer.to.as_str() == "000.00.00.H41" {
                Ok(self)
            } else {
                Err((
                    RejectCode::NotForUs,
                    format!("{} is not served here", offer.to),
                ))
            }
        }
        fn ledger(&self) -> &Store {
            &self.1
        }
        fn now(&self) -> u64 {
            1_800_000_000
        }
    }

    struct Network {
        sender: Store,
        trust: Arc<TrustStore>,
        receiver: Arc<Store>,
        conn: quinn::Connection,
        _dirs: (tempfile::TempDir, tempfile::TempDir),
    }

    async fn network() -> Network {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let g22 = agency(&mut ca, "000.00.00.G22");
        let h41 = agency(&mut ca, "000.00.00.H41");
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let receiver = Arc::new(Store::open(dirs.1.path()).unwrap());
        let receipts = Arc::new(ForH41(
            receipt_signer(&h41, "000.00.00.H41"),
            receiver.clone(),
        ));
        let (chain, key) = tls_identity(&h41);
        let server = quinn::Endpoint::server(
            server_config(&chain, key, policy(&ca, &["000.00.00.G22"])).unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            while let Some(incoming) = server.accept().await {
                let receipts = receipts.clone();
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((send, recv)) = conn.accept_bi().await {
                        let receipts = receipts.clone();
                        tokio::spawn(async move {
                            let g22 = "000.00.00.G22".parse().unwrap();
                            let _ = receive_dispatch(send, recv, receipts.as_ref(), &g22).await;
                        });
                    }
                });
            }
        });
        let trust = Arc::new(TrustStore::new(vec![ca.cert().to_owned()], vec![], vec![]).unwrap());
        let (chain, key) = tls_identity(&g22);
        let client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = client
            .connect_with(
                client_config(&chain, key, policy(&ca, &["000.00.00.H41"])).unwrap(),
                addr,
                "h41",
            )
            .unwrap()
            .await
            .unwrap();
        Network {
            sender: Store::open(dirs.0.path()).unwrap(),
            trust,
            receiver,
            conn,
            _dirs: dirs,
        }
    }

    impl Network {
        async fn send(&self, store: &Store, id: MessageId) -> Result<SendOutcome, TransferError> {
            let trust = self.trust.clone();
            let check = move |record: &Record, receipt: &[u8]| {
                let h41 = "000.00.00.H41"
                    .parse()
                    .map_err(|_| "organ code".to_owned())?;
                verify_receipt(receipt, record, &h41, &trust)
                    .map(|v| v.receipt.by)
                    .map_err(|e| e.to_string())
            };
            send_dispatch(&self.conn, store, id, &check).await
        }
    }

    fn stored(store: &Store, id: MessageId) -> Vec<u8> {
        let mut bytes = Vec::new();
        store.object(id).unwrap().read_to_end(&mut bytes).unwrap();
        bytes
    }

    fn submit(store: &Store, n: u8, to: &str, body: &[u8]) -> MessageId {
        let offer = Offer {
            id: [n; 16],
            from: "000.00.00.G22".parse().unwrap(),
            to: to.parse().unwrap(),
            size: body.len() as u64,
            sealed_sha256: Sha256::digest(body).into(),
            urgency: 3,
            expires: 2_000_000_000,
            kind: vdx_protocol::wire::ObjectKind::Dispatch,
            hops: 0,
        };
        store.submit(&offer, body, 1).unwrap();
        MessageId(offer.id)
    }

    #[tokio::test]
    async fn a_dispatch_arrives_once_byte_identical_and_custody_moves() {
        let net = network().await;
        let body: Vec<u8> = (0..3 * 1024 * 1024 + 5)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let id = submit(&net.sender, 1, "000.00.00.H41", &body);
        let outcome = net.send(&net.sender, id).await.unwrap();
        let SendOutcome::Stored {
            receipt,
            resumed_from: 0,
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(stored(&net.receiver, id), body);
        assert_eq!(
            net.receiver.get(id).unwrap().unwrap().state,
            DispatchState::Received
        );
        let sent = net.sender.get(id).unwrap().unwrap();
        assert!(
            matches!(&sent.state, DispatchState::Sent { receipt: r, held_by: Some(by) } if *r == receipt && by.as_str() == "000.00.00.H41"),
            "{:?}",
            sent.state
        );
        assert!(net.sender.outbox().unwrap().is_empty());

        // The sender lost our STORED and tries again: answered again, not stored twice.
        let elsewhere = tempfile::tempdir().unwrap();
        let again = Store::open(elsewhere.path()).unwrap();
        let id2 = submit(&again, 1, "000.00.00.H41", &body);
        let outcome = net.send(&again, id2).await.unwrap();
        assert!(
            matches!(outcome, SendOutcome::Stored { resumed_from, .. } if resumed_from == body.len() as u64)
        );
    }

    #[tokio::test]
    async fn a_receipt_that_does_not_check_leaves_the_dispatch_queued() {
        let net = network().await;
        let id = submit(&net.sender, 5, "000.00.00.H41", b"sealed");
        let refuse = |_: &Record, _: &[u8]| Err::<OrganCode, _>("signed by a stranger".to_owned());
        let result = send_dispatch(&net.conn, &net.sender, id, &refuse).await;
        assert!(
            matches!(result, Err(TransferError::BadReceipt(_))),
            "{result:?}"
        );
        assert_eq!(
            net.sender.get(id).unwrap().unwrap().state,
            DispatchState::Queued
        );
        assert_eq!(net.sender.outbox().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_cut_transfer_resumes_from_the_durable_offset() {
        let net = network().await;
        let body: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
        let id = submit(&net.sender, 2, "000.00.00.H41", &body);
        // What an earlier, cut connection left at the receiver.
        let offer = offer_of(&net.sender.get(id).unwrap().unwrap()).unwrap();
        let mut receiving = net.receiver.receive(&offer).unwrap();
        net.receiver
            .append_incoming(&mut receiving, 0, &body[..1024 * 1024])
            .unwrap();
        let outcome = net.send(&net.sender, id).await.unwrap();
        assert!(
            matches!(
                outcome,
                SendOutcome::Stored {
                    resumed_from: 1_048_576,
                    ..
                }
            ),
            "{outcome:?}"
        );
        assert_eq!(stored(&net.receiver, id), body);
    }

    #[tokio::test]
    async fn a_damaged_object_is_never_stored_at_the_next_hop_and_fails_at_the_sender() {
        let net = network().await;
        let body: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 241) as u8).collect();
        let spool = |store: &Store, id: MessageId| {
            let mut bytes = Vec::new();
            store.object(id).unwrap().read_to_end(&mut bytes).unwrap();
            bytes
        };
        let path = |id: MessageId| {
            crate::store::test_files(net._dirs.0.path())
                .join("spool/objects")
                .join(format!("{id}.p7m"))
        };
        let change = |id: MessageId, at: usize| {
            let mut bytes = spool(&net.sender, id);
            bytes[at] ^= 0x80;
            std::fs::write(path(id), bytes).unwrap();
        };
        let failed_for = |id: MessageId| match net.sender.get(id).unwrap().unwrap().state {
            DispatchState::Failed { reason } => reason,
            other => panic!("{other:?}"),
        };

        // Changed in its last chunk: the next hop gets REJECT instead of it, and stores nothing.
        let changed = submit(&net.sender, 6, "000.00.00.H41", &body);
        change(changed, body.len() - 3);
        let result = net.send(&net.sender, changed).await;
        assert!(
            matches!(
                result,
                Err(TransferError::Damaged {
                    problem: Problem::Digest { .. },
                    ..
                })
            ),
            "{result:?}"
        );
        assert!(net.receiver.get(changed).unwrap().is_none());
        assert!(failed_for(changed).starts_with("the stored object is damaged: digest mismatch"));
        assert!(net.sender.outbox().unwrap().is_empty());

        // Changed in the part the next hop already holds from a cut transfer: hashed all the same.
        let resumed = submit(&net.sender, 7, "000.00.00.H41", &body);
        let offer = offer_of(&net.sender.get(resumed).unwrap().unwrap()).unwrap();
        let mut receiving = net.receiver.receive(&offer).unwrap();
        net.receiver
            .append_incoming(&mut receiving, 0, &body[..1024 * 1024])
            .unwrap();
        change(resumed, 100);
        let result = net.send(&net.sender, resumed).await;
        assert!(
            matches!(result, Err(TransferError::Damaged { .. })),
            "{result:?}"
        );
        assert!(net.receiver.get(resumed).unwrap().is_none());
        // The next hop drops what it held of it: no resume will come.
        let partial = crate::store::test_files(net._dirs.1.path())
            .join("spool/partial")
            .join(format!("{resumed}.part"));
        for _ in 0..100 {
            if !partial.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            !partial.exists(),
            "the abandoned transfer's partial file stayed"
        );

        // Deleted: failed before any stream is opened.
        let deleted = submit(&net.sender, 8, "000.00.00.H41", &body);
        std::fs::remove_file(path(deleted)).unwrap();
        let result = net.send(&net.sender, deleted).await;
        assert!(
            matches!(
                result,
                Err(TransferError::Damaged {
                    problem: Problem::Missing,
                    ..
                })
            ),
            "{result:?}"
        );
        assert_eq!(
            failed_for(deleted),
            "the stored object is damaged: object missing"
        );

        // An intact one still goes.
        let intact = submit(&net.sender, 9, "000.00.00.H41", &body);
        net.send(&net.sender, intact).await.unwrap();
        assert_eq!(spool(&net.receiver, intact), body);
    }

    #[tokio::test]
    async fn refusals_reach_the_sender_and_bad_frames_do_not_stop_the_receiver() {
        let net = network().await;
        let id = submit(&net.sender, 3, "000.00.00.H99", b"sealed bytes");
        let outcome = net.send(&net.sender, id).await.unwrap();
        assert!(matches!(
            outcome,
            SendOutcome::Rejected {
                code: RejectCode::NotForUs,
                ..
            }
        ));
        let record = net.sender.get(id).unwrap().unwrap();
        assert!(
            matches!(record.state, DispatchState::Failed { ref reason } if reason.contains("not served here"))
        );

        // Garbage on a stream: the receiver resets it with malformed_frame (0x13) ...
        let (mut send, mut recv) = net.conn.open_bi().await.unwrap();
        send.write_all(&[1, 2, 0, 0, 0, 3, 9, 9, 9]).await.unwrap();
        let _ = send.finish();
        let err = recv.read_to_end(1024).await.unwrap_err();
        assert!(
            err.to_string().contains("19") || err.to_string().contains("0x13"),
            "{err}"
        );
        // ... and goes on serving.
        let id = submit(&net.sender, 4, "000.00.00.H41", b"after the garbage");
        let outcome = net.send(&net.sender, id).await.unwrap();
        assert!(matches!(outcome, SendOutcome::Stored { .. }));
    }
}
