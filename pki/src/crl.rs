//! Building a CRL (RFC 5280 section 5), which rust-openssl cannot do: the structure is assembled with
//! `x509-cert`, signed with OpenSSL, and parsed back by OpenSSL to prove it is well formed.

use std::time::{Duration, SystemTime};

use const_oid::db::rfc5280::{ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_CRL_NUMBER, ID_CE_CRL_REASONS};
use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use openssl::hash::MessageDigest;
use openssl::pkey::Id;
use openssl::x509::{X509Crl, X509Ref};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;
use x509_cert::Version;

use vdx_crypto::PrivateKey;

use crate::Error;

/// Why a certificate was revoked (RFC 5280 CRLReason), as CAs and auditors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum RevocationReason {
    /// No reason given.
    Unspecified,
    /// The private key leaked or may have.
    KeyCompromise,
    /// The issuing CA's key leaked.
    CaCompromise,
    /// The agency changed (merger, new name).
    AffiliationChanged,
    /// Replaced by a new certificate.
    Superseded,
    /// The agency stopped operating.
    CessationOfOperation,
    /// The agency lost the right to hold the certificate.
    PrivilegeWithdrawn,
}

impl std::str::FromStr for RevocationReason {
    type Err = Error;

    /// Accepts the RFC 5280 names (`keyCompromise`) and their kebab-case (`key-compromise`).
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s.replace('-', "").to_ascii_lowercase().as_str() {
            "unspecified" => Self::Unspecified,
            "keycompromise" => Self::KeyCompromise,
            "cacompromise" => Self::CaCompromise,
            "affiliationchanged" => Self::AffiliationChanged,
            "superseded" => Self::Superseded,
            "cessationofoperation" => Self::CessationOfOperation,
            "privilegewithdrawn" => Self::PrivilegeWithdrawn,
            _ => {
                return Err(Error::Request(format!(
                    "unknown revocation reason {s:?} (unspecified, keyCompromise, cACompromise, \
                     affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn)"
                )))
            }
        })
    }
}

impl RevocationReason {
    fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::PrivilegeWithdrawn => 9,
        }
    }
}

/// One entry of the list: serial (big-endian bytes), when, and why.
pub(crate) struct Entry {
    pub(crate) serial: Vec<u8>,
    pub(crate) revoked_at: SystemTime,
    pub(crate) reason: Option<RevocationReason>,
}

/// Signs a v2 CRL over `entries`, valid from `now` (its thisUpdate) for `days`.
pub(crate) fn build(
    ca_cert: &X509Ref,
    ca_key: &PrivateKey,
    number: u64,
    entries: &[Entry],
    days: u32,
    now: SystemTime,
) -> Result<X509Crl, Error> {
    let next = now
        .checked_add(Duration::from_secs(u64::from(days) * 86_400))
        .ok_or_else(|| Error::Request("CRL validity out of range".into()))?;
    let issuer = Name::from_der(&ca_cert.subject_name().to_der()?)?;
    let signature = signature_algorithm(ca_key)?;

    let mut revoked = Vec::with_capacity(entries.len());
    for entry in entries {
        let reason = entry
            .reason
            .map(|r| -> Result<Extension, Error> {
                Ok(Extension {
                    extn_id: ID_CE_CRL_REASONS,
                    critical: false,
                    extn_value: OctetString::new(vec![0x0a, 0x01, r.code()])?,
                })
            })
            .transpose()?;
        revoked.push(RevokedCert {
            serial_number: SerialNumber::new(&entry.serial)?,
            revocation_date: time(entry.revoked_at)?,
            crl_entry_extensions: reason.map(|r| vec![r]),
        });
    }

    let mut extensions = vec![Extension {
        extn_id: ID_CE_CRL_NUMBER,
        critical: false,
        extn_value: OctetString::new(der::asn1::Uint::new(&number.to_be_bytes())?.to_der()?)?,
    }];
    if let Some(ski) = ca_cert.subject_key_id() {
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(ski.as_slice())?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };
        extensions.push(Extension {
            extn_id: ID_CE_AUTHORITY_KEY_IDENTIFIER,
            critical: false,
            extn_value: OctetString::new(aki.to_der()?)?,
        });
    }

    let tbs = TbsCertList {
        version: Version::V2,
        signature: signature.clone(),
        issuer,
        this_update: time(now)?,
        next_update: Some(time(next)?),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(extensions),
    };
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), ca_key.pkey())?;
    let sig = signer.sign_oneshot_to_vec(&tbs.to_der()?)?;
    let list = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: signature,
        signature: BitString::from_bytes(&sig)?,
    };
    Ok(X509Crl::from_der(&list.to_der()?)?)
}

fn signature_algorithm(key: &PrivateKey) -> Result<spki::AlgorithmIdentifierOwned, Error> {
    const ECDSA_SHA256: const_oid::ObjectIdentifier =
        const_oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
    const SHA256_RSA: const_oid::ObjectIdentifier =
        const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
    Ok(match key.pkey().id() {
        Id::EC => spki::AlgorithmIdentifierOwned {
            oid: ECDSA_SHA256,
            parameters: None,
        },
        _ => spki::AlgorithmIdentifierOwned {
            oid: SHA256_RSA,
            parameters: Some(der::Any::null()),
        },
    })
}

fn time(t: SystemTime) -> Result<Time, Error> {
    // Whole seconds: DER times carry no fractions.
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| Error::Request("clock before 1970".into()))?
        .as_secs();
    Ok(Time::try_from(
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
    )?)
}

#[cfg(test)]
mod cases {

    use vdx_crypto::KeyKind;

    use crate::names::serial_hex;
    use crate::testkit::*;
    use crate::{Ca, RevocationReason};

    #[test]
    fn crls_are_honoured_by_the_openssl_cli() {
        for kind in [KeyKind::EcP256, KeyKind::Rsa] {
            let mut ca = Ca::create("Root", kind, 30).unwrap();
            let issued = issue_ec(&mut ca, "000.00.00.G22");
            let (sign, tls) = (cert_of(&issued, "sign"), cert_of(&issued, "tls"));
            ca.revoke(&sign, Some(RevocationReason::KeyCompromise))
                .unwrap();
            let first = ca.crl(7).unwrap();
            let second = ca.crl(7).unwrap();

            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            write(d, "ca.pem", &ca.cert().to_pem().unwrap());
            write(d, "sign.pem", &sign.to_pem().unwrap());
            write(d, "tls.pem", &tls.to_pem().unwrap());
            write(d, "crl.pem", &second.to_pem().unwrap());
            write(d, "crl.der", &first.to_der().unwrap());
            let (ok, text) = openssl(d, &["crl", "-in", "crl.pem", "-text", "-noout"]);
            assert!(ok, "{text}");
            for expected in [
                "Version 2",
                "X509v3 CRL Number",
                "X509v3 Authority Key Identifier",
                "Key Compromise",
                "Next Update",
                &serial_hex(&sign).to_uppercase(),
            ] {
                assert!(text.contains(expected), "{expected:?} in {text}");
            }
            let number = |t: &str| {
                t.lines()
                    .skip_while(|l| !l.contains("CRL Number"))
                    .nth(1)
                    .map(|l| l.trim().to_owned())
            };
            assert_eq!(number(&text).as_deref(), Some("2"));
            let (ok, text) = openssl(
                d,
                &["crl", "-in", "crl.der", "-inform", "DER", "-text", "-noout"],
            );
            assert!(ok, "{text}");
            assert_eq!(number(&text).as_deref(), Some("1"));
            let (ok, text) = openssl(d, &["crl", "-in", "crl.pem", "-CAfile", "ca.pem", "-noout"]);
            assert!(ok && text.contains("verify OK"), "{text}");

            let verify = |cert: &str| {
                openssl(
                    d,
                    &[
                        "verify",
                        "-crl_check",
                        "-CRLfile",
                        "crl.pem",
                        "-CAfile",
                        "ca.pem",
                        cert,
                    ],
                )
            };
            let (ok, text) = verify("sign.pem");
            assert!(
                !ok && text.contains("certificate revoked"),
                "{kind:?}: {text}"
            );
            let (ok, text) = verify("tls.pem");
            assert!(ok, "{kind:?}: {text}");
        }
    }

    #[test]
    fn revocation_reasons_parse_by_their_rfc_names() {
        for (text, reason) in [
            ("keyCompromise", RevocationReason::KeyCompromise),
            ("key-compromise", RevocationReason::KeyCompromise),
            ("cACompromise", RevocationReason::CaCompromise),
            (
                "cessationOfOperation",
                RevocationReason::CessationOfOperation,
            ),
            ("privilegeWithdrawn", RevocationReason::PrivilegeWithdrawn),
        ] {
            assert_eq!(text.parse::<RevocationReason>().unwrap(), reason);
        }
        let err = "lost".parse::<RevocationReason>().unwrap_err();
        assert_eq!(err.code(), "request");
    }
}
