//! `vdx init` and `vdx reload`: setting up a node home, and having the running daemon take up
//! changed trust files; the node's own directory entry, which `vdx directory export` prints.
//!
//! A home holds `config.toml`, `keys/` (certificates and PKCS#8 keys for signing, encryption and TLS,
//! the CA certificate, and in signed mode the root directory authority's), `directory.json` (a
//! pilot's unsigned directory; empty in signed mode), `zones/` (signed mode) and `data/` (the store).

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use openssl::hash::MessageDigest;
use openssl::x509::X509ReqBuilder;

use vdx_crypto::{KeyKind, PrivateKey};
use vdx_node::config::{self, Config};
use vdx_pki::{Certificates, Directory, Entry, IssueRequest, Profile};
use vdx_protocol::OrganCode;

use crate::client::Client;
use crate::cmd_pki::{self, write_file, Mode};
use crate::files;

/// `vdx init`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct InitArgs {
    /// Organ code of the agency this node serves, e.g. 000.00.00.G22.
    #[arg(long, value_name = "ORGAN_CODE")]
    pub(crate) org: String,
    /// The agency's name.
    #[arg(long)]
    pub(crate) name: String,
    /// QUIC listen address, e.g. 127.0.0.1:4433.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: SocketAddr,
    /// A development CA (from `vdx pki init-ca`) to issue the node's certificates now; without it,
    /// keys and certificate requests are written for a real CA to sign.
    #[arg(long, value_name = "CA_DIR")]
    pub(crate) ca: Option<PathBuf>,
    /// Organ code of the node that relays for this one (e.g. the province for a commune): every
    /// dispatch leaves through it, and the directory entry tells others to send through it.
    #[arg(long, value_name = "ORGAN_CODE")]
    pub(crate) relay: Option<String>,
    /// Signed mode: the root directory authority's certificate (PEM), copied to
    /// keys/directory-root.pem; the node then takes its directory only from zones chaining to it.
    #[arg(long, value_name = "FILE")]
    pub(crate) root_authority: Option<PathBuf>,
    /// Signed mode: the peer the node asks for zones every interval.
    #[arg(long, value_name = "CODE", requires = "root_authority")]
    pub(crate) zone_source: Option<String>,
    /// Signed mode: seconds between asking the source for zones.
    #[arg(long, value_name = "SECS", requires = "root_authority")]
    pub(crate) zone_interval: Option<u64>,
    /// Signed mode: the root zone to start from (checked against --root-authority), so that the
    /// node reaches its source at its first start; without it, `vdx directory publish` it.
    #[arg(long, value_name = "FILE", requires = "root_authority")]
    pub(crate) root_zone: Option<PathBuf>,
}

/// Where `vdx init --root-authority` puts the root directory authority's certificate.
const ROOT_AUTHORITY_FILE: &str = "keys/directory-root.pem";

pub(crate) fn init(home: &Path, args: InitArgs) -> Result<ExitCode> {
    print!("{}", create(home, &args)?);
    println!(
        "node home {} for {} ({}), listening on {}",
        home.display(),
        args.name,
        args.org,
        args.listen
    );
    if args.ca.is_none() {
        println!(
            "certificate requests written to {}/keys/{{sign,enc,tls}}.csr: have them signed, save \
             the certificates as keys/sign.pem, keys/enc.pem, keys/tls.pem and the CA as keys/ca.pem",
            home.display()
        );
    }
    if args.root_authority.is_some() {
        println!(
            "signed directory: root authority in {}/{ROOT_AUTHORITY_FILE}; next: `vdx --home {} \
             directory export > entry.json` for the directory authority to sign into its zone, \
             then `vdx --home {} directory publish ZONE_FILE`",
            home.display(),
            home.display(),
            home.display()
        );
    } else {
        println!(
            "next: `vdx --home {} directory export > entry.json` and import the peers' entries",
            home.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes the node home: config, keys and certificates (or requests), its own directory entry.
/// Returns the report of the certificates issued, if any.
pub(crate) fn create(home: &Path, args: &InitArgs) -> Result<String> {
    let org: OrganCode = args.org.parse().context("invalid --org")?;
    if home.join(config::FILE_NAME).exists() {
        bail!(
            "{} already holds a node (config.toml exists)",
            home.display()
        );
    }
    let mut config = Config::new(org.clone(), args.name.clone(), args.listen);
    config.relay = args
        .relay
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("invalid --relay")?;
    // Read before anything is created, so that a wrong file leaves no half-made home.
    let root_authority = match &args.root_authority {
        Some(path) => {
            files::load_cert(path)?;
            Some(files::read_file(path)?)
        }
        None => None,
    };
    let root_zone = match (&args.root_zone, &args.root_authority) {
        (Some(zone), Some(authority)) => Some(checked_root_zone(zone, authority)?),
        _ => None,
    };
    if root_authority.is_some() {
        config.zones = Some(config::Zones {
            root_authority: ROOT_AUTHORITY_FILE.into(),
            source: args
                .zone_source
                .as_deref()
                .map(str::parse)
                .transpose()
                .context("invalid --zone-source")?,
            interval_secs: args.zone_interval.unwrap_or(300),
        });
    }
    // Private to the node's user whatever the umask (the daemon refuses open keys and data):
    // the home lets its group through to the socket, the keys and data let nobody else in.
    let keys = home.join("keys");
    let data = config::resolve(home, &config.data_dir);
    for (dir, mode) in [
        (home, 0o710),
        (keys.as_path(), 0o700),
        (data.as_path(), 0o700),
    ] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the permissions of {}", dir.display()))?;
    }
    let mut directory = Directory::default();
    let report = match &args.ca {
        Some(ca_dir) => {
            let report = cmd_pki::issue(
                ca_dir,
                &IssueRequest {
                    org: org.to_string(),
                    name: args.name.clone(),
                    kind: KeyKind::EcP256,
                    profile: Profile::Separate,
                    not_before: None,
                    days: 730,
                },
                &keys,
            )?;
            // In signed mode the node's entry reaches it signed, in a zone: none of its own.
            if config.zones.is_none() {
                directory.upsert(own_entry(home, &config)?)?;
            }
            report
        }
        None => {
            write_requests(&keys, &org, &args.name)?;
            String::new()
        }
    };
    if let Some(pem) = &root_authority {
        write_file(&home.join(ROOT_AUTHORITY_FILE), pem, Mode::Public)?;
    }
    if let Some(zone) = &root_zone {
        let zones = home.join(config::ZONES_DIR);
        fs::create_dir_all(&zones).with_context(|| format!("cannot create {}", zones.display()))?;
        write_file(&zones.join("root.zone"), zone, Mode::Public)?;
    }
    write_file(
        &config::resolve(home, &config.directory),
        &directory.to_json()?,
        Mode::Public,
    )?;
    write_file(
        &home.join(config::FILE_NAME),
        config.to_toml()?.as_bytes(),
        Mode::Private,
    )?;
    Ok(report)
}

/// The root zone file at `zone`, checked offline against the root authority's certificate at
/// `authority` as a node would (signature, signer, content, not stale).
fn checked_root_zone(zone: &Path, authority: &Path) -> Result<Vec<u8>> {
    let bytes = files::read_file(zone)?;
    let label = zone.display().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let checked = vdx_pki::verify_zone_files(
        &files::load_cert(authority)?,
        &[(label.clone(), bytes.clone())],
        None,
        now,
    );
    match checked.into_iter().next() {
        Some((_, Ok(signed))) if signed.name() == vdx_pki::ROOT_ZONE => Ok(bytes),
        Some((_, Ok(signed))) => bail!("{label} is zone {}, not the root zone", signed.name()),
        Some((_, Err(e))) => bail!("{label} is refused ({}): {e}", e.code()),
        None => bail!("{label} was not checked"),
    }
}

/// `vdx reload`: the running daemon reads its directory, trust anchors and CRLs again (after an
/// operator replaced a CRL, say), and keeps the previous ones if a file does not load.
pub(crate) fn reload(home: &Path) -> Result<ExitCode> {
    let reloaded = Client::new(home)?.post("/v1/reload", &serde_json::json!({}))?;
    println!("{}", describe_reload(&reloaded));
    Ok(ExitCode::SUCCESS)
}

/// Options of `vdx acknowledge-restore`.
#[derive(clap::Args, Debug)]
pub(crate) struct AcknowledgeArgs {
    /// Print the API's answer (JSON).
    #[arg(long)]
    json: bool,
}

/// `vdx acknowledge-restore`: the admin has looked at a restore the node noticed (`vdx status`
/// says what it found); numbering and sending resume.
pub(crate) fn acknowledge_restore(
    home: &Path,
    tenant: Option<&OrganCode>,
    args: &AcknowledgeArgs,
) -> Result<ExitCode> {
    let done = Client::for_tenant(home, tenant)?
        .post("/v1/restore/acknowledge", &serde_json::json!({}))?;
    if args.json {
        println!("{done}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("restore acknowledged: numbering and sending resume");
    if let Some(next) = done["next_numbers"].as_object() {
        for (series, number) in next {
            println!("  next incoming number in {series}: {number}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn describe_reload(reloaded: &serde_json::Value) -> String {
    format!(
        "vdxd {}: {} agencies in the directory, {} CRLs checked",
        if reloaded["changed"] == true {
            "now uses the changed files"
        } else {
            "found the files unchanged"
        },
        reloaded["agencies"],
        reloaded["crls"]
    )
}

/// This node's entry, from its certificates.
pub(crate) fn own_entry(home: &Path, config: &Config) -> Result<Entry> {
    let pem = |path: &Path| -> Result<String> {
        let bytes = files::read_file(&config::resolve(home, path))?;
        String::from_utf8(bytes).context("certificate is not PEM text")
    };
    Ok(Entry {
        organ_code: config.organ_code.to_string(),
        name: config.name.clone(),
        endpoint: Some(config.listen.to_string()),
        relay: config.relay.as_ref().map(ToString::to_string),
        alternate_relays: Vec::new(),
        host: None,
        parent: None,
        max_classification: None,
        certificates: Certificates {
            sign: pem(&config.keys.sign_cert)?,
            enc: pem(&config.keys.enc_cert)?,
            tls: Some(pem(&config.keys.tls_cert)?),
        },
    })
}

/// The entry of `tenant`, an agency this node hosts (`docs/directory.md` rule 6): its own
/// certificates, reached at this node (`host`), no endpoint or TLS certificate of its own.
pub(crate) fn hosted_entry(
    home: &Path,
    config: &Config,
    tenant: &config::TenantConfig,
) -> Result<Entry> {
    let pem = |path: &Path| -> Result<String> {
        let bytes = files::read_file(&config::resolve(home, path))?;
        String::from_utf8(bytes).context("certificate is not PEM text")
    };
    Ok(Entry {
        organ_code: tenant.organ_code.to_string(),
        name: tenant.name.clone(),
        endpoint: None,
        relay: None,
        alternate_relays: Vec::new(),
        host: Some(config.organ_code.to_string()),
        parent: None,
        max_classification: None,
        certificates: Certificates {
            sign: pem(&tenant.keys.sign_cert)?,
            enc: pem(&tenant.keys.enc_cert)?,
            tls: None,
        },
    })
}

/// Keys and PKCS#10 requests for each role, for a real CA.
fn write_requests(keys: &Path, org: &OrganCode, name: &str) -> Result<()> {
    write_requests_for(keys, org, name, &["sign", "enc", "tls"])
}

/// Keys and PKCS#10 requests for `roles` (`sign`, `enc`, `tls`), for a real CA.
pub(crate) fn write_requests_for(
    keys: &Path,
    org: &OrganCode,
    name: &str,
    roles: &[&str],
) -> Result<()> {
    let pass = files::new_key_passphrase()?;
    for role in roles {
        let key = PrivateKey::generate(KeyKind::EcP256)?;
        let mut subject = openssl::x509::X509NameBuilder::new()?;
        subject.append_entry_by_text("CN", name)?;
        subject.append_entry_by_text("O", name)?;
        subject.append_entry_by_text("organizationIdentifier", org.as_str())?;
        let mut req = X509ReqBuilder::new()?;
        req.set_subject_name(&subject.build())?;
        req.set_pubkey(key.pkey())?;
        req.sign(key.pkey(), MessageDigest::sha256())?;
        let key_pem = key.to_pkcs8_pem(pass.as_ref().map(|p| p.as_bytes()))?;
        write_file(&keys.join(format!("{role}.key")), &key_pem, Mode::NewSecret)?;
        write_file(
            &keys.join(format!("{role}.csr")),
            &req.build().to_pem()?,
            Mode::Public,
        )?;
    }
    Ok(())
}
