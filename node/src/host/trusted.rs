//! What the daemon checks peers and documents against — trust anchors, CRLs, the directory — and
//! how it takes up a change to their files without a restart. A CRL has a nextUpdate after which
//! it no longer vouches for anyone, and agencies join the directory while nodes run: an operator
//! drops the fresh file in place and the daemon reloads it on SIGHUP, on `POST /v1/reload` (what
//! `vdx directory import` and `vdx reload` call), or by itself within a minute. A file that does
//! not load leaves the previous settings in force, and the error is logged and answered.
//!
//! After a change, established connections are checked again: a peer that is now revoked or out
//! of the directory is disconnected, not served until its connection idles out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use vdx_pki::{IndexedDirectory, TrustStore};
use vdx_protocol::hex;

use crate::config::Config;
use crate::host::{file_error, read, Host, StartError, Stop};
use crate::store::{Store, StoreError};

/// How often the files are looked at when nothing asks for a reload.
const CHECK_EVERY: Duration = Duration::from_secs(60);
/// How often an established connection's peer is checked again even when no file changed: its
/// certificate may have expired, or its CRL passed its nextUpdate, since its handshake.
pub(crate) const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// The trust settings in force: replaced whole by a reload, never edited in place.
pub(crate) struct Trusted {
    /// Trust anchors and CRLs.
    pub(crate) trust: Arc<TrustStore>,
    /// The agencies this node knows, indexed by organ code with their certificates parsed once
    /// per load (handshakes, offers and dispatches look them up).
    pub(crate) directory: IndexedDirectory,
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

/// One trust file as read: what it is (as the ledger's `config` entries name it), its path as
/// `config.toml` gives it, its bytes and their SHA-256 (hex).
struct TrustFile {
    what: &'static str,
    path: PathBuf,
    bytes: Vec<u8>,
    sha256: String,
}

/// Reads the directory, trust anchors and CRLs that `config` names, in that order.
fn read_files(home: &Path, config: &Config) -> Result<Vec<TrustFile>, StartError> {
    let named = std::iter::once(("directory", &config.directory))
        .chain(config.trust.anchors.iter().map(|p| ("trust-anchor", p)))
        .chain(config.trust.crls.iter().map(|p| ("crl", p)));
    named
        .map(|(what, path)| {
            let bytes = read(home, path)?;
            Ok(TrustFile {
                what,
                path: path.clone(),
                sha256: hex::encode(Sha256::digest(&bytes).as_slice()),
                bytes,
            })
        })
        .collect()
}

impl Trusted {
    /// Reads and checks the directory, trust anchors and CRLs that `config` names.
    pub(crate) fn load(home: &Path, config: &Config) -> Result<Self, StartError> {
        Self::parse(home, read_files(home, config)?)
    }

    /// Records in the ledger each of these files whose content differs from what it last
    /// recorded, by the digest of the bytes loaded.
    pub(crate) fn record(&self, store: &Store) -> Result<(), StoreError> {
        for (what, path, digest) in &self.files {
            crate::tenant::checkpoints::record_config_file(store, what, path, digest)?;
        }
        Ok(())
    }

    /// Checks the files [`read_files`] read, and keeps what they are with their digests.
    fn parse(home: &Path, files: Vec<TrustFile>) -> Result<Self, StartError> {
        let error = |file: &TrustFile, e: &dyn std::fmt::Display| file_error(home, &file.path, e);
        // `read_files` reads the directory first.
        let (directory_file, rest) = files
            .split_first()
            .ok_or_else(|| file_error(home, Path::new("config.toml"), "no directory file"))?;
        let directory = IndexedDirectory::from_json(&directory_file.bytes)
            .map_err(|e| error(directory_file, &e))?;
        let (mut anchors, mut crls) = (Vec::new(), Vec::new());
        for file in rest {
            if file.what == "trust-anchor" {
                anchors.extend(vdx_pki::parse_certs(&file.bytes).map_err(|e| error(file, &e))?);
            } else {
                crls.extend(vdx_pki::parse_crls(&file.bytes).map_err(|e| error(file, &e))?);
            }
        }
        let trust = TrustStore::new(anchors, Vec::new(), crls)
            .map_err(|e| file_error(home, Path::new("config.toml [trust]"), e))?;
        Ok(Self {
            trust: Arc::new(trust),
            directory,
            files: files
                .into_iter()
                .map(|f| (f.what, f.path, f.sha256))
                .collect(),
        })
    }

    fn summary(&self, changed: bool) -> Reloaded {
        Reloaded {
            changed,
            agencies: self.directory.len(),
            crls: self.trust.crl_count(),
        }
    }
}

impl Host {
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
        // Files as they were when last loaded are not parsed again.
        let files = read_files(&self.home, &self.config)?;
        let in_force = self.trusted();
        let unchanged = files.len() == in_force.files.len()
            && files
                .iter()
                .zip(&in_force.files)
                .all(|(file, (_, path, sha256))| file.path == *path && file.sha256 == *sha256);
        if unchanged {
            return Ok(in_force.summary(false));
        }
        let fresh = Trusted::parse(&self.home, files)?;
        let summary = fresh.summary(true);
        fresh.record(&self.own.store)?;
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
pub(crate) async fn watch(node: Arc<Host>, mut stop: Stop) {
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
pub(crate) fn drop_if_untrusted(node: &Host, conn: &quinn::Connection, peer: &str) -> bool {
    match node.policy.admits(conn) {
        Ok(()) => false,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "disconnecting a peer the reloaded trust settings refuse");
            conn.close(2u32.into(), b"no longer trusted");
            true
        }
    }
}
