//! The local socket API (DESIGN §6, spec `docs/local-api.md`): HTTP/1.1 + JSON over the Unix socket
//! `vdxd.sock` in the node home (mode 0660). A client is known by its socket peer's uid (SO_PEERCRED),
//! mapped to roles by `config.toml [api]`; the home's owner is admin.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixListener;
use vdx_crypto::Opener;
use vdx_protocol::header::DispatchHeader;
use vdx_protocol::ledger::{Actor, EntryKind};
use vdx_protocol::OrganCode;

use crate::classification::PolicyError;
use crate::config::{Api, Users};
use crate::host::metrics::RenderError;
use crate::host::zones::ZoneError;
use crate::host::Host;
use crate::store::{Direction, DispatchState, Event, MessageId, Problem, Record, StoreError};
use crate::tenant::audit::{AuditError, LogFilter};
use crate::tenant::compose::{ComposeError, Files, SendRequest};
use crate::tenant::Tenant;

mod lists;
mod workflow;

/// The socket's file name in the node home.
pub const SOCKET_NAME: &str = "vdxd.sock";
/// Largest JSON request body (`POST /v1/dispatches`): larger ones are answered 413 `too_large`.
const MAX_JSON: usize = 4 << 20;

type Body = BoxBody<Bytes, io::Error>;

/// What a client may do, and who it is (for the ledger).
#[derive(Debug, Clone, Copy, Default)]
struct Roles {
    /// Send, list, show, fetch.
    clerk: bool,
    /// Read metadata (lists, show) and the ledger, never document content.
    officer: bool,
    /// The client's Unix uid.
    uid: u32,
    /// Its first role, as the ledger names it.
    name: &'static str,
}

/// Who is at the other end of a connection, before any tenant is named.
#[derive(Debug, Clone, Copy)]
struct Caller {
    uid: u32,
    /// The owner of the node home (or a uid of `config.toml [api] admins`): manages the host
    /// and its tenants, and is admin of the host's own agency.
    host_admin: bool,
}

impl Caller {
    fn of(uid: u32, owner: u32, api: &Api) -> Self {
        Self {
            uid,
            host_admin: uid == owner || api.admins.contains(&uid),
        }
    }

    /// The caller's roles in `tenant` (none: the tenant does not exist for this caller).
    fn roles_in(&self, tenant: &Tenant) -> Roles {
        Roles::of(self.uid, self.host_admin && tenant.owned, &tenant.users)
    }
}

impl Roles {
    fn of(uid: u32, admin_here: bool, api: &Users) -> Self {
        let admin = admin_here || api.admins.contains(&uid);
        let system = api.systems.contains(&uid);
        let clerk = api.clerks.contains(&uid);
        let officer = api.officers.contains(&uid);
        let name = match () {
            () if admin => "admin",
            () if clerk => "clerk",
            () if system => "system",
            () if officer => "officer",
            () => "none",
        };
        Self {
            clerk: admin || clerk || system,
            officer: admin || officer,
            uid,
            name,
        }
    }

    /// The ledger's actor for this client.
    fn actor(&self) -> Actor {
        Actor::User(self.uid)
    }

    /// An event caused by this client: its uid as the actor, its role as a field.
    fn event(&self, kind: EntryKind, id: Option<[u8; 16]>) -> Event {
        Event::new(kind, id, self.actor()).field("role", self.name)
    }
}

/// An error answer: HTTP status, a stable code for programs, a sentence for people.
struct ApiError(StatusCode, &'static str, String);

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, "bad_request", message.into())
    }

    fn not_found(what: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, "not_found", what.into())
    }

    fn into_response(self) -> Response<Body> {
        let Self(status, code, message) = self;
        json_response(
            status,
            &json!({ "error": { "code": code, "message": message } }),
        )
    }
}

impl From<RenderError<StoreError>> for ApiError {
    fn from(e: RenderError<StoreError>) -> Self {
        match e {
            RenderError::Status(e) => e.into(),
            RenderError::Encoding => Self(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the metrics could not be encoded".into(),
            ),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Store(e) => e.into(),
            AuditError::Bad(m) => Self::bad(m),
            other => Self(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

impl From<crate::host::RemoveError> for ApiError {
    fn from(e: crate::host::RemoveError) -> Self {
        use crate::host::RemoveError;
        match e {
            RemoveError::Unknown => Self::not_found("no such tenant"),
            RemoveError::Own => Self(StatusCode::CONFLICT, "own_tenant", e.to_string()),
            RemoveError::Queued(_) => Self(StatusCode::CONFLICT, "queued", e.to_string()),
            RemoveError::Store(e) => e.into(),
            RemoveError::File(_) => {
                Self(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DiskFull(_) => {
                Self(StatusCode::INSUFFICIENT_STORAGE, "disk_full", e.to_string())
            }
            StoreError::NotFound(_) => Self::not_found(e.to_string()),
            StoreError::Conflict(_) => Self(StatusCode::CONFLICT, "conflict", e.to_string()),
            _ => Self(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

/// The API meets a `StartError` only from a reload: a trust file that did not load, or the
/// ledger that could not record the change.
impl From<crate::host::StartError> for ApiError {
    fn from(e: crate::host::StartError) -> Self {
        match e {
            crate::host::StartError::Store(e) => e.into(),
            other => Self(
                StatusCode::UNPROCESSABLE_ENTITY,
                "reload_failed",
                format!("{other}; the previous trust settings stay in force"),
            ),
        }
    }
}

impl From<ComposeError> for ApiError {
    fn from(e: ComposeError) -> Self {
        match e {
            ComposeError::Store(e) => e.into(),
            // Sealing writes the object: a full disk there is the clerk's `disk_full` too.
            ComposeError::Seal(vdx_crypto::Error::Io(e)) => {
                StoreError::from_io("writing the sealed object")(e).into()
            }
            ComposeError::UnknownRecipient(_) => Self(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_recipient",
                e.to_string(),
            ),
            ComposeError::Policy(ref refused) => Self(
                StatusCode::UNPROCESSABLE_ENTITY,
                match refused {
                    PolicyError::AboveAllowed { .. } => "classification_not_allowed",
                    PolicyError::RelayNotAllowed { .. } => "classification_route_not_allowed",
                },
                e.to_string(),
            ),
            ComposeError::UnknownUpload(_) => Self(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_upload",
                e.to_string(),
            ),
            ComposeError::Invalid(_) => Self::bad(e.to_string()),
            ComposeError::BadFileName(_) => {
                Self(StatusCode::BAD_REQUEST, "bad_file_name", e.to_string())
            }
            ComposeError::MessageIdReused { .. } => {
                Self(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            _ => Self(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        }
    }
}

impl From<crate::routing::RouteError> for ApiError {
    fn from(e: crate::routing::RouteError) -> Self {
        use crate::routing::RouteError;
        let code = match e {
            RouteError::Loop(_) => "route_loop",
            RouteError::TooLong { .. } => "route_too_long",
        };
        Self(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
    }
}

/// Binds the socket (replacing a stale one), mode 0660.
pub fn bind(home: &Path) -> io::Result<(UnixListener, PathBuf)> {
    let path = home.join(SOCKET_NAME);
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use: is another vdxd running?", path.display()),
        ));
    }
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
    Ok((listener, path))
}

/// Serves clients until the task is aborted, within `[limits]`: at most `api_connections` at once
/// (further clients wait in the socket's backlog, not accepted, so that they cost the node no file
/// descriptor, and are served as soon as a connection ends: refusing them instead would fail every
/// clerk's command in a burst); a connection closed when a request's header has not arrived
/// `api_header_timeout_secs` after it opened or after its previous answer (idle or half-sent);
/// a request ended when its body stops arriving, or its answer stops being read, for
/// `api_body_timeout_secs` (inactivity, so a long upload or fetch that keeps moving is not cut).
pub(crate) async fn serve(listener: UnixListener, node: Arc<Host>, home: PathBuf) {
    let owner = std::fs::metadata(&home).map_or(u32::MAX, |m| m.uid());
    let limits = &node.config.limits;
    let slots = Arc::new(tokio::sync::Semaphore::new(
        limits.api_connections.max(1) as usize
    ));
    let header_timeout = Duration::from_secs(limits.api_header_timeout_secs.max(1));
    let stall_timeout = body_timeout(&node);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // Closed: never, the semaphore lives here.
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // E.g. out of file descriptors: wait a little rather than spin.
                tracing::warn!(error = %e, "local API accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let caller = stream
            .peer_cred()
            .map(|c| Caller::of(c.uid(), owner, &node.config.api))
            .unwrap_or(Caller {
                uid: u32::MAX,
                host_admin: false,
            });
        let node = node.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let node = node.clone();
                async move { Ok::<_, Infallible>(answer(node, caller, req).await) }
            });
            let stream = TokioIo::new(WriteStall::new(stream, stall_timeout));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(stream, service)
                .await
            {
                tracing::debug!(error = %e, "local API connection ended");
            }
            drop(slot);
        });
    }
}

/// How long a request body may stop arriving (`[limits] api_body_timeout_secs`), and an answer
/// stop being read.
fn body_timeout(node: &Host) -> Duration {
    Duration::from_secs(node.config.limits.api_body_timeout_secs.max(1))
}

/// The next frame of a request body; 408 `timeout` when none arrives for `idle`, and the caller,
/// returning that, drops whatever it kept of the body.
async fn next_frame(
    body: &mut Incoming,
    idle: Duration,
) -> Result<Option<Result<Frame<Bytes>, hyper::Error>>, ApiError> {
    tokio::time::timeout(idle, body.frame()).await.map_err(|_| {
        ApiError(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the request body stopped arriving for {} s ([limits] api_body_timeout_secs); \
                 nothing of it was kept",
                idle.as_secs()
            ),
        )
    })
}

/// A client connection whose writes fail with `TimedOut` once the client has taken no byte of
/// an answer for `limit`: a client that stops reading a long answer (a fetch) would otherwise
/// hold its connection, the stored object and a blocking thread for ever. Only a write that
/// cannot proceed is timed, so an answer of any length that keeps being read is never cut.
struct WriteStall<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteStall<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After the inner write answered `result`: progress clears the clock, a write that must
    /// wait starts it (or finds it run out).
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let limit = self.limit;
        let clock = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match clock.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing of the answer for {} s ([limits] api_body_timeout_secs)",
                    limit.as_secs()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.timed(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.timed(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.timed(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn answer(node: Arc<Host>, caller: Caller, req: Request<Incoming>) -> Response<Body> {
    route(node, caller, req)
        .await
        .unwrap_or_else(ApiError::into_response)
}

fn forbidden(what: &str) -> ApiError {
    ApiError(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("your user has no role that may {what} (config.toml [api], or the tenant's tenant.toml [api])"),
    )
}

/// Every request acts for the host or for one tenant (DESIGN §6): `/v1/tenants/{code}/...` names
/// the tenant; the shorter `/v1/...` form acts for the one tenant the caller has a role in. A
/// tenant the caller has no role in answers exactly as one that does not exist (404
/// `not_found`), so that no user learns of another agency on the host.
async fn route(
    node: Arc<Host>,
    caller: Caller,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path: Vec<String> = req
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (method, parts.as_slice()) {
        (Method::GET, ["v1", "health"]) => {
            let visible = visible_tenants(&node, caller);
            if !caller.host_admin && visible.is_empty() {
                return Err(forbidden("use this node"));
            }
            let own = visible.iter().find(|t| t.owned).or(visible.first());
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "organ_code": own.map_or(&node.config.organ_code, |t| &t.code),
                    "name": own.map_or(&node.config.name, |t| &t.name),
                    "version": env!("CARGO_PKG_VERSION"),
                    "max_upload_bytes": node.config.limits.max_dispatch_bytes,
                }),
            ))
        }
        (Method::GET, ["v1", "metrics"]) => {
            // Metrics name every tenant: for the host's operators, not for the tenants' users.
            if !caller.host_admin && caller.roles_in(&node.own).name == "none" {
                return Err(forbidden("read the host's metrics"));
            }
            metrics(node).await
        }
        (Method::POST, ["v1", "reload"]) => {
            // Only re-reads files the node's operator already changed: harmless to any role.
            if !caller.host_admin && visible_tenants(&node, caller).is_empty() {
                return Err(forbidden("use this node"));
            }
            let reloaded = blocking(move || node.reload()).await?;
            Ok(json_response(StatusCode::OK, &reloaded))
        }
        (Method::POST, ["v1", "directory", "zones"]) => {
            // The directory is the host's: its operators publish zones.
            if !caller.host_admin {
                return Err(forbidden("publish directory zones"));
            }
            let file = read_body(
                req.into_body(),
                body_timeout(&node),
                vdx_protocol::wire::MAX_ZONE,
                "a zone file",
            )
            .await?;
            let taken = blocking(move || {
                node.take_zone(&file, "publish").map_err(|e| {
                    let status = match e {
                        ZoneError::NotSigned => StatusCode::CONFLICT,
                        ZoneError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
                        ZoneError::Keep { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                    };
                    ApiError(status, e.code(), e.to_string())
                })
            })
            .await?;
            Ok(json_response(StatusCode::OK, &taken))
        }
        (Method::GET, ["v1", "directory"]) => {
            // Who is who: any role here may pick recipients from it.
            if !caller.host_admin && visible_tenants(&node, caller).is_empty() {
                return Err(forbidden("use this node"));
            }
            workflow::directory(&node, &Query::parse(req.uri().query()))
        }
        (Method::GET, ["v1", "directory", "zones"]) => {
            // The national directory is no tenant's secret: anyone with a role here reads it.
            if !caller.host_admin && visible_tenants(&node, caller).is_empty() {
                return Err(forbidden("use this node"));
            }
            Ok(json_response(StatusCode::OK, &node.zone_report()))
        }
        (Method::GET, ["v1", "tenants"]) => {
            // The host's admins add and remove tenants: they see them all (codes and names only).
            let shown = if caller.host_admin {
                let mut all: Vec<Arc<Tenant>> = node.tenants().values().cloned().collect();
                all.sort_by_key(|t| !t.owned); // Then by organ code, as they are kept.
                all
            } else {
                visible_tenants(&node, caller)
            };
            let list: Vec<_> = shown
                .iter()
                .map(|t| json!({ "organ_code": t.code, "name": t.name, "own": t.owned }))
                .collect();
            if !caller.host_admin && list.is_empty() {
                return Err(forbidden("use this node"));
            }
            Ok(json_response(StatusCode::OK, &list))
        }
        (Method::PUT, ["v1", "tenants", code]) => {
            if !caller.host_admin {
                return Err(forbidden("add tenants"));
            }
            let code = parse_code(code)?;
            let worker = node.clone();
            let tenant = blocking(move || {
                worker.add_tenant(&code).map_err(|e| match e {
                    crate::host::StartError::Store(e) => ApiError::from(e),
                    other => ApiError(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "tenant_not_loaded",
                        format!("the tenant was not added: {other}"),
                    ),
                })
            })
            .await?;
            let reloaded = blocking(move || node.reload()).await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({ "organ_code": tenant.code, "name": tenant.name, "reloaded": reloaded }),
            ))
        }
        (Method::DELETE, ["v1", "tenants", code]) => {
            if !caller.host_admin {
                return Err(forbidden("remove tenants"));
            }
            let code = parse_code(code)?;
            let force = Query::parse(req.uri().query()).get("force") == Some("true");
            blocking(move || node.remove_tenant(&code, force)).await?;
            Ok(json_response(StatusCode::OK, &json!({ "removed": true })))
        }
        (_, ["v1", "tenants", code, rest @ ..]) => {
            let code = parse_code(code)?;
            let (tenant, roles) = node
                .tenant(&code)
                .map(|t| (caller.roles_in(&t), t))
                .filter(|(roles, _)| roles.name != "none")
                .map(|(roles, t)| (t, roles))
                .ok_or_else(|| ApiError::not_found(format!("no tenant {code}")))?;
            tenant_route(node, tenant, roles, req, rest).await
        }
        (_, ["v1", rest @ ..]) => {
            let mut visible = visible_tenants(&node, caller);
            let tenant = match visible.len() {
                0 => return Err(forbidden("use this node")),
                1 => visible.remove(0),
                _ => {
                    return Err(ApiError(
                        StatusCode::BAD_REQUEST,
                        "tenant_required",
                        "your user works for several agencies on this node: name one \
                         (/v1/tenants/{organ code}/..., or vdx --tenant CODE)"
                            .into(),
                    ))
                }
            };
            let roles = caller.roles_in(&tenant);
            tenant_route(node, tenant, roles, req, rest).await
        }
        _ => Err(ApiError::not_found(format!(
            "no endpoint {} {}",
            req.method(),
            req.uri().path()
        ))),
    }
}

/// The tenants `caller` has a role in, the host's own first.
fn visible_tenants(node: &Host, caller: Caller) -> Vec<Arc<Tenant>> {
    let mut visible: Vec<Arc<Tenant>> = node
        .tenants()
        .values()
        .filter(|t| caller.roles_in(t).name != "none")
        .cloned()
        .collect();
    visible.sort_by_key(|t| !t.owned);
    visible
}

fn parse_code(code: &str) -> Result<OrganCode, ApiError> {
    code.parse()
        .map_err(|e| ApiError::bad(format!("{code:?} is not an organ code: {e}")))
}

/// The routes that act for one agency (`rest` is the path after `/v1/` or
/// `/v1/tenants/{code}/`), each checking the caller's role in it.
async fn tenant_route(
    node: Arc<Host>,
    tenant: Arc<Tenant>,
    roles: Roles,
    req: Request<Incoming>,
    rest: &[&str],
) -> Result<Response<Body>, ApiError> {
    let need = |ok: bool, what: &str| if ok { Ok(()) } else { Err(forbidden(what)) };
    match (req.method().clone(), rest) {
        (Method::GET, ["status"]) => {
            need(roles.clerk || roles.officer, "use this node")?;
            let status = blocking(move || node.status(&tenant)).await?;
            Ok(json_response(StatusCode::OK, &status))
        }
        (Method::POST, ["restore", "acknowledge"]) => {
            need(roles.name == "admin", "acknowledge a restore of the store")?;
            let actor = roles.actor();
            let worker = tenant.clone();
            match blocking(move || worker.store.acknowledge_restore(actor)).await? {
                Some(acknowledged) => {
                    tracing::warn!(tenant = %tenant.code, finding = %acknowledged.restored.describe(), next_numbers = ?acknowledged.next_numbers, "restore acknowledged: numbering and sending resume");
                    node.wake_outbox.notify_one();
                    tenant.wake_inbox.notify_one();
                    Ok(json_response(StatusCode::OK, &acknowledged))
                }
                None => Err(ApiError(
                    StatusCode::CONFLICT,
                    "no_restore",
                    "no restore of the store waits for an acknowledgement".into(),
                )),
            }
        }
        (Method::POST, ["uploads"]) => {
            need(roles.clerk, "upload files")?;
            upload(node, tenant, req.into_body()).await
        }
        (Method::POST, ["dispatches"]) => {
            need(roles.clerk, "send dispatches")?;
            submit(node, tenant, req.into_body(), roles).await
        }
        (Method::POST, ["dispatches", "stream"]) => {
            need(roles.clerk, "send dispatches")?;
            submit_stream(node, tenant, req.into_body(), roles).await
        }
        (Method::POST, ["dispatches", id, "notices"]) => {
            need(roles.clerk, "send status notices")?;
            let id = (*id).to_owned();
            workflow::notice(node, tenant, req.into_body(), id).await
        }
        (Method::POST, ["dispatches", id, "recall"]) => {
            need(roles.clerk, "recall dispatches")?;
            let id = (*id).to_owned();
            workflow::recall(node, tenant, req.into_body(), id).await
        }
        (Method::POST, ["dispatches", id, "recall-answer"]) => {
            need(roles.clerk, "answer recalls")?;
            let id = (*id).to_owned();
            workflow::recall_answer(node, tenant, req.into_body(), id).await
        }
        (Method::GET, ["events"]) => {
            need(roles.clerk || roles.officer, "follow events")?;
            let last = req
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok());
            let query = Query::parse(req.uri().query());
            let after = workflow::resume_point(last, &query)?;
            let follow = query.get("follow") != Some("false");
            Ok(workflow::events(tenant, after, follow))
        }
        (Method::GET, [box_name @ ("inbox" | "outbox")]) => {
            need(roles.clerk || roles.officer, "list dispatches")?;
            let direction = if *box_name == "inbox" {
                Direction::Incoming
            } else {
                Direction::Outgoing
            };
            let records = tenant.store.list(direction)?;
            let ids: Vec<_> = records.iter().map(|r| r.id).collect();
            let headers = tenant.store.headers_of(&ids)?;
            let views: Vec<_> = records
                .iter()
                .zip(&headers)
                .map(|(r, h)| View::of(r, h.as_deref(), false))
                .collect();
            let query = Query::parse(req.uri().query());
            let (total, page) = lists::select(views, &query, *box_name == "inbox")?;
            let mut response = json_response(StatusCode::OK, &page);
            response
                .headers_mut()
                .insert("x-total-count", hyper::header::HeaderValue::from(total));
            Ok(response)
        }
        (Method::GET, ["dispatches", id]) => {
            need(roles.clerk || roles.officer, "read dispatches")?;
            let record = find(&tenant, id)?;
            let header = tenant.store.header(record.id)?;
            let mut view = View::of(&record, header.as_ref(), true);
            // Asked for: a client polling a dispatch's state should not pay for its history.
            if Query::parse(req.uri().query()).get("ledger") == Some("true") {
                view.ledger = Some(ledger_about(&tenant, record.id)?);
            }
            Ok(json_response(StatusCode::OK, &view))
        }
        (Method::GET, ["dispatches", id, "package"]) => {
            need(roles.clerk, "fetch documents")?;
            let record = find(&tenant, id)?;
            package(tenant, record, roles).await
        }
        (Method::POST, ["check"]) => {
            need(roles.officer, "check the store")?;
            check(tenant, roles).await
        }
        (Method::GET, ["audit", what]) => {
            need(roles.officer, "audit the ledger")?;
            let query = Query::parse(req.uri().query());
            audit(node, tenant, what, &query, roles).await
        }
        _ => Err(ApiError::not_found(format!(
            "no endpoint {} {}",
            req.method(),
            req.uri().path()
        ))),
    }
}

/// The counters and the status as OpenMetrics text (see `metrics`).
async fn metrics(node: Arc<Host>) -> Result<Response<Body>, ApiError> {
    let text = blocking(move || {
        node.metrics.answer(|| {
            // The host's own agency first: the host-wide gauges come from its report.
            let tenants = node.tenants();
            let mut all: Vec<&Arc<Tenant>> = tenants.values().collect();
            all.sort_by_key(|t| !t.owned);
            all.into_iter()
                .map(|t| node.status(t))
                .collect::<Result<Vec<_>, _>>()
        })
    })
    .await?;
    Response::builder()
        .header(
            hyper::header::CONTENT_TYPE,
            crate::host::metrics::CONTENT_TYPE,
        )
        .body(full(text))
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// Scrapers served at once on the TCP port; more are turned away until one ends.
const METRICS_CONNECTIONS: usize = 4;
/// How long one scraper's connection may last, request and answer included.
const METRICS_CONNECTION_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `GET /metrics`, and nothing else, to scrapers over TCP (`[api] metrics_listen`). The port
/// has no authentication, so it is bounded: a few connections at once, each short, one request
/// each, the answer made at most once a second, and errors without detail.
pub(crate) async fn serve_metrics(listener: tokio::net::TcpListener, node: Arc<Host>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(METRICS_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // Dropped: the scraper retries at its next interval.
        };
        let node = node.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let node = node.clone();
                async move {
                    let answer = if req.method() == Method::GET && req.uri().path() == "/metrics" {
                        metrics(node).await.unwrap_or_else(|e| {
                            tracing::warn!(error = %e.2, "metrics not served");
                            ApiError(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "internal",
                                "the metrics could not be made: see the node's log".into(),
                            )
                            .into_response()
                        })
                    } else {
                        ApiError::not_found("only GET /metrics is served here").into_response()
                    };
                    Ok::<_, Infallible>(answer)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(METRICS_CONNECTION_TIME, connection).await {
                Ok(Err(e)) => tracing::debug!(error = %e, "metrics connection ended"),
                Err(_) => tracing::debug!("metrics connection timed out"),
                Ok(Ok(())) => {}
            }
            drop(slot);
        });
    }
}

fn find(tenant: &Tenant, id: &str) -> Result<Record, ApiError> {
    let id = MessageId::try_from(id.to_owned())
        .map_err(|_| ApiError::bad(format!("{id:?} is not a dispatch id (32 hex digits)")))?;
    tenant
        .store
        .get(id)?
        .filter(|r| r.kind == vdx_protocol::wire::ObjectKind::Dispatch)
        .ok_or_else(|| ApiError::not_found(format!("no dispatch {id}")))
}

async fn upload(
    node: Arc<Host>,
    tenant: Arc<Tenant>,
    mut body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let limit = node.config.limits.max_dispatch_bytes;
    let mut upload = tenant.uploads.begin();
    let mut total = 0u64;
    let idle = body_timeout(&node);
    // A timeout or a broken body returns here, dropping `upload`: nothing of it is kept.
    while let Some(frame) = next_frame(&mut body, idle).await? {
        let frame = frame.map_err(|e| ApiError::bad(format!("reading the upload: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        let refused = if total > limit {
            Some(ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("uploads are limited to {limit} bytes"),
            ))
        } else {
            upload.write(&data).err().map(ApiError::from)
        };
        if let Some(refusal) = refused {
            drop(upload); // Nothing of a refused upload is kept.
            discard_rest(body, limit, idle).await;
            return Err(refusal);
        }
    }
    let (id, size) = blocking(move || {
        let (id, size) = upload.finish(&tenant.store)?;
        tenant.uploads.uploaded(&id);
        Ok::<_, ApiError>((id, size))
    })
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "upload": id, "size": size }),
    ))
}

/// Reads and drops what is left of a refused request body, up to `limit` more bytes and while it
/// keeps arriving (`idle`), so that the answer reaches the client: most HTTP clients (hyper's too)
/// only read the answer once they have sent the whole body, and fail with a broken pipe if the
/// connection closes before that.
async fn discard_rest(mut body: Incoming, limit: u64, idle: Duration) {
    let mut left = limit;
    while let Ok(Some(Ok(frame))) = next_frame(&mut body, idle).await {
        let len = frame.data_ref().map_or(0, |d| d.len() as u64);
        match left.checked_sub(len) {
            Some(rest) => left = rest,
            None => return,
        }
    }
}

async fn submit(
    node: Arc<Host>,
    tenant: Arc<Tenant>,
    body: Incoming,
    roles: Roles,
) -> Result<Response<Body>, ApiError> {
    let bytes = read_json(body, body_timeout(&node)).await?;
    let request = submission(&node, &tenant, &bytes)?;
    let (worker, host) = (tenant.clone(), node.clone());
    let queued = blocking(move || queue(&host, &worker, &request, Files::Uploaded, &roles)).await?;
    Ok(submitted(&node, &tenant, queued))
}

/// `POST /v1/dispatches/stream`: the request (a u32 big-endian length, then its JSON), then the
/// bytes of its files in order. They are packed and sealed as they arrive, so the sender's disk
/// sees only the sealed object (one write of a large dispatch, not the upload then the sealed
/// copy), and nothing in clear.
async fn submit_stream(
    node: Arc<Host>,
    tenant: Arc<Tenant>,
    mut body: Incoming,
    roles: Roles,
) -> Result<Response<Body>, ApiError> {
    let idle = body_timeout(&node);
    let mut head: Vec<u8> = Vec::new();
    let json_len = loop {
        if let Some(len) = head
            .first_chunk::<4>()
            .map(|b| u32::from_be_bytes(*b) as usize)
        {
            if len > MAX_JSON {
                discard_rest(body, node.config.limits.max_dispatch_bytes, idle).await;
                return Err(ApiError(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the request is limited to {MAX_JSON} bytes"),
                ));
            }
            if head.len() >= 4 + len {
                break len;
            }
        }
        match next_frame(&mut body, idle).await? {
            Some(Ok(frame)) => head.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d)),
            Some(Err(e)) => return Err(ApiError::bad(format!("reading the request: {e}"))),
            None => return Err(ApiError::bad("the body ends before the request does")),
        }
    };
    let request = submission(&node, &tenant, &head[4..4 + json_len])?;
    let declared: u64 = request.files.iter().filter_map(|f| f.size).sum();
    let limit = node.config.limits.max_dispatch_bytes;
    if declared > limit {
        discard_rest(body, limit, idle).await;
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a dispatch's files are limited to {limit} bytes"),
        ));
    }
    // The files go from this task to the sealer's thread through a small queue: what is held in
    // memory is a few frames, whatever the size.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let files = BodyReader {
        rx,
        chunk: Bytes::from(head.split_off(4 + json_len)),
    };
    let (worker, host) = (tenant.clone(), node.clone());
    let sealing = blocking(move || {
        queue(
            &host,
            &worker,
            &request,
            Files::Streamed(Box::new(files)),
            &roles,
        )
    });
    let pump = async move {
        loop {
            let chunk = match next_frame(&mut body, idle).await {
                Ok(None) => return Ok(()),
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Ok(data),
                    Err(_) => continue,
                },
                Ok(Some(Err(e))) => Err(format!("reading the files: {e}")),
                Err(e) => {
                    let _ = tx.send(Err(e.2.clone())).await;
                    return Err(e);
                }
            };
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                // The sealer stopped (it refused the request, or has every byte it needs):
                // what is left is read and dropped so that its answer reaches the client.
                discard_rest(body, limit, idle).await;
                return Ok(());
            }
        }
    };
    let (queued, pumped) = tokio::join!(sealing, pump);
    pumped?;
    Ok(submitted(&node, &tenant, queued?))
}

/// The files of a streamed submission as the sealer reads them, from the task that reads the body.
struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    chunk: Bytes,
}

impl io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// A submission's request, refused when the store was restored and not yet acknowledged, or when
/// a route the directory gives loops or is too long (before anything is sealed).
fn submission(node: &Host, tenant: &Tenant, json: &[u8]) -> Result<SendRequest, ApiError> {
    if let Some(restored) = tenant.store.restored()? {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "restore_pending",
            format!(
                "{}: nothing is sent until an admin runs `vdx acknowledge-restore`",
                restored.describe()
            ),
        ));
    }
    let request: SendRequest =
        serde_json::from_slice(json).map_err(|e| ApiError::bad(format!("the request: {e}")))?;
    for to in &request.to {
        node.route_to(to)?;
    }
    Ok(request)
}

/// Composes and queues `request` (blocking): the dispatch already queued under its message id,
/// or a new one, with whether it is new.
fn queue(
    host: &Host,
    worker: &Tenant,
    request: &SendRequest,
    files: Files<'_>,
    roles: &Roles,
) -> Result<(DispatchHeader, Vec<Record>, bool), ApiError> {
    let _one_at_a_time = request
        .message_id
        .as_deref()
        .map(|id| worker.submissions.lock(id));
    let trusted = host.trusted();
    // A tenant of this host is handed over here; anyone else goes to the node the outbox would
    // choose now (past a relay it counts unreachable).
    // Which relays the outbox routes round, read once for all the recipients.
    let unreachable = host.unreachable();
    let next_hop = |to: &OrganCode| match host.route_avoiding(to, &unreachable).0 {
        crate::routing::Hop::Peer(node) => Some(node),
        crate::routing::Hop::Local(_) => None,
    };
    let composer = worker.composer(
        &trusted,
        &host.scratch,
        host.config.limits.default_expiry_days,
        &next_hop,
    );
    if let Some((header, records)) = composer.already_submitted(request)? {
        return Ok((header, records, false));
    }
    host.check_routes(request)?;
    let uploaded = matches!(files, Files::Uploaded);
    let (header, mut records) = composer.compose(
        request,
        files,
        time::OffsetDateTime::now_utc(),
        &roles.event(EntryKind::Submitted, None),
    )?;
    // The clerk sees one copy per recipient; fan-out objects are how some of them travel.
    records.retain(|r| r.kind != vdx_protocol::wire::ObjectKind::FanOut);
    host.metrics.submitted(&worker.code, records.len());
    if uploaded {
        for file in &request.files {
            worker.uploads.remove(&worker.store, &file.upload);
        }
    }
    Ok((header, records, true))
}

/// The answer to a submission: 201 with its copies, or 200 with those already queued.
fn submitted(
    node: &Host,
    tenant: &Tenant,
    (header, records, created): (DispatchHeader, Vec<Record>, bool),
) -> Response<Body> {
    if created {
        node.wake_outbox.notify_one();
        for r in &records {
            tracing::info!(tenant = %tenant.code, id = %r.id, to = %r.to, message_id = %header.message_id, "dispatch submitted");
        }
    }
    let copies: Vec<_> = records
        .iter()
        .map(|r| View::of(r, Some(&header), false))
        .collect();
    json_response(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &json!({ "message_id": header.message_id, "copies": copies }),
    )
}

/// A JSON request body: 413 `too_large` past [`MAX_JSON`] bytes (what follows is read and dropped,
/// as for an upload, so that the answer reaches the client), 408 `timeout` when it stops arriving.
async fn read_json(body: Incoming, idle: Duration) -> Result<Vec<u8>, ApiError> {
    read_body(body, idle, MAX_JSON, "a JSON request body").await
}

/// A request body of at most `limit` bytes (`what` names it in the 413 answer).
async fn read_body(
    mut body: Incoming,
    idle: Duration,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    while let Some(frame) = next_frame(&mut body, idle).await? {
        let frame = frame.map_err(|e| ApiError::bad(format!("reading the request: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > limit {
            discard_rest(body, limit as u64, idle).await;
            return Err(ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("{what} is limited to {limit} bytes"),
            ));
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}

/// The opened package (tar: `dispatch.json`, then the files) of a registered incoming dispatch,
/// streamed as it is decrypted. A failure mid-way (which would mean the stored object changed
/// since it was verified) aborts the body, so the client never takes it for complete.
async fn package(
    tenant: Arc<Tenant>,
    record: Record,
    roles: Roles,
) -> Result<Response<Body>, ApiError> {
    let flow = crate::tenant::workflow::Flow::of(&record.notices);
    if let (crate::tenant::workflow::State::Recalled, Some(recall)) = (flow.state, &flow.recall) {
        let when = time::OffsetDateTime::from_unix_timestamp(recall.time)
            .ok()
            .and_then(vdx_protocol::utc::format)
            .unwrap_or_default();
        return Err(ApiError(
            StatusCode::GONE,
            "recalled",
            format!(
                "dispatch {} was recalled by {} ({when}: {}); its files were destroyed",
                record.id, record.from, recall.reason
            ),
        ));
    }
    if record.state != DispatchState::Registered {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "not_registered",
            format!(
                "dispatch {} is {}: only registered incoming dispatches can be fetched",
                record.id,
                record.status()
            ),
        ));
    }
    // Checked against its digest before anything is released: a deleted or changed object is
    // `damaged`, named, not a decryption failure half-way through the body.
    let worker = tenant.clone();
    let id = record.id;
    let object =
        blocking(move || worker.store.checked_object(&record).map(|c| (c, record))).await?;
    let (object, record) = match object {
        (Ok(object), record) => (object, record),
        (Err(problem), _) => {
            tracing::error!(%id, %problem, "a stored object is damaged");
            return Err(damaged(id, &problem));
        }
    };
    // Recorded before the first byte leaves: no read of the documents goes unrecorded.
    tenant.store.record(
        &roles
            .event(EntryKind::Fetched, Some(record.id.0))
            .field("from", &record.from),
    )?;
    Ok(streamed("application/x-tar", move |writer| {
        Opener::new(&tenant.enc_cert, &tenant.enc_key)
            .and_then(|o| o.open(BufReader::new(object), writer))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }))
}

/// The entries of `tenant`'s ledger about copy `id`, oldest first: what a clerk's detail view shows
/// of its history (the officer's audit routes give the proofs).
fn ledger_about(
    tenant: &Tenant,
    id: MessageId,
) -> Result<Vec<crate::tenant::audit::LogRow>, ApiError> {
    let mut rows = Vec::new();
    for index in tenant.store.ledger_entries_about(id.0)? {
        let bytes = tenant.store.ledger_entry(index)?;
        let entry = vdx_protocol::ledger::Entry::parse(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("ledger entry {index}: {e}")))?;
        rows.push(crate::tenant::audit::LogRow::of(&entry));
    }
    Ok(rows)
}

/// The answer for a dispatch whose stored object cannot be used (`vdx check` names them all).
fn damaged(id: MessageId, problem: &Problem) -> ApiError {
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "damaged",
        format!("the stored object of dispatch {id} is damaged: {problem}"),
    )
}

/// `POST /v1/check`: every stored object against its digest and every record against the
/// ledger (see [`crate::store::check`]); the run is recorded as an `audit` entry.
async fn check(tenant: Arc<Tenant>, roles: Roles) -> Result<Response<Body>, ApiError> {
    let report = blocking(move || {
        let report = tenant.store.check()?;
        tenant
            .store
            .record(&report.event(roles.actor()).field("role", roles.name))?;
        for d in &report.damaged {
            let problems: Vec<String> = d.problems.iter().map(ToString::to_string).collect();
            tracing::error!(id = %d.id, problems = %problems.join("; "), "damaged");
        }
        Ok::<_, StoreError>(report)
    })
    .await?;
    Ok(json_response(StatusCode::OK, &report))
}

/// A response whose body `write` produces on a blocking thread; an error aborts the body, so the
/// client never takes a cut answer for a whole one.
fn streamed(
    content_type: &'static str,
    write: impl FnOnce(&mut ChannelWriter) -> Result<(), String> + Send + 'static,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter(tx.clone());
        if let Err(e) = write(&mut writer) {
            let _ = tx.blocking_send(Err(io::Error::other(e)));
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .body(BodyExt::boxed(ChannelBody(rx)))
        .unwrap_or_else(|_| Response::new(empty()))
}

/// The officer's ledger endpoints (`docs/local-api.md`, "Audit"); each answer is recorded in the
/// ledger by [`crate::tenant::audit::Auditor`].
async fn audit(
    node: Arc<Host>,
    tenant: Arc<Tenant>,
    what: &str,
    query: &Query,
    roles: Roles,
) -> Result<Response<Body>, ApiError> {
    let actor = roles.actor();
    match what {
        "bundle" => {
            let (from, to) = (query.number("from")?.unwrap_or(0), query.number("to")?);
            let parts = blocking(move || tenant.auditor().bundle(from, to, &actor)).await?;
            Ok(json_response(StatusCode::OK, &parts))
        }
        "entries" => {
            let from = query.number("from")?.unwrap_or(0);
            let to = query
                .number("to")?
                .ok_or_else(|| ApiError::bad("entries needs to=N"))?;
            if from > to || to > tenant.store.durable_ledger_size() {
                return Err(ApiError::bad(format!(
                    "the range {from}..{to} is not within the ledger"
                )));
            }
            Ok(streamed("application/octet-stream", move |writer| {
                let mut out = io::BufWriter::with_capacity(256 * 1024, writer);
                tenant
                    .auditor()
                    .write_entries(from, to, &mut out)
                    .and_then(|()| io::Write::flush(&mut out).map_err(AuditError::from))
                    .map_err(|e| e.to_string())
            }))
        }
        "prove" => {
            let id = query
                .get("id")
                .ok_or_else(|| ApiError::bad("prove needs id=<transfer id or message id>"))?
                .to_owned();
            let proofs = blocking(move || tenant.auditor().prove(&id, &actor)).await?;
            Ok(json_response(StatusCode::OK, &json!({ "proofs": proofs })))
        }
        "log" => {
            let filter = LogFilter::parse(|name| query.get(name))?;
            let rows = blocking(move || tenant.auditor().log(&filter, &actor)).await?;
            Ok(json_response(StatusCode::OK, &rows))
        }
        "witness" => {
            let reports = crate::tenant::witness::check_peers(&node, &tenant).await?;
            Ok(json_response(StatusCode::OK, &reports))
        }
        _ => Err(ApiError::not_found(format!("no audit endpoint {what}"))),
    }
}

/// Runs store or ledger work on a blocking thread (it reads and fsyncs), its error answered as
/// that error's `ApiError`.
async fn blocking<T: Send + 'static, E: Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    ApiError: From<E>,
{
    Ok(tokio::task::spawn_blocking(f).await??)
}

/// Query parameters (`?from=0&to=10`), percent-decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad(format!("{key} must be a number, not {v:?}")))
            })
            .transpose()
    }
}

/// Bytes written here become body frames.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Frame<Bytes>, io::Error>>);

impl io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Frame::data(Bytes::copy_from_slice(buf))))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A response body fed by [`ChannelWriter`].
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx)
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn empty() -> Body {
    full(Bytes::new())
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(bytes))
        .unwrap_or_else(|_| Response::new(empty()))
}

/// A dispatch as clients see it (`docs/local-api.md`, "Dispatch view").
#[derive(Serialize)]
struct View<'a> {
    id: String,
    direction: Direction,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    from: &'a str,
    to: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notation: Option<&'a str>,
    urgency: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    classification: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incoming_number: Option<String>,
    size: u64,
    sealed_sha256: &'a str,
    created: u64,
    expires: u64,
    attempts: u32,
    delivered: bool,
    /// For a copy sent and not yet delivered: the agency whose node holds it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    held_by: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    notices: &'a [crate::store::NoticeSeen],
    /// Where the copy stands in the workflow (`docs/status-notices.md`), once it arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assigned_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recall: Option<serde_json::Value>,
    /// The notices the recipient's clerk may send now (incoming only).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_notices: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_date: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    overdue: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    business: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_for: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<&'a DispatchHeader>,
    /// This agency's ledger entries about the copy, oldest first (one dispatch's view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    ledger: Option<Vec<crate::tenant::audit::LogRow>>,
}

impl<'a> View<'a> {
    /// The view of `r`, with the whole header when `full`.
    fn of(r: &'a Record, header: Option<&'a DispatchHeader>, full: bool) -> Self {
        let h = header;
        let outgoing = r.direction == Direction::Outgoing;
        // The workflow once the copy arrived: registered here, or delivered (or answered) there.
        let arrived = match outgoing {
            true => r.delivery_receipt.is_some() || !r.notices.is_empty(),
            false => r.incoming_number.is_some(),
        };
        let flow = arrived.then(|| crate::tenant::workflow::Flow::of(&r.notices));
        Self {
            id: r.id.to_string(),
            direction: r.direction,
            status: r.status(),
            reason: r.reason(),
            from: r.from.as_str(),
            to: r.to.as_str(),
            message_id: h.map(|h| h.message_id.as_str()),
            subject: h.and_then(|h| h.subject.as_deref()),
            number: h.map(|h| h.code.number.as_str()),
            notation: h.map(|h| h.code.notation.as_str()),
            urgency: vdx_protocol::header::Priority::ALL
                .into_iter()
                .find(|p| p.code() == r.urgency)
                .map_or("unknown", |p| p.name()),
            classification: h.map(|h| h.classification.name()),
            incoming_number: r.incoming_number.map(|n| n.to_string()),
            size: r.size,
            sealed_sha256: &r.sealed_sha256,
            created: r.created,
            expires: r.expires,
            attempts: r.attempts,
            delivered: r.delivery_receipt.is_some(),
            held_by: match &r.state {
                DispatchState::Sent { held_by, .. } if r.delivery_receipt.is_none() => {
                    held_by.as_ref().map(OrganCode::as_str)
                }
                _ => None,
            },
            notices: &r.notices,
            workflow: flow.as_ref().map(|f| f.summary(outgoing)),
            assigned_to: flow.as_ref().and_then(|f| f.assigned_to.clone()),
            recall: flow
                .as_ref()
                .and_then(|f| f.recall.as_ref())
                .map(|r| json!({"reason": r.reason, "time": r.time, "answer": r.answer})),
            next_notices: flow
                .as_ref()
                .filter(|_| !outgoing)
                .map(crate::tenant::workflow::Flow::next_codes),
            due_date: h.and_then(|h| h.due_date.as_deref()),
            overdue: h.and_then(|h| h.due_date.as_deref()).map(|due| {
                let today = time::OffsetDateTime::now_utc()
                    .to_offset(crate::tenant::compose::VIETNAM)
                    .date()
                    .to_string();
                today.as_str() > due && !flow.as_ref().is_some_and(|f| f.state.is_final())
            }),
            business: h.and_then(|h| match h.business {
                vdx_protocol::header::Business::Update => Some("update"),
                vdx_protocol::header::Business::Replacement => Some("replacement"),
                _ => None,
            }),
            response_for: h
                .and_then(|h| h.response_for.as_ref())
                .map(|ids| ids.iter().map(ToString::to_string).collect()),
            header: h.filter(|_| full),
            ledger: None,
        }
    }
}
