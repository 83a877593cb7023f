//! `vdx open`: decrypt a sealed document, verify every signature and every signer's certificate
//! path, and only then write the content where it was asked for.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use openssl::x509::{X509Ref, X509};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use vdx_crypto::{Opened, Opener, PrivateKey};
use vdx_pki::{TrustStore, ValidatedSigner};

use crate::files::{self, Output};
use crate::pipeline::{BackgroundWriter, SyncingFile};
use crate::progress;

#[derive(Args, Debug)]
pub(crate) struct OpenArgs {
    /// Our encryption certificate (the recipient's).
    #[arg(long, value_name = "RECIPIENT.pem")]
    cert: PathBuf,
    /// Its private key (PKCS#8; VDX_KEY_PASSPHRASE or a prompt unlocks it).
    #[arg(long, value_name = "RECIPIENT.key")]
    key: PathBuf,
    /// Trust anchor(s): CA certificates the signer's path must end at. Repeatable.
    #[arg(long, value_name = "CA.pem", required = true)]
    trust: Vec<PathBuf>,
    /// Certificate revocation list(s), PEM or DER; with any given, every issuer needs one.
    #[arg(long, value_name = "FILE")]
    crl: Vec<PathBuf>,
    /// Intermediate certificates not carried in the document.
    #[arg(long, value_name = "FILE")]
    chain: Vec<PathBuf>,
    /// Print the verdict as one JSON object.
    #[arg(long)]
    json: bool,
    /// Where to write the content, only once everything verified; `-` for standard output.
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    out: PathBuf,
    /// The sealed document (DER, BER, PEM or S/MIME); `-` for standard input.
    #[arg(value_name = "IN.p7m")]
    input: PathBuf,
}

/// The verdict, as printed with `--json`.
#[derive(Serialize)]
struct Verdict {
    ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    signers: Vec<SignerVerdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    envelope: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Refusal>,
}

#[derive(Serialize)]
struct SignerVerdict {
    subject: String,
    organ_code: Option<String>,
    issuer: String,
    serial: String,
    signing_time: Option<String>,
}

/// Why a document was refused: a stable code for scripts and a sentence for people.
#[derive(Serialize, Debug)]
pub(crate) struct Refusal {
    pub(crate) code: String,
    pub(crate) message: String,
}

impl From<&ValidatedSigner> for SignerVerdict {
    fn from(s: &ValidatedSigner) -> Self {
        Self {
            subject: s.subject().to_owned(),
            organ_code: s.organ_code().map(str::to_owned),
            issuer: s.issuer().to_owned(),
            serial: s.serial().to_owned(),
            signing_time: s.signing_time().and_then(|t| t.format(&Rfc3339).ok()),
        }
    }
}

pub(crate) fn run(args: OpenArgs) -> Result<ExitCode> {
    let to_stdout = args.out.as_os_str() == "-";
    let verdict = match open(&args) {
        Ok(verdict) => verdict,
        Err(refusal) => Verdict {
            ok: false,
            signers: Vec::new(),
            content_bytes: None,
            envelope: None,
            error: Some(refusal),
        },
    };
    let text = if args.json {
        serde_json::to_string(&verdict)?
    } else {
        human(&verdict)
    };
    // With the content on standard output, the verdict goes to standard error.
    if to_stdout || (!verdict.ok && !args.json) {
        eprintln!("{text}");
    } else {
        crate::stdout::write(&format!("{text}\n"))?;
    }
    Ok(if verdict.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn open(args: &OpenArgs) -> Result<Verdict, Refusal> {
    let cert = files::load_cert(&args.cert).map_err(other("certificate"))?;
    let key =
        files::load_key(&args.key).map_err(|e| match e.downcast_ref::<vdx_crypto::Error>() {
            Some(inner) => Refusal {
                code: inner.code().to_owned(),
                message: format!("{e:#}"),
            },
            None => other("key")(e),
        })?;
    let mut anchors = Vec::new();
    for path in &args.trust {
        anchors.extend(files::load_certs(path).map_err(other("trust_anchor"))?);
    }
    let mut intermediates = Vec::new();
    for path in &args.chain {
        intermediates.extend(files::load_certs(path).map_err(other("certificate"))?);
    }
    let mut crls = Vec::new();
    for path in &args.crl {
        let bytes = files::read_file(path).map_err(other("crl"))?;
        crls.extend(vdx_pki::parse_crls(&bytes).map_err(pki_refusal)?);
    }
    let trust = TrustStore::new(anchors, intermediates.clone(), crls).map_err(pki_refusal)?;
    let (opened, signers) =
        open_and_validate(&cert, &key, &trust, intermediates, &args.input, &args.out)?;
    Ok(Verdict {
        ok: true,
        signers: signers.iter().map(SignerVerdict::from).collect(),
        content_bytes: Some(opened.content_bytes()),
        envelope: Some(opened.envelope()),
        error: None,
    })
}

/// Opens `input` as the holder of `cert`/`key`, validates every signer against `trust`, and only
/// then makes `out` appear. On any refusal nothing is written.
pub(crate) fn open_and_validate(
    cert: &X509Ref,
    key: &PrivateKey,
    trust: &TrustStore,
    intermediates: Vec<X509>,
    input: &Path,
    out: &Path,
) -> Result<(Opened, Vec<ValidatedSigner>), Refusal> {
    let opener = Opener::new(cert, key)
        .map_err(crypto_refusal)?
        .extra_certs(intermediates.clone());
    let (reader, len) = files::open_input(input).map_err(other("io"))?;
    let (reader, bar) = progress::wrap(reader, len, "opening");
    let mut output = Output::create(out).map_err(other("io"))?;
    let file = output
        .writer()
        .try_clone()
        .map_err(|e| other("io")(e.into()))?;
    let mut writer = BackgroundWriter::new(SyncingFile::new(file));
    let opened = opener.open(reader, &mut writer).map_err(crypto_refusal)?;
    writer
        .finish()
        .map_err(|e| other("io")(anyhow::Error::new(e).context("cannot write the output")))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut pool = opened.certificates().to_vec();
    pool.extend(intermediates);
    let mut signers = Vec::new();
    for signer in opened.signers() {
        signers.push(
            trust
                .validate_signer(signer.certificate(), &pool, signer.signing_time())
                .map_err(pki_refusal)?,
        );
    }
    // Only now, with integrity, signatures and paths all good, does the content appear.
    output.commit().map_err(other("io"))?;
    Ok((opened, signers))
}

fn crypto_refusal(e: vdx_crypto::Error) -> Refusal {
    Refusal {
        code: e.code().to_owned(),
        message: e.to_string(),
    }
}

fn pki_refusal(e: vdx_pki::Error) -> Refusal {
    Refusal {
        code: e.code().to_owned(),
        message: e.to_string(),
    }
}

fn other(code: &'static str) -> impl Fn(anyhow::Error) -> Refusal {
    move |e| Refusal {
        code: code.to_owned(),
        message: format!("{e:#}"),
    }
}

fn human(v: &Verdict) -> String {
    if let Some(err) = &v.error {
        return format!("vdx open: REFUSED ({}): {}", err.code, err.message);
    }
    let mut lines = vec![format!(
        "OK: decrypted ({}), {} bytes; {} signature(s) verified, certificate path(s) valid",
        v.envelope.unwrap_or("?"),
        v.content_bytes.unwrap_or(0),
        v.signers.len()
    )];
    for s in &v.signers {
        lines.push(format!(
            "  signer: {}\n    organ code: {}\n    issuer: {}\n    serial: {}\n    signed at: {}",
            s.subject,
            s.organ_code.as_deref().unwrap_or("(none in certificate)"),
            s.issuer,
            s.serial,
            s.signing_time.as_deref().unwrap_or("(no signing time)")
        ));
    }
    lines.join("\n")
}
