//! The zone file: CMS `SignedData` around a zone's canonical content (docs/directory-zones.md),
//! and the directory profile its signer must have (rule 6).

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use const_oid::db::rfc5280::{ID_CE_BASIC_CONSTRAINTS, ID_CE_EXT_KEY_USAGE};
use const_oid::db::rfc5911::{ID_DATA, ID_SIGNED_DATA};
use const_oid::db::rfc5912::ID_SHA_256;
use der::{Decode, Encode};
use openssl::asn1::Asn1Object;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::stack::Stack;
use openssl::x509::{X509KeyUsage, X509Ref, X509};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

use super::{refuse, Zone, DIRECTORY_SIGNING_OID, MAX_ZONE_BYTES, ROOT_ZONE};
use crate::error::ZoneRefusal::{BadSignature, Malformed, NotDirectory, UnknownSigner, Unsigned};
use crate::{organ_code, subject_string, Error};

impl Zone {
    /// The zone file: DER CMS `SignedData` (id-data content attached, SHA-256, the signer's
    /// certificate included) over [`Zone::canonical`]. Refuses content that breaks rules 2-5 (and
    /// the root zone's own part of rule 7), and a `cert` without the directory profile, whose
    /// organ code is not the zone's name, or that `key` does not match, so that nothing a node
    /// would refuse is ever published.
    pub fn sign(&self, cert: &X509, key: &vdx_crypto::PrivateKey) -> Result<Vec<u8>, Error> {
        self.check()?;
        check_profile(&self.zone, cert)?;
        if self.zone != ROOT_ZONE && organ_code(cert).as_deref() != Some(self.zone.as_str()) {
            return Err(refuse(
                UnknownSigner,
                &self.zone,
                format!(
                    "the signer {} is not the authority of this zone",
                    subject_string(cert)
                ),
            ));
        }
        if !key.matches(cert) {
            return Err(Error::Request(
                "the key does not match the directory certificate".into(),
            ));
        }
        let content = self.canonical()?;
        let cms = CmsContentInfo::sign(
            Some(cert),
            Some(key.pkey()),
            None,
            Some(&content),
            CMSOptions::BINARY,
        )?;
        let der = cms.to_der()?;
        if der.len() > MAX_ZONE_BYTES {
            return Err(refuse(
                Malformed,
                &self.zone,
                format!(
                    "the signed zone would be {} bytes, more than {MAX_ZONE_BYTES}: split it",
                    der.len()
                ),
            ));
        }
        Ok(der)
    }

    /// The content and the signer's certificate of a zone file, its signature NOT judged and its
    /// content not checked beyond parsing: for showing and comparing files, never for trusting.
    pub fn read_unverified(der: &[u8]) -> Result<(Self, X509), Error> {
        let (content, signer) = parse(der, "file")?;
        let zone: Self = serde_json::from_slice(&content)
            .map_err(|e| refuse(Malformed, "file", format!("content: {e}")))?;
        Ok((zone, signer))
    }
}

/// The signed content and the signer's certificate of a zone file, its shape checked (one signer,
/// SHA-256, id-data attached, the signer's certificate included); the signature is not checked.
fn parse(der: &[u8], label: &str) -> Result<(Vec<u8>, X509), Error> {
    let info = ContentInfo::from_der(der)
        .map_err(|e| refuse(Unsigned, label, format!("not a DER CMS file: {e}")))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(refuse(
            Unsigned,
            label,
            format!("CMS content type {} is not signed data", info.content_type),
        ));
    }
    let malformed = |reason: String| refuse(Malformed, label, reason);
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| malformed(format!("signed data: {e}")))?;
    let encap = &signed.encap_content_info;
    if encap.econtent_type != ID_DATA {
        return Err(malformed(format!(
            "eContentType {} is not id-data",
            encap.econtent_type
        )));
    }
    let content = encap
        .econtent
        .as_ref()
        .ok_or_else(|| malformed("the content is not attached".into()))?
        .decode_as::<der::asn1::OctetString>()
        .map_err(|e| malformed(format!("content: {e}")))?
        .into_bytes();
    let [signer_info] = signed.signer_infos.0.as_slice() else {
        return Err(malformed(format!(
            "{} signers, not one",
            signed.signer_infos.0.len()
        )));
    };
    if signer_info.digest_alg.oid != ID_SHA_256 {
        return Err(malformed(format!(
            "digest {} is not SHA-256",
            signer_info.digest_alg.oid
        )));
    }
    let certs = signed.certificates.as_ref().map(|s| s.0.as_slice());
    let signer = certs
        .unwrap_or_default()
        .iter()
        .filter_map(|choice| match choice {
            CertificateChoices::Certificate(cert) => Some(cert),
            CertificateChoices::Other(_) => None,
        })
        .find(|cert| identifies(&signer_info.sid, cert))
        .ok_or_else(|| malformed("the signer's certificate is not included".into()))?;
    let signer = X509::from_der(&signer.to_der()?)
        .map_err(|e| malformed(format!("the signer's certificate: {e}")))?;
    Ok((content, signer))
}

/// Whether `sid` names `cert`.
fn identifies(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    let tbs = &cert.tbs_certificate;
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == tbs.issuer && ias.serial_number == tbs.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => tbs
            .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .is_some_and(|(_, ours)| ours == *ski),
    }
}

/// The content of a zone file whose signature verifies with the certificate it carries, and that
/// certificate. Who the signer is, and whether it may sign, is judged by the caller.
pub(crate) fn open(der: &[u8], label: &str) -> Result<(Vec<u8>, X509), Error> {
    let (content, signer) = parse(der, label)?;
    let mut cms =
        CmsContentInfo::from_der(der).map_err(|e| refuse(Malformed, label, format!("CMS: {e}")))?;
    let mut only = Stack::new()?;
    only.push(signer.clone())?;
    let mut verified = Vec::new();
    cms.verify(
        Some(&only),
        None,
        None,
        Some(&mut verified),
        CMSOptions::BINARY | CMSOptions::NOINTERN | CMSOptions::NO_SIGNER_CERT_VERIFY,
    )
    .map_err(|e| {
        refuse(
            BadSignature,
            label,
            format!("the signature does not verify: {e}"),
        )
    })?;
    if verified != content {
        return Err(refuse(
            BadSignature,
            label,
            "the verified content differs from the content carried",
        ));
    }
    Ok((content, signer))
}

/// Rule 6's profile: keyUsage digitalSignature only, extendedKeyUsage exactly
/// id-vdx-directorySigning, not a CA.
pub(crate) fn check_profile(zone: &str, cert: &X509Ref) -> Result<(), Error> {
    let who = subject_string(cert);
    let not = |what: &str| {
        refuse(
            NotDirectory,
            zone,
            format!("the signer {who} is not a directory authority: {what}"),
        )
    };
    if cert.key_usage() != Some(X509KeyUsage::DIGITAL_SIGNATURE) {
        return Err(not("keyUsage is not digitalSignature only"));
    }
    let parsed = Certificate::from_der(&cert.to_der()?)
        .map_err(|e| refuse(Malformed, zone, format!("the signer's certificate: {e}")))?;
    let extensions = parsed.tbs_certificate.extensions.unwrap_or_default();
    let eku = extensions
        .iter()
        .find(|e| e.extn_id == ID_CE_EXT_KEY_USAGE)
        .map(|e| e.extn_value.as_bytes());
    if eku != Some(directory_eku()?.as_slice()) {
        return Err(not(
            "extendedKeyUsage is not exactly id-vdx-directorySigning",
        ));
    }
    if let Some(bc) = extensions
        .iter()
        .find(|e| e.extn_id == ID_CE_BASIC_CONSTRAINTS)
    {
        let ca = BasicConstraints::from_der(bc.extn_value.as_bytes()).map_or(true, |b| b.ca);
        if ca {
            return Err(not("it is a CA certificate"));
        }
    }
    Ok(())
}

/// The DER of an extendedKeyUsage holding id-vdx-directorySigning alone. Built by hand: the OID's
/// 128-bit arc is beyond the `const-oid` crate's arcs, not OpenSSL's.
fn directory_eku() -> Result<Vec<u8>, Error> {
    let oid = Asn1Object::from_str(DIRECTORY_SIGNING_OID)?;
    let body = oid.as_slice();
    let (Ok(body_len), Ok(seq_len)) = (u8::try_from(body.len()), u8::try_from(body.len() + 2))
    else {
        return Err(Error::State("the directory OID is too long".into()));
    };
    if seq_len >= 0x80 {
        return Err(Error::State("the directory OID is too long".into()));
    }
    let mut der = vec![0x30, seq_len, 0x06, body_len];
    der.extend_from_slice(body);
    Ok(der)
}
