//! `vdx audit check-proof FILE --cert CERT`: one entry shown to be in a signed checkpoint, with
//! nothing but the proof file and the node's certificate.

use openssl::x509::X509Ref;
use vdx_protocol::bundle::Proof;
use vdx_protocol::ledger::{Checkpoint, Entry};
use vdx_protocol::merkle::{leaf_hash, verify_inclusion};

use super::Finding;

/// A proof that checked out: the entry, and the signed checkpoint it is included in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProofSummary {
    /// The entry the proof is about.
    pub(crate) entry: Entry,
    /// The checkpoint whose signature and root were checked.
    pub(crate) checkpoint: Checkpoint,
}

/// Checks a proof file against the node's signing certificate `cert`: the checkpoint is signed
/// by `cert`'s key with the origin of `cert`'s organ code, the proof's size is the checkpoint's,
/// the leaf is a well-formed entry with the proof's index, and the audit path leads from it to
/// the signed root (RFC 9162 §2.1.3.2).
pub(crate) fn check_proof(text: &[u8], cert: &X509Ref) -> Result<ProofSummary, Finding> {
    let proof = Proof::parse(text).map_err(|e| Finding::general(e.to_string()))?;
    let checkpoint = vdx_crypto::checkpoint::verify(&proof.checkpoint, cert)
        .map_err(|e| Finding::general(format!("the checkpoint: {e}")))?;
    let code = vdx_pki::organ_code(cert).ok_or_else(|| {
        Finding::general("the certificate has no organ code (organizationIdentifier)")
    })?;
    if checkpoint.origin != format!("vdx/{code}") {
        return Err(Finding::general(format!(
            "the checkpoint's origin {} is not the ledger of the certificate's agency ({code})",
            checkpoint.origin
        )));
    }
    if proof.size != checkpoint.size {
        return Err(Finding::general(format!(
            "the proof says size {} but its checkpoint is of size {}",
            proof.size, checkpoint.size
        )));
    }
    let index = proof.index;
    let entry = Entry::parse(&proof.leaf)
        .map_err(|e| Finding::at(index, format!("the leaf is not a well-formed entry: {e}")))?;
    if entry.index != index {
        return Err(Finding::at(
            index,
            format!("the leaf is entry {}, not entry {index}", entry.index),
        ));
    }
    verify_inclusion(
        &leaf_hash(&proof.leaf),
        index,
        checkpoint.size,
        &proof.path,
        &checkpoint.root,
    )
    .map_err(|e| {
        Finding::at(
            index,
            format!(
                "not in the signed checkpoint of size {}: {e}",
                checkpoint.size
            ),
        )
    })?;
    Ok(ProofSummary { entry, checkpoint })
}

#[cfg(test)]
mod tests {
    use vdx_crypto::KeyKind;

    use super::*;
    use crate::audit::testkit::{Agency, Ledger};

    fn proof(agency: &Agency, ledger: &Ledger, index: u64, size: u64) -> Proof {
        Proof {
            index,
            size,
            leaf: ledger.entries[index as usize].clone(),
            path: ledger.prove(index, size),
            checkpoint: agency.sign(size, ledger.root(size)).into_bytes(),
        }
    }

    #[test]
    fn every_entry_is_proved_in_checkpoints_of_several_sizes() {
        let agency = Agency::new("000.00.00.H41", KeyKind::EcP256);
        let ledger = Ledger::realistic(40, 5);
        for size in [1, 17, 40] {
            for index in 0..size {
                let text = proof(&agency, &ledger, index, size).to_text();
                let summary = check_proof(&text, agency.cert()).unwrap();
                assert_eq!(summary.entry.index, index);
                assert_eq!(summary.checkpoint.size, size);
                assert_eq!(summary.checkpoint.root, ledger.root(size));
            }
        }
    }

    #[test]
    fn every_single_byte_change_of_a_proof_is_caught() {
        let agency = Agency::new("000.00.00.H41", KeyKind::EcP256);
        let ledger = Ledger::realistic(40, 6);
        let mut text = proof(&agency, &ledger, 21, 40).to_text();
        for pos in 0..text.len() {
            for mask in [1u8 << (pos % 8), 0x01] {
                text[pos] ^= mask;
                let result = check_proof(&text, agency.cert());
                text[pos] ^= mask;
                assert!(result.is_err(), "byte {pos} ^ {mask:#04x} went unnoticed");
            }
        }
        assert!(check_proof(&text, agency.cert()).is_ok());
    }

    #[test]
    fn proofs_that_do_not_fit_their_checkpoint_or_certificate_are_refused() {
        let agency = Agency::new("000.00.00.H41", KeyKind::EcP256);
        let ledger = Ledger::realistic(40, 7);
        let check = |p: &Proof| check_proof(&p.to_text(), agency.cert()).unwrap_err();

        let mut p = proof(&agency, &ledger, 3, 40);
        p.checkpoint = agency.sign(39, ledger.root(39)).into_bytes();
        assert!(check(&p).what.contains("size 40"), "{}", check(&p));

        let mut p = proof(&agency, &ledger, 3, 40);
        p.leaf = ledger.entries[4].clone();
        assert_eq!(check(&p).entry, Some(3));

        let mut p = proof(&agency, &ledger, 3, 40);
        p.path[2] = ledger.root(8);
        let f = check(&p);
        assert_eq!(f.entry, Some(3));
        assert!(f.what.contains("not in the signed checkpoint"), "{f}");

        let mut p = proof(&agency, &ledger, 3, 40);
        p.path.pop();
        assert_eq!(check(&p).entry, Some(3));

        // Signed by another agency, or by a key of the same code that is not this certificate's.
        for code in ["000.00.00.G22", "000.00.00.H41"] {
            let other = Agency::new(code, KeyKind::EcP256);
            let p = proof(&other, &ledger, 3, 40);
            let f = check(&p);
            assert_eq!(f.entry, None, "{f}");
        }
        // The right key under another origin.
        let p = proof(&agency, &ledger, 3, 40);
        let other = Agency::new("000.00.00.G22", KeyKind::EcP256);
        assert!(check_proof(&p.to_text(), other.cert()).is_err());
    }
}
