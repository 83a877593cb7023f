//! An enrolled peer turned hostile: the test process connects to a real `vdxd` as agency G22, with
//! G22's own TLS key, and offers sealed objects it crafted — each signed with G22's signing key and
//! encrypted to H41 like a real dispatch (by OpenSSL's CLI, and by vdx's `Sealer`), so they pass
//! every check before the package is read:
//!
//! - a package whose tar starts with a GNU long-name entry (`L`) declaring 1 GiB, followed by 64 MiB
//!   of zeros, and one whose PAX extended header (`x`) declares 1 GiB;
//! - an S/MIME object whose first header line is 120 MB long (a sealed dispatch after it).
//!
//! The receiver refuses each (ledger `refused`, record `refused` with the reader's reason, nothing
//! registered), its peak RSS (VmHWM) stays far below the size of what it was sent, and it goes on
//! to deliver an ordinary dispatch from the real G22 node.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use openssl::x509::X509;
use serde_json::Value;
use sha2::{Digest, Sha256};
use vdx_crypto::{PrivateKey, RsaPadding, Sealer};
use vdx_node::config::Config;
use vdx_protocol::wire::{Frame, FrameDecoder, ObjectKind, Offer};
use vdx_tests::daemon::{homes, wait_until, Daemon};
use vdx_tests::measure::memory_kib;
use vdx_tests::Session;

const H41: &str = "000.00.00.H41";
const G22: &str = "000.00.00.G22";
const LIMIT: Duration = Duration::from_secs(120);
/// DATA frames of this many bytes (the limit is 1 MiB).
const CHUNK: usize = 256 * 1024;
/// What a tar extension entry declares: far more than the receiver may hold.
const GIB: u64 = 1 << 30;
/// The receiver's peak RSS must stay below this (it was sent hundreds of MiB, declared gigabytes).
const BUDGET_KIB: u64 = 128 * 1024;

// ---- crafted objects ---------------------------------------------------------------------------

/// A 512-byte GNU tar header of `typeflag` named `name`, declaring `size` bytes (octal).
fn tar_header(name: &str, typeflag: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = typeflag;
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Seals `plain` (streamed) as G22 does a dispatch for H41: signed with G22's signing key,
/// encrypted to H41's encryption certificate. Writes `out`; returns its size and SHA-256.
fn seal_as_g22(s: &Session, plain: impl Read, out: &mut impl Write) -> (u64, [u8; 32]) {
    let cert = |p: &str| X509::from_pem(&s.read(p)).unwrap();
    let (sign_cert, enc_cert) = (cert("g22/keys/sign.pem"), cert("h41/keys/enc.pem"));
    let sign_key = PrivateKey::from_bytes(&s.read("g22/keys/sign.key"), None).unwrap();
    let sealer = Sealer::new()
        .signer(&sign_cert, &sign_key)
        .unwrap()
        .recipient(&enc_cert, RsaPadding::Oaep);
    let mut hashing = Hashing {
        out,
        hash: Sha256::new(),
        len: 0,
    };
    sealer.seal(plain, &mut hashing).unwrap();
    (hashing.len, hashing.hash.finalize().into())
}

struct Hashing<W> {
    out: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.out.write(bytes)?;
        self.hash.update(&bytes[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A sealed dispatch in file `name` whose package starts with an extension entry of `typeflag`
/// declaring 1 GiB, followed by `body` bytes of zeros; returns its offer (transfer id `[id; 16]`).
/// Sealed as G22 would, by `openssl cms -sign -stream | openssl cms -encrypt -stream` (the layout
/// vdx writes, `docs/sealed-dispatch.md`), streamed: fast even in a debug build.
fn hostile_extension(s: &Session, name: &str, typeflag: u8, body: u64, id: u8) -> Offer {
    let header = tar_header("././@LongLink", typeflag, GIB);
    let plain = format!("{name}.tar");
    let mut file = BufWriter::new(File::create(s.path(&plain)).unwrap());
    file.write_all(&header).unwrap();
    io::copy(&mut io::repeat(0).take(body), &mut file).unwrap();
    file.flush().unwrap();
    s.sh(&format!(
        "openssl cms -sign -stream -nodetach -binary -signer g22/keys/sign.pem \
         -inkey g22/keys/sign.key -in {plain} -outform DER \
         | openssl cms -encrypt -stream -binary -aes-256-gcm -outform DER -out {name} \
           h41/keys/enc.pem && rm {plain}"
    ))
    .ok();
    let mut hash = Sha256::new();
    let size = io::copy(&mut File::open(s.path(name)).unwrap(), &mut hash).unwrap();
    offer(id, size, hash.finalize().into())
}

/// A sealed dispatch in S/MIME whose first header line is `line` bytes long.
fn hostile_armour(s: &Session, name: &str, line: u64, id: u8) -> Offer {
    let mut sealed = Vec::new();
    let package = tar_header("dispatch.json", b'0', 0);
    seal_as_g22(s, &package[..], &mut sealed);
    let mut out = Hashing {
        out: BufWriter::new(File::create(s.path(name)).unwrap()),
        hash: Sha256::new(),
        len: 0,
    };
    out.write_all(b"MIME-Version: 1.0\r\nX-Padding: ").unwrap();
    io::copy(&mut io::repeat(b'a').take(line), &mut out).unwrap();
    out.write_all(b"\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n")
        .unwrap();
    out.write_all(b"Content-Transfer-Encoding: base64\r\n\r\n")
        .unwrap();
    let body = openssl::base64::encode_block(&sealed);
    for part in body.as_bytes().chunks(64) {
        out.write_all(part).unwrap();
        out.write_all(b"\r\n").unwrap();
    }
    out.flush().unwrap();
    offer(id, out.len, out.hash.finalize().into())
}

fn offer(id: u8, size: u64, sealed_sha256: [u8; 32]) -> Offer {
    Offer {
        id: [id; 16],
        from: G22.parse().unwrap(),
        to: H41.parse().unwrap(),
        size,
        sealed_sha256,
        urgency: 0,
        expires: 0,
        kind: ObjectKind::Dispatch,
        hops: 0,
    }
}

/// Offers the object in file `name` on a new stream and sends it from where the receiver asks:
/// OFFER, ACCEPT, DATA…, then the receiver's last word (STORED for an object taken into custody).
async fn hand_over(conn: &quinn::Connection, offer: &Offer, name: &Path) -> Frame {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut decoder = FrameDecoder::new();
    let mut next = async |recv: &mut quinn::RecvStream| {
        let mut buf = vec![0; 16 * 1024];
        loop {
            if let Some(frame) = decoder.next_frame().unwrap() {
                return frame;
            }
            let n = recv.read(&mut buf).await.unwrap().unwrap();
            decoder.feed(&buf[..n]);
        }
    };
    let mut frame = Vec::new();
    Frame::Offer(offer.clone()).encode(&mut frame).unwrap();
    send.write_all(&frame).await.unwrap();
    let Frame::Accept { resume_from } = next(&mut recv).await else {
        panic!("the offer was not accepted")
    };
    let mut file = File::open(name).unwrap();
    io::copy(&mut (&mut file).take(resume_from), &mut io::sink()).unwrap();
    let mut offset = resume_from;
    let mut chunk = vec![0; CHUNK];
    loop {
        let n = file.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        frame.clear();
        Frame::Data {
            offset,
            bytes: chunk[..n].to_vec(),
        }
        .encode(&mut frame)
        .unwrap();
        send.write_all(&frame).await.unwrap();
        offset += n as u64;
    }
    let answer = next(&mut recv).await;
    let _ = send.finish();
    answer
}

// ---- the node ----------------------------------------------------------------------------------

fn log(s: &Session, home: &str) -> String {
    String::from_utf8_lossy(&s.read(&format!("{home}.log"))).into_owned()
}

/// Waits until `id` shows `want` at `home`, within this file's limit.
fn wait_status(s: &Session, home: &str, id: &str, want: &str) -> Value {
    vdx_tests::daemon::wait_status(s, LIMIT, home, id, want)
}

// ---- the test ----------------------------------------------------------------------------------

#[test]
fn crafted_tar_extensions_and_armour_lines_are_refused_in_bounded_memory() {
    let s = Session::new();
    let t = std::time::Instant::now();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    eprintln!("{:?}: homes made", t.elapsed());
    let long_name = hostile_extension(&s, "long-name.p7m", b'L', 64 << 20, 0xa1);
    let pax = hostile_extension(&s, "pax.p7m", b'x', 8 << 20, 0xa2);
    eprintln!("{:?}: extensions sealed", t.elapsed());
    let armour = hostile_armour(&s, "armour.p7m", 120_000_000, 0xa3);

    eprintln!("{:?}: homes made, objects crafted", t.elapsed());
    let receiver = Daemon::start(&s, "h41");
    let _sender = Daemon::start(&s, "g22");
    let server = Config::load(&s.path("h41")).unwrap().listen;
    wait_until(&s, LIMIT, "vdxd to start", || {
        log(&s, "h41").contains("vdxd started")
    });
    let (_, at_start) = memory_kib(receiver.pid());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hostile = [
        (&long_name, "long-name.p7m", "type 'L'"),
        (&pax, "pax.p7m", "type 'x'"),
        (&armour, "armour.p7m", "S/MIME header line"),
    ];
    rt.block_on(async {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = endpoint
            .connect_with(
                vdx_tests::peer::client_config(&s, Some("g22/keys")),
                server,
                "peer.vdx.invalid",
            )
            .unwrap()
            .await
            .unwrap();
        for (offer, file, _) in &hostile {
            let answer = hand_over(&conn, offer, &s.path(file)).await;
            assert!(matches!(answer, Frame::Stored { .. }), "{file}: {answer:?}");
        }
        conn.close(0u32.into(), b"done");
    });
    eprintln!("{:?}: handed over", t.elapsed());

    for (offer, file, why) in &hostile {
        let id = vdx_protocol::hex::encode(&offer.id);
        let record = wait_status(&s, "h41", &id, "refused");
        let reason = record["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{file}: {reason}");
        eprintln!("{file}: {} bytes, refused: {reason}", offer.size);
    }
    eprintln!("{:?}: refused", t.elapsed());
    let refused = s
        .vdx(&[
            "--home", "h41", "audit", "log", "--json", "--kind", "refused",
        ])
        .ok()
        .json();
    assert_eq!(
        refused.as_array().unwrap().len(),
        hostile.len(),
        "{refused}"
    );

    let (_, peak) = memory_kib(receiver.pid());
    eprintln!(
        "receiver VmHWM: {} MiB at start, {} MiB after {} MiB sent (declaring {} GiB)",
        at_start >> 10,
        peak >> 10,
        hostile.iter().map(|(o, ..)| o.size).sum::<u64>() >> 20,
        2
    );
    assert!(peak > 0, "the receiver's memory could not be read");
    assert!(
        peak < BUDGET_KIB,
        "the receiver's peak RSS was {} MiB, over {} MiB",
        peak >> 10,
        BUDGET_KIB >> 10
    );

    // It keeps serving: an ordinary dispatch from the real G22 node is registered.
    s.write("cv.txt", "Kính gửi: UBND tỉnh Nghệ An\n".as_bytes());
    let sent = s.send("g22", H41, "7816", "cv.txt", &[]).ok().json();
    let id = sent["copies"][0]["id"].as_str().unwrap().to_owned();
    wait_status(&s, "h41", &id, "registered");
    wait_status(&s, "g22", &id, "delivered");
    eprintln!("{:?}: delivered", t.elapsed());
    let inbox = s.vdx(&["--home", "h41", "inbox", "--json"]).ok().json();
    let registered: Vec<&Value> = inbox
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "registered")
        .collect();
    assert_eq!(registered.len(), 1, "{inbox}");
    let status = s.vdx(&["--home", "h41", "status", "--json"]).ok().json();
    assert_eq!(status["inbox"]["to_open"], 0, "{status}");
    assert_eq!(status["inbox"]["kept_aside"], 0, "{status}");
}
