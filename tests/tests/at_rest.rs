//! Nothing a node keeps is readable by another local user: `vdx init` and `vdxd` make the home,
//! the keys and the data private whatever the umask, another Unix user's read attempts fail, a
//! daemon whose keys or data are open to others refuses to start naming the path, and the
//! plaintext of a small upload is on disk nowhere in clear.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use vdx_tests::daemon::{homes, wait_until, Daemon};
use vdx_tests::Session;

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every file and directory under `dir` with a mode that grants others anything.
fn open_to_others(dir: &Path) -> Vec<String> {
    let mut open = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.permissions().mode() & 0o077 != 0 {
            open.push(format!(
                "{} {:o}",
                path.display(),
                meta.permissions().mode()
            ));
        }
        if meta.is_dir() {
            open.extend(open_to_others(&path));
        }
    }
    open
}

/// Whether `needle` occurs in any file under `dir`.
fn anywhere(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            anywhere(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        }
    })
}

#[test]
fn homes_are_private_to_the_node_user_whatever_the_umask() {
    let s = Session::new();
    // A careless umask (this test binary's only test): everything would be world-readable and
    // writable without the node's own modes.
    rustix::process::umask(rustix::fs::Mode::empty());
    homes(&s, &[("g22", G22), ("h41", H41)]);
    let _h41 = Daemon::start(&s, "h41");
    let g22 = Daemon::start(&s, "g22");
    let secret = "MẬT: nội dung tải lên nhỏ, không bao giờ nằm trên đĩa dưới dạng rõ".repeat(4);
    s.write("secret.txt", secret.as_bytes());
    let sent = s.send("g22", H41, "1", "secret.txt", &[]).ok().json();
    let id = sent["copies"][0]["id"].as_str().unwrap().to_owned();
    wait_until(&s, Duration::from_secs(60), "delivery", || {
        s.vdx(&["--home", "g22", "show", "--json", &id]).ok().json()["status"] == "delivered"
    });

    for home in ["g22", "h41"] {
        let home = s.path(home);
        assert_eq!(mode(&home) & 0o007, 0, "home {:o}", mode(&home));
        assert_eq!(mode(&home.join("keys")), 0o700);
        assert_eq!(mode(&home.join("data")), 0o700);
        for key in ["sign.key", "enc.key", "tls.key"] {
            assert_eq!(mode(&home.join("keys").join(key)), 0o600, "{key}");
        }
        let open = open_to_others(&home.join("data"));
        assert!(open.is_empty(), "open to others: {open:?}");
    }
    // The small upload was kept in the sender's store sealed, never in clear.
    assert!(!anywhere(&s.path("g22/data"), &secret.as_bytes()[..48]));

    // Another Unix user can read nothing of the node, even with the home's directory open.
    s.sh(&format!("{} chmod o+x . g22", vdx_tests::as_root()))
        .ok();
    for path in ["g22/keys/sign.key", "g22/data/meta/db", "g22/config.toml"] {
        let read = s.sh(&format!(
            "{} setpriv --reuid=1500 --regid=1500 --clear-groups cat {path}",
            vdx_tests::as_root()
        ));
        assert_ne!(read.status, 0, "{path} was readable: {}", read.stdout);
        assert!(read.stderr.contains("Permission denied"), "{}", read.stderr);
    }
    let listing = s.sh(&format!(
        "{} setpriv --reuid=1500 --regid=1500 --clear-groups ls g22/data",
        vdx_tests::as_root()
    ));
    assert_ne!(listing.status, 0, "{}", listing.stdout);
    assert!(g22.stop().success());

    // Keys or data opened to others by an operator: the daemon refuses to start, naming them.
    std::fs::set_permissions(s.path("g22/data"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = Daemon::spawn(&s, "g22");
    refused.wait_exit(&s, "g22", "g22/data");
    std::fs::set_permissions(s.path("g22/data"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(
        s.path("g22/keys/enc.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let refused = Daemon::spawn(&s, "g22");
    refused.wait_exit(&s, "g22", "enc.key");
    std::fs::set_permissions(
        s.path("g22/keys/enc.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let _g22 = Daemon::start(&s, "g22");
}
