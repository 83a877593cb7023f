//! A QUIC client that speaks to a real `vdxd` as a peer would, for tests that hand it frames of
//! their own: TLS 1.3 with a client certificate from a node home, pinned to h41.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use vdx_node::net::tls::ALPN;

use crate::Session;

/// Accepts the server whose certificate chains to the dev CA (checked by webpki, independently of
/// vdxd's OpenSSL path validation) and is exactly h41's TLS certificate, as the directory binds it.
/// The name is not checked: vdx peers are identified by organ code, not by DNS name.
#[derive(Debug)]
pub struct H41Only {
    webpki: Arc<WebPkiServerVerifier>,
    bound: CertificateDer<'static>,
}

impl H41Only {
    /// The verifier for the session's `ca` and `h41` home.
    pub fn new(s: &Session) -> Arc<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(s.path("ca/ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let bound = CertificateDer::from_pem_file(s.path("h41/keys/tls.pem")).unwrap();
        Arc::new(Self { webpki, bound })
    }
}

impl ServerCertVerifier for H41Only {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        // webpki checks the name last, so a name error means the path itself validated.
        match verdict {
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(e) => return Err(e),
        }
        if end_entity.as_ref() != self.bound.as_ref() {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A client like a vdx peer (TLS 1.3 only, ALPN `vdx/1`, no early data) that accepts only h41 and
/// presents the TLS certificate and key in directory `identity` (`tls.pem`, `tls.key`), or none.
pub fn client_config(s: &Session, identity: Option<&str>) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(H41Only::new(s));
    let mut tls = match identity {
        Some(dir) => {
            let dir = s.path(dir);
            let chain = vec![CertificateDer::from_pem_file(dir.join("tls.pem")).unwrap()];
            let key = PrivateKeyDer::from_pem_file(dir.join("tls.key")).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.enable_early_data = false;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    quinn::ClientConfig::new(Arc::new(quic))
}
