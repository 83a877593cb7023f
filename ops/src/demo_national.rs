//! `vdx demo --network`: the national shape in small, as real daemons on loopback. A centre (the
//! Government Office), three province nodes hosting three communes each as tenants, and a
//! ministry hosting a department; a root directory authority and one per province and ministry,
//! each signing its zone; every node started from the root zone alone, the rest carried by the
//! network. The centre sends a circular to every commune, one commune replies; the demo prints
//! each recipient's delivery, the way each copy took, the bytes on each link and the time until
//! every receipt is back, then stops every daemon. Every step is the `vdx` command a user would
//! type, run as a child process.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cmd_mail::text;
use crate::demo_network::{free_port, start, stop_all, vdxd_binary, wait, Daemon};

const CENTRE: (&str, &str) = ("000.00.00.G22", "Văn phòng Chính phủ");
/// Province and ministry nodes: organ code, name, what they host.
const HOSTS: [(&str, &str); 4] = [
    ("000.00.00.H40", "UBND tỉnh Nghệ An"),
    ("000.00.00.H26", "UBND tỉnh Hà Tĩnh"),
    ("000.00.00.H41", "UBND tỉnh Quảng Bình"),
    ("000.00.00.G05", "Bộ Nội vụ"),
];
const COMMUNES_PER_PROVINCE: usize = 3;
/// Seconds between a node's zone exchanges with the centre (a new zone is passed on at once).
const INTERVAL: &str = "2";

/// The agencies a host serves as tenants: three communes for a province, a department for the
/// ministry.
fn tenants_of(host: &str) -> Vec<(String, String)> {
    let last = host.rsplit('.').next().unwrap_or(host);
    if last.starts_with('G') {
        return vec![(
            format!("000.01.00.{last}"),
            "Vụ Chính quyền địa phương".into(),
        )];
    }
    (1..=COMMUNES_PER_PROVINCE)
        .map(|i| {
            (
                format!("000.{i:02}.{}.{last}", &last[1..]),
                format!("UBND xã số {i} ({last})"),
            )
        })
        .collect()
}

/// Runs this `vdx` with `args` in `root`; its standard output, or why it failed.
fn vdx(root: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(std::env::current_exe()?)
        .current_dir(root)
        .args(args)
        .env_remove("VDX_KEY_PASSPHRASE")
        .env_remove("VDX_HOME")
        .env_remove("VDX_TENANT")
        .output()
        .context("cannot run vdx")?;
    if !out.status.success() {
        bail!(
            "`vdx {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json(root: &Path, args: &[&str]) -> Result<Value> {
    Ok(serde_json::from_str(&vdx(root, args)?)?)
}

/// Every zone's version at `home`, by name.
fn zones_at(root: &Path, home: &str) -> Result<BTreeMap<String, u64>> {
    let status = json(root, &["--home", home, "directory", "status", "--json"])?;
    Ok(status["zones"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|z| (text(&z["zone"]), z["version"].as_u64().unwrap_or(0)))
        .collect())
}

pub(crate) fn run(root: &Path) -> Result<bool> {
    let vdxd = vdxd_binary()?;
    let nodes: Vec<(&str, &str)> = std::iter::once(CENTRE).chain(HOSTS).collect();
    vdx(
        root,
        &[
            "pki",
            "init-ca",
            "--out",
            "ca",
            "--name",
            "vdx demo root CA",
        ],
    )?;
    for (code, _) in &nodes {
        let name = format!("Directory authority {code}");
        let out = format!("auth-{code}");
        let args = ["pki", "issue", "--ca", "ca", "--profile", "directory"];
        vdx(
            root,
            &[&args[..], &["--org", code, "--name", &name, "--out", &out]].concat(),
        )?;
    }
    println!(
        "1. dev CA and {} directory authorities: the root ({}) and one per province and ministry",
        nodes.len(),
        CENTRE.0
    );

    let root_cert = format!("auth-{}/directory.pem", CENTRE.0);
    for (code, name) in &nodes {
        let listen = format!("127.0.0.1:{}", free_port()?);
        let mut args = vec![
            "--home",
            code,
            "init",
            "--org",
            code,
            "--name",
            name,
            "--listen",
            &listen,
            "--ca",
            "ca",
            "--root-authority",
            &root_cert,
            "--zone-interval",
            INTERVAL,
        ];
        if *code != CENTRE.0 {
            args.extend(["--zone-source", CENTRE.0]);
        }
        vdx(root, &args)?;
        // The demo's user is each tenant's clerk (a host's admin reads no tenant's documents).
        let me = rustix::process::getuid().as_raw().to_string();
        let hosted = if *code == CENTRE.0 {
            Vec::new()
        } else {
            tenants_of(code)
        };
        for (tenant, tenant_name) in &hosted {
            let add = [
                "--home",
                code,
                "tenant",
                "add",
                "--org",
                tenant,
                "--name",
                tenant_name,
            ];
            vdx(root, &[&add[..], &["--ca", "ca", "--clerk", &me]].concat())?;
        }
        for agency in std::iter::once(code.to_string()).chain(hosted.into_iter().map(|t| t.0)) {
            let entry = vdx(
                root,
                &["--home", code, "--tenant", &agency, "directory", "export"],
            )?;
            fs::write(root.join(format!("{agency}.json")), entry)?;
        }
    }
    let communes: Vec<String> = HOSTS
        .iter()
        .filter(|(code, _)| code.contains(".H"))
        .flat_map(|(code, _)| tenants_of(code).into_iter().map(|t| t.0))
        .collect();
    println!(
        "2. {} nodes (vdx init, signed mode): the centre, {} provinces hosting {} communes, a ministry hosting a department",
        nodes.len(),
        HOSTS.len() - 1,
        communes.len()
    );

    // The zones: the root (the centre, each host's node as glue, one delegation each), and each
    // host's own (itself and its tenants).
    let mut root_args = vec![
        "directory".to_owned(),
        "sign".into(),
        "--authority".into(),
        format!("auth-{}", CENTRE.0),
        "--zone".into(),
        "root".into(),
        "--version".into(),
        "1".into(),
        "--max-classification".into(),
        "mat".into(),
        "--out".into(),
        "root.zone".into(),
    ];
    for (code, _) in HOSTS {
        root_args.extend([
            "--delegate".into(),
            format!("{code}=auth-{code}/directory.pem"),
        ]);
    }
    root_args.extend(nodes.iter().map(|(code, _)| format!("{code}.json")));
    vdx(
        root,
        &root_args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    for (code, _) in HOSTS {
        let auth = format!("auth-{code}");
        let out = format!("{code}.zone");
        let mut args = vec![
            "directory".to_owned(),
            "sign".into(),
            "--authority".into(),
            auth,
            "--zone".into(),
            code.into(),
            "--version".into(),
            "1".into(),
            "--max-classification".into(),
            "mat".into(),
            "--out".into(),
            out,
            format!("{code}.json"),
        ];
        args.extend(
            tenants_of(code)
                .into_iter()
                .map(|t| format!("{}.json", t.0)),
        );
        vdx(root, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    println!("3. zones signed: root (version 1) and one per province and ministry, each by its own authority");

    let mut daemons: Vec<Daemon> = Vec::new();
    for (code, _) in &nodes {
        daemons.push(start(&vdxd, root, code)?);
    }
    let published = Instant::now();
    for (code, _) in &nodes {
        vdx(root, &["--home", code, "directory", "publish", "root.zone"])?;
    }
    for (code, _) in HOSTS {
        vdx(
            root,
            &[
                "--home",
                code,
                "directory",
                "publish",
                &format!("{code}.zone"),
            ],
        )?;
    }
    for (code, _) in &nodes {
        wait(|| {
            let held = zones_at(root, code)?;
            Ok((held.len() == HOSTS.len() + 1).then_some(Value::Null))
        })?;
    }
    println!(
        "4. {} vdxd started; each was handed the root zone, each host its own zone; every node held all {} zones {:.2} s later",
        daemons.len(),
        HOSTS.len() + 1,
        published.elapsed().as_secs_f64()
    );

    let circular = root.join("chi-thi.txt");
    fs::write(
        &circular,
        "Chỉ thị về việc thử nghiệm mạng trao đổi văn bản quốc gia.\n".repeat(1500),
    )?;
    let sent_at = Instant::now();
    let mut send = vec![
        "--home",
        CENTRE.0,
        "send",
        "--json",
        "--subject",
        "Chỉ thị thử nghiệm",
        "--number",
        "1",
        "--notation",
        "CT-TTg",
        "--urgency",
        "khan",
    ];
    for commune in &communes {
        send.extend(["--to", commune]);
    }
    send.push("chi-thi.txt");
    let sent = json(root, &send)?;
    let message_id = text(&sent["message_id"]);
    println!(
        "5. the centre sent a circular ({} bytes) to all {} communes: message {message_id}",
        fs::metadata(&circular)?.len(),
        communes.len()
    );

    let copies = wait(|| {
        let outbox = json(root, &["--home", CENTRE.0, "outbox", "--json"])?;
        let copies: Vec<Value> = outbox
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|c| text(&c["message_id"]) == message_id)
            .cloned()
            .collect();
        let all = copies.len() == communes.len() && copies.iter().all(|c| c["delivered"] == true);
        Ok(all.then_some(Value::Array(copies)))
    })?;
    let receipts_back = sent_at.elapsed();
    let mut passed = true;
    let mut copies = copies.as_array().cloned().unwrap_or_default();
    copies.sort_by_key(|c| text(&c["to"]));
    // What each province's communes need on its link: the largest copy (the shared content and
    // one RecipientInfo) plus a RecipientInfo and a member line for each other commune.
    let mut needs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for copy in &copies {
        let to = text(&copy["to"]);
        let host = HOSTS
            .iter()
            .find(|(code, _)| tenants_of(code).iter().any(|t| t.0 == to))
            .map_or(to.clone(), |(code, _)| (*code).to_owned());
        let id = text(&copy["id"]);
        let at = json(
            root,
            &["--home", &host, "--tenant", &to, "show", "--json", &id],
        )?;
        let registered = at["status"] == "registered";
        passed &= registered;
        let need = needs.entry(host.clone()).or_default();
        need.0 = need.0.max(copy["size"].as_u64().unwrap_or(0));
        need.1 += 1;
        println!(
            "   {to}: {} via {} → {host} (its host) → {to}; số đến {}; delivery receipt back at the centre",
            if registered { "registered" } else { "NOT registered" },
            CENTRE.0,
            text(&at["incoming_number"]),
        );
    }
    println!(
        "6. all {} delivery receipts back at the centre {:.2} s after sending",
        communes.len(),
        receipts_back.as_secs_f64()
    );
    // The bytes each link carried, as the centre counted them (`vdx metrics`).
    let metrics = vdx(root, &["--home", CENTRE.0, "metrics"])?;
    let counted = |name: &str, peer: &str| -> u64 {
        let series = format!("{name}{{peer=\"{peer}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    for (host, (largest, communes)) in &needs {
        let bytes = counted("vdx_handover_bytes_total", host);
        let objects = counted("vdx_handover_objects_total", host);
        // docs/broadcast.md rule 7: content + RecipientInfos + member list + 1 KiB.
        let rule = largest + (communes - 1) * 600 + communes * 49 + 1024;
        passed &= bytes <= rule;
        println!(
            "   link {} → {host}: {objects} object(s), {bytes} bytes for {communes} communes \
             (one copy is {largest} bytes; within docs/broadcast.md rule 7: {})",
            CENTRE.0,
            if bytes <= rule { "yes" } else { "NO" }
        );
    }

    let (commune, host) = (&communes[0], HOSTS[0].0);
    let reply = json(
        root,
        &[
            "--home",
            host,
            "--tenant",
            commune,
            "send",
            "--json",
            "--to",
            CENTRE.0,
            "--subject",
            "Báo cáo đã nhận chỉ thị",
            "--number",
            "2",
            "--notation",
            "BC-UBND",
            "chi-thi.txt",
        ],
    )?;
    let reply_id = text(&reply["copies"][0]["id"]);
    let replied = Instant::now();
    wait(|| {
        let shown = json(
            root,
            &[
                "--home", host, "--tenant", commune, "show", "--json", &reply_id,
            ],
        )?;
        Ok((shown["delivered"] == true).then_some(shown))
    })?;
    println!(
        "7. {commune} replied to the centre through its host {host}: delivered and receipted in {:.2} s",
        replied.elapsed().as_secs_f64()
    );

    Ok(stop_all(&mut daemons)? && passed)
}
