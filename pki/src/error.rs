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
    /// A directory zone was refused (docs/directory-zones.md, rule 10): the node keeps what it had.
    #[error("zone {zone} refused ({refusal}): {reason}")]
    Zone {
        /// Which rule it broke: what logs and `vdx directory verify` report.
        refusal: ZoneRefusal,
        /// The zone's name, or the file's label when its content could not be read.
        zone: String,
        /// What exactly was wrong, for people.
        reason: String,
    },
}

/// Why a zone was refused: one code per kind of fault (docs/directory-zones.md, rule 10), so that
/// the node's log, `vdx directory verify` and `vdx directory publish` say the same thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZoneRefusal {
    /// Not CMS signed data at all (plain JSON, say).
    Unsigned,
    /// CMS or content that does not parse, is not canonical, or breaks rules 2-5.
    Malformed,
    /// The signature does not verify.
    BadSignature,
    /// Not the root authority, not the delegation's certificate, or a zone not delegated.
    UnknownSigner,
    /// The signer lacks the directory profile.
    NotDirectory,
    /// The signer is revoked.
    Revoked,
    /// The signer is not valid at the time of checking.
    Expired,
    /// No path from the signer to a trust anchor.
    Untrusted,
    /// An entry outside the authority's scope, or overlapping delegations (rule 7).
    OutOfScope,
    /// Not newer than the zone in force (rule 8).
    OlderVersion,
    /// Past its `next_update` (reported by verification only).
    Stale,
}

impl ZoneRefusal {
    /// The refusal's code, as rule 10 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::UnknownSigner => "unknown_signer",
            Self::NotDirectory => "not_directory",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Untrusted => "untrusted",
            Self::OutOfScope => "out_of_scope",
            Self::OlderVersion => "older_version",
            Self::Stale => "stale",
        }
    }
}

impl std::fmt::Display for ZoneRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
            Self::Zone { refusal, .. } => refusal.as_str(),
        }
    }
}
