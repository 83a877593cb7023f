//! Real `vdxd` processes for multi-node tests: homes made with the real `vdx init`, daemons started,
//! stopped with SIGTERM or killed with SIGKILL like an operator (or a power cut) would.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Signals for [`Daemon::signal`].
pub use rustix::process::Signal;
use rustix::process::{kill_process, Pid};

use crate::{vdxd_bin, words, Session};

/// A UDP port free on loopback right now (QUIC listens on UDP).
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One running `vdxd`; killed (SIGKILL) when dropped so that a failing test leaves no process.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts `vdxd --home HOME` in the session's directory, logging to `HOME.log` (appended, so a
    /// restarted daemon's log follows the previous one), and waits until its local socket is up.
    pub fn start(s: &Session, home: &str) -> Self {
        Self::start_with(s, home, &[])
    }

    /// `start` with `env` added to the daemon's environment.
    pub fn start_with(s: &Session, home: &str, env: &[(&str, &str)]) -> Self {
        let mut daemon = Self::spawn_with(s, home, env);
        let socket = s.path(&format!("{home}/vdxd.sock"));
        let deadline = Instant::now() + Duration::from_secs(20);
        // A killed daemon leaves its socket file behind: wait until this one answers on it.
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!(
                    "vdxd --home {home} exited with {status}:\n{}",
                    String::from_utf8_lossy(&s.read(&format!("{home}.log")))
                );
            }
            assert!(
                Instant::now() < deadline,
                "vdxd --home {home} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    /// Starts `vdxd --home HOME` without waiting for it.
    pub fn spawn(s: &Session, home: &str) -> Self {
        Self::spawn_with(s, home, &[])
    }

    fn spawn_with(s: &Session, home: &str, env: &[(&str, &str)]) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(s.path(&format!("{home}.log")))
            .unwrap();
        let child = Command::new(vdxd_bin())
            .args(["--home", home])
            .current_dir(s.dir())
            .env_remove("VDX_KEY_PASSPHRASE")
            // Tests read the daemon's info lines, whatever the caller's environment asks for.
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { child }
    }

    /// Waits (at most 20 s) for a daemon that must refuse to start: it exits with 1 and its log
    /// names `needle`.
    pub fn wait_exit(mut self, s: &Session, home: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "vdxd --home {home} did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = String::from_utf8_lossy(&s.read(&format!("{home}.log"))).into_owned();
        assert_eq!(status.code(), Some(1), "{log}");
        let last = log.lines().last().unwrap_or_default();
        assert!(last.contains(needle), "{needle:?} not in {last}");
    }

    /// The daemon's process id (the same after its re-exec), to read `/proc/PID/...`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status (at most 20 s).
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal(Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "vdxd did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (e.g. `Signal::HUP`), as an operator would.
    pub fn signal(&self, signal: Signal) {
        kill_process(Pid::from_child(&self.child), signal).unwrap();
    }

    /// SIGKILL: no chance to tidy up, as in a crash.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes one node home per `(home, organ code)` from the dev CA `ca` (created if missing), each
/// listening on a free loopback port, and imports every node's directory entry into every other.
pub fn homes(s: &Session, nodes: &[(&str, &str)]) {
    if !s.exists("ca") {
        s.vdx(&words("pki init-ca --out ca --name Root")).ok();
    }
    for (home, org) in nodes {
        let listen = format!("127.0.0.1:{}", free_port());
        s.vdx(&[
            "--home", home, "init", "--org", org, "--name", home, "--listen", &listen, "--ca", "ca",
        ])
        .ok();
        let entry = s.vdx(&["--home", home, "directory", "export"]).ok().stdout;
        std::fs::write(s.path(&format!("{home}.json")), entry).unwrap();
    }
    for (home, _) in nodes {
        for (other, _) in nodes {
            if home != other {
                s.vdx(&[
                    "--home",
                    home,
                    "directory",
                    "import",
                    &format!("{other}.json"),
                ])
                .ok();
            }
        }
    }
}

/// Polls `done` every 100 ms for up to `limit`; panics with `what` and the session's daemon logs.
pub fn wait_until(s: &Session, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            let mut logs = String::new();
            for log in s.files_starting_with("") {
                if log.ends_with(".log") {
                    logs += &format!("--- {log}\n{}\n", String::from_utf8_lossy(&s.read(&log)));
                }
            }
            panic!("timed out waiting for {what}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sealed object `id` as the stopped node `home` holds it (in its store or as a spool file),
/// if it holds it.
pub fn held_object(s: &Session, home: &str, id: &str) -> Option<Vec<u8>> {
    use std::io::Read as _;
    use vdx_node::store::MessageId;
    let store = store_of(s, home);
    let mut object = store
        .object(MessageId::try_from(id.to_owned()).unwrap())
        .ok()?;
    let mut bytes = Vec::new();
    object.read_to_end(&mut bytes).unwrap();
    Some(bytes)
}

/// `vdx --home HOME show --json ID`; `null` while the node does not know the dispatch.
pub fn show(s: &Session, home: &str, id: &str) -> serde_json::Value {
    let ran = s.vdx(&["--home", home, "show", "--json", id]);
    if ran.stderr.contains("(not_found)") {
        return serde_json::Value::Null;
    }
    ran.ok().json()
}

/// Waits (at most `limit`) until dispatch `id` shows status `want` at `home`; returns its view.
pub fn wait_status(
    s: &Session,
    limit: Duration,
    home: &str,
    id: &str,
    want: &str,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until(s, limit, &format!("{id} to be {want} at {home}"), || {
        last = show(s, home, id);
        last["status"] == want
    });
    last
}

/// A dev CA (`ca`, if there is none yet) and node home `home` for agency `org`, its keys encrypted
/// at rest with `pass` (as `VDX_KEY_PASSPHRASE` gives it to `vdx`).
pub fn encrypted_home(s: &Session, home: &str, org: &str, pass: &str) {
    let env = [("VDX_KEY_PASSPHRASE", pass)];
    if !s.exists("ca") {
        s.vdx_env(&words("pki init-ca --out ca --name Root"), &env)
            .ok();
    }
    let init = format!("--home {home} init --org {org} --name {home} --listen 127.0.0.1:0 --ca ca");
    s.vdx_env(&words(&init), &env).ok();
}

/// The organ code of the agency `home` was made for (its first tenant).
pub fn organ_code(s: &Session, home: &str) -> vdx_protocol::OrganCode {
    vdx_node::config::Config::load(&s.path(home))
        .unwrap()
        .organ_code
}

/// The directory of `home`'s first tenant's files (spool, uploads), relative to the session.
pub fn tenant_files(s: &Session, home: &str) -> String {
    format!("{home}/data/tenants/{}", organ_code(s, home))
}

/// The store of `home`'s first tenant, opened directly (the node must be stopped).
pub fn store_of(s: &Session, home: &str) -> vdx_node::store::Store {
    vdx_node::store::Store::open_tenant(&s.path(&format!("{home}/data")), &organ_code(s, home))
        .unwrap()
}

/// `vdx --home HOME --tenant CODE show --json ID`: what agency `tenant` hosted at `home` knows of
/// dispatch `id`; `null` while it does not know it (or the daemon is down).
pub fn show_in(s: &Session, home: &str, tenant: &str, id: &str) -> serde_json::Value {
    let ran = s.vdx(&["--home", home, "--tenant", tenant, "show", "--json", id]);
    if ran.status != 0 {
        return serde_json::Value::Null;
    }
    ran.json()
}

/// Waits (at most `limit`) until dispatch `id` shows status `want` at agency `tenant` of `home`;
/// returns its view.
pub fn wait_status_in(
    s: &Session,
    limit: Duration,
    home: &str,
    tenant: &str,
    id: &str,
    want: &str,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let what = format!("{id} to be {want} at {tenant} of {home}");
    wait_until(s, limit, &what, || {
        last = show_in(s, home, tenant, id);
        last["status"] == want
    });
    last
}

/// `vdx --home HOME [--tenant CODE] inbox|outbox --json`; `None` while the daemon is down.
pub fn listed(
    s: &Session,
    home: &str,
    tenant: Option<&str>,
    what: &str,
) -> Option<Vec<serde_json::Value>> {
    let mut args = vec!["--home", home];
    if let Some(code) = tenant {
        args.extend(["--tenant", code]);
    }
    args.extend([what, "--json"]);
    let ran = s.vdx(&args);
    if ran.status != 0 {
        return None;
    }
    Some(ran.json().as_array().cloned().unwrap_or_default())
}

/// This test process's Unix user id, to name in a tenant's `[api]` lists.
pub fn my_uid() -> String {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").unwrap().uid().to_string()
}

/// `vdx --home HOME tenant add` of agency `code` named `name`, with certificates from the dev CA
/// `ca` and this user as its clerk and officer.
pub fn add_tenant(s: &Session, home: &str, code: &str, name: &str) -> crate::Ran {
    let me = my_uid();
    s.vdx(&[
        "--home",
        home,
        "tenant",
        "add",
        "--org",
        code,
        "--name",
        name,
        "--ca",
        "ca",
        "--clerk",
        &me,
        "--officer",
        &me,
    ])
    .ok()
}
