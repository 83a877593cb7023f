//! Tenants do not see each other (docs/local-api.md, "Tenants", T1-T4), route by route: every path
//! of `docs/openapi.yaml` is called by a user of one hosted agency with another's code and real
//! ids, and answers as if that agency did not exist. The same table checks the document against
//! the server: every documented route exists, undocumented ones do not.
//!
//! Requests are made by `curl` over the node's socket, run under `setpriv` as the uid the test
//! names: the node takes its roles from the socket peer's uid, as for any local user.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use vdx_tests::daemon::{homes, wait_status, wait_until, Daemon};
use vdx_tests::Session;

const G22: &str = "000.00.00.G22"; // outside, sends to B and receives from it
const H41: &str = "000.00.00.H41"; // the host and its own agency
const XA: &str = "000.01.41.H41"; // tenant A
const XB: &str = "000.02.41.H41"; // tenant B, whose data A's user must not reach
const XZ: &str = "000.09.41.H41"; // served nowhere: how a tenant that does not exist answers
const A_USER: u32 = 1501; // clerk and officer of A only
const B_USER: u32 = 1502; // clerk and officer of B only
const GROUP: u32 = 4243; // the socket's group, that the users reach it through
const ROOT: u32 = 0; // the home's owner: host admin, admin of H41, nothing in A or B
const B_NAME: &str = "Xã Bình Minh";
const B_SUBJECT: &str = "V/v bí mật của xã Bình Minh";
const B_OUT_SUBJECT: &str = "V/v báo cáo riêng của xã Bình Minh";
/// Ids that were never issued anywhere: a dispatch id, a message id, an upload id.
const FAKE_ID: &str = "0123456789abcdef0123456789abcdef";
const FAKE_MESSAGE: &str = "00000000-0000-4000-8000-000000000000";
const FAKE_UPLOAD: &str = "00000000000000000000000000000000000000000000000000000000000000ff";
const LIMIT: Duration = Duration::from_secs(60);

/// One answer of the API.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The error code of an error answer.
    fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// `METHOD PATH` on h41's socket as `uid` (with `body`, if any), by `curl` under `setpriv`.
fn call(s: &Session, uid: u32, method: &str, path: &str, body: Option<&[u8]>) -> Answer {
    let mut args: Vec<String> = vdx_tests::as_root()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    args.extend([
        "setpriv".into(),
        format!("--reuid={uid}"),
        format!("--regid={GROUP}"),
        "--clear-groups".into(),
        "curl".into(),
        "-sS".into(),
        "-g".into(),
        "--unix-socket".into(),
        "h41/vdxd.sock".into(),
        "-X".into(),
        method.into(),
        "-o".into(),
        "-".into(),
        "-w".into(),
        "\n%{http_code}".into(),
    ]);
    if body.is_some() {
        args.extend(["--data-binary".into(), "@-".into()]);
        args.extend(["-H".into(), "content-type: application/json".into()]);
    }
    args.push(format!("http://vdxd{path}"));
    let mut child = Command::new(&args[0])
        .args(&args[1..])
        .current_dir(s.dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(body.unwrap_or_default()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "curl {method} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    Answer {
        status: status.parse().unwrap(),
        body: body.to_owned(),
    }
}

/// How the isolation test calls one documented route.
#[derive(Clone, Copy)]
enum Kind {
    /// Acts for the host (T1).
    Host,
    /// Acts for one tenant; `query` is appended, `{id}` filled with a dispatch id. `ids` says
    /// whether the call names another tenant's ids (so it must be `not_found` in the caller's
    /// own tenant), `body` is the request's body.
    Tenant {
        query: &'static str,
        ids: bool,
        body: Body,
    },
}

/// The body a tenant route is called with.
#[derive(Clone, Copy, PartialEq)]
enum Body {
    None,
    /// The bytes of B's twin upload.
    UploadBytes,
    /// A dispatch request naming B's other pending upload and B's message id.
    Dispatch,
    /// A dispatch request followed by its file (`POST /v1/dispatches/stream`).
    Streamed,
    /// A JSON body naming no id: a notice, a recall, an answer.
    Json(&'static str),
}

/// Every documented route, as `(method, openapi path, how it is called)`. A route added to the
/// API and `docs/openapi.yaml` must be added here, with its isolation check.
const ROUTES: &[(&str, &str, Kind)] = &[
    ("GET", "/v1/health", Kind::Host),
    ("GET", "/v1/metrics", Kind::Host),
    ("POST", "/v1/reload", Kind::Host),
    ("GET", "/v1/directory/zones", Kind::Host),
    ("POST", "/v1/directory/zones", Kind::Host),
    ("GET", "/v1/tenants", Kind::Host),
    ("PUT", "/v1/tenants/{tenant}", Kind::Host),
    ("DELETE", "/v1/tenants/{tenant}", Kind::Host),
    ("GET", "/v1/status", tenant("", false, Body::None)),
    (
        "POST",
        "/v1/restore/acknowledge",
        tenant("", false, Body::None),
    ),
    ("POST", "/v1/uploads", tenant("", false, Body::UploadBytes)),
    ("POST", "/v1/dispatches", tenant("", true, Body::Dispatch)),
    ("GET", "/v1/outbox", tenant("", false, Body::None)),
    ("GET", "/v1/inbox", tenant("", false, Body::None)),
    ("GET", "/v1/dispatches/{id}", tenant("", true, Body::None)),
    (
        "GET",
        "/v1/dispatches/{id}/package",
        tenant("", true, Body::None),
    ),
    ("GET", "/v1/audit/bundle", tenant("", false, Body::None)),
    (
        "GET",
        "/v1/audit/entries",
        tenant("?to=1", false, Body::None),
    ),
    (
        "GET",
        "/v1/audit/prove",
        tenant("?id={id}", true, Body::None),
    ),
    (
        "GET",
        "/v1/audit/log",
        tenant("?org={org}", false, Body::None),
    ),
    ("GET", "/v1/audit/witness", tenant("", false, Body::None)),
    ("POST", "/v1/check", tenant("", false, Body::None)),
    (
        "POST",
        "/v1/dispatches/{id}/notices",
        tenant("", true, Body::Json(r#"{"code":"03"}"#)),
    ),
    (
        "POST",
        "/v1/dispatches/{id}/recall",
        tenant("", true, Body::Json(r#"{"reason":"gửi nhầm"}"#)),
    ),
    (
        "POST",
        "/v1/dispatches/{id}/recall-answer",
        tenant("", true, Body::Json(r#"{"agree":false,"reason":"không"}"#)),
    ),
    (
        "GET",
        "/v1/events",
        tenant("?after=0&follow=false", false, Body::None),
    ),
    ("GET", "/v1/directory", Kind::Host),
    // Last: it queues a dispatch in A's outbox, which the lists above expect empty.
    (
        "POST",
        "/v1/dispatches/stream",
        tenant("", false, Body::Streamed),
    ),
];

const fn tenant(query: &'static str, ids: bool, body: Body) -> Kind {
    Kind::Tenant { query, ids, body }
}

/// The `(METHOD, path)` pairs of `docs/openapi.yaml`, parsed with a YAML parser.
fn documented() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml"))
            .unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    let paths = docs[0]["paths"].as_hash().unwrap();
    let mut all = BTreeSet::new();
    for (path, item) in paths {
        for (method, _) in item.as_hash().unwrap() {
            let method = method.as_str().unwrap();
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method) {
                all.insert((method.to_uppercase(), path.as_str().unwrap().to_owned()));
            }
        }
    }
    all
}

/// Fails when `ROUTES` and `docs/openapi.yaml` differ: a route added to the API and its document
/// without an isolation check fails the tests below.
fn the_table_covers_exactly_the_documented_routes() {
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(table.len(), ROUTES.len(), "a route twice in the table");
    assert_eq!(
        table,
        documented(),
        "docs/openapi.yaml and this test's ROUTES differ: give each documented route its \
         isolation check"
    );
}

/// What B holds, as its own user sees it.
struct Bs {
    /// The dispatch g22 sent B, registered in B's inbox.
    incoming: String,
    incoming_message: String,
    /// B's dispatch to g22, in B's outbox.
    outgoing: String,
    outgoing_message: String,
    /// An upload of B's that no dispatch used yet.
    upload: String,
    /// Another, and its bytes: A's user uploads the same bytes.
    twin: String,
    twin_bytes: Vec<u8>,
}

impl Bs {
    /// Everything of B that must appear in no answer to A's user (B's code aside: see
    /// [`same_as_nonexistent`]).
    fn secrets(&self) -> Vec<&str> {
        vec![
            B_NAME,
            B_SUBJECT,
            B_OUT_SUBJECT,
            &self.incoming,
            &self.incoming_message,
            &self.outgoing,
            &self.outgoing_message,
            &self.upload,
            &self.twin,
        ]
    }
}

/// `tenant add` of `code` at the running h41, `users` its clerks and officers.
fn add_tenant(s: &Session, code: &str, name: &str, users: &[u32]) {
    let mut args = vec![
        "--home".to_owned(),
        "h41".into(),
        "tenant".into(),
        "add".into(),
        "--org".into(),
        code.into(),
        "--name".into(),
        name.into(),
        "--ca".into(),
        "ca".into(),
    ];
    for uid in users {
        args.extend(["--clerk".into(), uid.to_string()]);
        args.extend(["--officer".into(), uid.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s.vdx(&args).ok();
}

/// h41 hosting its own agency, A and B; g22 outside. g22 has sent B a dispatch (registered), B's
/// user has sent g22 one and left an upload pending, and the host's own agency has sent g22 one.
fn host_with_two_tenants(s: &Session) -> (Daemon, Daemon, Bs, String) {
    homes(s, &[("g22", G22), ("h41", H41)]);
    let host = Daemon::start(s, "h41");
    let outside = Daemon::start(s, "g22");
    s.sh(&format!(
        "chmod o+x . h41 && {} chgrp {GROUP} h41/vdxd.sock",
        vdx_tests::as_root()
    ))
    .ok();
    add_tenant(s, XA, "Xã An Hòa", &[A_USER]);
    add_tenant(s, XB, B_NAME, &[B_USER]);
    let exported = s
        .vdx(&["--home", "h41", "directory", "export", "--tenant", XB])
        .ok();
    s.write("xb.json", exported.stdout.as_bytes());
    s.vdx(&["--home", "g22", "directory", "import", "xb.json"])
        .ok();

    // Into B's inbox: g22's dispatch, registered.
    s.write("cv.txt", "Kính gửi: UBND xã Bình Minh\n".as_bytes());
    let sent = s
        .vdx(&[
            "--home",
            "g22",
            "send",
            "--json",
            "--to",
            XB,
            "--subject",
            B_SUBJECT,
            "--number",
            "11",
            "--notation",
            "VPCP",
            "cv.txt",
        ])
        .ok()
        .json();
    let incoming = sent["copies"][0]["id"].as_str().unwrap().to_owned();
    let incoming_message = sent["message_id"].as_str().unwrap().to_owned();
    wait_until(s, LIMIT, "registered at B", || {
        let shown = call(
            s,
            B_USER,
            "GET",
            &format!("/v1/tenants/{XB}/dispatches/{incoming}"),
            None,
        );
        shown.status == 200 && shown.json()["status"] == "registered"
    });

    // Into B's outbox: its user's dispatch to g22; and one upload left pending.
    let used = call(
        s,
        B_USER,
        "POST",
        &format!("/v1/tenants/{XB}/uploads"),
        Some("Báo cáo của xã Bình Minh\n".as_bytes()),
    );
    assert_eq!(used.status, 201, "{used:?}");
    let request = json!({
        "to": [G22], "subject": B_OUT_SUBJECT, "number": "3", "notation": "UBND",
        "urgency": "thuong", "classification": "none",
        "files": [{ "name": "bc.txt", "upload": used.json()["upload"] }],
    });
    let submitted = call(
        s,
        B_USER,
        "POST",
        &format!("/v1/tenants/{XB}/dispatches"),
        Some(request.to_string().as_bytes()),
    );
    assert_eq!(submitted.status, 201, "{submitted:?}");
    let submitted = submitted.json();
    let outgoing = submitted["copies"][0]["id"].as_str().unwrap().to_owned();
    let outgoing_message = submitted["message_id"].as_str().unwrap().to_owned();
    let pending = |bytes: &[u8]| {
        let pending = call(
            s,
            B_USER,
            "POST",
            &format!("/v1/tenants/{XB}/uploads"),
            Some(bytes),
        );
        assert_eq!(pending.status, 201, "{pending:?}");
        pending.json()["upload"].as_str().unwrap().to_owned()
    };
    let upload = pending("Dự thảo của xã Bình Minh, chưa gửi\n".as_bytes());
    let twin_bytes = "Phụ lục của xã Bình Minh\n".as_bytes().to_vec();
    let twin = pending(&twin_bytes);

    // The host's own agency's dispatch, for the document check as its admin.
    let own = s.send("h41", G22, "5", "cv.txt", &[]).ok().json();
    let own = own["copies"][0]["id"].as_str().unwrap().to_owned();
    wait_status(s, LIMIT, "h41", &own, "delivered");
    wait_status(s, LIMIT, "g22", &outgoing, "registered");
    let bs = Bs {
        incoming,
        incoming_message,
        outgoing,
        outgoing_message,
        upload,
        twin,
        twin_bytes,
    };
    (host, outside, bs, own)
}

/// A streamed submission to G22 of one small file: the request's length, the request, the file.
fn streamed_dispatch() -> Vec<u8> {
    let file = b"du thao gui kem";
    let sha = {
        use sha2::Digest as _;
        vdx_protocol::hex::encode(sha2::Sha256::digest(file).as_slice())
    };
    let request = json!({
        "to": [G22], "subject": "V/v thử", "number": "8", "notation": "UBND",
        "urgency": "thuong", "classification": "none",
        "files": [{ "name": "a.txt", "upload": sha, "size": file.len() }],
    })
    .to_string();
    let mut body = (request.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(request.as_bytes());
    body.extend_from_slice(file);
    body
}

/// The path of `route` with `{id}`, `{org}` filled, the query appended, under `prefix` (`/v1`
/// or `/v1/tenants/CODE`).
fn path_of(route: &str, query: &str, prefix: &str, id: &str, org: &str) -> String {
    let rest = route.strip_prefix("/v1").unwrap();
    format!("{prefix}{rest}{query}")
        .replace("{id}", id)
        .replace("{org}", org)
}

/// The body of a call of kind `body`, naming `upload` and `message`.
fn body_of(body: Body, bs: &Bs, upload: &str, message: &str) -> Option<Vec<u8>> {
    match body {
        Body::None => None,
        Body::UploadBytes => Some(bs.twin_bytes.clone()),
        Body::Streamed => Some(streamed_dispatch()),
        Body::Json(json) => Some(json.as_bytes().to_vec()),
        Body::Dispatch => Some(
            json!({
                "to": [G22], "subject": "V/v thử", "number": "1", "notation": "UBND",
                "urgency": "thuong", "classification": "none", "message_id": message,
                "files": [{ "name": "a.txt", "upload": upload }],
            })
            .to_string()
            .into_bytes(),
        ),
    }
}

/// `answer`, to a request that named `real`, is the one a request naming `fake` (which never
/// existed) gets, but for the name itself: the caller learns nothing from it (T3).
fn same_as_nonexistent(answer: &Answer, nonexistent: &Answer, fake: &str, real: &str, what: &str) {
    assert_eq!(answer.status, nonexistent.status, "{what}: {answer:?}");
    assert_eq!(
        answer.body,
        nonexistent.body.replace(fake, real),
        "{what}: answered unlike a nonexistent {fake}"
    );
}

fn leaks<'a>(answer: &Answer, secrets: &[&'a str]) -> Vec<&'a str> {
    secrets
        .iter()
        .filter(|s| answer.body.contains(**s))
        .copied()
        .collect()
}

#[test]
fn every_route_answers_another_tenants_ids_lists_and_ledger_as_not_found() {
    the_table_covers_exactly_the_documented_routes();
    let s = Session::new();
    let (_host, _outside, bs, _) = host_with_two_tenants(&s);
    let secrets = bs.secrets();
    let mut with_code = secrets.clone();
    with_code.push(XB);
    let b_prefix = format!("/v1/tenants/{XB}");
    let z_prefix = format!("/v1/tenants/{XZ}");
    let a_prefix = format!("/v1/tenants/{XA}");
    let mut checked = 0;

    for (method, route, kind) in ROUTES {
        let Kind::Tenant { query, ids, body } = *kind else {
            continue;
        };
        let what = format!("{method} {route}");
        // B's own user reaches B's data at these paths: the ids are real.
        let (id, message) = if *route == "/v1/audit/prove" {
            (bs.incoming_message.as_str(), bs.incoming_message.as_str())
        } else {
            (bs.incoming.as_str(), bs.outgoing_message.as_str())
        };
        let upload = bs.upload.as_str();
        if ids && body == Body::None {
            let own = call(
                &s,
                B_USER,
                method,
                &path_of(route, query, &b_prefix, id, XB),
                None,
            );
            assert_eq!(own.status, 200, "{what} as B's user: {own:?}");
        }

        // A's user naming B: answered as for a tenant that does not exist.
        let b_body = body_of(body, &bs, upload, message);
        let at_b = call(
            &s,
            A_USER,
            method,
            &path_of(route, query, &b_prefix, id, XB),
            b_body.as_deref(),
        );
        assert_eq!(at_b.status, 404, "{what} at B: {at_b:?}");
        assert_eq!(at_b.code(), "not_found", "{what} at B: {at_b:?}");
        let at_z = call(
            &s,
            A_USER,
            method,
            &path_of(route, query, &z_prefix, id, XZ),
            b_body.as_deref(),
        );
        same_as_nonexistent(&at_b, &at_z, XZ, XB, &what);
        assert_eq!(
            leaks(&at_b, &secrets),
            Vec::<&str>::new(),
            "{what}: {at_b:?}"
        );

        // A's user with B's ids in its own tenant, short and long form: not found there, as
        // ids that were never issued are.
        for prefix in ["/v1", a_prefix.as_str()] {
            let path = path_of(route, query, prefix, id, XB);
            let real = call(&s, A_USER, method, &path, b_body.as_deref());
            let where_ = format!("{what} as {path}");
            // Uploading the bytes of B's upload, A's user is told their SHA-256, which it knows.
            // Errors echo the ids the caller named (compared below with ids never issued).
            let named = [id, message, upload];
            let secrets: Vec<&str> = secrets
                .iter()
                .filter(|s| {
                    let echoed = ids && named.contains(s);
                    let own_bytes = body == Body::UploadBytes && **s == bs.twin;
                    !echoed && !own_bytes
                })
                .copied()
                .collect();
            let with_code: Vec<&str> = secrets.iter().copied().chain([XB]).collect();
            assert_eq!(
                leaks(&real, &secrets),
                Vec::<&str>::new(),
                "{where_}: {real:?}"
            );
            if ids {
                let (fake_id, fake_message) = if *route == "/v1/audit/prove" {
                    (FAKE_MESSAGE, FAKE_MESSAGE)
                } else {
                    (FAKE_ID, FAKE_MESSAGE)
                };
                let fake = call(
                    &s,
                    A_USER,
                    method,
                    &path_of(route, query, prefix, fake_id, XB),
                    body_of(body, &bs, FAKE_UPLOAD, fake_message).as_deref(),
                );
                let expected = match body {
                    Body::Dispatch => (422, "unknown_upload"),
                    _ if *route == "/v1/audit/prove" => (400, "bad_request"),
                    _ => (404, "not_found"),
                };
                assert_eq!(
                    (real.status, real.code().as_str()),
                    expected,
                    "{where_}: {real:?}"
                );
                let normalised = fake
                    .body
                    .replace(fake_id, id)
                    .replace(FAKE_UPLOAD, upload)
                    .replace(fake_message, message);
                assert_eq!(real.body, normalised, "{where_}: unlike ids never issued");
            } else {
                // It acts for A: answered for A, with A's data alone.
                assert_eq!(
                    leaks(&real, &with_code),
                    Vec::<&str>::new(),
                    "{where_}: {real:?}"
                );
                let expected = match *route {
                    "/v1/restore/acknowledge" => 403, // A's user is no admin of A
                    "/v1/uploads" | "/v1/dispatches/stream" => 201,
                    _ => 200,
                };
                assert_eq!(real.status, expected, "{where_}: {real:?}");
                if ["/v1/inbox", "/v1/outbox"].contains(route) {
                    assert_eq!(real.json(), json!([]), "{where_}");
                }
            }
        }
        checked += 1;
    }
    // The upload A's user made of the same bytes is A's: B's is still there, B's alone.
    let dispatch = body_of(Body::Dispatch, &bs, &bs.twin, FAKE_MESSAGE).unwrap();
    let sent = call(
        &s,
        B_USER,
        "POST",
        &format!("{b_prefix}/dispatches"),
        Some(&dispatch),
    );
    assert_eq!(sent.status, 201, "B's upload is B's to use: {sent:?}");

    // The host routes: A's user manages no tenant, reads no metrics, and sees only A.
    for (method, route, kind) in ROUTES {
        let Kind::Host = kind else { continue };
        let what = format!("{method} {route}");
        let answers: Vec<Answer> = match *route {
            "/v1/tenants/{tenant}" => [XB, XZ, XA, H41]
                .iter()
                .map(|code| call(&s, A_USER, method, &format!("/v1/tenants/{code}"), None))
                .collect(),
            _ => vec![call(&s, A_USER, method, route, None)],
        };
        for answer in &answers {
            match *route {
                // Only the host's admins publish directory zones (any role reads them).
                "/v1/directory/zones" if *method == "POST" => {
                    assert_eq!(answer.status, 403, "{what}: {answer:?}");
                    assert_eq!(answer.code(), "forbidden", "{what}: {answer:?}");
                }
                "/v1/tenants/{tenant}" | "/v1/metrics" => {
                    assert_eq!(answer.status, 403, "{what}: {answer:?}");
                    assert_eq!(answer.code(), "forbidden", "{what}: {answer:?}");
                }
                "/v1/tenants" => assert_eq!(
                    answer.json(),
                    json!([{ "organ_code": XA, "name": "Xã An Hòa", "own": false }]),
                    "{what}"
                ),
                "/v1/health" => assert_eq!(answer.json()["organ_code"], XA, "{what}"),
                _ => assert_eq!(answer.status, 200, "{what}: {answer:?}"),
            }
            // Who is in the national directory (code and name) is no tenant's secret; the rest
            // is.
            let public: Vec<&str> = secrets.iter().copied().filter(|s| *s != B_NAME).collect();
            let secrets = match *route {
                "/v1/directory" => &public,
                _ => &with_code,
            };
            assert_eq!(
                leaks(answer, secrets),
                Vec::<&str>::new(),
                "{what}: {answer:?}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, ROUTES.len());
    // Removal was refused: B is still served, for its own user.
    let inbox = call(&s, B_USER, "GET", &format!("{b_prefix}/inbox"), None);
    assert_eq!(inbox.json().as_array().unwrap().len(), 1, "{inbox:?}");
    assert!(inbox.body.contains(B_SUBJECT));
}

#[test]
fn the_openapi_document_matches_the_server() {
    the_table_covers_exactly_the_documented_routes();
    let s = Session::new();
    let (_host, _outside, _, own) = host_with_two_tenants(&s);
    // The host's own agency's pending upload, for a dispatch request that gets past its checks.
    let upload = call(&s, ROOT, "POST", "/v1/uploads", Some(b"du thao"));
    assert_eq!(upload.status, 201, "{upload:?}");
    let upload = upload.json()["upload"].as_str().unwrap().to_owned();
    let prefix = format!("/v1/tenants/{H41}");

    for (method, route) in documented() {
        let kind = ROUTES
            .iter()
            .find(|(m, p, _)| *m == method && *p == route)
            .map(|r| r.2)
            .unwrap();
        let paths: Vec<(String, Option<Vec<u8>>)> = match kind {
            // Served and not removable: PUT answers it at once, DELETE refuses the own agency.
            Kind::Host => vec![(
                route.replace("{tenant}", if method == "PUT" { XA } else { H41 }),
                None,
            )],
            Kind::Tenant { query, body, .. } => {
                let body = match body {
                    Body::None => None,
                    Body::UploadBytes => Some(b"du thao".to_vec()),
                    Body::Streamed => Some(streamed_dispatch()),
                    Body::Json(json) => Some(json.as_bytes().to_vec()),
                    Body::Dispatch => Some(
                        json!({
                            "to": [G22], "subject": "V/v thử", "number": "9", "notation": "VP",
                            "urgency": "thuong", "classification": "none",
                            "files": [{ "name": "a.txt", "upload": upload }],
                        })
                        .to_string()
                        .into_bytes(),
                    ),
                };
                ["/v1", prefix.as_str()]
                    .iter()
                    .map(|p| (path_of(&route, query, p, &own, G22), body.clone()))
                    .collect()
            }
        };
        for (path, body) in paths {
            let answer = call(&s, ROOT, &method, &path, body.as_deref());
            assert!(
                answer.status != 404 && !answer.body.contains("no endpoint"),
                "documented {method} {route} ({path}) is not served: {answer:?}"
            );
            assert!(
                answer.status < 500,
                "{method} {path} as the host's admin: {answer:?}"
            );
        }
    }

    // Undocumented routes are not served, for anyone (docs/local-api.md, 5).
    for (method, path) in [
        ("GET", "/v1/nothing".to_owned()),
        ("DELETE", "/v1/inbox".to_owned()),
        ("POST", "/v1/health".to_owned()),
        ("PUT", "/v1/dispatches".to_owned()),
        ("GET", format!("/v1/dispatches/{own}/header")),
        ("GET", "/v1/audit/everything".to_owned()),
        ("GET", format!("{prefix}/tenants")),
        ("GET", format!("{prefix}/health")),
        ("GET", "/v2/health".to_owned()),
        ("GET", "/health".to_owned()),
    ] {
        for uid in [ROOT, A_USER] {
            let answer = call(&s, uid, method, &path, None);
            assert_eq!(
                (answer.status, answer.code().as_str()),
                (404, "not_found"),
                "undocumented {method} {path} as uid {uid}: {answer:?}"
            );
        }
    }
}

#[test]
fn a_host_admin_not_named_by_a_tenant_reads_none_of_its_documents() {
    let s = Session::new();
    homes(&s, &[("h41", H41)]);
    let _host = Daemon::start(&s, "h41");
    add_tenant(&s, XA, "Xã An Hòa", &[A_USER]);

    // The host's admin manages A: it is listed, and PUT answers it.
    let listed = call(&s, ROOT, "GET", "/v1/tenants", None);
    assert_eq!(
        listed.json(),
        json!([
            { "organ_code": H41, "name": "h41", "own": true },
            { "organ_code": XA, "name": "Xã An Hòa", "own": false },
        ])
    );
    let metrics = call(&s, ROOT, "GET", "/v1/metrics", None);
    assert_eq!(metrics.status, 200, "{metrics:?}");

    // But A's documents, lists, status and ledger are A's: as for a tenant that does not exist.
    for route in [
        "inbox",
        "outbox",
        "status",
        "audit/log",
        &format!("dispatches/{FAKE_ID}"),
    ] {
        let at_a = call(&s, ROOT, "GET", &format!("/v1/tenants/{XA}/{route}"), None);
        let at_z = call(&s, ROOT, "GET", &format!("/v1/tenants/{XZ}/{route}"), None);
        assert_eq!(
            (at_a.status, at_a.code().as_str()),
            (404, "not_found"),
            "{route}: {at_a:?}"
        );
        same_as_nonexistent(&at_a, &at_z, XZ, XA, route);
    }
    for (method, route) in [("POST", "check"), ("POST", "uploads")] {
        let at_a = call(&s, ROOT, method, &format!("/v1/tenants/{XA}/{route}"), None);
        assert_eq!(at_a.status, 404, "{route}: {at_a:?}");
    }
    // The short form acts for the host's own agency, the only one it has a role in.
    let own = call(&s, ROOT, "GET", "/v1/status", None);
    assert_eq!(own.status, 200, "{own:?}");
    assert!(!own.body.contains(XA), "{own:?}");
}
