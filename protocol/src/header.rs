//! The dispatch header (`dispatch.json`): the first file of a dispatch package, saying who sends what
//! to whom, in the national edXML vocabulary (QCVN 102:2016/BTTTT, amended 2022) so that it maps 1:1
//! to an edXML `MessageHeader`, plus vdx's own message id, classification and file manifest.
//!
//! The exact format is specified in `docs/dispatch-header.md`. Reading a header is two steps, because
//! this crate does not parse JSON itself: deserialize with serde (the node uses `serde_json`), which
//! already refuses unknown fields and malformed organ codes, document ids and enum values, then call
//! [`DispatchHeader::validate`], which checks every rule that spans more than one value. A header is
//! only acted on after both steps succeeded.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{OrganCode, OrganCodeError};

/// The header of a dispatch, stored as `dispatch.json` at the start of the package.
///
/// Field order is the JSON order; every field maps to an edXML `MessageHeader` element except
/// `version`, `message_id`, `classification` and `files`, which are vdx's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchHeader {
    /// Format version; [`DispatchHeader::VERSION`]. Unknown versions are refused, not guessed at.
    pub version: u8,
    /// vdx's id of this transmission: a UUID in lower-case 8-4-4-4-12 hex. Receipts, notices and the
    /// ledger refer to it; two sends of the same document have different message ids.
    pub message_id: String,
    /// edXML `DocumentId`: the document's national identifier. Must agree with `from`, `code` and
    /// `promulgation.date`.
    pub document_id: DocumentId,
    /// edXML `From`: the issuing agency, whose key signs the package.
    pub from: Party,
    /// edXML `To`: the recipient agencies, 1 to [`DispatchHeader::MAX_RECIPIENTS`], no organ twice.
    pub to: Vec<Party>,
    /// edXML `Code`: số and ký hiệu of the document.
    pub code: Code,
    /// edXML `PromulgationInfo`: where and when the document was issued.
    pub promulgation: Promulgation,
    /// edXML `DocumentType`.
    pub document_type: DocumentType,
    /// edXML `Subject` (trích yếu). Required, except that a tuyệt mật header must not carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// edXML `SignerInfo`: the competent person who signed the document.
    pub signer: SignerInfo,
    /// edXML `DueDate`: when a reply or action is due, `YYYY-MM-DD`, not before promulgation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    /// edXML `SteeringType`, copied as is; vdx does not interpret it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steering_type: Option<u8>,
    /// edXML `ResponseFor`: the documents this one answers, 1 to
    /// [`DispatchHeader::MAX_RESPONSE_FOR`] when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_for: Option<Vec<DocumentId>>,
    /// edXML `OtherInfo.Priority` (độ khẩn): decides queue order and registration deadlines.
    pub priority: Priority,
    /// edXML business type: a new document, or a recall, update or replacement of an earlier one.
    pub business: Business,
    /// Độ mật (vdx's own): decides the incoming-number series and whether `subject` may appear.
    pub classification: Classification,
    /// Manifest of the files that follow the header in the package, in package order, 1 to
    /// [`DispatchHeader::MAX_FILES`], names unique.
    pub files: Vec<FileEntry>,
}

impl DispatchHeader {
    /// The only format version this code reads and writes.
    pub const VERSION: u8 = 1;
    /// Name of the header inside the package; no manifest file may use it.
    pub const FILE_NAME: &'static str = "dispatch.json";
    /// Most recipients of one dispatch: every commune of the country, with room to spare. Each
    /// copy carries its own recipient info only (`docs/broadcast.md`).
    pub const MAX_RECIPIENTS: usize = 4096;
    /// Most files in one dispatch.
    pub const MAX_FILES: usize = 1000;
    /// Most documents one dispatch may answer.
    pub const MAX_RESPONSE_FOR: usize = 100;
    /// Longest subject (trích yếu), in characters.
    pub const MAX_SUBJECT_CHARS: usize = 2000;
    /// Longest name-like text (organ names, place, type name, signer fields), in characters.
    pub const MAX_NAME_CHARS: usize = 500;
    /// Longest code-like text (code number and notation, document type code), in characters.
    pub const MAX_CODE_CHARS: usize = 100;
    /// A reader refuses a `dispatch.json` longer than this before parsing it. Every valid header,
    /// written compactly or pretty-printed by `serde_json`, is shorter.
    pub const MAX_JSON_BYTES: usize = 16 << 20;

    /// Checks every rule of `docs/dispatch-header.md` that deserialization does not already enforce.
    /// Returns the first rule broken, checking fields in JSON order.
    pub fn validate(&self) -> Result<(), HeaderError> {
        if self.version != Self::VERSION {
            return Err(HeaderError::UnsupportedVersion {
                version: self.version,
            });
        }
        if !is_uuid_text(&self.message_id) {
            return Err(HeaderError::BadMessageId {
                value: self.message_id.clone(),
            });
        }
        self.from.check("from.organ_name")?;
        check_count("to", self.to.len(), Self::MAX_RECIPIENTS)?;
        let mut seen = HashSet::with_capacity(self.to.len());
        for party in &self.to {
            party.check("to.organ_name")?;
            if !seen.insert(&party.organ_id) {
                return Err(HeaderError::DuplicateRecipient {
                    organ_id: party.organ_id.clone(),
                });
            }
        }
        check_text("code.number", &self.code.number, Self::MAX_CODE_CHARS)?;
        check_text("code.notation", &self.code.notation, Self::MAX_CODE_CHARS)?;
        check_text(
            "promulgation.place",
            &self.promulgation.place,
            Self::MAX_NAME_CHARS,
        )?;
        let promulgated = check_date("promulgation.date", &self.promulgation.date)?;
        self.check_document_id(promulgated)?;
        check_text(
            "document_type.code",
            &self.document_type.code,
            Self::MAX_CODE_CHARS,
        )?;
        check_text(
            "document_type.name",
            &self.document_type.name,
            Self::MAX_NAME_CHARS,
        )?;
        match (&self.subject, self.classification) {
            (Some(_), Classification::TuyetMat) => return Err(HeaderError::SubjectInTopSecret),
            (None, Classification::TuyetMat) => {}
            (None, _) => return Err(HeaderError::MissingSubject),
            (Some(subject), _) => check_subject(subject)?,
        }
        check_text(
            "signer.competence",
            &self.signer.competence,
            Self::MAX_NAME_CHARS,
        )?;
        check_text(
            "signer.position",
            &self.signer.position,
            Self::MAX_NAME_CHARS,
        )?;
        check_text(
            "signer.full_name",
            &self.signer.full_name,
            Self::MAX_NAME_CHARS,
        )?;
        if let Some(due) = &self.due_date {
            if check_date("due_date", due)? < promulgated {
                return Err(HeaderError::DueBeforePromulgation);
            }
        }
        if let Some(ids) = &self.response_for {
            check_count("response_for", ids.len(), Self::MAX_RESPONSE_FOR)?;
        }
        check_count("files", self.files.len(), Self::MAX_FILES)?;
        let mut names = HashSet::with_capacity(self.files.len());
        for file in &self.files {
            file.check()?;
            // Case-folded, so that extracting the package with `tar x` on a case-insensitive file
            // system cannot overwrite one file with another.
            if !names.insert(file.name.to_lowercase()) {
                return Err(HeaderError::DuplicateFile {
                    name: file.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// The document id names this very document: same issuer, date, number and notation.
    fn check_document_id(&self, promulgated: CalendarDate) -> Result<(), HeaderError> {
        let id = &self.document_id;
        let part = if id.organ_id != self.from.organ_id {
            "organ id"
        } else if id.date != promulgated {
            "date"
        } else if id.number != self.code.number {
            "number"
        } else if id.notation != self.code.notation {
            "notation"
        } else {
            return Ok(());
        };
        Err(HeaderError::DocumentIdMismatch { part })
    }
}

/// An agency as the header names it (edXML `From` / `To`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// edXML `OrganId`: the agency's address in the directory.
    pub organ_id: OrganCode,
    /// edXML `OrganName`: shown to clerks; the organ id, not the name, is what is trusted.
    pub organ_name: String,
}

impl Party {
    fn check(&self, field: &'static str) -> Result<(), HeaderError> {
        check_text(field, &self.organ_name, DispatchHeader::MAX_NAME_CHARS)
    }
}

/// Số and ký hiệu (edXML `Code`): how people cite the document, e.g. `7816/VPCP-TTĐT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// edXML `CodeNumber` (số), e.g. `7816`.
    pub number: String,
    /// edXML `CodeNotation` (ký hiệu), e.g. `VPCP-TTĐT`.
    pub notation: String,
}

/// Where and when the document was issued (edXML `PromulgationInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promulgation {
    /// edXML `Place`, e.g. `Hà Nội`.
    pub place: String,
    /// edXML `PromulgationDate`, written `YYYY-MM-DD` here.
    pub date: String,
}

/// The kind of document (edXML `DocumentType`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentType {
    /// edXML `Type`: the code from the 2022 amendment's list, copied as is (not checked by vdx).
    pub code: String,
    /// edXML `TypeName`, e.g. `Công văn`.
    pub name: String,
}

/// The competent person who signed the document (edXML `SignerInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerInfo {
    /// edXML `Competence` (thẩm quyền ký), e.g. `KT. BỘ TRƯỞNG, CHỦ NHIỆM`.
    pub competence: String,
    /// edXML `Position` (chức vụ), e.g. `Phó Chủ nhiệm`.
    pub position: String,
    /// edXML `FullName`.
    pub full_name: String,
}

/// One file of the package, as the manifest lists it. The opener checks each file against its entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// A plain file name (no directories), the name of the tar member and of the file a recipient
    /// saves.
    pub name: String,
    /// Media type, lower case `type/subtype` without parameters, e.g. `application/pdf`.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the file's bytes, 64 lower-case hex digits.
    pub sha256: String,
}

impl FileEntry {
    /// Longest file name, in UTF-8 bytes (the common file-system limit).
    pub const MAX_NAME_BYTES: usize = 255;
    /// Longest media type, in bytes (RFC 6838: 127 for each half).
    pub const MAX_MEDIA_TYPE_BYTES: usize = 255;

    fn check(&self) -> Result<(), HeaderError> {
        check_file_name(&self.name)?;
        if !is_media_type(&self.media_type) {
            return Err(HeaderError::BadMediaType {
                name: self.name.clone(),
                value: self.media_type.clone(),
            });
        }
        if !is_lower_hex(&self.sha256, 64) {
            return Err(HeaderError::BadDigest {
                name: self.name.clone(),
            });
        }
        Ok(())
    }
}

/// Why a header breaks a rule. Each variant is a distinct refusal reason a receiver can report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// `version` is not [`DispatchHeader::VERSION`].
    #[error("unsupported header version {version}")]
    UnsupportedVersion {
        /// The version found.
        version: u8,
    },
    /// `message_id` is not a lower-case 8-4-4-4-12 hex UUID.
    #[error("message id {value:?} is not a lower-case UUID")]
    BadMessageId {
        /// The text found.
        value: String,
    },
    /// `document_id` names another document than the header describes.
    #[error("document id {part} does not match the header")]
    DocumentIdMismatch {
        /// Which part differs: `organ id`, `date`, `number` or `notation`.
        part: &'static str,
    },
    /// A date field is not a calendar date `YYYY-MM-DD`.
    #[error("{field} {value:?} is not a date YYYY-MM-DD")]
    BadDate {
        /// The field, e.g. `promulgation.date`.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// `due_date` is before `promulgation.date`.
    #[error("due date is before the promulgation date")]
    DueBeforePromulgation,
    /// A required text field is empty or only white space.
    #[error("{field} is empty")]
    EmptyField {
        /// The field, e.g. `signer.full_name`.
        field: &'static str,
    },
    /// A text field is longer than its limit.
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The limit, in characters.
        max: usize,
    },
    /// A text field contains a control character (only `subject` may contain line feeds).
    #[error("{field} contains a control character")]
    ControlCharacter {
        /// The field.
        field: &'static str,
    },
    /// A list that must have at least one element is empty.
    #[error("{what} is empty")]
    EmptyList {
        /// The list: `to`, `files` or `response_for`.
        what: &'static str,
    },
    /// A list is longer than its limit.
    #[error("{what} has more than {max} entries")]
    TooMany {
        /// The list.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The same organ appears twice in `to`.
    #[error("recipient {organ_id} is listed twice")]
    DuplicateRecipient {
        /// The repeated organ code.
        organ_id: OrganCode,
    },
    /// A tuyệt mật header carries a subject.
    #[error("a top-secret (tuyệt mật) header must not carry a subject")]
    SubjectInTopSecret,
    /// A header that is not tuyệt mật has no subject.
    #[error("subject (trích yếu) is required unless the dispatch is top secret")]
    MissingSubject,
    /// A file name is not a plain, safe file name.
    #[error("file name {name:?} is not allowed: {reason}")]
    BadFileName {
        /// The name found.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two files have the same name (compared case-insensitively).
    #[error("file name {name:?} is used twice")]
    DuplicateFile {
        /// The second occurrence.
        name: String,
    },
    /// A file's media type is not lower-case `type/subtype`.
    #[error("media type {value:?} of file {name:?} is not a lower-case type/subtype")]
    BadMediaType {
        /// The file.
        name: String,
        /// The text found.
        value: String,
    },
    /// A file's digest is not 64 lower-case hex digits.
    #[error("sha256 of file {name:?} is not 64 lower-case hex digits")]
    BadDigest {
        /// The file.
        name: String,
    },
}

/// A date without time or zone, as the header's dates and document ids carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CalendarDate {
    year: u16,
    month: u8,
    day: u8,
}

impl CalendarDate {
    /// A date of the Gregorian calendar, years 1 to 9999; `None` if no such day exists.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if year.is_multiple_of(4)
                && (!year.is_multiple_of(100) || year.is_multiple_of(400)) =>
            {
                29
            }
            2 => 28,
            _ => return None,
        };
        ((1..=9999).contains(&year) && (1..=days).contains(&day)).then_some(Self {
            year,
            month,
            day,
        })
    }

    /// Parses `YYYY-MM-DD` exactly (the header's form); `None` for anything else.
    pub fn parse_iso(s: &str) -> Option<Self> {
        Self::parse_with(s, b'-')
    }

    /// Parses `yyyy/MM/dd` exactly (the edXML `DocumentId` form); `None` for anything else.
    pub fn parse_edxml(s: &str) -> Option<Self> {
        Self::parse_with(s, b'/')
    }

    fn parse_with(s: &str, sep: u8) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != sep || b[7] != sep {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u16> {
            b[r].iter().try_fold(0u16, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u16::from(c - b'0'))
            })
        };
        let year = num(0..4)?;
        let month = u8::try_from(num(5..7)?).ok()?;
        let day = u8::try_from(num(8..10)?).ok()?;
        Self::new(year, month, day)
    }

    /// The year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The day of the month, from 1.
    pub fn day(self) -> u8 {
        self.day
    }

    /// The date as `yyyy/MM/dd`, for edXML `DocumentId`.
    pub fn edxml(self) -> String {
        format!("{:04}/{:02}/{:02}", self.year, self.month, self.day)
    }
}

/// Written `YYYY-MM-DD`.
impl fmt::Display for CalendarDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The national identifier of a document (edXML `DocumentId`), text form
/// `OrganId,yyyy/MM/dd,Number/Notation`, e.g. `000.00.00.G22,2015/09/30,7816/VPCP-TTĐT`.
///
/// Parsing splits at the first two commas, then at the first `/` after them: the number has no `/`,
/// the notation may (`15/2020/NĐ-CP` is number `15`, notation `2020/NĐ-CP`). Neither has a comma,
/// a control character or surrounding white space, so printing and parsing round-trip exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocumentId {
    organ_id: OrganCode,
    date: CalendarDate,
    number: String,
    notation: String,
}

impl DocumentId {
    /// Builds an id from its parts, with the same checks as parsing.
    pub fn new(
        organ_id: OrganCode,
        date: CalendarDate,
        number: &str,
        notation: &str,
    ) -> Result<Self, DocumentIdError> {
        check_id_part("number", number, false)?;
        check_id_part("notation", notation, true)?;
        Ok(Self {
            organ_id,
            date,
            number: number.to_owned(),
            notation: notation.to_owned(),
        })
    }

    /// The issuing agency.
    pub fn organ_id(&self) -> &OrganCode {
        &self.organ_id
    }

    /// The promulgation date.
    pub fn date(&self) -> CalendarDate {
        self.date
    }

    /// The number (số).
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The notation (ký hiệu).
    pub fn notation(&self) -> &str {
        &self.notation
    }
}

fn check_id_part(part: &'static str, s: &str, slash_ok: bool) -> Result<(), DocumentIdError> {
    if s.is_empty() {
        return Err(DocumentIdError::Empty { part });
    }
    if s.chars().count() > DispatchHeader::MAX_CODE_CHARS {
        return Err(DocumentIdError::TooLong {
            part,
            max: DispatchHeader::MAX_CODE_CHARS,
        });
    }
    if let Some(found) = s
        .chars()
        .find(|&c| c.is_control() || c == ',' || (c == '/' && !slash_ok))
    {
        return Err(DocumentIdError::Character { part, found });
    }
    if s.trim() != s {
        return Err(DocumentIdError::Padded { part });
    }
    Ok(())
}

impl FromStr for DocumentId {
    type Err = DocumentIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, ',');
        let (Some(organ), Some(date), Some(code)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(DocumentIdError::Shape);
        };
        let Some((number, notation)) = code.split_once('/') else {
            return Err(DocumentIdError::Shape);
        };
        let organ_id = organ.parse().map_err(DocumentIdError::OrganId)?;
        let date = CalendarDate::parse_edxml(date).ok_or(DocumentIdError::Date)?;
        Self::new(organ_id, date, number, notation)
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{}/{}",
            self.organ_id,
            self.date.edxml(),
            self.number,
            self.notation
        )
    }
}

impl TryFrom<String> for DocumentId {
    type Error = DocumentIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DocumentId> for String {
    fn from(id: DocumentId) -> Self {
        id.to_string()
    }
}

/// Why a string is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentIdError {
    /// Not `OrganId,yyyy/MM/dd,Number/Notation`.
    #[error("document id must have the form OrganId,yyyy/MM/dd,Number/Notation")]
    Shape,
    /// The organ id part is not an organ code.
    #[error("document id organ id: {0}")]
    OrganId(#[source] OrganCodeError),
    /// The date part is not a calendar date `yyyy/MM/dd`.
    #[error("document id date is not a date yyyy/MM/dd")]
    Date,
    /// The number or the notation is empty.
    #[error("document id {part} is empty")]
    Empty {
        /// `number` or `notation`.
        part: &'static str,
    },
    /// The number or the notation is too long.
    #[error("document id {part} is longer than {max} characters")]
    TooLong {
        /// `number` or `notation`.
        part: &'static str,
        /// The limit, in characters.
        max: usize,
    },
    /// The number or the notation contains a comma, a control character, or (number only) a `/`.
    #[error("document id {part} contains {found:?}")]
    Character {
        /// `number` or `notation`.
        part: &'static str,
        /// The character.
        found: char,
    },
    /// The number or the notation starts or ends with white space.
    #[error("document id {part} has surrounding white space")]
    Padded {
        /// `number` or `notation`.
        part: &'static str,
    },
}

/// Why a name or number does not denote a value of one of the header's enums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnknownValue {
    /// An unknown name (command line, JSON string).
    #[error("unknown {what} {value:?}, expected one of: {expected}")]
    Name {
        /// What was being parsed, e.g. `priority`.
        what: &'static str,
        /// The text found.
        value: String,
        /// The accepted names.
        expected: &'static str,
    },
    /// An unknown number (JSON).
    #[error("unknown {what} code {code}, expected 0 to {max}")]
    Code {
        /// What was being parsed, e.g. `priority`.
        what: &'static str,
        /// The number found.
        code: u8,
        /// The largest known code.
        max: u8,
    },
}

/// Độ khẩn (edXML `OtherInfo.Priority`): how urgently the dispatch must travel and be registered.
///
/// Ordered by urgency, `Thuong < Khan < ThuongKhan < HoaToc < HoaTocHenGio`; JSON is the edXML code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
#[non_exhaustive]
pub enum Priority {
    /// Thường (0): normal.
    Thuong = 0,
    /// Khẩn (1): urgent.
    Khan = 1,
    /// Thượng khẩn (2): very urgent.
    ThuongKhan = 2,
    /// Hỏa tốc (3): flash.
    HoaToc = 3,
    /// Hỏa tốc hẹn giờ (4): flash, to be delivered by an appointed time; the most urgent.
    HoaTocHenGio = 4,
}

impl Priority {
    /// Every priority, least urgent first.
    pub const ALL: [Self; 5] = [
        Self::Thuong,
        Self::Khan,
        Self::ThuongKhan,
        Self::HoaToc,
        Self::HoaTocHenGio,
    ];
    const NAMES: &'static str = "thuong, khan, thuong-khan, hoa-toc, hoa-toc-hen-gio";

    /// The edXML code, 0 to 4.
    pub fn code(self) -> u8 {
        match self {
            Self::Thuong => 0,
            Self::Khan => 1,
            Self::ThuongKhan => 2,
            Self::HoaToc => 3,
            Self::HoaTocHenGio => 4,
        }
    }

    /// Position in the outbox queue: 0 is sent first (hỏa tốc hẹn giờ, then hỏa tốc, ...), 4 last.
    pub fn queue_rank(self) -> u8 {
        4 - self.code()
    }

    /// True for khẩn and above, which Decree 30/2020 requires to be registered and forwarded at once.
    pub fn is_urgent(self) -> bool {
        self != Self::Thuong
    }

    /// The command-line name, e.g. `thuong-khan`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Thuong => "thuong",
            Self::Khan => "khan",
            Self::ThuongKhan => "thuong-khan",
            Self::HoaToc => "hoa-toc",
            Self::HoaTocHenGio => "hoa-toc-hen-gio",
        }
    }
}

impl TryFrom<u8> for Priority {
    type Error = UnknownValue;

    fn try_from(code: u8) -> Result<Self, Self::Error> {
        Self::ALL
            .into_iter()
            .find(|p| p.code() == code)
            .ok_or(UnknownValue::Code {
                what: "priority",
                code,
                max: 4,
            })
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> Self {
        p.code()
    }
}

/// Accepts the command-line names `thuong|khan|thuong-khan|hoa-toc|hoa-toc-hen-gio`.
impl FromStr for Priority {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownValue::Name {
                what: "priority",
                value: s.to_owned(),
                expected: Self::NAMES,
            })
    }
}

/// Written as the command-line name.
impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The edXML business type: whether the dispatch is a new document or acts on an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
#[non_exhaustive]
pub enum Business {
    /// 0: a new document.
    New = 0,
    /// 1: recall (thu hồi) of an earlier document; the recipient destroys its copy.
    Recall = 1,
    /// 2: an update of an earlier document.
    Update = 2,
    /// 3: a replacement of an earlier document.
    Replacement = 3,
}

impl Business {
    /// Every business type, in code order.
    pub const ALL: [Self; 4] = [Self::New, Self::Recall, Self::Update, Self::Replacement];

    /// The edXML code, 0 to 3.
    pub fn code(self) -> u8 {
        match self {
            Self::New => 0,
            Self::Recall => 1,
            Self::Update => 2,
            Self::Replacement => 3,
        }
    }
}

impl TryFrom<u8> for Business {
    type Error = UnknownValue;

    fn try_from(code: u8) -> Result<Self, Self::Error> {
        Self::ALL
            .into_iter()
            .find(|b| b.code() == code)
            .ok_or(UnknownValue::Code {
                what: "business type",
                code,
                max: 3,
            })
    }
}

impl From<Business> for u8 {
    fn from(b: Business) -> Self {
        b.code()
    }
}

/// Độ mật: the state-secret classification. Ordered from `None` to `TuyetMat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Classification {
    /// Not classified (`none`).
    None,
    /// Mật, confidential (`mat`).
    Mat,
    /// Tối mật, secret (`toi-mat`).
    ToiMat,
    /// Tuyệt mật, top secret (`tuyet-mat`): the header carries no subject.
    TuyetMat,
}

impl Classification {
    /// Every classification, lowest first.
    pub const ALL: [Self; 4] = [Self::None, Self::Mat, Self::ToiMat, Self::TuyetMat];

    /// True for mật and above: such dispatches get the separate incoming-number series.
    pub fn is_classified(self) -> bool {
        self != Self::None
    }

    /// The JSON and command-line name, e.g. `toi-mat`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Mat => "mat",
            Self::ToiMat => "toi-mat",
            Self::TuyetMat => "tuyet-mat",
        }
    }
}

/// Accepts the JSON names `none|mat|toi-mat|tuyet-mat`.
impl FromStr for Classification {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownValue::Name {
                what: "classification",
                value: s.to_owned(),
                expected: "none, mat, toi-mat, tuyet-mat",
            })
    }
}

/// Written as the JSON name.
impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), HeaderError> {
    check_text_with(field, value, max, false)
}

fn check_subject(subject: &str) -> Result<(), HeaderError> {
    check_text_with("subject", subject, DispatchHeader::MAX_SUBJECT_CHARS, true)
}

fn check_text_with(
    field: &'static str,
    value: &str,
    max: usize,
    newline_ok: bool,
) -> Result<(), HeaderError> {
    if value.trim().is_empty() {
        return Err(HeaderError::EmptyField { field });
    }
    if value.chars().count() > max {
        return Err(HeaderError::TooLong { field, max });
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(newline_ok && c == '\n'))
    {
        return Err(HeaderError::ControlCharacter { field });
    }
    Ok(())
}

fn check_count(what: &'static str, len: usize, max: usize) -> Result<(), HeaderError> {
    if len == 0 {
        return Err(HeaderError::EmptyList { what });
    }
    if len > max {
        return Err(HeaderError::TooMany { what, max });
    }
    Ok(())
}

fn check_date(field: &'static str, value: &str) -> Result<CalendarDate, HeaderError> {
    CalendarDate::parse_iso(value).ok_or_else(|| HeaderError::BadDate {
        field,
        value: value.to_owned(),
    })
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower-case hex.
/// Whether `s` is a message id as the header spells it: a UUID in lower-case hex with dashes.
pub fn is_uuid_text(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| is_lower_hex(g, len))
}

/// Lower-case `type/subtype`, each half 1 to 127 RFC 6838 restricted-name characters starting with a
/// letter or digit.
fn is_media_type(s: &str) -> bool {
    let restricted = |part: &str| {
        let b = part.as_bytes();
        (1..=127).contains(&b.len())
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter()
                .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"!#$&-^_.+".contains(&c))
    };
    s.len() <= FileEntry::MAX_MEDIA_TYPE_BYTES
        && s.split_once('/')
            .is_some_and(|(t, sub)| restricted(t) && restricted(sub))
}

/// Checks that `name` is a plain file name a recipient can save and a clerk can read as it is:
/// the rule of a manifest entry's `name` (`docs/dispatch-header.md`, "File"). The composing node,
/// `vdx send` before it uploads, and every receiving node check it, so that one rule holds at each
/// edge. Besides what would escape the output directory, it refuses characters that make a name
/// read as another one: bidirectional controls (`Quyết định\u{202E}fdp.exe` shows as
/// `Quyết địnhexe.pdf`) and invisible ones (a zero-width space makes two names that look equal).
pub fn check_file_name(name: &str) -> Result<(), HeaderError> {
    match file_name_problem(name) {
        Some(reason) => Err(HeaderError::BadFileName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn file_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.len() > FileEntry::MAX_NAME_BYTES {
        Some("longer than 255 bytes")
    } else if name == "." || name == ".." {
        Some("a directory reference")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.chars().any(is_bidi_control) {
        Some("contains a bidirectional control character (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069)")
    } else if name.chars().any(is_invisible) {
        Some("contains an invisible character (zero-width, soft hyphen, word joiner, separator or tag)")
    } else if name.eq_ignore_ascii_case(DispatchHeader::FILE_NAME) {
        Some("reserved for the header")
    } else {
        None
    }
}

/// Characters that reorder the text around them when it is shown: the embeddings, overrides and
/// isolates, and the implicit marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show as nothing (or, the line and paragraph separators, as a line break), so
/// that two names that look the same differ. The soft hyphen is among them: it is visible only
/// where a line breaks, never in a file name. Combining marks are not: decomposed Vietnamese
/// (NFD, as macOS writes names) needs them.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180E}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of `docs/dispatch-header.md`, byte for byte (without its final newline).
    const GOLDEN: &str = r#"{
  "version": 1,
  "message_id": "ede8f2d9-bc6a-4e52-bf5b-39e4e0fca73a",
  "document_id": "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT",
  "from": {
    "organ_id": "000.00.00.G22",
    "organ_name": "Văn phòng Chính phủ"
  },
  "to": [
    {
      "organ_id": "000.00.00.H41",
      "organ_name": "Ủy ban nhân dân tỉnh Nghệ An"
    },
    {
      "organ_id": "000.00.00.H29",
      "organ_name": "Ủy ban nhân dân thành phố Hà Nội"
    }
  ],
  "code": {
    "number": "7816",
    "notation": "VPCP-TTĐT"
  },
  "promulgation": {
    "place": "Hà Nội",
    "date": "2015-09-30"
  },
  "document_type": {
    "code": "1",
    "name": "Công văn"
  },
  "subject": "V/v triển khai trao đổi văn bản điện tử giữa các cơ quan nhà nước",
  "signer": {
    "competence": "KT. BỘ TRƯỞNG, CHỦ NHIỆM",
    "position": "Phó Chủ nhiệm",
    "full_name": "Nguyễn Văn A"
  },
  "due_date": "2015-10-15",
  "steering_type": 1,
  "response_for": [
    "000.00.00.H41,2015/09/15,1234/UBND-VX"
  ],
  "priority": 1,
  "business": 0,
  "classification": "none",
  "files": [
    {
      "name": "7816-VPCP-TTĐT.pdf",
      "media_type": "application/pdf",
      "size": 20,
      "sha256": "789b2a1d9d6095ada0b294bda002c64b7d6964bf877dc6a033417315b1b314d2"
    },
    {
      "name": "Phụ lục.docx",
      "media_type": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
      "size": 20,
      "sha256": "c2e8084230f5e0f54ed91134c95f1cd4b1318867d536678eba1c7570a5f5e705"
    }
  ]
}"#;

    /// One change to the example header.
    type Edit = Box<dyn FnOnce(&mut DispatchHeader)>;
    /// Whether a parse error is the expected one.
    type IdCheck = fn(&DocumentIdError) -> bool;

    fn example() -> DispatchHeader {
        serde_json::from_str(GOLDEN).unwrap()
    }

    fn refused(edit: impl FnOnce(&mut DispatchHeader)) -> HeaderError {
        let mut h = example();
        edit(&mut h);
        h.validate().unwrap_err()
    }

    fn party(code: &str, name: &str) -> Party {
        Party {
            organ_id: code.parse().unwrap(),
            organ_name: name.to_owned(),
        }
    }

    fn file(name: &str) -> FileEntry {
        FileEntry {
            name: name.to_owned(),
            media_type: "application/pdf".to_owned(),
            size: 1,
            sha256: "0".repeat(64),
        }
    }

    #[test]
    fn golden_round_trip() {
        let h = example();
        h.validate().unwrap();
        assert_eq!(serde_json::to_string_pretty(&h).unwrap(), GOLDEN);
        let compact = serde_json::to_vec(&h).unwrap();
        assert!(compact.len() < DispatchHeader::MAX_JSON_BYTES);
        assert_eq!(
            serde_json::from_slice::<DispatchHeader>(&compact).unwrap(),
            h
        );
        assert_eq!(h.priority, Priority::Khan);
        assert_eq!(h.document_id.number(), "7816");
        assert_eq!(h.document_id.notation(), "VPCP-TTĐT");
    }

    #[test]
    fn golden_matches_the_spec() {
        let spec = include_str!("../../docs/dispatch-header.md");
        assert!(spec.contains(&format!("```json\n{GOLDEN}\n```")));
    }

    #[test]
    fn top_secret_has_no_subject() {
        let mut h = example();
        h.classification = Classification::TuyetMat;
        assert_eq!(h.validate(), Err(HeaderError::SubjectInTopSecret));
        h.subject = None;
        h.validate().unwrap();
        let json = serde_json::to_string(&h).unwrap();
        assert!(!json.contains("subject"));
        assert!(json.contains(r#""classification":"tuyet-mat""#));
        for c in [
            Classification::None,
            Classification::Mat,
            Classification::ToiMat,
        ] {
            h.classification = c;
            assert_eq!(h.validate(), Err(HeaderError::MissingSubject));
        }
    }

    #[test]
    fn every_rule_refuses() {
        use HeaderError as E;
        let cases: Vec<(HeaderError, Edit)> = vec![
            (
                E::UnsupportedVersion { version: 2 },
                Box::new(|h| h.version = 2),
            ),
            (
                E::BadMessageId {
                    value: "EDE8F2D9-BC6A-4E52-BF5B-39E4E0FCA73A".into(),
                },
                Box::new(|h| h.message_id = h.message_id.to_uppercase()),
            ),
            (
                E::BadMessageId {
                    value: "ede8f2d9bc6a4e52bf5b39e4e0fca73a".into(),
                },
                Box::new(|h| h.message_id = h.message_id.replace('-', "")),
            ),
            (
                E::BadMessageId {
                    value: "ede8f2d9-bc6a-4e52-bf5b-39e4e0fca73".into(),
                },
                Box::new(|h| {
                    h.message_id.pop();
                }),
            ),
            (
                E::EmptyField {
                    field: "from.organ_name",
                },
                Box::new(|h| h.from.organ_name = " ".into()),
            ),
            (E::EmptyList { what: "to" }, Box::new(|h| h.to.clear())),
            (
                E::TooMany {
                    what: "to",
                    max: 4096,
                },
                Box::new(|h| {
                    h.to = (0..4097)
                        .map(|i| party(&format!("000.{:02}.{:02}.H41", i / 100, i % 100), "UBND"))
                        .collect();
                }),
            ),
            (
                E::DuplicateRecipient {
                    organ_id: "000.00.00.H41".parse().unwrap(),
                },
                Box::new(|h| h.to.push(party("000.00.00.H41", "again"))),
            ),
            (
                E::TooLong {
                    field: "to.organ_name",
                    max: 500,
                },
                Box::new(|h| h.to[1].organ_name = "á".repeat(501)),
            ),
            (
                E::ControlCharacter {
                    field: "code.number",
                },
                Box::new(|h| h.code.number = "78\u{0}16".into()),
            ),
            (
                E::EmptyField {
                    field: "promulgation.place",
                },
                Box::new(|h| h.promulgation.place = String::new()),
            ),
            (
                E::BadDate {
                    field: "promulgation.date",
                    value: "2015-02-29".into(),
                },
                Box::new(|h| h.promulgation.date = "2015-02-29".into()),
            ),
            (
                E::BadDate {
                    field: "promulgation.date",
                    value: "2015/09/30".into(),
                },
                Box::new(|h| h.promulgation.date = "2015/09/30".into()),
            ),
            (
                E::DocumentIdMismatch { part: "organ id" },
                Box::new(|h| h.from = party("000.00.00.G12", "Bộ Tài chính")),
            ),
            (
                E::DocumentIdMismatch { part: "date" },
                Box::new(|h| h.promulgation.date = "2015-09-29".into()),
            ),
            (
                E::DocumentIdMismatch { part: "number" },
                Box::new(|h| h.code.number = "7817".into()),
            ),
            (
                E::DocumentIdMismatch { part: "notation" },
                Box::new(|h| h.code.notation = "VPCP-TTDT".into()),
            ),
            (
                E::TooLong {
                    field: "document_type.code",
                    max: 100,
                },
                Box::new(|h| h.document_type.code = "9".repeat(101)),
            ),
            (
                E::EmptyField {
                    field: "document_type.name",
                },
                Box::new(|h| h.document_type.name = "\t".into()),
            ),
            (E::MissingSubject, Box::new(|h| h.subject = None)),
            (
                E::TooLong {
                    field: "subject",
                    max: 2000,
                },
                Box::new(|h| h.subject = Some("ệ".repeat(2001))),
            ),
            (
                E::ControlCharacter { field: "subject" },
                Box::new(|h| h.subject = Some("V/v\r\nabc".into())),
            ),
            (
                E::EmptyField {
                    field: "signer.competence",
                },
                Box::new(|h| h.signer.competence = String::new()),
            ),
            (
                E::ControlCharacter {
                    field: "signer.position",
                },
                Box::new(|h| h.signer.position = "Phó\u{1b}[31m".into()),
            ),
            (
                E::TooLong {
                    field: "signer.full_name",
                    max: 500,
                },
                Box::new(|h| h.signer.full_name = "x".repeat(501)),
            ),
            (
                E::BadDate {
                    field: "due_date",
                    value: "2015-13-01".into(),
                },
                Box::new(|h| h.due_date = Some("2015-13-01".into())),
            ),
            (
                E::DueBeforePromulgation,
                Box::new(|h| h.due_date = Some("2015-09-29".into())),
            ),
            (
                E::EmptyList {
                    what: "response_for",
                },
                Box::new(|h| h.response_for = Some(Vec::new())),
            ),
            (
                E::TooMany {
                    what: "response_for",
                    max: 100,
                },
                Box::new(|h| {
                    let id = h.document_id.clone();
                    h.response_for = Some(vec![id; 101]);
                }),
            ),
            (
                E::EmptyList { what: "files" },
                Box::new(|h| h.files.clear()),
            ),
            (
                E::TooMany {
                    what: "files",
                    max: 1000,
                },
                Box::new(|h| h.files = (0..1001).map(|i| file(&format!("{i}.pdf"))).collect()),
            ),
            (
                E::DuplicateFile {
                    name: "PHỤ LỤC.docx".into(),
                },
                Box::new(|h| {
                    let mut f = h.files[1].clone();
                    f.name = "PHỤ LỤC.docx".into();
                    h.files.push(f);
                }),
            ),
            (
                E::BadMediaType {
                    name: "a.pdf".into(),
                    value: "application/PDF".into(),
                },
                Box::new(|h| {
                    h.files[0] = file("a.pdf");
                    h.files[0].media_type = "application/PDF".into();
                }),
            ),
            (
                E::BadDigest {
                    name: "a.pdf".into(),
                },
                Box::new(|h| {
                    h.files[0] = file("a.pdf");
                    h.files[0].sha256 = "A".repeat(64);
                }),
            ),
        ];
        for (want, edit) in cases {
            assert_eq!(refused(edit), want);
        }
        // Optional fields may be absent.
        let mut h = example();
        h.due_date = None;
        h.steering_type = None;
        h.response_for = None;
        h.validate().unwrap();
        // A due date on the promulgation day is fine; a subject may span lines.
        h.due_date = Some(h.promulgation.date.clone());
        h.subject = Some("V/v\ntriển khai".into());
        h.validate().unwrap();
    }

    #[test]
    fn file_names_are_plain() {
        let long = "a".repeat(254) + "ệ";
        let bad = [
            ("", "empty"),
            (".", "a directory reference"),
            ("..", "a directory reference"),
            ("../etc/passwd", "contains a path separator"),
            ("/abs.pdf", "contains a path separator"),
            ("dir\\a.pdf", "contains a path separator"),
            ("a\nb.pdf", "contains a control character"),
            ("a\u{7f}.pdf", "contains a control character"),
            ("Dispatch.JSON", "reserved for the header"),
            (long.as_str(), "longer than 255 bytes"),
        ];
        let bidi = "contains a bidirectional control character (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069)";
        let invisible = "contains an invisible character (zero-width, soft hyphen, word joiner, separator or tag)";
        let spoofs = [
            "Quyết định\u{202E}fdp.exe",
            "a\u{202A}.pdf",
            "a\u{2066}b\u{2069}.pdf",
            "a\u{2068}.pdf",
            "a\u{200E}.pdf",
            "a\u{200F}.pdf",
            "a\u{061C}.pdf",
        ]
        .map(|name| (name, bidi));
        let hidden = [
            "a\u{200B}.pdf",
            "a\u{200C}.pdf",
            "a\u{200D}.pdf",
            "a\u{2060}.pdf",
            "a\u{2064}.pdf",
            "\u{FEFF}a.pdf",
            "Phụ\u{00AD}lục.pdf",
            "a\u{2028}.pdf",
            "a\u{E0041}.pdf",
        ]
        .map(|name| (name, invisible));
        let bad = bad.into_iter().chain(spoofs).chain(hidden);
        for (name, reason) in bad {
            let err = refused(|h| h.files[0].name = name.to_owned());
            assert_eq!(
                err,
                HeaderError::BadFileName {
                    name: name.to_owned(),
                    reason
                }
            );
        }
        for name in [
            "a".repeat(255).as_str(),
            "...pdf",
            ".hidden",
            "Quyết định số 1.pdf",
            // Decomposed (NFD) Vietnamese: combining marks are letters' accents, not invisible.
            "Quye\u{0302}\u{0301}t đi\u{0323}nh.pdf",
            "ملف.pdf",
        ] {
            check_file_name(name).unwrap();
            let mut h = example();
            h.files[0].name = name.to_owned();
            h.validate().unwrap();
        }
    }

    /// What a receiving node does with the `dispatch.json` of every arrival (`inbox.rs`): parse,
    /// then validate. A peer's header naming a file with a right-to-left override is refused with
    /// the reason, escaped so that the log shows the character instead of obeying it.
    #[test]
    fn a_peers_header_with_a_bidi_file_name_is_refused_on_arrival() {
        let json = GOLDEN.replace("7816-VPCP-TTĐT.pdf", "7816-VPCP-TTĐT\\u202Efdp.exe");
        assert_ne!(json, GOLDEN);
        let header: DispatchHeader = serde_json::from_str(&json).unwrap();
        let err = header.validate().unwrap_err();
        assert!(
            matches!(&err, HeaderError::BadFileName { reason, .. } if reason.contains("bidirectional")),
            "{err:?}"
        );
        let said = err.to_string();
        assert!(
            said.contains("\\u{202e}") && !said.contains('\u{202E}'),
            "{said}"
        );
    }

    #[test]
    fn media_types() {
        for ok in [
            "application/pdf",
            "image/svg+xml",
            "application/vnd.ms-excel",
            "text/x.y_z",
        ] {
            assert!(is_media_type(ok), "{ok}");
        }
        for bad in [
            "",
            "pdf",
            "application/",
            "/pdf",
            "text/plain; charset=utf-8",
            "a/b/c",
            "Text/plain",
            "application/-x",
        ] {
            assert!(!is_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_json_is_refused() {
        let with_extra = GOLDEN.replacen("{\n", "{\n  \"extra\": 1,\n", 1);
        assert!(serde_json::from_str::<DispatchHeader>(&with_extra).is_err());
        let extra_in_party = GOLDEN.replacen(
            "\"organ_name\": \"Văn",
            "\"x\": 0, \"organ_name\": \"Văn",
            1,
        );
        assert!(serde_json::from_str::<DispatchHeader>(&extra_in_party).is_err());
        for (from, to) in [
            ("\"priority\": 1", "\"priority\": 5"),
            ("\"priority\": 1", "\"priority\": \"khan\""),
            ("\"business\": 0", "\"business\": 4"),
            (
                "\"classification\": \"none\"",
                "\"classification\": \"secret\"",
            ),
            (
                "\"organ_id\": \"000.00.00.H41\"",
                "\"organ_id\": \"000 00\"",
            ),
            ("2015/09/15,1234/UBND-VX", "2015-09-15,1234/UBND-VX"),
            ("\"size\": 20", "\"size\": -1"),
        ] {
            assert!(GOLDEN.contains(from), "{from}");
            let json = GOLDEN.replacen(from, to, 1);
            assert!(
                serde_json::from_str::<DispatchHeader>(&json).is_err(),
                "{to}"
            );
        }
    }

    #[test]
    fn document_id_table() {
        let good = [
            (
                "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT",
                "000.00.00.G22",
                "2015-09-30",
                "7816",
                "VPCP-TTĐT",
            ),
            (
                "000.00.00.H41,2024/02/29,15/2024/NĐ-CP",
                "000.00.00.H41",
                "2024-02-29",
                "15",
                "2024/NĐ-CP",
            ),
            (
                "H41.01,2000/01/01,01/QĐ-UBND",
                "H41.01",
                "2000-01-01",
                "01",
                "QĐ-UBND",
            ),
            (
                "000.00.00.G12,2023/12/31,123/BTC-ỦY BAN",
                "000.00.00.G12",
                "2023-12-31",
                "123",
                "BTC-ỦY BAN",
            ),
            (
                "000.00.00.G22,2015/09/30,7816/ƯỚC-ĐỊNH-ỄỠỸ",
                "000.00.00.G22",
                "2015-09-30",
                "7816",
                "ƯỚC-ĐỊNH-ỄỠỸ",
            ),
        ];
        for (text, organ, date, number, notation) in good {
            let id: DocumentId = text.parse().unwrap();
            assert_eq!(id.organ_id().as_str(), organ);
            assert_eq!(id.date().to_string(), date);
            assert_eq!(id.number(), number);
            assert_eq!(id.notation(), notation);
            assert_eq!(id.to_string(), text);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<DocumentId>(&json).unwrap(), id);
        }
        use DocumentIdError as E;
        let bad: [(&str, IdCheck); 14] = [
            ("", |e| *e == E::Shape),
            ("000.00.00.G22,2015/09/30", |e| *e == E::Shape),
            ("000.00.00.G22,2015/09/30,7816", |e| *e == E::Shape),
            ("000.00.00.G22 ,2015/09/30,7816/VPCP", |e| {
                matches!(e, E::OrganId(_))
            }),
            ("000.00.00.G22,2015-09-30,7816/VPCP", |e| *e == E::Date),
            ("000.00.00.G22,2015/9/30,7816/VPCP", |e| *e == E::Date),
            ("000.00.00.G22,2015/02/29,7816/VPCP", |e| *e == E::Date),
            ("000.00.00.G22,0000/01/01,7816/VPCP", |e| *e == E::Date),
            ("000.00.00.G22,2015/09/30,/VPCP", |e| {
                *e == E::Empty { part: "number" }
            }),
            ("000.00.00.G22,2015/09/30,7816/", |e| {
                *e == E::Empty { part: "notation" }
            }),
            ("000.00.00.G22,2015/09/30,78,16/VPCP", |e| {
                *e == E::Character {
                    part: "number",
                    found: ',',
                }
            }),
            ("000.00.00.G22,2015/09/30,7816/VP\tCP", |e| {
                *e == E::Character {
                    part: "notation",
                    found: '\t',
                }
            }),
            ("000.00.00.G22,2015/09/30, 7816/VPCP", |e| {
                *e == E::Padded { part: "number" }
            }),
            ("000.00.00.G22,2015/09/30,7816/VPCP ", |e| {
                *e == E::Padded { part: "notation" }
            }),
        ];
        for (text, check) in bad {
            let err = text.parse::<DocumentId>().unwrap_err();
            assert!(check(&err), "{text:?}: {err:?}");
        }
        let long = format!("000.00.00.G22,2015/09/30,1/{}", "Đ".repeat(101));
        assert_eq!(
            long.parse::<DocumentId>().unwrap_err(),
            E::TooLong {
                part: "notation",
                max: 100
            }
        );
        let built = DocumentId::new(
            "000.00.00.G22".parse().unwrap(),
            CalendarDate::new(2015, 9, 30).unwrap(),
            "7816",
            "VPCP-TTĐT",
        )
        .unwrap();
        assert_eq!(built.to_string(), "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT");
    }

    #[test]
    fn dates() {
        for (text, ok) in [
            ("2024-02-29", true),
            ("2000-02-29", true),
            ("1900-02-29", false),
            ("2023-02-29", false),
            ("2023-04-31", false),
            ("2023-12-31", true),
            ("2023-00-10", false),
            ("2023-01-00", false),
            ("0001-01-01", true),
            ("0000-01-01", false),
            ("2023-1-01", false),
            ("+023-01-01", false),
            ("2023-01-01T00:00:00Z", false),
            ("2023-01-0١", false),
        ] {
            assert_eq!(CalendarDate::parse_iso(text).is_some(), ok, "{text}");
        }
        let d = CalendarDate::parse_iso("2015-09-30").unwrap();
        assert_eq!((d.year(), d.month(), d.day()), (2015, 9, 30));
        assert_eq!(d.edxml(), "2015/09/30");
        assert_eq!(CalendarDate::parse_edxml("2015/09/30"), Some(d));
        assert!(CalendarDate::parse_iso("2015-09-29").unwrap() < d);
    }

    #[test]
    fn priority_order_and_names() {
        let mut queue = Priority::ALL.to_vec();
        queue.sort_by_key(|p| p.queue_rank());
        assert_eq!(
            queue,
            [
                Priority::HoaTocHenGio,
                Priority::HoaToc,
                Priority::ThuongKhan,
                Priority::Khan,
                Priority::Thuong
            ]
        );
        assert!(Priority::Thuong < Priority::Khan && Priority::HoaToc < Priority::HoaTocHenGio);
        for (i, p) in Priority::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(p.code()), i);
            assert_eq!(serde_json::to_string(&p).unwrap(), i.to_string());
            assert_eq!(serde_json::from_str::<Priority>(&i.to_string()).unwrap(), p);
            assert_eq!(p.to_string().parse::<Priority>().unwrap(), p);
            assert_eq!(p.is_urgent(), p != Priority::Thuong);
        }
        let names: Vec<String> = Priority::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "thuong",
                "khan",
                "thuong-khan",
                "hoa-toc",
                "hoa-toc-hen-gio"
            ]
        );
        assert!(matches!(
            "hoả-tốc".parse::<Priority>(),
            Err(UnknownValue::Name {
                what: "priority",
                ..
            })
        ));
        assert_eq!(
            Priority::try_from(5),
            Err(UnknownValue::Code {
                what: "priority",
                code: 5,
                max: 4
            })
        );
    }

    #[test]
    fn business_and_classification() {
        for (i, b) in Business::ALL.into_iter().enumerate() {
            assert_eq!(serde_json::to_string(&b).unwrap(), i.to_string());
            assert_eq!(serde_json::from_str::<Business>(&i.to_string()).unwrap(), b);
        }
        assert!(Business::try_from(4).is_err());
        for (c, name) in
            Classification::ALL
                .into_iter()
                .zip(["none", "mat", "toi-mat", "tuyet-mat"])
        {
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<Classification>(&format!("\"{name}\"")).unwrap(),
                c
            );
            assert_eq!(name.parse::<Classification>().unwrap(), c);
            assert_eq!(c.to_string(), name);
            assert_eq!(c.is_classified(), c != Classification::None);
        }
        assert!("Mat".parse::<Classification>().is_err());
        assert!(Classification::Mat < Classification::TuyetMat);
    }
}
