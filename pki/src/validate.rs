//! Path validation: is this signer's certificate trusted, was it valid when it signed, and is it
//! revoked now?
//!
//! Chains are built and checked by OpenSSL with validity evaluated at the signing time. Revocation is
//! checked here, over the path OpenSSL built, against the CRLs given: rust-openssl cannot hand
//! in-memory CRLs to a verification (`X509_STORE_add_crl` is not wrapped, and loading them from a file
//! would put file I/O in this crate). The rules are OpenSSL's `CRL_CHECK | CRL_CHECK_ALL` with
//! `NO_CHECK_TIME` for the certificates: every certificate on the path but the anchor needs a CRL from
//! its issuer that is signed by the issuer's key, current now, and free of critical extensions we do
//! not understand (delta CRLs, partitioned or indirect CRLs); a certificate listed on any CRL signed
//! by its issuer is revoked, whenever that CRL was issued and whether or not the certificate has
//! expired since. Everything fails closed.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use der::Decode;
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{
    CrlStatus, X509Crl, X509KeyUsage, X509NameRef, X509Ref, X509StoreContext, X509VerifyResult,
    X509,
};
use time::OffsetDateTime;
use x509_cert::crl::CertificateList;

use crate::names::{name_string, offset_date_time, serial_hex, subject_string};
use crate::{organ_code, Error};

// OpenSSL verification results (x509_vfy.h, OpenSSL 3.0) we turn into specific verdicts.
const ERR_CERT_NOT_YET_VALID: i32 = 9;
const ERR_CERT_HAS_EXPIRED: i32 = 10;
/// No path to an anchor: missing or untrusted issuer, self-signed, bad signature, not a CA, too long.
const ERR_UNTRUSTED: &[i32] = &[
    2,  // unable to get issuer certificate
    4,  // unable to decrypt certificate's signature
    6,  // unable to decode issuer public key
    7,  // certificate signature failure
    18, // self-signed certificate
    19, // self-signed certificate in certificate chain
    20, // unable to get local issuer certificate
    21, // unable to verify the first certificate
    22, // certificate chain too long
    24, // issuer certificate has no public key
    25, // path length constraint exceeded
    27, // certificate not trusted
    28, // certificate rejected
    29, // subject issuer mismatch
    30, // authority and subject key identifier mismatch
    31, // authority and issuer serial number mismatch
    32, // key usage does not include certificate signing
    37, // invalid non-CA certificate (basicConstraints)
    79, // invalid CA certificate
];

/// Trust anchors, known intermediates and revocation lists: everything a verdict depends on, held
/// together so every signer of a document is judged by the same rules.
pub struct TrustStore {
    anchors: Vec<X509>,
    intermediates: Vec<X509>,
    crls: Vec<Crl>,
    /// Paths that validated, by the certificates they were built from (see [`ValidPath`]).
    paths: Mutex<HashMap<Vec<Vec<u8>>, ValidPath>>,
}

/// More distinct signers than this empty the path cache and start again: a bound on its memory.
const MAX_CACHED_PATHS: usize = 1024;

/// A path OpenSSL built and verified. Its signatures and constraints do not change, and the
/// anchors are the store's own, so the same path is valid at any time inside every certificate's
/// validity period: from the latest notBefore, included, to the earliest notAfter, excluded (at
/// notAfter OpenSSL already calls a certificate expired), in Unix seconds. Building a path costs more than checking the
/// signature it vouches for, and a node validates the same few signers for every dispatch.
/// Outside the window the path is built again, which gives OpenSSL's own verdict.
struct ValidPath {
    path: Vec<X509>,
    from: i64,
    until: i64,
}

impl ValidPath {
    fn of(path: Vec<X509>) -> Option<Self> {
        let mut window = (i64::MIN, i64::MAX);
        for cert in &path {
            let from = offset_date_time(cert.not_before())?.unix_timestamp();
            let until = offset_date_time(cert.not_after())?.unix_timestamp();
            window = (window.0.max(from), window.1.min(until));
        }
        Some(Self {
            path,
            from: window.0,
            until: window.1,
        })
    }
}

/// A CRL with what we learnt about it when the store was built.
struct Crl {
    crl: X509Crl,
    /// Why the CRL cannot be relied on whatever the issuer (an unsupported critical extension).
    defect: Option<String>,
    /// Issuer certificates (DER) whose key verified this CRL's signature. A loaded CRL does not
    /// change, so its signature is checked once per issuer, not once per validation (a node
    /// validates several signers per dispatch).
    verified_with: Mutex<Vec<Vec<u8>>>,
}

impl Crl {
    fn signed_by(&self, issuer: &X509Ref) -> bool {
        let Ok(der) = issuer.to_der() else {
            return false;
        };
        let mut verified = self
            .verified_with
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if verified.contains(&der) {
            return true;
        }
        let signed = issuer
            .public_key()
            .and_then(|key| self.crl.verify(&key))
            .unwrap_or(false);
        if signed {
            verified.push(der);
        }
        signed
    }
}

/// A signer whose certificate path validated at its signing time and which no CRL revokes. Only
/// [`TrustStore::validate_signer`] makes one, so holding one proves the checks ran.
#[derive(Debug, Clone)]
pub struct ValidatedSigner {
    subject: String,
    organ_code: Option<String>,
    issuer: String,
    serial: String,
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
    signing_time: Option<OffsetDateTime>,
    revocation_checked: bool,
    cert: X509,
}

impl ValidatedSigner {
    /// Subject as `CN=..., O=..., organizationIdentifier=...`, for people reading the verdict.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The organ code from the subject's organizationIdentifier, if the certificate has one: what
    /// the dispatch header's sender is bound to.
    pub fn organ_code(&self) -> Option<&str> {
        self.organ_code.as_deref()
    }

    /// The issuing CA's name, in the form of [`ValidatedSigner::subject`].
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Serial number, lower-case hex: with the issuer, names the certificate in CRLs and audits.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Start of the certificate's validity (`None` only if OpenSSL could not read the time).
    pub fn not_before(&self) -> Option<OffsetDateTime> {
        self.not_before
    }

    /// End of the certificate's validity (`None` only if OpenSSL could not read the time).
    pub fn not_after(&self) -> Option<OffsetDateTime> {
        self.not_after
    }

    /// The signing time the path was validated at (`None`: the document had none; validated now).
    pub fn signing_time(&self) -> Option<OffsetDateTime> {
        self.signing_time
    }

    /// True when CRLs were given and every certificate on the path was checked against one; false
    /// when the store had no CRLs, so a verdict can say revocation was not checked.
    pub fn revocation_checked(&self) -> bool {
        self.revocation_checked
    }

    /// The signer's certificate.
    pub fn certificate(&self) -> &X509Ref {
        &self.cert
    }
}

/// Every certificate in PEM text (several allowed) or one DER certificate: trust anchor files and
/// chains come in both shapes.
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

/// Every CRL in PEM text (several allowed) or one DER CRL, as CAs publish them.
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
    /// certificate on the path, and a missing or unusable CRL is a refusal.
    pub fn new(
        anchors: Vec<X509>,
        intermediates: Vec<X509>,
        crls: Vec<X509Crl>,
    ) -> Result<Self, Error> {
        if anchors.is_empty() {
            return Err(Error::Request("at least one trust anchor is needed".into()));
        }
        let crls = crls
            .into_iter()
            .map(|crl| {
                let defect = crl_defect(&crl);
                Crl {
                    crl,
                    defect,
                    verified_with: Mutex::default(),
                }
            })
            .collect();
        Ok(Self {
            anchors,
            intermediates,
            crls,
            paths: Mutex::default(),
        })
    }

    /// True when the store holds CRLs, so validation checks revocation.
    pub fn checks_revocation(&self) -> bool {
        !self.crls.is_empty()
    }

    /// How many CRLs the store checks against (what an operator confirms after replacing one).
    pub fn crl_count(&self) -> usize {
        self.crls.len()
    }

    /// When the first issuer runs out of current CRLs, with that issuer: each issuer's latest
    /// nextUpdate among its usable CRLs (an older CRL kept beside a fresher one does not count),
    /// the soonest of those. Past it, every certificate of that issuer is refused, so an operator
    /// must renew its CRL before.
    pub fn crl_next_update(&self) -> Option<(OffsetDateTime, String)> {
        let mut latest: HashMap<String, OffsetDateTime> = HashMap::new();
        for entry in self.crls.iter().filter(|entry| entry.defect.is_none()) {
            let Some(next) = entry.crl.next_update().and_then(offset_date_time) else {
                continue;
            };
            let issuer = name_string(entry.crl.issuer_name());
            let kept = latest.entry(issuer).or_insert(next);
            *kept = (*kept).max(next);
        }
        latest
            .into_iter()
            .map(|(issuer, next)| (next, issuer))
            .min_by_key(|(next, _)| *next)
    }

    /// Validates `cert` as a document signer at `signing_time` (now when `None`), building its path
    /// with `extra_chain` (certificates the document carried) and the store's intermediates.
    ///
    /// Key usage, when present, must allow digitalSignature or nonRepudiation; extended key usage
    /// is not required and purposes are not checked.
    pub fn validate_signer(
        &self,
        cert: &X509Ref,
        extra_chain: &[X509],
        signing_time: Option<OffsetDateTime>,
    ) -> Result<ValidatedSigner, Error> {
        let subject = subject_string(cert);
        if let Some(usage) = cert.key_usage() {
            if !usage.intersects(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION) {
                return Err(Error::KeyUsage { subject });
            }
        }
        let now = OffsetDateTime::now_utc();
        let at = signing_time.unwrap_or(now);
        let path = self.build_path(cert, extra_chain, at)?;
        let revocation_checked = self.checks_revocation();
        if revocation_checked {
            self.check_revocation(&path, now)?;
        }
        Ok(ValidatedSigner {
            organ_code: organ_code(cert),
            issuer: name_string(cert.issuer_name()),
            serial: serial_hex(cert),
            not_before: offset_date_time(cert.not_before()),
            not_after: offset_date_time(cert.not_after()),
            signing_time,
            revocation_checked,
            cert: cert.to_owned(),
            subject,
        })
    }

    /// OpenSSL's chain building with validity checked at `at`; returns the path, leaf first. A
    /// path built before from the same certificates is used again while `at` is inside its
    /// validity ([`ValidPath`]).
    fn build_path(
        &self,
        cert: &X509Ref,
        chain: &[X509],
        at: OffsetDateTime,
    ) -> Result<Vec<X509>, Error> {
        let key = std::iter::once(cert.to_der())
            .chain(chain.iter().map(|c| c.to_der()))
            .collect::<Result<Vec<_>, _>>()?;
        let at_secs = at.unix_timestamp();
        let mut paths = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(valid) = paths.get(&key) {
            if (valid.from..valid.until).contains(&at_secs) {
                return Ok(valid.path.clone());
            }
        }
        drop(paths);
        let path = self.verify_path(cert, chain, at)?;
        if let Some(valid) = ValidPath::of(path.clone()) {
            paths = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
            if paths.len() >= MAX_CACHED_PATHS {
                paths.clear();
            }
            paths.insert(key, valid);
        }
        Ok(path)
    }

    fn verify_path(
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
        let (ok, error, path, failing) = ctx.init(&store, cert, &untrusted, |c| {
            let ok = c.verify_cert()?;
            let path: Vec<X509> = c
                .chain()
                .map(|s| s.iter().map(|x| x.to_owned()).collect())
                .unwrap_or_default();
            let failing = c.current_cert().map(|x| x.to_owned());
            Ok((ok, c.error(), path, failing))
        })?;
        if ok && error == X509VerifyResult::OK && !path.is_empty() {
            return Ok(path);
        }
        let who = failing.as_deref().unwrap_or(cert);
        let subject = subject_string(who);
        let at_text = at.to_string();
        let reason = error.error_string().to_owned();
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
            code if ERR_UNTRUSTED.contains(&code) => Error::Untrusted { subject, reason },
            _ => Error::Other { subject, reason },
        })
    }

    /// Every certificate on the path but the anchor must be on no CRL signed by its issuer, and
    /// each issuer must have at least one usable CRL (signed by its key, current, understood).
    fn check_revocation(&self, path: &[X509], now: OffsetDateTime) -> Result<(), Error> {
        for pair in path.windows(2) {
            let [cert, issuer] = pair else { continue };
            let subject = subject_string(cert);
            let mut usable = false;
            let mut problems = Vec::new();
            for entry in self
                .crls
                .iter()
                .filter(|c| same_name(c.crl.issuer_name(), issuer.subject_name()))
            {
                if !entry.signed_by(issuer) {
                    problems.push("its signature does not verify with the issuer's key".to_owned());
                    continue;
                }
                // A listing on a genuine CRL revokes, however old the CRL or the certificate.
                if let CrlStatus::Revoked(revoked) = entry.crl.get_by_cert(cert) {
                    let since = offset_date_time(revoked.revocation_date())
                        .map_or_else(|| "?".to_owned(), |t| t.to_string());
                    return Err(Error::Revoked {
                        serial: serial_hex(cert),
                        subject: format!("{subject} (revoked at {since})"),
                    });
                }
                match crl_unusable(entry, issuer, now) {
                    Some(problem) => problems.push(problem),
                    None => usable = true,
                }
            }
            if !usable {
                return Err(if problems.is_empty() {
                    Error::CrlMissing { subject }
                } else {
                    Error::CrlInvalid {
                        subject,
                        reason: problems.join("; "),
                    }
                });
            }
        }
        Ok(())
    }
}

fn same_name(a: &X509NameRef, b: &X509NameRef) -> bool {
    a.try_cmp(b).is_ok_and(Ordering::is_eq)
}

/// Why a CRL whose signature verifies still cannot vouch that a certificate is not revoked.
fn crl_unusable(entry: &Crl, issuer: &X509Ref, now: OffsetDateTime) -> Option<String> {
    if let Some(defect) = &entry.defect {
        return Some(defect.clone());
    }
    if let Some(usage) = issuer.key_usage() {
        if !usage.contains(X509KeyUsage::CRL_SIGN) {
            return Some("the issuer's keyUsage does not allow cRLSign".into());
        }
    }
    match offset_date_time(entry.crl.last_update()) {
        Some(this_update) if this_update <= now => {}
        Some(this_update) => return Some(format!("the CRL is not valid before {this_update}")),
        None => return Some("unreadable thisUpdate".into()),
    }
    if let Some(next) = entry.crl.next_update() {
        match offset_date_time(next) {
            Some(next_update) if next_update >= now => {}
            Some(next_update) => {
                return Some(format!(
                    "the CRL expired at its nextUpdate {next_update}; fetch a fresh one"
                ))
            }
            None => return Some("unreadable nextUpdate".into()),
        }
    }
    None
}

/// A CRL we cannot rely on whoever issued it: unparseable, or with a critical extension (CRL or
/// entry) that we do not implement, such as a delta CRL indicator, an issuing distribution point
/// (partitioned CRL) or a certificate issuer (indirect CRL).
fn crl_defect(crl: &X509Crl) -> Option<String> {
    let der = match crl.to_der() {
        Ok(der) => der,
        Err(e) => return Some(format!("cannot encode the CRL: {e}")),
    };
    let list = match CertificateList::from_der(&der) {
        Ok(list) => list,
        Err(e) => return Some(format!("malformed CRL: {e}")),
    };
    let tbs = &list.tbs_cert_list;
    let list_exts = tbs.crl_extensions.iter().flatten();
    let entry_exts = tbs
        .revoked_certificates
        .iter()
        .flatten()
        .flat_map(|r| r.crl_entry_extensions.iter().flatten());
    list_exts
        .chain(entry_exts)
        .find(|ext| ext.critical)
        .map(|ext| format!("unsupported critical CRL extension {}", ext.extn_id))
}

#[cfg(test)]
mod cases {

    use std::time::{Duration as StdDuration, SystemTime};

    use time::{Duration, OffsetDateTime};
    use vdx_crypto::KeyKind;

    use crate::names::{offset_date_time, serial_hex};
    use crate::testkit::*;
    use crate::{crl, parse_certs, Ca, Profile, RevocationReason};
    use crate::{subject_string, TrustStore};

    #[test]
    fn the_soonest_crl_next_update_is_reported_with_its_issuer() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let mut other = Ca::create("Other", KeyKind::EcP256, 30).unwrap();
        let anchors = vec![ca.cert().to_owned(), other.cert().to_owned()];
        let none = TrustStore::new(anchors.clone(), vec![], vec![]).unwrap();
        assert!(none.crl_next_update().is_none());
        // Root's older CRL (1 day) beside its fresh one (7 days) does not count; Other's 2 days do.
        let crls = vec![
            ca.crl(1).unwrap(),
            ca.crl(7).unwrap(),
            other.crl(2).unwrap(),
        ];
        let store = TrustStore::new(anchors.clone(), vec![], crls).unwrap();
        let (next, issuer) = store.crl_next_update().unwrap();
        assert!(issuer.contains("Other"), "{issuer}");
        let left = next - OffsetDateTime::now_utc();
        assert!(left > Duration::days(2) - Duration::minutes(5) && left <= Duration::days(2));
        assert_eq!(store.crl_count(), 3);
        let root_only = TrustStore::new(
            anchors,
            vec![],
            vec![ca.crl(1).unwrap(), ca.crl(7).unwrap()],
        );
        let (next, _) = root_only.unwrap().crl_next_update().unwrap();
        assert!(next - OffsetDateTime::now_utc() > Duration::days(6));
    }

    #[test]
    fn issued_signers_validate_with_their_organ_code() {
        let (mut ca, [ec, rsa, combined]) = ca_with_every_profile();
        let roles: Vec<_> = combined.roles().into_iter().map(|(r, _, _)| r).collect();
        assert_eq!(roles, ["agency"]);
        let roles: Vec<_> = ec.roles().into_iter().map(|(r, _, _)| r).collect();
        assert_eq!(roles, ["sign", "enc", "tls"]);
        for (_, cert, key) in ec.roles().into_iter().chain(combined.roles()) {
            assert!(key.matches(cert));
        }

        let crl = ca.crl(7).unwrap();
        let trust = store(&ca, vec![crl]);
        for (issued, role, org) in [
            (&ec, "sign", "000.00.00.G22"),
            (&rsa, "sign", "000.00.00.H26"),
            (&combined, "agency", "000.00.00.H41"),
        ] {
            let cert = cert_of(issued, role);
            let signer = trust.validate_signer(&cert, &[], None).unwrap();
            assert_eq!(signer.organ_code(), Some(org));
            assert_eq!(
                signer.subject(),
                format!("CN=Agency {org}, O=Agency {org}, organizationIdentifier={org}")
            );
            assert_eq!(signer.issuer(), "CN=Root, O=Root");
            assert_eq!(signer.serial(), serial_hex(&cert));
            assert!(signer.revocation_checked());
            assert!(signer.signing_time().is_none());
            let (from, until) = (signer.not_before().unwrap(), signer.not_after().unwrap());
            assert_eq!(until - from, Duration::days(30));
            assert!(from <= OffsetDateTime::now_utc());
            assert_eq!(
                signer.certificate().to_der().unwrap(),
                cert.to_der().unwrap()
            );
        }
        // Without CRLs the verdict says revocation was not checked.
        let plain = store(&ca, vec![]);
        let signer = plain
            .validate_signer(&cert_of(&ec, "sign"), &[], None)
            .unwrap();
        assert!(!signer.revocation_checked());
    }

    #[test]
    fn refusals_name_their_reason() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 3650).unwrap();
        let other = Ca::create("Other root", KeyKind::EcP256, 30).unwrap();
        let good = issue_ec(&mut ca, "000.00.00.G22");
        let mut old = request("000.00.00.G23", KeyKind::EcP256, Profile::Separate);
        old.not_before = Some(OffsetDateTime::now_utc() - Duration::days(400));
        let expired = ca.issue(&old).unwrap();
        let plain = store(&ca, vec![]);

        // Expired at the signing time (now), and not yet valid at a signing time before its start.
        let err = plain
            .validate_signer(&cert_of(&expired, "sign"), &[], None)
            .unwrap_err();
        assert_eq!(err.code(), "expired");
        assert!(err.to_string().contains("expired"), "{err}");
        let before = OffsetDateTime::now_utc() - Duration::days(3);
        let result = plain.validate_signer(&cert_of(&good, "sign"), &[], Some(before));
        assert_eq!(code(result), "not_yet_valid");
        // A path that validated now is not taken for valid at another time.
        let signer = cert_of(&good, "sign");
        plain.validate_signer(&signer, &[], None).unwrap();
        let result = plain.validate_signer(&signer, &[], Some(before));
        assert_eq!(code(result), "not_yet_valid");
        let later = OffsetDateTime::now_utc() + Duration::days(40);
        let result = plain.validate_signer(&signer, &[], Some(later));
        assert_eq!(code(result), "expired");
        plain.validate_signer(&signer, &[], None).unwrap();
        // At notAfter it has expired already, as OpenSSL says; a second earlier it had not.
        let not_after = offset_date_time(signer.not_after()).unwrap();
        let result = plain.validate_signer(&signer, &[], Some(not_after));
        assert_eq!(code(result), "expired");
        let last = not_after - Duration::seconds(1);
        plain.validate_signer(&signer, &[], Some(last)).unwrap();

        // An encryption certificate may not sign.
        let result = plain.validate_signer(&cert_of(&good, "enc"), &[], None);
        assert_eq!(code(result), "key_usage");

        // Another CA's root is not ours.
        let foreign = TrustStore::new(vec![other.cert().to_owned()], vec![], vec![]).unwrap();
        let err = foreign
            .validate_signer(&cert_of(&good, "sign"), &[], None)
            .unwrap_err();
        assert_eq!(err.code(), "untrusted");
        assert!(err.to_string().contains("local issuer"), "{err}");
        // A CA certificate (keyCertSign, cRLSign) does not sign documents, trusted or not.
        let result = store(&ca, vec![]).validate_signer(ca.cert(), &[], None);
        assert_eq!(code(result), "key_usage");
        // Handing the foreign root in the chain does not make it an anchor.
        let result =
            foreign.validate_signer(&cert_of(&good, "sign"), &[ca.cert().to_owned()], None);
        assert_eq!(code(result), "untrusted");
        assert!(TrustStore::new(vec![], vec![], vec![]).is_err());
    }

    #[test]
    fn revocation_applies_whenever_the_crl_was_issued() {
        // A CA that has existed for a year; a signing certificate valid from 100 to 40 days ago.
        let year_ago = OffsetDateTime::now_utc() - Duration::days(365);
        let mut ca = Ca::create_at("Root", KeyKind::EcP256, year_ago, 3650).unwrap();
        let mut req = request("000.00.00.G22", KeyKind::EcP256, Profile::Separate);
        req.not_before = Some(OffsetDateTime::now_utc() - Duration::days(100));
        req.days = 60;
        let old = ca.issue(&req).unwrap();
        let current = issue_ec(&mut ca, "000.00.00.H41");
        let signed_at = OffsetDateTime::now_utc() - Duration::days(70);
        let old_sign = cert_of(&old, "sign");

        // Signed while valid: validates today, with or without a (fresh) CRL.
        let result = store(&ca, vec![]).validate_signer(&old_sign, &[], Some(signed_at));
        assert_eq!(code(result), "ok");
        let fresh = ca.crl(7).unwrap();
        let result = store(&ca, vec![fresh]).validate_signer(&old_sign, &[], Some(signed_at));
        assert_eq!(code(result), "ok");
        // Signed after it expired: refused.
        let result = store(&ca, vec![]).validate_signer(&old_sign, &[], None);
        assert_eq!(code(result), "expired");

        // Revoked now (long after the signing time, and after it expired): the new CRL revokes it.
        ca.revoke(&old_sign, Some(RevocationReason::KeyCompromise))
            .unwrap();
        let current_sign = cert_of(&current, "sign");
        ca.revoke(&current_sign, None).unwrap();
        let crl = ca.crl(7).unwrap();
        let checked = store(&ca, vec![crl]);
        let err = checked
            .validate_signer(&old_sign, &[], Some(signed_at))
            .unwrap_err();
        assert_eq!(err.code(), "revoked");
        assert!(err.to_string().contains(&serial_hex(&old_sign)), "{err}");
        let signed_a_minute_ago = OffsetDateTime::now_utc() - Duration::minutes(1);
        let result = checked.validate_signer(&current_sign, &[], Some(signed_a_minute_ago));
        assert_eq!(code(result), "revoked");
        // The same agency's other certificates are untouched.
        let result = checked.validate_signer(&cert_of(&current, "tls"), &[], None);
        assert_eq!(code(result), "ok");

        // Revoking twice, or a certificate of another CA, is refused.
        assert_eq!(
            ca.revoke(&old_sign, None).unwrap_err().code(),
            "already_revoked"
        );
        let mut other = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let foreign = issue_ec(&mut other, "000.00.00.G22");
        let err = ca.revoke(&cert_of(&foreign, "sign"), None).unwrap_err();
        assert_eq!(err.code(), "not_ours");
        assert_eq!(
            ca.revoke(other.cert(), None).unwrap_err().code(),
            "not_ours"
        );
    }

    #[test]
    fn crls_that_cannot_vouch_fail_closed() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let issued = issue_ec(&mut ca, "000.00.00.G22");
        let sign = cert_of(&issued, "sign");

        // CRLs given, but none from this issuer.
        let mut third = Ca::create("Third", KeyKind::EcP256, 30).unwrap();
        let result = store(&ca, vec![third.crl(7).unwrap()]).validate_signer(&sign, &[], None);
        assert_eq!(code(result), "crl_missing");

        // A CRL with the issuer's name but another key (an impostor or a re-keyed CA).
        // Checked again on every validation (only a signature that verified is remembered).
        let mut impostor = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let impostors = store(&ca, vec![impostor.crl(7).unwrap()]);
        for _ in 0..2 {
            let result = impostors.validate_signer(&sign, &[], None);
            assert_eq!(code(result), "crl_invalid");
        }
        // ... which does not spoil a genuine one beside it.
        let genuine = ca.crl(7).unwrap();
        let both = store(&ca, vec![impostor.crl(7).unwrap(), genuine]);
        for _ in 0..2 {
            assert_eq!(code(both.validate_signer(&sign, &[], None)), "ok");
        }

        // A CRL past its nextUpdate, or not yet valid.
        let day = StdDuration::from_secs(86_400);
        let now = SystemTime::now();
        let stale = crl::build(ca.cert(), ca.key(), 9, &[], 1, now - 3 * day).unwrap();
        let result = store(&ca, vec![stale]).validate_signer(&sign, &[], None);
        assert_eq!(code(result), "crl_invalid");
        let early = crl::build(ca.cert(), ca.key(), 9, &[], 7, now + day).unwrap();
        let result = store(&ca, vec![early]).validate_signer(&sign, &[], None);
        assert_eq!(code(result), "crl_invalid");
        // A stale CRL still revokes what it lists.
        let entry = crl::Entry {
            serial: sign.serial_number().to_bn().unwrap().to_vec(),
            revoked_at: now - 3 * day,
            reason: None,
        };
        let stale = crl::build(ca.cert(), ca.key(), 9, &[entry], 1, now - 3 * day).unwrap();
        let result = store(&ca, vec![stale]).validate_signer(&sign, &[], None);
        assert_eq!(code(result), "revoked");
    }

    #[test]
    fn certificates_parse_from_pem_bundles_and_der() {
        let a = Ca::create("A", KeyKind::EcP256, 30).unwrap();
        let b = Ca::create("B", KeyKind::EcP256, 30).unwrap();
        let bundle = [a.cert().to_pem().unwrap(), b.cert().to_pem().unwrap()].concat();
        let certs = parse_certs(&bundle).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(subject_string(&certs[1]), "CN=B, O=B");
        assert_eq!(parse_certs(&a.cert().to_der().unwrap()).unwrap().len(), 1);
        assert_eq!(parse_certs(b"").unwrap_err().code(), "parse");
        assert_eq!(parse_certs(b"\x30\x03abc").unwrap_err().code(), "parse");
    }
}
