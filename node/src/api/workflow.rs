//! The clerk's workflow over the API (`docs/local-api.md`, "The clerk's workflow and events"):
//! notices 02-06, recall and its answer, the event stream, and the directory a send form picks
//! recipients from.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use vdx_protocol::ledger::{Entry, EntryKind};

use super::{
    blocking, body_timeout, json_response, read_json, ApiError, Body, ChannelBody, Query, View,
};
use crate::host::Host;
use crate::store::{MessageId, Record};
use crate::tenant::clerk::ClerkError;
use crate::tenant::compose::{transfer_id, uuid_bytes};
use crate::tenant::Tenant;

/// How often the event stream looks for new ledger entries.
const EVENT_POLL: Duration = Duration::from_millis(200);
/// A comment line is sent after this long without an event, so that proxies and clients see
/// the stream alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

impl From<ClerkError> for ApiError {
    fn from(e: ClerkError) -> Self {
        let code = match &e {
            ClerkError::NotFound(_) => StatusCode::NOT_FOUND,
            ClerkError::Transition(_) => StatusCode::CONFLICT,
            ClerkError::Invalid(_) => StatusCode::BAD_REQUEST,
            ClerkError::Store(_) | ClerkError::Sign(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let name = match &e {
            ClerkError::NotFound(_) => "not_found",
            ClerkError::Transition(_) => "bad_transition",
            ClerkError::Invalid(_) => "bad_request",
            _ => "internal",
        };
        Self(code, name, e.to_string())
    }
}

/// `POST /v1/dispatches/{id}/notices`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeRequest {
    code: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/dispatches/{id}/recall`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecallRequest {
    reason: String,
}

/// `POST /v1/dispatches/{id}/recall-answer`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerRequest {
    agree: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// A JSON request body of type `T`.
async fn request<T: serde::de::DeserializeOwned>(
    node: &Host,
    body: Incoming,
) -> Result<T, ApiError> {
    let bytes = read_json(body, body_timeout(node)).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("the request: {e}")))
}

/// The copies `id` names in this tenant's mailbox: a transfer id, or a message id (UUID): the
/// copy received here, or (`sent`) every copy sent.
fn copies(tenant: &Tenant, id: &str, sent: bool) -> Result<Vec<MessageId>, ApiError> {
    if let Ok(transfer) = MessageId::try_from(id.to_owned()) {
        return Ok(vec![transfer]);
    }
    let message = uuid_bytes(id).map_err(|_| {
        ApiError::bad(format!(
            "{id:?} is neither a dispatch id (32 hex digits) nor a message id (UUID)"
        ))
    })?;
    if sent {
        let copies = tenant.store.copies_of(id)?;
        let sent: Vec<MessageId> = copies
            .into_iter()
            .filter(|c| {
                tenant
                    .store
                    .get(*c)
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.direction == crate::store::Direction::Outgoing)
            })
            .collect();
        return Ok(sent);
    }
    Ok(vec![transfer_id(&message, &tenant.code)])
}

/// The view answered after a notice: the copy as it is now, with its header.
fn answer(tenant: &Tenant, record: &Record) -> Result<Response<Body>, ApiError> {
    let header = tenant.store.header(record.id)?;
    Ok(json_response(
        StatusCode::CREATED,
        &View::of(record, header.as_ref(), false),
    ))
}

pub(super) async fn notice(
    node: Arc<Host>,
    tenant: Arc<Tenant>,
    body: Incoming,
    id: String,
) -> Result<Response<Body>, ApiError> {
    let request: NoticeRequest = request(&node, body).await?;
    let text = match request.code.as_str() {
        "04" => request.to.or(request.reason),
        _ => request.reason,
    };
    let worker = tenant.clone();
    let record = blocking(move || {
        let [id] = copies(&worker, &id, false)?[..] else {
            return Err(ApiError::not_found("no such dispatch"));
        };
        let now = time::OffsetDateTime::now_utc();
        Ok::<_, ApiError>(
            worker
                .clerk()
                .notify(id, &request.code, text.as_deref(), now)?,
        )
    })
    .await?;
    node.wake_outbox.notify_one();
    answer(&tenant, &record)
}

pub(super) async fn recall(
    node: Arc<Host>,
    tenant: Arc<Tenant>,
    body: Incoming,
    id: String,
) -> Result<Response<Body>, ApiError> {
    let request: RecallRequest = request(&node, body).await?;
    let worker = tenant.clone();
    let records = blocking(move || {
        let ids = copies(&worker, &id, true)?;
        if ids.is_empty() {
            return Err(ApiError::not_found(format!(
                "no dispatch {id} sent from here"
            )));
        }
        let now = time::OffsetDateTime::now_utc();
        let mut recalled = Vec::new();
        for id in ids {
            recalled.push(worker.clerk().recall(id, &request.reason, now)?);
        }
        Ok::<_, ApiError>(recalled)
    })
    .await?;
    node.wake_outbox.notify_one();
    match records.as_slice() {
        [one] => answer(&tenant, one),
        many => {
            let views: Vec<_> = many.iter().map(|r| View::of(r, None, false)).collect();
            Ok(json_response(StatusCode::CREATED, &views))
        }
    }
}

pub(super) async fn recall_answer(
    node: Arc<Host>,
    tenant: Arc<Tenant>,
    body: Incoming,
    id: String,
) -> Result<Response<Body>, ApiError> {
    let request: AnswerRequest = request(&node, body).await?;
    let worker = tenant.clone();
    let record = blocking(move || {
        let [id] = copies(&worker, &id, false)?[..] else {
            return Err(ApiError::not_found("no such dispatch"));
        };
        let now = time::OffsetDateTime::now_utc();
        let clerk = worker.clerk();
        Ok::<_, ApiError>(clerk.answer_recall(id, request.agree, request.reason.as_deref(), now)?)
    })
    .await?;
    node.wake_outbox.notify_one();
    answer(&tenant, &record)
}

/// `GET /v1/events`: the tenant's ledger entries about dispatches, from after `after` (or from
/// the next one), as server-sent events whose ids are ledger indexes: a client that resumes
/// from the last id it saw misses nothing, across reconnects and restarts.
/// With `follow` false, the stream ends once what the ledger holds now is sent.
pub(super) fn events(tenant: Arc<Tenant>, after: Option<u64>, follow: bool) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut next = match after {
            Some(after) => after.saturating_add(1),
            None => tenant.store.ledger_size().unwrap_or(0),
        };
        let mut quiet = tokio::time::Instant::now();
        loop {
            let size = tenant.store.ledger_size().unwrap_or(next);
            let mut out = String::new();
            for bytes in tenant.store.ledger_entries(next, size) {
                let Ok(entry) = bytes.and_then(|b| {
                    Entry::parse(&b).map_err(|e| {
                        crate::store::StoreError::Corrupt(format!("ledger entry: {e}"))
                    })
                }) else {
                    continue;
                };
                if matches!(entry.kind, EntryKind::Audit | EntryKind::Config) {
                    continue;
                }
                let row = crate::tenant::audit::LogRow::of(&entry);
                let data = serde_json::to_string(&row).unwrap_or_default();
                out.push_str(&format!(
                    "id: {}\nevent: {}\ndata: {data}\n\n",
                    entry.index, entry.kind
                ));
            }
            next = size.max(next);
            if out.is_empty() && quiet.elapsed() >= KEEP_ALIVE {
                out.push_str(": keep-alive\n\n");
            }
            if !out.is_empty() {
                quiet = tokio::time::Instant::now();
                if tx.send(Ok(Frame::data(Bytes::from(out)))).await.is_err() {
                    return; // The client went away.
                }
            }
            if tx.is_closed() || !follow {
                return;
            }
            tokio::time::sleep(EVENT_POLL).await;
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(ChannelBody(rx)))
        .unwrap_or_else(|_| Response::new(super::empty()))
}

/// Where an event stream starts: after `Last-Event-ID`, else after `?after=`.
pub(super) fn resume_point(
    last_event_id: Option<&str>,
    query: &Query,
) -> Result<Option<u64>, ApiError> {
    if let Some(last) = last_event_id {
        return last
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad(format!("Last-Event-ID {last:?} is not an event id")));
    }
    query.number("after")
}

/// `GET /v1/directory?q=&limit=`: the agencies in force whose code or name holds `q`.
pub(super) fn directory(node: &Host, query: &Query) -> Result<Response<Body>, ApiError> {
    let q = query.get("q").unwrap_or("").to_lowercase();
    let limit = query.number("limit")?.unwrap_or(50) as usize;
    let trusted = node.trusted();
    let mut entries: Vec<&vdx_pki::Entry> = trusted
        .directory
        .directory()
        .entries
        .iter()
        .filter(|e| {
            q.is_empty()
                || e.organ_code.to_lowercase().contains(&q)
                || e.name.to_lowercase().contains(&q)
        })
        .collect();
    entries.sort_by(|a, b| a.organ_code.cmp(&b.organ_code));
    let found: Vec<serde_json::Value> = entries
        .into_iter()
        .take(limit)
        .map(|e| {
            json!({
                "organ_code": e.organ_code,
                "name": e.name,
                "parent": e.parent,
                "host": e.host,
                "max_classification": e.max_classification,
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &found))
}
