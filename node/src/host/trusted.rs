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
use crate::host::zones::{self, Held};
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
    /// In signed mode, the zones the directory is made of; `None` on a pilot's unsigned file.
    pub(crate) zones: Option<Held>,
    /// The files these came from: a reload whose files are unchanged changes nothing.
    files: Vec<FileDigest>,
}

/// One file the settings came from: what it is (as the ledger's `config` entries name it), its
/// path as `config.toml` gives it, and the SHA-256 (hex) of the bytes loaded.
#[derive(Clone)]
struct FileDigest {
    what: String,
    path: PathBuf,
    sha256: String,
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

/// One trust file as read: what it is, its path as `config.toml` gives it (or `zones/<name>.zone`),
/// its bytes and their SHA-256 (hex).
struct TrustFile {
    what: &'static str,
    path: PathBuf,
    bytes: Vec<u8>,
    sha256: String,
}

/// Reads, in this order, the directory (the unsigned file, or in signed mode the root authority's
/// certificate), the trust anchors, the CRLs, and in signed mode the zone files.
fn read_files(home: &Path, config: &Config) -> Result<Vec<TrustFile>, StartError> {
    let directory = match &config.zones {
        None => ("directory", config.directory.clone()),
        Some(zones) => ("directory-root", zones.root_authority.clone()),
    };
    let zone_files = match config.zones {
        None => Vec::new(),
        Some(_) => zones::zone_files(home)
            .map_err(|e| file_error(home, Path::new(crate::config::ZONES_DIR), e))?,
    };
    let named = std::iter::once(directory)
        .chain(
            config
                .trust
                .anchors
                .iter()
                .map(|p| ("trust-anchor", p.clone())),
        )
        .chain(config.trust.crls.iter().map(|p| ("crl", p.clone())))
        .chain(zone_files.into_iter().map(|p| ("zone", p)));
    named
        .map(|(what, path)| {
            let bytes = read(home, &path)?;
            Ok(TrustFile {
                what,
                sha256: hex::encode(Sha256::digest(&bytes).as_slice()),
                path,
                bytes,
            })
        })
        .collect()
}

impl Trusted {
    /// Reads and checks the directory (or zones), trust anchors and CRLs that `config` names.
    pub(crate) fn load(home: &Path, config: &Config) -> Result<Self, StartError> {
        Self::parse(home, read_files(home, config)?)
    }

    /// Records in the ledger each of these files whose content differs from what it last
    /// recorded, by the digest of the bytes loaded.
    pub(crate) fn record(&self, store: &Store) -> Result<(), StoreError> {
        for file in &self.files {
            crate::tenant::checkpoints::record_config_file(
                store,
                &file.what,
                &file.path,
                &file.sha256,
            )?;
        }
        Ok(())
    }

    /// Checks the files [`read_files`] read, and keeps what they are with their digests.
    fn parse(home: &Path, files: Vec<TrustFile>) -> Result<Self, StartError> {
        let error = |file: &TrustFile, e: &dyn std::fmt::Display| file_error(home, &file.path, e);
        // `read_files` reads the directory (or the root authority) first.
        let (directory_file, rest) = files
            .split_first()
            .ok_or_else(|| file_error(home, Path::new("config.toml"), "no directory file"))?;
        let (mut anchors, mut crls, mut zone_files) = (Vec::new(), Vec::new(), Vec::new());
        for file in rest {
            match file.what {
                "trust-anchor" => {
                    anchors.extend(vdx_pki::parse_certs(&file.bytes).map_err(|e| error(file, &e))?)
                }
                "crl" => {
                    crls.extend(vdx_pki::parse_crls(&file.bytes).map_err(|e| error(file, &e))?)
                }
                _ => zone_files.push((file.path.clone(), file.bytes.as_slice())),
            }
        }
        let trust = TrustStore::new(anchors, Vec::new(), crls)
            .map_err(|e| file_error(home, Path::new("config.toml [trust]"), e))?;
        let mut digests: Vec<FileDigest> = files
            .iter()
            .map(|f| FileDigest {
                what: f.what.to_owned(),
                path: f.path.clone(),
                sha256: f.sha256.clone(),
            })
            .collect();
        let (directory, zones) = if directory_file.what == "directory" {
            let directory = IndexedDirectory::from_json(&directory_file.bytes)
                .map_err(|e| error(directory_file, &e))?;
            (directory, None)
        } else {
            let root = openssl::x509::X509::from_pem(&directory_file.bytes)
                .map_err(|e| error(directory_file, &e))?;
            let held = zones::check_files(home, root, &zone_files, &trust, crate::host::unix_now());
            let directory = held
                .set
                .directory()
                .map_err(|e| file_error(home, Path::new(crate::config::ZONES_DIR), e))?;
            // The ledger names each zone by its version and origin; a zone left out, by file.
            for digest in digests.iter_mut().filter(|d| d.what == "zone") {
                let name = digest
                    .path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                if let (Some(zone), Some(origin)) = (held.set.get(name), held.origins.get(name)) {
                    digest.what = zones::zone_record(name, zone.version(), &origin.from);
                }
            }
            (directory, Some(held))
        };
        Ok(Self {
            trust: Arc::new(trust),
            directory,
            zones,
            files: digests,
        })
    }

    /// These settings with zone file `file` (its ledger name, path and digest) taken up: the
    /// zones and the directory they make replaced.
    pub(crate) fn with_zone(
        &self,
        (what, path, sha256): (String, PathBuf, String),
        zones: Held,
        directory: IndexedDirectory,
    ) -> Arc<Self> {
        let mut files: Vec<FileDigest> = self
            .files
            .iter()
            .filter(|f| f.path != path)
            .cloned()
            .collect();
        files.push(FileDigest { what, path, sha256 });
        Arc::new(Self {
            trust: self.trust.clone(),
            directory,
            zones: Some(zones),
            files,
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
        let mut ours: Vec<_> = in_force
            .files
            .iter()
            .map(|f| (&f.path, &f.sha256))
            .collect();
        let mut read: Vec<_> = files.iter().map(|f| (&f.path, &f.sha256)).collect();
        ours.sort();
        read.sort();
        if ours == read {
            return Ok(in_force.summary(false));
        }
        let fresh = Trusted::parse(&self.home, files)?;
        let summary = fresh.summary(true);
        fresh.record(&self.own.store)?;
        self.put_in_force(Arc::new(fresh));
        tracing::info!(
            agencies = summary.agencies,
            crls = summary.crls,
            "trust settings reloaded"
        );
        Ok(summary)
    }
}

impl Host {
    /// Puts `fresh` in force: new handshakes, documents and receipts are checked against it at
    /// once, established connections are checked again, and the outbox looks at its queue again
    /// (a next hop may have become reachable).
    pub(crate) fn put_in_force(&self, fresh: Arc<Trusted>) {
        self.trusted.store(fresh);
        self.reloaded.send_modify(|generation| *generation += 1);
        self.wake_outbox.notify_one();
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
