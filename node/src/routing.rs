//! Where an object goes next, and who may hand one over, decided from the directory alone for a host
//! node and the agencies it hosts (its tenants, DESIGN §1). Pure — no network, disk or clock — so
//! that every decision is tested on small directories, and the daemon's outbox, receiver and
//! status report all answer the same way.
//!
//! The node of an agency is its directory `host` if it has one, else the agency itself: that is the
//! organ code a connection's TLS certificate carries, and whose endpoint is dialled.

use std::collections::HashSet;

use vdx_pki::IndexedDirectory;
use vdx_protocol::wire::RejectCode;
use vdx_protocol::OrganCode;

/// Where this node stands: what the routing decisions are relative to.
#[derive(Debug, Clone, Copy)]
pub struct Here<'a> {
    /// The host's own organ code: the one its TLS certificate carries.
    pub host: &'a OrganCode,
    /// The agencies hosted here, whose objects are delivered without the network.
    pub tenants: &'a [OrganCode],
    /// The node that carries our traffic (`config.relay`), if any.
    pub relay: Option<&'a OrganCode>,
}

impl<'a> Here<'a> {
    /// A one-agency node: the host is its only tenant.
    pub fn single(host: &'a OrganCode, relay: Option<&'a OrganCode>) -> Self {
        Self {
            host,
            tenants: std::slice::from_ref(host),
            relay,
        }
    }

    /// Whether `code` is a tenant here.
    pub fn hosts(&self, code: &OrganCode) -> bool {
        self.tenants.contains(code)
    }
}

/// Where an object for an agency goes from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// To this tenant, hosted here: delivered without the network.
    Local(OrganCode),
    /// To this node, over the network.
    Peer(OrganCode),
}

/// What an admitted offer is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// Its recipient, a tenant here, opens it.
    Deliver(OrganCode),
    /// It is carried on, unopened, by this tenant, the relay of its sender or recipient.
    Relay {
        /// The tenant that relays it.
        by: OrganCode,
    },
}

/// The relay the directory names for `code`.
pub fn relay_of(directory: &IndexedDirectory, code: &OrganCode) -> Option<OrganCode> {
    field_of(directory, code, |e| e.relay.as_deref())
}

/// Every relay the directory names for `code`, in order: its `relay`, then its
/// `alternate_relays` (the ones its traffic goes through when those before cannot be reached).
pub fn relays_of(directory: &IndexedDirectory, code: &OrganCode) -> Vec<OrganCode> {
    let Some(entry) = directory.get(code.as_str()) else {
        return Vec::new();
    };
    entry
        .relay
        .iter()
        .chain(&entry.alternate_relays)
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// The nodes of every relay the directory names for `code`, in order, each once.
fn relay_nodes(directory: &IndexedDirectory, code: &OrganCode) -> Vec<OrganCode> {
    let mut nodes: Vec<OrganCode> = Vec::new();
    for relay in relays_of(directory, code) {
        let node = node_of(directory, &relay);
        if !nodes.contains(&node) {
            nodes.push(node);
        }
    }
    nodes
}

/// The host the directory names for `code`, if it is hosted as a tenant.
pub fn host_of(directory: &IndexedDirectory, code: &OrganCode) -> Option<OrganCode> {
    field_of(directory, code, |e| e.host.as_deref())
}

/// Who may sign the hop receipt when `hop` takes custody of an object from `from` to `to`: the
/// agency on whose behalf the node at `hop` takes it — `hop` itself, or an agency it hosts that
/// is the recipient or a relay (first or further) of the sender or recipient. In that order; the
/// sender accepts a receipt from any of them, and from nobody else.
pub fn hop_signers(
    directory: &IndexedDirectory,
    hop: &OrganCode,
    from: &OrganCode,
    to: &OrganCode,
) -> Vec<OrganCode> {
    let mut signers = vec![hop.clone()];
    let candidates = std::iter::once(to.clone())
        .chain(relays_of(directory, to))
        .chain(relays_of(directory, from));
    for candidate in candidates {
        if host_of(directory, &candidate).as_ref() == Some(hop) && !signers.contains(&candidate) {
            signers.push(candidate);
        }
    }
    signers
}

/// The node of an agency: its host if it has one, else itself.
pub fn node_of(directory: &IndexedDirectory, code: &OrganCode) -> OrganCode {
    host_of(directory, code).unwrap_or_else(|| code.clone())
}

/// The QUIC address of `peer`'s node: its own endpoint, or its host's if it is hosted.
pub fn endpoint_of<'d>(directory: &'d IndexedDirectory, peer: &OrganCode) -> Option<&'d str> {
    let entry = directory.get(peer.as_str())?;
    match &entry.host {
        Some(host) => directory.get(host)?.endpoint.as_deref(),
        None => entry.endpoint.as_deref(),
    }
}

fn field_of(
    directory: &IndexedDirectory,
    code: &OrganCode,
    field: impl Fn(&vdx_pki::Entry) -> Option<&str>,
) -> Option<OrganCode> {
    directory
        .get(code.as_str())
        .and_then(field)
        .and_then(|c| c.parse().ok())
}

/// Where an object for `to` goes from `here`: a tenant here is delivered locally; an agency one
/// of whose relays is one of our tenants goes straight to its node (we relay for it); else through
/// our relay (which may be the recipient's node itself); else through the recipient's relay's
/// node if the directory names a relay; else to the recipient's node.
///
/// An agency the directory says we host but which is not a tenant here gets `Peer(here.host)`:
/// this node then refuses it as not served ([`admit`]), which is what its sender should read.
pub fn next_hop(directory: &IndexedDirectory, here: &Here<'_>, to: &OrganCode) -> Hop {
    next_hop_avoiding(directory, here, to, &HashSet::new())
}

/// [`next_hop`], bypassing the relays in `unreachable` (nodes whose connection attempts keep
/// failing, as the outbox scheduler judges them): the first of [`hops`] not in `unreachable`;
/// when all are, the first, so that it is tried again. A relay is bypassed only for one the
/// directory names after it: our own further relays (our entry's, after the configured one),
/// or the recipient's.
pub fn next_hop_avoiding(
    directory: &IndexedDirectory,
    here: &Here<'_>,
    to: &OrganCode,
    unreachable: &HashSet<OrganCode>,
) -> Hop {
    let hops = hops(directory, here, to);
    let reachable = hops
        .iter()
        .position(|hop| !matches!(hop, Hop::Peer(peer) if unreachable.contains(peer)))
        .unwrap_or(0);
    hops.into_iter()
        .nth(reachable)
        .unwrap_or_else(|| Hop::Peer(node_of(directory, to)))
}

/// The hops an object for `to` may take from `here`, in order of preference, never empty: the
/// first is [`next_hop`]'s; the others are the further relays it is handed to instead when those
/// before cannot be reached ([`next_hop_avoiding`]). Through our relay: the configured one, then
/// the further relays our own directory entry names (a node with no configured relay has none to
/// bypass). Through the recipient's relays: each relay's node, in the directory's order.
pub fn hops(directory: &IndexedDirectory, here: &Here<'_>, to: &OrganCode) -> Vec<Hop> {
    if here.hosts(to) {
        return vec![Hop::Local(to.clone())];
    }
    let node = node_of(directory, to);
    let theirs = relays_of(directory, to);
    if theirs.iter().any(|r| here.hosts(r)) {
        return vec![Hop::Peer(node)];
    }
    // Through our relay, or straight to it when it is the recipient's node.
    let (first, further) = match here.relay {
        Some(ours) => (ours.clone(), relay_nodes(directory, here.host)),
        None => match theirs.first() {
            Some(relay) => (node_of(directory, relay), relay_nodes(directory, to)),
            None => (node, Vec::new()),
        },
    };
    let mut peers = vec![first];
    for peer in further {
        if peer != *here.host && !peers.contains(&peer) {
            peers.push(peer);
        }
    }
    peers.into_iter().map(Hop::Peer).collect()
}

/// Whether `peer` and this node are linked by a relay: we relay for it (the directory names one
/// of our tenants, or an agency on our node, its relay), or it relays for us (our configured
/// relay, or our directory entry's). Objects in transit travel only over such links.
fn relay_link(directory: &IndexedDirectory, here: &Here<'_>, peer: &OrganCode) -> bool {
    let we_relay_it = relays_of(directory, peer)
        .iter()
        .any(|r| here.hosts(r) || node_of(directory, r) == *here.host);
    we_relay_it || relays_us(directory, here, peer)
}

/// Whether `peer` carries our traffic: our configured relay, or one of our directory entry's
/// relays. What it hands down to us may come from anyone (it is the way in from the rest of the
/// network).
fn relays_us(directory: &IndexedDirectory, here: &Here<'_>, peer: &OrganCode) -> bool {
    here.relay == Some(peer) || relay_nodes(directory, here.host).contains(peer)
}

/// The most steps a chain of relays is followed (more than any `max_hops` a route may have).
const RELAY_CHAIN: usize = 32;

/// Whether `peer`'s node is on a chain of relays that carries `code`'s traffic: `code`'s node,
/// the nodes of its relays (first or further), theirs, … (at most [`RELAY_CHAIN`] steps, so that
/// a loop in the directory ends). A relay handing an object up hands over only objects whose
/// sender is behind it on such a chain: nobody else's transfer ids.
fn on_relay_chain(directory: &IndexedDirectory, code: &OrganCode, peer: &OrganCode) -> bool {
    let mut seen = vec![node_of(directory, code)];
    let mut step = seen.clone();
    for _ in 0..=RELAY_CHAIN {
        if step.contains(peer) {
            return true;
        }
        let mut next = Vec::new();
        for node in &step {
            for relay in relay_nodes(directory, node) {
                if !seen.contains(&relay) {
                    seen.push(relay.clone());
                    next.push(relay);
                }
            }
        }
        if next.is_empty() {
            return false;
        }
        step = next;
    }
    false
}

/// Whether `peer` (the organ code its TLS certificate carries) may hand over an object from `from`
/// to `to`, and what it is for here.
///
/// A peer hands over its own objects, its tenants' (it is the sender's host), or carries them as
/// our relay, as a relay (first or further: [`next_hop_avoiding`]) of their sender or recipient,
/// or as a node we relay for; anyone else
/// claiming another agency's object (and its transfer id) is an impostor (`BadOffer`). The object
/// is delivered when `to` is a tenant here; relayed by the tenant that is the relay of its sender
/// or recipient when `to` is known; relayed in transit by the host's own agency when `peer` and
/// this node are linked by a relay ([`relay_link`]) and [`next_hop`] from here takes it further
/// (to a node that is neither `peer` nor this one: a route through several relays, DESIGN §1);
/// and otherwise not for us (`NotForUs`), notably for an agency the directory says we host but
/// which is not, or no longer, a tenant here. A sender missing from the directory is
/// `UnknownSender`. Size, expiry and hop count are the caller's to check ([`check_hops`]).
pub fn admit(
    directory: &IndexedDirectory,
    here: &Here<'_>,
    peer: &OrganCode,
    from: &OrganCode,
    to: &OrganCode,
) -> Result<Admitted, (RejectCode, String)> {
    let allowed = from == peer
        || host_of(directory, from).as_ref() == Some(peer)
        || here.relay == Some(peer)
        || relay_nodes(directory, from).contains(peer)
        || relay_nodes(directory, to).contains(peer)
        || (relay_link(directory, here, peer)
            && (on_relay_chain(directory, from, peer) || relays_us(directory, here, peer)));
    if !allowed {
        return Err((
            RejectCode::BadOffer,
            format!(
                "{peer} may not hand over an object from {from}: it is neither its sender nor a relay on its way"
            ),
        ));
    }
    let target = if here.hosts(to) {
        Some(Admitted::Deliver(to.clone()))
    } else if directory.get(to.as_str()).is_none() || node_of(directory, to) == *here.host {
        // Unknown, or hosted by us in the directory but not a tenant here (any more).
        None
    } else {
        relays_of(directory, to)
            .into_iter()
            .chain(relays_of(directory, from))
            .find(|r| here.hosts(r))
            .map(|by| Admitted::Relay { by })
            .or_else(|| {
                // In transit: further along the route, never back where it came from.
                let onwards = match next_hop(directory, here, to) {
                    Hop::Peer(next) => next != *peer && next != *here.host,
                    Hop::Local(_) => false,
                };
                (onwards && relay_link(directory, here, peer)).then(|| Admitted::Relay {
                    by: here.host.clone(),
                })
            })
    };
    let Some(target) = target else {
        return Err((
            RejectCode::NotForUs,
            format!("{to} is not served by {}", here.host),
        ));
    };
    if directory.get(from.as_str()).is_none() {
        return Err((
            RejectCode::UnknownSender,
            format!("{from} is not in the directory"),
        ));
    }
    Ok(target)
}

/// Refuses an offer that has crossed `max_hops` relays or more (`BadOffer`): a route that long is
/// a loop in the directory's relays, or a directory nobody meant, and must end somewhere.
pub fn check_hops(hops: u8, max_hops: u8) -> Result<(), (RejectCode, String)> {
    if hops >= max_hops {
        return Err((
            RejectCode::BadOffer,
            format!("crossed {hops} relays: a loop in the directory's relays?"),
        ));
    }
    Ok(())
}

/// Why the directory gives no usable route to a recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The relays named by the directory lead back to a node already on the way.
    #[error("the directory's relays loop: {}", path(.0))]
    Loop(Vec<OrganCode>),
    /// The route crosses `max_hops` relays or more: the last of them would refuse it.
    #[error("the route crosses {relays} relays, the limit is fewer than {max_hops}: {}", path(.route))]
    TooLong {
        /// The nodes on the way, the recipient's last.
        route: Vec<OrganCode>,
        /// The relays crossed (the nodes before the recipient's).
        relays: usize,
        /// The limit (`[limits] max_hops`).
        max_hops: u8,
    },
}

fn path(nodes: &[OrganCode]) -> String {
    nodes
        .iter()
        .map(OrganCode::as_str)
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// The route an object for `to` takes from `here`, as the directory implies it: the nodes it is
/// handed to in turn, the recipient's node last (empty when `to` is hosted here). Each step is
/// [`next_hop`], from `here` as it is for the first, then from each node as the directory
/// describes it (its entry's relay, the agencies it hosts). Refused when a node comes round again
/// ([`RouteError::Loop`]: relays A → B → A) or when the route crosses `max_hops` relays or more
/// ([`RouteError::TooLong`]: the last relay's receiver would refuse it, [`check_hops`]); the
/// sender checks it before anything is sealed, so the clerk reads why at submission.
pub fn route_to(
    directory: &IndexedDirectory,
    here: &Here<'_>,
    to: &OrganCode,
    max_hops: u8,
) -> Result<Vec<OrganCode>, RouteError> {
    let end = node_of(directory, to);
    let mut route = Vec::new();
    let mut hop = next_hop(directory, here, to);
    let mut at = here.host.clone();
    loop {
        let next = match hop {
            Hop::Local(_) => return Ok(route),
            Hop::Peer(next) => next,
        };
        if next == end {
            route.push(next);
            break;
        }
        if next == *here.host || next == at || route.contains(&next) {
            route.push(next);
            return Err(RouteError::Loop(
                std::iter::once(here.host.clone()).chain(route).collect(),
            ));
        }
        route.push(next.clone());
        if route.len() > usize::from(max_hops) {
            break;
        }
        hop = next_hop_from(directory, &next, to);
        at = next;
    }
    let relays = route.len().saturating_sub(1);
    if relays >= usize::from(max_hops) {
        return Err(RouteError::TooLong {
            route,
            relays,
            max_hops,
        });
    }
    Ok(route)
}

/// [`next_hop`] from `node` as the directory describes it: its entry's relay, and the agencies
/// it hosts among those a route to `to` asks about (`to` and its relay).
fn next_hop_from(directory: &IndexedDirectory, node: &OrganCode, to: &OrganCode) -> Hop {
    let mut tenants = vec![node.clone()];
    for code in std::iter::once(to.clone()).chain(relays_of(directory, to)) {
        if host_of(directory, &code).as_ref() == Some(node) && !tenants.contains(&code) {
            tenants.push(code);
        }
    }
    let relay = relay_of(directory, node).map(|r| node_of(directory, &r));
    let here = Here {
        host: node,
        tenants: &tenants,
        relay: relay.as_ref(),
    };
    next_hop(directory, &here, to)
}

#[cfg(test)]
mod tests {
    use vdx_pki::{Ca, Certificates, Directory, Entry};

    use super::*;
    use crate::testkit::{agency, role};

    const G22: &str = "000.00.00.G22"; // central, direct
    const H26: &str = "000.00.00.H26"; // central, direct
    const H40: &str = "000.00.00.H40"; // a province node
    const H41: &str = "000.00.00.H41"; // a province node, hosting XB
    const XA: &str = "000.01.41.H41"; // a commune with its own node, relayed by H41
    const XB: &str = "000.02.41.H41"; // a commune hosted by H41
    const XD: &str = "000.04.40.H40"; // a commune hosted by H40
    const XE: &str = "000.05.41.H41"; // hosted by H41 in the directory, no longer a tenant there
    const XG: &str = "000.07.41.H41"; // its own node, relayed by the tenant XB
    const G99: &str = "000.00.00.G99"; // not in the directory

    fn code(c: &str) -> OrganCode {
        c.parse().unwrap()
    }

    fn entry(ca: &mut Ca, org: &str, relay: Option<&str>, host: Option<&str>) -> Entry {
        let issued = agency(ca, org);
        let pem = |r: &str| String::from_utf8(role(&issued, r).0.to_pem().unwrap()).unwrap();
        Entry {
            organ_code: org.into(),
            name: org.into(),
            endpoint: host
                .is_none()
                .then(|| format!("node-{}.example:4433", org.replace('.', "-"))),
            relay: relay.map(Into::into),
            alternate_relays: Vec::new(),
            host: host.map(Into::into),
            parent: None,
            max_classification: None,
            certificates: Certificates {
                sign: pem("sign"),
                enc: pem("enc"),
                tls: host.is_none().then(|| pem("tls")),
            },
        }
    }

    fn directory(entries: &[(&str, Option<&str>, Option<&str>)]) -> IndexedDirectory {
        let relayed: Vec<(&str, Vec<&str>, Option<&str>)> = entries
            .iter()
            .map(|(org, relay, host)| (*org, relay.iter().copied().collect(), *host))
            .collect();
        directory_relayed(&relayed)
    }

    /// A directory whose entries name any number of relays, the first as `relay`.
    fn directory_relayed(entries: &[(&str, Vec<&str>, Option<&str>)]) -> IndexedDirectory {
        let mut ca = Ca::create("Root", vdx_crypto::KeyKind::EcP256, 30).unwrap();
        let mut dir = Directory::default();
        for (org, relays, host) in entries {
            let mut e = entry(&mut ca, org, relays.first().copied(), *host);
            e.alternate_relays = relays.iter().skip(1).map(|r| (*r).to_owned()).collect();
            dir.upsert(e).unwrap();
        }
        IndexedDirectory::new(dir).unwrap()
    }

    /// G22 central; provinces H41 and H40, H40 hosting XD; XA relayed by H41, else by XD (on
    /// H40); XG relayed by H41 only.
    fn two_relays() -> IndexedDirectory {
        directory_relayed(&[
            (G22, vec![], None),
            (H40, vec![], None),
            (H41, vec![], None),
            (XA, vec![H41, XD], None),
            (XD, vec![], Some(H40)),
            (XG, vec![H41], None),
        ])
    }

    #[test]
    fn an_unreachable_relay_is_bypassed_through_the_next_the_directory_names() {
        let dir = two_relays();
        let (g22, h40, h41, xa, xd, xg) = (
            code(G22),
            code(H40),
            code(H41),
            code(XA),
            code(XD),
            code(XG),
        );
        let none = HashSet::new();
        let h41_down: HashSet<OrganCode> = [h41.clone()].into();
        let both_down: HashSet<OrganCode> = [h41.clone(), h40.clone()].into();
        // Towards XA from G22: its first relay, else its second's node, else the first again.
        let at_g22 = Here::single(&g22, None);
        assert_eq!(
            hops(&dir, &at_g22, &xa),
            [Hop::Peer(h41.clone()), Hop::Peer(h40.clone())]
        );
        assert_eq!(next_hop(&dir, &at_g22, &xa), Hop::Peer(h41.clone()));
        let avoiding = |here: &Here<'_>, to: &OrganCode, down: &HashSet<OrganCode>| {
            next_hop_avoiding(&dir, here, to, down)
        };
        assert_eq!(avoiding(&at_g22, &xa, &none), Hop::Peer(h41.clone()));
        assert_eq!(avoiding(&at_g22, &xa, &h41_down), Hop::Peer(h40.clone()));
        assert_eq!(avoiding(&at_g22, &xa, &both_down), Hop::Peer(h41.clone()));
        // XG names one relay: nothing to bypass it with.
        assert_eq!(avoiding(&at_g22, &xg, &h41_down), Hop::Peer(h41.clone()));
        // From XA, configured with H41: its own entry's further relay.
        let at_xa = Here::single(&xa, Some(&h41));
        assert_eq!(avoiding(&at_xa, &g22, &none), Hop::Peer(h41.clone()));
        assert_eq!(avoiding(&at_xa, &g22, &h41_down), Hop::Peer(h40.clone()));
        assert_eq!(avoiding(&at_xa, &g22, &both_down), Hop::Peer(h41.clone()));
        // Without a configured relay XA goes direct, as before: nothing bypassed.
        let bare_xa = Here::single(&xa, None);
        assert_eq!(avoiding(&bare_xa, &g22, &h41_down), Hop::Peer(g22.clone()));
        // Unreachable peers that are no relay change nothing.
        let g22_down: HashSet<OrganCode> = [g22.clone()].into();
        assert_eq!(
            avoiding(&at_g22, &code(H40), &g22_down),
            Hop::Peer(h40.clone())
        );
        // The second relay carries XA's objects both ways, as its tenant XD.
        let tenants_of_h40 = [h40.clone(), xd.clone()];
        let at_h40 = Here {
            host: &h40,
            tenants: &tenants_of_h40,
            relay: None,
        };
        assert_eq!(next_hop(&dir, &at_h40, &xa), Hop::Peer(xa.clone()));
        assert_eq!(next_hop(&dir, &at_h40, &g22), Hop::Peer(g22.clone()));
        let relayed_by_xd = Ok(Admitted::Relay { by: xd.clone() });
        assert_eq!(admit(&dir, &at_h40, &g22, &g22, &xa), relayed_by_xd);
        assert_eq!(admit(&dir, &at_h40, &xa, &xa, &g22), relayed_by_xd);
        // Its ends take from it what it carries, and its hop receipt may be XD's.
        assert_eq!(
            admit(&dir, &at_xa, &h40, &g22, &xa),
            Ok(Admitted::Deliver(xa.clone()))
        );
        assert_eq!(
            admit(&dir, &at_g22, &h40, &xa, &g22),
            Ok(Admitted::Deliver(g22.clone()))
        );
        assert_eq!(
            hop_signers(&dir, &h40, &g22, &xa),
            [h40.clone(), xd.clone()]
        );
        assert_eq!(
            hop_signers(&dir, &h40, &xa, &g22),
            [h40.clone(), xd.clone()]
        );
        // Not for another agency's objects: XG names H41 only.
        assert_eq!(
            admit(&dir, &at_h40, &g22, &g22, &xg).map_err(|(rc, _)| rc),
            Err(RejectCode::NotForUs)
        );
        assert_eq!(
            admit(&dir, &at_g22, &h40, &xg, &g22).map_err(|(rc, _)| rc),
            Err(RejectCode::BadOffer)
        );
    }

    fn network() -> IndexedDirectory {
        directory(&[
            (G22, None, None),
            (H26, None, None),
            (H40, None, None),
            (H41, None, None),
            (XA, Some(H41), None),
            (XB, None, Some(H41)),
            (XD, None, Some(H40)),
            (XE, Some(H41), Some(H41)),
            (XG, Some(XB), None),
        ])
    }

    #[test]
    fn next_hops_for_direct_peers_relays_and_tenants() {
        let dir = network();
        let (g22, h41, xa, xb) = (code(G22), code(H41), code(XA), code(XB));
        let tenants_of_h41 = [h41.clone(), xb.clone()];
        let at_g22 = Here::single(&g22, None);
        let at_xa = Here::single(&xa, Some(&h41));
        let at_h41 = Here {
            host: &h41,
            tenants: &tenants_of_h41,
            relay: None,
        };
        let peer = |c: &str| Hop::Peer(code(c));
        let local = |c: &str| Hop::Local(code(c));
        let table = [
            // (here, to, hop, why)
            (&at_g22, G22, local(G22), "ourselves"),
            (&at_g22, H26, peer(H26), "a direct peer"),
            (&at_g22, XA, peer(H41), "their relay"),
            (
                &at_g22,
                XB,
                peer(H41),
                "a tenant hosted elsewhere: its host",
            ),
            (
                &at_g22,
                XD,
                peer(H40),
                "a tenant hosted elsewhere: its host",
            ),
            (&at_g22, XG, peer(H41), "their relay is hosted: its host"),
            (&at_xa, XA, local(XA), "ourselves"),
            (&at_xa, G22, peer(H41), "our relay"),
            (&at_xa, H41, peer(H41), "our relay is their node"),
            (&at_xa, XB, peer(H41), "our relay hosts them"),
            (&at_xa, XD, peer(H41), "our relay"),
            (&at_h41, H41, local(H41), "the host's own agency"),
            (&at_h41, XB, local(XB), "a tenant hosted here"),
            (&at_h41, XA, peer(XA), "we relay for it"),
            (&at_h41, XG, peer(XG), "our tenant relays for it"),
            (&at_h41, G22, peer(G22), "a direct peer"),
            (&at_h41, XD, peer(H40), "hosted elsewhere"),
            (&at_h41, XE, peer(H41), "hosted here no more: refused here"),
        ];
        for (here, to, hop, why) in table {
            assert_eq!(
                next_hop(&dir, here, &code(to)),
                hop,
                "from {} to {to}: {why}",
                here.host
            );
        }
    }

    #[test]
    fn hop_receipts_come_from_the_hop_or_an_agency_it_hosts() {
        let dir = network();
        let signers = |hop: &str, from: &str, to: &str| {
            hop_signers(&dir, &code(hop), &code(from), &code(to))
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(signers(H26, G22, H26), [H26], "a direct peer signs its own");
        assert_eq!(signers(H41, G22, XB), [H41, XB], "a tenant of the hop");
        assert_eq!(signers(H41, G22, XA), [H41], "relayed by the host itself");
        assert_eq!(
            signers(H41, G22, XG),
            [H41, XB],
            "relayed by a tenant of the hop"
        );
        assert_eq!(
            signers(H41, G22, XD),
            [H41],
            "hosted elsewhere: not H41's to sign"
        );
        assert_eq!(signers(H40, G22, XB), [H40], "not the hop's tenant");
    }

    /// `Node::next_hop` (the host's type was called `Node` then) before tenants existed, as it was.
    fn next_hop_before_tenants(
        dir: &IndexedDirectory,
        me: &OrganCode,
        relay: Option<&OrganCode>,
        to: &OrganCode,
    ) -> OrganCode {
        let theirs = relay_of(dir, to);
        if theirs.as_ref() == Some(me) {
            return to.clone();
        }
        if let Some(ours) = relay.filter(|r| *r != to) {
            return ours.clone();
        }
        theirs.unwrap_or_else(|| to.clone())
    }

    #[test]
    fn one_tenant_and_no_hosts_route_as_before() {
        let dir = directory(&[
            (G22, None, None),
            (H26, Some(G22), None),
            (H40, None, None),
            (H41, None, None),
            (XA, Some(H41), None),
            (XG, Some(H40), None),
        ]);
        let codes: Vec<OrganCode> = dir
            .directory()
            .entries
            .iter()
            .map(|e| code(&e.organ_code))
            .chain([code(G99)])
            .collect();
        for me in &codes {
            for relay in [None, Some(code(H41)), Some(code(G22))] {
                let here = Here::single(me, relay.as_ref());
                for to in codes.iter().filter(|to| *to != me) {
                    assert_eq!(
                        next_hop(&dir, &here, to),
                        Hop::Peer(next_hop_before_tenants(&dir, me, relay.as_ref(), to)),
                        "from {me} (relay {relay:?}) to {to}"
                    );
                }
                assert_eq!(next_hop(&dir, &here, me), Hop::Local(me.clone()));
            }
        }
    }

    #[test]
    fn offers_are_admitted_from_senders_hosts_and_relays_only() {
        let dir = network();
        let (g22, h41, xa, xb) = (code(G22), code(H41), code(XA), code(XB));
        let tenants_of_h41 = [h41.clone(), xb.clone()];
        let at_g22 = Here::single(&g22, None);
        let at_xa = Here::single(&xa, Some(&h41));
        let at_h41 = Here {
            host: &h41,
            tenants: &tenants_of_h41,
            relay: None,
        };
        let deliver = |c: &str| Ok(Admitted::Deliver(code(c)));
        let relay_by = |c: &str| Ok(Admitted::Relay { by: code(c) });
        let refused = |rc: RejectCode| Err(rc);
        let table = [
            // (here, peer, from, to, decision, why)
            (&at_h41, G22, G22, H41, deliver(H41), "a direct peer"),
            (
                &at_h41,
                G22,
                G22,
                XB,
                deliver(XB),
                "to a tenant hosted here",
            ),
            (&at_h41, H40, XD, XB, deliver(XB), "from the sender's host"),
            (
                &at_h41,
                XA,
                XA,
                G22,
                relay_by(H41),
                "we are the sender's relay",
            ),
            (
                &at_h41,
                G22,
                G22,
                XA,
                relay_by(H41),
                "we are the recipient's relay",
            ),
            (
                &at_h41,
                XG,
                XG,
                H26,
                relay_by(XB),
                "our tenant relays for the sender",
            ),
            (
                &at_h41,
                G22,
                G22,
                XG,
                relay_by(XB),
                "our tenant relays for the recipient",
            ),
            (
                &at_h41,
                G22,
                G22,
                XE,
                refused(RejectCode::NotForUs),
                "a removed tenant",
            ),
            (
                &at_h41,
                G22,
                G22,
                XD,
                refused(RejectCode::NotForUs),
                "hosted elsewhere",
            ),
            (
                &at_h41,
                G22,
                G22,
                H26,
                refused(RejectCode::NotForUs),
                "another's direct peer",
            ),
            (
                &at_h41,
                XA,
                XA,
                G99,
                refused(RejectCode::NotForUs),
                "an unknown recipient",
            ),
            (
                &at_h41,
                H26,
                G22,
                H41,
                refused(RejectCode::BadOffer),
                "an impostor",
            ),
            (
                &at_h41,
                H40,
                G22,
                XB,
                refused(RejectCode::BadOffer),
                "not G22's host",
            ),
            (
                &at_h41,
                G99,
                G99,
                H41,
                refused(RejectCode::UnknownSender),
                "an unknown sender",
            ),
            (&at_xa, H41, G22, XA, deliver(XA), "from our relay"),
            (
                &at_xa,
                H41,
                G22,
                H26,
                refused(RejectCode::NotForUs),
                "not ours to relay",
            ),
            (
                &at_xa,
                G22,
                H26,
                XA,
                refused(RejectCode::BadOffer),
                "an impostor",
            ),
            (
                &at_g22,
                H41,
                XA,
                G22,
                deliver(G22),
                "from the sender's relay",
            ),
            (
                &at_g22,
                H41,
                XB,
                G22,
                deliver(G22),
                "from the sender's host",
            ),
            (
                &at_g22,
                H41,
                XG,
                G22,
                deliver(G22),
                "from the host of the sender's relay",
            ),
            (
                &at_g22,
                H41,
                H26,
                G22,
                refused(RejectCode::BadOffer),
                "an impostor",
            ),
            (
                &at_g22,
                H40,
                XB,
                G22,
                refused(RejectCode::BadOffer),
                "not XB's host",
            ),
        ];
        for (here, peer, from, to, decision, why) in table {
            let got = admit(&dir, here, &code(peer), &code(from), &code(to));
            assert_eq!(
                got.as_ref().map_err(|(rc, _)| *rc),
                decision.as_ref().map_err(|rc| *rc),
                "at {}: {peer} hands over {from} → {to}: {why} ({got:?})",
                here.host
            );
        }
    }

    #[test]
    fn refusals_keep_their_wording() {
        let dir = network();
        let (h41, xb) = (code(H41), code(XB));
        let tenants = [h41.clone(), xb];
        let here = Here {
            host: &h41,
            tenants: &tenants,
            relay: None,
        };
        let reason = |peer: &str, from: &str, to: &str| {
            admit(&dir, &here, &code(peer), &code(from), &code(to))
                .unwrap_err()
                .1
        };
        assert_eq!(
            reason(H26, G22, H41),
            "000.00.00.H26 may not hand over an object from 000.00.00.G22: it is neither its sender nor a relay on its way"
        );
        assert_eq!(
            reason(G22, G22, XE),
            "000.05.41.H41 is not served by 000.00.00.H41"
        );
        assert_eq!(
            reason(G99, G99, H41),
            "000.00.00.G99 is not in the directory"
        );
    }

    const YA: &str = "000.01.26.H26"; // a commune with its own node, relayed by H26
    const YB: &str = "000.02.26.H26"; // a commune hosted by H26

    /// Central G22; provinces H41 and H26 relayed by G22; communes on their own nodes relayed by
    /// their province, and one hosted by H26.
    fn national(g22_relay: Option<&str>) -> IndexedDirectory {
        directory(&[
            (G22, g22_relay, None),
            (H41, Some(G22), None),
            (H26, Some(G22), None),
            (H40, None, None),
            (XA, Some(H41), None),
            (YA, Some(H26), None),
            (YB, None, Some(H26)),
        ])
    }

    #[test]
    fn a_commune_reaches_another_province_s_commune_through_three_relays() {
        let dir = national(None);
        let (g22, h41, h26, xa, ya, yb) = (
            code(G22),
            code(H41),
            code(H26),
            code(XA),
            code(YA),
            code(YB),
        );
        let tenants_of_h26 = [h26.clone(), yb.clone()];
        let at_xa = Here::single(&xa, Some(&h41));
        let at_h41 = Here::single(&h41, Some(&g22));
        let at_g22 = Here::single(&g22, None);
        let at_h26 = Here {
            host: &h26,
            tenants: &tenants_of_h26,
            relay: Some(&g22),
        };
        let at_ya = Here::single(&ya, Some(&h26));
        // Out: XA -> H41 -> G22 -> H26 -> YA, each relay taking it from the one before.
        let out = [
            (&at_xa, None, Hop::Peer(h41.clone())),
            (&at_h41, Some(XA), Hop::Peer(g22.clone())),
            (&at_g22, Some(H41), Hop::Peer(h26.clone())),
            (&at_h26, Some(G22), Hop::Peer(ya.clone())),
            (&at_ya, Some(H26), Hop::Local(ya.clone())),
        ];
        for (here, peer, hop) in &out {
            assert_eq!(next_hop(&dir, here, &ya), *hop, "at {}", here.host);
            if let Some(peer) = peer {
                let admitted = admit(&dir, here, &code(peer), &xa, &ya);
                let expected = match hop {
                    Hop::Local(c) => Admitted::Deliver(c.clone()),
                    Hop::Peer(_) => Admitted::Relay {
                        by: here.host.clone(),
                    },
                };
                assert_eq!(admitted, Ok(expected), "at {} from {peer}", here.host);
            }
        }
        // Back (the delivery receipt): YA -> H26 -> G22 -> H41 -> XA.
        let back = [
            (&at_ya, None, Hop::Peer(h26.clone())),
            (&at_h26, Some(YA), Hop::Peer(g22.clone())),
            (&at_g22, Some(H26), Hop::Peer(h41.clone())),
            (&at_h41, Some(G22), Hop::Peer(xa.clone())),
        ];
        for (here, peer, hop) in &back {
            assert_eq!(next_hop(&dir, here, &xa), *hop, "at {}", here.host);
            if let Some(peer) = peer {
                assert_eq!(
                    admit(&dir, here, &code(peer), &ya, &xa),
                    Ok(Admitted::Relay {
                        by: here.host.clone()
                    }),
                    "at {} from {peer}",
                    here.host
                );
            }
        }
        assert_eq!(
            admit(&dir, &at_xa, &h41, &ya, &xa),
            Ok(Admitted::Deliver(xa.clone()))
        );
        // To a commune hosted by the province: delivered there.
        assert_eq!(next_hop(&dir, &at_g22, &yb), Hop::Peer(h26.clone()));
        assert_eq!(
            admit(&dir, &at_h26, &g22, &xa, &yb),
            Ok(Admitted::Deliver(yb.clone()))
        );
    }

    #[test]
    fn transit_needs_a_relay_link_and_a_step_onwards() {
        let dir = national(None);
        let (g22, h41, h26, xa) = (code(G22), code(H41), code(H26), code(XA));
        let at_g22 = Here::single(&g22, None);
        let at_h41 = Here::single(&h41, Some(&g22));
        let refused = |got: Result<Admitted, (RejectCode, String)>| got.map_err(|(rc, _)| rc);
        // H40 has no relay link with G22: its own object for a commune of H26 is not G22's to
        // carry (H40 would have to reach H26 itself).
        assert_eq!(
            refused(admit(&dir, &at_g22, &code(H40), &code(H40), &code(YA))),
            Err(RejectCode::NotForUs)
        );
        // Nor may it hand over a commune's object, claiming to relay it.
        assert_eq!(
            refused(admit(&dir, &at_g22, &code(H40), &xa, &code(YA))),
            Err(RejectCode::BadOffer)
        );
        // Never back where it came from: our relay handing us what we would hand back to it.
        assert_eq!(
            refused(admit(&dir, &at_h41, &g22, &g22, &code(YA))),
            Err(RejectCode::NotForUs)
        );
        assert_eq!(
            refused(admit(&dir, &at_g22, &h26, &code(YA), &code(YB))),
            Err(RejectCode::NotForUs),
            "G22 would pass it back to H26"
        );
        // A province carries for a node below it by the directory alone (no configured relay).
        let bare_g22 = Here::single(&g22, None);
        assert_eq!(
            admit(&dir, &bare_g22, &h26, &code(YA), &xa),
            Ok(Admitted::Relay { by: g22.clone() })
        );
        // Handing up, a node below us hands over only what comes from behind it: H41 claiming
        // an object of H26's commune (and its transfer id) is an impostor.
        assert_eq!(
            refused(admit(&dir, &bare_g22, &h41, &code(YA), &code(YB))),
            Err(RejectCode::BadOffer)
        );
        // Handing down, our relay brings what comes from anywhere.
        assert_eq!(
            admit(&dir, &at_h41, &g22, &code(YA), &xa),
            Ok(Admitted::Relay { by: h41.clone() })
        );
    }

    #[test]
    fn routes_follow_the_directory_and_refuse_loops_and_long_ones() {
        let dir = national(None);
        let (g22, h41, h26, xa, ya) = (code(G22), code(H41), code(H26), code(XA), code(YA));
        let at_xa = Here::single(&xa, Some(&h41));
        let at_g22 = Here::single(&g22, None);
        let names = |r: Vec<OrganCode>| r.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            names(route_to(&dir, &at_xa, &ya, 8).unwrap()),
            [H41, G22, H26, YA]
        );
        assert_eq!(names(route_to(&dir, &at_g22, &ya, 8).unwrap()), [H26, YA]);
        assert_eq!(names(route_to(&dir, &at_g22, &code(YB), 8).unwrap()), [H26]);
        // Our relay is the recipient's node (whose own relay is G22): straight to it, over the
        // link we have.
        assert_eq!(names(route_to(&dir, &at_xa, &h41, 8).unwrap()), [H41]);
        assert_eq!(
            names(route_to(&dir, &at_xa, &code(H40), 8).unwrap()),
            [H41, G22, H40]
        );
        assert_eq!(route_to(&dir, &at_xa, &xa, 8), Ok(Vec::new()));
        // Three relays: refused below a limit of 4, as the last receiver would refuse it.
        assert!(route_to(&dir, &at_xa, &ya, 4).is_ok());
        let long = route_to(&dir, &at_xa, &ya, 3).unwrap_err();
        assert!(matches!(
            long,
            RouteError::TooLong {
                relays: 3,
                max_hops: 3,
                ..
            }
        ));
        assert_eq!(
            long.to_string(),
            "the route crosses 3 relays, the limit is fewer than 3: \
             000.00.00.H41 -> 000.00.00.G22 -> 000.00.00.H26 -> 000.01.26.H26"
        );
        // G22 relayed by H41, H41 by G22: A -> B -> A.
        let looped = national(Some(H41));
        let err = route_to(&looped, &at_xa, &ya, 8).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the directory's relays loop: 000.01.41.H41 -> 000.00.00.H41 -> 000.00.00.G22 -> 000.00.00.H41"
        );
        // A relay loop in another part of the directory does not stop this route.
        assert!(route_to(&looped, &Here::single(&h26, Some(&g22)), &ya, 8).is_ok());
        // A directory naming a node its own relay ends at once.
        let own = directory(&[
            (G22, None, None),
            (H26, Some(H26), None),
            (YA, Some(H26), None),
        ]);
        assert!(route_to(&own, &Here::single(&g22, None), &ya, 8).is_ok());
    }

    #[test]
    fn offers_past_the_hop_limit_are_refused() {
        assert!(check_hops(0, 8).is_ok());
        assert!(check_hops(7, 8).is_ok());
        assert_eq!(
            check_hops(8, 8),
            Err((
                RejectCode::BadOffer,
                "crossed 8 relays: a loop in the directory's relays?".into()
            ))
        );
        assert!(check_hops(u8::MAX, 8).is_err());
    }

    #[test]
    fn endpoints_are_their_own_or_their_hosts() {
        let dir = network();
        let own = |c: &str| dir.get(c).unwrap().endpoint.clone();
        assert_eq!(endpoint_of(&dir, &code(G22)).map(str::to_owned), own(G22));
        assert_eq!(endpoint_of(&dir, &code(XA)).map(str::to_owned), own(XA));
        assert_eq!(endpoint_of(&dir, &code(XB)).map(str::to_owned), own(H41));
        assert_eq!(endpoint_of(&dir, &code(XD)).map(str::to_owned), own(H40));
        assert!(own(XB).is_none() && own(H41).is_some() && own(H40) != own(H41));
        assert_eq!(endpoint_of(&dir, &code(G99)), None);
        // A tenant whose host is not in the directory cannot be reached.
        let orphan = directory(&[(XB, None, Some(H41))]);
        assert_eq!(endpoint_of(&orphan, &code(XB)), None);
    }
}
