use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::x509::X509;
use vdx_crypto::{KeyKind, PrivateKey};

use super::*;
use crate::testkit::*;
use crate::{Ca, Entry, Profile, TrustStore};

/// The time the zones are checked at: an hour after the first call, so that every certificate
/// the tests issue (valid from its issue on, for 30 days) is valid then, whatever the date.
fn at() -> u64 {
    static AT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *AT.get_or_init(|| now() + 3600)
}
const ROOT_CODE: &str = "000.00.00.A00";
const H41: &str = "000.00.00.H41";
const COMMUNE: &str = "000.01.41.H41";
const G22: &str = "000.00.00.G22";

/// A directory authority: certificate and key.
fn authority(ca: &mut Ca, code: &str) -> (X509, PrivateKey) {
    let issued = ca
        .issue(&request(code, KeyKind::EcP256, Profile::Directory))
        .unwrap();
    let (role, cert, key) = issued.into_roles().pop().unwrap();
    assert_eq!(role, "directory");
    (cert, key)
}

/// An agency with a node of its own, or hosted by `host`.
fn agency(ca: &mut Ca, code: &str, host: Option<&str>) -> ZoneEntry {
    let profile = if host.is_some() {
        Profile::Hosted
    } else {
        Profile::Separate
    };
    let issued = ca.issue(&request(code, KeyKind::EcP256, profile)).unwrap();
    let cert = |role: &str| {
        issued
            .roles()
            .into_iter()
            .find(|(r, _, _)| *r == role)
            .map(|(_, c, _)| c)
    };
    ZoneEntry {
        organ_code: code.into(),
        name: format!("Cơ quan {code}"),
        parent: None,
        host: host.map(str::to_owned),
        endpoints: if host.is_some() {
            vec![]
        } else {
            vec!["10.0.0.1:4433".into()]
        },
        relays: vec![],
        max_classification: "mat".into(),
        certificates: ZoneCertificates::new(
            cert("sign").unwrap(),
            cert("enc").unwrap(),
            cert("tls"),
        )
        .unwrap(),
    }
}

fn zone(name: &str, version: u64, entries: Vec<ZoneEntry>, delegations: Vec<Delegation>) -> Zone {
    Zone {
        zone: name.into(),
        version,
        issued: at() - 100,
        next_update: at() + 86_400,
        entries,
        delegations,
    }
}

/// CMS over any bytes with any certificate: files `Zone::sign` would refuse to make.
fn raw_sign(content: &[u8], cert: &X509, key: &PrivateKey) -> Vec<u8> {
    CmsContentInfo::sign(
        Some(cert),
        Some(key.pkey()),
        None,
        Some(content),
        CMSOptions::BINARY,
    )
    .unwrap()
    .to_der()
    .unwrap()
}

/// A CA, the root authority, the province authority, a root zone delegating `*.H41` and listing
/// G22, and the province's zone: itself and a hosted commune.
struct Pki {
    ca: Ca,
    root: (X509, PrivateKey),
    province: (X509, PrivateKey),
    root_zone: Zone,
    province_zone: Zone,
}

fn pki() -> Pki {
    let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
    let root = authority(&mut ca, ROOT_CODE);
    let province = authority(&mut ca, H41);
    let root_zone = zone(
        ROOT_ZONE,
        1,
        vec![agency(&mut ca, G22, None)],
        vec![Delegation::new(H41, &["*.H41"], &province.0).unwrap()],
    );
    let mut commune = agency(&mut ca, COMMUNE, Some(H41));
    commune.parent = Some(H41.into());
    let province_zone = zone(H41, 7, vec![agency(&mut ca, H41, None), commune], vec![]);
    Pki {
        ca,
        root,
        province,
        root_zone,
        province_zone,
    }
}

impl Pki {
    fn signed_root(&self) -> Vec<u8> {
        self.root_zone.sign(&self.root.0, &self.root.1).unwrap()
    }

    fn signed_province(&self) -> Vec<u8> {
        self.province_zone
            .sign(&self.province.0, &self.province.1)
            .unwrap()
    }

    /// A set holding the root zone.
    fn set(&self) -> ZoneSet {
        let set = ZoneSet::new(self.root.0.clone());
        take(&set, &self.signed_root())
    }
}

fn take(set: &ZoneSet, der: &[u8]) -> ZoneSet {
    match set.check(der, None, at()).unwrap() {
        Checked::Newer(zone) => set.with(zone),
        Checked::Unchanged => panic!("unchanged"),
    }
}

fn refusal(result: Result<Checked, Error>) -> &'static str {
    match result {
        Ok(Checked::Unchanged) => "unchanged",
        Ok(Checked::Newer(_)) => "newer",
        Err(e) => {
            assert!(matches!(e, Error::Zone { .. }), "{e}");
            e.code()
        }
    }
}

#[test]
fn zones_round_trip_into_the_directory_in_force() {
    let p = pki();
    let set = p.set();
    let province = p.signed_province();
    let Checked::Newer(signed) = set.check(&province, None, at()).unwrap() else {
        panic!("not newer");
    };
    assert_eq!(
        (signed.name(), signed.version(), signed.der()),
        (H41, 7, province.as_slice())
    );
    assert_eq!(signed.zone(), &p.province_zone);
    assert_eq!(
        signed.signer().to_der().unwrap(),
        p.province.0.to_der().unwrap()
    );
    assert!(signed.signer_subject().contains(H41));
    assert_eq!(signed.sha256_hex().len(), 64);
    assert!(!signed.is_stale(at()));
    let set = set.with(signed);
    assert_eq!(
        set.versions(),
        [(ROOT_ZONE.to_owned(), 1), (H41.to_owned(), 7)]
    );
    assert!(set.in_force(ROOT_ZONE) && set.in_force(H41) && !set.in_force(G22));
    let dir = set.directory().unwrap();
    assert_eq!(dir.len(), 3);
    let commune = dir.get(COMMUNE).unwrap();
    assert_eq!(commune.host.as_deref(), Some(H41));
    assert_eq!(commune.parent.as_deref(), Some(H41));
    assert_eq!(commune.max_classification.as_deref(), Some("mat"));
    assert_eq!(commune.endpoint, None);
    assert_eq!(
        dir.get(G22).unwrap().endpoint.as_deref(),
        Some("10.0.0.1:4433")
    );
    // The PEM of the directory entry and the parsed certificate are the zone's certificate.
    let tls = dir.get(H41).unwrap().certificate("tls").unwrap().unwrap();
    assert!(dir.binds_tls(H41, &tls));
    assert_eq!(
        dir.certificates(H41)
            .unwrap()
            .tls()
            .unwrap()
            .to_der()
            .unwrap(),
        tls.to_der().unwrap()
    );
    // The same file again is unchanged, not an error; unverified reading gives the content.
    assert_eq!(refusal(set.check(&province, None, at())), "unchanged");
    let (content, signer) = Zone::read_unverified(&province).unwrap();
    assert_eq!(content, p.province_zone);
    assert_eq!(signer.to_der().unwrap(), p.province.0.to_der().unwrap());
}

#[test]
fn canonical_encoding_is_one_and_anything_else_is_refused() {
    let p = pki();
    let bytes = p.province_zone.canonical().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with(r#"{"format":"vdx-zone/1","zone":"000.00.00.H41","version":7,"#));
    assert!(text.contains(r#""parent":null,"host":null,"#), "{text}");
    assert!(text.contains("Cơ quan"), "non-ASCII written as itself");
    assert_eq!(Zone::decode(&bytes, "t").unwrap(), p.province_zone);
    let variants = [
        text.replacen("{", "{ ", 1),
        text.replacen(
            r#""format":"vdx-zone/1","zone":"000.00.00.H41","#,
            r#""zone":"000.00.00.H41","format":"vdx-zone/1","#,
            1,
        ),
        format!("{text}\n"),
        text.replacen(r#""version":7"#, r#""version":7.0"#, 1),
        text.replacen(r#""parent":null,"#, "", 1),
        text.replacen("vdx-zone/1", "vdx-zone/2", 1),
        text.replacen(r#""delegations":[]"#, r#""delegations":[],"extra":1"#, 1),
        String::from_utf8(serde_json::to_vec_pretty(&p.province_zone).unwrap()).unwrap(),
    ];
    let set = p.set();
    for variant in &variants {
        assert_ne!(variant.as_bytes(), bytes.as_slice());
        let err = Zone::decode(variant.as_bytes(), "t").unwrap_err();
        assert_eq!(err.code(), "malformed", "{variant}");
        // Signed by the right authority, it is still malformed.
        let file = raw_sign(variant.as_bytes(), &p.province.0, &p.province.1);
        assert_eq!(
            refusal(set.check(&file, None, at())),
            "malformed",
            "{variant}"
        );
    }
    // Unsorted entries: neither encoded nor signed.
    let mut unsorted = p.province_zone.clone();
    unsorted.entries.reverse();
    assert_eq!(unsorted.canonical().unwrap_err().code(), "malformed");
    let err = unsorted.sign(&p.province.0, &p.province.1).unwrap_err();
    assert_eq!(err.code(), "malformed");
    let mut unsorted_text = String::from_utf8(serde_json::to_vec(&unsorted).unwrap()).unwrap();
    let file = raw_sign(unsorted_text.as_bytes(), &p.province.0, &p.province.1);
    assert_eq!(refusal(set.check(&file, None, at())), "malformed");
    // Content breaking rules 2-5 is refused too.
    unsorted_text.clear();
    for broken in [
        Zone {
            version: 0,
            ..p.province_zone.clone()
        },
        Zone {
            next_update: at() - 100,
            ..p.province_zone.clone()
        },
        Zone {
            delegations: p.root_zone.delegations.clone(),
            ..p.province_zone.clone()
        },
    ] {
        assert_eq!(
            broken
                .sign(&p.province.0, &p.province.1)
                .unwrap_err()
                .code(),
            "malformed"
        );
        let file = raw_sign(&broken.canonical().unwrap(), &p.province.0, &p.province.1);
        assert_eq!(refusal(set.check(&file, None, at())), "malformed");
    }
    let mut bad_entry = p.province_zone.clone();
    bad_entry.entries[1].max_classification = "secret".into();
    assert_eq!(bad_entry.check().err().unwrap().code(), "malformed");
    bad_entry.entries[1].max_classification = "mat".into();
    bad_entry.entries[1].endpoints = vec!["10.0.0.9:4433".into()];
    assert_eq!(bad_entry.check().err().unwrap().code(), "malformed");
    let mut lying = p.province_zone.clone();
    lying.entries[1].certificates = lying.entries[0].certificates.clone();
    lying.entries[1].certificates.tls = None;
    assert_eq!(lying.check().err().unwrap().code(), "malformed");
}

#[test]
fn tampered_unsigned_and_foreign_files_are_refused_each_with_its_code() {
    let p = pki();
    let set = p.set();
    let mut file = p.signed_province();
    let offset = file
        .windows(COMMUNE.len())
        .position(|w| w == COMMUNE.as_bytes())
        .unwrap();
    file[offset + 4] ^= 1;
    assert_eq!(refusal(set.check(&file, None, at())), "bad_signature");
    let json = p.province_zone.canonical().unwrap();
    assert_eq!(refusal(set.check(&json, None, at())), "unsigned");
    assert_eq!(refusal(set.check(b"", None, at())), "unsigned");
    // Another directory authority of the same code, and one of another code.
    let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
    let other = authority(&mut ca, H41);
    let foreign = p.province_zone.sign(&other.0, &other.1).unwrap();
    assert_eq!(refusal(set.check(&foreign, None, at())), "unknown_signer");
    let foreign_root = p.root_zone.sign(&other.0, &other.1).unwrap();
    assert_eq!(
        refusal(set.check(&foreign_root, None, at())),
        "unknown_signer"
    );
    // A zone that is not delegated, and any delegated zone before a root zone is held.
    let g22 = authority(&mut ca, G22);
    let undelegated = zone(G22, 1, vec![], vec![]).sign(&g22.0, &g22.1).unwrap();
    assert_eq!(
        refusal(set.check(&undelegated, None, at())),
        "unknown_signer"
    );
    let empty = ZoneSet::new(p.root.0.clone());
    assert_eq!(
        refusal(empty.check(&p.signed_province(), None, at())),
        "unknown_signer"
    );
    // Signing with a certificate of another code than the zone's is refused before any file.
    let err = p.province_zone.sign(&g22.0, &g22.1).unwrap_err();
    assert_eq!(err.code(), "unknown_signer");
}

#[test]
fn a_signer_without_the_directory_profile_is_refused() {
    let mut p = pki();
    let issued = issue_ec(&mut p.ca, ROOT_CODE);
    let (cert, key) = (cert_of(&issued, "sign"), key_of(&issued, "sign"));
    let err = p.root_zone.sign(&cert, key).unwrap_err();
    assert_eq!(err.code(), "not_directory");
    // Even configured as the root authority, its file is refused.
    let file = raw_sign(&p.root_zone.canonical().unwrap(), &cert, key);
    let set = ZoneSet::new(cert.clone());
    assert_eq!(refusal(set.check(&file, None, at())), "not_directory");
    // The directory certificate itself: the profile of rule 6.
    let usage = p.root.0.key_usage().unwrap();
    assert_eq!(usage, openssl::x509::X509KeyUsage::DIGITAL_SIGNATURE);
    assert!(signed::check_profile("root", &p.root.0).is_ok());
    assert!(signed::check_profile("root", &cert_of(&issued, "tls")).is_err());
    assert!(signed::check_profile("root", p.ca.cert()).is_err());
}

#[test]
fn revoked_expired_and_untrusted_signers_are_refused() {
    let mut p = pki();
    let root = p.signed_root();
    let empty = ZoneSet::new(p.root.0.clone());
    let crl = p.ca.crl(7).unwrap();
    let fresh = store(&p.ca, vec![crl]);
    assert_eq!(refusal(empty.check(&root, Some(&fresh), now())), "newer");
    p.ca.revoke(&p.root.0, None).unwrap();
    let crl = p.ca.crl(7).unwrap();
    let revoked = store(&p.ca, vec![crl]);
    assert_eq!(
        refusal(empty.check(&root, Some(&revoked), now())),
        "revoked"
    );
    let mut stranger = Ca::create("Other", KeyKind::EcP256, 30).unwrap();
    let crl = stranger.crl(7).unwrap();
    let untrusted = store(&stranger, vec![crl]);
    assert_eq!(
        refusal(empty.check(&root, Some(&untrusted), now())),
        "untrusted"
    );
    // Valid at the time of checking, whether or not there are anchors.
    let mut req = request(ROOT_CODE, KeyKind::EcP256, Profile::Directory);
    req.not_before = Some(time::OffsetDateTime::now_utc() - time::Duration::days(10));
    req.days = 1;
    let (_, old, key) = p.ca.issue(&req).unwrap().into_roles().pop().unwrap();
    let file = p.root_zone.sign(&old, &key).unwrap();
    let set = ZoneSet::new(old);
    assert_eq!(refusal(set.check(&file, None, now())), "expired");
    let trust = TrustStore::new(vec![p.ca.cert().to_owned()], vec![], vec![]).unwrap();
    assert_eq!(refusal(set.check(&file, Some(&trust), now())), "expired");
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn scopes_are_kept() {
    let mut p = pki();
    let set = p.set();
    // A delegated zone listing an agency outside its scope.
    let mut outside = p.province_zone.clone();
    outside
        .entries
        .insert(0, agency(&mut p.ca, "000.00.00.H26", None));
    let file = outside.sign(&p.province.0, &p.province.1).unwrap();
    assert_eq!(refusal(set.check(&file, None, at())), "out_of_scope");
    // A root zone listing an agency inside a delegated scope.
    let mut inside = p.root_zone.clone();
    inside.entries.push(agency(&mut p.ca, COMMUNE, Some(H41)));
    assert_eq!(
        inside.sign(&p.root.0, &p.root.1).unwrap_err().code(),
        "out_of_scope"
    );
    let file = raw_sign(&inside.canonical().unwrap(), &p.root.0, &p.root.1);
    let empty = ZoneSet::new(p.root.0.clone());
    assert_eq!(refusal(empty.check(&file, None, at())), "out_of_scope");
    // Overlapping delegations: a code inside another's wildcard, and the same wildcard twice.
    let h40 = authority(&mut p.ca, "000.00.00.H40");
    for scope in [&[COMMUNE][..], &["*.H41"][..]] {
        let mut overlapping = p.root_zone.clone();
        overlapping
            .delegations
            .insert(0, Delegation::new("000.00.00.H40", scope, &h40.0).unwrap());
        let file = raw_sign(&overlapping.canonical().unwrap(), &p.root.0, &p.root.1);
        assert_eq!(refusal(empty.check(&file, None, at())), "out_of_scope");
    }
    // The delegated authority's own entry is glue: the root zone may list it, and its own zone's
    // entry replaces it once that zone is in force.
    let mut glued = p.root_zone.clone();
    let mut glue = agency(&mut p.ca, H41, None);
    glue.endpoints = vec!["10.41.0.9:4433".into()];
    glued.entries.push(glue);
    glued.version = 2;
    let set = take(&empty, &glued.sign(&p.root.0, &p.root.1).unwrap());
    let directory = set.directory().unwrap();
    assert_eq!(
        directory.get(H41).unwrap().endpoint.as_deref(),
        Some("10.41.0.9:4433")
    );
    let set = take(&set, &p.signed_province());
    let directory = set.directory().unwrap();
    assert_eq!(directory.len(), 3, "G22, H41 once, the commune");
    assert_eq!(
        directory.get(H41).unwrap().endpoint,
        p.province_zone.entries[0].endpoints.first().cloned()
    );
    // Several patterns of one delegation may overlap each other.
    let mut own = p.root_zone.clone();
    own.delegations[0].scope = vec!["*.H41".into(), COMMUNE.into()];
    assert!(own.sign(&p.root.0, &p.root.1).is_ok());
}

#[test]
fn versions_only_go_forward_and_stale_zones_are_flagged() {
    let p = pki();
    let set = p.set();
    let mut v2 = p.root_zone.clone();
    v2.version = 2;
    let set = take(&set, &v2.sign(&p.root.0, &p.root.1).unwrap());
    assert_eq!(
        refusal(set.check(&p.signed_root(), None, at())),
        "older_version"
    );
    let mut same_version = v2.clone();
    same_version.issued += 1;
    let file = same_version.sign(&p.root.0, &p.root.1).unwrap();
    assert_eq!(refusal(set.check(&file, None, at())), "older_version");
    // Stale: still taken, flagged, and an error for verification only.
    let late = at() + 86_400;
    let province = p.signed_province();
    let Checked::Newer(zone) = set.check(&province, None, late).unwrap() else {
        panic!("not newer");
    };
    assert!(zone.is_stale(late));
    let set = set.with(zone);
    let stale = |now| {
        set.zones()
            .into_iter()
            .filter(|z| z.is_stale(now))
            .map(|z| z.name().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(stale(late), [ROOT_ZONE, H41]);
    assert!(stale(at()).is_empty());
    let files = vec![
        ("h41.zone".to_owned(), province.clone()),
        ("root.zone".to_owned(), p.signed_root()),
    ];
    let results = verify_zone_files(&p.root.0, &files, None, at());
    assert_eq!(results[0].0, "h41.zone");
    assert_eq!(results[0].1.as_ref().unwrap().name(), H41);
    assert_eq!(results[1].1.as_ref().unwrap().name(), ROOT_ZONE);
    let results = verify_zone_files(&p.root.0, &files, None, late);
    for (_, result) in &results {
        assert_eq!(result.as_ref().unwrap_err().code(), "stale");
    }
    let with_junk = vec![("junk".to_owned(), b"{}".to_vec()), files[0].clone()];
    let results = verify_zone_files(&p.root.0, &with_junk, None, at());
    let err = results[0].1.as_ref().unwrap_err();
    assert_eq!(err.code(), "unsigned");
    assert!(err.to_string().contains("junk"), "{err}");
    assert_eq!(
        results[1].1.as_ref().unwrap_err().code(),
        "unknown_signer",
        "no root given"
    );
}

#[test]
fn an_older_issue_stays_out_while_its_zone_is_out_of_force() {
    let p = pki();
    let set = take(&p.set(), &p.signed_province());
    // The root narrows H41's scope to the province alone: version 7 (with a commune) is out.
    let mut narrowed = p.root_zone.clone();
    narrowed.version = 2;
    narrowed.delegations[0].scope = vec![H41.into()];
    let set = take(&set, &narrowed.sign(&p.root.0, &p.root.1).unwrap());
    assert!(!set.in_force(H41));
    // An older issue by the same authority that would fit the narrower scope is still older.
    let mut older = p.province_zone.clone();
    older.version = 5;
    older.entries.retain(|e| e.organ_code == H41);
    let file = older.sign(&p.province.0, &p.province.1).unwrap();
    assert_eq!(refusal(set.check(&file, None, at())), "older_version");
    // The same file again costs a digest: unchanged.
    let held = set.get(H41).unwrap().der().to_vec();
    assert_eq!(refusal(set.check(&held, None, at())), "unchanged");
}

#[test]
fn a_root_zone_dropping_or_rekeying_a_delegation_takes_its_entries_out() {
    let mut p = pki();
    let set = take(&p.set(), &p.signed_province());
    assert_eq!(set.directory().unwrap().len(), 3);
    let mut dropped = p.root_zone.clone();
    dropped.version = 2;
    dropped.delegations.clear();
    let without = take(&set, &dropped.sign(&p.root.0, &p.root.1).unwrap());
    assert!(!without.in_force(H41));
    assert!(without.get(H41).is_some(), "held, not in force");
    let dir = without.directory().unwrap();
    assert_eq!(dir.len(), 1);
    assert!(dir.get(COMMUNE).is_none() && dir.get(H41).is_none());
    // Re-keyed: out until a zone signed by the new certificate arrives, whatever its version.
    let new_key = authority(&mut p.ca, H41);
    let mut rekeyed = p.root_zone.clone();
    rekeyed.version = 3;
    rekeyed.delegations = vec![Delegation::new(H41, &["*.H41"], &new_key.0).unwrap()];
    let set = take(&set, &rekeyed.sign(&p.root.0, &p.root.1).unwrap());
    assert_eq!(set.directory().unwrap().len(), 1);
    let mut old_key_newer = p.province_zone.clone();
    old_key_newer.version = 8;
    let file = old_key_newer.sign(&p.province.0, &p.province.1).unwrap();
    assert_eq!(refusal(set.check(&file, None, at())), "unknown_signer");
    let mut restarted = p.province_zone.clone();
    restarted.version = 1;
    let set = take(&set, &restarted.sign(&new_key.0, &new_key.1).unwrap());
    assert!(set.in_force(H41));
    assert_eq!(set.directory().unwrap().len(), 3);
}

#[test]
fn openssl_verifies_a_zone_and_outputs_its_canonical_bytes() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "ca.pem", &p.ca.cert().to_pem().unwrap());
    write(d, "h41.zone", &p.signed_province());
    let (ok, text) = openssl(
        d,
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "h41.zone",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "any",
            "-out",
            "zone.json",
        ],
    );
    assert!(ok, "{text}");
    let out = std::fs::read(d.join("zone.json")).unwrap();
    assert_eq!(out, p.province_zone.canonical().unwrap());
}

#[test]
fn exported_entries_become_zone_entries_and_back() {
    let mut p = pki();
    let zone_entry = agency(&mut p.ca, "000.00.00.H26", None);
    let set = p.set();
    let dir = set.directory().unwrap();
    let g22 = dir.get(G22).unwrap().clone();
    let json = g22.to_json().unwrap();
    assert!(String::from_utf8_lossy(&json).contains("\"max_classification\": \"mat\""));
    let back = ZoneEntry::from_entry(&Entry::from_json(&json).unwrap(), None, None).unwrap();
    assert_eq!(back, p.root_zone.entries[0]);
    // A v1 entry without the new fields takes the defaults given, and needs a classification.
    let mut plain = g22.clone();
    plain.parent = None;
    plain.max_classification = None;
    let entry = ZoneEntry::from_entry(&plain, Some("000.00.00.G01"), Some("toi-mat")).unwrap();
    assert_eq!(entry.parent.as_deref(), Some("000.00.00.G01"));
    assert_eq!(entry.max_classification, "toi-mat");
    assert_eq!(
        ZoneEntry::from_entry(&plain, None, None)
            .unwrap_err()
            .code(),
        "request"
    );
    assert!(ZoneEntry::from_entry(&plain, None, Some("secret")).is_err());
    // All of a zone entry's relays come through, the first as `relay`, in order.
    let mut relayed = p.root_zone.entries[0].clone();
    relayed.relays = vec![H41.into(), "000.00.00.H40".into(), "000.00.00.H26".into()];
    let v1 = relayed.to_entry();
    assert_eq!(v1.relay.as_deref(), Some(H41));
    assert_eq!(v1.alternate_relays, ["000.00.00.H40", "000.00.00.H26"]);
    assert_eq!(ZoneEntry::from_entry(&v1, None, None).unwrap(), relayed);
    // The v1 file refuses bad values of the new fields, and writes none when absent.
    let mut bad = g22.clone();
    bad.max_classification = Some("secret".into());
    assert!(Entry::from_json(&bad.to_json().unwrap()).is_err());
    bad.max_classification = None;
    bad.parent = Some("not a code".into());
    assert!(Entry::from_json(&bad.to_json().unwrap()).is_err());
    let text = String::from_utf8(plain.to_json().unwrap()).unwrap();
    assert!(!text.contains("parent") && !text.contains("max_classification"));
    assert_ne!(zone_entry.organ_code, g22.organ_code);
}
