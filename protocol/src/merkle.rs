//! The ledger's Merkle tree (spec: `docs/ledger.md`, "Tree"): RFC 9162 §2.1 hashing, roots and
//! proofs computed from hashes the node keeps in storage, and the checks an offline auditor runs.
//!
//! Storage: the node keeps the hash of every complete (perfect) subtree, numbered by
//! [`stored_hash_index`] in the order the hashes become known — the layout of Crosby and Wallach,
//! "Efficient Data Structures for Tamper-Evident Logging" (USENIX Security 2009, §3.3), which Go's
//! checksum database also uses (`golang.org/x/mod/sumdb/tlog`). Appending leaf `n` stores
//! `1 + trailing_ones(n)` hashes (under two on average), computing `trailing_ones(n)` node hashes
//! from as many stored ones; the root of any size up to the current one, an inclusion proof or a
//! consistency proof then needs O(log n) stored hashes, asked for in a single
//! [`HashReader::read_hashes`] call. Stored hashes are a cache of the entries: whoever checks a
//! proof does so against a signed root, never against the store.
//!
//! Proofs are plain lists of hashes in RFC 9162 order (§2.1.3 audit path, §2.1.4 consistency
//! proof), so any RFC 9162 verifier accepts ours; [`verify_inclusion`] and [`verify_consistency`]
//! are the RFC's own verification algorithms and need nothing but the proof, sizes and roots.

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash: a leaf hash, an interior node hash or a root.
pub type Hash = [u8; 32];

/// Root of the empty tree, RFC 9162 `MTH({}) = SHA-256()`: what a checkpoint of size 0 carries.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Largest tree the stored-hash functions accept (2^62 leaves), so that no index arithmetic can
/// overflow; the verifiers take any `u64`.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// `SHA-256(0x00 || entry)`: the leaf hash of one ledger entry (RFC 9162 §2.1.1). The 0x00 prefix
/// keeps a leaf from ever being taken for an interior node.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(entry)
        .finalize()
        .into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// Why a proof does not check out, or why the proof asked for cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// A leaf index at or past the end of the tree.
    #[error("leaf {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index given.
        index: u64,
        /// The tree size given.
        size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("a tree of size {size1} cannot be a prefix of a tree of size {size2}")]
    SizesOutOfOrder {
        /// The older size given.
        size1: u64,
        /// The newer size given.
        size2: u64,
    },
    /// The proof has too few or too many hashes for the sizes and index given.
    #[error("the proof has {got} hashes where {expected} are needed")]
    ProofLength {
        /// How many the sizes and index call for.
        expected: usize,
        /// How many the proof has.
        got: usize,
    },
    /// The proof leads to a different root than the one given (for a consistency proof: the
    /// newer root).
    #[error("the proof does not lead to the given root")]
    RootMismatch,
    /// A consistency proof leads to a different older root than the one given.
    #[error("the consistency proof does not lead to the given older root")]
    OldRootMismatch,
}

/// Why a root or proof could not be computed from stored hashes. `E` is the store's own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError<E> {
    /// The index or sizes asked for make no sense (index past the end, sizes out of order).
    #[error(transparent)]
    Invalid(#[from] MerkleError),
    /// A size above [`MAX_TREE_SIZE`].
    #[error("tree size {size} is above the supported maximum of 2^62")]
    TooLarge {
        /// The size asked for.
        size: u64,
    },
    /// The store could not read the hashes (missing, I/O error, ...).
    #[error("reading stored tree hashes failed")]
    Read(#[source] E),
    /// The store answered with the wrong number of hashes: a bug in the store.
    #[error("the hash store returned {got} hashes for {asked} indexes")]
    WrongCount {
        /// Indexes asked for.
        asked: usize,
        /// Hashes returned.
        got: usize,
    },
}

/// Read access to the stored hashes (the node implements it over its database, tests over a
/// `Vec`). Every root, proof or append computed here makes at most one call, so a store can batch.
pub trait HashReader {
    /// What goes wrong reading the store.
    type Error;

    /// The hashes stored at `indexes` (see [`stored_hash_index`]), one per index and in the same
    /// order; an index that was never written is an error. The indexes are distinct and not
    /// necessarily sorted.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error>;
}

/// Where the hash of the perfect subtree at `level` (2^level leaves) and `position` (counted from
/// the left within that level) is stored. Part of the storage format: changing it would orphan
/// every stored ledger. Hashes are numbered in the order appends produce them: leaf `n`'s hash,
/// then the hashes of the subtrees that leaf completes, smallest first. Meaningful while the
/// subtree's last leaf is below [`MAX_TREE_SIZE`].
pub const fn stored_hash_index(level: u32, position: u64) -> u64 {
    // The subtree is completed by its last leaf m; before leaf m's batch come 2m - popcount(m)
    // hashes (every leaf j < m brings 1 + trailing_ones(j) of them), and within the batch the
    // subtree's hash comes at offset `level`.
    let last_leaf = ((position + 1) << level) - 1;
    2 * last_leaf - last_leaf.count_ones() as u64 + level as u64
}

/// How many hashes a tree of `size` leaves has stored: `2 * size - popcount(size)`. This is also
/// the index at which the hashes from [`stored_hashes`] for leaf `size` go.
pub const fn stored_hash_count(size: u64) -> u64 {
    stored_hash_index(0, size)
}

/// The hashes to store when appending leaf `n` (0-based, so the tree has `n` leaves before it),
/// given its leaf hash: the leaf hash itself, then the hash of each subtree it completes. Store
/// them at consecutive indexes from [`stored_hash_count`]`(n)`. Reads the `trailing_ones(n)`
/// sibling subtree hashes it needs from `reader`.
pub fn stored_hashes<R: HashReader + ?Sized>(
    n: u64,
    leaf_hash: &Hash,
    reader: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    if n >= MAX_TREE_SIZE {
        return Err(TreeError::TooLarge {
            size: n.saturating_add(1),
        });
    }
    // Each trailing one bit of n is a level at which the new leaf's subtree meets a complete left
    // sibling, (level, (n >> level) - 1), and the two merge.
    let siblings: Vec<u64> = (0..n.trailing_ones())
        .map(|level| stored_hash_index(level, (n >> level) - 1))
        .collect();
    let siblings = read_exactly(reader, &siblings)?;
    let mut hashes = Vec::with_capacity(1 + siblings.len());
    let mut hash = *leaf_hash;
    hashes.push(hash);
    for sibling in &siblings {
        hash = node_hash(sibling, &hash);
        hashes.push(hash);
    }
    Ok(hashes)
}

/// The root of the tree made of the first `size` leaves (RFC 9162 `MTH`), for any `size` the
/// store holds — what a checkpoint of that size signs. Reads `popcount(size)` stored hashes.
pub fn tree_root<R: HashReader + ?Sized>(
    size: u64,
    reader: &R,
) -> Result<Hash, TreeError<R::Error>> {
    check_size(size)?;
    let mut indexes = Vec::new();
    cover(0, size, &mut indexes);
    Ok(fold(&read_exactly(reader, &indexes)?))
}

/// The RFC 9162 §2.1.3 inclusion proof (audit path) of leaf `index` in the tree of `size` leaves,
/// for checking with [`verify_inclusion`]. Reads at most twice as many stored hashes as `size` has
/// bits.
pub fn prove_inclusion<R: HashReader + ?Sized>(
    index: u64,
    size: u64,
    reader: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    check_size(size)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size }.into());
    }
    read_ranges(&inclusion_ranges(index, size), reader)
}

/// The RFC 9162 §2.1.4 consistency proof that the tree of `size1` leaves is a prefix of the tree
/// of `size2` leaves, for checking with [`verify_consistency`]. Empty when `size1` is 0 or equal
/// to `size2` (the RFC defines proofs only for `0 < size1 < size2`). Reads at most twice as many
/// stored hashes as `size2` has bits.
pub fn prove_consistency<R: HashReader + ?Sized>(
    size1: u64,
    size2: u64,
    reader: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    check_size(size2)?;
    if size1 > size2 {
        return Err(MerkleError::SizesOutOfOrder { size1, size2 }.into());
    }
    read_ranges(&consistency_ranges(size1, size2), reader)
}

/// Checks that `proof` shows the leaf with hash `leaf_hash` at `index` in the tree of `size` leaves
/// whose root is `root`, by the algorithm of RFC 9162 §2.1.3.2. Needs nothing from the node.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // The RFC's loop below refuses a proof of the wrong length too; counting first names the
    // fault precisely.
    let expected = inclusion_ranges(index, size).len();
    let length = MerkleError::ProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(length);
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut hash = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return Err(length);
        }
        if fnode & 1 == 1 || fnode == snode {
            hash = node_hash(p, &hash);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            hash = node_hash(&hash, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(length);
    }
    if hash != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Checks that `proof` shows the tree of `size1` leaves with root `root1` to be a prefix of the
/// tree of `size2` leaves with root `root2`, by the algorithm of RFC 9162 §2.1.4.2. Outside the
/// RFC's `0 < size1 < size2` the proof must be empty: equal sizes need equal roots, and size 0
/// needs [`EMPTY_ROOT`] (stricter than verifiers that accept any root for size 0).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), MerkleError> {
    if size1 > size2 {
        return Err(MerkleError::SizesOutOfOrder { size1, size2 });
    }
    let expected = consistency_ranges(size1, size2).len();
    let length = MerkleError::ProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(length);
    }
    if size1 == 0 {
        if *root1 != EMPTY_ROOT {
            return Err(MerkleError::OldRootMismatch);
        }
        if size2 == 0 && *root2 != EMPTY_ROOT {
            return Err(MerkleError::RootMismatch);
        }
        return Ok(());
    }
    if size1 == size2 {
        return if root1 == root2 {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    // A power-of-two old tree is a complete subtree of the new one; its root is left out of the
    // proof and the verifier starts from it.
    let (first, rest) = if size1.is_power_of_two() {
        (root1, proof)
    } else {
        let Some((first, rest)) = proof.split_first() else {
            return Err(length);
        };
        (first, rest)
    };
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut old, mut new) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(length);
        }
        if fnode & 1 == 1 || fnode == snode {
            old = node_hash(c, &old);
            new = node_hash(c, &new);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            new = node_hash(&new, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(length);
    }
    if old != *root1 {
        return Err(MerkleError::OldRootMismatch);
    }
    if new != *root2 {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// The hashes of the perfect subtrees that make up leaves `[0, size)`, largest first (one per set
/// bit of `size`, high to low): the `prefix` of an audit bundle that starts at entry `size`, from
/// which [`CompactRange::from_prefix`] carries on. Reads `popcount(size)` stored hashes.
pub fn compact_range<R: HashReader + ?Sized>(
    size: u64,
    reader: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    check_size(size)?;
    let mut indexes = Vec::new();
    cover(0, size, &mut indexes);
    read_exactly(reader, &indexes)
}

/// The right edge of a growing tree: the perfect subtrees covering leaves `[0, size)`, largest
/// first. Appending a leaf and asking for the root need no store, so an auditor recomputes the
/// roots of a whole ledger streaming, in O(log n) memory, from the entries alone (or from a
/// [`compact_range`] prefix and the entries after it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tree of `size` leaves given by its perfect subtrees, largest first (what
    /// [`compact_range`] returns); there must be exactly one per set bit of `size`.
    pub fn from_prefix(size: u64, hashes: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = size.count_ones() as usize;
        if size > MAX_TREE_SIZE || hashes.len() != expected {
            return Err(MerkleError::ProofLength {
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// Leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtrees' hashes, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends the leaf with hash `leaf`: the new leaf merges with one complete left sibling per
    /// trailing one bit of the old size. Past [`MAX_TREE_SIZE`] leaves it stops growing and
    /// returns `false`.
    pub fn append(&mut self, leaf: &Hash) -> bool {
        if self.size >= MAX_TREE_SIZE {
            return false;
        }
        let mut hash = *leaf;
        for _ in 0..self.size.trailing_ones() {
            // One stored subtree per set bit of `size`, so a trailing one always has its hash.
            let Some(left) = self.hashes.pop() else {
                break;
            };
            hash = node_hash(&left, &hash);
        }
        self.hashes.push(hash);
        self.size += 1;
        true
    }

    /// The root of the tree of [`CompactRange::size`] leaves (RFC 9162 `MTH`).
    pub fn root(&self) -> Hash {
        fold(&self.hashes)
    }
}

fn check_size<E>(size: u64) -> Result<(), TreeError<E>> {
    if size > MAX_TREE_SIZE {
        return Err(TreeError::TooLarge { size });
    }
    Ok(())
}

/// RFC 9162's split point for `width >= 2` leaves: the largest power of two below `width`.
fn split(width: u64) -> u64 {
    1 << (63 - (width - 1).leading_zeros())
}

/// The leaf ranges `[lo, hi)` whose roots make up the audit path of leaf `index` in a tree of
/// `size`, in RFC order (the leaf's sibling first): RFC 9162 §2.1.3.1 `PATH` unrolled into a loop.
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let mid = lo + split(hi - lo);
        if index < mid {
            ranges.push((mid, hi));
            hi = mid;
        } else {
            ranges.push((lo, mid));
            lo = mid;
        }
    }
    ranges.reverse();
    ranges
}

/// The leaf ranges whose roots make up the consistency proof from `size1` to `size2`, in RFC order:
/// RFC 9162 §2.1.4.1 `SUBPROOF` unrolled into a loop. Empty unless `0 < size1 < size2`.
fn consistency_ranges(size1: u64, size2: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    if size1 == 0 || size1 >= size2 {
        return ranges;
    }
    // Invariant: lo < size1 <= hi, so the loop ends when the range is exactly the part of the
    // old tree it holds.
    let (mut lo, mut hi) = (0, size2);
    while hi != size1 {
        let mid = lo + split(hi - lo);
        if size1 <= mid {
            ranges.push((mid, hi));
            hi = mid;
        } else {
            ranges.push((lo, mid));
            lo = mid;
        }
    }
    // SUBPROOF's flag `b`: a range starting at 0 is the whole old tree, whose root the verifier
    // already has; any other needs its root in the proof.
    if lo != 0 {
        ranges.push((lo, hi));
    }
    ranges.reverse();
    ranges
}

/// Appends the stored indexes of the perfect subtrees that make up leaves `[lo, hi)`, largest
/// first. Every range the RFC's recursive split produces starts at a multiple of its largest
/// perfect subtree, so each is a stored node.
fn cover(mut lo: u64, hi: u64, indexes: &mut Vec<u64>) {
    while lo < hi {
        let level = 63 - (hi - lo).leading_zeros();
        indexes.push(stored_hash_index(level, lo >> level));
        lo += 1 << level;
    }
}

/// The root of a range from the hashes of its [`cover`], largest first: each subtree is the left
/// child of the rest. An empty range is the empty tree.
fn fold(hashes: &[Hash]) -> Hash {
    let Some((last, rest)) = hashes.split_last() else {
        return EMPTY_ROOT;
    };
    rest.iter()
        .rev()
        .fold(*last, |right, left| node_hash(left, &right))
}

/// The roots of `ranges`, read in one call.
fn read_ranges<R: HashReader + ?Sized>(
    ranges: &[(u64, u64)],
    reader: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    let mut indexes = Vec::new();
    let mut counts = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        let before = indexes.len();
        cover(lo, hi, &mut indexes);
        counts.push(indexes.len() - before);
    }
    let mut hashes = read_exactly(reader, &indexes)?.into_iter();
    Ok(counts
        .into_iter()
        .map(|count| fold(&hashes.by_ref().take(count).collect::<Vec<_>>()))
        .collect())
}

/// One read, with the store's answer checked for length.
fn read_exactly<R: HashReader + ?Sized>(
    reader: &R,
    indexes: &[u64],
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = reader.read_hashes(indexes).map_err(TreeError::Read)?;
    if hashes.len() != indexes.len() {
        return Err(TreeError::WrongCount {
            asked: indexes.len(),
            got: hashes.len(),
        });
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// The stored hashes of one tree in memory, counting what is read.
    #[derive(Default)]
    struct Store {
        hashes: Vec<Hash>,
        size: u64,
        calls: Cell<usize>,
        indexes_read: Cell<usize>,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Missing(u64);

    impl HashReader for Store {
        type Error = Missing;

        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Missing> {
            self.calls.set(self.calls.get() + 1);
            self.indexes_read
                .set(self.indexes_read.get() + indexes.len());
            indexes
                .iter()
                .map(|&i| {
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| self.hashes.get(i))
                        .copied()
                        .ok_or(Missing(i))
                })
                .collect()
        }
    }

    impl Store {
        fn with(leaves: &[Hash]) -> Self {
            let mut store = Self::default();
            for leaf in leaves {
                store.append(leaf);
            }
            store
        }

        fn append(&mut self, leaf: &Hash) {
            assert_eq!(self.hashes.len() as u64, stored_hash_count(self.size));
            let new = stored_hashes(self.size, leaf, self).unwrap();
            assert_eq!(new.len() as u32, 1 + self.size.trailing_ones());
            self.hashes.extend(new);
            self.size += 1;
        }

        /// Calls and indexes read by `f`.
        fn reads<T>(&self, f: impl FnOnce(&Self) -> T) -> (T, usize, usize) {
            let (calls, indexes) = (self.calls.get(), self.indexes_read.get());
            let out = f(self);
            (
                out,
                self.calls.get() - calls,
                self.indexes_read.get() - indexes,
            )
        }
    }

    // RFC 6962 §2.1 written out literally, to check the stored-tree code against.

    fn naive_split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest(b"").into(),
            1 => leaves[0],
            n => {
                let k = naive_split(n);
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = naive_split(n);
        let (mut proof, sibling) = if m < k {
            (path(m, &leaves[..k]), mth(&leaves[k..]))
        } else {
            (path(m - k, &leaves[k..]), mth(&leaves[..k]))
        };
        proof.push(sibling);
        proof
    }

    fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { Vec::new() } else { vec![mth(leaves)] };
        }
        let k = naive_split(n);
        let (mut proof, sibling) = if m <= k {
            (subproof(m, &leaves[..k], b), mth(&leaves[k..]))
        } else {
            (subproof(m - k, &leaves[k..], false), mth(&leaves[..k]))
        };
        proof.push(sibling);
        proof
    }

    /// RFC 6962 `PROOF(m, D[n])`, empty for m = 0 (and m = n) by convention.
    fn consistency(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        if m == 0 {
            Vec::new()
        } else {
            subproof(m, leaves, true)
        }
    }

    #[test]
    fn compact_ranges_give_every_root_and_carry_on_from_a_stored_prefix() {
        let leaves = test_leaves(70);
        let store = Store::with(&leaves);
        let mut range = CompactRange::new();
        assert_eq!(range.root(), EMPTY_ROOT);
        for (n, leaf) in leaves.iter().enumerate() {
            assert!(range.append(leaf));
            let size = n as u64 + 1;
            assert_eq!(range.size(), size);
            assert_eq!(range.root(), mth(&leaves[..=n]), "size {size}");
            assert_eq!(range.hashes(), compact_range(size, &store).unwrap());
        }
        for from in 0..70u64 {
            let prefix = compact_range(from, &store).unwrap();
            assert_eq!(prefix.len() as u32, from.count_ones());
            let mut range = CompactRange::from_prefix(from, prefix).unwrap();
            for leaf in &leaves[from as usize..] {
                range.append(leaf);
            }
            assert_eq!(range.root(), mth(&leaves), "from {from}");
        }
        assert!(CompactRange::from_prefix(5, vec![[0; 32]]).is_err());
        assert!(CompactRange::from_prefix(4, vec![[0; 32]; 2]).is_err());
        assert!(compact_range(71, &store).is_err());
    }

    fn test_leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("vdx test entry {i}\n").as_bytes()))
            .collect()
    }

    fn h(text: &str) -> Hash {
        crate::hex::decode::<32>(text).unwrap()
    }

    /// An inclusion claim as an auditor gets it.
    #[derive(Clone)]
    struct Inclusion {
        what: String,
        leaf: Hash,
        index: u64,
        size: u64,
        proof: Vec<Hash>,
        root: Hash,
    }

    impl Inclusion {
        fn verify(&self) -> Result<(), MerkleError> {
            verify_inclusion(&self.leaf, self.index, self.size, &self.proof, &self.root)
        }

        fn but(&self, what: &str, change: impl FnOnce(&mut Self)) -> Self {
            let mut bad = self.clone();
            bad.what = what.to_owned();
            change(&mut bad);
            bad
        }
    }

    /// A consistency claim as an auditor gets it.
    #[derive(Clone)]
    struct Consistency {
        what: String,
        size1: u64,
        size2: u64,
        proof: Vec<Hash>,
        root1: Hash,
        root2: Hash,
    }

    impl Consistency {
        fn verify(&self) -> Result<(), MerkleError> {
            verify_consistency(
                self.size1,
                self.size2,
                &self.proof,
                &self.root1,
                &self.root2,
            )
        }

        fn but(&self, what: &str, change: impl FnOnce(&mut Self)) -> Self {
            let mut bad = self.clone();
            bad.what = what.to_owned();
            change(&mut bad);
            bad
        }
    }

    /// transparency-dev/merkle's `sha256SomeHash` (proof/verify_test.go): an arbitrary hash.
    const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";
    const ZERO: Hash = [0; 32];

    /// The proof with one bit flipped: every bit of every element (`all`), or two bits of each
    /// element, placed differently for each proof length and element.
    fn bit_flips(proof: &[Hash], all: bool) -> Vec<(String, Vec<Hash>)> {
        let mut flips = Vec::new();
        for element in 0..proof.len() {
            if all {
                flips.extend((0..256).map(|bit| (element, bit)));
            } else {
                let bit = (element * 37 + proof.len() * 101) % 256;
                flips.extend([(element, bit), (element, 255 - bit)]);
            }
        }
        flips
            .into_iter()
            .map(|(element, bit)| {
                let mut bad = proof.to_vec();
                bad[element][bit / 8] ^= 1 << (bit % 8);
                (format!("proof[{element}] bit {bit}"), bad)
            })
            .collect()
    }

    /// The tampered claims transparency-dev/merkle tries in `corruptInclusionProof`
    /// (proof/verify_test.go), plus more bit flips and a dropped first element.
    fn tampered_inclusions(good: &Inclusion, all_bits: bool) -> Vec<Inclusion> {
        let mut bad = vec![
            good.but("index - 1", |c| c.index = c.index.wrapping_sub(1)),
            good.but("index + 1", |c| c.index += 1),
            good.but("index ^ 2", |c| c.index ^= 2),
            good.but("size * 2", |c| c.size *= 2),
            good.but("size / 2", |c| c.size /= 2),
            good.but("wrong leaf", |c| c.leaf = leaf_hash(b"WrongLeaf")),
            good.but("empty root", |c| c.root = EMPTY_ROOT),
            good.but("random root", |c| c.root = h(SOME_HASH)),
            good.but("trailing garbage", |c| c.proof.push(ZERO)),
            good.but("trailing root", |c| c.proof.push(c.root)),
            good.but("preceding garbage", |c| c.proof.insert(0, ZERO)),
            good.but("preceding root", |c| c.proof.insert(0, c.root)),
        ];
        if !good.proof.is_empty() {
            bad.push(good.but("removed last", |c| {
                c.proof.pop();
            }));
            bad.push(good.but("removed first", |c| {
                c.proof.remove(0);
            }));
        }
        if good.proof.len() > 1 {
            bad.push(good.but("inserted", |c| c.proof.insert(1, h(SOME_HASH))));
        }
        for (what, proof) in bit_flips(&good.proof, all_bits) {
            bad.push(good.but(&what, |c| c.proof = proof));
        }
        bad
    }

    /// The tampered claims transparency-dev/merkle tries in `corruptConsistencyProof`
    /// (proof/verify_test.go), plus more bit flips and a dropped first element. For non-empty
    /// proofs only (as there).
    fn tampered_consistencies(good: &Consistency, all_bits: bool) -> Vec<Consistency> {
        let wrong = leaf_hash(b"WrongRoot");
        let first = good.proof[0];
        let mut bad = vec![
            good.but("size1 - 1", |c| c.size1 -= 1),
            good.but("size1 + 1", |c| c.size1 += 1),
            good.but("size1 ^ 2", |c| c.size1 ^= 2),
            good.but("size2 * 2", |c| c.size2 *= 2),
            good.but("size2 / 2", |c| c.size2 /= 2),
            good.but("wrong root1", |c| c.root1 = wrong),
            good.but("wrong root2", |c| c.root2 = wrong),
            good.but("swapped roots", |c| {
                std::mem::swap(&mut c.root1, &mut c.root2)
            }),
            good.but("empty proof", |c| c.proof.clear()),
            good.but("trailing garbage", |c| c.proof.push(ZERO)),
            good.but("trailing root1", |c| c.proof.push(c.root1)),
            good.but("trailing root2", |c| c.proof.push(c.root2)),
            good.but("preceding garbage", |c| c.proof.insert(0, ZERO)),
            good.but("preceding root1", |c| c.proof.insert(0, c.root1)),
            good.but("preceding root2", |c| c.proof.insert(0, c.root2)),
            good.but("preceding proof[0]", |c| c.proof.insert(0, first)),
            good.but("truncated", |c| {
                c.proof.pop();
            }),
            good.but("removed first", |c| {
                c.proof.remove(0);
            }),
        ];
        for (what, proof) in bit_flips(&good.proof, all_bits) {
            bad.push(good.but(&what, |c| c.proof = proof));
        }
        bad
    }

    // Known answers: the eight-leaf RFC 6962 test tree of Google's Merkle code, as published in
    // github.com/transparency-dev/merkle, file `proof/verify_test.go` (variables `leaves`,
    // `roots`, `inclusionProofs`, `consistencyProofs`; read at commit
    // 02194e9afb6c1d95b5381350007963aa70fff472).

    const KAT_LEAVES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];

    /// Roots of the trees of sizes 1 to 8.
    const KAT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// `(leaf number counted from 1, as in the source; tree size; audit path)`.
    const KAT_INCLUSION: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            3,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            2,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    /// `(size1, size2, consistency proof)`.
    const KAT_CONSISTENCY: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    fn kat_store() -> (Vec<Hash>, Store) {
        let leaves: Vec<Hash> = KAT_LEAVES.iter().map(|entry| leaf_hash(entry)).collect();
        let store = Store::with(&leaves);
        (leaves, store)
    }

    #[test]
    fn the_empty_root_is_sha256_of_nothing() {
        assert_eq!(EMPTY_ROOT, <[u8; 32]>::from(Sha256::digest(b"")));
        assert_eq!(
            EMPTY_ROOT,
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        let store = Store::default();
        let (root, calls, _) = store.reads(|s| tree_root(0, s));
        assert_eq!(root, Ok(EMPTY_ROOT));
        assert_eq!(calls, 0, "the empty tree needs no storage");
    }

    #[test]
    fn published_roots_for_sizes_1_to_8() {
        let (leaves, store) = kat_store();
        for (size, root) in (1..=8).zip(KAT_ROOTS) {
            assert_eq!(tree_root(size, &store), Ok(h(root)), "size {size}");
            assert_eq!(mth(&leaves[..size as usize]), h(root), "naive, size {size}");
        }
    }

    #[test]
    fn published_inclusion_proofs_are_ours_and_only_they_verify() {
        let (leaves, store) = kat_store();
        for (number, size, path) in KAT_INCLUSION {
            let index = number - 1;
            let proof: Vec<Hash> = path.iter().map(|hash| h(hash)).collect();
            assert_eq!(prove_inclusion(index, size, &store), Ok(proof.clone()));
            let good = Inclusion {
                what: "published".to_owned(),
                leaf: leaves[index as usize],
                index,
                size,
                proof,
                root: h(KAT_ROOTS[size as usize - 1]),
            };
            assert_eq!(good.verify(), Ok(()), "leaf {index} of {size}");
            for bad in tampered_inclusions(&good, true) {
                assert!(
                    bad.verify().is_err(),
                    "{}: leaf {index} of {size}",
                    bad.what
                );
            }
        }
    }

    #[test]
    fn published_consistency_proofs_are_ours_and_only_they_verify() {
        let (_, store) = kat_store();
        for (size1, size2, hashes) in KAT_CONSISTENCY {
            let proof: Vec<Hash> = hashes.iter().map(|hash| h(hash)).collect();
            assert_eq!(prove_consistency(size1, size2, &store), Ok(proof.clone()));
            let good = Consistency {
                what: "published".to_owned(),
                size1,
                size2,
                proof,
                root1: h(KAT_ROOTS[size1 as usize - 1]),
                root2: h(KAT_ROOTS[size2 as usize - 1]),
            };
            assert_eq!(good.verify(), Ok(()), "{size1} to {size2}");
            if !good.proof.is_empty() {
                for bad in tampered_consistencies(&good, true) {
                    assert!(bad.verify().is_err(), "{}: {size1} to {size2}", bad.what);
                }
            }
        }
    }

    /// Real Certificate Transparency proofs, which Go's tlog checks in `sumdb/tlog/ct_test.go`:
    /// responses of Google's Argon 2020 log (get-sth, get-entries for leaf 10000,
    /// get-proof-by-hash, get-sth-consistency?first=3654490) published in
    /// github.com/golang/mod, `sumdb/tlog/testdata/argon2020/` files `sth.json`, `entries.json`,
    /// `proof.json` and `consistency.json` (read at commit
    /// b5136e5ba156da612a1efc6e49b55988a134a5e0); the older root is the one `ct_test.go` states.
    #[test]
    fn real_certificate_transparency_proofs_verify() {
        use base64::Engine as _;
        let b64 = |text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap()
        };
        let hash = |text: &str| -> Hash { b64(text).try_into().unwrap() };
        let size = 961_984_013;
        let root = hash("dwlueapdd7LaOEnX2W2Wp9v2XE+KzejHRQGHwEx0oaM=");
        let entry = b64(ARGON2020_LEAF_10000);
        let audit_path: Vec<Hash> = ARGON2020_AUDIT_PATH.iter().map(|h| hash(h)).collect();
        assert_eq!(
            verify_inclusion(&leaf_hash(&entry), 10_000, size, &audit_path, &root),
            Ok(())
        );
        assert_eq!(
            verify_inclusion(&leaf_hash(&entry), 10_001, size, &audit_path, &root),
            Err(MerkleError::RootMismatch)
        );
        let old_size = 3_654_490;
        let old_root = hash("AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=");
        let consistency: Vec<Hash> = ARGON2020_CONSISTENCY.iter().map(|h| hash(h)).collect();
        assert_eq!(
            verify_consistency(old_size, size, &consistency, &old_root, &root),
            Ok(())
        );
        assert_eq!(
            verify_consistency(old_size, size, &consistency, &root, &root),
            Err(MerkleError::OldRootMismatch)
        );
    }

    const ARGON2020_LEAF_10000: &str = concat!(
        "AAAAAAFelPhqUwAAAAViMIIFXjCCBEagAwIBAgIRAOodHzZdqWIFzYyl/SovhCMwDQYJKoZIhvcNAQELBQAwgZAx",
        "CzAJBgNVBAYTAkdCMRswGQYDVQQIExJHcmVhdGVyIE1hbmNoZXN0ZXIxEDAOBgNVBAcTB1NhbGZvcmQxGjAYBgNV",
        "BAoTEUNPTU9ETyBDQSBMaW1pdGVkMTYwNAYDVQQDEy1DT01PRE8gUlNBIERvbWFpbiBWYWxpZGF0aW9uIFNlY3Vy",
        "ZSBTZXJ2ZXIgQ0EwHhcNMTcwMjE1MDAwMDAwWhcNMjAwNDE2MjM1OTU5WjBfMSEwHwYDVQQLExhEb21haW4gQ29u",
        "dHJvbCBWYWxpZGF0ZWQxHTAbBgNVBAsTFFBvc2l0aXZlU1NMIFdpbGRjYXJkMRswGQYDVQQDDBIqLmxhbmRsb3Jk",
        "cy5jb20uYXUwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCtPBKKHj4zdrGlCjgTHzb5gx9JCs97DwvB",
        "z60f14gDufF2haWbOxyJ0a3opAMsZnOr8HkARVCwxdqG/PTfACcb0QM7FOlzvxGqxataTYiChwvkkif8F9GlJw69",
        "HuHgzhusPf1Ytfk3ps1PRC14MkyrS4kwPrk/Le4XdkqRpRw62wG4V6IkbzsNMEOl1H8EgUbfyapdOcVxHjIzvBVy",
        "56fBRKG05Fr5wNq3Acak5kYZdNsLhhmlrqAfAjiombW3hb3V5blJdRC0BDdYHv2+zKey6LqJ1FDoXo6IzbzPpC+a",
        "ifZy47YX+/N1U64Qn5xlDg7mOP8JXfkNJHbU1TJZHif5AgMBAAGjggHhMIIB3TAfBgNVHSMEGDAWgBSQr2o6lFoL",
        "2JDqElZz30O0Oija5zAdBgNVHQ4EFgQUNQSLjkoz01I+iuuoC5lgEp0anhcwDgYDVR0PAQH/BAQDAgWgMAwGA1Ud",
        "EwEB/wQCMAAwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCME8GA1UdIARIMEYwOgYLKwYBBAGyMQECAgcw",
        "KzApBggrBgEFBQcCARYdaHR0cHM6Ly9zZWN1cmUuY29tb2RvLmNvbS9DUFMwCAYGZ4EMAQIBMFQGA1UdHwRNMEsw",
        "SaBHoEWGQ2h0dHA6Ly9jcmwuY29tb2RvY2EuY29tL0NPTU9ET1JTQURvbWFpblZhbGlkYXRpb25TZWN1cmVTZXJ2",
        "ZXJDQS5jcmwwgYUGCCsGAQUFBwEBBHkwdzBPBggrBgEFBQcwAoZDaHR0cDovL2NydC5jb21vZG9jYS5jb20vQ09N",
        "T0RPUlNBRG9tYWluVmFsaWRhdGlvblNlY3VyZVNlcnZlckNBLmNydDAkBggrBgEFBQcwAYYYaHR0cDovL29jc3Au",
        "Y29tb2RvY2EuY29tMC8GA1UdEQQoMCaCEioubGFuZGxvcmRzLmNvbS5hdYIQbGFuZGxvcmRzLmNvbS5hdTANBgkq",
        "hkiG9w0BAQsFAAOCAQEACyHqxUzrexToY7tOv4+kyGPP2D27P1tQpyzeAl1bPObiMhNK2b9vvBLDWAaqm8c0YL1h",
        "+DBdLoWzf3xFsIkTCVCjWJTNSNlcYtgRk6or1s7jWsfXzWqsnPjPPmTIOCw7EfH7Yme3oxPs3UUsmShAgPwNohAt",
        "L9GqlqMiKM6v1WU3NHt01jEoNP23LRa6KeNK6AH6WHJykzL223IlhgXjHTeuQj6lR+TNrQXJuhwTXYe+20rrpPQx",
        "c1Pn7AqnvfWgmicRQ7gdIcr4V6+ecTvLfNOaJ0ZYe5G5giuAAdTm7F57pk04f4gyZNYKrj88mvbkoriN8b6jcWEx",
        "trYO6bm2TwAA",
    );

    const ARGON2020_AUDIT_PATH: [&str; 30] = [
        "T46AmJsuOM/gFiGlUp+IJJebp+1Z5qratFNW7U0JyOQ=",
        "9Jj1Feodn42uRYEfffkV4HF/EIPFQ5Zo9IwkxbQ2uhk=",
        "D53/1oCNebF4J59HHgioovKZxrmrKcVuCVhy3Izg8Ck=",
        "wSFDgGSrsXRPA+1c8WHoAFCsWeUv8NDyP/Q/SgsyVyY=",
        "516/RcwsgdwdzHn18v1dJHqBkgFUbNhmCIWOGjsMJaE=",
        "naTFY2ajLFgrgs5XUl+zJYZnnlJksLGsA1VYwpLfqbY=",
        "mKBRJo6qao+0Kdh/rhGkZUbHUAxMhrtrclrTpIbNjIg=",
        "Co4ueOFE7lpifLio94irxxsv1wFMMaK3tPu2ZQkHlro=",
        "yRgy800K6JMYCC05sWfqF2kvCg2riT/pVM+nEa6V5+0=",
        "n2O38XJZC8/Wpbwi9HhgVizlUyeUHVZvYyQB1607MRc=",
        "go3tAjuNfNSCj87y2Rg1xOroDknGN1eaf3cgvzObf7Q=",
        "8D0Mj3/J7ySSnFb0afIHYXv6rlOhECnsebY6XKi1IR8=",
        "6rcez46ZU8M5vPiWVMAUfJfAOV0pPP/mch/lYzZhj/M=",
        "2rtIeXrPvSdUyHc5maIgSAVB2BzaKaupWxSAiVayDE4=",
        "nniW/IMFQPN5xw8UsHFn7CRStYbm1gLu7NNa6kkRqJQ=",
        "mRPPi7sQS22MduIEyvcNzCNFqIt6kLwYPkNKrVtIcu8=",
        "JvTivzESNS9wHI8aph5a7uieVmtS/p9PciMZ5D6GyOo=",
        "UTyQd+Ym0wY4zG+qK806bBORwi1CSVvFQ/KknnqoZj8=",
        "hXODrqN+ff+U6zPqRQ+ZQKs6im1fPcxIerDSfNwflhE=",
        "II6GE+WY/DrpZzfHztLwkR46o37zVkNLCyPYlf68zA0=",
        "d609kWWcNBllbA8Jb/ad4XAVVGnScLRmtP8FYyr+Dck=",
        "rikBsP0G0gioXRpBFED2CzQdSLrGPvRd0bEcbEZw1rI=",
        "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=",
        "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
        "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=",
        "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
        "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=",
        "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
        "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=",
        "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
    ];

    const ARGON2020_CONSISTENCY: [&str; 30] = [
        "80Sfbj6UQEdVSZCSIgh9NMPj3vCBzcc1A48B2crJSWg=",
        "FZcrgAHUk6nNPviJZq8kEK6jCG1d18pJOFE45ZDc1TQ=",
        "Q67reWXmPBo1UfmwBap4Xi9PMPfFdUSSw3WGlRZdG7k=",
        "eJ7CyhR4PxzBxDIsWgrVYW1eFUb9ndgf46tFmiqVrxA=",
        "QrDwp062Grm5WY8KdrhFsBuuNjGzRox2Jb8PmVL5OYw=",
        "XM4YMjMEdLH/XJam/ZWyaP14k3cmsOtnPsOWQ54lW1s=",
        "SGiBh+jOTGccXU48ZzgQ88lRcBmtB4wz4oSDndv2QTg=",
        "WAS6txqNLYKGL1GdBdpqmV42TTfn6cJsuDsqLXuTCNI=",
        "QFmRS0rirUA7ZN3lxFjDncV+E1OCrn3NUB4RCp+5fzc=",
        "Hdbp7It2XBNZmNDBpCN/KPd7vfVqxgzwOosqVIaEA9E=",
        "mxvHL0ZiblBdD7j7pIa1jlfB0gSqfJ6oX0UGo7L0VsU=",
        "q5hjyvoW6TL/PThgcitpDcSTrnKX2p1+aqscqH2euRA=",
        "jTOWDqt3IHj2NVFeezyBz2ofpru+ztEywqKUAfFclKI=",
        "GIRn0w3HqJdvU9j1WVD//eR6lk2AaTVjyzjsJNP8U88=",
        "x52GJvxG81fnQBrgOTbll1A5tz95/LXK0Ag1NhB0r1I=",
        "6/0OqrcTgc3o5dD5PymmoC96lB9yLPFuTHVvLy8fSGk=",
        "Gf+iKLfcXO5l4JEFmsZvSdG5q1uEeWPfYLrds6pmjz0=",
        "DGuaco+McyM3AfRSF6qX7RwSetwe2ieYJmxw5e9rVx0=",
        "2tQJ9V32hnYp+fdpP6TcjmgJmLeNVOMKM0Ml1kk4cNU=",
        "3PapK+IkyJr8I9yAErAmzuZezzLMzsg+PfeRCgNW8NQ=",
        "s6xiYeejb+wtqHA+URJZ2I/SCPyIW8coP6aB00FJbMY=",
        "z9lSpmdTcr5M5ZzKlc4EPh3SrSypKFdk6JUF/UccaZU=",
        "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=",
        "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
        "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=",
        "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
        "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=",
        "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
        "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=",
        "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
    ];

    #[test]
    fn stored_hash_numbering_is_the_append_order() {
        // (level, position) in the order appends write them: leaf 0; leaf 1, its pair; leaf 2;
        // leaf 3, its pair, the four; leaf 4.
        let order = [
            (0, 0),
            (0, 1),
            (1, 0),
            (0, 2),
            (0, 3),
            (1, 1),
            (2, 0),
            (0, 4),
        ];
        for (index, (level, position)) in order.into_iter().enumerate() {
            assert_eq!(stored_hash_index(level, position), index as u64);
        }
        let counts: Vec<u64> = (0..9).map(stored_hash_count).collect();
        assert_eq!(counts, [0, 1, 3, 4, 7, 8, 10, 11, 15]);
    }

    #[test]
    fn the_store_holds_every_complete_subtree_exactly_once() {
        const N: usize = 130;
        let leaves = test_leaves(N);
        let mut store = Store::default();
        for n in 0..=N {
            let mut seen = vec![false; store.hashes.len()];
            for level in 0..8u32 {
                let width = 1 << level;
                for position in 0..n / width {
                    let index = stored_hash_index(level, position as u64) as usize;
                    let subtree = &leaves[position * width..(position + 1) * width];
                    assert_eq!(store.hashes[index], mth(subtree), "size {n}");
                    assert!(!seen[index], "size {n}: index {index} used twice");
                    seen[index] = true;
                }
            }
            assert!(
                seen.iter().all(|&s| s),
                "size {n}: a stored hash is no subtree"
            );
            if n < N {
                let before = store.indexes_read.get();
                store.append(&leaves[n]);
                let read = store.indexes_read.get() - before;
                assert_eq!(read as u32, (n as u64).trailing_ones(), "append {n}");
            }
        }
    }

    #[test]
    fn every_root_and_proof_up_to_64_leaves_is_rfc6962s_and_verifies() {
        const N: usize = 64;
        let leaves = test_leaves(N);
        // One store of 64 leaves answers for every smaller tree.
        let store = Store::with(&leaves);
        for t in 0..=N {
            let root = mth(&leaves[..t]);
            let bits = (64 - (t as u64).leading_zeros()) as usize;
            let (got, _, read) = store.reads(|s| tree_root(t as u64, s));
            assert_eq!(got, Ok(root), "size {t}");
            assert_eq!(read, t.count_ones() as usize);
            for i in 0..t {
                let (proof, _, read) = store.reads(|s| prove_inclusion(i as u64, t as u64, s));
                let proof = proof.unwrap();
                assert!(read <= 2 * bits, "leaf {i} of {t}: {read} read");
                assert_eq!(proof, path(i, &leaves[..t]), "leaf {i} of {t}");
                assert_eq!(
                    verify_inclusion(&leaves[i], i as u64, t as u64, &proof, &root),
                    Ok(()),
                    "leaf {i} of {t}"
                );
            }
            for m in 0..=t {
                let (proof, _, read) = store.reads(|s| prove_consistency(m as u64, t as u64, s));
                let proof = proof.unwrap();
                assert!(read <= 2 * bits, "{m} to {t}: {read} read");
                assert_eq!(proof, consistency(m, &leaves[..t]), "{m} to {t}");
                assert_eq!(
                    verify_consistency(m as u64, t as u64, &proof, &mth(&leaves[..m]), &root),
                    Ok(()),
                    "{m} to {t}"
                );
            }
        }
    }

    #[test]
    fn tampered_inclusion_proofs_up_to_64_leaves_are_refused() {
        const N: usize = 64;
        let leaves = test_leaves(N);
        let store = Store::with(&leaves);
        let roots: Vec<Hash> = (0..=N).map(|t| mth(&leaves[..t])).collect();
        // Equal to the naive `PATH`, as checked above.
        let paths: Vec<Vec<Vec<Hash>>> = (0..=N as u64)
            .map(|t| {
                (0..t)
                    .map(|i| prove_inclusion(i, t, &store).unwrap())
                    .collect()
            })
            .collect();
        for t in 1..=N {
            for i in 0..t {
                let good = Inclusion {
                    what: "good".to_owned(),
                    leaf: leaves[i],
                    index: i as u64,
                    size: t as u64,
                    proof: paths[t][i].clone(),
                    root: roots[t],
                };
                for bad in tampered_inclusions(&good, t <= 8) {
                    assert!(bad.verify().is_err(), "{}: leaf {i} of {t}", bad.what);
                }
                for j in (0..N as u64 + 2).filter(|&j| j != i as u64) {
                    let other_index =
                        verify_inclusion(&leaves[i], j, t as u64, &good.proof, &roots[t]);
                    assert!(other_index.is_err(), "index {j}: leaf {i} of {t}");
                }
                let other_leaf = good.but("", |c| c.leaf = leaves[(i + 1) % N]);
                assert!(other_leaf.verify().is_err(), "next leaf: leaf {i} of {t}");
                // Against another checkpoint (another size with its own root) a proof passes
                // only if it is that tree's proof too. (Against the same root, a neighbouring
                // size can pass — leaf 0 of 3 and of 4 take the same steps — which is why the
                // size must come from the signed checkpoint.)
                for t2 in (i + 1..=N).filter(|&t2| t2 != t) {
                    let other =
                        verify_inclusion(&leaves[i], i as u64, t2 as u64, &good.proof, &roots[t2]);
                    assert_eq!(
                        other.is_ok(),
                        good.proof == paths[t2][i],
                        "size {t2}: leaf {i} of {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn tampered_consistency_proofs_up_to_64_leaves_are_refused() {
        const N: usize = 64;
        let leaves = test_leaves(N);
        let store = Store::with(&leaves);
        let roots: Vec<Hash> = (0..=N).map(|t| mth(&leaves[..t])).collect();
        // Equal to the naive `PROOF`, as checked above.
        let proofs: Vec<Vec<Vec<Hash>>> = (0..=N as u64)
            .map(|t| {
                (0..=t)
                    .map(|m| prove_consistency(m, t, &store).unwrap())
                    .collect()
            })
            .collect();
        for t in 0..=N {
            for m in 0..=t {
                let good = Consistency {
                    what: "good".to_owned(),
                    size1: m as u64,
                    size2: t as u64,
                    proof: proofs[t][m].clone(),
                    root1: roots[m],
                    root2: roots[t],
                };
                if good.proof.is_empty() {
                    let bad = [
                        good.but("garbage", |c| c.proof.push(ZERO)),
                        good.but("root", |c| c.proof.push(c.root2)),
                        good.but("wrong root1", |c| c.root1 = h(SOME_HASH)),
                    ];
                    for bad in bad {
                        assert!(bad.verify().is_err(), "{}: {m} to {t}", bad.what);
                    }
                } else {
                    for bad in tampered_consistencies(&good, t <= 8) {
                        assert!(bad.verify().is_err(), "{}: {m} to {t}", bad.what);
                    }
                }
                // Against other checkpoints (other sizes with their own roots) a proof passes
                // only if it is also their proof, e.g. the empty proof from 0 or to itself.
                for m2 in 0..=t {
                    let other =
                        verify_consistency(m2 as u64, t as u64, &good.proof, &roots[m2], &roots[t]);
                    assert_eq!(
                        other.is_ok(),
                        good.proof == proofs[t][m2],
                        "from {m2}: {m} to {t}"
                    );
                }
                for t2 in m..=N {
                    let other =
                        verify_consistency(m as u64, t2 as u64, &good.proof, &roots[m], &roots[t2]);
                    assert_eq!(
                        other.is_ok(),
                        good.proof == proofs[t2][m],
                        "to {t2}: {m} to {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn impossible_requests_and_faulty_stores_are_errors() {
        let leaves = test_leaves(5);
        let store = Store::with(&leaves);
        assert_eq!(
            prove_inclusion(5, 5, &store),
            Err(TreeError::Invalid(MerkleError::IndexOutOfRange {
                index: 5,
                size: 5
            }))
        );
        assert_eq!(
            prove_consistency(3, 2, &store),
            Err(TreeError::Invalid(MerkleError::SizesOutOfOrder {
                size1: 3,
                size2: 2
            }))
        );
        assert_eq!(
            tree_root(MAX_TREE_SIZE + 1, &store),
            Err(TreeError::TooLarge {
                size: MAX_TREE_SIZE + 1
            })
        );
        assert_eq!(
            stored_hashes(u64::MAX, &leaves[0], &store),
            Err(TreeError::TooLarge { size: u64::MAX })
        );
        // A size the store has not reached.
        assert!(matches!(
            tree_root(6, &store),
            Err(TreeError::Read(Missing(_)))
        ));
        // A store that answers with one hash too few.
        struct Short;
        impl HashReader for Short {
            type Error = Missing;
            fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Missing> {
                Ok(vec![ZERO; indexes.len() - 1])
            }
        }
        assert_eq!(
            tree_root(3, &Short),
            Err(TreeError::WrongCount { asked: 2, got: 1 })
        );
        // With a real store's error (the node's database error, say) it is a std error.
        let read: TreeError<std::io::Error> = TreeError::Read(std::io::Error::other("disk"));
        let read: &dyn std::error::Error = &read;
        assert_eq!(read.to_string(), "reading stored tree hashes failed");
        assert_eq!(
            read.source().map(ToString::to_string).as_deref(),
            Some("disk")
        );

        // Absurd claims are refused without panicking.
        let big = [ZERO; 70];
        for size in [u64::MAX, u64::MAX - 1, 1 << 63, MAX_TREE_SIZE + 1] {
            for index in [0, 1, size / 2, size - 1, size] {
                for len in [0, 1, 62, 63, 64, 70] {
                    assert!(verify_inclusion(&ZERO, index, size, &big[..len], &ZERO).is_err());
                    let other = h(SOME_HASH);
                    assert!(verify_consistency(index, size, &big[..len], &ZERO, &other).is_err());
                }
            }
        }
        assert_eq!(
            verify_inclusion(&ZERO, 0, 0, &[], &EMPTY_ROOT),
            Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
        );

        // Size 0 is consistent with everything, but its root is the empty tree's.
        let root5 = mth(&leaves);
        assert_eq!(verify_consistency(0, 5, &[], &EMPTY_ROOT, &root5), Ok(()));
        assert_eq!(
            verify_consistency(0, 0, &[], &EMPTY_ROOT, &EMPTY_ROOT),
            Ok(())
        );
        assert_eq!(
            verify_consistency(0, 5, &[], &root5, &root5),
            Err(MerkleError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 0, &[], &EMPTY_ROOT, &root5),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(5, 5, &[], &root5, &EMPTY_ROOT),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(5, 5, &[root5], &root5, &root5),
            Err(MerkleError::ProofLength {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(
            MerkleError::ProofLength {
                expected: 3,
                got: 2
            }
            .to_string(),
            "the proof has 2 hashes where 3 are needed"
        );
    }

    #[test]
    fn a_hundred_thousand_leaves_cost_logarithmic_reads() {
        const N: u64 = 100_000;
        let started = std::time::Instant::now();
        // The store does not care where leaf hashes come from; these cost no hashing.
        let leaves: Vec<Hash> = (0..N)
            .map(|i| {
                let mut leaf = [0x5a; 32];
                leaf[..8].copy_from_slice(&i.to_be_bytes());
                leaf
            })
            .collect();
        let mut store = Store::default();
        for leaf in &leaves {
            store.append(leaf);
        }
        let appended = started.elapsed();
        // Under two stored hashes per leaf; each append read one fewer than it stored.
        assert_eq!(store.hashes.len() as u64, stored_hash_count(N));
        assert!(store.hashes.len() < 2 * N as usize);
        assert_eq!(store.indexes_read.get() as u64, stored_hash_count(N) - N);
        let root = mth(&leaves);
        assert_eq!(tree_root(N, &store), Ok(root));

        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let log = |size: u64| (64 - size.leading_zeros()) as usize;
        for _ in 0..300 {
            // Roots of any earlier size; each is tied to the full root by a consistency proof.
            let size = 1 + random(N);
            let (root_t, calls, read) = store.reads(|s| tree_root(size, s).unwrap());
            assert!(calls == 1 && read <= log(size), "root {size}: {read} read");
            let (proof, calls, read) = store.reads(|s| prove_consistency(size, N, s).unwrap());
            assert!(
                calls <= 1 && read <= 2 * log(N),
                "{size} to {N}: {read} read"
            );
            assert_eq!(verify_consistency(size, N, &proof, &root_t, &root), Ok(()));

            let index = random(size);
            let (proof, calls, read) = store.reads(|s| prove_inclusion(index, size, s).unwrap());
            assert!(
                calls <= 1 && read <= 2 * log(size),
                "leaf {index} of {size}: {read}"
            );
            let leaf = &leaves[index as usize];
            assert_eq!(verify_inclusion(leaf, index, size, &proof, &root_t), Ok(()));

            let size1 = random(size + 1);
            let root1 = tree_root(size1, &store).unwrap();
            let (proof, calls, read) = store.reads(|s| prove_consistency(size1, size, s).unwrap());
            assert!(
                calls <= 1 && read <= 2 * log(size),
                "{size1} to {size}: {read} read"
            );
            assert_eq!(
                verify_consistency(size1, size, &proof, &root1, &root_t),
                Ok(())
            );
        }
        eprintln!(
            "{N} appends in {appended:?}, everything in {:?}",
            started.elapsed()
        );
    }
}
