//! Turning a clerk's request into queued dispatches: the header (DESIGN §3), the package (header
//! then files, `docs/dispatch-package.md`), sealed once to every recipient's encryption certificate
//! and queued once per recipient, under a transfer id derived from the message id and recipient.

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
use vdx_protocol::header::{
    Business, CalendarDate, Classification, Code, DispatchHeader, DocumentId, DocumentType,
    FileEntry, Party, Priority, Promulgation, SignerInfo,
};
use vdx_protocol::package::PackageWriter;
use vdx_protocol::wire::{ObjectKind, Offer};
use vdx_protocol::{hex, OrganCode};

use crate::store::{Event, MessageId, Record, Sealed, Store, StoreError, INLINE_MAX};
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
    /// The upload id (`POST /v1/uploads`): the SHA-256 of the bytes.
    pub upload: String,
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

impl Composer<'_> {
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
        now: OffsetDateTime,
        submitter: &Event,
    ) -> Result<(DispatchHeader, Vec<Record>), ComposeError> {
        let header = self.header(request, now)?;
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
        let sealed_once = self.seal(&header, request, &recipients, &mut spill)?;
        // Sealed once; each recipient's copy then keeps only its own RecipientInfo
        // (docs/broadcast.md, rule 2), so a copy to one agency does not carry every other
        // recipient's key: at 3,000 recipients that would be some 1 MiB per copy.
        let mut cuts = Vec::new();
        if recipients.len() > 1 {
            for cert in &recipients {
                let mut cut = Spill::Memory {
                    bytes: Vec::new(),
                    dir: self.scratch,
                };
                let mut out = HashingWriter::new(&mut cut);
                vdx_crypto::Sealer::cut_recipients(spill.reader()?, &mut out, &[cert])?;
                let (size, digest) = out.finish()?;
                cuts.push((cut, size, digest));
            }
        }
        let objects: Vec<(Sealed<'_>, u64, [u8; 32])> = if cuts.is_empty() {
            let sealed = spill
                .sealed()
                .map_err(StoreError::from_io("writing the sealed object"))?;
            vec![(sealed, sealed_once.0, sealed_once.1)]
        } else {
            cuts.iter_mut()
                .map(|(cut, size, digest)| Ok((cut.sealed()?, *size, *digest)))
                .collect::<io::Result<_>>()
                .map_err(StoreError::from_io("writing the sealed object"))?
        };

        let message_id = uuid_bytes(&header.message_id)?;
        let expires = request
            .expires
            .unwrap_or_else(|| match self.default_expiry_days {
                0 => 0,
                days => now.unix_timestamp() as u64 + u64::from(days) * 86_400,
            });
        let copies: Vec<(Offer, Sealed<'_>)> = header
            .to
            .iter()
            .zip(objects.iter().cycle())
            .map(|(party, &(sealed, size, digest))| {
                let offer = Offer {
                    id: transfer_id(&message_id, &party.organ_id).0,
                    from: self.organ_code.clone(),
                    to: party.organ_id.clone(),
                    size,
                    sealed_sha256: digest,
                    urgency: header.priority.code(),
                    expires,
                    kind: ObjectKind::Dispatch,
                    hops: 0,
                };
                (offer, sealed)
            })
            .collect();
        let records =
            self.store
                .submit_copies(&copies, &header, now.unix_timestamp() as u64, submitter)?;
        Ok((header, records))
    }

    fn header(
        &self,
        request: &SendRequest,
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
            let size = self
                .uploads
                .size(self.store, &file.upload)?
                .ok_or_else(|| ComposeError::UnknownUpload(file.upload.clone()))?;
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
            due_date: None,
            steering_type: None,
            response_for: None,
            priority,
            business: Business::New,
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
        recipients: &[openssl::x509::X509],
        out: &mut impl Write,
    ) -> Result<(u64, [u8; 32]), ComposeError> {
        let header_json =
            serde_json::to_vec_pretty(header).map_err(|e| ComposeError::Invalid(e.to_string()))?;
        let sealer = self.signer.sealer().map(|s| {
            recipients
                .iter()
                .fold(s, |s, cert| s.recipient(cert, RsaPadding::Oaep))
        })?;
        let mut output = HashingWriter::new(out);
        if header.files.iter().map(|f| f.size).sum::<u64>() <= INLINE_MAX {
            // Small: packed in memory first, which costs less than a packing thread and a pipe.
            let mut package = Vec::new();
            self.package(&header_json, header, request, &mut package)?;
            sealer.seal(package.as_slice(), &mut output)?;
            return output.finish();
        }
        let (reader, writer) = io::pipe().map_err(StoreError::from_io("making a pipe"))?;
        let sealed = std::thread::scope(|scope| {
            let packer = scope.spawn(move || self.package(&header_json, header, request, writer));
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
        out: impl Write,
    ) -> Result<(), ComposeError> {
        let invalid = |e: &dyn std::fmt::Display| ComposeError::Invalid(e.to_string());
        let mut package = PackageWriter::new(out, header_json).map_err(|e| invalid(&e))?;
        for (file, entry) in request.files.iter().zip(&header.files) {
            let content = self
                .uploads
                .read(self.store, &file.upload)?
                .ok_or_else(|| ComposeError::UnknownUpload(file.upload.clone()))?;
            let digest = package
                .add_file(&entry.name, entry.size, content)
                .map_err(|e| invalid(&e))?;
            if hex::encode(&digest.sha256) != entry.sha256 {
                return Err(ComposeError::Invalid(format!(
                    "upload {} changed while it was being sent",
                    file.upload
                )));
            }
        }
        package.finish().map_err(|e| invalid(&e))?;
        Ok(())
    }
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
