//! `vdx status`: the running node's state for its operator — queues, peers, CRL renewal, disk —
//! and what needs doing (`GET /v1/status`, `docs/local-api.md`); `vdx metrics`, the same and the
//! counters since the start for monitoring (`GET /v1/metrics`).

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::Value;
use vdx_protocol::OrganCode;

use crate::client::Client;
use crate::stdout;

#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// Print the API's answer as JSON.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when there are warnings (for monitoring).
    #[arg(long)]
    check: bool,
}

pub(crate) fn run(home: &Path, tenant: Option<&OrganCode>, args: StatusArgs) -> Result<ExitCode> {
    let status = Client::for_tenant(home, tenant)?.get("/v1/status")?;
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&status)?)
    } else {
        render(&status)?
    };
    stdout::write(&text)?;
    let warned = status["warnings"].as_array().is_some_and(|w| !w.is_empty());
    Ok(if args.check && warned {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `vdx metrics`: `GET /v1/metrics` as it comes, for a person or a script without a scraper.
pub(crate) fn metrics(home: &Path) -> Result<ExitCode> {
    let mut text = Vec::new();
    Client::new(home)?.download("/v1/metrics", &mut text)?;
    stdout::write(&String::from_utf8_lossy(&text))?;
    Ok(ExitCode::SUCCESS)
}

/// The report in lines a person reads top to bottom: who, what waits, who is unreachable, trust,
/// ledger, disk, then the warnings.
fn render(s: &Value) -> Result<String> {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut out = String::new();
    writeln!(
        out,
        "{} {} — vdxd {}, up since {}",
        text(&s["organ_code"]),
        text(&s["name"]),
        text(&s["version"]),
        text(&s["started"])
    )?;
    let by_peer: Vec<String> = s["outbox"]["by_peer"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(peer, n)| format!("{peer}: {n}"))
        .collect();
    write!(out, "outbox: {} queued", s["outbox"]["queued"])?;
    if !by_peer.is_empty() {
        write!(out, " ({})", by_peer.join(", "))?;
    }
    writeln!(out)?;
    match s["inbox"]["kept_aside"].as_u64() {
        Some(kept) if kept > 0 => writeln!(
            out,
            "inbox: {} to open, {kept} kept aside (not opened after 3 attempts)",
            s["inbox"]["to_open"]
        )?,
        _ => writeln!(out, "inbox: {} to open", s["inbox"]["to_open"])?,
    }
    if let Some(restored) = s.get("restored").filter(|r| !r.is_null()) {
        writeln!(
            out,
            "store: RESTORED, noticed by {} (ledger known at {} entries, {} in the store): nothing is numbered or sent",
            restored["noticed_by"].as_str().unwrap_or("?"),
            restored["known_size"],
            restored["found_size"]
        )?;
    }
    let peers = s["peers"].as_array().map(Vec::as_slice).unwrap_or_default();
    if peers.is_empty() {
        writeln!(out, "peers: none contacted since the start")?;
    } else {
        writeln!(out, "peers:")?;
        for p in peers {
            write!(
                out,
                "  {:<16} {:<12} {} in flight",
                text(&p["organ_code"]),
                text(&p["state"]),
                p["in_flight"]
            )?;
            if let Some(error) = p["last_error"].as_str() {
                write!(
                    out,
                    "; {} failures, next try in {} s: {error}",
                    p["failures"], p["retry_in_secs"]
                )?;
            }
            writeln!(out)?;
        }
    }
    write!(
        out,
        "trust: {} agencies in the directory, {} CRLs",
        s["trust"]["agencies"], s["trust"]["crls"]
    )?;
    if let Some(next) = s["trust"]["crl_next_update"].as_str() {
        write!(out, " (the first to renew by {next})")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "ledger: {} entries ({} on disk)",
        s["ledger"]["entries"], s["ledger"]["durable"]
    )?;
    if let (Some(free), Some(total)) = (
        s["disk"]["free_bytes"].as_u64(),
        s["disk"]["total_bytes"].as_u64(),
    ) {
        writeln!(
            out,
            "disk: {:.1} GiB free of {:.1} GiB",
            free as f64 / f64::from(1u32 << 30),
            total as f64 / f64::from(1u32 << 30)
        )?;
    }
    let warnings = s["warnings"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if warnings.is_empty() {
        writeln!(out, "no warnings")?;
    } else {
        for w in warnings {
            writeln!(out, "warning: {}", text(w))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_reads_top_to_bottom() {
        let status = serde_json::json!({
            "organ_code": "000.00.00.G22", "name": "VPCP", "version": "0.1.0",
            "started": "2026-11-23T22:00:00Z",
            "outbox": {"queued": 2, "by_peer": {"000.00.00.H41": 2}},
            "inbox": {"to_open": 0},
            "peers": [{"organ_code": "000.00.00.H41", "state": "unreachable", "in_flight": 0,
                       "failures": 3, "retry_in_secs": 4, "last_error": "timed out"}],
            "trust": {"agencies": 2, "crls": 1, "crl_next_update": "2026-11-30T00:00:00Z"},
            "ledger": {"entries": 9, "durable": 9},
            "disk": {"free_bytes": 3u64 << 30, "total_bytes": 10u64 << 30},
            "warnings": ["000.00.00.H41 is unreachable"]
        });
        let text = render(&status).unwrap();
        for line in [
            "000.00.00.G22 VPCP — vdxd 0.1.0, up since 2026-11-23T22:00:00Z",
            "outbox: 2 queued (000.00.00.H41: 2)",
            "  000.00.00.H41    unreachable  0 in flight; 3 failures, next try in 4 s: timed out",
            "trust: 2 agencies in the directory, 1 CRLs (the first to renew by 2026-11-30T00:00:00Z)",
            "disk: 3.0 GiB free of 10.0 GiB",
            "warning: 000.00.00.H41 is unreachable",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
    }

    #[test]
    fn arrivals_kept_aside_and_a_restored_store_are_shown() {
        let mut status = serde_json::json!({
            "organ_code": "000.00.00.H41", "name": "H41", "version": "0.1.0",
            "started": "2026-11-23T22:00:00Z",
            "outbox": {"queued": 0, "by_peer": {}},
            "inbox": {"to_open": 1, "kept_aside": 2},
            "peers": [], "trust": {"agencies": 2, "crls": 0},
            "ledger": {"entries": 12, "durable": 12},
            "restored": {"noticed_by": "peer 000.00.00.G22", "known_size": 30, "found_size": 12,
                         "forked": false, "noticed_at": 0},
            "warnings": []
        });
        let text = render(&status).unwrap();
        for line in [
            "inbox: 1 to open, 2 kept aside (not opened after 3 attempts)",
            "store: RESTORED, noticed by peer 000.00.00.G22 (ledger known at 30 entries, 12 in the store): nothing is numbered or sent",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
        status["inbox"]["kept_aside"] = 0.into();
        status.as_object_mut().unwrap().remove("restored");
        let text = render(&status).unwrap();
        assert!(text.lines().any(|l| l == "inbox: 1 to open"), "{text}");
        assert!(!text.contains("RESTORED"), "{text}");
    }
}
