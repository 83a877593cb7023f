//! The daemon's parts. `vdxd` (src/main.rs) puts them together. The folders say who owns what
//! (DESIGN §1, §2):
//!
//! - [`host`]: what the node's agencies share — the QUIC endpoint and its TLS identity, the trust
//!   anchors, CRLs and directory in force (`host::trusted`), the tenants hosted now, metrics and
//!   the status report; the main loop that starts and stops everything.
//! - [`tenant`]: one agency — its keys, store namespace, uploads and API users, and what it does:
//!   compose and seal (`compose`), open and number arrivals (`inbox`), sign receipts
//!   (`receipts`), sign checkpoints (`checkpoints`), answer the officer (`audit`), keep its peers'
//!   checkpoints (`witness`).
//! - [`routing`]: where an object goes next and who may hand one over, for a host and its
//!   tenants, from the directory alone (pure).
//! - `delivery`: the outbox — the scheduler's deterministic core (`delivery::scheduler`, tested on
//!   a virtual clock) under its tokio/quinn driver (`delivery::outbox`).
//! - [`net`]: where bytes meet the network — mutual TLS (`net::tls`), admission of QUIC handshakes
//!   under floods (`net::admission`), one object over one QUIC stream (`net::transfer`).
//! - [`api`]: the local socket API (HTTP/1.1 + JSON over a Unix socket) for clerks, systems,
//!   officers; every route acts for the host or one tenant.
//! - [`store`]: durable state — one sled database, a namespace per tenant, sealed objects in spool
//!   files. Nothing else in the daemon touches sled or the spool directory.
//! - [`config`]: the node home's `config.toml` and the tenants' `tenant.toml`.
//! - [`passphrase`]: `VDX_KEY_PASSPHRASE` moved out of the daemon's environment (through its
//!   re-exec); `at_rest`: the home's modes, private keys and data refused when open to others.

pub mod api;
mod at_rest;
pub mod classification;
pub mod config;
mod delivery;
pub mod host;
pub mod net;
pub mod passphrase;
pub mod routing;
pub mod store;
pub mod tenant;

/// Test fixtures shared by the node's modules: a CA, agencies, and TLS identities and policies.
#[cfg(test)]
mod testkit {

    use std::sync::Arc;

    use openssl::x509::X509;
    use vdx_crypto::{KeyKind, PrivateKey};
    use vdx_pki::{Ca, IssueRequest, Issued, Profile, TrustStore, ValidatedSigner};

    use crate::net::tls::PeerPolicy;

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
    pub(crate) fn receipt_signer(
        issued: &Issued,
        org: &str,
    ) -> crate::tenant::receipts::ReceiptSigner {
        let (cert, key) = role(issued, "sign");
        crate::tenant::receipts::ReceiptSigner::new(org.parse().unwrap(), cert, owned_key(key))
            .unwrap()
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
