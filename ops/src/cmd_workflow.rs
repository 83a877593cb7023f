//! The clerk's workflow from the command line (`docs/status-notices.md`): `vdx notice`, `vdx
//! recall`, `vdx recall-answer`, each a call of the local API, and `vdx watch`, the node's event
//! stream as it comes.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use vdx_protocol::OrganCode;

use crate::client::Client;
use crate::cmd_mail::text;

#[derive(Args, Debug)]
pub(crate) struct NoticeArgs {
    /// The dispatch: its id as `vdx inbox` shows it, or its message id.
    id: String,
    /// 03 registered, 04 assigned (--to), 05 in progress, 06 done, 02 refused (--reason).
    #[arg(long, value_parser = ["02", "03", "04", "05", "06"])]
    code: String,
    /// Whom it is assigned to (04).
    #[arg(long, value_name = "PERSON")]
    to: Option<String>,
    /// Why it is refused (02), or a note.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Print the API's answer as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct RecallArgs {
    /// The dispatch: a copy's id as `vdx outbox` shows it, or the message id (every copy).
    id: String,
    /// Why it is recalled (the recipient's clerk reads it).
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Print the API's answer as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct AnswerArgs {
    /// The dispatch whose recall is answered.
    id: String,
    /// Agree (15): its files are destroyed here.
    #[arg(long, conflicts_with = "refuse", required_unless_present = "refuse")]
    agree: bool,
    /// Refuse (16), with --reason.
    #[arg(long)]
    refuse: bool,
    /// Why (required to refuse).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Print the API's answer as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct WatchArgs {
    /// Start after this event id (0: from the beginning); default: what comes next.
    #[arg(long, value_name = "ID")]
    after: Option<u64>,
    /// One JSON object per event.
    #[arg(long)]
    json: bool,
}

pub(crate) fn notice(
    home: &Path,
    tenant: Option<&OrganCode>,
    args: NoticeArgs,
) -> Result<ExitCode> {
    let body = json!({"code": args.code, "to": args.to, "reason": args.reason});
    let path = format!("/v1/dispatches/{}/notices", args.id);
    let answer = Client::for_tenant(home, tenant)?.post(&path, &body)?;
    print(&answer, args.json, &format!("notice {} sent", args.code))
}

pub(crate) fn recall(
    home: &Path,
    tenant: Option<&OrganCode>,
    args: RecallArgs,
) -> Result<ExitCode> {
    let path = format!("/v1/dispatches/{}/recall", args.id);
    let answer = Client::for_tenant(home, tenant)?.post(&path, &json!({"reason": args.reason}))?;
    print(&answer, args.json, "recall (13) sent")
}

pub(crate) fn recall_answer(
    home: &Path,
    tenant: Option<&OrganCode>,
    args: AnswerArgs,
) -> Result<ExitCode> {
    let path = format!("/v1/dispatches/{}/recall-answer", args.id);
    let body = json!({"agree": args.agree, "reason": args.reason});
    let answer = Client::for_tenant(home, tenant)?.post(&path, &body)?;
    let done = if args.agree {
        "recall agreed (15): the copy's files are destroyed"
    } else {
        "recall refused (16)"
    };
    print(&answer, args.json, done)
}

fn print(answer: &Value, json: bool, done: &str) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    for view in answer
        .as_array()
        .map_or_else(|| vec![answer], |a| a.iter().collect())
    {
        println!(
            "{done}: {} to {}, now {}",
            text(&view["id"]),
            text(&view["to"]),
            text(&view["workflow"]),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `vdx watch`: prints events as the node appends them; after the daemon restarts, or the
/// connection breaks, it connects again and resumes after the last event it printed.
pub(crate) fn watch(home: &Path, tenant: Option<&OrganCode>, args: WatchArgs) -> Result<ExitCode> {
    let mut last = args.after;
    loop {
        let path = match last {
            Some(after) => format!("/v1/events?after={after}"),
            None => "/v1/events".to_owned(),
        };
        let mut printer = EventPrinter {
            json: args.json,
            line: Vec::new(),
            data: None,
            last: &mut last,
        };
        let outcome =
            Client::for_tenant(home, tenant).and_then(|c| c.download(&path, &mut printer));
        if let Err(e) = outcome {
            eprintln!("vdx watch: {e:#}; connecting again");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Reads a `text/event-stream` as it comes and prints each event.
struct EventPrinter<'a> {
    json: bool,
    line: Vec<u8>,
    data: Option<String>,
    last: &'a mut Option<u64>,
}

impl Write for EventPrinter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
            if let Some(data) = line.strip_prefix("data: ") {
                self.data = Some(data.to_owned());
            } else if line.is_empty() {
                if let Some(data) = self.data.take() {
                    self.event(&data)?;
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

impl EventPrinter<'_> {
    fn event(&mut self, data: &str) -> std::io::Result<()> {
        let event: Value = serde_json::from_str(data).unwrap_or(Value::Null);
        *self.last = event["index"].as_u64().or(*self.last);
        let mut out = std::io::stdout().lock();
        if self.json {
            writeln!(out, "{data}")?;
        } else {
            let fields: Vec<String> = event["fields"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| v.as_str().is_some_and(|s| !s.is_empty()))
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect();
            writeln!(
                out,
                "{:>6}  {}  {:<10}  {}  {}",
                text(&event["index"]),
                text(&event["time"]),
                text(&event["kind"]),
                text(&event["id"]),
                fields.join(" ")
            )?;
        }
        out.flush()
    }
}
