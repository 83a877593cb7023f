//! `vdx check` on real daemons and real store files: at the receiver one delivered spool object is
//! deleted and another has one byte changed; `vdx check` names both, with the right reason each,
//! while the daemon runs (through the local API) and while it is stopped (the store opened
//! directly), and exits 1; an undamaged node exits 0; a clerk's fetch of the changed one answers
//! `damaged`. At the sender, a queued dispatch whose spool object is changed while its recipient
//! is down is never stored there: it fails with the reason the clerk reads.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::Duration;

use serde_json::Value;
use vdx_tests::daemon::tenant_files;
use vdx_tests::daemon::{homes, Daemon};
use vdx_tests::{Ran, Session};

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const LIMIT: Duration = Duration::from_secs(90);

/// `vdx send` of `file` from g22 to h41; the copy's transfer id.
fn send(s: &Session, number: &str, file: &str) -> String {
    s.send("g22", H41, number, file, &[]).ok().json()["copies"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `vdx show`, or `null` (shared helper).
fn show(s: &Session, home: &str, id: &str) -> Value {
    vdx_tests::daemon::show(s, home, id)
}

/// Waits until `id` shows `want` at `home`, within this file's limit.
fn wait_status(s: &Session, home: &str, id: &str, want: &str) -> Value {
    vdx_tests::daemon::wait_status(s, LIMIT, home, id, want)
}

fn check(s: &Session, home: &str) -> Ran {
    s.vdx(&["--home", home, "check"])
}

/// The line `vdx check` printed about `id`.
fn line_about<'a>(ran: &'a Ran, id: &str) -> &'a str {
    ran.stdout
        .lines()
        .find(|l| l.starts_with(&format!("damaged {id}: ")))
        .unwrap_or_else(|| panic!("no line about {id}:\n{}", ran.stdout))
}

/// Flips one bit of the file `name` at byte `at`.
fn change_byte(s: &Session, name: &str, at: usize) {
    let mut bytes = s.read(name);
    bytes[at] ^= 0x20;
    s.write(name, &bytes);
}

#[test]
fn check_names_a_deleted_and_a_changed_object_online_and_offline() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    // Two dispatches sealed to more than 64 KiB (spool files) and one small (kept in the store).
    s.document("deleted.pdf", 300_000);
    s.document("changed.pdf", 300_000);
    s.write("small.txt", "Kính gửi: UBND tỉnh\n".as_bytes());
    let receiver = Daemon::start(&s, "h41");
    let sender = Daemon::start(&s, "g22");
    let deleted = send(&s, "1", "deleted.pdf");
    let changed = send(&s, "2", "changed.pdf");
    let small = send(&s, "3", "small.txt");
    for id in [&deleted, &changed, &small] {
        wait_status(&s, "h41", id, "registered");
        wait_status(&s, "g22", id, "delivered");
    }

    // Undamaged: exit 0 on both nodes, everything counted.
    for home in ["h41", "g22"] {
        let clean = check(&s, home).ok();
        assert!(clean.stdout.starts_with("ok: "), "{}", clean.stdout);
    }
    let json = s.vdx(&["--home", "h41", "check", "--json"]).ok().json();
    assert!(json["objects"].as_u64().unwrap() >= 3, "{json}");
    assert!(json["bytes"].as_u64().unwrap() > 600_000, "{json}");
    assert_eq!(json["damaged"], serde_json::json!([]));

    // The recipient goes down; a dispatch for it waits in g22's outbox, and its object changes.
    assert!(receiver.stop().success());
    s.document("queued.pdf", 300_000);
    let queued = send(&s, "4", "queued.pdf");
    assert_eq!(show(&s, "g22", &queued)["status"], "queued");
    let spool = |home: &str, id: &str| format!("{}/spool/objects/{id}.p7m", tenant_files(&s, home));
    assert!(s.exists(&spool("h41", &deleted)) && s.exists(&spool("h41", &changed)));
    assert!(
        !s.exists(&spool("h41", &small)),
        "the small one is kept in the store"
    );
    change_byte(&s, &spool("g22", &queued), 150_000);

    // At the receiver: one spool object deleted, one byte of another changed.
    std::fs::remove_file(s.path(&spool("h41", &deleted))).unwrap();
    change_byte(&s, &spool("h41", &changed), 100_000);

    // Offline: the stopped node's store, opened directly.
    let offline = check(&s, "h41");
    assert_eq!(offline.status, 1, "{}\n{}", offline.stdout, offline.stderr);
    assert_damage_named(&offline, &deleted, &changed, &small);

    // Online: the same through the running daemon.
    let receiver = Daemon::start(&s, "h41");
    let online = check(&s, "h41");
    assert_eq!(online.status, 1, "{}\n{}", online.stdout, online.stderr);
    assert_damage_named(&online, &deleted, &changed, &small);
    eprintln!("vdx check, online:\n{}", online.stdout);
    assert_eq!(
        offline.stdout.lines().next(),
        online.stdout.lines().next(),
        "the same finding either way"
    );
    // Both runs are in the ledger.
    let audits = s
        .vdx(&["--home", "h41", "audit", "log", "--kind", "audit", "--json"])
        .ok()
        .json();
    let checks: Vec<&Value> = audits
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["fields"]["query"] == "check")
        .collect();
    assert!(checks.len() >= 3, "{audits}");
    assert_eq!(checks.last().unwrap()["fields"]["damaged"], "2");

    // A clerk's fetch: `damaged`, naming the dispatch, not `internal`.
    let fetched = s.vdx(&["--home", "h41", "fetch", &changed, "--out", "got"]);
    assert_eq!(fetched.status, 1);
    assert!(
        fetched.stderr.contains("(damaged)")
            && fetched.stderr.contains(&changed)
            && fetched.stderr.contains("digest mismatch"),
        "{}",
        fetched.stderr
    );
    let fetched = s.vdx(&["--home", "h41", "fetch", &deleted, "--out", "got2"]);
    assert!(
        fetched.stderr.contains("(damaged)") && fetched.stderr.contains("object missing"),
        "{}",
        fetched.stderr
    );
    s.vdx(&["--home", "h41", "fetch", &small, "--out", "got3"])
        .ok();

    // The sender never hands over its changed object: failed, with the reason, and nothing of it
    // stored at the recipient.
    let failed = wait_status(&s, "g22", &queued, "failed");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .starts_with("the stored object is damaged: digest mismatch"),
        "{failed}"
    );
    assert_eq!(show(&s, "h41", &queued), Value::Null);
    let at_sender = check(&s, "g22");
    assert_eq!(at_sender.status, 1, "{}", at_sender.stdout);
    assert!(
        line_about(&at_sender, &queued).contains(&format!("outgoing to {H41}, failed")),
        "{}",
        at_sender.stdout
    );

    assert!(sender.stop().success());
    assert!(receiver.stop().success());
}

/// The deleted and the changed dispatch are named with their reason, the small one is not.
fn assert_damage_named(ran: &Ran, deleted: &str, changed: &str, small: &str) {
    let line = line_about(ran, deleted);
    assert!(
        line.contains(&format!("incoming from {G22}, registered: object missing")),
        "{line}"
    );
    let line = line_about(ran, changed);
    assert!(
        line.contains(&format!("incoming from {G22}, registered: digest mismatch")),
        "{line}"
    );
    assert!(!ran.stdout.contains(small), "{}", ran.stdout);
    assert!(
        ran.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("2 damaged: "),
        "{}",
        ran.stdout
    );
}
