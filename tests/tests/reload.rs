//! A running `vdxd` takes up changed trust files without a restart: an agency imported into the
//! directory is served at once, and a certificate revoked by a fresh CRL loses its connection and
//! is refused. A file that does not load leaves the previous settings in force.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::Duration;

use serde_json::Value;
use vdx_node::config::Config;
use vdx_tests::daemon::{homes, wait_until, Daemon, Signal};
use vdx_tests::{words, Ran, Session};

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const H26: &str = "000.00.00.H26";
const LIMIT: Duration = Duration::from_secs(60);

/// `vdx send` from g22, whatever comes of it.
fn try_send(s: &Session, to: &str, number: &str) -> Ran {
    s.write("cv.txt", "Kính gửi: các cơ quan\n".as_bytes());
    s.send("g22", to, number, "cv.txt", &[])
}

/// Sends from g22 and returns the copy's transfer id.
fn send(s: &Session, to: &str, number: &str) -> String {
    try_send(s, to, number).ok().json()["copies"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn status(s: &Session, id: &str) -> Value {
    s.vdx(&["--home", "g22", "show", "--json", id]).ok().json()["status"].clone()
}

fn log(s: &Session, home: &str) -> String {
    String::from_utf8_lossy(&s.read(&format!("{home}.log"))).into_owned()
}

fn wait_logged(s: &Session, home: &str, from: usize, needle: &str) {
    wait_until(s, LIMIT, needle, || log(s, home)[from..].contains(needle));
}

#[test]
fn an_agency_imported_while_the_node_runs_is_served_at_once() {
    let s = Session::new();
    homes(&s, &[("g22", G22)]);
    // h26 knows g22; g22 does not know h26 yet.
    homes(&s, &[("h26", H26)]);
    s.vdx(&words("--home h26 directory import g22.json")).ok();
    let _h26 = Daemon::start(&s, "h26");
    let _g22 = Daemon::start(&s, "g22");

    let refused = try_send(&s, H26, "1");
    assert_eq!(refused.status, 1);
    assert!(
        refused.stderr.contains("not in the directory"),
        "{}",
        refused.stderr
    );

    let from = log(&s, "g22").len();
    let imported = s.vdx(&words("--home g22 directory import h26.json")).ok();
    assert!(
        imported.stdout.contains("now uses the changed files"),
        "{}",
        imported.stdout
    );
    let id = send(&s, H26, "2");
    wait_until(&s, LIMIT, "delivery to the imported agency", || {
        status(&s, &id) == "delivered"
    });
    // The change is in the ledger, for the security officer.
    assert!(
        log(&s, "g22")[from..]
            .contains("configuration change recorded in the ledger what=directory directory.json"),
        "{}",
        log(&s, "g22")
    );
    // Asked again with nothing changed, the daemon says so and replaces nothing.
    let again = s.vdx(&words("--home g22 reload")).ok();
    assert!(
        again.stdout.contains("found the files unchanged"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_certificate_revoked_while_connected_is_disconnected_and_refused() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    s.vdx(&words("pki crl --ca ca --out h41/keys/ca.crl")).ok();
    let mut config = Config::load(&s.path("h41")).unwrap();
    config.trust.crls.push("keys/ca.crl".into());
    s.write("h41/config.toml", config.to_toml().unwrap().as_bytes());
    let h41 = Daemon::start(&s, "h41");
    let _g22 = Daemon::start(&s, "g22");

    // Connected both ways: g22 hands over, h41 answers with its receipt.
    let first = send(&s, H41, "1");
    wait_until(&s, LIMIT, "the first delivery", || {
        status(&s, &first) == "delivered"
    });

    // The CA revokes g22's TLS certificate; h41's operator puts the fresh CRL in place.
    s.vdx(&words("pki revoke --ca ca g22/keys/tls.pem")).ok();
    s.vdx(&words("pki crl --ca ca --out h41/keys/ca.crl")).ok();
    let from = log(&s, "h41").len();
    let reloaded = s.vdx(&words("--home h41 reload")).ok();
    assert!(
        reloaded.stdout.contains("now uses the changed files")
            && reloaded.stdout.contains("1 CRLs checked"),
        "{}",
        reloaded.stdout
    );
    wait_logged(
        &s,
        "h41",
        from,
        "disconnecting a peer the reloaded trust settings refuse",
    );

    // g22 reconnects and is refused at the handshake (no resumed session lets it skip the
    // check); its dispatch waits, undelivered.
    let second = send(&s, H41, "2");
    wait_logged(&s, "h41", from, "connection refused");
    assert_eq!(status(&s, &second), "queued");

    // A damaged CRL does not load: the reload is refused by name, the revocation stays in force,
    // and the node keeps serving its clerks.
    s.write("h41/keys/ca.crl", b"-----BEGIN X509 CRL-----\ngarbage\n");
    let failed = s.vdx(&words("--home h41 reload"));
    assert_eq!(failed.status, 1);
    assert!(
        failed.stderr.contains("ca.crl") && failed.stderr.contains("reload_failed"),
        "{}",
        failed.stderr
    );
    s.vdx(&words("--home h41 inbox")).ok();

    // SIGHUP reloads too: a fresh, readable CRL is taken up.
    s.vdx(&words("pki crl --ca ca --out h41/keys/ca.crl")).ok();
    let from = log(&s, "h41").len();
    h41.signal(Signal::HUP);
    wait_logged(&s, "h41", from, "trust settings reloaded");
    assert_eq!(status(&s, &second), "queued");
}
