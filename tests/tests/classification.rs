//! The classification policy with real daemons (`node/src/classification.rs`): a sender refuses a
//! dispatch classified above what the directory allows its recipient, and a `tuyet-mat` one whose
//! way crosses a relay its configuration does not name; a recipient whose own entry allows less
//! than the sender's directory said refuses it on arrival with notice 02, the reason reaching the
//! sender's clerk.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::Duration;

use serde_json::Value;
use vdx_tests::daemon::{free_port, homes, wait_status, Daemon};
use vdx_tests::{Ran, Session};

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const XA: &str = "000.01.41.H41"; // a commune with a node of its own, relayed by H41
const LIMIT: Duration = Duration::from_secs(60);

/// Sets `max_classification` of `code` in `home`'s unsigned directory (None: removes it).
fn limit(s: &Session, home: &str, code: &str, max: Option<&str>) {
    let file = format!("{home}/directory.json");
    let mut directory: Value = serde_json::from_slice(&s.read(&file)).unwrap();
    let entries = directory["entries"].as_array_mut().unwrap();
    let entry = entries
        .iter_mut()
        .find(|e| e["organ_code"] == code)
        .unwrap();
    let entry = entry.as_object_mut().unwrap();
    match max {
        Some(max) => entry.insert("max_classification".into(), max.into()),
        None => entry.remove("max_classification"),
    };
    s.write(&file, &serde_json::to_vec_pretty(&directory).unwrap());
}

/// `vdx --home g22 send` of `cv.txt` to `to` at classification `class` (tuyệt mật has no
/// subject).
fn send(s: &Session, to: &str, class: &str) -> Ran {
    let mut args = vec![
        "--home",
        "g22",
        "send",
        "--json",
        "--to",
        to,
        "--number",
        "7",
        "--notation",
        "VP",
        "--class",
        class,
    ];
    if class != "tuyet-mat" {
        args.extend(["--subject", "Về việc bảo mật"]);
    }
    args.push("cv.txt");
    s.vdx(&args)
}

fn refused_with(ran: &Ran, code: &str) {
    assert_eq!(ran.status, 1, "{}", ran.stdout);
    assert!(ran.stderr.contains(code), "{code}: {}", ran.stderr);
}

#[test]
fn the_sender_refuses_above_the_recipients_limit_and_the_recipient_checks_again() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    s.write("cv.txt", b"noi dung mat\n");
    // At the sender, H41 may receive up to mat.
    limit(&s, "g22", H41, Some("mat"));
    let _h41 = Daemon::start(&s, "h41");
    let _g22 = Daemon::start(&s, "g22");
    let refused = send(&s, H41, "toi-mat");
    refused_with(&refused, "classification_not_allowed");
    assert!(
        refused
            .stderr
            .contains("000.00.00.H41 may receive at most mat, not toi-mat"),
        "{}",
        refused.stderr
    );
    let sent = send(&s, H41, "mat").ok().json();
    let id = sent["copies"][0]["id"].as_str().unwrap().to_owned();
    wait_status(&s, LIMIT, "g22", &id, "delivered");

    // The sender's directory now says nothing of a limit; H41's own entry says mat: the
    // recipient refuses a toi-mat dispatch on arrival, and the sender's clerk reads why.
    limit(&s, "g22", H41, None);
    limit(&s, "h41", H41, Some("mat"));
    for home in ["g22", "h41"] {
        s.vdx(&["--home", home, "reload"]).ok();
    }
    let sent = send(&s, H41, "toi-mat").ok().json();
    let id = sent["copies"][0]["id"].as_str().unwrap().to_owned();
    let failed = wait_status(&s, LIMIT, "g22", &id, "failed");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("refused by 000.00.00.H41: refused by the classification policy"),
        "{reason}"
    );
    assert!(
        reason.contains("may receive at most mat, not toi-mat"),
        "{reason}"
    );
    assert_eq!(failed["notices"][0]["status"], "02");
    let at_recipient = wait_status(&s, LIMIT, "h41", &id, "refused");
    assert_eq!(at_recipient["reason"], failed["notices"][0]["reason"]);
}

#[test]
fn tuyet_mat_goes_over_a_direct_link_or_through_the_relays_the_sender_names() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    s.write("cv.txt", b"tuyet mat\n");
    // XA has a node of its own, reached through its relay H41.
    let listen = format!("127.0.0.1:{}", free_port());
    s.vdx(&[
        "--home", "xa", "init", "--org", XA, "--name", "xa", "--listen", &listen, "--ca", "ca",
        "--relay", H41,
    ])
    .ok();
    let xa = s.vdx(&["--home", "xa", "directory", "export"]).ok().stdout;
    s.write("xa.json", xa.as_bytes());
    s.vdx(&["--home", "g22", "directory", "import", "xa.json"])
        .ok();
    let g22 = Daemon::start(&s, "g22");
    // Direct: taken. Through H41, which g22's config does not name: refused.
    let direct = send(&s, H41, "tuyet-mat").ok().json();
    assert_eq!(direct["copies"][0]["to"], H41, "{direct}");
    let refused = send(&s, XA, "tuyet-mat");
    refused_with(&refused, "classification_route_not_allowed");
    assert!(
        refused
            .stderr
            .contains("the way to 000.01.41.H41 crosses 000.00.00.H41"),
        "{}",
        refused.stderr
    );
    // Lower classifications take the relay.
    send(&s, XA, "toi-mat").ok();
    // Once the sender names H41 as a relay tuyệt mật may cross, it is taken.
    assert!(g22.stop().success());
    let config = String::from_utf8(s.read("g22/config.toml")).unwrap();
    s.write(
        "g22/config.toml",
        format!("{config}\n[policy]\ntuyet_mat_relays = [\"{H41}\"]\n").as_bytes(),
    );
    let _g22 = Daemon::start(&s, "g22");
    let through = send(&s, XA, "tuyet-mat").ok().json();
    assert_eq!(through["copies"][0]["to"], XA, "{through}");
}
