//! When the ledger gets signed checkpoints (`docs/ledger.md`): at least every 64 entries or
//! every 10 seconds while entries are added, for receipts once a second at most (`receipts`), and
//! at stop. And the
//! `config` entries: keys, configuration and directory changes, found by digest at start (they
//! are edited while the daemon is stopped).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use vdx_protocol::hex;

use crate::config::{resolve, Config};
use crate::host::trusted::Trusted;
use crate::host::{StartError, Stop};
use crate::store::{Store, StoreError};
use crate::tenant::Tenant;

/// Entries after which a checkpoint is signed at the latest.
const EVERY_ENTRIES: u64 = 64;
/// Time after which new entries get a checkpoint at the latest.
const EVERY: Duration = Duration::from_secs(10);
/// How often the ledger's size is looked at.
const LOOK: Duration = Duration::from_millis(500);

/// Signs checkpoints on the schedule until the node stops.
pub(crate) async fn run(tenant: Arc<Tenant>, mut stop: Stop) {
    let mut signed = latest_size(&tenant.store);
    let mut since = Instant::now();
    while !stop.is_set() {
        let durable = tenant.store.durable_ledger_size();
        if durable >= signed + EVERY_ENTRIES || (durable > signed && since.elapsed() >= EVERY) {
            let worker = tenant.clone();
            if let Ok(Some(_)) = tokio::task::spawn_blocking(move || worker.checkpoint()).await {
                signed = durable;
                since = Instant::now();
            }
        } else if durable == signed {
            since = Instant::now();
        }
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(LOOK) => {}
        }
    }
}

fn latest_size(store: &Store) -> u64 {
    store
        .latest_checkpoint()
        .ok()
        .flatten()
        .map_or(0, |(size, _)| size)
}

/// Records a `config` entry for each of the node's configuration files, keys' certificates,
/// directory, trust anchors and CRLs whose content differs from what the ledger last recorded;
/// the trust files as `trusted` loaded them.
pub(crate) fn record_config_changes(
    home: &Path,
    config: &Config,
    trusted: &Trusted,
    store: &Store,
) -> Result<(), StartError> {
    let files = [
        ("config", Path::new(crate::config::FILE_NAME)),
        ("sign-cert", config.keys.sign_cert.as_path()),
        ("enc-cert", config.keys.enc_cert.as_path()),
        ("tls-cert", config.keys.tls_cert.as_path()),
    ];
    for (what, path) in files {
        record_config_file(store, what, path, &file_digest(home, path))?;
    }
    Ok(trusted.record(store)?)
}

/// Records, in an added tenant's own ledger, a `config` entry for its `tenant.toml` and its
/// certificates whose content changed.
pub(crate) fn record_tenant_keys(home: &Path, tenant: &Tenant) -> Result<(), StartError> {
    let Some(file) = crate::config::TenantConfig::load(home, &tenant.code)? else {
        return Ok(());
    };
    let own = crate::config::TenantConfig::dir(Path::new(""), &tenant.code)
        .join(crate::config::TENANT_FILE);
    let files = [
        ("tenant", own.as_path()),
        ("sign-cert", file.keys.sign_cert.as_path()),
        ("enc-cert", file.keys.enc_cert.as_path()),
    ];
    for (what, path) in files {
        record_config_file(&tenant.store, what, path, &file_digest(home, path))?;
    }
    Ok(())
}

/// The SHA-256 (hex) of the file at `path` (relative to `home`), or `absent`.
fn file_digest(home: &Path, path: &Path) -> String {
    match std::fs::read(resolve(home, path)) {
        Ok(bytes) => hex::encode(Sha256::digest(&bytes).as_slice()),
        Err(_) => "absent".to_owned(),
    }
}

/// Records a `config` entry for the file `what` at `path` (as `config.toml` names it) if its
/// SHA-256 (hex) differs from the one last recorded.
pub(crate) fn record_config_file(
    store: &Store,
    what: &str,
    path: &Path,
    sha256_hex: &str,
) -> Result<(), StoreError> {
    let name = format!("{what} {}", path.display());
    if store.record_config(&name, sha256_hex)? {
        tracing::info!(what = %name, sha256 = %sha256_hex, "configuration change recorded in the ledger");
    }
    Ok(())
}
