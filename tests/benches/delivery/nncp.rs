//! The same work through NNCP (Debian's `nncp`, 8.8), in the same run, after vdx's phases: what a
//! reader needs to judge vdx's figures is another store-and-forward system's on the same machine,
//! disk and day.
//!
//! Two NNCP nodes on loopback, made with `nncp-cfgnew` and each given the other's public keys:
//! `h41` runs `nncp-daemon -autotoss` on a free loopback port (it tosses what it received every
//! second, into its `incoming` directory); `g22` holds one `nncp-call -onlinedeadline 3600`
//! session open to it for the whole run (NNCP looks for new outbound packets every second while
//! online), the way vdx's daemons keep their QUIC connection. An item is queued with one
//! `nncp-file SRC h41:NAME` (it encrypts and signs the packet into g22's spool) and counts as
//! delivered when `NAME` is renamed into h41's `incoming` (after NNCP's fsync of the file; an
//! inotify watch notes the moment). Spools, logs and incoming live in the run's directory, on the
//! same disk as vdx's homes, and NNCP fsyncs as it does by default (`NNCPNOSYNC` is removed from
//! the environment). NNCP has no end-to-end receipt: its sender learns nothing after the hop, so
//! NNCP's "delivered" is one step short of vdx's (signed receipt back at the sender).
//!
//! Phases as vdx's, with the same settings: `latency` (open loop, `BENCH_RATE`/s for
//! `BENCH_LATENCY_SECS`, each item timed from its scheduled start), `big` (one `BENCH_BIG_MIB`
//! file: queued, sent, tossed), `rate` (`BENCH_CONCURRENCY` closed-loop `nncp-file` runners for
//! `BENCH_RATE_SECS`, then until all are tossed). CPU is that of `nncp-call`, `nncp-daemon` and
//! of every `nncp-file` (reaped children of this benchmark); VmRSS of the call and the daemon is
//! sampled as vdx's daemons' is. `BENCH_NNCP=0` skips this side; so does a machine without
//! `nncp-file` on `PATH` (`scripts/install-deps.sh` installs it).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::fs::inotify;
use serde_json::{json, Value};
use vdx_tests::daemon::free_port;
use vdx_tests::measure::{cpu_secs, env_or, machine_busy_secs, memory_kib, percentile};

use super::{fill, millis, quantiles, Sampler, Settings};

/// The numbers both sides are compared on (NaN where a phase did not run).
pub(super) struct Figures {
    pub(super) latency_p50: f64,
    pub(super) latency_p99: f64,
    /// Milliseconds of CPU per item, all processes of the system under test.
    pub(super) latency_cpu_ms: f64,
    pub(super) big_mbs: f64,
    /// End to end with the files streamed with the request (vdx only).
    pub(super) big_stream_mbs: f64,
    /// From queued (vdx: submitted) to delivered, MB/s.
    pub(super) big_delivery_mbs: f64,
    pub(super) big_cpu_per_gib: f64,
    pub(super) rate_submitted: f64,
    pub(super) rate_delivered: f64,
    pub(super) rate_cpu_ms: f64,
    /// VmHWM of the whole run, MiB: sending process, receiving process.
    pub(super) hwm: [f64; 2],
}

impl Default for Figures {
    fn default() -> Self {
        Self {
            latency_p50: f64::NAN,
            latency_p99: f64::NAN,
            latency_cpu_ms: f64::NAN,
            big_mbs: f64::NAN,
            big_stream_mbs: f64::NAN,
            big_delivery_mbs: f64::NAN,
            big_cpu_per_gib: f64::NAN,
            rate_submitted: f64::NAN,
            rate_delivered: f64::NAN,
            rate_cpu_ms: f64::NAN,
            hwm: [f64::NAN; 2],
        }
    }
}

/// Whether to run the NNCP side: not with `BENCH_NNCP=0`, and not without `nncp-file` (said why).
pub(super) fn wanted() -> bool {
    if env_or("BENCH_NNCP", 1u8) == 0 {
        eprintln!("bench: NNCP side skipped (BENCH_NNCP=0)");
        return false;
    }
    let found = Command::new("nncp-file")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!(
            "bench: NNCP side skipped: nncp-file is not on PATH (scripts/install-deps.sh installs \
             Debian's nncp)"
        );
    }
    found
}

/// A running NNCP process, killed when dropped (also when the benchmark panics).
struct Running {
    child: Child,
    what: &'static str,
    log: PathBuf,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics with its output if it has exited: the session must stay up for the whole run.
    fn check(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{} exited with {status}:\n{}",
                self.what,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The public and private keys `nncp-cfgnew` made for one node (its `self` block).
fn new_keys() -> serde_json::Map<String, Value> {
    let out = Command::new("nncp-cfgnew")
        .arg("-nocomments")
        .output()
        .expect("nncp-cfgnew runs");
    assert!(out.status.success(), "nncp-cfgnew failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let block = text
        .split_once("self: {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(block, _)| block)
        .expect("nncp-cfgnew printed a self block");
    let mut keys = serde_json::Map::new();
    for line in block.lines() {
        if let Some((key, value)) = line.trim().split_once(": ") {
            keys.insert(key.to_owned(), Value::String(value.trim().to_owned()));
        }
    }
    for key in [
        "id", "exchpub", "exchprv", "signpub", "signprv", "noisepub", "noiseprv",
    ] {
        assert!(keys.contains_key(key), "nncp-cfgnew gave no {key}");
    }
    keys
}

fn public(keys: &serde_json::Map<String, Value>) -> Value {
    json!({
        "id": keys["id"],
        "exchpub": keys["exchpub"],
        "signpub": keys["signpub"],
        "noisepub": keys["noisepub"],
    })
}

/// Notes when each file is renamed into a directory (NNCP's toss renames a file into `incoming`
/// after syncing it), from an inotify watch read by a thread.
struct Watcher {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    dir: PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The name that stops the watcher's thread.
const STOP: &str = ".bench-stop";

impl Watcher {
    fn start(dir: &Path) -> Self {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC).unwrap();
        inotify::add_watch(
            &fd,
            dir,
            inotify::WatchFlags::MOVED_TO | inotify::WatchFlags::CLOSE_WRITE,
        )
        .unwrap();
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let thread = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = vec![std::mem::MaybeUninit::uninit(); 64 << 10];
                let mut reader = inotify::Reader::new(&fd, &mut buf);
                loop {
                    let event = reader.next().unwrap();
                    let now = Instant::now();
                    assert!(
                        !event.events().contains(inotify::ReadFlags::QUEUE_OVERFLOW),
                        "inotify queue overflowed: deliveries were missed"
                    );
                    let Some(name) = event.file_name() else {
                        continue;
                    };
                    let name = name.to_string_lossy();
                    if name == STOP {
                        return;
                    }
                    if event.events().contains(inotify::ReadFlags::MOVED_TO) {
                        seen.lock().unwrap().insert(name.into_owned(), now);
                    }
                }
            })
        };
        Self {
            seen,
            dir: dir.to_owned(),
            thread: Some(thread),
        }
    }

    /// When each of `names` arrived, waiting until all have or `limit` has passed (checking
    /// that `alive` stay up); the missing ones are left out.
    fn wait(
        &self,
        names: &[String],
        limit: Duration,
        alive: &mut [&mut Running],
    ) -> HashMap<String, Instant> {
        let deadline = Instant::now() + limit;
        loop {
            {
                let seen = self.seen.lock().unwrap();
                if names.iter().all(|n| seen.contains_key(n)) || Instant::now() > deadline {
                    return names
                        .iter()
                        .filter_map(|n| seen.get(n).map(|t| (n.clone(), *t)))
                        .collect();
                }
            }
            for r in alive.iter_mut() {
                r.check();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = File::create(self.dir.join(STOP));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// CPU seconds of this process's reaped children (the `nncp-file` runs): `cutime` + `cstime`.
fn children_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .skip(13)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    fields.iter().sum::<u64>() as f64 / 100.0
}

/// CPU used since a mark: `nncp-call`, `nncp-daemon`, the `nncp-file` runs, this benchmark.
struct CpuMark {
    pids: [u32; 2],
    at: Instant,
    secs: [f64; 4],
}

impl CpuMark {
    fn new(call: u32, daemon: u32) -> Self {
        Self {
            pids: [call, daemon],
            at: Instant::now(),
            secs: Self::now([call, daemon]),
        }
    }

    fn now(pids: [u32; 2]) -> [f64; 4] {
        [
            cpu_secs(pids[0]),
            cpu_secs(pids[1]),
            children_cpu_secs(),
            cpu_secs(std::process::id()),
        ]
    }

    fn used(&self) -> [f64; 4] {
        let now = Self::now(self.pids);
        [0, 1, 2, 3].map(|i| now[i] - self.secs[i])
    }

    /// NNCP's processes together, and the text of the table's row.
    fn since(&self, per: f64, unit: &str) -> (f64, String) {
        let u = self.used();
        let nncp = u[0] + u[1] + u[2];
        let (scale, what) = if unit == "GiB" {
            (1.0, "CPU-s")
        } else {
            (1000.0, "ms")
        };
        let text = format!(
            "{:.1} / {:.1} / {:.1} / {:.1} s in {:.1} s ({:.2} {what} per {unit}, NNCP's three)",
            u[0],
            u[1],
            u[2],
            u[3],
            self.at.elapsed().as_secs_f64(),
            nncp * scale / per
        );
        (nncp * scale / per, text)
    }
}

/// Two NNCP nodes and their session.
struct Nodes {
    dir: PathBuf,
    g22_cfg: PathBuf,
    incoming: PathBuf,
    tx: PathBuf,
    call: Running,
    daemon: Running,
}

impl Nodes {
    fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let (g22, h41) = (new_keys(), new_keys());
        let port = free_port();
        let incoming = dir.join("h41-incoming");
        std::fs::create_dir_all(&incoming).unwrap();
        let config = |me: &serde_json::Map<String, Value>, name: &str, peer: &str, neigh: Value| {
            json!({
                "spool": dir.join(format!("{name}-spool")),
                "log": dir.join(format!("{name}.log")),
                "self": me,
                "neigh": { "self": public(me), peer: neigh },
            })
        };
        let mut to_h41 = public(&h41);
        to_h41["addrs"] = json!({ "lo": format!("127.0.0.1:{port}") });
        to_h41["onlinedeadline"] = json!(3600);
        let mut to_g22 = public(&g22);
        to_g22["incoming"] = json!(incoming);
        to_g22["onlinedeadline"] = json!(3600);
        let (g22_cfg, h41_cfg) = (dir.join("g22.hjson"), dir.join("h41.hjson"));
        for (path, value) in [
            (&g22_cfg, config(&g22, "g22", "h41", to_h41)),
            (&h41_cfg, config(&h41, "h41", "g22", to_g22)),
        ] {
            std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
            std::fs::create_dir_all(value["spool"].as_str().unwrap()).unwrap();
        }
        let spawn = |what: &'static str, args: &[&str], log: &str| {
            let log = dir.join(log);
            let out = File::create(&log).unwrap();
            let child = Command::new(what)
                .args(args)
                .env_remove("NNCPNOSYNC")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("{what} starts: {e}"));
            Running { child, what, log }
        };
        let bind = format!("127.0.0.1:{port}");
        let h41_path = h41_cfg.to_str().unwrap();
        let mut daemon = spawn(
            "nncp-daemon",
            &["-cfg", h41_path, "-bind", &bind, "-autotoss", "-quiet"],
            "nncp-daemon.out",
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&bind).is_err() {
            daemon.check();
            assert!(Instant::now() < deadline, "nncp-daemon did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        let call = spawn(
            "nncp-call",
            &[
                "-cfg",
                g22_cfg.to_str().unwrap(),
                "-onlinedeadline",
                "3600",
                "-quiet",
                "h41",
            ],
            "nncp-call.out",
        );
        let tx = dir
            .join("g22-spool")
            .join(h41["id"].as_str().unwrap())
            .join("tx");
        Self {
            dir: dir.to_owned(),
            g22_cfg,
            incoming,
            tx,
            call,
            daemon,
        }
    }

    /// `nncp-file SRC h41:NAME`: queued (encrypted and signed into g22's spool) when it returns.
    fn file(&self, src: &Path, name: &str) -> Command {
        let mut cmd = Command::new("nncp-file");
        cmd.arg("-cfg")
            .arg(&self.g22_cfg)
            .arg("-quiet")
            .arg(src)
            .arg(format!("h41:{name}"))
            .env_remove("NNCPNOSYNC")
            .stdin(Stdio::null());
        cmd
    }

    /// Queues a fresh `len`-byte document as `NAME` (its source written to the run's directory).
    fn queue(&self, name: &str, n: u64, len: usize) {
        let src = self.dir.join("src").join(name);
        std::fs::write(&src, super::document(n, len)).unwrap();
        let out = self.file(&src, name).output().expect("nncp-file runs");
        assert!(
            out.status.success(),
            "nncp-file {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&src);
    }

    /// Packets still in g22's outbound spool (NNCP removes one when h41 confirmed it).
    fn outbound(&self) -> usize {
        std::fs::read_dir(&self.tx).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .count()
        })
    }
}

/// Runs NNCP's phases in `dir`; prints its table, then the two sides side by side.
pub(super) fn run(s: &Settings, dir: &Path, vdx: &Figures) {
    let mut nodes = Nodes::start(dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let watcher = Watcher::start(&nodes.incoming);
    let sampler = Sampler::start([nodes.call.pid(), nodes.daemon.pid()], "idle");
    let whole = CpuMark::new(nodes.call.pid(), nodes.daemon.pid());
    let busy_before = machine_busy_secs();
    let mut fig = Figures::default();
    let mut rows: Vec<[String; 3]> = Vec::new();
    let mut row = |phase: &str, measure: String, result: String| {
        eprintln!("bench: nncp: {phase}: {measure}: {result}");
        rows.push([phase.to_owned(), measure, result]);
    };
    let rss = |peak: [f64; 2]| format!("{:.1} / {:.1} MiB", peak[0], peak[1]);
    let mut sequence = 1u64 << 40; // Distinct from vdx's documents.

    std::thread::sleep(Duration::from_secs(2));
    row(
        "idle",
        "RSS after start, nncp-call / nncp-daemon".into(),
        rss(sampler.peak("idle").unwrap_or([f64::NAN; 2])),
    );

    sampler.phase("warm-up");
    let started = Instant::now();
    nodes.queue("warm-up", sequence, s.doc_kib * 1024);
    sequence += 1;
    let warm = watcher.wait(
        &["warm-up".to_owned()],
        Duration::from_secs(30),
        &mut [&mut nodes.call, &mut nodes.daemon],
    );
    assert_eq!(warm.len(), 1, "the warm-up item was not tossed in 30 s");
    eprintln!(
        "bench: nncp: warm-up: first item tossed in {:.0} ms (the session was opening)",
        (warm["warm-up"] - started).as_secs_f64() * 1000.0
    );

    if s.has("latency") {
        sampler.phase("latency");
        let cpu = CpuMark::new(nodes.call.pid(), nodes.daemon.pid());
        let n = ((s.rate * s.latency_secs).round() as usize).max(1);
        let begin = Instant::now() + Duration::from_millis(10);
        let mut lag = Duration::ZERO;
        let queued: Vec<(String, Instant, Instant)> = std::thread::scope(|scope| {
            let mut runs = Vec::with_capacity(n);
            for i in 0..n {
                let due = begin + Duration::from_secs_f64(i as f64 / s.rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                lag = lag.max(due.elapsed());
                let (nodes, number) = (&nodes, sequence);
                sequence += 1;
                runs.push(scope.spawn(move || {
                    let name = format!("lat{i}");
                    nodes.queue(&name, number, s.doc_kib * 1024);
                    (name, due, Instant::now())
                }));
            }
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let names: Vec<String> = queued.iter().map(|q| q.0.clone()).collect();
        let seen = watcher.wait(
            &names,
            Duration::from_secs(60),
            &mut [&mut nodes.call, &mut nodes.daemon],
        );
        assert_eq!(seen.len(), n, "{} of {n} items not tossed", n - seen.len());
        let e2e = millis(queued.iter().map(|(name, due, _)| seen[name] - *due));
        let submit = millis(queued.iter().map(|(_, due, done)| *done - *due));
        fig.latency_p50 = percentile(&e2e, 0.5);
        fig.latency_p99 = percentile(&e2e, 0.99);
        row(
            "latency",
            format!(
                "{} KiB at {}/s for {} s ({n}), tossed p50 / p90 / p99 / max",
                s.doc_kib, s.rate, s.latency_secs
            ),
            quantiles(&e2e),
        );
        row(
            "latency",
            "nncp-file returned (queued) p50 / p90 / p99 / max".into(),
            quantiles(&submit),
        );
        eprintln!(
            "bench: nncp: latency: most late start {:.1} ms (open loop)",
            lag.as_secs_f64() * 1000.0
        );
        let (per, text) = cpu.since(n as f64, "item");
        fig.latency_cpu_ms = per;
        row(
            "latency",
            "CPU nncp-call / nncp-daemon / nncp-file runs / bench".into(),
            text,
        );
        row(
            "latency",
            "peak RSS nncp-call / nncp-daemon".into(),
            rss(sampler.peak("latency").unwrap_or([f64::NAN; 2])),
        );
    }

    if s.has("big") {
        sampler.phase("big (generating)");
        let size = s.big_mib << 20;
        let path = dir.join("src").join("big.bin");
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
        sampler.phase("big");
        let cpu = CpuMark::new(nodes.call.pid(), nodes.daemon.pid());
        let t0 = Instant::now();
        let mut file = nodes
            .file(&path, "big")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nncp-file runs");
        let mut file_hwm = 0;
        let status = loop {
            if let Some(status) = file.try_wait().unwrap() {
                break status;
            }
            file_hwm = file_hwm.max(memory_kib(file.id()).1);
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "nncp-file big: {status}");
        let t1 = Instant::now();
        let deadline = t1 + Duration::from_secs(600);
        while nodes.outbound() > 0 {
            nodes.call.check();
            assert!(
                Instant::now() < deadline,
                "the big file was not sent in 600 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let t2 = Instant::now();
        let seen = watcher.wait(
            &["big".to_owned()],
            deadline.saturating_duration_since(Instant::now()),
            &mut [&mut nodes.call, &mut nodes.daemon],
        );
        let t3 = *seen
            .get("big")
            .expect("the big file was not tossed in 600 s");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(nodes.incoming.join("big"));
        let step = |from: Instant, to: Instant| {
            let secs = to.saturating_duration_since(from).as_secs_f64();
            (secs, size as f64 / secs.max(1e-9) / 1e6)
        };
        let mut big_row = |measure: &str, (secs, mbs): (f64, f64)| {
            row(
                "big",
                format!("{} MiB: {measure}", s.big_mib),
                format!("{mbs:.0} MB/s ({secs:.1} s)"),
            );
        };
        big_row(
            "queue (nncp-file: encrypt + sign into the spool)",
            step(t0, t1),
        );
        big_row(
            "transfer (queued → gone from the sender's spool)",
            step(t1, t2),
        );
        let delivery = step(t1, t3);
        fig.big_delivery_mbs = delivery.1;
        big_row("delivery (queued → tossed into incoming)", delivery);
        let end = step(t0, t3);
        fig.big_mbs = end.1;
        big_row("end to end (nncp-file start → tossed)", end);
        let (per, text) = cpu.since(size as f64 / f64::from(1u32 << 30), "GiB");
        fig.big_cpu_per_gib = per;
        row(
            "big",
            "CPU nncp-call / nncp-daemon / nncp-file / bench".into(),
            text,
        );
        let peak = sampler.peak("big").unwrap_or([f64::NAN; 2]);
        row(
            "big",
            "peak RSS nncp-call / nncp-daemon; nncp-file".into(),
            format!("{}; {:.1} MiB", rss(peak), file_hwm as f64 / 1024.0),
        );
    }

    if s.has("rate") {
        sampler.phase("rate");
        let cpu = CpuMark::new(nodes.call.pid(), nodes.daemon.pid());
        let begin = Instant::now();
        let stop = begin + Duration::from_secs_f64(s.rate_secs);
        let first = sequence;
        let queued: Vec<(String, Instant, Instant)> = std::thread::scope(|scope| {
            let runners: Vec<_> = (0..s.concurrency)
                .map(|r| {
                    let nodes = &nodes;
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        let mut k = 0u64;
                        while Instant::now() < stop {
                            let name = format!("rate{r}-{k}");
                            let start = Instant::now();
                            nodes.queue(&name, first + k * 64 + r as u64, s.doc_kib * 1024);
                            done.push((name, start, Instant::now()));
                            k += 1;
                        }
                        done
                    })
                })
                .collect();
            runners
                .into_iter()
                .flat_map(|r| r.join().unwrap())
                .collect()
        });
        let window = begin.elapsed();
        let names: Vec<String> = queued.iter().map(|q| q.0.clone()).collect();
        let seen = watcher.wait(&names, s.drain, &mut [&mut nodes.call, &mut nodes.daemon]);
        let lost = names.len() - seen.len();
        let secs = window.as_secs_f64();
        let submitted = queued.len() as f64 / secs;
        let in_window = seen
            .values()
            .filter(|t| t.duration_since(begin) <= window)
            .count();
        let last = seen
            .values()
            .map(|t| t.duration_since(begin))
            .max()
            .unwrap_or_default();
        let overall = seen.len() as f64 / last.as_secs_f64().max(1e-9);
        fig.rate_submitted = submitted;
        fig.rate_delivered = overall;
        row(
            "rate",
            format!(
                "{} nncp-file runners × {secs:.1} s: queued ({}) per s",
                s.concurrency,
                queued.len()
            ),
            format!("{submitted:.0}/s"),
        );
        row(
            "rate",
            "tossed per s: while queueing / all (until the last)".into(),
            format!(
                "{:.0}/s / {overall:.0}/s (last after {:.1} s{})",
                in_window as f64 / secs,
                last.as_secs_f64(),
                if lost > 0 {
                    format!(", {lost} NOT tossed after {} s more", s.drain.as_secs())
                } else {
                    String::new()
                }
            ),
        );
        let submit = millis(queued.iter().map(|(_, start, done)| *done - *start));
        let e2e = millis(
            queued
                .iter()
                .filter_map(|(name, start, _)| seen.get(name).map(|t| *t - *start)),
        );
        row(
            "rate",
            "under load: nncp-file returned p50 / p99, tossed p50 / p99".into(),
            format!(
                "{:.0} / {:.0} ms, {:.0} / {:.0} ms",
                percentile(&submit, 0.5),
                percentile(&submit, 0.99),
                percentile(&e2e, 0.5),
                percentile(&e2e, 0.99)
            ),
        );
        let (per, text) = cpu.since(seen.len().max(1) as f64, "item");
        fig.rate_cpu_ms = per;
        row(
            "rate",
            "CPU nncp-call / nncp-daemon / nncp-file runs / bench (until all tossed)".into(),
            text,
        );
        row(
            "rate",
            "peak RSS nncp-call / nncp-daemon".into(),
            rss(sampler.peak("rate").unwrap_or([f64::NAN; 2])),
        );
    }

    fig.hwm = sampler.high_water();
    row("all", "VmHWM nncp-call / nncp-daemon".into(), rss(fig.hwm));
    nodes.call.check();
    nodes.daemon.check();

    let used = whole.used();
    let ours: f64 = used.iter().sum();
    let seconds = whole.at.elapsed().as_secs_f64();
    let others = (machine_busy_secs() - busy_before - ours).max(0.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!();
    println!(
        "NNCP ({}) on the same work: nncp-daemon -autotoss and one nncp-call session on loopback, \
         spools in {}; {seconds:.0} s; NNCP and this client used {ours:.0} CPU-s, other processes \
         {others:.0} CPU-s ({:.0} % of the machine)",
        nncp_version(),
        dir.display(),
        others * 100.0 / (seconds * cores as f64)
    );
    println!();
    println!("| phase | measure | result |");
    println!("|---|---|---:|");
    for [phase, measure, result] in &rows {
        println!("| {phase} | {measure} | {result} |");
    }
    drop(sampler);
    drop(watcher);
    compare(vdx, &fig);
}

/// "NNCP version 8.8.2", from `nncp-file -version`.
fn nncp_version() -> String {
    Command::new("nncp-file")
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .and_then(|l| l.split(" built").next().map(str::to_owned))
        .unwrap_or_else(|| "NNCP".into())
}

/// The side-by-side table: each measure, both figures, and vdx ÷ NNCP with who is ahead.
fn compare(vdx: &Figures, nncp: &Figures) {
    let lines: [(&str, f64, f64, bool, &str); 12] = [
        (
            "latency: delivered p50 (ms)",
            vdx.latency_p50,
            nncp.latency_p50,
            false,
            "1",
        ),
        (
            "latency: delivered p99 (ms)",
            vdx.latency_p99,
            nncp.latency_p99,
            false,
            "1",
        ),
        (
            "latency: CPU per item (ms)",
            vdx.latency_cpu_ms,
            nncp.latency_cpu_ms,
            false,
            "2",
        ),
        (
            "big: end to end (MB/s)",
            vdx.big_mbs,
            nncp.big_mbs,
            true,
            "0",
        ),
        (
            "big: end to end, vdx streaming its request (MB/s)",
            vdx.big_stream_mbs,
            nncp.big_mbs,
            true,
            "0",
        ),
        (
            "big: queued (vdx: submitted) → delivered (MB/s)",
            vdx.big_delivery_mbs,
            nncp.big_delivery_mbs,
            true,
            "0",
        ),
        (
            "big: CPU per GiB (CPU-s)",
            vdx.big_cpu_per_gib,
            nncp.big_cpu_per_gib,
            false,
            "1",
        ),
        (
            "rate: submitted per s",
            vdx.rate_submitted,
            nncp.rate_submitted,
            true,
            "0",
        ),
        (
            "rate: delivered per s (until the last)",
            vdx.rate_delivered,
            nncp.rate_delivered,
            true,
            "0",
        ),
        (
            "rate: CPU per item (ms)",
            vdx.rate_cpu_ms,
            nncp.rate_cpu_ms,
            false,
            "2",
        ),
        (
            "VmHWM sending process (MiB)",
            vdx.hwm[0],
            nncp.hwm[0],
            false,
            "1",
        ),
        (
            "VmHWM receiving process (MiB)",
            vdx.hwm[1],
            nncp.hwm[1],
            false,
            "1",
        ),
    ];
    println!();
    println!(
        "Side by side (vdx delivered = signed receipt back at the sender; NNCP delivered = file \
         tossed into the receiver's incoming, no receipt; CPU = both daemons for vdx, call + \
         daemon + nncp-file runs for NNCP)"
    );
    println!();
    println!("| measure | vdx | NNCP | vdx ÷ NNCP |");
    println!("|---|---:|---:|---:|");
    for (measure, v, n, higher_better, digits) in lines {
        let digits: usize = digits.parse().unwrap();
        let show = |x: f64| {
            if x.is_nan() {
                "—".to_owned()
            } else {
                format!("{x:.digits$}")
            }
        };
        let ratio = v / n;
        let verdict = if !ratio.is_finite() {
            "—".to_owned()
        } else {
            let ahead = if (ratio > 1.0) == higher_better {
                "vdx ahead"
            } else {
                "NNCP ahead"
            };
            // Two significant digits at least: latencies differ a hundredfold.
            let digits = if ratio < 0.1 { 4 } else { 2 };
            format!("{ratio:.digits$} ({ahead})")
        };
        println!("| {measure} | {} | {} | {verdict} |", show(v), show(n));
    }
}
