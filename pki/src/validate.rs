//! Path validation: is this signer's certificate trusted, was it valid when it signed, and is it
//! revoked now? Chains are built and checked by OpenSSL; revocation is checked here against the CRLs
//! given, over the chain OpenSSL built.

use openssl::asn1::Asn1Time;
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{CrlStatus, X509Crl, X509KeyUsage, X509Ref, X509StoreContext, X509};
use time::OffsetDateTime;

use crate::names::{name_string, serial_hex, subject_string};
use crate::{organ_code, Error};

// OpenSSL verification results we turn into specific verdicts (x509_vfy.h).
const ERR_CERT_NOT_YET_VALID: i32 = 9;
const ERR_CERT_HAS_EXPIRED: i32 = 10;

/// Trust anchors, known intermediates and revocation lists: everything a verdict depends on.
pub struct TrustStore {
    anchors: Vec<X509>,
    intermediates: Vec<X509>,
    crls: Vec<X509Crl>,
}

/// A signer whose certificate path validated at its signing time and which no CRL revokes. Only
/// [`TrustStore::validate_signer`] makes one.
#[derive(Debug, Clone)]
pub struct ValidatedSigner {
    subject: String,
    organ_code: Option<String>,
    issuer: String,
    serial: String,
    signing_time: Option<OffsetDateTime>,
    cert: X509,
}

impl ValidatedSigner {
    /// Subject as `CN=..., O=..., organizationIdentifier=...`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The organ code from the subject's organizationIdentifier, if the certificate has one.
    pub fn organ_code(&self) -> Option<&str> {
        self.organ_code.as_deref()
    }

    /// The issuing CA's name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Serial number, lower-case hex.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The signing time the path was validated at (`None`: the document had none; validated now).
    pub fn signing_time(&self) -> Option<OffsetDateTime> {
        self.signing_time
    }

    /// The signer's certificate.
    pub fn certificate(&self) -> &X509Ref {
        &self.cert
    }
}

/// Every certificate in PEM text (several allowed) or one DER certificate.
pub fn parse_certs(bytes: &[u8]) -> Result<Vec<X509>, Error> {
    let parsed = if bytes.first() == Some(&0x30) {
        X509::from_der(bytes).map(|c| vec![c])
    } else {
        X509::stack_from_pem(bytes)
    };
    match parsed {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(parse_error("certificate", "no certificate found")),
        Err(e) => Err(parse_error("certificate", e)),
    }
}

/// Every CRL in PEM text (several allowed) or one DER CRL.
pub fn parse_crls(bytes: &[u8]) -> Result<Vec<X509Crl>, Error> {
    if bytes.first() == Some(&0x30) {
        return X509Crl::from_der(bytes)
            .map(|c| vec![c])
            .map_err(|e| parse_error("CRL", e));
    }
    let text = String::from_utf8_lossy(bytes);
    let mut crls = Vec::new();
    let end_marker = "-----END X509 CRL-----";
    for block in text
        .split_inclusive(end_marker)
        .filter(|b| b.contains(end_marker))
    {
        crls.push(
            X509Crl::from_pem(block.trim_start().as_bytes()).map_err(|e| parse_error("CRL", e))?,
        );
    }
    if crls.is_empty() {
        return Err(parse_error("CRL", "no CRL found"));
    }
    Ok(crls)
}

fn parse_error(what: &'static str, reason: impl ToString) -> Error {
    Error::Parse {
        what,
        reason: reason.to_string(),
    }
}

impl TrustStore {
    /// Builds the store. With no CRLs, revocation is not checked; with any, it is checked for every
    /// certificate on the path, and a missing CRL is a refusal.
    pub fn new(
        anchors: Vec<X509>,
        intermediates: Vec<X509>,
        crls: Vec<X509Crl>,
    ) -> Result<Self, Error> {
        if anchors.is_empty() {
            return Err(Error::Request("at least one trust anchor is needed".into()));
        }
        Ok(Self {
            anchors,
            intermediates,
            crls,
        })
    }

    /// Validates `cert` as a document signer at `signing_time` (now when `None`), building its path
    /// with `chain` and the store's intermediates.
    pub fn validate_signer(
        &self,
        cert: &X509Ref,
        chain: &[X509],
        signing_time: Option<OffsetDateTime>,
    ) -> Result<ValidatedSigner, Error> {
        let subject = subject_string(cert);
        if let Some(usage) = cert.key_usage() {
            if !usage.intersects(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION) {
                return Err(Error::KeyUsage { subject });
            }
        }
        let at = signing_time.unwrap_or_else(OffsetDateTime::now_utc);
        let path = self.build_path(cert, chain, at)?;
        if !self.crls.is_empty() {
            self.check_revocation(&path)?;
        }
        Ok(ValidatedSigner {
            organ_code: organ_code(cert),
            issuer: name_string(cert.issuer_name()),
            serial: serial_hex(cert),
            signing_time,
            cert: cert.to_owned(),
            subject,
        })
    }

    /// OpenSSL's chain building with validity checked at `at`; returns the path, leaf first.
    fn build_path(
        &self,
        cert: &X509Ref,
        chain: &[X509],
        at: OffsetDateTime,
    ) -> Result<Vec<X509>, Error> {
        let mut untrusted = Stack::new()?;
        for c in chain.iter().chain(&self.intermediates) {
            untrusted.push(c.clone())?;
        }
        // A store per validation: the verification time is a store parameter in rust-openssl.
        let mut param = X509VerifyParam::new()?;
        param.set_time(at.unix_timestamp() as _);
        let mut builder = X509StoreBuilder::new()?;
        builder.set_param(&param)?;
        for anchor in &self.anchors {
            builder.add_cert(anchor.clone())?;
        }
        let store: X509Store = builder.build();
        let mut ctx = X509StoreContext::new()?;
        let outcome = ctx.init(&store, cert, &untrusted, |c| {
            let ok = c.verify_cert()?;
            let path: Vec<X509> = c
                .chain()
                .map(|s| s.iter().map(|x| x.to_owned()).collect())
                .unwrap_or_default();
            let failing = c.current_cert().map(|x| x.to_owned());
            Ok((ok, c.error(), path, failing))
        })?;
        let (ok, error, path, failing) = outcome;
        if ok {
            return Ok(path);
        }
        let who = failing.as_deref().unwrap_or(cert);
        let subject = subject_string(who);
        let at_text = at.to_string();
        Err(match error.as_raw() {
            ERR_CERT_HAS_EXPIRED => Error::Expired {
                subject,
                not_after: who.not_after().to_string(),
                at: at_text,
            },
            ERR_CERT_NOT_YET_VALID => Error::NotYetValid {
                subject,
                not_before: who.not_before().to_string(),
                at: at_text,
            },
            // Unable to get issuer, self-signed not trusted, chain too long, bad signatures ...
            2 | 18 | 19 | 20 | 21 | 7 | 22 | 24 => Error::Untrusted {
                subject,
                reason: error.error_string().to_owned(),
            },
            _ => Error::Other {
                subject,
                reason: error.error_string().to_owned(),
            },
        })
    }

    /// Every certificate on the path but the anchor must appear in no CRL of its issuer, and each
    /// issuer must have a CRL whose signature verifies and whose nextUpdate has not passed.
    fn check_revocation(&self, path: &[X509]) -> Result<(), Error> {
        let now = Asn1Time::days_from_now(0)?;
        for pair in path.windows(2) {
            let (cert, issuer) = (&pair[0], &pair[1]);
            let subject = subject_string(cert);
            let issuer_key = issuer.public_key()?;
            let crl = self
                .crls
                .iter()
                .filter(|crl| {
                    crl.issuer_name()
                        .try_cmp(issuer.subject_name())
                        .is_ok_and(|o| o.is_eq())
                })
                .find(|crl| crl.verify(&issuer_key).unwrap_or(false))
                .ok_or_else(|| Error::CrlMissing {
                    subject: subject.clone(),
                })?;
            if crl.next_update().is_some_and(|next| *next < *now) {
                return Err(Error::CrlInvalid {
                    subject,
                    reason: "the CRL has passed its nextUpdate; fetch a fresh one".into(),
                });
            }
            if let CrlStatus::Revoked(_) = crl.get_by_cert(cert) {
                return Err(Error::Revoked {
                    serial: serial_hex(cert),
                    subject,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ca, IssueRequest, Profile, RevocationReason};
    use vdx_crypto::KeyKind;

    fn request(org: &str, kind: KeyKind, profile: Profile) -> IssueRequest {
        IssueRequest {
            org: org.into(),
            name: format!("Agency {org}"),
            kind,
            profile,
            not_before: None,
            days: 30,
        }
    }

    fn cert_of(issued: &crate::Issued, role: &str) -> X509 {
        issued
            .roles()
            .into_iter()
            .find(|(r, _, _)| *r == role)
            .map(|(_, c, _)| c.to_owned())
            .unwrap()
    }

    #[test]
    fn issued_signers_validate_with_their_organ_code() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let ec = ca
            .issue(&request(
                "000.00.00.G22",
                KeyKind::EcP256,
                Profile::Separate,
            ))
            .unwrap();
        let rsa = ca
            .issue(&request("000.00.00.H41", KeyKind::Rsa, Profile::Combined))
            .unwrap();
        let trust =
            TrustStore::new(vec![ca.cert().to_owned()], vec![], vec![ca.crl(7).unwrap()]).unwrap();
        let signer = trust
            .validate_signer(&cert_of(&ec, "sign"), &[], None)
            .unwrap();
        assert_eq!(signer.organ_code(), Some("000.00.00.G22"));
        assert!(signer.subject().contains("CN=Agency 000.00.00.G22"));
        let signer = trust
            .validate_signer(&cert_of(&rsa, "agency"), &[], None)
            .unwrap();
        assert_eq!(signer.organ_code(), Some("000.00.00.H41"));
        assert!(ca
            .issue(&request(
                "000.00.00.H41",
                KeyKind::EcP256,
                Profile::Combined
            ))
            .is_err());
        assert!(ca
            .issue(&request("bad code", KeyKind::EcP256, Profile::Separate))
            .is_err());
    }

    #[test]
    fn refusals_name_their_reason() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 3650).unwrap();
        let other = Ca::create("Other root", KeyKind::EcP256, 30).unwrap();
        let good = ca
            .issue(&request(
                "000.00.00.G22",
                KeyKind::EcP256,
                Profile::Separate,
            ))
            .unwrap();
        let mut old = request("000.00.00.G23", KeyKind::EcP256, Profile::Separate);
        old.not_before = Some(OffsetDateTime::now_utc() - time::Duration::days(400));
        old.days = 30;
        let expired = ca.issue(&old).unwrap();
        let anchors = vec![ca.cert().to_owned()];

        // Expired at the signing time.
        let plain = TrustStore::new(anchors.clone(), vec![], vec![]).unwrap();
        let err = plain
            .validate_signer(&cert_of(&expired, "sign"), &[], None)
            .unwrap_err();
        assert_eq!(err.code(), "expired");
        let before = OffsetDateTime::now_utc() - time::Duration::days(3);
        let err = plain
            .validate_signer(&cert_of(&good, "sign"), &[], Some(before))
            .unwrap_err();
        assert_eq!(err.code(), "not_yet_valid");

        // An encryption certificate may not sign.
        let err = plain
            .validate_signer(&cert_of(&good, "enc"), &[], None)
            .unwrap_err();
        assert_eq!(err.code(), "key_usage");

        // Another CA's root is not ours.
        let foreign = TrustStore::new(vec![other.cert().to_owned()], vec![], vec![]).unwrap();
        let err = foreign
            .validate_signer(&cert_of(&good, "sign"), &[], None)
            .unwrap_err();
        assert_eq!(err.code(), "untrusted");

        // Revoked: a CRL made after the signing time still revokes.
        ca.revoke(
            &cert_of(&good, "sign"),
            Some(RevocationReason::KeyCompromise),
        )
        .unwrap();
        assert_eq!(
            ca.revoke(&cert_of(&good, "sign"), None).unwrap_err().code(),
            "already_revoked"
        );
        assert_eq!(
            ca.revoke(other.cert(), None).unwrap_err().code(),
            "not_ours"
        );
        let crl = ca.crl(7).unwrap();
        let checked = TrustStore::new(anchors.clone(), vec![], vec![crl]).unwrap();
        let signed_at = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let err = checked
            .validate_signer(&cert_of(&good, "sign"), &[], Some(signed_at))
            .unwrap_err();
        assert_eq!(err.code(), "revoked");

        // CRLs given, but none from this issuer: fail closed.
        let mut third = Ca::create("Third", KeyKind::EcP256, 30).unwrap();
        let unrelated = TrustStore::new(anchors, vec![], vec![third.crl(7).unwrap()]).unwrap();
        let err = unrelated
            .validate_signer(&cert_of(&good, "tls"), &[], None)
            .unwrap_err();
        assert_eq!(err.code(), "crl_missing");
    }

    #[test]
    fn state_survives_a_round_trip_and_crls_load_in_openssl() {
        let mut ca = Ca::create("Root", KeyKind::Rsa, 30).unwrap();
        let issued = ca
            .issue(&request(
                "000.00.00.G22",
                KeyKind::EcP256,
                Profile::Separate,
            ))
            .unwrap();
        ca.revoke(&cert_of(&issued, "sign"), None).unwrap();
        let pem = ca.key().to_pkcs8_pem(Some(b"pw")).unwrap();
        let key = vdx_crypto::PrivateKey::from_bytes(&pem, Some(b"pw")).unwrap();
        let mut back =
            Ca::from_parts(&ca.cert().to_pem().unwrap(), key, &ca.state_json().unwrap()).unwrap();
        let crl = back.crl(7).unwrap();
        let pem = crl.to_pem().unwrap();
        let parsed = parse_crls(&[pem.clone(), pem].concat()).unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(crl.verify(&ca.cert().public_key().unwrap()).unwrap());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("crl.pem"), crl.to_pem().unwrap()).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["crl", "-noout", "-text", "-in"])
            .arg(dir.path().join("crl.pem"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("CRL Number"), "{text}");
        assert!(text.contains(&crate::names::serial_hex(&cert_of(&issued, "sign")).to_uppercase()));
    }
}
