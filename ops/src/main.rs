//! `vdx`: the command line of a vdx node, for clerks, security officers and administrators.
//!
//! Exit codes: 0 success; 1 the operation was refused or failed (the message says why); 2 usage error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vdx_protocol::OrganCode;

mod audit;
mod client;
mod cmd_audit;
mod cmd_check;
mod cmd_demo;
mod cmd_directory;
mod cmd_home;
mod cmd_mail;
mod cmd_open;
mod cmd_pki;
mod cmd_seal;
mod cmd_status;
mod cmd_tenant;
mod cmd_workflow;
mod demo_national;
mod demo_network;
mod files;
mod pipeline;
mod progress;
mod stdout;
mod tui;

/// Secure exchange of official documents between agencies (CMS + X.509, store and forward).
#[derive(Parser, Debug)]
#[command(name = "vdx", version, about)]
struct Cli {
    /// The node home (config.toml, keys, directory, data) for commands that act on a node.
    #[arg(long, global = true, value_name = "DIR", env = "VDX_HOME")]
    home: Option<std::path::PathBuf>,
    /// The agency (a tenant of the node) a clerk's or officer's command acts for, by organ code;
    /// without it, the one agency of the node the caller has a role in (offline: the host's own).
    #[arg(long, global = true, value_name = "CODE", env = "VDX_TENANT")]
    tenant: Option<OrganCode>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a throw-away network of three agencies (real vdxd daemons) and send a dispatch across it.
    Demo(cmd_demo::DemoArgs),
    /// Sign a document and encrypt it to one or more recipient agencies (offline).
    Seal(cmd_seal::SealArgs),
    /// Decrypt a sealed document, verify its signatures and the signers' certificates (offline).
    Open(cmd_open::OpenArgs),
    /// Development PKI: a CA, agency certificates, revocation and CRLs.
    #[command(subcommand)]
    Pki(cmd_pki::PkiCommand),
    /// Create a node home (needs --home): config, keys and certificates, directory, data.
    Init(cmd_home::InitArgs),
    /// The agencies a node hosts besides its own: add, list, remove (needs --home, the host's admin).
    #[command(subcommand)]
    Tenant(cmd_tenant::TenantCommand),
    /// The directory of agencies: a node's own entry and what it knows (needs --home); signed
    /// zones made, checked, shown and compared offline by directory authorities.
    #[command(subcommand)]
    Directory(cmd_directory::DirectoryCommand),
    /// The running node's queues, peers, CRL renewal and disk, with warnings (needs --home).
    Status(cmd_status::StatusArgs),
    /// The running node's counters and states for monitoring, OpenMetrics text (needs --home).
    Metrics,
    /// Make the running node read its directory, trust anchors and CRLs again (needs --home).
    Reload,
    /// After the node noticed its store was restored from an older copy: resume numbering and
    /// sending, every incoming-number series above what may have been issued (needs --home, admin).
    AcknowledgeRestore(cmd_home::AcknowledgeArgs),
    /// Send a dispatch through the running node (needs --home).
    Send(cmd_mail::SendArgs),
    /// Incoming dispatches of the running node (needs --home).
    Inbox(cmd_mail::ListArgs),
    /// Outgoing dispatches and their delivery state (needs --home).
    Outbox(cmd_mail::ListArgs),
    /// One dispatch in detail (needs --home).
    Show(cmd_mail::ShowArgs),
    /// Write an incoming dispatch's files into a directory (needs --home).
    Fetch(cmd_mail::FetchArgs),
    /// Send a workflow notice about a dispatch received: 03 registered, 04 assigned, 05 in
    /// progress, 06 done, 02 refused (needs --home).
    Notice(cmd_workflow::NoticeArgs),
    /// Ask for a dispatch sent back (notice 13), with the reason (needs --home).
    Recall(cmd_workflow::RecallArgs),
    /// Answer a recall of a dispatch received: agree (15, its files destroyed) or refuse (16).
    RecallAnswer(cmd_workflow::AnswerArgs),
    /// Print the node's events (arrivals, receipts, notices, recalls, failures) as they happen,
    /// resuming after a reconnect (needs --home).
    Watch(cmd_workflow::WatchArgs),
    /// The clerk's terminal screen: inbox and outbox live, dispatch details and notices, the
    /// send form, tenants (needs --home).
    Tui,
    /// The security officer's ledger tools: export, verify, prove, check-proof, log, witness.
    #[command(subcommand)]
    Audit(cmd_audit::AuditCommand),
    /// Check every stored object against its digest and every record against the ledger, running
    /// or stopped; exit 1 naming each damaged dispatch (needs --home).
    Check(cmd_check::CheckArgs),
}

fn home(home: Option<std::path::PathBuf>) -> anyhow::Result<std::path::PathBuf> {
    home.ok_or_else(|| anyhow::anyhow!("this command needs --home DIR (or VDX_HOME)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let tenant = cli.tenant.as_ref();
    let result = match cli.command {
        Command::Demo(args) => cmd_demo::run(args),
        Command::Seal(args) => cmd_seal::run(args),
        Command::Open(args) => cmd_open::run(args),
        Command::Pki(cmd) => cmd_pki::run(cmd),
        Command::Init(args) => home(cli.home).and_then(|h| cmd_home::init(&h, args)),
        Command::Tenant(cmd) => home(cli.home).and_then(|h| cmd_tenant::run(&h, cmd)),
        Command::Directory(cmd) => cmd_directory::run(cli.home, tenant, cmd),
        Command::Status(args) => home(cli.home).and_then(|h| cmd_status::run(&h, tenant, args)),
        Command::Metrics => home(cli.home).and_then(|h| cmd_status::metrics(&h)),
        Command::Reload => home(cli.home).and_then(|h| cmd_home::reload(&h)),
        Command::AcknowledgeRestore(args) => {
            home(cli.home).and_then(|h| cmd_home::acknowledge_restore(&h, tenant, &args))
        }
        Command::Send(args) => home(cli.home).and_then(|h| cmd_mail::send(&h, tenant, args)),
        Command::Notice(args) => {
            home(cli.home).and_then(|h| cmd_workflow::notice(&h, tenant, args))
        }
        Command::Recall(args) => {
            home(cli.home).and_then(|h| cmd_workflow::recall(&h, tenant, args))
        }
        Command::RecallAnswer(args) => {
            home(cli.home).and_then(|h| cmd_workflow::recall_answer(&h, tenant, args))
        }
        Command::Watch(args) => home(cli.home).and_then(|h| cmd_workflow::watch(&h, tenant, args)),
        Command::Inbox(args) => home(cli.home).and_then(|h| cmd_mail::list(&h, tenant, true, args)),
        Command::Outbox(args) => {
            home(cli.home).and_then(|h| cmd_mail::list(&h, tenant, false, args))
        }
        Command::Show(args) => home(cli.home).and_then(|h| cmd_mail::show(&h, tenant, args)),
        Command::Fetch(args) => home(cli.home).and_then(|h| cmd_mail::fetch(&h, tenant, args)),
        Command::Tui => home(cli.home).and_then(|h| tui::run(&h, tenant)),
        Command::Audit(cmd) => cmd_audit::run(cli.home, tenant, cmd),
        Command::Check(args) => home(cli.home).and_then(|h| cmd_check::run(&h, tenant, args)),
    };
    match result {
        Ok(code) => code,
        Err(e) if stdout::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vdx: {e:#}");
            ExitCode::from(1)
        }
    }
}
