//! The classification policy (độ mật): how high an agency may receive, and which links a
//! `tuyet-mat` dispatch may cross. Checked by the sender when a dispatch is composed and again by
//! the recipient when it arrives, so that a stale or hand-made directory at one end is caught at
//! the other. Pure: the directory entry and the route are handed in.

use vdx_protocol::header::Classification;
use vdx_protocol::OrganCode;

use crate::routing::Hop;

/// Why a dispatch may not go (or be taken) at its classification: a sentence a clerk can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The agency's directory entry allows less.
    #[error("{agency} may receive at most {allowed}, not {classification} (its directory entry)")]
    AboveAllowed {
        /// The recipient.
        agency: String,
        /// The highest classification its entry allows.
        allowed: String,
        /// The dispatch's.
        classification: &'static str,
    },
    /// `tuyet-mat` would cross a relay the sender's configuration does not name.
    #[error(
        "tuyet-mat travels only over a direct link: the way to {recipient} crosses {relay}, which \
         config.toml [policy] tuyet_mat_relays does not name"
    )]
    RelayNotAllowed {
        /// The recipient.
        recipient: String,
        /// The relay the first hop crosses.
        relay: String,
    },
}

/// Whether `agency`, whose directory entry allows `allowed` (none said: a pilot's entry, no
/// limit), may receive a dispatch classified `classification`. An unreadable limit allows nothing
/// classified (fail closed).
pub fn may_receive(
    agency: &str,
    allowed: Option<&str>,
    classification: Classification,
) -> Result<(), PolicyError> {
    let Some(allowed) = allowed else {
        return Ok(());
    };
    let limit = allowed
        .parse::<Classification>()
        .unwrap_or(Classification::None);
    if classification <= limit {
        return Ok(());
    }
    Err(PolicyError::AboveAllowed {
        agency: agency.to_owned(),
        allowed: allowed.to_owned(),
        classification: classification.name(),
    })
}

/// Whether a dispatch classified `classification` for `recipient` (whose node is
/// `recipient_node`) may take `hop`: anything may, but `tuyet-mat` only to a tenant here, to the
/// recipient's own node, or through one of `allowed_relays`.
pub fn may_cross(
    classification: Classification,
    recipient: &OrganCode,
    recipient_node: &OrganCode,
    hop: &Hop,
    allowed_relays: &[OrganCode],
) -> Result<(), PolicyError> {
    if classification != Classification::TuyetMat {
        return Ok(());
    }
    match hop {
        Hop::Local(_) => Ok(()),
        Hop::Peer(node) if node == recipient_node || allowed_relays.contains(node) => Ok(()),
        Hop::Peer(relay) => Err(PolicyError::RelayNotAllowed {
            recipient: recipient.to_string(),
            relay: relay.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: &str) -> OrganCode {
        c.parse().unwrap()
    }

    #[test]
    fn an_agency_receives_up_to_what_its_entry_allows() {
        use Classification::*;
        let x = "000.01.41.H41";
        for c in [None, Mat] {
            assert_eq!(may_receive(x, Some("mat"), c), Ok(()));
        }
        for c in [ToiMat, TuyetMat] {
            let refused = may_receive(x, Some("mat"), c).unwrap_err();
            assert_eq!(
                refused.to_string(),
                format!(
                    "{x} may receive at most mat, not {} (its directory entry)",
                    c.name()
                )
            );
        }
        assert_eq!(
            may_receive(x, Option::None, TuyetMat),
            Ok(()),
            "a pilot entry"
        );
        assert!(
            may_receive(x, Some("secret"), Mat).is_err(),
            "unreadable: nothing classified"
        );
        assert_eq!(may_receive(x, Some("secret"), None), Ok(()));
    }

    #[test]
    fn tuyet_mat_crosses_only_direct_links_or_named_relays() {
        let (to, node, relay) = (
            code("000.01.41.H41"),
            code("000.01.41.H41"),
            code("000.00.00.H41"),
        );
        let via_relay = Hop::Peer(relay.clone());
        for c in [Classification::None, Classification::ToiMat] {
            assert_eq!(may_cross(c, &to, &node, &via_relay, &[]), Ok(()));
        }
        let t = Classification::TuyetMat;
        assert_eq!(
            may_cross(t, &to, &node, &Hop::Peer(node.clone()), &[]),
            Ok(())
        );
        assert_eq!(
            may_cross(t, &to, &node, &Hop::Local(to.clone()), &[]),
            Ok(())
        );
        assert_eq!(
            may_cross(t, &to, &node, &via_relay, &[]),
            Err(PolicyError::RelayNotAllowed {
                recipient: to.to_string(),
                relay: relay.to_string()
            })
        );
        assert_eq!(may_cross(t, &to, &node, &via_relay, &[relay]), Ok(()));
    }
}
