//! Small uploads (at most [`INLINE_MAX`](super::INLINE_MAX) bytes) kept in the store's tree
//! "uploads" (digest -> bytes) instead of a file each: creating, syncing, renaming and unlinking a
//! file per upload cost more than the rest of a small dispatch's submission. Larger uploads stay
//! files ([`crate::uploads`]).

use std::io::Cursor;

use super::{ObjectReader, Store, StoreError};

impl Store {
    /// Keeps an upload under its digest and returns once it is on disk (the flush is shared
    /// with concurrent changes). An upload that cannot be made durable is not kept.
    pub fn keep_upload(&self, digest: &[u8; 32], bytes: &[u8]) -> Result<(), StoreError> {
        let existed = self.uploads.insert(digest, bytes)?.is_some();
        self.sync().inspect_err(|_| {
            if !existed {
                let _ = self.uploads.remove(digest);
            }
        })
    }

    /// The size and bytes of upload `digest`, if it is kept here.
    pub fn upload(&self, digest: &[u8; 32]) -> Result<Option<(u64, ObjectReader)>, StoreError> {
        Ok(self
            .uploads
            .get(digest)?
            .map(|bytes| (bytes.len() as u64, ObjectReader::Inline(Cursor::new(bytes)))))
    }

    /// Forgets upload `digest` once a dispatch holding it is queued. Not flushed on its own: an
    /// upload forgotten and then restored by a crash is only kept longer.
    pub fn forget_upload(&self, digest: &[u8; 32]) -> Result<(), StoreError> {
        self.uploads.remove(digest)?;
        Ok(())
    }
}
