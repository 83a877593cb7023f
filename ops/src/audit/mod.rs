//! The security officer's offline audit tools (spec: `docs/ledger.md`): verify a ledger bundle
//! exported by a node, and check an inclusion proof. Both need only the files and the node's
//! certificate (plus, optionally, the trust anchors that certificate must chain to); no node, no
//! network. The command line (`vdx audit ...`) is a thin layer over [`verify_bundle`] and
//! [`check_proof`].

use std::fmt;

mod chain;
pub(crate) mod proof;
pub(crate) mod verify;

#[cfg(test)]
mod testkit;

pub(crate) use proof::check_proof;
pub(crate) use verify::verify_bundle;

/// The first problem an audit found: which entry is bad, when it can be named, and what is wrong.
/// Tampering, truncation, a fork, a bad signature or an unreadable file all end up here; the
/// audit stops at the first one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// The index of the entry found changed, missing or unsigned, when one can be named.
    pub(crate) entry: Option<u64>,
    /// What is wrong, for the officer's report.
    pub(crate) what: String,
}

impl Finding {
    /// A problem with the entry at `index`.
    fn at(index: u64, what: impl Into<String>) -> Self {
        Self {
            entry: Some(index),
            what: what.into(),
        }
    }

    /// A problem with the bundle as a whole (a file, a signature, the certificate).
    fn general(what: impl Into<String>) -> Self {
        Self {
            entry: None,
            what: what.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.entry {
            Some(index) => write!(f, "entry {index}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for Finding {}
