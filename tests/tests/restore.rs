//! A node whose store is put back to an older copy notices it — from the anchor it keeps outside
//! the store, or from its peer when the whole home was restored — stops numbering and sending
//! until an admin acknowledges it, and never issues a số đến twice; the peer's witness check
//! reports it as rolled back.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::Duration;

use serde_json::Value;
use vdx_tests::daemon::{homes, show, wait_until, Daemon};
use vdx_tests::Session;

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const LIMIT: Duration = Duration::from_secs(60);

/// Sends `file` from g22 to h41; returns the copy's id.
fn send(s: &Session, number: &str) -> String {
    s.write("cv.txt", format!("Công văn số {number}").as_bytes());
    let answer = s.send("g22", H41, number, "cv.txt", &[]).ok().json();
    answer["copies"][0]["id"].as_str().unwrap().to_owned()
}

/// Sends one dispatch from g22 to h41 and waits for its delivery receipt.
fn deliver(s: &Session, number: &str) -> String {
    let id = send(s, number);
    wait_until(s, LIMIT, "delivery receipt", || {
        show(s, "g22", &id)["status"] == "delivered"
    });
    id
}

/// The incoming numbers h41 issued, in its inbox.
fn numbers(s: &Session) -> Vec<String> {
    let inbox = s.vdx(&["--home", "h41", "inbox", "--json"]).ok().json();
    let mut numbers: Vec<String> = inbox
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["incoming_number"].as_str().map(str::to_owned))
        .collect();
    numbers.sort();
    numbers
}

/// The số đến of `first`, then of dispatches 2 and 3 delivered after it (each after `pause`).
fn numbered_after(s: &Session, first: &str, pause: Duration) -> Vec<String> {
    let mut ids = vec![first.to_owned()];
    for n in ["2", "3"] {
        std::thread::sleep(pause);
        ids.push(deliver(s, n));
    }
    ids.iter()
        .map(|id| {
            show(s, "h41", id)["incoming_number"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn status(s: &Session) -> Value {
    s.vdx(&["--home", "h41", "status", "--json"]).ok().json()
}

/// h41 has noticed a restore: it says so, refuses a clerk's dispatch, and numbers nothing that
/// arrives (`pending_id` is stored, not registered); then an admin acknowledges, and numbering
/// resumes past every number issued before the restore (`issued`).
fn acknowledged_and_resumed(s: &Session, pending_id: &str, issued: &[String]) {
    let check = s.vdx(&["--home", "h41", "status", "--check"]);
    assert_eq!(check.status, 1, "{}", check.stdout);
    assert!(
        check.stdout.contains("acknowledge-restore"),
        "{}",
        check.stdout
    );
    s.write("reply.txt", b"reply");
    let refused = s.send("h41", G22, "9", "reply.txt", &[]);
    assert_eq!(refused.status, 1);
    assert!(
        refused.stderr.contains("restore_pending"),
        "{}",
        refused.stderr
    );

    // The dispatch sent meanwhile is taken into custody but not numbered.
    wait_until(s, LIMIT, "custody at h41", || {
        show(s, "g22", pending_id)["status"] == "sent"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        numbers(s).len(),
        1,
        "numbered while halted: {:?}",
        numbers(s)
    );

    let ack = s
        .vdx(&["--home", "h41", "acknowledge-restore", "--json"])
        .ok()
        .json();
    let year = &issued[0][issued[0].find('/').unwrap() + 1..];
    let next = ack["next_numbers"][format!("{year}/regular")]
        .as_u64()
        .unwrap();
    assert!(next > issued.len() as u64, "{ack}");
    let again = s.vdx(&["--home", "h41", "acknowledge-restore"]);
    assert!(again.stderr.contains("no_restore"), "{}", again.stderr);

    wait_until(s, LIMIT, "delivery after the acknowledgement", || {
        show(s, "g22", pending_id)["status"] == "delivered"
    });
    let now = numbers(s);
    assert_eq!(now.len(), 2, "{now:?}");
    let resumed = &show(s, "h41", pending_id)["incoming_number"];
    assert_eq!(resumed.as_str().unwrap(), format!("{next}/{year}"));
    for earlier in &issued[1..] {
        assert_ne!(resumed.as_str().unwrap(), earlier, "a số đến issued twice");
    }
    assert!(status(s).get("restored").is_none());
    let log = s
        .vdx(&[
            "--home", "h41", "audit", "log", "--json", "--kind", "config",
        ])
        .ok()
        .json();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["fields"]["what"] == "restore acknowledged"),
        "{log}"
    );
}

#[test]
fn a_data_directory_put_back_is_noticed_from_the_anchor_and_no_number_repeats() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    let _g22 = Daemon::start(&s, "g22");
    let h41 = Daemon::start(&s, "h41");
    let first = deliver(&s, "1");
    assert!(h41.stop().success());
    s.sh("cp -a h41/data h41-data-before").ok();

    let h41 = Daemon::start(&s, "h41");
    let issued = numbered_after(&s, &first, Duration::ZERO);
    assert!(h41.stop().success());
    s.sh("rm -rf h41/data && cp -a h41-data-before h41/data")
        .ok();

    let _h41 = Daemon::start(&s, "h41");
    let restored = &status(&s)["restored"];
    assert!(
        restored["noticed_by"].as_str().unwrap().contains("anchor"),
        "{restored}"
    );
    assert!(restored["known_size"].as_u64() > restored["found_size"].as_u64());
    let pending = send(&s, "4");
    acknowledged_and_resumed(&s, &pending, &issued);
}

#[test]
fn a_home_restored_whole_is_noticed_through_its_peer_whose_witness_says_rolled_back() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    let _g22 = Daemon::start(&s, "g22");
    let h41 = Daemon::start(&s, "h41");
    let first = deliver(&s, "1");
    assert!(h41.stop().success());
    s.sh("cp -a h41 h41-before").ok();

    let h41 = Daemon::start(&s, "h41");
    // Receipts carry a checkpoint at most a second old: pausing, g22 comes to hold a newer one.
    let issued = numbered_after(&s, &first, Duration::from_millis(1200));
    assert!(h41.stop().success());
    s.sh("rm -rf h41 && cp -a h41-before h41").ok();

    let _h41 = Daemon::start(&s, "h41");
    // The peer's officer sees it too: g22 holds a checkpoint h41's ledger no longer reaches.
    let witness = s.vdx(&["--home", "g22", "audit", "witness", "--json"]);
    assert_eq!(witness.status, 1, "{}\n{}", witness.stdout, witness.stderr);
    let report = witness.json();
    assert!(
        !report[0]["rolled_back"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let plain = s.vdx(&["--home", "g22", "audit", "witness"]);
    assert!(plain.stdout.contains("ROLLED BACK"), "{}", plain.stdout);

    // h41 learnt it from g22, the first peer it talked to.
    wait_until(&s, LIMIT, "the restore noticed through the peer", || {
        status(&s).get("restored").is_some()
    });
    let restored = &status(&s)["restored"];
    assert_eq!(restored["noticed_by"], format!("peer {G22}"), "{restored}");
    let pending = send(&s, "4");
    acknowledged_and_resumed(&s, &pending, &issued);
}
