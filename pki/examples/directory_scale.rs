//! The national directory at scale (docs/directory-zones.md): a root zone of 30 central agencies
//! delegating 34 provinces, each province's zone its own node and 98 hosted communes, about 3,400
//! agencies in all, generated with a development CA. Measures, in this process, the time and the
//! resident memory it takes to check every zone into a `ZoneSet` and build the directory in force,
//! and the bytes that move when one commune is added (one province zone) against all zones.
//!
//! `cargo run --release -p vdx-pki --example directory_scale` (writes nothing to disk); with the
//! argument `pilot`, the same agencies as an unsigned `directory.json` loaded as nodes did before
//! zones (every certificate parsed at load), for comparison.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use openssl::x509::X509;
use vdx_crypto::{KeyKind, PrivateKey};
use vdx_pki::{
    Ca, Checked, Delegation, IssueRequest, Profile, Zone, ZoneCertificates, ZoneEntry, ZoneSet,
    ROOT_ZONE,
};

const CENTRAL: usize = 30;
const PROVINCES: usize = 34;
const COMMUNES: usize = 98;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut ca = Ca::create("Dev CA", KeyKind::EcP256, 30)?;
    let (root_cert, root_key) = authority(&mut ca, "000.00.00.A00")?;
    let mut root = zone(ROOT_ZONE, now);
    for g in 0..CENTRAL {
        root.entries
            .push(agency(&mut ca, &format!("000.00.00.G{:02}", 10 + g), None)?);
    }
    let mut provinces = Vec::new();
    for h in 0..PROVINCES {
        let last = format!("H{:02}", 10 + h);
        let code = format!("000.00.00.{last}");
        let (cert, key) = authority(&mut ca, &code)?;
        root.delegations
            .push(Delegation::new(&code, &[&format!("*.{last}")], &cert)?);
        let mut province = zone(&code, now);
        province.entries.push(agency(&mut ca, &code, None)?);
        for c in 0..COMMUNES {
            let commune = format!("000.{:02}.{:02}.{last}", 1 + c / 50, 1 + c % 50);
            province
                .entries
                .push(agency(&mut ca, &commune, Some(&code))?);
        }
        province
            .entries
            .sort_by(|a, b| a.organ_code.cmp(&b.organ_code));
        provinces.push(province.sign(&cert, &key)?);
    }
    root.entries.sort_by(|a, b| a.organ_code.cmp(&b.organ_code));
    let root_file = root.sign(&root_cert, &root_key)?;
    let files: Vec<&[u8]> = std::iter::once(root_file.as_slice())
        .chain(provinces.iter().map(Vec::as_slice))
        .collect();
    let all_bytes: usize = files.iter().map(|f| f.len()).sum();
    let province_bytes = provinces[0].len();
    drop(ca);
    if std::env::args().nth(1).as_deref() == Some("pilot") {
        return pilot(&root, &provinces);
    }

    let rss_before = status_kib("VmRSS:")?;
    let started = Instant::now();
    let mut set = ZoneSet::new(root_cert);
    for file in &files {
        match set.check(file, None, now)? {
            Checked::Newer(zone) => set = set.with(zone),
            Checked::Unchanged => return Err("a zone was unchanged".into()),
        }
    }
    let directory = set.directory()?;
    let elapsed = started.elapsed();
    let rss_after = status_kib("VmRSS:")?;
    let hwm = status_kib("VmHWM:")?;
    let agencies = directory.len();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{agencies} agencies in {} zones checked and indexed in {:.3} s; resident memory +{:.1} MiB \
         ({:.1} -> {:.1} MiB, peak {:.1} MiB); all zone files {:.2} MiB, one province zone {:.0} KiB",
        files.len(),
        elapsed.as_secs_f64(),
        mib(rss_after.saturating_sub(rss_before)),
        mib(rss_before),
        mib(rss_after),
        mib(hwm),
        all_bytes as f64 / 1_048_576.0,
        province_bytes as f64 / 1024.0,
    );
    println!(
        "{{\"mode\":\"zones\",\"agencies\":{agencies},\"zones\":{},\"load_secs\":{:.4},\"rss_before_kib\":{rss_before},\
         \"rss_after_kib\":{rss_after},\"rss_delta_kib\":{},\"vm_hwm_kib\":{hwm},\
         \"all_zone_bytes\":{all_bytes},\"province_zone_bytes\":{province_bytes}}}",
        files.len(),
        elapsed.as_secs_f64(),
        rss_after.saturating_sub(rss_before),
    );
    // Kept alive to the end, so the memory measured is what a node holds.
    drop((set, directory));
    Ok(())
}

/// The same agencies as the unsigned pilot file of `docs/directory.md` (what every node loaded
/// before zones), loaded the way it is: every certificate parsed when the file is read.
fn pilot(root: &Zone, provinces: &[Vec<u8>]) -> Result<()> {
    let mut directory = vdx_pki::Directory::default();
    for entry in &root.entries {
        directory.entries.push(entry.to_entry());
    }
    for file in provinces {
        let (zone, _) = Zone::read_unverified(file)?;
        directory
            .entries
            .extend(zone.entries.iter().map(ZoneEntry::to_entry));
    }
    directory
        .entries
        .sort_by(|a, b| a.organ_code.cmp(&b.organ_code));
    let bytes = directory.to_json()?;
    drop(directory);
    let rss_before = status_kib("VmRSS:")?;
    let started = Instant::now();
    let loaded = vdx_pki::IndexedDirectory::from_json(&bytes)?;
    let elapsed = started.elapsed();
    let rss_after = status_kib("VmRSS:")?;
    let hwm = status_kib("VmHWM:")?;
    let agencies = loaded.len();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{agencies} agencies in an unsigned directory.json loaded in {:.3} s; resident memory \
         +{:.1} MiB ({:.1} -> {:.1} MiB, peak {:.1} MiB); the file {:.2} MiB",
        elapsed.as_secs_f64(),
        mib(rss_after.saturating_sub(rss_before)),
        mib(rss_before),
        mib(rss_after),
        mib(hwm),
        bytes.len() as f64 / 1_048_576.0,
    );
    println!(
        "{{\"mode\":\"pilot\",\"agencies\":{agencies},\"load_secs\":{:.4},\
         \"rss_before_kib\":{rss_before},\"rss_after_kib\":{rss_after},\"rss_delta_kib\":{},\
         \"vm_hwm_kib\":{hwm},\"file_bytes\":{}}}",
        elapsed.as_secs_f64(),
        rss_after.saturating_sub(rss_before),
        bytes.len(),
    );
    drop(loaded);
    Ok(())
}

fn zone(name: &str, now: u64) -> Zone {
    Zone {
        zone: name.into(),
        version: 1,
        issued: now,
        next_update: now + 7 * 86_400,
        entries: Vec::new(),
        delegations: Vec::new(),
    }
}

fn request(org: &str, profile: Profile) -> IssueRequest {
    IssueRequest {
        org: org.into(),
        name: format!("Cơ quan {org}"),
        kind: KeyKind::EcP256,
        profile,
        not_before: None,
        days: 30,
    }
}

fn authority(ca: &mut Ca, org: &str) -> Result<(X509, PrivateKey)> {
    let (_, cert, key) = ca
        .issue(&request(org, Profile::Directory))?
        .into_roles()
        .pop()
        .ok_or("no directory role")?;
    Ok((cert, key))
}

/// An agency with a node of its own (sign, enc, tls), or hosted by `host` (sign, enc).
fn agency(ca: &mut Ca, org: &str, host: Option<&str>) -> Result<ZoneEntry> {
    let profile = if host.is_some() {
        Profile::Hosted
    } else {
        Profile::Separate
    };
    let issued = ca.issue(&request(org, profile))?;
    let roles = issued.roles();
    let cert = |role: &str| roles.iter().find(|(r, _, _)| *r == role).map(|r| r.1);
    let (Some(sign), Some(enc)) = (cert("sign"), cert("enc")) else {
        return Err("missing role".into());
    };
    Ok(ZoneEntry {
        organ_code: org.into(),
        name: format!("Cơ quan {org}"),
        parent: host.map(str::to_owned),
        host: host.map(str::to_owned),
        endpoints: if host.is_some() {
            vec![]
        } else {
            vec!["10.0.0.1:4433".into()]
        },
        relays: vec![],
        max_classification: "mat".into(),
        certificates: ZoneCertificates::new(sign, enc, cert("tls"))?,
    })
}

/// A `/proc/self/status` value in KiB.
fn status_kib(key: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .ok_or("no such line")?;
    Ok(line.split_whitespace().nth(1).ok_or("no value")?.parse()?)
}
