//! Receipt texts (spec: `docs/receipts.md`): what a receiver signs when custody moves (hop) or when
//! the recipient agency has opened a dispatch (delivery). Signing and checking the CMS wrapper is the
//! node's job; this module only formats and strictly parses the text.

use std::fmt::Write as _;

use base64::Engine as _;
use time::OffsetDateTime;

use crate::{hex, utc, OrganCode};

/// The first line: format and version.
pub const MAGIC: &str = "vdx-receipt/1";

/// What the receipt acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiptKind {
    /// The next node took custody (answer to a transfer).
    Hop,
    /// The recipient agency opened and verified the dispatch.
    Delivery,
}

/// A receipt's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Hop or delivery.
    pub kind: ReceiptKind,
    /// The dispatch's message id.
    pub id: [u8; 16],
    /// SHA-256 of the sealed object.
    pub sealed_sha256: [u8; 32],
    /// Who signs it.
    pub by: OrganCode,
    /// When, in whole seconds (UTC).
    pub time: OffsetDateTime,
    /// The signer's latest ledger checkpoint, if it keeps a ledger.
    pub checkpoint: Option<Vec<u8>>,
}

/// Why a text is not a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// A line is missing, extra, out of order or badly formed.
    #[error("receipt line {line}: {what}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What was expected.
        what: &'static str,
    },
    /// Not UTF-8 text.
    #[error("receipt is not UTF-8 text")]
    NotText,
}

impl Receipt {
    /// The canonical text, which is what gets signed.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(256);
        let kind = match self.kind {
            ReceiptKind::Hop => "hop",
            ReceiptKind::Delivery => "delivery",
        };
        let time = utc::format(self.time).unwrap_or_default();
        let checkpoint = self
            .checkpoint
            .as_deref()
            .map_or_else(|| "-".to_owned(), base64_encode);
        let _ = write!(
            out,
            "{MAGIC}\nkind {kind}\nid {}\nsealed-sha256 {}\nby {}\ntime {time}\ncheckpoint {checkpoint}\n",
            hex::encode(&self.id),
            hex::encode(&self.sealed_sha256),
            self.by
        );
        out
    }

    /// Parses the canonical text strictly: anything else is an error naming the line.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ReceiptError::NotText)?;
        let body = text.strip_suffix('\n').ok_or(ReceiptError::Line {
            line: text.lines().count().max(1),
            what: "the text must end with a line feed",
        })?;
        let lines: Vec<&str> = body.split('\n').collect();
        let line =
            |n: usize, key: &'static str, what: &'static str| -> Result<&str, ReceiptError> {
                lines
                    .get(n - 1)
                    .and_then(|l| l.strip_prefix(key))
                    .and_then(|l| l.strip_prefix(' '))
                    .ok_or(ReceiptError::Line { line: n, what })
            };
        if lines.first() != Some(&MAGIC) {
            return Err(ReceiptError::Line {
                line: 1,
                what: "expected vdx-receipt/1",
            });
        }
        if lines.len() != 7 {
            return Err(ReceiptError::Line {
                line: lines.len().min(8),
                what: "a receipt has exactly seven lines",
            });
        }
        let kind = match line(2, "kind", "expected kind hop|delivery")? {
            "hop" => ReceiptKind::Hop,
            "delivery" => ReceiptKind::Delivery,
            _ => {
                return Err(ReceiptError::Line {
                    line: 2,
                    what: "expected kind hop|delivery",
                })
            }
        };
        let id = hex::decode::<16>(line(3, "id", "expected id")?).ok_or(ReceiptError::Line {
            line: 3,
            what: "id must be 32 lower-case hex digits",
        })?;
        let sealed_sha256 = hex::decode::<32>(line(4, "sealed-sha256", "expected sealed-sha256")?)
            .ok_or(ReceiptError::Line {
                line: 4,
                what: "sealed-sha256 must be 64 lower-case hex digits",
            })?;
        let by = line(5, "by", "expected by")?
            .parse()
            .map_err(|_| ReceiptError::Line {
                line: 5,
                what: "by must be an organ code",
            })?;
        let time_text = line(6, "time", "expected time")?;
        let time = utc::parse(time_text).ok_or(ReceiptError::Line {
            line: 6,
            what: "time must be RFC 3339 UTC, whole seconds, ending in Z",
        })?;
        let checkpoint = match line(7, "checkpoint", "expected checkpoint")? {
            "-" => None,
            b64 => Some(base64_decode(b64).ok_or(ReceiptError::Line {
                line: 7,
                what: "checkpoint must be base64 or -",
            })?),
        };
        let receipt = Self {
            kind,
            id,
            sealed_sha256,
            by,
            time,
            checkpoint,
        };
        if receipt.to_text() != text {
            return Err(ReceiptError::Line {
                line: 1,
                what: "not in canonical form",
            });
        }
        Ok(receipt)
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "vdx-receipt/1\nkind hop\nid 6f1c2a90b41e4c3e9d2d0a7c5b8e11e2\n\
sealed-sha256 9b0a4f0c1d2e3f405162738495a6b7c8d9eaf00112233445566778899aabbcc4\n\
by 000.00.00.H41\ntime 2026-11-23T08:00:00Z\ncheckpoint -\n";

    #[test]
    fn the_spec_example_parses_and_prints_back_identically() {
        let receipt = Receipt::parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(receipt.kind, ReceiptKind::Hop);
        assert_eq!(receipt.by.as_str(), "000.00.00.H41");
        assert_eq!(receipt.time.unix_timestamp(), 1_795_420_800);
        assert_eq!(receipt.to_text(), EXAMPLE);
        let spec = include_str!("../../docs/receipts.md");
        assert!(
            spec.contains(EXAMPLE),
            "docs/receipts.md shows the same example"
        );
    }

    #[test]
    fn checkpoints_round_trip_through_base64() {
        for len in 0..20usize {
            let bytes: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let mut receipt = Receipt::parse(EXAMPLE.as_bytes()).unwrap();
            receipt.kind = ReceiptKind::Delivery;
            receipt.checkpoint = Some(bytes.clone()).filter(|b| !b.is_empty());
            let text = receipt.to_text();
            assert_eq!(Receipt::parse(text.as_bytes()).unwrap(), receipt, "{text}");
        }
    }

    #[test]
    fn anything_but_the_canonical_text_is_refused_with_its_line() {
        let cases = [
            (EXAMPLE.replace("vdx-receipt/1", "vdx-receipt/2"), 1),
            (EXAMPLE.replace("kind hop", "kind relay"), 2),
            (EXAMPLE.replace("id 6f1c", "id 6F1C"), 3),
            (
                EXAMPLE.replace("sealed-sha256 9b0a", "sealed-sha256 9b0"),
                4,
            ),
            (EXAMPLE.replace("by 000.00.00.H41", "by 000 00"), 5),
            (EXAMPLE.replace("08:00:00Z", "08:00:00+07:00"), 6),
            (EXAMPLE.replace("08:00:00Z", "08:00:00.5Z"), 6),
            (EXAMPLE.replace("checkpoint -", "checkpoint !!!!"), 7),
            (EXAMPLE.replace("kind hop\n", "kind  hop\n"), 2),
            (format!("{EXAMPLE}extra\n"), 8),
            (EXAMPLE.trim_end().to_owned(), 7),
            (EXAMPLE.replace('\n', "\r\n"), 1),
        ];
        for (text, line) in cases {
            match Receipt::parse(text.as_bytes()) {
                Err(ReceiptError::Line { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        assert_eq!(Receipt::parse(&[0xff, 0xfe]), Err(ReceiptError::NotText));
    }
}
