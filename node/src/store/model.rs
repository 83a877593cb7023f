//! The model of what the store keeps about a dispatch: its id, direction and state, the record
//! itself, and how records are encoded in the `dispatches` tree. Kept apart from the operations so
//! that what a record *is* can be read without what is done to it.

use std::fmt;

use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use vdx_protocol::wire::{ObjectKind, Offer};
use vdx_protocol::{hex, OrganCode};

#[cfg(doc)]
use super::Store;
use super::{base64_bytes, Event, StoreError};

/// A dispatch's message id (UUID bytes); shown and stored as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MessageId(pub [u8; 16]);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> Self {
        id.to_string()
    }
}

impl MessageId {
    /// The id stored as a value (16 bytes); anything else is a corrupt store.
    pub(super) fn from_slice(bytes: &[u8]) -> Result<Self, StoreError> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| StoreError::Corrupt("a stored transfer id is not 16 bytes".into()))
    }
}

impl TryFrom<String> for MessageId {
    type Error = StoreError;

    fn try_from(s: String) -> Result<Self, StoreError> {
        hex::decode(&s)
            .map(Self)
            .ok_or_else(|| StoreError::Corrupt(format!("bad message id {s:?}")))
    }
}

/// Which way a dispatch travels through this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Direction {
    /// Submitted here, to be sent.
    Outgoing,
    /// Received here.
    Incoming,
    /// Received here for another agency, and forwarded (or to be): this node is its relay.
    Relayed,
}

/// Where a dispatch stands. Every change is a record update in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum DispatchState {
    /// In the outbox, waiting for (another) attempt.
    Queued,
    /// The next hop answered STORED; its receipt is kept.
    Sent {
        /// The hop receipt as received.
        #[serde(with = "base64_bytes")]
        receipt: Vec<u8>,
        /// Who signed it: the agency holding the dispatch now (none in records written before
        /// it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        held_by: Option<OrganCode>,
    },
    /// Given up; the reason is what the clerk sees.
    Failed {
        /// Why.
        reason: String,
    },
    /// Stored here, durably, from a peer; not yet opened (or, at a relay, not yet forwarded).
    Received,
    /// Opened and verified here, and given its incoming number (số đến).
    Registered,
    /// Opened here and refused: the sealed object is deleted, the reason kept and sent back.
    Refused {
        /// Why, in words the sender's clerk can read.
        reason: String,
    },
    /// A reply (receipt or notice) that has been checked and applied to the dispatch it is about.
    Applied,
    /// Received here and not opened after [`Store::begin_open`] allowed its last attempt (each
    /// attempt failed, or killed the process): refused to its sender, but its sealed object is
    /// kept for the operator, and nothing opens it again.
    KeptAside {
        /// Why, in words the sender's clerk and the operator can read.
        reason: String,
    },
}

/// What [`Store::begin_open`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenAttempt {
    /// Open it: this is attempt number `.0` (from 1), durably counted before the opening starts.
    Go(u32),
    /// Do not open it again: this many attempts were made and none finished.
    Exhausted(u32),
}

/// The incoming number (số đến) given to a registered dispatch: consecutive per year, in one series
/// for ordinary dispatches and a separate one for classified dispatches (Decree 30/2020).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingNumber {
    /// Calendar year of registration.
    pub year: i32,
    /// Whether this is the classified (mật) series.
    pub classified: bool,
    /// 1, 2, 3, … within the year and series.
    pub number: u64,
}

impl fmt::Display for IncomingNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let series = if self.classified { "M" } else { "" };
        write!(f, "{series}{}/{}", self.number, self.year)
    }
}

/// A status notice received about an outgoing dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeSeen {
    /// edXML status code, e.g. "01" (arrived) or "02" (refused).
    pub status: String,
    /// Which agency sent it.
    pub by: OrganCode,
    /// Unix seconds it was signed.
    pub time: i64,
    /// The reason, for a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the scheduler needs of a queued object, kept as the outbox index's value so that a pass
/// over the queue decodes no records: id ‖ urgency ‖ expires (u64 BE) ‖ recipient organ code. The
/// urgency byte's top bit marks an object for its next hop itself (`direct`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The transfer id.
    pub id: MessageId,
    /// The recipient agency (the next hop is chosen from it), or the next hop itself (`direct`).
    pub to: OrganCode,
    /// Độ khẩn 0-4.
    pub urgency: u8,
    /// Unix seconds after which delivery is pointless (0: never).
    pub expires: u64,
    /// Sent to `to` whatever the route to `to` says: a fan-out object, addressed to the node
    /// that splits it (`docs/broadcast.md` rule 4).
    pub direct: bool,
}

/// The urgency byte's bit that marks a [`Queued::direct`] object (urgencies are 0-4).
const DIRECT: u8 = 0x80;

impl Queued {
    pub(super) fn of(record: &Record) -> Self {
        Self {
            id: record.id,
            to: record.to.clone(),
            urgency: record.urgency,
            expires: record.expires,
            direct: record.kind == ObjectKind::FanOut,
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25 + self.to.as_str().len());
        out.extend_from_slice(&self.id.0);
        out.push(self.urgency | if self.direct { DIRECT } else { 0 });
        out.extend_from_slice(&self.expires.to_be_bytes());
        out.extend_from_slice(self.to.as_str().as_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let (id, rest) = bytes.split_first_chunk::<16>()?;
        let (urgency, rest) = rest.split_first()?;
        let (expires, to) = rest.split_first_chunk::<8>()?;
        Some(Self {
            id: MessageId(*id),
            to: std::str::from_utf8(to).ok()?.parse().ok()?,
            urgency: *urgency & !DIRECT,
            expires: u64::from_be_bytes(*expires),
            direct: *urgency & DIRECT != 0,
        })
    }
}

/// What is known about one dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Message id.
    pub id: MessageId,
    /// Outgoing or incoming.
    pub direction: Direction,
    /// Sending agency.
    pub from: OrganCode,
    /// Recipient agency.
    pub to: OrganCode,
    /// Bytes of the sealed object.
    pub size: u64,
    /// SHA-256 of the sealed object, hex.
    pub sealed_sha256: String,
    /// Độ khẩn 0-4: the outbox serves higher first.
    pub urgency: u8,
    /// Unix seconds after which delivery is pointless.
    pub expires: u64,
    /// Unix seconds of submission or arrival.
    pub created: u64,
    /// Send attempts so far (outgoing and relayed); for an arrival to open here, opening
    /// attempts so far (see [`Store::begin_open`]).
    pub attempts: u32,
    /// Current state.
    #[serde(flatten)]
    pub state: DispatchState,
    /// A sealed dispatch or a reply travelling back.
    #[serde(default)]
    pub kind: ObjectKind,
    /// Số đến, once registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_number: Option<IncomingNumber>,
    /// The recipient agency's signed delivery receipt, once it came back (outgoing only).
    #[serde(
        default,
        with = "base64_bytes::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivery_receipt: Option<Vec<u8>>,
    /// Its key in the outbox index while queued (so that taking it off needs no scan).
    #[serde(
        default,
        with = "base64_bytes::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub outbox_key: Option<Vec<u8>>,
    /// Status notices received about this dispatch, oldest first (outgoing only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<NoticeSeen>,
    /// Relays the object had crossed when it was offered here (OFFER `hops`); a relay hands it on
    /// with one more. Records stored before hops were counted read as 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hops: u8,
    /// The node that handed it over (the TLS peer, or this host for a hand-over between its
    /// tenants), for an arrival: a relay never hands it back there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub came_from: Option<OrganCode>,
    /// For a fan-out object sent from here: the copies it carries (`docs/broadcast.md` rule 5),
    /// which take its hop receipt or its failure with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MessageId>,
    /// For a copy that travels inside a fan-out object: that object's id. The copy has no object
    /// of its own here and is not in the outbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_by: Option<MessageId>,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl Record {
    /// One word for people and scripts: queued, sent, delivered, failed (outgoing); received,
    /// registered, refused, kept_aside (incoming); applied (a reply). A verified delivery receipt outweighs
    /// the rest: a dispatch whose hop receipt was lost in a crash and that expired before the
    /// restart was still delivered if its delivery receipt comes.
    pub fn status(&self) -> &'static str {
        match &self.state {
            DispatchState::Queued | DispatchState::Sent { .. } | DispatchState::Failed { .. }
                if self.delivery_receipt.is_some() =>
            {
                "delivered"
            }
            DispatchState::Queued => "queued",
            DispatchState::Sent { .. } => "sent",
            DispatchState::Failed { .. } => "failed",
            DispatchState::Received => "received",
            DispatchState::Registered => "registered",
            DispatchState::Refused { .. } => "refused",
            DispatchState::Applied => "applied",
            DispatchState::KeptAside { .. } => "kept_aside",
        }
    }

    /// Why it failed or was refused, if it was (and was not delivered after all).
    pub fn reason(&self) -> Option<&str> {
        match &self.state {
            DispatchState::Failed { .. } if self.delivery_receipt.is_some() => None,
            DispatchState::Failed { reason }
            | DispatchState::Refused { reason }
            | DispatchState::KeptAside { reason } => Some(reason),
            _ => None,
        }
    }

    /// The sealed object's SHA-256 as bytes (the record keeps it as hex for people).
    pub fn sealed_digest(&self) -> Result<[u8; 32], StoreError> {
        hex::decode(&self.sealed_sha256)
            .ok_or_else(|| StoreError::Corrupt(format!("digest of {}", self.id)))
    }

    /// `base` (kind, actor, the actor's own fields) about this record's object: its id, who it is
    /// from and to, what it is (replies say which kind), its size and digest.
    pub(super) fn event(&self, base: &Event) -> Event {
        let mut event = base.clone();
        event.id = Some(self.id.0);
        let event = event
            .field("from", &self.from)
            .field("to", &self.to)
            .field("size", self.size)
            .field("sealed-sha256", &self.sealed_sha256);
        match self.kind {
            ObjectKind::Dispatch => event,
            other => event.field("object", format!("{other:?}").to_lowercase()),
        }
    }

    pub(super) fn new(new: &Offer, direction: Direction, state: DispatchState, now: u64) -> Self {
        Self {
            id: MessageId(new.id),
            direction,
            from: new.from.clone(),
            to: new.to.clone(),
            size: new.size,
            sealed_sha256: hex::encode(&new.sealed_sha256),
            urgency: new.urgency,
            expires: new.expires,
            kind: new.kind,
            created: now,
            attempts: 0,
            state,
            incoming_number: None,
            delivery_receipt: None,
            outbox_key: None,
            notices: Vec::new(),
            hops: new.hops,
            came_from: None,
            members: Vec::new(),
            carried_by: None,
        }
    }
}

pub(super) fn same_content(existing: Record, new: &Offer) -> Result<Record, StoreError> {
    if existing.sealed_sha256 == hex::encode(&new.sealed_sha256) && existing.size == new.size {
        Ok(existing)
    } else {
        Err(StoreError::Conflict(MessageId(new.id)))
    }
}

pub(super) fn encode(record: &Record) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn decode(bytes: &[u8]) -> Result<Record, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("record: {e}")))
}

/// A record read inside a transaction.
pub(super) fn load(
    dispatches: &sled::transaction::TransactionalTree,
    id: MessageId,
) -> Result<Record, ConflictableTransactionError<StoreError>> {
    match dispatches.get(id.0)? {
        Some(bytes) => decode(&bytes).map_err(ConflictableTransactionError::Abort),
        None => Err(ConflictableTransactionError::Abort(StoreError::NotFound(
            id,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_print_and_parse_as_hex() {
        let id = MessageId([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(MessageId::try_from(id.to_string()).unwrap(), id);
        assert!(MessageId::try_from("zz".repeat(16)).is_err());
        assert!(MessageId::try_from(String::from("ab")).is_err());
    }

    #[test]
    fn records_stored_before_hops_read_as_zero_hops() {
        let offer = Offer {
            id: [3; 16],
            from: "000.00.00.G22".parse().unwrap(),
            to: "000.00.00.H41".parse().unwrap(),
            size: 10,
            sealed_sha256: [1; 32],
            urgency: 0,
            expires: 0,
            kind: ObjectKind::Dispatch,
            hops: 0,
        };
        let record = Record::new(&offer, Direction::Incoming, DispatchState::Received, 5);
        let old = encode(&record).unwrap();
        let text = String::from_utf8(old.clone()).unwrap();
        assert!(
            !text.contains("hops") && !text.contains("came_from"),
            "{text}"
        );
        assert_eq!(decode(&old).unwrap().hops, 0);
        let relayed = Record {
            hops: 2,
            came_from: Some("000.00.00.H26".parse().unwrap()),
            ..record
        };
        assert_eq!(decode(&encode(&relayed).unwrap()).unwrap(), relayed);
    }
}
