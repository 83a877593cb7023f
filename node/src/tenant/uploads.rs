//! Files a client uploads before naming them in a dispatch (`POST /v1/uploads`). Content-addressed:
//! an upload's id is the SHA-256 of its bytes, so the manifest digest is known before the package
//! is written, and the same file uploaded twice is stored once. Uploads of at most
//! [`INLINE_MAX`] bytes are kept in the store ([`Store::keep_upload`]), larger ones as files here.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vdx_protocol::hex;

use crate::store::{ObjectReader, Store, StoreError, INLINE_MAX};

/// The upload directory.
pub struct Uploads {
    dir: PathBuf,
    /// Upload id → how many times it was uploaded and not yet used by a dispatch since the
    /// start: the same file uploaded by two clients for two dispatches is one upload, kept
    /// until both have used it.
    pending: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl Uploads {
    /// Uses (and creates) `dir`; leftovers of interrupted uploads are removed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let incoming = dir.join("incoming");
        let _ = fs::remove_dir_all(&incoming);
        fs::create_dir_all(&incoming)
            .map_err(StoreError::from_io("creating the upload directory"))?;
        // Uploads are plaintext documents: only the daemon's user may read them.
        for d in [dir, incoming.as_path()] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o700))
                .map_err(StoreError::from_io("protecting the upload directory"))?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            pending: Default::default(),
        })
    }

    /// Starts an upload; write the bytes into it, then [`Upload::finish`].
    pub fn begin(&self) -> Upload {
        Upload {
            held: Held::Memory(Vec::new()),
            dir: self.dir.clone(),
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Bytes of upload `id`; `None` if there is no such upload.
    pub fn size(&self, store: &Store, id: &str) -> Result<Option<u64>, StoreError> {
        let Some(digest) = digest(id) else {
            return Ok(None);
        };
        if let Some((size, _)) = store.upload(&digest)? {
            return Ok(Some(size));
        }
        absent_is_none(fs::metadata(self.dir.join(id)).map(|m| m.len()))
    }

    /// Reads upload `id`; `None` if there is no such upload.
    pub fn read(&self, store: &Store, id: &str) -> Result<Option<ObjectReader>, StoreError> {
        let Some(digest) = digest(id) else {
            return Ok(None);
        };
        if let Some((_, bytes)) = store.upload(&digest)? {
            return Ok(Some(bytes));
        }
        absent_is_none(File::open(self.dir.join(id)).map(ObjectReader::File))
    }

    /// Counts one more client's upload of `id` (what [`Upload::finish`] returned): the upload
    /// stays until as many dispatches have used it.
    pub fn uploaded(&self, id: &str) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *pending.entry(id.to_owned()).or_default() += 1;
    }

    /// Forgets upload `id` once a dispatch holding it is queued, unless another client uploaded
    /// the same bytes for a dispatch of its own not yet submitted.
    pub fn remove(&self, store: &Store, id: &str) {
        let Some(digest) = digest(id) else {
            return;
        };
        {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match pending.get_mut(id) {
                Some(left) if *left > 1 => {
                    *left -= 1;
                    return;
                }
                _ => {
                    pending.remove(id);
                }
            }
        }
        if let Err(e) = store.forget_upload(&digest) {
            tracing::warn!(upload = id, error = %e, "upload not forgotten");
        }
        let _ = fs::remove_file(self.dir.join(id));
    }
}

/// The digest an upload id names (64 hex digits); anything else names no upload, and never
/// reaches a path.
fn digest(id: &str) -> Option<[u8; 32]> {
    hex::decode::<32>(id)
}

fn absent_is_none<T>(found: io::Result<T>) -> Result<Option<T>, StoreError> {
    match found {
        Ok(found) => Ok(Some(found)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::from_io("reading an upload")(e)),
    }
}

/// An upload being written.
pub struct Upload {
    held: Held,
    dir: PathBuf,
    hasher: Sha256,
    size: u64,
}

/// Where an upload's bytes are until it is finished: in memory while it is small enough for the
/// store, then in a temporary file.
enum Held {
    Memory(Vec<u8>),
    File { file: File, temp: PathBuf },
}

impl Upload {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        if let Held::Memory(held) = &mut self.held {
            if self.size <= INLINE_MAX {
                held.extend_from_slice(bytes);
                return Ok(());
            }
            let mut name = [0u8; 16];
            openssl::rand::rand_bytes(&mut name)
                .map_err(|e| StoreError::Corrupt(format!("random name: {e}")))?;
            let temp = self.dir.join("incoming").join(hex::encode(&name));
            let mut file =
                File::create(&temp).map_err(StoreError::from_io("creating an upload"))?;
            let written = file.write_all(held);
            self.held = Held::File { file, temp };
            written.map_err(StoreError::from_io("writing an upload"))?;
        }
        match &mut self.held {
            Held::File { file, .. } => file
                .write_all(bytes)
                .map_err(StoreError::from_io("writing an upload")),
            Held::Memory(_) => Ok(()),
        }
    }

    /// Makes the upload durable under its id; returns the id (hex SHA-256) and size.
    pub fn finish(self, store: &Store) -> Result<(String, u64), StoreError> {
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        let id = hex::encode(&digest);
        match &self.held {
            Held::Memory(bytes) => store.keep_upload(&digest, bytes)?,
            Held::File { file, temp } => {
                file.sync_all()
                    .map_err(StoreError::from_io("syncing an upload"))?;
                fs::rename(temp, self.dir.join(&id))
                    .map_err(StoreError::from_io("storing an upload"))?;
                File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(StoreError::from_io("syncing the upload directory"))?;
            }
        }
        Ok((id, self.size))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Held::File { temp, .. } = &self.held {
            let _ = fs::remove_file(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn contents(uploads: &Uploads, store: &Store, id: &str) -> Option<Vec<u8>> {
        let mut bytes = Vec::new();
        uploads
            .read(store, id)
            .unwrap()?
            .read_to_end(&mut bytes)
            .unwrap();
        Some(bytes)
    }

    #[test]
    fn uploads_small_and_large_are_kept_under_their_digest_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let small = b"hello world".to_vec();
        let large: Vec<u8> = (0..INLINE_MAX + 1).map(|i| (i % 251) as u8).collect();
        let mut ids = Vec::new();
        {
            let store = Store::open(&dir.path().join("store")).unwrap();
            let uploads = Uploads::open(&dir.path().join("uploads")).unwrap();
            for bytes in [&small, &large] {
                let mut up = uploads.begin();
                for chunk in bytes.chunks(7000) {
                    up.write(chunk).unwrap();
                }
                let (id, size) = up.finish(&store).unwrap();
                assert_eq!(id, hex::encode(&Sha256::digest(bytes)));
                assert_eq!(size, bytes.len() as u64);
                ids.push(id);
            }
            // Only the large one is a file; an abandoned upload leaves nothing behind.
            assert!(!dir.path().join("uploads").join(&ids[0]).exists());
            assert!(dir.path().join("uploads").join(&ids[1]).exists());
            let mut abandoned = uploads.begin();
            abandoned.write(&large).unwrap();
            drop(abandoned);
            let incoming = dir.path().join("uploads/incoming");
            assert_eq!(fs::read_dir(incoming).unwrap().count(), 0);
        }
        let store = Store::open(&dir.path().join("store")).unwrap();
        let uploads = Uploads::open(&dir.path().join("uploads")).unwrap();
        for (id, bytes) in ids.iter().zip([&small, &large]) {
            assert_eq!(uploads.size(&store, id).unwrap(), Some(bytes.len() as u64));
            assert_eq!(contents(&uploads, &store, id).as_ref(), Some(bytes));
            uploads.remove(&store, id);
            assert_eq!(contents(&uploads, &store, id), None);
            assert_eq!(uploads.size(&store, id).unwrap(), None);
        }
        assert_eq!(contents(&uploads, &store, "../../etc/passwd"), None);

        // The same bytes uploaded by two clients: kept until both dispatches have used them.
        let mut up = uploads.begin();
        up.write(&large).unwrap();
        let (id, _) = up.finish(&store).unwrap();
        uploads.uploaded(&id);
        let mut again = uploads.begin();
        again.write(&large).unwrap();
        assert_eq!(again.finish(&store).unwrap().0, id);
        uploads.uploaded(&id);
        uploads.remove(&store, &id);
        assert_eq!(contents(&uploads, &store, &id).as_ref(), Some(&large));
        uploads.remove(&store, &id);
        assert_eq!(contents(&uploads, &store, &id), None);
    }
}
