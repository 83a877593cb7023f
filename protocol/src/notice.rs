//! Status notice texts (spec: `docs/status-notices.md`): what a recipient agency tells a sender about
//! its dispatch (arrived, refused, …). Signing is the node's job; this module formats and strictly
//! parses the text.

use time::OffsetDateTime;

use crate::{hex, utc, OrganCode};

/// The first line: format and version.
pub const MAGIC: &str = "vdx-notice/1";
/// Longest reason, in bytes.
pub const MAX_REASON: usize = 1024;
/// The edXML status codes a notice may carry.
pub const STATUS_CODES: [&str; 9] = ["01", "02", "03", "04", "05", "06", "13", "15", "16"];

/// A notice's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The transfer id of the dispatch it is about.
    pub id: [u8; 16],
    /// edXML status code, one of [`STATUS_CODES`].
    pub status: String,
    /// The agency that signs it.
    pub by: OrganCode,
    /// When, in whole seconds (UTC).
    pub time: OffsetDateTime,
    /// Why, for a refusal.
    pub reason: Option<String>,
}

/// Why a text is not a notice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoticeError {
    /// A line is missing, extra, out of order or badly formed.
    #[error("notice line {line}: {what}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What was expected.
        what: &'static str,
    },
    /// Not UTF-8 text.
    #[error("notice is not UTF-8 text")]
    NotText,
}

impl Notice {
    /// A notice with a reason made safe for the format: line breaks become spaces, and it is cut
    /// (at a character boundary) to [`MAX_REASON`] bytes.
    pub fn new(
        id: [u8; 16],
        status: &str,
        by: OrganCode,
        time: OffsetDateTime,
        reason: Option<&str>,
    ) -> Self {
        let reason = reason.map(|r| {
            let mut r = r.replace(['\n', '\r'], " ");
            while r.len() > MAX_REASON {
                r.pop();
            }
            r
        });
        Self {
            id,
            status: status.to_owned(),
            by,
            time: time.replace_nanosecond(0).unwrap_or(time),
            reason: reason.filter(|r| !r.is_empty() && r != "-"),
        }
    }

    /// The canonical text, which is what gets signed.
    pub fn to_text(&self) -> String {
        let time = utc::format(self.time).unwrap_or_default();
        format!(
            "{MAGIC}\nid {}\nstatus {}\nby {}\ntime {time}\nreason {}\n",
            hex::encode(&self.id),
            self.status,
            self.by,
            self.reason.as_deref().unwrap_or("-")
        )
    }

    /// Parses the canonical text strictly: anything else is an error naming the line.
    pub fn parse(bytes: &[u8]) -> Result<Self, NoticeError> {
        let text = std::str::from_utf8(bytes).map_err(|_| NoticeError::NotText)?;
        let bad = |line, what| NoticeError::Line { line, what };
        let body = text
            .strip_suffix('\n')
            .ok_or(bad(1, "the text must end with a line feed"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.first() != Some(&MAGIC) {
            return Err(bad(1, "expected vdx-notice/1"));
        }
        if lines.len() != 6 {
            return Err(bad(lines.len().min(7), "a notice has exactly six lines"));
        }
        let value = |n: usize, key: &str, what| {
            lines[n - 1]
                .strip_prefix(key)
                .and_then(|l| l.strip_prefix(' '))
                .ok_or(bad(n, what))
        };
        let id = hex::decode::<16>(value(2, "id", "expected id")?)
            .ok_or(bad(2, "id must be 32 lower-case hex digits"))?;
        let status = value(3, "status", "expected status")?;
        if !STATUS_CODES.contains(&status) {
            return Err(bad(3, "status must be an edXML status code"));
        }
        let by = value(4, "by", "expected by")?
            .parse()
            .map_err(|_| bad(4, "by must be an organ code"))?;
        let time_text = value(5, "time", "expected time")?;
        let time = utc::parse(time_text).ok_or(bad(
            5,
            "time must be RFC 3339 UTC, whole seconds, ending in Z",
        ))?;
        let reason = match value(6, "reason", "expected reason")? {
            "-" => None,
            r if r.len() <= MAX_REASON && !r.is_empty() => Some(r.to_owned()),
            _ => return Err(bad(6, "reason must be 1-1024 bytes or -")),
        };
        if reason.is_none() && matches!(status, "02" | "16") {
            return Err(bad(6, "a refusal must carry a reason"));
        }
        let notice = Self {
            id,
            status: status.to_owned(),
            by,
            time,
            reason,
        };
        if notice.to_text() != text {
            return Err(bad(1, "not in canonical form"));
        }
        Ok(notice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "vdx-notice/1\nid 6f1c2a90b41e4c3e9d2d0a7c5b8e11e2\nstatus 02\n\
by 000.00.00.H41\ntime 2026-11-23T08:00:05Z\nreason the signature does not verify: bad_signature\n";

    #[test]
    fn the_spec_example_parses_and_prints_back_identically() {
        let notice = Notice::parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(notice.status, "02");
        assert_eq!(notice.by.as_str(), "000.00.00.H41");
        assert_eq!(notice.to_text(), EXAMPLE);
        assert!(include_str!("../../docs/status-notices.md").contains(EXAMPLE));
    }

    #[test]
    fn reasons_are_made_safe_and_round_trip() {
        let long = "é".repeat(MAX_REASON);
        for reason in [None, Some("a\nb\r\nc"), Some(long.as_str()), Some("-")] {
            let notice = Notice::new(
                [1; 16],
                "01",
                "000.00.00.G22".parse().unwrap(),
                OffsetDateTime::from_unix_timestamp(1_795_420_805).unwrap(),
                reason,
            );
            let text = notice.to_text();
            assert_eq!(Notice::parse(text.as_bytes()).unwrap(), notice, "{text}");
        }
    }

    #[test]
    fn anything_but_the_canonical_text_is_refused_with_its_line() {
        let cases = [
            (EXAMPLE.replace("vdx-notice/1", "vdx-notice/2"), 1),
            (EXAMPLE.replace("id 6f1c", "id 6F1C"), 2),
            (EXAMPLE.replace("status 02", "status 07"), 3),
            (EXAMPLE.replace("by 000.00.00.H41", "by x y"), 4),
            (EXAMPLE.replace("08:00:05Z", "08:00:05+07:00"), 5),
            (
                EXAMPLE.replace(
                    "reason the signature does not verify: bad_signature",
                    "reason -",
                ),
                6,
            ),
            (format!("{EXAMPLE}extra\n"), 7),
            (EXAMPLE.trim_end().to_owned(), 1),
            (EXAMPLE.replace('\n', "\r\n"), 1),
        ];
        for (text, line) in cases {
            match Notice::parse(text.as_bytes()) {
                Err(NoticeError::Line { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        assert_eq!(Notice::parse(&[0xff]), Err(NoticeError::NotText));
    }
}
