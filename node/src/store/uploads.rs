//! Small uploads (at most [`INLINE_MAX`](super::INLINE_MAX) bytes) kept in the store's tree
//! "sealed_uploads" (digest -> sealed bytes) instead of a file each: creating, syncing, renaming
//! and unlinking a file per upload cost more than the rest of a small dispatch's submission.
//! Larger uploads stay files ([`crate::tenant::uploads`]).
//!
//! An upload is a clerk's plaintext, and sled is log-structured: a value removed from a tree stays
//! in its log segments until they are rewritten. So no upload is written to sled in clear: each is
//! sealed (AES-256-GCM, its digest as associated data) under an *epoch key* kept in a file of its
//! own under `upload-keys/`. A new epoch starts at every start, and at the first upload once the
//! current one is [`ROTATE_AFTER`] old; at those moments the key files of past epochs that no kept
//! upload was sealed under are deleted, and with them whatever copies of those uploads sled's log
//! still holds become unreadable.
//!
//! Value layout: epoch (u64, big-endian) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use zeroize::Zeroizing;

use super::{io_error, sync_dir, ObjectReader, Store, StoreError};

/// How long one epoch key seals new uploads: on a node that keeps taking uploads, a deleted one
/// stays readable (to the node's own user, through its key file) about twice this long at most.
pub(super) const ROTATE_AFTER: Duration = Duration::from_secs(600);

const NONCE: usize = 12;
const TAG: usize = 16;
const HEAD: usize = 8 + NONCE;

type Key = Zeroizing<[u8; 32]>;

/// The epoch keys: the current one seals, any kept one opens.
pub(super) struct UploadKeys {
    dir: PathBuf,
    state: Mutex<KeyState>,
}

struct KeyState {
    current: u64,
    since: Instant,
    keys: BTreeMap<u64, Key>,
}

impl UploadKeys {
    /// Loads the key files under `dir` and starts a new epoch.
    pub(super) fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(io_error("creating the upload key directory"))?;
        let mut keys = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io_error("reading the upload keys"))? {
            let path = entry.map_err(io_error("reading the upload keys"))?.path();
            let epoch = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok());
            let (Some(epoch), Some("key")) = (epoch, path.extension().and_then(|e| e.to_str()))
            else {
                // A key file being written when the node stopped: never used.
                let _ = fs::remove_file(&path);
                continue;
            };
            let bytes = Zeroizing::new(fs::read(&path).map_err(io_error("reading an upload key"))?);
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                StoreError::Corrupt(format!("{} is not a 32-byte key", path.display()))
            })?;
            keys.insert(epoch, Zeroizing::new(key));
        }
        let keys = Self {
            dir: dir.to_owned(),
            state: Mutex::new(KeyState {
                current: 0,
                since: Instant::now(),
                keys,
            }),
        };
        keys.rotate(&mut keys.lock())?;
        Ok(keys)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes a new key current (on disk before it seals anything).
    fn rotate(&self, state: &mut KeyState) -> Result<(), StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let epoch = now.max(state.keys.keys().next_back().map_or(0, |last| last + 1));
        let mut key = Zeroizing::new([0u8; 32]);
        openssl::rand::rand_bytes(key.as_mut_slice())
            .map_err(|e| StoreError::Corrupt(format!("no randomness for an upload key: {e}")))?;
        let temp = self.dir.join(format!("{epoch}.partial"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io_error("writing an upload key"))?;
        file.write_all(key.as_slice())
            .and_then(|()| file.sync_all())
            .map_err(io_error("writing an upload key"))?;
        fs::rename(&temp, self.dir.join(format!("{epoch}.key")))
            .map_err(io_error("writing an upload key"))?;
        sync_dir(&self.dir)?;
        state.keys.insert(epoch, key);
        state.current = epoch;
        state.since = Instant::now();
        Ok(())
    }

    /// Deletes the keys of past epochs that seal none of `in_use`.
    fn forget_unused(&self, state: &mut KeyState, in_use: &BTreeSet<u64>) {
        let current = state.current;
        state.keys.retain(|epoch, _| {
            let keep = *epoch == current || in_use.contains(epoch);
            if !keep {
                let _ = fs::remove_file(self.dir.join(format!("{epoch}.key")));
            }
            keep
        });
    }

    fn seal(&self, digest: &[u8; 32], plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (epoch, key) = {
            let state = self.lock();
            let key = state.keys.get(&state.current).cloned();
            (state.current, key)
        };
        let key =
            key.ok_or_else(|| StoreError::Corrupt("the current upload key is gone".into()))?;
        let mut nonce = [0u8; NONCE];
        openssl::rand::rand_bytes(&mut nonce)
            .map_err(|e| StoreError::Corrupt(format!("no randomness for a nonce: {e}")))?;
        let mut tag = [0u8; TAG];
        let sealed = encrypt_aead(
            Cipher::aes_256_gcm(),
            key.as_slice(),
            Some(&nonce),
            digest,
            plain,
            &mut tag,
        )
        .map_err(|e| StoreError::Corrupt(format!("sealing an upload: {e}")))?;
        let mut out = Vec::with_capacity(HEAD + sealed.len() + TAG);
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn open_sealed(&self, digest: &[u8; 32], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("a kept upload {what}"));
        let epoch = epoch_of(value).ok_or_else(|| bad("is cut short"))?;
        let key = self
            .lock()
            .keys
            .get(&epoch)
            .cloned()
            .ok_or_else(|| bad("names an epoch key that is gone"))?;
        let (nonce, rest) = value[8..].split_at(NONCE);
        let (sealed, tag) = rest.split_at(rest.len() - TAG);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            key.as_slice(),
            Some(nonce),
            digest,
            sealed,
            tag,
        )
        .map_err(|_| bad("does not open with its key (changed on disk?)"))
    }
}

/// The epoch a sealed value names, if it is long enough to be one.
fn epoch_of(value: &[u8]) -> Option<u64> {
    if value.len() < HEAD + TAG {
        return None;
    }
    value[..8].try_into().ok().map(u64::from_be_bytes)
}

impl Store {
    /// Keeps an upload under its digest and returns once it is on disk (the flush is shared
    /// with concurrent changes). An upload that cannot be made durable is not kept.
    pub fn keep_upload(&self, digest: &[u8; 32], bytes: &[u8]) -> Result<(), StoreError> {
        self.rotate_upload_key_if_due()?;
        let sealed = self.upload_keys.seal(digest, bytes)?;
        let existed = self.uploads.insert(digest, sealed)?.is_some();
        self.sync().inspect_err(|_| {
            if !existed {
                let _ = self.uploads.remove(digest);
            }
        })
    }

    /// The size and bytes of upload `digest`, if it is kept here.
    pub fn upload(&self, digest: &[u8; 32]) -> Result<Option<(u64, ObjectReader)>, StoreError> {
        let Some(value) = self.uploads.get(digest)? else {
            return Ok(None);
        };
        let plain = self.upload_keys.open_sealed(digest, &value)?;
        Ok(Some((
            plain.len() as u64,
            ObjectReader::Inline(Cursor::new(plain.into())),
        )))
    }

    /// Forgets upload `digest` once a dispatch holding it is queued. Not flushed on its own: an
    /// upload forgotten and then restored by a crash is only kept longer.
    pub fn forget_upload(&self, digest: &[u8; 32]) -> Result<(), StoreError> {
        self.uploads.remove(digest)?;
        Ok(())
    }

    /// Starts a new epoch when the current one is due, and deletes the keys no upload needs.
    fn rotate_upload_key_if_due(&self) -> Result<(), StoreError> {
        let keys = &self.upload_keys;
        let mut state = keys.lock();
        if state.since.elapsed() < ROTATE_AFTER {
            return Ok(());
        }
        keys.rotate(&mut state)?;
        let in_use = self.upload_epochs()?;
        keys.forget_unused(&mut state, &in_use);
        Ok(())
    }

    /// The epochs the kept uploads are sealed under.
    fn upload_epochs(&self) -> Result<BTreeSet<u64>, StoreError> {
        let mut epochs = BTreeSet::new();
        for item in self.uploads.iter() {
            let (_, value) = item?;
            epochs.extend(epoch_of(&value));
        }
        Ok(epochs)
    }

    /// At open: seals what an older version kept in clear (tree "uploads") into the sealed tree,
    /// drops the clear tree, and deletes the keys no upload needs.
    pub(super) fn settle_uploads(&self) -> Result<(), StoreError> {
        let clear_name = super::database::tree_name(&self.tenant, "uploads");
        if self
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == clear_name.as_bytes())
        {
            let clear = self.db.open_tree(&clear_name)?;
            for item in clear.iter() {
                let (digest, bytes) = item?;
                let digest: [u8; 32] = digest.as_ref().try_into().map_err(|_| {
                    StoreError::Corrupt("an upload is not kept under a SHA-256".into())
                })?;
                let sealed = self.upload_keys.seal(&digest, &bytes)?;
                self.uploads.insert(digest, sealed)?;
            }
            self.sync()?;
            self.db.drop_tree(&clear_name)?;
            self.sync()?;
        }
        let in_use = self.upload_epochs()?;
        let keys = &self.upload_keys;
        keys.forget_unused(&mut keys.lock(), &in_use);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn digest(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    /// Whether `needle` occurs anywhere in the files under `dir`.
    fn on_disk(dir: &Path, needle: &[u8]) -> bool {
        fs::read_dir(dir).unwrap().any(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() {
                on_disk(&path, needle)
            } else {
                let bytes = fs::read(&path).unwrap();
                bytes.windows(needle.len()).any(|w| w == needle)
            }
        })
    }

    #[test]
    fn uploads_never_reach_the_disk_in_clear_and_their_epoch_key_goes_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let secret = b"CONFIDENTIAL: the plaintext of a small upload, nowhere on disk".repeat(8);
        let id = digest(&secret);
        {
            let store = Store::open(dir.path()).unwrap();
            store.keep_upload(&id, &secret).unwrap();
            store.flush().unwrap();
        }
        assert!(
            !on_disk(dir.path(), &secret[..64]),
            "plaintext found on disk"
        );
        // Kept across a restart, under the key of the epoch that sealed it.
        let store = crate::store::tests::open_again(dir.path());
        let (size, mut reader) = store.upload(&id).unwrap().unwrap();
        assert_eq!(size, secret.len() as u64);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut back).unwrap();
        assert_eq!(back, secret);
        let keys = store.files().join("upload-keys");
        assert_eq!(fs::read_dir(&keys).unwrap().count(), 2, "two epochs");

        // Forgotten: at the next open its epoch's key is deleted (the current one stays).
        store.forget_upload(&id).unwrap();
        store.flush().unwrap();
        drop(store);
        let store = crate::store::tests::open_again(dir.path());
        assert_eq!(
            fs::read_dir(&keys).unwrap().count(),
            1,
            "only the new epoch"
        );
        assert!(store.upload(&id).unwrap().is_none());
    }

    #[test]
    fn a_changed_sealed_upload_is_refused_not_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = digest(b"abc");
        store.keep_upload(&id, b"abc").unwrap();
        let mut value = store.uploads.get(id).unwrap().unwrap().to_vec();
        let last = value.len() - 1;
        value[last] ^= 1;
        store.uploads.insert(id, value).unwrap();
        assert!(matches!(store.upload(&id), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn clear_uploads_of_an_older_store_are_sealed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let id = digest(b"old upload");
        {
            let db = sled::open(dir.path().join("meta")).unwrap();
            db.open_tree("uploads")
                .unwrap()
                .insert(id, b"old upload".as_slice())
                .unwrap();
            db.flush().unwrap();
        }
        let store = crate::store::tests::open_again(dir.path());
        assert!(!store
            .db
            .tree_names()
            .iter()
            .any(|n| n.ends_with(b"/uploads") || n.as_ref() == b"uploads"));
        let (size, _) = store.upload(&id).unwrap().unwrap();
        assert_eq!(size, 10);
    }
}
