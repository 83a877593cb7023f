//! `vdx pki ...`: the development CA on disk. The CA directory holds `ca.pem`, `ca.key` (PKCS#8,
//! encrypted when a passphrase is given) and `state.json` (serials issued and revoked, CRL number).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use vdx_crypto::KeyKind;
use vdx_pki::{Ca, IssueRequest, Profile, RevocationReason};
use vdx_protocol::OrganCode;

use crate::files;

#[derive(Subcommand, Debug)]
pub(crate) enum PkiCommand {
    /// Create a self-signed root CA in a new directory.
    InitCa {
        /// The CA directory to create.
        #[arg(long, value_name = "CA_DIR")]
        out: PathBuf,
        /// The CA's name (CN and O).
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = KeyType::Ec)]
        key_type: KeyType,
        /// Days of validity.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue an agency's certificates and keys for an organ code.
    Issue {
        /// The CA directory.
        #[arg(long, value_name = "CA_DIR")]
        ca: PathBuf,
        /// Organ code (mã định danh cơ quan), e.g. 000.00.00.G22.
        #[arg(long, value_name = "CODE")]
        org: String,
        /// Agency name.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = KeyType::Ec)]
        key_type: KeyType,
        /// separate: sign/enc/tls key pairs; combined: one RSA pair for signing and encryption.
        #[arg(long, value_enum, default_value_t = ProfileArg::Separate)]
        profile: ProfileArg,
        /// Days of validity.
        #[arg(long, default_value_t = 730)]
        days: u32,
        /// Start of validity (YYYY-MM-DD); default now.
        #[arg(long, value_name = "YYYY-MM-DD")]
        not_before: Option<String>,
        /// Directory to write the certificates and keys into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Revoke a certificate this CA issued (it appears on the next CRL).
    Revoke {
        #[arg(long, value_name = "CA_DIR")]
        ca: PathBuf,
        /// keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, unspecified.
        #[arg(long)]
        reason: Option<RevocationReason>,
        /// The certificate to revoke.
        #[arg(value_name = "CERT.pem")]
        cert: PathBuf,
    },
    /// Sign a fresh CRL.
    Crl {
        #[arg(long, value_name = "CA_DIR")]
        ca: PathBuf,
        /// Days until nextUpdate.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Where to write the CRL (PEM).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(crate) enum KeyType {
    /// EC P-256.
    Ec,
    /// RSA-3072.
    Rsa,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(crate) enum ProfileArg {
    Separate,
    Combined,
}

impl From<KeyType> for KeyKind {
    fn from(k: KeyType) -> Self {
        match k {
            KeyType::Ec => Self::EcP256,
            KeyType::Rsa => Self::Rsa,
        }
    }
}

pub(crate) fn run(cmd: PkiCommand) -> Result<ExitCode> {
    match cmd {
        PkiCommand::InitCa {
            out,
            name,
            key_type,
            days,
        } => {
            if out.join("ca.key").exists() {
                bail!("{} already holds a CA", out.display());
            }
            fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            let ca = Ca::create(&name, key_type.into(), days)?;
            let pass = files::new_key_passphrase()?;
            write_new(
                &out.join("ca.key"),
                &ca.key().to_pkcs8_pem(pass.as_ref().map(|p| p.as_bytes()))?,
                true,
            )?;
            write_atomic(&out.join("ca.pem"), &ca.cert().to_pem()?)?;
            write_atomic(&out.join("state.json"), &ca.state_json()?)?;
            println!(
                "CA {} ({}) in {}: ca.pem, ca.key ({}), state.json; valid until {}",
                vdx_pki::subject_string(ca.cert()),
                key_name(key_type),
                out.display(),
                if pass.is_some() {
                    "encrypted"
                } else {
                    "NOT encrypted"
                },
                ca.cert().not_after()
            );
        }
        PkiCommand::Issue {
            ca: ca_dir,
            org,
            name,
            key_type,
            profile,
            days,
            not_before,
            out,
        } => {
            let org: OrganCode = org.parse().context("invalid --org")?;
            let not_before = not_before.as_deref().map(parse_date).transpose()?;
            let mut ca = load_ca(&ca_dir)?;
            let issued = ca.issue(&IssueRequest {
                org: org.to_string(),
                name,
                kind: key_type.into(),
                profile: match profile {
                    ProfileArg::Separate => Profile::Separate,
                    ProfileArg::Combined => Profile::Combined,
                },
                not_before,
                days,
            })?;
            fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            for (role, _, _) in issued.roles() {
                let key_path = out.join(format!("{role}.key"));
                if key_path.exists() {
                    bail!(
                        "{} exists: refusing to overwrite a private key",
                        key_path.display()
                    );
                }
            }
            let pass = files::new_key_passphrase()?;
            for (role, cert, key) in issued.roles() {
                write_new(
                    &out.join(format!("{role}.key")),
                    &key.to_pkcs8_pem(pass.as_ref().map(|p| p.as_bytes()))?,
                    true,
                )?;
                write_atomic(&out.join(format!("{role}.pem")), &cert.to_pem()?)?;
                println!(
                    "{role:6} {}  serial {}  organ code {}  valid {} .. {}",
                    out.join(format!("{role}.pem")).display(),
                    vdx_pki::serial_hex(cert),
                    vdx_pki::organ_code(cert).unwrap_or_default(),
                    cert.not_before(),
                    cert.not_after()
                );
            }
            write_atomic(&out.join("ca.pem"), &ca.cert().to_pem()?)?;
            write_atomic(&ca_dir.join("state.json"), &ca.state_json()?)?;
            if pass.is_none() {
                println!("keys are NOT encrypted (set VDX_KEY_PASSPHRASE or answer the prompt to encrypt them)");
            }
        }
        PkiCommand::Revoke {
            ca: ca_dir,
            reason,
            cert,
        } => {
            let mut ca = load_ca(&ca_dir)?;
            let target = files::load_cert(&cert)?;
            ca.revoke(&target, reason)?;
            write_atomic(&ca_dir.join("state.json"), &ca.state_json()?)?;
            println!(
                "revoked {} (serial {}); issue a new CRL with `vdx pki crl`",
                vdx_pki::subject_string(&target),
                vdx_pki::serial_hex(&target)
            );
        }
        PkiCommand::Crl {
            ca: ca_dir,
            days,
            out,
        } => {
            let mut ca = load_ca(&ca_dir)?;
            let crl = ca.crl(days)?;
            write_atomic(&out, &crl.to_pem()?)?;
            write_atomic(&ca_dir.join("state.json"), &ca.state_json()?)?;
            let count = crl.get_revoked().map_or(0, |r| r.len());
            println!(
                "CRL with {count} revoked certificate(s), next update {} -> {}",
                crl.next_update().map_or("-".into(), |t| t.to_string()),
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load_ca(dir: &Path) -> Result<Ca> {
    let cert = files::read_file(&dir.join("ca.pem"))?;
    let key = files::load_key(&dir.join("ca.key"))?;
    let state = files::read_file(&dir.join("state.json"))?;
    Ca::from_parts(&cert, key, &state)
        .with_context(|| format!("cannot load the CA in {}", dir.display()))
}

fn parse_date(text: &str) -> Result<OffsetDateTime> {
    let date = Date::parse(text, format_description!("[year]-[month]-[day]"))
        .with_context(|| format!("{text:?} is not a YYYY-MM-DD date"))?;
    Ok(date.midnight().assume_utc())
}

fn key_name(k: KeyType) -> &'static str {
    match k {
        KeyType::Ec => "EC P-256",
        KeyType::Rsa => "RSA-3072",
    }
}

/// Creates `path` fresh (never overwriting), mode 0600 for secrets, synced with its directory.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    sync_dir(path);
    Ok(())
}

/// Replaces `path` atomically: temporary file, fsync, rename, fsync of the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".vdx-partial-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    sync_dir(path);
    Ok(())
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Best effort: some filesystems refuse fsync on directories.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
}
