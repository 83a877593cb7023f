//! Certificates parsed once per process. With OpenSSL 3.0, parsing a certificate (its public key
//! goes through the provider decoders) costs more than verifying a signature with it, and every
//! signed object, receipt and notice carries its signer's certificate: an agency's few
//! certificates arrive thousands of times a day. Keyed by the whole encoding, so a cached
//! certificate is exactly what parsing those bytes would give.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use openssl::error::ErrorStack;
use openssl::x509::X509;

/// More distinct certificates than this empty the cache and start again: a bound on its memory,
/// with [`MAX_CACHED_SIZE`] (4 MiB at most), not a working-set guess.
const MAX_CACHED: usize = 256;

/// Larger encodings are parsed every time (an agency's certificate is one or two KiB; a document
/// may carry certificates of up to 256 KiB, which should not stay in memory for good).
const MAX_CACHED_SIZE: usize = 16 * 1024;

static PARSED: Mutex<Option<HashMap<Vec<u8>, X509>>> = Mutex::new(None);

/// [`X509::from_der`], from the cache when these exact bytes were parsed before.
pub(crate) fn certificate(der: &[u8]) -> Result<X509, ErrorStack> {
    if let Some(cert) = lock().as_ref().and_then(|cache| cache.get(der)) {
        return Ok(cert.clone());
    }
    let cert = X509::from_der(der)?;
    if der.len() > MAX_CACHED_SIZE {
        return Ok(cert);
    }
    let mut guard = lock();
    let cache = guard.get_or_insert_with(HashMap::new);
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(der.to_vec(), cert.clone());
    Ok(cert)
}

fn lock() -> std::sync::MutexGuard<'static, Option<HashMap<Vec<u8>, X509>>> {
    PARSED.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpki::{agency, ca};
    use crate::KeyKind;

    #[test]
    fn the_same_bytes_give_the_same_certificate_and_bad_bytes_an_error() {
        let root = ca().unwrap();
        let der = agency(&root, "agency", KeyKind::EcP256)
            .unwrap()
            .cert
            .to_der()
            .unwrap();
        let first = certificate(&der).unwrap();
        let second = certificate(&der).unwrap();
        assert_eq!(first.to_der().unwrap(), der);
        assert_eq!(second.to_der().unwrap(), der);
        let mut cut = der.clone();
        cut.truncate(der.len() - 1);
        assert!(certificate(&cut).is_err());
        assert!(certificate(&cut).is_err(), "a failure is not cached");
    }
}
