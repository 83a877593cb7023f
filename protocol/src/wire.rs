//! Transfer frames of `vdx/1` (spec: `docs/wire-frames.md`): encoding, and a decoder that is fed
//! bytes as they arrive and checks every limit from the 6-byte header before buffering a payload.

use std::fmt;

use crate::OrganCode;

/// The only version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes before every payload: version, type, length.
pub const HEADER_LEN: usize = 6;
/// Largest DATA chunk.
pub const MAX_CHUNK: usize = 1024 * 1024;
/// Largest REJECT reason, in bytes.
pub const MAX_REASON: usize = 1024;
/// Largest hop receipt carried by STORED.
pub const MAX_RECEIPT: usize = 64 * 1024;

const OFFER: u8 = 0x01;
const ACCEPT: u8 = 0x02;
const REJECT: u8 = 0x03;
const DATA: u8 = 0x04;
const STORED: u8 = 0x06;
const PROVE: u8 = 0x07;
const PROOF: u8 = 0x08;
const HELD: u8 = 0x09;
const NOTE: u8 = 0x0a;
const ZONES: u8 = 0x0b;
const ZONE: u8 = 0x0c;
/// Most zones one ZONES lists (the root zone and up to 1,000 delegations fit).
pub const MAX_ZONES: usize = 1024;
/// Largest signed zone file carried by ZONE: only on a stream that began with ZONES
/// ([`FrameDecoder::allow_zones`]); elsewhere no frame is larger than DATA's.
pub const MAX_ZONE: usize = 4 * 1024 * 1024;
/// Largest signed checkpoint note carried by NOTE.
pub const MAX_NOTE: usize = 4096;
const MAX_OFFER: usize = 512;
/// Most hashes in a PROOF (a consistency proof of trees below 2^62 has at most 124).
pub const MAX_PROOF_HASHES: usize = 128;

/// One frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// The sender proposes a sealed object.
    Offer(Offer),
    /// The receiver takes it, asking for the bytes from `resume_from` on.
    Accept {
        /// Bytes already held durably.
        resume_from: u64,
    },
    /// Either side refuses, with a reason a clerk can read.
    Reject {
        /// Why, as a code the sender acts on.
        code: RejectCode,
        /// Why, in words.
        reason: String,
    },
    /// A chunk of the sealed object.
    Data {
        /// Position of the first byte in the sealed object.
        offset: u64,
        /// The bytes (1 to [`MAX_CHUNK`]).
        bytes: Vec<u8>,
    },
    /// Custody has moved: the object is durable at the receiver, which signed this receipt.
    Stored {
        /// The hop receipt, opaque at this layer.
        receipt: Vec<u8>,
    },
    /// A witness asks for the consistency proof of the peer's ledger between two sizes.
    Prove {
        /// The older tree size.
        old: u64,
        /// The newer tree size.
        new: u64,
    },
    /// The answer to PROVE: the RFC 9162 consistency proof.
    Proof {
        /// The proof's hashes, in order.
        hashes: Vec<[u8; 32]>,
    },
    /// Two peers tell each other the newest checkpoint of the other's ledger they hold: how a
    /// node restored from an older copy learns that its ledger was longer. The connecting side
    /// sends the newest checkpoint of the peer's ledger it holds (empty if none) ...
    Held {
        /// The note as the peer signed it, or empty.
        note: Vec<u8>,
    },
    /// ... and the peer answers with the newest checkpoint of the asker's ledger it holds.
    Note {
        /// The note as the asker signed it; empty when the peer holds none.
        note: Vec<u8>,
    },
    /// The directory zones a node has in force, by name and version: the other side answers with
    /// the zones it has that are newer (`docs/directory-zones.md`, "Distribution").
    Zones {
        /// Zone name (`root` or an organ code) and version; names unique.
        versions: Vec<(String, u64)>,
    },
    /// One signed zone file, checked by its receiver before anything is taken from it.
    Zone {
        /// The file's bytes (DER CMS).
        file: Vec<u8>,
    },
}

/// What the sender proposes to hand over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Message id (UUID bytes): the receiver deduplicates by it.
    pub id: [u8; 16],
    /// Sending agency.
    pub from: OrganCode,
    /// Recipient agency (this hop may be a relay for it).
    pub to: OrganCode,
    /// Bytes of the sealed object.
    pub size: u64,
    /// SHA-256 of the whole sealed object.
    pub sealed_sha256: [u8; 32],
    /// Độ khẩn, 0 (thường) to 4 (hỏa tốc hẹn giờ).
    pub urgency: u8,
    /// Unix seconds after which the offer must not be accepted.
    pub expires: u64,
    /// What the object is: a sealed dispatch, or a signed reply travelling back to its sender.
    pub kind: ObjectKind,
    /// Relays the object has crossed so far (0 from its sender): the receiver refuses it past its
    /// hop limit, so that a loop in the directory's relays ends. Encoded only when not 0, so
    /// that an offer straight from its sender reads the same to a node that predates it.
    pub hops: u8,
}

/// What a transferred object is, so that the final receiver knows how to open it. Relays carry all
/// kinds alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ObjectKind {
    /// A sealed dispatch (signed, then encrypted to the recipient).
    #[default]
    Dispatch,
    /// A signed delivery receipt (`docs/receipts.md`) for an earlier dispatch.
    Receipt,
    /// A signed status notice (`docs/status-notices.md`) about an earlier dispatch.
    Notice,
    /// A delivery receipt and its notice 01 in one object ([`crate::replies`]): one transfer back
    /// instead of two.
    Replies,
    /// One copy of a dispatch for several recipients behind the next hop, which splits it
    /// ([`crate::fanout`], `docs/broadcast.md`).
    FanOut,
}

impl ObjectKind {
    fn to_u8(self) -> u8 {
        match self {
            Self::Dispatch => 0,
            Self::Receipt => 1,
            Self::Notice => 2,
            Self::Replies => 3,
            Self::FanOut => 4,
        }
    }

    fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            0 => Self::Dispatch,
            1 => Self::Receipt,
            2 => Self::Notice,
            3 => Self::Replies,
            4 => Self::FanOut,
            _ => return None,
        })
    }
}

/// Why a transfer was refused. Permanent codes fail the dispatch; temporary ones are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectCode {
    /// The sender is not in the receiver's directory.
    UnknownSender,
    /// The receiver neither serves nor relays the recipient.
    NotForUs,
    /// Larger than the receiver accepts.
    TooLarge,
    /// Past its expiry.
    Expired,
    /// The offer is inconsistent (e.g. size 0, urgency out of range).
    BadOffer,
    /// The bytes did not match the offered digest.
    Corrupt,
    /// Try again later.
    Busy,
    /// The receiver's disk is full.
    DiskFull,
    /// Something failed at the receiver.
    Internal,
    /// PROVE asked about a size past the peer's ledger: a peer that signed a checkpoint of that
    /// size has lost or rolled back part of its ledger.
    ShortLedger,
    /// A code this version does not know: treated as temporary.
    Other(u16),
}

impl RejectCode {
    /// Every code this version knows, in wire order.
    pub const KNOWN: [Self; 10] = [
        Self::UnknownSender,
        Self::NotForUs,
        Self::TooLarge,
        Self::Expired,
        Self::BadOffer,
        Self::Corrupt,
        Self::Busy,
        Self::DiskFull,
        Self::Internal,
        Self::ShortLedger,
    ];

    /// The name in `docs/wire-frames.md`, for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::UnknownSender => "unknown_sender",
            Self::NotForUs => "not_for_us",
            Self::TooLarge => "too_large",
            Self::Expired => "expired",
            Self::BadOffer => "bad_offer",
            Self::Corrupt => "corrupt",
            Self::Busy => "busy",
            Self::DiskFull => "disk_full",
            Self::Internal => "internal",
            Self::ShortLedger => "short_ledger",
            Self::Other(_) => "other",
        }
    }

    /// The u16 on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::UnknownSender => 1,
            Self::NotForUs => 2,
            Self::TooLarge => 3,
            Self::Expired => 4,
            Self::BadOffer => 5,
            Self::Corrupt => 6,
            Self::Busy => 7,
            Self::DiskFull => 8,
            Self::Internal => 9,
            Self::ShortLedger => 10,
            Self::Other(n) => n,
        }
    }

    /// Reads a code; unknown numbers are kept as [`RejectCode::Other`].
    pub fn from_u16(n: u16) -> Self {
        match n {
            1 => Self::UnknownSender,
            2 => Self::NotForUs,
            3 => Self::TooLarge,
            4 => Self::Expired,
            5 => Self::BadOffer,
            6 => Self::Corrupt,
            7 => Self::Busy,
            8 => Self::DiskFull,
            9 => Self::Internal,
            10 => Self::ShortLedger,
            other => Self::Other(other),
        }
    }

    /// True when retrying cannot help, so the dispatch fails with the reason shown to the clerk.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            Self::UnknownSender
                | Self::NotForUs
                | Self::TooLarge
                | Self::Expired
                | Self::BadOffer
                | Self::ShortLedger
        )
    }
}

/// A protocol violation: the stream is closed with [`WireError::stream_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A version other than [`VERSION`].
    #[error("unsupported frame version {0}")]
    UnsupportedVersion(u8),
    /// A type byte this version does not define.
    #[error("unknown frame type {0:#04x}")]
    UnknownFrame(u8),
    /// A length over the type's limit.
    #[error("{kind} frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Frame type.
        kind: FrameKind,
        /// Declared payload length.
        len: usize,
        /// Limit for the type.
        limit: usize,
    },
    /// A payload that does not parse exactly.
    #[error("malformed {kind} frame: {what}")]
    Malformed {
        /// Frame type.
        kind: FrameKind,
        /// What was wrong.
        what: &'static str,
    },
    /// A valid frame at the wrong point of the exchange.
    #[error("unexpected frame: {0}")]
    Unexpected(&'static str),
}

impl WireError {
    /// The QUIC application error code that closes the stream (spec, "Codes").
    pub fn stream_code(&self) -> u32 {
        match self {
            Self::UnsupportedVersion(_) => 0x10,
            Self::UnknownFrame(_) => 0x11,
            Self::TooLarge { .. } => 0x12,
            Self::Malformed { .. } => 0x13,
            Self::Unexpected(_) => 0x14,
        }
    }
}

/// Frame types, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameKind {
    /// OFFER.
    Offer,
    /// ACCEPT.
    Accept,
    /// REJECT.
    Reject,
    /// DATA.
    Data,
    /// STORED.
    Stored,
    /// PROVE.
    Prove,
    /// PROOF.
    Proof,
    /// HELD.
    Held,
    /// NOTE.
    Note,
    /// ZONES.
    Zones,
    /// ZONE.
    Zone,
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Offer => "OFFER",
            Self::Accept => "ACCEPT",
            Self::Reject => "REJECT",
            Self::Data => "DATA",
            Self::Stored => "STORED",
            Self::Prove => "PROVE",
            Self::Proof => "PROOF",
            Self::Held => "HELD",
            Self::Note => "NOTE",
            Self::Zones => "ZONES",
            Self::Zone => "ZONE",
        })
    }
}

impl FrameKind {
    fn from_type(t: u8) -> Result<Self, WireError> {
        Ok(match t {
            OFFER => Self::Offer,
            ACCEPT => Self::Accept,
            REJECT => Self::Reject,
            DATA => Self::Data,
            STORED => Self::Stored,
            PROVE => Self::Prove,
            PROOF => Self::Proof,
            HELD => Self::Held,
            NOTE => Self::Note,
            ZONES => Self::Zones,
            ZONE => Self::Zone,
            other => return Err(WireError::UnknownFrame(other)),
        })
    }

    fn limit(self) -> usize {
        match self {
            Self::Offer => MAX_OFFER,
            Self::Accept => 8,
            Self::Reject => 2 + MAX_REASON,
            Self::Data => 8 + MAX_CHUNK,
            Self::Stored => MAX_RECEIPT,
            Self::Prove => 16,
            Self::Proof => 32 * MAX_PROOF_HASHES,
            Self::Held => MAX_NOTE,
            Self::Note => MAX_NOTE,
            Self::Zones => 64 * 1024,
            Self::Zone => MAX_ZONE,
        }
    }
}

impl Frame {
    /// Appends the encoded frame to `out`. Values this module would refuse to decode (an over-long
    /// reason or chunk) are refused here too, so nothing we send can be rejected as malformed.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let start = out.len();
        out.extend_from_slice(&[VERSION, 0, 0, 0, 0, 0]);
        let kind = match self {
            Self::Offer(offer) => {
                out.extend_from_slice(&offer.id);
                for code in [&offer.from, &offer.to] {
                    out.push(code.as_str().len() as u8);
                    out.extend_from_slice(code.as_str().as_bytes());
                }
                out.extend_from_slice(&offer.size.to_be_bytes());
                out.extend_from_slice(&offer.sealed_sha256);
                out.push(offer.urgency);
                out.extend_from_slice(&offer.expires.to_be_bytes());
                out.push(offer.kind.to_u8());
                if offer.hops != 0 {
                    out.push(offer.hops);
                }
                FrameKind::Offer
            }
            Self::Accept { resume_from } => {
                out.extend_from_slice(&resume_from.to_be_bytes());
                FrameKind::Accept
            }
            Self::Reject { code, reason } => {
                out.extend_from_slice(&code.to_u16().to_be_bytes());
                out.extend_from_slice(reason.as_bytes());
                FrameKind::Reject
            }
            Self::Data { offset, bytes } => {
                if bytes.is_empty() {
                    out.truncate(start);
                    return Err(WireError::Malformed {
                        kind: FrameKind::Data,
                        what: "empty chunk",
                    });
                }
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(bytes);
                FrameKind::Data
            }
            Self::Stored { receipt } => {
                out.extend_from_slice(receipt);
                FrameKind::Stored
            }
            Self::Prove { old, new } => {
                out.extend_from_slice(&old.to_be_bytes());
                out.extend_from_slice(&new.to_be_bytes());
                FrameKind::Prove
            }
            Self::Proof { hashes } => {
                for hash in hashes {
                    out.extend_from_slice(hash);
                }
                FrameKind::Proof
            }
            Self::Held { note } => {
                out.extend_from_slice(note);
                FrameKind::Held
            }
            Self::Note { note } => {
                out.extend_from_slice(note);
                FrameKind::Note
            }
            Self::Zones { versions } => {
                let mut malformed = |what| {
                    out.truncate(start);
                    Err(WireError::Malformed {
                        kind: FrameKind::Zones,
                        what,
                    })
                };
                if versions.len() > MAX_ZONES {
                    return malformed("more than 1,024 zones");
                }
                if !versions.iter().all(|(name, _)| is_zone_name(name)) {
                    return malformed("zone name");
                }
                out.extend_from_slice(&(versions.len() as u16).to_be_bytes());
                for (name, version) in versions {
                    out.push(name.len() as u8);
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(&version.to_be_bytes());
                }
                FrameKind::Zones
            }
            Self::Zone { file } => {
                if file.is_empty() {
                    out.truncate(start);
                    return Err(WireError::Malformed {
                        kind: FrameKind::Zone,
                        what: "empty zone",
                    });
                }
                out.extend_from_slice(file);
                FrameKind::Zone
            }
        };
        let len = out.len() - start - HEADER_LEN;
        if len > kind.limit() {
            out.truncate(start);
            return Err(WireError::TooLarge {
                kind,
                len,
                limit: kind.limit(),
            });
        }
        out[start + 1] = kind_type(kind);
        out[start + 2..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }

    /// Decodes one payload of type `kind`; `payload` must be exactly the frame's bytes.
    fn decode(kind: FrameKind, payload: &[u8]) -> Result<Self, WireError> {
        let bad = |what| WireError::Malformed { kind, what };
        let mut r = Reader(payload);
        let frame = match kind {
            FrameKind::Offer => {
                let id = r.array::<16>().ok_or(bad("id"))?;
                let from = r.organ_code().ok_or(bad("from organ code"))?;
                let to = r.organ_code().ok_or(bad("to organ code"))?;
                let size = r.u64().ok_or(bad("size"))?;
                let sealed_sha256 = r.array::<32>().ok_or(bad("sha256"))?;
                let urgency = r.array::<1>().ok_or(bad("urgency"))?[0];
                let expires = r.u64().ok_or(bad("expires"))?;
                let kind = r
                    .array::<1>()
                    .and_then(|[k]| ObjectKind::from_u8(k))
                    .ok_or(bad("object kind"))?;
                // Optional and last: an offer from a node that predates it has crossed no relay
                // as far as it can tell.
                let hops = match r.rest() {
                    [] => 0,
                    [hops] => *hops,
                    _ => return Err(bad("bytes after hops")),
                };
                if size == 0 {
                    return Err(bad("size 0"));
                }
                if urgency > 4 {
                    return Err(bad("urgency above 4"));
                }
                Self::Offer(Offer {
                    id,
                    from,
                    to,
                    size,
                    sealed_sha256,
                    urgency,
                    expires,
                    kind,
                    hops,
                })
            }
            FrameKind::Accept => Self::Accept {
                resume_from: r.u64().ok_or(bad("resume_from"))?,
            },
            FrameKind::Reject => {
                let code = u16::from_be_bytes(r.array::<2>().ok_or(bad("code"))?);
                let reason = std::str::from_utf8(r.rest())
                    .map_err(|_| bad("reason is not UTF-8"))?
                    .to_owned();
                Self::Reject {
                    code: RejectCode::from_u16(code),
                    reason,
                }
            }
            FrameKind::Data => {
                let offset = r.u64().ok_or(bad("offset"))?;
                let bytes = r.rest().to_vec();
                if bytes.is_empty() {
                    return Err(bad("empty chunk"));
                }
                Self::Data { offset, bytes }
            }
            FrameKind::Stored => Self::Stored {
                receipt: r.rest().to_vec(),
            },
            FrameKind::Prove => {
                let old = r.u64().ok_or(bad("old size"))?;
                let new = r.u64().ok_or(bad("new size"))?;
                if old > new {
                    return Err(bad("old size above new size"));
                }
                Self::Prove { old, new }
            }
            FrameKind::Proof => {
                let mut hashes = Vec::new();
                while !r.0.is_empty() {
                    hashes.push(r.array::<32>().ok_or(bad("not a whole number of hashes"))?);
                }
                Self::Proof { hashes }
            }
            FrameKind::Held => Self::Held {
                note: r.rest().to_vec(),
            },
            FrameKind::Note => Self::Note {
                note: r.rest().to_vec(),
            },
            FrameKind::Zones => {
                let count = u16::from_be_bytes(r.array::<2>().ok_or(bad("count"))?);
                if usize::from(count) > MAX_ZONES {
                    return Err(bad("more than 1,024 zones"));
                }
                let mut versions: Vec<(String, u64)> = Vec::with_capacity(count.into());
                for _ in 0..count {
                    let name = r.zone_name().ok_or(bad("zone name"))?;
                    let version = r.u64().ok_or(bad("zone version"))?;
                    if versions.iter().any(|(seen, _)| *seen == name) {
                        return Err(bad("zone listed twice"));
                    }
                    versions.push((name, version));
                }
                Self::Zones { versions }
            }
            FrameKind::Zone => {
                let file = r.rest().to_vec();
                if file.is_empty() {
                    return Err(bad("empty zone"));
                }
                Self::Zone { file }
            }
        };
        if !r.0.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(frame)
    }
}

fn kind_type(kind: FrameKind) -> u8 {
    match kind {
        FrameKind::Offer => OFFER,
        FrameKind::Accept => ACCEPT,
        FrameKind::Reject => REJECT,
        FrameKind::Data => DATA,
        FrameKind::Stored => STORED,
        FrameKind::Prove => PROVE,
        FrameKind::Proof => PROOF,
        FrameKind::Held => HELD,
        FrameKind::Note => NOTE,
        FrameKind::Zones => ZONES,
        FrameKind::Zone => ZONE,
    }
}

/// `root` or an organ code: 1-32 ASCII letters, digits and dots, no empty segment.
fn is_zone_name(name: &str) -> bool {
    name.parse::<OrganCode>().is_ok()
}

/// A cursor over a payload; every read is checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array::<8>().map(u64::from_be_bytes)
    }

    fn organ_code(&mut self) -> Option<OrganCode> {
        let len = usize::from(self.array::<1>()?[0]);
        if self.0.len() < len {
            return None;
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(text).ok()?.parse().ok()
    }

    fn zone_name(&mut self) -> Option<String> {
        let len = usize::from(self.array::<1>()?[0]);
        if self.0.len() < len {
            return None;
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        let name = std::str::from_utf8(text).ok()?;
        is_zone_name(name).then(|| name.to_owned())
    }

    fn rest(&mut self) -> &[u8] {
        std::mem::take(&mut self.0)
    }
}

/// Turns a byte stream into frames. Feed it what the stream delivers; take frames out with
/// [`FrameDecoder::next_frame`] until it answers `Ok(None)`. After an error the stream must be
/// closed: the decoder does not resynchronise.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// The largest payload taken, whatever the type's own limit: DATA's, until the stream is
    /// known to exchange zones.
    max_payload: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            max_payload: 8 + MAX_CHUNK,
        }
    }
}

impl FrameDecoder {
    /// An empty decoder, taking no frame larger than DATA's.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes ZONE frames up to [`MAX_ZONE`] from now on: for a stream that began with ZONES
    /// (`docs/wire-frames.md`, rule 10). On any other stream a peer cannot make the receiver
    /// buffer more than a DATA frame.
    pub fn allow_zones(&mut self) {
        self.max_payload = MAX_ZONE;
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        let Some(header) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        if header[0] != VERSION {
            return Err(WireError::UnsupportedVersion(header[0]));
        }
        let kind = FrameKind::from_type(header[1])?;
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        let limit = kind.limit().min(self.max_payload);
        if len > limit {
            return Err(WireError::TooLarge { kind, len, limit });
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let frame = Frame::decode(kind, &self.buf[HEADER_LEN..HEADER_LEN + len]);
        self.buf.drain(..HEADER_LEN + len);
        frame.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Offer {
        Offer {
            id: [7; 16],
            from: "000.00.00.G22".parse().unwrap(),
            to: "000.00.00.H41".parse().unwrap(),
            size: 3 * 1024 * 1024,
            sealed_sha256: [0xab; 32],
            urgency: 3,
            expires: 1_795_000_000,
            kind: ObjectKind::Dispatch,
            hops: 0,
        }
    }

    fn encoded(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        frame.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn every_frame_round_trips_even_one_byte_at_a_time() {
        let frames = vec![
            Frame::Offer(offer()),
            Frame::Offer(Offer { hops: 7, ..offer() }),
            Frame::Accept {
                resume_from: 1 << 20,
            },
            Frame::Reject {
                code: RejectCode::NotForUs,
                reason: "000.00.00.H41 không được phục vụ ở đây".into(),
            },
            Frame::Data {
                offset: 1 << 20,
                bytes: vec![0x5a; MAX_CHUNK],
            },
            Frame::Stored {
                receipt: b"receipt".to_vec(),
            },
            Frame::Prove {
                old: 7,
                new: 1 << 40,
            },
            Frame::Proof {
                hashes: vec![[1; 32], [2; 32]],
            },
            Frame::Held { note: Vec::new() },
            Frame::Note {
                note: b"vdx/000.00.00.H41\n12\nroot\n".to_vec(),
            },
            Frame::Note { note: Vec::new() },
            Frame::Zones {
                versions: vec![("root".into(), 12), ("000.00.00.H41".into(), 7)],
            },
            Frame::Zones {
                versions: Vec::new(),
            },
            Frame::Zone {
                file: vec![0x30; 70_000],
            },
        ];
        let mut stream = Vec::new();
        for f in &frames {
            f.encode(&mut stream).unwrap();
        }
        let mut decoder = FrameDecoder::new();
        decoder.allow_zones();
        let mut got = Vec::new();
        for b in &stream {
            decoder.feed(std::slice::from_ref(b));
            while let Some(f) = decoder.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn golden_bytes_of_the_spec_example() {
        let bytes = encoded(&Frame::Accept {
            resume_from: 1_048_576,
        });
        assert_eq!(bytes, [1, 2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0x10, 0, 0]);
        let offer_bytes = encoded(&Frame::Offer(offer()));
        assert_eq!(&offer_bytes[..6], &[1, 1, 0, 0, 0, 0x5e]);
        assert_eq!(offer_bytes.len(), 6 + 0x5e);
    }

    #[test]
    fn violations_get_their_stream_codes() {
        let mut cases: Vec<(Vec<u8>, u32)> = vec![
            (vec![2, 2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0], 0x10),
            (vec![1, 0x0d, 0, 0, 0, 0], 0x11),
            (vec![1, 0x09, 0, 0, 0x10, 0x01], 0x12),
            (vec![1, 4, 0xff, 0xff, 0xff, 0xff], 0x12),
            (vec![1, 2, 0, 0, 0, 9], 0x12),
            (vec![1, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0], 0x13),
            (vec![1, 4, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0], 0x13),
            (vec![1, 3, 0, 0, 0, 3, 0, 1, 0xff], 0x13),
            (vec![1, 7, 0, 0, 0, 17], 0x12),
            (
                [&[1, 7, 0, 0, 0, 16][..], &[0, 0, 0, 0, 0, 0, 0, 2], &[0; 8]].concat(),
                0x13,
            ),
            ([&[1, 8, 0, 0, 0, 33][..], &[0; 33]].concat(), 0x13),
        ];
        let mut bad_offer = encoded(&Frame::Offer(offer()));
        let urgency_at = bad_offer.len() - 10;
        bad_offer[urgency_at] = 5;
        cases.push((bad_offer, 0x13));
        let mut bad_kind = encoded(&Frame::Offer(offer()));
        *bad_kind.last_mut().unwrap() = 5;
        cases.push((bad_kind, 0x13));
        let mut bad_code = encoded(&Frame::Offer(offer()));
        bad_code[6 + 16 + 1] = b' ';
        cases.push((bad_code, 0x13));
        for (bytes, code) in cases {
            let mut d = FrameDecoder::new();
            d.feed(&bytes);
            let err = d.next_frame().unwrap_err();
            assert_eq!(err.stream_code(), code, "{bytes:02x?}: {err}");
        }
        // An oversized length is refused from the header alone, before any payload arrives.
        let mut d = FrameDecoder::new();
        d.feed(&[1, 6, 0, 2, 0, 0]);
        assert!(matches!(d.next_frame(), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn hops_are_optional_last_and_counted_zero_when_left_out() {
        let direct = encoded(&Frame::Offer(offer()));
        let relayed = encoded(&Frame::Offer(Offer { hops: 3, ..offer() }));
        // From its sender: byte for byte what a node without hops sends (0x5e bytes).
        assert_eq!(direct.len(), 6 + 0x5e);
        assert_eq!(relayed.len(), direct.len() + 1);
        assert_eq!(&relayed[..2], &direct[..2]);
        assert_eq!(&relayed[6..direct.len()], &direct[6..]);
        assert_eq!(relayed[2..6], [0, 0, 0, 0x5f]);
        assert_eq!(*relayed.last().unwrap(), 3);
        let decode = |bytes: &[u8]| {
            let mut d = FrameDecoder::new();
            d.feed(bytes);
            d.next_frame()
        };
        let Some(Frame::Offer(o)) = decode(&direct).unwrap() else {
            panic!("not an offer")
        };
        assert_eq!(o.hops, 0, "an offer without hops has crossed none");
        let Some(Frame::Offer(o)) = decode(&relayed).unwrap() else {
            panic!("not an offer")
        };
        assert_eq!(o.hops, 3);
        // An explicit 0 (a node may send it) reads as 0; a byte past hops is malformed.
        let mut explicit = direct.clone();
        explicit.push(0);
        explicit[5] += 1;
        let Some(Frame::Offer(o)) = decode(&explicit).unwrap() else {
            panic!("not an offer")
        };
        assert_eq!(o.hops, 0);
        let mut longer = relayed.clone();
        longer.push(9);
        longer[5] += 1;
        let err = decode(&longer).unwrap_err();
        assert_eq!(err.stream_code(), 0x13, "{err}");
        assert!(err.to_string().contains("bytes after hops"), "{err}");
        let max = encoded(&Frame::Offer(Offer {
            hops: u8::MAX,
            ..offer()
        }));
        let Some(Frame::Offer(o)) = decode(&max).unwrap() else {
            panic!("not an offer")
        };
        assert_eq!(o.hops, u8::MAX);
    }

    #[test]
    fn encoding_refuses_what_decoding_would() {
        let mut out = vec![9];
        let long = Frame::Reject {
            code: RejectCode::Busy,
            reason: "x".repeat(MAX_REASON + 1),
        };
        assert!(long.encode(&mut out).is_err());
        let empty = Frame::Data {
            offset: 0,
            bytes: Vec::new(),
        };
        assert!(empty.encode(&mut out).is_err());
        let bad_name = Frame::Zones {
            versions: vec![("000..H41".into(), 1)],
        };
        assert!(bad_name.encode(&mut out).is_err());
        let too_many = Frame::Zones {
            versions: (0..=MAX_ZONES).map(|n| (format!("Z{n}"), 1)).collect(),
        };
        assert!(too_many.encode(&mut out).is_err());
        assert!(Frame::Zone { file: Vec::new() }.encode(&mut out).is_err());
        assert_eq!(out, [9], "a refused frame leaves the buffer as it was");
    }

    #[test]
    fn zone_lists_are_checked_name_by_name() {
        let zones = |payload: &[u8]| {
            let mut bytes = vec![1, 0x0b];
            bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            bytes.extend_from_slice(payload);
            let mut d = FrameDecoder::new();
            d.feed(&bytes);
            d.next_frame()
        };
        let entry = |name: &str, version: u64| {
            [
                &[name.len() as u8][..],
                name.as_bytes(),
                &version.to_be_bytes(),
            ]
            .concat()
        };
        let root = entry("root", 3);
        let good = [&[0, 1][..], &root].concat();
        assert_eq!(
            zones(&good).unwrap(),
            Some(Frame::Zones {
                versions: vec![("root".into(), 3)]
            })
        );
        for (payload, why) in [
            ([&[0, 2][..], &root, &root].concat(), "zone listed twice"),
            ([&[0, 1][..], &entry("a b", 1)].concat(), "zone name"),
            ([&[0, 1][..], &entry("", 1)].concat(), "zone name"),
            ([&[0, 2][..], &root].concat(), "zone name"),
            (
                [&[0, 1][..], &root[..root.len() - 1]].concat(),
                "zone version",
            ),
            ([&[0x04, 0x01][..], &root].concat(), "more than 1,024 zones"),
            ([&[0, 1][..], &root, &[0]].concat(), "trailing bytes"),
        ] {
            match zones(&payload) {
                Err(WireError::Malformed { what, .. }) => assert_eq!(what, why),
                other => panic!("{payload:02x?}: {other:?}"),
            }
        }
        // A zone file past its limit is refused from the header alone; one past DATA's size, on
        // a stream not known to exchange zones.
        let mut d = FrameDecoder::new();
        d.allow_zones();
        d.feed(&[1, 0x0c, 0x00, 0x40, 0, 1]);
        assert!(matches!(d.next_frame(), Err(WireError::TooLarge { .. })));
        let mut d = FrameDecoder::new();
        d.feed(&[1, 0x0c, 0x00, 0x10, 0, 9]);
        assert!(matches!(
            d.next_frame(),
            Err(WireError::TooLarge {
                limit: 1_048_584,
                ..
            })
        ));
    }

    #[test]
    fn reject_codes_keep_unknown_numbers_and_say_what_to_retry() {
        for n in 0..20u16 {
            assert_eq!(RejectCode::from_u16(n).to_u16(), n);
        }
        assert!(RejectCode::NotForUs.is_permanent());
        assert!(!RejectCode::DiskFull.is_permanent());
        assert!(!RejectCode::from_u16(777).is_permanent());
    }
}
