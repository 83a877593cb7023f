//! The clerk's workflow of Decree 30/2020 between two real daemons (`docs/status-notices.md`):
//! arrived (01) → registered (03) → assigned (04) → in progress (05) → done (06), the sender
//! seeing each; a refusal (02) with its reason; a recall agreed (the copy's files destroyed at the
//! recipient, its metadata and ledger kept, fetching it refused) and a recall refused; and the
//! event stream resumed from the last id a client saw, across a reconnect and a daemon restart.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use vdx_tests::daemon::{held_object, homes, show, wait_until, Daemon};
use vdx_tests::Session;

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const LIMIT: Duration = Duration::from_secs(30);

/// Sends a dispatch from g22 to H41 and waits until H41 registered it; its id.
fn delivered(s: &Session, number: &str) -> String {
    let sent = s
        .send("g22", H41, number, "cv.txt", &["--due", "2099-12-31"])
        .ok()
        .json();
    let id = sent["copies"][0]["id"].as_str().unwrap().to_owned();
    wait_until(s, LIMIT, "the copy registered and receipted", || {
        show(s, "h41", &id)["status"] == "registered" && show(s, "g22", &id)["delivered"] == true
    });
    id
}

/// `vdx --home HOME ARGS...`, which must succeed; its JSON answer.
fn ok(s: &Session, home: &str, args: &[&str]) -> Value {
    let mut all = vec!["--home", home];
    all.extend_from_slice(args);
    all.push("--json");
    s.vdx(&all).ok().json()
}

/// Waits until the sender sees copy `id` in workflow state `want`; its view.
fn sender_sees(s: &Session, id: &str, want: &str) -> Value {
    let mut view = Value::Null;
    wait_until(s, LIMIT, &format!("g22 to see {id} {want}"), || {
        view = show(s, "g22", id);
        view["workflow"] == want
    });
    view
}

#[test]
fn the_workflow_travels_both_ways_and_recalls_are_answered() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    s.document("cv.txt", 3000);
    let daemons = [Daemon::start(&s, "g22"), Daemon::start(&s, "h41")];

    // The main path, each step seen by the sender; a step out of turn refused with the state.
    let id = delivered(&s, "1");
    let here = show(&s, "h41", &id);
    assert_eq!(here["workflow"], "arrived", "{here}");
    assert_eq!(here["next_notices"], serde_json::json!(["03", "02"]));
    assert_eq!(here["due_date"], "2099-12-31");
    assert_eq!(here["overdue"], false);
    let early = s.vdx(&["--home", "h41", "notice", &id, "--code", "05"]);
    assert_eq!(early.status, 1, "{}", early.stdout);
    assert!(
        early.stderr.contains("(bad_transition)") && early.stderr.contains("the copy is arrived"),
        "{}",
        early.stderr
    );
    for (code, extra, state) in [
        ("03", None, "registered"),
        ("04", Some(["--to", "Nguyễn Văn A"]), "assigned"),
        ("05", None, "in_progress"),
        ("06", None, "done"),
    ] {
        let mut args = vec!["notice", &id, "--code", code];
        args.extend(extra.iter().flatten());
        let at_h41 = ok(&s, "h41", &args);
        assert_eq!(at_h41["workflow"], state, "{at_h41}");
        let at_g22 = sender_sees(&s, &id, state);
        if code == "04" {
            assert_eq!(at_g22["assigned_to"], "Nguyễn Văn A", "{at_g22}");
        }
    }
    let view = show(&s, "g22", &id);
    let kinds: Vec<&str> = view["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"submitted") && kinds.contains(&"receipt") && kinds.contains(&"notice"),
        "the copy's ledger entries in its view: {kinds:?}"
    );
    let history: Vec<&str> = view["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["01", "03", "04", "05", "06"]);
    let done = s.vdx(&["--home", "h41", "notice", &id, "--code", "04", "--to", "X"]);
    assert!(done.stderr.contains("(bad_transition)"), "{}", done.stderr);
    let missing = s.vdx(&["--home", "h41", "notice", &id, "--code", "02"]);
    assert!(
        missing.stderr.contains("needs a reason"),
        "{}",
        missing.stderr
    );

    // A refusal with its reason, read by the sender.
    let refused = delivered(&s, "2");
    ok(
        &s,
        "h41",
        &[
            "notice",
            &refused,
            "--code",
            "02",
            "--reason",
            "không thuộc thẩm quyền",
        ],
    );
    let view = sender_sees(&s, &refused, "refused");
    let last = &view["notices"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], "không thuộc thẩm quyền", "{view}");

    // A recall agreed: the recipient's files are gone, its record and số đến stay, fetching it
    // is refused with the reason.
    let recalled = delivered(&s, "3");
    ok(&s, "g22", &["recall", &recalled, "--reason", "gửi nhầm"]);
    sender_sees(&s, &recalled, "recall_pending");
    wait_until(&s, LIMIT, "the recall to arrive", || {
        show(&s, "h41", &recalled)["recall"]["reason"] == "gửi nhầm"
    });
    let twice = s.vdx(&["--home", "g22", "recall", &recalled, "--reason", "again"]);
    assert!(
        twice.stderr.contains("(bad_transition)"),
        "{}",
        twice.stderr
    );
    let number = show(&s, "h41", &recalled)["incoming_number"].clone();
    ok(&s, "h41", &["recall-answer", &recalled, "--agree"]);
    let at_h41 = show(&s, "h41", &recalled);
    assert_eq!(at_h41["workflow"], "recalled", "{at_h41}");
    assert_eq!(at_h41["incoming_number"], number, "the số đến stays");
    let fetch = s.vdx(&["--home", "h41", "fetch", &recalled, "--out", "got"]);
    assert!(
        fetch.stderr.contains("(recalled)") && fetch.stderr.contains("gửi nhầm"),
        "{}",
        fetch.stderr
    );
    sender_sees(&s, &recalled, "recalled");

    // A recall refused: the copy stays, and the sender reads why.
    let kept = delivered(&s, "4");
    ok(&s, "g22", &["recall", &kept, "--reason", "gửi nhầm"]);
    wait_until(&s, LIMIT, "the second recall to arrive", || {
        show(&s, "h41", &kept)["recall"]["reason"] == "gửi nhầm"
    });
    let bare = s.vdx(&["--home", "h41", "recall-answer", &kept, "--refuse"]);
    assert!(bare.stderr.contains("needs a reason"), "{}", bare.stderr);
    ok(
        &s,
        "h41",
        &[
            "recall-answer",
            &kept,
            "--refuse",
            "--reason",
            "đã ban hành",
        ],
    );
    let view = sender_sees(&s, &kept, "recall_refused");
    assert_eq!(view["recall"]["answer"], "16", "{view}");
    s.vdx(&["--home", "h41", "fetch", &kept, "--out", "kept"])
        .ok();

    // Both ledgers keep every step; the recalled object is gone from the recipient's store.
    // (Stopped cleanly: a reply applied is flushed by the next group commit, or at stop.)
    for daemon in daemons {
        assert!(daemon.stop().success());
    }
    let notices = |home: &str| {
        s.vdx(&["--home", home, "audit", "log", "--json", "--kind", "notice"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["fields"]["status"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    let (sent, received) = (notices("h41"), notices("g22"));
    for code in ["03", "04", "05", "06", "02", "15", "16"] {
        assert!(sent.contains(&code.to_owned()), "h41 ledger: {sent:?}");
        assert!(
            received.contains(&code.to_owned()),
            "g22 ledger: {received:?}"
        );
    }
    assert!(sent.contains(&"13".to_owned()) && received.contains(&"13".to_owned()));
    assert!(held_object(&s, "h41", &recalled).is_none(), "destroyed");
    assert!(held_object(&s, "h41", &kept).is_some());
}

/// Reads `GET /v1/events` on `home`'s socket (after `Last-Event-ID: last`, if given) until
/// `want` events came or `limit` passed; their ids and kinds.
fn events(s: &Session, home: &str, last: Option<u64>, want: usize) -> Vec<(u64, String)> {
    let mut socket = UnixStream::connect(s.path(&format!("{home}/vdxd.sock"))).unwrap();
    let resume = last
        .map(|l| format!("last-event-id: {l}\r\n"))
        .unwrap_or_default();
    let after = if last.is_none() { "?after=0" } else { "" };
    write!(
        socket,
        "GET /v1/events{after} HTTP/1.1\r\nhost: vdxd\r\n{resume}connection: close\r\n\r\n"
    )
    .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    loop {
        let found = parse_events(&text);
        if found.len() >= want || started.elapsed() > LIMIT {
            return found;
        }
        match socket.read(&mut buf) {
            Ok(0) => return parse_events(&text),
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }
}

fn parse_events(text: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut id = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.trim().parse().ok();
        } else if let (Some(kind), Some(i)) = (line.strip_prefix("event: "), id) {
            out.push((i, kind.trim().to_owned()));
        }
    }
    out
}

#[test]
fn events_resume_from_the_last_id_across_reconnects_and_restarts() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    s.document("cv.txt", 3000);
    let g22 = Daemon::start(&s, "g22");
    let _h41 = Daemon::start(&s, "h41");

    let first = delivered(&s, "1");
    // From the beginning: the arrival of the first dispatch, among others.
    let seen = events(&s, "h41", None, 2);
    assert!(seen.iter().any(|(_, k)| k == "registered"), "{seen:?}");
    let last = seen.last().unwrap().0;

    // While no client listens, the node goes on and restarts; a client coming back with the
    // last id it saw gets everything after it, in order, nothing twice.
    drop(_h41);
    let _h41 = Daemon::start(&s, "h41");
    let second = delivered(&s, "2");
    ok(&s, "h41", &["notice", &first, "--code", "03"]);
    let resumed = events(&s, "h41", Some(last), 3);
    assert!(resumed.iter().all(|(i, _)| *i > last), "{resumed:?}");
    assert!(
        resumed.windows(2).all(|w| w[0].0 < w[1].0),
        "in order: {resumed:?}"
    );
    assert!(
        resumed.iter().any(|(_, k)| k == "registered"),
        "{resumed:?}"
    );
    wait_until(&s, LIMIT, "the notice event", || {
        events(&s, "h41", Some(last), 64)
            .iter()
            .any(|(_, k)| k == "notice")
    });
    // Every entry after `last` that is not an audit or configuration entry came, none missing.
    let log = s
        .vdx(&["--home", "h41", "audit", "log", "--json"])
        .ok()
        .json();
    let expected: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] != "audit" && e["kind"] != "config")
        .map(|e| e["index"].as_u64().unwrap())
        .filter(|i| *i > last)
        .collect();
    let got: Vec<u64> = events(&s, "h41", Some(last), expected.len())
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(got, expected);
    assert_eq!(show(&s, "g22", &second)["delivered"], true);
    drop(g22);
}
