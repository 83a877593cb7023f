//! A full disk, with real daemons: the receiving node's data directory sits on a small file system
//! (a tmpfs mounted for the test) that is filled up. A dispatch that does not fit is refused with
//! `disk_full`, the sender keeps it queued and retries, the receiver keeps serving, and once space
//! is freed the dispatch arrives exactly once, byte-identical. Needs root (or passwordless sudo) to
//! mount, as CI has.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::path::PathBuf;
use std::time::Duration;

use vdx_tests::daemon::organ_code;
use vdx_tests::daemon::{homes, wait_until, Daemon};
use vdx_tests::{as_root, Session};

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(s: &Session, name: &str, mib: u32) -> Self {
        let path = s.mkdir(name);
        let ran = s.sh(&format!(
            // Owned by the test's user, also when mounted through sudo.
            "{} mount -t tmpfs -o size={mib}m,mode=0700,uid=$(id -u),gid=$(id -g) tmpfs {name}",
            as_root()
        ));
        assert_eq!(
            ran.status, 0,
            "this test mounts a {mib} MiB tmpfs and needs root or passwordless sudo: {}",
            ran.stderr
        );
        Self(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{} umount -l {}", as_root(), self.0.display()))
            .status();
    }
}

/// Mounts a 24 MiB disk and makes it the data directory of `home`.
fn data_on_small_disk(s: &Session, home: &str) -> SmallDisk {
    let disk = SmallDisk::mount(s, &format!("{home}-disk"), 24);
    let config_path = s.path(&format!("{home}/config.toml"));
    let config = std::fs::read_to_string(&config_path).unwrap().replace(
        "data_dir = \"data\"",
        &format!("data_dir = \"{}\"", disk.0.join("data").display()),
    );
    std::fs::write(config_path, config).unwrap();
    disk
}

/// Homes g22 and h41, `small`'s data on a small disk, both daemons started (g22's first).
fn two_nodes_one_on_small_disk(s: &Session, small: &str) -> (SmallDisk, Daemon, Daemon) {
    homes(s, &[("g22", G22), ("h41", H41)]);
    let disk = data_on_small_disk(s, small);
    (disk, Daemon::start(s, "g22"), Daemon::start(s, "h41"))
}

fn status(s: &Session, id: &str) -> serde_json::Value {
    s.vdx(&["--home", "g22", "show", "--json", id]).ok().json()
}

#[test]
fn a_full_disk_refuses_with_a_clear_error_and_nothing_is_lost() {
    let s = Session::new();
    let (disk, g22, h41) = two_nodes_one_on_small_disk(&s, "h41");

    // Fill h41's disk up to its last 2 MiB; then a 6 MiB dispatch cannot be stored there.
    s.sh("dd if=/dev/zero of=h41-disk/filler bs=1M 2>/dev/null || true; truncate -s -2M h41-disk/filler")
        .ok();
    let content = s.document("big.bin", 6 << 20);
    let answer = s.send("g22", H41, "9", "big.bin", &[]).ok().json();
    let id = answer["copies"][0]["id"].as_str().unwrap().to_owned();
    wait_until(&s, Duration::from_secs(60), "a refused attempt", || {
        status(&s, &id)["attempts"].as_u64().unwrap_or(0) >= 2
    });
    let queued = status(&s, &id);
    assert_eq!(
        queued["status"], "queued",
        "a full disk is temporary: {queued}"
    );
    let log = String::from_utf8_lossy(&s.read("g22.log")).into_owned();
    assert!(
        log.contains("DiskFull") || log.contains("disk full"),
        "{log}"
    );
    // The receiver still serves its clerks and its store is intact.
    s.vdx(&["--home", "h41", "inbox"]).ok();

    // Space comes back: the dispatch arrives, once, whole.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    wait_until(
        &s,
        Duration::from_secs(120),
        "delivery after space was freed",
        || status(&s, &id)["status"] == "delivered",
    );
    let inbox = s.vdx(&["--home", "h41", "inbox", "--json"]).ok().json();
    assert_eq!(inbox.as_array().unwrap().len(), 1, "{inbox}");
    s.vdx(&["--home", "h41", "fetch", &id, "--out", "got"]).ok();
    assert!(
        s.read("got/big.bin") == content,
        "the dispatch arrived changed"
    );
    assert!(g22.stop().success());
    assert!(h41.stop().success());
    s.vdx(&["--home", "h41", "audit", "verify"]).ok();
}

#[test]
fn a_clerk_sending_onto_a_full_disk_is_told_so_and_nothing_half_done_stays() {
    let s = Session::new();
    let (disk, g22, h41) = two_nodes_one_on_small_disk(&s, "g22");
    s.write("cv.txt", "Công văn".as_bytes());
    let send = |file: &str| s.send("g22", H41, "1", file, &[]);
    let first = send("cv.txt").ok().json();
    let delivered = first["copies"][0]["id"].as_str().unwrap().to_owned();
    wait_until(
        &s,
        Duration::from_secs(60),
        "the first dispatch delivered",
        || status(&s, &delivered)["status"] == "delivered",
    );

    s.sh("dd if=/dev/zero of=g22-disk/filler bs=1M 2>/dev/null || true; truncate -s -1M g22-disk/filler")
        .ok();
    s.document("big.bin", 4 << 20);
    let refused = send("big.bin");
    assert_ne!(refused.status, 0, "{}", refused.stdout);
    assert!(refused.stderr.contains("(disk_full)"), "{}", refused.stderr);
    // What was accepted before is untouched, the node still answers, and the refused upload left
    // nothing behind.
    assert_eq!(status(&s, &delivered)["status"], "delivered");
    let outbox = s.vdx(&["--home", "g22", "outbox", "--json"]).ok().json();
    assert_eq!(outbox.as_array().unwrap().len(), 1, "{outbox}");
    let leftovers = s
        .sh(&format!(
            "find g22-disk/data/tenants/{}/uploads -type f",
            organ_code(&s, "g22")
        ))
        .ok()
        .stdout;
    assert_eq!(leftovers, "", "no partial upload is kept");
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    let after = send("big.bin").ok().json();
    let id = after["copies"][0]["id"].as_str().unwrap().to_owned();
    wait_until(
        &s,
        Duration::from_secs(60),
        "delivered once space returned",
        || status(&s, &id)["status"] == "delivered",
    );
    assert!(g22.stop().success());
    assert!(h41.stop().success());
    s.vdx(&["--home", "g22", "audit", "verify"]).ok();
}
