//! The local socket API spoken to as a plain HTTP client would, over a real daemon's socket: a
//! refused upload is answered with its reason even to a client that sends its whole body before
//! reading, and `vdx send` checks its files against the node's limit before uploading.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;

use vdx_tests::daemon::{homes, Daemon};
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
        s.entries("g22/data/uploads/incoming"),
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
