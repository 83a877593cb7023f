//! Certificates for vdx: the profiles agencies get, a development CA that issues them, and path
//! validation that decides whether a signer is trusted.
//!
//! A pure library: it takes and returns bytes and OpenSSL objects; the `vdx` command line does the
//! file handling. Validation fails closed: a certificate that cannot be validated is refused.

mod ca;
mod crl;
mod directory;
mod error;
mod names;
mod validate;

#[cfg(test)]
mod tests;

pub use ca::{Ca, IssueRequest, Issued, Profile};
pub use crl::RevocationReason;
pub use directory::{Certificates, Directory, Entry};
pub use error::Error;
pub use names::{organ_code, serial_hex, subject_string};
pub use validate::{parse_certs, parse_crls, TrustStore, ValidatedSigner};
