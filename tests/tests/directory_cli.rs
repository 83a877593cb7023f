//! A directory authority's work with the real `vdx` binary, offline: authorities issued with
//! `vdx pki issue --profile directory`, a root zone delegating to a province, the province's zone
//! made from entries exported by `vdx init` homes, then checked (`verify`, and the OpenSSL CLI),
//! shown, changed (`--base`, `--remove`) and compared (`diff`); tampered and wrongly trusted files
//! refused with their codes (docs/directory-zones.md).

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use vdx_tests::{words, Session};

const ROOT: &str = "000.00.00.G01";
const H41: &str = "000.00.00.H41";
const G22: &str = "000.00.00.G22";
const COMMUNE: &str = "000.01.41.H41";

/// A dev CA, a root and a province authority, and two signed-mode homes (the central agency g22
/// and the province h41, which hosts a commune) with their entries exported.
fn authorities_and_entries(s: &Session) {
    s.vdx(&words("pki init-ca --out ca --name Root")).ok();
    let issued = s
        .vdx(&words(&format!(
            "pki issue --ca ca --profile directory --org {ROOT} --name Quoc-gia --out root-auth"
        )))
        .ok()
        .stdout;
    assert!(issued.contains("directory.pem"), "{issued}");
    s.vdx(&words(&format!(
        "pki issue --ca ca --profile directory --org {H41} --name Nghe-An --out h41-auth"
    )))
    .ok();
    for file in ["directory.pem", "directory.key", "ca.pem"] {
        assert!(s.exists(&format!("root-auth/{file}")), "{file}");
    }
    for (home, org, port) in [("g22", G22, 4601), ("h41", H41, 4602)] {
        s.vdx(&words(&format!(
            "--home {home} init --org {org} --name {home} --listen 127.0.0.1:{port} --ca ca \
             --root-authority root-auth/directory.pem --zone-interval 60"
        )))
        .ok();
        let entry = s
            .vdx(&words(&format!("--home {home} directory export")))
            .ok();
        s.write(&format!("{home}.json"), entry.stdout.as_bytes());
    }
    let config = String::from_utf8(s.read("g22/config.toml")).unwrap();
    assert!(
        config.contains("[zones]")
            && config.contains("root_authority = \"keys/directory-root.pem\"")
            && config.contains("interval_secs = 60"),
        "{config}"
    );
    assert_eq!(
        s.read("g22/keys/directory-root.pem"),
        s.read("root-auth/directory.pem")
    );
    // Signed mode keeps no entries of its own in directory.json.
    let directory: serde_json::Value =
        serde_json::from_slice(&s.read("g22/directory.json")).unwrap();
    assert_eq!(directory["entries"], serde_json::json!([]));

    // A tenant added in signed mode leaves directory.json alone and says who must sign it in.
    let added = s
        .vdx(&words(&format!(
            "--home h41 tenant add --org {COMMUNE} --name Hung-Loc --ca ca"
        )))
        .ok()
        .stdout;
    assert!(added.contains("must be signed into its zone"), "{added}");
    let directory: serde_json::Value =
        serde_json::from_slice(&s.read("h41/directory.json")).unwrap();
    assert_eq!(directory["entries"], serde_json::json!([]));
    let commune = s
        .vdx(&words(&format!(
            "--home h41 --tenant {COMMUNE} directory export"
        )))
        .ok();
    s.write("commune.json", commune.stdout.as_bytes());
}

#[test]
fn an_authority_signs_verifies_shows_and_changes_zones() {
    let s = Session::new();
    authorities_and_entries(&s);

    // Without a classification the entry is refused, by name.
    let refused = s.vdx(&words(
        "directory sign --authority root-auth --zone root --version 1 --out root.zone g22.json",
    ));
    assert_eq!(refused.status, 1);
    assert!(refused.stderr.contains(G22), "{}", refused.stderr);
    assert!(!s.exists("root.zone"));

    let signed = s
        .vdx(&words(&format!(
            "directory sign --authority root-auth --zone root --version 1 --max-classification mat \
             --delegate {H41}=h41-auth/directory.pem --out root.zone g22.json"
        )))
        .ok()
        .stdout;
    assert!(
        signed.contains("zone root version 1: 1 entries, 1 delegations")
            && signed.contains("sha256"),
        "{signed}"
    );
    s.vdx(&words(&format!(
        "directory sign --authority h41-auth --zone {H41} --version 1 --max-classification toi-mat \
         --out h41-1.zone h41.json"
    )))
    .ok();
    let ok = s
        .vdx(&words(
            "directory verify --trust root-auth/directory.pem --ca ca/ca.pem root.zone h41-1.zone",
        ))
        .ok()
        .stdout;
    assert!(
        ok.contains("OK root version 1") && ok.contains(&format!("OK {H41} version 1")),
        "{ok}"
    );

    // Any CMS tool checks the file, and what it carries is what `show --json` says.
    s.openssl(&words(
        "cms -verify -inform DER -in root.zone -CAfile ca/ca.pem -purpose any -out root.json",
    ))
    .ok();
    let content: serde_json::Value = serde_json::from_slice(&s.read("root.json")).unwrap();
    let mut shown = s.vdx(&words("directory show --json root.zone")).ok().json();
    let signer = shown.as_object_mut().unwrap().remove("signer").unwrap();
    assert!(signer.as_str().unwrap().contains(ROOT), "{signer}");
    assert_eq!(shown, content);
    assert_eq!(content["format"], "vdx-zone/1");
    assert_eq!(
        content["delegations"][0]["scope"],
        serde_json::json!(["*.H41"])
    );
    assert_eq!(content["entries"][0]["organ_code"], G22);
    assert_eq!(content["entries"][0]["max_classification"], "mat");

    let text = s.vdx(&words("directory show root.zone")).ok().stdout;
    assert!(
        text.contains("zone root version 1")
            && text.contains(G22)
            && text.contains(&format!("{H41}    scope *.H41"))
            && text.contains("Nghe-An"),
        "{text}"
    );

    // The province enrols its commune: version 2 from version 1, the commune under the province.
    s.vdx(&words(&format!(
        "directory sign --authority h41-auth --zone {H41} --version 2 --base h41-1.zone \
         --max-classification mat --out h41-2.zone commune.json"
    )))
    .ok();
    let zone2 = s
        .vdx(&words("directory show --json h41-2.zone"))
        .ok()
        .json();
    let commune = &zone2["entries"][1];
    assert_eq!(commune["organ_code"], COMMUNE);
    assert_eq!(commune["parent"], H41);
    assert_eq!(commune["host"], H41);
    assert_eq!(zone2["entries"][0]["max_classification"], "toi-mat");
    let diff = s
        .vdx(&words("directory diff h41-1.zone h41-2.zone"))
        .ok()
        .stdout;
    assert!(
        diff.contains("version 1 -> 2") && diff.contains(&format!("+ entry {COMMUNE}")),
        "{diff}"
    );
    // An older version as base is refused: nodes take only newer zones.
    let stale_version = s.vdx(&words(&format!(
        "directory sign --authority h41-auth --zone {H41} --version 2 --base h41-2.zone \
         --out h41-x.zone"
    )));
    assert_eq!(stale_version.status, 1, "{}", stale_version.stdout);

    // Removing it again: version 3 lacks it, and diff says so.
    s.vdx(&words(&format!(
        "directory sign --authority h41-auth --zone {H41} --version 3 --base h41-2.zone \
         --remove {COMMUNE} --out h41-3.zone"
    )))
    .ok();
    let zone3 = s
        .vdx(&words("directory show --json h41-3.zone"))
        .ok()
        .json();
    assert_eq!(zone3["entries"].as_array().unwrap().len(), 1);
    let diff = s
        .vdx(&words("directory diff --json h41-2.zone h41-3.zone"))
        .ok()
        .json();
    assert_eq!(diff["entries"]["removed"], serde_json::json!([COMMUNE]));
    assert_eq!(diff["entries"]["added"], serde_json::json!([]));
    assert_eq!(
        (diff["old_version"].as_u64(), diff["new_version"].as_u64()),
        (Some(2), Some(3))
    );
    s.vdx(&words(
        "directory verify --trust root-auth/directory.pem root.zone h41-3.zone",
    ))
    .ok();

    // The province's key signs no other province's zone (refused before anything is written),
    // and a root zone it signs is refused by whoever trusts the real root authority.
    let usurp = s.vdx(&words(
        "directory sign --authority h41-auth --zone 000.00.00.H26 --version 1 \
         --max-classification mat --out usurp.zone",
    ));
    assert_eq!(usurp.status, 1, "{}", usurp.stdout);
    assert!(!s.exists("usurp.zone"));
    s.vdx(&words(
        "directory sign --authority h41-auth --zone root --version 2 --max-classification mat \
         --out usurp.zone g22.json",
    ))
    .ok();
    let usurped = s.vdx(&words(
        "directory verify --trust root-auth/directory.pem usurp.zone",
    ));
    assert_eq!(usurped.status, 1);
    assert!(
        usurped
            .stdout
            .starts_with("FAILED usurp.zone: unknown_signer: "),
        "{}",
        usurped.stdout
    );
}

#[test]
fn tampered_and_wrongly_trusted_zones_are_refused_by_code() {
    let s = Session::new();
    authorities_and_entries(&s);
    s.vdx(&words(&format!(
        "directory sign --authority root-auth --zone root --version 1 --max-classification mat \
         --delegate {H41}=h41-auth/directory.pem --out root.zone g22.json"
    )))
    .ok();
    s.vdx(&words(&format!(
        "directory sign --authority h41-auth --zone {H41} --version 1 --max-classification mat \
         --out h41.zone h41.json commune.json"
    )))
    .ok();

    // One flipped byte in the signed content.
    let mut bytes = s.read("h41.zone");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    s.write("tampered.zone", &bytes);
    let tampered = s.vdx(&words(
        "directory verify --trust root-auth/directory.pem root.zone tampered.zone",
    ));
    assert_eq!(tampered.status, 1, "{}", tampered.stdout);
    assert!(
        tampered.stdout.contains("OK root version 1"),
        "{}",
        tampered.stdout
    );
    let line = tampered
        .stdout
        .lines()
        .find(|l| l.starts_with("FAILED tampered.zone: "))
        .unwrap_or_else(|| panic!("{}", tampered.stdout));
    assert!(
        line.contains(": bad_signature: ") || line.contains(": malformed: "),
        "{line}"
    );

    // The province's certificate is not the root authority.
    let wrong = s.vdx(&words(
        "directory verify --trust h41-auth/directory.pem root.zone",
    ));
    assert_eq!(wrong.status, 1);
    assert!(
        wrong
            .stdout
            .starts_with("FAILED root.zone: unknown_signer: "),
        "{}",
        wrong.stdout
    );

    // Plain JSON is not a zone.
    s.write("plain.zone", &s.read("g22.json"));
    let plain = s.vdx(&words(
        "directory verify --trust root-auth/directory.pem root.zone plain.zone",
    ));
    assert_eq!(plain.status, 1);
    assert!(
        plain.stdout.contains("FAILED plain.zone: unsigned: "),
        "{}",
        plain.stdout
    );

    // A delegated zone with no root zone beside it has nothing to chain to.
    let alone = s.vdx(&words(
        "directory verify --trust root-auth/directory.pem h41.zone",
    ));
    assert_eq!(alone.status, 1);
    assert!(
        alone.stdout.contains(": unknown_signer: "),
        "{}",
        alone.stdout
    );

    // A signed-mode node takes no unsigned entry.
    let import = s.vdx(&words("--home g22 directory import h41.json"));
    assert_eq!(import.status, 1);
    assert!(
        import.stderr.contains("directory publish"),
        "{}",
        import.stderr
    );
}
