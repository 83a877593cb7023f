//! Files a client uploads before naming them in a dispatch (`POST /v1/uploads`). Content-addressed:
//! an upload's id is the SHA-256 of its bytes, so the manifest digest is known before the package
//! is written, and the same file uploaded twice is stored once.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vdx_protocol::hex;

use crate::store::StoreError;

/// The upload directory.
pub struct Uploads {
    dir: PathBuf,
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
        })
    }

    /// Starts an upload; write the bytes into it, then [`Upload::finish`].
    pub fn begin(&self) -> Result<Upload, StoreError> {
        let mut name = [0u8; 16];
        openssl::rand::rand_bytes(&mut name)
            .map_err(|e| StoreError::Corrupt(format!("random name: {e}")))?;
        let temp = self.dir.join("incoming").join(hex::encode(&name));
        Ok(Upload {
            file: File::create(&temp).map_err(StoreError::from_io("creating an upload"))?,
            temp,
            dir: self.dir.clone(),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Bytes of upload `id`.
    pub fn size(&self, id: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(id)?)?.len())
    }

    /// Reads upload `id`.
    pub fn read(&self, id: &str) -> io::Result<File> {
        File::open(self.path(id)?)
    }

    /// Forgets upload `id` (once a dispatch holding it is queued).
    pub fn remove(&self, id: &str) {
        if let Ok(path) = self.path(id) {
            let _ = fs::remove_file(path);
        }
    }

    fn path(&self, id: &str) -> io::Result<PathBuf> {
        if hex::decode::<32>(id).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not an upload id",
            ));
        }
        Ok(self.dir.join(id))
    }
}

/// An upload being written.
pub struct Upload {
    file: File,
    temp: PathBuf,
    dir: PathBuf,
    hasher: Sha256,
    size: u64,
}

impl Upload {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.file
            .write_all(bytes)
            .map_err(StoreError::from_io("writing an upload"))
    }

    /// Makes the upload durable under its id; returns the id (hex SHA-256) and size.
    pub fn finish(self) -> Result<(String, u64), StoreError> {
        self.file
            .sync_all()
            .map_err(StoreError::from_io("syncing an upload"))?;
        let id = hex::encode(&self.hasher.clone().finalize());
        fs::rename(&self.temp, self.dir.join(&id))
            .map_err(StoreError::from_io("storing an upload"))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(StoreError::from_io("syncing the upload directory"))?;
        Ok((id, self.size))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.temp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_stored_under_its_digest_and_bad_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::open(dir.path()).unwrap();
        let mut up = uploads.begin().unwrap();
        up.write(b"hello ").unwrap();
        up.write(b"world").unwrap();
        let (id, size) = up.finish().unwrap();
        assert_eq!(id, hex::encode(&Sha256::digest(b"hello world")));
        assert_eq!(size, 11);
        assert_eq!(uploads.size(&id).unwrap(), 11);
        assert!(uploads.read("../../etc/passwd").is_err());
        drop(uploads.begin().unwrap());
        assert_eq!(
            fs::read_dir(dir.path().join("incoming")).unwrap().count(),
            0
        );
        uploads.remove(&id);
        assert!(uploads.read(&id).is_err());
    }
}
