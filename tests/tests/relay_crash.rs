//! A relay killed with `kill -9` during a circular, and restarted (issue 16): the centre sends one
//! dispatch to three communes that have nodes of their own behind their province's relay; the
//! relay dies while it carries their copies. Every commune gets the circular exactly once, every
//! delivery receipt reaches the centre once, and each ledger says so.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use vdx_tests::daemon::{free_port, listed, wait_until, Daemon};
use vdx_tests::Session;

const G22: &str = "000.00.00.G22"; // the centre
const H41: &str = "000.00.00.H41"; // the province, relay of its communes
const COMMUNES: [&str; 3] = ["000.01.41.H41", "000.02.41.H41", "000.03.41.H41"];
const LIMIT: Duration = Duration::from_secs(90);

/// The home of an agency: its organ code's first two parts.
fn home(code: &str) -> String {
    code.replace('.', "")
}

/// The centre, the province and its three communes (each with a node, relayed by H41), every
/// entry in every node's directory.
fn network(s: &Session) {
    s.vdx(&["pki", "init-ca", "--out", "ca", "--name", "Root"])
        .ok();
    let all: Vec<&str> = [G22, H41].into_iter().chain(COMMUNES).collect();
    for code in &all {
        let listen = format!("127.0.0.1:{}", free_port());
        let home = home(code);
        let mut args = vec![
            "--home", &home, "init", "--org", code, "--name", code, "--listen", &listen, "--ca",
            "ca",
        ];
        if code.ends_with(".41.H41") {
            args.extend(["--relay", H41]);
        }
        s.vdx(&args).ok();
        let entry = s.vdx(&["--home", &home, "directory", "export"]).ok();
        s.write(&format!("{home}.json"), entry.stdout.as_bytes());
    }
    for code in &all {
        for other in all.iter().filter(|o| *o != code) {
            let (home, file) = (home(code), format!("{}.json", home(other)));
            s.vdx(&["--home", &home, "directory", "import", &file]).ok();
        }
    }
}

/// The entries of kind `kind` in `home`'s ledger about dispatches (not their objects).
fn ledger_ids(s: &Session, home: &str, kind: &str) -> Vec<String> {
    let log = s
        .vdx(&["--home", home, "audit", "log", "--json", "--kind", kind])
        .ok()
        .json();
    log.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fields"].get("object").is_none())
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_relay_killed_during_a_circular_loses_and_duplicates_nothing() {
    let s = Session::new();
    network(&s);
    s.document("chi-thi.pdf", 3 << 20);
    let _centre = Daemon::start(&s, &home(G22));
    let relay = Daemon::start(&s, &home(H41));
    let _communes: Vec<Daemon> = COMMUNES
        .iter()
        .map(|c| Daemon::start(&s, &home(c)))
        .collect();

    let mut send = vec![
        "--home",
        "0000000G22",
        "send",
        "--json",
        "--subject",
        "Chỉ thị",
        "--number",
        "1",
        "--notation",
        "CT-TTg",
        "--urgency",
        "khan",
    ];
    for commune in COMMUNES {
        send.extend(["--to", commune]);
    }
    send.push("chi-thi.pdf");
    let sent = s.vdx(&send).ok().json();
    let message_id = sent["message_id"].as_str().unwrap().to_owned();
    let copies: BTreeSet<String> = sent["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(copies.len(), 3);

    // The relay dies as soon as it has taken custody of a first copy (or sooner), and comes back.
    let outbox = |s: &Session| listed(s, "0000000G22", None, "outbox").unwrap_or_default();
    wait_until(&s, LIMIT, "a copy to leave the centre", || {
        outbox(&s).iter().any(|c| c["status"] != "queued")
    });
    relay.kill9();
    let _relay = Daemon::start(&s, &home(H41));

    wait_until(&s, LIMIT, "every copy delivered at the centre", || {
        let out: Vec<Value> = outbox(&s);
        out.len() == 3 && out.iter().all(|c| c["status"] == "delivered")
    });
    for commune in COMMUNES {
        let inbox = listed(&s, &home(commune), None, "inbox").unwrap();
        let arrived: Vec<&Value> = inbox
            .iter()
            .filter(|d| d["message_id"] == message_id.as_str())
            .collect();
        assert_eq!(arrived.len(), 1, "{commune}: {inbox:?}");
        assert_eq!(arrived[0]["status"], "registered", "{commune}: {inbox:?}");
    }
    // One receipt per copy at the centre, one relayed object per copy at the relay (its own
    // ledger), each copy registered once at its commune.
    let receipts = ledger_ids(&s, "0000000G22", "receipt");
    assert_eq!(receipts.len(), 3, "{receipts:?}");
    assert_eq!(receipts.into_iter().collect::<BTreeSet<_>>(), copies);
    for commune in COMMUNES {
        assert_eq!(
            ledger_ids(&s, &home(commune), "registered").len(),
            1,
            "{commune}"
        );
    }
}
