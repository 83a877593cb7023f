//! What the benchmarks measure processes and the machine with (`tests/benches/`): memory and CPU
//! from `/proc`, percentiles, settings from the environment.

use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Cargo's target directory (`CARGO_TARGET_DIR`, else the workspace's `target/`): where binaries
/// are built and where benchmarks keep their runs by default.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A benchmark run's directory, removed at the end unless kept: when asked, when the user named
/// it, or when the run failed (its files and logs are what explains the failure).
pub struct RunDir {
    /// Where the run's files go.
    pub path: PathBuf,
    keep: bool,
}

impl RunDir {
    /// A new `run-PID-MILLIS` directory under `base`.
    pub fn fresh(base: &Path, keep: bool) -> Self {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Self::create(
            base.join(format!("run-{}-{stamp}", std::process::id())),
            keep,
        )
    }

    /// The directory the user named (created if needed, and empty): always kept.
    pub fn given(path: PathBuf) -> Self {
        Self::create(path, true)
    }

    fn create(path: PathBuf, keep: bool) -> Self {
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        let empty = std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none());
        assert!(empty, "{} is not empty", path.display());
        Self { path, keep }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.keep || std::thread::panicking() {
            eprintln!("bench: files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A setting from the environment (`_` allowed as a digit separator), else `default`; a value
/// that does not parse stops the benchmark with its name.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a valid value")),
        _ => default,
    }
}

/// `VmRSS` and `VmHWM` of a process, in KiB (0 when it is gone).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) a process has used so far; `USER_HZ` is 100 on Linux.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    fields.iter().sum::<u64>() as f64 / 100.0
}

/// CPU seconds the whole machine has been busy (all cores; from `/proc/stat`, `USER_HZ` 100):
/// what tells a reader whether other work disturbed a run.
pub fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum::<u64>() as f64
        / 100.0
}

/// Nearest-rank percentile of sorted values (NaN for none).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The word the tables put after a target.
pub fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
        // CPU time grows while we spin (clock ticks are 10 ms).
        let (pid, start) = (std::process::id(), cpu_secs(std::process::id()));
        let spinning = std::time::Instant::now();
        while cpu_secs(pid) <= start && spinning.elapsed().as_secs() < 5 {
            std::hint::black_box((0..10_000u64).sum::<u64>());
        }
        assert!(cpu_secs(pid) > start);
        assert!(memory_kib(std::process::id()).0 > 0);
    }
}
