//! The signed national directory with real daemons (`docs/directory-zones.md`): a centre and two
//! provinces, each province hosting a commune as a tenant, every node started from the root zone
//! alone. A province enrols a new commune and a commune of the other province delivers to it with
//! no restart and no import; removed from its zone, it can no longer send or receive. Zones that
//! must not be taken (tampered, unsigned, wrongly signed, revoked signer, out of scope, older) are
//! refused each with its own code, and the node keeps its directory and keeps serving.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::{Duration, Instant};

use vdx_tests::daemon::{add_tenant, free_port, wait_status_in, wait_until, Daemon};
use vdx_tests::Session;

const G22: &str = "000.00.00.G22"; // the centre (and its node)
const H41: &str = "000.00.00.H41"; // a province
const H26: &str = "000.00.00.H26"; // another
const XA: &str = "000.01.41.H41"; // a commune of H41, enrolled during the test
const YA: &str = "000.01.26.H26"; // a commune of H26
const LIMIT: Duration = Duration::from_secs(60);
/// Seconds between a node's exchanges with its source.
const INTERVAL: &str = "2";

/// A directory authority's key and certificate in `dir`.
fn authority(s: &Session, org: &str, dir: &str) {
    let name = format!("Directory authority {org}");
    s.vdx(&[
        "pki",
        "issue",
        "--ca",
        "ca",
        "--profile",
        "directory",
        "--org",
        org,
        "--name",
        &name,
        "--out",
        dir,
    ])
    .ok();
}

/// `vdx init` of a node home in signed mode, learning from `source`, with `extra` arguments.
fn init(
    s: &Session,
    home: &str,
    org: &str,
    source: Option<&str>,
    extra: &[&str],
) -> vdx_tests::Ran {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "--home",
        home,
        "init",
        "--org",
        org,
        "--name",
        home,
        "--listen",
        &listen,
        "--ca",
        "ca",
        "--root-authority",
        "auth-root/directory.pem",
        "--zone-interval",
        INTERVAL,
    ];
    if let Some(source) = source {
        args.extend(["--zone-source", source]);
    }
    args.extend_from_slice(extra);
    s.vdx(&args)
}

/// A node home in signed mode, learning from `source`.
fn node(s: &Session, home: &str, org: &str, source: Option<&str>) {
    init(s, home, org, source, &[]).ok();
}

/// The exported entry of agency `code` of `home`, written to `<code>.json`; the file name.
fn export(s: &Session, home: &str, code: &str) -> String {
    let entry = s
        .vdx(&["--home", home, "--tenant", code, "directory", "export"])
        .ok();
    let file = format!("{code}.json");
    s.write(&file, entry.stdout.as_bytes());
    file
}

/// `vdx directory sign` by the authority in `auth` of zone `zone`, version `version`, to `out`.
fn sign(s: &Session, auth: &str, zone: &str, version: u64, extra: &[&str], out: &str) -> String {
    let version = version.to_string();
    let mut args = vec![
        "directory",
        "sign",
        "--authority",
        auth,
        "--zone",
        zone,
        "--version",
        &version,
        "--max-classification",
        "mat",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    s.vdx(&args).ok();
    out.to_owned()
}

/// `vdx --home HOME directory publish FILE`.
fn publish(s: &Session, home: &str, file: &str) -> vdx_tests::Ran {
    s.vdx(&["--home", home, "directory", "publish", file])
}

/// The zones `home` has in force, by name and version.
fn versions(s: &Session, home: &str) -> Vec<(String, u64)> {
    let ran = s.vdx(&["--home", home, "directory", "status", "--json"]);
    if ran.status != 0 {
        return Vec::new();
    }
    ran.json()["zones"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|z| {
            (
                z["zone"].as_str().unwrap_or_default().to_owned(),
                z["version"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn holds(s: &Session, home: &str, zone: &str, version: u64) -> bool {
    versions(s, home)
        .iter()
        .any(|(name, v)| name == zone && *v == version)
}

/// The dev CA, the three authorities, the three homes, communes YA (hosted by h26) and the
/// first zones: root (the centre, glue for both provinces' nodes, two delegations), H41 (itself)
/// and H26 (itself and YA).
fn setup(s: &Session) {
    s.vdx(&["pki", "init-ca", "--out", "ca", "--name", "Root"])
        .ok();
    authority(s, G22, "auth-root");
    authority(s, H41, "auth-h41");
    authority(s, H26, "auth-h26");
    node(s, "g22", G22, None);
    node(s, "h41", H41, Some(G22));
    node(s, "h26", H26, Some(G22));
    add_tenant(s, "h26", YA, YA);
    let (g22, h41, h26, ya) = (
        export(s, "g22", G22),
        export(s, "h41", H41),
        export(s, "h26", H26),
        export(s, "h26", YA),
    );
    let delegate_h41 = format!("{H41}=auth-h41/directory.pem");
    let delegate_h26 = format!("{H26}=auth-h26/directory.pem");
    sign(
        s,
        "auth-root",
        "root",
        1,
        &[
            "--delegate",
            &delegate_h41,
            "--delegate",
            &delegate_h26,
            &g22,
            &h41,
            &h26,
        ],
        "root-1.zone",
    );
    sign(s, "auth-h41", H41, 1, &[&h41], "h41-1.zone");
    sign(s, "auth-h26", H26, 1, &[&h26, &ya], "h26-1.zone");
}

/// Sends a dispatch from tenant `from` of `home` to `to`; the answer of `vdx send --json`.
fn send(s: &Session, home: &str, from: &str, to: &str) -> vdx_tests::Ran {
    s.vdx(&[
        "--home",
        home,
        "--tenant",
        from,
        "send",
        "--json",
        "--to",
        to,
        "--subject",
        "Kiểm thử danh bạ",
        "--number",
        "1",
        "--notation",
        "UBND",
        "cv.txt",
    ])
}

#[test]
fn a_province_enrols_a_commune_and_the_other_province_reaches_it_without_a_restart() {
    let s = Session::new();
    setup(&s);
    s.document("cv.txt", 2000);
    let _g22 = Daemon::start(&s, "g22");
    let _h41 = Daemon::start(&s, "h41");
    let _h26 = Daemon::start(&s, "h26");
    // Each node is handed the root zone; each province its own zone. The rest travels.
    for home in ["g22", "h41", "h26"] {
        publish(&s, home, "root-1.zone").ok();
    }
    publish(&s, "h41", "h41-1.zone").ok();
    publish(&s, "h26", "h26-1.zone").ok();
    for home in ["g22", "h41", "h26"] {
        wait_until(&s, LIMIT, &format!("{home} to hold every zone"), || {
            holds(&s, home, "root", 1) && holds(&s, home, H41, 1) && holds(&s, home, H26, 1)
        });
    }

    // H41 enrols commune XA: a tenant on its node, an entry signed into its zone, published on
    // its own node. Nothing is done at the centre or at H26.
    add_tenant(&s, "h41", XA, XA);
    let xa = export(&s, "h41", XA);
    sign(
        &s,
        "auth-h41",
        H41,
        2,
        &["--base", "h41-1.zone", &xa],
        "h41-2.zone",
    );
    let published = Instant::now();
    let taken = publish(&s, "h41", "h41-2.zone").ok();
    assert!(taken.stdout.contains('2'), "{}", taken.stdout);
    wait_until(&s, LIMIT, "H41's zone version 2 to reach h26", || {
        holds(&s, "h26", H41, 2)
    });
    eprintln!(
        "zone H41 version 2 reached h26 (two hops) in {:.1} s; interval {INTERVAL} s",
        published.elapsed().as_secs_f64()
    );
    // Each node recorded the zone it took up, and from whom, in its own agency's ledger.
    for (home, code, from) in [
        ("h26", H26, "peer"),
        ("g22", G22, "peer"),
        ("h41", H41, "publish"),
    ] {
        let log = s
            .vdx(&["--home", home, "--tenant", code, "audit", "log", "--json"])
            .ok()
            .json();
        let recorded = log.as_array().unwrap().iter().any(|e| {
            e["kind"] == "config"
                && e.to_string()
                    .contains(&format!("zone {H41} version 2 from {from}"))
        });
        assert!(recorded, "{home}: {log}");
    }
    let sent = send(&s, "h26", YA, XA).ok().json();
    let id = sent["copies"][0]["id"].as_str().unwrap().to_owned();
    wait_status_in(&s, LIMIT, "h26", YA, &id, "delivered");
    let arrived = wait_status_in(&s, LIMIT, "h41", XA, &id, "registered");
    assert_eq!(arrived["from"], YA, "{arrived}");

    // H41 removes XA from its zone: H26 no longer sends to it, and XA's dispatches are refused.
    sign(
        &s,
        "auth-h41",
        H41,
        3,
        &["--base", "h41-2.zone", "--remove", XA],
        "h41-3.zone",
    );
    publish(&s, "h41", "h41-3.zone").ok();
    wait_until(&s, LIMIT, "H41's zone version 3 to reach h26", || {
        holds(&s, "h26", H41, 3)
    });
    let refused = send(&s, "h26", YA, XA);
    assert_eq!(refused.status, 1, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("unknown_recipient"),
        "{}",
        refused.stderr
    );
    let sent = send(&s, "h41", XA, YA).ok().json();
    let id = sent["copies"][0]["id"].as_str().unwrap().to_owned();
    let failed = wait_status_in(&s, LIMIT, "h41", XA, &id, "failed");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("may not hand over an object from {XA}")),
        "{failed}"
    );
}

/// Publishes `file` at `home` and returns the refusal code the command names (exit 1).
fn refused_code(s: &Session, home: &str, file: &str) -> String {
    let ran = publish(s, home, file);
    assert_eq!(ran.status, 1, "{file} was taken:\n{}", ran.stdout);
    ran.stderr.clone()
}

#[test]
fn a_node_made_with_the_root_zone_holds_it_from_its_first_start() {
    let s = Session::new();
    setup(&s);
    let init =
        |home: &str, zone: &str| init(&s, home, "000.00.00.H29", Some(G22), &["--root-zone", zone]);
    // A delegated zone is not a root zone, and a root zone checks against the root authority.
    let refused = init("wrong", "h41-1.zone");
    assert_eq!(refused.status, 1, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("unknown_signer"),
        "{}",
        refused.stderr
    );
    assert!(
        !s.exists("wrong/config.toml"),
        "a refused init makes no home"
    );
    init("late", "root-1.zone").ok();
    let _late = Daemon::start(&s, "late");
    assert_eq!(versions(&s, "late"), [("root".to_owned(), 1)]);
}

#[test]
fn zones_that_fail_a_rule_are_refused_each_with_its_own_code_and_change_nothing() {
    let s = Session::new();
    setup(&s);
    // The centre checks CRLs (a fresh one is put in place below, after a revocation).
    s.vdx(&["pki", "crl", "--ca", "ca", "--out", "g22/keys/ca.crl"])
        .ok();
    let config = String::from_utf8(s.read("g22/config.toml")).unwrap();
    assert!(config.contains("crls = []"), "{config}");
    let config = config.replacen("crls = []", "crls = [\"keys/ca.crl\"]", 1);
    s.write("g22/config.toml", config.as_bytes());
    let _g22 = Daemon::start(&s, "g22");
    publish(&s, "g22", "root-1.zone").ok();
    publish(&s, "g22", "h41-1.zone").ok();
    let h41 = export(&s, "h41", H41);

    let mut cases: Vec<(String, &str)> = Vec::new();
    // A byte of the signed content changed.
    let mut tampered = s.read("h41-1.zone");
    let at = tampered
        .windows(H41.len())
        .position(|w| w == H41.as_bytes())
        .unwrap();
    tampered[at + 4] ^= 0x01;
    s.write("tampered.zone", &tampered);
    cases.push(("tampered.zone".into(), "bad_signature"));
    // The content alone, unsigned.
    let content = s
        .vdx(&["directory", "show", "--json", "h41-1.zone"])
        .ok()
        .stdout;
    s.write("unsigned.zone", content.as_bytes());
    cases.push(("unsigned.zone".into(), "unsigned"));
    // H41's zone signed by another directory certificate for H41, not the one delegated.
    authority(&s, H41, "auth-h41-other");
    sign(&s, "auth-h41-other", H41, 5, &[&h41], "wrong-signer.zone");
    cases.push(("wrong-signer.zone".into(), "unknown_signer"));
    // H26's authority signing an entry of H41 into its own zone.
    sign(&s, "auth-h26", H26, 1, &[&h41], "out-of-scope.zone");
    cases.push(("out-of-scope.zone".into(), "out_of_scope"));
    // Version 1 again, after version 2.
    sign(&s, "auth-h41", H41, 2, &[&h41], "h41-2.zone");
    publish(&s, "g22", "h41-2.zone").ok();
    sign(&s, "auth-h41", H41, 1, &[&h41], "h41-older.zone");
    cases.push(("h41-older.zone".into(), "older_version"));
    for (file, code) in &cases {
        let said = refused_code(&s, "g22", file);
        assert!(said.contains(code), "{file}: expected {code}:\n{said}");
        // Nothing refused was taken: the directory is as it was, and the node serves.
        assert_eq!(versions(&s, "g22"), [("root".into(), 1), (H41.into(), 2)]);
    }

    // The signer's certificate revoked, and the node given the fresh CRL: a new zone it signs
    // is refused as revoked, and the zone it signed before leaves the directory in force (fail
    // closed) — H41's node is still reached by the root zone's glue entry.
    s.vdx(&["pki", "revoke", "--ca", "ca", "auth-h41/directory.pem"])
        .ok();
    s.vdx(&["pki", "crl", "--ca", "ca", "--out", "g22/keys/ca.crl"])
        .ok();
    s.vdx(&["--home", "g22", "reload"]).ok();
    sign(&s, "auth-h41", H41, 3, &[&h41], "revoked.zone");
    let said = refused_code(&s, "g22", "revoked.zone");
    assert!(said.contains("revoked"), "{said}");
    assert_eq!(versions(&s, "g22"), [("root".to_owned(), 1)]);
    let status = s.vdx(&["--home", "g22", "status", "--json"]).ok().json();
    assert_eq!(status["trust"]["agencies"], 3, "{status}");
    let warned = status["warnings"].to_string();
    assert!(
        warned.contains("000.00.00.H41.zone is left out (revoked)"),
        "{warned}"
    );
    let metrics = s.vdx(&["--home", "g22", "metrics"]).ok().stdout;
    for code in [
        "bad_signature",
        "unsigned",
        "unknown_signer",
        "out_of_scope",
        "older_version",
        "revoked",
    ] {
        assert!(
            metrics.contains(&format!("vdx_zones_refused_total{{code=\"{code}\"}} 1")),
            "{code}:\n{metrics}"
        );
    }
}
