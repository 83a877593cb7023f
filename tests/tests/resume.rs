//! A long transfer between two real `vdxd` processes on loopback, cut in the middle by `kill -9`,
//! resumes and completes: a generated sealed dispatch of more than 1 GiB survives the receiver's
//! crash, and a 64 MiB one the sender's. Resumed, not restarted: after the cut the receiver's
//! partial file never holds less than it did at the cut, and the sender reports that the transfer
//! which handed the dispatch over started at an offset past that prefix. The object arrives
//! byte-identical (compared by SHA-256, streaming: nothing here holds a whole object in memory),
//! the sender's record leaves the outbox, and both daemons stop cleanly on SIGTERM.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use vdx_node::store::MessageId;
use vdx_protocol::wire::{ObjectKind, Offer};
use vdx_tests::daemon::{homes, Daemon};
use vdx_tests::daemon::{store_of, tenant_files};
use vdx_tests::{words, Session};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// For each wait: generous, for a 2-core machine with a slow-ish disk and a receiver that fsyncs
/// as it goes.
const LIMIT: Duration = Duration::from_secs(300);

/// Which daemon the power cut hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Receiver,
    Sender,
}

#[test]
fn a_one_gib_transfer_cut_by_killing_the_receiver_resumes_and_completes() {
    cut_and_resume(MessageId([0x1b; 16]), GIB + 13, Cut::Receiver);
}

#[test]
fn a_transfer_cut_by_killing_the_sender_resumes_and_completes() {
    cut_and_resume(MessageId([0x64; 16]), 64 * MIB + 5, Cut::Sender);
}

/// The one place that builds an offer (the struct may grow).
fn offer(id: MessageId, size: u64, sealed_sha256: [u8; 32]) -> Offer {
    Offer {
        id: id.0,
        from: "000.00.00.G22".parse().unwrap(),
        to: "000.00.00.H41".parse().unwrap(),
        size,
        sealed_sha256,
        urgency: 2,
        expires: 0,
        kind: ObjectKind::Dispatch,
        hops: 0,
    }
}

fn cut_and_resume(id: MessageId, plain_len: u64, cut: Cut) {
    // Built first, so that the times printed below are the test's own.
    vdx_tests::vdx_bin();
    vdx_tests::vdxd_bin();
    let started = Instant::now();
    let s = Session::new();
    homes(&s, &[("g22", "000.00.00.G22"), ("h41", "000.00.00.H41")]);
    let (size, digest) = queue_sealed(&s, id, plain_len);
    let queued_at = Instant::now();

    let partial = s.path(&format!(
        "{}/spool/partial/{id}.part",
        tenant_files(&s, "h41")
    ));
    let object = s.path(&format!(
        "{}/spool/objects/{id}.p7m",
        tenant_files(&s, "h41")
    ));
    let receiver = Daemon::start(&s, "h41");
    let sender = Daemon::start(&s, "g22");
    wait_for_partial(&s, &partial, &object, size * 2 / 5);
    let (receiver, sender, held) = match cut {
        Cut::Receiver => {
            receiver.kill9();
            let held = held_at_cut(&partial, &object, size);
            (Daemon::start(&s, "h41"), sender, held)
        }
        Cut::Sender => {
            sender.kill9();
            let held = held_at_cut(&partial, &object, size);
            (receiver, Daemon::start(&s, "g22"), held)
        }
    };
    let cut_at = Instant::now();
    let arrived = wait_for_object(&s, &partial, &object, held);
    let done_at = Instant::now();

    let resumed_from = handed_over_from(&s, id);
    assert!(sender.stop().success(), "sender did not stop cleanly");
    assert!(receiver.stop().success(), "receiver did not stop cleanly");

    assert!(
        resumed_from >= held && resumed_from < size,
        "the transfer that completed started at {resumed_from}, the receiver held {held} of {size}"
    );
    assert_eq!(arrived.metadata().unwrap().len(), size);
    assert_eq!(sha256_of(arrived), digest, "received object differs");

    // Custody moved: out of the outbox, with the hop receipt. What the recipient then makes of the
    // content is not this test's business: a newer receiver opens it, finds no dispatch package
    // and says so in a notice, which marks the dispatch failed at the sender.
    let store = store_of(&s, "g22");
    assert!(store.outbox().unwrap().iter().all(|r| r.id != id));
    let record = store.get(id).unwrap().unwrap();
    let state = format!("{:?}", record.state);
    let status = state
        .split_once(" {")
        .map_or(state.as_str(), |(name, _)| name);
    assert!(
        state.contains("Sent")
            || state.contains("Delivered")
            || state.contains("refused by 000.00.00.H41"),
        "{state}"
    );
    eprintln!(
        "{cut:?} cut, {size} bytes: prepared in {:.1?}, cut at {held} after {:.1?}, \
         resumed from {resumed_from} and completed {:.1?} later; {:.1?} in all; \
         at the sender: {status}",
        queued_at - started,
        cut_at - queued_at,
        done_at - cut_at,
        started.elapsed(),
    );
}

/// Seals a generated document of `plain_len` bytes from g22 to h41 with the real `vdx seal`, and
/// queues it in g22's store (daemon down); the plaintext and the sealed copy are removed again, so
/// only the spool keeps the object. Returns the sealed size and SHA-256.
fn queue_sealed(s: &Session, id: MessageId, plain_len: u64) -> (u64, [u8; 32]) {
    // At most about two copies at once (plain and sealed, then sealed and spool, then spool and
    // the receiver's partial file), plus a margin: say so rather than fail half-way on ENOSPC.
    let stat = rustix::fs::statvfs(s.dir()).unwrap();
    let free = stat.f_bavail * stat.f_frsize;
    let needs = plain_len * 5 / 2 + (256 << 20);
    assert!(
        free >= needs,
        "this test needs {} MiB free under {}, which has {} MiB",
        needs >> 20,
        s.dir().display(),
        free >> 20
    );
    generate(&s.path("big.bin"), plain_len);
    s.vdx(&words(
        "seal --cert g22/keys/sign.pem --key g22/keys/sign.key --to h41/keys/enc.pem -o big.p7m big.bin",
    ))
    .ok();
    std::fs::remove_file(s.path("big.bin")).unwrap();
    let sealed = s.path("big.p7m");
    let size = std::fs::metadata(&sealed).unwrap().len();
    assert!(size > plain_len, "{size}");
    let digest = sha256_of(File::open(&sealed).unwrap());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Dropped at the end of the statement: sled holds a lock that vdxd needs.
    store_of(s, "g22")
        .submit(&offer(id, size, digest), File::open(&sealed).unwrap(), now)
        .unwrap();
    std::fs::remove_file(sealed).unwrap();
    (size, digest)
}

/// Writes `len` deterministic pseudo-random bytes (xorshift64) to `path`, 1 MiB at a time.
fn generate(path: &Path, len: u64) {
    let mut file = File::create(path).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; MIB as usize];
    let mut left = len;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(MIB);
        file.write_all(&buf[..n as usize]).unwrap();
        left -= n;
    }
    file.sync_all().unwrap();
}

fn sha256_of(mut content: impl Read) -> [u8; 32] {
    let mut hasher = Sha256::new();
    io::copy(&mut content, &mut hasher).unwrap();
    hasher.finalize().into()
}

/// The length of `path`, `None` when it does not exist.
fn len(path: &Path) -> Option<u64> {
    match std::fs::metadata(path) {
        Ok(meta) => Some(meta.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// Waits (polling finely, to cut near the target) until the partial file holds `target` bytes.
fn wait_for_partial(s: &Session, partial: &Path, object: &Path, target: u64) {
    let deadline = Instant::now() + LIMIT;
    while len(partial).unwrap_or(0) < target {
        assert!(
            !object.exists(),
            "the transfer completed before it could be cut"
        );
        if Instant::now() > deadline {
            let what = format!(
                "timed out waiting for {target} bytes in {}",
                partial.display()
            );
            fail(s, &what);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the receiver holds right after the cut (a `kill -9` loses no written byte; a receiver still
/// running may append what was in flight, so this is a lower bound for where the transfer resumes).
fn held_at_cut(partial: &Path, object: &Path, size: u64) -> u64 {
    let held = len(partial).unwrap();
    assert!(
        held > 0 && held < size && !object.exists(),
        "cut at {held} of {size}"
    );
    held
}

/// Waits until the object is stored, sampling the partial file meanwhile: it must never hold less
/// than at the cut, and may only disappear by becoming the object (one rename). Returns the object
/// opened at once: a newer receiver goes on to open what arrived and may delete it (this test's
/// object is no dispatch package), and a file once opened stays readable.
fn wait_for_object(s: &Session, partial: &Path, object: &Path, held: u64) -> File {
    let deadline = Instant::now() + LIMIT;
    loop {
        let sample = len(partial);
        if let Ok(file) = File::open(object) {
            return file;
        }
        match sample {
            Some(n) if n < held => fail(
                s,
                &format!("the partial file shrank to {n} from {held}: restarted, not resumed"),
            ),
            Some(_) => {}
            None => fail(s, "the partial file vanished without becoming the object"),
        }
        if Instant::now() > deadline {
            fail(s, &format!("timed out waiting for {}", object.display()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Where the transfer that handed dispatch `id` over started, from the sender's log: its
/// "handed over" line, with `resumed_from=N` (or `resumed_from: N` inside a debug outcome). Waits
/// for the line: the sender logs it after checking the receipt, a moment after the object appears.
fn handed_over_from(s: &Session, id: MessageId) -> u64 {
    let id = id.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let log = strip_ansi(&String::from_utf8_lossy(&s.read("g22.log")));
        if let Some(line) = log
            .lines()
            .rfind(|l| l.contains("handed over") && l.contains(&id))
        {
            break line.to_owned();
        }
        if Instant::now() > deadline {
            fail(s, &format!("no \"handed over\" line for {id} in g22.log"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let after = ["resumed_from=", "resumed_from: "]
        .iter()
        .find_map(|key| line.split_once(key).map(|(_, after)| after))
        .unwrap_or_else(|| panic!("no resume offset in {line:?}"));
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// `text` without terminal colour sequences (`ESC [ ... letter`), in case the log has them.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Panics with `why` and both daemons' logs.
fn fail(s: &Session, why: &str) -> ! {
    let mut logs = String::new();
    for log in ["g22.log", "h41.log"] {
        if s.exists(log) {
            logs += &format!("--- {log}\n{}\n", String::from_utf8_lossy(&s.read(log)));
        }
    }
    panic!("{why}\n{logs}");
}
