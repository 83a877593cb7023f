//! One node, many agencies: a store written before tenants is migrated on open, and (below) a host
//! serving several agencies, each a whole agency of its own.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::time::Duration;

use serde_json::Value;
use vdx_tests::daemon::{free_port, homes, wait_status, Daemon};
use vdx_tests::Session;

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const LIMIT: Duration = Duration::from_secs(60);

/// The homes of `tests/fixtures/store-v1.tar.gz` (made by the release before tenants with
/// `scripts/make-store-v1-fixture.sh`), listening on free ports.
fn homes_of_the_release_before(s: &Session) {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/store-v1.tar.gz");
    s.sh(&format!("tar xzf {fixture}")).ok();
    let (g22, h41) = (free_port(), free_port());
    s.sh(&format!(
        "sed -i 's/127.0.0.1:47101/127.0.0.1:{g22}/; s/127.0.0.1:47102/127.0.0.1:{h41}/' \
         g22/config.toml h41/config.toml g22/directory.json h41/directory.json"
    ))
    .ok();
}

fn list(s: &Session, home: &str, what: &str) -> Vec<Value> {
    s.vdx(&["--home", home, what, "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_store_written_before_tenants_is_migrated_and_goes_on_numbering() {
    let s = Session::new();
    homes_of_the_release_before(&s);
    assert!(s.exists("h41/data/spool"), "the fixture is of format 1");
    let receiver = Daemon::start(&s, "h41");
    let sender = Daemon::start(&s, "g22");
    assert!(!s.exists("h41/data/spool"), "moved into the tenant");
    assert!(s.exists(&format!("h41/data/tenants/{H41}/spool/objects")));

    // What the old release did is all there.
    let outbox = list(&s, "g22", "outbox");
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    assert!(
        outbox.iter().all(|d| d["status"] == "delivered"),
        "{outbox:?}"
    );
    let inbox = list(&s, "h41", "inbox");
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    let year = time::OffsetDateTime::now_utc().year();
    let mut numbers: Vec<String> = inbox
        .iter()
        .map(|d| d["incoming_number"].as_str().unwrap().to_owned())
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["1/2026", "2/2026"]);
    let first = inbox[0]["id"].as_str().unwrap();
    s.vdx(&["--home", "h41", "fetch", first, "--out", "got"])
        .ok();
    assert_eq!(
        s.read("got/cv.txt"),
        "Kính gửi: UBND tỉnh Nghệ An\n".as_bytes()
    );

    // And it goes on: the next arrival takes the next number of the series.
    s.write("cv.txt", b"Cong van moi\n");
    let sent = s
        .vdx(&[
            "--home",
            "g22",
            "send",
            "--json",
            "--to",
            H41,
            "--subject",
            "V/v tiếp theo",
            "--number",
            "3",
            "--notation",
            "VPCP-TTĐT",
            "cv.txt",
        ])
        .ok()
        .json();
    let id = sent["copies"][0]["id"].as_str().unwrap();
    let at_receiver = wait_status(&s, LIMIT, "h41", id, "registered");
    let next = if year == 2026 { 3 } else { 1 };
    assert_eq!(at_receiver["incoming_number"], format!("{next}/{year}"));
    wait_status(&s, LIMIT, "g22", id, "delivered");
    assert!(sender.stop().success());
    assert!(receiver.stop().success());

    // Both ledgers, old entries and new, verify; the old checkpoints' origin is the agency's.
    for (home, code) in [("g22", G22), ("h41", H41)] {
        s.vdx(&["--home", home, "audit", "verify"]).ok();
        let bundle = format!("{home}-bundle");
        s.vdx(&["--home", home, "audit", "export", "--out", &bundle])
            .ok();
        let verified = s
            .vdx(&["audit", "verify", &bundle, "--ca", "ca/ca.pem"])
            .ok();
        assert!(verified.stdout.starts_with("ok"), "{}", verified.stdout);
        assert!(verified.stdout.contains(code), "{}", verified.stdout);
    }
    s.vdx(&["--home", "h41", "check"]).ok();
}

const XA: &str = "000.01.41.H41"; // a commune hosted by H41
const XB: &str = "000.02.41.H41"; // another, its users not named
const H26: &str = "000.00.00.H26"; // an agency whose node never starts: unreachable

/// `vdx --home HOME --tenant CODE show --json ID`; `null` while that agency does not know it.
fn show_at(s: &Session, home: &str, tenant: &str, id: &str) -> Value {
    let ran = s.vdx(&["--home", home, "--tenant", tenant, "show", "--json", id]);
    if ran.stderr.contains("(not_found)") {
        return Value::Null;
    }
    ran.ok().json()
}

/// The organ codes `vdx tenant list --json` gives, and which is the host's own.
fn tenants(s: &Session, home: &str) -> Vec<(String, bool)> {
    s.vdx(&["--home", home, "tenant", "list", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["organ_code"].as_str().unwrap().to_owned(),
                t["own"] == true,
            )
        })
        .collect()
}

/// Homes `g22` (outside, running), `h41` (the host, running) and `h26` (never started), each in
/// the others' directories.
fn host_and_outside(s: &Session) -> (Daemon, Daemon) {
    homes(s, &[("g22", G22), ("h41", H41), ("h26", H26)]);
    (Daemon::start(s, "h41"), Daemon::start(s, "g22"))
}

/// `vdx tenant add` of XA at the running `h41`, this user its clerk and officer.
fn add_while_running(s: &Session) -> vdx_tests::Ran {
    vdx_tests::daemon::add_tenant(s, "h41", XA, "Xã A")
}

/// XA's entry exported at `h41` and imported at `g22`; the entry.
fn export_to_outside(s: &Session) -> Value {
    let exported = s
        .vdx(&["--home", "h41", "directory", "export", "--tenant", XA])
        .ok();
    s.write("xa.json", exported.stdout.as_bytes());
    s.vdx(&["--home", "g22", "directory", "import", "xa.json"])
        .ok();
    exported.json()
}

/// `g22` sends XA a dispatch numbered `number`; its transfer id.
fn send_to_tenant(s: &Session, number: &str) -> String {
    s.write("cv.txt", "Kính gửi: UBND xã A\n".as_bytes());
    let sent = s.send("g22", XA, number, "cv.txt", &[]).ok().json();
    sent["copies"][0]["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_dispatch_to_a_tenant_added_while_the_node_runs_is_delivered_at_the_sender() {
    let s = Session::new();
    let (_host, _outside) = host_and_outside(&s);
    add_while_running(&s);
    export_to_outside(&s);
    let id = send_to_tenant(&s, "1");
    wait_status(&s, LIMIT, "g22", &id, "delivered");
}

#[test]
fn a_tenant_added_while_the_node_runs_is_served_at_once_and_its_ledger_outlives_its_removal() {
    let s = Session::new();
    let (host, outside) = host_and_outside(&s);

    // Added while vdxd runs: served at once, listed, and its entry names its host.
    let added = add_while_running(&s);
    assert!(
        added.stdout.contains(&format!("vdxd serves {XA} now")),
        "{}",
        added.stdout
    );
    assert!(
        !s.exists(&format!("h41/tenants/{XA}/keys/tls.key")),
        "no TLS key of its own"
    );
    assert_eq!(
        tenants(&s, "h41"),
        [(H41.to_owned(), true), (XA.to_owned(), false)]
    );
    // One whose users are not named yet: the host's admin sees it in the list all the same.
    let unnamed = s
        .vdx(&[
            "--home", "h41", "tenant", "add", "--org", XB, "--name", "Xã B", "--ca", "ca",
        ])
        .ok();
    assert!(
        unnamed.stdout.contains("nobody may use"),
        "{}",
        unnamed.stdout
    );
    assert_eq!(
        tenants(&s, "h41"),
        [
            (H41.to_owned(), true),
            (XA.to_owned(), false),
            (XB.to_owned(), false)
        ]
    );
    let again = s.vdx(&[
        "--home", "h41", "tenant", "add", "--org", XA, "--name", "X", "--ca", "ca",
    ]);
    assert_eq!(again.status, 1);
    assert!(
        again.stderr.contains("hosted here already"),
        "{}",
        again.stderr
    );
    let entry = export_to_outside(&s);
    assert_eq!(entry["organ_code"], XA);
    assert_eq!(entry["host"], H41);
    assert!(entry["endpoint"].is_null(), "{entry}");
    assert!(entry["certificates"]["tls"].is_null(), "{entry}");

    // An outside node's dispatch reaches it at once, numbered in its own series.
    let id = send_to_tenant(&s, "7");
    let mut view = Value::Null;
    vdx_tests::daemon::wait_until(&s, LIMIT, "registered at the tenant", || {
        view = show_at(&s, "h41", XA, &id);
        view["status"] == "registered"
    });
    let year = time::OffsetDateTime::now_utc().year();
    assert_eq!(view["incoming_number"], format!("1/{year}"));
    let inbox = s
        .vdx_env(&["--home", "h41", "inbox", "--json"], &[("VDX_TENANT", XA)])
        .ok()
        .json();
    assert_eq!(inbox.as_array().unwrap().len(), 1, "{inbox}");
    let own = s
        .vdx(&["--home", "h41", "--tenant", H41, "inbox", "--json"])
        .ok()
        .json();
    assert_eq!(
        own.as_array().unwrap().len(),
        0,
        "the host's own agency got nothing: {own}"
    );
    // With roles in two agencies, the short form asks which.
    let ambiguous = s.vdx(&["--home", "h41", "inbox"]);
    assert_eq!(ambiguous.status, 1);
    assert!(
        ambiguous.stderr.contains("--tenant CODE"),
        "{}",
        ambiguous.stderr
    );
    assert!(
        ambiguous.stderr.contains("(tenant_required)"),
        "{}",
        ambiguous.stderr
    );

    // Not removed while its dispatch to an unreachable agency is queued; removed with --force.
    s.vdx(&[
        "--home",
        "h41",
        "--tenant",
        XA,
        "send",
        "--json",
        "--to",
        H26,
        "--subject",
        "Báo cáo",
        "--number",
        "1",
        "--notation",
        "UBND",
        "cv.txt",
    ])
    .ok();
    let refused = s.vdx(&["--home", "h41", "tenant", "remove", XA]);
    assert_eq!(refused.status, 1);
    assert!(refused.stderr.contains("(queued)"), "{}", refused.stderr);
    let own = s.vdx(&["--home", "h41", "tenant", "remove", H41]);
    assert_eq!(own.status, 1);
    assert!(own.stderr.contains("(own_tenant)"), "{}", own.stderr);
    s.vdx(&["--home", "h41", "tenant", "remove", XA, "--force"])
        .ok();
    assert_eq!(
        tenants(&s, "h41"),
        [(H41.to_owned(), true), (XB.to_owned(), false)]
    );

    // What the outside node sends it now is refused, naming it not served.
    let sent = s.send("g22", XA, "8", "cv.txt", &[]).ok().json();
    let id = sent["copies"][0]["id"].as_str().unwrap();
    let failed = wait_status(&s, LIMIT, "g22", id, "failed");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("{XA} is not served")), "{failed}");

    // Its ledger is kept: exported and verified offline.
    assert!(outside.stop().success());
    assert!(host.stop().success());
    assert_eq!(
        tenants(&s, "h41"),
        [(H41.to_owned(), true), (XB.to_owned(), false)],
        "from the files too"
    );
    s.vdx(&[
        "--home",
        "h41",
        "--tenant",
        XA,
        "audit",
        "export",
        "--out",
        "xa-bundle",
    ])
    .ok();
    let verified = s
        .vdx(&["audit", "verify", "xa-bundle", "--ca", "ca/ca.pem"])
        .ok();
    assert!(verified.stdout.starts_with("ok"), "{}", verified.stdout);
    assert!(verified.stdout.contains(XA), "{}", verified.stdout);
    let log = s
        .vdx(&["--home", "h41", "--tenant", XA, "audit", "log", "--json"])
        .ok()
        .json();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "registered"),
        "{log}"
    );
    s.vdx(&["--home", "h41", "--tenant", XA, "check"]).ok();
}

#[test]
fn tenants_are_added_and_removed_on_a_stopped_node_and_wait_for_a_real_cas_certificates() {
    let s = Session::new();
    homes(&s, &[("h41", H41)]);
    let own = s.vdx(&[
        "--home", "h41", "tenant", "add", "--org", H41, "--name", "X", "--ca", "ca",
    ]);
    assert_eq!(own.status, 1);
    assert!(own.stderr.contains("own agency"), "{}", own.stderr);

    // Without a CA: keys and requests, and no tenant until the certificates are in place.
    let requested = s
        .vdx(&[
            "--home", "h41", "tenant", "add", "--org", XA, "--name", "Xã A",
        ])
        .ok();
    assert!(
        requested.stdout.contains("sign.pem"),
        "{}",
        requested.stdout
    );
    let keys = format!("h41/tenants/{XA}/keys");
    for file in ["sign.key", "sign.csr", "enc.key", "enc.csr"] {
        assert!(s.exists(&format!("{keys}/{file}")), "{file}");
    }
    assert_eq!(tenants(&s, "h41"), [(H41.to_owned(), true)]);
    let waiting = s.vdx(&[
        "--home", "h41", "tenant", "add", "--org", XA, "--name", "Xã A",
    ]);
    assert_eq!(waiting.status, 1);
    assert!(
        waiting.stderr.contains("waits for its certificates"),
        "{}",
        waiting.stderr
    );
    // The CA signs the requests (here the dev CA, with the OpenSSL CLI).
    for role in ["sign", "enc"] {
        s.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{keys}/{role}.csr"),
            "-CA",
            "ca/ca.pem",
            "-CAkey",
            "ca/ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-copy_extensions",
            "copy",
            "-out",
            &format!("{keys}/{role}.pem"),
        ])
        .ok();
    }
    let finished = s
        .vdx(&[
            "--home", "h41", "tenant", "add", "--org", XA, "--name", "Xã A",
        ])
        .ok();
    assert!(
        finished.stdout.contains("vdxd is not running"),
        "{}",
        finished.stdout
    );
    assert_eq!(
        tenants(&s, "h41"),
        [(H41.to_owned(), true), (XA.to_owned(), false)]
    );
    let listed = s.vdx(&["--home", "h41", "directory", "list"]).ok();
    assert!(listed.stdout.contains(XA), "{}", listed.stdout);

    // Removed offline: the host's own refused, the added one retired with its tenant.toml.
    let own = s.vdx(&["--home", "h41", "tenant", "remove", H41]);
    assert_eq!(own.status, 1);
    assert!(own.stderr.contains("own_tenant"), "{}", own.stderr);
    s.vdx(&["--home", "h41", "tenant", "remove", XA]).ok();
    assert!(s.exists(&format!("h41/tenants/{XA}/tenant.toml.removed")));
    assert_eq!(tenants(&s, "h41"), [(H41.to_owned(), true)]);
    let gone = s.vdx(&["--home", "h41", "tenant", "remove", XA]);
    assert_eq!(gone.status, 1);
    assert!(gone.stderr.contains("not a tenant"), "{}", gone.stderr);
}
