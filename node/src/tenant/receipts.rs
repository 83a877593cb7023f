//! Signing and checking receipts (spec: `docs/receipts.md`): the receipt text as the content of a
//! CMS SignedData, signed with the node's or agency's signing key, checkable with `openssl cms -verify`.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use openssl::x509::X509;
use time::OffsetDateTime;
use vdx_crypto::{verify_signed, PrivateKey, Sealer};
use vdx_pki::TrustStore;
use vdx_protocol::ledger::Checkpoint;
use vdx_protocol::receipt::{Receipt, ReceiptKind};
use vdx_protocol::OrganCode;

use crate::store::{Record, Store};

/// Largest signed receipt we read (text, signature and the signer's certificates).
const MAX_RECEIPT: usize = 64 * 1024;

/// Why a receipt could not be made or is not acceptable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The CMS wrapper did not verify.
    #[error("receipt signature: {0}")]
    Signature(#[from] vdx_crypto::Error),
    /// The signer's certificate is not trusted.
    #[error("receipt signer: {0}")]
    Signer(#[from] vdx_pki::Error),
    /// The text is not a receipt.
    #[error("receipt text: {0}")]
    Text(#[from] vdx_protocol::receipt::ReceiptError),
    /// A valid receipt for something else, or from someone else.
    #[error("receipt does not match: {0}")]
    Mismatch(&'static str),
}

/// Signs receipts as one organ code.
pub struct ReceiptSigner {
    by: OrganCode,
    cert: X509,
    key: PrivateKey,
    /// `cert`'s encoded public key, which names our checkpoint signatures.
    spki: Vec<u8>,
    /// The checkpoint signed last, and when: what receipts carry for a second (see
    /// [`ReceiptSigner::receipt_checkpoint`]).
    latest: Mutex<Option<(Instant, Vec<u8>)>>,
}

/// How long a checkpoint is carried by receipts before a newer one is signed for them. A busy
/// node gives hundreds of receipts a second; a checkpoint for each would cost a signature here and
/// a verification and a write at every peer, and witness nothing more.
const RECEIPT_CHECKPOINT_AGE: Duration = Duration::from_secs(1);

impl ReceiptSigner {
    /// The certificate must carry `by` as its organizationIdentifier, and `key` must be its key.
    pub fn new(by: OrganCode, cert: X509, key: PrivateKey) -> Result<Self, ReceiptError> {
        if vdx_pki::organ_code(&cert).as_deref() != Some(by.as_str()) {
            return Err(ReceiptError::Mismatch(
                "the signing certificate is not this organ code's",
            ));
        }
        if !key.matches(&cert) {
            return Err(ReceiptError::Signature(vdx_crypto::Error::KeyMismatch));
        }
        let spki = vdx_crypto::checkpoint::public_key_der(&cert)?;
        Ok(Self {
            by,
            cert,
            key,
            spki,
            latest: Mutex::default(),
        })
    }

    /// A sealer with this agency as the signer, for dispatches composed here.
    pub fn sealer(&self) -> Result<Sealer<'_>, vdx_crypto::Error> {
        Sealer::new().signer(&self.cert, &self.key)
    }

    /// `text` signed as a CMS SignedData (content inside): how receipts and notices travel.
    pub fn sign_text(&self, text: &[u8]) -> Result<Vec<u8>, ReceiptError> {
        let mut out = Vec::new();
        self.sealer()?.sign(text, &mut out)?;
        Ok(out)
    }

    /// The organ code this signs as.
    pub fn organ_code(&self) -> &OrganCode {
        &self.by
    }

    /// The origin line of this agency's ledger checkpoints.
    pub fn origin(&self) -> String {
        Checkpoint::origin_of(&self.by)
    }

    /// A checkpoint of this agency's ledger as a signed note, with the same key as receipts (so a
    /// peer that trusts our receipts can check our checkpoints).
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, vdx_crypto::Error> {
        vdx_crypto::checkpoint::sign_with(checkpoint, &self.spki, &self.key)
    }

    /// A signed checkpoint of `store`'s durable ledger, for a receipt: `None` (logged) if it
    /// cannot be made, since the receipt is still worth sending.
    pub fn checkpoint(&self, store: &Store) -> Option<Vec<u8>> {
        let note = store
            .checkpoint(&self.origin(), |c| self.sign_checkpoint(c))
            .map_err(|e| tracing::error!(error = %e, "cannot make a ledger checkpoint"))
            .ok()?;
        *self.latest() = Some((Instant::now(), note.clone()));
        Some(note)
    }

    /// The checkpoint a receipt carries: the one signed last if that was less than
    /// [`RECEIPT_CHECKPOINT_AGE`] ago, else a new one of the durable ledger.
    pub fn receipt_checkpoint(&self, store: &Store) -> Option<Vec<u8>> {
        if let Some((signed, note)) = self.latest().as_ref() {
            if signed.elapsed() < RECEIPT_CHECKPOINT_AGE {
                return Some(note.clone());
            }
        }
        self.checkpoint(store)
    }

    fn latest(&self) -> MutexGuard<'_, Option<(Instant, Vec<u8>)>> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The certificate receipts and checkpoints are signed with.
    pub fn certificate(&self) -> &X509 {
        &self.cert
    }

    /// The signed receipt for `record`, carrying our latest ledger checkpoint if there is one.
    pub fn sign(
        &self,
        kind: ReceiptKind,
        record: &Record,
        at: OffsetDateTime,
        checkpoint: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ReceiptError> {
        let receipt = Receipt {
            kind,
            id: record.id.0,
            sealed_sha256: digest_of(record)?,
            by: self.by.clone(),
            time: at,
            checkpoint,
        };
        self.sign_text(receipt.to_text().as_bytes())
    }
}

/// A receipt whose signature and signer were checked, with the signer's certificate (which also
/// checks the ledger checkpoint the receipt carries).
#[derive(Debug)]
pub struct VerifiedReceipt {
    /// The receipt's content.
    pub receipt: Receipt,
    /// Who signed it.
    pub signer: X509,
}

/// Checks a signed receipt for `record` from `by`: signature, signer trusted now and bound to `by`
/// by its certificate, and the text naming this dispatch and this signer.
pub fn verify_receipt(
    signed: &[u8],
    record: &Record,
    by: &OrganCode,
    trust: &TrustStore,
) -> Result<VerifiedReceipt, ReceiptError> {
    let (text, signer) = verify_signed_text(signed, by, trust)?;
    let receipt = Receipt::parse(&text)?;
    check_receipt(&receipt, record, by)?;
    Ok(VerifiedReceipt { receipt, signer })
}

/// Checks that a receipt whose signature [`verify_signed_text`] checked names `record` and
/// its signer `by`: for a caller that had to read the receipt to find `record`.
pub fn check_receipt(
    receipt: &Receipt,
    record: &Record,
    by: &OrganCode,
) -> Result<(), ReceiptError> {
    if receipt.by != *by {
        return Err(ReceiptError::Mismatch("names another organ code"));
    }
    if receipt.id != record.id.0 || receipt.sealed_sha256 != digest_of(record)? {
        return Err(ReceiptError::Mismatch("names another dispatch"));
    }
    Ok(())
}

/// The text inside a signed receipt or notice, and its signer's certificate, once its one
/// signature verifies and its signer is trusted and carries the organ code `by`.
pub fn verify_signed_text(
    signed: &[u8],
    by: &OrganCode,
    trust: &TrustStore,
) -> Result<(Vec<u8>, X509), ReceiptError> {
    if signed.len() > MAX_RECEIPT {
        return Err(ReceiptError::Mismatch("receipt too large"));
    }
    let mut text = Vec::new();
    let verified = verify_signed(signed, &mut text, &[])?;
    let [signer] = verified.signers() else {
        return Err(ReceiptError::Mismatch("a receipt has exactly one signer"));
    };
    let validated = trust.validate_signer(
        signer.certificate(),
        verified.certificates(),
        signer.signing_time(),
    )?;
    if validated.organ_code() != Some(by.as_str()) {
        return Err(ReceiptError::Mismatch("signed by another organ code"));
    }
    Ok((text, validated.certificate().to_owned()))
}

fn digest_of(record: &Record) -> Result<[u8; 32], ReceiptError> {
    record
        .sealed_digest()
        .map_err(|_| ReceiptError::Mismatch("record digest unreadable"))
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};
    use vdx_crypto::KeyKind;
    use vdx_pki::Ca;
    use vdx_protocol::wire::Offer;

    use super::*;
    use crate::testkit::{agency, receipt_signer as signer_for};

    /// Dispatch `n` from G22 to H41, submitted to `store`.
    fn submitted(store: &Store, n: u8) -> Record {
        let body = vec![n; 100];
        let offer = Offer {
            id: [n; 16],
            from: "000.00.00.G22".parse().unwrap(),
            to: "000.00.00.H41".parse().unwrap(),
            size: 100,
            sealed_sha256: Sha256::digest(&body).into(),
            urgency: 0,
            expires: 0,
            kind: vdx_protocol::wire::ObjectKind::Dispatch,
            hops: 0,
        };
        store.submit(&offer, &body[..], 1).unwrap()
    }

    #[test]
    fn receipts_carry_the_latest_checkpoint_for_a_second_then_a_new_one() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let signer = signer_for(&agency(&mut ca, "000.00.00.H41"), "000.00.00.H41");
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let size = |note: &[u8]| Checkpoint::parse_note(note).unwrap().0.size;
        submitted(&store, 1);
        let before = Instant::now();
        let first = signer.receipt_checkpoint(&store).unwrap();
        submitted(&store, 2);
        let again = signer.receipt_checkpoint(&store).unwrap();
        // Checked only when both steps took less than the age, which only a stalled disk prevents.
        if before.elapsed() < RECEIPT_CHECKPOINT_AGE {
            assert_eq!(
                again, first,
                "the ledger grew, but the checkpoint is recent"
            );
        }
        std::thread::sleep(RECEIPT_CHECKPOINT_AGE);
        let newer = signer.receipt_checkpoint(&store).unwrap();
        assert_eq!(size(&newer), size(&first) + 1);
        assert_eq!(size(&newer), store.durable_ledger_size());
    }

    #[test]
    fn receipts_verify_only_for_their_dispatch_and_signer() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let h41 = agency(&mut ca, "000.00.00.H41");
        let h26 = agency(&mut ca, "000.00.00.H26");
        let trust = TrustStore::new(vec![ca.cert().to_owned()], vec![], vec![]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let records = [submitted(&store, 1), submitted(&store, 2)];
        let h41_code: OrganCode = "000.00.00.H41".parse().unwrap();
        let signed = signer_for(&h41, "000.00.00.H41")
            .sign(
                ReceiptKind::Hop,
                &records[0],
                OffsetDateTime::now_utc(),
                None,
            )
            .unwrap();
        let verified = verify_receipt(&signed, &records[0], &h41_code, &trust).unwrap();
        assert_eq!(verified.receipt.kind, ReceiptKind::Hop);

        assert!(matches!(
            verify_receipt(&signed, &records[1], &h41_code, &trust),
            Err(ReceiptError::Mismatch(_))
        ));
        let h26_code: OrganCode = "000.00.00.H26".parse().unwrap();
        assert!(verify_receipt(&signed, &records[0], &h26_code, &trust).is_err());
        let forged = signer_for(&h26, "000.00.00.H26")
            .sign(
                ReceiptKind::Hop,
                &records[0],
                OffsetDateTime::now_utc(),
                None,
            )
            .unwrap();
        assert!(verify_receipt(&forged, &records[0], &h41_code, &trust).is_err());
        let other_root = Ca::create("Other", KeyKind::EcP256, 30).unwrap();
        let stranger = TrustStore::new(vec![other_root.cert().to_owned()], vec![], vec![]).unwrap();
        assert!(matches!(
            verify_receipt(&signed, &records[0], &h41_code, &stranger),
            Err(ReceiptError::Signer(_))
        ));
        let mut tampered = signed.clone();
        let at = signed.windows(4).position(|w| w == b"kind").unwrap();
        tampered[at + 5] = b'x';
        assert!(verify_receipt(&tampered, &records[0], &h41_code, &trust).is_err());
        assert!(ReceiptSigner::new(
            h26_code,
            signer_for(&h41, "000.00.00.H41").cert,
            PrivateKey::generate(KeyKind::EcP256).unwrap()
        )
        .is_err());
    }
}
