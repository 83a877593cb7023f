//! `vdx demo`: the whole exchange on an embedded default, so a new user sees it work. By default a
//! network of real daemons (`demo_network`); with `--offline`, the sealing and opening alone:
//! a throw-away CA issues certificates to three agencies; the Government Office seals a dispatch to
//! two provinces (one with EC keys, one with a government-style RSA certificate); each opens it and
//! prints what was verified; OpenSSL's CLI, when installed, checks the same file independently; and
//! two refusals (a tampered copy, an agency that was not addressed) show what failure looks like.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use clap::Args;
use time::format_description::well_known::Rfc3339;

use vdx_crypto::{KeyKind, RsaPadding, Sealer};
use vdx_pki::{Ca, IssueRequest, Issued, Profile, TrustStore};

use crate::cmd_open::{open_and_validate, Refusal};

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Keep the demo's files (CA, agencies, sealed and opened documents) in this directory.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Only seal and open (no daemons): also checks the result with the OpenSSL CLI and shows two
    /// refusals.
    #[arg(long)]
    offline: bool,
    /// The national shape in small: a centre, three provinces hosting communes and a ministry
    /// hosting a department, on a signed directory; a circular to every commune and a reply.
    #[arg(long, conflicts_with = "offline")]
    network: bool,
}

pub(crate) const DISPATCH: &str = "\
VĂN PHÒNG CHÍNH PHỦ
Số: 7816/VPCP-TTĐT                                Hà Nội, ngày 23 tháng 11 năm 2026

V/v thử nghiệm hệ thống trao đổi văn bản điện tử an toàn vdx

Kính gửi: Ủy ban nhân dân các tỉnh Nghệ An, Hà Tĩnh.

Văn bản này được ký số bởi cơ quan gửi và mã hóa đầu cuối tới từng cơ quan nhận
(CMS, RFC 5652; AES-256-GCM). Chỉ cơ quan nhận mở được; mọi sửa đổi đều bị phát hiện.
";

struct Agency {
    code: &'static str,
    name: &'static str,
    issued: Issued,
    dir: PathBuf,
}

pub(crate) fn run(args: DemoArgs) -> Result<ExitCode> {
    let temp;
    let root = match &args.keep {
        Some(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("vdx-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    println!("vdx demo: working in {}", root.display());
    let passed = if args.offline {
        offline(&root)?
    } else if args.network {
        crate::demo_national::run(&root)?
    } else {
        crate::demo_network::run(&root)?
    };
    if args.keep.is_none() {
        println!("vdx demo: cleaned up (use --keep DIR to keep the files)");
    }
    if passed {
        println!("vdx demo: PASSED");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("vdx demo: FAILED");
        Ok(ExitCode::from(1))
    }
}

fn offline(root: &Path) -> Result<bool> {
    let mut ca = Ca::create("vdx demo root CA", KeyKind::EcP256, 30)?;
    let ca_pem = root.join("ca.pem");
    fs::write(&ca_pem, ca.cert().to_pem()?)?;
    println!(
        "1. CA \"vdx demo root CA\" (EC P-256) -> {}",
        ca_pem.display()
    );

    let plan = [
        (
            "000.00.00.G22",
            "Văn phòng Chính phủ",
            KeyKind::EcP256,
            Profile::Separate,
        ),
        (
            "000.00.00.H40",
            "UBND tỉnh Nghệ An",
            KeyKind::EcP256,
            Profile::Separate,
        ),
        (
            "000.00.00.H26",
            "UBND tỉnh Hà Tĩnh",
            KeyKind::Rsa,
            Profile::Combined,
        ),
        (
            "000.00.00.H41",
            "UBND tỉnh Ninh Bình",
            KeyKind::EcP256,
            Profile::Separate,
        ),
    ];
    let mut agencies = Vec::new();
    for (code, name, kind, profile) in plan {
        let issued = ca.issue(&IssueRequest {
            org: code.to_owned(),
            name: name.to_owned(),
            kind,
            profile,
            not_before: None,
            days: 30,
        })?;
        let dir = root.join(code);
        fs::create_dir_all(&dir)?;
        for (role, cert, key) in issued.roles() {
            fs::write(dir.join(format!("{role}.pem")), cert.to_pem()?)?;
            fs::write(dir.join(format!("{role}.key")), &*key.to_pkcs8_pem(None)?)?;
        }
        println!(
            "2. agency {code} {name}: {} certificate(s), {:?} keys",
            issued.roles().len(),
            kind
        );
        agencies.push(Agency {
            code,
            name,
            issued,
            dir,
        });
    }
    let [sender, nghe_an, ha_tinh, outsider] = &agencies[..] else {
        bail!("demo plan changed");
    };

    let document = root.join("7816-VPCP-TTDT.txt");
    fs::write(&document, DISPATCH)?;
    let sealed = root.join("7816-VPCP-TTDT.p7m");
    let (sign_cert, sign_key) = role(sender, "sign")?;
    let summary = Sealer::new()
        .signer(sign_cert, sign_key)?
        .recipient(role(nghe_an, "enc")?.0, RsaPadding::Oaep)
        .recipient(role(ha_tinh, "agency")?.0, RsaPadding::Oaep)
        .seal(DISPATCH.as_bytes(), fs::File::create(&sealed)?)?;
    println!(
        "3. {} sealed {} bytes for {} and {} -> {} ({} bytes)",
        sender.name,
        summary.content_bytes,
        nghe_an.code,
        ha_tinh.code,
        sealed.display(),
        fs::metadata(&sealed)?.len()
    );

    let trust = TrustStore::new(vec![ca.cert().to_owned()], Vec::new(), vec![ca.crl(30)?])?;
    let mut all_ok = true;
    for (agency, enc_role) in [(nghe_an, "enc"), (ha_tinh, "agency")] {
        let (cert, key) = role(agency, enc_role)?;
        let out = agency.dir.join("received.txt");
        match open_and_validate(cert, key, &trust, Vec::new(), &sealed, &out) {
            Ok((opened, signers)) => {
                let same = fs::read(&out)? == DISPATCH.as_bytes();
                all_ok &= same;
                println!(
                    "4. {} opened it: {}, {} bytes, content identical: {}",
                    agency.name,
                    opened.envelope(),
                    opened.content_bytes(),
                    if same { "yes" } else { "NO" }
                );
                for s in signers {
                    println!(
                        "   signed by {} (organ code {}) at {}; signature, integrity, path and CRL verified",
                        s.subject(),
                        s.organ_code().unwrap_or("-"),
                        s.signing_time().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_else(|| "?".into())
                    );
                }
            }
            Err(refusal) => {
                all_ok = false;
                println!("4. {} could NOT open it: {}", agency.name, refusal.message);
            }
        }
    }

    match openssl_check(&sealed, &nghe_an.dir, &ca_pem) {
        Some(Ok(())) => {
            println!("5. OpenSSL CLI independently decrypted and verified it: content identical")
        }
        Some(Err(e)) => {
            all_ok = false;
            println!("5. OpenSSL CLI check FAILED: {e:#}");
        }
        None => println!("5. OpenSSL CLI not installed: independent check skipped"),
    }

    let mut tampered = fs::read(&sealed)?;
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let tampered_path = root.join("tampered.p7m");
    fs::write(&tampered_path, &tampered)?;
    let (cert, key) = role(nghe_an, "enc")?;
    let refused = root.join("tampered.txt");
    all_ok &= expect_refusal(
        "a copy with one bit flipped",
        open_and_validate(cert, key, &trust, Vec::new(), &tampered_path, &refused),
        &refused,
    );
    let (cert, key) = role(outsider, "enc")?;
    let refused = outsider.dir.join("received.txt");
    all_ok &= expect_refusal(
        &format!("{} (not addressed)", outsider.name),
        open_and_validate(cert, key, &trust, Vec::new(), &sealed, &refused),
        &refused,
    );
    Ok(all_ok)
}

fn role<'a>(
    agency: &'a Agency,
    name: &str,
) -> Result<(&'a openssl::x509::X509Ref, &'a vdx_crypto::PrivateKey)> {
    agency
        .issued
        .roles()
        .into_iter()
        .find(|(role, _, _)| *role == name)
        .map(|(_, cert, key)| (cert, key))
        .with_context(|| format!("{} has no {name} certificate", agency.code))
}

fn expect_refusal<T>(what: &str, result: Result<T, Refusal>, output: &Path) -> bool {
    let left_behind = output.exists();
    match result {
        Err(refusal) if !left_behind => {
            println!(
                "6. refused as expected: {what}: [{}] {}",
                refusal.code, refusal.message
            );
            true
        }
        Err(_) => {
            println!("6. {what}: refused, but an output file was left behind");
            false
        }
        Ok(_) => {
            println!("6. {what}: was NOT refused");
            false
        }
    }
}

/// `openssl cms -decrypt | openssl cms -verify` on the sealed file, when the CLI is installed.
fn openssl_check(sealed: &Path, agency_dir: &Path, ca_pem: &Path) -> Option<Result<()>> {
    Command::new("openssl").arg("version").output().ok()?;
    let signed = agency_dir.join("openssl-signed.der");
    let plain = agency_dir.join("openssl-received.txt");
    let run = |args: &[&std::ffi::OsStr]| -> Result<()> {
        let out = Command::new("openssl").args(args).output()?;
        if !out.status.success() {
            bail!(
                "openssl {:?}: {}",
                args,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    let result = (|| {
        run(&[
            "cms".as_ref(),
            "-decrypt".as_ref(),
            "-inform".as_ref(),
            "DER".as_ref(),
            "-in".as_ref(),
            sealed.as_os_str(),
            "-recip".as_ref(),
            agency_dir.join("enc.pem").as_os_str(),
            "-inkey".as_ref(),
            agency_dir.join("enc.key").as_os_str(),
            "-out".as_ref(),
            signed.as_os_str(),
        ])?;
        run(&[
            "cms".as_ref(),
            "-verify".as_ref(),
            "-inform".as_ref(),
            "DER".as_ref(),
            "-in".as_ref(),
            signed.as_os_str(),
            "-CAfile".as_ref(),
            ca_pem.as_os_str(),
            "-out".as_ref(),
            plain.as_os_str(),
        ])?;
        if fs::read(&plain)? != DISPATCH.as_bytes() {
            bail!("OpenSSL's plaintext differs");
        }
        Ok(())
    })();
    Some(result)
}
