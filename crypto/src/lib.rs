//! Streaming CMS for vdx: seal (sign, then encrypt to every recipient) and open (decrypt, then verify).
//!
//! The layout is the one in DESIGN.md section 3: an inner `SignedData` carrying the dispatch package,
//! inside an `AuthEnvelopedData` with AES-256-GCM. Both layers are written and read as a stream of BER
//! with indefinite lengths, so memory stays bounded whatever the size of the document. This crate does
//! no I/O of its own beyond the `Read` and `Write` it is handed, and it does not decide whether a
//! certificate is trusted: that is `vdx-pki`'s job.

pub mod checkpoint;
mod error;
pub mod keys;

pub use error::Error;
pub use keys::{KeyKind, PrivateKey};

mod armor;
mod ber;
mod oids;
mod open;
mod parsed;
mod recipient;
mod seal;
mod signed;

pub use open::{verify_signed, Opened, Opener};
pub use recipient::RsaPadding;
pub use seal::{SealSummary, Sealer};
pub use signed::SignerReport;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
#[cfg(test)]
mod testpki;
