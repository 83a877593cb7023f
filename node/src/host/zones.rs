//! The signed directory a host keeps (`docs/directory-zones.md`): the zones in force, where each
//! came from, and how a new one is taken up — checked against what is in force, written durably
//! to `zones/`, recorded in the ledger, then put in force like any reload. Zones arrive from the
//! API (`vdx directory publish`) and from peers (`net::zones`); both go through
//! [`Host::take_zone`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vdx_pki::{Checked, SignedZone, TrustStore, ZoneSet, ROOT_ZONE};

use crate::config::{write_durably, ZONES_DIR};
use crate::host::Host;

/// The zones in force on a node in signed mode, and what it knows of each.
#[derive(Clone)]
pub(crate) struct Held {
    /// The zones, checked.
    pub(crate) set: ZoneSet,
    /// Zone name → where it came from and when it was taken up.
    pub(crate) origins: BTreeMap<String, Origin>,
    /// Zone files in `zones/` that did not pass when loaded.
    pub(crate) refused: Vec<Refused>,
}

/// Where a zone came from: what `vdx directory status` shows and the ledger records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Origin {
    /// `publish` (handed to this node by its operator) or `peer <organ code>`.
    pub(crate) from: String,
    /// When this node took it up, Unix seconds.
    pub(crate) at: u64,
    /// SHA-256 (hex) of the zone file it speaks of: an origin left by a crash between writing a
    /// zone and its origin speaks of another file, and is not believed.
    pub(crate) sha256: String,
}

/// A zone file in `zones/` that did not pass when loaded (left out; a peer's copy replaces it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The file, as `zones/<name>.zone`.
    pub(crate) file: String,
    /// The refusal code of docs/directory-zones.md rule 10.
    pub(crate) code: String,
    /// Why, in words.
    pub(crate) reason: String,
}

/// Why a zone was not taken up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ZoneError {
    /// The node has no `[zones]`: it runs on an unsigned pilot directory.
    #[error("this node runs on an unsigned pilot directory (no [zones] in config.toml)")]
    NotSigned,
    /// The zone fails a rule of `docs/directory-zones.md`.
    #[error(transparent)]
    Refused(#[from] vdx_pki::Error),
    /// It passed but could not be kept.
    #[error("cannot keep zone {name}: {reason}")]
    Keep {
        /// The zone.
        name: String,
        /// What failed.
        reason: String,
    },
}

impl ZoneError {
    /// The refusal code of `docs/directory-zones.md` rule 10, or what else went wrong.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::NotSigned => "directory_not_signed",
            Self::Refused(e) => e.code(),
            Self::Keep { .. } => "internal",
        }
    }
}

/// What taking up a zone did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Taken {
    /// The zone's name.
    pub(crate) zone: String,
    /// Its version.
    pub(crate) version: u64,
    /// False when this node already had exactly this zone.
    pub(crate) changed: bool,
    /// Agencies in the directory in force now.
    pub(crate) agencies: usize,
}

/// The file of zone `name` in a home.
pub(crate) fn zone_file(name: &str) -> PathBuf {
    Path::new(ZONES_DIR).join(format!("{name}.zone"))
}

fn origin_file(home: &Path, name: &str) -> PathBuf {
    home.join(ZONES_DIR).join(format!("{name}.origin"))
}

/// The zone files in `zones/`, root first, then by name: the order they must be checked in.
pub(crate) fn zone_files(home: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = home.join(ZONES_DIR);
    let mut names = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".zone").map(str::to_owned)
            })
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    names.sort_by_key(|name| (name != ROOT_ZONE, name.clone()));
    Ok(names.iter().map(|name| zone_file(name)).collect())
}

/// Checks zone files (as [`zone_files`] orders them, with their bytes) into a set that starts
/// from the root authority alone. A file that does not pass, or holds another zone than its name
/// says, is left out and listed as refused: the node runs on the rest (fail closed), and a peer's
/// copy of that zone replaces it.
pub(crate) fn check_files(
    home: &Path,
    root_authority: openssl::x509::X509,
    files: &[(PathBuf, &[u8])],
    trust: &TrustStore,
    now: u64,
) -> Held {
    let mut held = Held {
        set: ZoneSet::new(root_authority),
        origins: BTreeMap::new(),
        refused: Vec::new(),
    };
    for (path, bytes) in files {
        let file = path.display().to_string();
        let named = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default();
        match held.set.check(bytes, Some(trust), now) {
            Ok(Checked::Newer(zone)) if zone.name() == named => {
                let origin = read_origin(home, named)
                    .filter(|o| o.sha256 == zone.sha256_hex())
                    .unwrap_or(Origin {
                        from: "disk".into(),
                        at: 0,
                        sha256: zone.sha256_hex(),
                    });
                held.origins.insert(named.to_owned(), origin);
                held.set = held.set.with(zone);
            }
            Ok(Checked::Newer(zone)) => {
                let reason = format!("holds zone {}, not {named}", zone.name());
                tracing::error!(%file, %reason, "zone file left out");
                held.refused.push(Refused {
                    file,
                    code: "malformed".into(),
                    reason,
                });
            }
            Ok(Checked::Unchanged) => {}
            Err(e) => {
                tracing::error!(%file, error = %e, "zone file left out");
                held.refused.push(Refused {
                    file,
                    code: e.code().into(),
                    reason: e.to_string(),
                });
            }
        }
    }
    held
}

fn read_origin(home: &Path, name: &str) -> Option<Origin> {
    let bytes = std::fs::read(origin_file(home, name)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The zones of `ours` in force, root first: what a node tells and gives its peers. A zone held
/// but out of force (its delegation dropped or re-keyed) is neither advertised nor sent, so that
/// its version never hides a peer's zone under the new delegation.
fn in_force(ours: &ZoneSet) -> impl Iterator<Item = &SignedZone> {
    ours.zones()
        .into_iter()
        .filter(|zone| ours.in_force(zone.name()))
}

/// The versions of the zones of `ours` in force, root first: what ZONES lists.
pub(crate) fn versions(ours: &ZoneSet) -> Vec<(String, u64)> {
    in_force(ours)
        .map(|zone| (zone.name().to_owned(), zone.version()))
        .collect()
}

/// The zones of `ours` in force that a peer whose versions are `theirs` lacks or holds older,
/// root first: what an exchange sends it (`docs/wire-frames.md`, rule 10).
pub(crate) fn newer_than<'a>(ours: &'a ZoneSet, theirs: &[(String, u64)]) -> Vec<&'a SignedZone> {
    in_force(ours)
        .filter(|zone| {
            theirs
                .iter()
                .find(|(name, _)| name == zone.name())
                .is_none_or(|(_, version)| *version < zone.version())
        })
        .collect()
}

impl Host {
    /// Takes up a signed zone: checks it against the zones in force (docs/directory-zones.md),
    /// writes it to `zones/` with fsync, records it in the host agency's ledger, and puts the
    /// directory it makes in force at once (new handshakes, offers and dispatches; established
    /// connections are checked again). A zone that fails changes nothing. `from` is `publish` or
    /// `peer <organ code>`.
    pub(crate) fn take_zone(&self, file: &[u8], from: &str) -> Result<Taken, ZoneError> {
        let taken = self.check_and_keep(file, from);
        match &taken {
            Ok(t) if t.changed => self.metrics.zone_taken(),
            Err(e @ ZoneError::Refused(_)) => self.metrics.zone_refused(e.code()),
            _ => {}
        }
        taken
    }

    fn check_and_keep(&self, file: &[u8], from: &str) -> Result<Taken, ZoneError> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let in_force = self.trusted();
        let held = in_force.zones.as_ref().ok_or(ZoneError::NotSigned)?;
        let now = crate::host::unix_now();
        let zone = match held.set.check(file, Some(&in_force.trust), now)? {
            Checked::Unchanged => {
                // The same bytes as a zone held: its name and version are that zone's.
                let same = held.set.zones().into_iter().find(|z| z.der() == file);
                return Ok(Taken {
                    zone: same.map_or_else(String::new, |z| z.name().to_owned()),
                    version: same.map_or(0, |z| z.version()),
                    changed: false,
                    agencies: in_force.directory.len(),
                });
            }
            Checked::Newer(zone) => zone,
        };
        let name = zone.name().to_owned();
        let keep = |reason: String| ZoneError::Keep {
            name: name.clone(),
            reason,
        };
        let set = held.set.with(zone.clone());
        let directory = set.directory().map_err(|e| keep(e.to_string()))?;
        let origin = Origin {
            from: from.to_owned(),
            at: now,
            sha256: zone.sha256_hex(),
        };
        let mut origins = held.origins.clone();
        origins.insert(name.clone(), origin.clone());
        let recorded = zone_record(&name, zone.version(), from);
        let fresh = in_force.with_zone(
            (recorded, zone_file(&name), zone.sha256_hex()),
            Held {
                set,
                origins,
                refused: held
                    .refused
                    .iter()
                    .filter(|r| Path::new(&r.file) != zone_file(&name))
                    .cloned()
                    .collect(),
            },
            directory,
        );
        // The ledger first: if it cannot be written, nothing is kept and nothing changes. A crash
        // after it leaves the previous file, and a peer's copy comes again (recorded once).
        fresh
            .record(&self.own.store)
            .map_err(|e| keep(e.to_string()))?;
        // Then the zone, then where it came from: a crash between the two leaves an origin whose
        // digest is another zone's, which is not believed (`disk`).
        let dir = self.home.join(ZONES_DIR);
        let origin_json = serde_json::to_vec(&origin).map_err(|e| keep(e.to_string()))?;
        std::fs::create_dir_all(&dir)
            .and_then(|()| write_durably(&self.home.join(zone_file(&name)), file))
            .and_then(|()| write_durably(&origin_file(&self.home, &name), &origin_json))
            .map_err(|e| keep(e.to_string()))?;
        let agencies = fresh.directory.len();
        self.put_in_force(fresh);
        tracing::info!(zone = %name, version = zone.version(), %from, agencies, "directory zone taken up");
        self.zones_changed.notify_one();
        Ok(Taken {
            zone: name,
            version: zone.version(),
            changed: true,
            agencies,
        })
    }

    /// The zones in force and what is known of them, for `GET /v1/directory/zones`.
    pub(crate) fn zone_report(&self) -> serde_json::Value {
        let trusted = self.trusted();
        let now = crate::host::unix_now();
        let Some(held) = trusted.zones.as_ref() else {
            return serde_json::json!({
                "mode": "pilot",
                "agencies": trusted.directory.len(),
            });
        };
        let config = self.config.zones.as_ref();
        let zones: Vec<_> = held
            .set
            .zones()
            .into_iter()
            .map(|zone| {
                let origin = held.origins.get(zone.name());
                serde_json::json!({
                    "zone": zone.name(),
                    "version": zone.version(),
                    "signer": zone.signer_subject(),
                    "issued": zone.issued(),
                    "next_update": zone.next_update(),
                    "age_secs": now.saturating_sub(zone.issued()),
                    "stale": zone.is_stale(now),
                    "in_force": held.set.in_force(zone.name()),
                    "agencies": zone.zone().entries.len(),
                    "from": origin.map(|o| o.from.as_str()),
                    "taken_at": origin.map(|o| o.at),
                    "sha256": zone.sha256_hex(),
                })
            })
            .collect();
        let refused: Vec<_> = held
            .refused
            .iter()
            .map(|r| serde_json::json!({"file": r.file, "code": r.code, "reason": r.reason}))
            .collect();
        serde_json::json!({
            "mode": "signed",
            "root_authority": vdx_pki::subject_string(held.set.root_authority()),
            "source": config.and_then(|c| c.source.as_ref()).map(|c| c.as_str()),
            "interval_secs": config.map(|c| c.interval_secs),
            "agencies": trusted.directory.len(),
            "zones": zones,
            "refused": refused,
        })
    }

    /// The versions of the zones in force (none on a pilot), and the files of those a peer
    /// holding `theirs` lacks: what an exchange answers.
    pub(crate) fn zone_answer(
        &self,
        theirs: &[(String, u64)],
    ) -> (Vec<Vec<u8>>, Vec<(String, u64)>) {
        let trusted = self.trusted();
        let Some(held) = trusted.zones.as_ref() else {
            return (Vec::new(), Vec::new());
        };
        let files = newer_than(&held.set, theirs)
            .into_iter()
            .map(|zone| zone.der().to_vec())
            .collect();
        (files, versions(&held.set))
    }

    /// The versions of the zones in force (none on a pilot): what this node's ZONES lists.
    pub(crate) fn zone_versions(&self) -> Vec<(String, u64)> {
        self.trusted()
            .zones
            .as_ref()
            .map(|held| versions(&held.set))
            .unwrap_or_default()
    }
}

/// How the ledger's `config` entry names a zone taken up (docs/directory-zones.md).
pub(crate) fn zone_record(name: &str, version: u64, from: &str) -> String {
    format!("zone {name} version {version} from {from}")
}

#[cfg(test)]
pub(crate) mod tests {
    use vdx_crypto::KeyKind;
    use vdx_pki::{Ca, Delegation, IssueRequest, Profile, Zone, ZoneCertificates, ZoneEntry};

    use super::*;

    /// The time the zones are checked at: an hour after the first call, so that the certificates
    /// the tests issue (valid from their issue on, for 30 days) are valid then, whatever the date.
    pub(crate) fn at() -> u64 {
        static AT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        *AT.get_or_init(|| crate::host::unix_now() + 3600)
    }

    /// A set holding a root zone (version 3) and H41's zone (version 7), with a dev CA.
    fn set() -> ZoneSet {
        set_until(at() + 86_400)
    }

    /// [`set`], its zones' next update at `next_update`.
    pub(crate) fn set_until(next_update: u64) -> ZoneSet {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let mut issue = |org: &str, profile| {
            ca.issue(&IssueRequest {
                org: org.into(),
                name: org.into(),
                kind: KeyKind::EcP256,
                profile,
                not_before: None,
                days: 30,
            })
            .unwrap()
            .into_roles()
        };
        let authority = |roles: Vec<(&'static str, _, _)>| {
            let (_, cert, key) = roles.into_iter().next().unwrap();
            (cert, key)
        };
        let root = authority(issue("000.00.00.G22", Profile::Directory));
        let h41 = authority(issue("000.00.00.H41", Profile::Directory));
        let agency = issue("000.00.00.H41", Profile::Separate);
        let cert = |role: &str| {
            agency
                .iter()
                .find(|(r, _, _)| *r == role)
                .map(|(_, c, _)| c.as_ref())
        };
        let entry = ZoneEntry {
            organ_code: "000.00.00.H41".into(),
            name: "UBND tỉnh".into(),
            parent: None,
            host: None,
            endpoints: vec!["10.41.0.1:4433".into()],
            relays: vec![],
            max_classification: "mat".into(),
            certificates: ZoneCertificates::new(
                cert("sign").unwrap(),
                cert("enc").unwrap(),
                cert("tls"),
            )
            .unwrap(),
        };
        let zone = |name: &str, version, entries, delegations| Zone {
            zone: name.into(),
            version,
            issued: at() - 60,
            next_update,
            entries,
            delegations,
        };
        let delegation = Delegation::new("000.00.00.H41", &["*.H41"], &h41.0).unwrap();
        let files = [
            zone(ROOT_ZONE, 3, vec![], vec![delegation])
                .sign(&root.0, &root.1)
                .unwrap(),
            zone("000.00.00.H41", 7, vec![entry], vec![])
                .sign(&h41.0, &h41.1)
                .unwrap(),
        ];
        files
            .iter()
            .fold(ZoneSet::new(root.0.clone()), |set, file| {
                match set.check(file, None, at()).unwrap() {
                    Checked::Newer(zone) => set.with(zone),
                    Checked::Unchanged => panic!("unchanged"),
                }
            })
    }

    #[test]
    fn an_exchange_sends_what_the_peer_lacks_or_holds_older_root_first() {
        let ours = set();
        let names = |theirs: &[(&str, u64)]| {
            let theirs: Vec<(String, u64)> =
                theirs.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect();
            newer_than(&ours, &theirs)
                .into_iter()
                .map(|z| z.name().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&[]), ["root", "000.00.00.H41"]);
        assert_eq!(names(&[("root", 2), ("000.00.00.H41", 7)]), ["root"]);
        assert_eq!(
            names(&[("root", 3), ("000.00.00.H41", 6)]),
            ["000.00.00.H41"]
        );
        assert!(names(&[("root", 3), ("000.00.00.H41", 7)]).is_empty());
        // A peer ahead of us, or holding zones we do not, gets nothing for them.
        assert!(names(&[("root", 9), ("000.00.00.H41", 8), ("000.00.00.H26", 1)]).is_empty());
        assert_eq!(
            versions(&ours),
            [("root".to_owned(), 3), ("000.00.00.H41".to_owned(), 7)]
        );
    }
}
