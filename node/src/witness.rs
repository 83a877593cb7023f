//! Cross-witnessing (DESIGN §5, `docs/ledger.md`): every receipt a peer signs carries its latest
//! ledger checkpoint. We check and keep them, so a peer that rewrites its history is caught: two
//! of its checkpoints of one size with different roots, or a newer one that its own consistency
//! proof (PROVE/PROOF, `docs/wire-frames.md`) does not link to an older one.

use openssl::x509::X509Ref;
use serde::Serialize;
use vdx_protocol::ledger::Checkpoint;
use vdx_protocol::merkle;
use vdx_protocol::receipt::Receipt;

use crate::daemon::Node;
use crate::store::{Store, StoreError, Witnessed};

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
    let invalid = |what: String| WitnessError::Invalid {
        by: receipt.by.to_string(),
        what,
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

/// What checking one peer's checkpoints found.
#[derive(Debug, Clone, Serialize)]
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
    /// Why some pairs were not checked.
    pub notes: Vec<String>,
}

/// Checks every peer's kept checkpoints: same size ⇒ same root, and each one consistent with
/// the next larger one (consistency proofs asked from the peer over QUIC). A checkpoint proven
/// to be a prefix of the next is then forgotten (the next one stands for it), so each run proves
/// only what came since the last; with a fork, everything is kept as evidence.
pub(crate) async fn check_peers(node: &Node) -> Result<Vec<PeerReport>, StoreError> {
    let mut reports = Vec::new();
    for (origin, mut seen) in node.store.witnessed()? {
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
        let conn = match origin.strip_prefix("vdx/").and_then(|c| c.parse().ok()) {
            Some(peer) => crate::outbox::connect(&node.endpoint, node, &peer).await,
            None => Err(format!("{origin} is not a vdx ledger name")),
        };
        for pair in distinct.windows(2) {
            let (old, new) = (pair[0], pair[1]);
            let conn = match &conn {
                Ok(conn) => conn,
                Err(e) => {
                    report.unchecked += 1;
                    report.notes.push(format!("cannot reach the peer: {e}"));
                    continue;
                }
            };
            match crate::transfer::ask_consistency(conn, old.size, new.size).await {
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
        if report.forks.is_empty() {
            for old in &proven {
                node.store.forget_witnessed(old)?;
            }
        }
        reports.push(report);
    }
    Ok(reports)
}
