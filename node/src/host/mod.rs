//! The host: what the agencies a node serves share (DESIGN §1) — the QUIC endpoint and its TLS
//! identity, the trust settings and directory in force (`trusted`), the tenants hosted now, the
//! outbox scheduler's state, metrics and the status report — and `vdxd`'s main loop: listen for
//! peers (each offer taken into custody by the tenant it is for), run each tenant's loops (open
//! what arrives, sign checkpoints), work through the outbox, serve the local socket API, until
//! SIGTERM or SIGINT.

pub(crate) mod metrics;
pub(crate) mod status;
pub(crate) mod trusted;
pub(crate) mod zones;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use vdx_crypto::PrivateKey;
use vdx_pki::ValidatedSigner;
use vdx_protocol::receipt::ReceiptKind;
use vdx_protocol::wire::{ObjectKind, Offer, RejectCode};
use vdx_protocol::OrganCode;
use zeroize::Zeroizing;

use crate::config::{resolve, Config, TenantConfig};
use crate::delivery::outbox::Schedule;
use crate::host::trusted::Trusted;
use crate::net::tls::{client_config, server_config, PeerPolicy};
use crate::net::transfer::{receive_dispatch, ReceivePolicy};
use crate::routing::{self, Admitted, Here, Hop};
use crate::store::{Database, Record, Store};
use crate::tenant::inbox::Outcome;
use crate::tenant::receipts::ReceiptSigner;
use crate::tenant::{load_cert, load_key, Spec, Tenant};

/// How often the outbox is looked at when nothing wakes it.
const TICK: Duration = Duration::from_millis(500);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A file named by the configuration.
    #[error("{path}: {reason}")]
    File {
        /// Which.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// TLS setup.
    #[error(transparent)]
    Tls(#[from] crate::net::tls::TlsError),
    /// Receipt signing key.
    #[error(transparent)]
    Receipt(#[from] crate::tenant::receipts::ReceiptError),
    /// Binding the listen address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Largest receipt or notice accepted (they are a few KiB).
const MAX_REPLY_BYTES: u64 = 64 * 1024;
/// What a fan-out object may carry beyond a dispatch's limit: its member list and the
/// RecipientInfos of up to 4,096 members (`docs/broadcast.md` rule 5).
const MAX_FANOUT_EXTRA: u64 = (4 << 20) + 256 * 1024;

/// The shutdown signal as the loops see it: set once, seen by every loop whenever it looks (unlike a
/// notification, which a loop busy elsewhere at that moment would miss).
#[derive(Clone)]
pub(crate) struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    pub(crate) fn new(receiver: tokio::sync::watch::Receiver<bool>) -> Self {
        Self(receiver)
    }

    pub(crate) fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once the signal is set (at once if it already is).
    pub(crate) async fn wait(&mut self) {
        let _ = self.0.wait_for(|set| *set).await;
    }
}

/// The agencies the node hosts now, by organ code; replaced whole when one is added or removed.
#[derive(Clone, Default)]
pub(crate) struct Tenants {
    by_code: BTreeMap<OrganCode, Arc<Tenant>>,
    /// The same codes in order, for routing.
    codes: Vec<OrganCode>,
}

impl Tenants {
    fn insert(&mut self, tenant: Arc<Tenant>) {
        self.by_code.insert(tenant.code.clone(), tenant);
        self.codes = self.by_code.keys().cloned().collect();
    }

    fn remove(&mut self, code: &OrganCode) {
        self.by_code.remove(code);
        self.codes = self.by_code.keys().cloned().collect();
    }

    pub(crate) fn get(&self, code: &OrganCode) -> Option<&Arc<Tenant>> {
        self.by_code.get(code)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_code.values()
    }

    pub(crate) fn codes(&self) -> &[OrganCode] {
        &self.codes
    }

    pub(crate) fn len(&self) -> usize {
        self.codes.len()
    }
}

/// The host: what the node's tenants share (DESIGN §1) — the QUIC endpoint and its TLS identity,
/// the trust settings and directory, the scheduler, the database, metrics — and the tenants.
pub(crate) struct Host {
    pub(crate) config: Config,
    /// The sled database every tenant's store is a namespace of.
    pub(crate) database: Database,
    pub(crate) scratch: PathBuf,
    /// The node home: where the trust files are reloaded from.
    pub(crate) home: PathBuf,
    /// Trust anchors, CRLs and the directory in force (see `trusted`).
    pub(crate) trusted: Arc<ArcSwap<Trusted>>,
    /// Who may connect, checked against `trusted`.
    pub(crate) policy: Arc<PeerPolicy>,
    /// Counts reloads that changed something: connections are checked again when it moves.
    pub(crate) reloaded: tokio::sync::watch::Sender<u64>,
    /// Held by a reload from reading the files to putting them in force.
    pub(crate) reloading: std::sync::Mutex<()>,
    /// The outbox scheduler's state (peers, transfers in flight), also for the status report.
    pub(crate) schedule: Arc<std::sync::Mutex<Schedule>>,
    /// When this process started serving.
    pub(crate) started: time::OffsetDateTime,
    /// What went through since the start, for monitoring.
    pub(crate) metrics: crate::host::metrics::Metrics,
    /// Wakes the outbox loop (a new submission, a reply queued, a transfer finished).
    pub(crate) wake_outbox: Notify,
    /// Wakes the zone exchange: a zone was taken up, to be passed on at once.
    pub(crate) zones_changed: Notify,
    /// Zone exchanges answered at once: each may hold a 4 MiB frame.
    pub(crate) zone_streams: tokio::sync::Semaphore,
    /// Peers that asked for zones lately, by when: a zone taken up is passed on to them too.
    pub(crate) zone_askers: std::sync::Mutex<HashMap<OrganCode, std::time::Instant>>,
    /// Our QUIC endpoint (the outbox's and the witness checks' connections).
    pub(crate) endpoint: quinn::Endpoint,
    /// The host's own agency (`config.toml`'s): its TLS identity is the node's, its ledger the
    /// one peers witness over HELD/PROVE; never removed.
    pub(crate) own: Arc<Tenant>,
    /// Every agency hosted now, `own` included; replaced whole when one is added or removed.
    tenants: ArcSwap<Tenants>,
    /// Held while a tenant is added or removed.
    changing_tenants: std::sync::Mutex<()>,
    /// The passphrase of the keys, for tenants added while the node runs.
    pass: Option<Zeroizing<String>>,
    /// The node's shutdown signal, for the loops of tenants added later.
    stop: tokio::sync::watch::Receiver<bool>,
    /// The tenants' loops, awaited at shutdown before the last flush.
    loops: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Host {
    /// The trust settings in force; one snapshot serves a whole operation, even if a reload
    /// replaces them meanwhile.
    pub(crate) fn trusted(&self) -> Arc<Trusted> {
        self.trusted.load_full()
    }

    /// The agencies hosted now.
    pub(crate) fn tenants(&self) -> Arc<Tenants> {
        self.tenants.load_full()
    }

    /// Agency `code`, if hosted here now.
    pub(crate) fn tenant(&self, code: &OrganCode) -> Option<Arc<Tenant>> {
        self.tenants.load().get(code).cloned()
    }

    /// Where this node stands for routing: the host, its tenants now, and its relay.
    pub(crate) fn here<'a>(&'a self, tenants: &'a Tenants) -> Here<'a> {
        Here {
            host: &self.config.organ_code,
            tenants: tenants.codes(),
            relay: self.config.relay.as_ref(),
        }
    }

    /// The node an object goes to next as the outbox chooses it now: past the peers its
    /// scheduler counts as unreachable ([`Host::route_avoiding`]); our own agency is reached at
    /// our own endpoint.
    pub(crate) fn next_hop(&self, to: &OrganCode) -> OrganCode {
        match self.route_avoiding(to, &self.unreachable()).0 {
            Hop::Local(code) | Hop::Peer(code) => code,
        }
    }

    /// The peers the outbox's scheduler counts as unreachable now, which routing goes round.
    pub(crate) fn unreachable(&self) -> std::collections::HashSet<OrganCode> {
        self.schedule
            .lock()
            .map(|s| s.unreachable())
            .unwrap_or_default()
    }

    /// The sender's route check of the classification policy for a submission: a `tuyet-mat`
    /// dispatch goes to each recipient over a direct link, or through a relay `[policy]
    /// tuyet_mat_relays` names; every relay the outbox may turn to when one is unreachable
    /// ([`routing::hops`]) is checked, since the outbox does not know the classification. What
    /// the request gets wrong otherwise, composing reports.
    pub(crate) fn check_routes(
        &self,
        request: &crate::tenant::compose::SendRequest,
    ) -> Result<(), crate::tenant::compose::ComposeError> {
        let Ok(classification) = request.classification.parse() else {
            return Ok(());
        };
        let trusted = self.trusted();
        let tenants = self.tenants();
        let here = self.here(&tenants);
        for to in &request.to {
            let node = routing::node_of(&trusted.directory, to);
            for hop in routing::hops(&trusted.directory, &here, to) {
                crate::classification::may_cross(
                    classification,
                    to,
                    &node,
                    &hop,
                    &self.config.policy.tuyet_mat_relays,
                )?;
            }
        }
        Ok(())
    }

    /// Where an object to `to` goes next when the peers in `unreachable` are routed around where
    /// the directory names another relay ([`routing::next_hop_avoiding`]); with the peer it would
    /// have gone to otherwise, when that one was routed around.
    pub(crate) fn route_avoiding(
        &self,
        to: &OrganCode,
        unreachable: &std::collections::HashSet<OrganCode>,
    ) -> (Hop, Option<OrganCode>) {
        let tenants = self.tenants();
        let trusted = self.trusted();
        let here = self.here(&tenants);
        let hop = routing::next_hop_avoiding(&trusted.directory, &here, to, unreachable);
        if unreachable.is_empty() {
            return (hop, None);
        }
        match routing::next_hop(&trusted.directory, &here, to) {
            Hop::Peer(first) if hop != Hop::Peer(first.clone()) => (hop, Some(first)),
            _ => (hop, None),
        }
    }

    /// The route to `to` the directory implies ([`routing::route_to`]), refused when it loops or
    /// is longer than `[limits] max_hops`: checked at submission, before anything is sealed.
    pub(crate) fn route_to(&self, to: &OrganCode) -> Result<Vec<OrganCode>, routing::RouteError> {
        let tenants = self.tenants();
        routing::route_to(
            &self.trusted().directory,
            &self.here(&tenants),
            to,
            self.config.limits.max_hops,
        )
    }

    /// A peer's QUIC address from the directory: its own, or its host's.
    pub(crate) fn endpoint_of(&self, peer: &OrganCode) -> Option<String> {
        routing::endpoint_of(&self.trusted().directory, peer).map(str::to_owned)
    }

    /// Unix seconds now.
    pub(crate) fn now_secs(&self) -> u64 {
        unix_now()
    }

    /// Starts serving tenant `code`, added by `vdx tenant add` (its `tenant.toml` written) while
    /// the node runs: loads it, and starts its loops. Its directory entry comes with the reload
    /// the caller asks for.
    pub(crate) fn add_tenant(
        self: &Arc<Self>,
        code: &OrganCode,
    ) -> Result<Arc<Tenant>, StartError> {
        let _changing = self
            .changing_tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(tenant) = self.tenant(code) {
            return Ok(tenant);
        }
        let Some(added) = TenantConfig::load(&self.home, code)? else {
            return Err(StartError::File {
                path: TenantConfig::dir(&self.home, code),
                reason: format!("{code} has no tenant.toml: add it with `vdx tenant add`"),
            });
        };
        let spec = Spec::added(&self.config, added);
        let tenant = Arc::new(Tenant::load(
            &self.home,
            &self.config,
            spec,
            &self.database,
            self.pass.as_ref(),
            self.now_secs(),
        )?);
        crate::tenant::checkpoints::record_tenant_keys(&self.home, &tenant)?;
        let mut all = (*self.tenants()).clone();
        all.insert(tenant.clone());
        self.tenants.store(Arc::new(all));
        self.metrics.tenant(code);
        self.start_tenant(&tenant);
        tracing::info!(tenant = %code, name = %tenant.name, "tenant added");
        Ok(tenant)
    }

    /// Stops serving tenant `code`: refused for the host's own agency, and while its outgoing
    /// objects are queued unless `force`. Its data stays (the ledger is evidence).
    pub(crate) fn remove_tenant(&self, code: &OrganCode, force: bool) -> Result<(), RemoveError> {
        let _changing = self
            .changing_tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let tenant = self.tenant(code).ok_or(RemoveError::Unknown)?;
        if tenant.code == self.own.code {
            return Err(RemoveError::Own);
        }
        let queued = tenant.store.outbox()?.len();
        if queued > 0 && !force {
            return Err(RemoveError::Queued(queued));
        }
        let mut all = (*self.tenants()).clone();
        all.remove(code);
        self.tenants.store(Arc::new(all));
        let _ = tenant.stop.send(true);
        retire_tenant(&self.home, &self.database, code)?;
        tracing::warn!(tenant = %code, queued, "tenant removed; its ledger and data are kept");
        Ok(())
    }

    /// Starts `tenant`'s loops: opening what arrives, signing checkpoints.
    fn start_tenant(self: &Arc<Self>, tenant: &Arc<Tenant>) {
        // The node's stop reaches the tenant's loops through the tenant's own signal.
        let (mut node_stop, tenant_stop) = (self.stop.clone(), tenant.stop.clone());
        tokio::spawn(async move {
            let _ = node_stop.wait_for(|set| *set).await;
            let _ = tenant_stop.send(true);
        });
        let inbox = tokio::spawn(inbox_loop(self.clone(), tenant.clone(), tenant.stopping()));
        let checkpoints = tokio::spawn(crate::tenant::checkpoints::run(
            tenant.clone(),
            tenant.stopping(),
        ));
        let mut loops = self.loops.lock().unwrap_or_else(PoisonError::into_inner);
        loops.retain(|l| !l.is_finished());
        loops.extend([inbox, checkpoints]);
    }
}

/// Why a tenant was not removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    /// Not hosted here.
    #[error("no such tenant")]
    Unknown,
    /// The host's own agency.
    #[error("the host's own agency (config.toml's organ code) cannot be removed")]
    Own,
    /// Work waiting.
    #[error("{0} outgoing objects are still queued: wait for them, or remove with --force")]
    Queued(usize),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Its file.
    #[error("{0}")]
    File(String),
}

/// Marks tenant `code` of the node in `home` removed: its namespace retired (kept), its
/// `tenant.toml` renamed `tenant.toml.removed` so that it is not loaded again.
pub fn retire_tenant(
    home: &Path,
    database: &Database,
    code: &OrganCode,
) -> Result<(), RemoveError> {
    database.retire(code)?;
    let dir = TenantConfig::dir(home, code);
    let file = dir.join(crate::config::TENANT_FILE);
    if file.exists() {
        std::fs::rename(
            &file,
            dir.join(format!("{}.removed", crate::config::TENANT_FILE)),
        )
        .and_then(|()| std::fs::File::open(&dir)?.sync_all())
        .map_err(|e| RemoveError::File(format!("{}: {e}", file.display())))?;
    }
    Ok(())
}

impl crate::net::transfer::Custody for Arc<Tenant> {
    fn store(&self) -> &Store {
        &self.store
    }

    fn receipt(&self, record: &Record) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        self.signer
            .sign(
                ReceiptKind::Hop,
                record,
                now,
                self.signer.receipt_checkpoint(&self.store),
            )
            .unwrap_or_else(|e| {
                tracing::error!(tenant = %self.code, error = %e, "cannot sign a receipt");
                Vec::new()
            })
    }
}

/// A file the configuration names, its error naming it.
pub(crate) fn read(home: &Path, path: &Path) -> Result<Vec<u8>, StartError> {
    let path = resolve(home, path);
    std::fs::read(&path).map_err(|e| StartError::File {
        path,
        reason: e.to_string(),
    })
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A file named by the configuration, and what is wrong with it.
pub(crate) fn file_error(home: &Path, path: &Path, e: impl std::fmt::Display) -> StartError {
    StartError::File {
        path: resolve(home, path),
        reason: e.to_string(),
    }
}

/// The systemd credential holding the passphrase of the node's keys, for a service started with
/// `LoadCredential=vdx-key-passphrase:FILE` (`ops/systemd/vdxd@.service`).
pub const PASSPHRASE_CREDENTIAL: &str = "vdx-key-passphrase";

/// The passphrase of the node's keys: `VDX_KEY_PASSPHRASE` (which `vdxd` moved out of its
/// environment at start, [`crate::passphrase`]; read from the environment by other programs, e.g.
/// `vdx audit` on a stopped node), else the systemd credential (a file only this service can read,
/// never in the environment or the unit), else none.
fn key_passphrase() -> Result<Option<Zeroizing<String>>, StartError> {
    if let Some(pass) = crate::passphrase::take() {
        return Ok(Some(pass));
    }
    if let Ok(pass) = std::env::var(crate::passphrase::ENV) {
        return Ok(Some(Zeroizing::new(pass)));
    }
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return Ok(None);
    };
    let path = Path::new(&dir).join(PASSPHRASE_CREDENTIAL);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StartError::File {
                path,
                reason: e.to_string(),
            })
        }
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| StartError::File {
        path: path.clone(),
        reason: "the passphrase is not UTF-8".into(),
    })?;
    // The file's final newline, as an editor or `echo` leaves it, is not part of the passphrase.
    Ok(Some(Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).to_owned(),
    )))
}

/// The signing identity of agency `tenant` (the host's own when `None`) of the node in `home`,
/// as the daemon loads it (key decrypted as `key_passphrase` says), and the chain audit bundles
/// carry: for offline audits of a stopped node.
pub fn load_signer(
    home: &Path,
    tenant: Option<&OrganCode>,
) -> Result<(Config, ReceiptSigner, String), StartError> {
    let config = Config::load(home)?;
    let (_, signer, chain) =
        crate::tenant::signer_of(home, &config, tenant, key_passphrase()?.as_ref())?;
    Ok((config, signer, chain))
}

/// Makes the scratch directory, empty: what a crash left there was never acknowledged.
fn clear_scratch(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        std::fs::remove_file(entry?.path())?;
    }
    Ok(())
}

/// Runs the node in `home` until a termination signal; returns after a clean shutdown.
pub async fn run(home: &Path) -> Result<(), StartError> {
    crate::at_rest::restrict_umask();
    let config = Config::load(home)?;
    crate::at_rest::secure_home(home, &config)?;
    let trusted = Arc::new(ArcSwap::from_pointee(Trusted::load(home, &config)?));
    let data = resolve(home, &config.data_dir);
    let started = time::OffsetDateTime::now_utc();
    let now = started.unix_timestamp().max(0) as u64;
    let database = Database::open(&data, Some(&config.organ_code))?;
    let scratch = data.join("scratch");
    clear_scratch(&scratch).map_err(|e| file_error(home, &scratch, e))?;
    let pass = key_passphrase()?;
    let mut tenants = Tenants::default();
    for spec in Spec::all(home, &config)? {
        let tenant = Tenant::load(home, &config, spec, &database, pass.as_ref(), now)?;
        tenants.insert(Arc::new(tenant));
    }
    let own = tenants
        .get(&config.organ_code)
        .cloned()
        .ok_or_else(|| file_error(home, Path::new(crate::config::FILE_NAME), "no own agency"))?;
    let tls_chain = vec![load_cert(home, &config.keys.tls_cert)?];
    let tls_key = load_key(home, &config.keys.tls_key, pass.as_ref())?;
    crate::tenant::checkpoints::record_config_changes(home, &config, &trusted.load(), &own.store)?;
    for tenant in tenants.values().filter(|t| !t.owned) {
        crate::tenant::checkpoints::record_tenant_keys(home, tenant)?;
    }

    // Peers are accepted when the directory binds their TLS certificate to their organ code.
    let (for_trust, for_binding) = (trusted.clone(), trusted.clone());
    let policy = Arc::new(PeerPolicy::new(
        Box::new(move || for_trust.load().trust.clone()),
        Box::new(move |peer: &ValidatedSigner| {
            peer.organ_code().is_some_and(|code| {
                for_binding
                    .load()
                    .directory
                    .binds_tls(code, peer.certificate())
            })
        }),
    ));
    let listen_error = |source| StartError::Listen {
        addr: config.listen,
        source,
    };
    let udp = std::net::UdpSocket::bind(config.listen).map_err(listen_error)?;
    let mut endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::new(Arc::new(reset_key(&tls_key)?)),
        Some(server_config(&tls_chain, &tls_key, policy.clone())?),
        udp,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(listen_error)?;
    endpoint.set_default_client_config(client_config(&tls_chain, &tls_key, policy.clone())?);
    let (socket, socket_path) = crate::api::bind(home).map_err(|e| StartError::File {
        path: home.join(crate::api::SOCKET_NAME),
        reason: e.to_string(),
    })?;
    let metrics_listener = match config.api.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { addr, source })?;
            let at = listener.local_addr().unwrap_or(addr);
            if !at.ip().is_loopback() {
                tracing::warn!(%at, "metrics served beyond loopback without authentication: keep the port behind a firewall");
            }
            tracing::info!(%at, "metrics served over TCP");
            Some(listener)
        }
        None => None,
    };
    tracing::info!(organ_code = %config.organ_code, tenants = tenants.len(), listen = %config.listen, socket = %socket_path.display(), "vdxd started");

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let node = Arc::new(Host {
        config,
        database,
        scratch,
        home: home.to_owned(),
        trusted,
        policy,
        reloaded: tokio::sync::watch::Sender::new(0),
        reloading: std::sync::Mutex::new(()),
        schedule: Arc::default(),
        started,
        metrics: crate::host::metrics::Metrics::new(),
        wake_outbox: Notify::new(),
        zones_changed: Notify::new(),
        zone_streams: tokio::sync::Semaphore::new(crate::net::zones::ANSWERED_AT_ONCE),
        zone_askers: Default::default(),
        endpoint: endpoint.clone(),
        own,
        tenants: ArcSwap::from_pointee(tenants),
        changing_tenants: std::sync::Mutex::new(()),
        pass,
        stop: stop.clone(),
        loops: std::sync::Mutex::default(),
    });
    let accept = tokio::spawn(accept_loop(endpoint.clone(), node.clone()));
    let api = tokio::spawn(crate::api::serve(socket, node.clone(), home.to_owned()));
    let metrics =
        metrics_listener.map(|l| tokio::spawn(crate::api::serve_metrics(l, node.clone())));
    for tenant in node.tenants().values() {
        node.metrics.tenant(&tenant.code);
        node.start_tenant(tenant);
    }
    tokio::spawn(ask_peers_at_start(node.clone()));
    let reloads = tokio::spawn(crate::host::trusted::watch(
        node.clone(),
        Stop(stop.clone()),
    ));
    let zones = tokio::spawn(crate::net::zones::run(
        endpoint.clone(),
        node.clone(),
        Stop(stop.clone()),
    ));
    let outbox = tokio::spawn(crate::delivery::outbox::run(
        endpoint.clone(),
        node.clone(),
        Stop(stop),
    ));

    shutdown_signal().await;
    tracing::info!("stopping: no new transfers; what is on disk stays");
    let _ = stop_tx.send(true);
    api.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    let _ = std::fs::remove_file(&socket_path);
    endpoint.close(0u32.into(), b"shutting down");
    accept.abort();
    let _ = outbox.await;
    let loops = std::mem::take(&mut *node.loops.lock().unwrap_or_else(PoisonError::into_inner));
    for running in loops {
        let _ = running.await;
    }
    let _ = reloads.await;
    let _ = zones.await;
    endpoint.wait_idle().await;
    node.database.flush()?;
    for tenant in node.tenants().values() {
        tenant.checkpoint();
        tenant.store.anchor_latest()?;
    }
    tracing::info!("vdxd stopped");
    Ok(())
}

/// The key of QUIC stateless resets, derived from the node's TLS key so that it survives a
/// restart: peers still holding a connection to the previous process are told at once that it is
/// gone (and reconnect) instead of waiting out the idle timeout.
fn reset_key(tls_key: &PrivateKey) -> Result<ring::hmac::Key, StartError> {
    use sha2::{Digest, Sha256};
    let key = tls_key.to_pkcs8_pem(None).map_err(|e| StartError::File {
        path: PathBuf::from("keys/tls.key"),
        reason: e.to_string(),
    })?;
    let secret: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new(
        Sha256::new()
            .chain_update(b"vdx/1 stateless reset key\n")
            .chain_update(key.as_slice())
            .finalize()
            .into(),
    );
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &*secret))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}

/// Takes incoming connections: each attempt is first judged by `admission` (Retry, refuse or
/// ignore what a flood sends, before any state is kept), then its handshake runs, for at most
/// `limits.handshake_timeout_secs`, in its own task, which serves the connection's streams.
async fn accept_loop(endpoint: quinn::Endpoint, node: Arc<Host>) {
    use crate::net::admission::{Attempt, Caps, Decision, Shared};
    let limits = &node.config.limits;
    let admission = Shared::new(Caps {
        max_handshakes: limits.max_handshakes as usize,
        max_handshakes_per_ip: limits.max_handshakes_per_ip as usize,
        max_connections_per_ip: limits.max_connections_per_ip as usize,
        retry_from_handshakes: limits.retry_from_handshakes as usize,
    });
    let handshake_timeout = Duration::from_secs(limits.handshake_timeout_secs.into());
    while let Some(incoming) = endpoint.accept().await {
        let attempt = Attempt {
            ip: incoming.remote_address().ip(),
            validated: incoming.remote_address_validated(),
        };
        let (decision, handshake) = admission.admit(attempt);
        node.metrics.handshake_turned_away(decision);
        let Some(handshake) = handshake else {
            match decision {
                // Only a validated attempt cannot be sent a Retry, and those are never retried.
                Decision::Retry => {
                    if let Err(e) = incoming.retry() {
                        e.into_incoming().ignore();
                    }
                }
                Decision::Refuse => incoming.refuse(),
                Decision::Ignore | Decision::Accept => incoming.ignore(),
            }
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            // Subscribed before the handshake: a reload during it is seen, and checked, after.
            let mut reloaded = node.reloaded.subscribe();
            let mut recheck = tokio::time::interval_at(
                tokio::time::Instant::now() + crate::host::trusted::RECHECK_EVERY,
                crate::host::trusted::RECHECK_EVERY,
            );
            // Dropping an unfinished handshake closes it; `handshake` gives its slot back.
            let conn = match tokio::time::timeout(handshake_timeout, incoming).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    node.metrics.handshake_failed();
                    tracing::warn!(error = %e, "connection refused");
                    return;
                }
                Err(_) => {
                    node.metrics.handshake_failed();
                    tracing::warn!(remote = %attempt.ip, "handshake timed out");
                    return;
                }
            };
            let Some(_counted) = handshake.established() else {
                conn.close(2u32.into(), b"too many connections from this address");
                return;
            };
            let Some(peer) = crate::net::tls::peer_certificate(&conn)
                .and_then(|cert| vdx_pki::organ_code(&cert))
                .and_then(|code| code.parse::<OrganCode>().ok())
            else {
                conn.close(1u32.into(), b"no organ code in the peer certificate");
                return;
            };

            loop {
                let (send, recv) = tokio::select! {
                    stream = conn.accept_bi() => match stream {
                        Ok(stream) => stream,
                        Err(_) => return,
                    },
                    // After a reload, and from time to time (a certificate expires, a CRL goes
                    // stale, with no file changed): the peer must still pass.
                    _ = async { tokio::select! {
                        Ok(()) = reloaded.changed() => {}
                        _ = recheck.tick() => {}
                    } } => {
                        if crate::host::trusted::drop_if_untrusted(&node, &conn, peer.as_str()) {
                            return;
                        }
                        continue;
                    }
                };
                let (node, peer) = (node.clone(), peer.clone());
                tokio::spawn(async move {
                    match receive_dispatch(send, recv, node.as_ref(), &peer).await {
                        Ok(Some(record)) => {
                            node.metrics.arrival("stored");
                            tracing::info!(id = %record.id, from = %record.from, to = %record.to, size = record.size, kind = ?record.kind, "object received");
                            node.wake_inbox_of(&record);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            node.metrics.arrival("failed");
                            tracing::warn!(error = %e, "incoming transfer failed");
                        }
                    }
                });
            }
        });
    }
}

impl Host {
    /// Wakes the inbox of the tenant that took custody of `record` (its recipient, else the
    /// relays among our tenants).
    pub(crate) fn wake_inbox_of(&self, record: &Record) {
        match self.tenant(&record.to) {
            Some(tenant) => tenant.wake_inbox.notify_one(),
            None => self
                .tenants()
                .values()
                .for_each(|t| t.wake_inbox.notify_one()),
        }
    }
}

impl ReceivePolicy for Host {
    type Custody<'a> = Arc<Tenant>;

    fn admit(&self, offer: &Offer, peer: &OrganCode) -> Result<Arc<Tenant>, (RejectCode, String)> {
        // Who may hand it over and which of our tenants takes it: `routing::admit`. One snapshot
        // of the directory (and of the tenants) decides the whole offer, even if a reload lands
        // meanwhile.
        let trusted = self.trusted();
        let tenants = self.tenants();
        let here = Here {
            host: &self.config.organ_code,
            tenants: tenants.codes(),
            relay: self.config.relay.as_ref(),
        };
        let custody = if offer.kind == ObjectKind::FanOut {
            // Addressed to this node, which splits it and admits each member then
            // (`docs/broadcast.md` rules 5-6); its sender must be known.
            if offer.to != self.config.organ_code {
                return Err((
                    RejectCode::NotForUs,
                    format!(
                        "a fan-out object for {} is not for {}",
                        offer.to, self.config.organ_code
                    ),
                ));
            }
            if trusted.directory.get(offer.from.as_str()).is_none() {
                return Err((
                    RejectCode::UnknownSender,
                    format!("{} is not in the directory", offer.from),
                ));
            }
            Some(self.own.clone())
        } else {
            match routing::admit(&trusted.directory, &here, peer, &offer.from, &offer.to)? {
                Admitted::Deliver(code) | Admitted::Relay { by: code } => {
                    tenants.get(&code).cloned()
                }
            }
        }
        .ok_or_else(|| {
            (
                RejectCode::NotForUs,
                format!("{} is not served by {}", offer.to, self.config.organ_code),
            )
        })?;
        routing::check_hops(offer.hops, self.config.limits.max_hops)?;
        let limit = match offer.kind {
            ObjectKind::Dispatch => self.config.limits.max_dispatch_bytes,
            ObjectKind::FanOut => self.config.limits.max_dispatch_bytes + MAX_FANOUT_EXTRA,
            _ => MAX_REPLY_BYTES,
        };
        if offer.size > limit {
            return Err((
                RejectCode::TooLarge,
                format!("{} bytes exceed the limit of {limit}", offer.size),
            ));
        }
        if offer.expires != 0 && offer.expires < self.now() {
            return Err((RejectCode::Expired, "the dispatch has expired".into()));
        }
        Ok(custody)
    }

    fn ledger(&self) -> &Store {
        &self.own.store
    }

    fn now(&self) -> u64 {
        self.now_secs()
    }

    fn refused(&self, code: RejectCode) {
        self.metrics.offer_refused(code.name());
    }

    fn zones_for(
        &self,
        peer: &OrganCode,
        theirs: &[(String, u64)],
    ) -> (Vec<Vec<u8>>, Vec<(String, u64)>) {
        // A peer that asks is passed each zone taken up while it keeps asking.
        if self.config.zones.is_some() {
            self.zone_askers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(peer.clone(), std::time::Instant::now());
        }
        self.zone_answer(theirs)
    }

    fn zone_received(&self, peer: &OrganCode, file: &[u8]) {
        // Checking a zone and keeping it (signature, certificates, fsync) blocks: off the
        // runtime's async threads, so that handshakes and transfers go on meanwhile.
        tokio::task::block_in_place(|| crate::net::zones::take(self, peer, file));
    }

    fn zone_streams(&self) -> Option<&tokio::sync::Semaphore> {
        Some(&self.zone_streams)
    }

    fn held(&self, peer: &OrganCode, note: &[u8]) {
        self.own.peer_answered();
        crate::tenant::witness::compare_own(self, peer.as_str(), note);
    }
}

/// How long the inbox waits at start for a peer to compare checkpoints with, before it numbers
/// anything: a home restored whole (anchor included) is noticed only by its peers.
const PEERS_GRACE: Duration = Duration::from_secs(10);
/// Peers asked at start which of our checkpoints they hold.
const PEERS_ASKED_AT_START: usize = 8;

/// At start: compares checkpoints with the peers whose checkpoints we hold (the ones we worked
/// with), a few at once, so that a restore is noticed before anything is numbered.
async fn ask_peers_at_start(node: Arc<Host>) {
    let peers: Vec<OrganCode> = match node.own.store.witnessed_origins(PEERS_ASKED_AT_START) {
        Ok(origins) => origins
            .iter()
            .filter_map(|origin| origin.strip_prefix("vdx/")?.parse().ok())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the peers to compare checkpoints with");
            return;
        }
    };
    let mut asked = tokio::task::JoinSet::new();
    for peer in peers {
        let node = node.clone();
        asked.spawn(async move {
            if let Err(e) = crate::delivery::outbox::connect(&node.endpoint, &node, &peer).await {
                tracing::debug!(%peer, error = %e, "peer not reached at start");
            }
        });
    }
    while asked.join_next().await.is_some() {}
}

/// Opens what arrived for `tenant`, oldest most-urgent first; repeats whatever a crash
/// interrupted; forwards what it relays.
async fn inbox_loop(node: Arc<Host>, tenant: Arc<Tenant>, mut stop: Stop) {
    let compared = tenant.peers_compared.notified();
    tokio::pin!(compared);
    compared.as_mut().enable();
    if !tenant
        .peers_compared_once
        .load(std::sync::atomic::Ordering::Acquire)
        && !tenant
            .store
            .witnessed_origins(1)
            .map(|o| o.is_empty())
            .unwrap_or(true)
    {
        tokio::select! {
            _ = stop.wait() => return,
            _ = compared => {}
            _ = tokio::time::sleep(PEERS_GRACE) => {}
        }
    }
    let store = &tenant.store;
    while !stop.is_set() {
        // After a restore nothing is opened (numbered) or relayed until it is acknowledged;
        // arrivals wait, stored.
        let arrivals = if tenant.halted() {
            Vec::new()
        } else {
            store.arrivals().unwrap_or_else(|e| {
                tracing::error!(tenant = %tenant.code, error = %e, "cannot read the arrivals");
                Vec::new()
            })
        };
        for record in arrivals {
            if tenant.halted() || stop.is_set() {
                // A peer has just shown the store was restored: nothing more is numbered.
                break;
            }
            if record.kind == ObjectKind::FanOut && record.to == tenant.code {
                split_fanout(&node, &tenant, record).await;
                continue;
            }
            if record.to != tenant.code {
                match store.forward(record.id) {
                    Ok(r) => {
                        node.metrics.processed(&tenant.code, "relayed");
                        tracing::info!(tenant = %tenant.code, id = %r.id, from = %r.from, to = %r.to, "relaying");
                    }
                    Err(e) => {
                        node.metrics.processed(&tenant.code, "error");
                        tracing::error!(tenant = %tenant.code, id = %record.id, error = %e, "cannot queue for relaying");
                    }
                }
                node.wake_outbox.notify_one();
                continue;
            }
            let (worker, trusted, id) = (tenant.clone(), node.trusted(), record.id);
            let done = tokio::task::spawn_blocking(move || {
                worker
                    .inbox(&trusted)
                    .process(&record, time::OffsetDateTime::now_utc())
            })
            .await;
            let tenant_code = &tenant.code;
            match done {
                Ok(Ok(Outcome::Registered(r))) => {
                    node.metrics.processed(tenant_code, "registered");
                    tracing::info!(tenant = %tenant_code, id = %r.id, from = %r.from, number = ?r.incoming_number.map(|n| n.to_string()), "dispatch registered");
                }
                Ok(Ok(Outcome::Refused(r))) => {
                    node.metrics.processed(tenant_code, "refused");
                    tracing::warn!(tenant = %tenant_code, id = %r.id, from = %r.from, reason = r.reason().unwrap_or(""), "arrival refused");
                }
                Ok(Ok(Outcome::KeptAside(r))) => {
                    node.metrics.processed(tenant_code, "kept_aside");
                    tracing::error!(tenant = %tenant_code, id = %r.id, from = %r.from, reason = r.reason().unwrap_or(""), "arrival kept aside: refused to its sender, kept for the operator");
                }
                Ok(Ok(Outcome::Applied(r))) => {
                    node.metrics.processed(tenant_code, "reply");
                    tracing::info!(tenant = %tenant_code, id = %r.id, to = %r.to, status = r.status(), "reply applied");
                }
                Ok(Err(e)) => {
                    node.metrics.processed(tenant_code, "error");
                    tracing::error!(tenant = %tenant_code, %id, error = %e, "cannot process an arrival; it is tried again");
                    // Our own failure, not the object's: it does not count towards keeping it aside.
                    if let Err(e) = store.forgive_open(id) {
                        tracing::error!(tenant = %tenant_code, %id, error = %e, "opening attempt not given back");
                    }
                }
                Err(e) => {
                    node.metrics.processed(tenant_code, "error");
                    tracing::error!(tenant = %tenant_code, error = %e, "arrival processing failed");
                }
            }
            node.wake_outbox.notify_one();
        }
        tokio::select! {
            _ = stop.wait() => return,
            _ = tenant.wake_inbox.notified() => {}
            _ = tokio::time::sleep(TICK * 10) => {}
        }
    }
}

/// Splits a fan-out object addressed to this node (`delivery::fanout`), off the async threads;
/// one that can never split (malformed) is kept aside for the operator, and any other failure
/// is tried again on the next pass.
async fn split_fanout(node: &Arc<Host>, tenant: &Tenant, record: Record) {
    let (host, id, from) = (node.clone(), record.id, record.from.clone());
    let done =
        tokio::task::spawn_blocking(move || crate::delivery::fanout::split(&host, &record)).await;
    match done {
        Ok(Ok(parts)) => {
            node.metrics.processed(&tenant.code, "split");
            tracing::info!(tenant = %tenant.code, %id, %from, parts, "fan-out split");
        }
        Ok(Err(e)) if e.is_permanent() => {
            node.metrics.processed(&tenant.code, "kept_aside");
            tracing::error!(tenant = %tenant.code, %id, %from, error = %e, "fan-out kept aside: it cannot be split");
            if let Err(e) = tenant.store.keep_aside(id, e.to_string()) {
                tracing::error!(tenant = %tenant.code, %id, error = %e, "cannot keep it aside");
            }
        }
        Ok(Err(e)) => {
            node.metrics.processed(&tenant.code, "error");
            tracing::error!(tenant = %tenant.code, %id, error = %e, "cannot split a fan-out; it is tried again");
        }
        Err(e) => tracing::error!(tenant = %tenant.code, %id, error = %e, "fan-out split failed"),
    }
    node.wake_outbox.notify_one();
}
