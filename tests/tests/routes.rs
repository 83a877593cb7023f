//! Routes through several relays, with real daemons: a commune on its own node behind its province
//! sends to a commune of another province, commune → province → central → province → commune,
//! each hop a `vdxd` of its own; the pilot directory (every node's exported entry imported into
//! every other) names each node's relay. Every relay takes custody, records what it relayed in its
//! ledger and holds only the sealed object; the delivery receipt comes back the same way. A
//! directory whose relays loop, a route longer than the hop limit and an offer past it are refused
//! with their reasons.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::Duration;

use serde_json::Value;
use vdx_tests::daemon::{free_port, held_object, wait_status, Daemon};
use vdx_tests::{words, Session};

const G22: &str = "000.00.00.G22"; // central, no relay
const H41: &str = "000.00.00.H41"; // a province, relayed by G22
const H26: &str = "000.00.00.H26"; // another, relayed by G22
const XA: &str = "000.01.41.H41"; // a commune of H41 on its own node
const YA: &str = "000.01.26.H26"; // a commune of H26 on its own node
const LIMIT: Duration = Duration::from_secs(30);

/// `(home, organ code, relay)` of the five nodes.
const NODES: [(&str, &str, Option<&str>); 5] = [
    ("g22", G22, None),
    ("h41", H41, Some(G22)),
    ("h26", H26, Some(G22)),
    ("xa", XA, Some(H41)),
    ("ya", YA, Some(H26)),
];

/// The five homes from one dev CA, each with `--relay` as [`NODES`] says, every node's directory
/// entry (its relay in it) imported into every other.
fn national(s: &Session) {
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
        let entry = s.vdx(&["--home", home, "directory", "export"]).ok();
        assert_eq!(entry.json()["relay"].as_str(), relay, "{}", entry.stdout);
        s.write(&format!("{home}.json"), entry.stdout.as_bytes());
    }
    for (home, _, _) in NODES {
        for (other, _, _) in NODES.iter().filter(|(o, _, _)| *o != home) {
            s.vdx(&[
                "--home",
                home,
                "directory",
                "import",
                &format!("{other}.json"),
            ])
            .ok();
        }
    }
}

fn start(s: &Session, homes: &[&str]) -> Vec<Daemon> {
    homes.iter().map(|h| Daemon::start(s, h)).collect()
}

/// Sends `file` from `home` to `to`: the transfer id, or the failed run.
fn send(s: &Session, home: &str, to: &str, number: &str, file: &str) -> vdx_tests::Ran {
    s.send(home, to, number, file, &[])
}

fn id_of(sent: vdx_tests::Ran) -> String {
    sent.ok().json()["copies"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The ledger of the (stopped) node `home`.
fn ledger(s: &Session, home: &str) -> Vec<Value> {
    s.vdx(&["--home", home, "audit", "log", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// Whether any file under `dir` holds `needle`.
fn any_file_holds(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            any_file_holds(&path, needle)
        } else {
            std::fs::read(&path)
                .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }
    })
}

/// The API's error code in a failed `vdx send`'s stderr, e.g. `(route_loop)`.
fn refused_with(ran: &vdx_tests::Ran, code: &str) -> String {
    assert_ne!(ran.status, 0, "{}", ran.stdout);
    assert!(
        ran.stderr.contains(&format!("({code})")),
        "{code} not in {}",
        ran.stderr
    );
    ran.stderr.clone()
}

/// Sets `[limits] max_hops` of the stopped node `home`.
fn max_hops(s: &Session, home: &str, hops: u8) {
    let mut config = vdx_node::config::Config::load(&s.path(home)).unwrap();
    config.limits.max_hops = hops;
    s.write(
        &format!("{home}/config.toml"),
        config.to_toml().unwrap().as_bytes(),
    );
}

#[test]
fn a_commune_reaches_another_province_s_commune_through_three_relays() {
    let s = Session::new();
    national(&s);
    let document = s.document("cv.txt", 20_000);
    let daemons = start(&s, &["g22", "h41", "h26", "xa", "ya"]);

    // XA -> H41 -> G22 -> H26 -> YA, registered there; the delivery receipt back at XA.
    let id = id_of(send(&s, "xa", YA, "1", "cv.txt"));
    let arrived = wait_status(&s, LIMIT, "ya", &id, "registered");
    assert_eq!(arrived["from"], XA, "{arrived}");
    let at_sender = wait_status(&s, LIMIT, "xa", &id, "delivered");
    assert_eq!(at_sender["notices"][0]["by"], YA, "{at_sender}");
    s.vdx(&["--home", "ya", "fetch", &id, "--out", "got"]).ok();
    assert_eq!(s.read("got/cv.txt"), document);

    // A directory whose relays loop (G22 now names H41 its relay, and H41 names G22): XA's
    // submission is refused before anything is sealed.
    let mut g22 = serde_json::from_slice::<Value>(&s.read("g22.json")).unwrap();
    g22["relay"] = H41.into();
    s.write("g22-looped.json", g22.to_string().as_bytes());
    s.vdx(&["--home", "xa", "directory", "import", "g22-looped.json"])
        .ok();
    let looped = refused_with(&send(&s, "xa", YA, "2", "cv.txt"), "route_loop");
    assert!(
        looped.contains("the directory's relays loop")
            && looped.contains(&format!("{H41} -> {G22} -> {H41}")),
        "{looped}"
    );
    s.vdx(&["--home", "xa", "directory", "import", "g22.json"])
        .ok();
    for daemon in daemons {
        assert!(daemon.stop().success());
    }

    // Each relay took custody, relayed it (its ledger says so) and holds only the sealed object:
    // byte for byte the sender's, which the relay cannot open, and nowhere the document's bytes.
    let sealed = held_object(&s, "xa", &id).unwrap();
    for relay in ["h41", "g22", "h26"] {
        let entries = ledger(&s, relay);
        for kind in ["received", "relayed"] {
            assert!(
                entries
                    .iter()
                    .any(|e| e["kind"] == kind && e.to_string().contains(&id)),
                "{relay} has no {kind} entry for {id}: {entries:?}"
            );
        }
        assert!(
            !entries.iter().any(|e| e["kind"] == "registered"),
            "{relay} registered nothing"
        );
        assert_eq!(held_object(&s, relay, &id).unwrap(), sealed, "{relay}");
        for window in [&document[..64], &document[10_000..10_064]] {
            assert!(
                !any_file_holds(&s.path(relay), window),
                "{relay} holds the document's bytes"
            );
        }
    }
    assert!(any_file_holds(&s.path("got"), &document[10_000..10_064]));
    s.write("carried.p7m", &held_object(&s, "g22", &id).unwrap());
    let opened = s.vdx(&[
        "open",
        "--json",
        "--cert",
        "g22/keys/enc.pem",
        "--key",
        "g22/keys/enc.key",
        "--trust",
        "ca/ca.pem",
        "-o",
        "peek.txt",
        "carried.p7m",
    ]);
    assert_eq!(opened.refusal(), "not_a_recipient");

    // YA allows fewer than 3 relays: its own dispatch to XA (3 relays) is refused at submission,
    // and XA's (offered with 3 hops) is refused at its door, H26 failing it with the reason.
    max_hops(&s, "ya", 3);
    let _daemons = start(&s, &["g22", "h41", "h26", "xa", "ya"]);
    let long = refused_with(&send(&s, "ya", XA, "3", "cv.txt"), "route_too_long");
    assert!(
        long.contains("the route crosses 3 relays, the limit is fewer than 3"),
        "{long}"
    );
    let far = id_of(send(&s, "xa", YA, "4", "cv.txt"));
    let at_h26 = wait_status(&s, LIMIT, "h26", &far, "failed");
    assert!(at_h26.to_string().contains("crossed 3 relays"), "{at_h26}");
    let at_ya = s.vdx(&["--home", "ya", "show", "--json", &far]);
    assert!(at_ya.stderr.contains("(not_found)"), "{}", at_ya.stdout);
}

/// A node's counter `name` for next hop `peer`, from `vdx metrics` (0 when absent).
fn counted(s: &Session, home: &str, name: &str, peer: &str) -> u64 {
    let metrics = s.vdx(&["--home", home, "metrics"]).ok().stdout;
    let series = format!("{name}{{peer=\"{peer}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[test]
fn a_circular_is_sealed_once_and_each_link_carries_one_copy() {
    let s = Session::new();
    national(&s);
    s.document("thong-bao.txt", 300_000);
    let _daemons = start(&s, &["g22", "h41", "h26", "xa", "ya"]);

    // XA to YA, H26 and G22: one fan-out to H41 (its relay), split there into one to G22, split
    // there into G22's own copy and one to H26, split there into H26's own copy and YA's.
    let circular = |message_id: Option<&str>| {
        let mut args = vec!["--home", "xa", "send", "--json"];
        if let Some(id) = message_id {
            args.extend(["--message-id", id]);
        }
        args.extend([
            "--to",
            YA,
            "--to",
            H26,
            "--to",
            G22,
            "--subject",
            "Thông báo",
        ]);
        args.extend(["--number", "5", "--notation", "TB", "thong-bao.txt"]);
        s.vdx(&args).ok().json()
    };
    let sent = circular(None);
    let copies: Vec<(String, String)> = sent["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["to"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        copies.len(),
        3,
        "one copy per recipient, no fan-out: {sent}"
    );
    let home_of = |to: &str| match to {
        YA => "ya",
        H26 => "h26",
        _ => "g22",
    };
    for (to, id) in &copies {
        let home = home_of(to);
        let arrived = wait_status(&s, LIMIT, home, id, "registered");
        assert_eq!(arrived["from"], XA, "{arrived}");
        wait_status(&s, LIMIT, "xa", id, "delivered");
    }
    // Each link carried one object, hardly larger than one copy: the content once, plus a
    // RecipientInfo and a member line for each further recipient behind it.
    let copy = sent["copies"][0]["size"].as_u64().unwrap();
    for (home, peer, behind) in [
        ("xa", H41, 3),
        ("h41", G22, 3),
        ("g22", H26, 2),
        ("h26", YA, 1),
    ] {
        let objects = counted(&s, home, "vdx_handover_objects_total", peer);
        let bytes = counted(&s, home, "vdx_handover_bytes_total", peer);
        assert_eq!(objects, 1, "{home} -> {peer}");
        assert!(
            bytes <= copy + (behind - 1) * 600 + behind * 49 + 1024,
            "{home} -> {peer}: {bytes} bytes for {behind} recipients, one copy is {copy}"
        );
    }
    // Exactly once: a second circular under the same message id is answered from the store.
    let again = circular(sent["message_id"].as_str());
    assert_eq!(again["copies"].as_array().unwrap().len(), 3);
    for (to, _) in &copies {
        let home = home_of(to);
        let inbox = vdx_tests::daemon::listed(&s, home, None, "inbox").unwrap();
        let from_xa = inbox.iter().filter(|d| d["from"] == XA).count();
        assert_eq!(from_xa, 1, "{home}: {inbox:?}");
    }
}
