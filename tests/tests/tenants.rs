//! One node, many agencies: a store written before tenants is migrated on open, and (below) a host
//! serving several agencies, each a whole agency of its own.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::Duration;

use serde_json::Value;
use vdx_tests::daemon::{free_port, wait_status, Daemon};
use vdx_tests::Session;

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const LIMIT: Duration = Duration::from_secs(60);

/// The homes of `tests/fixtures/store-v1.tar.gz` (made by the release before tenants with
/// `scripts/make-store-v1-fixture.sh`), listening on free ports.
fn homes_of_the_release_before(s: &Session) {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/store-v1.tar.gz");
    s.sh(&format!("tar xzf {fixture}")).ok();
    let (g22, h41) = (free_port(), free_port());
    s.sh(&format!(
        "sed -i 's/127.0.0.1:47101/127.0.0.1:{g22}/; s/127.0.0.1:47102/127.0.0.1:{h41}/' \
         g22/config.toml h41/config.toml g22/directory.json h41/directory.json"
    ))
    .ok();
}

fn list(s: &Session, home: &str, what: &str) -> Vec<Value> {
    s.vdx(&["--home", home, what, "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_store_written_before_tenants_is_migrated_and_goes_on_numbering() {
    let s = Session::new();
    homes_of_the_release_before(&s);
    assert!(s.exists("h41/data/spool"), "the fixture is of format 1");
    let receiver = Daemon::start(&s, "h41");
    let sender = Daemon::start(&s, "g22");
    assert!(!s.exists("h41/data/spool"), "moved into the tenant");
    assert!(s.exists(&format!("h41/data/tenants/{H41}/spool/objects")));

    // What the old release did is all there.
    let outbox = list(&s, "g22", "outbox");
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    assert!(
        outbox.iter().all(|d| d["status"] == "delivered"),
        "{outbox:?}"
    );
    let inbox = list(&s, "h41", "inbox");
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    let year = time::OffsetDateTime::now_utc().year();
    let mut numbers: Vec<String> = inbox
        .iter()
        .map(|d| d["incoming_number"].as_str().unwrap().to_owned())
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["1/2026", "2/2026"]);
    let first = inbox[0]["id"].as_str().unwrap();
    s.vdx(&["--home", "h41", "fetch", first, "--out", "got"])
        .ok();
    assert_eq!(
        s.read("got/cv.txt"),
        "Kính gửi: UBND tỉnh Nghệ An\n".as_bytes()
    );

    // And it goes on: the next arrival takes the next number of the series.
    s.write("cv.txt", b"Cong van moi\n");
    let sent = s
        .vdx(&[
            "--home",
            "g22",
            "send",
            "--json",
            "--to",
            H41,
            "--subject",
            "V/v tiếp theo",
            "--number",
            "3",
            "--notation",
            "VPCP-TTĐT",
            "cv.txt",
        ])
        .ok()
        .json();
    let id = sent["copies"][0]["id"].as_str().unwrap();
    let at_receiver = wait_status(&s, LIMIT, "h41", id, "registered");
    let next = if year == 2026 { 3 } else { 1 };
    assert_eq!(at_receiver["incoming_number"], format!("{next}/{year}"));
    wait_status(&s, LIMIT, "g22", id, "delivered");
    assert!(sender.stop().success());
    assert!(receiver.stop().success());

    // Both ledgers, old entries and new, verify; the old checkpoints' origin is the agency's.
    for (home, code) in [("g22", G22), ("h41", H41)] {
        s.vdx(&["--home", home, "audit", "verify"]).ok();
        let bundle = format!("{home}-bundle");
        s.vdx(&["--home", home, "audit", "export", "--out", &bundle])
            .ok();
        let verified = s
            .vdx(&["audit", "verify", &bundle, "--ca", "ca/ca.pem"])
            .ok();
        assert!(verified.stdout.starts_with("ok"), "{}", verified.stdout);
        assert!(verified.stdout.contains(code), "{}", verified.stdout);
    }
    s.vdx(&["--home", "h41", "check"]).ok();
}
