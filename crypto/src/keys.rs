//! Private keys: loaded from PKCS#8 (encrypted or not), held by OpenSSL, never printed.
//!
//! The bytes we read a key from and the passphrase that unlocks it live in [`Zeroizing`] buffers, so
//! they are wiped as soon as OpenSSL has parsed them. OpenSSL keeps the key itself in its own heap
//! and clears it on free (`BN_clear_free`).

use std::fmt;

use openssl::pkey::{Id, PKey, Private};
use openssl::symm::Cipher;
use zeroize::Zeroizing;

use crate::Error;

/// A private key usable for signing or decryption. `Debug` never shows key material.
pub struct PrivateKey(PKey<Private>);

/// The key algorithms vdx issues and accepts for agencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// EC on NIST P-256: ECDSA signatures, ECDH key agreement.
    EcP256,
    /// RSA, 3072 bits when vdx generates it: what government tokens hold.
    Rsa,
}

impl PrivateKey {
    /// Generates a fresh key: P-256 or RSA-3072.
    pub fn generate(kind: KeyKind) -> Result<Self, Error> {
        let pkey = match kind {
            KeyKind::EcP256 => {
                let group =
                    openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)?;
                PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?
            }
            KeyKind::Rsa => PKey::from_rsa(openssl::rsa::Rsa::generate(3072)?)?,
        };
        Ok(Self(pkey))
    }

    /// Parses a PEM (PKCS#8, encrypted PKCS#8, or traditional) or DER PKCS#8 key.
    ///
    /// An encrypted key without a passphrase, or with the wrong one, is an [`Error::KeyLocked`].
    pub fn from_bytes(bytes: &[u8], passphrase: Option<&[u8]>) -> Result<Self, Error> {
        let bytes = Zeroizing::new(bytes.to_vec());
        let is_pem = bytes.windows(10).any(|w| w == b"-----BEGIN");
        // Encrypted: a PEM "ENCRYPTED PRIVATE KEY" block, or DER (a SEQUENCE) that is not a plain key.
        let encrypted = bytes.windows(9).any(|w| w == b"ENCRYPTED")
            || (!is_pem
                && bytes.first() == Some(&0x30)
                && PKey::private_key_from_der(&bytes).is_err());
        let parsed = match (is_pem, passphrase) {
            (true, Some(pass)) => PKey::private_key_from_pem_passphrase(&bytes, pass),
            (true, None) if encrypted => return Err(Error::KeyLocked),
            (true, None) => PKey::private_key_from_pem(&bytes),
            (false, Some(pass)) => PKey::private_key_from_pkcs8_passphrase(&bytes, pass)
                .or_else(|_| PKey::private_key_from_der(&bytes)),
            (false, None) if encrypted => return Err(Error::KeyLocked),
            (false, None) => PKey::private_key_from_der(&bytes),
        };
        let pkey = parsed.map_err(|_| {
            if encrypted {
                Error::KeyLocked
            } else {
                Error::KeyFormat
            }
        })?;
        match pkey.id() {
            Id::RSA | Id::EC => Ok(Self(pkey)),
            _ => Err(Error::KeyFormat),
        }
    }

    /// PKCS#8 PEM, encrypted with AES-256-CBC under PBKDF2 when a passphrase is given.
    pub fn to_pkcs8_pem(&self, passphrase: Option<&[u8]>) -> Result<Zeroizing<Vec<u8>>, Error> {
        let pem = match passphrase {
            Some(pass) => self
                .0
                .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), pass)?,
            None => self.0.private_key_to_pem_pkcs8()?,
        };
        Ok(Zeroizing::new(pem))
    }

    /// Which family the key belongs to.
    pub fn kind(&self) -> KeyKind {
        if self.0.id() == Id::EC {
            KeyKind::EcP256
        } else {
            KeyKind::Rsa
        }
    }

    /// The OpenSSL handle, for the primitives (signing, decryption, certificate issuing).
    pub fn pkey(&self) -> &PKey<Private> {
        &self.0
    }

    /// True when `cert` carries this key's public half: catches a key/certificate mix-up early.
    pub fn matches(&self, cert: &openssl::x509::X509Ref) -> bool {
        cert.public_key()
            .map(|public| public.public_eq(&self.0))
            .unwrap_or(false)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({:?}, <redacted>)", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_pkcs8_round_trips_and_needs_its_passphrase() {
        let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
        let pem = key.to_pkcs8_pem(Some(b"s3cret")).unwrap();
        assert!(std::str::from_utf8(&pem)
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY"));
        assert!(matches!(
            PrivateKey::from_bytes(&pem, None),
            Err(Error::KeyLocked)
        ));
        assert!(matches!(
            PrivateKey::from_bytes(&pem, Some(b"wrong")),
            Err(Error::KeyLocked)
        ));
        let back = PrivateKey::from_bytes(&pem, Some(b"s3cret")).unwrap();
        assert!(back.0.public_eq(key.pkey()));
    }

    #[test]
    fn debug_does_not_leak_key_material() {
        let key = PrivateKey::generate(KeyKind::Rsa).unwrap();
        assert_eq!(format!("{key:?}"), "PrivateKey(Rsa, <redacted>)");
    }
}
