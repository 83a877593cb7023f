//! `vdx pki ...`: the development CA on disk. The CA directory holds `ca.pem`, `ca.key` (PKCS#8,
//! encrypted when a passphrase is given) and `state.json` (serials issued and revoked, CRL number).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
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
        /// Key algorithm.
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
        /// Key algorithm.
        #[arg(long, value_enum, default_value_t = KeyType::Ec)]
        key_type: KeyType,
        /// separate: sign/enc/tls key pairs; combined: one RSA pair for signing and encryption;
        /// directory: a directory authority's zone-signing pair (directory.pem, directory.key).
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
        /// The CA directory.
        #[arg(long, value_name = "CA_DIR")]
        ca: PathBuf,
        /// Why: unspecified, keyCompromise, cACompromise, affiliationChanged, superseded,
        /// cessationOfOperation, privilegeWithdrawn (kebab-case accepted); none by default.
        #[arg(long)]
        reason: Option<RevocationReason>,
        /// The certificate to revoke.
        #[arg(value_name = "CERT.pem")]
        cert: PathBuf,
    },
    /// Sign a fresh CRL.
    Crl {
        /// The CA directory.
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
    /// Three key pairs: sign, enc, tls.
    Separate,
    /// One RSA key pair for signing and encryption, like government-issued certificates.
    Combined,
    /// A directory authority: one key pair, `directory`, that signs zones of the national
    /// directory and nothing else (`vdx directory sign --authority`).
    Directory,
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
        } => init_ca(&out, &name, key_type, days),
        PkiCommand::Issue {
            ca,
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
            let request = IssueRequest {
                org: org.to_string(),
                name,
                kind: key_type.into(),
                profile: match profile {
                    ProfileArg::Separate => Profile::Separate,
                    ProfileArg::Combined => Profile::Combined,
                    ProfileArg::Directory => Profile::Directory,
                },
                not_before,
                days,
            };
            print!("{}", issue(&ca, &request, &out)?);
            Ok(())
        }
        PkiCommand::Revoke { ca, reason, cert } => revoke(&ca, reason, &cert),
        PkiCommand::Crl { ca, days, out } => crl(&ca, days, &out),
    }?;
    Ok(ExitCode::SUCCESS)
}

fn init_ca(out: &Path, name: &str, key_type: KeyType, days: u32) -> Result<()> {
    let (ca, encrypted) = write_ca(out, name, key_type, days)?;
    println!("CA created in {}", out.display());
    println!("  subject:   {}", vdx_pki::subject_string(ca.cert()));
    println!("  key:       {}", key_name(key_type));
    println!("  serial:    {}", vdx_pki::serial_hex(ca.cert()));
    println!("  not after: {}", ca.cert().not_after());
    println!(
        "  files:     ca.pem, ca.key ({}), state.json",
        if encrypted {
            "encrypted"
        } else {
            "NOT encrypted"
        }
    );
    Ok(())
}

/// Creates a CA's files in `out` (refusing to overwrite one); returns it and whether its key file
/// is encrypted.
pub(crate) fn write_ca(out: &Path, name: &str, key_type: KeyType, days: u32) -> Result<(Ca, bool)> {
    for file in ["ca.key", "ca.pem", "state.json"] {
        let path = out.join(file);
        if path.exists() {
            bail!(
                "{} exists: refusing to overwrite an existing CA",
                path.display()
            );
        }
    }
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let ca = Ca::create(name, key_type.into(), days)?;
    let pass = files::new_key_passphrase()?;
    let key_pem = ca.key().to_pkcs8_pem(pass.as_ref().map(|p| p.as_bytes()))?;
    write_file(&out.join("ca.key"), &key_pem, Mode::NewSecret)?;
    write_file(&out.join("ca.pem"), &ca.cert().to_pem()?, Mode::Public)?;
    write_file(&out.join("state.json"), &ca.state_json()?, Mode::Private)?;
    Ok((ca, pass.is_some()))
}

/// Issues `request` into `out` (keys, certificates, the CA certificate); returns a report of what
/// was written, for the caller to print.
pub(crate) fn issue(ca_dir: &Path, request: &IssueRequest, out: &Path) -> Result<String> {
    use std::fmt::Write as _;
    let mut report = String::new();
    let mut ca = load_ca(ca_dir)?;
    // Refuse before generating anything if a key would be overwritten.
    let roles: &[&str] = match request.profile {
        Profile::Combined => &["agency"],
        Profile::Hosted => &["sign", "enc"],
        Profile::Directory => &["directory"],
        _ => &["sign", "enc", "tls"],
    };
    for role in roles {
        let key_path = out.join(format!("{role}.key"));
        if key_path.exists() {
            bail!(
                "{} exists: refusing to overwrite a private key",
                key_path.display()
            );
        }
    }
    let issued = ca.issue(request)?;
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let pass = files::new_key_passphrase()?;
    // The CA records the serials first: a crash after this leaves certificates it knows of.
    write_file(&ca_dir.join("state.json"), &ca.state_json()?, Mode::Private)?;
    writeln!(
        report,
        "issued for {} ({}) into {}:",
        request.name,
        request.org,
        out.display()
    )?;
    for (role, cert, key) in issued.roles() {
        let key_path = out.join(format!("{role}.key"));
        let cert_path = out.join(format!("{role}.pem"));
        let key_pem = key.to_pkcs8_pem(pass.as_ref().map(|p| p.as_bytes()))?;
        write_file(&key_path, &key_pem, Mode::NewSecret)?;
        write_file(&cert_path, &cert.to_pem()?, Mode::Public)?;
        writeln!(
            report,
            "  {role}: {} + {}",
            cert_path.display(),
            key_path.display()
        )?;
        writeln!(report, "    subject:    {}", vdx_pki::subject_string(cert))?;
        writeln!(
            report,
            "    organ code: {}",
            vdx_pki::organ_code(cert).unwrap_or_default()
        )?;
        writeln!(report, "    serial:     {}", vdx_pki::serial_hex(cert))?;
        writeln!(
            report,
            "    valid:      {} .. {}",
            cert.not_before(),
            cert.not_after()
        )?;
    }
    write_file(&out.join("ca.pem"), &ca.cert().to_pem()?, Mode::Public)?;
    writeln!(report, "  CA certificate: {}", out.join("ca.pem").display())?;
    if pass.is_none() {
        writeln!(
            report,
            "  keys are NOT encrypted (set {} or answer the prompt to encrypt them)",
            files::PASSPHRASE_ENV
        )?;
    }
    Ok(report)
}

fn revoke(ca_dir: &Path, reason: Option<RevocationReason>, cert: &Path) -> Result<()> {
    let mut ca = load_ca(ca_dir)?;
    let target = files::load_cert(cert)?;
    ca.revoke(&target, reason)
        .with_context(|| format!("cannot revoke {}", cert.display()))?;
    write_file(&ca_dir.join("state.json"), &ca.state_json()?, Mode::Private)?;
    println!(
        "revoked {} (serial {}{}); publish a new CRL with `vdx pki crl`",
        vdx_pki::subject_string(&target),
        vdx_pki::serial_hex(&target),
        reason.map_or(String::new(), |r| format!(", reason {r:?}"))
    );
    Ok(())
}

fn crl(ca_dir: &Path, days: u32, out: &Path) -> Result<()> {
    let mut ca = load_ca(ca_dir)?;
    let crl = ca.crl(days)?;
    // The CRL number is spent before the CRL is published: numbers never repeat.
    write_file(&ca_dir.join("state.json"), &ca.state_json()?, Mode::Private)?;
    write_file(out, &crl.to_pem()?, Mode::Public)?;
    let count = crl.get_revoked().map_or(0, |r| r.len());
    println!(
        "CRL of {} with {count} revoked certificate(s) -> {}",
        vdx_pki::subject_string(ca.cert()),
        out.display()
    );
    println!(
        "  this update: {}\n  next update: {}",
        crl.last_update(),
        crl.next_update().map_or("-".into(), |t| t.to_string())
    );
    Ok(())
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
        .with_context(|| format!("--not-before {text:?} is not a YYYY-MM-DD date"))?;
    Ok(date.midnight().assume_utc())
}

fn key_name(k: KeyType) -> &'static str {
    match k {
        KeyType::Ec => "EC P-256",
        KeyType::Rsa => "RSA-3072",
    }
}

/// How a file is written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A private key: mode 0600, and never over an existing file.
    NewSecret,
    /// CA bookkeeping: mode 0600, replaced.
    Private,
    /// Certificates and CRLs: mode 0644, replaced.
    Public,
}

/// Writes `path` atomically: a temporary file in the same directory (created 0600), fsync, rename
/// (refusing to replace an existing file for [`Mode::NewSecret`]), fsync of the directory.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: Mode) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".vdx-partial-")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    temp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if mode == Mode::Public {
        temp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot set the permissions of {}", path.display()))?;
    }
    temp.as_file()
        .sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    if mode == Mode::NewSecret {
        temp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} exists: refusing to overwrite a private key",
                    path.display()
                )
            } else {
                anyhow::Error::new(e.error).context(format!("cannot write {}", path.display()))
            }
        })?;
    } else {
        temp.persist(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    // Best effort: some filesystems refuse fsync on directories.
    let _ = File::open(&dir).and_then(|d| d.sync_all());
    Ok(())
}
