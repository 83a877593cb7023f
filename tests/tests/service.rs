//! Running `vdxd` as a system service (`ops/systemd/vdxd@.service`): the unit passes systemd's own
//! check, and a node whose keys are encrypted at rest unlocks them from the systemd credential
//! the unit loads, refusing to start without it or with a wrong one.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::process::Command;
use std::time::{Duration, Instant};

use vdx_tests::daemon::Daemon;
use vdx_tests::{vdxd_bin, words, Session};

const PASS: &str = "correct horse battery staple";

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let s = Session::new();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ops/systemd/vdxd@.service"
    ))
    .unwrap();
    // As installed: with the binary where the unit says it is (here, the one just built).
    assert!(unit.contains("ExecStart=/usr/local/bin/vdxd --home /var/lib/vdx/%i"));
    let unit = unit.replace("/usr/local/bin/vdxd", &vdxd_bin().display().to_string());
    s.write("vdxd@.service", unit.as_bytes());
    std::os::unix::fs::symlink("vdxd@.service", s.path("vdxd@g22.service")).unwrap();
    let verified = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "./vdxd@g22.service"])
        .current_dir(s.dir())
        .output()
        .expect("systemd-analyze (scripts/install-deps.sh installs it)");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{said}");
    assert!(
        !said.contains("vdxd@"),
        "no complaint about the unit: {said}"
    );
}

/// `vdxd --home HOME` with `env`, expected to refuse to start: its exit status and log.
fn refused_start(s: &Session, home: &str, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(vdxd_bin())
        .args(["--home", home])
        .current_dir(s.dir())
        .env_remove("VDX_KEY_PASSPHRASE")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "vdxd started anyway");
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn encrypted_keys_unlock_from_the_systemd_credential_and_nothing_else() {
    let s = Session::new();
    vdx_tests::daemon::encrypted_home(&s, "g22", "000.00.00.G22", PASS);
    for key in ["sign", "enc", "tls"] {
        let pem = String::from_utf8_lossy(&s.read(&format!("g22/keys/{key}.key"))).into_owned();
        assert!(pem.contains("ENCRYPTED PRIVATE KEY"), "{key}.key at rest");
    }

    // No passphrase anywhere: refused, naming the key.
    let said = refused_start(&s, "g22", &[]);
    assert!(
        said.contains("keys/") && said.contains("passphrase is missing or wrong"),
        "{said}"
    );

    // The credential as systemd hands it over: a file in $CREDENTIALS_DIRECTORY, its final
    // newline not part of the passphrase.
    s.mkdir("credentials");
    let credentials = s.path("credentials").display().to_string();
    let env = [("CREDENTIALS_DIRECTORY", credentials.as_str())];
    s.write("credentials/vdx-key-passphrase", b"wrong horse\n");
    let said = refused_start(&s, "g22", &env);
    assert!(said.contains("passphrase is missing or wrong"), "{said}");

    s.write(
        "credentials/vdx-key-passphrase",
        format!("{PASS}\n").as_bytes(),
    );
    let g22 = Daemon::start_with(&s, "g22", &env);
    let status = s.vdx(&words("--home g22 status --json")).ok().json();
    assert_eq!(status["organ_code"], "000.00.00.G22");
    assert!(g22.stop().success());
}
