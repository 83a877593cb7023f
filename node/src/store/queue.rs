//! The outbox index mirrored in memory, so that a scheduler pass (one per finished transfer and
//! per submission) reads no sled pages and decodes nothing. sled stays the truth: the mirror is
//! loaded from it at open and changed only after a transaction that changed the index committed.
//! A pass may therefore see an entry a moment after it left the index; the scheduler re-reads the
//! record before starting a transfer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Queued, StoreError};

/// Outbox key (priority, then submission order) → what the scheduler needs, shared so that a pass
/// takes the head without copying it.
#[derive(Default)]
pub(super) struct Queue(Mutex<BTreeMap<Vec<u8>, Arc<Queued>>>);

impl Queue {
    /// The mirror of the sled outbox tree `index`.
    pub(super) fn load(index: &sled::Tree) -> Result<Self, StoreError> {
        let mut map = BTreeMap::new();
        for entry in index.iter() {
            let (key, value) = entry?;
            let queued =
                Queued::decode(&value).ok_or_else(|| StoreError::Corrupt("outbox entry".into()))?;
            map.insert(key.to_vec(), Arc::new(queued));
        }
        Ok(Self(Mutex::new(map)))
    }

    pub(super) fn insert(&self, key: Vec<u8>, queued: Queued) {
        self.lock().insert(key, Arc::new(queued));
    }

    pub(super) fn remove(&self, key: &[u8]) {
        self.lock().remove(key);
    }

    /// The first `limit` entries in priority order.
    pub(super) fn head(&self, limit: usize) -> Vec<Arc<Queued>> {
        self.lock().values().take(limit).cloned().collect()
    }

    /// The key under which `id` is queued, if it is.
    pub(super) fn key_of(&self, id: super::MessageId) -> Option<Vec<u8>> {
        self.lock()
            .iter()
            .find(|(_, queued)| queued.id == id)
            .map(|(key, _)| key.clone())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Arc<Queued>>> {
        // The map is consistent after every single call, so a panic elsewhere leaves it usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
