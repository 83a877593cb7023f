//! Group commit: many committed transactions, one `fsync`. A caller whose transaction has
//! committed (in memory) calls [`GroupCommit::sync`]; the first caller to find no flush running
//! flushes for everyone committed so far, the others wait for that flush (or the next) instead of
//! each paying for their own. Nothing is acknowledged before `sync` returns.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::StoreError;

/// Flushes sled on behalf of every transaction committed before the flush began.
pub(super) struct GroupCommit {
    state: Mutex<State>,
    flushed: Condvar,
}

#[derive(Default)]
struct State {
    /// Tickets handed out: one per committed transaction that asked to be made durable.
    committed: u64,
    /// Every ticket up to this one is on disk.
    durable: u64,
    /// A flush is running.
    flushing: bool,
    /// The ledger's size as of the last completed flush: what a checkpoint may sign.
    durable_ledger_size: u64,
}

impl GroupCommit {
    pub(super) fn new(durable_ledger_size: u64) -> Self {
        Self {
            state: Mutex::new(State {
                durable_ledger_size,
                ..State::default()
            }),
            flushed: Condvar::new(),
        }
    }

    /// Returns once everything the caller committed before calling is on disk. `ledger_size` is
    /// read just before each flush: the flush covers at least that many ledger entries.
    pub(super) fn sync(
        &self,
        db: &sled::Db,
        ledger_size: impl Fn() -> Result<u64, StoreError>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.committed += 1;
        let ticket = state.committed;
        loop {
            if state.durable >= ticket {
                return Ok(());
            }
            if state.flushing {
                state = self
                    .flushed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.flushing = true;
            let covers = state.committed;
            drop(state);
            let flushed = ledger_size().and_then(|size| {
                db.flush()?;
                Ok(size)
            });
            state = self.lock();
            state.flushing = false;
            if let Ok(size) = flushed {
                state.durable = state.durable.max(covers);
                state.durable_ledger_size = state.durable_ledger_size.max(size);
            }
            self.flushed.notify_all();
            // A failed flush is this caller's error; waiters try the flush themselves.
            flushed?;
        }
    }

    /// How many ledger entries are known to be on disk.
    pub(super) fn durable_ledger_size(&self) -> u64 {
        self.lock().durable_ledger_size
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn concurrent_commits_share_flushes_and_all_become_durable() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let commit = Arc::new(GroupCommit::new(0));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (db, commit) = (db.clone(), commit.clone());
                std::thread::spawn(move || {
                    for i in 0..50u64 {
                        db.insert((t * 1000 + i).to_be_bytes(), &[]).unwrap();
                        commit.sync(&db, || Ok(t * 1000 + i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let state = commit.lock();
        assert_eq!(state.committed, 400);
        assert_eq!(state.durable, 400);
        assert!(!state.flushing);
        drop(state);
        assert!(commit.durable_ledger_size() > 0);
        assert_eq!(db.len(), 400);
    }
}
