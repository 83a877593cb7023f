//! A client of the node's local socket API (`docs/local-api.md`): HTTP/1.1 over `HOME/vdxd.sock`.
//! `vdx` is one client among others (office systems use the same API).
//!
//! A client made for a tenant (`vdx --tenant CODE`) sends every route that acts for one agency to
//! `/v1/tenants/{code}/...`; without one it uses the short `/v1/...` form, which the daemon
//! answers for the one agency the caller has a role in (so a one-agency node needs no tenant).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

use vdx_node::api::SOCKET_NAME;
use vdx_protocol::OrganCode;

/// The routes under `/v1/` that act for the host, not for one tenant (`docs/local-api.md`): never
/// given a tenant's prefix.
const HOST_ROUTES: [&str; 4] = ["health", "metrics", "reload", "tenants"];

/// A connection-per-request client (requests are few and the socket is local).
pub(crate) struct Client {
    socket: PathBuf,
    home: PathBuf,
    /// The agency the tenant routes act for; the caller's only one when `None`.
    tenant: Option<OrganCode>,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// A client for the daemon of `home`, its tenant routes in the short form (the caller's
    /// only agency there).
    pub(crate) fn new(home: &Path) -> Result<Self> {
        Self::for_tenant(home, None)
    }

    /// A client for the daemon of `home` acting for agency `tenant` (`vdx --tenant`), or for the
    /// caller's only one when `None`.
    pub(crate) fn for_tenant(home: &Path, tenant: Option<&OrganCode>) -> Result<Self> {
        Ok(Self {
            socket: home.join(SOCKET_NAME),
            home: home.to_owned(),
            tenant: tenant.cloned(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    /// Whether a daemon answers on the socket.
    pub(crate) fn is_running(&self) -> bool {
        std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
    }

    /// GET, answering JSON.
    pub(crate) fn get(&self, path: &str) -> Result<Value> {
        let body = self.send(Method::GET, path, None, full(Bytes::new()))?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// GET, answering JSON and the `x-total-count` header (how many a paged list matches in all),
    /// when the daemon sends one.
    pub(crate) fn get_counted(&self, path: &str) -> Result<(Value, Option<u64>)> {
        self.runtime.block_on(async {
            let response = self
                .request(Method::GET, path, None, &[], full(Bytes::new()))
                .await?;
            let status = response.status();
            let total = response
                .headers()
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let bytes = response.into_body().collect().await?.to_bytes();
            if !status.is_success() {
                return Err(api_error(status, &bytes));
            }
            Ok((serde_json::from_slice(&bytes)?, total))
        })
    }

    /// GET an answer that does not end (`text/event-stream`), with `headers`, handing each chunk
    /// to `each` as it arrives, until the daemon ends it (`Ok`) or `each` answers `false`. `each`
    /// is first called with no bytes once the daemon has answered `200`: the stream is open.
    pub(crate) fn stream(
        &self,
        path: &str,
        headers: &[(&str, String)],
        mut each: impl FnMut(&[u8]) -> bool,
    ) -> Result<()> {
        self.runtime.block_on(async {
            let response = self
                .request(Method::GET, path, None, headers, full(Bytes::new()))
                .await?;
            let status = response.status();
            let mut body = response.into_body();
            if status != StatusCode::OK {
                let bytes = body.collect().await?.to_bytes();
                return Err(api_error(status, &bytes));
            }
            if !each(&[]) {
                return Ok(());
            }
            while let Some(frame) = body.frame().await {
                let frame = frame.context("the daemon broke off the stream")?;
                if let Ok(data) = frame.into_data() {
                    if !each(&data) {
                        break;
                    }
                }
            }
            Ok(())
        })
    }

    /// POST a JSON body, answering JSON.
    pub(crate) fn post(&self, path: &str, value: &Value) -> Result<Value> {
        let bytes = Bytes::from(serde_json::to_vec(value)?);
        let body = self.send(Method::POST, path, Some("application/json"), full(bytes))?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// PUT with an empty body, answering JSON.
    pub(crate) fn put(&self, path: &str) -> Result<Value> {
        let body = self.send(Method::PUT, path, None, full(Bytes::new()))?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// DELETE, answering JSON.
    pub(crate) fn delete(&self, path: &str) -> Result<Value> {
        let body = self.send(Method::DELETE, path, None, full(Bytes::new()))?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// POST the bytes read from `content`, answering JSON.
    pub(crate) fn post_stream(&self, path: &str, content: Box<dyn Read + Send>) -> Result<Value> {
        let body = self.send(
            Method::POST,
            path,
            Some("application/octet-stream"),
            ReadBody(content).boxed_unsync(),
        )?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// GET, writing the answer's bytes to `out` as they come.
    pub(crate) fn download(&self, path: &str, out: &mut dyn Write) -> Result<u64> {
        self.runtime.block_on(async {
            let response = self
                .request(Method::GET, path, None, &[], full(Bytes::new()))
                .await?;
            let status = response.status();
            let mut body = response.into_body();
            if status != StatusCode::OK {
                let bytes = body.collect().await?.to_bytes();
                return Err(api_error(status, &bytes));
            }
            let mut total = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.context("the daemon broke off the download")?;
                if let Ok(data) = frame.into_data() {
                    out.write_all(&data)?;
                    total += data.len() as u64;
                }
            }
            Ok(total)
        })
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: BoxBody,
    ) -> Result<Bytes> {
        self.runtime.block_on(async {
            let response = self.request(method, path, content_type, &[], body).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            if !status.is_success() {
                return Err(api_error(status, &bytes));
            }
            Ok(bytes)
        })
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        headers: &[(&str, String)],
        body: BoxBody,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            anyhow!(
                "vdxd is not running for {} (cannot connect to {}: {e})",
                self.home.display(),
                self.socket.display()
            )
        })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(route(self.tenant.as_ref(), path))
            .header("host", "vdxd");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        sender
            .send_request(request.body(body)?)
            .await
            .context("vdxd broke off the request")
    }
}

/// `path` as sent for `tenant`: a route that acts for one agency gets the prefix
/// `/v1/tenants/{code}/`; host routes, and every route without a tenant, stay as they are.
fn route(tenant: Option<&OrganCode>, path: &str) -> String {
    let Some(code) = tenant else {
        return path.to_owned();
    };
    let Some(rest) = path.strip_prefix("/v1/") else {
        return path.to_owned();
    };
    let first = rest.split(['/', '?']).next().unwrap_or_default();
    if HOST_ROUTES.contains(&first) {
        path.to_owned()
    } else {
        format!("/v1/tenants/{code}/{rest}")
    }
}

/// The API's error answer as one line: its message and code.
fn api_error(status: StatusCode, body: &[u8]) -> anyhow::Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().and_then(|v| v.get("error")) {
        // A refusal named by its code alone, its message beside it (a zone refused: the codes of
        // docs/directory-zones.md rule 10).
        Some(Value::String(code)) => anyhow!(
            "{} ({code})",
            parsed
                .as_ref()
                .and_then(|v| v["message"].as_str())
                .unwrap_or("refused")
        ),
        Some(e) => anyhow!(
            "{} ({})",
            e["message"].as_str().unwrap_or("error"),
            e["code"].as_str().unwrap_or("unknown")
        ),
        None => anyhow!("the daemon answered {status}"),
    }
}

type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

fn full(bytes: Bytes) -> BoxBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A request body read from a file as it is sent (files may be larger than memory).
struct ReadBody(Box<dyn Read + Send>);

impl Body for ReadBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let mut buf = vec![0u8; 256 * 1024];
        match self.0.read(&mut buf) {
            Ok(0) => Poll::Ready(None),
            Ok(n) => {
                buf.truncate(n);
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

/// Checks that a value from the daemon is an object with `key`; a clear error otherwise.
pub(crate) fn field<'a>(value: &'a Value, key: &str) -> Result<&'a Value> {
    match value.get(key) {
        Some(v) => Ok(v),
        None => bail!("the daemon's answer has no {key:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_prefixes_its_routes_and_leaves_the_hosts_alone() {
        let code: OrganCode = "000.01.41.H41".parse().unwrap();
        let t = Some(&code);
        assert_eq!(route(None, "/v1/inbox"), "/v1/inbox");
        assert_eq!(route(t, "/v1/inbox"), "/v1/tenants/000.01.41.H41/inbox");
        assert_eq!(
            route(t, "/v1/audit/log?since=2026-01-01"),
            "/v1/tenants/000.01.41.H41/audit/log?since=2026-01-01"
        );
        assert_eq!(
            route(t, "/v1/dispatches/ab/package"),
            "/v1/tenants/000.01.41.H41/dispatches/ab/package"
        );
        for host in ["/v1/health", "/v1/metrics", "/v1/reload", "/v1/tenants"] {
            assert_eq!(route(t, host), host);
        }
        assert_eq!(
            route(t, "/v1/tenants/000.02.41.H41"),
            "/v1/tenants/000.02.41.H41"
        );
    }
}
