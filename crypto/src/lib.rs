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
mod variant;

pub use open::{verify_signed, Opened, Opener};
pub use recipient::RsaPadding;
pub use seal::{SealSummary, Sealer};
pub use signed::SignerReport;
pub use variant::Recipients;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
#[cfg(test)]
mod testpki;

/// Hostile inputs of any length for the readers' tests, made as they are read.
#[cfg(test)]
mod lazy {
    use std::io::{self, Read};

    /// `head`, then `fill` repeated up to `total` bytes; `pos` counts what was read.
    pub(crate) struct Lazy {
        pub(crate) head: Vec<u8>,
        pub(crate) fill: u8,
        pub(crate) total: u64,
        pub(crate) pos: u64,
    }

    impl Read for Lazy {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let left = self.total.saturating_sub(self.pos);
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = *self.head.get(self.pos as usize + i).unwrap_or(&self.fill);
            }
            self.pos += n as u64;
            Ok(n)
        }
    }
}
