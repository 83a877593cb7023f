//! Turning a clerk's request into queued dispatches: the header (DESIGN §3), the package (header
//! then files, `docs/dispatch-package.md`), sealed once to every recipient's encryption certificate
//! and recorded once per recipient, under a transfer id derived from the message id and recipient;
//! copies to several agencies behind one next hop travel there as one fan-out object
//! (`docs/broadcast.md`).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use time::OffsetDateTime;
use vdx_crypto::RsaPadding;
use vdx_pki::IndexedDirectory;
use vdx_protocol::fanout;
use vdx_protocol::header::{
    Business, CalendarDate, Classification, Code, DispatchHeader, DocumentId, DocumentType,
    FileEntry, Party, Priority, Promulgation, SignerInfo,
};
use vdx_protocol::package::PackageWriter;
use vdx_protocol::wire::{ObjectKind, Offer};
use vdx_protocol::{hex, OrganCode};

use crate::store::{Copy, Event, MessageId, Record, Sealed, Store, StoreError, INLINE_MAX};
use crate::tenant::receipts::ReceiptSigner;
use crate::tenant::uploads::Uploads;

/// Vietnam's civil time (Asia/Ho_Chi_Minh: UTC+7, no daylight saving): promulgation dates and the
/// year of an incoming number follow the calendar of the office, not UTC.
pub const VIETNAM: time::UtcOffset = match time::UtcOffset::from_hms(7, 0, 0) {
    Ok(offset) => offset,
    Err(_) => time::UtcOffset::UTC,
};

/// What a clerk or an office system asks to send (the body of `POST /v1/dispatches`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Recipient agencies, each in the directory.
    pub to: Vec<OrganCode>,
    /// Trích yếu; must be absent for tuyệt mật.
    #[serde(default)]
    pub subject: Option<String>,
    /// Số.
    pub number: String,
    /// Ký hiệu.
    pub notation: String,
    /// Độ khẩn by name (`thuong`, `khan`, `thuong-khan`, `hoa-toc`, `hoa-toc-hen-gio`).
    pub urgency: String,
    /// Độ mật by name (`none`, `mat`, `toi-mat`, `tuyet-mat`).
    pub classification: String,
    /// Document type; a công văn (code 1) when absent.
    #[serde(default)]
    pub document_type: Option<DocumentType>,
    /// The competent signer; the agency itself when absent.
    #[serde(default)]
    pub signer: Option<SignerInfo>,
    /// Place of promulgation; the agency's name when absent.
    #[serde(default)]
    pub place: Option<String>,
    /// Unix seconds after which delivery is pointless; the configured default when absent.
    #[serde(default)]
    pub expires: Option<u64>,
    /// The files, in package order, each uploaded first.
    pub files: Vec<FileRequest>,
    /// Hạn xử lý (`YYYY-MM-DD`, not before today): a copy not done by then is overdue.
    #[serde(default)]
    pub due_date: Option<String>,
    /// `update` or `replacement` of the documents `response_for` names (business types 2 and
    /// 3); a new document when absent.
    #[serde(default)]
    pub business: Option<String>,
    /// The document ids (`ORGAN,YYYY/MM/DD,NUMBER/NOTATION`) this one answers, updates or
    /// replaces.
    #[serde(default)]
    pub response_for: Option<Vec<String>>,
    /// A message id the client chose (lower-case UUID): submitting with it again returns the
    /// dispatch already queued instead of sending a second one — what makes a retry after a lost
    /// answer safe. A new random one when absent.
    #[serde(default)]
    pub message_id: Option<String>,
}

/// One file of a [`SendRequest`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRequest {
    /// The name the recipient saves it under.
    pub name: String,
    /// Media type; `application/octet-stream` when absent.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The upload id (`POST /v1/uploads`): the SHA-256 of the bytes. For a file streamed with
    /// the request, the SHA-256 the bytes that follow must have.
    pub upload: String,
    /// Bytes of a file streamed with the request (required then; ignored for an upload).
    #[serde(default)]
    pub size: Option<u64>,
}

/// Where a dispatch's files come from.
pub enum Files<'r> {
    /// Uploaded first (`POST /v1/uploads`), named by their SHA-256.
    Uploaded,
    /// Following the request in the same body (`POST /v1/dispatches/stream`), in order, each of
    /// the size and SHA-256 the request declares: packed and sealed as they arrive, so the
    /// sender's disk sees only the sealed object, never the files in clear.
    Streamed(Box<dyn io::Read + Send + 'r>),
}

/// Why a request could not be queued. Nothing was queued when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// The request breaks a rule (unknown name, bad header field, …).
    #[error("{0}")]
    Invalid(String),
    /// A recipient is not in the directory (or has no usable encryption certificate).
    #[error("unknown recipient {0}: not in the directory")]
    UnknownRecipient(String),
    /// The classification policy refuses it (`crate::classification`): a recipient whose
    /// directory entry allows less, or a `tuyet-mat` route through a relay not named.
    #[error(transparent)]
    Policy(#[from] crate::classification::PolicyError),
    /// An upload id that is not (or no longer) there.
    #[error("no upload {0}")]
    UnknownUpload(String),
    /// A file name that would escape the recipient's folder or read as another name (a bidi
    /// control, an invisible character): refused before anything is sealed, with the reason.
    #[error(transparent)]
    BadFileName(vdx_protocol::header::HeaderError),
    /// The client's message id is already used by a dispatch that differs from the request.
    #[error("message id {message_id} is already used by another dispatch: {what} differ")]
    MessageIdReused {
        /// The message id.
        message_id: String,
        /// The first field found different.
        what: &'static str,
    },
    /// Sealing failed.
    #[error("sealing: {0}")]
    Seal(#[from] vdx_crypto::Error),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a retried request changes in the dispatch queued under its message id, if anything: a
/// retry after a lost answer asks for the same recipients, code, subject, urgency, classification
/// and files; anything else reusing the id would be silently dropped if it were answered as a retry.
fn difference(request: &SendRequest, queued: &DispatchHeader) -> Option<&'static str> {
    let recipients = queued.to.iter().map(|p| &p.organ_id);
    let files = queued
        .files
        .iter()
        .map(|f| (f.name.as_str(), f.sha256.as_str()));
    let asked_files = request
        .files
        .iter()
        .map(|f| (f.name.as_str(), f.upload.as_str()));
    if !request.to.iter().eq(recipients) {
        Some("the recipients")
    } else if request.number != queued.code.number || request.notation != queued.code.notation {
        Some("the number or notation")
    } else if request.subject != queued.subject {
        Some("the subjects")
    } else if request.urgency.parse::<Priority>().ok() != Some(queued.priority) {
        Some("the urgencies")
    } else if request.classification.parse::<Classification>().ok() != Some(queued.classification) {
        Some("the classifications")
    } else if !asked_files.eq(files) {
        Some("the files")
    } else {
        None
    }
}

/// The id a copy for `to` travels under: dispatches to several agencies are one sealed object
/// but one transfer (and one receipt) per recipient.
pub fn transfer_id(message_id: &[u8; 16], to: &OrganCode) -> MessageId {
    derived_id(b"vdx/copy", message_id, to.as_str().as_bytes())
}

/// The id of the fan-out object that carries copies from `parent` (a message id here, an
/// incoming fan-out's id at a relay) to the next hop `next` (`docs/broadcast.md` rule 4): fixed,
/// so that a split repeated after a crash makes the same objects.
pub fn fanout_id(parent: &[u8; 16], next: &OrganCode) -> MessageId {
    derived_id(b"vdx-fanout", parent, next.as_str().as_bytes())
}

/// The id a reply (delivery receipt or notice `status`) to transfer `id` travels under: fixed, so
/// that a reply made again after a crash is recognised as already queued.
pub fn reply_id(id: MessageId, kind: ObjectKind, status: &str) -> MessageId {
    let tag: &[u8] = match kind {
        ObjectKind::Receipt => b"receipt",
        ObjectKind::Replies => b"replies",
        _ => status.as_bytes(),
    };
    derived_id(b"vdx/reply", &id.0, tag)
}

fn derived_id(domain: &[u8], id: &[u8; 16], tag: &[u8]) -> MessageId {
    let digest = Sha256::new()
        .chain_update(domain)
        .chain_update(id)
        .chain_update(tag)
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    MessageId(out)
}

/// Everything composing needs from the node.
pub struct Composer<'a> {
    /// The sending agency.
    pub organ_code: &'a OrganCode,
    /// Its name, as the header states it.
    pub name: &'a str,
    /// Who signs.
    pub signer: &'a ReceiptSigner,
    /// Who is who (names for the header), and each agency's encryption certificate, parsed once
    /// when the directory is loaded (parsing a certificate is a large share of composing a small
    /// dispatch with OpenSSL 3).
    pub directory: &'a IndexedDirectory,
    /// Where the files were uploaded.
    pub uploads: &'a Uploads,
    /// Where the dispatch is queued (and small uploads are kept).
    pub store: &'a Store,
    /// Scratch space for the sealed object.
    pub scratch: &'a Path,
    /// Expiry when the request gives none, in days (0 = none).
    pub default_expiry_days: u32,
    /// The node a copy to an agency is handed to next, None for a tenant of this host: copies
    /// to several agencies behind one node travel there as one fan-out object.
    pub next_hop: &'a (dyn Fn(&OrganCode) -> Option<OrganCode> + Sync + 'a),
}

/// Submissions under one client-chosen message id, one at a time: two at once (a client retrying
/// after a timeout) would both find nothing queued, seal twice and race for the same transfer ids'
/// objects. Striped, so that submissions under different ids do not wait for each other.
pub struct SubmissionLocks([Mutex<()>; 64]);

impl Default for SubmissionLocks {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Mutex::new(())))
    }
}

impl SubmissionLocks {
    /// Held from looking for an earlier submission under `message_id` until this one is queued.
    pub fn lock(&self, message_id: &str) -> MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        message_id.hash(&mut hasher);
        let stripe = hasher.finish() % self.0.len() as u64;
        self.0[stripe as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<'a> Composer<'a> {
    /// The dispatch already queued under the request's own message id, if the client gave one
    /// and it was submitted before: its header and its copies.
    pub fn already_submitted(
        &self,
        request: &SendRequest,
    ) -> Result<Option<(DispatchHeader, Vec<Record>)>, ComposeError> {
        let store = self.store;
        let Some(text) = &request.message_id else {
            return Ok(None);
        };
        let message_id = uuid_bytes(text)?;
        let mut copies = Vec::new();
        for to in &request.to {
            if let Some(record) = store.get(transfer_id(&message_id, to))? {
                copies.push(record);
            }
        }
        // None of the recipients asked for has a copy: a dispatch to others may still hold the id.
        let first = match copies.first() {
            Some(first) => Some(first.id),
            None => store.submitted_under(text)?,
        };
        let header = match first {
            Some(id) => store.header(id)?,
            None => None,
        };
        let Some(header) = header else {
            return Ok(None);
        };
        if let Some(what) = difference(request, &header) {
            return Err(ComposeError::MessageIdReused {
                message_id: text.clone(),
                what,
            });
        }
        // The first submission may still be waiting for its flush (or have failed it): a retry
        // is answered only with what is on disk.
        store.flush()?;
        Ok(Some((header, copies)))
    }

    /// Builds, seals and queues the dispatch; returns its header and one record per recipient.
    /// `submitter` is the submission's ledger event: who asked (and with which role).
    pub fn compose(
        &self,
        request: &SendRequest,
        files: Files<'_>,
        now: OffsetDateTime,
        submitter: &Event,
    ) -> Result<(DispatchHeader, Vec<Record>), ComposeError> {
        let header = self.header(request, &files, now)?;
        let mut recipients = Vec::new();
        for party in &header.to {
            let code = party.organ_id.as_str();
            let certs = self
                .directory
                .certificates(code)
                .ok_or_else(|| ComposeError::UnknownRecipient(code.to_owned()))?;
            // The directory says how high the agency may receive (docs/directory-zones.md rule 4;
            // a pilot's entries may not say, and then nothing is checked).
            let allowed = self
                .directory
                .get(code)
                .and_then(|e| e.max_classification.as_deref());
            crate::classification::may_receive(code, allowed, header.classification)?;
            recipients.push(certs.enc().clone());
        }
        let mut spill = Spill::Memory {
            bytes: Vec::new(),
            dir: self.scratch,
        };
        let sealed_once = self.seal(&header, request, files, &recipients, &mut spill)?;
        let message_id = uuid_bytes(&header.message_id)?;
        let expires = request
            .expires
            .unwrap_or_else(|| match self.default_expiry_days {
                0 => 0,
                days => now.unix_timestamp() as u64 + u64::from(days) * 86_400,
            });
        let offer = |id: MessageId, to: &OrganCode, (size, digest): (u64, [u8; 32]), kind| Offer {
            id: id.0,
            from: self.organ_code.clone(),
            to: to.clone(),
            size,
            sealed_sha256: digest,
            urgency: header.priority.code(),
            expires,
            kind,
            hops: 0,
        };
        let plan = self.plan_copies(&header, &recipients, &mut spill, &message_id)?;
        let mut objects = plan.objects;
        let sealed = match objects.is_empty() {
            // One recipient: its copy is the object sealed.
            true => vec![spill.sealed()],
            false => objects.iter_mut().map(Spill::sealed).collect(),
        }
        .into_iter()
        .collect::<io::Result<Vec<_>>>()
        .map_err(StoreError::from_io("writing the sealed object"))?;
        let mut copies: Vec<(Offer, Copy<'_>)> = Vec::new();
        for (party, copy) in header.to.iter().zip(&plan.copies) {
            let id = transfer_id(&message_id, &party.organ_id);
            let (travels, size) = match copy {
                Planned::Own(i, size) => (Copy::Own(sealed[*i]), *size),
                Planned::Carried(by, size) => (Copy::CarriedBy(*by), *size),
                Planned::Alone => (Copy::Own(sealed[0]), sealed_once),
            };
            copies.push((
                offer(id, &party.organ_id, size, ObjectKind::Dispatch),
                travels,
            ));
        }
        for (peer, i, size) in &plan.fan_outs {
            let id = fanout_id(&message_id, peer);
            copies.push((
                offer(id, peer, *size, ObjectKind::FanOut),
                Copy::Own(sealed[*i]),
            ));
        }
        let records =
            self.store
                .submit_copies(&copies, &header, now.unix_timestamp() as u64, submitter)?;
        Ok((header, records))
    }

    /// How each recipient's copy of the object sealed in `spill` travels (`docs/broadcast.md`):
    /// alone (one recipient), as its own variant (a tenant here, or alone behind its next hop),
    /// or inside the fan-out to its next hop, with the objects to write for them.
    fn plan_copies(
        &self,
        header: &DispatchHeader,
        certs: &[openssl::x509::X509],
        spill: &mut Spill<'_>,
        message_id: &[u8; 16],
    ) -> Result<CopyPlan<'a>, ComposeError> {
        let mut plan = CopyPlan {
            copies: Vec::new(),
            objects: Vec::new(),
            fan_outs: Vec::new(),
        };
        if certs.len() == 1 {
            plan.copies.push(Planned::Alone);
            return Ok(plan);
        }
        let recipients = vdx_crypto::Recipients::read(spill.reader()?)?;
        let rest_at = recipients.len_read();
        let mut kept = Vec::with_capacity(certs.len());
        for cert in certs {
            let mine = recipients.select(&[cert])?;
            if mine.is_empty() {
                return Err(vdx_crypto::Error::NotARecipient.into());
            }
            kept.push(mine);
        }
        let hops: Vec<Option<OrganCode>> = header
            .to
            .iter()
            .map(|p| (self.next_hop)(&p.organ_id))
            .collect();
        let mut behind: BTreeMap<&OrganCode, Vec<usize>> = BTreeMap::new();
        for (i, hop) in hops.iter().enumerate() {
            if let Some(peer) = hop {
                behind.entry(peer).or_default().push(i);
            }
        }
        let shared = |i: usize| {
            hops[i]
                .as_ref()
                .and_then(|p| behind.get(p))
                .is_some_and(|group| group.len() >= fanout::MIN_MEMBERS)
        };
        let new_spill = || Spill::Memory {
            bytes: Vec::new(),
            dir: self.scratch,
        };
        for i in 0..header.to.len() {
            let head = recipients.head(&kept[i]);
            if let Some(peer) = hops[i].as_ref().filter(|_| shared(i)) {
                // Carried: only its size and digest are kept here, for its receipt.
                let mut out = HashingWriter::new(io::sink());
                out.write_all(&head)
                    .and_then(|()| io::copy(&mut spill.rest(rest_at)?, &mut out))
                    .map_err(StoreError::from_io("reading the sealed object"))?;
                plan.copies
                    .push(Planned::Carried(fanout_id(message_id, peer), out.finish()?));
                continue;
            }
            let mut object = new_spill();
            let mut out = HashingWriter::new(&mut object);
            out.write_all(&head)
                .and_then(|()| io::copy(&mut spill.rest(rest_at)?, &mut out))
                .map_err(StoreError::from_io("writing the sealed object"))?;
            let size = out.finish()?;
            plan.copies.push(Planned::Own(plan.objects.len(), size));
            plan.objects.push(object);
        }
        for (peer, group) in behind {
            if group.len() < fanout::MIN_MEMBERS {
                continue;
            }
            let members = fanout::Members::new(
                group
                    .iter()
                    .map(|&i| fanout::Member {
                        to: header.to[i].organ_id.clone(),
                        id: transfer_id(message_id, &header.to[i].organ_id).0,
                    })
                    .collect(),
            )
            .map_err(|e| ComposeError::Invalid(e.to_string()))?;
            let mut infos: Vec<usize> = group.iter().flat_map(|&i| kept[i].clone()).collect();
            infos.sort_unstable();
            infos.dedup();
            let mut object = new_spill();
            let mut out = HashingWriter::new(&mut object);
            out.write_all(&members.encode())
                .and_then(|()| out.write_all(&recipients.head(&infos)))
                .and_then(|()| io::copy(&mut spill.rest(rest_at)?, &mut out))
                .map_err(StoreError::from_io("writing the sealed object"))?;
            let size = out.finish()?;
            plan.fan_outs.push((peer.clone(), plan.objects.len(), size));
            plan.objects.push(object);
        }
        Ok(plan)
    }

    fn header(
        &self,
        request: &SendRequest,
        source: &Files<'_>,
        now: OffsetDateTime,
    ) -> Result<DispatchHeader, ComposeError> {
        // The names first: a name that reads as another is refused whatever else the request says.
        for file in &request.files {
            vdx_protocol::header::check_file_name(&file.name).map_err(ComposeError::BadFileName)?;
        }
        let invalid = |e: &dyn std::fmt::Display| ComposeError::Invalid(e.to_string());
        let priority: Priority = request.urgency.parse().map_err(|e| invalid(&e))?;
        let classification: Classification =
            request.classification.parse().map_err(|e| invalid(&e))?;
        let local = now.to_offset(VIETNAM);
        if request
            .expires
            .is_some_and(|e| e <= now.unix_timestamp() as u64)
        {
            return Err(ComposeError::Invalid("expires is in the past".into()));
        }
        let date = CalendarDate::new(local.year() as u16, local.month() as u8, local.day())
            .ok_or_else(|| ComposeError::Invalid("today's date".into()))?;
        let document_id = DocumentId::new(
            self.organ_code.clone(),
            date,
            &request.number,
            &request.notation,
        )
        .map_err(|e| invalid(&e))?;
        let mut to = Vec::new();
        for code in &request.to {
            let entry = self
                .directory
                .get(code.as_str())
                .ok_or_else(|| ComposeError::UnknownRecipient(code.to_string()))?;
            to.push(Party {
                organ_id: code.clone(),
                organ_name: entry.name.clone(),
            });
        }
        let mut files = Vec::new();
        for file in &request.files {
            let size = match source {
                Files::Uploaded => self
                    .uploads
                    .size(self.store, &file.upload)?
                    .ok_or_else(|| ComposeError::UnknownUpload(file.upload.clone()))?,
                Files::Streamed(_) => file.size.ok_or_else(|| {
                    ComposeError::Invalid(format!("{}: a streamed file needs its size", file.name))
                })?,
            };
            if matches!(source, Files::Streamed(_)) && hex::decode::<32>(&file.upload).is_none() {
                return Err(ComposeError::Invalid(format!(
                    "{}: {:?} is not a SHA-256 (64 hex digits)",
                    file.name, file.upload
                )));
            }
            files.push(FileEntry {
                name: file.name.clone(),
                media_type: file
                    .media_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
                size,
                sha256: file.upload.clone(),
            });
        }
        let business = match request.business.as_deref() {
            None | Some("new") => Business::New,
            Some("update") => Business::Update,
            Some("replacement") => Business::Replacement,
            Some(other) => {
                return Err(ComposeError::Invalid(format!(
                    "business {other:?}: new, update or replacement (a recall is `vdx recall`)"
                )))
            }
        };
        let response_for = match &request.response_for {
            None => None,
            Some(ids) => Some(
                ids.iter()
                    .map(|id| {
                        id.parse()
                            .map_err(|e| invalid(&format!("response_for {id:?}: {e}")))
                    })
                    .collect::<Result<Vec<vdx_protocol::header::DocumentId>, _>>()?,
            ),
        };
        if business != Business::New && response_for.as_ref().is_none_or(Vec::is_empty) {
            return Err(ComposeError::Invalid(
                "an update or replacement names the document it updates or replaces (response_for)"
                    .into(),
            ));
        }
        let header = DispatchHeader {
            version: DispatchHeader::VERSION,
            message_id: match &request.message_id {
                Some(id) => id.clone(),
                None => new_uuid()?,
            },
            document_id,
            from: Party {
                organ_id: self.organ_code.clone(),
                organ_name: self.name.to_owned(),
            },
            to,
            code: Code {
                number: request.number.clone(),
                notation: request.notation.clone(),
            },
            promulgation: Promulgation {
                place: request
                    .place
                    .clone()
                    .unwrap_or_else(|| self.name.to_owned()),
                date: date.to_string(),
            },
            document_type: request.document_type.clone().unwrap_or(DocumentType {
                code: "1".into(),
                name: "Công văn".into(),
            }),
            subject: request.subject.clone(),
            signer: request.signer.clone().unwrap_or_else(|| SignerInfo {
                competence: self.name.to_owned(),
                position: "Văn thư".into(),
                full_name: self.name.to_owned(),
            }),
            due_date: request.due_date.clone(),
            steering_type: None,
            response_for,
            priority,
            business,
            classification,
            files,
        };
        header.validate().map_err(|e| invalid(&e))?;
        Ok(header)
    }

    /// Writes the package through the sealer into `out`: returns the sealed size and SHA-256.
    fn seal(
        &self,
        header: &DispatchHeader,
        request: &SendRequest,
        files: Files<'_>,
        recipients: &[openssl::x509::X509],
        out: &mut impl Write,
    ) -> Result<(u64, [u8; 32]), ComposeError> {
        // Compact: a circular to every commune names 3,332 recipients, some 200 KB this way
        // and a third more pretty-printed, in every copy.
        let header_json =
            serde_json::to_vec(header).map_err(|e| ComposeError::Invalid(e.to_string()))?;
        let sealer = self.signer.sealer().map(|s| {
            recipients
                .iter()
                .fold(s, |s, cert| s.recipient(cert, RsaPadding::Oaep))
        })?;
        let mut output = HashingWriter::new(out);
        if header.files.iter().map(|f| f.size).sum::<u64>() <= INLINE_MAX {
            // Small: packed in memory first, which costs less than a packing thread and a pipe.
            let mut package = Vec::new();
            self.package(&header_json, header, request, files, &mut package)?;
            sealer.seal(package.as_slice(), &mut output)?;
            return output.finish();
        }
        let (reader, writer) = io::pipe().map_err(StoreError::from_io("making a pipe"))?;
        let sealed = std::thread::scope(|scope| {
            let packer =
                scope.spawn(move || self.package(&header_json, header, request, files, writer));
            let sealed = sealer.seal(reader, &mut output);
            let packed = packer
                .join()
                .unwrap_or_else(|_| Err(ComposeError::Invalid("packaging failed".into())));
            packed.and(sealed.map_err(ComposeError::from))
        });
        sealed?;
        output.finish()
    }

    fn package(
        &self,
        header_json: &[u8],
        header: &DispatchHeader,
        request: &SendRequest,
        mut files: Files<'_>,
        out: impl Write,
    ) -> Result<(), ComposeError> {
        let invalid = |e: &dyn std::fmt::Display| ComposeError::Invalid(e.to_string());
        let mut package = PackageWriter::new(out, header_json).map_err(|e| invalid(&e))?;
        for (file, entry) in request.files.iter().zip(&header.files) {
            let content: Box<dyn io::Read + Send + '_> = match &mut files {
                Files::Uploaded => Box::new(
                    self.uploads
                        .read(self.store, &file.upload)?
                        .ok_or_else(|| ComposeError::UnknownUpload(file.upload.clone()))?,
                ),
                Files::Streamed(body) => Box::new(&mut **body),
            };
            let digest = package
                .add_file(&entry.name, entry.size, content)
                .map_err(|e| invalid(&e))?;
            if hex::encode(&digest.sha256) != entry.sha256 {
                return Err(ComposeError::Invalid(match files {
                    Files::Uploaded => {
                        format!("upload {} changed while it was being sent", file.upload)
                    }
                    Files::Streamed(_) => format!(
                        "{}: the bytes sent have SHA-256 {}, not {}",
                        file.name,
                        hex::encode(&digest.sha256),
                        file.upload
                    ),
                }));
            }
        }
        if let Files::Streamed(body) = &mut files {
            let mut more = [0u8; 1];
            if body
                .read(&mut more)
                .map_err(StoreError::from_io("reading the request"))?
                != 0
            {
                return Err(invalid(
                    &"the request carries more bytes than its files declare",
                ));
            }
        }
        package.finish().map_err(|e| invalid(&e))?;
        Ok(())
    }
}

/// How the copies of one dispatch travel ([`Composer::plan_copies`]).
struct CopyPlan<'a> {
    /// Per recipient, in the header's order.
    copies: Vec<Planned>,
    /// The objects to queue: copies of their own, then fan-outs.
    objects: Vec<Spill<'a>>,
    /// Per next hop shared by several recipients: the index of its fan-out object and its size
    /// and digest.
    fan_outs: Vec<(OrganCode, usize, (u64, [u8; 32]))>,
}

/// How one recipient's copy travels.
enum Planned {
    /// The dispatch has one recipient: its copy is the object sealed.
    Alone,
    /// Its own variant: `objects[.0]`, of this size and digest.
    Own(usize, (u64, [u8; 32])),
    /// Inside this fan-out object; the size and digest of the variant it will get.
    Carried(MessageId, (u64, [u8; 32])),
}

/// Where a sealed object goes as it is written: memory while the store could keep it with its
/// record ([`INLINE_MAX`]), then a scratch file of its own (removed when dropped) that the store
/// links into its spool for every copy.
enum Spill<'a> {
    Memory { bytes: Vec<u8>, dir: &'a Path },
    File(io::BufWriter<NamedTempFile>),
}

impl Spill<'_> {
    /// The complete object, to read again from its start.
    fn reader(&mut self) -> Result<Box<dyn io::Read + '_>, ComposeError> {
        Ok(match self {
            Self::Memory { bytes, .. } => Box::new(bytes.as_slice()),
            Self::File(file) => {
                file.flush()
                    .map_err(StoreError::from_io("writing the sealed object"))?;
                let again = std::fs::File::open(file.get_ref().path())
                    .map_err(StoreError::from_io("reading the sealed object"))?;
                Box::new(io::BufReader::with_capacity(256 * 1024, again))
            }
        })
    }

    /// The object from byte `at` on (the part every variant shares, `docs/broadcast.md`).
    fn rest(&mut self, at: u64) -> io::Result<Box<dyn io::Read + '_>> {
        Ok(match self {
            Self::Memory { bytes, .. } => Box::new(
                bytes
                    .get(usize::try_from(at).unwrap_or(usize::MAX)..)
                    .unwrap_or(&[]),
            ),
            Self::File(file) => {
                file.flush()?;
                let mut again = std::fs::File::open(file.get_ref().path())?;
                io::Seek::seek(&mut again, io::SeekFrom::Start(at))?;
                Box::new(io::BufReader::with_capacity(256 * 1024, again))
            }
        })
    }

    /// The complete object, for the store.
    fn sealed(&mut self) -> io::Result<Sealed<'_>> {
        Ok(match self {
            Self::Memory { bytes, .. } => Sealed::Memory(bytes),
            Self::File(file) => {
                file.flush()?;
                Sealed::File(file.get_ref().path())
            }
        })
    }
}

impl Write for Spill<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Memory { bytes, .. } if (bytes.len() + buf.len()) as u64 <= INLINE_MAX => {
                bytes.extend_from_slice(buf);
                Ok(buf.len())
            }
            Self::Memory { bytes, dir } => {
                let mut file =
                    io::BufWriter::with_capacity(256 * 1024, NamedTempFile::new_in(dir)?);
                file.write_all(bytes)?;
                let written = file.write(buf)?;
                *self = Self::File(file);
                Ok(written)
            }
            Self::File(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::File(file) => file.flush(),
            Self::Memory { .. } => Ok(()),
        }
    }
}

/// A writer that hashes what is written through it.
struct HashingWriter<W: Write> {
    out: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(mut self) -> Result<(u64, [u8; 32]), ComposeError> {
        self.out
            .flush()
            .map_err(StoreError::from_io("writing the sealed object"))?;
        Ok((self.size, self.hasher.finalize().into()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A random (version 4) UUID in its text form.
fn new_uuid() -> Result<String, ComposeError> {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b).map_err(|e| ComposeError::Invalid(e.to_string()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// The 16 bytes of a UUID in text form.
pub fn uuid_bytes(text: &str) -> Result<[u8; 16], ComposeError> {
    hex::decode(&text.replace('-', ""))
        .ok_or_else(|| ComposeError::Invalid(format!("bad message id {text}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_per_recipient_and_per_reply() {
        let m = [9u8; 16];
        let a: OrganCode = "000.00.00.H41".parse().unwrap();
        let b: OrganCode = "000.00.00.H40".parse().unwrap();
        assert_ne!(transfer_id(&m, &a), transfer_id(&m, &b));
        assert_eq!(transfer_id(&m, &a), transfer_id(&m, &a));
        let t = transfer_id(&m, &a);
        assert_ne!(
            reply_id(t, ObjectKind::Receipt, ""),
            reply_id(t, ObjectKind::Notice, "01")
        );
        assert_ne!(
            reply_id(t, ObjectKind::Notice, "01"),
            reply_id(t, ObjectKind::Notice, "02")
        );
        assert_ne!(
            reply_id(t, ObjectKind::Replies, "01"),
            reply_id(t, ObjectKind::Notice, "01")
        );
    }

    /// The header of `docs/dispatch-header.md`'s example, and the request that asks for it.
    fn queued() -> (DispatchHeader, serde_json::Value) {
        let h = crate::testkit::example_header();
        let request = serde_json::json!({
            "to": h.to.iter().map(|p| p.organ_id.to_string()).collect::<Vec<_>>(),
            "subject": h.subject,
            "number": h.code.number,
            "notation": h.code.notation,
            "urgency": h.priority.to_string(),
            "classification": h.classification.to_string(),
            "files": h.files.iter().map(|f| serde_json::json!({"name": f.name, "upload": f.sha256})).collect::<Vec<_>>(),
        });
        (h, request)
    }

    #[test]
    fn a_retry_must_ask_for_what_was_queued_under_its_message_id() {
        let (header, request) = queued();
        let asks = |pointer: &str, value: serde_json::Value| {
            let mut changed = request.clone();
            if let Some(field) = changed.pointer_mut(pointer) {
                *field = value;
            }
            let changed: SendRequest = serde_json::from_value(changed).unwrap();
            difference(&changed, &header)
        };
        assert_eq!(asks("/number", header.code.number.clone().into()), None);
        for (pointer, value, differs) in [
            (
                "/to",
                serde_json::json!(["000.00.00.H99"]),
                "the recipients",
            ),
            ("/number", "9".into(), "the number or notation"),
            ("/notation", "X".into(), "the number or notation"),
            ("/subject", "khác".into(), "the subjects"),
            ("/urgency", "hoa-toc".into(), "the urgencies"),
            ("/classification", "mat".into(), "the classifications"),
            ("/files/0/upload", "00".repeat(32).into(), "the files"),
            ("/files/0/name", "other.pdf".into(), "the files"),
        ] {
            assert_eq!(asks(pointer, value), Some(differs), "{pointer}");
        }
    }

    #[test]
    fn uuids_are_version_4_text() {
        let u = new_uuid().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(uuid_bytes(&u).unwrap().len(), 16);
        assert_ne!(u, new_uuid().unwrap());
    }
}
