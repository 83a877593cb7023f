//! The one time format of vdx's signed texts (receipts, notices, ledger entries): RFC 3339 in UTC,
//! whole seconds, ending in `Z` — so that a time has exactly one spelling and texts stay canonical.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// `t` in the canonical spelling (fractions of a second dropped); `None` only for years outside
/// 0000-9999, which RFC 3339 cannot write.
pub fn format(t: OffsetDateTime) -> Option<String> {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .ok()
}

/// Parses the canonical spelling only: another offset, a fraction or a lower-case `z` is refused.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .filter(|t| t.offset().is_utc() && t.nanosecond() == 0 && s.ends_with('Z'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_second() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_420_805).unwrap();
        let text = format(t + time::Duration::milliseconds(700)).unwrap();
        assert_eq!(text, "2026-11-23T08:00:05Z");
        assert_eq!(parse(&text), Some(t));
        for other in [
            "2026-11-23T15:00:05+07:00",
            "2026-11-23T08:00:05.5Z",
            "2026-11-23T08:00:05z",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }
}
