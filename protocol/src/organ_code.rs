//! The organ code (mã định danh cơ quan): an agency's address in the directory, the dispatch header
//! and the ledger.
//!
//! The national format is `V1V2V3.Z1Z2.Y1Y2.MX1X2` (e.g. `000.00.00.G22`, the Government Office),
//! 13 characters. Parsing is strict about the alphabet and the length, lenient about the inner
//! shape, because ministries and provinces issue sub-codes that extend it.

use std::fmt;
use std::str::FromStr;

/// A validated organ code. Construct with [`str::parse`].
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct OrganCode(String);

/// Why a string is not an organ code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrganCodeError {
    /// Empty, or longer than the limit.
    #[error("organ code must be 1 to {max} characters, got {len}")]
    Length {
        /// Characters given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside `A-Z a-z 0-9 .`.
    #[error("organ code may contain only letters, digits and dots, found {0:?}")]
    Character(char),
    /// Dots at the ends or two in a row.
    #[error("organ code has an empty segment (leading, trailing or double dot)")]
    EmptySegment,
}

impl OrganCode {
    /// Longest code accepted: the national 13 plus room for sub-unit extensions.
    pub const MAX_LEN: usize = 32;

    /// The code as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe in DNS labels and file names: dots become dashes, letters lower case.
    pub fn dns_label(&self) -> String {
        self.0.replace('.', "-").to_ascii_lowercase()
    }
}

impl FromStr for OrganCode {
    type Err = OrganCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let len = s.chars().count();
        if len == 0 || len > Self::MAX_LEN {
            return Err(OrganCodeError::Length {
                len,
                max: Self::MAX_LEN,
            });
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '.'))
        {
            return Err(OrganCodeError::Character(c));
        }
        if s.split('.').any(str::is_empty) {
            return Err(OrganCodeError::EmptySegment);
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for OrganCode {
    type Error = OrganCodeError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<OrganCode> for String {
    fn from(code: OrganCode) -> Self {
        code.0
    }
}

impl fmt::Display for OrganCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_codes_parse() {
        for code in ["000.00.00.G22", "000.00.00.H41", "H41.01"] {
            assert_eq!(code.parse::<OrganCode>().unwrap().as_str(), code);
        }
        let code: OrganCode = "000.00.00.G22".parse().unwrap();
        assert_eq!(code.dns_label(), "000-00-00-g22");
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, "\"000.00.00.G22\"");
        assert_eq!(serde_json::from_str::<OrganCode>(&json).unwrap(), code);
    }

    #[test]
    fn bad_codes_say_why() {
        assert!(matches!(
            "".parse::<OrganCode>(),
            Err(OrganCodeError::Length { .. })
        ));
        assert!(matches!(
            "000 00".parse::<OrganCode>(),
            Err(OrganCodeError::Character(' '))
        ));
        assert!(matches!(
            "000..G22".parse::<OrganCode>(),
            Err(OrganCodeError::EmptySegment)
        ));
        assert!(matches!(
            "x".repeat(33).parse::<OrganCode>(),
            Err(OrganCodeError::Length { .. })
        ));
        assert!(serde_json::from_str::<OrganCode>("\"a b\"").is_err());
    }
}
