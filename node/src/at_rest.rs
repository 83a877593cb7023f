//! Nothing the node keeps is readable by other local users. The data directory holds the
//! subjects of classified dispatches and sealed-at-rest uploads, the keys directory the agency's
//! private keys: both must be the node user's alone, whatever umask the daemon was started with.
//!
//! At start the daemon (1) sets its umask to 0077, so every file and directory it creates from
//! then on is private; (2) refuses to start, naming the path, when a private key is open to
//! anyone but its owner or the data directory to others (an operator's mistake it must not
//! repair silently: the keys may already have been copied); (3) takes group write and every
//! permission of others off the home (the group keeps what it had: clerks reach the socket
//! through it), and tightens whatever an older version left inside the data directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::config::{resolve, Config};
use crate::host::StartError;

/// What the daemon's own files and directories may grant beyond their owner: nothing.
const PRIVATE_UMASK: u32 = 0o077;

/// Makes every file the process creates from now on private to its user.
pub(crate) fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(PRIVATE_UMASK));
}

/// Checks and tightens the modes of the home as the module's doc says.
pub(crate) fn secure_home(home: &Path, config: &Config) -> Result<(), StartError> {
    for key in [
        &config.keys.sign_key,
        &config.keys.enc_key,
        &config.keys.tls_key,
    ] {
        refuse_if_open(&resolve(home, key), 0o077, "600")?;
    }
    let data = resolve(home, &config.data_dir);
    match fs::metadata(&data) {
        Ok(_) => refuse_if_open(&data, 0o007, "700")?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(&data).map_err(|e| file_error(&data, e))?;
        }
        Err(e) => return Err(file_error(&data, e)),
    }
    chmod_without(home, 0o027)?;
    chmod_without(&data, 0o077)?;
    tighten_tree(&data)
}

/// Refuses `path` if its mode grants any of `open_bits`.
fn refuse_if_open(path: &Path, open_bits: u32, fix: &str) -> Result<(), StartError> {
    let mode = fs::metadata(path)
        .map_err(|e| file_error(path, e))?
        .permissions()
        .mode();
    if mode & open_bits != 0 {
        return Err(StartError::File {
            path: path.to_owned(),
            reason: format!(
                "mode {:04o} lets other users in; only the node's user may read it (chmod {fix} {})",
                mode & 0o7777,
                path.display()
            ),
        });
    }
    Ok(())
}

/// Takes `bits` off `path`'s mode, if it has any of them.
fn chmod_without(path: &Path, bits: u32) -> Result<(), StartError> {
    let mode = fs::symlink_metadata(path)
        .map_err(|e| file_error(path, e))?
        .permissions()
        .mode();
    if mode & bits != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777 & !bits))
            .map_err(|e| file_error(path, e))?;
    }
    Ok(())
}

/// Makes everything under `dir` private (what a version before the umask left 0644 or 0755).
/// Symbolic links are not followed: nothing the node writes is one.
fn tighten_tree(dir: &Path) -> Result<(), StartError> {
    for entry in fs::read_dir(dir).map_err(|e| file_error(dir, e))? {
        let entry = entry.map_err(|e| file_error(dir, e))?;
        let kind = entry
            .file_type()
            .map_err(|e| file_error(&entry.path(), e))?;
        if kind.is_symlink() {
            continue;
        }
        chmod_without(&entry.path(), 0o077)?;
        if kind.is_dir() {
            tighten_tree(&entry.path())?;
        }
    }
    Ok(())
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> StartError {
    StartError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn open_keys_and_data_are_refused_by_name_and_the_rest_is_tightened() {
        let home = tempfile::tempdir().unwrap();
        let config = Config::new(
            "000.00.00.G22".parse().unwrap(),
            "G22".into(),
            "127.0.0.1:4501".parse().unwrap(),
        );
        let keys = home.path().join("keys");
        fs::create_dir_all(&keys).unwrap();
        for key in ["sign.key", "enc.key", "tls.key"] {
            fs::write(keys.join(key), b"k").unwrap();
            fs::set_permissions(keys.join(key), fs::Permissions::from_mode(0o600)).unwrap();
        }
        let data = resolve(home.path(), &config.data_dir);
        fs::create_dir_all(data.join("meta")).unwrap();
        fs::write(data.join("meta/db"), b"x").unwrap();
        fs::set_permissions(data.join("meta/db"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o777)).unwrap();

        let refused = secure_home(home.path(), &config).unwrap_err().to_string();
        assert!(refused.contains(&data.display().to_string()), "{refused}");
        assert!(refused.contains("0755"), "{refused}");
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();

        fs::set_permissions(keys.join("enc.key"), fs::Permissions::from_mode(0o640)).unwrap();
        let refused = secure_home(home.path(), &config).unwrap_err().to_string();
        assert!(
            refused.contains("enc.key") && refused.contains("chmod 600"),
            "{refused}"
        );
        fs::set_permissions(keys.join("enc.key"), fs::Permissions::from_mode(0o600)).unwrap();

        secure_home(home.path(), &config).unwrap();
        assert_eq!(mode(home.path()), 0o750);
        assert_eq!(mode(&data.join("meta")), 0o700);
        assert_eq!(mode(&data.join("meta/db")), 0o600);
    }
}
