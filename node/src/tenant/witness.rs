//! Cross-witnessing (DESIGN §5, `docs/ledger.md`): every receipt a peer signs carries its latest
//! ledger checkpoint. We check and keep them, so a peer that rewrites its history is caught: two
//! of its checkpoints of one size with different roots, or a newer one that its own consistency
//! proof (PROVE/PROOF, `docs/wire-frames.md`) does not link to an older one.

use openssl::x509::X509Ref;
use serde::{Deserialize, Serialize};
use vdx_protocol::ledger::Checkpoint;
use vdx_protocol::merkle;
use vdx_protocol::receipt::Receipt;

use crate::host::Host;
use crate::store::{Store, StoreError, Witnessed};
use crate::tenant::Tenant;

/// Why a peer's checkpoint was not kept, or shows a fork.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The note does not verify with the receipt signer's certificate, or names another ledger.
    #[error("checkpoint in {by}'s receipt: {what}")]
    Invalid {
        /// Who signed the receipt.
        by: String,
        /// What is wrong.
        what: String,
    },
    /// The peer signed two different trees of one size: it has rewritten its history.
    #[error("{origin} signed two different trees of size {size}: its ledger was rewritten")]
    Fork {
        /// Which ledger.
        origin: String,
        /// The size signed twice.
        size: u64,
    },
    /// Keeping it failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks the checkpoint a verified receipt carries (signed by `signer`, the receipt's signer)
/// and keeps it. A fork is kept too (both notes are the evidence) and reported as an error.
pub fn keep(store: &Store, receipt: &Receipt, signer: &X509Ref) -> Result<(), WitnessError> {
    let Some(note) = &receipt.checkpoint else {
        return Ok(());
    };
    if store.has_witnessed(&Checkpoint::origin_of(&receipt.by), note)? {
        return Ok(());
    }
    let invalid = |what: String| {
        let origin = Checkpoint::origin_of(&receipt.by);
        match store.keep_invalid_checkpoint(&origin, &what, note) {
            Ok(()) => WitnessError::Invalid {
                by: receipt.by.to_string(),
                what,
            },
            Err(e) => {
                tracing::error!(by = %receipt.by, reason = %what, "invalid checkpoint not kept");
                WitnessError::Store(e)
            }
        }
    };
    let checkpoint =
        vdx_crypto::checkpoint::verify(note, signer).map_err(|e| invalid(e.to_string()))?;
    if checkpoint.origin != Checkpoint::origin_of(&receipt.by) {
        return Err(invalid(format!("names the ledger {}", checkpoint.origin)));
    }
    let conflicting = store.witness(&Witnessed {
        checkpoint: checkpoint.clone(),
        note: note.clone(),
    })?;
    if conflicting.is_empty() {
        Ok(())
    } else {
        Err(WitnessError::Fork {
            origin: checkpoint.origin,
            size: checkpoint.size,
        })
    }
}

/// How long a peer may take to say which of our checkpoints it holds.
const HELD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// On a connection we made to `peer`: hands it the newest checkpoint of its ledger we hold and
/// compares the newest of ours it holds with the store (`store::restore`). Awaited before the
/// connection carries anything else, so the peer has compared too before it receives anything.
/// Failures (an older peer, a timeout) only log.
pub(crate) async fn exchange_checkpoints(node: &Host, conn: &quinn::Connection, peer: &str) {
    let theirs = node
        .own
        .store
        .newest_witnessed(&format!("vdx/{peer}"))
        .ok()
        .flatten()
        .unwrap_or_default();
    let exchange = crate::net::transfer::exchange_held(conn, theirs);
    match tokio::time::timeout(HELD_TIMEOUT, exchange).await {
        Ok(Ok(note)) => {
            node.own.peer_answered();
            compare_own(node, peer, &note);
        }
        Ok(Err(e)) => {
            tracing::debug!(peer, error = %e, "peer did not say which of our checkpoints it holds");
        }
        Err(_) => tracing::debug!(
            peer,
            "peer did not say in time which of our checkpoints it holds"
        ),
    }
}

/// Compares `note`, a checkpoint of our own ledger that `peer` held, with the store. A note that
/// does not verify with our own certificate is ignored (a peer cannot make us halt with a note
/// we did not sign).
pub(crate) fn compare_own(node: &Host, peer: &str, note: &[u8]) {
    if note.is_empty() {
        return;
    }
    let own = &node.own;
    let checkpoint = match vdx_crypto::checkpoint::verify(note, own.signer.certificate()) {
        Ok(c) if c.origin == own.signer.origin() => c,
        Ok(c) => {
            tracing::warn!(peer, origin = %c.origin, "peer handed over another ledger's checkpoint as ours");
            return;
        }
        Err(e) => {
            // E.g. signed with our previous key: nothing to compare it with.
            tracing::debug!(peer, error = %e, "our checkpoint held by a peer does not verify");
            return;
        }
    };
    match own
        .store
        .check_own_checkpoint(peer, &checkpoint, node.now_secs())
    {
        Ok(Some(restored)) => tracing::error!(
            peer,
            finding = %restored.describe(),
            "STORE RESTORED: numbering and sending stop until an admin runs `vdx acknowledge-restore`"
        ),
        Ok(None) => {}
        Err(e) => tracing::error!(peer, error = %e, "cannot compare our checkpoint held by a peer"),
    }
}

/// What checking one peer's checkpoints found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerReport {
    /// The peer's ledger (`vdx/ORGAN_CODE`).
    pub origin: String,
    /// Checkpoints kept for it.
    pub checkpoints: usize,
    /// Smallest and largest size seen.
    pub sizes: (u64, u64),
    /// Consecutive pairs whose consistency proof the peer gave and that verified.
    pub proven: usize,
    /// Pairs not checked because the peer could not be asked (unreachable, refused).
    pub unchecked: usize,
    /// Evidence of a rewritten history; empty when consistent.
    pub forks: Vec<String>,
    /// Evidence of a history cut short: the peer's ledger is shorter than a checkpoint it
    /// signed (restored from an older copy, or truncated).
    #[serde(default)]
    pub rolled_back: Vec<String>,
    /// Checkpoints in its receipts that did not verify (the receipts were accepted): why each.
    pub invalid: Vec<String>,
    /// Why some pairs were not checked.
    pub notes: Vec<String>,
}

impl PeerReport {
    /// Whether the peer showed a rewritten history or signed checkpoints that do not verify.
    pub fn failed(&self) -> bool {
        !self.forks.is_empty() || !self.rolled_back.is_empty() || !self.invalid.is_empty()
    }

    /// The finding in a word or two, for people.
    pub fn verdict(&self) -> &'static str {
        if !self.forks.is_empty() {
            "FORKED"
        } else if !self.rolled_back.is_empty() {
            "ROLLED BACK"
        } else if !self.invalid.is_empty() {
            "INVALID CHECKPOINTS"
        } else {
            "consistent"
        }
    }
}

/// Checks every peer's kept checkpoints: same size ⇒ same root, and each one consistent with
/// the next larger one (consistency proofs asked from the peer over QUIC). A checkpoint proven
/// to be a prefix of the next is then forgotten (the next one stands for it), so each run proves
/// only what came since the last; with a fork, everything is kept as evidence.
pub(crate) async fn check_peers(
    node: &Host,
    tenant: &Tenant,
) -> Result<Vec<PeerReport>, StoreError> {
    let mut reports = Vec::new();
    let mut invalid = tenant.store.invalid_checkpoints()?;
    let mut witnessed = tenant.store.witnessed()?;
    for origin in invalid.keys() {
        witnessed.entry(origin.clone()).or_default();
    }
    for (origin, mut seen) in witnessed {
        seen.sort_by_key(|w| w.checkpoint.size);
        let mut report = PeerReport {
            origin: origin.clone(),
            checkpoints: seen.len(),
            sizes: (
                seen.first().map_or(0, |w| w.checkpoint.size),
                seen.last().map_or(0, |w| w.checkpoint.size),
            ),
            proven: 0,
            unchecked: 0,
            forks: Vec::new(),
            rolled_back: Vec::new(),
            invalid: invalid.remove(&origin).unwrap_or_default(),
            notes: Vec::new(),
        };
        for pair in seen.windows(2) {
            let (a, b) = (&pair[0].checkpoint, &pair[1].checkpoint);
            if a.size == b.size {
                report.forks.push(format!(
                    "two checkpoints of size {} with different roots",
                    a.size
                ));
            }
        }
        let mut proven = Vec::new();
        let mut distinct: Vec<&Checkpoint> = seen.iter().map(|w| &w.checkpoint).collect();
        distinct.dedup_by_key(|c| c.size);
        let peer = origin.strip_prefix("vdx/").and_then(|c| c.parse().ok());
        let conn = match peer {
            _ if distinct.is_empty() => Err("nothing to prove".to_owned()),
            // PROVE answers for the ledger of the node's own agency: an agency hosted by another
            // agency's node cannot be asked yet.
            Some(peer) => crate::delivery::outbox::connect(&node.endpoint, node, &peer)
                .await
                .and_then(|conn| {
                    let answers_for = crate::net::tls::peer_certificate(&conn)
                        .and_then(|c| vdx_pki::organ_code(&c));
                    if answers_for.as_deref() == Some(peer.as_str()) {
                        Ok(conn)
                    } else {
                        Err(format!("{peer} is hosted by another agency's node, which proves only its own ledger"))
                    }
                }),
            None => Err(format!("{origin} is not a vdx ledger name")),
        };
        // The newest against itself: the peer's ledger must still be at least that long.
        let newest = distinct.last().map(|c| [*c, *c]);
        for pair in distinct
            .windows(2)
            .chain(newest.as_ref().map(<[_; 2]>::as_slice))
        {
            let (old, new) = (pair[0], pair[1]);
            let conn = match &conn {
                Ok(conn) => conn,
                Err(e) => {
                    report.unchecked += 1;
                    report.notes.push(format!("cannot reach the peer: {e}"));
                    continue;
                }
            };
            match crate::net::transfer::ask_consistency(conn, old.size, new.size).await {
                Err(crate::net::transfer::TransferError::ShortLedger(why)) => {
                    report.rolled_back.push(format!(
                        "it signed a checkpoint of {} entries, but {why}",
                        new.size
                    ));
                }
                Ok(_) if old.size == new.size => {}
                Ok(proof) => {
                    match merkle::verify_consistency(
                        old.size, new.size, &proof, &old.root, &new.root,
                    ) {
                        Ok(()) => {
                            report.proven += 1;
                            proven.push(old.clone());
                        }
                        Err(e) => report.forks.push(format!(
                            "checkpoint {} is not a prefix of checkpoint {}: {e}",
                            old.size, new.size
                        )),
                    }
                }
                Err(e) => {
                    report.unchecked += 1;
                    report
                        .notes
                        .push(format!("sizes {}..{}: {e}", old.size, new.size));
                }
            }
        }
        report.notes.dedup();
        if report.forks.is_empty() && report.rolled_back.is_empty() {
            for old in &proven {
                tenant.store.forget_witnessed(old)?;
            }
        }
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use vdx_crypto::KeyKind;
    use vdx_pki::Ca;
    use vdx_protocol::receipt::ReceiptKind;

    use super::*;
    use crate::testkit::{agency, role};

    /// A delivery receipt by 000.00.00.H41 carrying `note`.
    fn receipt_with(note: &str) -> Receipt {
        Receipt {
            kind: ReceiptKind::Delivery,
            id: [1; 16],
            sealed_sha256: [2; 32],
            by: "000.00.00.H41".parse().unwrap(),
            time: OffsetDateTime::UNIX_EPOCH,
            checkpoint: Some(note.as_bytes().to_vec()),
        }
    }

    #[test]
    fn a_checkpoint_that_does_not_verify_is_refused_and_kept_as_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let (h41, other) = (
            agency(&mut ca, "000.00.00.H41"),
            agency(&mut ca, "000.00.00.H40"),
        );
        let ((h41_cert, h41_key), (other_cert, other_key)) =
            (role(&h41, "sign"), role(&other, "sign"));
        let checkpoint = Checkpoint {
            origin: Checkpoint::origin_of(&"000.00.00.H41".parse().unwrap()),
            size: 3,
            root: [7; 32],
        };
        let good = vdx_crypto::checkpoint::sign(&checkpoint, &h41_cert, h41_key).unwrap();
        keep(&store, &receipt_with(&good), &h41_cert).unwrap();
        // Receipts carry the same checkpoint for a while: kept once, and known again as it is.
        keep(&store, &receipt_with(&good), &h41_cert).unwrap();
        assert!(store
            .has_witnessed(&checkpoint.origin, good.as_bytes())
            .unwrap());
        assert!(!store
            .has_witnessed("vdx/000.00.00.H40", good.as_bytes())
            .unwrap());

        // Signed by another agency's key, or naming another ledger: refused, and kept apart.
        let forged = vdx_crypto::checkpoint::sign(&checkpoint, &other_cert, other_key).unwrap();
        let refused = keep(&store, &receipt_with(&forged), &h41_cert).unwrap_err();
        assert!(matches!(refused, WitnessError::Invalid { .. }), "{refused}");
        let elsewhere = Checkpoint {
            origin: "vdx/000.00.00.H40".into(),
            ..checkpoint
        };
        let misnamed = vdx_crypto::checkpoint::sign(&elsewhere, &h41_cert, h41_key).unwrap();
        let refused = keep(&store, &receipt_with(&misnamed), &h41_cert).unwrap_err();
        assert!(
            refused.to_string().contains("names the ledger"),
            "{refused}"
        );
        // H40's genuine checkpoint, witnessed from H40, is still refused when H41's receipt
        // carries it: a note witnessed before is recognised only under its own origin.
        let h40s = vdx_crypto::checkpoint::sign(&elsewhere, &other_cert, other_key).unwrap();
        let from_h40 = Receipt {
            by: "000.00.00.H40".parse().unwrap(),
            ..receipt_with(&h40s)
        };
        keep(&store, &from_h40, &other_cert).unwrap();
        let refused = keep(&store, &receipt_with(&h40s), &h41_cert).unwrap_err();
        assert!(matches!(refused, WitnessError::Invalid { .. }), "{refused}");

        let invalid = store.invalid_checkpoints().unwrap();
        let reasons = &invalid["vdx/000.00.00.H41"];
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons.iter().any(|r| r.contains("no signature")),
            "{reasons:?}"
        );
        let kept = &store.witnessed().unwrap()["vdx/000.00.00.H41"];
        assert_eq!(kept.len(), 1, "only the valid checkpoint is witnessed");
        // The peers to compare checkpoints with at start, from the keys alone.
        assert_eq!(
            store.witnessed_origins(8).unwrap(),
            ["vdx/000.00.00.H40", "vdx/000.00.00.H41"]
        );
        assert_eq!(store.witnessed_origins(1).unwrap(), ["vdx/000.00.00.H40"]);
    }
}
