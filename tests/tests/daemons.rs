//! Two real `vdxd` processes on loopback: a dispatch queued at one is delivered to the other over
//! QUIC with mutual TLS, stored once, receipted, and both stop cleanly on SIGTERM.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::Duration;

use sha2::{Digest, Sha256};
use vdx_node::store::{DispatchState, MessageId, Store};
use vdx_protocol::wire::Offer;
use vdx_tests::daemon::{free_port, wait_until, Daemon};
use vdx_tests::{words, Session};

/// Two node homes from one dev CA; `introduce` decides whether each imports the other's entry.
/// Returns the id of a sealed 2 MiB dispatch queued at g22 for h41, and the sealed bytes and document.
fn two_homes(s: &Session, introduce: bool) -> (MessageId, Vec<u8>, Vec<u8>) {
    s.vdx(&words("pki init-ca --out ca --name Root")).ok();
    for (home, org, port) in [
        ("g22", "000.00.00.G22", free_port()),
        ("h41", "000.00.00.H41", free_port()),
    ] {
        let listen = format!("127.0.0.1:{port}");
        s.vdx(&[
            "--home", home, "init", "--org", org, "--name", home, "--listen", &listen, "--ca", "ca",
        ])
        .ok();
        let entry = s.vdx(&["--home", home, "directory", "export"]).ok().stdout;
        std::fs::write(s.path(&format!("{home}.json")), entry).unwrap();
    }
    s.vdx(&words("--home g22 directory import h41.json")).ok();
    if introduce {
        s.vdx(&words("--home h41 directory import g22.json")).ok();
    }

    // A sealed dispatch, queued in the sender's store while its daemon is down.
    let doc = s.document("doc.bin", 2 * 1024 * 1024 + 7);
    s.vdx(&words("seal --cert g22/keys/sign.pem --key g22/keys/sign.key --to h41/keys/enc.pem -o d.p7m doc.bin")).ok();
    let sealed = s.read("d.p7m");
    let id = MessageId([0x42; 16]);
    let store = Store::open(&s.path("g22/data")).unwrap();
    let offer = Offer {
        id: id.0,
        from: "000.00.00.G22".parse().unwrap(),
        to: "000.00.00.H41".parse().unwrap(),
        size: sealed.len() as u64,
        sealed_sha256: Sha256::digest(&sealed).into(),
        urgency: 3,
        expires: 0,
    };
    store.submit(&offer, &sealed[..], 1).unwrap();
    (id, sealed, doc)
}

#[test]
fn a_queued_dispatch_is_delivered_between_two_daemons() {
    let s = Session::new();
    let (id, sealed, doc) = two_homes(&s, true);

    let receiver = Daemon::start(&s, "h41");
    let sender = Daemon::start(&s, "g22");
    let arrived = s.path(&format!("h41/data/spool/objects/{id}.p7m"));
    wait_until(&s, Duration::from_secs(30), "delivery", || arrived.exists());
    std::thread::sleep(Duration::from_millis(500));
    assert!(sender.stop().success());
    assert!(receiver.stop().success());

    let at_sender = Store::open(&s.path("g22/data"))
        .unwrap()
        .get(id)
        .unwrap()
        .unwrap();
    assert!(
        matches!(at_sender.state, DispatchState::Sent { ref receipt } if !receipt.is_empty()),
        "{at_sender:?}"
    );
    let at_receiver = Store::open(&s.path("h41/data"))
        .unwrap()
        .get(id)
        .unwrap()
        .unwrap();
    assert_eq!(at_receiver.state, DispatchState::Received);
    assert_eq!(std::fs::read(&arrived).unwrap(), sealed);

    // The recipient agency opens it with its own key.
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
        "received.bin",
        arrived.to_str().unwrap(),
    ]);
    assert_eq!(
        opened.ok().json()["signers"][0]["organ_code"],
        "000.00.00.G22"
    );
    assert_eq!(s.read("received.bin"), doc);
}

#[test]
fn a_sender_missing_from_the_receivers_directory_is_refused_and_keeps_its_dispatch() {
    let s = Session::new();
    let (id, _, _) = two_homes(&s, false);
    let receiver = Daemon::start(&s, "h41");
    let sender = Daemon::start(&s, "g22");
    // Long enough for several attempts with backoff.
    std::thread::sleep(Duration::from_secs(4));
    assert!(sender.stop().success());
    assert!(receiver.stop().success());
    let log = String::from_utf8_lossy(&s.read("h41.log")).into_owned();
    assert!(log.contains("connection refused"), "receiver log:\n{log}");
    assert!(!s.path(&format!("h41/data/spool/objects/{id}.p7m")).exists());
    let record = Store::open(&s.path("g22/data"))
        .unwrap()
        .get(id)
        .unwrap()
        .unwrap();
    assert_eq!(
        record.state,
        DispatchState::Queued,
        "still queued for a later retry"
    );
    // TLS 1.3 lets the client finish its side before the server refuses the certificate, so the
    // sender counts attempts (and backs off) rather than failing the dispatch.
    assert!(record.attempts >= 1, "{record:?}");
}
