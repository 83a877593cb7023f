//! Test fixtures for the audit tools: an agency with real keys from a dev CA, a realistic ledger
//! with a valid hash chain, and bundles made of it, on disk or in memory.

use std::collections::BTreeMap;
use std::path::Path;

use openssl::x509::X509Ref;
use time::{Duration, OffsetDateTime};
use vdx_crypto::{KeyKind, PrivateKey};
use vdx_pki::{Ca, IssueRequest, Issued, Profile, TrustStore};
use vdx_protocol::bundle;
use vdx_protocol::ledger::{Actor, Checkpoint, Entry, EntryKind};
use vdx_protocol::merkle::{self, Hash, HashReader};

use super::verify::{verify_parts, Parts, Summary};
use super::Finding;

/// An agency whose node signs checkpoints, issued by a fresh dev CA.
pub(super) struct Agency {
    ca: Ca,
    issued: Issued,
    pub(super) code: String,
}

impl Agency {
    pub(super) fn new(code: &str, kind: KeyKind) -> Self {
        // Valid from a week ago: the fixture ledgers start two days back.
        let since = OffsetDateTime::now_utc() - Duration::days(7);
        let mut ca = Ca::create_at("Audit Test Root", KeyKind::EcP256, since, 30).unwrap();
        let profile = match kind {
            KeyKind::Rsa => Profile::Combined,
            _ => Profile::Separate,
        };
        let issued = ca
            .issue(&IssueRequest {
                org: code.into(),
                name: format!("Agency {code}"),
                kind,
                profile,
                not_before: Some(since),
                days: 30,
            })
            .unwrap();
        Self {
            ca,
            issued,
            code: code.into(),
        }
    }

    fn signing(&self) -> (&X509Ref, &PrivateKey) {
        self.issued
            .roles()
            .into_iter()
            .find(|(role, _, _)| *role == "sign" || *role == "agency")
            .map(|(_, cert, key)| (cert, key))
            .unwrap()
    }

    pub(super) fn cert(&self) -> &X509Ref {
        self.signing().0
    }

    pub(super) fn origin(&self) -> String {
        format!("vdx/{}", self.code)
    }

    /// The signing certificate, then the CA's.
    pub(super) fn chain_pem(&self) -> Vec<u8> {
        [
            self.cert().to_pem().unwrap(),
            self.ca.cert().to_pem().unwrap(),
        ]
        .concat()
    }

    pub(super) fn trust(&self) -> TrustStore {
        TrustStore::new(vec![self.ca.cert().to_owned()], vec![], vec![]).unwrap()
    }

    /// A signed note for any size and root.
    pub(super) fn sign(&self, size: u64, root: Hash) -> String {
        let (cert, key) = self.signing();
        let checkpoint = Checkpoint {
            origin: self.origin(),
            size,
            root,
        };
        vdx_crypto::checkpoint::sign(&checkpoint, cert, key).unwrap()
    }
}

/// A ledger's entries and stored hashes, as the node keeps them.
pub(super) struct Ledger {
    pub(super) entries: Vec<Vec<u8>>,
    stored: Store,
}

struct Store(Vec<Hash>);

impl HashReader for Store {
    type Error = u64;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, u64> {
        indexes
            .iter()
            .map(|&i| self.0.get(i as usize).copied().ok_or(i))
            .collect()
    }
}

impl Ledger {
    /// `n` entries of every kind, as a busy node writes them: chained, times never decreasing
    /// (some equal), fields of realistic lengths. Deterministic for `seed`.
    pub(super) fn realistic(n: usize, seed: u64) -> Self {
        let mut ledger = Self {
            entries: Vec::new(),
            stored: Store(Vec::new()),
        };
        ledger.extend(n, seed);
        ledger
    }

    /// Another history: the first `at` entries of this one, then `n - at` others (the hash
    /// chain rewritten consistently, as a node that rewrites its ledger would).
    pub(super) fn fork(&self, at: usize, seed: u64) -> Self {
        let mut ledger = Self {
            entries: Vec::new(),
            stored: Store(Vec::new()),
        };
        for entry in &self.entries[..at] {
            ledger.push(entry.clone());
        }
        ledger.extend(self.entries.len() - at, seed);
        ledger
    }

    fn push(&mut self, text: Vec<u8>) {
        let leaf = merkle::leaf_hash(&text);
        let hashes = merkle::stored_hashes(self.entries.len() as u64, &leaf, &self.stored).unwrap();
        self.stored.0.extend(hashes);
        self.entries.push(text);
    }

    fn extend(&mut self, n: usize, seed: u64) {
        let last = self.entries.last().map(|e| Entry::parse(e).unwrap());
        let mut time = last.as_ref().map_or_else(
            || OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::days(2),
            |e| e.time,
        );
        let mut prev = self.entries.last().map(|e| merkle::leaf_hash(e));
        let first = self.entries.len() as u64;
        for i in first..first + n as u64 {
            let r = mix(seed ^ i);
            time += Duration::seconds((r % 3) as i64);
            let kind = EntryKind::ALL[(r >> 8) as usize % EntryKind::ALL.len()];
            let actor = match (r >> 16) % 3 {
                0 => Actor::User(1000 + (r >> 20) as u32 % 5),
                1 => Actor::Peer(
                    ["000.00.00.G22", "000.00.00.H26", "000.00.01.H41"][(r >> 20) as usize % 3]
                        .parse()
                        .unwrap(),
                ),
                _ => Actor::Node,
            };
            let digest = hex(&merkle::leaf_hash(&r.to_be_bytes()));
            let mut fields = BTreeMap::new();
            let mut field = |name: &str, value: String| fields.insert(name.to_owned(), value);
            match kind {
                EntryKind::Submitted | EntryKind::Received | EntryKind::Relayed => {
                    field("sealed-sha256", digest);
                    field("size", (r % 9_000_000).to_string());
                }
                EntryKind::Sent => {
                    field("to", "000.00.00.H26".into());
                    field("receipt-sha256", digest);
                }
                EntryKind::Registered => {
                    field("number", format!("{}/2026/VPCP", r % 900));
                }
                EntryKind::Refused | EntryKind::Failed => {
                    field("reason", "chữ ký không hợp lệ: bad_signature".into());
                }
                EntryKind::Notice => {
                    field("status", "01".into());
                }
                EntryKind::Config => {
                    field("what", "directory updated".into());
                }
                EntryKind::Audit => {
                    field("from", "0".into());
                    field("to", i.to_string());
                }
                _ => {}
            }
            if let Actor::User(_) = actor {
                field("role", "clerk".into());
            }
            let entry = Entry {
                index: i,
                prev,
                time,
                kind,
                id: (kind != EntryKind::Config).then(|| {
                    let mut id = [0u8; 16];
                    id.copy_from_slice(&merkle::leaf_hash(&(r >> 3).to_le_bytes())[..16]);
                    id
                }),
                actor,
                fields,
            };
            let text = entry.to_text().unwrap().into_bytes();
            prev = Some(merkle::leaf_hash(&text));
            self.push(text);
        }
    }

    pub(super) fn root(&self, size: u64) -> Hash {
        merkle::tree_root(size, &self.stored).unwrap()
    }

    pub(super) fn prefix(&self, from: u64) -> Vec<Hash> {
        merkle::compact_range(from, &self.stored).unwrap()
    }

    pub(super) fn prove(&self, index: u64, size: u64) -> Vec<Hash> {
        merkle::prove_inclusion(index, size, &self.stored).unwrap()
    }
}

/// SplitMix64: cheap deterministic pseudo-randomness for fixtures and sampled tests.
pub(super) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hex(bytes: &[u8]) -> String {
    vdx_protocol::hex::encode(bytes)
}

/// A bundle's files in memory, to change and verify quickly.
#[derive(Clone)]
pub(super) struct Files {
    pub(super) entries: Vec<u8>,
    pub(super) checkpoints: Vec<u8>,
    pub(super) prefix: Option<Vec<u8>>,
    pub(super) chain: Vec<u8>,
}

impl Files {
    pub(super) fn load(dir: &Path) -> Self {
        let read = |name| std::fs::read(dir.join(name)).unwrap();
        Self {
            entries: read(bundle::ENTRIES),
            checkpoints: read(bundle::CHECKPOINTS),
            prefix: std::fs::read(dir.join(bundle::PREFIX)).ok(),
            chain: read(bundle::CHAIN),
        }
    }

    pub(super) fn verify(&self) -> Result<Summary, Finding> {
        self.verify_trusting(None)
    }

    pub(super) fn verify_trusting(&self, trust: Option<&TrustStore>) -> Result<Summary, Finding> {
        let parts = Parts {
            entries: &self.entries[..],
            prefix: self.prefix.clone(),
            checkpoints: Ok(self.checkpoints.clone()),
            chain: Ok(self.chain.clone()),
        };
        verify_parts(parts, trust)
    }
}

/// Exports entries `from..` of `ledger` into `dir` as the node does, with checkpoints at
/// `sizes`; returns the files as written.
pub(super) fn export(
    dir: &Path,
    agency: &Agency,
    ledger: &Ledger,
    from: u64,
    sizes: &[u64],
) -> Files {
    let notes: Vec<String> = sizes
        .iter()
        .map(|&s| agency.sign(s, ledger.root(s)))
        .collect();
    bundle::write_bundle(
        dir,
        from,
        &ledger.prefix(from),
        &ledger.entries[from as usize..],
        &notes,
        &agency.chain_pem(),
    )
    .unwrap();
    Files::load(dir)
}

/// Frames entries as the `entries` file does.
pub(super) fn framed<E: AsRef<[u8]>>(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        bundle::write_entry(&mut out, e.as_ref()).unwrap();
    }
    out
}
