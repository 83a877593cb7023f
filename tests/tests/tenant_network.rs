//! A host serving three agencies (its own and two communes) and an outside node, with real daemons:
//! every agency is a whole agency of its own. Dispatches between two agencies of the host are handed
//! over inside it; to and from the outside node they go over QUIC, the outside node reaching the
//! communes through their host. Each arrival is numbered in its recipient's own series, receipted
//! back to its sender, and recorded in its own agency's ledger only; a `kill -9` of the host in the
//! middle of a burst loses and duplicates nothing.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use vdx_tests::daemon::{
    add_tenant, homes, listed, wait_status, wait_status_in, wait_until, Daemon,
};
use vdx_tests::Session;

const G22: &str = "000.00.00.G22"; // the outside node
const H41: &str = "000.00.00.H41"; // the host's own agency
const XA: &str = "000.01.41.H41"; // a commune hosted by H41
const XB: &str = "000.02.41.H41"; // another
const TENANTS: [&str; 3] = [H41, XA, XB];
const LIMIT: Duration = Duration::from_secs(90);

/// Homes `h41` (the host, running, serving H41, XA and XB, this user the communes' clerk and
/// officer) and `g22` (outside, running), each agency's entry in the other node's directory.
fn network(s: &Session) -> (Daemon, Daemon) {
    homes(s, &[("g22", G22), ("h41", H41)]);
    let host = Daemon::start(s, "h41");
    let outside = Daemon::start(s, "g22");
    for (code, name) in [(XA, "Xã A"), (XB, "Xã B")] {
        add_tenant(s, "h41", code, name);
        let entry = s
            .vdx(&["--home", "h41", "directory", "export", "--tenant", code])
            .ok();
        assert_eq!(entry.json()["host"], H41, "{}", entry.stdout);
        let file = format!("{code}.json");
        s.write(&file, entry.stdout.as_bytes());
        s.vdx(&["--home", "g22", "directory", "import", &file]).ok();
    }
    (host, outside)
}

/// The arguments of `vdx send` from agency `from` (`g22` for the outside node, else a tenant of
/// `h41`) to `to`, with subject `subject` and number `number`.
fn send_args<'a>(from: &'a str, to: &'a str, subject: &'a str, number: &'a str) -> Vec<&'a str> {
    let mut args = if from == G22 {
        vec!["--home", "g22"]
    } else {
        vec!["--home", "h41", "--tenant", from]
    };
    args.extend([
        "send",
        "--json",
        "--to",
        to,
        "--subject",
        subject,
        "--number",
        number,
        "--notation",
        "UBND",
        "cv.txt",
    ]);
    args
}

/// Sends one dispatch from `from` to `to`; its transfer id.
fn send(s: &Session, from: &str, to: &str, subject: &str) -> String {
    let sent = s.vdx(&send_args(from, to, subject, "1")).ok().json();
    sent["copies"][0]["id"].as_str().unwrap().to_owned()
}

/// Waits until dispatch `id` shows `want` at agency `at`.
fn wait_at(s: &Session, at: &str, id: &str, want: &str) -> Value {
    if at == G22 {
        wait_status(s, LIMIT, "g22", id, want)
    } else {
        wait_status_in(s, LIMIT, "h41", at, id, want)
    }
}

/// The inbox or outbox of agency `of`, read from its running node.
fn list(s: &Session, of: &str, what: &str) -> Vec<Value> {
    let tenant = (of != G22).then_some(of);
    let home = if of == G22 { "g22" } else { "h41" };
    listed(s, home, tenant, what).unwrap()
}

fn ids(list: &[Value]) -> BTreeSet<String> {
    list.iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The số đến of an inbox item, as `N` of `N/YYYY` (checking the year).
fn incoming(d: &Value) -> u64 {
    let year = time::OffsetDateTime::now_utc().year();
    let number = d["incoming_number"].as_str().unwrap();
    let (n, y) = number.split_once('/').unwrap();
    assert_eq!(y, year.to_string(), "{d}");
    n.parse().unwrap()
}

/// Exports tenant `code`'s ledger from the stopped host and verifies the bundle against the CA;
/// the bundle's `entries` text.
fn export_and_verify(s: &Session, code: &str) -> String {
    let bundle = format!("bundle-{code}");
    s.vdx(&[
        "--home", "h41", "--tenant", code, "audit", "export", "--out", &bundle,
    ])
    .ok();
    let verified = s
        .vdx(&["audit", "verify", &bundle, "--ca", "ca/ca.pem"])
        .ok();
    assert!(
        verified.stdout.starts_with(&format!("ok: vdx/{code}: ")),
        "{code}: {}",
        verified.stdout
    );
    // Every checkpoint is of this agency's ledger.
    let checkpoints = String::from_utf8(s.read(&format!("{bundle}/checkpoints"))).unwrap();
    let origins = checkpoints.lines().filter(|l| l.starts_with("vdx/"));
    assert!(origins.clone().count() > 0, "{checkpoints}");
    for origin in origins {
        assert_eq!(origin, format!("vdx/{code}"), "{checkpoints}");
    }
    for signature in checkpoints.lines().filter(|l| l.starts_with('—')) {
        assert!(
            signature.starts_with(&format!("— vdx/{code} ")),
            "{checkpoints}"
        );
    }
    String::from_utf8(s.read(&format!("{bundle}/entries"))).unwrap()
}

#[test]
fn three_tenants_and_an_outside_node_each_a_whole_agency() {
    let s = Session::new();
    let (host, outside) = network(&s);
    s.write("cv.txt", "Kính gửi: các cơ quan\n".as_bytes());
    let year = time::OffsetDateTime::now_utc().year();
    // (sender, recipient, transfer id) of every dispatch of the test.
    let mut sent: Vec<(&str, &str, String)> = Vec::new();

    // The outside node to each of the three agencies: each its first arrival, 1/YYYY in its own
    // series.
    for to in TENANTS {
        let id = send(&s, G22, to, &format!("{G22} gửi {to}"));
        sent.push((G22, to, id));
    }
    for (from, to, id) in &sent {
        let view = wait_at(&s, to, id, "registered");
        assert_eq!(view["incoming_number"], format!("1/{year}"), "{view}");
        assert_eq!(view["from"], *from, "{view}");
        wait_at(&s, from, id, "delivered");
    }

    // Each agency to the outside node: numbered 1, 2, 3 there.
    for from in TENANTS {
        let id = send(&s, from, G22, &format!("{from} gửi {G22}"));
        sent.push((from, G22, id));
    }
    let mut numbers = BTreeSet::new();
    for (from, to, id) in &sent[3..] {
        let view = wait_at(&s, to, id, "registered");
        assert_eq!(view["from"], *from, "{view}");
        numbers.insert(incoming(&view));
        wait_at(&s, from, id, "delivered");
    }
    assert_eq!(numbers, BTreeSet::from([1, 2, 3]));

    // Commune to commune, handed over inside the host: each the second arrival of its recipient.
    for (from, to) in [(XA, XB), (XB, XA)] {
        let id = send(&s, from, to, &format!("{from} gửi {to}"));
        sent.push((from, to, id));
    }
    for (from, to, id) in &sent[6..] {
        let view = wait_at(&s, to, id, "registered");
        assert_eq!(view["incoming_number"], format!("2/{year}"), "{view}");
        assert_eq!(view["from"], *from, "{view}");
        wait_at(&s, from, id, "delivered");
    }

    // Each agency's inbox holds its own arrivals and nothing else; its outbox its own dispatches.
    for agency in [G22, H41, XA, XB] {
        let arrivals: BTreeSet<String> = sent
            .iter()
            .filter(|(_, to, _)| *to == agency)
            .map(|(_, _, id)| id.clone())
            .collect();
        let inbox = list(&s, agency, "inbox");
        assert_eq!(ids(&inbox), arrivals, "{agency}'s inbox: {inbox:?}");
        assert!(inbox.iter().all(|d| d["to"] == agency), "{inbox:?}");
        let dispatched: BTreeSet<String> = sent
            .iter()
            .filter(|(from, _, _)| *from == agency)
            .map(|(_, _, id)| id.clone())
            .collect();
        let outbox = list(&s, agency, "outbox");
        assert_eq!(ids(&outbox), dispatched, "{agency}'s outbox: {outbox:?}");
        assert!(
            outbox.iter().all(|d| d["status"] == "delivered"),
            "{outbox:?}"
        );
    }

    // Each agency's ledger verifies as its own, and names only its own dispatches.
    assert!(outside.stop().success());
    assert!(host.stop().success());
    let entries: BTreeMap<&str, String> = TENANTS
        .iter()
        .map(|code| (*code, export_and_verify(&s, code)))
        .collect();
    for (from, to, id) in &sent {
        let mentioned: BTreeSet<&str> = entries
            .iter()
            .filter(|(_, text)| text.contains(id.as_str()))
            .map(|(code, _)| *code)
            .collect();
        let parties: BTreeSet<&str> = [*from, *to].into_iter().filter(|a| *a != G22).collect();
        assert_eq!(
            mentioned, parties,
            "the ledgers naming {id} ({from} to {to})"
        );
    }
    for code in TENANTS {
        s.vdx(&["--home", "h41", "--tenant", code, "audit", "verify"])
            .ok();
    }
    s.vdx(&["--home", "g22", "audit", "verify"]).ok();
}

/// Dispatches per stream of the burst: XA to XB, G22 to XB, XA to G22.
const BURST: usize = 10;

/// The message id of dispatch `n` of stream `stream` (a lower-case UUID), so that a clerk whose
/// `send` got no answer can send it again safely.
fn message_id(stream: usize, n: usize) -> String {
    format!("{stream:08x}-0000-4000-8000-{n:012x}")
}

/// Sends stream `stream`'s `BURST` dispatches from `from` to `to`, one after the other, each
/// retried under its message id while the host is down (as a clerk would).
fn submit_stream(s: &Session, stream: usize, from: &str, to: &str) {
    for n in 0..BURST {
        let subject = format!("{from} gửi {to} số {n:02}");
        let number = (n + 1).to_string();
        let id = message_id(stream, n);
        let mut args = send_args(from, to, &subject, &number);
        let file = args.pop().unwrap();
        args.extend(["--message-id", &id, file]);
        let deadline = Instant::now() + LIMIT;
        loop {
            let ran = s.vdx(&args);
            if ran.status == 0 {
                break;
            }
            assert!(
                !ran.stderr.contains("(conflict)") && Instant::now() < deadline,
                "{subject}: {}",
                ran.stderr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The subjects of a finished inbox, each once, with the số đến 1..=n of the recipient's series.
fn subjects_numbered_once(inbox: &[Value], of: &str) -> BTreeSet<String> {
    let subjects: BTreeSet<String> = inbox
        .iter()
        .map(|d| d["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        subjects.len(),
        inbox.len(),
        "{of}: a dispatch twice: {inbox:?}"
    );
    let numbers: BTreeSet<u64> = inbox
        .iter()
        .map(|d| {
            assert_eq!(d["status"], "registered", "{d}");
            incoming(d)
        })
        .collect();
    assert_eq!(
        numbers,
        (1..=inbox.len() as u64).collect(),
        "{of}: số đến without gap or repeat"
    );
    subjects
}

#[test]
fn kill_9_during_tenant_to_tenant_and_outside_deliveries_loses_and_duplicates_nothing() {
    let s = Session::new();
    let (host, outside) = network(&s);
    s.write("cv.txt", "Kính gửi: các cơ quan\n".as_bytes());
    let streams = [(XA, XB), (G22, XB), (XA, G22)];

    let host = std::thread::scope(|scope| {
        for (stream, (from, to)) in streams.iter().enumerate() {
            let s = &s;
            scope.spawn(move || submit_stream(s, stream, from, to));
        }
        // Once some, not all, have arrived at XB: kill -9 the host, and start it again.
        let mut arrived = 0;
        wait_until(&s, LIMIT, "the first arrivals at XB", || {
            arrived = listed(&s, "h41", Some(XB), "inbox").map_or(0, |i| i.len());
            arrived >= 3
        });
        assert!(arrived < 2 * BURST, "all had arrived before the kill");
        host.kill9();
        println!("killed the host with {arrived} of {} at XB", 2 * BURST);
        Daemon::start(&s, "h41")
    });

    // Once more, every dispatch submitted, while the last of them and their receipts travel.
    let delivered = listed(&s, "h41", Some(XA), "outbox").map_or(0, |o| {
        o.iter().filter(|d| d["status"] == "delivered").count()
    });
    host.kill9();
    println!(
        "killed the host with {delivered} of {} delivered from XA",
        2 * BURST
    );
    let host = Daemon::start(&s, "h41");

    // Everything is delivered: receipts back at XA and G22.
    wait_until(
        &s,
        Duration::from_secs(180),
        "every dispatch delivered",
        || {
            [(XA, 2 * BURST), (G22, BURST)].iter().all(|(from, count)| {
                let home = if *from == G22 { "g22" } else { "h41" };
                let tenant = (*from != G22).then_some(*from);
                listed(&s, home, tenant, "outbox").is_some_and(|o| {
                    o.len() == *count && o.iter().all(|d| d["status"] == "delivered")
                })
            })
        },
    );
    // Each exactly once in its recipient's inbox, numbered 1..=n in the recipient's series.
    let expected = |to: &str| -> BTreeSet<String> {
        streams
            .iter()
            .filter(|(_, t)| *t == to)
            .flat_map(|(from, to)| (0..BURST).map(move |n| format!("{from} gửi {to} số {n:02}")))
            .collect()
    };
    let xb_inbox = list(&s, XB, "inbox");
    assert_eq!(xb_inbox.len(), 2 * BURST, "{xb_inbox:?}");
    assert_eq!(subjects_numbered_once(&xb_inbox, XB), expected(XB));
    let g22_inbox = list(&s, G22, "inbox");
    assert_eq!(g22_inbox.len(), BURST, "{g22_inbox:?}");
    assert_eq!(subjects_numbered_once(&g22_inbox, G22), expected(G22));
    for nobody in [XA, H41] {
        assert_eq!(list(&s, nobody, "inbox").len(), 0, "{nobody} got nothing");
    }
    assert_eq!(list(&s, H41, "outbox").len(), 0, "H41 sent nothing");

    // Every ledger survived the kill whole, and records each arrival's registration once.
    assert!(outside.stop().success());
    assert!(host.stop().success());
    for code in TENANTS {
        let verified = s.vdx(&["--home", "h41", "--tenant", code, "audit", "verify"]);
        assert_eq!(verified.status, 0, "{code}: {}", verified.stderr);
        export_and_verify(&s, code);
        let checked = s.vdx(&["--home", "h41", "--tenant", code, "check"]);
        assert_eq!(
            checked.status, 0,
            "{code}: {}{}",
            checked.stdout, checked.stderr
        );
    }
    s.vdx(&["--home", "g22", "audit", "verify"]).ok();
    let registered: Vec<String> = s
        .vdx(&[
            "--home",
            "h41",
            "--tenant",
            XB,
            "audit",
            "log",
            "--json",
            "--kind",
            "registered",
        ])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        registered.len(),
        2 * BURST,
        "one registered entry per arrival"
    );
    assert_eq!(
        registered.into_iter().collect::<BTreeSet<_>>(),
        ids(&xb_inbox)
    );
}
