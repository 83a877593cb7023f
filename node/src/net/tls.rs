//! Mutual TLS for QUIC (DESIGN §4): TLS 1.3 only, ALPN `vdx/1`, client certificates required both
//! ways. A peer's certificate must validate against the node's trust anchors and CRLs (by OpenSSL,
//! through `vdx-pki`, the same path validation as documents) and be bound to an organ code by the
//! directory; anyone else is refused during the handshake.

use std::fmt;
use std::sync::Arc;

use openssl::x509::X509;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use vdx_crypto::PrivateKey;
use vdx_pki::{TrustStore, ValidatedSigner};
use zeroize::Zeroize as _;

/// Timeouts for a WAN of agencies: a peer silent for 15 s is taken as gone (so a dispatch waits
/// for it in the outbox, not on a dead connection), and keep-alives every 5 s hold a reused
/// connection open through NATs and firewalls.
fn transport() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(quinn::VarInt::from_u32(15_000).into()));
    transport.keep_alive_interval(Some(std::time::Duration::from_secs(5)));
    Arc::new(transport)
}

/// Connection attempts quinn holds before the accept loop has judged them.
const MAX_INCOMING: usize = 1024;

/// The ALPN protocol of vdx's transfer protocol, version 1.
pub const ALPN: &[u8] = b"vdx/1";

/// Decides whether a validated peer certificate belongs to an agency the directory knows.
pub type Binding = dyn Fn(&ValidatedSigner) -> bool + Send + Sync;

/// The trust anchors and CRLs in force now (a reload may replace them).
pub type TrustSource = dyn Fn() -> Arc<TrustStore> + Send + Sync;

/// Who may connect, and who we accept to connect to: trust anchors, CRLs and the directory binding.
pub struct PeerPolicy {
    trust: Box<TrustSource>,
    bound: Box<Binding>,
}

impl PeerPolicy {
    /// `trust` gives the settings in force at each handshake; `bound` is asked about every peer
    /// whose path validated (e.g. "is this organ code in the directory, with this certificate?").
    pub fn new(trust: Box<TrustSource>, bound: Box<Binding>) -> Self {
        Self { trust, bound }
    }

    /// Checks an established connection's peer again, as its handshake was: after the trust
    /// settings changed, a peer revoked or removed since must not keep its connection.
    pub fn admits(&self, conn: &quinn::Connection) -> Result<(), rustls::Error> {
        let certs = peer_chain(conn).ok_or(rustls::Error::NoCertificatesPresented)?;
        let (end_entity, intermediates) = certs
            .split_first()
            .ok_or(rustls::Error::NoCertificatesPresented)?;
        self.check(end_entity, intermediates)
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        let cert = X509::from_der(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let chain: Vec<X509> = intermediates
            .iter()
            .filter_map(|c| X509::from_der(c.as_ref()).ok())
            .collect();
        let validated = (self.trust)()
            .validate_signer(&cert, &chain, None)
            .map_err(|e| {
                rustls::Error::InvalidCertificate(match e.code() {
                    "revoked" => CertificateError::Revoked,
                    "expired" => CertificateError::Expired,
                    "not_yet_valid" => CertificateError::NotValidYet,
                    "untrusted" => CertificateError::UnknownIssuer,
                    _ => CertificateError::Other(rustls::OtherError(Arc::new(PolicyError(
                        e.to_string(),
                    )))),
                })
            })?;
        if !(self.bound)(&validated) {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct PolicyError(String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

/// One verifier for both directions: path validation by OpenSSL, handshake signatures by rustls.
struct Verifier {
    policy: Arc<PeerPolicy>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("vdx peer verifier")
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The server name is not checked: peers are identified by organ code, bound by `policy`.
        self.policy.check(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for Verifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.policy.check(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the certificate, key or settings.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The key or certificate could not be encoded.
    #[error("openssl: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    /// QUIC needs TLS 1.3 with a QUIC-capable cipher suite.
    #[error("quic: {0}")]
    Quic(String),
}

/// Our TLS identity as rustls holds it. The key reaches rustls's signer through a PKCS#8 copy
/// that is zeroized as soon as the signer is built (handed to rustls whole, the copy would be
/// dropped with the key still in it).
fn identity(chain: &[X509], key: &PrivateKey) -> Result<Arc<SingleCertAndKey>, TlsError> {
    let certs = chain
        .iter()
        .map(|c| c.to_der().map(CertificateDer::from))
        .collect::<Result<Vec<_>, _>>()?;
    let mut der =
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkey().private_key_to_pkcs8()?));
    let signer = rustls::crypto::ring::sign::any_supported_type(&der);
    der.zeroize();
    let certified = CertifiedKey::new(certs, signer?);
    certified.keys_match()?;
    Ok(Arc::new(SingleCertAndKey::from(certified)))
}

fn verifier(policy: Arc<PeerPolicy>) -> Arc<Verifier> {
    Arc::new(Verifier {
        policy,
        algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
    })
}

/// The listening side: our TLS certificate chain and key, and who may connect.
pub fn server_config(
    chain: &[X509],
    key: &PrivateKey,
    policy: Arc<PeerPolicy>,
) -> Result<quinn::ServerConfig, TlsError> {
    let identity = identity(chain, key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier(policy))
        .with_cert_resolver(identity);
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    // No session resumption: a resumed handshake skips certificate validation, so a peer revoked
    // or removed from the directory since its first handshake would get back in on its ticket.
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport());
    // An attempt waits in quinn only until the accept loop judges it (`admission`), at once: a
    // short queue with little buffered per attempt is enough, and bounds what a flood can make
    // quinn hold before then (its defaults allow 65,536 attempts and 100 MiB of datagrams). Past
    // the queue, quinn drops first packets unanswered; a real peer's are retransmitted.
    config
        .max_incoming(MAX_INCOMING)
        .incoming_buffer_size(64 * 1024)
        .incoming_buffer_size_total(4 << 20);
    Ok(config)
}

/// The connecting side: our TLS certificate chain and key, and which servers we accept.
pub fn client_config(
    chain: &[X509],
    key: &PrivateKey,
    policy: Arc<PeerPolicy>,
) -> Result<quinn::ClientConfig, TlsError> {
    let identity = identity(chain, key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier(policy))
        .with_client_cert_resolver(identity);
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.enable_early_data = false;
    // Every handshake validates the server in full (see `server_config`).
    tls.resumption = rustls::client::Resumption::disabled();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport());
    Ok(config)
}

/// The peer's certificate on an established connection (already validated and bound).
pub fn peer_certificate(conn: &quinn::Connection) -> Option<X509> {
    X509::from_der(peer_chain(conn)?.first()?.as_ref()).ok()
}

/// The certificates the peer presented in its handshake, its own first.
fn peer_chain(conn: &quinn::Connection) -> Option<Vec<CertificateDer<'static>>> {
    conn.peer_identity()?.downcast().ok().map(|chain| *chain)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use vdx_crypto::KeyKind;
    use vdx_pki::Ca;

    use super::*;
    use crate::testkit::{agency, policy, tls_identity};
    use vdx_pki::TrustStore;

    /// Connects, sends "ping" on a bidirectional stream and returns the answer.
    async fn exchange(config: quinn::ClientConfig, server: SocketAddr) -> Result<Vec<u8>, String> {
        let endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).map_err(|e| e.to_string())?;
        let conn = endpoint
            .connect_with(config, server, "peer.vdx.invalid")
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(b"ping").await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        recv.read_to_end(64).await.map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn only_bound_agencies_of_our_ca_get_through() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let mut other_ca = Ca::create("Other root", KeyKind::EcP256, 30).unwrap();
        let server_agency = agency(&mut ca, "000.00.00.G22");
        let good = agency(&mut ca, "000.00.00.H41");
        let unlisted = agency(&mut ca, "000.00.00.H99");
        let foreign = agency(&mut other_ca, "000.00.00.H41");

        let (chain, key) = tls_identity(&server_agency);
        let config = server_config(&chain, key, policy(&ca, &["000.00.00.H41"])).unwrap();
        let server = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let accepted = server.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accepted.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    let peer = peer_certificate(&conn).and_then(|c| vdx_pki::organ_code(&c));
                    if let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        if recv.read_to_end(64).await.is_ok() {
                            let answer = format!("pong {}", peer.unwrap_or_default());
                            let _ = send.write_all(answer.as_bytes()).await;
                            let _ = send.finish();
                            let _ = send.stopped().await;
                        }
                    }
                });
            }
        });

        let client_policy = policy(&ca, &["000.00.00.G22"]);
        let (chain, key) = tls_identity(&good);
        let answer = exchange(
            client_config(&chain, key, client_policy.clone()).unwrap(),
            addr,
        )
        .await;
        assert_eq!(
            answer.unwrap(),
            b"pong 000.00.00.H41",
            "the server sees who is calling"
        );

        for (who, issued) in [
            ("another CA", &foreign),
            ("not in the directory", &unlisted),
        ] {
            let (chain, key) = tls_identity(issued);
            let result = exchange(
                client_config(&chain, key, client_policy.clone()).unwrap(),
                addr,
            )
            .await;
            assert!(result.is_err(), "{who} got through");
        }

        // No client certificate at all.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier(client_policy.clone()))
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let anonymous = quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
        ));
        assert!(
            exchange(anonymous, addr).await.is_err(),
            "a client without a certificate got through"
        );

        // And the client refuses a server outside its own policy.
        let (chain, key) = tls_identity(&good);
        let picky = client_config(&chain, key, policy(&ca, &["000.00.00.H26"])).unwrap();
        assert!(
            exchange(picky, addr).await.is_err(),
            "an unbound server was accepted"
        );
    }

    #[tokio::test]
    async fn a_peer_refused_since_its_first_handshake_cannot_resume_its_way_back() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let server_agency = agency(&mut ca, "000.00.00.G22");
        let client_agency = agency(&mut ca, "000.00.00.H41");
        let trust = Arc::new(TrustStore::new(vec![ca.cert().to_owned()], vec![], vec![]).unwrap());
        // What a reload does to the directory: H41 is listed, then no longer.
        let listed = Arc::new(AtomicBool::new(true));
        let still_listed = listed.clone();
        let server_policy = Arc::new(PeerPolicy::new(
            Box::new(move || trust.clone()),
            Box::new(move |_: &ValidatedSigner| still_listed.load(Ordering::SeqCst)),
        ));
        let (chain, key) = tls_identity(&server_agency);
        let config = server_config(&chain, key, server_policy).unwrap();
        let server = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            while let Some(incoming) = server.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    if let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        if recv.read_to_end(64).await.is_ok() {
                            let _ = send.write_all(b"pong").await;
                            let _ = send.finish();
                            let _ = send.stopped().await;
                        }
                    }
                });
            }
        });

        // One client configuration, as a daemon keeps: it would hold the session ticket.
        let (chain, key) = tls_identity(&client_agency);
        let client = client_config(&chain, key, policy(&ca, &["000.00.00.G22"])).unwrap();
        assert_eq!(exchange(client.clone(), addr).await.unwrap(), b"pong");
        listed.store(false, Ordering::SeqCst);
        assert!(
            exchange(client, addr).await.is_err(),
            "a peer removed from the directory got back in on its earlier session"
        );
    }
}
