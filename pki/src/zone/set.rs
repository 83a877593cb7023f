//! The zones in force and the checks a zone must pass to join them (docs/directory-zones.md,
//! rules 6-9), and the directory they make.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use openssl::x509::{X509Ref, X509};
use time::OffsetDateTime;

use super::content::in_scope;
use super::signed::{check_profile, open};
use super::{refuse, Delegation, Zone, ZoneEntry, ROOT_ZONE};
use crate::error::ZoneRefusal::{
    self, Expired, Malformed, OlderVersion, Revoked, Stale, UnknownSigner, Untrusted,
};
use crate::names::offset_date_time;
use crate::{subject_string, Error, IndexedDirectory, TrustStore};

/// A zone file that passed every check of rules 6-8 against a [`ZoneSet`]: what a node keeps,
/// serves to its peers and builds its directory from. Only [`ZoneSet::check`] makes one, so
/// holding one proves the checks ran. Cheap to clone.
#[derive(Clone)]
pub struct SignedZone {
    inner: Arc<Inner>,
}

struct Inner {
    zone: Zone,
    der: Vec<u8>,
    sha256: [u8; 32],
    signer: X509,
    signer_der: Vec<u8>,
    /// Each delegation's certificate, DER, in the order of `zone.delegations`.
    delegation_ders: Vec<Vec<u8>>,
}

impl fmt::Debug for SignedZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedZone")
            .field("zone", &self.name())
            .field("version", &self.version())
            .field("sha256", &self.sha256_hex())
            .finish()
    }
}

impl SignedZone {
    /// The zone's name: `root` or its authority's organ code.
    pub fn name(&self) -> &str {
        &self.inner.zone.zone
    }

    /// Its version: a newer issue has a greater one.
    pub fn version(&self) -> u64 {
        self.inner.zone.version
    }

    /// When it was issued, Unix seconds.
    pub fn issued(&self) -> u64 {
        self.inner.zone.issued
    }

    /// When a newer issue is due, Unix seconds.
    pub fn next_update(&self) -> u64 {
        self.inner.zone.next_update
    }

    /// Its content.
    pub fn zone(&self) -> &Zone {
        &self.inner.zone
    }

    /// The zone file, exactly as received: what is stored and passed on to peers.
    pub fn der(&self) -> &[u8] {
        &self.inner.der
    }

    /// SHA-256 of the zone file, lower-case hex: what the ledger records.
    pub fn sha256_hex(&self) -> String {
        self.inner
            .sha256
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The certificate that signed it.
    pub fn signer(&self) -> &X509 {
        &self.inner.signer
    }

    /// The signer's subject, for people.
    pub fn signer_subject(&self) -> String {
        subject_string(&self.inner.signer)
    }

    /// Whether it is past its `next_update` at `now` (Unix seconds): still used, but warned of.
    pub fn is_stale(&self, now: u64) -> bool {
        now >= self.inner.zone.next_update
    }

    /// The delegation of `name` in this (root) zone, with its certificate's DER.
    fn delegation(&self, name: &str) -> Option<(&Delegation, &[u8])> {
        let delegations = &self.inner.zone.delegations;
        let i = delegations
            .binary_search_by(|d| d.zone.as_str().cmp(name))
            .ok()?;
        Some((&delegations[i], &self.inner.delegation_ders[i]))
    }
}

/// What [`ZoneSet::check`] made of a zone file that passed.
#[derive(Debug, Clone)]
pub enum Checked {
    /// The zone in force, byte for byte: nothing to do, and not an error.
    Unchanged,
    /// A newer issue, checked: put it in force with [`ZoneSet::with`].
    Newer(SignedZone),
}

/// The zones a node holds, and the root authority it trusts. Immutable: taking a zone makes a new
/// set, so a refused zone changes nothing. Cheap to clone.
#[derive(Clone)]
pub struct ZoneSet {
    inner: Arc<SetInner>,
}

struct SetInner {
    root_authority: X509,
    root_der: Vec<u8>,
    zones: BTreeMap<String, SignedZone>,
}

impl fmt::Debug for ZoneSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneSet")
            .field(
                "root_authority",
                &subject_string(&self.inner.root_authority),
            )
            .field("zones", &self.versions())
            .finish()
    }
}

impl ZoneSet {
    /// An empty set trusting `root_authority` to sign the root zone.
    pub fn new(root_authority: X509) -> Self {
        // A certificate that parsed encodes again; an empty DER would match no signer.
        let root_der = root_authority.to_der().unwrap_or_default();
        Self {
            inner: Arc::new(SetInner {
                root_authority,
                root_der,
                zones: BTreeMap::new(),
            }),
        }
    }

    /// The certificate that must sign the root zone.
    pub fn root_authority(&self) -> &X509 {
        &self.inner.root_authority
    }

    /// Every check of `docs/directory-zones.md` on a zone file against this set (rules 2-8): its
    /// CMS and signature, its content, its signer (the root authority, or its delegation's
    /// certificate in the root zone held), the signer's profile and validity at `now` (Unix
    /// seconds), with `trust` (the node's anchors and CRLs, when it has them) its path and
    /// revocation, its scope, and its version against the zone of that name in force.
    pub fn check(
        &self,
        der: &[u8],
        trust: Option<&TrustStore>,
        now: u64,
    ) -> Result<Checked, Error> {
        const LABEL: &str = "(unread)";
        // What a peer may send again and again costs a digest, not a signature check: a zone
        // held already, or an older issue by the signer of the one held (refusing is safe
        // before the signature is judged: nothing changes).
        let sha256 = openssl::sha::sha256(der);
        if self.inner.zones.values().any(|z| z.inner.sha256 == sha256) {
            return Ok(Checked::Unchanged);
        }
        if let Ok((claimed, claimed_signer)) = Zone::read_unverified(der) {
            self.check_version(&claimed.zone, claimed.version, &claimed_signer.to_der()?)?;
        }
        let (content, signer) = open(der, LABEL)?;
        let zone = Zone::decode(&content, LABEL)?;
        let name = zone.zone.clone();
        let parsed = zone.check()?;
        let signer_der = signer.to_der()?;
        let scope = if name == ROOT_ZONE {
            if signer_der != self.inner.root_der {
                return Err(refuse(
                    UnknownSigner,
                    &name,
                    format!(
                        "signed by {}, not the root authority {}",
                        subject_string(&signer),
                        subject_string(&self.inner.root_authority)
                    ),
                ));
            }
            None
        } else {
            let root = self
                .get(ROOT_ZONE)
                .filter(|_| self.in_force(ROOT_ZONE))
                .ok_or_else(|| {
                    refuse(UnknownSigner, &name, "no root zone is held to delegate it")
                })?;
            let (delegation, cert) = root.delegation(&name).ok_or_else(|| {
                refuse(
                    UnknownSigner,
                    &name,
                    format!(
                        "the root zone version {} does not delegate it",
                        root.version()
                    ),
                )
            })?;
            if cert != signer_der.as_slice() {
                return Err(refuse(
                    UnknownSigner,
                    &name,
                    format!(
                        "signed by {}, not the certificate of its delegation in root version {}",
                        subject_string(&signer),
                        root.version()
                    ),
                ));
            }
            Some(delegation.scope.clone())
        };
        check_profile(&name, &signer)?;
        check_validity(&name, &signer, now)?;
        if let Some(trust) = trust {
            let at = i64::try_from(now)
                .ok()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
            trust
                .validate_signer(&signer, &[], at)
                .map_err(|e| refuse(trust_refusal(&e), &name, e.to_string()))?;
        }
        if let Some(scope) = scope {
            zone.check_scope(&scope)?;
        }
        self.check_version(&name, zone.version, &signer_der)?;
        let delegation_ders = parsed
            .delegations
            .iter()
            .map(|c| c.to_der())
            .collect::<Result<_, _>>()?;
        Ok(Checked::Newer(SignedZone {
            inner: Arc::new(Inner {
                zone,
                der: der.to_vec(),
                sha256,
                signer,
                signer_der,
                delegation_ders,
            }),
        }))
    }

    /// Rule 8: a zone signed by the certificate of the one held under its name must be newer,
    /// in force or not (a root zone that narrows a scope for a while does not let an older issue
    /// back in); a zone under a new certificate (a re-keyed delegation) starts its own series.
    fn check_version(&self, name: &str, version: u64, signer_der: &[u8]) -> Result<(), Error> {
        match self.get(name) {
            Some(held) if held.inner.signer_der == signer_der && version <= held.version() => {
                Err(refuse(
                    OlderVersion,
                    name,
                    format!(
                        "version {version} is not newer than version {} held",
                        held.version()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// A new set with `zone` held in place of any of its name. Whether a delegated zone counts is
    /// decided by the root zone held (rule 9, [`ZoneSet::in_force`]), not here.
    pub fn with(&self, zone: SignedZone) -> Self {
        let mut zones = self.inner.zones.clone();
        zones.insert(zone.name().to_owned(), zone);
        Self {
            inner: Arc::new(SetInner {
                root_authority: self.inner.root_authority.clone(),
                root_der: self.inner.root_der.clone(),
                zones,
            }),
        }
    }

    /// `(name, version)` of each zone held, the root first, then by name.
    pub fn versions(&self) -> Vec<(String, u64)> {
        self.zones()
            .into_iter()
            .map(|z| (z.name().to_owned(), z.version()))
            .collect()
    }

    /// The zones held, the root first, then by name.
    pub fn zones(&self) -> Vec<&SignedZone> {
        let zones = &self.inner.zones;
        zones
            .get(ROOT_ZONE)
            .into_iter()
            .chain(zones.values().filter(|z| z.name() != ROOT_ZONE))
            .collect()
    }

    /// The zone of that name held, in force or not.
    pub fn get(&self, name: &str) -> Option<&SignedZone> {
        self.inner.zones.get(name)
    }

    /// Rule 9: the root zone held (signed by this set's root authority), or a delegated zone held
    /// whose delegation is in that root zone, whose signer is that delegation's certificate, and
    /// whose entries are all inside that delegation's scope (a root zone may narrow it).
    pub fn in_force(&self, name: &str) -> bool {
        let Some(root) = self
            .get(ROOT_ZONE)
            .filter(|r| r.inner.signer_der == self.inner.root_der)
        else {
            return false;
        };
        if name == ROOT_ZONE {
            return true;
        }
        let (Some(zone), Some((delegation, cert))) = (self.get(name), root.delegation(name)) else {
            return false;
        };
        zone.inner.signer_der == cert
            && zone
                .zone()
                .entries
                .iter()
                .all(|e| in_scope(&delegation.scope, &e.organ_code))
    }

    /// The directory in force (rule 9): the entries of the root zone and of each delegated zone in
    /// force, a delegated zone's entry for its authority replacing the root zone's glue. Nothing
    /// is parsed here; each agency's certificates are parsed at its first lookup.
    pub fn directory(&self) -> Result<IndexedDirectory, Error> {
        // `zones()` gives the root zone first: the delegated zones' entries come after its glue.
        let mut entries = std::collections::BTreeMap::new();
        for zone in self.zones().into_iter().filter(|z| self.in_force(z.name())) {
            for entry in &zone.inner.zone.entries {
                entries.insert(entry.organ_code.as_str(), entry);
            }
        }
        IndexedDirectory::from_checked(entries.into_values().map(ZoneEntry::to_entry).collect())
    }
}

/// The signer valid at `now` (rule 6), whether or not the node has trust anchors.
fn check_validity(zone: &str, signer: &X509Ref, now: u64) -> Result<(), Error> {
    let from = offset_date_time(signer.not_before()).map(|t| t.unix_timestamp());
    let until = offset_date_time(signer.not_after()).map(|t| t.unix_timestamp());
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let (Some(from), Some(until)) = (from, until) else {
        return Err(refuse(
            Malformed,
            zone,
            "the signer's validity is unreadable",
        ));
    };
    if now < from {
        return Err(refuse(
            Expired,
            zone,
            format!(
                "the signer's certificate is not valid before {}",
                signer.not_before()
            ),
        ));
    }
    if now >= until {
        return Err(refuse(
            Expired,
            zone,
            format!("the signer's certificate expired at {}", signer.not_after()),
        ));
    }
    Ok(())
}

/// The refusal for a signer the trust store does not validate.
fn trust_refusal(error: &Error) -> ZoneRefusal {
    match error {
        Error::Revoked { .. } => Revoked,
        Error::Expired { .. } | Error::NotYetValid { .. } => Expired,
        Error::KeyUsage { .. } => ZoneRefusal::NotDirectory,
        _ => Untrusted,
    }
}

/// Offline verification of zone files, as `vdx directory verify` does: the root zone first,
/// whatever the order given, then every other against it; one result per file, in the order given.
/// A zone past its `next_update` is reported as a `stale` error (it is still used to check the
/// others). `label` names a file in errors until its content is read.
pub fn verify_zone_files(
    root_authority: &X509,
    files: &[(String, Vec<u8>)],
    trust: Option<&TrustStore>,
    now: u64,
) -> Vec<(String, Result<SignedZone, Error>)> {
    let is_root =
        |der: &[u8]| Zone::read_unverified(der).is_ok_and(|(zone, _)| zone.zone == ROOT_ZONE);
    let mut set = ZoneSet::new(root_authority.clone());
    let mut results: Vec<Option<Result<SignedZone, Error>>> = files.iter().map(|_| None).collect();
    let order = (0..files.len())
        .filter(|&i| is_root(&files[i].1))
        .chain((0..files.len()).filter(|&i| !is_root(&files[i].1)));
    for i in order.collect::<Vec<_>>() {
        let (label, der) = &files[i];
        let result = match set.check(der, trust, now) {
            Ok(Checked::Newer(zone)) => {
                set = set.with(zone.clone());
                Ok(zone)
            }
            Ok(Checked::Unchanged) => {
                let held = Zone::read_unverified(der)
                    .ok()
                    .and_then(|(zone, _)| set.get(&zone.zone).cloned());
                held.ok_or_else(|| refuse(Malformed, label, "unreadable"))
            }
            Err(Error::Zone {
                refusal,
                zone,
                reason,
            }) => Err(Error::Zone {
                refusal,
                zone: if zone == "(unread)" {
                    label.clone()
                } else {
                    zone
                },
                reason,
            }),
            Err(e) => Err(e),
        };
        let result = result.and_then(|zone| {
            if zone.is_stale(now) {
                Err(refuse(
                    Stale,
                    zone.name(),
                    format!("past its next_update {}", zone.next_update()),
                ))
            } else {
                Ok(zone)
            }
        });
        results[i] = Some(result);
    }
    files
        .iter()
        .zip(results)
        .map(|((label, _), result)| {
            let result = result.unwrap_or_else(|| Err(refuse(Malformed, label, "not verified")));
            (label.clone(), result)
        })
        .collect()
}
