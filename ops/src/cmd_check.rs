//! `vdx check`: damage found before a clerk meets it. Every stored object is checked against its
//! recorded size and SHA-256, every record against the ledger entries its state implies (see
//! `vdx_node::store::check`) — through the local API (`POST /v1/check`, role `officer`) while the
//! daemon runs, or by opening the stopped node's store directly. Either way the run is recorded
//! as an `audit` entry. Exit 1 when anything is damaged.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use vdx_node::store::{CheckReport, Damaged, Direction};
use vdx_protocol::ledger::Actor;
use vdx_protocol::OrganCode;

use crate::client::Client;
use crate::stdout;

#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(home: &Path, tenant: Option<&OrganCode>, args: CheckArgs) -> Result<ExitCode> {
    let client = Client::for_tenant(home, tenant)?;
    let report: CheckReport = if client.is_running() {
        serde_json::from_value(client.post("/v1/check", &serde_json::json!({}))?)
            .context("the daemon's check report")?
    } else {
        offline(home, tenant)?
    };
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        render(&report)?
    };
    stdout::write(&text)?;
    Ok(if report.is_damaged() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Checks the stopped node's store and records the run as this user's. Opening the store tidies
/// what a crash left (as the daemon's start does), so no orphans are left to list.
fn offline(home: &Path, tenant: Option<&OrganCode>) -> Result<CheckReport> {
    let config = vdx_node::config::Config::load(home)?;
    let store = crate::cmd_tenant::offline_store(home, &config, tenant)
        .context("vdxd is not running; opening its store failed")?;
    let report = store.check()?;
    let me = std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid());
    store.record(&report.event(Actor::User(me)))?;
    Ok(report)
}

/// One line per damaged dispatch, the orphans, then the summary.
fn render(report: &CheckReport) -> Result<String> {
    let mut out = String::new();
    for d in &report.damaged {
        let problems: Vec<String> = d.problems.iter().map(ToString::to_string).collect();
        writeln!(
            out,
            "damaged {}: {}: {}",
            d.id,
            route(d),
            problems.join("; ")
        )?;
    }
    for o in &report.orphans {
        writeln!(
            out,
            "orphan ({}) {}: {} bytes without a record (not damage: removed at the next start)",
            o.place, o.name, o.size
        )?;
    }
    writeln!(
        out,
        "{}: {} records, {} objects ({} bytes) and {} ledger entries checked",
        match report.damaged.len() {
            0 => "ok".to_owned(),
            1 => "1 damaged".to_owned(),
            n => format!("{n} damaged"),
        },
        report.records,
        report.objects,
        report.bytes,
        report.entries
    )?;
    Ok(out)
}

/// Which way it travels and with whom, and its status: `incoming from X, registered`.
fn route(d: &Damaged) -> String {
    let kind = match d.kind {
        Some(vdx_protocol::wire::ObjectKind::Dispatch) | None => String::new(),
        Some(other) => format!(" ({})", format!("{other:?}").to_lowercase()),
    };
    let way = match (d.direction, d.from.as_deref(), d.to.as_deref()) {
        (Some(Direction::Outgoing), _, Some(to)) => format!("outgoing to {to}"),
        (Some(Direction::Incoming), Some(from), _) => format!("incoming from {from}"),
        (Some(Direction::Relayed), Some(from), Some(to)) => {
            format!("relayed from {from} to {to}")
        }
        _ => "record unreadable".to_owned(),
    };
    match &d.status {
        Some(status) => format!("{way}{kind}, {status}"),
        None => format!("{way}{kind}"),
    }
}

#[cfg(test)]
mod tests {
    use vdx_node::store::Problem;

    use super::*;

    #[test]
    fn each_damaged_dispatch_gets_a_line_and_a_summary_follows() {
        let report = CheckReport {
            records: 3,
            objects: 2,
            bytes: 70_000,
            entries: 9,
            damaged: vec![Damaged {
                id: "ab".repeat(16),
                direction: Some(Direction::Incoming),
                kind: Some(vdx_protocol::wire::ObjectKind::Dispatch),
                status: Some("registered".into()),
                from: Some("000.00.00.G22".into()),
                to: Some("000.00.00.H41".into()),
                problems: vec![
                    Problem::Missing,
                    Problem::LedgerEntryMissing {
                        entry: "registered".into(),
                    },
                ],
            }],
            orphans: Vec::new(),
        };
        let text = render(&report).unwrap();
        assert_eq!(
            text,
            format!(
                "damaged {}: incoming from 000.00.00.G22, registered: object missing; \
                 ledger entry missing: registered\n\
                 1 damaged: 3 records, 2 objects (70000 bytes) and 9 ledger entries checked\n",
                "ab".repeat(16)
            )
        );
    }
}
