//! What the daemon checks peers and documents against — trust anchors, CRLs, the directory — and
//! how it takes up a change to their files without a restart. A CRL has a nextUpdate after which
//! it no longer vouches for anyone, and agencies join the directory while nodes run: an operator
//! drops the fresh file in place and the daemon reloads it on SIGHUP, on `POST /v1/reload` (what
//! `vdx directory import` and `vdx reload` call), or by itself within a minute. A file that does
//! not load leaves the previous settings in force, and the error is logged and answered.
//!
//! After a change, established connections are checked again: a peer that is now revoked or out
//! of the directory is disconnected, not served until its connection idles out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openssl::x509::X509;
use sha2::{Digest, Sha256};
use vdx_pki::{Directory, TrustStore};
use vdx_protocol::hex;

use crate::config::{resolve, Config};
use crate::daemon::{Node, StartError, Stop};

/// How often the files are looked at when nothing asks for a reload.
const CHECK_EVERY: Duration = Duration::from_secs(60);
/// How often an established connection's peer is checked again even when no file changed: its
/// certificate may have expired, or its CRL passed its nextUpdate, since its handshake.
pub(crate) const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// The trust settings in force: replaced whole by a reload, never edited in place.
pub(crate) struct Trusted {
    /// Trust anchors and CRLs.
    pub(crate) trust: Arc<TrustStore>,
    /// The agencies this node knows.
    pub(crate) directory: Directory,
    /// The directory's encryption certificates, parsed once (see `Composer::enc_certs`).
    pub(crate) enc_certs: HashMap<String, X509>,
    /// The files these came from — what (as the ledger's `config` entries name it), path, SHA-256
    /// (hex) of the bytes loaded: a reload whose files are unchanged changes nothing.
    files: Vec<(&'static str, PathBuf, String)>,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Reloaded {
    /// Whether any of the files had changed (if not, nothing was replaced).
    pub(crate) changed: bool,
    /// Agencies in the directory now.
    pub(crate) agencies: usize,
    /// CRLs in force now.
    pub(crate) crls: usize,
}

impl Trusted {
    /// Reads and checks the directory, trust anchors and CRLs that `config` names.
    pub(crate) fn load(home: &Path, config: &Config) -> Result<Self, StartError> {
        let mut files = Vec::new();
        let mut read = |what: &'static str, path: &Path| -> Result<Vec<u8>, StartError> {
            let bytes =
                std::fs::read(resolve(home, path)).map_err(|e| file_error(home, path, e))?;
            let digest = hex::encode(Sha256::digest(&bytes).as_slice());
            files.push((what, path.to_owned(), digest));
            Ok(bytes)
        };
        let directory = Directory::from_json(&read("directory", &config.directory)?)
            .map_err(|e| file_error(home, &config.directory, e))?;
        let mut anchors = Vec::new();
        for path in &config.trust.anchors {
            let bytes = read("trust-anchor", path)?;
            anchors.extend(vdx_pki::parse_certs(&bytes).map_err(|e| file_error(home, path, e))?);
        }
        let mut crls = Vec::new();
        for path in &config.trust.crls {
            let bytes = read("crl", path)?;
            crls.extend(vdx_pki::parse_crls(&bytes).map_err(|e| file_error(home, path, e))?);
        }
        let trust = TrustStore::new(anchors, Vec::new(), crls)
            .map_err(|e| file_error(home, Path::new("config.toml [trust]"), e))?;
        let mut enc_certs = HashMap::new();
        for entry in &directory.entries {
            let cert = entry
                .certificate("enc")
                .map_err(|e| file_error(home, &config.directory, e))?;
            if let Some(cert) = cert {
                enc_certs.insert(entry.organ_code.clone(), cert);
            }
        }
        Ok(Self {
            trust: Arc::new(trust),
            directory,
            enc_certs,
            files,
        })
    }

    fn summary(&self, changed: bool) -> Reloaded {
        Reloaded {
            changed,
            agencies: self.directory.entries.len(),
            crls: self.trust.crl_count(),
        }
    }
}

fn file_error(home: &Path, path: &Path, e: impl std::fmt::Display) -> StartError {
    StartError::File {
        path: resolve(home, path),
        reason: e.to_string(),
    }
}

impl Node {
    /// Loads the trust files again and, if they changed, puts them in force: each changed file is
    /// recorded in the ledger first (as loaded, byte for byte; if that fails, nothing changes),
    /// then new handshakes, documents and receipts are checked against them at once, and
    /// established connections are checked again (see [`watch`]).
    pub(crate) fn reload(&self) -> Result<Reloaded, StartError> {
        // One reload at a time: two at once could put an older reading in force after a newer.
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = Trusted::load(&self.home, &self.config)?;
        if fresh.files == self.trusted().files {
            return Ok(fresh.summary(false));
        }
        let summary = fresh.summary(true);
        for (what, path, digest) in &fresh.files {
            crate::checkpoints::record_config_file(&self.store, what, path, digest)?;
        }
        self.trusted.store(Arc::new(fresh));
        self.reloaded.send_modify(|generation| *generation += 1);
        self.wake_outbox.notify_one();
        tracing::info!(
            agencies = summary.agencies,
            crls = summary.crls,
            "trust settings reloaded"
        );
        Ok(summary)
    }
}

/// Reloads on SIGHUP and every [`CHECK_EVERY`] until `stop`; a failed reload is logged and the
/// settings in force stay.
pub(crate) async fn watch(node: Arc<Node>, mut stop: Stop) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| {
            tracing::warn!(error = %e, "SIGHUP does not reload: cannot listen for it");
        });
    loop {
        let hangup_received = async {
            #[cfg(unix)]
            if let Ok(signal) = hangup.as_mut() {
                return signal.recv().await;
            }
            std::future::pending::<Option<()>>().await
        };
        tokio::select! {
            _ = stop.wait() => return,
            _ = hangup_received => tracing::info!("SIGHUP: reloading the trust settings"),
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let worker = node.clone();
        match tokio::task::spawn_blocking(move || worker.reload()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot reload the trust settings; the previous ones stay in force")
            }
            Err(e) => tracing::error!(error = %e, "reload failed"),
        }
    }
}

/// Closes `conn` if its peer no longer passes the settings in force; true if it was closed.
pub(crate) fn drop_if_untrusted(node: &Node, conn: &quinn::Connection, peer: &str) -> bool {
    match node.policy.admits(conn) {
        Ok(()) => false,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "disconnecting a peer the reloaded trust settings refuse");
            conn.close(2u32.into(), b"no longer trusted");
            true
        }
    }
}
