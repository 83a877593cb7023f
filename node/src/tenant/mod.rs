//! One agency served by the node (DESIGN §1): its organ code, signing and encryption keys, store
//! namespace (records, số đến series, ledger and checkpoints), uploads and submissions, and its
//! local API users. A one-agency node is a host with one tenant, the agency `config.toml` names;
//! `vdx tenant add` adds others (`tenants/<code>/tenant.toml`) while the node runs.
//!
//! A tenant knows nothing of the host: what it needs of the host's shared state (the trust
//! settings, the scratch directory, limits) is handed to each operation.

pub mod audit;
pub(crate) mod checkpoints;
pub mod clerk;
pub mod compose;
pub mod inbox;
pub mod receipts;
pub mod uploads;
pub mod witness;
pub mod workflow;

use std::path::Path;

use openssl::x509::X509;
use tokio::sync::{watch, Notify};
use vdx_crypto::PrivateKey;
use vdx_protocol::OrganCode;
use zeroize::Zeroizing;

use crate::config::{resolve, Config, TenantConfig, Users};
use crate::host::trusted::Trusted;
use crate::host::{file_error, read, StartError};
use crate::store::{Database, Store};
use crate::tenant::audit::Auditor;
use crate::tenant::compose::{Composer, SubmissionLocks};
use crate::tenant::inbox::Inbox;
use crate::tenant::receipts::ReceiptSigner;
use crate::tenant::uploads::Uploads;

/// What a tenant is made from: the host's own agency (`config.toml`) or an added one
/// (`tenant.toml`).
pub(crate) struct Spec {
    pub(crate) code: OrganCode,
    pub(crate) name: String,
    sign_cert: std::path::PathBuf,
    sign_key: std::path::PathBuf,
    enc_cert: std::path::PathBuf,
    enc_key: std::path::PathBuf,
    /// Its local API users.
    pub(crate) users: Users,
    /// The host's own agency: the home's owner is its admin, as on a one-agency node.
    pub(crate) owned: bool,
    /// Its restore anchor, outside the store (`store::restore`).
    anchor: std::path::PathBuf,
}

impl Spec {
    /// The host's own agency, its first tenant.
    pub(crate) fn first(config: &Config) -> Self {
        Self {
            code: config.organ_code.clone(),
            name: config.name.clone(),
            sign_cert: config.keys.sign_cert.clone(),
            sign_key: config.keys.sign_key.clone(),
            enc_cert: config.keys.enc_cert.clone(),
            enc_key: config.keys.enc_key.clone(),
            users: config.api.users(),
            owned: true,
            anchor: config.anchor.clone(),
        }
    }

    /// An agency added with `vdx tenant add`; its anchor beside the host's, named by its code.
    pub(crate) fn added(config: &Config, tenant: TenantConfig) -> Self {
        let stem = config
            .anchor
            .file_stem()
            .map_or_else(|| "anchor".into(), |s| s.to_string_lossy().into_owned());
        let anchor = config
            .anchor
            .with_file_name(format!("{stem}-{}.json", tenant.organ_code));
        Self {
            code: tenant.organ_code,
            name: tenant.name,
            sign_cert: tenant.keys.sign_cert,
            sign_key: tenant.keys.sign_key,
            enc_cert: tenant.keys.enc_cert,
            enc_key: tenant.keys.enc_key,
            users: tenant.api,
            owned: false,
            anchor,
        }
    }

    /// Every tenant `home` defines: the host's own agency first, then the added ones.
    pub(crate) fn all(home: &Path, config: &Config) -> Result<Vec<Self>, StartError> {
        let mut all = vec![Self::first(config)];
        for tenant in TenantConfig::all(home)? {
            if tenant.organ_code != config.organ_code {
                all.push(Self::added(config, tenant));
            }
        }
        Ok(all)
    }
}

/// One agency, loaded: keys decrypted, store namespace open.
pub(crate) struct Tenant {
    pub(crate) code: OrganCode,
    pub(crate) name: String,
    pub(crate) store: Store,
    pub(crate) uploads: Uploads,
    pub(crate) signer: ReceiptSigner,
    pub(crate) enc_cert: X509,
    pub(crate) enc_key: PrivateKey,
    /// One submission at a time per client-chosen message id.
    pub(crate) submissions: SubmissionLocks,
    /// The signing certificate and the trust anchors, PEM: the chain audit bundles carry.
    pub(crate) chain_pem: String,
    pub(crate) users: Users,
    /// See [`Spec::owned`].
    pub(crate) owned: bool,
    /// Wakes its inbox loop (something arrived).
    pub(crate) wake_inbox: Notify,
    /// Set when the node stops or the tenant is removed: its loops end.
    pub(crate) stop: watch::Sender<bool>,
    /// Notified once a peer and this node compared checkpoints (see `host::inbox_loop`).
    pub(crate) peers_compared: Notify,
    pub(crate) peers_compared_once: std::sync::atomic::AtomicBool,
}

impl Tenant {
    /// Loads `spec`: its keys (decrypted with `pass`), its namespace of `database` (anchored
    /// at its restore anchor) and its uploads.
    pub(crate) fn load(
        home: &Path,
        config: &Config,
        spec: Spec,
        database: &Database,
        pass: Option<&Zeroizing<String>>,
        now: u64,
    ) -> Result<Self, StartError> {
        let store = database
            .tenant(&spec.code)?
            .anchor_at(&resolve(home, &spec.anchor), now)?;
        if let Some(restored) = store.restored()? {
            tracing::error!(tenant = %spec.code, finding = %restored.describe(), "STORE RESTORED: numbering and sending stop until an admin runs `vdx acknowledge-restore`");
        }
        let uploads = Uploads::open(&store.files().join("uploads"))?;
        let signer = ReceiptSigner::new(
            spec.code.clone(),
            load_cert(home, &spec.sign_cert)?,
            load_key(home, &spec.sign_key, pass)?,
        )?;
        let chain_pem = chain(home, config, &signer, &spec.sign_cert)?;
        Ok(Self {
            enc_cert: load_cert(home, &spec.enc_cert)?,
            enc_key: load_key(home, &spec.enc_key, pass)?,
            code: spec.code,
            name: spec.name,
            store,
            uploads,
            signer,
            submissions: SubmissionLocks::default(),
            chain_pem,
            users: spec.users,
            owned: spec.owned,
            wake_inbox: Notify::new(),
            stop: watch::Sender::new(false),
            peers_compared: Notify::new(),
            peers_compared_once: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Composes and queues this agency's dispatches, with the host's trust settings and scratch.
    pub(crate) fn composer<'a>(
        &'a self,
        trusted: &'a Trusted,
        scratch: &'a Path,
        default_expiry_days: u32,
        next_hop: &'a (dyn Fn(&OrganCode) -> Option<OrganCode> + Sync + 'a),
    ) -> Composer<'a> {
        Composer {
            organ_code: &self.code,
            name: &self.name,
            signer: &self.signer,
            directory: &trusted.directory,
            uploads: &self.uploads,
            store: &self.store,
            scratch,
            default_expiry_days,
            next_hop,
        }
    }

    /// Sends this agency's notices about its dispatches.
    pub(crate) fn clerk(&self) -> crate::tenant::clerk::Clerk<'_> {
        crate::tenant::clerk::Clerk {
            store: &self.store,
            signer: &self.signer,
        }
    }

    /// Opens, checks and numbers what arrived for this agency.
    pub(crate) fn inbox<'a>(&'a self, trusted: &'a Trusted) -> Inbox<'a> {
        Inbox {
            store: &self.store,
            signer: &self.signer,
            enc_cert: &self.enc_cert,
            enc_key: &self.enc_key,
            trust: &trusted.trust,
            directory: &trusted.directory,
        }
    }

    /// Answers the security officer's questions to this agency's ledger.
    pub(crate) fn auditor(&self) -> Auditor<'_> {
        Auditor {
            store: &self.store,
            signer: &self.signer,
            chain_pem: &self.chain_pem,
        }
    }

    /// Signs a checkpoint of the durable ledger unless one of that size exists.
    pub(crate) fn checkpoint(&self) -> Option<Vec<u8>> {
        self.signer.checkpoint(&self.store)
    }

    /// Whether this agency numbers and sends: not while a restore of its store waits for an
    /// admin's acknowledgement (`store::restore`).
    pub(crate) fn halted(&self) -> bool {
        !matches!(self.store.restored(), Ok(None))
    }

    /// A peer and this node have told each other which of their checkpoints they hold.
    pub(crate) fn peer_answered(&self) {
        self.peers_compared.notify_waiters();
        self.peers_compared_once
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The shutdown signal of this tenant's loops.
    pub(crate) fn stopping(&self) -> crate::host::Stop {
        crate::host::Stop::new(self.stop.subscribe())
    }
}

pub(crate) fn load_key(
    home: &Path,
    path: &Path,
    pass: Option<&Zeroizing<String>>,
) -> Result<PrivateKey, StartError> {
    PrivateKey::from_bytes(&read(home, path)?, pass.map(|p| p.as_bytes()))
        .map_err(|e| file_error(home, path, e))
}

pub(crate) fn load_cert(home: &Path, path: &Path) -> Result<X509, StartError> {
    X509::from_pem(&read(home, path)?).map_err(|e| file_error(home, path, e))
}

/// The signer's certificate, then the trust anchors (PEM): what an audit bundle carries.
fn chain(
    home: &Path,
    config: &Config,
    signer: &ReceiptSigner,
    sign_cert: &Path,
) -> Result<String, StartError> {
    let leaf = signer
        .certificate()
        .to_pem()
        .map_err(|e| file_error(home, sign_cert, e))?;
    let mut chain = String::from_utf8_lossy(&leaf).into_owned();
    for path in &config.trust.anchors {
        chain.push_str(&String::from_utf8_lossy(&read(home, path)?));
    }
    Ok(chain)
}

/// The signing identity of `code` on the node in `home` (the host's own agency when `None`), as
/// the daemon loads it, and its chain: for offline audits of a stopped node.
pub(crate) fn signer_of(
    home: &Path,
    config: &Config,
    code: Option<&OrganCode>,
    pass: Option<&Zeroizing<String>>,
) -> Result<(OrganCode, ReceiptSigner, String), StartError> {
    let spec = match code {
        None => Spec::first(config),
        Some(code) if *code == config.organ_code => Spec::first(config),
        Some(code) => match TenantConfig::load(home, code)?
            .map_or_else(|| removed(home, code), |t| Ok(Some(t)))?
        {
            Some(tenant) => Spec::added(config, tenant),
            None => {
                return Err(StartError::File {
                    path: TenantConfig::dir(home, code),
                    reason: format!("{code} is not a tenant of this node"),
                })
            }
        },
    };
    let signer = ReceiptSigner::new(
        spec.code.clone(),
        load_cert(home, &spec.sign_cert)?,
        load_key(home, &spec.sign_key, pass)?,
    )?;
    let chain = chain(home, config, &signer, &spec.sign_cert)?;
    Ok((spec.code, signer, chain))
}

/// A removed tenant's file (`tenant.toml.removed`, see `host::retire_tenant`), if any: its
/// ledger is kept for audit, and its signing key is what an offline audit needs.
fn removed(home: &Path, code: &OrganCode) -> Result<Option<TenantConfig>, StartError> {
    let path =
        TenantConfig::dir(home, code).join(format!("{}.removed", crate::config::TENANT_FILE));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_error(home, &path, e)),
    };
    let tenant: TenantConfig = toml::from_str(&text).map_err(|e| file_error(home, &path, e))?;
    if tenant.organ_code != *code {
        return Err(file_error(
            home,
            &path,
            format!("names {}, not {code}", tenant.organ_code),
        ));
    }
    Ok(Some(tenant))
}
