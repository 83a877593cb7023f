//! Entry points for `cargo fuzz` (feature `fuzzing`): every input must end in `Ok` or a typed error,
//! never a panic, and never an allocation beyond the documented limits.

use std::io;
use std::sync::OnceLock;

use openssl::x509::X509;

use crate::{KeyKind, Opener, PrivateKey};

/// Feeds `data` to the full opener, as a recipient with a fixed self-made EC identity.
pub fn open(data: &[u8]) {
    static ME: OnceLock<Option<(X509, PrivateKey)>> = OnceLock::new();
    let Some((cert, key)) = ME.get_or_init(identity) else {
        return;
    };
    if let Ok(opener) = Opener::new(cert, key) {
        let _ = opener.open(data, io::sink());
    }
}

/// Feeds `data` to the SignedData reader and the signature checks.
pub fn signed_data(data: &[u8]) {
    if let Ok(content) = crate::signed::read(data, &mut io::sink()) {
        let _ = content.verify(&[]);
    }
}

fn identity() -> Option<(X509, PrivateKey)> {
    let key = PrivateKey::generate(KeyKind::EcP256).ok()?;
    let mut name = openssl::x509::X509NameBuilder::new().ok()?;
    name.append_entry_by_text("CN", "fuzz").ok()?;
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().ok()?;
    b.set_subject_name(&name).ok()?;
    b.set_issuer_name(&name).ok()?;
    b.set_pubkey(key.pkey()).ok()?;
    b.sign(key.pkey(), openssl::hash::MessageDigest::sha256())
        .ok()?;
    Some((b.build(), key))
}
