//! `vdx audit …`: the security officer's tools (spec: `docs/ledger.md`). `export`, `prove` and
//! `log` ask the node — through its local API (role `officer`) while the daemon runs, or its store
//! directly while it is stopped — and each such reading is itself recorded in the ledger.
//! `witness` asks the running daemon to check its peers. `verify` and `check-proof` need nothing
//! but files.

use std::fmt::Write as _;
use std::io::BufReader;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::{Args, Subcommand};
use openssl::x509::X509;
use vdx_node::store::Store;
use vdx_node::tenant::audit::{Auditor, BundleParts, LogFilter, LogRow};
use vdx_node::tenant::receipts::ReceiptSigner;
use vdx_node::tenant::witness::PeerReport;
use vdx_protocol::bundle::{BundleWriter, EntryReader};
use vdx_protocol::ledger::Actor;
use vdx_protocol::merkle::Hash;
use vdx_protocol::OrganCode;

use crate::audit::{check_proof, verify_bundle};
use crate::client::Client;
use crate::stdout;

#[derive(Subcommand, Debug)]
pub(crate) enum AuditCommand {
    /// Write the ledger (or a range of it) as a bundle of plain files an auditor can carry away.
    Export(ExportArgs),
    /// Check a bundle (or, with --home, the node's whole ledger): every hash, signature and
    /// checkpoint; names the first bad entry.
    Verify(VerifyArgs),
    /// Inclusion proofs of every ledger entry about a dispatch, against a signed checkpoint.
    Prove(ProveArgs),
    /// Check inclusion proofs with nothing but the node's certificate.
    CheckProof(CheckProofArgs),
    /// The ledger as a readable table.
    Log(LogArgs),
    /// Check that each peer's checkpoints, seen in its receipts, tell one consistent history.
    Witness(JsonArgs),
}

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// The bundle directory to create (must not exist or be empty).
    #[arg(long, value_name = "BUNDLE_DIR")]
    out: PathBuf,
    /// First entry (default 0).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// One past the last entry (default: everything on disk).
    #[arg(long)]
    to: Option<u64>,
}

#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The bundle directory; without it, the node of --home is exported and checked.
    #[arg(value_name = "BUNDLE_DIR")]
    bundle: Option<PathBuf>,
    /// Trust anchors (PEM) the node's certificate must chain to; without it only the bundle's
    /// own consistency is checked.
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct ProveArgs {
    /// The dispatch: a transfer id (32 hex digits, as `inbox`/`outbox` show it: that copy) or its
    /// message id (the UUID `show` gives: every copy this node holds).
    #[arg(long)]
    id: String,
    /// Write one `INDEX.proof` file per entry into this directory (default: print them).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct CheckProofArgs {
    /// Proof files (`vdx-proof/1`).
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// The node's signing certificate (PEM), e.g. the first of a bundle's chain.pem.
    #[arg(long, value_name = "PEM")]
    cert: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct LogArgs {
    /// Only entries at or after this time (RFC 3339 UTC, or a date YYYY-MM-DD).
    #[arg(long)]
    since: Option<String>,
    /// Only entries about this agency (as the actor, sender or recipient).
    #[arg(long, value_name = "CODE")]
    org: Option<String>,
    /// Only entries of this kind (submitted, sent, received, registered, fetched, …).
    #[arg(long)]
    kind: Option<String>,
    /// Only entries after this index (the last index of the previous page).
    #[arg(long, value_name = "INDEX")]
    after: Option<u64>,
    /// At most this many rows; the next page starts `--after` the last index shown.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl LogArgs {
    /// The filter's parameters as given, by [`LogFilter::PARAMS`] name.
    fn params(&self) -> Vec<(&'static str, String)> {
        let [since, org, kind, after, limit] = LogFilter::PARAMS;
        [
            (since, self.since.clone()),
            (org, self.org.clone()),
            (kind, self.kind.clone()),
            (after, self.after.map(|a| a.to_string())),
            // One more than shown: whether there is a next page.
            (limit, self.limit.map(|l| l.saturating_add(1).to_string())),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
    }
}

#[derive(Args, Debug)]
pub(crate) struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(
    home: Option<PathBuf>,
    tenant: Option<&OrganCode>,
    command: AuditCommand,
) -> Result<ExitCode> {
    let home = || {
        home.clone()
            .ok_or_else(|| anyhow!("this command needs --home DIR (or VDX_HOME)"))
    };
    match command {
        AuditCommand::Export(args) => {
            let end = export(&home()?, tenant, &args.out, args.from, args.to)?;
            println!(
                "exported entries {}..{end} to {} (check it with: vdx audit verify {})",
                args.from,
                args.out.display(),
                args.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify(args) => verify(home().ok(), tenant, args),
        AuditCommand::Prove(args) => prove(&home()?, tenant, args),
        AuditCommand::CheckProof(args) => check_proofs(args),
        AuditCommand::Log(args) => log(&home()?, tenant, args),
        AuditCommand::Witness(args) => witness(&home()?, tenant, args),
    }
}

/// Where ledger questions go: the running daemon, or the stopped node's store.
enum Ledger {
    Online(Client),
    Offline(Box<Offline>),
}

/// A stopped node's store, and what signs its checkpoints.
struct Offline {
    store: Store,
    signer: ReceiptSigner,
    chain: String,
}

impl Offline {
    fn auditor(&self) -> Auditor<'_> {
        Auditor {
            store: &self.store,
            signer: &self.signer,
            chain_pem: &self.chain,
        }
    }
}

impl Ledger {
    /// The ledger of agency `tenant` (the caller's only one, or offline the host's own, when
    /// `None`) of the node in `home`.
    fn open(home: &Path, tenant: Option<&OrganCode>) -> Result<Self> {
        let client = Client::for_tenant(home, tenant)?;
        if client.is_running() {
            return Ok(Self::Online(client));
        }
        let (config, signer, chain) = vdx_node::host::load_signer(home, tenant)
            .context("vdxd is not running; reading its ledger directly needs its signing key (VDX_KEY_PASSPHRASE)")?;
        let store = crate::cmd_tenant::offline_store(home, &config, tenant)?;
        Ok(Self::Offline(Box::new(Offline {
            store,
            signer,
            chain,
        })))
    }
}

/// The offline reader: this process's user.
fn me() -> Actor {
    Actor::User(std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid()))
}

/// Writes the ledger of the node in `home` (through its API, or its stopped store) as a bundle.
pub(crate) fn export(
    home: &Path,
    tenant: Option<&OrganCode>,
    out: &Path,
    from: u64,
    to: Option<u64>,
) -> Result<u64> {
    match Ledger::open(home, tenant)? {
        Ledger::Online(client) => {
            let to = to.map(|t| format!("&to={t}")).unwrap_or_default();
            let parts: BundleParts =
                serde_json::from_value(client.get(&format!("/v1/audit/bundle?from={from}{to}"))?)
                    .context("the daemon's bundle answer")?;
            let staged =
                tempfile::NamedTempFile::new().context("a temporary file for the entries")?;
            client.download(
                &format!("/v1/audit/entries?from={}&to={}", parts.from, parts.to),
                &mut staged.reopen()?,
            )?;
            let mut writer = BundleWriter::create(out, parts.from, &prefix_of(&parts)?)?;
            let mut entries = EntryReader::new(BufReader::new(staged.reopen()?), parts.from);
            let mut buf = Vec::new();
            while entries.read_into(&mut buf)? {
                writer.entry(&buf)?;
            }
            if entries.next_index() != parts.to {
                bail!(
                    "the daemon sent entries up to {}, not {}",
                    entries.next_index(),
                    parts.to
                );
            }
            Ok(writer.finish(&parts.checkpoints, parts.chain_pem.as_bytes())?)
        }
        Ledger::Offline(offline) => {
            let auditor = offline.auditor();
            let parts = auditor.bundle(from, to, &me())?;
            let mut writer = BundleWriter::create(out, parts.from, &prefix_of(&parts)?)?;
            for entry in offline.store.ledger_entries(parts.from, parts.to) {
                writer.entry(&entry?)?;
            }
            Ok(writer.finish(&parts.checkpoints, parts.chain_pem.as_bytes())?)
        }
    }
}

fn prefix_of(parts: &BundleParts) -> Result<Vec<Hash>> {
    parts
        .prefix
        .iter()
        .map(|h| {
            base64::engine::general_purpose::STANDARD
                .decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| anyhow!("a prefix hash is not base64 of 32 bytes"))
        })
        .collect()
}

fn verify(home: Option<PathBuf>, tenant: Option<&OrganCode>, args: VerifyArgs) -> Result<ExitCode> {
    let staged;
    let dir = match (&args.bundle, home) {
        (Some(dir), _) => dir.clone(),
        (None, Some(home)) => {
            staged = tempfile::tempdir()?;
            let dir = staged.path().join("bundle");
            export(&home, tenant, &dir, 0, None)?;
            dir
        }
        (None, None) => bail!("give a BUNDLE_DIR, or --home DIR to check that node's ledger"),
    };
    let trust = match &args.ca {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let anchors =
                vdx_pki::parse_certs(&pem).with_context(|| format!("{}", path.display()))?;
            Some(vdx_pki::TrustStore::new(anchors, Vec::new(), Vec::new())?)
        }
        None => None,
    };
    match verify_bundle(&dir, trust.as_ref()) {
        Ok(summary) => {
            println!(
                "ok: {}: entries {}..{}, {} checkpoints verified, root {}, signed by {} ({})",
                summary.origin,
                summary.from,
                summary.end,
                summary.checkpoints,
                base64::engine::general_purpose::STANDARD.encode(summary.root),
                summary.signer,
                if summary.trusted {
                    "certificate valid under --ca"
                } else {
                    "certificate not checked against a CA: give --ca"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(finding) => {
            eprintln!("vdx: {}: {finding}", dir.display());
            Ok(ExitCode::from(1))
        }
    }
}

fn prove(home: &Path, tenant: Option<&OrganCode>, args: ProveArgs) -> Result<ExitCode> {
    let proofs: Vec<String> = match Ledger::open(home, tenant)? {
        Ledger::Online(client) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("id", &args.id)
                .finish();
            let answer = client.get(&format!("/v1/audit/prove?{query}"))?;
            serde_json::from_value(answer.get("proofs").cloned().unwrap_or_default())?
        }
        Ledger::Offline(offline) => offline.auditor().prove(&args.id, &me())?,
    };
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for proof in &proofs {
                let index = proof
                    .lines()
                    .nth(1)
                    .and_then(|l| l.strip_prefix("index "))
                    .context("a proof without its index line")?;
                let path = dir.join(format!("{index}.proof"));
                std::fs::write(&path, proof)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("{}", path.display());
            }
        }
        None => {
            let all: String = proofs.iter().map(|p| format!("{p}\n")).collect();
            stdout::write(&all)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_proofs(args: CheckProofArgs) -> Result<ExitCode> {
    let pem =
        std::fs::read(&args.cert).with_context(|| format!("reading {}", args.cert.display()))?;
    let cert = X509::from_pem(&pem)
        .with_context(|| format!("{} is not a PEM certificate", args.cert.display()))?;
    let mut failed = false;
    for path in &args.files {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        match check_proof(&text, &cert) {
            Ok(summary) => println!(
                "ok: {}: entry {} ({}) is in {} at size {}",
                path.display(),
                summary.entry.index,
                summary.entry.kind,
                summary.checkpoint.origin,
                summary.checkpoint.size
            ),
            Err(e) => {
                eprintln!("vdx: {}: {e}", path.display());
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn log(home: &Path, tenant: Option<&OrganCode>, args: LogArgs) -> Result<ExitCode> {
    let params = args.params();
    let mut rows: Vec<LogRow> = match Ledger::open(home, tenant)? {
        Ledger::Online(client) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish();
            serde_json::from_value(client.get(&format!("/v1/audit/log?{query}"))?)?
        }
        Ledger::Offline(offline) => {
            let filter = LogFilter::parse(|name| {
                params
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_str())
            })?;
            offline.auditor().log(&filter, &me())?
        }
    };
    let shown = args.limit.map_or(rows.len(), |l| {
        rows.len().min(usize::try_from(l).unwrap_or(usize::MAX))
    });
    if rows.len() > shown {
        rows.truncate(shown);
        if let Some(last) = rows.last() {
            eprintln!(
                "vdx: {shown} rows shown; the next ones: --after {}",
                last.index
            );
        }
    }
    stdout::write(&render_log(&rows, args.json)?)?;
    Ok(ExitCode::SUCCESS)
}

/// Log rows as a table, or as JSON.
fn render_log(rows: &[LogRow], json: bool) -> Result<String> {
    let mut out = String::new();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(rows)?)?;
        return Ok(out);
    }
    writeln!(
        out,
        "{:>7}  {:<20}  {:<10}  {:<32}  {:<18}  details",
        "index", "time (UTC)", "kind", "dispatch", "who"
    )?;
    for row in rows {
        let details: Vec<String> = row.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(
            out,
            "{:>7}  {:<20}  {:<10}  {:<32}  {:<18}  {}",
            row.index,
            row.time,
            row.kind,
            row.id.as_deref().unwrap_or("-"),
            row.actor,
            details.join(" ")
        )?;
    }
    Ok(out)
}

fn witness(home: &Path, tenant: Option<&OrganCode>, args: JsonArgs) -> Result<ExitCode> {
    let reports = Client::for_tenant(home, tenant)?.get("/v1/audit/witness")?;
    let reports: Vec<PeerReport> = serde_json::from_value(reports)?;
    let failed = reports.iter().any(PeerReport::failed);
    let mut out = String::new();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&reports)?)?;
    } else if reports.is_empty() {
        writeln!(
            out,
            "no peer checkpoints seen yet (they come with receipts)"
        )?;
    }
    for r in reports.iter().filter(|_| !args.json) {
        writeln!(
            out,
            "{}: {} checkpoints, sizes {}..{}, {} consistency proofs verified, {} unchecked: {}",
            r.origin,
            r.checkpoints,
            r.sizes.0,
            r.sizes.1,
            r.proven,
            r.unchecked,
            r.verdict()
        )?;
        for fork in &r.forks {
            writeln!(out, "  fork: {fork}")?;
        }
        for cut in &r.rolled_back {
            writeln!(out, "  rolled back: {cut}")?;
        }
        for why in &r.invalid {
            writeln!(out, "  invalid checkpoint in a receipt: {why}")?;
        }
        for note in &r.notes {
            writeln!(out, "  note: {note}")?;
        }
    }
    stdout::write(&out)?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
