//! The development CA: issues agency certificates in vdx's profiles, revokes them, and signs CRLs.
//!
//! Real deployments use the government CA; these certificates follow the same shape so that every
//! code path is exercised. State (serials issued and revoked, the CRL number) is plain JSON that the
//! caller stores beside the CA certificate.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509Crl, X509NameBuilder, X509Ref, X509};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use vdx_crypto::{KeyKind, PrivateKey};

use crate::crl::{self, RevocationReason};
use crate::names::{serial_hex, subject_string};
use crate::{organ_code, Error};

/// Which certificates an agency gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Profile {
    /// Three key pairs: `sign` (documents), `enc` (receiving), `tls` (node transport).
    #[default]
    Separate,
    /// One RSA key pair for signing and encryption, as Vietnamese government CAs issue (`agency`).
    Combined,
    /// Two key pairs, `sign` and `enc`: an agency hosted by another node (a tenant), whose
    /// connections the host's TLS certificate identifies, so that no TLS key of its own exists.
    Hosted,
    /// One key pair, `directory`: a directory authority that signs zones of the national directory
    /// (docs/directory-zones.md, rule 6). keyUsage digitalSignature only and extendedKeyUsage
    /// exactly id-vdx-directorySigning, so that no agency certificate can sign a zone and this one
    /// can sign nothing else.
    Directory,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// Organ code, written as the subject's organizationIdentifier (2.5.4.97).
    pub org: String,
    /// Agency name: the subject's CN and O.
    pub name: String,
    /// Key algorithm.
    pub kind: KeyKind,
    /// Which certificates.
    pub profile: Profile,
    /// Start of validity; now when `None` (a past date makes test certificates that have expired).
    pub not_before: Option<OffsetDateTime>,
    /// Days of validity.
    pub days: u32,
}

/// The certificates and keys of one issuance, by role name. `Debug` shows no key material.
#[derive(Debug)]
pub struct Issued {
    roles: Vec<(&'static str, X509, PrivateKey)>,
}

impl Issued {
    /// `(role, certificate, key)` for each role: `sign`/`enc`/`tls`, `agency`, or `directory`.
    pub fn roles(&self) -> Vec<(&'static str, &X509Ref, &PrivateKey)> {
        self.roles
            .iter()
            .map(|(r, c, k)| (*r, c.as_ref(), k))
            .collect()
    }

    /// The roles, owned: for a caller that keeps a key (a directory authority signing zones).
    pub fn into_roles(self) -> Vec<(&'static str, X509, PrivateKey)> {
        self.roles
    }
}

/// A CA: certificate, key and bookkeeping.
pub struct Ca {
    cert: X509,
    key: PrivateKey,
    state: State,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("subject", &subject_string(&self.cert))
            .field("key", &self.key)
            .field("issued", &self.state.issued.len())
            .field("revoked", &self.state.revoked.len())
            .finish()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    next_crl_number: u64,
    issued: Vec<IssuedRecord>,
    revoked: Vec<RevokedRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
struct IssuedRecord {
    serial: String,
    subject: String,
    organ_code: Option<String>,
    not_after: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct RevokedRecord {
    serial: String,
    revoked_at: u64,
    reason: Option<RevocationReason>,
}

#[derive(Clone, Copy)]
enum Role {
    Sign,
    Encrypt,
    Tls,
    Combined,
    Directory,
}

impl Ca {
    /// A new self-signed root, valid from five minutes ago (tolerates clock skew) for `days`.
    pub fn create(name: &str, kind: KeyKind, days: u32) -> Result<Self, Error> {
        let from = OffsetDateTime::from_unix_timestamp(unix_now() - 300)
            .map_err(|e| Error::Request(format!("clock: {e}")))?;
        Self::create_at(name, kind, from, days)
    }

    /// A new self-signed root valid from `not_before`: test PKIs need a CA that was already valid
    /// when a document was signed in the past.
    pub fn create_at(
        name: &str,
        kind: KeyKind,
        not_before: OffsetDateTime,
        days: u32,
    ) -> Result<Self, Error> {
        if name.trim().is_empty() {
            return Err(Error::Request("the CA name is empty".into()));
        }
        let (from, until) = validity(not_before.unix_timestamp(), days)?;
        let key = PrivateKey::generate(kind)?;
        let mut subject = X509NameBuilder::new()?;
        subject.append_entry_by_text("CN", name)?;
        subject.append_entry_by_text("O", name)?;
        let subject = subject.build();
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        let serial = random_serial()?.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&subject)?;
        b.set_issuer_name(&subject)?;
        b.set_pubkey(key.pkey())?;
        b.set_not_before(&from)?;
        b.set_not_after(&until)?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(key.pkey(), MessageDigest::sha256())?;
        Ok(Self {
            cert: b.build(),
            key,
            state: State {
                next_crl_number: 1,
                ..State::default()
            },
        })
    }

    /// Reassembles a CA from its stored parts.
    pub fn from_parts(cert_pem: &[u8], key: PrivateKey, state_json: &[u8]) -> Result<Self, Error> {
        let cert = X509::from_pem(cert_pem).map_err(|e| Error::Parse {
            what: "certificate",
            reason: e.to_string(),
        })?;
        if !key.matches(&cert) {
            return Err(Error::Request(
                "the CA key does not match the CA certificate".into(),
            ));
        }
        let state = serde_json::from_slice(state_json).map_err(|e| Error::State(e.to_string()))?;
        Ok(Self { cert, key, state })
    }

    /// The CA certificate: the trust anchor to hand out.
    pub fn cert(&self) -> &X509Ref {
        &self.cert
    }

    /// The CA key, to store (encrypted) beside the certificate.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// The bookkeeping to store beside the certificate.
    pub fn state_json(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec_pretty(&self.state).map_err(|e| Error::State(e.to_string()))
    }

    /// Issues an agency's certificates in the requested profile.
    pub fn issue(&mut self, req: &IssueRequest) -> Result<Issued, Error> {
        check_organ_code(&req.org)?;
        if req.days == 0 {
            return Err(Error::Request("validity must be at least one day".into()));
        }
        if req.name.trim().is_empty() {
            return Err(Error::Request("the agency name is empty".into()));
        }
        let roles: &[(&'static str, Role)] = match (req.profile, req.kind) {
            (Profile::Combined, KeyKind::Rsa) => &[("agency", Role::Combined)],
            (Profile::Combined, _) => {
                return Err(Error::Request(
                    "the combined profile is for RSA keys (one key signs and decrypts)".into(),
                ))
            }
            (Profile::Separate, _) => &[
                ("sign", Role::Sign),
                ("enc", Role::Encrypt),
                ("tls", Role::Tls),
            ],
            (Profile::Hosted, _) => &[("sign", Role::Sign), ("enc", Role::Encrypt)],
            (Profile::Directory, _) => &[("directory", Role::Directory)],
        };
        let mut issued = Vec::with_capacity(roles.len());
        for &(name, role) in roles {
            let key = PrivateKey::generate(req.kind)?;
            let cert = self.issue_one(req, role, &key)?;
            self.state.issued.push(IssuedRecord {
                serial: serial_hex(&cert),
                subject: subject_string(&cert),
                organ_code: organ_code(&cert),
                not_after: cert.not_after().to_string(),
            });
            issued.push((name, cert, key));
        }
        Ok(Issued { roles: issued })
    }

    fn issue_one(&self, req: &IssueRequest, role: Role, key: &PrivateKey) -> Result<X509, Error> {
        let mut subject = X509NameBuilder::new()?;
        subject.append_entry_by_text("CN", &req.name)?;
        subject.append_entry_by_text("O", &req.name)?;
        subject.append_entry_by_text("organizationIdentifier", &req.org)?;
        let subject = subject.build();
        let not_before = match req.not_before {
            Some(t) => t.unix_timestamp(),
            None => unix_now() - 300,
        };
        let (from, until) = validity(not_before, req.days)?;

        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        let serial = random_serial()?.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&subject)?;
        b.set_issuer_name(self.cert.subject_name())?;
        b.set_pubkey(key.pkey())?;
        b.set_not_before(&from)?;
        b.set_not_after(&until)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        let rsa = req.kind == KeyKind::Rsa;
        let mut usage = KeyUsage::new();
        usage.critical();
        let mut eku = ExtendedKeyUsage::new();
        match role {
            Role::Sign => {
                usage.digital_signature().non_repudiation();
                eku.email_protection();
            }
            Role::Encrypt if rsa => {
                usage.key_encipherment().data_encipherment();
                eku.email_protection();
            }
            Role::Encrypt => {
                usage.key_agreement();
                eku.email_protection();
            }
            Role::Tls => {
                usage.digital_signature();
                if rsa {
                    usage.key_encipherment();
                }
                eku.server_auth().client_auth();
            }
            Role::Directory => {
                usage.digital_signature();
                eku.other(crate::zone::DIRECTORY_SIGNING_OID);
            }
            Role::Combined => {
                usage
                    .digital_signature()
                    .non_repudiation()
                    .key_encipherment()
                    .data_encipherment();
                eku.email_protection().client_auth().server_auth();
            }
        }
        b.append_extension(usage.build()?)?;
        b.append_extension(eku.build()?)?;
        if matches!(role, Role::Tls | Role::Combined) {
            let label = req.org.replace('.', "-").to_ascii_lowercase();
            let san = SubjectAlternativeName::new()
                .dns(&format!("{label}.vdx.invalid"))
                .uri(&format!("urn:vdx:org:{}", req.org))
                .build(&b.x509v3_context(Some(&self.cert), None))?;
            b.append_extension(san)?;
        }
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(aki)?;
        b.sign(self.key.pkey(), MessageDigest::sha256())?;
        Ok(b.build())
    }

    /// Puts `cert` on the revocation list (it appears in the next [`Ca::crl`]).
    pub fn revoke(
        &mut self,
        cert: &X509Ref,
        reason: Option<RevocationReason>,
    ) -> Result<(), Error> {
        let serial = serial_hex(cert);
        let ca_key = self.cert.public_key()?;
        let ours = cert
            .issuer_name()
            .try_cmp(self.cert.subject_name())?
            .is_eq()
            && cert.verify(&ca_key).unwrap_or(false);
        if !ours {
            return Err(Error::NotOurs { serial });
        }
        if self.state.revoked.iter().any(|r| r.serial == serial) {
            return Err(Error::AlreadyRevoked { serial });
        }
        self.state.revoked.push(RevokedRecord {
            serial,
            revoked_at: unix_now() as u64,
            reason,
        });
        Ok(())
    }

    /// Signs a fresh CRL valid for `days`, with the next CRL number.
    pub fn crl(&mut self, days: u32) -> Result<X509Crl, Error> {
        let mut entries = Vec::with_capacity(self.state.revoked.len());
        for r in &self.state.revoked {
            let serial = BigNum::from_hex_str(&r.serial)
                .map_err(|_| Error::State(format!("bad serial {}", r.serial)))?
                .to_vec();
            entries.push(crl::Entry {
                serial,
                revoked_at: UNIX_EPOCH + Duration::from_secs(r.revoked_at),
                reason: r.reason,
            });
        }
        let number = self.state.next_crl_number.max(1);
        let list = crl::build(
            &self.cert,
            &self.key,
            number,
            &entries,
            days,
            SystemTime::now(),
        )?;
        self.state.next_crl_number = number + 1;
        Ok(list)
    }
}

/// Organ codes are short, and letters, digits and dots only (`000.00.00.G22`).
fn check_organ_code(code: &str) -> Result<(), Error> {
    let ok = !code.is_empty()
        && code.len() <= 32
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        && !code.split('.').any(str::is_empty);
    if ok {
        Ok(())
    } else {
        Err(Error::Request(format!(
            "{code:?} is not an organ code (letters, digits and dots, like 000.00.00.G22)"
        )))
    }
}

/// `not_before` (Unix seconds) and `days` later, refusing empty or unrepresentable periods.
fn validity(not_before: i64, days: u32) -> Result<(Asn1Time, Asn1Time), Error> {
    if days == 0 {
        return Err(Error::Request("validity must be at least one day".into()));
    }
    let not_after = not_before
        .checked_add(i64::from(days) * 86_400)
        .ok_or_else(|| Error::Request("validity period out of range".into()))?;
    let time = |t: i64| -> Result<Asn1Time, Error> {
        let t = libc_time(t)?;
        Ok(Asn1Time::from_unix(t)?)
    };
    Ok((time(not_before)?, time(not_after)?))
}

/// Unix seconds as the platform's `time_t`.
fn libc_time<T: TryFrom<i64>>(t: i64) -> Result<T, Error> {
    T::try_from(t).map_err(|_| Error::Request(format!("time {t} out of range")))
}

/// A positive 127-bit serial: unpredictable, and never negative in DER.
fn random_serial() -> Result<BigNum, Error> {
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    Ok(serial)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod cases {

    use openssl::x509::X509KeyUsage;

    use vdx_crypto::{KeyKind, PrivateKey};

    use crate::testkit::*;
    use crate::{parse_crls, Ca, Issued, Profile, RevocationReason};

    #[test]
    fn profiles_carry_the_usages_each_role_needs() {
        let (ca, [ec, rsa, combined]) = ca_with_every_profile();
        let ku = |issued: &Issued, role: &str| cert_of(issued, role).key_usage().unwrap();
        type Ku = X509KeyUsage;
        assert_eq!(ku(&ec, "sign"), Ku::DIGITAL_SIGNATURE | Ku::NON_REPUDIATION);
        assert_eq!(ku(&ec, "enc"), Ku::KEY_AGREEMENT);
        assert_eq!(ku(&ec, "tls"), Ku::DIGITAL_SIGNATURE);
        assert_eq!(
            ku(&rsa, "enc"),
            Ku::KEY_ENCIPHERMENT | Ku::DATA_ENCIPHERMENT
        );
        assert_eq!(
            ku(&rsa, "tls"),
            Ku::DIGITAL_SIGNATURE | Ku::KEY_ENCIPHERMENT
        );
        assert_eq!(
            ku(&combined, "agency"),
            Ku::DIGITAL_SIGNATURE
                | Ku::NON_REPUDIATION
                | Ku::KEY_ENCIPHERMENT
                | Ku::DATA_ENCIPHERMENT
        );
        let tls = cert_of(&ec, "tls");
        let names: Vec<String> = tls
            .subject_alt_names()
            .unwrap()
            .iter()
            .map(|n| {
                n.dnsname()
                    .or(n.uri())
                    .map(str::to_owned)
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            names,
            ["000-00-00-g22.vdx.invalid", "urn:vdx:org:000.00.00.G22"]
        );
        assert!(cert_of(&ec, "sign").subject_alt_names().is_none());

        // What OpenSSL's own purpose checks make of them: `cms -verify` (smimesign) accepts the
        // signing and combined certificates, `verify -purpose sslserver/sslclient` the TLS ones.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "ca.pem", &ca.cert().to_pem().unwrap());
        write(d, "msg.txt", b"van ban\n");
        for (issued, role) in [(&ec, "sign"), (&rsa, "sign"), (&combined, "agency")] {
            write(d, "signer.pem", &cert_of(issued, role).to_pem().unwrap());
            write(
                d,
                "signer.key",
                &key_of(issued, role).to_pkcs8_pem(None).unwrap(),
            );
            let (ok, text) = openssl(
                d,
                &[
                    "cms",
                    "-sign",
                    "-in",
                    "msg.txt",
                    "-signer",
                    "signer.pem",
                    "-inkey",
                    "signer.key",
                    "-outform",
                    "DER",
                    "-out",
                    "msg.p7s",
                    "-nodetach",
                ],
            );
            assert!(ok, "{text}");
            let (ok, text) = openssl(
                d,
                &[
                    "cms", "-verify", "-in", "msg.p7s", "-inform", "DER", "-CAfile", "ca.pem",
                    "-out", "out.txt",
                ],
            );
            assert!(ok, "{role}: {text}");
        }
        for (issued, role) in [(&ec, "tls"), (&rsa, "tls"), (&combined, "agency")] {
            write(d, "tls.pem", &cert_of(issued, role).to_pem().unwrap());
            for purpose in ["sslserver", "sslclient"] {
                let (ok, text) = openssl(
                    d,
                    &[
                        "verify", "-purpose", purpose, "-CAfile", "ca.pem", "tls.pem",
                    ],
                );
                assert!(ok, "{role} {purpose}: {text}");
            }
        }
        // The encryption certificate is not a signing one, for OpenSSL either.
        write(d, "enc.pem", &cert_of(&ec, "enc").to_pem().unwrap());
        let (ok, _) = openssl(
            d,
            &[
                "verify",
                "-purpose",
                "smimesign",
                "-CAfile",
                "ca.pem",
                "enc.pem",
            ],
        );
        assert!(!ok);
    }

    #[test]
    fn a_hosted_agency_gets_sign_and_enc_but_no_tls() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let issued = ca
            .issue(&request("000.01.41.H41", KeyKind::EcP256, Profile::Hosted))
            .unwrap();
        let roles: Vec<&str> = issued.roles().iter().map(|(r, _, _)| *r).collect();
        assert_eq!(roles, ["sign", "enc"]);
        for (_, cert, _) in issued.roles() {
            assert_eq!(crate::organ_code(cert).as_deref(), Some("000.01.41.H41"));
        }
    }

    #[test]
    fn requests_that_cannot_be_issued_are_refused() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let ec_combined = request("000.00.00.H41", KeyKind::EcP256, Profile::Combined);
        assert_eq!(ca.issue(&ec_combined).unwrap_err().code(), "request");
        let long = "9".repeat(33);
        for bad in ["", "bad code", "000.00.00.G22/1", "a..b", long.as_str()] {
            let req = request(bad, KeyKind::EcP256, Profile::Separate);
            assert_eq!(ca.issue(&req).unwrap_err().code(), "request", "{bad:?}");
        }
        let mut zero = request("000.00.00.G22", KeyKind::EcP256, Profile::Separate);
        zero.days = 0;
        assert_eq!(ca.issue(&zero).unwrap_err().code(), "request");
        let mut empty = request("000.00.00.G22", KeyKind::EcP256, Profile::Separate);
        empty.name = " ".into();
        assert_eq!(ca.issue(&empty).unwrap_err().code(), "request");
        // Nothing refused was recorded as issued.
        let state: serde_json::Value = serde_json::from_slice(&ca.state_json().unwrap()).unwrap();
        assert_eq!(state["issued"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn ca_state_survives_storage() {
        let mut ca = Ca::create("Root", KeyKind::Rsa, 30).unwrap();
        let issued = issue_ec(&mut ca, "000.00.00.G22");
        ca.revoke(
            &cert_of(&issued, "sign"),
            Some(RevocationReason::Superseded),
        )
        .unwrap();
        ca.crl(7).unwrap();
        let pem = ca.key().to_pkcs8_pem(Some(b"pw")).unwrap();
        let key = PrivateKey::from_bytes(&pem, Some(b"pw")).unwrap();
        let state = ca.state_json().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&state).unwrap();
        assert_eq!(json["issued"].as_array().unwrap().len(), 3);
        assert_eq!(json["issued"][0]["organ_code"], "000.00.00.G22");
        assert_eq!(json["revoked"][0]["reason"], "superseded");
        let mut back = Ca::from_parts(&ca.cert().to_pem().unwrap(), key, &state).unwrap();
        // The CRL number continues, and the revocation is still listed.
        let crl = back.crl(7).unwrap();
        let text = format!("{:?}", crl.get_revoked().map(|r| r.len()));
        assert_eq!(text, "Some(1)");
        let parsed = parse_crls(&[crl.to_pem().unwrap(), crl.to_pem().unwrap()].concat()).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parse_crls(&crl.to_der().unwrap()).unwrap().len(), 1);
        assert!(parse_crls(b"not a crl").is_err());
        let json: serde_json::Value = serde_json::from_slice(&back.state_json().unwrap()).unwrap();
        assert_eq!(json["next_crl_number"], 3);

        // A key that is not the CA's, or a damaged state, is refused.
        let stranger = PrivateKey::generate(KeyKind::EcP256).unwrap();
        let cert_pem = ca.cert().to_pem().unwrap();
        assert!(Ca::from_parts(&cert_pem, stranger, &state).is_err());
        let key = PrivateKey::from_bytes(&pem, Some(b"pw")).unwrap();
        let err = Ca::from_parts(&cert_pem, key, b"{").err().unwrap();
        assert_eq!(err.code(), "state");
    }
}
