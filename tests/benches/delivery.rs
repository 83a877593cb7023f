//! Delivery benchmark: two real `vdxd` (release) on loopback, driven through the local socket API
//! (HTTP/1.1 + JSON on `HOME/vdxd.sock`) the way an office system drives it: upload, submit, then
//! poll `GET /v1/dispatches/{id}` at the sender until `"delivered": true` (the recipient opened the
//! dispatch, registered it and its signed delivery receipt came back and checked). Everything is
//! durable as in production: the daemons fsync as they always do, on the disk by default.
//!
//! ```sh
//! scripts/bench-delivery.sh                                  # all phases, 1 GiB
//! BENCH_PHASES=latency,rate BENCH_DIR=/dev/shm scripts/bench-delivery.sh   # tmpfs: no disk
//! ```
//!
//! Phases (`BENCH_PHASES`, default all three), after 2 s idle and one warm-up dispatch, always in
//! this order (the rate phase last: a backlog it leaves would slow whatever came after it):
//! - `latency`: open loop, `BENCH_RATE` dispatches/s (100) for `BENCH_LATENCY_SECS` (10) of
//!   `BENCH_DOC_KIB` KiB (10) each; each is timed from its scheduled start (upload, then POST) to
//!   the first poll that sees it delivered (every pending dispatch is polled every `BENCH_POLL_MS`,
//!   default 5 ms); p50/p90/p99/max.
//! - `big`: one `BENCH_BIG_MIB` MiB (1024) document, generated in the run's directory, uploaded
//!   streaming from the file, submitted (sealed and queued), delivered: MB/s (10^6 bytes of
//!   content) per step; then the same document streamed with its request
//!   (`POST /v1/dispatches/stream`: hashed by the client, then sealed as it arrives), delivered.
//! - `rate`: `BENCH_CONCURRENCY` (8) closed-loop submitters for `BENCH_RATE_SECS` (12), then wait
//!   (at most `BENCH_DRAIN_SECS`, 90) until every dispatch is delivered: submitted/s, delivered/s.
//!
//! CPU time of both daemons and of this client is reported per phase, and at the end the CPU other
//! processes took meanwhile (they share the cores and the disk, and skew the numbers).
//! VmRSS of both daemons is sampled every 100 ms throughout: idle RSS and the peak of each phase;
//! VmHWM at the end. Files live in a fresh directory under `BENCH_DIR` (default: the target
//! directory's `bench-delivery/`, on disk), removed at the end unless `BENCH_KEEP=1` or the run
//! failed. Progress goes to standard error, the table to standard output. Only loopback is used;
//! the daemons are killed when the benchmark ends, also when it panics.
//!
//! Then the same phases run through NNCP 8.8 (`nncp` from Debian, installed by
//! `scripts/install-deps.sh`) in the same run and directory, and a last table puts both side by
//! side with their ratios: `delivery/nncp.rs` says how. `BENCH_NNCP=0` skips that side, and so does
//! a machine without `nncp-file`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark fails loudly.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::Digest as _;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use vdx_tests::daemon::free_port;
use vdx_tests::measure::{
    cpu_secs, env_or, machine_busy_secs, memory_kib, met, percentile, target_dir, RunDir,
};
use vdx_tests::{vdx_bin, vdxd_bin};

#[path = "delivery/nncp.rs"]
mod nncp;

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";

/// What to run, from the environment.
struct Settings {
    phases: Vec<String>,
    rate: f64,
    latency_secs: f64,
    rate_secs: f64,
    concurrency: usize,
    doc_kib: usize,
    big_mib: u64,
    poll: Duration,
    drain: Duration,
    base: PathBuf,
    keep: bool,
}

impl Settings {
    fn from_env() -> Self {
        let phases: String = env_or("BENCH_PHASES", "latency,big,rate".to_owned());
        let phases: Vec<String> = phases
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        for p in &phases {
            assert!(
                ["latency", "rate", "big"].contains(&p.as_str()),
                "BENCH_PHASES: unknown phase {p:?} (latency, rate, big)"
            );
        }
        let settings = Self {
            phases,
            rate: env_or("BENCH_RATE", 100.0),
            latency_secs: env_or("BENCH_LATENCY_SECS", 10.0),
            rate_secs: env_or("BENCH_RATE_SECS", 12.0),
            concurrency: env_or("BENCH_CONCURRENCY", 8),
            doc_kib: env_or("BENCH_DOC_KIB", 10),
            big_mib: env_or("BENCH_BIG_MIB", 1024),
            poll: Duration::from_millis(env_or("BENCH_POLL_MS", 5)),
            drain: Duration::from_secs(env_or("BENCH_DRAIN_SECS", 90)),
            base: std::env::var_os("BENCH_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| target_dir().join("bench-delivery")),
            keep: env_or("BENCH_KEEP", 0u8) == 1,
        };
        assert!(
            settings.rate > 0.0 && settings.rate <= 10_000.0,
            "BENCH_RATE"
        );
        assert!(settings.concurrency >= 1, "BENCH_CONCURRENCY");
        assert!(settings.big_mib >= 1, "BENCH_BIG_MIB");
        settings
    }

    fn has(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

/// Runs `vdx` in `dir`; its standard output, or a panic with its errors.
fn vdx(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(vdx_bin())
        .current_dir(dir)
        .args(args)
        .env_remove("VDX_KEY_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .expect("vdx runs");
    assert!(
        out.status.success(),
        "vdx {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A dev CA, homes `g22` and `h41` on free loopback ports, each in the other's directory and each
/// checking revocation against the CA's CRL, as a production node does.
fn make_homes(dir: &Path) {
    vdx(
        dir,
        &["pki", "init-ca", "--out", "ca", "--name", "Bench CA"],
    );
    for (home, org) in [("g22", G22), ("h41", H41)] {
        let listen = format!("127.0.0.1:{}", free_port());
        vdx(
            dir,
            &[
                "--home", home, "init", "--org", org, "--name", home, "--listen", &listen, "--ca",
                "ca",
            ],
        );
        let entry = vdx(dir, &["--home", home, "directory", "export"]);
        std::fs::write(dir.join(format!("{home}.json")), entry).unwrap();
        let crl = format!("{home}/keys/ca.crl");
        vdx(dir, &["pki", "crl", "--ca", "ca", "--out", &crl]);
        let mut config = vdx_node::config::Config::load(&dir.join(home)).unwrap();
        config.trust.crls.push("keys/ca.crl".into());
        std::fs::write(
            dir.join(home).join("config.toml"),
            config.to_toml().unwrap(),
        )
        .unwrap();
    }
    vdx(dir, &["--home", "g22", "directory", "import", "h41.json"]);
    vdx(dir, &["--home", "h41", "directory", "import", "g22.json"]);
}

/// One running `vdxd`, killed when dropped (also when the benchmark panics).
struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts `vdxd --home HOME` in `dir` (log in `HOME.log`) and waits for its socket.
    fn start(dir: &Path, home: &str) -> Self {
        let log = File::create(dir.join(format!("{home}.log"))).unwrap();
        let child = Command::new(vdxd_bin())
            .args(["--home", home])
            .current_dir(dir)
            .env_remove("VDX_KEY_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("vdxd starts");
        let mut daemon = Self { child };
        let socket = dir.join(home).join(vdx_node::api::SOCKET_NAME);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!(
                    "vdxd --home {home} exited with {status}:\n{}",
                    std::fs::read_to_string(dir.join(format!("{home}.log"))).unwrap_or_default()
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

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU used by sender, receiver and this benchmark since a mark.
struct CpuMark {
    pids: [u32; 3],
    at: Instant,
    secs: [f64; 3],
}

impl CpuMark {
    fn new(sender: u32, receiver: u32) -> Self {
        let pids = [sender, receiver, std::process::id()];
        Self {
            pids,
            at: Instant::now(),
            secs: pids.map(cpu_secs),
        }
    }

    /// CPU seconds since the mark: sender, receiver, this benchmark.
    fn used(&self) -> Vec<f64> {
        self.pids
            .iter()
            .zip(self.secs)
            .map(|(pid, before)| cpu_secs(*pid) - before)
            .collect()
    }

    /// Both daemons' CPU per `per` units: milliseconds, or CPU-s for a GiB (as `since` shows).
    fn daemons_per(&self, per: f64, unit: &str) -> f64 {
        let used = self.used();
        let scale = if unit == "GiB" { 1.0 } else { 1000.0 };
        (used[0] + used[1]) * scale / per
    }

    /// "S / R / B s in W s", and per `per` units of work when given.
    fn since(&self, per: Option<(f64, &str)>) -> String {
        let used = self.used();
        let mut text = format!(
            "{:.1} / {:.1} / {:.1} s in {:.1} s",
            used[0],
            used[1],
            used[2],
            self.at.elapsed().as_secs_f64()
        );
        if let Some((n, unit)) = per {
            // Milliseconds per dispatch, seconds per GiB.
            let scale = if unit == "GiB" { 1.0 } else { 1000.0 };
            let what = if unit == "GiB" { "CPU-s" } else { "ms" };
            text += &format!(
                " ({:.2} / {:.2} {what} per {unit})",
                used[0] * scale / n,
                used[1] * scale / n
            );
        }
        text
    }
}

/// Peak VmRSS (KiB) of sender and receiver per phase, sampled every 100 ms by a thread.
#[derive(Default)]
struct Samples {
    phase: &'static str,
    peaks: Vec<(&'static str, [u64; 2])>,
}

struct Sampler {
    samples: Arc<Mutex<Samples>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pids: [u32; 2],
}

impl Sampler {
    fn start(pids: [u32; 2], phase: &'static str) -> Self {
        let samples = Arc::new(Mutex::new(Samples {
            phase,
            peaks: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let rss = pids.map(|pid| memory_kib(pid).0);
                    if let Ok(mut s) = samples.lock() {
                        let phase = s.phase;
                        match s.peaks.iter_mut().find(|(p, _)| *p == phase) {
                            Some((_, peak)) => {
                                for (p, r) in peak.iter_mut().zip(rss) {
                                    *p = (*p).max(r);
                                }
                            }
                            None => s.peaks.push((phase, rss)),
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Self {
            samples,
            stop,
            thread: Some(thread),
            pids,
        }
    }

    fn phase(&self, phase: &'static str) {
        self.samples.lock().unwrap().phase = phase;
    }

    /// Peak RSS of a phase, MiB, sender and receiver.
    fn peak(&self, phase: &str) -> Option<[f64; 2]> {
        self.samples
            .lock()
            .unwrap()
            .peaks
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, kib)| kib.map(|k| k as f64 / 1024.0))
    }

    /// VmHWM now, MiB, sender and receiver.
    fn high_water(&self) -> [f64; 2] {
        self.pids.map(|pid| memory_kib(pid).1 as f64 / 1024.0)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A request body fed by a channel (a thread reads the file into it).
struct ChannelBody(mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx)
    }
}

/// The bytes of `path`, read by a thread in 1 MiB chunks as the request sends them.
fn file_body(path: &Path) -> Body {
    prefixed_file_body(Vec::new(), path)
}

/// `prefix`, then the file at `path`, streamed as [`file_body`] streams it.
fn prefixed_file_body(prefix: Vec<u8>, path: &Path) -> Body {
    let mut file = File::open(path).unwrap();
    let (tx, rx) = mpsc::channel(4);
    if !prefix.is_empty() {
        tx.try_send(Ok(Frame::data(Bytes::from(prefix)))).unwrap();
    }
    std::thread::spawn(move || loop {
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if tx.blocking_send(Ok(Frame::data(Bytes::from(buf)))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    });
    ChannelBody(rx).boxed_unsync()
}

/// A keep-alive client of one daemon's socket (reconnects when the connection is gone).
struct Api {
    socket: PathBuf,
    conn: Option<hyper::client::conn::http1::SendRequest<Body>>,
}

impl Api {
    fn new(home: &Path) -> Self {
        Self {
            socket: home.join(vdx_node::api::SOCKET_NAME),
            conn: None,
        }
    }

    async fn call(&mut self, method: Method, path: &str, body: Body) -> (StatusCode, Bytes) {
        let mut reusable = self.conn.take();
        if let Some(s) = reusable.as_mut() {
            if s.ready().await.is_err() {
                reusable = None;
            }
        }
        let mut sender = match reusable {
            Some(s) => s,
            None => {
                let stream = UnixStream::connect(&self.socket)
                    .await
                    .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.socket.display()));
                let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                s
            }
        };
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", "vdxd")
            .body(body)
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        self.conn = Some(sender);
        (status, bytes)
    }

    async fn json(&mut self, method: Method, path: &str, body: Body) -> Value {
        let (status, bytes) = self.call(method.clone(), path, body).await;
        assert!(
            status.is_success(),
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn upload(&mut self, body: Body) -> String {
        let answer = self.json(Method::POST, "/v1/uploads", body).await;
        answer["upload"].as_str().unwrap().to_owned()
    }

    /// Submits a dispatch to H41 of one uploaded file; the id of its copy.
    async fn submit(&mut self, upload: &str, number: u64) -> String {
        let request = json!({
            "to": [H41],
            "subject": format!("Benchmark dispatch {number}"),
            "number": number.to_string(),
            "notation": "BENCH",
            "urgency": "thuong",
            "classification": "none",
            "files": [{ "name": "doc.bin", "upload": upload }],
        });
        let answer = self
            .json(
                Method::POST,
                "/v1/dispatches",
                full(serde_json::to_vec(&request).unwrap()),
            )
            .await;
        answer["copies"][0]["id"].as_str().unwrap().to_owned()
    }

    /// Submits a dispatch to H41 of the file at `path` streamed with its request
    /// (`POST /v1/dispatches/stream`, sealed as it arrives); the id of its copy. The file is
    /// read once before, for the SHA-256 the request declares, as a client must.
    async fn submit_streamed(&mut self, path: &Path, number: u64) -> String {
        let mut hasher = sha2::Sha256::new();
        std::io::copy(&mut File::open(path).unwrap(), &mut hasher).unwrap();
        let size = std::fs::metadata(path).unwrap().len();
        let request = json!({
            "to": [H41],
            "subject": format!("Benchmark dispatch {number}"),
            "number": number.to_string(),
            "notation": "BENCH",
            "urgency": "thuong",
            "classification": "none",
            "files": [{
                "name": "doc.bin",
                "upload": vdx_protocol::hex::encode(hasher.finalize().as_slice()),
                "size": size,
            }],
        });
        let json = serde_json::to_vec(&request).unwrap();
        let prefix = [(json.len() as u32).to_be_bytes().as_slice(), &json].concat();
        let answer = self
            .json(
                Method::POST,
                "/v1/dispatches/stream",
                prefixed_file_body(prefix, path),
            )
            .await;
        answer["copies"][0]["id"].as_str().unwrap().to_owned()
    }

    /// The dispatch view; `Null` while the node does not know it.
    async fn view(&mut self, id: &str) -> Value {
        let (status, bytes) = self
            .call(
                Method::GET,
                &format!("/v1/dispatches/{id}"),
                full(Bytes::new()),
            )
            .await;
        if status == StatusCode::NOT_FOUND {
            return Value::Null;
        }
        assert!(status.is_success(), "GET {id}: {status}");
        let view: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(
            view["status"] != "failed" && view["status"] != "refused",
            "dispatch {id} failed: {view}"
        );
        view
    }
}

/// Distinct content for every small document (uploads are content-addressed).
static SEQUENCE: AtomicU64 = AtomicU64::new(1);

/// Fills `buf` from a xorshift generator.
fn fill(state: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

fn document(n: u64, len: usize) -> Vec<u8> {
    let mut doc = vec![0u8; len.max(8)];
    let mut state = 0x9e37_79b9_7f4a_7c15 ^ n;
    fill(&mut state, &mut doc);
    doc[..8].copy_from_slice(&n.to_be_bytes());
    doc
}

/// One dispatch on its way: when it was due, when its POST was answered, its id.
struct Sent {
    id: String,
    start: Instant,
    answered: Instant,
}

/// Uploads and submits one fresh document of `len` bytes; `start` is when it was due.
async fn send_one(api: &mut Api, len: usize, start: Instant) -> Sent {
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let upload = api.upload(full(document(n, len))).await;
    let id = api.submit(&upload, n).await;
    Sent {
        id,
        start,
        answered: Instant::now(),
    }
}

/// Polls the sender until every dispatch from `rx` is delivered (or `drain` passed after the last
/// one came). Each pass goes oldest first and stops after `misses` dispatches in a row that are not
/// delivered yet (`usize::MAX`: every pending one, every pass), then sleeps `every`. Returns the
/// delivered dispatches with the time they were seen delivered, and how many were not.
async fn poll_delivered(
    home: PathBuf,
    mut rx: mpsc::UnboundedReceiver<Sent>,
    every: Duration,
    misses: usize,
    drain: Duration,
) -> (Vec<(Sent, Instant)>, usize) {
    let mut api = Api::new(&home);
    let mut pending: std::collections::VecDeque<Sent> = Default::default();
    let mut delivered = Vec::new();
    let mut closed_at: Option<Instant> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(sent) => pending.push_back(sent),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed_at.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
        let mut missed = 0;
        let mut i = 0;
        while i < pending.len() && missed < misses {
            if api.view(&pending[i].id).await["delivered"] == true {
                let seen = Instant::now();
                let sent = pending.remove(i).unwrap();
                delivered.push((sent, seen));
            } else {
                missed += 1;
                i += 1;
            }
        }
        if let Some(closed) = closed_at {
            if pending.is_empty() || closed.elapsed() > drain {
                return (delivered, pending.len());
            }
        }
        tokio::time::sleep(every).await;
    }
}

fn millis(values: impl Iterator<Item = Duration>) -> Vec<f64> {
    let mut v: Vec<f64> = values.map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn quantiles(sorted: &[f64]) -> String {
    format!(
        "{:.1} / {:.1} / {:.1} / {:.1} ms",
        percentile(sorted, 0.50),
        percentile(sorted, 0.90),
        percentile(sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN)
    )
}

fn main() {
    let s = Settings::from_env();
    // Build (or find) the release binaries first, so that the build is not timed.
    let started = Instant::now();
    let (vdx_path, vdxd_path) = (vdx_bin(), vdxd_bin());
    let build_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "bench: binaries {} and {} ({:.0} s to build or check)",
        vdx_path.display(),
        vdxd_path.display(),
        build_secs
    );
    let work = RunDir::fresh(&s.base, s.keep);
    let dir = work.path.clone();
    make_homes(&dir);
    let receiver = Daemon::start(&dir, "h41");
    let sender = Daemon::start(&dir, "g22");
    let sampler = Sampler::start([sender.pid(), receiver.pid()], "idle");
    let whole_run = CpuMark::new(sender.pid(), receiver.pid());
    let busy_before = machine_busy_secs();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (g22, h41) = (dir.join("g22"), dir.join("h41"));
    let mut figures = nncp::Figures::default();
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |phase: &str, measure: String, result: String, target: String| {
        eprintln!("bench: {phase}: {measure}: {result} {target}");
        rows.push([phase.to_owned(), measure, result, target]);
    };
    let rss = |peak: [f64; 2]| format!("{:.1} / {:.1} MiB", peak[0], peak[1]);
    let rss_target = |peak: [f64; 2], limit: f64| {
        format!("< {limit:.0} MiB: {}", met(peak.iter().all(|p| *p < limit)))
    };

    std::thread::sleep(Duration::from_secs(2));
    let idle = sampler.peak("idle").unwrap_or([f64::NAN; 2]);
    row(
        "idle",
        "RSS after start, sender / receiver".into(),
        rss(idle),
        rss_target(idle, 30.0),
    );

    sampler.phase("warm-up");
    let warm = runtime.block_on(async {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut api = Api::new(&g22);
        tx.send(send_one(&mut api, s.doc_kib * 1024, Instant::now()).await)
            .unwrap();
        drop(tx);
        poll_delivered(g22.clone(), rx, s.poll, usize::MAX, Duration::from_secs(30)).await
    });
    assert_eq!(warm.1, 0, "the warm-up dispatch was not delivered in 30 s");
    let first = warm.0[0].1 - warm.0[0].0.start;
    eprintln!(
        "bench: warm-up: first dispatch delivered in {:.0} ms (includes the QUIC handshake)",
        first.as_secs_f64() * 1000.0
    );

    if s.has("latency") {
        sampler.phase("latency");
        let cpu = CpuMark::new(sender.pid(), receiver.pid());
        let n = ((s.rate * s.latency_secs).round() as usize).max(1);
        let (delivered, lost, lag) = runtime.block_on(async {
            let (tx, rx) = mpsc::unbounded_channel();
            let poller = tokio::spawn(poll_delivered(
                g22.clone(),
                rx,
                s.poll,
                usize::MAX,
                Duration::from_secs(60),
            ));
            let begin = Instant::now() + Duration::from_millis(10);
            let mut lag = Duration::ZERO;
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..n {
                let due = begin + Duration::from_secs_f64(i as f64 / s.rate);
                tokio::time::sleep_until(due.into()).await;
                lag = lag.max(due.elapsed());
                let (tx, home, len) = (tx.clone(), g22.clone(), s.doc_kib * 1024);
                tasks.spawn(async move {
                    let mut api = Api::new(&home);
                    let _ = tx.send(send_one(&mut api, len, due).await);
                });
            }
            drop(tx);
            while let Some(done) = tasks.join_next().await {
                done.unwrap();
            }
            let (delivered, lost) = poller.await.unwrap();
            (delivered, lost, lag)
        });
        assert_eq!(lost, 0, "{lost} of {n} dispatches not delivered");
        let submit = millis(delivered.iter().map(|(d, _)| d.answered - d.start));
        let e2e = millis(delivered.iter().map(|(d, seen)| *seen - d.start));
        let p99 = percentile(&e2e, 0.99);
        figures.latency_p50 = percentile(&e2e, 0.5);
        figures.latency_p99 = p99;
        figures.latency_cpu_ms = cpu.daemons_per(delivered.len() as f64, "dispatch");
        let label = format!(
            "{} KiB at {}/s for {} s ({n}), delivered p50 / p90 / p99 / max",
            s.doc_kib, s.rate, s.latency_secs
        );
        row(
            "latency",
            label,
            quantiles(&e2e),
            format!("p99 < 50 ms: {}", met(p99 < 50.0)),
        );
        row(
            "latency",
            "submit answered (upload + POST) p50 / p90 / p99 / max".into(),
            quantiles(&submit),
            String::new(),
        );
        eprintln!(
            "bench: latency: most late start {:.1} ms (open loop); poll every {} ms",
            lag.as_secs_f64() * 1000.0,
            s.poll.as_millis()
        );
        row(
            "latency",
            "CPU sender / receiver / bench client".into(),
            cpu.since(Some((delivered.len() as f64, "dispatch"))),
            String::new(),
        );
        let peak = sampler.peak("latency").unwrap_or([f64::NAN; 2]);
        row(
            "latency",
            "peak RSS sender / receiver".into(),
            rss(peak),
            rss_target(peak, 128.0),
        );
    }

    if s.has("big") {
        sampler.phase("big (generating)");
        let size = s.big_mib << 20;
        let path = dir.join("big.bin");
        let generated = Instant::now();
        {
            let mut file = std::io::BufWriter::with_capacity(1 << 20, File::create(&path).unwrap());
            let mut state = 0x2545_f491_4f6c_dd1d_u64;
            let mut buf = vec![0u8; 1 << 20];
            for _ in 0..s.big_mib {
                fill(&mut state, &mut buf);
                file.write_all(&buf).unwrap();
            }
            file.into_inner().unwrap().sync_all().unwrap();
        }
        eprintln!(
            "bench: big: {} MiB generated and synced in {:.2} s",
            s.big_mib,
            generated.elapsed().as_secs_f64()
        );
        sampler.phase("big");
        let cpu = CpuMark::new(sender.pid(), receiver.pid());
        let times = runtime.block_on(async {
            let mut api = Api::new(&g22);
            let mut at_receiver = Api::new(&h41);
            let t0 = Instant::now();
            let upload = api.upload(file_body(&path)).await;
            let t1 = Instant::now();
            let id = api
                .submit(&upload, SEQUENCE.fetch_add(1, Ordering::Relaxed))
                .await;
            let t2 = Instant::now();
            let (mut sent, mut received, mut registered) = (None, None, None);
            let deadline = t2 + Duration::from_secs(600);
            let delivered = loop {
                let view = api.view(&id).await;
                let now = Instant::now();
                if view["delivered"] == true {
                    sent.get_or_insert(now);
                    break now;
                }
                if view["status"] == "sent" {
                    sent.get_or_insert(now);
                }
                let there = at_receiver.view(&id).await;
                let now = Instant::now();
                if there["status"] == "received" || there["status"] == "registered" {
                    received.get_or_insert(now);
                }
                if there["status"] == "registered" {
                    registered.get_or_insert(now);
                }
                assert!(
                    now < deadline,
                    "the big dispatch was not delivered in 600 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            [
                t0,
                t1,
                t2,
                sent.unwrap_or(delivered),
                received.unwrap_or(delivered),
                registered.unwrap_or(delivered),
                delivered,
            ]
        });
        // The same document again, streamed with its request: sealed as it arrives, so the
        // sender writes it once (the sealed object) instead of twice (the upload, then that).
        let streamed = runtime.block_on(async {
            let mut api = Api::new(&g22);
            let t0 = Instant::now();
            let id = api
                .submit_streamed(&path, SEQUENCE.fetch_add(1, Ordering::Relaxed))
                .await;
            let t1 = Instant::now();
            let deadline = t1 + Duration::from_secs(600);
            loop {
                if api.view(&id).await["delivered"] == true {
                    break [t0, t1, Instant::now()];
                }
                assert!(
                    Instant::now() < deadline,
                    "the streamed dispatch was not delivered in 600 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let _ = std::fs::remove_file(&path);
        let [t0, t1, t2, sent, received, registered, delivered] = times;
        let step = |from: Instant, to: Instant| {
            let secs = to.saturating_duration_since(from).as_secs_f64();
            (secs, size as f64 / secs.max(1e-9) / 1e6)
        };
        let mut big_row = |measure: &str, (secs, mbs): (f64, f64), target: String| {
            row(
                "big",
                format!("{} MiB: {measure}", s.big_mib),
                format!("{mbs:.0} MB/s ({secs:.1} s)"),
                target,
            );
        };
        big_row("upload (POST /v1/uploads)", step(t0, t1), String::new());
        big_row(
            "seal + queue (POST /v1/dispatches)",
            step(t1, t2),
            String::new(),
        );
        big_row(
            "transfer (submitted → hop receipt)",
            step(t2, sent),
            String::new(),
        );
        let delivery = step(t2, delivered);
        figures.big_delivery_mbs = delivery.1;
        big_row(
            "delivery (submitted → delivered)",
            delivery,
            format!("≥ 150 MB/s: {}", met(delivery.1 >= 150.0)),
        );
        let end = step(t0, delivered);
        figures.big_mbs = end.1;
        // Both runs, the uploaded and the streamed: twice the document.
        let gib = 2.0 * size as f64 / f64::from(1u32 << 30);
        figures.big_cpu_per_gib = cpu.daemons_per(gib, "GiB");
        big_row(
            "end to end (upload start → delivered)",
            end,
            format!("≥ 150 MB/s: {}", met(end.1 >= 150.0)),
        );
        let [s0, s1, s2] = streamed;
        big_row(
            "streamed: hash + seal + queue (POST /v1/dispatches/stream)",
            step(s0, s1),
            String::new(),
        );
        let streamed_end = step(s0, s2);
        figures.big_stream_mbs = streamed_end.1;
        big_row(
            "streamed: end to end (hash start → delivered)",
            streamed_end,
            format!("≥ 150 MB/s: {}", met(streamed_end.1 >= 150.0)),
        );
        eprintln!(
            "bench: big: at the receiver: stored after {:.1} s, opened and registered {:.1} s later; \
             receipt back {:.1} s after that (polled every 20 ms)",
            received.saturating_duration_since(t2).as_secs_f64(),
            registered.saturating_duration_since(received).as_secs_f64(),
            delivered.saturating_duration_since(registered).as_secs_f64()
        );
        row(
            "big",
            "CPU sender / receiver / bench client (both runs)".into(),
            cpu.since(Some((gib, "GiB"))),
            String::new(),
        );
        let peak = sampler.peak("big").unwrap_or([f64::NAN; 2]);
        row(
            "big",
            "peak RSS sender / receiver".into(),
            rss(peak),
            rss_target(peak, 128.0),
        );
    }

    if s.has("rate") {
        sampler.phase("rate");
        let cpu = CpuMark::new(sender.pid(), receiver.pid());
        let (counts, window, delivered, lost, begin) = runtime.block_on(async {
            let (tx, rx) = mpsc::unbounded_channel();
            let poller = tokio::spawn(poll_delivered(
                g22.clone(),
                rx,
                Duration::from_millis(10),
                4,
                s.drain,
            ));
            let begin = Instant::now();
            let stop = begin + Duration::from_secs_f64(s.rate_secs);
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..s.concurrency {
                let (tx, home, len) = (tx.clone(), g22.clone(), s.doc_kib * 1024);
                tasks.spawn(async move {
                    let mut api = Api::new(&home);
                    let mut count = 0u64;
                    while Instant::now() < stop {
                        let _ = tx.send(send_one(&mut api, len, Instant::now()).await);
                        count += 1;
                    }
                    count
                });
            }
            drop(tx);
            let mut counts = 0;
            while let Some(done) = tasks.join_next().await {
                counts += done.unwrap();
            }
            let window = begin.elapsed();
            let (delivered, lost) = poller.await.unwrap();
            (counts, window, delivered, lost, begin)
        });
        let secs = window.as_secs_f64();
        let submitted_rate = counts as f64 / secs;
        let in_window = delivered
            .iter()
            .filter(|(_, seen)| seen.duration_since(begin) <= window)
            .count();
        let last = delivered
            .iter()
            .map(|(_, seen)| seen.duration_since(begin))
            .max()
            .unwrap_or_default();
        let overall = delivered.len() as f64 / last.as_secs_f64().max(1e-9);
        let submit = millis(delivered.iter().map(|(d, _)| d.answered - d.start));
        let e2e = millis(delivered.iter().map(|(d, seen)| *seen - d.start));
        figures.rate_submitted = submitted_rate;
        figures.rate_delivered = overall;
        figures.rate_cpu_ms = cpu.daemons_per(delivered.len().max(1) as f64, "dispatch");
        row(
            "rate",
            format!(
                "{} submitters × {:.1} s: submitted ({counts}) per s",
                s.concurrency, secs
            ),
            format!("{submitted_rate:.0}/s"),
            String::new(),
        );
        row(
            "rate",
            "delivered per s: while submitting / all (until the last)".into(),
            format!(
                "{:.0}/s / {overall:.0}/s (last after {:.1} s{})",
                in_window as f64 / secs,
                last.as_secs_f64(),
                if lost > 0 {
                    format!(", {lost} NOT delivered after {} s more", s.drain.as_secs())
                } else {
                    String::new()
                }
            ),
            format!(
                "≥ 1000/s: {}",
                met(lost == 0 && overall >= 1000.0 && submitted_rate >= 1000.0)
            ),
        );
        row(
            "rate",
            "under load: submit answered p50 / p99, delivered p50 / p99".into(),
            format!(
                "{:.0} / {:.0} ms, {:.0} / {:.0} ms",
                percentile(&submit, 0.5),
                percentile(&submit, 0.99),
                percentile(&e2e, 0.5),
                percentile(&e2e, 0.99)
            ),
            String::new(),
        );
        row(
            "rate",
            "CPU sender / receiver / bench client (until all delivered)".into(),
            cpu.since(Some((delivered.len() as f64, "dispatch"))),
            String::new(),
        );
        let peak = sampler.peak("rate").unwrap_or([f64::NAN; 2]);
        row(
            "rate",
            "peak RSS sender / receiver".into(),
            rss(peak),
            rss_target(peak, 128.0),
        );
    }

    sampler.phase("idle after");
    std::thread::sleep(Duration::from_secs(2));
    let after = sampler.peak("idle after").unwrap_or([f64::NAN; 2]);
    row(
        "idle after",
        "RSS 2 s after the load (still working if a backlog remains)".into(),
        rss(after),
        String::new(),
    );
    let hwm = sampler.high_water();
    figures.hwm = hwm;
    row(
        "all",
        "VmHWM (peak RSS of the whole run)".into(),
        rss(hwm),
        rss_target(hwm, 128.0),
    );

    let kind = if s.base.starts_with("/dev/shm") {
        "tmpfs"
    } else {
        "disk"
    };
    println!();
    let ours: f64 = whole_run
        .pids
        .iter()
        .zip(whole_run.secs)
        .map(|(pid, before)| cpu_secs(*pid) - before)
        .sum();
    let others = (machine_busy_secs() - busy_before - ours).max(0.0);
    let seconds = whole_run.at.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "vdx delivery benchmark: 2 daemons on loopback, {cores} cores, files in {} ({kind}); \
         {seconds:.0} s from the daemons' start (+{:.0} s to build or check the binaries); \
         daemons and this client used {ours:.0} CPU-s, other processes {others:.0} CPU-s \
         ({:.0} % of the machine)",
        dir.display(),
        build_secs,
        others * 100.0 / (seconds * cores as f64)
    );
    println!();
    println!("| phase | measure | result | target |");
    println!("|---|---|---:|---|");
    for [phase, measure, result, target] in &rows {
        println!("| {phase} | {measure} | {result} | {target} |");
    }
    drop(runtime);
    drop(sampler);
    drop(sender);
    drop(receiver);
    // vdx's daemons are gone: NNCP gets the machine as vdx had it.
    if nncp::wanted() {
        nncp::run(&s, &dir.join("nncp"), &figures);
    }
    drop(work);
}
