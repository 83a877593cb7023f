//! Ledger benchmark: the tamper-evident ledger of the node's store (`node/src/store/ledger.rs`),
//! through the public API of [`Store`], durable as in production (every `record` returns once its
//! entry is on disk, the fsync shared by the group commit), on the disk by default.
//!
//! ```sh
//! scripts/bench-ledger.sh                                  # also times `vdx audit verify`
//! LEDGER_ENTRIES=100000 cargo bench -p vdx-tests --bench ledger
//! ```
//!
//! Phases, in this order, while a thread signs a real checkpoint (ECDSA P-256, dev CA) at every
//! multiple of 64 entries once it is durable (the most the node's schedule signs):
//! - `append`: for each K in `BENCH_APPEND_THREADS` (1,16,64), K threads call `record` for
//!   `BENCH_APPEND_SECS` (5) with the events the node writes for a received or registered
//!   dispatch (a 16-byte id, actor `peer:000.00.00.G22`, from/to/size/sealed-sha256):
//!   appends/s, per-append latency p50/p99/max, peak RSS.
//! - `fill`: `BENCH_FILL_THREADS` (8; more only add contention on 2 cores) threads append the same way until the ledger has
//!   `LEDGER_ENTRIES` (1,000,000) entries: time, rate, peak RSS, size of the store on disk.
//! - `proofs`: at size N, `BENCH_PROOFS` (10,000) inclusion proofs of random indexes and as many
//!   consistency proofs between random sizes, each timed alone (p50/p99/max µs) and then checked
//!   with `merkle::verify_inclusion` / `verify_consistency` against roots from `ledger_root`
//!   (every proof, not a sample); roots of those random sizes are timed too.
//! - `export`: the bundle of all N entries into `BENCH_DIR/bundle` as the node exports one:
//!   checkpoints at N-1 and N signed, every checkpoint kept, the entries streamed, `chain.pem`
//!   (signing certificate, then the CA): time and size. The CA certificate goes to
//!   `BENCH_DIR/ca.pem` for `vdx audit verify --ca`.
//!
//! Peak RSS is the process's VmHWM, reset at each phase through `/proc/self/clear_refs` (where
//! the kernel refuses, it is the peak since the start). Files live in `BENCH_DIR` (created; must
//! be empty; kept), default a fresh directory under the target directory's `bench-ledger/` (on
//! disk), removed at the end unless `BENCH_KEEP=1` or the run failed. Progress goes to standard
//! error, the Markdown table (measure | result | target) to standard output, last, so that
//! `scripts/bench-ledger.sh` can append the rows of `vdx audit verify` to it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark fails loudly.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use openssl::x509::X509;
use vdx_crypto::KeyKind;
use vdx_node::store::{Event, Store};
use vdx_pki::{Ca, IssueRequest, Issued, Profile};
use vdx_protocol::bundle::BundleWriter;
use vdx_protocol::ledger::{Actor, Checkpoint, EntryKind};
use vdx_protocol::{hex, merkle, OrganCode};
use vdx_tests::measure::{
    cpu_secs, env_or, machine_busy_secs, memory_kib, met, percentile, target_dir, RunDir,
};

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
/// The node signs a checkpoint at least every this many entries (`node/src/checkpoints.rs`).
const CHECKPOINT_EVERY: u64 = 64;

/// What to run, from the environment.
struct Settings {
    entries: u64,
    append_threads: Vec<usize>,
    append_secs: f64,
    fill_threads: usize,
    proofs: usize,
    dir: Option<PathBuf>,
    base: PathBuf,
    keep: bool,
}

impl Settings {
    fn from_env() -> Self {
        let threads: String = env_or("BENCH_APPEND_THREADS", "1,16,64".to_owned());
        let settings = Self {
            entries: env_or("LEDGER_ENTRIES", 1_000_000),
            append_threads: threads
                .split(',')
                .map(|k| k.trim().parse().expect("BENCH_APPEND_THREADS: numbers"))
                .collect(),
            append_secs: env_or("BENCH_APPEND_SECS", 5.0),
            fill_threads: env_or("BENCH_FILL_THREADS", 8),
            proofs: env_or("BENCH_PROOFS", 10_000),
            dir: std::env::var_os("BENCH_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            base: target_dir().join("bench-ledger"),
            keep: env_or("BENCH_KEEP", 0u8) == 1,
        };
        assert!(settings.entries >= 2, "LEDGER_ENTRIES must be at least 2");
        assert!(
            settings.append_threads.iter().all(|k| *k >= 1),
            "BENCH_APPEND_THREADS"
        );
        assert!(settings.fill_threads >= 1, "BENCH_FILL_THREADS");
        assert!(settings.proofs >= 1, "BENCH_PROOFS");
        settings
    }
}

/// The node's signing identity from a fresh dev CA: what checkpoints are signed with.
struct Signer {
    issued: Issued,
    origin: String,
    chain_pem: Vec<u8>,
    ca_pem: Vec<u8>,
}

impl Signer {
    fn create() -> Self {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let issued = ca
            .issue(&IssueRequest {
                org: H41.into(),
                name: "Bench H41".into(),
                kind: KeyKind::EcP256,
                profile: Profile::Separate,
                not_before: None,
                days: 30,
            })
            .unwrap();
        let ca_pem = ca.cert().to_pem().unwrap();
        let mut signer = Self {
            issued,
            origin: Checkpoint::origin_of(&H41.parse().unwrap()),
            chain_pem: Vec::new(),
            ca_pem,
        };
        signer.chain_pem = signer.cert().to_pem().unwrap();
        signer.chain_pem.extend_from_slice(&signer.ca_pem);
        signer
    }

    fn cert(&self) -> X509 {
        self.issued
            .roles()
            .into_iter()
            .find(|(role, _, _)| *role == "sign")
            .map(|(_, cert, _)| cert.to_owned())
            .unwrap()
    }

    fn sign(&self, checkpoint: &Checkpoint) -> Result<String, vdx_crypto::Error> {
        let (_, cert, key) = self
            .issued
            .roles()
            .into_iter()
            .find(|(role, _, _)| *role == "sign")
            .unwrap();
        vdx_crypto::checkpoint::sign(checkpoint, cert, key)
    }

    /// Signs (once) the checkpoint of the first `size` entries.
    fn checkpoint_at(&self, store: &Store, size: u64) {
        store
            .checkpoint_at(&self.origin, size, |c| self.sign(c))
            .unwrap_or_else(|e| panic!("checkpoint at {size}: {e}"));
    }
}

/// Signs a checkpoint at every multiple of 64 entries once it is durable, until stopped.
struct Checkpointer {
    stop: Arc<AtomicBool>,
    signed: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(store: Arc<Store>, signer: Arc<Signer>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let signed = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, signed) = (stop.clone(), signed.clone());
            std::thread::spawn(move || {
                let mut next = CHECKPOINT_EVERY;
                loop {
                    let stopping = stop.load(Ordering::Relaxed);
                    let durable = store.durable_ledger_size();
                    while next <= durable {
                        signer.checkpoint_at(&store, next);
                        signed.fetch_add(1, Ordering::Relaxed);
                        next += CHECKPOINT_EVERY;
                    }
                    if stopping {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Self {
            stop,
            signed,
            thread: Some(thread),
        }
    }

    /// Signs what is left to sign, then stops; the number of checkpoints signed.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.signed.load(Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A xorshift generator: random indexes and ids without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform enough in `0..n` for a benchmark.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The event the node records for dispatch number `n / 2`: received, then registered (the same
/// id: the node indexes the entries about each transfer).
fn event(n: u64, peer: &OrganCode) -> Event {
    let dispatch = n / 2;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ dispatch.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&rng.next().to_be_bytes());
    id[8..].copy_from_slice(&rng.next().to_be_bytes());
    let mut digest = [0u8; 32];
    for chunk in digest.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_be_bytes());
    }
    let kind = if n.is_multiple_of(2) {
        EntryKind::Received
    } else {
        EntryKind::Registered
    };
    Event::new(kind, Some(id), Actor::Peer(peer.clone()))
        .field("from", G22)
        .field("to", H41)
        .field("size", 10_240 + rng.below(1 << 20))
        .field("sealed-sha256", hex::encode(&digest))
}

/// Durable appends of each thread (latencies in ms), by `threads` threads calling `record` until
/// `deadline`, or (with `count`) until the shared counter reaches it.
fn append(
    store: &Arc<Store>,
    threads: usize,
    deadline: Option<Instant>,
    count: Option<u64>,
    progress: bool,
) -> (Vec<f64>, Duration) {
    let next = Arc::new(AtomicU64::new(store.ledger_size().unwrap()));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (store, next, barrier) = (store.clone(), next.clone(), barrier.clone());
            std::thread::spawn(move || {
                let peer: OrganCode = G22.parse().unwrap();
                let mut latencies = Vec::new();
                barrier.wait();
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if count.is_some_and(|c| n >= c) {
                        break;
                    }
                    let event = event(n, &peer);
                    let t = Instant::now();
                    store.record(&event).unwrap();
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let reporter = progress.then(|| {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let first = store.ledger_size().unwrap_or(0);
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() >= Duration::from_secs(10) {
                    last = Instant::now();
                    let size = store.ledger_size().unwrap_or(0);
                    let secs = start.elapsed().as_secs_f64();
                    eprintln!(
                        "bench: fill: {size} entries after {secs:.0} s ({:.0}/s), VmRSS {:.0} MiB",
                        (size - first) as f64 / secs,
                        memory_kib(std::process::id()).0 as f64 / 1024.0
                    );
                }
            }
        })
    });
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.join().unwrap());
    }
    let took = start.elapsed();
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        r.join().unwrap();
    }
    latencies.sort_by(f64::total_cmp);
    (latencies, took)
}

/// Starts a new peak: VmHWM back to the current RSS. False where the kernel does not allow it.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak RSS since the last reset, MiB.
fn peak_mib() -> f64 {
    memory_kib(std::process::id()).1 as f64 / 1024.0
}

/// The file system type `path` lives on (from `/proc/self/mounts`, longest mount point).
fn fs_type(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "unknown".to_owned(), |(_, kind)| kind)
}

/// Bytes allocated on disk under `path`.
fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.flatten().map(|e| disk_bytes(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.blocks() * 512
    }
}

/// Bytes of the files under `path` (their lengths).
fn file_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn micros(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// "p50 / p99 / max UNIT" of sorted values.
fn quantiles(sorted: &[f64], unit: &str) -> String {
    format!(
        "{:.1} / {:.1} / {:.1} {unit}",
        percentile(sorted, 0.50),
        percentile(sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN)
    )
}

/// Thousands separated by commas.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() {
    let s = Settings::from_env();
    let work = match &s.dir {
        Some(dir) => RunDir::given(dir.clone()),
        None => RunDir::fresh(&s.base, s.keep),
    };
    let dir = work.path.clone();
    let kind = fs_type(&dir);
    if kind == "tmpfs" || kind == "ramfs" {
        eprintln!(
            "bench: WARNING: {} is on {kind}: fsync costs nothing there",
            dir.display()
        );
    }
    let began = Instant::now();
    let (cpu_before, busy_before) = (cpu_secs(std::process::id()), machine_busy_secs());
    let peaks_reset = reset_peak();
    let store = Arc::new(
        Store::open_tenant(&dir.join("store"), &"000.00.00.G22".parse().unwrap()).unwrap(),
    );
    let signer = Arc::new(Signer::create());
    std::fs::write(dir.join("ca.pem"), &signer.ca_pem).unwrap();
    let checkpointer = Checkpointer::start(store.clone(), signer.clone());

    let mut rows: Vec<[String; 3]> = Vec::new();
    let mut row = |measure: String, result: String, target: String| {
        eprintln!("bench: {measure}: {result} {target}");
        rows.push([measure, result, target]);
    };
    let peak_label = if peaks_reset {
        "peak RSS"
    } else {
        "peak RSS since the start"
    };

    // Warm-up: the store's first entries, one writer.
    append(&store, 1, None, Some(200), false);

    for &threads in &s.append_threads {
        reset_peak();
        let deadline = Instant::now() + Duration::from_secs_f64(s.append_secs);
        let (latencies, took) = append(&store, threads, Some(deadline), None, false);
        let rate = latencies.len() as f64 / took.as_secs_f64();
        let target = if threads >= 16 {
            format!("≥ 5,000/s: {}", met(rate >= 5000.0))
        } else {
            String::new()
        };
        let plural = if threads == 1 { "" } else { "s" };
        row(
            format!(
                "durable appends, {threads} thread{plural} × {:.0} s ({} appends)",
                took.as_secs_f64(),
                count(latencies.len() as u64)
            ),
            format!("{}/s", count(rate.round() as u64)),
            target,
        );
        row(
            format!("  append latency p50 / p99 / max, {threads} thread{plural}; {peak_label}"),
            format!("{}; {:.0} MiB", quantiles(&latencies, "ms"), peak_mib()),
            String::new(),
        );
    }

    reset_peak();
    let before = store.ledger_size().unwrap();
    let n = s.entries.max(before);
    eprintln!(
        "bench: fill: {before} → {n} entries with {} threads",
        s.fill_threads
    );
    let (filled, took) = append(&store, s.fill_threads, None, Some(n), true);
    let signed = checkpointer.finish();
    assert_eq!(store.ledger_size().unwrap(), n);
    assert_eq!(store.durable_ledger_size(), n);
    row(
        format!(
            "fill {} → {} entries, {} threads ({} checkpoints signed alongside since the start)",
            count(before),
            count(n),
            s.fill_threads,
            count(signed)
        ),
        if filled.is_empty() {
            "nothing to fill".to_owned()
        } else {
            format!(
                "{:.1} s ({}/s; latency p99 {:.0} ms)",
                took.as_secs_f64(),
                count((filled.len() as f64 / took.as_secs_f64()).round() as u64),
                percentile(&filled, 0.99)
            )
        },
        String::new(),
    );
    drop(filled);
    row(
        format!("  fill: {peak_label}; store on disk"),
        format!(
            "{:.0} MiB; {:.0} MiB",
            peak_mib(),
            disk_bytes(&dir.join("store")) as f64 / f64::from(1 << 20)
        ),
        String::new(),
    );

    reset_peak();
    let t = Instant::now();
    let root = store.ledger_root(n).unwrap();
    let root_first = t.elapsed();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut inclusion = Vec::with_capacity(s.proofs);
    for _ in 0..s.proofs {
        let index = rng.below(n);
        let t = Instant::now();
        let proof = store.inclusion_proof(index, n).unwrap();
        inclusion.push(t.elapsed().as_secs_f64() * 1e6);
        let leaf = merkle::leaf_hash(&store.ledger_entry(index).unwrap());
        merkle::verify_inclusion(&leaf, index, n, &proof, &root)
            .unwrap_or_else(|e| panic!("inclusion proof of {index} at {n}: {e}"));
    }
    let mut consistency = Vec::with_capacity(s.proofs);
    let mut roots = Vec::with_capacity(2 * s.proofs);
    for _ in 0..s.proofs {
        let (a, b) = (1 + rng.below(n), 1 + rng.below(n));
        let (old, new) = (a.min(b), a.max(b));
        let t = Instant::now();
        let proof = store.consistency_proof(old, new).unwrap();
        consistency.push(t.elapsed().as_secs_f64() * 1e6);
        let mut root_of = |size| {
            let t = Instant::now();
            let root = store.ledger_root(size).unwrap();
            roots.push(t.elapsed().as_secs_f64() * 1e6);
            root
        };
        let (root1, root2) = (root_of(old), root_of(new));
        merkle::verify_consistency(old, new, &proof, &root1, &root2)
            .unwrap_or_else(|e| panic!("consistency proof {old} → {new}: {e}"));
    }
    let (inclusion, consistency, roots) = (micros(inclusion), micros(consistency), micros(roots));
    row(
        format!(
            "inclusion proof at {}, {} random indexes (all verified) p50 / p99 / max",
            count(n),
            count(s.proofs as u64)
        ),
        quantiles(&inclusion, "µs"),
        format!("< 1 ms: {}", met(percentile(&inclusion, 0.99) < 1000.0)),
    );
    row(
        format!(
            "consistency proof between random sizes ≤ {} (all verified) p50 / p99 / max",
            count(n)
        ),
        quantiles(&consistency, "µs"),
        String::new(),
    );
    row(
        format!(
            "root of the tree: at {} (first); random sizes p50 / p99 / max",
            count(n)
        ),
        format!(
            "{:.1} µs; {}",
            root_first.as_secs_f64() * 1e6,
            quantiles(&roots, "µs")
        ),
        String::new(),
    );
    row(
        format!("  proofs: {peak_label}"),
        format!("{:.0} MiB", peak_mib()),
        String::new(),
    );

    reset_peak();
    let bundle = dir.join("bundle");
    let t = Instant::now();
    for size in [n - 1, n] {
        signer.checkpoint_at(&store, size);
    }
    let notes = store.checkpoints(0, n).unwrap();
    let mut writer = BundleWriter::create(&bundle, 0, &store.ledger_prefix(0).unwrap()).unwrap();
    for entry in store.ledger_entries(0, n) {
        writer.entry(&entry.unwrap()).unwrap();
    }
    let end = writer
        .finish(notes.iter().map(|(_, note)| note), &signer.chain_pem)
        .unwrap();
    let exported = t.elapsed();
    assert_eq!(end, n);
    row(
        format!(
            "export bundle of {} entries + {} signed checkpoints",
            count(n),
            count(notes.len() as u64)
        ),
        format!(
            "{:.2} s, {:.0} MiB",
            exported.as_secs_f64(),
            file_bytes(&bundle) as f64 / f64::from(1 << 20)
        ),
        String::new(),
    );
    row(
        format!("  export: {peak_label}"),
        format!("{:.0} MiB", peak_mib()),
        String::new(),
    );

    drop(store);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let seconds = began.elapsed().as_secs_f64();
    let ours = cpu_secs(std::process::id()) - cpu_before;
    let others = (machine_busy_secs() - busy_before - ours).max(0.0);
    println!();
    println!(
        "vdx ledger benchmark: {} entries, {cores} cores, files in {} ({kind}); {seconds:.0} s; \
         this benchmark used {ours:.0} CPU-s, other processes {others:.0} CPU-s ({:.0} % of the \
         machine)",
        count(n),
        dir.display(),
        others * 100.0 / (seconds * cores as f64)
    );
    println!();
    println!("| measure | result | target |");
    println!("|---|---:|---|");
    for [measure, result, target] in &rows {
        println!("| {measure} | {result} | {target} |");
    }
    drop(work);
}
