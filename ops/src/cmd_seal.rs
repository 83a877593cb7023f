//! `vdx seal`: sign a document as the sending agency and encrypt it to each recipient agency.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use openssl::asn1::Asn1Time;
use openssl::x509::X509;
use time::format_description::well_known::Rfc3339;

use vdx_crypto::{PrivateKey, RsaPadding, Sealer};

use crate::files::{self, Output};
use crate::pipeline::{BackgroundWriter, SyncingFile};
use crate::progress;

#[derive(Args, Debug)]
pub(crate) struct SealArgs {
    /// Signer certificate (PEM or DER); repeat with --key for a second signer.
    #[arg(long = "cert", value_name = "SIGNER.pem", required = true)]
    certs: Vec<PathBuf>,
    /// Signer private key (PKCS#8; VDX_KEY_PASSPHRASE or a prompt unlocks it), one per --cert.
    #[arg(long = "key", value_name = "SIGNER.key", required = true)]
    keys: Vec<PathBuf>,
    /// Recipient agency's encryption certificate; repeat for several recipients.
    #[arg(long = "to", value_name = "RECIPIENT.pem", required = true)]
    to: Vec<PathBuf>,
    /// Intermediate CA certificates to include for the recipients' path building.
    #[arg(long, value_name = "FILE")]
    chain: Vec<PathBuf>,
    /// Key transport for RSA recipients.
    #[arg(long, value_enum, default_value_t = Padding::Oaep)]
    rsa_padding: Padding,
    /// Where to write the sealed document (DER); `-` for standard output.
    #[arg(short = 'o', long = "out", value_name = "OUT.p7m")]
    out: PathBuf,
    /// The document to seal; `-` for standard input.
    #[arg(value_name = "IN")]
    input: PathBuf,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Padding {
    /// RSAES-OAEP with SHA-256.
    Oaep,
    /// PKCS#1 v1.5, for recipients that know nothing else.
    Pkcs1,
}

pub(crate) fn run(args: SealArgs) -> Result<ExitCode> {
    if args.certs.len() != args.keys.len() {
        bail!(
            "give one --key for each --cert ({} certificates, {} keys)",
            args.certs.len(),
            args.keys.len()
        );
    }
    let mut signers: Vec<(X509, PrivateKey)> = Vec::new();
    for (cert_path, key_path) in args.certs.iter().zip(&args.keys) {
        let cert = files::load_cert(cert_path)?;
        check_current(&cert, "signing", cert_path)?;
        let key = files::load_key(key_path)?;
        if !key.matches(&cert) {
            bail!(
                "{} is not the key of {}",
                key_path.display(),
                cert_path.display()
            );
        }
        signers.push((cert, key));
    }
    let mut recipients = Vec::new();
    for path in &args.to {
        let cert = files::load_cert(path)?;
        check_current(&cert, "recipient", path)?;
        recipients.push(cert);
    }
    let mut chain = Vec::new();
    for path in &args.chain {
        chain.extend(files::load_certs(path)?);
    }
    let padding = match args.rsa_padding {
        Padding::Oaep => RsaPadding::Oaep,
        Padding::Pkcs1 => RsaPadding::Pkcs1,
    };

    let mut sealer = Sealer::new();
    for (cert, key) in &signers {
        sealer = sealer.signer(cert, key)?;
    }
    for cert in &recipients {
        sealer = sealer.recipient(cert, padding);
    }
    for cert in &chain {
        sealer = sealer.chain_cert(cert);
    }

    let (input, len) = files::open_input(&args.input)?;
    let (input, bar) = progress::wrap(input, len, "sealing");
    let summary = if args.out.as_os_str() == "-" {
        // Sealed bytes are not secret: stream them straight out.
        let mut out = BackgroundWriter::new(io::stdout());
        let sealed = sealer.seal(input, &mut out);
        // The writer's own error comes first: a reader that went away stops the sealing too.
        out.finish().map_err(crate::stdout::error)?;
        sealed?
    } else {
        let mut output = Output::create(&args.out)?;
        let mut out = BackgroundWriter::new(SyncingFile::new(output.writer().try_clone()?));
        let summary = sealer.seal(input, &mut out)?;
        out.finish()
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        output.commit()?;
        summary
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.out.as_os_str() != "-" {
        eprintln!(
            "sealed {} bytes (sha256 {}) for {} recipient(s), signed by {} at {} -> {}",
            summary.content_bytes,
            vdx_protocol::hex::encode(&summary.content_sha256),
            recipients.len(),
            signers.len(),
            summary.signing_time.format(&Rfc3339).unwrap_or_default(),
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses a certificate outside its validity period: signing with it, or encrypting to it, would
/// produce a document the other side must reject.
fn check_current(cert: &X509, role: &str, path: &std::path::Path) -> Result<()> {
    let now = Asn1Time::days_from_now(0)?;
    if cert.not_after() < now {
        bail!(
            "the {role} certificate {} expired on {}",
            path.display(),
            cert.not_after()
        );
    }
    if cert.not_before() > now {
        bail!(
            "the {role} certificate {} is not valid before {}",
            path.display(),
            cert.not_before()
        );
    }
    Ok(())
}
