//! Reading certificates and keys from files, writing outputs so that nothing partial is left behind.

use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use openssl::x509::X509;
use tempfile::NamedTempFile;
use zeroize::Zeroizing;

use vdx_crypto::PrivateKey;

/// The environment variable that carries a key passphrase for scripts and tests.
pub(crate) const PASSPHRASE_ENV: &str = "VDX_KEY_PASSPHRASE";

/// The passphrase for a new key: from the environment, else asked on the terminal (empty = none).
pub(crate) fn new_key_passphrase() -> Result<Option<Zeroizing<String>>> {
    if let Ok(pass) = std::env::var(PASSPHRASE_ENV) {
        return Ok(Some(Zeroizing::new(pass)).filter(|p| !p.is_empty()));
    }
    if !io::stdin().is_terminal() {
        return Ok(None);
    }
    let first = Zeroizing::new(rpassword::prompt_password(
        "Passphrase to encrypt the new private key (empty for none): ",
    )?);
    if first.is_empty() {
        return Ok(None);
    }
    let again = Zeroizing::new(rpassword::prompt_password("Repeat the passphrase: ")?);
    if *first != *again {
        bail!("the two passphrases differ");
    }
    Ok(Some(first))
}

/// Loads a private key, asking for its passphrase on the terminal when it is encrypted and
/// `VDX_KEY_PASSPHRASE` is not set.
pub(crate) fn load_key(path: &Path) -> Result<PrivateKey> {
    let bytes = Zeroizing::new(read_file(path)?);
    let from_env = std::env::var(PASSPHRASE_ENV).ok().map(Zeroizing::new);
    let first = PrivateKey::from_bytes(&bytes, from_env.as_ref().map(|p| p.as_bytes()));
    match first {
        Err(vdx_crypto::Error::KeyLocked) if from_env.is_none() && io::stdin().is_terminal() => {
            let pass = Zeroizing::new(rpassword::prompt_password(format!(
                "Passphrase for {}: ",
                path.display()
            ))?);
            PrivateKey::from_bytes(&bytes, Some(pass.as_bytes()))
        }
        other => other,
    }
    .with_context(|| format!("cannot use the private key {}", path.display()))
}

/// Every certificate in a PEM bundle or a single DER file.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<X509>> {
    vdx_pki::parse_certs(&read_file(path)?).with_context(|| format!("in {}", path.display()))
}

/// The one certificate in a file (the first, if it is a bundle).
pub(crate) fn load_cert(path: &Path) -> Result<X509> {
    load_certs(path)
        .with_context(|| format!("cannot read the certificate {}", path.display()))?
        .into_iter()
        .next()
        .with_context(|| format!("no certificate in {}", path.display()))
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `-` means standard input.
pub(crate) fn open_input(path: &Path) -> Result<(Box<dyn Read>, Option<u64>)> {
    if path == Path::new("-") {
        return Ok((Box::new(io::stdin().lock()), None));
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().ok().map(|m| m.len());
    Ok((Box::new(file), len))
}

/// An output that appears only when [`Output::commit`] is called: a temporary file beside the
/// target, renamed into place after an fsync; or, for `-`, a hidden temporary file copied to
/// standard output. Dropped without commit, it leaves nothing behind.
pub(crate) struct Output {
    temp: NamedTempFile,
    target: Option<PathBuf>,
}

impl Output {
    pub(crate) fn create(path: &Path) -> Result<Self> {
        if path == Path::new("-") {
            let temp = NamedTempFile::new().context("cannot create a temporary file")?;
            return Ok(Self { temp, target: None });
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if path.is_dir() {
            bail!("{} is a directory", path.display());
        }
        let temp = tempfile::Builder::new()
            .prefix(".vdx-partial-")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        Ok(Self {
            temp,
            target: Some(path.to_path_buf()),
        })
    }

    pub(crate) fn writer(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Makes the output durable and visible.
    pub(crate) fn commit(mut self) -> Result<()> {
        self.temp
            .as_file_mut()
            .sync_all()
            .context("cannot sync the output")?;
        match self.target {
            Some(target) => {
                self.temp
                    .persist(&target)
                    .with_context(|| format!("cannot write {}", target.display()))?;
                if let Some(dir) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                    File::open(dir).and_then(|d| d.sync_all()).ok();
                }
            }
            None => {
                let mut file = self.temp.reopen()?;
                let mut stdout = io::stdout().lock();
                io::copy(&mut file, &mut stdout)
                    .and_then(|_| stdout.flush())
                    .map_err(crate::stdout::error)?;
            }
        }
        Ok(())
    }
}
