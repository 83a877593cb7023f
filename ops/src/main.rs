//! `vdx`: the command line of a vdx node, for clerks, security officers and administrators.
//!
//! Exit codes: 0 success; 1 the operation was refused or failed (the message says why); 2 usage error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_demo;
mod cmd_home;
mod cmd_open;
mod cmd_pki;
mod cmd_seal;
mod files;
mod pipeline;
mod progress;

/// Secure exchange of official documents between agencies (CMS + X.509, store and forward).
#[derive(Parser, Debug)]
#[command(name = "vdx", version, about)]
struct Cli {
    /// The node home (config.toml, keys, directory, data) for commands that act on a node.
    #[arg(long, global = true, value_name = "DIR", env = "VDX_HOME")]
    home: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a throw-away CA and agencies, seal a document from one to another, and open it.
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
    /// The directory of known agencies of a node (needs --home).
    #[command(subcommand)]
    Directory(cmd_home::DirectoryCommand),
}

fn home(home: Option<std::path::PathBuf>) -> anyhow::Result<std::path::PathBuf> {
    home.ok_or_else(|| anyhow::anyhow!("this command needs --home DIR (or VDX_HOME)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => cmd_demo::run(args),
        Command::Seal(args) => cmd_seal::run(args),
        Command::Open(args) => cmd_open::run(args),
        Command::Pki(cmd) => cmd_pki::run(cmd),
        Command::Init(args) => home(cli.home).and_then(|h| cmd_home::init(&h, args)),
        Command::Directory(cmd) => home(cli.home).and_then(|h| cmd_home::directory(&h, cmd)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vdx: {e:#}");
            ExitCode::from(1)
        }
    }
}
