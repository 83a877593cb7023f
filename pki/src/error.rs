//! The one error type of the pki crate.

/// Why issuing or validating failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The signer's path does not end at a trust anchor.
    #[error("untrusted signer {subject}: {reason}")]
    Untrusted {
        /// Who.
        subject: String,
        /// OpenSSL's explanation.
        reason: String,
    },
    /// A certificate on the path is revoked by a CRL.
    #[error("signer {subject} is revoked (certificate serial {serial})")]
    Revoked {
        /// Who.
        subject: String,
        /// Serial of the signer certificate, hex.
        serial: String,
    },
    /// A certificate on the path had expired at the signing time.
    #[error("signer {subject}: certificate expired ({not_after}) before the signing time {at}")]
    Expired {
        /// Who.
        subject: String,
        /// End of validity.
        not_after: String,
        /// Signing time (or now).
        at: String,
    },
    /// A certificate on the path was not yet valid at the signing time.
    #[error("signer {subject}: certificate not yet valid ({not_before}) at the signing time {at}")]
    NotYetValid {
        /// Who.
        subject: String,
        /// Start of validity.
        not_before: String,
        /// Signing time (or now).
        at: String,
    },
    /// CRLs were given, but none from this issuer: fail closed.
    #[error("no CRL from the issuer of {subject}, though revocation checking is on")]
    CrlMissing {
        /// Whose issuer lacks a CRL.
        subject: String,
    },
    /// A CRL that does not verify or has expired.
    #[error("CRL problem for {subject}: {reason}")]
    CrlInvalid {
        /// Whose path it concerns.
        subject: String,
        /// OpenSSL's explanation.
        reason: String,
    },
    /// The certificate may not sign documents.
    #[error("certificate of {subject} is not for signing: keyUsage lacks digitalSignature and nonRepudiation")]
    KeyUsage {
        /// Who.
        subject: String,
    },
    /// Bytes that should be certificates or CRLs are not.
    #[error("unreadable {what}: {reason}")]
    Parse {
        /// "certificate" or "CRL".
        what: &'static str,
        /// Parser message.
        reason: String,
    },
    /// The request cannot be issued as asked.
    #[error("cannot issue: {0}")]
    Request(String),
    /// The certificate to revoke was not issued by this CA.
    #[error("certificate {serial} was not issued by this CA")]
    NotOurs {
        /// Its serial, hex.
        serial: String,
    },
    /// The certificate is already on the revocation list.
    #[error("certificate {serial} is already revoked")]
    AlreadyRevoked {
        /// Its serial, hex.
        serial: String,
    },
    /// The CA state file is damaged.
    #[error("CA state is unreadable: {0}")]
    State(String),
    /// Path validation failed for another reason.
    #[error("signer {subject} is not valid: {reason}")]
    Other {
        /// Who.
        subject: String,
        /// OpenSSL's explanation.
        reason: String,
    },
    /// Key handling in the crypto crate.
    #[error(transparent)]
    Crypto(#[from] vdx_crypto::Error),
    /// An OpenSSL primitive failed.
    #[error("openssl: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    /// DER encoding of a structure we build failed.
    #[error("encoding: {0}")]
    Der(#[from] der::Error),
}

impl Error {
    /// A stable, machine-readable name for the verdict.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Untrusted { .. } => "untrusted",
            Self::Revoked { .. } => "revoked",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::CrlMissing { .. } => "crl_missing",
            Self::CrlInvalid { .. } => "crl_invalid",
            Self::KeyUsage { .. } => "key_usage",
            Self::Parse { .. } => "parse",
            Self::Request(_) => "request",
            Self::NotOurs { .. } => "not_ours",
            Self::AlreadyRevoked { .. } => "already_revoked",
            Self::State(_) => "state",
            Self::Other { .. } => "invalid",
            Self::Crypto(e) => e.code(),
            Self::OpenSsl(_) => "openssl",
            Self::Der(_) => "encoding",
        }
    }
}
