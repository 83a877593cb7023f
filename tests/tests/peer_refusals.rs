//! A real `vdxd` seen from the network: the test process is a QUIC client that speaks `vdx/1` frame
//! by frame (`docs/wire-frames.md`), so it can do what the node's own sender never does. It proves:
//!
//! - strangers are refused at the handshake, before any stream carries anything, with the TLS alert
//!   that says why, and the daemon logs each refusal: no client certificate, a certificate from another
//!   CA (carrying an organ code the directory knows), a revoked certificate (the home checks its CA's
//!   CRL), and a valid certificate of an agency that is not in the directory;
//! - a bound peer that breaks the frame rules has its stream reset in both directions with the spec's
//!   code (0x10-0x14), while the connection and the node keep serving well-formed offers;
//! - a dispatch sent again after its STORED is answered STORED at once, without a byte sent twice,
//!   with a receipt that checks, and the receiver keeps one record of it.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use quinn::{ConnectionError, ReadError, RecvStream, SendStream, TransportErrorCode, WriteError};
use rustls::AlertDescription;
use sha2::{Digest, Sha256};
use vdx_node::config::Config;
use vdx_node::store::{Direction, MessageId};
use vdx_node::tenant::receipts::verify_receipt;
use vdx_pki::TrustStore;
use vdx_protocol::wire::{Frame, FrameDecoder, ObjectKind, Offer, RejectCode};
use vdx_tests::daemon::{homes, wait_until, Daemon};
use vdx_tests::daemon::{store_of, tenant_files};
use vdx_tests::peer::client_config;
use vdx_tests::{words, Session};

const H41: &str = "000.00.00.H41";
const G22: &str = "000.00.00.G22";
/// The name vdxd's own clients ask for; peers are identified by certificate, not by name.
const SERVER_NAME: &str = "peer.vdx.invalid";
/// Longest wait for any one network step; a healthy exchange on loopback takes milliseconds.
const STEP: Duration = Duration::from_secs(10);
/// Size of the DATA chunks this test sends (the limit is 1 MiB; smaller makes several frames).
const CHUNK: usize = 64 * 1024;

// ---- the daemon --------------------------------------------------------------------------------

/// Starts `vdxd` for `home` and waits until it listens; returns it and its address.
fn start(s: &Session, home: &str) -> (Daemon, SocketAddr) {
    let listen = Config::load(&s.path(home)).unwrap().listen;
    let daemon = Daemon::start(s, home);
    wait_until(s, Duration::from_secs(20), "vdxd to start", || {
        log(s, home).contains("vdxd started")
    });
    (daemon, listen)
}

/// The daemon's log so far.
fn log(s: &Session, home: &str) -> String {
    String::from_utf8_lossy(&s.read(&format!("{home}.log"))).into_owned()
}

/// Waits until the log, past its first `from` bytes, mentions `needle`; returns that part.
fn logged_since(s: &Session, home: &str, from: usize, needle: &str) -> String {
    wait_until(s, STEP, needle, || log(s, home)[from..].contains(needle));
    log(s, home)[from..].to_owned()
}

/// Makes `home` check revocation against `crl` (relative to the home), as an operator does by
/// adding it to `[trust] crls` in config.toml.
fn trust_crl(s: &Session, home: &str, crl: &str) {
    let mut config = Config::load(&s.path(home)).unwrap();
    config.trust.crls.push(crl.into());
    s.write(
        &format!("{home}/config.toml"),
        config.to_toml().unwrap().as_bytes(),
    );
}

/// The dev CA as the only trust anchor, without CRLs (to check receipts).
fn trust_of(ca: &Path) -> TrustStore {
    let anchors = vdx_pki::parse_certs(&std::fs::read(ca).unwrap()).unwrap();
    TrustStore::new(anchors, Vec::new(), Vec::new()).unwrap()
}

// ---- the client --------------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `step`, failing the test if it takes longer than [`STEP`].
async fn within<T>(what: &str, step: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, step)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Connects from a new client endpoint on loopback (call inside the runtime).
async fn connect(
    config: quinn::ClientConfig,
    server: SocketAddr,
) -> Result<quinn::Connection, ConnectionError> {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connecting = endpoint.connect_with(config, server, SERVER_NAME).unwrap();
    within("the handshake", connecting).await
}

// ---- frames ------------------------------------------------------------------------------------

/// The one place an `Offer` is built: sealed dispatch `[id; 16]` from G22 to `to`, hỏa tốc, with no
/// expiry, whose sealed object is `sealed`.
fn offer(id: u8, to: &str, sealed: &[u8]) -> Frame {
    Frame::Offer(Offer {
        id: [id; 16],
        from: G22.parse().unwrap(),
        to: to.parse().unwrap(),
        size: sealed.len() as u64,
        sealed_sha256: Sha256::digest(sealed).into(),
        urgency: 3,
        expires: 0,
        kind: ObjectKind::Dispatch,
        hops: 0,
    })
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out).unwrap();
    out
}

/// A frame header alone: version 1, `kind`, and a payload length of `len`.
fn header(kind: u8, len: u32) -> Vec<u8> {
    let mut out = vec![1, kind];
    out.extend_from_slice(&len.to_be_bytes());
    out
}

/// `frame` with `n` zero bytes after its payload, counted in its length.
fn with_trailing_bytes(frame: &Frame, n: u32) -> Vec<u8> {
    let mut out = encode(frame);
    let len = u32::from_be_bytes(out[2..6].try_into().unwrap()) + n;
    out[2..6].copy_from_slice(&len.to_be_bytes());
    out.extend((0..n).map(|_| 0));
    out
}

/// One bidirectional stream as the sending peer sees it: frames out, frames in.
struct Transfer {
    send: SendStream,
    recv: RecvStream,
    decoder: FrameDecoder,
}

impl Transfer {
    async fn open(conn: &quinn::Connection) -> Result<Self, ConnectionError> {
        let (send, recv) = within("a new stream", conn.open_bi()).await?;
        Ok(Self {
            send,
            recv,
            decoder: FrameDecoder::new(),
        })
    }

    async fn send(&mut self, frame: &Frame) -> Result<(), WriteError> {
        self.send_bytes(&encode(frame)).await
    }

    async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        within("a write", self.send.write_all(bytes)).await
    }

    /// The daemon's next frame; `None` when it finished the stream.
    async fn next(&mut self) -> Result<Option<Frame>, ReadError> {
        let mut buf = vec![0; 16 * 1024];
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => {}
                Err(e) => panic!("vdxd sent a bad frame: {e}"),
            }
            match within("a frame", self.recv.read(&mut buf)).await? {
                Some(n) => self.decoder.feed(&buf[..n]),
                None => {
                    assert_eq!(self.decoder.buffered(), 0, "vdxd ended a frame early");
                    return Ok(None);
                }
            }
        }
    }

    /// The daemon's next frame, which must come.
    async fn answer(&mut self) -> Frame {
        match self.next().await {
            Ok(Some(frame)) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Ends our side and checks that the daemon ends its side too, with nothing more to say.
    async fn end(mut self) {
        self.send.finish().unwrap();
        assert_eq!(self.next().await.unwrap(), None);
    }

    /// The code the daemon reset the stream with; it must also have stopped our direction with
    /// the same code, so a sender in the middle of writing learns why as well.
    async fn reset_code(mut self) -> u64 {
        let code = match self.next().await {
            Err(ReadError::Reset(code)) => code,
            other => panic!("expected the stream to be reset, got {other:?}"),
        };
        let stopped = within("STOP_SENDING", self.send.stopped()).await.unwrap();
        assert_eq!(stopped, Some(code), "STOP_SENDING with the reset's code");
        code.into_inner()
    }
}

// ---- exchanges ---------------------------------------------------------------------------------

/// What a refused client sees. Under TLS 1.3 the server checks the client's certificate after the
/// client has finished its side, so the handshake may look complete here; but nothing gets through:
/// an OFFER on a new stream is answered by the connection's close, not by a frame.
async fn refusal(config: quinn::ClientConfig, server: SocketAddr) -> ConnectionError {
    let conn = match connect(config, server).await {
        Ok(conn) => conn,
        Err(e) => return e,
    };
    let mut transfer = match Transfer::open(&conn).await {
        Ok(transfer) => transfer,
        Err(e) => return e,
    };
    match transfer.send(&offer(0x51, H41, b"sealed")).await {
        Ok(()) => {}
        Err(WriteError::ConnectionLost(e)) => return e,
        Err(e) => panic!("a refused client's write failed oddly: {e}"),
    }
    match transfer.next().await {
        Err(ReadError::ConnectionLost(e)) => e,
        other => panic!("a refused client got an answer: {other:?}"),
    }
}

/// Asserts the daemon closed the connection at the TLS layer with `alert` (RFC 8446 §6.2; QUIC
/// carries it as CRYPTO_ERROR 0x100 + alert, RFC 9001 §4.8).
fn assert_alert(who: &str, error: &ConnectionError, alert: AlertDescription) {
    match error {
        ConnectionError::ConnectionClosed(close) => assert_eq!(
            close.error_code,
            TransportErrorCode::crypto(u8::from(alert)),
            "{who}: closed with {close}, not with the alert {alert:?}"
        ),
        other => panic!("{who}: expected a TLS alert from vdxd, got {other}"),
    }
}

/// A well-formed OFFER on a new stream of `conn` is answered ACCEPT from 0. The test then gives up
/// with REJECT, as a sender may at any point, and both sides end the stream cleanly.
async fn assert_serving(conn: &quinn::Connection, id: u8) {
    let mut transfer = Transfer::open(conn).await.unwrap();
    transfer
        .send(&offer(id, H41, b"a well-formed offer"))
        .await
        .unwrap();
    assert_eq!(transfer.answer().await, Frame::Accept { resume_from: 0 });
    let give_up = Frame::Reject {
        code: RejectCode::Busy,
        reason: "the test stops here".into(),
    };
    transfer.send(&give_up).await.unwrap();
    transfer.end().await;
}

/// A sender's whole transfer of `sealed` on a new stream: OFFER, DATA from wherever the receiver
/// asks, until STORED. Returns how many bytes had to be sent, and the receipt.
async fn deliver(conn: &quinn::Connection, id: u8, sealed: &[u8]) -> (usize, Vec<u8>) {
    let mut transfer = Transfer::open(conn).await.unwrap();
    transfer.send(&offer(id, H41, sealed)).await.unwrap();
    let mut sent = 0;
    let mut answer = transfer.answer().await;
    if let Frame::Accept { resume_from } = answer {
        let from = usize::try_from(resume_from).unwrap();
        for (i, chunk) in sealed[from..].chunks(CHUNK).enumerate() {
            let data = Frame::Data {
                offset: (from + i * CHUNK) as u64,
                bytes: chunk.to_vec(),
            };
            transfer.send(&data).await.unwrap();
            sent += chunk.len();
        }
        answer = transfer.answer().await;
    }
    let Frame::Stored { receipt } = answer else {
        panic!("expected STORED, got {answer:?}")
    };
    transfer.end().await;
    (sent, receipt)
}

/// What a stream carries in a protocol-violation case: bytes the test sends, or a frame it waits for.
enum Step {
    Send(Vec<u8>),
    Expect(Frame),
}

// ---- the tests ---------------------------------------------------------------------------------

#[test]
fn strangers_are_refused_at_the_handshake_and_the_refusal_is_logged() {
    let s = Session::new();
    homes(&s, &[("h41", H41), ("g22", G22), ("h26", "000.00.00.H26")]);
    // Another CA's certificate, for an organ code h41's directory does know.
    s.vdx(&words("pki init-ca --out other --name Other")).ok();
    s.vdx(&words(
        "pki issue --ca other --org 000.00.00.G22 --name Impostor --out impostor",
    ))
    .ok();
    // h26 is in h41's directory, but its TLS certificate is revoked and h41 checks the CA's CRL.
    s.vdx(&words("pki revoke --ca ca h26/keys/tls.pem")).ok();
    s.vdx(&words("pki crl --ca ca --out h41/keys/ca.crl")).ok();
    trust_crl(&s, "h41", "keys/ca.crl");
    // h99 holds valid certificates from the same CA, but h41 never imported its entry.
    s.vdx(&words(
        "--home h99 init --org 000.00.00.H99 --name h99 --listen 127.0.0.1:9 --ca ca",
    ))
    .ok();

    let (_daemon, server) = start(&s, "h41");
    let rt = runtime();
    // A bound peer gets through with the CRL in force: what follows is about who is calling.
    rt.block_on(async {
        let conn = connect(client_config(&s, Some("g22/keys")), server)
            .await
            .unwrap();
        assert_serving(&conn, 0x01).await;
        conn.close(0u32.into(), b"done");
    });

    for (who, identity, alert, why) in [
        (
            "a client without a certificate",
            None,
            AlertDescription::CertificateRequired,
            "peer sent no certificates",
        ),
        (
            "another CA's certificate for G22",
            Some("impostor"),
            AlertDescription::UnknownCA,
            "UnknownIssuer",
        ),
        (
            "a revoked certificate of a listed agency",
            Some("h26/keys"),
            AlertDescription::CertificateRevoked,
            "Revoked",
        ),
        (
            "a valid certificate of an agency not in the directory",
            Some("h99/keys"),
            AlertDescription::AccessDenied,
            "ApplicationVerificationFailure",
        ),
    ] {
        let from = log(&s, "h41").len();
        let error = rt.block_on(refusal(client_config(&s, identity), server));
        assert_alert(who, &error, alert);
        let logged = logged_since(&s, "h41", from, "connection refused");
        assert!(logged.contains(why), "{who}: the log says\n{logged}");
    }
    // Monitoring counts them.
    let metrics = s.vdx(&words("--home h41 metrics")).ok().stdout;
    assert!(
        metrics.contains("\nvdx_handshakes_failed_total 4\n"),
        "{metrics}"
    );
}

#[test]
fn frame_violations_reset_the_stream_with_their_code_and_the_node_keeps_serving() {
    let s = Session::new();
    homes(&s, &[("h41", H41), ("g22", G22)]);
    let (_daemon, server) = start(&s, "h41");
    let body = b"sealed bytes".to_vec();
    let cases = [
        (
            "a frame of version 2",
            vec![Step::Send(vec![2, 1, 0, 0, 0, 0])],
            0x10,
        ),
        ("frame type 0x05", vec![Step::Send(header(0x05, 0))], 0x11),
        // Only the header goes out: the limit is checked before any payload is awaited.
        (
            "an OFFER of 100000 bytes",
            vec![Step::Send(header(0x01, 100_000))],
            0x12,
        ),
        (
            // One byte after `kind` is `hops`; a second is one too many.
            "an OFFER with a byte after hops",
            vec![Step::Send(with_trailing_bytes(&offer(0x20, H41, &body), 2))],
            0x13,
        ),
        (
            "DATA before OFFER",
            vec![Step::Send(encode(&Frame::Data {
                offset: 0,
                bytes: body.clone(),
            }))],
            0x14,
        ),
        (
            "STORED from the sender",
            vec![
                Step::Send(encode(&offer(0x21, H41, &body))),
                Step::Expect(Frame::Accept { resume_from: 0 }),
                Step::Send(encode(&Frame::Stored {
                    receipt: b"mine".to_vec(),
                })),
            ],
            0x14,
        ),
        (
            "DATA leaving a gap",
            vec![
                Step::Send(encode(&offer(0x22, H41, &body))),
                Step::Expect(Frame::Accept { resume_from: 0 }),
                Step::Send(encode(&Frame::Data {
                    offset: 1,
                    bytes: body[1..].to_vec(),
                })),
            ],
            0x14,
        ),
    ];
    let violations = cases.len();

    runtime().block_on(async {
        let conn = connect(client_config(&s, Some("g22/keys")), server)
            .await
            .unwrap();
        for (n, (what, steps, code)) in cases.into_iter().enumerate() {
            let mut transfer = Transfer::open(&conn).await.unwrap();
            for step in steps {
                match step {
                    Step::Send(bytes) => transfer.send_bytes(&bytes).await.unwrap(),
                    Step::Expect(frame) => assert_eq!(transfer.answer().await, frame, "{what}"),
                }
            }
            assert_eq!(transfer.reset_code().await, code, "{what}");
            assert!(
                conn.close_reason().is_none(),
                "{what} closed the connection"
            );
            assert_serving(&conn, 0x40 + n as u8).await;
        }
        conn.close(0u32.into(), b"done");
        // A new connection is served too.
        let conn = connect(client_config(&s, Some("g22/keys")), server)
            .await
            .unwrap();
        assert_serving(&conn, 0x30).await;
        conn.close(0u32.into(), b"done");
    });

    wait_until(&s, STEP, "every violation logged", || {
        log(&s, "h41").matches("protocol violation").count() >= violations
    });
    let inbox = s.vdx(&["--home", "h41", "inbox", "--json"]).ok().json();
    assert_eq!(
        inbox.as_array().map(Vec::len),
        Some(0),
        "nothing was stored: {inbox}"
    );
    // Small objects live in the store: its ledger would have a `received` entry for any.
    let received = s
        .vdx(&[
            "--home", "h41", "audit", "log", "--kind", "received", "--json",
        ])
        .ok()
        .json();
    assert_eq!(received, serde_json::json!([]), "nothing was stored");
    assert!(s
        .entries(&format!("{}/spool/objects", tenant_files(&s, "h41")))
        .is_empty());
}

#[test]
fn a_replayed_dispatch_is_answered_stored_and_kept_once() {
    let s = Session::new();
    homes(&s, &[("h41", H41), ("g22", G22)]);
    let (daemon, server) = start(&s, "h41");
    let sealed = s.document("sealed.bin", 200_000);
    let id = 0x66;

    let receipts = runtime().block_on(async {
        let conn = connect(client_config(&s, Some("g22/keys")), server)
            .await
            .unwrap();
        let (sent, first) = deliver(&conn, id, &sealed).await;
        assert_eq!(sent, sealed.len(), "a new dispatch is sent whole");
        // The sender lost STORED and repeats, on the same connection and after reconnecting.
        let (sent, again) = deliver(&conn, id, &sealed).await;
        assert_eq!(sent, 0, "a repeat is answered without its bytes");
        conn.close(0u32.into(), b"done");
        let conn = connect(client_config(&s, Some("g22/keys")), server)
            .await
            .unwrap();
        let (sent, later) = deliver(&conn, id, &sealed).await;
        assert_eq!(sent, 0, "a repeat is answered without its bytes");
        conn.close(0u32.into(), b"done");
        [first, again, later]
    });
    // Killed, not stopped: what STORED promised must already be on disk.
    daemon.kill9();

    // One record of the dispatch, as offered, and no transfer of it left half-done.
    let id = MessageId([id; 16]);
    assert!(s
        .entries(&format!("{}/spool/partial", tenant_files(&s, "h41")))
        .is_empty());
    let record = store_of(&s, "h41").get(id).unwrap();
    let record = record.unwrap_or_else(|| panic!("no record of {id}"));
    assert_eq!(record.direction, Direction::Incoming);
    assert_eq!(record.size, sealed.len() as u64);
    assert_eq!(
        record.sealed_digest().unwrap(),
        <[u8; 32]>::from(Sha256::digest(&sealed))
    );
    // Every answer carries a receipt for this dispatch, signed by h41.
    let trust = trust_of(&s.path("ca/ca.pem"));
    for receipt in &receipts {
        verify_receipt(receipt, &record, &H41.parse().unwrap(), &trust).unwrap();
    }
}

#[test]
fn a_peer_cannot_hand_over_another_agencys_object_or_take_its_transfer_id() {
    let s = Session::new();
    homes(&s, &[("h41", H41), ("g22", G22), ("h26", "000.00.00.H26")]);
    let (_daemon, server) = start(&s, "h41");
    let sealed = s.document("sealed.bin", 1000);
    let id = 0x77;
    runtime().block_on(async {
        // h26 is bound and trusted, but offers an object from g22: it is neither g22 nor a relay.
        let conn = connect(client_config(&s, Some("h26/keys")), server)
            .await
            .unwrap();
        let mut stream = Transfer::open(&conn).await.unwrap();
        stream.send(&offer(id, H41, &sealed)).await.unwrap();
        match stream.answer().await {
            Frame::Reject { code, reason } => {
                assert_eq!(code, RejectCode::BadOffer);
                assert!(reason.contains("may not hand over"), "{reason}");
            }
            other => panic!("expected REJECT, got {other:?}"),
        }
        conn.close(0u32.into(), b"done");
        // The transfer id was not taken: g22 delivers under it.
        let conn = connect(client_config(&s, Some("g22/keys")), server)
            .await
            .unwrap();
        let (sent, _) = deliver(&conn, id, &sealed).await;
        assert_eq!(sent, sealed.len());
        conn.close(0u32.into(), b"done");
    });
    // Monitoring counts the refusal.
    let metrics = s.vdx(&words("--home h41 metrics")).ok().stdout;
    assert!(
        metrics.contains("vdx_offers_refused_total{code=\"bad_offer\"} 1"),
        "{metrics}"
    );
}
