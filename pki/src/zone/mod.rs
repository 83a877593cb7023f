//! Signed, delegated zones of the national directory (spec: `docs/directory-zones.md`).
//!
//! [`Zone`] is a zone's content and its one canonical encoding (rules 2-5), [`Zone::sign`] wraps it
//! in CMS `SignedData`, and [`ZoneSet`] holds the zones in force, deciding which signed zones a node
//! takes (rules 6-9) and which directory they make. Every refusal is an [`Error::Zone`] with the
//! code of rule 10.

mod content;
mod set;
mod signed;

#[cfg(test)]
mod tests;

pub use content::{Delegation, Zone, ZoneCertificates, ZoneEntry};
pub use set::{verify_zone_files, Checked, SignedZone, ZoneSet};

use crate::error::ZoneRefusal;
use crate::Error;

/// The name of the root zone, which the root authority signs.
pub const ROOT_ZONE: &str = "root";

/// The largest zone file, bytes (docs/directory-zones.md rule 2): what one ZONE frame carries
/// (`docs/wire-frames.md`). A zone that would be larger is refused when signed.
pub const MAX_ZONE_BYTES: usize = 4 * 1024 * 1024;

/// id-vdx-directorySigning: the extended key usage a directory authority's certificate carries,
/// and the only one (docs/directory-zones.md, rule 6).
pub const DIRECTORY_SIGNING_OID: &str = "2.25.220021848309080178044454908927106671210";

/// The `format` member of every zone's content.
const FORMAT: &str = "vdx-zone/1";

/// A refusal of `zone` for `reason`.
pub(crate) fn refuse(refusal: ZoneRefusal, zone: &str, reason: impl Into<String>) -> Error {
    Error::Zone {
        refusal,
        zone: zone.to_owned(),
        reason: reason.into(),
    }
}
