//! `vdx demo`: a throw-away network on loopback. A dev CA, three agencies (the Government Office
//! and two provinces) as real `vdxd` processes, a dispatch sent by the Government Office's clerk
//! through its node's local API, delivered over QUIC with mutual TLS, opened and numbered at both
//! provinces, receipted back, fetched and compared byte for byte; then every daemon stops cleanly.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::process::{kill_process, Pid, Signal};
use serde_json::{json, Value};
use vdx_node::config::Config;
use vdx_node::tenant::witness::PeerReport;
use vdx_pki::Directory;

use crate::client::Client;
use crate::cmd_demo::DISPATCH;
use crate::cmd_home::{self, InitArgs};
use crate::cmd_mail::{self, text};
use crate::cmd_pki;

const SENDER: (&str, &str) = ("000.00.00.G22", "Văn phòng Chính phủ");
const RECIPIENTS: [(&str, &str); 2] = [
    ("000.00.00.H40", "UBND tỉnh Nghệ An"),
    ("000.00.00.H26", "UBND tỉnh Hà Tĩnh"),
];
/// How long the demo waits for any one step before it gives up.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A `vdxd` the demo started; killed if the demo fails half-way.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) code: &'static str,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn run(root: &Path) -> Result<bool> {
    let vdxd = vdxd_binary()?;
    let ca = root.join("ca");
    cmd_pki::write_ca(&ca, "vdx demo root CA", cmd_pki::KeyType::Ec, 30)?;
    println!("1. dev CA \"vdx demo root CA\" -> {}", ca.display());

    let nodes: Vec<(&str, &str)> = std::iter::once(SENDER).chain(RECIPIENTS).collect();
    for (code, name) in &nodes {
        cmd_home::create(
            &root.join(code),
            &InitArgs {
                org: (*code).to_owned(),
                name: (*name).to_owned(),
                listen: format!("127.0.0.1:{}", free_port()?).parse()?,
                ca: Some(ca.clone()),
                relay: None,
                root_authority: None,
                zone_source: None,
                zone_interval: None,
                root_zone: None,
            },
        )?;
    }
    introduce(root, &nodes)?;
    let mut daemons = Vec::new();
    for (code, name) in &nodes {
        let daemon = start(&vdxd, root, code)?;
        let listen = Config::load(&root.join(code))?.listen;
        println!(
            "2. {code} {name}: vdxd pid {} on QUIC {listen}, local API {}/vdxd.sock",
            daemon.child.id(),
            root.join(code).display()
        );
        daemons.push(daemon);
    }
    println!("3. each node's directory names the other two (organ code, endpoint, certificates)");

    let document = root.join("7816-VPCP-TTDT.txt");
    fs::write(&document, DISPATCH)?;
    let annex = root.join("phu-luc.bin");
    fs::write(&annex, annex_bytes())?;
    let sender = Client::new(&root.join(SENDER.0))?;
    let started = Instant::now();
    let answer = cmd_mail::submit(
        &sender,
        json!({
            "to": RECIPIENTS.map(|(code, _)| code),
            "subject": "V/v thử nghiệm hệ thống trao đổi văn bản điện tử an toàn vdx",
            "number": "7816",
            "notation": "VPCP-TTĐT",
            "urgency": "hoa-toc",
            "classification": "none",
        }),
        &[document.clone(), annex.clone()],
    )?;
    let copies = answer["copies"]
        .as_array()
        .context("the node's answer lists no copies")?
        .clone();
    println!(
        "4. the clerk of {} sent 7816/VPCP-TTĐT (hỏa tốc, 2 files) to {} agencies: message {}",
        SENDER.0,
        copies.len(),
        text(&answer["message_id"])
    );

    let mut passed = true;
    for copy in &copies {
        let id = text(&copy["id"]);
        let to = text(&copy["to"]);
        let recipient = Client::new(&root.join(&to))?;
        let arrived = wait(|| {
            Ok(recipient
                .get(&format!("/v1/dispatches/{id}"))
                .ok()
                .filter(|v| v["status"] == "registered"))
        })?;
        let out = root.join(&to).join("received");
        let files = cmd_mail::fetch_into(&recipient, &id, &out)?;
        let same = fs::read(out.join("7816-VPCP-TTDT.txt"))? == DISPATCH.as_bytes()
            && fs::read(out.join("phu-luc.bin"))? == annex_bytes();
        passed &= same;
        println!(
            "5. {to}: opened, signature and certificate path verified, số đến {}; {} files fetched, {}",
            text(&arrived["incoming_number"]),
            files.len(),
            if same { "identical to what was sent" } else { "DIFFERENT from what was sent" }
        );
    }
    for copy in &copies {
        let id = text(&copy["id"]);
        let delivered = wait(|| {
            Ok(sender
                .get(&format!("/v1/dispatches/{id}"))
                .ok()
                .filter(|v| v["delivered"] == true && v["notices"].is_array()))
        })?;
        println!(
            "6. {} outbox: {} to {} — signed delivery receipt verified, status notice {} (đã đến)",
            SENDER.0,
            text(&delivered["status"]),
            text(&delivered["to"]),
            text(&delivered["notices"][0]["status"])
        );
    }
    println!(
        "   end to end (submit → both delivery receipts back): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    passed &= audit(root, &sender)?;

    Ok(stop_all(&mut daemons)? && passed)
}

/// SIGTERM to every daemon the demo started; whether all exited 0 in time (said either way).
pub(crate) fn stop_all(daemons: &mut [Daemon]) -> Result<bool> {
    let mut clean = true;
    for daemon in daemons.iter_mut() {
        let stopped = stop(daemon)?;
        clean &= stopped;
        if !stopped {
            println!("8. {}'s vdxd did not stop cleanly", daemon.code);
        }
    }
    if clean {
        println!("8. all {} vdxd stopped cleanly on SIGTERM", daemons.len());
    }
    Ok(clean)
}

/// The security officer's view of the sender: its ledger exported through the API and verified
/// from the files alone, and its peers' checkpoints (from their receipts) checked for forks and
/// for checkpoints that did not verify.
fn audit(root: &Path, sender: &Client) -> Result<bool> {
    let bundle = root.join("audit-bundle");
    let end = crate::cmd_audit::export(&root.join(SENDER.0), None, &bundle, 0, None)?;
    let verified = crate::audit::verify_bundle(&bundle, None);
    let peers: Vec<PeerReport> = serde_json::from_value(sender.get("/v1/audit/witness")?)?;
    let findings: Vec<String> = peers
        .iter()
        .filter(|p| p.failed())
        .map(|p| format!("{} {}", p.origin, p.verdict()))
        .collect();
    let witnessed = if peers.is_empty() {
        "none received".to_owned()
    } else if findings.is_empty() {
        "one consistent history each".to_owned()
    } else {
        findings.join(", ")
    };
    match &verified {
        Ok(summary) => println!(
            "7. {} ledger: {end} entries exported and verified ({} signed checkpoints, hash chain and Merkle tree); \
             {} peers' checkpoints from their receipts: {witnessed}",
            SENDER.0,
            summary.checkpoints,
            peers.len(),
        ),
        Err(finding) => println!("7. {} ledger did NOT verify: {finding}", SENDER.0),
    }
    Ok(verified.is_ok() && findings.is_empty() && !peers.is_empty())
}

/// Imports every node's own directory entry into every other node's directory.
fn introduce(root: &Path, nodes: &[(&str, &str)]) -> Result<()> {
    let directory_of = |code: &str| -> Result<(PathBuf, Directory)> {
        let path = root.join(code).join("directory.json");
        let directory = Directory::from_json(&fs::read(&path)?)?;
        Ok((path, directory))
    };
    for (code, _) in nodes {
        let (path, mut directory) = directory_of(code)?;
        for (other, _) in nodes.iter().filter(|(o, _)| o != code) {
            let (_, theirs) = directory_of(other)?;
            for entry in theirs.entries {
                directory.upsert(entry)?;
            }
        }
        fs::write(&path, directory.to_json()?)?;
    }
    Ok(())
}

pub(crate) fn start(vdxd: &Path, root: &Path, code: &'static str) -> Result<Daemon> {
    let home = root.join(code);
    let log = fs::File::create(root.join(format!("{code}.log")))?;
    let child = Command::new(vdxd)
        .arg("--home")
        .arg(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", vdxd.display()))?;
    let mut daemon = Daemon { child, code };
    let socket = home.join(vdx_node::api::SOCKET_NAME);
    let deadline = Instant::now() + PATIENCE;
    while !socket.exists() {
        if let Some(status) = daemon.child.try_wait()? {
            bail!(
                "vdxd for {code} exited ({status}); its log:\n{}",
                fs::read_to_string(root.join(format!("{code}.log"))).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!("vdxd for {code} did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(daemon)
}

/// SIGTERM, then whether it exited 0 in time.
fn stop(daemon: &mut Daemon) -> Result<bool> {
    kill_process(Pid::from_child(&daemon.child), Signal::TERM)
        .context("cannot signal vdxd to stop")?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = daemon.child.try_wait()? {
            return Ok(status.success());
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn wait(mut ready: impl FnMut() -> Result<Option<Value>>) -> Result<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = ready()? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("gave up after {} s", PATIENCE.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `vdxd` beside this `vdx` (both are built by `cargo build`).
pub(crate) fn vdxd_binary() -> Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name("vdxd");
    if !path.exists() {
        bail!(
            "{} not found: build both binaries first (`cargo build --release`)",
            path.display()
        );
    }
    Ok(path)
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A 1 MiB annex with varied bytes, so the transfer is more than one chunk.
fn annex_bytes() -> Vec<u8> {
    (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}
