//! The pass over `entries` (checks a to c of a bundle audit): framing, each entry's own shape,
//! index and time, and the hash chain of `prev` lines, which names the changed entry. Streams
//! the file, keeping only the tree's right edge and the roots the checkpoints will need.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use time::OffsetDateTime;
use vdx_protocol::bundle::{BundleError, EntryReader};
use vdx_protocol::ledger::Entry;
use vdx_protocol::merkle::{leaf_hash, CompactRange, Hash};

use super::Finding;

/// What the entries say once they passed checks a to c.
#[derive(Debug)]
pub(super) struct Recomputed {
    /// One past the last index.
    pub(super) end: u64,
    /// The recomputed root at each size asked for that lies within `from..=end`.
    pub(super) roots: HashMap<u64, Hash>,
    /// The last entry's time (none without entries).
    pub(super) last_time: Option<OffsetDateTime>,
}

/// Answers, for the localisation of a break at the last entry `k`: does a validly signed
/// checkpoint of size `k` exist, and does its root equal the given recomputed root?
pub(super) type Judge<'a> = dyn Fn(u64, &Hash) -> Option<bool> + 'a;

/// Reads every entry after `prefix` (the tree before the first one), checks it, and recomputes
/// the roots at `sizes`. The first problem is the finding.
pub(super) fn scan<R: BufRead>(
    entries: R,
    prefix: CompactRange,
    sizes: &HashSet<u64>,
    judge: &Judge<'_>,
) -> Result<Recomputed, Finding> {
    let from = prefix.size();
    let mut tree = prefix;
    let mut roots = HashMap::new();
    if sizes.contains(&from) {
        roots.insert(from, tree.root());
    }
    let mut reader = EntryReader::new(entries, from);
    let mut buf = Vec::new();
    let mut before: Option<(Hash, OffsetDateTime)> = None;
    loop {
        let index = reader.next_index();
        if !reader
            .read_into(&mut buf)
            .map_err(|e| framing(index, before.is_some(), &e))?
        {
            break;
        }
        let entry = Entry::parse(&buf)
            .map_err(|e| Finding::at(index, format!("not a well-formed entry: {e}")))?;
        if entry.index != index {
            return Err(Finding::at(
                index,
                format!(
                    "the entry at this position has index {}: an entry was deleted, inserted \
                     or moved here",
                    entry.index
                ),
            ));
        }
        let leaf = leaf_hash(&buf);
        if let Some((prev, prev_time)) = before {
            if entry.prev != Some(prev) {
                return Err(localise(&mut reader, index, &leaf, &tree.root(), judge));
            }
            if entry.time < prev_time {
                return Err(Finding::at(
                    index,
                    "its time is earlier than the entry before it's: times never decrease",
                ));
            }
        }
        before = Some((leaf, entry.time));
        if !tree.append(&leaf) {
            return Err(Finding::at(index, "the ledger is larger than 2^62 entries"));
        }
        if sizes.contains(&tree.size()) {
            roots.insert(tree.size(), tree.root());
        }
    }
    Ok(Recomputed {
        end: tree.size(),
        roots,
        last_time: before.map(|(_, time)| time),
    })
}

/// A framing error at `index`. When a `length` line is expected and a `field` line found, the
/// entry before was announced shorter than it is (its `length` line was changed); anything
/// else is this position's own framing.
fn framing(index: u64, after_an_entry: bool, e: &BundleError) -> Finding {
    match e {
        BundleError::LengthLine { found, .. } if after_an_entry && found.starts_with("field ") => {
            Finding::at(
                index - 1,
                format!(
                    "its length line is too short: the entry goes on after it ({found:?} where \
                     the next length line should be)"
                ),
            )
        }
        other => Finding::at(index, other.to_string()),
    }
}

/// The chain breaks at `k` (entry `k`'s `prev` is not entry `k - 1`'s leaf hash): either entry
/// `k - 1` was changed, or entry `k`'s own `prev` line. The next entry's `prev` tells which (it
/// matches entry `k` only if entry `k` is intact); for the last entry, the signed checkpoint of
/// size `k` does (`root_k` is the recomputed root of entries before `k`).
fn localise<R: BufRead>(
    reader: &mut EntryReader<R>,
    k: u64,
    leaf_k: &Hash,
    root_k: &Hash,
    judge: &Judge<'_>,
) -> Finding {
    let before = k - 1;
    let after = k + 1;
    let mut next = Vec::new();
    match reader.read_into(&mut next) {
        Ok(true) => match Entry::parse(&next) {
            Ok(e) if e.prev == Some(*leaf_k) => Finding::at(
                before,
                format!(
                    "changed: entry {k}'s prev line does not match its leaf hash, while entry \
                     {after}'s prev matches entry {k}"
                ),
            ),
            Ok(_) => Finding::at(
                k,
                format!(
                    "changed (its prev line): it does not match entry {before}, and entry \
                     {after}'s prev does not match it"
                ),
            ),
            Err(_) => Finding::at(
                k,
                format!(
                    "its prev line does not match entry {before} (entry {after} is unreadable, \
                     so entry {before} may be the changed one)"
                ),
            ),
        },
        Ok(false) => match judge(k, root_k) {
            Some(true) => Finding::at(
                k,
                format!(
                    "changed (its prev line): it does not match entry {before}, which the \
                     signed checkpoint of size {k} confirms"
                ),
            ),
            Some(false) => Finding::at(
                before,
                format!(
                    "changed: the last entry's prev line does not match it, and the signed \
                     checkpoint of size {k} does not match the entries before {k}"
                ),
            ),
            None => Finding::at(
                k,
                format!(
                    "its prev line does not match entry {before}; there is no signed \
                     checkpoint of size {k} to tell whether entry {before} or this line changed"
                ),
            ),
        },
        Err(_) => Finding::at(
            k,
            format!(
                "its prev line does not match entry {before} (entry {after} is unreadable, so \
                 entry {before} may be the changed one)"
            ),
        ),
    }
}
