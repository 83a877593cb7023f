//! The local socket API spoken to as a plain HTTP client would, over a real daemon's socket: a
//! refused upload is answered with its reason even to a client that sends its whole body before
//! reading, and `vdx send` checks its files against the node's limit before uploading.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;

use vdx_tests::daemon::tenant_files;
use vdx_tests::daemon::{homes, wait_until, Daemon};
use vdx_tests::Session;

const G22: &str = "000.00.00.G22";
const LIMIT: usize = 1 << 20;

/// A node g22 that accepts uploads of at most [`LIMIT`] bytes.
fn small_limit_node(s: &Session) -> Daemon {
    homes(s, &[("g22", G22)]);
    let path = s.path("g22/config.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let limited = config.replace(
        "max_dispatch_bytes = 4294967296",
        &format!("max_dispatch_bytes = {LIMIT}"),
    );
    assert_ne!(limited, config, "the config names the limit");
    std::fs::write(path, limited).unwrap();
    Daemon::start(s, "g22")
}

/// One HTTP/1.1 exchange on g22's socket: `head` (without the blank line) and all of `body` are
/// written before a byte of the answer is read, as simple clients do; returns the whole answer.
fn exchange(s: &Session, head: &str, body: &[u8]) -> String {
    let mut socket = UnixStream::connect(s.path("g22/vdxd.sock")).unwrap();
    write!(
        socket,
        "{head}\r\nhost: vdxd\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    if let Err(e) = socket.write_all(body) {
        panic!("the node must read the whole request before it answers: {e}");
    }
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn a_refused_upload_is_answered_to_a_client_that_sends_everything_before_reading() {
    let s = Session::new();
    let _g22 = small_limit_node(&s);
    let health = exchange(&s, "GET /v1/health HTTP/1.1", b"");
    let (_, body) = health.split_once("\r\n\r\n").unwrap();
    let health: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(health["max_upload_bytes"], LIMIT, "{health}");

    // Half as much again as the limit: the node reads on and drops the rest, so the write does
    // not break and the reason arrives.
    let answer = exchange(
        &s,
        "POST /v1/uploads HTTP/1.1",
        &vec![0x5a; LIMIT + LIMIT / 2],
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"too_large\""), "{answer}");
    assert_eq!(
        s.entries(&format!("{}/uploads/incoming", tenant_files(&s, "g22"))),
        Vec::<String>::new(),
        "nothing of the refused upload is kept"
    );

    // A malformed client message id is refused as a bad request, naming it.
    let request = br#"{"to":["000.00.00.G22"],"number":"1","notation":"A","urgency":"thuong","classification":"none","files":[],"message_id":"not-a-uuid"}"#;
    let answer = exchange(&s, "POST /v1/dispatches HTTP/1.1", request);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("\"bad_request\"") && answer.contains("not-a-uuid"),
        "{answer}"
    );

    // The clerk's command knows the limit and says so before uploading anything.
    s.document("big.bin", 2 * LIMIT);
    let refused = s.send("g22", G22, "1", "big.bin", &[]);
    assert_eq!(refused.status, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("more than this node accepts")
            && refused.stderr.contains("(too_large)"),
        "{}",
        refused.stderr
    );
    let outbox = s.vdx(&["--home", "g22", "outbox", "--json"]).ok().json();
    assert_eq!(outbox.as_array().unwrap().len(), 0, "{outbox}");
}

const H41: &str = "000.00.00.H41";
/// The API's timeouts in these tests, seconds ([limits] `api_header_timeout_secs` and
/// `api_body_timeout_secs`; 30 and 60 by default).
const TIMEOUT_SECS: u64 = 2;
/// Connections g22 serves at once in these tests ([limits] `api_connections`; 64 by default).
const CAP: u32 = 6;

/// g22 and h41, g22's API with short timeouts and a small connection cap; both started.
fn bounded_pair(s: &Session) -> (Daemon, Daemon) {
    homes(s, &[("g22", G22), ("h41", H41)]);
    let mut config = vdx_node::config::Config::load(&s.path("g22")).unwrap();
    config.limits.api_header_timeout_secs = TIMEOUT_SECS;
    config.limits.api_body_timeout_secs = TIMEOUT_SECS;
    config.limits.api_connections = CAP;
    s.write("g22/config.toml", config.to_toml().unwrap().as_bytes());
    (Daemon::start(s, "h41"), Daemon::start(s, "g22"))
}

/// A connection to g22's socket that has sent `sent` and then nothing more.
fn stalled(s: &Session, sent: &[u8]) -> UnixStream {
    let mut socket = UnixStream::connect(s.path("g22/vdxd.sock")).unwrap();
    socket.write_all(sent).unwrap();
    socket
}

/// What the node says on `socket` until it closes it. Bounded by a generous read timeout: the
/// test fails (instead of hanging) if the node never closes the connection.
fn until_closed(mut socket: UnixStream) -> String {
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut said = Vec::new();
    match socket.read_to_end(&mut said) {
        Ok(_) => {}
        // A reset after the answer is a close too.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the node kept the connection open: {e}"),
    }
    String::from_utf8_lossy(&said).into_owned()
}

#[test]
fn idle_and_half_sent_connections_are_closed_while_a_transfer_goes_on() {
    let s = Session::new();
    let (_h41, g22) = bounded_pair(&s);

    // Four clients that never finish: one that sends nothing, one stopped in its header, one in
    // an upload's body, one in a dispatch request's JSON.
    let idle = stalled(&s, b"");
    let half_header = stalled(&s, b"GET /v1/health HTTP/1.1\r\nhost: vdxd\r\n");
    let half_upload = stalled(
        &s,
        &[
            &b"POST /v1/uploads HTTP/1.1\r\nhost: vdxd\r\ncontent-length: 1048576\r\n\r\n"[..],
            &[0x5a; 64 * 1024][..],
        ]
        .concat(),
    );
    let half_json = stalled(
        &s,
        b"POST /v1/dispatches HTTP/1.1\r\nhost: vdxd\r\ncontent-length: 1000\r\n\r\n{\"to\":",
    );

    // Meanwhile a clerk sends a dispatch, and it is delivered.
    s.write("cv.txt", "Kính gửi: UBND tỉnh Nghệ An\n".as_bytes());
    let sent = s.send("g22", H41, "1", "cv.txt", &[]).ok().json();
    let id = sent["copies"][0]["id"].as_str().unwrap().to_owned();
    wait_until(
        &s,
        std::time::Duration::from_secs(60),
        "the delivery",
        || {
            let shown = s.vdx(&["--home", "g22", "show", "--json", &id]).ok().json();
            shown["status"] == "delivered"
        },
    );

    // Every stalled client is let go: the header timeout closes the first two without an
    // answer; the body timeout answers the others 408 and keeps nothing of the upload.
    assert_eq!(until_closed(idle), "");
    assert_eq!(until_closed(half_header), "");
    for socket in [half_upload, half_json] {
        let answer = until_closed(socket);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("\"timeout\"") && answer.contains("api_body_timeout_secs"),
            "{answer}"
        );
    }
    assert_eq!(
        s.entries(&format!("{}/uploads/incoming", tenant_files(&s, "g22"))),
        Vec::<String>::new(),
        "nothing of the stalled upload is kept"
    );

    // More clients than the cap: those past it wait unaccepted, and the node serves a new
    // request once the others are gone (closed here, or by the header timeout).
    let crowd: Vec<UnixStream> = (0..CAP + 3).map(|_| stalled(&s, b"")).collect();
    let socket = s.path("g22/vdxd.sock");
    let health = std::thread::spawn(move || {
        let mut client = UnixStream::connect(socket).unwrap();
        client
            .write_all(b"GET /v1/health HTTP/1.1\r\nhost: vdxd\r\nconnection: close\r\n\r\n")
            .unwrap();
        until_closed(client)
    });
    drop(crowd);
    let answer = health.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(G22), "{answer}");
    assert!(g22.stop().success());
}

#[test]
fn names_that_read_as_others_are_refused_by_the_clerks_command_and_the_api() {
    let s = Session::new();
    // `vdx send` refuses before it asks the node anything: no node runs here.
    homes(&s, &[("g22", G22), ("h41", H41)]);
    let spoof = "Quyết định\u{202E}fdp.exe";
    s.write(spoof, b"MZ");
    let refused = s.send("g22", H41, "1", spoof, &[]);
    assert_eq!(refused.status, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("bidirectional control") && refused.stderr.contains("\\u{202e}"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("not running"),
        "{}",
        refused.stderr
    );
    s.write("a\u{200B}.pdf", b"%PDF");
    let refused = s.send("g22", H41, "1", "a\u{200B}.pdf", &[]);
    assert!(
        refused.status == 1 && refused.stderr.contains("invisible character"),
        "{}",
        refused.stderr
    );

    // The API refuses it too, with its own code, for any client.
    let g22 = Daemon::start(&s, "g22");
    let uploaded = exchange(&s, "POST /v1/uploads HTTP/1.1", b"MZ");
    assert!(uploaded.starts_with("HTTP/1.1 201"), "{uploaded}");
    let (_, body) = uploaded.split_once("\r\n\r\n").unwrap();
    let upload: serde_json::Value = serde_json::from_str(body).unwrap();
    let request = serde_json::json!({
        "to": [H41], "subject": "V/v kiểm thử", "number": "1", "notation": "A",
        "urgency": "thuong", "classification": "none",
        "files": [{ "name": spoof, "upload": upload["upload"] }],
    });
    let answer = exchange(
        &s,
        "POST /v1/dispatches HTTP/1.1",
        request.to_string().as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("\"bad_file_name\"") && answer.contains("bidirectional control"),
        "{answer}"
    );
    let outbox = s.vdx(&["--home", "g22", "outbox", "--json"]).ok().json();
    assert_eq!(outbox.as_array().unwrap().len(), 0, "{outbox}");

    // A JSON request past the API's 4 MiB is answered 413 `too_large`, to a client that sends
    // all of it before reading.
    let answer = exchange(
        &s,
        "POST /v1/dispatches HTTP/1.1",
        &vec![b' '; (4 << 20) + 1],
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"too_large\""), "{answer}");
    assert!(g22.stop().success());
}

/// A streamed submission's body: the request's length (u32, big-endian), the request, the files.
fn streamed(request: &serde_json::Value, files: &[&[u8]]) -> Vec<u8> {
    let json = serde_json::to_vec(request).unwrap();
    let mut body = (json.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(&json);
    for file in files {
        body.extend_from_slice(file);
    }
    body
}

#[test]
fn a_streamed_submission_is_sealed_as_it_arrives_and_checked_against_what_it_declares() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    let _daemons = [Daemon::start(&s, "g22"), Daemon::start(&s, "h41")];
    // `vdx send` streams files from 16 MiB on: the node seals them as they come, so its home
    // never holds them in clear (no upload), and the recipient gets them byte for byte.
    let document = s.document("ban-do.bin", 17 << 20);
    let sent = s.send("g22", H41, "1", "ban-do.bin", &[]).ok().json();
    let id = sent["copies"][0]["id"].as_str().unwrap().to_owned();
    vdx_tests::daemon::wait_status(
        &s,
        std::time::Duration::from_secs(60),
        "g22",
        &id,
        "delivered",
    );
    s.vdx(&["--home", "h41", "fetch", &id, "--out", "got"]).ok();
    assert!(
        s.read("got/ban-do.bin") == document,
        "fetched byte for byte"
    );
    assert!(
        !any_file_holds(&s.path("g22"), &document[5 << 20..(5 << 20) + 64]),
        "nothing of it in clear in the sender's home (no upload)"
    );

    // Over the API: what the request declares is what must follow.
    let small = b"Kinh gui: cac xa".to_vec();
    let digest = {
        use sha2::Digest as _;
        vdx_protocol::hex::encode(sha2::Sha256::digest(&small).as_slice())
    };
    let request = |sha: &str, size: usize| {
        serde_json::json!({
            "to": [H41], "subject": "Kiểm thử", "number": "2", "notation": "A", "urgency": "thuong",
            "classification": "none",
            "files": [{"name": "cv.txt", "upload": sha, "size": size}],
        })
    };
    let post = |body: &[u8]| exchange(&s, "POST /v1/dispatches/stream HTTP/1.1", body);
    let cases: [(Vec<u8>, &str); 4] = [
        (
            streamed(&request(&"0".repeat(64), small.len()), &[&small]),
            "SHA-256",
        ),
        (
            streamed(&request(&digest, small.len()), &[&small[..5]]),
            "cv.txt",
        ),
        (
            streamed(&request(&digest, small.len()), &[&small, b"!"]),
            "more bytes",
        ),
        (streamed(&request(&digest, small.len()), &[]), "cv.txt"),
    ];
    for (body, why) in cases {
        let answer = post(&body);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains(why), "{why}: {answer}");
    }
    let mut cut = streamed(&request(&digest, small.len()), &[&small]);
    cut.truncate(3);
    assert!(post(&cut).starts_with("HTTP/1.1 400"));
    let outbox = s.vdx(&["--home", "g22", "outbox", "--json"]).ok().json();
    assert_eq!(
        outbox.as_array().unwrap().len(),
        1,
        "only the first: {outbox}"
    );
    let answer = post(&streamed(&request(&digest, small.len()), &[&small]));
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

/// Whether any file under `dir` (if it exists) holds `needle`.
fn any_file_holds(dir: &std::path::Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            any_file_holds(&path, needle)
        } else {
            std::fs::read(&path)
                .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }
    })
}
