//! The daemon's parts. `vdxd` (src/main.rs) puts them together; each part has one job.
//!
//! - [`daemon`]: the main loop: accept peers, work through the outbox, stop cleanly on a signal.
//! - `admission`: who gets a QUIC handshake — Retry, caps per node and per address — under floods.
//! - [`api`]: the local socket API (HTTP/1.1 + JSON over a Unix socket) for clerks, systems, officers.
//! - `at_rest`: the home's modes — private keys and data refused when open to others, the rest
//!   made private.
//! - [`audit`]: the officer's questions to the ledger (bundles, proofs, the log), each recorded.
//! - `checkpoints`: when the ledger gets signed checkpoints, and its `config` entries.
//! - [`compose`]: a clerk's request → header, package, seal, one queued copy per recipient.
//! - [`config`]: the node home's `config.toml`.
//! - [`inbox`]: arrivals opened, verified, numbered and answered; replies applied.
//! - `outbox`: the scheduler's driver — connections, transfers and the store around `scheduler`.
//! - [`passphrase`]: `VDX_KEY_PASSPHRASE` moved out of the daemon's environment (through its re-exec).
//! - [`receipts`]: signing and checking hop and delivery receipts (CMS over the receipt text).
//! - [`routing`]: where an object goes next and who may hand one over, for a host and its tenants,
//!   from the directory alone (pure).
//! - `scheduler`: the outbox scheduler's core, no I/O — priority order, per-peer concurrency,
//!   retries, expiry — tested on a virtual clock.
//! - `status`: what an operator checks first — queues, peers, CRL renewal, disk — with warnings.
//! - [`store`]: durable state — sealed objects in spool files, records and queues in sled. Nothing else
//!   in the daemon touches sled or the spool directory.
//! - `tenant`: one agency the node hosts — keys, store namespace, uploads, API users.
//! - [`tls`]: QUIC endpoints' mutual TLS — who may connect, decided by the trust anchors, CRLs and
//!   the directory.
//! - [`transfer`]: one dispatch over one QUIC stream, between a sender's store and a receiver's.
//! - `trusted`: the trust anchors, CRLs and directory in force, reloaded when their files change.
//! - [`uploads`]: files uploaded by clients before they are named in a dispatch.
//! - [`witness`]: peers' ledger checkpoints from their receipts, kept and checked for forks.

mod admission;
pub mod api;
mod at_rest;
pub mod audit;
mod checkpoints;
pub mod compose;
pub mod config;
pub mod daemon;
pub mod inbox;
mod metrics;
mod outbox;
pub mod passphrase;
pub mod receipts;
pub mod routing;
mod scheduler;
mod status;
pub mod store;
mod tenant;
pub mod tls;
pub mod transfer;
mod trusted;
pub mod uploads;
pub mod witness;

/// Test fixtures shared by the node's modules: a CA, agencies, and TLS identities and policies.
#[cfg(test)]
mod testkit {

    use std::sync::Arc;

    use openssl::x509::X509;
    use vdx_crypto::{KeyKind, PrivateKey};
    use vdx_pki::{Ca, IssueRequest, Issued, Profile, TrustStore, ValidatedSigner};

    use crate::tls::PeerPolicy;

    /// The header of `docs/dispatch-header.md`'s example.
    pub(crate) fn example_header() -> vdx_protocol::header::DispatchHeader {
        let doc = include_str!("../../docs/dispatch-header.md");
        let json = doc
            .split("```json\n")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    pub(crate) fn agency(ca: &mut Ca, org: &str) -> Issued {
        ca.issue(&IssueRequest {
            org: org.into(),
            name: org.into(),
            kind: KeyKind::EcP256,
            profile: Profile::Separate,
            not_before: None,
            days: 30,
        })
        .unwrap()
    }

    /// The agency's certificate and key for `role` ("sign", "enc", "tls").
    pub(crate) fn role<'a>(issued: &'a Issued, role: &str) -> (X509, &'a PrivateKey) {
        let (_, cert, key) = issued
            .roles()
            .into_iter()
            .find(|(r, _, _)| *r == role)
            .unwrap();
        (cert.to_owned(), key)
    }

    /// A copy of a key the node owns, as it loads one (through PKCS#8).
    pub(crate) fn owned_key(key: &PrivateKey) -> PrivateKey {
        PrivateKey::from_bytes(&key.to_pkcs8_pem(None).unwrap(), None).unwrap()
    }

    /// The agency's receipt and notice signer.
    pub(crate) fn receipt_signer(issued: &Issued, org: &str) -> crate::receipts::ReceiptSigner {
        let (cert, key) = role(issued, "sign");
        crate::receipts::ReceiptSigner::new(org.parse().unwrap(), cert, owned_key(key)).unwrap()
    }

    pub(crate) fn tls_identity(issued: &Issued) -> (Vec<X509>, &PrivateKey) {
        let (cert, key) = role(issued, "tls");
        (vec![cert], key)
    }

    /// Trusts `ca` and accepts the peers whose organ code is in `bound`.
    pub(crate) fn policy(ca: &Ca, bound: &'static [&'static str]) -> Arc<PeerPolicy> {
        let trust = Arc::new(TrustStore::new(vec![ca.cert().to_owned()], vec![], vec![]).unwrap());
        Arc::new(PeerPolicy::new(
            Box::new(move || trust.clone()),
            Box::new(move |peer: &ValidatedSigner| {
                peer.organ_code().is_some_and(|c| bound.contains(&c))
            }),
        ))
    }
}
