//! The one error type of the crypto crate: every refusal names what was wrong.

use std::io;

/// Why sealing or opening failed. Each variant is a distinct verdict a clerk or officer can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before the CMS structure did.
    #[error("truncated input: the CMS structure ends early (after {offset} bytes)")]
    Truncated {
        /// Bytes of (de-armoured) input read before the end.
        offset: u64,
    },
    /// The input contained no bytes at all.
    #[error("empty input: nothing to open")]
    Empty,
    /// The bytes are not the CMS structure they claim to be.
    #[error("corrupt input at byte {offset}: {what}")]
    Malformed {
        /// Offset in the (de-armoured) input, or in the decrypted content for the inner layer.
        offset: u64,
        /// What the parser expected.
        what: &'static str,
    },
    /// A single element is larger than the hard limit for its kind.
    #[error("corrupt input at byte {offset}: {what} of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Where the element starts.
        offset: u64,
        /// Which element.
        what: &'static str,
        /// Its declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// More elements of one kind than the hard limit for that kind (certificates, signers).
    #[error("corrupt input at byte {offset}: more than {limit} {what}")]
    TooMany {
        /// Where the element past the limit starts.
        offset: u64,
        /// Which elements.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A line or block of the armour (PEM or S/MIME) that does not end within its hard limit: it is
    /// refused as soon as the limit is passed, without reading the rest.
    #[error("corrupt input at byte {offset}: {what} longer than {limit} bytes")]
    Overlong {
        /// Where the line or block starts in the armoured input.
        offset: u64,
        /// Which line or block.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The input is CMS but not a type vdx opens.
    #[error(
        "not a sealed dispatch: content type {0} (expected authEnvelopedData or envelopedData)"
    )]
    NotEnveloped(String),
    /// An algorithm identifier we do not implement.
    #[error("unsupported algorithm {oid} for {usage}")]
    UnsupportedAlgorithm {
        /// The dotted OID.
        oid: String,
        /// Where it appeared.
        usage: &'static str,
    },
    /// No RecipientInfo is addressed to the certificate we were given.
    #[error("not a recipient: the document is not encrypted to this certificate")]
    NotARecipient,
    /// The private key is not the one in the certificate.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// The content-encryption key could not be recovered with our key.
    #[error("cannot decrypt the content-encryption key with this private key")]
    KeyDecryptFailed,
    /// The GCM tag (or CBC padding) does not check: the ciphertext was altered.
    #[error("integrity check failed: the encrypted content was altered or damaged")]
    IntegrityFailed,
    /// Authenticated attributes in AuthEnvelopedData: OpenSSL 3.0 mis-encodes them, so we refuse them.
    #[error("unsupported: authenticated attributes in AuthEnvelopedData")]
    AuthAttributesUnsupported,
    /// The signed content has no signer.
    #[error("the document carries no signature")]
    Unsigned,
    /// SignedData without encapsulated content.
    #[error("detached signature: the signed content is not inside the document")]
    Detached,
    /// The certificate a SignerInfo names is not in the document or the supplied chain.
    #[error("signer certificate not found for signer #{index}")]
    SignerCertificateMissing {
        /// Position of the SignerInfo.
        index: usize,
    },
    /// The content digest differs from the signed messageDigest attribute.
    #[error("bad signature by {signer}: the content does not match its signed digest")]
    DigestMismatch {
        /// Subject of the signer.
        signer: String,
    },
    /// The signature value does not verify.
    #[error("bad signature by {signer}: the signature value does not verify")]
    BadSignature {
        /// Subject of the signer.
        signer: String,
    },
    /// A key could not be used because it is encrypted and the passphrase is missing or wrong.
    #[error("the private key is encrypted: the passphrase is missing or wrong")]
    KeyLocked,
    /// Not a private key we can read (PKCS#8/PEM/DER, RSA or EC).
    #[error("unreadable private key: expected PKCS#8 (PEM or DER) with an RSA or EC key")]
    KeyFormat,
    /// A certificate could not be parsed.
    #[error("unreadable certificate: {0}")]
    Certificate(String),
    /// Input/output failure of the Read or Write we were handed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// An OpenSSL primitive failed.
    #[error("openssl: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    /// A small DER structure (algorithm identifier, recipient or signer info, certificate) does not
    /// parse; in practice always damaged input.
    #[error("corrupt input: malformed ASN.1 ({0})")]
    Der(#[from] der::Error),
}

impl Error {
    /// A stable, machine-readable name for the verdict (`--json` output, API error codes).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::Empty => "empty",
            Self::Malformed { .. }
            | Self::TooLarge { .. }
            | Self::TooMany { .. }
            | Self::Overlong { .. }
            | Self::Der(_) => "corrupt",
            Self::NotEnveloped(_) => "not_enveloped",
            Self::UnsupportedAlgorithm { .. } | Self::AuthAttributesUnsupported => "unsupported",
            Self::NotARecipient => "not_a_recipient",
            Self::KeyMismatch => "key_mismatch",
            Self::KeyDecryptFailed => "key_decrypt_failed",
            Self::IntegrityFailed => "integrity_failed",
            Self::Unsigned => "unsigned",
            Self::Detached => "detached",
            Self::SignerCertificateMissing { .. } => "signer_certificate_missing",
            Self::DigestMismatch { .. } | Self::BadSignature { .. } => "bad_signature",
            Self::KeyLocked => "key_locked",
            Self::KeyFormat => "key_format",
            Self::Certificate(_) => "certificate",
            Self::Io(_) => "io",
            Self::OpenSsl(_) => "openssl",
        }
    }
}
