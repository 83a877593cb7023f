//! The tamper-evident ledger with real daemons: a delivery leaves its entries in both ledgers, the
//! security officer exports, verifies, proves and reads them (through the local API and with the
//! daemon stopped), each reading is itself recorded, and a node that rewrites its history is
//! caught by its peer's witness check.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::Duration;

use serde_json::Value;
use vdx_tests::daemon::{homes, wait_until, Daemon};
use vdx_tests::Session;

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const LIMIT: Duration = Duration::from_secs(60);

/// Sends `file` from g22 to h41 and waits until g22 holds the delivery receipt; returns its id.
fn deliver(s: &Session, number: &str, file: &str) -> String {
    let answer = s.send("g22", H41, number, file, &[]).ok().json();
    let id = answer["copies"][0]["id"].as_str().unwrap().to_owned();
    // Delivered, and STORED taken up (it counts the attempt with the "sent" entry): the reply can
    // come back first.
    wait_until(s, LIMIT, "delivery receipt", || {
        let shown = s.vdx(&["--home", "g22", "show", "--json", &id]).ok().json();
        shown["status"] == "delivered" && shown["attempts"].as_u64() >= Some(1)
    });
    id
}

fn log(s: &Session, home: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--home", home, "audit", "log", "--json"];
    all.extend_from_slice(args);
    s.vdx(&all).ok().json().as_array().unwrap().clone()
}

fn kinds_about(entries: &[Value], id: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["id"] == id)
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_delivery_is_recorded_on_both_sides_and_the_officer_can_verify_and_prove_it() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    let g22 = Daemon::start(&s, "g22");
    let h41 = Daemon::start(&s, "h41");
    s.write("cv.txt", "Công văn số 12/VPCP-TTĐT".as_bytes());
    let id = deliver(&s, "12", "cv.txt");
    s.vdx(&["--home", "h41", "fetch", &id, "--out", "got"]).ok();

    // What each side recorded about the dispatch, in order.
    let g22_log = log(&s, "g22", &[]);
    let h41_log = log(&s, "h41", &[]);
    // (The receipt and notice may come back before g22 has recorded STORED.)
    let mut g22_kinds = kinds_about(&g22_log, &id);
    assert_eq!(g22_kinds[0], "submitted");
    g22_kinds.sort();
    assert_eq!(g22_kinds, ["notice", "receipt", "sent", "submitted"]);
    assert_eq!(
        kinds_about(&h41_log, &id),
        ["received", "registered", "fetched"]
    );
    let fetched = h41_log.iter().find(|e| e["kind"] == "fetched").unwrap();
    assert!(
        fetched["actor"].as_str().unwrap().starts_with("uid:"),
        "{fetched}"
    );
    assert_eq!(fetched["fields"]["role"], "admin");
    let submitted = g22_log.iter().find(|e| e["kind"] == "submitted").unwrap();
    assert_eq!(submitted["fields"]["role"], "admin", "{submitted}");
    assert_eq!(submitted["fields"]["to"], H41);
    let sent = g22_log.iter().find(|e| e["kind"] == "sent").unwrap();
    assert_eq!(sent["actor"], format!("peer:{H41}"));
    // The node's configuration entered the ledger at first start.
    assert!(h41_log.iter().any(|e| e["kind"] == "config"));
    // Reading the ledger is itself recorded.
    let audits = log(&s, "h41", &["--kind", "audit"]);
    assert!(
        audits.iter().any(|e| e["fields"]["query"] == "log"),
        "{audits:?}"
    );
    // Filters: by agency and kind.
    let about_h41 = log(&s, "g22", &["--org", H41, "--kind", "sent"]);
    assert_eq!(about_h41.len(), 1);
    assert!(log(&s, "g22", &["--since", "2100-01-01"]).is_empty());
    // A reader that goes away before we write (`| head`, here `| true`) is not an error.
    s.sh("\"$VDX\" --home g22 audit log | true && \"$VDX\" --home g22 outbox | true")
        .ok();
    let since = log(
        &s,
        "g22",
        &["--since", "2020-01-01T00:00:00Z", "--kind", "submitted"],
    );
    assert_eq!(since.len(), 1);
    // Pages: at most --limit rows, the next page --after the last index shown.
    let everything = log(&s, "g22", &[]);
    assert!(everything.len() > 4, "{everything:?}");
    let index = |rows: &[Value]| -> Vec<u64> {
        rows.iter().map(|e| e["index"].as_u64().unwrap()).collect()
    };
    let page = s
        .vdx(&["--home", "g22", "audit", "log", "--json", "--limit", "2"])
        .ok();
    let first: Vec<Value> = serde_json::from_str(&page.stdout).unwrap();
    assert_eq!(index(&first), index(&everything[..2]));
    let last = first[1]["index"].as_u64().unwrap();
    assert!(
        page.stderr.contains(&format!("--after {last}")),
        "{}",
        page.stderr
    );
    let after = last.to_string();
    let next = log(&s, "g22", &["--after", &after, "--limit", "2"]);
    assert_eq!(index(&next), index(&everything[2..4]));

    // Export through the API and verify offline, also against the CA.
    s.vdx(&["--home", "g22", "audit", "export", "--out", "bundle"])
        .ok();
    let verified = s
        .vdx(&["audit", "verify", "bundle", "--ca", "ca/ca.pem"])
        .ok();
    assert!(verified.stdout.starts_with("ok"), "{}", verified.stdout);
    s.vdx(&["--home", "g22", "audit", "verify"]).ok();
    // A changed byte in one entry is caught, and that entry is named.
    let entries = String::from_utf8(s.read("bundle/entries")).unwrap();
    let at = entries.find("kind receipt").unwrap();
    let index = entries[..at].matches("vdx-ledger/1").count() - 1;
    let tampered = entries.replacen("kind receipt", "kind relayed", 1);
    s.sh("cp -r bundle tampered && chmod -R u+w tampered").ok();
    std::fs::write(s.path("tampered/entries"), tampered).unwrap();
    let caught = s.vdx(&["audit", "verify", "tampered"]);
    assert_ne!(caught.status, 0);
    assert!(
        caught.stderr.contains(&format!("entry {index}:")),
        "entry {index} should be named: {}",
        caught.stderr
    );

    // Inclusion proofs of the dispatch's entries, checkable with only the node's certificate.
    let proofs = s
        .vdx(&[
            "--home", "g22", "audit", "prove", "--id", &id, "--out", "proofs",
        ])
        .ok();
    let files: Vec<&str> = proofs.stdout.lines().collect();
    assert_eq!(files.len(), 4, "{}", proofs.stdout);
    s.sh("openssl x509 -in bundle/chain.pem -out g22-sign.pem")
        .ok();
    let mut args = vec!["audit", "check-proof", "--cert", "g22-sign.pem"];
    args.extend(files.iter().copied());
    let checked = s.vdx(&args).ok();
    assert_eq!(
        checked
            .stdout
            .lines()
            .filter(|l| l.starts_with("ok"))
            .count(),
        4
    );
    // By message id (the UUID `show` gives), the receiver proves its own entries about it.
    let message_id = s.vdx(&["--home", "h41", "show", "--json", &id]).ok().json()["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_message = s
        .vdx(&[
            "--home",
            "h41",
            "audit",
            "prove",
            "--id",
            &message_id,
            "--out",
            "h41-proofs",
        ])
        .ok();
    assert_eq!(
        by_message.stdout.lines().count(),
        3,
        "received, registered, fetched"
    );
    // Someone else's certificate does not check them.
    let mut args = vec!["audit", "check-proof", "--cert", "h41/keys/sign.pem"];
    args.push(files[0]);
    assert_ne!(s.vdx(&args).status, 0);

    // g22 kept h41's checkpoints from its receipts (a second delivery makes h41's ledger grow
    // between them; receipts carry the same checkpoint for up to a second, so it comes later),
    // and h41 proves they are one history.
    std::thread::sleep(Duration::from_millis(1100));
    s.write("cv2.txt", b"second");
    deliver(&s, "13", "cv2.txt");
    let witness = s
        .vdx(&["--home", "g22", "audit", "witness", "--json"])
        .ok()
        .json();
    let h41_report = witness
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["origin"] == format!("vdx/{H41}"))
        .unwrap()
        .clone();
    assert!(
        h41_report["checkpoints"].as_u64().unwrap() >= 2,
        "{h41_report}"
    );
    assert!(h41_report["proven"].as_u64().unwrap() >= 1, "{h41_report}");
    assert_eq!(h41_report["forks"], serde_json::json!([]));
    // What was proven is not proven again: the newest checkpoint stands for the older ones.
    let again = s
        .vdx(&["--home", "g22", "audit", "witness", "--json"])
        .ok()
        .json();
    assert_eq!(again[0]["checkpoints"], 1, "{again}");
    assert_eq!(again[0]["proven"], 0, "{again}");

    // With the daemons stopped, the officer still reads and checks the ledger from the store.
    assert!(g22.stop().success());
    assert!(h41.stop().success());
    s.vdx(&["--home", "h41", "audit", "verify"]).ok();
    let offline = log(&s, "h41", &["--kind", "registered"]);
    assert_eq!(offline.len(), 2);
    assert_eq!(offline[0]["id"], id.as_str());
    assert!(offline[0]["fields"]["number"]
        .as_str()
        .unwrap()
        .starts_with("1/"));
}

#[test]
fn a_node_that_rewrites_its_history_is_caught_by_its_peer() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    // h41's state before anything happened, to roll back to later.
    let h41 = Daemon::start(&s, "h41");
    assert!(h41.stop().success());
    s.sh("cp -a h41/data h41-before").ok();

    let g22 = Daemon::start(&s, "g22");
    let h41 = Daemon::start(&s, "h41");
    s.write("one.txt", b"first dispatch");
    deliver(&s, "1", "one.txt");
    let clean = s
        .vdx(&["--home", "g22", "audit", "witness", "--json"])
        .ok()
        .json();
    assert_eq!(clean[0]["forks"], serde_json::json!([]), "{clean}");

    // h41 throws its history away and starts again from the old state.
    assert!(h41.stop().success());
    s.sh("rm -rf h41/data && cp -a h41-before h41/data").ok();
    let _h41 = Daemon::start(&s, "h41");
    // h41 notices the restore itself (tests/tests/restore.rs); its admin lets it go on, and
    // its new history differs from the one g22 witnessed.
    s.vdx(&["--home", "h41", "acknowledge-restore"]).ok();
    s.write("two.txt", b"second dispatch, over the rewritten history");
    deliver(&s, "2", "two.txt");

    let caught = s.vdx(&["--home", "g22", "audit", "witness", "--json"]);
    assert_eq!(caught.status, 1, "{}\n{}", caught.stdout, caught.stderr);
    let report = caught.json();
    let forks = report[0]["forks"].as_array().unwrap();
    assert!(!forks.is_empty(), "{report}");
    let plain = s.vdx(&["--home", "g22", "audit", "witness"]);
    assert!(plain.stdout.contains("FORKED"), "{}", plain.stdout);
    drop(g22);
}

/// Runs `vdx ARGS` as Unix user `uid` (group `gid`, no others), as another person on the node's
/// machine would.
fn vdx_as(s: &Session, uid: u32, gid: u32, args: &[&str]) -> vdx_tests::Ran {
    let mut all: Vec<String> = vdx_tests::as_root()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    all.extend([
        "setpriv".to_owned(),
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
        "--clear-groups".to_owned(),
        vdx_tests::vdx_bin().display().to_string(),
    ]);
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let out = std::process::Command::new(&all[0])
        .args(&all[1..])
        .current_dir(s.dir())
        .env_remove("VDX_KEY_PASSPHRASE")
        .output()
        .unwrap();
    vdx_tests::Ran::from(out)
}

#[test]
fn only_officers_and_admins_read_the_ledger_and_their_reading_is_recorded_by_uid() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    let (officer, clerk, group) = (1200, 1300, 4242);
    let config = std::fs::read_to_string(s.path("h41/config.toml")).unwrap();
    let config = config
        .replace("clerks = []", &format!("clerks = [{clerk}]"))
        .replace("officers = []", &format!("officers = [{officer}]"));
    std::fs::write(s.path("h41/config.toml"), config).unwrap();
    let _h41 = Daemon::start(&s, "h41");
    // Other users reach the socket through its group, as an operator would arrange it.
    s.sh(&format!(
        "chmod o+x . h41 && {} chgrp {group} h41/vdxd.sock",
        vdx_tests::as_root()
    ))
    .ok();

    let read = vdx_as(
        &s,
        officer,
        group,
        &["--home", "h41", "audit", "log", "--json"],
    );
    assert_eq!(read.status, 0, "{}", read.stderr);
    let refused = vdx_as(&s, clerk, group, &["--home", "h41", "audit", "log"]);
    assert_ne!(refused.status, 0);
    assert!(refused.stderr.contains("(forbidden)"), "{}", refused.stderr);
    let stranger = vdx_as(&s, 1400, group, &["--home", "h41", "audit", "log"]);
    assert!(
        stranger.stderr.contains("(forbidden)"),
        "{}",
        stranger.stderr
    );

    let audits = log(&s, "h41", &["--kind", "audit"]);
    assert!(
        audits
            .iter()
            .any(|e| e["actor"] == format!("uid:{officer}")),
        "{audits:?}"
    );
    assert!(
        !audits.iter().any(|e| e["actor"] == format!("uid:{clerk}")),
        "a refused query reads nothing and records nothing: {audits:?}"
    );
}
