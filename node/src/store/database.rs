//! The one sled database a host's tenants share, its format version, and each tenant's namespace
//! in it (`docs/store-format.md`).
//!
//! Every tenant's trees are named `t/<organ code>/<tree>`, so that one sled transaction still
//! covers a tenant's record, its outbox entry and its ledger entry, while no tree holds two
//! agencies' data. A tenant's files (spool, upload keys, uploads) live under
//! `tenants/<organ code>/` of the data directory. Format 1 (before tenants) kept one agency's
//! trees unprefixed and its files at the top of the data directory: [`Database::open`] moves
//! them into the namespace of the agency the configuration names.

use std::fs;
use std::path::{Path, PathBuf};

use vdx_protocol::OrganCode;

use super::{io_error, open_sled, sync_dir, StoreError};

/// The store format this code writes; older ones are migrated on open, newer ones refused.
pub const FORMAT: u64 = 2;

/// Key of the format version in sled's default tree (absent in format 1).
const FORMAT_KEY: &[u8] = b"format";
/// Set while a format-1 store is being moved into a namespace: a crash then finishes the move.
const MIGRATING_KEY: &[u8] = b"migrating-to";
/// Tree of the tenants with a namespace: organ code → `1` while hosted, `0` once removed (its
/// data, the ledger above all, is kept for audit).
const TENANTS_TREE: &str = "tenants";

/// The trees of one agency, by their format-1 names.
pub(super) const TREES: [&str; 11] = [
    "dispatches",
    "outbox",
    "arrivals",
    "kept_aside",
    "counters",
    "headers",
    "objects",
    "sealed_uploads",
    "uploads",
    "ledger",
    "guard",
];
/// The files of one agency, by their format-1 places under the data directory.
const FILES: [&str; 3] = ["spool", "upload-keys", "uploads"];

/// The shared database of a host: open once, then one [`super::Store`] per tenant.
#[derive(Clone)]
pub struct Database {
    db: sled::Db,
    dir: PathBuf,
}

impl Database {
    /// Opens (or creates) the database under the data directory `dir`. A format-1 store found
    /// there becomes the namespace of `owner`, the agency that wrote it (the configuration's
    /// organ code); without an owner a format-1 store is refused.
    pub fn open(dir: &Path, owner: Option<&OrganCode>) -> Result<Self, StoreError> {
        let db = open_sled(&dir.join("meta"))?;
        let this = Self {
            db,
            dir: dir.to_owned(),
        };
        match this.format()? {
            Some(FORMAT) => {}
            Some(newer) if newer > FORMAT => {
                return Err(StoreError::Corrupt(format!(
                    "the store is in format {newer}, newer than this vdx understands ({FORMAT})"
                )))
            }
            Some(older) => {
                return Err(StoreError::Corrupt(format!(
                    "the store says format {older}, which no vdx wrote"
                )))
            }
            None => this.migrate_from_1(owner)?,
        }
        Ok(this)
    }

    fn format(&self) -> Result<Option<u64>, StoreError> {
        self.db
            .get(FORMAT_KEY)?
            .map(|v| {
                <[u8; 8]>::try_from(v.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| {
                        StoreError::Corrupt("the store's format version is unreadable".into())
                    })
            })
            .transpose()
    }

    /// Format 1 → 2: the unprefixed trees and the top-level files become `owner`'s. Each step
    /// can be repeated, so a crash during it is finished by the next open.
    fn migrate_from_1(&self, owner: Option<&OrganCode>) -> Result<(), StoreError> {
        let names = self.db.tree_names();
        let legacy = TREES
            .iter()
            .any(|t| names.iter().any(|n| n.as_ref() == t.as_bytes()));
        let target = match self.db.get(MIGRATING_KEY)? {
            Some(code) => Some(
                std::str::from_utf8(&code)
                    .ok()
                    .and_then(|c| c.parse::<OrganCode>().ok())
                    .ok_or_else(|| StoreError::Corrupt("an unreadable migration mark".into()))?,
            ),
            None if legacy => Some(owner.cloned().ok_or_else(|| {
                StoreError::Corrupt(
                    "a store of format 1 (before tenants): open it with its node's configuration"
                        .into(),
                )
            })?),
            None => None,
        };
        if let Some(code) = target {
            self.db.insert(MIGRATING_KEY, code.as_str().as_bytes())?;
            self.db.flush()?;
            for tree in TREES {
                if !names.iter().any(|n| n.as_ref() == tree.as_bytes()) {
                    continue;
                }
                let old = self.db.open_tree(tree)?;
                let new = self.db.open_tree(tree_name(&code, tree))?;
                let mut batch = sled::Batch::default();
                for item in old.iter() {
                    let (k, v) = item?;
                    batch.insert(k, v);
                }
                new.apply_batch(batch)?;
            }
            self.db.flush()?;
            let files = self.files_of(&code);
            fs::create_dir_all(&files).map_err(io_error("making a tenant's directory"))?;
            for name in FILES {
                let (from, to) = (self.dir.join(name), files.join(name));
                if from.exists() && !to.exists() {
                    fs::rename(&from, &to).map_err(io_error("moving a file into a tenant"))?;
                }
            }
            sync_dir(&files)?;
            sync_dir(&self.dir)?;
            self.register(&code)?;
            for tree in TREES {
                self.db.drop_tree(tree)?;
            }
            tracing::info!(tenant = %code, "store of format 1 moved into the tenant's namespace");
        }
        self.db.insert(FORMAT_KEY, &FORMAT.to_be_bytes())?;
        self.db.remove(MIGRATING_KEY)?;
        self.db.flush()?;
        Ok(())
    }

    /// The directory of `code`'s files (spool, upload keys, uploads).
    pub fn files_of(&self, code: &OrganCode) -> PathBuf {
        self.dir.join("tenants").join(code.as_str())
    }

    /// Marks `code` as hosted (its namespace in use), durably.
    fn register(&self, code: &OrganCode) -> Result<(), StoreError> {
        let tenants = self.db.open_tree(TENANTS_TREE)?;
        if tenants.insert(code.as_str(), &[1])?.as_deref() != Some(&[1]) {
            tenants.flush()?;
        }
        Ok(())
    }

    /// The store of tenant `code`, its namespace made if new.
    pub fn tenant(&self, code: &OrganCode) -> Result<super::Store, StoreError> {
        self.register(code)?;
        super::Store::in_namespace(self.db.clone(), code, &self.files_of(code))
    }

    /// The store of a tenant that has a namespace (hosted now or removed), for reading.
    pub fn existing(&self, code: &OrganCode) -> Result<Option<super::Store>, StoreError> {
        let tenants = self.db.open_tree(TENANTS_TREE)?;
        if tenants.get(code.as_str())?.is_none() {
            return Ok(None);
        }
        super::Store::in_namespace(self.db.clone(), code, &self.files_of(code)).map(Some)
    }

    /// Marks `code` as no longer hosted; its data stays (its ledger is kept for audit).
    pub fn retire(&self, code: &OrganCode) -> Result<(), StoreError> {
        let tenants = self.db.open_tree(TENANTS_TREE)?;
        tenants.insert(code.as_str(), &[0])?;
        tenants.flush()?;
        Ok(())
    }

    /// Every tenant with a namespace, and whether it is hosted now.
    pub fn namespaces(&self) -> Result<Vec<(OrganCode, bool)>, StoreError> {
        let tenants = self.db.open_tree(TENANTS_TREE)?;
        let mut all = Vec::new();
        for item in tenants.iter() {
            let (code, hosted) = item?;
            let code = std::str::from_utf8(&code)
                .ok()
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| StoreError::Corrupt("an unreadable tenant name".into()))?;
            all.push((code, hosted.as_ref() == [1]));
        }
        Ok(all)
    }

    /// Makes everything committed so far, by any tenant, durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// The sled name of tenant `code`'s tree `tree`.
pub(super) fn tree_name(code: &OrganCode, tree: &str) -> String {
    format!("t/{code}/{tree}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> OrganCode {
        s.parse().unwrap()
    }

    #[test]
    fn a_format_1_store_moves_into_its_owners_namespace_and_a_repeat_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open_sled(&dir.path().join("meta")).unwrap();
            db.open_tree("ledger")
                .unwrap()
                .insert(b"k", b"entry")
                .unwrap();
            db.open_tree("dispatches")
                .unwrap()
                .insert(b"id", b"rec")
                .unwrap();
            db.flush().unwrap();
            fs::create_dir_all(dir.path().join("spool/objects")).unwrap();
            fs::write(dir.path().join("spool/objects/x.p7m"), b"sealed").unwrap();
        }
        let g22 = code("000.00.00.G22");
        assert!(
            Database::open(dir.path(), None).is_err(),
            "a format-1 store needs its owner"
        );
        let db = Database::open(dir.path(), Some(&g22)).unwrap();
        let tree = db.db.open_tree(tree_name(&g22, "ledger")).unwrap();
        assert_eq!(tree.get(b"k").unwrap().unwrap().as_ref(), b"entry");
        assert!(!db.db.tree_names().iter().any(|n| n.as_ref() == b"ledger"));
        assert_eq!(
            fs::read(db.files_of(&g22).join("spool/objects/x.p7m")).unwrap(),
            b"sealed"
        );
        assert_eq!(db.namespaces().unwrap(), vec![(g22.clone(), true)]);
        assert_eq!(db.format().unwrap(), Some(FORMAT));
        drop(tree);
        drop(db);
        // Opened again (by anyone): nothing more to do.
        let db = Database::open(dir.path(), None).unwrap();
        assert_eq!(db.namespaces().unwrap().len(), 1);
    }

    #[test]
    fn an_interrupted_migration_is_finished_by_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let g22 = code("000.00.00.G22");
        {
            let db = open_sled(&dir.path().join("meta")).unwrap();
            db.open_tree("counters")
                .unwrap()
                .insert(b"2026", b"7")
                .unwrap();
            // The mark set and the copy done, then the crash: the old tree is still there.
            db.insert(MIGRATING_KEY, g22.as_str().as_bytes()).unwrap();
            db.open_tree(tree_name(&g22, "counters"))
                .unwrap()
                .insert(b"2026", b"7")
                .unwrap();
            db.flush().unwrap();
        }
        // The mark names the owner: no configuration needed to finish.
        let db = Database::open(dir.path(), None).unwrap();
        let tree = db.db.open_tree(tree_name(&g22, "counters")).unwrap();
        assert_eq!(tree.get(b"2026").unwrap().unwrap().as_ref(), b"7");
        assert!(db.db.get(MIGRATING_KEY).unwrap().is_none());
        assert!(!db.db.tree_names().iter().any(|n| n.as_ref() == b"counters"));
    }

    #[test]
    fn a_newer_format_is_refused_and_tenants_are_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), None).unwrap();
        let (a, b) = (code("000.01.41.H41"), code("000.02.41.H41"));
        db.tenant(&a).unwrap();
        db.tenant(&b).unwrap();
        db.retire(&b).unwrap();
        assert_eq!(
            db.namespaces().unwrap(),
            vec![(a.clone(), true), (b.clone(), false)]
        );
        assert!(db.existing(&code("000.03.41.H41")).unwrap().is_none());
        assert_ne!(db.files_of(&a), db.files_of(&b));
        db.db
            .insert(FORMAT_KEY, &(FORMAT + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
        drop(db);
        let refused = Database::open(dir.path(), None).err().unwrap().to_string();
        assert!(refused.contains("newer"), "{refused}");
    }
}
