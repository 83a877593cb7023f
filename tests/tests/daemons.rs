//! Real `vdxd` processes on loopback, driven like a clerk would: `vdx send`, `outbox`, `inbox`,
//! `show`, `fetch` (clients of each node's local socket API). Dispatches are sealed, delivered over
//! QUIC with mutual TLS, opened, numbered, receipted and fetched byte for byte; the sender learns
//! what became of each one.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use vdx_node::store::{DispatchState, MessageId};
use vdx_protocol::wire::{ObjectKind, Offer};
use vdx_tests::daemon::{held_object, homes, store_of, wait_until, Daemon};
use vdx_tests::{words, Ran, Session};

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const LIMIT: Duration = Duration::from_secs(60);

fn two_nodes(s: &Session) {
    homes(s, &[("g22", G22), ("h41", H41)]);
}

/// `vdx send` from g22 to h41 of `files` (default `cv.txt`) with extra `flags`; returns the
/// transfer id of the copy.
fn send(s: &Session, urgency: &str, number: &str, flags: &[&str], files: &[&str]) -> String {
    let answer = try_send(s, urgency, number, flags, files).ok().json();
    answer["copies"][0]["id"].as_str().unwrap().to_owned()
}

/// [`send`], whatever comes of it.
fn try_send(s: &Session, urgency: &str, number: &str, flags: &[&str], files: &[&str]) -> Ran {
    let mut args = vec![
        "--home",
        "g22",
        "send",
        "--json",
        "--to",
        H41,
        "--subject",
        "V/v kiểm thử",
        "--number",
        number,
        "--notation",
        "VPCP-TTĐT",
        "--urgency",
        urgency,
    ];
    args.extend_from_slice(flags);
    args.extend_from_slice(if files.is_empty() { &["cv.txt"] } else { files });
    s.vdx(&args)
}

/// `vdx show`, or `null` (shared helper).
fn show(s: &Session, home: &str, id: &str) -> Value {
    vdx_tests::daemon::show(s, home, id)
}

/// Waits until `id` shows `want` at `home`, within this file's limit.
fn wait_status(s: &Session, home: &str, id: &str, want: &str) -> Value {
    vdx_tests::daemon::wait_status(s, LIMIT, home, id, want)
}

#[test]
fn a_dispatch_is_delivered_numbered_receipted_and_fetched_byte_for_byte() {
    let s = Session::new();
    two_nodes(&s);
    s.write("cv.txt", "Kính gửi: UBND tỉnh Nghệ An\n".as_bytes());
    let big = s.document("phu-luc.pdf", 3 * 1024 * 1024 + 5);
    let receiver = Daemon::start(&s, "h41");
    let sender = Daemon::start(&s, "g22");

    let id = send(&s, "hoa-toc", "7816", &[], &["cv.txt", "phu-luc.pdf"]);
    let at_sender = wait_status(&s, "g22", &id, "delivered");
    assert_eq!(at_sender["notices"][0]["status"], "01", "{at_sender}");
    assert_eq!(at_sender["notices"][0]["by"], H41);
    let at_receiver = wait_status(&s, "h41", &id, "registered");
    let year = at_receiver["header"]["promulgation"]["date"]
        .as_str()
        .unwrap()[..4]
        .to_owned();
    assert_eq!(at_receiver["incoming_number"], format!("1/{year}"));
    assert_eq!(at_receiver["subject"], "V/v kiểm thử");
    assert_eq!(at_receiver["from"], G22);

    s.vdx(&["--home", "h41", "fetch", &id, "--out", "got"]).ok();
    assert_eq!(s.read("got/phu-luc.pdf"), big);
    assert_eq!(
        s.read("got/cv.txt"),
        "Kính gửi: UBND tỉnh Nghệ An\n".as_bytes()
    );
    // Fetching again would overwrite: refused, nothing touched.
    let again = s.vdx(&["--home", "h41", "fetch", &id, "--out", "got"]);
    assert_eq!(again.status, 1);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    // Classified dispatches are numbered in their own series; ordinary ones go on.
    let secret = send(&s, "khan", "7817", &["--class", "mat"], &[]);
    let plain = send(&s, "thuong", "7818", &[], &[]);
    assert_eq!(
        wait_status(&s, "h41", &secret, "registered")["incoming_number"],
        format!("M1/{year}")
    );
    assert_eq!(
        wait_status(&s, "h41", &plain, "registered")["incoming_number"],
        format!("2/{year}")
    );

    let inbox = s.vdx(&words("--home h41 inbox")).ok().stdout;
    assert!(
        inbox.contains("7816/VPCP-TTĐT") && inbox.contains("M1/"),
        "{inbox}"
    );
    let outbox = s.vdx(&words("--home g22 outbox --json")).ok().json();
    assert_eq!(outbox.as_array().unwrap().len(), 3);

    assert!(sender.stop().success());
    assert!(receiver.stop().success());
    let refused = s.vdx(&words("--home h41 inbox"));
    assert_eq!(refused.status, 1);
    assert!(
        refused.stderr.contains("vdxd is not running") && refused.stderr.lines().count() == 1,
        "{}",
        refused.stderr
    );
}

#[test]
fn two_identical_submissions_at_once_queue_one_dispatch_intact() {
    // A client that retries while its first request is still being sealed: both requests find
    // nothing queued yet. They must not both seal and race for the same copy's object.
    let s = Session::new();
    two_nodes(&s);
    let _g22 = Daemon::start(&s, "g22");
    let _h41 = Daemon::start(&s, "h41");
    s.document("annex.pdf", 300 * 1024);
    let rounds = 6;
    for round in 0..rounds {
        let uuid = format!("4f3c2b1a-0d9e-4c8b-a7f6-e5d4c3b2a1{round:02}");
        let number = (round + 1).to_string();
        let (s, uuid, number) = (&s, uuid.as_str(), number.as_str());
        let answers: Vec<Value> = std::thread::scope(|scope| {
            let both: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(move || {
                        send(s, "thuong", number, &["--message-id", uuid], &["annex.pdf"])
                    })
                })
                .collect();
            both.into_iter()
                .map(|t| show(s, "g22", &t.join().unwrap()))
                .collect()
        });
        assert_eq!(answers[0]["id"], answers[1]["id"], "round {round}");
    }
    let outbox = s.vdx(&["--home", "g22", "outbox", "--json"]).ok().json();
    let ids: Vec<String> = outbox
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), rounds, "{outbox}");
    // Each is delivered: its object is the one its record describes (a mixed-up object would be
    // refused by h41 as corrupt, again and again).
    for id in &ids {
        wait_status(&s, "g22", id, "delivered");
    }
}

#[test]
fn a_submission_retried_with_its_message_id_is_not_sent_twice() {
    let s = Session::new();
    two_nodes(&s);
    let _g22 = Daemon::start(&s, "g22");
    let _h41 = Daemon::start(&s, "h41");
    s.write("cv.txt", "Công văn".as_bytes());
    let uuid = "4f3c2b1a-0d9e-4c8b-a7f6-e5d4c3b2a190";
    let first = send(&s, "thuong", "1", &["--message-id", uuid], &[]);
    // The answer was "lost": the same submission again, even after its uploads are gone.
    let again = send(&s, "thuong", "1", &["--message-id", uuid], &[]);
    assert_eq!(again, first);
    wait_status(&s, "g22", &first, "delivered");
    let outbox = s.vdx(&["--home", "g22", "outbox", "--json"]).ok().json();
    assert_eq!(outbox.as_array().unwrap().len(), 1, "{outbox}");
    let inbox = s.vdx(&["--home", "h41", "inbox", "--json"]).ok().json();
    assert_eq!(inbox.as_array().unwrap().len(), 1, "{inbox}");
    assert_eq!(inbox[0]["message_id"], uuid);
    // The same id for a different request is a conflict, not a silent "already sent".
    let reused = try_send(&s, "thuong", "2", &["--message-id", uuid], &[]);
    assert_eq!(reused.status, 1, "{}", reused.stdout);
    assert!(
        reused
            .stderr
            .contains("number or notation differ (conflict)"),
        "{}",
        reused.stderr
    );
    // So is the same id for an entirely different recipient: no copy to it exists yet, but the
    // id is taken by the dispatch to h41.
    homes(&s, &[("h26", "000.00.00.H26")]);
    s.vdx(&words("--home g22 directory import h26.json")).ok();
    let elsewhere = s.send(
        "g22",
        "000.00.00.H26",
        "1",
        "cv.txt",
        &["--message-id", uuid],
    );
    assert_eq!(elsewhere.status, 1, "{}", elsewhere.stdout);
    assert!(
        elsewhere.stderr.contains("recipients differ (conflict)"),
        "{}",
        elsewhere.stderr
    );
    // A malformed one is refused.
    let bad = try_send(&s, "thuong", "2", &["--message-id", "not-a-uuid"], &[]);
    assert_ne!(bad.status, 0);
    // By the command line, before any upload; the API refuses it too (`tests/local_api.rs`).
    assert!(bad.stderr.contains("lower-case UUID"), "{}", bad.stderr);
}

#[test]
fn dispatches_queued_while_the_receiver_is_down_arrive_in_priority_order_or_expire() {
    let s = Session::new();
    two_nodes(&s);
    s.write("cv.txt", b"noi dung\n");
    let sender = Daemon::start(&s, "g22");
    let ids: Vec<(String, &str)> = ["thuong", "khan", "hoa-toc", "thuong-khan"]
        .into_iter()
        .enumerate()
        .map(|(n, urgency)| {
            (
                send(&s, urgency, &format!("{}", 100 + n), &[], &[]),
                urgency,
            )
        })
        .collect();
    // Seconds enough for the submission itself on a loaded machine (the expiry must be ahead).
    let doomed = send(&s, "thuong", "200", &["--expires-in", "5s"], &[]);
    let failed = wait_status(&s, "g22", &doomed, "failed");
    assert_eq!(failed["reason"], "expired before delivery");
    for (id, _) in &ids {
        assert_eq!(show(&s, "g22", id)["status"], "queued");
    }

    let receiver = Daemon::start(&s, "h41");
    let mut numbers = Vec::new();
    for (id, urgency) in &ids {
        let at_receiver = wait_status(&s, "h41", id, "registered");
        let number = at_receiver["incoming_number"].as_str().unwrap().to_owned();
        numbers.push((
            number.split('/').next().unwrap().parse::<u32>().unwrap(),
            *urgency,
        ));
        wait_status(&s, "g22", id, "delivered");
    }
    numbers.sort();
    let order: Vec<&str> = numbers.iter().map(|(_, u)| *u).collect();
    assert_eq!(order, ["hoa-toc", "thuong-khan", "khan", "thuong"]);
    assert!(show(&s, "g22", &ids[0].0)["attempts"].as_u64().unwrap() >= 1);
    assert!(sender.stop().success());
    assert!(receiver.stop().success());
    assert!(held_object(&s, "h41", &doomed).is_none());
}

#[test]
fn a_dispatch_signed_with_a_revoked_key_is_refused_and_the_sender_is_told_why() {
    let s = Session::new();
    two_nodes(&s);
    s.write("cv.txt", b"noi dung\n");
    s.vdx(&words("pki revoke --ca ca g22/keys/sign.pem")).ok();
    s.vdx(&words("pki crl --ca ca --out h41/keys/ca.crl")).ok();
    let config = std::fs::read_to_string(s.path("h41/config.toml")).unwrap();
    let config = config.replace("crls = []", "crls = [\"keys/ca.crl\"]");
    assert!(config.contains("keys/ca.crl"), "{config}");
    std::fs::write(s.path("h41/config.toml"), config).unwrap();

    let receiver = Daemon::start(&s, "h41");
    let sender = Daemon::start(&s, "g22");
    let id = send(&s, "khan", "9", &[], &[]);
    let failed = wait_status(&s, "g22", &id, "failed");
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.starts_with("refused by 000.00.00.H41: "), "{reason}");
    assert!(reason.contains("revoked"), "{reason}");
    assert_eq!(failed["notices"][0]["status"], "02");
    let at_receiver = wait_status(&s, "h41", &id, "refused");
    assert_eq!(at_receiver["reason"], failed["notices"][0]["reason"]);
    let fetch = s.vdx(&["--home", "h41", "fetch", &id, "--out", "got"]);
    assert_eq!(fetch.status, 1);
    assert!(!s.exists("got/cv.txt"));
    assert!(sender.stop().success());
    assert!(receiver.stop().success());
    assert!(
        held_object(&s, "h41", &id).is_none(),
        "a refused dispatch is kept nowhere"
    );
}

#[test]
fn a_sender_missing_from_the_receivers_directory_is_refused_and_keeps_its_dispatch() {
    let s = Session::new();
    two_nodes(&s);
    // h41 forgets g22: its directory holds only itself again.
    let own = s.vdx(&words("--home h41 directory export")).ok().stdout;
    let directory = format!("{{\"version\":1,\"entries\":[{own}]}}");
    std::fs::write(s.path("h41/directory.json"), directory).unwrap();

    let sealed = b"any bytes: refused before a frame is read".to_vec();
    let id = MessageId([0x42; 16]);
    let offer = Offer {
        id: id.0,
        from: G22.parse().unwrap(),
        to: H41.parse().unwrap(),
        size: sealed.len() as u64,
        sealed_sha256: Sha256::digest(&sealed).into(),
        urgency: 3,
        expires: 0,
        kind: ObjectKind::Dispatch,
        hops: 0,
    };
    store_of(&s, "g22").submit(&offer, &sealed[..], 1).unwrap();
    let receiver = Daemon::start(&s, "h41");
    let sender = Daemon::start(&s, "g22");
    // Until the receiver has refused the sender twice: attempts with backoff.
    let log = || String::from_utf8_lossy(&s.read("h41.log")).into_owned();
    wait_until(
        &s,
        Duration::from_secs(60),
        "two refused connections",
        || log().matches("connection refused").count() >= 2,
    );
    assert!(sender.stop().success());
    assert!(receiver.stop().success());
    assert!(held_object(&s, "h41", &id.to_string()).is_none());
    let record = store_of(&s, "g22").get(id).unwrap().unwrap();
    assert_eq!(
        record.state,
        DispatchState::Queued,
        "still queued for a later retry"
    );
    // TLS 1.3 lets the client finish its side before the server refuses the certificate; the
    // sender sees the refusal when it first uses the connection, and backs the peer off rather
    // than failing the dispatch.
    let sender_log = String::from_utf8_lossy(&s.read("g22.log")).into_owned();
    assert!(sender_log.contains("peer unreachable"), "{sender_log}");
}

#[test]
fn a_commune_is_reached_through_its_province_which_carries_but_cannot_read() {
    const COMMUNE: &str = "000.01.41.H41";
    let s = Session::new();
    two_nodes(&s);
    let listen = format!("127.0.0.1:{}", vdx_tests::daemon::free_port());
    s.vdx(&[
        "--home",
        "xa",
        "init",
        "--org",
        COMMUNE,
        "--name",
        "UBND xã Tây Hòa",
        "--listen",
        &listen,
        "--ca",
        "ca",
        "--relay",
        H41,
    ])
    .ok();
    let entry = s.vdx(&words("--home xa directory export")).ok().stdout;
    s.write("xa.json", entry.as_bytes());
    for home in ["g22", "h41"] {
        s.vdx(&["--home", home, "directory", "import", "xa.json"])
            .ok();
    }
    for other in ["g22.json", "h41.json"] {
        s.vdx(&["--home", "xa", "directory", "import", other]).ok();
    }
    s.write("cv.txt", "Kính gửi: UBND xã Tây Hòa\n".as_bytes());
    let daemons = [
        Daemon::start(&s, "xa"),
        Daemon::start(&s, "h41"),
        Daemon::start(&s, "g22"),
    ];

    let answer = s
        .vdx(&[
            "--home",
            "g22",
            "send",
            "--json",
            "--to",
            COMMUNE,
            "--subject",
            "V/v qua tỉnh",
            "--number",
            "5",
            "--notation",
            "VPCP-TTĐT",
            "--urgency",
            "khan",
            "cv.txt",
        ])
        .ok()
        .json();
    let id = answer["copies"][0]["id"].as_str().unwrap().to_owned();
    let at_commune = wait_status(&s, "xa", &id, "registered");
    assert_eq!(at_commune["from"], G22);
    let at_sender = wait_status(&s, "g22", &id, "delivered");
    assert_eq!(at_sender["notices"][0]["by"], COMMUNE);
    s.vdx(&["--home", "xa", "fetch", &id, "--out", "got"]).ok();
    assert_eq!(
        s.read("got/cv.txt"),
        "Kính gửi: UBND xã Tây Hòa\n".as_bytes()
    );

    // The province carried it (its log says so, its inbox does not list it) and cannot open it.
    let relay_log = String::from_utf8_lossy(&s.read("h41.log")).into_owned();
    assert!(relay_log.contains("relaying"), "{relay_log}");
    let province_inbox = s.vdx(&words("--home h41 inbox --json")).ok().json();
    assert_eq!(province_inbox.as_array().unwrap().len(), 0);
    for daemon in daemons {
        assert!(daemon.stop().success());
    }
    let carried = held_object(&s, "h41", &id).expect("the province keeps what it carried");
    s.write("carried.p7m", &carried);
    let opened = s.vdx(&[
        "open",
        "--json",
        "--cert",
        "h41/keys/enc.pem",
        "--key",
        "h41/keys/enc.key",
        "--trust",
        "ca/ca.pem",
        "-o",
        "peek.txt",
        "carried.p7m",
    ]);
    assert_eq!(opened.refusal(), "not_a_recipient");
    assert!(!s.exists("peek.txt"));
}

#[test]
fn fetch_never_replaces_what_is_at_a_name_not_even_a_dangling_link() {
    let s = Session::new();
    two_nodes(&s);
    s.write("cv.txt", "Kính gửi: UBND tỉnh Nghệ An\n".as_bytes());
    s.write("phu-luc.pdf", b"%PDF-1.7 phu luc");
    let _receiver = Daemon::start(&s, "h41");
    let _sender = Daemon::start(&s, "g22");
    let id = send(&s, "thuong", "7816", &[], &["cv.txt", "phu-luc.pdf"]);
    wait_status(&s, "h41", &id, "registered");

    // A link at the second file's name, pointing nowhere: following it would write elsewhere.
    s.mkdir("got");
    std::os::unix::fs::symlink("/nonexistent/vdx-target", s.path("got/phu-luc.pdf")).unwrap();
    let refused = s.vdx(&["--home", "h41", "fetch", &id, "--out", "got"]);
    assert_eq!(refused.status, 1, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("got/phu-luc.pdf already exists")
            && refused.stderr.contains("never replaces"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read_link(s.path("got/phu-luc.pdf")).unwrap(),
        std::path::Path::new("/nonexistent/vdx-target"),
        "the link is untouched"
    );
    assert!(!std::path::Path::new("/nonexistent/vdx-target").exists());
    assert_eq!(
        s.entries("got"),
        ["phu-luc.pdf"],
        "no other file, no hidden staging directory"
    );

    // Once the name is free, the fetch goes through.
    std::fs::remove_file(s.path("got/phu-luc.pdf")).unwrap();
    s.vdx(&["--home", "h41", "fetch", &id, "--out", "got"]).ok();
    assert_eq!(s.read("got/phu-luc.pdf"), b"%PDF-1.7 phu luc");
    assert_eq!(s.entries("got"), ["cv.txt", "phu-luc.pdf"]);
}

#[test]
fn the_key_passphrase_is_not_in_the_daemons_environment() {
    const PASS: &str = "correct horse battery staple";
    let s = Session::new();
    let pass = [("VDX_KEY_PASSPHRASE", PASS)];
    vdx_tests::daemon::encrypted_home(&s, "g22", "000.00.00.G22", PASS);
    assert!(String::from_utf8_lossy(&s.read("g22/keys/sign.key")).contains("ENCRYPTED"));

    // As an operator starts it, and with the arena limit already set (no re-exec needed for it).
    for env in [&pass[..], &[pass[0], ("MALLOC_ARENA_MAX", "2")][..]] {
        let g22 = Daemon::start_with(&s, "g22", env);
        // It unlocked its keys (it refuses to start otherwise) and serves.
        let status = s.vdx(&words("--home g22 status --json")).ok().json();
        assert_eq!(status["organ_code"], G22);

        let environ = std::fs::read(format!("/proc/{}/environ", g22.pid())).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            !environ.contains(PASS),
            "the passphrase is in /proc/PID/environ"
        );
        assert!(!environ.contains("VDX_KEY_PASSPHRASE"), "{environ}");
        assert!(environ.contains("MALLOC_ARENA_MAX=2"), "{environ}");
        // The memory file that carried it over the exec is still open, and empty.
        let mut carriers = 0;
        for fd in std::fs::read_dir(format!("/proc/{}/fd", g22.pid())).unwrap() {
            let fd = fd.unwrap().path();
            let Ok(target) = std::fs::read_link(&fd) else {
                continue;
            };
            if target
                .to_string_lossy()
                .starts_with("/memfd:vdx-key-passphrase")
            {
                carriers += 1;
                assert_eq!(std::fs::read(&fd).unwrap(), b"", "{}", fd.display());
            }
        }
        assert_eq!(carriers, 1);
        assert!(g22.stop().success());
    }
}
