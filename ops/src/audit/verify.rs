//! `vdx audit verify DIR`: the whole check of an audit bundle, in the order of the spec, stopping
//! at the first problem: (a-c) the entries, streamed ([`super::chain`]); (d) every checkpoint's
//! origin, signature, order and root against the recomputed tree, forks and truncation; (e) the
//! last checkpoint covers every entry; (f) optionally, the signing certificate chains to the
//! officer's trust anchors.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use openssl::x509::X509;
use vdx_pki::TrustStore;
use vdx_protocol::bundle::{self, NoteText};
use vdx_protocol::ledger::Checkpoint;
use vdx_protocol::merkle::{CompactRange, Hash};

use super::chain::{self, Recomputed};
use super::Finding;

/// What a bundle that verified covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The ledger's origin, `vdx/ORGAN_CODE`.
    pub(crate) origin: String,
    /// The first entry's index.
    pub(crate) from: u64,
    /// One past the last entry's index (= the last checkpoint's size).
    pub(crate) end: u64,
    /// Checkpoints checked.
    pub(crate) checkpoints: usize,
    /// The tree root at `end`, as the last checkpoint signs it.
    pub(crate) root: Hash,
    /// Subject of the signing certificate.
    pub(crate) signer: String,
    /// True when the certificate was validated against trust anchors; false when only the
    /// bundle's self-consistency was checked.
    pub(crate) trusted: bool,
}

/// From this many checkpoints on, their signatures are checked on a second thread.
const PARALLEL_NOTES: usize = 64;

/// Verifies the bundle in `dir` (see the module doc for the order of checks). With `trust`, the
/// first certificate of `chain.pem` must also validate to it, at the last entry's time.
pub(crate) fn verify_bundle(dir: &Path, trust: Option<&TrustStore>) -> Result<Summary, Finding> {
    let optional = |name: &str| match fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Finding::general(format!("{name}: {e}"))),
    };
    let prefix = optional(bundle::PREFIX)?;
    let entries = File::open(dir.join(bundle::ENTRIES))
        .map_err(|e| Finding::general(format!("{}: {e}", bundle::ENTRIES)))?;
    let parts = Parts {
        entries: BufReader::with_capacity(1 << 20, entries),
        prefix,
        checkpoints: fs::read(dir.join(bundle::CHECKPOINTS)),
        chain: fs::read(dir.join(bundle::CHAIN)),
    };
    verify_parts(parts, trust)
}

/// The files of a bundle, read (the entries as a stream); reading errors of the small files are
/// reported at the check that needs them.
pub(super) struct Parts<R> {
    pub(super) entries: R,
    pub(super) prefix: Option<Vec<u8>>,
    pub(super) checkpoints: io::Result<Vec<u8>>,
    pub(super) chain: io::Result<Vec<u8>>,
}

/// The node's signing certificate, its chain, and the origin its checkpoints must carry.
struct Signer {
    cert: X509,
    key: vdx_crypto::checkpoint::Verifier,
    chain: Vec<X509>,
    origin: String,
}

impl Signer {
    fn from_pem(pem: io::Result<Vec<u8>>) -> Result<Self, Finding> {
        let name = bundle::CHAIN;
        let pem = pem.map_err(|e| Finding::general(format!("{name}: {e}")))?;
        let mut certs = vdx_pki::parse_certs(&pem)
            .map_err(|e| Finding::general(format!("{name}: {e}")))?
            .into_iter();
        let cert = certs
            .next()
            .ok_or_else(|| Finding::general(format!("{name}: no certificate")))?;
        let code = vdx_pki::organ_code(&cert).ok_or_else(|| {
            Finding::general(format!(
                "{name}: the signing certificate has no organ code (organizationIdentifier)"
            ))
        })?;
        let key = vdx_crypto::checkpoint::Verifier::new(&cert)
            .map_err(|e| Finding::general(format!("{name}: {e}")))?;
        Ok(Self {
            cert,
            key,
            chain: certs.collect(),
            origin: format!("vdx/{code}"),
        })
    }

    /// The note's checkpoint if it carries our origin and a good signature by our key.
    fn check(&self, note: &NoteText) -> Result<Checkpoint, Finding> {
        let at = format!(
            "checkpoint at line {} (size {})",
            note.line, note.checkpoint.size
        );
        if note.checkpoint.origin != self.origin {
            return Err(Finding::general(format!(
                "{at}: origin {} is not {}, the ledger of {}'s certificate",
                note.checkpoint.origin,
                self.origin,
                bundle::CHAIN
            )));
        }
        self.key
            .verify(&note.text)
            .map_err(|e| Finding::general(format!("{at}: {e}")))
    }
}

/// [`verify_bundle`] over files already opened.
pub(super) fn verify_parts<R: BufRead>(
    parts: Parts<R>,
    trust: Option<&TrustStore>,
) -> Result<Summary, Finding> {
    let prefix = match &parts.prefix {
        Some(bytes) => bundle::read_prefix(bytes).map_err(|e| Finding::general(e.to_string()))?,
        None => CompactRange::new(),
    };
    let from = prefix.size();
    let notes = match &parts.checkpoints {
        Ok(bytes) => bundle::read_checkpoints(bytes).map_err(|e| Finding::general(e.to_string())),
        Err(e) => Err(Finding::general(format!("{}: {e}", bundle::CHECKPOINTS))),
    };
    let signer = Signer::from_pem(parts.chain);
    let sizes: HashSet<u64> = notes.iter().flatten().map(|n| n.checkpoint.size).collect();
    let judge = |size: u64, root: &Hash| {
        let (Ok(notes), Ok(signer)) = (&notes, &signer) else {
            return None;
        };
        notes
            .iter()
            .filter(|n| n.checkpoint.size == size)
            .find_map(|n| signer.check(n).ok())
            .map(|c| c.root == *root)
    };
    // The signatures do not depend on the entries: for a large bundle, check them on a second
    // core meanwhile, stopping as soon as the entries have a finding of their own.
    let stop = AtomicBool::new(false);
    let check_signatures = || -> Vec<Option<Finding>> {
        match (&notes, &signer) {
            (Ok(notes), Ok(signer)) => notes
                .iter()
                .take_while(|_| !stop.load(Ordering::Relaxed))
                .map(|n| signer.check(n).err())
                .collect(),
            _ => Vec::new(),
        }
    };
    let parallel = notes.as_ref().is_ok_and(|n| n.len() >= PARALLEL_NOTES);
    let (recomputed, signatures) = if parallel {
        std::thread::scope(|scope| {
            let signatures = scope.spawn(check_signatures);
            let recomputed = chain::scan(parts.entries, prefix, &sizes, &judge);
            stop.store(recomputed.is_err(), Ordering::Relaxed);
            // A panic in the signature thread is a bug; resuming it keeps it one.
            let signatures = signatures
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (recomputed, signatures)
        })
    } else {
        let recomputed = chain::scan(parts.entries, prefix, &sizes, &judge)?;
        (Ok(recomputed), check_signatures())
    };
    let recomputed = recomputed?;
    let notes = notes?;
    let signer = signer?;
    if let Some(bad) = signatures.into_iter().flatten().next() {
        return Err(bad);
    }
    check_checkpoints(&notes, from, &recomputed)?;
    let Some(last) = notes.last() else {
        return Err(if recomputed.end > from {
            Finding::at(from, "not signed: the bundle has no checkpoint")
        } else {
            Finding::general("the bundle has no checkpoint")
        });
    };
    let last = &last.checkpoint;
    if last.size < recomputed.end {
        return Err(Finding::at(
            last.size,
            format!(
                "not signed: the last checkpoint covers {} entries, so entries {}..{} are \
                 covered by no checkpoint",
                last.size,
                last.size,
                recomputed.end - 1
            ),
        ));
    }
    if let Some(store) = trust {
        store
            .validate_signer(&signer.cert, &signer.chain, recomputed.last_time)
            .map_err(|e| {
                Finding::general(format!(
                    "{}: the signing certificate is not trusted: {e}",
                    bundle::CHAIN
                ))
            })?;
    }
    Ok(Summary {
        origin: signer.origin,
        from,
        end: recomputed.end,
        checkpoints: notes.len(),
        root: last.root,
        signer: vdx_pki::subject_string(&signer.cert),
        trusted: trust.is_some(),
    })
}

/// Check d, once every note's origin and signature are known good: first the order of the notes
/// and forks between them, then each note's size and root against the recomputed tree.
fn check_checkpoints(
    notes: &[NoteText],
    from: u64,
    recomputed: &Recomputed,
) -> Result<(), Finding> {
    let mut seen: HashMap<u64, &NoteText> = HashMap::new();
    let mut previous: Option<&NoteText> = None;
    for note in notes {
        let (size, line) = (note.checkpoint.size, note.line);
        if let Some(p) = previous.filter(|p| p.checkpoint.size > size) {
            return Err(Finding::general(format!(
                "checkpoint at line {line} (size {size}) comes after one of size {} (line {}): \
                 checkpoints are in increasing size order",
                p.checkpoint.size, p.line
            )));
        }
        if let Some(other) = seen
            .get(&size)
            .filter(|o| o.checkpoint.root != note.checkpoint.root)
        {
            return Err(Finding::general(format!(
                "fork: the checkpoints at lines {} and {line} both sign size {size} with \
                 different roots: the node signed two histories",
                other.line
            )));
        }
        seen.insert(size, note);
        previous = Some(note);
    }
    let mut good: Option<u64> = None;
    for (n, note) in notes.iter().enumerate() {
        let (size, line) = (note.checkpoint.size, note.line);
        if size < from {
            return Err(Finding::general(format!(
                "checkpoint at line {line} has size {size}, below the bundle's first entry \
                 {from}: it cannot be checked"
            )));
        }
        let Some(root) = recomputed.roots.get(&size) else {
            let end = recomputed.end;
            return Err(Finding::at(
                end,
                format!(
                    "missing: the checkpoint at line {line} covers {size} entries but the \
                     bundle ends before entry {end}: it was truncated"
                ),
            ));
        };
        if *root == note.checkpoint.root {
            good = Some(size);
            continue;
        }
        let later = notes[n + 1..]
            .iter()
            .find(|l| recomputed.roots.get(&l.checkpoint.size) == Some(&l.checkpoint.root));
        return Err(mismatch(note, later, good, from, recomputed.end));
    }
    Ok(())
}

/// The finding for a checkpoint whose root is not the recomputed one: a fork when a later
/// checkpoint matches the entries, otherwise a change since the last matching checkpoint (or in
/// the prefix).
fn mismatch(
    note: &NoteText,
    later: Option<&NoteText>,
    good: Option<u64>,
    from: u64,
    end: u64,
) -> Finding {
    let (size, line) = (note.checkpoint.size, note.line);
    if let Some(later) = later {
        return Finding::general(format!(
            "fork: the checkpoint at line {line} (size {size}) is not consistent with the \
             checkpoint at line {} (size {}), which matches the entries: the node signed two \
             histories",
            later.line, later.checkpoint.size
        ));
    }
    let Some(last) = size.checked_sub(1).filter(|&l| l >= from) else {
        return Finding::general(format!(
            "the checkpoint at line {line} (size {size}) does not match the prefix hashes"
        ));
    };
    let since = good.unwrap_or(from);
    if good.is_none() && from > 0 && size < end {
        return Finding::general(format!(
            "the checkpoint at line {line} (size {size}) does not match the entries: their \
             hash chain is intact up to entry {size}, so the prefix hashes are wrong, or every \
             entry from {from} on was rewritten"
        ));
    }
    let start = match good {
        Some(g) => format!("since the last matching checkpoint (size {g})"),
        None => "since the start of the bundle".to_owned(),
    };
    Finding::at(
        last,
        format!(
            "changed: the checkpoint at line {line} (size {size}) does not match the entries; \
             entries {since}..{last} ({start}) hold the change, and the hash chain being intact \
             names entry {last} (or the whole range was rewritten)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use vdx_crypto::KeyKind;

    use super::*;
    use crate::audit::testkit::{export, framed, mix, Agency, Files, Ledger};

    const N: u64 = 40;
    /// Checkpoints as a node writes them, including the last size and the one before it.
    const SIZES: [u64; 7] = [1, 8, 16, 17, 30, N - 1, N];

    struct Fixture {
        _dir: tempfile::TempDir,
        agency: Agency,
        ledger: Ledger,
        files: Files,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let agency = Agency::new("000.00.00.H41", KeyKind::EcP256);
        let ledger = Ledger::realistic(N as usize, 7);
        let files = export(&dir.path().join("bundle"), &agency, &ledger, 0, &SIZES);
        Fixture {
            _dir: dir,
            agency,
            ledger,
            files,
        }
    }

    /// Where each entry's `length` line and text lie in the `entries` file.
    fn spans(entries: &[Vec<u8>]) -> Vec<(Range<usize>, Range<usize>)> {
        let mut at = 0;
        entries
            .iter()
            .map(|e| {
                let line = format!("length {}\n", e.len()).len();
                let spans = (at..at + line, at + line..at + line + e.len());
                at += line + e.len();
                spans
            })
            .collect()
    }

    fn finding(files: &Files) -> Finding {
        match files.verify() {
            Ok(summary) => panic!("went unnoticed: {summary:?}"),
            Err(f) => f,
        }
    }

    #[test]
    fn a_realistic_bundle_verifies_on_disk_and_against_the_trust_anchor() {
        for kind in [KeyKind::EcP256, KeyKind::Rsa] {
            let dir = tempfile::tempdir().unwrap();
            let agency = Agency::new("000.00.00.H41", kind);
            let ledger = Ledger::realistic(N as usize, 1);
            export(dir.path(), &agency, &ledger, 0, &SIZES);
            let trust = agency.trust();
            let summary = verify_bundle(dir.path(), Some(&trust)).unwrap();
            assert_eq!(summary.origin, "vdx/000.00.00.H41");
            assert_eq!((summary.from, summary.end), (0, N));
            assert_eq!(summary.checkpoints, SIZES.len());
            assert_eq!(summary.root, ledger.root(N));
            assert!(summary.trusted);
            assert!(
                summary.signer.contains("000.00.00.H41"),
                "{}",
                summary.signer
            );
            let readme = fs::read_to_string(dir.path().join(bundle::README)).unwrap();
            assert!(readme.contains("vdx audit verify"), "{readme}");
            // Another CA's anchors do not vouch for it.
            let other = Agency::new("000.00.00.H41", KeyKind::EcP256);
            let f = verify_bundle(dir.path(), Some(&other.trust())).unwrap_err();
            assert!(f.what.contains("not trusted"), "{f}");
        }
    }

    #[test]
    fn every_single_byte_change_of_the_entries_names_the_changed_entry() {
        let fx = fixture();
        let spans = spans(&fx.ledger.entries);
        assert_eq!(spans.last().unwrap().1.end, fx.files.entries.len());
        let mut files = fx.files.clone();
        for (i, (line, text)) in spans.iter().enumerate() {
            for pos in line.start..text.end {
                for mask in [1u8 << (pos % 8), 0x01] {
                    let original = files.entries[pos];
                    files.entries[pos] ^= mask;
                    let f = finding(&files);
                    files.entries[pos] = original;
                    assert_eq!(
                        f.entry,
                        Some(i as u64),
                        "byte {pos} (entry {i}) ^ {mask:#04x}: {f}"
                    );
                }
            }
        }
    }

    #[test]
    fn deleted_inserted_and_swapped_entries_are_named() {
        let fx = fixture();
        let entries = &fx.ledger.entries;
        let with = |list: Vec<Vec<u8>>| Files {
            entries: framed(&list),
            ..fx.files.clone()
        };
        let n = entries.len();
        for i in 0..n {
            let mut list = entries.clone();
            list.remove(i);
            assert_eq!(finding(&with(list)).entry, Some(i as u64), "deleting {i}");
        }
        for p in 0..=n {
            for j in [p.saturating_sub(1), p, (p + 11) % n] {
                let Some(copy) = entries.get(j) else { continue };
                let mut list = entries.clone();
                list.insert(p, copy.clone());
                // A copy of entry p inserted before it is the same as one inserted after it.
                let expected = if j == p { p + 1 } else { p };
                let f = finding(&with(list));
                assert_eq!(f.entry, Some(expected as u64), "copy of {j} at {p}: {f}");
            }
        }
        for i in 0..n - 1 {
            let mut list = entries.clone();
            list.swap(i, i + 1);
            assert_eq!(finding(&with(list)).entry, Some(i as u64), "swapping {i}");
        }
    }

    #[test]
    fn truncation_at_every_entry_boundary_is_caught() {
        let fx = fixture();
        for (i, (line, _)) in spans(&fx.ledger.entries).iter().enumerate() {
            let files = Files {
                entries: fx.files.entries[..line.start].to_vec(),
                ..fx.files.clone()
            };
            let f = finding(&files);
            assert_eq!(f.entry, Some(i as u64), "cut before {i}: {f}");
            assert!(f.what.contains("truncated"), "{f}");
        }
    }

    #[test]
    fn every_single_byte_change_of_the_checkpoints_is_caught() {
        let fx = fixture();
        let mut files = fx.files.clone();
        for pos in 0..files.checkpoints.len() {
            for mask in [1u8 << (pos % 8), 0x01] {
                files.checkpoints[pos] ^= mask;
                let f = finding(&files);
                files.checkpoints[pos] ^= mask;
                assert_eq!(f.entry, None, "byte {pos} ^ {mask:#04x}: {f}");
            }
        }
        assert!(files.verify().is_ok());
    }

    #[test]
    fn forks_are_caught() {
        let fx = fixture();
        let other = fx.ledger.fork(10, 8);
        let notes = |sizes: &[(u64, Hash)]| -> Vec<u8> {
            sizes
                .iter()
                .flat_map(|&(s, root)| format!("{}\n", fx.agency.sign(s, root)).into_bytes())
                .collect()
        };
        let genuine: Vec<(u64, Hash)> = SIZES.iter().map(|&s| (s, fx.ledger.root(s))).collect();
        // Two checkpoints of size 17 with different roots.
        let mut two = genuine.clone();
        two.insert(4, (17, other.root(17)));
        let f = finding(&Files {
            checkpoints: notes(&two),
            ..fx.files.clone()
        });
        assert!(f.what.starts_with("fork: the checkpoints at lines"), "{f}");
        // An older checkpoint not consistent with the newer ones (which match the entries).
        let mut older = genuine.clone();
        older[2] = (16, other.root(16));
        let f = finding(&Files {
            checkpoints: notes(&older),
            ..fx.files.clone()
        });
        assert!(
            f.what.contains("is not consistent with the checkpoint"),
            "{f}"
        );
        // A ledger rewritten from entry 20 on, its hash chain recomputed: the checkpoints
        // signed before the rewrite no longer match, from the first one after entry 20.
        let rewritten = fx.ledger.fork(20, 99);
        let f = finding(&Files {
            entries: framed(&rewritten.entries),
            ..fx.files.clone()
        });
        assert_eq!(f.entry, Some(29), "{f}");
        assert!(f.what.contains("entries 17..29"), "{f}");
        // Checkpoints out of order.
        let mut swapped = genuine.clone();
        swapped.swap(1, 2);
        let f = finding(&Files {
            checkpoints: notes(&swapped),
            ..fx.files.clone()
        });
        assert!(f.what.contains("increasing size order"), "{f}");
        // A duplicate of a checkpoint (same size, same root) is fine.
        let mut dup = genuine;
        dup.insert(3, dup[2]);
        assert!(Files {
            checkpoints: notes(&dup),
            ..fx.files.clone()
        }
        .verify()
        .is_ok());
    }

    #[test]
    fn unsigned_entries_foreign_certificates_and_missing_files_are_findings() {
        let fx = fixture();
        let sized = |sizes: &[u64]| Files {
            checkpoints: sizes
                .iter()
                .flat_map(|&s| format!("{}\n", fx.agency.sign(s, fx.ledger.root(s))).into_bytes())
                .collect(),
            ..fx.files.clone()
        };
        let f = finding(&sized(&[8, 30]));
        assert_eq!(f.entry, Some(30), "{f}");
        assert!(f.what.contains("not signed"), "{f}");
        let f = finding(&sized(&[]));
        assert_eq!(f.entry, Some(0), "{f}");
        // The prev line of the last entry, without a checkpoint one before the last size.
        let mut files = sized(&[30, N]);
        let last = spans(&fx.ledger.entries)[N as usize - 1].1.clone();
        files.entries[last.start + 40] ^= 1; // inside "prev <hex>"
        let f = finding(&files);
        assert_eq!(f.entry, Some(N - 1), "{f}");
        // Another agency's certificate: the origin is not its ledger; same code, other key:
        // no signature.
        for code in ["000.00.00.G22", "000.00.00.H41"] {
            let other = Agency::new(code, KeyKind::EcP256);
            let f = finding(&Files {
                chain: other.chain_pem(),
                ..fx.files.clone()
            });
            assert_eq!(f.entry, None, "{f}");
            assert!(f.what.starts_with("checkpoint at line 1 (size 1)"), "{f}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = verify_bundle(dir.path(), None).unwrap_err();
        assert!(f.what.starts_with("entries: "), "{f}");
        fs::write(dir.path().join(bundle::ENTRIES), &fx.files.entries).unwrap();
        let f = verify_bundle(dir.path(), None).unwrap_err();
        assert!(f.what.starts_with("checkpoints: "), "{f}");
    }

    #[test]
    fn a_bundle_with_a_prefix_verifies_and_a_wrong_prefix_hash_is_caught() {
        let fx = fixture();
        let dir = tempfile::tempdir().unwrap();
        let from = 13; // three prefix subtrees: 8, 4 and 1 leaves
        let files = export(
            dir.path(),
            &fx.agency,
            &fx.ledger,
            from,
            &[13, 20, N - 1, N],
        );
        assert!(files.prefix.is_some());
        let summary = verify_bundle(dir.path(), None).unwrap();
        assert_eq!((summary.from, summary.end), (from, N));
        // The first entry's change is still named, by the second entry's prev.
        let spans = spans(&fx.ledger.entries[from as usize..]);
        let mut changed = files.clone();
        changed.entries[spans[0].1.end - 2] ^= 1;
        assert_eq!(finding(&changed).entry, Some(from));
        // Without the checkpoint at the first size, a wrong prefix hash is still caught.
        for with_first in [true, false] {
            let sizes: &[u64] = if with_first { &[13, 20, N] } else { &[20, N] };
            let mut wrong = Files {
                checkpoints: sizes
                    .iter()
                    .flat_map(|&s| {
                        format!("{}\n", fx.agency.sign(s, fx.ledger.root(s))).into_bytes()
                    })
                    .collect(),
                ..files.clone()
            };
            assert!(wrong.verify().is_ok());
            let prefix = wrong.prefix.as_mut().unwrap();
            let at = prefix.len() - 10;
            prefix[at] ^= 0x01;
            let f = finding(&wrong);
            assert!(f.what.contains("prefix"), "{f}");
            assert_eq!(f.entry, None, "{f}");
        }
        let mut missing = files.clone();
        missing.prefix = None;
        assert_eq!(finding(&missing).entry, Some(0));
    }

    #[test]
    fn sampled_byte_changes_in_a_large_bundle_name_the_entry() {
        let n = 5_000;
        let seed = std::env::var("VDX_AUDIT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("seed {seed} (set VDX_AUDIT_SEED to repeat)");
        let dir = tempfile::tempdir().unwrap();
        let agency = Agency::new("000.00.00.H41", KeyKind::EcP256);
        let ledger = Ledger::realistic(n, seed);
        let sizes: Vec<u64> = (1..=n as u64)
            .filter(|s| s % 64 == 0 || *s >= n as u64 - 1)
            .collect();
        let mut files = export(dir.path(), &agency, &ledger, 0, &sizes);
        let spans = spans(&ledger.entries);
        for round in 0..200u64 {
            let r = mix(seed ^ round.wrapping_mul(0x1234_5678_9abc));
            let pos = (r % files.entries.len() as u64) as usize;
            let i = spans.partition_point(|(_, text)| text.end <= pos);
            let mask = (1 + (r >> 32) % 255) as u8;
            files.entries[pos] ^= mask;
            let f = finding(&files);
            files.entries[pos] ^= mask;
            assert_eq!(
                f.entry,
                Some(i as u64),
                "seed {seed}: byte {pos} ^ {mask:#04x}: {f}"
            );
        }
    }

    /// The speed target: `cargo test --release -p vdx-ops million -- --ignored --nocapture`.
    #[test]
    #[ignore = "builds a 250 MB bundle; run in release mode"]
    fn a_million_entries_verify_in_seconds() {
        let n = 1_000_000u64;
        let dir = tempfile::tempdir().unwrap();
        let agency = Agency::new("000.00.00.H41", KeyKind::EcP256);
        let ledger = Ledger::realistic(n as usize, 3);
        let sizes: Vec<u64> = (1..=n).filter(|s| s % 64 == 0 || *s >= n - 1).collect();
        export(dir.path(), &agency, &ledger, 0, &sizes);
        drop(ledger);
        let bytes = fs::metadata(dir.path().join(bundle::ENTRIES))
            .unwrap()
            .len();
        let start = std::time::Instant::now();
        let summary = verify_bundle(dir.path(), Some(&agency.trust())).unwrap();
        let took = start.elapsed();
        println!(
            "verified {} entries ({bytes} bytes) and {} checkpoints in {took:.2?}",
            summary.end, summary.checkpoints
        );
        assert_eq!(summary.end, n);
    }
}
