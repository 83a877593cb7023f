//! A real `vdxd` under a QUIC handshake flood from one unauthenticated source, while a real enrolled
//! peer keeps sending to it. The attacker is this test: it builds genuine QUIC Initial packets with
//! quinn-proto's client (each a new connection attempt with a fresh connection id and a real TLS
//! ClientHello) and sends them raw from one UDP socket, never finishing a handshake. It proves:
//!
//! - 16,000 first packets from one address keep the receiver's memory (VmHWM, the peak, and VmRSS
//!   after the flood) under its 128 MiB budget: the node answers them with stateless QUIC Retry
//!   instead of keeping a handshake for each;
//! - an attacker that does answer the Retry (so that its address is validated) from one address
//!   gets only a few handshakes in progress at a time, the rest ignored;
//! - through both, a dispatch from the enrolled sender, whose node starts and connects during the
//!   flood, is delivered and registered.
//!
//! The numbers measured are printed (`--nocapture`).

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;
use vdx_node::config::Config;
use vdx_node::net::tls::ALPN;
use vdx_tests::daemon::{homes, wait_until, Daemon};
use vdx_tests::measure::memory_kib;
use vdx_tests::Session;

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
/// The node's memory budget.
const BUDGET_MIB: u64 = 128;
/// First packets in the flood.
const FLOOD: usize = 16_000;
/// Connection attempts of the attacker that answers Retry.
const VALIDATED_FLOOD: usize = 2_000;
const LIMIT: Duration = Duration::from_secs(90);

// ---- the attacker ------------------------------------------------------------------------------

/// Accepts any server: the attacker never gets far enough for it to matter.
#[derive(Debug)]
struct AnyServer(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A client as a stranger would write it: TLS 1.3, ALPN `vdx/1`, no client certificate.
fn stranger() -> quinn_proto::ClientConfig {
    let provider = rustls::crypto::ring::default_provider();
    let verifier = Arc::new(AnyServer(provider.signature_verification_algorithms));
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    quinn_proto::ClientConfig::new(Arc::new(quic))
}

/// What the attacker did.
#[derive(Debug, Default)]
struct Sent {
    initials: usize,
    retries_answered: usize,
}

/// Sends `count` first packets to `target` from one socket bound to `from`, paced in batches so
/// that the kernel's socket buffers do not drop most of them; with `answer_retry`, answers each
/// Retry that comes back once (so that the node sees a validated address) and goes no further.
fn flood(from: &str, target: SocketAddr, count: usize, answer_retry: bool) -> Sent {
    let socket = UdpSocket::bind(from).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut endpoint = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        true,
        None,
    );
    let config = stranger();
    let mut waiting = HashMap::new();
    let mut sent = Sent::default();
    let (mut out, mut scratch, mut inbuf) = (Vec::new(), Vec::new(), vec![0u8; 65_536]);
    while sent.initials < count {
        for _ in 0..100.min(count - sent.initials) {
            let now = Instant::now();
            let (handle, mut conn) = endpoint
                .connect(now, config.clone(), target, "peer.vdx.invalid")
                .unwrap();
            out.clear();
            let transmit = conn.poll_transmit(now, 1, &mut out).unwrap();
            let _ = socket.send_to(&out[..transmit.size], transmit.destination);
            sent.initials += 1;
            if answer_retry {
                waiting.insert(handle, conn);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        // Whatever came back: Retries are answered once, the rest is left to time out.
        while let Ok((n, peer)) = socket.recv_from(&mut inbuf) {
            // A Retry is a long-header packet of type 3 (RFC 9000 §17.2.5).
            if !answer_retry || inbuf[0] & 0xb0 != 0xb0 {
                continue;
            }
            let now = Instant::now();
            let datagram = bytes::BytesMut::from(&inbuf[..n]);
            scratch.clear();
            let event = endpoint.handle(now, peer, None, None, datagram, &mut scratch);
            let Some(quinn_proto::DatagramEvent::ConnectionEvent(handle, event)) = event else {
                continue;
            };
            let Some(mut conn) = waiting.remove(&handle) else {
                continue;
            };
            conn.handle_event(event);
            out.clear();
            if let Some(transmit) = conn.poll_transmit(now, 1, &mut out) {
                let _ = socket.send_to(&out[..transmit.size], transmit.destination);
                sent.retries_answered += 1;
            }
        }
    }
    sent
}

// ---- the node ----------------------------------------------------------------------------------

/// Samples a process's VmRSS every 20 ms until stopped; returns the highest, KiB.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let (stop, peak) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (stopped, highest) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                highest.fetch_max(memory_kib(pid).0, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn peak_mib(mut self) -> f64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.peak.load(Ordering::SeqCst) as f64 / 1024.0
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `vdx send` from g22 to h41; returns the copy's id.
fn send(s: &Session, number: &str) -> String {
    let answer = s.send("g22", H41, number, "cv.txt", &[]).ok().json();
    answer["copies"][0]["id"].as_str().unwrap().to_owned()
}

/// `vdx show --json`; `null` while the node does not know the dispatch.
fn status(s: &Session, home: &str, id: &str) -> Value {
    let ran = s.vdx(&["--home", home, "show", "--json", id]);
    if ran.status != 0 {
        return Value::Null;
    }
    ran.json()["status"].clone()
}

/// The receiver's counter `name` from `vdx metrics` (0 when absent).
fn counter(s: &Session, name: &str) -> f64 {
    let text = s.vdx(&["--home", "h41", "metrics"]).ok().stdout;
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

#[test]
fn a_handshake_flood_from_one_source_costs_the_node_little_and_its_peers_nothing() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    s.write("cv.txt", "Kính gửi: UBND tỉnh Nghệ An\n".as_bytes());
    let target = Config::load(&s.path("h41")).unwrap().listen;
    let receiver = Daemon::start(&s, "h41");
    let pid = receiver.pid();
    let idle = memory_kib(pid).0;

    // 1. Unvalidated first packets; the sender's node starts and connects in the middle of them.
    let sampler = Sampler::start(pid);
    let attacker = std::thread::spawn(move || flood("127.0.0.2:0", target, FLOOD, false));
    std::thread::sleep(Duration::from_secs(1));
    let sender = Daemon::start(&s, "g22");
    let first = send(&s, "1");
    let mut delivered_during = false;
    wait_until(&s, LIMIT, "the first dispatch to be delivered", || {
        delivered_during = !attacker.is_finished();
        status(&s, "g22", &first) == "delivered"
    });
    let sent = attacker.join().unwrap();
    let peak = sampler.peak_mib();
    println!(
        "flood: {} Initials from one address; receiver VmRSS idle {:.1} MiB, peak {peak:.1} MiB; \
         a dispatch delivered {} the flood",
        sent.initials,
        mib(idle),
        if delivered_during { "during" } else { "after" },
    );

    // 2. An attacker that answers Retry, from another address.
    let sampler = Sampler::start(pid);
    let attacker = std::thread::spawn(move || flood("127.0.0.3:0", target, VALIDATED_FLOOD, true));
    let second = send(&s, "2");
    wait_until(&s, LIMIT, "the second dispatch to be delivered", || {
        status(&s, "g22", &second) == "delivered"
    });
    let validated = attacker.join().unwrap();
    let validated_peak = sampler.peak_mib();
    println!(
        "validated flood: {} Initials, {} Retries answered; receiver peak VmRSS {validated_peak:.1} MiB",
        validated.initials, validated.retries_answered
    );

    // 3. Once the stalled handshakes have timed out, the memory is back within the budget.
    std::thread::sleep(Duration::from_secs(16));
    let (after, hwm) = memory_kib(pid);
    println!(
        "after: receiver VmRSS {:.1} MiB, VmHWM {:.1} MiB (budget {BUDGET_MIB} MiB)",
        mib(after),
        mib(hwm)
    );
    let metrics = ["retried", "refused", "ignored"].map(|what| {
        let n = counter(&s, &format!("vdx_handshakes_{what}_total"));
        println!("vdx_handshakes_{what}_total {n}");
        n
    });

    for id in [&first, &second] {
        assert_eq!(status(&s, "h41", id), "registered", "{id} at the receiver");
    }
    assert!(
        mib(hwm) < BUDGET_MIB as f64,
        "the receiver's peak memory was {:.1} MiB",
        mib(hwm)
    );
    assert!(
        mib(after) < BUDGET_MIB as f64,
        "the receiver kept {:.1} MiB",
        mib(after)
    );
    assert!(metrics[0] > 0.0, "no handshake was retried");
    assert!(
        validated.retries_answered > 0,
        "the node sent no Retry to the second attacker"
    );
    assert!(metrics[2] > 0.0, "no validated handshake was ignored");
    drop(sender);
    drop(receiver);
}
