//! Ledger texts (spec: `docs/ledger.md`): entries (the Merkle leaves) and checkpoints (C2SP
//! `tlog-checkpoint` notes with `signed-note` signature lines). Signing and storage are the node's
//! job; this module formats and strictly parses, so that what an auditor reads is exactly what was
//! hashed.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{hex, utc, OrganCode};

/// The first line of an entry.
pub const ENTRY_MAGIC: &str = "vdx-ledger/1";
/// Longest entry, in bytes.
pub const MAX_ENTRY: usize = 4096;
/// Longest field value, in bytes.
pub const MAX_VALUE: usize = 1024;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum EntryKind {
    /// A clerk or system queued a dispatch.
    Submitted,
    /// A peer took custody (STORED).
    Sent,
    /// Received here for another agency and queued on.
    Relayed,
    /// Stored here from a peer.
    Received,
    /// Opened, verified and numbered.
    Registered,
    /// Refused on opening.
    Refused,
    /// Documents read by a local user or system.
    Fetched,
    /// A delivery receipt arrived and verified.
    Receipt,
    /// A status notice arrived.
    Notice,
    /// Given up (expiry, permanent refusal).
    Failed,
    /// Keys, configuration or directory changed.
    Config,
    /// The ledger was exported or queried.
    Audit,
}

impl EntryKind {
    /// Every kind, in spec order.
    pub const ALL: [Self; 12] = [
        Self::Submitted,
        Self::Sent,
        Self::Relayed,
        Self::Received,
        Self::Registered,
        Self::Refused,
        Self::Fetched,
        Self::Receipt,
        Self::Notice,
        Self::Failed,
        Self::Config,
        Self::Audit,
    ];

    /// The name in the text.
    pub fn name(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Sent => "sent",
            Self::Relayed => "relayed",
            Self::Received => "received",
            Self::Registered => "registered",
            Self::Refused => "refused",
            Self::Fetched => "fetched",
            Self::Receipt => "receipt",
            Self::Notice => "notice",
            Self::Failed => "failed",
            Self::Config => "config",
            Self::Audit => "audit",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EntryKind {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<Self, LedgerError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or(LedgerError::Line {
                line: 5,
                what: "unknown kind",
            })
    }
}

/// Who caused a recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A local user or system, by Unix uid.
    User(u32),
    /// A peer node, by organ code.
    Peer(OrganCode),
    /// The daemon itself.
    Node,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(uid) => write!(f, "uid:{uid}"),
            Self::Peer(code) => write!(f, "peer:{code}"),
            Self::Node => f.write_str("node"),
        }
    }
}

impl FromStr for Actor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        if s == "node" {
            return Ok(Self::Node);
        }
        if let Some(uid) = s.strip_prefix("uid:") {
            return decimal(uid)
                .and_then(|n| u32::try_from(n).ok())
                .map(Self::User)
                .ok_or(());
        }
        s.strip_prefix("peer:")
            .and_then(|c| c.parse().ok())
            .map(Self::Peer)
            .ok_or(())
    }
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the ledger (= leaf index).
    pub index: u64,
    /// The leaf hash of the entry before (none for entry 0): a hash chain that lets a verifier
    /// name the one entry changed between two checkpoints.
    pub prev: Option<[u8; 32]>,
    /// When the change was committed (whole seconds, UTC).
    pub time: OffsetDateTime,
    /// What happened.
    pub kind: EntryKind,
    /// The transfer id it is about, if any.
    pub id: Option<[u8; 16]>,
    /// Who caused it.
    pub actor: Actor,
    /// Details, by name (sorted by the map).
    pub fields: BTreeMap<String, String>,
}

/// Why bytes are not a ledger entry or checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// A line is missing, extra, out of order or badly formed.
    #[error("line {line}: {what}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What was expected.
        what: &'static str,
    },
    /// Not UTF-8, or longer than allowed.
    #[error("{0}")]
    Shape(&'static str),
}

fn bad(line: usize, what: &'static str) -> LedgerError {
    LedgerError::Line { line, what }
}

impl Entry {
    /// The canonical text: the Merkle leaf. Fails if a field would break the format.
    pub fn to_text(&self) -> Result<String, LedgerError> {
        let time = utc::format(self.time).ok_or(LedgerError::Shape("time out of range"))?;
        let id = self
            .id
            .map_or_else(|| "-".to_owned(), |id| hex::encode(&id));
        let prev = self
            .prev
            .map_or_else(|| "-".to_owned(), |h| hex::encode(&h));
        let mut out = format!(
            "{ENTRY_MAGIC}\nindex {}\nprev {prev}\ntime {time}\nkind {}\nid {id}\nactor {}\n",
            self.index, self.kind, self.actor
        );
        for (n, (name, value)) in self.fields.iter().enumerate() {
            if !is_field_name(name) || !is_value(value) {
                return Err(bad(8 + n, "bad field name or value"));
            }
            out.push_str(&format!("field {name} {value}\n"));
        }
        if out.len() > MAX_ENTRY {
            return Err(LedgerError::Shape("entry longer than 4096 bytes"));
        }
        Ok(out)
    }

    /// Parses the canonical text strictly: anything else is an error naming the line.
    pub fn parse(bytes: &[u8]) -> Result<Self, LedgerError> {
        if bytes.len() > MAX_ENTRY {
            return Err(LedgerError::Shape("entry longer than 4096 bytes"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| LedgerError::Shape("not UTF-8"))?;
        let body = text
            .strip_suffix('\n')
            .ok_or(bad(1, "the text must end with a line feed"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.first() != Some(&ENTRY_MAGIC) {
            return Err(bad(1, "expected vdx-ledger/1"));
        }
        if lines.len() < 7 {
            return Err(bad(lines.len() + 1, "an entry has at least seven lines"));
        }
        let value = |n: usize, key: &str, what| {
            lines[n - 1]
                .strip_prefix(key)
                .and_then(|l| l.strip_prefix(' '))
                .ok_or(bad(n, what))
        };
        let index = decimal(value(2, "index", "expected index")?)
            .ok_or(bad(2, "index must be a decimal number"))?;
        let prev = match value(3, "prev", "expected prev")? {
            "-" => None,
            h => Some(
                hex::decode::<32>(h).ok_or(bad(3, "prev must be 64 lower-case hex digits or -"))?,
            ),
        };
        if prev.is_none() != (index == 0) {
            return Err(bad(3, "prev is - in entry 0 and a hash in every other"));
        }
        let time = utc::parse(value(4, "time", "expected time")?).ok_or(bad(
            4,
            "time must be RFC 3339 UTC, whole seconds, ending in Z",
        ))?;
        let kind = value(5, "kind", "expected kind")?.parse()?;
        let id = match value(6, "id", "expected id")? {
            "-" => None,
            h => Some(
                hex::decode::<16>(h).ok_or(bad(6, "id must be 32 lower-case hex digits or -"))?,
            ),
        };
        let actor = value(7, "actor", "expected actor")?
            .parse()
            .map_err(|()| bad(7, "actor must be uid:N, peer:CODE or node"))?;
        let mut fields = BTreeMap::new();
        for (n, line) in lines.iter().enumerate().skip(7) {
            let (name, value) = line
                .strip_prefix("field ")
                .and_then(|l| l.split_once(' '))
                .filter(|(name, value)| is_field_name(name) && is_value(value))
                .ok_or(bad(n + 1, "expected field NAME VALUE"))?;
            if fields.insert(name.to_owned(), value.to_owned()).is_some() {
                return Err(bad(n + 1, "a field appears twice"));
            }
        }
        let entry = Self {
            index,
            prev,
            time,
            kind,
            id,
            actor,
            fields,
        };
        if entry.to_text()? != text {
            return Err(bad(1, "not in canonical form"));
        }
        Ok(entry)
    }
}

/// A checkpoint's body: which ledger, how many entries, which root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `vdx/ORGAN_CODE`.
    pub origin: String,
    /// Entries covered.
    pub size: u64,
    /// Merkle root of the first `size` entries.
    pub root: [u8; 32],
}

/// One `signed-note` signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name (the origin, for the node's own signature).
    pub name: String,
    /// First 4 bytes of the key hash ([`key_id`]).
    pub key_id: [u8; 4],
    /// The signature bytes.
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// The origin line of `organ_code`'s ledger.
    pub fn origin_of(organ_code: &OrganCode) -> String {
        format!("vdx/{organ_code}")
    }

    /// The signed text: three lines, each ending in LF.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            base64::engine::general_purpose::STANDARD.encode(self.root)
        )
    }

    /// The whole note: the body, a blank line, the signature lines.
    pub fn note(&self, signatures: &[NoteSignature]) -> String {
        let mut out = self.body();
        out.push('\n');
        for s in signatures {
            let mut blob = s.key_id.to_vec();
            blob.extend_from_slice(&s.signature);
            out.push_str(&format!(
                "— {} {}\n",
                s.name,
                base64::engine::general_purpose::STANDARD.encode(blob)
            ));
        }
        out
    }

    /// Parses a note strictly into its body and signature lines (not checked here: the caller
    /// verifies them with the node's certificate).
    pub fn parse_note(bytes: &[u8]) -> Result<(Self, Vec<NoteSignature>), LedgerError> {
        let text = std::str::from_utf8(bytes).map_err(|_| LedgerError::Shape("not UTF-8"))?;
        let (body, sigs) = text
            .split_once("\n\n")
            .ok_or(bad(4, "expected a blank line after the body"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root] = lines[..] else {
            return Err(bad(1, "a checkpoint body has exactly three lines"));
        };
        if origin.is_empty() || origin.contains(char::is_whitespace) {
            return Err(bad(1, "bad origin"));
        }
        let size = decimal(size).ok_or(bad(2, "size must be a decimal number"))?;
        let root: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(bad(3, "root must be base64 of 32 bytes"))?;
        let checkpoint = Self {
            origin: origin.to_owned(),
            size,
            root,
        };
        let mut signatures = Vec::new();
        let sig_text = sigs
            .strip_suffix('\n')
            .ok_or(bad(5, "the note must end with a line feed"))?;
        for (n, line) in sig_text.split('\n').enumerate() {
            let parsed = line
                .strip_prefix("— ")
                .and_then(|l| l.split_once(' '))
                .and_then(|(name, b64)| {
                    let blob = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                    let (id, sig) = blob.split_first_chunk::<4>()?;
                    (!name.is_empty() && !sig.is_empty()).then(|| NoteSignature {
                        name: name.to_owned(),
                        key_id: *id,
                        signature: sig.to_vec(),
                    })
                })
                .ok_or(bad(5 + n, "expected a signature line: — NAME BASE64"))?;
            signatures.push(parsed);
        }
        if checkpoint.note(&signatures) != text {
            return Err(bad(1, "not in canonical form"));
        }
        Ok((checkpoint, signatures))
    }
}

/// The key id of a vdx checkpoint signer: the first 4 bytes of
/// `SHA-256(name || 0x0A || 0xFF || SHA-256(SubjectPublicKeyInfo DER))`.
pub fn key_id(name: &str, spki_der: &[u8]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([0x0a, 0xff])
        .chain_update(Sha256::digest(spki_der))
        .finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(&digest[..4]);
    id
}

/// A decimal number without leading zeros: the one spelling every vdx text format accepts.
pub(crate) fn decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_value(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_VALUE && !value.contains(['\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> &'static str {
        include_str!("../../docs/ledger.md")
    }

    /// The n-th fenced block of the spec.
    fn block(n: usize) -> String {
        spec().split("```\n").nth(2 * n + 1).unwrap().to_owned()
    }

    #[test]
    fn the_spec_example_entry_parses_prints_back_and_hashes_to_the_example_root() {
        let text = block(0);
        let entry = Entry::parse(text.as_bytes()).unwrap();
        assert_eq!(entry.index, 0);
        assert_eq!(entry.kind, EntryKind::Received);
        assert_eq!(entry.actor, Actor::Peer("000.00.00.G22".parse().unwrap()));
        assert_eq!(entry.fields["size"], "3145728");
        assert_eq!(entry.to_text().unwrap(), text);
        let leaf: [u8; 32] = Sha256::new()
            .chain_update([0u8])
            .chain_update(text.as_bytes())
            .finalize()
            .into();
        let checkpoint = block(1);
        let root_line = checkpoint.lines().nth(2).unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(leaf),
            root_line,
            "the example checkpoint of size 1 has the entry's leaf hash as its root"
        );
    }

    #[test]
    fn anything_but_the_canonical_entry_is_refused_with_its_line() {
        let text = block(0);
        let cases = [
            (text.replace("vdx-ledger/1", "vdx-ledger/2"), 1),
            (text.replace("index 0", "index 00"), 2),
            (text.replace("index 0", "index -1"), 2),
            (text.replace("prev -", "prev 00"), 3),
            (
                text.replace("prev -", &format!("prev {}", "0".repeat(64))),
                3,
            ),
            (text.replace("08:00:05Z", "08:00:05+07:00"), 4),
            (text.replace("kind received", "kind eaten"), 5),
            (text.replace("id 6f1c", "id 6F1C"), 6),
            (text.replace("actor peer:", "actor friend:"), 7),
            (text.replace("field size", "field Size"), 9),
            (
                text.replace("field size 3145728", "field sealed-sha256 x"),
                9,
            ),
            (format!("{text}stray\n"), 10),
            (text.replace('\n', "\r\n"), 1),
        ];
        for (bad_text, line) in cases {
            match Entry::parse(bad_text.as_bytes()) {
                Err(LedgerError::Line { line: got, .. }) => assert_eq!(got, line, "{bad_text:?}"),
                other => panic!("{bad_text:?} gave {other:?}"),
            }
        }
        // Fields out of order are not canonical.
        let swapped = text.replace(
            "field sealed-sha256 9b0a4f0c1d2e3f405162738495a6b7c8d9eaf00112233445566778899aabbcc4\nfield size 3145728\n",
            "field size 3145728\nfield sealed-sha256 9b0a4f0c1d2e3f405162738495a6b7c8d9eaf00112233445566778899aabbcc4\n",
        );
        assert!(Entry::parse(swapped.as_bytes()).is_err());
        assert!(Entry::parse(&[0xff]).is_err());
    }

    #[test]
    fn entries_of_every_kind_and_actor_round_trip() {
        for (n, kind) in EntryKind::ALL.into_iter().enumerate() {
            for actor in [
                Actor::User(1001),
                Actor::Peer("000.00.00.H41".parse().unwrap()),
                Actor::Node,
            ] {
                let entry = Entry {
                    index: n as u64 * 1_000_003,
                    prev: (n > 0).then_some([n as u8; 32]),
                    time: OffsetDateTime::from_unix_timestamp(1_795_420_800 + n as i64).unwrap(),
                    kind,
                    id: (n % 2 == 0).then_some([n as u8; 16]),
                    actor,
                    fields: [("reason".to_owned(), "chữ ký không hợp lệ: bad".to_owned())].into(),
                };
                let text = entry.to_text().unwrap();
                assert_eq!(Entry::parse(text.as_bytes()).unwrap(), entry, "{text}");
            }
        }
        let mut bad = Entry::parse(block(0).as_bytes()).unwrap();
        bad.fields.insert("reason".into(), "two\nlines".into());
        assert!(bad.to_text().is_err());
    }

    #[test]
    fn checkpoint_notes_round_trip_and_refuse_other_shapes() {
        let checkpoint = Checkpoint {
            origin: Checkpoint::origin_of(&"000.00.00.H41".parse().unwrap()),
            size: 18,
            root: [7; 32],
        };
        let signature = NoteSignature {
            name: checkpoint.origin.clone(),
            key_id: key_id(&checkpoint.origin, b"spki"),
            signature: vec![1, 2, 3, 4, 5],
        };
        let note = checkpoint.note(std::slice::from_ref(&signature));
        assert!(note.starts_with("vdx/000.00.00.H41\n18\n"));
        assert_eq!(
            Checkpoint::parse_note(note.as_bytes()).unwrap(),
            (checkpoint.clone(), vec![signature])
        );
        for broken in [
            note.replace("\n18\n", "\n018\n"),
            note.replace("\n\n", "\n"),
            note.replace("— ", "- "),
            note.trim_end().to_owned(),
            note.replace("vdx/000.00.00.H41\n", "vdx/ 000\n"),
        ] {
            assert!(
                Checkpoint::parse_note(broken.as_bytes()).is_err(),
                "{broken:?}"
            );
        }
        assert_ne!(key_id("a", b"k"), key_id("b", b"k"));
        assert_ne!(key_id("a", b"k"), key_id("a", b"l"));
    }
}
