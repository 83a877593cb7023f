//! Signing and verifying ledger checkpoints (spec: `docs/ledger.md`, "Checkpoints"): a C2SP
//! `signed-note` signature by the node's signing certificate key, ECDSA (DER) or RSA PKCS#1 v1.5
//! with SHA-256 over the checkpoint body. The formats live in `vdx_protocol::ledger`; this module
//! adds the public-key operations, so that the same code signs in the node and verifies offline.

use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{Signer, Verifier as SignatureVerifier};
use openssl::x509::X509Ref;
use vdx_protocol::ledger::{self, Checkpoint, LedgerError, NoteSignature};

use crate::{Error, PrivateKey};

/// Why a checkpoint note does not verify against a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The bytes are not a canonical checkpoint note.
    #[error("not a checkpoint note: {0}")]
    Format(#[from] LedgerError),
    /// No signature line has the origin as its name and this certificate's key id.
    #[error("no signature by {origin} with this certificate's key")]
    NoSignature {
        /// The checkpoint's origin (the key name looked for).
        origin: String,
    },
    /// A signature line of this key does not verify: the body or the signature was changed.
    #[error("the signature of {origin} does not verify")]
    BadSignature {
        /// The checkpoint's origin.
        origin: String,
    },
    /// The certificate's public key cannot be read or is not EC or RSA.
    #[error("unusable certificate: {0}")]
    Certificate(String),
}

/// Signs `checkpoint` with the node's signing key and returns the whole note (body, blank line,
/// one signature line named by the origin). `key` must be the private half of `cert`.
pub fn sign(checkpoint: &Checkpoint, cert: &X509Ref, key: &PrivateKey) -> Result<String, Error> {
    if !key.matches(cert) {
        return Err(Error::KeyMismatch);
    }
    sign_with(checkpoint, &public_key_der(cert)?, key)
}

/// The encoded public key of `cert` (DER SubjectPublicKeyInfo), which names its checkpoint
/// signatures. Encoding a key costs more than signing with it: a node signing many checkpoints
/// computes this once and uses [`sign_with`].
pub fn public_key_der(cert: &X509Ref) -> Result<Vec<u8>, Error> {
    Ok(cert.public_key()?.public_key_to_der()?)
}

/// [`sign`] for a key already checked to be the private half of the certificate whose encoded
/// public key is `spki` (from [`public_key_der`]).
pub fn sign_with(checkpoint: &Checkpoint, spki: &[u8], key: &PrivateKey) -> Result<String, Error> {
    let mut signer = Signer::new(MessageDigest::sha256(), key.pkey())?;
    if key.pkey().id() == Id::RSA {
        signer.set_rsa_padding(Padding::PKCS1)?;
    }
    let signature = signer.sign_oneshot_to_vec(checkpoint.body().as_bytes())?;
    Ok(checkpoint.note(&[NoteSignature {
        name: checkpoint.origin.clone(),
        key_id: ledger::key_id(&checkpoint.origin, spki),
        signature,
    }]))
}

/// Parses `note` strictly and checks the signature of `cert`'s key named by the origin; other
/// signature lines (witness cosignatures) are ignored. Every line of this key must verify. Does
/// not check that the origin names the certificate's organ code: callers do. To check many
/// notes of one node, make a [`Verifier`] once.
pub fn verify(note: &[u8], cert: &X509Ref) -> Result<Checkpoint, CheckpointError> {
    Verifier::new(cert)?.verify(note)
}

/// A node's checkpoint key, read out of its certificate once: an audit checks thousands of
/// notes, and extracting and encoding the key is most of the cost of checking one.
#[derive(Debug, Clone)]
pub struct Verifier {
    public: PKey<Public>,
    spki: Vec<u8>,
}

impl Verifier {
    /// Takes the key of `cert`, which must be EC or RSA.
    pub fn new(cert: &X509Ref) -> Result<Self, CheckpointError> {
        let public = public_key(cert)?;
        let spki = public
            .public_key_to_der()
            .map_err(|e| CheckpointError::Certificate(e.to_string()))?;
        Ok(Self { public, spki })
    }

    /// [`verify`] with this key.
    pub fn verify(&self, note: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let (checkpoint, signatures) = Checkpoint::parse_note(note)?;
        let id = ledger::key_id(&checkpoint.origin, &self.spki);
        let ours: Vec<&NoteSignature> = signatures
            .iter()
            .filter(|s| s.name == checkpoint.origin && s.key_id == id)
            .collect();
        if ours.is_empty() {
            return Err(CheckpointError::NoSignature {
                origin: checkpoint.origin,
            });
        }
        let body = checkpoint.body();
        for s in ours {
            if !verifies(&self.public, body.as_bytes(), &s.signature) {
                return Err(CheckpointError::BadSignature {
                    origin: checkpoint.origin,
                });
            }
        }
        Ok(checkpoint)
    }
}

/// The certificate's key, if it is one vdx signs checkpoints with.
fn public_key(cert: &X509Ref) -> Result<PKey<Public>, CheckpointError> {
    let public = cert
        .public_key()
        .map_err(|e| CheckpointError::Certificate(e.to_string()))?;
    match public.id() {
        Id::EC | Id::RSA => Ok(public),
        _ => Err(CheckpointError::Certificate(
            "the key is neither EC nor RSA".into(),
        )),
    }
}

/// SHA-256 ECDSA or RSA PKCS#1 v1.5 verification; any OpenSSL failure (a malformed DER signature
/// included) counts as "does not verify".
fn verifies(public: &PKey<Public>, body: &[u8], signature: &[u8]) -> bool {
    let check = || -> Result<bool, openssl::error::ErrorStack> {
        let mut verifier = SignatureVerifier::new(MessageDigest::sha256(), public)?;
        if public.id() == Id::RSA {
            verifier.set_rsa_padding(Padding::PKCS1)?;
        }
        verifier.verify_oneshot(signature, body)
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use base64::Engine as _;

    use super::*;
    use crate::testpki::{agency, ca, Party};
    use crate::KeyKind;

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint {
            origin: "vdx/000.00.00.G22".into(),
            size,
            root: [size as u8; 32],
        }
    }

    fn parties() -> Vec<Party> {
        let root = ca().unwrap();
        vec![
            agency(&root, "EC agency", KeyKind::EcP256).unwrap(),
            agency(&root, "RSA agency", KeyKind::Rsa).unwrap(),
        ]
    }

    #[test]
    fn notes_round_trip_with_ec_and_rsa_keys() {
        for party in parties() {
            let cp = checkpoint(18);
            let note = sign(&cp, &party.cert, &party.key).unwrap();
            assert!(note.starts_with(&cp.body()), "{note}");
            assert!(note.contains("\n\n— vdx/000.00.00.G22 "), "{note}");
            assert_eq!(verify(note.as_bytes(), &party.cert).unwrap(), cp);
        }
    }

    #[test]
    fn a_changed_byte_in_body_or_signature_fails() {
        for party in parties() {
            let note = sign(&checkpoint(7), &party.cert, &party.key).unwrap();
            let bytes = note.as_bytes();
            for i in 0..bytes.len() {
                let mut changed = bytes.to_vec();
                changed[i] ^= 0x01;
                assert!(
                    verify(&changed, &party.cert).is_err(),
                    "flipping byte {i} of {note:?} went unnoticed"
                );
            }
            let other_size = note.replacen("\n7\n", "\n8\n", 1);
            assert!(matches!(
                verify(other_size.as_bytes(), &party.cert),
                Err(CheckpointError::BadSignature { .. })
            ));
        }
    }

    #[test]
    fn another_agencys_certificate_finds_no_signature_and_witnesses_are_ignored() {
        let [ec, rsa] = <[Party; 2]>::try_from(parties()).ok().unwrap();
        let note = sign(&checkpoint(3), &ec.cert, &ec.key).unwrap();
        assert!(matches!(
            verify(note.as_bytes(), &rsa.cert),
            Err(CheckpointError::NoSignature { .. })
        ));
        // A witness cosignature (another name) after ours changes nothing.
        let witnessed = format!("{note}— witness/x AAAAAAE=\n");
        assert_eq!(
            verify(witnessed.as_bytes(), &ec.cert).unwrap(),
            checkpoint(3)
        );
        assert!(matches!(
            sign(&checkpoint(3), &ec.cert, &rsa.key),
            Err(Error::KeyMismatch)
        ));
        assert!(matches!(
            verify(b"vdx/x\n1\n", &ec.cert),
            Err(CheckpointError::Format(_))
        ));
    }

    #[test]
    fn the_signature_verifies_with_the_openssl_command_line() {
        let dir = tempfile::tempdir().unwrap();
        for party in parties() {
            let cp = checkpoint(42);
            let note = sign(&cp, &party.cert, &party.key).unwrap();
            let b64 = note.lines().last().unwrap().rsplit(' ').next().unwrap();
            let blob = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let pubkey = party.cert.public_key().unwrap();
            std::fs::write(
                dir.path().join("pubkey.pem"),
                pubkey.public_key_to_pem().unwrap(),
            )
            .unwrap();
            std::fs::write(dir.path().join("sig.bin"), &blob[4..]).unwrap();
            std::fs::write(dir.path().join("body.txt"), cp.body()).unwrap();
            let out = Command::new("openssl")
                .args(["dgst", "-sha256", "-verify", "pubkey.pem"])
                .args(["-signature", "sig.bin", "body.txt"])
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let spki = pubkey.public_key_to_der().unwrap();
            assert_eq!(blob[..4], ledger::key_id(&cp.origin, &spki));
        }
    }
}
