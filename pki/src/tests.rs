//! Issue with the dev CA, then validate: the profiles, every refusal, and the OpenSSL CLI's view of
//! what we produce (certificates for `openssl cms`, CRLs for `openssl verify -crl_check`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration as StdDuration, SystemTime};

use openssl::x509::{X509KeyUsage, X509Ref, X509};
use time::{Duration, OffsetDateTime};

use vdx_crypto::{KeyKind, PrivateKey};

use crate::names::serial_hex;
use crate::{crl, parse_certs, parse_crls, Ca, IssueRequest, Issued, Profile, RevocationReason};
use crate::{organ_code, subject_string, TrustStore};

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

fn cert_of(issued: &Issued, role: &str) -> X509 {
    issued
        .roles()
        .into_iter()
        .find(|(r, _, _)| *r == role)
        .map(|(_, c, _)| c.to_owned())
        .unwrap()
}

fn key_of<'a>(issued: &'a Issued, role: &str) -> &'a PrivateKey {
    issued
        .roles()
        .into_iter()
        .find(|(r, _, _)| *r == role)
        .map(|(_, _, k)| k)
        .unwrap()
}

fn store(ca: &Ca, crls: Vec<openssl::x509::X509Crl>) -> TrustStore {
    TrustStore::new(vec![ca.cert().to_owned()], vec![], crls).unwrap()
}

fn code(result: Result<crate::ValidatedSigner, crate::Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// Runs the OpenSSL CLI in `dir`; returns (success, stdout + stderr).
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
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
        .issue(&request("000.00.00.H26", KeyKind::Rsa, Profile::Separate))
        .unwrap();
    let combined = ca
        .issue(&request("000.00.00.H41", KeyKind::Rsa, Profile::Combined))
        .unwrap();
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
fn profiles_carry_the_usages_each_role_needs() {
    let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
    let ec = ca
        .issue(&request(
            "000.00.00.G22",
            KeyKind::EcP256,
            Profile::Separate,
        ))
        .unwrap();
    let rsa = ca
        .issue(&request("000.00.00.H26", KeyKind::Rsa, Profile::Separate))
        .unwrap();
    let combined = ca
        .issue(&request("000.00.00.H41", KeyKind::Rsa, Profile::Combined))
        .unwrap();
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
        Ku::DIGITAL_SIGNATURE | Ku::NON_REPUDIATION | Ku::KEY_ENCIPHERMENT | Ku::DATA_ENCIPHERMENT
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
                "cms", "-verify", "-in", "msg.p7s", "-inform", "DER", "-CAfile", "ca.pem", "-out",
                "out.txt",
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
    let result = foreign.validate_signer(&cert_of(&good, "sign"), &[ca.cert().to_owned()], None);
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
    let current = ca
        .issue(&request(
            "000.00.00.H41",
            KeyKind::EcP256,
            Profile::Separate,
        ))
        .unwrap();
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
    let foreign = other
        .issue(&request(
            "000.00.00.G22",
            KeyKind::EcP256,
            Profile::Separate,
        ))
        .unwrap();
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
    let issued = ca
        .issue(&request(
            "000.00.00.G22",
            KeyKind::EcP256,
            Profile::Separate,
        ))
        .unwrap();
    let sign = cert_of(&issued, "sign");

    // CRLs given, but none from this issuer.
    let mut third = Ca::create("Third", KeyKind::EcP256, 30).unwrap();
    let result = store(&ca, vec![third.crl(7).unwrap()]).validate_signer(&sign, &[], None);
    assert_eq!(code(result), "crl_missing");

    // A CRL with the issuer's name but another key (an impostor or a re-keyed CA).
    let mut impostor = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
    let result = store(&ca, vec![impostor.crl(7).unwrap()]).validate_signer(&sign, &[], None);
    assert_eq!(code(result), "crl_invalid");
    // ... which does not spoil a genuine one beside it.
    let genuine = ca.crl(7).unwrap();
    let both = vec![impostor.crl(7).unwrap(), genuine];
    assert_eq!(
        code(store(&ca, both).validate_signer(&sign, &[], None)),
        "ok"
    );

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
fn crls_are_honoured_by_the_openssl_cli() {
    for kind in [KeyKind::EcP256, KeyKind::Rsa] {
        let mut ca = Ca::create("Root", kind, 30).unwrap();
        let issued = ca
            .issue(&request(
                "000.00.00.G22",
                KeyKind::EcP256,
                Profile::Separate,
            ))
            .unwrap();
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
fn ca_state_survives_storage() {
    let mut ca = Ca::create("Root", KeyKind::Rsa, 30).unwrap();
    let issued = ca
        .issue(&request(
            "000.00.00.G22",
            KeyKind::EcP256,
            Profile::Separate,
        ))
        .unwrap();
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

#[test]
fn organ_codes_round_trip_through_certificates() {
    let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
    for org in ["000.00.00.G22", "000.00.00.H41", "H41.35", "X"] {
        let issued = ca
            .issue(&request(org, KeyKind::EcP256, Profile::Separate))
            .unwrap();
        for (_, cert, _) in issued.roles() {
            let cert: &X509Ref = cert;
            assert_eq!(organ_code(cert).as_deref(), Some(org));
        }
    }
    assert_eq!(organ_code(ca.cert()), None);
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
