//! `vdx directory ...`: the directory of agencies. Two kinds of commands:
//!
//! - a directory authority's, offline (`sign`, `verify`, `show`, `diff`): signed zones
//!   (`docs/directory-zones.md`) made from exported entries, checked and compared as files;
//! - a node's (`export`, `import`, `list`, `publish`, `status`, needing `--home`): its own entry,
//!   its unsigned `directory.json` (a pilot), or the zones its running daemon holds (signed mode).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::{Args, Subcommand};
use openssl::x509::X509;
use serde::Serialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use vdx_node::config::{self, Config};
use vdx_pki::{
    verify_zone_files, Delegation, Directory, Entry, TrustStore, Zone, ZoneEntry, ROOT_ZONE,
};
use vdx_protocol::OrganCode;

use crate::client::Client;
use crate::cmd_home::{describe_reload, hosted_entry, own_entry};
use crate::cmd_pki::{write_file, Mode};
use crate::{files, stdout};

/// The files of a directory authority's directory (`vdx pki issue --profile directory --out`).
const AUTHORITY_CERT: &str = "directory.pem";
/// Its key, encrypted as every other key is (`VDX_KEY_PASSPHRASE` or a prompt).
const AUTHORITY_KEY: &str = "directory.key";

#[derive(Subcommand, Debug)]
pub(crate) enum DirectoryCommand {
    /// Print this node's own directory entry (JSON), for the directory authority (or, in a pilot,
    /// other nodes); with --tenant, that hosted agency's (`host` = this node, no endpoint or TLS
    /// certificate). Needs --home.
    Export,
    /// Pilot only (unsigned directory): add or update an agency's entry from a file another node
    /// exported. Needs --home.
    Import {
        /// The exported entry.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List the known agencies (signed mode: the zones in force, as `status`). Needs --home.
    List,
    /// Authority, offline: sign a zone from exported entries (and an earlier zone) into a file.
    Sign(SignArgs),
    /// Offline: check zone files as a node would (the root zone first, each other against it);
    /// exit 1 if any is refused or stale.
    Verify(VerifyArgs),
    /// Offline: what a zone file says (its signature not checked: use `verify` for that).
    Show {
        /// The zone file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print the signed content (JSON) with the signer's subject added.
        #[arg(long)]
        json: bool,
    },
    /// Offline: what changed from one zone file to another (signatures not checked).
    Diff {
        /// The earlier zone file.
        #[arg(value_name = "OLD")]
        old: PathBuf,
        /// The later zone file.
        #[arg(value_name = "NEW")]
        new: PathBuf,
        /// Print the changes as a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Hand a signed zone file to the running node (signed mode, host admin); it checks it and
    /// takes it up if newer. Needs --home.
    Publish {
        /// The zone file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The zones the running node holds, their age and freshness, and the files it refused.
    /// Needs --home.
    Status {
        /// Print the API's answer (JSON).
        #[arg(long)]
        json: bool,
    },
}

/// `vdx directory sign`'s arguments.
#[derive(Args, Debug)]
pub(crate) struct SignArgs {
    /// The authority's directory: directory.pem and directory.key (`vdx pki issue --profile
    /// directory`).
    #[arg(long, value_name = "AUTH_DIR")]
    authority: PathBuf,
    /// The zone's name: `root`, or the authority's organ code.
    #[arg(long)]
    zone: String,
    /// The zone's version: greater than every earlier issue's.
    #[arg(long, value_name = "N")]
    version: u64,
    /// Root zone: delegate the zone CODE to the authority whose certificate is CERT.pem.
    #[arg(long, value_name = "CODE=CERT.pem")]
    delegate: Vec<String>,
    /// The organ codes a delegation may sign for (repeatable; default `*.` and the last segment
    /// of CODE): an organ code, or `*.` and a last segment.
    #[arg(long, value_name = "CODE=PATTERN")]
    scope: Vec<String>,
    /// Start from this earlier zone file's entries and delegations.
    #[arg(long, value_name = "OLD.zone")]
    base: Option<PathBuf>,
    /// Drop the entry or delegation of CODE (repeatable).
    #[arg(long, value_name = "CODE")]
    remove: Vec<String>,
    /// The highest classification for entries that do not say: none, mat, toi-mat, tuyet-mat.
    #[arg(long, value_name = "LEVEL")]
    max_classification: Option<String>,
    /// Days until the zone's next_update (past it, it is stale).
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Where to write the zone file (`<zone>.zone` by convention).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Entries exported by nodes (`vdx directory export`), added or replacing the base's.
    #[arg(value_name = "ENTRY.json")]
    entries: Vec<PathBuf>,
}

/// `vdx directory verify`'s arguments.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The root authority's certificate, as nodes are configured with it.
    #[arg(long, value_name = "ROOT.pem")]
    trust: PathBuf,
    /// CA certificates the signers must chain to (repeatable); without any, no path is checked.
    #[arg(long, value_name = "CA.pem")]
    ca: Vec<PathBuf>,
    /// CRLs to check the signers against (repeatable; needs --ca).
    #[arg(long, value_name = "CRL.pem")]
    crl: Vec<PathBuf>,
    /// The zone files.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

/// Runs a directory command; the node's ones need `home`.
pub(crate) fn run(
    home: Option<PathBuf>,
    tenant: Option<&OrganCode>,
    cmd: DirectoryCommand,
) -> Result<ExitCode> {
    match cmd {
        DirectoryCommand::Sign(args) => sign(&args),
        DirectoryCommand::Verify(args) => verify(&args),
        DirectoryCommand::Show { file, json } => show(&file, json),
        DirectoryCommand::Diff { old, new, json } => diff(&old, &new, json),
        DirectoryCommand::Export => export(&crate::home(home)?, tenant),
        DirectoryCommand::Import { file } => import(&crate::home(home)?, &file),
        DirectoryCommand::List => list(&crate::home(home)?),
        DirectoryCommand::Publish { file } => publish(&crate::home(home)?, &file),
        DirectoryCommand::Status { json } => status(&crate::home(home)?, json),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds as RFC 3339 (UTC), or the number itself if out of range.
fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// SHA-256 of `bytes`, lower-case hex.
fn sha256_hex(bytes: &[u8]) -> String {
    openssl::sha::sha256(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Splits `CODE=VALUE` of option `--{option}`.
fn split_pair<'a>(option: &str, text: &'a str) -> Result<(&'a str, &'a str)> {
    match text.split_once('=') {
        Some((code, value)) if !code.is_empty() && !value.is_empty() => Ok((code, value)),
        _ => bail!("--{option} {text:?} is not CODE=VALUE"),
    }
}

/// The scope a delegation gets when `--scope` says nothing: every organ code ending in the
/// delegated code's last segment (a province's `H41` for `000.00.00.H41`).
fn default_scope(code: &str) -> String {
    format!("*.{}", code.rsplit('.').next().unwrap_or(code))
}

/// Reads a zone file without judging its signature (`show`, `diff`, `--base`).
fn read_zone(path: &Path) -> Result<(Zone, X509)> {
    let der = files::read_file(path)?;
    Zone::read_unverified(&der)
        .with_context(|| format!("{} is not a readable zone", path.display()))
}

/// The zone `args` describe, not yet signed.
fn build_zone(args: &SignArgs, now: u64) -> Result<Zone> {
    let name = args.zone.as_str();
    if name != ROOT_ZONE && name.parse::<OrganCode>().is_err() {
        bail!("--zone {name:?} is neither `root` nor an organ code");
    }
    let mut entries: BTreeMap<String, ZoneEntry> = BTreeMap::new();
    let mut delegations: BTreeMap<String, Delegation> = BTreeMap::new();
    if let Some(base) = &args.base {
        let (old, _) = read_zone(base)?;
        if old.zone != name {
            bail!("--base {} is zone {}, not {name}", base.display(), old.zone);
        }
        if args.version <= old.version {
            bail!(
                "--version {} is not greater than the base's {} (nodes take only newer zones)",
                args.version,
                old.version
            );
        }
        entries.extend(old.entries.into_iter().map(|e| (e.organ_code.clone(), e)));
        delegations.extend(old.delegations.into_iter().map(|d| (d.zone.clone(), d)));
    }
    for path in &args.entries {
        let entry = Entry::from_json(&files::read_file(path)?)
            .with_context(|| format!("{} is not a valid directory entry", path.display()))?;
        // A delegated zone's agencies sit under its authority unless they say otherwise.
        let parent = (name != ROOT_ZONE && entry.organ_code != name).then_some(name);
        if entry.max_classification.is_none() && args.max_classification.is_none() {
            bail!(
                "{} ({}) says no max_classification: give --max-classification LEVEL",
                entry.organ_code,
                path.display()
            );
        }
        let zone_entry = ZoneEntry::from_entry(&entry, parent, args.max_classification.as_deref())
            .with_context(|| format!("the entry in {}", path.display()))?;
        entries.insert(zone_entry.organ_code.clone(), zone_entry);
    }
    let mut scopes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for text in &args.scope {
        let (code, pattern) = split_pair("scope", text)?;
        scopes.entry(code).or_default().push(pattern.to_owned());
    }
    for text in &args.delegate {
        let (code, cert_path) = split_pair("delegate", text)?;
        let cert = files::load_cert(Path::new(cert_path))?;
        let scope = scopes
            .remove(code)
            .unwrap_or_else(|| vec![default_scope(code)]);
        let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
        let delegation = Delegation::new(code, &scope, &cert)
            .with_context(|| format!("the delegation of {code}"))?;
        delegations.insert(code.to_owned(), delegation);
    }
    // --scope alone re-scopes a delegation the base has.
    for (code, scope) in scopes {
        match delegations.get_mut(code) {
            Some(delegation) => delegation.scope = scope,
            None => bail!(
                "--scope {code}=...: {code} is not delegated (give --delegate {code}=CERT.pem)"
            ),
        }
    }
    for code in &args.remove {
        let entry = entries.remove(code.as_str());
        let delegation = delegations.remove(code.as_str());
        if entry.is_none() && delegation.is_none() {
            bail!("--remove {code}: the zone has no entry or delegation of {code}");
        }
    }
    if name != ROOT_ZONE && !delegations.is_empty() {
        bail!("only the root zone delegates (--delegate is for --zone root)");
    }
    Ok(Zone {
        zone: name.to_owned(),
        version: args.version,
        issued: now,
        next_update: now.saturating_add(u64::from(args.days) * 86_400),
        entries: entries.into_values().collect(),
        delegations: delegations.into_values().collect(),
    })
}

/// `vdx directory sign`.
fn sign(args: &SignArgs) -> Result<ExitCode> {
    if args.days == 0 {
        bail!("--days must be at least 1");
    }
    let cert = files::load_cert(&args.authority.join(AUTHORITY_CERT))?;
    let zone = build_zone(args, now())?;
    let key = files::load_key(&args.authority.join(AUTHORITY_KEY))?;
    let der = zone
        .sign(&cert, &key)
        .with_context(|| format!("cannot sign zone {}", zone.zone))?;
    write_file(&args.out, &der, Mode::Public)?;
    stdout::write(&format!(
        "signed zone {} version {}: {} entries, {} delegations, {} bytes -> {}\n  sha256:      \
         {}\n  signer:      {}\n  next update: {}\n",
        zone.zone,
        zone.version,
        zone.entries.len(),
        zone.delegations.len(),
        der.len(),
        args.out.display(),
        sha256_hex(&der),
        vdx_pki::subject_string(&cert),
        rfc3339(zone.next_update)
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `vdx directory verify`.
fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let root = files::load_cert(&args.trust)?;
    let trust = if args.ca.is_empty() {
        if !args.crl.is_empty() {
            bail!("--crl needs --ca (the CAs whose revocations it lists)");
        }
        None
    } else {
        let mut anchors = Vec::new();
        for path in &args.ca {
            anchors.extend(files::load_certs(path)?);
        }
        let mut crls = Vec::new();
        for path in &args.crl {
            crls.extend(
                vdx_pki::parse_crls(&files::read_file(path)?)
                    .with_context(|| format!("in {}", path.display()))?,
            );
        }
        Some(TrustStore::new(anchors, Vec::new(), crls)?)
    };
    let mut inputs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        inputs.push((path.display().to_string(), files::read_file(path)?));
    }
    let mut out = String::new();
    let mut failed = false;
    for (label, result) in verify_zone_files(&root, &inputs, trust.as_ref(), now()) {
        match result {
            Ok(zone) => writeln!(
                out,
                "OK {} version {} signer {} next update {} ({label})",
                zone.name(),
                zone.version(),
                zone.signer_subject(),
                rfc3339(zone.next_update())
            )?,
            Err(e) => {
                failed = true;
                writeln!(out, "FAILED {label}: {}: {}", e.code(), refusal_reason(&e))?;
            }
        }
    }
    stdout::write(&out)?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A refusal's reason without the code (printed beside it), naming the zone when it was read.
fn refusal_reason(e: &vdx_pki::Error) -> String {
    match e {
        vdx_pki::Error::Zone { zone, reason, .. } => format!("zone {zone}: {reason}"),
        other => other.to_string(),
    }
}

/// The signer subject of a delegation's certificate, or why it cannot be read.
fn delegation_signer(delegation: &Delegation) -> String {
    STANDARD
        .decode(&delegation.certificate)
        .ok()
        .and_then(|der| X509::from_der(&der).ok())
        .map_or_else(
            || "(unreadable certificate)".to_owned(),
            |cert| vdx_pki::subject_string(&cert),
        )
}

/// The content with the signer's subject after it: what `show --json` prints.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    zone: &'a Zone,
    signer: String,
}

/// `vdx directory show`.
fn show(path: &Path, json: bool) -> Result<ExitCode> {
    let (zone, signer) = read_zone(path)?;
    let signer = vdx_pki::subject_string(&signer);
    if json {
        let text = serde_json::to_string_pretty(&Shown {
            zone: &zone,
            signer,
        })?;
        stdout::write(&format!("{text}\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    writeln!(out, "zone {} version {}", zone.zone, zone.version)?;
    writeln!(out, "  issued:      {}", rfc3339(zone.issued))?;
    writeln!(out, "  next update: {}", rfc3339(zone.next_update))?;
    writeln!(out, "  signer:      {signer}")?;
    writeln!(out, "entries ({}):", zone.entries.len())?;
    for e in &zone.entries {
        let reach = match (&e.host, e.endpoints.is_empty()) {
            (Some(host), _) => format!("host {host}"),
            (None, false) => e.endpoints.join(","),
            (None, true) => "-".to_owned(),
        };
        writeln!(
            out,
            "  {:16} {:24} relays {:16} parent {:16} max {:9} {}",
            e.organ_code,
            reach,
            if e.relays.is_empty() {
                "-".to_owned()
            } else {
                e.relays.join(",")
            },
            e.parent.as_deref().unwrap_or("-"),
            e.max_classification,
            e.name
        )?;
    }
    writeln!(out, "delegations ({}):", zone.delegations.len())?;
    for d in &zone.delegations {
        writeln!(
            out,
            "  {:16} scope {:12} signer {}",
            d.zone,
            d.scope.join(","),
            delegation_signer(d)
        )?;
    }
    stdout::write(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// What changed between two zones.
#[derive(Serialize, Debug, PartialEq, Eq)]
struct ZoneDiff {
    zone: String,
    old_version: u64,
    new_version: u64,
    entries: Changes,
    delegations: Changes,
}

/// Added and removed codes, and the changed ones with the fields that differ.
#[derive(Serialize, Debug, Default, PartialEq, Eq)]
struct Changes {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<Changed>,
}

/// One entry or delegation present on both sides that differs.
#[derive(Serialize, Debug, PartialEq, Eq)]
struct Changed {
    code: String,
    fields: Vec<&'static str>,
}

/// The fields in which two entries of the same organ code differ.
fn entry_fields(a: &ZoneEntry, b: &ZoneEntry) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut check = |differs: bool, name: &'static str| {
        if differs {
            fields.push(name);
        }
    };
    check(a.name != b.name, "name");
    check(a.parent != b.parent, "parent");
    check(a.host != b.host, "host");
    check(a.endpoints != b.endpoints, "endpoints");
    check(a.relays != b.relays, "relays");
    check(
        a.max_classification != b.max_classification,
        "max_classification",
    );
    check(
        a.certificates.sign != b.certificates.sign,
        "certificates.sign",
    );
    check(a.certificates.enc != b.certificates.enc, "certificates.enc");
    check(a.certificates.tls != b.certificates.tls, "certificates.tls");
    fields
}

/// The fields in which two delegations of the same zone differ.
fn delegation_fields(a: &Delegation, b: &Delegation) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if a.scope != b.scope {
        fields.push("scope");
    }
    if a.certificate != b.certificate {
        fields.push("certificate");
    }
    fields
}

/// Compares two lists keyed by `key`, field by field with `fields`.
fn changes<T>(
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> &str,
    fields: impl Fn(&T, &T) -> Vec<&'static str>,
) -> Changes {
    let old: BTreeMap<&str, &T> = old.iter().map(|x| (key(x), x)).collect();
    let new: BTreeMap<&str, &T> = new.iter().map(|x| (key(x), x)).collect();
    let mut out = Changes::default();
    for (code, a) in &old {
        match new.get(code) {
            None => out.removed.push((*code).to_owned()),
            Some(b) => {
                let differ = fields(a, b);
                if !differ.is_empty() {
                    out.changed.push(Changed {
                        code: (*code).to_owned(),
                        fields: differ,
                    });
                }
            }
        }
    }
    out.added = new
        .keys()
        .filter(|code| !old.contains_key(*code))
        .map(|code| (*code).to_owned())
        .collect();
    out
}

fn zone_diff(old: &Zone, new: &Zone) -> ZoneDiff {
    ZoneDiff {
        zone: new.zone.clone(),
        old_version: old.version,
        new_version: new.version,
        entries: changes(&old.entries, &new.entries, |e| &e.organ_code, entry_fields),
        delegations: changes(
            &old.delegations,
            &new.delegations,
            |d| &d.zone,
            delegation_fields,
        ),
    }
}

/// `vdx directory diff`.
fn diff(old_path: &Path, new_path: &Path, json: bool) -> Result<ExitCode> {
    let (old, _) = read_zone(old_path)?;
    let (new, _) = read_zone(new_path)?;
    if old.zone != new.zone {
        bail!(
            "{} is zone {} and {} is zone {}: compare issues of one zone",
            old_path.display(),
            old.zone,
            new_path.display(),
            new.zone
        );
    }
    let d = zone_diff(&old, &new);
    if json {
        stdout::write(&format!("{}\n", serde_json::to_string_pretty(&d)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "zone {}: version {} -> {}\n",
        d.zone, d.old_version, d.new_version
    );
    for (what, c) in [("entry", &d.entries), ("delegation", &d.delegations)] {
        for code in &c.added {
            writeln!(out, "+ {what} {code}")?;
        }
        for code in &c.removed {
            writeln!(out, "- {what} {code}")?;
        }
        for changed in &c.changed {
            writeln!(
                out,
                "~ {what} {}: {}",
                changed.code,
                changed.fields.join(", ")
            )?;
        }
    }
    if d.entries == Changes::default() && d.delegations == Changes::default() {
        out.push_str("no entry or delegation changed\n");
    }
    stdout::write(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `vdx directory export`: the entry of this node or of a tenant, from `directory.json` when a
/// pilot's lists it, else from its certificates (always so in signed mode, where the directory
/// file is not kept).
fn export(home: &Path, tenant: Option<&OrganCode>) -> Result<ExitCode> {
    let config = Config::load(home)?;
    let code = tenant.unwrap_or(&config.organ_code);
    let listed = if config.zones.is_none() {
        let path = config::resolve(home, &config.directory);
        Directory::from_json(&files::read_file(&path)?)
            .with_context(|| format!("in {}", path.display()))?
            .get(code.as_str())
            .cloned()
    } else {
        None
    };
    let entry = match listed {
        Some(entry) => entry,
        None if *code == config.organ_code => own_entry(home, &config)?,
        None => match config::TenantConfig::load(home, code)? {
            Some(added) => hosted_entry(home, &config, &added)?,
            None => bail!("{code} is not a tenant of this node (vdx tenant list)"),
        },
    };
    stdout::write(&format!("{}\n", String::from_utf8_lossy(&entry.to_json()?)))?;
    Ok(ExitCode::SUCCESS)
}

/// `vdx directory import` (a pilot's unsigned directory only).
fn import(home: &Path, file: &Path) -> Result<ExitCode> {
    let config = Config::load(home)?;
    if let Some(zones) = &config.zones {
        bail!(
            "this node takes its directory from signed zones (root authority {}): an entry is \
             added by its directory authority, who signs it into a zone (`vdx directory sign`) \
             that is then handed to a node with `vdx directory publish`",
            config::resolve(home, &zones.root_authority).display()
        );
    }
    let path = config::resolve(home, &config.directory);
    let mut directory = Directory::from_json(&files::read_file(&path)?)
        .with_context(|| format!("in {}", path.display()))?;
    let entry = Entry::from_json(&files::read_file(file)?)
        .with_context(|| format!("{} is not a valid directory entry", file.display()))?;
    let code = entry.organ_code.clone();
    let replaced = directory.upsert(entry)?;
    write_file(&path, &directory.to_json()?, Mode::Public)?;
    println!(
        "{} {code} in {}",
        if replaced { "updated" } else { "added" },
        path.display()
    );
    let client = Client::new(home)?;
    if client.is_running() {
        let reloaded = client.post("/v1/reload", &json!({}))?;
        println!("{}", describe_reload(&reloaded));
    } else {
        println!("vdxd is not running; it reads the directory when it starts");
    }
    Ok(ExitCode::SUCCESS)
}

/// `vdx directory list`: a pilot's `directory.json`; in signed mode, the zones in force.
fn list(home: &Path) -> Result<ExitCode> {
    let config = Config::load(home)?;
    if config.zones.is_some() {
        println!("signed directory: the agencies are those of the zones in force");
        return status(home, false);
    }
    let path = config::resolve(home, &config.directory);
    let directory = Directory::from_json(&files::read_file(&path)?)
        .with_context(|| format!("in {}", path.display()))?;
    let mut out = String::new();
    for e in &directory.entries {
        writeln!(
            out,
            "{:16} {:24} {}",
            e.organ_code,
            e.endpoint.as_deref().unwrap_or("-"),
            e.name
        )?;
    }
    stdout::write(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `vdx directory publish`: `POST /v1/directory/zones` with the file's bytes.
fn publish(home: &Path, file: &Path) -> Result<ExitCode> {
    let bytes = files::read_file(file)?;
    let answer = Client::new(home)?
        .post_stream("/v1/directory/zones", Box::new(std::io::Cursor::new(bytes)))
        .with_context(|| format!("the node refused {}", file.display()))?;
    let text = |key: &str| answer[key].to_string();
    stdout::write(&format!(
        "zone {} version {}: {}; {} agencies in the directory in force\n",
        answer["zone"].as_str().unwrap_or("?"),
        text("version"),
        if answer["changed"] == true {
            "taken up"
        } else {
            "unchanged (the node holds this version already)"
        },
        text("agencies")
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `vdx directory status`: `GET /v1/directory/zones`.
fn status(home: &Path, json: bool) -> Result<ExitCode> {
    let answer = Client::new(home)?.get("/v1/directory/zones")?;
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(&answer)?)
    } else {
        render_status(&answer)?
    };
    stdout::write(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Seconds as the largest whole unit a person reads at a glance.
fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// The status answer as a table and the refused files.
fn render_status(s: &Value) -> Result<String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let mut out = String::new();
    if s["mode"] != "signed" {
        writeln!(
            out,
            "unsigned directory (pilot): {} agencies in directory.json",
            text(&s["agencies"])
        )?;
        return Ok(out);
    }
    writeln!(
        out,
        "signed directory: root authority {}, source {}, every {}s; {} agencies in force",
        text(&s["root_authority"]),
        text(&s["source"]),
        text(&s["interval_secs"]),
        text(&s["agencies"])
    )?;
    writeln!(
        out,
        "{:16} {:>8} {:>6} {:22} {:8} {:9} {:16} signer",
        "zone", "version", "age", "next update", "stale", "in force", "from"
    )?;
    for z in s["zones"].as_array().map(Vec::as_slice).unwrap_or_default() {
        writeln!(
            out,
            "{:16} {:>8} {:>6} {:22} {:8} {:9} {:16} {}",
            text(&z["zone"]),
            text(&z["version"]),
            z["age_secs"].as_u64().map_or("-".to_owned(), age),
            z["next_update"].as_u64().map_or("-".to_owned(), rfc3339),
            if z["stale"] == true { "STALE" } else { "-" },
            if z["in_force"] == false { "no" } else { "yes" },
            text(&z["from"]),
            text(&z["signer"])
        )?;
    }
    if let Some(refused) = s["refused"].as_array().filter(|r| !r.is_empty()) {
        writeln!(out, "refused zone files:")?;
        for r in refused {
            writeln!(
                out,
                "  {}: {}: {}",
                text(&r["file"]),
                text(&r["code"]),
                text(&r["reason"])
            )?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vdx_pki::ZoneCertificates;

    fn entry(code: &str, name: &str) -> ZoneEntry {
        ZoneEntry {
            organ_code: code.to_owned(),
            name: name.to_owned(),
            parent: None,
            host: None,
            endpoints: vec!["10.0.0.1:4433".to_owned()],
            relays: Vec::new(),
            max_classification: "mat".to_owned(),
            certificates: ZoneCertificates {
                sign: "A".to_owned(),
                enc: "B".to_owned(),
                tls: Some("C".to_owned()),
            },
        }
    }

    fn zone(version: u64, entries: Vec<ZoneEntry>, delegations: Vec<Delegation>) -> Zone {
        Zone {
            zone: ROOT_ZONE.to_owned(),
            version,
            issued: 1,
            next_update: 2,
            entries,
            delegations,
        }
    }

    fn delegation(code: &str, scope: &str) -> Delegation {
        Delegation {
            zone: code.to_owned(),
            scope: vec![scope.to_owned()],
            certificate: "D".to_owned(),
        }
    }

    #[test]
    fn diff_names_added_removed_and_changed_fields() {
        let mut moved = entry("000.00.00.G22", "VPCP");
        let old = zone(
            3,
            vec![moved.clone(), entry("000.00.00.G09", "Bộ Tư pháp")],
            vec![delegation("000.00.00.H41", "*.H41")],
        );
        moved.endpoints = vec!["10.0.0.2:4433".to_owned()];
        moved.certificates.tls = None;
        let new = zone(
            4,
            vec![moved, entry("000.00.00.G10", "Bộ Tài chính")],
            vec![
                delegation("000.00.00.H41", "000.01.41.H41"),
                delegation("000.00.00.H26", "*.H26"),
            ],
        );
        let d = zone_diff(&old, &new);
        assert_eq!((d.old_version, d.new_version), (3, 4));
        assert_eq!(d.entries.added, ["000.00.00.G10"]);
        assert_eq!(d.entries.removed, ["000.00.00.G09"]);
        assert_eq!(
            d.entries.changed,
            [Changed {
                code: "000.00.00.G22".to_owned(),
                fields: vec!["endpoints", "certificates.tls"],
            }]
        );
        assert_eq!(d.delegations.added, ["000.00.00.H26"]);
        assert_eq!(d.delegations.changed[0].fields, ["scope"]);
        assert_eq!(zone_diff(&old, &old).entries, Changes::default());
    }

    #[test]
    fn default_scope_is_the_last_segment_and_pairs_need_both_halves() {
        assert_eq!(default_scope("000.00.00.H41"), "*.H41");
        assert_eq!(
            split_pair("scope", "000.00.00.H41=*.H41").unwrap(),
            ("000.00.00.H41", "*.H41")
        );
        for bad in ["000.00.00.H41", "=x.pem", "000.00.00.H41="] {
            assert!(split_pair("delegate", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_table_marks_stale_zones_and_lists_refusals() {
        let answer = json!({
            "mode": "signed", "root_authority": "CN=Root", "source": "000.00.00.G22",
            "interval_secs": 300, "agencies": 12,
            "zones": [{"zone": "root", "version": 4, "signer": "CN=Root", "issued": 0,
                "next_update": 86400, "age_secs": 7200, "stale": true, "in_force": true,
                "agencies": 3, "from": "000.00.00.G22", "taken_at": 0, "sha256": "00"}],
            "refused": [{"file": "x.zone", "code": "bad_signature", "reason": "tampered"}]
        });
        let text = render_status(&answer).unwrap();
        assert!(text.contains("12 agencies in force"), "{text}");
        assert!(
            text.contains("STALE") && text.contains("1970-01-02T00:00:00Z"),
            "{text}"
        );
        assert!(text.contains("x.zone: bad_signature: tampered"), "{text}");
        let pilot = render_status(&json!({"mode": "pilot", "agencies": 2})).unwrap();
        assert!(pilot.contains("pilot") && pilot.contains('2'), "{pilot}");
        assert_eq!(age(90), "90s");
        assert_eq!(age(7_200), "2h");
    }
}
