//! The thin driver between [`App`](super::app::App) and the node: one thread carries out the
//! commands against the local socket API, one at a time, and sends each answer back as an event;
//! another holds `GET /v1/events` open and sends what it streams. Nothing here decides anything.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use vdx_protocol::OrganCode;

use super::app::{Answer, Command, Event, Live, Tab};
use super::model::CopyView;
use super::sse::SseParser;
use crate::client::{field, Client};
use crate::cmd_mail::{fetch_into, submit, text};

/// How long the live subscription waits before connecting again.
const RETRY: Duration = Duration::from_secs(3);

/// Starts the driver for the node of `home`; its answers go to `events`. It stops when the
/// returned sender is dropped.
pub(crate) fn spawn(home: PathBuf, events: Sender<Event>) -> Sender<Command> {
    let (commands, inbox) = std::sync::mpsc::channel();
    thread::spawn(move || drive(home, &inbox, &events));
    commands
}

fn drive(home: PathBuf, inbox: &Receiver<Command>, events: &Sender<Event>) {
    let mut generation = 0;
    let mut client = Client::new(&home).map_err(|e| format!("{e:#}"));
    let mut watching: Option<Arc<AtomicBool>> = None;
    let mut queue = VecDeque::new();
    loop {
        if queue.is_empty() {
            match inbox.recv() {
                Ok(command) => queue.push_back(command),
                Err(_) => break,
            }
        }
        queue.extend(inbox.try_iter());
        let Some(command) = queue.pop_front() else {
            continue;
        };
        // A directory search typed on is superseded by the next keystroke's.
        if matches!(command, Command::Directory { .. })
            && queue.iter().any(|c| matches!(c, Command::Directory { .. }))
        {
            continue;
        }
        if let Command::SetTenant {
            code,
            generation: chosen,
        } = command
        {
            generation = chosen;
            let tenant = code.map(|c| c.parse::<OrganCode>()).transpose();
            if let Some(stop) = watching.take() {
                stop.store(true, Ordering::Relaxed);
            }
            match tenant {
                Ok(tenant) => {
                    client =
                        Client::for_tenant(&home, tenant.as_ref()).map_err(|e| format!("{e:#}"));
                    let stop = Arc::new(AtomicBool::new(false));
                    let (home, events, flag) = (home.clone(), events.clone(), stop.clone());
                    thread::spawn(move || {
                        watch(&home, tenant.as_ref(), generation, &events, &flag)
                    });
                    watching = Some(stop);
                }
                Err(e) => client = Err(format!("{e:#}")),
            }
            continue;
        }
        let answer = match &client {
            Ok(client) => execute(client, command),
            Err(e) => failed(command, e.clone()),
        };
        if events
            .send(Event::Answer {
                generation,
                answer: Box::new(answer),
            })
            .is_err()
        {
            break;
        }
    }
    if let Some(stop) = watching {
        stop.store(true, Ordering::Relaxed);
    }
}

fn message(e: anyhow::Error) -> String {
    format!("{e:#}")
}

fn decode<T: DeserializeOwned>(value: Value) -> Result<T> {
    serde_json::from_value(value).context("the daemon's answer")
}

/// The answer `command` gets when no client could be made (the error says why).
fn failed(command: Command, e: String) -> Answer {
    match command {
        Command::Health => Answer::Health(Err(e)),
        Command::List {
            tab,
            offset,
            limit,
            q,
        } => Answer::List {
            tab,
            offset,
            limit,
            q,
            result: Err(e),
        },
        Command::Detail { id } => Answer::Detail { id, result: Err(e) },
        Command::Directory { q } => Answer::Directory { q, result: Err(e) },
        Command::Tenants | Command::SetTenant { .. } => Answer::Tenants(Err(e)),
        Command::Send { .. } => Answer::Sent(Err(e)),
        Command::Notice { id, code, .. } => Answer::Acted {
            id,
            what: format!("notice {code}"),
            result: Err(e),
        },
        Command::Recall { id, .. } => Answer::Acted {
            id,
            what: "recall".into(),
            result: Err(e),
        },
        Command::RecallAnswer { id, .. } => Answer::Acted {
            id,
            what: "recall answer".into(),
            result: Err(e),
        },
        Command::Fetch { id, dir } => Answer::Fetched {
            id,
            dir,
            result: Err(e),
        },
    }
}

/// A path with its query string.
fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    format!("{path}?{}", query.finish())
}

fn execute(client: &Client, command: Command) -> Answer {
    match command {
        Command::Health => Answer::Health(
            client
                .get("/v1/health")
                .and_then(|h| Ok((text(field(&h, "organ_code")?), text(&h["name"]))))
                .map_err(message),
        ),
        Command::List {
            tab,
            offset,
            limit,
            q,
        } => {
            let path = if tab == Tab::Inbox {
                "/v1/inbox"
            } else {
                "/v1/outbox"
            };
            let mut pairs = vec![("limit", limit.to_string()), ("offset", offset.to_string())];
            if !q.is_empty() {
                pairs.push(("q", q.clone()));
            }
            let result = client
                .get_counted(&with_query(path, &pairs))
                .and_then(|(rows, total)| {
                    let total = total.and_then(|t| usize::try_from(t).ok());
                    Ok((decode::<Vec<CopyView>>(rows)?, total))
                })
                .map_err(message);
            Answer::List {
                tab,
                offset,
                limit,
                q,
                result,
            }
        }
        Command::Detail { id } => {
            let result = client
                .get(&format!("/v1/dispatches/{id}?ledger=true"))
                .and_then(decode)
                .map_err(message);
            Answer::Detail { id, result }
        }
        Command::Directory { q } => {
            let path = with_query("/v1/directory", &[("q", q.clone()), ("limit", "20".into())]);
            let result = client.get(&path).and_then(decode).map_err(message);
            Answer::Directory { q, result }
        }
        Command::Tenants => {
            Answer::Tenants(client.get("/v1/tenants").and_then(decode).map_err(message))
        }
        Command::SetTenant { .. } => Answer::Tenants(Err("not a request".into())),
        Command::Send { request, files } => Answer::Sent(
            submit(client, request, &files)
                .map(|answer| {
                    let copies = answer["copies"].as_array().map_or(0, Vec::len);
                    (text(&answer["message_id"]), copies)
                })
                .map_err(message),
        ),
        Command::Notice {
            id,
            code,
            to,
            reason,
        } => {
            let mut body = json!({ "code": code });
            if let Some(to) = to {
                body["to"] = to.into();
            }
            if let Some(reason) = reason {
                body["reason"] = reason.into();
            }
            let result = client
                .post(&format!("/v1/dispatches/{id}/notices"), &body)
                .and_then(decode)
                .map_err(message);
            Answer::Acted {
                id,
                what: format!("notice {code}"),
                result,
            }
        }
        Command::Recall { id, reason } => {
            let result = client
                .post(
                    &format!("/v1/dispatches/{id}/recall"),
                    &json!({ "reason": reason }),
                )
                .and_then(decode)
                .map_err(message);
            Answer::Acted {
                id,
                what: "recall 13".into(),
                result,
            }
        }
        Command::RecallAnswer { id, agree, reason } => {
            let mut body = json!({ "agree": agree });
            if let Some(reason) = reason {
                body["reason"] = reason.into();
            }
            let result = client
                .post(&format!("/v1/dispatches/{id}/recall-answer"), &body)
                .and_then(decode)
                .map_err(message);
            let what = if agree {
                "recall answer 15"
            } else {
                "recall answer 16"
            };
            Answer::Acted {
                id,
                what: what.into(),
                result,
            }
        }
        Command::Fetch { id, dir } => {
            let result = fetch_into(client, &id, &dir)
                .map(|w| w.len())
                .map_err(message);
            Answer::Fetched { id, dir, result }
        }
    }
}

/// Holds `GET /v1/events` open for `tenant` until `stop`, resuming after the last id seen
/// (`Last-Event-ID`) after any break; while it cannot, tries again every few seconds, saying so
/// once.
fn watch(
    home: &std::path::Path,
    tenant: Option<&OrganCode>,
    generation: u64,
    events: &Sender<Event>,
    stop: &AtomicBool,
) {
    let send = |live: Live| events.send(Event::Live { generation, live }).is_ok();
    let client = match Client::for_tenant(home, tenant) {
        Ok(client) => client,
        Err(e) => {
            send(Live::Down(message(e)));
            return;
        }
    };
    let mut last: Option<u64> = None;
    let mut was_down: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let headers: Vec<(&str, String)> = last
            .map(|n| ("last-event-id", n.to_string()))
            .into_iter()
            .collect();
        let mut parser = SseParser::default();
        let mut gone = false;
        let result = client.stream("/v1/events", &headers, |chunk| {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            if chunk.is_empty() {
                was_down = None;
                gone = !send(Live::Up);
                return !gone;
            }
            for event in parser.feed(chunk) {
                let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                let Some(index) = event.id.or_else(|| data["index"].as_u64()) else {
                    continue;
                };
                last = Some(index);
                let id = data["id"].as_str().map(str::to_owned);
                if !send(Live::Entry { index, id }) {
                    gone = true;
                    return false;
                }
            }
            true
        });
        if gone || stop.load(Ordering::Relaxed) {
            return;
        }
        let why = match result {
            Ok(()) => "the event stream ended".to_owned(),
            Err(e) => message(e),
        };
        if was_down.as_deref() != Some(&why) {
            if !send(Live::Down(why.clone())) {
                return;
            }
            was_down = Some(why);
        }
        for _ in 0..RETRY.as_millis() / 100 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}
