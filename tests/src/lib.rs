//! Helpers for the integration tests: the real `vdx` binary and the real `openssl` CLI, each test in
//! its own temporary directory, so that a test reads like a user's session.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly by design.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub mod daemon;
pub mod measure;
pub mod peer;

/// The `vdx` binary of this workspace, built once per test process with the test's profile.
pub fn vdx_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bins().join("vdx"))
}

/// The `vdxd` daemon of this workspace, built once per test process.
pub fn vdxd_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bins().join("vdxd"))
}

/// Builds every binary of the workspace in one `cargo build --workspace --bins`, so that both are
/// built with the same (unified) features: building them one package at a time would resolve
/// features differently each time and rebuild the shared crates on every test run.
fn build_bins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(build)
}

fn build() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = std::env::current_exe()
        .map(|p| p.components().any(|c| c.as_os_str() == "release"))
        .unwrap_or(false);
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(&workspace)
        .args(["build", "-q", "--workspace", "--bins"])
        // Build scripts (ring's) watch this variable: inherited from the test, it would make the
        // nested build and the outer one rebuild each other's dependencies every time.
        .env_remove("CARGO_MANIFEST_DIR");
    // So do ring's for CARGO_PKG_NAME and the like, which cargo sets for this test's package.
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("CARGO_PKG_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_MANIFEST_PATH",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&text.as_ref())
        {
            build.env_remove(&name);
        }
    }
    if release {
        build.arg("--release");
    }
    let out = build.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building the binaries failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    measure::target_dir().join(if release { "release" } else { "debug" })
}

/// One test's world: a temporary directory and the commands a user would type there.
pub struct Session {
    dir: tempfile::TempDir,
}

/// What a command did.
pub struct Ran {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Ran {
    fn from(out: Output) -> Self {
        Self {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Ran {
    /// Panics with the command's output unless it exited 0.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.status, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The `--json` verdict of `vdx open`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }

    /// The refusal code of a failed `vdx open --json`, checking it failed with exit code 1.
    pub fn refusal(&self) -> String {
        assert_eq!(
            self.status, 1,
            "expected a refusal:\n{}\n{}",
            self.stdout, self.stderr
        );
        let v = self.json();
        assert_eq!(v["ok"], false);
        v["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("vdx-test-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `vdx` with `args` in the session directory (no passphrase unless `env` sets one).
    pub fn vdx(&self, args: &[&str]) -> Ran {
        self.vdx_env(args, &[])
    }

    pub fn vdx_env(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let mut cmd = Command::new(vdx_bin());
        cmd.current_dir(self.dir())
            .args(args)
            .env_remove("VDX_KEY_PASSPHRASE")
            .env_remove("VDX_HOME");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ran::from(cmd.stdin(Stdio::null()).output().expect("vdx runs"))
    }

    /// `vdx --home FROM send --json --to TO` of `file` with a test subject, number `number` and
    /// notation `A`, plus `extra` flags: what most multi-node tests send.
    pub fn send(&self, from: &str, to: &str, number: &str, file: &str, extra: &[&str]) -> Ran {
        let mut args = vec![
            "--home",
            from,
            "send",
            "--json",
            "--to",
            to,
            "--subject",
            "Kiểm thử",
            "--number",
            number,
            "--notation",
            "A",
        ];
        args.extend_from_slice(extra);
        args.push(file);
        self.vdx(&args)
    }

    /// Runs a shell pipeline in the session directory (for `openssl ... | openssl ...` and `-`).
    pub fn sh(&self, script: &str) -> Ran {
        let mut cmd = Command::new("bash");
        cmd.current_dir(self.dir())
            .args(["-euo", "pipefail", "-c", script])
            .env("VDX", vdx_bin())
            .env_remove("VDX_KEY_PASSPHRASE");
        Ran::from(cmd.stdin(Stdio::null()).output().expect("bash runs"))
    }

    /// Runs `openssl` with `args` in the session directory.
    pub fn openssl(&self, args: &[&str]) -> Ran {
        Ran::from(
            Command::new("openssl")
                .current_dir(self.dir())
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("openssl runs"),
        )
    }

    /// Writes `len` bytes of varied content to `name` and returns them.
    pub fn document(&self, name: &str, len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ len as u64;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(self.path(name), &bytes).expect("write document");
        bytes
    }

    /// Writes `bytes` to `name` (relative to the session directory) and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {name}: {e}"));
        path
    }

    /// Creates the directory `name` (and its parents) in the session directory.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {name}: {e}"));
        path
    }

    /// The names in directory `name` (hidden ones too), sorted: to prove nothing was left behind.
    pub fn entries(&self, name: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(name))
            .unwrap_or_else(|e| panic!("read dir {name}: {e}"))
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// Files in the session directory whose name starts with `prefix` (to catch stray temporaries).
    pub fn files_starting_with(&self, prefix: &str) -> Vec<String> {
        std::fs::read_dir(self.dir())
            .expect("read dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix))
            .collect()
    }

    /// A vdx dev CA in `ca/` and agencies: `g22` (EC, separate profile), `h41` (RSA, combined),
    /// `h26` (RSA, separate), `h40` (EC, another recipient).
    pub fn vdx_pki(&self) {
        self.vdx(&["pki", "init-ca", "--out", "ca", "--name", "Test Root CA"])
            .ok();
        for (org, dir, extra) in [
            ("000.00.00.G22", "g22", &[][..]),
            (
                "000.00.00.H41",
                "h41",
                &["--key-type", "rsa", "--profile", "combined"][..],
            ),
            ("000.00.00.H26", "h26", &["--key-type", "rsa"][..]),
            ("000.00.00.H40", "h40", &[][..]),
        ] {
            let mut args = vec![
                "pki", "issue", "--ca", "ca", "--org", org, "--name", dir, "--out", dir,
            ];
            args.extend_from_slice(extra);
            self.vdx(&args).ok();
        }
    }

    /// The PKI of `scripts/make-openssl-pki.sh`, made with the OpenSSL CLI alone, in `ossl/`.
    pub fn openssl_pki(&self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-openssl-pki.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(self.path("ossl"))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "make-openssl-pki.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Splits a command line written as one string (`"open --json -o out.bin in.p7m"`) into arguments,
/// so that tests read like the commands a user types. Arguments must not contain spaces.
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// What a command needs in front to act as root: nothing as root, else passwordless sudo (as CI
/// runners have). For tests that mount file systems or switch users.
pub fn as_root() -> &'static str {
    use std::os::unix::fs::MetadataExt as _;
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        ""
    } else {
        "sudo -n"
    }
}
