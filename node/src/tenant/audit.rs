//! The security officer's questions to the ledger (DESIGN §5, `docs/ledger.md`), answered the
//! same way through the local API and offline (`vdx audit … --home` while the daemon is
//! stopped). Every answer is itself recorded as an `audit` entry: reading the ledger leaves a
//! trace in it.

use std::io::Write;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use vdx_protocol::bundle::{write_entry, Proof};
use vdx_protocol::ledger::{Actor, Checkpoint, Entry, EntryKind};
use vdx_protocol::{hex, utc, OrganCode};

use crate::store::{CheckpointError, Event, Store, StoreError};
use crate::tenant::receipts::ReceiptSigner;

/// Why an audit question could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A checkpoint could not be signed.
    #[error("signing a checkpoint: {0}")]
    Sign(#[from] vdx_crypto::Error),
    /// The question itself is wrong (a range past the end, an unknown id).
    #[error("{0}")]
    Bad(String),
    /// Writing the answer failed.
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
}

impl From<CheckpointError<vdx_crypto::Error>> for AuditError {
    fn from(e: CheckpointError<vdx_crypto::Error>) -> Self {
        match e {
            CheckpointError::Store(e) => Self::Store(e),
            CheckpointError::Sign(e) => Self::Sign(e),
        }
    }
}

/// Everything of a bundle but its entries (which are streamed): the range, the hashes of what
/// comes before it, the checkpoints in it, and who signed them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleParts {
    /// First entry.
    pub from: u64,
    /// One past the last entry.
    pub to: u64,
    /// The perfect subtrees covering entries `0..from`, left to right, standard base64.
    pub prefix: Vec<String>,
    /// Signed checkpoints of sizes `from..=to`, smallest first; always one of size `to` and one
    /// of size `to - 1` (so the verifier can tell which of the last two entries was changed).
    pub checkpoints: Vec<String>,
    /// The node's signing certificate, then the trust anchors (PEM).
    pub chain_pem: String,
}

/// The ledger's signer and where its certificate chain is.
pub struct Auditor<'a> {
    /// The store whose ledger is asked.
    pub store: &'a Store,
    /// Signs checkpoints.
    pub signer: &'a ReceiptSigner,
    /// The signing certificate's chain up to the trust anchors, PEM (for bundles).
    pub chain_pem: &'a str,
}

impl Auditor<'_> {
    /// The parts of a bundle of entries `from..to` (`to` defaults to everything durable),
    /// signing the checkpoints it needs; records the export.
    pub fn bundle(
        &self,
        from: u64,
        to: Option<u64>,
        actor: &Actor,
    ) -> Result<BundleParts, AuditError> {
        let durable = self.store.durable_ledger_size();
        let to = to.unwrap_or(durable);
        if from > to || to > durable {
            return Err(AuditError::Bad(format!(
                "the range {from}..{to} is not within the {durable} entries on disk"
            )));
        }
        for size in [to.saturating_sub(1), to] {
            if size >= from {
                self.checkpoint_at(size)?;
            }
        }
        let checkpoints = self
            .store
            .checkpoints(from, to)?
            .into_iter()
            .map(|(_, note)| String::from_utf8_lossy(&note).into_owned())
            .collect();
        let prefix = self
            .store
            .ledger_prefix(from)?
            .iter()
            .map(|h| base64::engine::general_purpose::STANDARD.encode(h))
            .collect();
        self.store.record(
            &Event::new(EntryKind::Audit, None, actor.clone())
                .field("query", "export")
                .field("from", from)
                .field("to", to),
        )?;
        Ok(BundleParts {
            from,
            to,
            prefix,
            checkpoints,
            chain_pem: self.chain_pem.to_owned(),
        })
    }

    /// Writes entries `from..to` in the bundle's `entries` format.
    pub fn write_entries(
        &self,
        from: u64,
        to: u64,
        out: &mut impl Write,
    ) -> Result<(), AuditError> {
        for entry in self.store.ledger_entries(from, to) {
            write_entry(out, &entry?)?;
        }
        Ok(())
    }

    /// Inclusion proofs (`vdx-proof/1` texts) of every entry about a dispatch, against a fresh
    /// checkpoint; records the query. `id` is a transfer id (32 hex digits, one copy) or the
    /// dispatch's message id (a UUID: every copy this node holds).
    pub fn prove(&self, id: &str, actor: &Actor) -> Result<Vec<String>, AuditError> {
        let copies = match hex::decode::<16>(id) {
            Some(transfer) => vec![transfer],
            None if vdx_protocol::header::is_uuid_text(id) => {
                self.store.copies_of(id)?.iter().map(|c| c.0).collect()
            }
            None => {
                return Err(AuditError::Bad(format!(
                    "{id:?} is neither a transfer id (32 hex digits) nor a message id (UUID)"
                )))
            }
        };
        let mut indexes = Vec::new();
        for copy in &copies {
            indexes.extend(self.store.ledger_entries_about(*copy)?);
        }
        indexes.sort_unstable();
        if indexes.is_empty() {
            return Err(AuditError::Bad(format!(
                "the ledger has no entry about {id}"
            )));
        }
        let note = self
            .store
            .checkpoint(&self.signer.origin(), |c| self.signer.sign_checkpoint(c))?;
        let (checkpoint, _) = Checkpoint::parse_note(&note)
            .map_err(|e| StoreError::Corrupt(format!("own checkpoint: {e}")))?;
        let mut proofs = Vec::new();
        for index in indexes.into_iter().filter(|&i| i < checkpoint.size) {
            let proof = Proof {
                index,
                size: checkpoint.size,
                leaf: self.store.ledger_entry(index)?,
                path: self.store.inclusion_proof(index, checkpoint.size)?,
                checkpoint: note.clone(),
            };
            proofs.push(String::from_utf8_lossy(&proof.to_text()).into_owned());
        }
        self.store.record(
            &Event::new(EntryKind::Audit, None, actor.clone())
                .field("query", "prove")
                .field("about", id),
        )?;
        Ok(proofs)
    }

    /// The entries matching `filter`, oldest first; records the query.
    pub fn log(&self, filter: &LogFilter, actor: &Actor) -> Result<Vec<LogRow>, AuditError> {
        let size = self.store.ledger_size()?;
        let start = filter.after.map_or(0, |a| a.saturating_add(1)).min(size);
        let mut rows = Vec::new();
        for bytes in self.store.ledger_entries(start, size) {
            if filter.limit.is_some_and(|limit| rows.len() >= limit) {
                break;
            }
            let bytes = bytes?;
            let entry = Entry::parse(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("ledger entry: {e}")))?;
            if filter.matches(&entry) {
                rows.push(LogRow::of(&entry));
            }
        }
        let mut event = Event::new(EntryKind::Audit, None, actor.clone()).field("query", "log");
        if let Some(since) = filter.since {
            event = event.field("since", utc::format(since).unwrap_or_default());
        }
        if let Some(org) = &filter.org {
            event = event.field("org", org);
        }
        if let Some(kind) = filter.kind {
            event = event.field("kind", kind);
        }
        if let Some(after) = filter.after {
            event = event.field("after", after);
        }
        if let Some(limit) = filter.limit {
            event = event.field("limit", limit);
        }
        self.store.record(&event)?;
        Ok(rows)
    }

    fn checkpoint_at(&self, size: u64) -> Result<(), AuditError> {
        self.store.checkpoint_at(&self.signer.origin(), size, |c| {
            self.signer.sign_checkpoint(c)
        })?;
        Ok(())
    }
}

/// Which entries `vdx audit log` shows.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only entries about this agency: as the actor, or as `from` / `to`.
    pub org: Option<OrganCode>,
    /// Only entries of this kind.
    pub kind: Option<EntryKind>,
    /// Only entries after this index: the last index of the previous page.
    pub after: Option<u64>,
    /// At most this many rows (a page); all when `None`.
    pub limit: Option<usize>,
}

impl LogFilter {
    /// The parameters of [`LogFilter::parse`], as URL query names and command-line options.
    pub const PARAMS: [&'static str; 5] = ["since", "org", "kind", "after", "limit"];

    /// The filter as people and URLs spell it, `param` giving each of [`Self::PARAMS`] if set:
    /// `since` an RFC 3339 UTC time or a date (midnight UTC), `org` an organ code, `kind` an entry
    /// kind, `after` an entry index, `limit` a count. The error names the bad one.
    pub fn parse<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Result<Self, AuditError> {
        let bad = |what: String| AuditError::Bad(what);
        let number = |name: &str| {
            param(name)
                .map(|n| {
                    n.parse::<u64>()
                        .map_err(|_| bad(format!("{name} {n:?} is not a whole number")))
                })
                .transpose()
        };
        let (since, org, kind) = (param("since"), param("org"), param("kind"));
        Ok(Self {
            after: number("after")?,
            limit: number("limit")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            since: since
                .map(|t| {
                    utc::parse(t)
                        .or_else(|| utc::parse(&format!("{t}T00:00:00Z")))
                        .ok_or_else(|| {
                            bad(format!(
                                "since {t:?}: give 2026-11-23 or 2026-11-23T08:00:00Z"
                            ))
                        })
                })
                .transpose()?,
            org: org
                .map(|o| {
                    o.parse()
                        .map_err(|_| bad(format!("{o:?} is not an organ code")))
                })
                .transpose()?,
            kind: kind
                .map(|k| {
                    k.parse()
                        .map_err(|_| bad(format!("{k:?} is not an entry kind")))
                })
                .transpose()?,
        })
    }

    fn matches(&self, entry: &Entry) -> bool {
        let org_matches = self.org.as_ref().is_none_or(|org| {
            entry.actor == Actor::Peer(org.clone())
                || ["from", "to"]
                    .iter()
                    .any(|f| entry.fields.get(*f).map(String::as_str) == Some(org.as_str()))
        });
        self.since.is_none_or(|since| entry.time >= since)
            && self.kind.is_none_or(|kind| entry.kind == kind)
            && org_matches
    }
}

/// One entry, for people and scripts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogRow {
    /// Position in the ledger.
    pub index: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// What happened.
    pub kind: String,
    /// The transfer id, if any.
    pub id: Option<String>,
    /// Who.
    pub actor: String,
    /// Details.
    pub fields: std::collections::BTreeMap<String, String>,
}

impl LogRow {
    pub(crate) fn of(entry: &Entry) -> Self {
        Self {
            index: entry.index,
            time: utc::format(entry.time).unwrap_or_default(),
            kind: entry.kind.to_string(),
            id: entry.id.map(|id| hex::encode(&id)),
            actor: entry.actor.to_string(),
            fields: entry.fields.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`LogFilter::parse`] of `pairs` (name, value).
    fn filter(pairs: &[(&str, &'static str)]) -> Result<LogFilter, AuditError> {
        LogFilter::parse(|name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
    }

    #[test]
    fn log_filters_take_a_date_or_a_utc_time_a_page_and_name_what_is_wrong() {
        let date = filter(&[("since", "2026-11-23")]).unwrap();
        assert_eq!(date.since, utc::parse("2026-11-23T00:00:00Z"));
        let full = filter(&[
            ("since", "2026-11-23T08:00:00Z"),
            ("org", "000.00.00.H41"),
            ("kind", "sent"),
            ("after", "41"),
            ("limit", "10"),
        ])
        .unwrap();
        assert_eq!(full.kind, Some(EntryKind::Sent));
        assert_eq!((full.after, full.limit), (Some(41), Some(10)));
        for (pair, named) in [
            (("since", "23/11/2026"), "since"),
            (("org", "no such code!"), "organ code"),
            (("kind", "eaten"), "entry kind"),
            (("after", "-1"), "after"),
            (("limit", "ten"), "limit"),
        ] {
            let err = filter(&[pair]).unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
        }
    }
}
