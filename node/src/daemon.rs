//! `vdxd`'s main loop: listen for peers (receive into the store), and work through the outbox
//! (connect to the recipient's node from the directory, send, check the receipt), until SIGTERM or
//! SIGINT. Retries back off exponentially with jitter; expired dispatches fail with a reason.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::x509::X509;
use tokio::sync::Notify;
use vdx_crypto::PrivateKey;
use vdx_pki::{Directory, TrustStore, ValidatedSigner};
use vdx_protocol::receipt::ReceiptKind;
use vdx_protocol::wire::{Offer, RejectCode};
use vdx_protocol::OrganCode;

use crate::config::{resolve, Config};
use crate::receipts::{verify_receipt, ReceiptSigner};
use crate::store::{MessageId, Record, Store};
use crate::tls::{client_config, server_config, PeerPolicy};
use crate::transfer::{receive_dispatch, send_dispatch, ReceivePolicy, SendOutcome};

/// How often the outbox is looked at when nothing wakes it.
const TICK: Duration = Duration::from_millis(500);
/// First retry delay; doubled per attempt up to [`MAX_BACKOFF`], with up to 25 % jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

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
    Tls(#[from] crate::tls::TlsError),
    /// Receipt signing key.
    #[error(transparent)]
    Receipt(#[from] crate::receipts::ReceiptError),
    /// Binding the listen address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Everything the loops share.
struct Node {
    config: Config,
    store: Store,
    directory: Directory,
    trust: Arc<TrustStore>,
    signer: ReceiptSigner,
}

fn read(home: &Path, path: &Path) -> Result<Vec<u8>, StartError> {
    let path = resolve(home, path);
    std::fs::read(&path).map_err(|e| StartError::File {
        path,
        reason: e.to_string(),
    })
}

fn file_error(home: &Path, path: &Path, e: impl std::fmt::Display) -> StartError {
    StartError::File {
        path: resolve(home, path),
        reason: e.to_string(),
    }
}

fn load_key(home: &Path, path: &Path) -> Result<PrivateKey, StartError> {
    let pass = std::env::var("VDX_KEY_PASSPHRASE").ok();
    PrivateKey::from_bytes(&read(home, path)?, pass.as_deref().map(str::as_bytes))
        .map_err(|e| file_error(home, path, e))
}

fn load_cert(home: &Path, path: &Path) -> Result<X509, StartError> {
    X509::from_pem(&read(home, path)?).map_err(|e| file_error(home, path, e))
}

/// The trust anchors and CRLs the configuration names.
fn load_trust(home: &Path, config: &Config) -> Result<TrustStore, StartError> {
    let mut anchors = Vec::new();
    for path in &config.trust.anchors {
        anchors.extend(
            vdx_pki::parse_certs(&read(home, path)?).map_err(|e| file_error(home, path, e))?,
        );
    }
    let mut crls = Vec::new();
    for path in &config.trust.crls {
        crls.extend(
            vdx_pki::parse_crls(&read(home, path)?).map_err(|e| file_error(home, path, e))?,
        );
    }
    TrustStore::new(anchors, Vec::new(), crls)
        .map_err(|e| file_error(home, Path::new("config.toml [trust]"), e))
}

/// Runs the node in `home` until a termination signal; returns after a clean shutdown.
pub async fn run(home: &Path) -> Result<(), StartError> {
    let config = Config::load(home)?;
    let trust = load_trust(home, &config)?;
    let directory = Directory::from_json(&read(home, &config.directory)?)
        .map_err(|e| file_error(home, &config.directory, e))?;
    let store = Store::open(&resolve(home, &config.data_dir))?;
    let tls_chain = vec![load_cert(home, &config.keys.tls_cert)?];
    let tls_key = load_key(home, &config.keys.tls_key)?;
    let signer = ReceiptSigner::new(
        config.organ_code.clone(),
        load_cert(home, &config.keys.sign_cert)?,
        load_key(home, &config.keys.sign_key)?,
    )?;

    // Peers are accepted when the directory binds their TLS certificate to their organ code.
    let bound_directory = Arc::new(directory.clone());
    let policy = Arc::new(PeerPolicy::new(
        load_trust(home, &config)?,
        Box::new(move |peer: &ValidatedSigner| {
            peer.organ_code()
                .is_some_and(|code| bound_directory.binds_tls(code, peer.certificate()))
        }),
    ));
    let mut endpoint = quinn::Endpoint::server(
        server_config(&tls_chain, &tls_key, policy.clone())?,
        config.listen,
    )
    .map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    endpoint.set_default_client_config(client_config(&tls_chain, &tls_key, policy)?);
    tracing::info!(organ_code = %config.organ_code, listen = %config.listen, "vdxd started");

    let node = Arc::new(Node {
        config,
        store,
        directory,
        trust: Arc::new(trust),
        signer,
    });
    let stop = Arc::new(Notify::new());
    let accept = tokio::spawn(accept_loop(endpoint.clone(), node.clone()));
    let outbox = tokio::spawn(outbox_loop(endpoint.clone(), node.clone(), stop.clone()));

    shutdown_signal().await;
    tracing::info!("stopping: no new transfers; what is on disk stays");
    stop.notify_waiters();
    endpoint.close(0u32.into(), b"shutting down");
    accept.abort();
    let _ = outbox.await;
    endpoint.wait_idle().await;
    node.store.flush()?;
    tracing::info!("vdxd stopped");
    Ok(())
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

async fn accept_loop(endpoint: quinn::Endpoint, node: Arc<Node>) {
    while let Some(incoming) = endpoint.accept().await {
        let node = node.clone();
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "connection refused");
                    return;
                }
            };
            while let Ok((send, recv)) = conn.accept_bi().await {
                let node = node.clone();
                tokio::spawn(async move {
                    match receive_dispatch(send, recv, &node.store, node.as_ref()).await {
                        Ok(Some(record)) => {
                            tracing::info!(id = %record.id, from = %record.from, size = record.size, "dispatch received")
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "incoming transfer failed"),
                    }
                });
            }
        });
    }
}

impl ReceivePolicy for Node {
    fn admit(&self, offer: &Offer) -> Result<(), (RejectCode, String)> {
        if offer.to != self.config.organ_code {
            return Err((
                RejectCode::NotForUs,
                format!("{} is not served by {}", offer.to, self.config.organ_code),
            ));
        }
        if self.directory.get(offer.from.as_str()).is_none() {
            return Err((
                RejectCode::UnknownSender,
                format!("{} is not in the directory", offer.from),
            ));
        }
        if offer.size > self.config.limits.max_dispatch_bytes {
            return Err((
                RejectCode::TooLarge,
                format!(
                    "{} bytes exceed the limit of {}",
                    offer.size, self.config.limits.max_dispatch_bytes
                ),
            ));
        }
        if offer.expires != 0 && offer.expires < self.now() {
            return Err((RejectCode::Expired, "the dispatch has expired".into()));
        }
        Ok(())
    }

    fn receipt(&self, record: &Record) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        self.signer
            .sign(ReceiptKind::Hop, record, now)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot sign a receipt");
                Vec::new()
            })
    }

    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

async fn outbox_loop(endpoint: quinn::Endpoint, node: Arc<Node>, stop: Arc<Notify>) {
    let mut next_try: HashMap<MessageId, Instant> = HashMap::new();
    let mut connections: HashMap<OrganCode, quinn::Connection> = HashMap::new();
    loop {
        let queued = match node.store.outbox() {
            Ok(queued) => queued,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                Vec::new()
            }
        };
        // The outbox is in priority order: hỏa tốc first.
        for record in queued {
            if next_try
                .get(&record.id)
                .is_some_and(|t| *t > Instant::now())
            {
                continue;
            }
            if record.expires != 0 && record.expires < node.now() {
                let _ = node
                    .store
                    .mark_failed(record.id, "expired before delivery".into());
                tracing::warn!(id = %record.id, "dispatch expired");
                continue;
            }
            match deliver(&endpoint, &node, &mut connections, &record).await {
                Ok(outcome) => {
                    next_try.remove(&record.id);
                    tracing::info!(id = %record.id, to = %record.to, ?outcome, "dispatch handed over");
                }
                Err(reason) => {
                    let delay = backoff(record.attempts);
                    next_try.insert(record.id, Instant::now() + delay);
                    tracing::warn!(id = %record.id, to = %record.to, %reason, retry_in = ?delay, "send failed");
                }
            }
        }
        tokio::select! {
            _ = stop.notified() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

async fn deliver(
    endpoint: &quinn::Endpoint,
    node: &Node,
    connections: &mut HashMap<OrganCode, quinn::Connection>,
    record: &Record,
) -> Result<SendOutcome, String> {
    let peer = node
        .config
        .relay
        .clone()
        .unwrap_or_else(|| record.to.clone());
    let addr = node
        .directory
        .get(peer.as_str())
        .and_then(|e| e.endpoint.as_deref())
        .ok_or_else(|| format!("{peer} has no endpoint in the directory"))?
        .parse()
        .map_err(|e| format!("bad endpoint for {peer}: {e}"))?;
    let conn = match connections
        .get(&peer)
        .filter(|c| c.close_reason().is_none())
    {
        Some(conn) => conn.clone(),
        None => {
            let conn = endpoint
                .connect(addr, "peer.vdx.invalid")
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            connections.insert(peer.clone(), conn.clone());
            conn
        }
    };
    let trust = node.trust.clone();
    let check = move |r: &Record, receipt: &[u8]| {
        verify_receipt(receipt, r, &peer, &trust)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    send_dispatch(&conn, &node.store, record.id, &check)
        .await
        .map_err(|e| e.to_string())
}

fn backoff(attempts: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1u32 << attempts.min(16))
        .min(MAX_BACKOFF);
    let mut jitter = [0u8; 1];
    let _ = openssl::rand::rand_bytes(&mut jitter);
    base + base.mul_f64(f64::from(jitter[0]) / 255.0 / 4.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let first = backoff(0);
        assert!(first >= FIRST_BACKOFF && first <= FIRST_BACKOFF.mul_f64(1.25));
        let third = backoff(2);
        assert!(third >= FIRST_BACKOFF * 4 && third <= (FIRST_BACKOFF * 4).mul_f64(1.25));
        assert!(backoff(40) <= MAX_BACKOFF.mul_f64(1.25));
    }
}
