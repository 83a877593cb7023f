//! `vdx directory ...`: the directory of agencies. Two kinds of commands:
//!
//! - a directory authority's, offline (`sign`, `verify`, `show`, `diff`): signed zones
//!   (`docs/directory-zones.md`) made from exported entries, checked and compared as files;
//! - a node's (`export`, `import`, `list`, `publish`, `status`, needing `--home`): its own entry,
//!   its unsigned `directory.json` (a pilot), or the zones its running daemon holds (signed mode).

mod authority;
mod inspect;
mod node;

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
        DirectoryCommand::Sign(args) => authority::sign(&args),
        DirectoryCommand::Verify(args) => authority::verify(&args),
        DirectoryCommand::Show { file, json } => inspect::show(&file, json),
        DirectoryCommand::Diff { old, new, json } => inspect::diff(&old, &new, json),
        DirectoryCommand::Export => node::export(&crate::home(home)?, tenant),
        DirectoryCommand::Import { file } => node::import(&crate::home(home)?, &file),
        DirectoryCommand::List => node::list(&crate::home(home)?),
        DirectoryCommand::Publish { file } => node::publish(&crate::home(home)?, &file),
        DirectoryCommand::Status { json } => node::status(&crate::home(home)?, json),
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
    vdx_protocol::hex::encode(&openssl::sha::sha256(bytes))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
