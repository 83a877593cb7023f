//! A relay that cannot be reached is bypassed (issue 16): a commune on its own node names two
//! relays in the directory, its province H41 and, after it, the province H40. H41's daemon is
//! killed; the centre's dispatch to the commune and the commune's to the centre still arrive,
//! through H40, each exactly once, with their delivery receipts back at the senders. H41 is then
//! started again: the centre's route comes back to it, and nothing arrives twice.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::Duration;

use serde_json::Value;
use vdx_tests::daemon::{free_port, listed, wait_status, wait_until, Daemon};
use vdx_tests::{words, Session};

const G22: &str = "000.00.00.G22"; // the centre, no relay
const H41: &str = "000.00.00.H41"; // the commune's first relay
const H40: &str = "000.00.00.H40"; // its second relay
const XA: &str = "000.01.41.H41"; // the commune, on its own node
/// Three failed connection attempts (each up to the 15 s handshake timeout) before a relay is
/// bypassed, then the transfers: generous, for a loaded machine.
const LIMIT: Duration = Duration::from_secs(240);

/// `(home, organ code, relay)` of the four nodes.
const NODES: [(&str, &str, Option<&str>); 4] = [
    ("g22", G22, None),
    ("h41", H41, None),
    ("h40", H40, None),
    ("xa", XA, Some(H41)),
];

/// The four homes from one dev CA; XA's exported entry gains `alternate_relays: [H40]`, and every
/// node's entry is imported into every node (XA's own included).
fn network(s: &Session) {
    s.vdx(&words("pki init-ca --out ca --name Root")).ok();
    for (home, org, relay) in NODES {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut args = vec![
            "--home", home, "init", "--org", org, "--name", home, "--listen", &listen, "--ca", "ca",
        ];
        if let Some(relay) = relay {
            args.extend(["--relay", relay]);
        }
        s.vdx(&args).ok();
        let mut entry: Value =
            serde_json::from_str(&s.vdx(&["--home", home, "directory", "export"]).ok().stdout)
                .unwrap();
        if org == XA {
            entry["alternate_relays"] = serde_json::json!([H40]);
        }
        s.write(&format!("{home}.json"), entry.to_string().as_bytes());
    }
    for (home, _, _) in NODES {
        for (other, _, _) in NODES {
            if other != home || other == "xa" {
                let file = format!("{other}.json");
                s.vdx(&["--home", home, "directory", "import", &file]).ok();
            }
        }
    }
}

fn id_of(sent: vdx_tests::Ran) -> String {
    sent.ok().json()["copies"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// How many times dispatch `id` sits in `home`'s inbox.
fn arrived(s: &Session, home: &str, id: &str) -> usize {
    listed(s, home, None, "inbox")
        .unwrap()
        .iter()
        .filter(|d| d["id"] == id)
        .count()
}

/// The ids of `home`'s ledger entries of `kind` that name `id`.
fn ledger_has(s: &Session, home: &str, kind: &str, id: &str) -> usize {
    s.vdx(&["--home", home, "audit", "log", "--json", "--kind", kind])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.to_string().contains(id))
        .count()
}

/// The state `home`'s scheduler reports for `peer` (`null` before it dealt with it).
fn peer_state(s: &Session, home: &str, peer: &str) -> Value {
    let status = s.vdx(&["--home", home, "status", "--json"]).ok().json();
    status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["organ_code"] == peer)
        .map_or(Value::Null, |p| p["state"].clone())
}

#[test]
fn a_dead_relay_is_bypassed_through_the_next_the_directory_names_and_nothing_doubles() {
    let s = Session::new();
    network(&s);
    s.write("down.txt", "Công văn xuống".as_bytes());
    s.write("up.txt", "Báo cáo lên".as_bytes());
    let _g22 = Daemon::start(&s, "g22");
    let _h40 = Daemon::start(&s, "h40");
    let _xa = Daemon::start(&s, "xa");
    let h41 = Daemon::start(&s, "h41");
    h41.kill9();

    // Both ways at once: the centre to the commune, the commune (relayed by H41) to the centre.
    let down = id_of(s.send("g22", XA, "1", "down.txt", &[]));
    let up = id_of(s.send("xa", G22, "2", "up.txt", &[]));
    wait_status(&s, LIMIT, "xa", &down, "registered");
    wait_status(&s, LIMIT, "g22", &up, "registered");
    wait_status(&s, LIMIT, "g22", &down, "delivered");
    wait_status(&s, LIMIT, "xa", &up, "delivered");
    // H40 carried all four objects (both dispatches, both receipts' way back).
    for id in [&down, &up] {
        assert_eq!(ledger_has(&s, "h40", "relayed", id), 1, "{id} at h40");
    }
    assert_eq!(peer_state(&s, "g22", H41), "unreachable");
    assert_eq!(peer_state(&s, "xa", H41), "unreachable");

    // H41 comes back: the centre's next try reaches it, and its route comes back to H41.
    let _h41 = Daemon::start(&s, "h41");
    wait_until(&s, LIMIT, "g22 to reach h41 again", || {
        peer_state(&s, "g22", H41) == "connected"
    });
    let again = id_of(s.send("g22", XA, "3", "down.txt", &[]));
    wait_status(&s, LIMIT, "xa", &again, "registered");
    wait_status(&s, LIMIT, "g22", &again, "delivered");
    assert_eq!(ledger_has(&s, "h41", "relayed", &again), 1);
    assert_eq!(ledger_has(&s, "h40", "relayed", &again), 0);

    // Each dispatch arrived once and was registered once; each sender holds one receipt.
    assert_eq!(arrived(&s, "xa", &down), 1);
    assert_eq!(arrived(&s, "xa", &again), 1);
    assert_eq!(arrived(&s, "g22", &up), 1);
    for (home, id) in [("xa", &down), ("xa", &again), ("g22", &up)] {
        assert_eq!(ledger_has(&s, home, "registered", id), 1, "{id} at {home}");
    }
    for (home, id) in [("g22", &down), ("g22", &again), ("xa", &up)] {
        assert_eq!(ledger_has(&s, home, "receipt", id), 1, "{id} at {home}");
    }
    // H41 never took the first two.
    for id in [&down, &up] {
        assert_eq!(ledger_has(&s, "h41", "received", id), 0, "{id} at h41");
    }
}
