//! A zone's content (docs/directory-zones.md, rules 2-5 and 7), its canonical encoding (rule 3),
//! and the checks that need no other zone.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use openssl::x509::{X509Ref, X509};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{refuse, FORMAT, ROOT_ZONE};
use crate::directory::{is_organ_code, CLASSIFICATIONS};
use crate::error::ZoneRefusal::{Malformed, OutOfScope};
use crate::{organ_code, Entry, Error};

/// Rule 4: entries per zone.
const MAX_ENTRIES: usize = 2_000;
/// Rule 5: delegations in the root zone.
const MAX_DELEGATIONS: usize = 1_000;
/// Rule 5: patterns per delegation.
const MAX_SCOPE: usize = 64;
/// Rule 4: endpoints and relays per entry.
const MAX_ROUTES: usize = 4;
/// Rule 2: the largest version, so that every JSON reader holds it exactly.
const MAX_VERSION: u64 = (1 << 53) - 1;

/// A zone's content (rules 2-5): what its authority signs. Serialized in the canonical member
/// order, with the `format` member first, written and checked here rather than carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// `root`, or the organ code of the authority that signs it.
    pub zone: String,
    /// Greater for each new issue of the zone.
    pub version: u64,
    /// When it was issued, Unix seconds.
    pub issued: u64,
    /// When a newer issue is due; past it the zone is stale. Unix seconds.
    pub next_update: u64,
    /// The agencies it lists, sorted by organ code.
    pub entries: Vec<ZoneEntry>,
    /// The zones it delegates, sorted by name (the root zone only).
    pub delegations: Vec<Delegation>,
}

/// One agency of a zone (rule 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneEntry {
    /// Its organ code.
    pub organ_code: String,
    /// Its name.
    pub name: String,
    /// The agency above it, for people and routing defaults.
    pub parent: Option<String>,
    /// The node that hosts it as a tenant, if it has none of its own.
    pub host: Option<String>,
    /// `host:port` of its node, tried in order.
    pub endpoints: Vec<String>,
    /// Organ codes of the nodes relaying for it, tried in order.
    pub relays: Vec<String>,
    /// The highest classification it may receive.
    pub max_classification: String,
    /// Its certificates.
    pub certificates: ZoneCertificates,
}

/// An entry's certificates, each base64 of DER: one encoding, so the zone has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneCertificates {
    /// Verifies its signatures.
    pub sign: String,
    /// What dispatches to it are encrypted to.
    pub enc: String,
    /// Identifies its node, if it has one of its own.
    pub tls: Option<String>,
}

/// A zone the root delegates to another authority (rule 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    /// The delegated authority's organ code: the zone's name.
    pub zone: String,
    /// The organ codes it may sign for: a code, or `*.` and a last segment.
    pub scope: Vec<String>,
    /// The certificate that must sign that zone, base64 of DER.
    pub certificate: String,
}

/// The content as written: `format` first, then the members of [`Zone`] in order.
#[derive(Serialize)]
struct WireOut<'a> {
    format: &'static str,
    zone: &'a str,
    version: u64,
    issued: u64,
    next_update: u64,
    entries: &'a [ZoneEntry],
    delegations: &'a [Delegation],
}

/// The content as read; unknown members refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn {
    format: String,
    zone: String,
    version: u64,
    issued: u64,
    next_update: u64,
    entries: Vec<ZoneEntry>,
    delegations: Vec<Delegation>,
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut {
            format: FORMAT,
            zone: &self.zone,
            version: self.version,
            issued: self.issued,
            next_update: self.next_update,
            entries: &self.entries,
            delegations: &self.delegations,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireIn::deserialize(deserializer)?;
        if wire.format != FORMAT {
            return Err(serde::de::Error::custom(format!(
                "format {:?} is not {FORMAT:?}",
                wire.format
            )));
        }
        Ok(Self {
            zone: wire.zone,
            version: wire.version,
            issued: wire.issued,
            next_update: wire.next_update,
            entries: wire.entries,
            delegations: wire.delegations,
        })
    }
}

/// What checking a zone's content parsed that is kept: each delegation's certificate. (Entries'
/// certificates are parsed to be checked, then dropped: a node parses again, once, only those of
/// the agencies it deals with, see [`crate::IndexedDirectory::certificates`].)
pub(crate) struct ParsedZone {
    pub(crate) delegations: Vec<X509>,
}

impl Zone {
    /// The signed bytes (rule 3). Sorts nothing: content whose entries or delegations are out of
    /// order (or repeated) is refused, so that what is signed is what its author wrote.
    pub fn canonical(&self) -> Result<Vec<u8>, Error> {
        let name = &self.zone;
        if !self
            .entries
            .windows(2)
            .all(|p| p[0].organ_code < p[1].organ_code)
        {
            return Err(refuse(
                Malformed,
                name,
                "entries must be unique and sorted by organ_code",
            ));
        }
        if !self.delegations.windows(2).all(|p| p[0].zone < p[1].zone) {
            return Err(refuse(
                Malformed,
                name,
                "delegations must be unique and sorted by zone",
            ));
        }
        serde_json::to_vec(self).map_err(|e| refuse(Malformed, name, e.to_string()))
    }

    /// Decodes signed content, refusing any that is not in its canonical encoding (rule 3).
    /// `label` names the zone in errors until its name is known.
    pub(crate) fn decode(bytes: &[u8], label: &str) -> Result<Self, Error> {
        let zone: Self = serde_json::from_slice(bytes)
            .map_err(|e| refuse(Malformed, label, format!("content: {e}")))?;
        if zone.canonical()? != bytes {
            return Err(refuse(
                Malformed,
                &zone.zone,
                "content is not in its canonical encoding (rule 3)",
            ));
        }
        Ok(zone)
    }

    /// Rules 2, 4 and 5, and for the root zone the part of rule 7 it decides alone; returns the
    /// certificates parsed on the way.
    pub(crate) fn check(&self) -> Result<ParsedZone, Error> {
        let name = self.zone.as_str();
        let bad = |reason: String| refuse(Malformed, name, reason);
        if name != ROOT_ZONE && !is_organ_code(name) {
            return Err(bad(format!(
                "the zone name {name:?} is neither root nor an organ code"
            )));
        }
        if !(1..=MAX_VERSION).contains(&self.version) {
            return Err(bad(format!("version {} is not 1 to 2^53-1", self.version)));
        }
        if self.issued >= self.next_update {
            return Err(bad("issued must be before next_update".into()));
        }
        if self.entries.len() > MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        if name != ROOT_ZONE && !self.delegations.is_empty() {
            return Err(bad("only the root zone delegates".into()));
        }
        if self.delegations.len() > MAX_DELEGATIONS {
            return Err(bad(format!("more than {MAX_DELEGATIONS} delegations")));
        }
        for entry in &self.entries {
            entry.check(name)?;
        }
        let delegations = self
            .delegations
            .iter()
            .map(|d| d.check(name))
            .collect::<Result<Vec<_>, _>>()?;
        if name == ROOT_ZONE {
            self.check_root_scope()?;
        }
        Ok(ParsedZone { delegations })
    }

    /// Rule 7 for the root zone: no two delegations' scopes overlap, and no root entry falls in one
    /// but a delegated authority's own (glue: how its node is reached before its zone is known).
    fn check_root_scope(&self) -> Result<(), Error> {
        // Exact codes and last segments, each with the delegation that claims it.
        let mut codes: HashMap<&str, &str> = HashMap::new();
        let mut lasts: HashMap<&str, &str> = HashMap::new();
        for d in &self.delegations {
            for pattern in &d.scope {
                let (map, key) = match pattern.strip_prefix("*.") {
                    Some(last) => (&mut lasts, last),
                    None => (&mut codes, pattern.as_str()),
                };
                if let Some(other) = map.insert(key, &d.zone).filter(|o| *o != d.zone) {
                    return Err(overlap(&d.zone, other, pattern));
                }
            }
        }
        for (code, zone) in &codes {
            if let Some(other) = lasts.get(last_segment(code)).filter(|o| *o != zone) {
                return Err(overlap(zone, other, code));
            }
        }
        for entry in &self.entries {
            let code = entry.organ_code.as_str();
            let claimed = codes.get(code).or_else(|| lasts.get(last_segment(code)));
            if let Some(zone) = claimed.filter(|zone| **zone != code) {
                return Err(refuse(
                    OutOfScope,
                    ROOT_ZONE,
                    format!("the root zone lists {code}, which zone {zone} is delegated"),
                ));
            }
        }
        Ok(())
    }

    /// Rule 7 for a delegated zone: every entry inside `scope`, its delegation's.
    pub(crate) fn check_scope(&self, scope: &[String]) -> Result<(), Error> {
        match self
            .entries
            .iter()
            .find(|e| !in_scope(scope, &e.organ_code))
        {
            Some(entry) => Err(refuse(
                OutOfScope,
                &self.zone,
                format!(
                    "{} is outside the zone's scope [{}]",
                    entry.organ_code,
                    scope.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }
}

fn overlap(zone: &str, other: &str, pattern: &str) -> Error {
    refuse(
        OutOfScope,
        ROOT_ZONE,
        format!("the scopes of delegations {zone} and {other} overlap at {pattern}"),
    )
}

fn last_segment(code: &str) -> &str {
    code.rsplit('.').next().unwrap_or(code)
}

/// Whether `code` matches one of the patterns of `scope` (rule 5).
pub(crate) fn in_scope(scope: &[String], code: &str) -> bool {
    scope.iter().any(|p| match p.strip_prefix("*.") {
        Some(last) => last_segment(code) == last,
        None => p == code,
    })
}

/// A certificate of a zone: base64 of DER, decoded and parsed by OpenSSL (delegations' certificates,
/// which are kept).
fn certificate(zone: &str, what: &str, base64: &str) -> Result<X509, Error> {
    let der = STANDARD
        .decode(base64)
        .map_err(|e| refuse(Malformed, zone, format!("{what}: not base64: {e}")))?;
    X509::from_der(&der).map_err(|e| {
        refuse(
            Malformed,
            zone,
            format!("{what}: not a DER certificate: {e}"),
        )
    })
}

/// The organ code an entry's certificate carries (base64 of DER), read with the `x509-cert`
/// decoder: entries' certificates are only checked here, and parsing thousands with OpenSSL (which
/// computes its caches for each) would cost most of a zone's check. OpenSSL parses each at its
/// first use ([`crate::IndexedDirectory::certificates`]).
fn carried_code(zone: &str, what: &str, base64: &str) -> Result<Option<String>, Error> {
    use der::Decode as _;
    let der = STANDARD
        .decode(base64)
        .map_err(|e| refuse(Malformed, zone, format!("{what}: not base64: {e}")))?;
    let cert = x509_cert::Certificate::from_der(&der).map_err(|e| {
        refuse(
            Malformed,
            zone,
            format!("{what}: not a DER certificate: {e}"),
        )
    })?;
    let oid = const_oid::ObjectIdentifier::new_unwrap(crate::names::ORGANIZATION_IDENTIFIER);
    let value = cert
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == oid)
        .map(|atv| String::from_utf8_lossy(atv.value.value()).into_owned());
    Ok(value)
}

/// PEM text of a certificate given as base64 of its DER: the same base64, in lines of 64.
fn pem(base64: &str) -> String {
    let mut pem = String::with_capacity(base64.len() + base64.len() / 64 + 56);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in base64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// `host:port` with a non-zero port and a host of printable characters.
fn is_endpoint(endpoint: &str) -> bool {
    endpoint.len() <= 255
        && endpoint.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && host.bytes().all(|b| b.is_ascii_graphic())
                && port.parse::<u16>().is_ok_and(|p| p != 0)
                && port.bytes().all(|b| b.is_ascii_digit())
        })
}

impl ZoneCertificates {
    /// An entry's certificates from parsed ones (each written as base64 of DER).
    pub fn new(sign: &X509Ref, enc: &X509Ref, tls: Option<&X509Ref>) -> Result<Self, Error> {
        Ok(Self {
            sign: base64_der(sign)?,
            enc: base64_der(enc)?,
            tls: tls.map(base64_der).transpose()?,
        })
    }
}

impl Delegation {
    /// A delegation of `zone` for `scope` to the authority whose certificate is `certificate`.
    pub fn new(zone: &str, scope: &[&str], certificate: &X509Ref) -> Result<Self, Error> {
        Ok(Self {
            zone: zone.to_owned(),
            scope: scope.iter().map(|p| (*p).to_owned()).collect(),
            certificate: base64_der(certificate)?,
        })
    }
}

/// A certificate as zones carry it: base64 of its DER.
fn base64_der(cert: &X509Ref) -> Result<String, Error> {
    Ok(STANDARD.encode(cert.to_der()?))
}

impl ZoneEntry {
    /// The zone form of an exported v1 entry (PEM certificates): its endpoint becomes a
    /// one-element list, its relay and alternate relays the list of relays; `parent` and `max_classification` come from the entry, else from the
    /// defaults given. Refused when it has no classification either way, or does not check.
    pub fn from_entry(
        entry: &Entry,
        parent: Option<&str>,
        max_classification: Option<&str>,
    ) -> Result<Self, Error> {
        let code = &entry.organ_code;
        let der = |role: &str| -> Result<Option<String>, Error> {
            Ok(entry
                .certificate(role)?
                .map(|cert| cert.to_der())
                .transpose()?
                .map(|der| STANDARD.encode(der)))
        };
        let required = |role: &str| {
            der(role)?.ok_or_else(|| Error::Request(format!("{code} has no {role} certificate")))
        };
        let max_classification = entry
            .max_classification
            .as_deref()
            .or(max_classification)
            .ok_or_else(|| Error::Request(format!("{code} has no max_classification")))?;
        let zone_entry = Self {
            organ_code: code.clone(),
            name: entry.name.clone(),
            parent: entry.parent.clone().or(parent.map(str::to_owned)),
            host: entry.host.clone(),
            endpoints: entry.endpoint.iter().cloned().collect(),
            relays: entry
                .relay
                .iter()
                .chain(&entry.alternate_relays)
                .cloned()
                .collect(),
            max_classification: max_classification.to_owned(),
            certificates: ZoneCertificates {
                sign: required("sign")?,
                enc: required("enc")?,
                tls: der("tls")?,
            },
        };
        zone_entry.check("entry")?;
        Ok(zone_entry)
    }

    /// The v1 directory entry it stands for: its first endpoint, its relays (the first as `relay`,
    /// the rest as `alternate_relays`), PEM certificates
    /// (the zone's base64 of DER, wrapped: nothing is parsed).
    pub fn to_entry(&self) -> Entry {
        let certs = &self.certificates;
        Entry {
            organ_code: self.organ_code.clone(),
            name: self.name.clone(),
            endpoint: self.endpoints.first().cloned(),
            relay: self.relays.first().cloned(),
            alternate_relays: self.relays.iter().skip(1).cloned().collect(),
            host: self.host.clone(),
            parent: self.parent.clone(),
            max_classification: Some(self.max_classification.clone()),
            certificates: crate::Certificates {
                sign: pem(&certs.sign),
                enc: pem(&certs.enc),
                tls: certs.tls.as_deref().map(pem),
            },
        }
    }

    /// Rule 4 (with rules 2, 3, 5 and 6 of `docs/directory.md`), certificates parsed to be checked.
    fn check(&self, zone: &str) -> Result<(), Error> {
        let code = self.organ_code.as_str();
        let bad = |reason: String| refuse(Malformed, zone, reason);
        if !is_organ_code(code) {
            return Err(bad(format!("{code:?} is not an organ code")));
        }
        let name_len = self.name.chars().count();
        if name_len == 0 || name_len > 500 || self.name.chars().any(char::is_control) {
            return Err(bad(format!(
                "the name of {code} must be 1-500 characters of text"
            )));
        }
        for (field, value) in [("parent", &self.parent), ("host", &self.host)] {
            match value.as_deref() {
                Some(other) if !is_organ_code(other) => {
                    return Err(bad(format!(
                        "the {field} of {code}, {other:?}, is not an organ code"
                    )))
                }
                Some(other) if other == code => {
                    return Err(bad(format!("{code} cannot be its own {field}")))
                }
                _ => {}
            }
        }
        if self.endpoints.len() > MAX_ROUTES || self.relays.len() > MAX_ROUTES {
            return Err(bad(format!(
                "{code} has more than {MAX_ROUTES} endpoints or relays"
            )));
        }
        if let Some(e) = self.endpoints.iter().find(|e| !is_endpoint(e)) {
            return Err(bad(format!(
                "the endpoint {e:?} of {code} is not host:port"
            )));
        }
        if let Some(r) = self.relays.iter().find(|r| !is_organ_code(r)) {
            return Err(bad(format!(
                "the relay {r:?} of {code} is not an organ code"
            )));
        }
        if !CLASSIFICATIONS.contains(&self.max_classification.as_str()) {
            return Err(bad(format!(
                "the max_classification of {code}, {:?}, is not one of {}",
                self.max_classification,
                CLASSIFICATIONS.join(", ")
            )));
        }
        if let Some(host) = &self.host {
            if !self.endpoints.is_empty() || self.certificates.tls.is_some() {
                return Err(bad(format!(
                    "{code} is hosted by {host}: it has no endpoints or tls certificate of its own"
                )));
            }
        }
        let carrying = |role: &str, base64: &str| {
            let what = format!("the {role} certificate of {code}");
            match carried_code(zone, &what, base64)? {
                Some(found) if found == code => Ok(()),
                found => Err(bad(format!(
                    "the {role} certificate of {code} carries organ code {found:?}"
                ))),
            }
        };
        let certs = &self.certificates;
        carrying("sign", &certs.sign)?;
        carrying("enc", &certs.enc)?;
        if let Some(tls) = certs.tls.as_deref() {
            carrying("tls", tls)?;
        }
        Ok(())
    }
}

impl Delegation {
    /// Rule 5; returns the delegation's certificate, parsed.
    fn check(&self, zone: &str) -> Result<X509, Error> {
        let name = self.zone.as_str();
        let bad = |reason: String| refuse(Malformed, zone, reason);
        if !is_organ_code(name) {
            return Err(bad(format!(
                "the delegated zone {name:?} is not an organ code"
            )));
        }
        if self.scope.is_empty() || self.scope.len() > MAX_SCOPE {
            return Err(bad(format!(
                "the scope of {name} must have 1 to {MAX_SCOPE} patterns"
            )));
        }
        let pattern_ok = |p: &str| match p.strip_prefix("*.") {
            Some(last) => !last.is_empty() && last.bytes().all(|b| b.is_ascii_alphanumeric()),
            None => is_organ_code(p),
        };
        if let Some(p) = self.scope.iter().find(|p| !pattern_ok(p)) {
            return Err(bad(format!(
                "the scope pattern {p:?} of {name} is not valid"
            )));
        }
        let cert = certificate(
            zone,
            &format!("the certificate of delegation {name}"),
            &self.certificate,
        )?;
        match organ_code(&cert) {
            Some(found) if found == name => Ok(cert),
            found => Err(bad(format!(
                "the certificate of delegation {name} carries organ code {found:?}"
            ))),
        }
    }
}
