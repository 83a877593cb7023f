//! `vdx tenant add|list|remove`: the agencies a node hosts besides its own (DESIGN §1), e.g. a
//! province data centre hosting its communes. A tenant is `tenants/<organ code>/tenant.toml` in the
//! node home, with its signing and encryption keys under `tenants/<organ code>/keys/` (no TLS key:
//! the host's identifies the node). Each command asks the running daemon (`PUT` / `GET` /
//! `DELETE /v1/tenants...`, the host's admin) or, while it is stopped, acts on the files and the
//! store as the daemon would.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};

use vdx_crypto::KeyKind;
use vdx_node::config::{self, Config, TenantConfig, Users};
use vdx_node::store::{Database, Store};
use vdx_pki::{Directory, IssueRequest, Profile};
use vdx_protocol::OrganCode;

use crate::client::Client;
use crate::cmd_home;
use crate::cmd_pki::{self, write_file, Mode};
use crate::{files, stdout};

#[derive(Subcommand, Debug)]
pub(crate) enum TenantCommand {
    /// Host another agency on this node: its keys and certificates (from --ca, or requests for a
    /// real CA), tenants/CODE/tenant.toml and its directory entry; served at once if vdxd runs.
    Add(AddArgs),
    /// The agencies this node hosts, its own first.
    List {
        /// Print JSON (`[{organ_code, name, own}]`, as `GET /v1/tenants`).
        #[arg(long)]
        json: bool,
    },
    /// Stop hosting an agency. Its ledger and data are kept for audit (`vdx audit ... --tenant
    /// CODE` while vdxd is stopped); refused while its outgoing dispatches are queued.
    Remove {
        /// Its organ code.
        #[arg(value_name = "ORGAN_CODE")]
        code: OrganCode,
        /// Remove it even though outgoing dispatches of it are still queued (they are not sent).
        #[arg(long)]
        force: bool,
    },
}

/// `vdx tenant add`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct AddArgs {
    /// Organ code of the hosted agency, e.g. 000.01.41.H41.
    #[arg(long, value_name = "ORGAN_CODE")]
    org: OrganCode,
    /// The agency's name.
    #[arg(long)]
    name: String,
    /// A development CA (from `vdx pki init-ca`) to issue its certificates now; without it, keys
    /// and certificate requests are written for a real CA to sign, and `tenant add` run again
    /// once the certificates are in place finishes the job.
    #[arg(long, value_name = "CA_DIR")]
    ca: Option<PathBuf>,
    /// A Unix uid who may send and read its dispatches (repeatable).
    #[arg(long, value_name = "UID")]
    clerk: Vec<u32>,
    /// An office system's uid: a clerk's rights, recorded as a system (repeatable).
    #[arg(long, value_name = "UID")]
    system: Vec<u32>,
    /// A security officer's uid: its metadata and ledger, never documents (repeatable).
    #[arg(long, value_name = "UID")]
    officer: Vec<u32>,
    /// An administrator's uid: everything in this agency (repeatable).
    #[arg(long, value_name = "UID")]
    admin: Vec<u32>,
}

pub(crate) fn run(home: &Path, command: TenantCommand) -> Result<ExitCode> {
    match command {
        TenantCommand::Add(args) => add(home, args),
        TenantCommand::List { json } => list(home, json),
        TenantCommand::Remove { code, force } => remove(home, &code, force),
    }
}

/// The certificate and key files of a tenant, by role, as `TenantConfig::new` lays them out.
const ROLES: [&str; 2] = ["sign", "enc"];

fn add(home: &Path, args: AddArgs) -> Result<ExitCode> {
    let config = Config::load(home)?;
    let org = &args.org;
    if *org == config.organ_code {
        bail!("{org} is this node's own agency (config.toml): it is hosted already");
    }
    if TenantConfig::load(home, org)?.is_some() {
        bail!(
            "{org} is hosted here already ({})",
            TenantConfig::dir(home, org)
                .join(config::TENANT_FILE)
                .display()
        );
    }
    let mut tenant = TenantConfig::new(org.clone(), args.name.clone());
    tenant.api = Users {
        clerks: args.clerk.clone(),
        systems: args.system.clone(),
        officers: args.officer.clone(),
        admins: args.admin.clone(),
    };
    let keys = TenantConfig::dir(home, org).join("keys");
    let has = |path: &Path| config::resolve(home, path).exists();
    let have_keys = has(&tenant.keys.sign_key) || has(&tenant.keys.enc_key);
    let have_certs = has(&tenant.keys.sign_cert) && has(&tenant.keys.enc_cert);
    match (&args.ca, have_keys, have_certs) {
        (Some(ca), false, _) => {
            private_dirs(home, org)?;
            print!(
                "{}",
                cmd_pki::issue(
                    ca,
                    &IssueRequest {
                        org: org.to_string(),
                        name: args.name.clone(),
                        kind: KeyKind::EcP256,
                        profile: Profile::Hosted,
                        not_before: None,
                        days: 730,
                    },
                    &keys,
                )?
            );
        }
        (Some(_), true, _) => bail!(
            "{} holds keys of {org} already: refusing to issue new ones (without --ca, \
             `tenant add` takes up the keys and certificates there)",
            keys.display()
        ),
        (None, false, _) => {
            private_dirs(home, org)?;
            cmd_home::write_requests_for(&keys, org, &args.name, &ROLES)?;
            println!(
                "keys and certificate requests for {org} written to {}/{{sign,enc}}.{{key,csr}}",
                keys.display()
            );
            println!(
                "next: have the requests signed by the CA, save the certificates as {}/sign.pem \
                 and {}/enc.pem, then run the same `vdx --home {} tenant add --org {org} --name \
                 ...` again (without --ca): it adds the tenant and its directory entry",
                keys.display(),
                keys.display(),
                home.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        (None, true, false) => bail!(
            "{org} waits for its certificates: save them as {}/sign.pem and {}/enc.pem, then run \
             this again",
            keys.display(),
            keys.display()
        ),
        (None, true, true) => println!("taking up the keys and certificates in {}", keys.display()),
    }

    // The directory entry first (it checks that the certificates carry the organ code), then
    // tenant.toml, which makes it a tenant. In signed mode the entry reaches the directory only
    // signed into a zone by its authority: directory.json is not touched.
    let entry = cmd_home::hosted_entry(home, &config, &tenant)?;
    let listed = match &config.zones {
        Some(_) => {
            Directory::default()
                .upsert(entry)
                .with_context(|| format!("the certificates in {}", keys.display()))?;
            None
        }
        None => {
            let path = config::resolve(home, &config.directory);
            let mut directory = Directory::from_json(&files::read_file(&path)?)
                .with_context(|| format!("in {}", path.display()))?;
            let replaced = directory
                .upsert(entry)
                .with_context(|| format!("the certificates in {}", keys.display()))?;
            write_file(&path, &directory.to_json()?, Mode::Public)?;
            Some((path, replaced))
        }
    };
    tenant.save(home)?;
    println!(
        "tenant {org} ({}) added: {}",
        args.name,
        TenantConfig::dir(home, org)
            .join(config::TENANT_FILE)
            .display()
    );
    match &listed {
        Some((path, replaced)) => println!(
            "directory entry {} in {}: hosted by {}, no endpoint of its own",
            if *replaced { "updated" } else { "added" },
            path.display(),
            config.organ_code
        ),
        None => println!(
            "signed directory: {org}'s entry (`vdx --home {} directory export --tenant {org}`) \
             must be signed into its zone by the directory authority (`vdx directory sign`) and \
             the zone published (`vdx directory publish`) before others reach it",
            home.display()
        ),
    }
    println!("{}", describe_users(&tenant.api));

    let client = Client::new(home)?;
    if client.is_running() {
        match client.put(&format!("/v1/tenants/{org}")) {
            Ok(answer) => {
                println!("vdxd serves {org} now");
                println!("{}", cmd_home::describe_reload(&answer["reloaded"]));
            }
            Err(e) => {
                // Taken back, so that the daemon's next start does not trip over it.
                let file = TenantConfig::dir(home, org).join(config::TENANT_FILE);
                fs::remove_file(&file)
                    .with_context(|| format!("and {} could not be taken back", file.display()))?;
                return Err(e.context(format!(
                    "vdxd did not take up {org}, so its tenant.toml was taken back (the keys and \
                     certificates stay: run `tenant add` again without --ca once this is fixed)"
                )));
            }
        }
    } else {
        println!("vdxd is not running; it serves {org} when it starts");
    }
    if listed.is_some() {
        println!(
            "next: `vdx --home {} directory export --tenant {org} > entry.json` and import it at \
             the nodes that exchange with {org}",
            home.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `tenants/`, `tenants/CODE/` and its `keys/`: the node's user's alone, as `init` makes `keys/`.
fn private_dirs(home: &Path, org: &OrganCode) -> Result<()> {
    let dir = TenantConfig::dir(home, org);
    for dir in [
        home.join(config::TENANTS_DIR),
        dir.clone(),
        dir.join("keys"),
    ] {
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot set the permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Who may use the local API for a tenant, in a line.
fn describe_users(users: &Users) -> String {
    let lists = [
        ("clerks", &users.clerks),
        ("systems", &users.systems),
        ("officers", &users.officers),
        ("admins", &users.admins),
    ];
    let named: Vec<String> = lists
        .iter()
        .filter(|(_, uids)| !uids.is_empty())
        .map(|(role, uids)| {
            let uids: Vec<String> = uids.iter().map(ToString::to_string).collect();
            format!("{role} {}", uids.join(","))
        })
        .collect();
    if named.is_empty() {
        "nobody may use the local API for it yet (not even the host's admins): add uids to [api] \
         in its tenant.toml, then `vdx reload`"
            .into()
    } else {
        format!("local API users: {}", named.join("; "))
    }
}

fn list(home: &Path, json: bool) -> Result<ExitCode> {
    let client = Client::new(home)?;
    let tenants = if client.is_running() {
        client.get("/v1/tenants")?
    } else {
        let config = Config::load(home)?;
        let mut all = vec![json!({
            "organ_code": config.organ_code,
            "name": config.name,
            "own": true,
        })];
        for tenant in TenantConfig::all(home)? {
            if tenant.organ_code != config.organ_code {
                all.push(json!({
                    "organ_code": tenant.organ_code,
                    "name": tenant.name,
                    "own": false,
                }));
            }
        }
        Value::Array(all)
    };
    let rows = tenants
        .as_array()
        .ok_or_else(|| anyhow!("the daemon's tenant list is not a list"))?;
    let mut out = String::new();
    if json {
        out = format!("{}\n", serde_json::to_string_pretty(&tenants)?);
    } else {
        for t in rows {
            out += &format!(
                "{:16} {}{}\n",
                t["organ_code"].as_str().unwrap_or("?"),
                t["name"].as_str().unwrap_or(""),
                if t["own"] == true {
                    "  (the host's own)"
                } else {
                    ""
                }
            );
        }
    }
    stdout::write(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn remove(home: &Path, code: &OrganCode, force: bool) -> Result<ExitCode> {
    let client = Client::new(home)?;
    if client.is_running() {
        let query = if force { "?force=true" } else { "" };
        client.delete(&format!("/v1/tenants/{code}{query}"))?;
        println!("vdxd no longer serves {code}");
    } else {
        remove_offline(home, code, force)?;
        println!("{code} removed; vdxd will not serve it when it starts");
    }
    println!(
        "its ledger and data are kept: while vdxd is stopped, `vdx --home {} --tenant {code} audit \
         export --out DIR` reads them; other nodes' directories still name this node as its host, \
         so what they send it is refused as not served here",
        home.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What `DELETE /v1/tenants/{code}` does, on a stopped node.
fn remove_offline(home: &Path, code: &OrganCode, force: bool) -> Result<()> {
    let config = Config::load(home)?;
    if *code == config.organ_code {
        bail!("{code} is the host's own agency (config.toml's organ code): it cannot be removed (own_tenant)");
    }
    if TenantConfig::load(home, code)?.is_none() {
        bail!("{code} is not a tenant of this node (vdx tenant list) (not_found)");
    }
    let data = config::resolve(home, &config.data_dir);
    let database = Database::open(&data, Some(&config.organ_code))
        .with_context(|| format!("opening the store in {}", data.display()))?;
    let queued = match database.existing(code)? {
        Some(store) => store.outbox()?.len(),
        None => 0,
    };
    if queued > 0 && !force {
        bail!(
            "{queued} outgoing objects of {code} are still queued: wait for them (start vdxd), or \
             remove with --force (queued)"
        );
    }
    vdx_node::host::retire_tenant(home, &database, code)?;
    database.flush()?;
    Ok(())
}

/// The store of agency `tenant` (the host's own when `None`) of the stopped node in `home`, for
/// offline audits and checks. An added agency's store is opened only if it has one (hosted now
/// or removed: a removed agency's ledger stays readable), and is not marked hosted again.
pub(crate) fn offline_store(
    home: &Path,
    config: &Config,
    tenant: Option<&OrganCode>,
) -> Result<Store> {
    let data = config::resolve(home, &config.data_dir);
    let opening = || format!("opening the store in {}", data.display());
    match tenant {
        Some(code) if *code != config.organ_code => Database::open(&data, Some(&config.organ_code))
            .with_context(opening)?
            .existing(code)
            .with_context(opening)?
            .ok_or_else(|| anyhow!("{code} has no store on this node (vdx tenant list)")),
        _ => Store::open_tenant(&data, &config.organ_code).with_context(opening),
    }
}
