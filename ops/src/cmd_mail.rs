//! The clerk's commands against a running node: `send`, `inbox`, `outbox`, `show`, `fetch`. Each
//! is a client of the local socket API; with `--json` each prints the API's JSON.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use sha2::Digest;
use vdx_protocol::header::check_file_name;
use vdx_protocol::hex;
use vdx_protocol::package::read_package;
use vdx_protocol::OrganCode;

use crate::client::{field, Client};
use crate::progress::bar;
use crate::stdout;

#[derive(Args, Debug)]
pub(crate) struct SendArgs {
    /// Recipient agency's organ code. Repeatable.
    #[arg(long = "to", value_name = "CODE", required = true)]
    to: Vec<String>,
    /// Trích yếu (not allowed for tuyet-mat).
    #[arg(long)]
    subject: Option<String>,
    /// Số of the document.
    #[arg(long)]
    number: String,
    /// Ký hiệu of the document.
    #[arg(long)]
    notation: String,
    /// Độ khẩn.
    #[arg(long, default_value = "thuong", value_parser = ["thuong", "khan", "thuong-khan", "hoa-toc", "hoa-toc-hen-gio"])]
    urgency: String,
    /// Độ mật.
    #[arg(long = "class", default_value = "none", value_parser = ["none", "mat", "toi-mat", "tuyet-mat"])]
    class: String,
    /// Give up delivery after this long: seconds, or with a unit (90s, 30m, 12h, 7d). Default: the
    /// node's configured expiry.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    expires_in: Option<u64>,
    /// Your own message id (lower-case UUID): sending again with the same one returns the
    /// dispatch already queued instead of a second one (safe retries from scripts).
    #[arg(long, value_name = "UUID", value_parser = parse_message_id)]
    message_id: Option<String>,
    /// Hạn xử lý: the date (YYYY-MM-DD) by which the recipients should be done with it.
    #[arg(long, value_name = "YYYY-MM-DD")]
    due: Option<String>,
    /// This dispatch updates the document with this id (ORGAN,YYYY/MM/DD,NUMBER/NOTATION).
    #[arg(long, value_name = "DOCUMENT_ID", conflicts_with = "replaces")]
    updates: Option<String>,
    /// This dispatch replaces the document with this id.
    #[arg(long, value_name = "DOCUMENT_ID")]
    replaces: Option<String>,
    /// Print the API's answer as JSON.
    #[arg(long)]
    json: bool,
    /// The files of the dispatch, in order.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// Print the API's answer as JSON.
    #[arg(long)]
    json: bool,
    /// One line per recipient's copy: a dispatch to several agencies is otherwise one line
    /// counting its copies by state, then one line per copy that is not delivered.
    #[arg(long)]
    each: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    /// The dispatch id (32 hex digits, as `inbox`/`outbox` show it).
    id: String,
    /// Print the API's answer as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct FetchArgs {
    /// The dispatch id.
    id: String,
    /// Directory to write the files into, under their original names.
    #[arg(long = "out", value_name = "DIR")]
    out: PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

/// A message id as the header spells it, refused before anything is uploaded.
fn parse_message_id(text: &str) -> Result<String, String> {
    if vdx_protocol::header::is_uuid_text(text) {
        Ok(text.to_owned())
    } else {
        Err("a message id is a lower-case UUID, e.g. 4f3c2b1a-0d9e-4c8b-a7f6-e5d4c3b2a190".into())
    }
}

pub(crate) fn send(home: &Path, tenant: Option<&OrganCode>, args: SendArgs) -> Result<ExitCode> {
    let expires = args
        .expires_in
        .map(|secs| time::OffsetDateTime::now_utc().unix_timestamp() as u64 + secs);
    let request = json!({
        "to": args.to,
        "subject": args.subject,
        "number": args.number,
        "notation": args.notation,
        "urgency": args.urgency,
        "classification": args.class,
        "expires": expires,
        "message_id": args.message_id,
        "due_date": args.due,
        "business": match (&args.updates, &args.replaces) {
            (Some(_), _) => Some("update"),
            (_, Some(_)) => Some("replacement"),
            _ => None,
        },
        "response_for": args.updates.as_ref().or(args.replaces.as_ref()).map(|id| vec![id]),
    });
    let answer = submit(&Client::for_tenant(home, tenant)?, request, &args.files)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        println!("queued dispatch {}", text(&answer["message_id"]));
        for copy in answer["copies"].as_array().into_iter().flatten() {
            println!("  to {}  id {}", text(&copy["to"]), text(&copy["id"]));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Uploads `files` and submits `request` (every field but `files`) naming them; the API's answer.
pub(crate) fn submit(client: &Client, mut request: Value, files: &[PathBuf]) -> Result<Value> {
    // Every name is checked before the node is asked anything, by the rule the node and every
    // recipient apply: a refusal after some uploads would cost the clerk the wait.
    let mut names = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: not a file name", path.display()))?;
        // The path as Rust quotes it: the refused character shows escaped, not obeyed.
        check_file_name(name).with_context(|| format!("{path:?}"))?;
        names.push(name);
    }
    // Checked before uploading too, for the same reason.
    let limit = field(&client.get("/v1/health")?, "max_upload_bytes")?.as_u64();
    let mut total = 0u64;
    for path in files {
        total += std::fs::metadata(path)
            .with_context(|| format!("{}", path.display()))?
            .len();
    }
    if total >= STREAM_FROM && limit.is_none_or(|limit| total <= limit) {
        return submit_streamed(client, request, files, &names);
    }
    let mut named = Vec::new();
    for (path, name) in files.iter().zip(names) {
        let file = File::open(path).with_context(|| format!("{}", path.display()))?;
        let len = file.metadata()?.len();
        if let Some(limit) = limit.filter(|&limit| len > limit) {
            bail!(
                "{}: {len} bytes, more than this node accepts ({limit} bytes, [limits] \
                 max_dispatch_bytes) (too_large)",
                path.display()
            );
        }
        let content: Box<dyn Read + Send> = match bar(len, &format!("upload {name}")) {
            Some(bar) => Box::new(bar.wrap_read(file)),
            None => Box::new(file),
        };
        let uploaded = client.post_stream("/v1/uploads", content)?;
        named.push(json!({
            "name": name,
            "media_type": media_type(name),
            "upload": field(&uploaded, "upload")?,
        }));
    }
    request["files"] = Value::Array(named);
    client.post("/v1/dispatches", &request)
}

/// From this many bytes of files on, `send` streams them with the request
/// (`POST /v1/dispatches/stream`): the node seals them as they arrive and writes a large
/// dispatch once, instead of the upload and then the sealed copy.
const STREAM_FROM: u64 = 16 << 20;

/// Submits `request` with the bytes of `files` following it in one body; each file is read once
/// before, for the SHA-256 the request declares.
fn submit_streamed(
    client: &Client,
    mut request: Value,
    files: &[PathBuf],
    names: &[&str],
) -> Result<Value> {
    let mut named = Vec::new();
    for (path, name) in files.iter().zip(names) {
        let file = File::open(path).with_context(|| format!("{}", path.display()))?;
        let len = file.metadata()?.len();
        let mut reader: Box<dyn Read> = match bar(len, &format!("check {name}")) {
            Some(bar) => Box::new(bar.wrap_read(file)),
            None => Box::new(file),
        };
        let mut hasher = sha2::Sha256::new();
        io::copy(&mut reader, &mut hasher).with_context(|| format!("{}", path.display()))?;
        named.push(json!({
            "name": name,
            "media_type": media_type(name),
            "upload": hex::encode(hasher.finalize().as_slice()),
            "size": len,
        }));
    }
    request["files"] = Value::Array(named);
    let json = serde_json::to_vec(&request)?;
    let mut body: Box<dyn Read + Send> = Box::new(io::Cursor::new(
        [(json.len() as u32).to_be_bytes().as_slice(), &json].concat(),
    ));
    let mut total = 0;
    for path in files {
        let file = File::open(path).with_context(|| format!("{}", path.display()))?;
        total += file.metadata()?.len();
        body = Box::new(body.chain(file));
    }
    let body: Box<dyn Read + Send> = match bar(total, "send") {
        Some(bar) => Box::new(bar.wrap_read(body)),
        None => body,
    };
    client.post_stream("/v1/dispatches/stream", body)
}

pub(crate) fn list(
    home: &Path,
    tenant: Option<&OrganCode>,
    inbox: bool,
    args: ListArgs,
) -> Result<ExitCode> {
    let path = if inbox { "/v1/inbox" } else { "/v1/outbox" };
    let answer = Client::for_tenant(home, tenant)?.get(path)?;
    stdout::write(&render_list(&answer, inbox, args.json, args.each)?)?;
    Ok(ExitCode::SUCCESS)
}

/// The outbox's copies grouped by dispatch (message id), in the order each dispatch first
/// appears.
fn by_dispatch(rows: &[Value]) -> Vec<Vec<&Value>> {
    let mut groups: Vec<Vec<&Value>> = Vec::new();
    for row in rows {
        match groups
            .iter_mut()
            .find(|g| g[0]["message_id"] == row["message_id"] && !row["message_id"].is_null())
        {
            Some(group) => group.push(row),
            None => groups.push(vec![row]),
        }
    }
    groups
}

/// A dispatch to several agencies at a glance: its copies counted by state, then each copy not
/// delivered, with its reason.
fn render_dispatch(out: &mut String, copies: &[&Value]) -> Result<()> {
    let first = copies[0];
    let mut counts: Vec<(String, usize)> = Vec::new();
    for copy in copies {
        // A copy sent on is held by the next hop until its receipt comes: say where.
        let status = match copy["held_by"].as_str() {
            Some(by) => format!("{} at {by}", text(&copy["status"])),
            None => text(&copy["status"]),
        };
        match counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status, 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    writeln!(
        out,
        "{}  {} recipients: {}  {}/{}  {}",
        text(&first["message_id"]),
        copies.len(),
        counts.join(", "),
        text(&first["number"]),
        text(&first["notation"]),
        short(&text(&first["subject"]), 50),
    )?;
    for copy in copies.iter().filter(|c| c["status"] != "delivered") {
        let reason = match copy["held_by"].as_str() {
            Some(by) => format!("held by {by}"),
            None => text(&copy["reason"]),
        };
        writeln!(
            out,
            "  {:<32}  {:<10}  {:<13}  {}",
            text(&copy["id"]),
            text(&copy["status"]),
            text(&copy["to"]),
            short(&reason, 60),
        )?;
    }
    Ok(())
}

/// The inbox or outbox as a table, or as JSON.
fn render_list(answer: &Value, inbox: bool, json: bool, each: bool) -> Result<String> {
    let mut out = String::new();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(answer)?)?;
        return Ok(out);
    }
    let rows = answer.as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() {
        writeln!(out, "{} is empty", if inbox { "inbox" } else { "outbox" })?;
        return Ok(out);
    }
    let party = if inbox { "FROM" } else { "TO" };
    writeln!(
        out,
        "{:<32}  {:<10}  {:<13}  {:<11}  {:<8}  {:<20}  SUBJECT",
        "ID", "STATUS", party, "URGENCY", "SỐ ĐẾN", "SỐ/KÝ HIỆU"
    )?;
    let grouped = if inbox || each {
        rows.iter().map(|row| vec![row]).collect()
    } else {
        by_dispatch(rows)
    };
    for group in grouped {
        let [r] = group.as_slice() else {
            render_dispatch(&mut out, &group)?;
            continue;
        };
        let code = format!("{}/{}", text(&r["number"]), text(&r["notation"]));
        writeln!(
            out,
            "{:<32}  {:<10}  {:<13}  {:<11}  {:<8}  {:<20}  {}",
            text(&r["id"]),
            text(&r["status"]),
            text(&r[if inbox { "from" } else { "to" }]),
            text(&r["urgency"]),
            text(&r["incoming_number"]),
            code,
            short(&text(&r["subject"]), 50),
        )?;
    }
    Ok(out)
}

pub(crate) fn show(home: &Path, tenant: Option<&OrganCode>, args: ShowArgs) -> Result<ExitCode> {
    let path = format!("/v1/dispatches/{}?ledger=true", args.id);
    let r = Client::for_tenant(home, tenant)?.get(&path)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    for key in [
        "id",
        "direction",
        "status",
        "reason",
        "from",
        "to",
        "message_id",
        "number",
        "notation",
        "subject",
        "urgency",
        "classification",
        "incoming_number",
        "delivered",
        "held_by",
        "workflow",
        "assigned_to",
        "next_notices",
        "due_date",
        "overdue",
        "business",
        "response_for",
        "attempts",
        "size",
    ] {
        if !r[key].is_null() {
            let value = match &r[key] {
                Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
                other => text(other),
            };
            println!("{key:<16} {value}");
        }
    }
    if let Some(recall) = r["recall"].as_object() {
        let answer = match recall.get("answer").and_then(Value::as_str) {
            Some("15") => "agreed (15)",
            Some("16") => "refused (16)",
            _ => "waiting for an answer",
        };
        println!(
            "{:<16} {answer}: {}",
            "recall",
            text(recall.get("reason").unwrap_or(&Value::Null))
        );
    }
    for n in r["notices"].as_array().into_iter().flatten() {
        println!(
            "{:<16} {} from {} {}",
            "notice",
            text(&n["status"]),
            text(&n["by"]),
            text(&n["reason"])
        );
    }
    for f in r["header"]["files"].as_array().into_iter().flatten() {
        println!(
            "{:<16} {} ({} bytes)",
            "file",
            text(&f["name"]),
            text(&f["size"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn fetch(home: &Path, tenant: Option<&OrganCode>, args: FetchArgs) -> Result<ExitCode> {
    let written = fetch_into(&Client::for_tenant(home, tenant)?, &args.id, &args.out)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "id": args.id, "files": written }))?
        );
    } else {
        for w in &written {
            println!("wrote {} ({} bytes)", text(&w["path"]), text(&w["size"]));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the files of incoming dispatch `id` into `out` under their names, only once every one
/// matches the manifest; returns what was written (name, size, sha256, path).
pub(crate) fn fetch_into(client: &Client, id: &str, out: &Path) -> Result<Vec<Value>> {
    let view = client.get(&format!("/v1/dispatches/{id}"))?;
    let manifest = view["header"]["files"]
        .as_array()
        .context("this dispatch has no opened header (is it incoming and registered?)")?;
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    for f in manifest {
        // The node checked the names on arrival; checked again here because they become paths.
        let name = text(&f["name"]);
        check_file_name(&name).context("the dispatch's manifest")?;
        let target = out.join(name);
        // Anything at the name counts, a dangling symbolic link too (`exists` would follow it).
        if std::fs::symlink_metadata(&target).is_ok() {
            bail!(
                "{} already exists; fetch never replaces anything: choose another --out",
                target.display()
            );
        }
    }
    // Everything lands in a hidden directory beside the targets and is moved into place only
    // once every file matches the manifest.
    let staging = tempfile::Builder::new()
        .prefix(".vdx-fetch-")
        .tempdir_in(out)?;
    let tar_path = staging.path().join("package.tar");
    let mut tar = File::create(&tar_path)?;
    let size = view["size"].as_u64().unwrap_or(0);
    match bar(size, "fetch") {
        Some(bar) => client.download(
            &format!("/v1/dispatches/{id}/package"),
            &mut bar.wrap_write(&mut tar),
        )?,
        None => client.download(&format!("/v1/dispatches/{id}/package"), &mut tar)?,
    };
    let files_dir = staging.path().join("files");
    std::fs::create_dir(&files_dir)?;
    let contents = read_package(File::open(&tar_path)?, |name, content| {
        let mut out = File::create(files_dir.join(name))?;
        io::copy(content, &mut out)?;
        out.sync_all()
    })
    .context("the fetched package")?;
    if contents.files.len() != manifest.len() {
        bail!("the package does not match the dispatch's manifest");
    }
    let mut written = Vec::new();
    for (found, listed) in contents.files.iter().zip(manifest) {
        if found.name != text(&listed["name"])
            || hex::encode(&found.sha256) != text(&listed["sha256"])
        {
            bail!("{} does not match the dispatch's manifest", found.name);
        }
    }
    let mut placed: Vec<(PathBuf, PathBuf)> = Vec::new();
    for found in &contents.files {
        let (from, target) = (files_dir.join(&found.name), out.join(&found.name));
        if let Err(e) = rename_no_replace(&from, &target) {
            // All or nothing: the files already moved go back, and leave with the staging directory.
            for (from, target) in placed.iter().rev() {
                let _ = rename_no_replace(target, from);
            }
            if e.kind() == io::ErrorKind::AlreadyExists {
                bail!(
                    "{} appeared while the dispatch was fetched; fetch never replaces anything, \
                     so nothing was written: choose another --out",
                    target.display()
                );
            }
            return Err(e).with_context(|| format!("cannot write {}", target.display()));
        }
        placed.push((from, target.clone()));
        written.push(json!({
            "name": found.name,
            "size": found.size,
            "sha256": hex::encode(&found.sha256),
            "path": target,
        }));
    }
    File::open(out).and_then(|d| d.sync_all())?;
    Ok(written)
}

/// Moves `from` to `to` unless something (a file, a directory, a dangling symbolic link) is at
/// `to` already, which fails with `AlreadyExists`: checking first and renaming after would replace
/// what appears in between. `renameat2(RENAME_NOREPLACE)` where the file system has it, else a
/// hard link (which never replaces either) and the removal of `from`.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e.into()),
    }
}

/// A JSON value as a table cell: strings without quotes, null as empty.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Seconds in `90`, `90s`, `30m`, `12h` or `7d`.
fn parse_duration(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("unknown unit {unit:?}: use s, m, h or d")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a duration like 90s, 30m, 12h or 7d"))
}

/// The media type the manifest states, from the file name's extension.
fn media_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("doc") => "application/msword",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xls") => "application/vnd.ms-excel",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("odt") => "application/vnd.oasis.opendocument.text",
        Some("txt") => "text/plain",
        Some("xml") => "application/xml",
        Some("json") => "application/json",
        Some("zip") => "application/zip",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_never_replaces_not_even_a_dangling_link() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("new.pdf"), dir.path().join("doc.pdf"));
        std::fs::write(&from, b"fetched").unwrap();
        std::os::unix::fs::symlink("/nonexistent/elsewhere", &to).unwrap();
        let err = rename_no_replace(&from, &to).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(
            std::fs::read_link(&to).unwrap(),
            Path::new("/nonexistent/elsewhere")
        );
        assert_eq!(std::fs::read(&from).unwrap(), b"fetched");
        std::fs::remove_file(&to).unwrap();
        rename_no_replace(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"fetched");
        assert!(!from.exists());
    }

    #[test]
    fn a_dispatch_to_several_agencies_is_one_line_then_its_copies_not_delivered() {
        let copy = |id: &str, to: &str, status: &str, reason: &str| {
            serde_json::json!({
                "id": id, "message_id": "7f3e-circular", "to": to, "status": status,
                "reason": reason, "number": "12", "notation": "VPCP", "subject": "Chỉ thị",
                "urgency": "khan",
            })
        };
        let alone = serde_json::json!({
            "id": "b1", "message_id": "other", "to": "000.00.00.H26", "status": "queued",
            "number": "3", "notation": "VP", "subject": "Một nơi", "urgency": "thuong",
        });
        let mut held = copy("a5", "000.05.41.H41", "sent", "");
        held["held_by"] = "000.00.00.H41".into();
        let rows = serde_json::json!([
            copy("a1", "000.01.41.H41", "delivered", ""),
            alone,
            copy("a2", "000.02.41.H41", "queued", ""),
            copy(
                "a3",
                "000.03.41.H41",
                "failed",
                "refused by 000.03.41.H41: not addressed"
            ),
            copy("a4", "000.04.41.H41", "delivered", ""),
            held,
        ]);
        let text = render_list(&rows, false, false, false).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(
            lines[1].starts_with(
                "7f3e-circular  5 recipients: 2 delivered, 1 queued, 1 failed, \
                 1 sent at 000.00.00.H41"
            ),
            "{text}"
        );
        assert!(
            lines[2].contains("a2") && lines[2].contains("000.02.41.H41"),
            "{text}"
        );
        assert!(lines[3].contains("refused by 000.03.41.H41"), "{text}");
        assert!(
            lines[4].contains("a5") && lines[4].contains("held by 000.00.00.H41"),
            "{text}"
        );
        assert!(lines[5].starts_with("b1"), "{text}");
        // --each: one line per copy, as before.
        let each = render_list(&rows, false, false, true).unwrap();
        assert_eq!(each.lines().count(), 7, "{each}");
    }

    #[test]
    fn durations_take_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        for bad in ["", "0", "m", "5w", "-3h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
