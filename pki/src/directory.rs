//! The directory of agencies (spec: `docs/directory.md`): which certificates bind to which organ code,
//! where each agency's node listens, and which node hosts it. Parsed strictly; an entry whose
//! certificates do not carry its organ code is refused.
//!
//! [`Directory`] is the file, as edited by import and export. [`IndexedDirectory`] is the same file
//! loaded for use by a running node: entries found by organ code without a scan and certificates
//! parsed once per load (at the first lookup of each), because the node looks them up at every handshake, offer and dispatch.

use std::collections::HashMap;
use std::sync::OnceLock;

use openssl::x509::{X509Ref, X509};
use serde::{Deserialize, Serialize};

use crate::{organ_code, Error};

/// The directory file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    /// Format version, 1.
    pub version: u8,
    /// Entries sorted by organ code.
    pub entries: Vec<Entry>,
}

/// One agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Its organ code.
    pub organ_code: String,
    /// Its name.
    pub name: String,
    /// `host:port` of its node, if it has one.
    pub endpoint: Option<String>,
    /// The organ code of the node relaying for it, if any.
    pub relay: Option<String>,
    /// Further relays, in order: the ones a node goes through when `relay` cannot be reached (a
    /// signed zone's `relays` after the first). Absent from the file when none, so that files
    /// with one relay read and write as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternate_relays: Vec<String>,
    /// The organ code of the node that hosts it as a tenant, if it has no node of its own: it is
    /// reached at its host's endpoint, and its host's TLS certificate identifies the connection.
    /// Absent from the file when none, so that files without hosted agencies read and write as
    /// before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The organ code of the agency above it, if known: for people, and for routing defaults.
    /// Absent from the file when none (signed zones carry it; older files do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The highest classification it may receive (`none`, `mat`, `toi-mat`, `tuyet-mat`), if
    /// known. Absent from the file when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_classification: Option<String>,
    /// Its certificates, PEM.
    pub certificates: Certificates,
}

/// An agency's certificates, PEM text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificates {
    /// Verifies its signatures.
    pub sign: String,
    /// What dispatches to it are encrypted to.
    pub enc: String,
    /// Identifies its node on the network.
    pub tls: Option<String>,
}

impl Default for Directory {
    fn default() -> Self {
        Self {
            version: 1,
            entries: Vec::new(),
        }
    }
}

impl Directory {
    /// Parses and checks a directory file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let dir = Self::decode(bytes)?;
        for entry in &dir.entries {
            entry.check()?;
        }
        Ok(dir)
    }

    /// The file parsed, its version and order checked, its entries not yet.
    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let dir: Self = serde_json::from_slice(bytes).map_err(|e| Error::Parse {
            what: "directory",
            reason: e.to_string(),
        })?;
        dir.check_shape()?;
        Ok(dir)
    }

    /// Version 1, entries unique and sorted by organ code.
    fn check_shape(&self) -> Result<(), Error> {
        if self.version != 1 {
            return Err(Error::Request(format!(
                "directory version {} is not 1",
                self.version
            )));
        }
        let sorted = self
            .entries
            .windows(2)
            .all(|pair| pair[0].organ_code < pair[1].organ_code);
        if !sorted {
            return Err(Error::Request(
                "directory entries must be unique and sorted by organ code".into(),
            ));
        }
        Ok(())
    }

    /// The file's bytes.
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::State(e.to_string()))
    }

    /// Adds or replaces the entry for its organ code, after checking it; returns true if it replaced one.
    pub fn upsert(&mut self, entry: Entry) -> Result<bool, Error> {
        entry.check()?;
        match self
            .entries
            .binary_search_by(|e| e.organ_code.as_str().cmp(&entry.organ_code))
        {
            Ok(i) => {
                self.entries[i] = entry;
                Ok(true)
            }
            Err(i) => {
                self.entries.insert(i, entry);
                Ok(false)
            }
        }
    }

    /// The entry of an organ code, by binary search: the entries are kept sorted (by
    /// [`Directory::from_json`] and [`Directory::upsert`]).
    pub fn get(&self, organ_code: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.organ_code.as_str().cmp(organ_code))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// A directory loaded for use: each organ code found without a scan, with its certificates parsed
/// once, when the directory is loaded, not at each handshake, offer or dispatch. Immutable: a
/// changed directory is a new `IndexedDirectory`. The default is an empty version-1 directory.
#[derive(Debug, Clone, Default)]
pub struct IndexedDirectory {
    directory: Directory,
    /// Organ code → position in `directory.entries` and in `parsed`.
    index: HashMap<String, usize>,
    /// Each entry's certificates, parsed at the first lookup (or when a file is loaded, which
    /// checks them): once per directory, and only for the agencies a node deals with. `None`
    /// when they did not parse then (they always parsed when their zone was checked).
    parsed: Vec<OnceLock<Option<ParsedCertificates>>>,
}

/// An entry's certificates, parsed and checked to carry its organ code.
#[derive(Debug, Clone)]
pub struct ParsedCertificates {
    sign: X509,
    enc: X509,
    tls: Option<X509>,
    /// The TLS certificate's DER: what a peer's certificate is compared with.
    tls_der: Option<Vec<u8>>,
}

impl ParsedCertificates {
    /// Verifies the agency's signatures.
    pub fn sign(&self) -> &X509 {
        &self.sign
    }

    /// What dispatches to the agency are encrypted to.
    pub fn enc(&self) -> &X509 {
        &self.enc
    }

    /// Identifies the agency's node, if it has one of its own.
    pub fn tls(&self) -> Option<&X509> {
        self.tls.as_ref()
    }
}

impl IndexedDirectory {
    /// Checks `directory` as [`Directory::from_json`] does and indexes it, parsing each
    /// certificate once.
    pub fn new(directory: Directory) -> Result<Self, Error> {
        directory.check_shape()?;
        let parsed = directory
            .entries
            .iter()
            .map(|e| e.parse_checked().map(|p| OnceLock::from(Some(p))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::indexed(directory, parsed))
    }

    /// `directory` with its index by organ code, and `parsed` (one slot per entry).
    fn indexed(directory: Directory, parsed: Vec<OnceLock<Option<ParsedCertificates>>>) -> Self {
        let index = directory
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.organ_code.clone(), i))
            .collect();
        Self {
            directory,
            index,
            parsed,
        }
    }

    /// Indexes entries already checked (the directory in force of signed zones, whose entries were
    /// checked, certificates included, when each zone was): their certificates are parsed at the
    /// first lookup of each. Entries need not be sorted; an organ code listed twice is refused.
    pub(crate) fn from_checked(mut entries: Vec<Entry>) -> Result<Self, Error> {
        entries.sort_unstable_by(|a, b| a.organ_code.cmp(&b.organ_code));
        let directory = Directory {
            version: 1,
            entries,
        };
        directory.check_shape()?;
        let parsed = directory.entries.iter().map(|_| OnceLock::new()).collect();
        Ok(Self::indexed(directory, parsed))
    }

    /// Parses, checks and indexes a directory file (each certificate parsed once).
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        Self::new(Directory::decode(bytes)?)
    }

    /// The directory as its file has it.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// How many agencies it lists.
    pub fn len(&self) -> usize {
        self.directory.entries.len()
    }

    /// Whether it lists none.
    pub fn is_empty(&self) -> bool {
        self.directory.entries.is_empty()
    }

    /// The entry of an organ code.
    pub fn get(&self, organ_code: &str) -> Option<&Entry> {
        self.index
            .get(organ_code)
            .map(|&i| &self.directory.entries[i])
    }

    /// The parsed certificates of an organ code (parsed at its first lookup, then kept).
    pub fn certificates(&self, organ_code: &str) -> Option<&ParsedCertificates> {
        let &i = self.index.get(organ_code)?;
        let entry = &self.directory.entries[i];
        self.parsed[i]
            .get_or_init(|| entry.parse_checked().ok())
            .as_ref()
    }

    /// True when `cert` is the TLS certificate the directory gives for `organ_code`: the network
    /// binding a peer must satisfy. A hosted agency has none: its host answers for it.
    pub fn binds_tls(&self, organ_code: &str, cert: &X509Ref) -> bool {
        let Some(ours) = self
            .certificates(organ_code)
            .and_then(|c| c.tls_der.as_deref())
        else {
            return false;
        };
        cert.to_der().is_ok_and(|theirs| theirs == ours)
    }
}

impl Entry {
    /// An entry in its one-object export form.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let entry: Self = serde_json::from_slice(bytes).map_err(|e| Error::Parse {
            what: "directory entry",
            reason: e.to_string(),
        })?;
        entry.check()?;
        Ok(entry)
    }

    /// The export form.
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::State(e.to_string()))
    }

    /// The certificate of a role, parsed.
    pub fn certificate(&self, role: &str) -> Result<Option<X509>, Error> {
        let pem = match role {
            "sign" => Some(&self.certificates.sign),
            "enc" => Some(&self.certificates.enc),
            "tls" => self.certificates.tls.as_ref(),
            _ => None,
        };
        pem.map(|p| {
            X509::from_pem(p.as_bytes()).map_err(|e| Error::Parse {
                what: "certificate",
                reason: format!("{role} of {}: {e}", self.organ_code),
            })
        })
        .transpose()
    }

    fn check(&self) -> Result<(), Error> {
        self.parse_checked().map(drop)
    }

    /// Checks the entry (docs/directory.md, rules 2-5) and returns its certificates, parsed.
    fn parse_checked(&self) -> Result<ParsedCertificates, Error> {
        let code = &self.organ_code;
        if !is_organ_code(code) {
            return Err(Error::Request(format!("{code:?} is not an organ code")));
        }
        let name_len = self.name.chars().count();
        if name_len == 0 || name_len > 500 || self.name.chars().any(char::is_control) {
            return Err(Error::Request(format!(
                "the name of {code} must be 1-500 characters of text"
            )));
        }
        for (field, value) in [
            ("relay", &self.relay),
            ("host", &self.host),
            ("parent", &self.parent),
        ] {
            if let Some(other) = value.as_deref().filter(|c| !is_organ_code(c)) {
                return Err(Error::Request(format!(
                    "the {field} of {code}, {other:?}, is not an organ code"
                )));
            }
        }
        if let Some(other) = self.alternate_relays.iter().find(|c| !is_organ_code(c)) {
            return Err(Error::Request(format!(
                "an alternate relay of {code}, {other:?}, is not an organ code"
            )));
        }
        if !self.alternate_relays.is_empty() && self.relay.is_none() {
            return Err(Error::Request(format!(
                "{code} has alternate relays but no relay"
            )));
        }
        if self.alternate_relays.len() >= MAX_RELAYS {
            return Err(Error::Request(format!(
                "{code} has more than {MAX_RELAYS} relays"
            )));
        }
        if let Some(level) = self
            .max_classification
            .as_deref()
            .filter(|l| !CLASSIFICATIONS.contains(l))
        {
            return Err(Error::Request(format!(
                "the max_classification of {code}, {level:?}, is not one of {}",
                CLASSIFICATIONS.join(", ")
            )));
        }
        if self.parent.as_deref() == Some(code.as_str()) {
            return Err(Error::Request(format!("{code} cannot be its own parent")));
        }
        if let Some(host) = &self.host {
            if host == code {
                return Err(Error::Request(format!("{code} cannot be its own host")));
            }
            if self.endpoint.is_some() || self.certificates.tls.is_some() {
                return Err(Error::Request(format!(
                    "{code} is hosted by {host}: it has no endpoint or tls certificate of its own"
                )));
            }
        }
        let carries_code = |role: &str, cert: X509| {
            if organ_code(&cert).as_deref() == Some(code.as_str()) {
                Ok(cert)
            } else {
                Err(Error::Request(format!(
                    "the {role} certificate of {code} carries organ code {:?}",
                    organ_code(&cert)
                )))
            }
        };
        let required = |role: &str| {
            self.certificate(role)?
                .ok_or_else(|| Error::Request(format!("{code} has no {role} certificate")))
                .and_then(|cert| carries_code(role, cert))
        };
        let (sign, enc) = (required("sign")?, required("enc")?);
        let tls = self
            .certificate("tls")?
            .map(|cert| carries_code("tls", cert))
            .transpose()?;
        let tls_der = tls
            .as_ref()
            .map(|cert| {
                cert.to_der().map_err(|e| Error::Parse {
                    what: "certificate",
                    reason: format!("tls of {code}: {e}"),
                })
            })
            .transpose()?;
        Ok(ParsedCertificates {
            sign,
            enc,
            tls,
            tls_der,
        })
    }
}

/// The most relays an entry names, `relay` and `alternate_relays` together (the zones' rule 4).
pub(crate) const MAX_RELAYS: usize = 4;

/// The classification levels an agency may be cleared to receive, lowest first.
pub(crate) const CLASSIFICATIONS: [&str; 4] = ["none", "mat", "toi-mat", "tuyet-mat"];

/// Letters, digits and dots, 1-32 characters, no empty segment (docs/directory.md, rule 2).
pub(crate) fn is_organ_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 32
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        && !code.split('.').any(str::is_empty)
}

#[cfg(test)]
mod tests {
    use vdx_crypto::KeyKind;

    use super::*;
    use crate::{Ca, IssueRequest, Profile};

    fn entry(ca: &mut Ca, code: &str) -> Entry {
        let issued = ca
            .issue(&IssueRequest {
                org: code.into(),
                name: format!("Agency {code}"),
                kind: KeyKind::EcP256,
                profile: Profile::Separate,
                not_before: None,
                days: 30,
            })
            .unwrap();
        let pem = |role: &str| {
            let (_, cert, _) = issued
                .roles()
                .into_iter()
                .find(|(r, _, _)| *r == role)
                .unwrap();
            String::from_utf8(cert.to_pem().unwrap()).unwrap()
        };
        Entry {
            organ_code: code.into(),
            name: format!("Cơ quan {code}"),
            endpoint: Some("127.0.0.1:4433".into()),
            relay: None,
            alternate_relays: Vec::new(),
            host: None,
            parent: None,
            max_classification: None,
            certificates: Certificates {
                sign: pem("sign"),
                enc: pem("enc"),
                tls: Some(pem("tls")),
            },
        }
    }

    #[test]
    fn entries_round_trip_sorted_and_replace_by_organ_code() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let mut dir = Directory::default();
        assert!(!dir.upsert(entry(&mut ca, "000.00.00.H41")).unwrap());
        assert!(!dir.upsert(entry(&mut ca, "000.00.00.G22")).unwrap());
        let mut moved = entry(&mut ca, "000.00.00.H41");
        moved.endpoint = Some("10.0.0.41:4433".into());
        assert!(dir.upsert(moved.clone()).unwrap());
        let back = Directory::from_json(&dir.to_json().unwrap()).unwrap();
        assert_eq!(back, dir);
        let codes: Vec<&str> = back.entries.iter().map(|e| e.organ_code.as_str()).collect();
        assert_eq!(codes, ["000.00.00.G22", "000.00.00.H41"]);
        assert_eq!(Entry::from_json(&moved.to_json().unwrap()).unwrap(), moved);
        assert_eq!(back.get("000.00.00.H41"), Some(&moved));
        assert_eq!(back.get("000.00.00.H26"), None);
    }

    /// A commune hosted by its province: no endpoint or TLS certificate of its own.
    fn hosted(ca: &mut Ca, code: &str, host: &str) -> Entry {
        let mut entry = entry(ca, code);
        entry.endpoint = None;
        entry.certificates.tls = None;
        entry.host = Some(host.into());
        entry
    }

    #[test]
    fn the_index_finds_entries_and_their_parsed_certificates() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let mut dir = Directory::default();
        for code in ["000.00.00.H41", "000.00.00.G22", "000.00.00.H26"] {
            dir.upsert(entry(&mut ca, code)).unwrap();
        }
        dir.upsert(hosted(&mut ca, "000.00.01.H41", "000.00.00.H41"))
            .unwrap();
        let indexed = IndexedDirectory::from_json(&dir.to_json().unwrap()).unwrap();
        assert_eq!(indexed.len(), 4);
        assert_eq!(indexed.directory(), &dir);
        for entry in &dir.entries {
            let code = entry.organ_code.as_str();
            assert_eq!(indexed.get(code), Some(entry));
            assert_eq!(dir.get(code), Some(entry));
            let parsed = indexed.certificates(code).unwrap();
            let der = |cert: Option<X509>| cert.map(|c| c.to_der().unwrap());
            assert_eq!(
                Some(parsed.sign().to_der().unwrap()),
                der(entry.certificate("sign").unwrap())
            );
            assert_eq!(
                Some(parsed.enc().to_der().unwrap()),
                der(entry.certificate("enc").unwrap())
            );
            assert_eq!(
                parsed.tls().map(|c| c.to_der().unwrap()),
                der(entry.certificate("tls").unwrap())
            );
        }
        assert!(indexed.get("000.00.00.G01").is_none());
        assert!(indexed.certificates("000.00.00.G01").is_none());
        assert!(IndexedDirectory::new(Directory::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn tls_binding_compares_with_the_certificate_of_that_organ_code() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let (h41, g22) = (
            entry(&mut ca, "000.00.00.H41"),
            entry(&mut ca, "000.00.00.G22"),
        );
        let mut dir = Directory::default();
        dir.upsert(h41.clone()).unwrap();
        dir.upsert(g22.clone()).unwrap();
        dir.upsert(hosted(&mut ca, "000.00.01.H41", "000.00.00.H41"))
            .unwrap();
        let indexed = IndexedDirectory::new(dir).unwrap();
        let tls_of = |e: &Entry| e.certificate("tls").unwrap().unwrap();
        assert!(indexed.binds_tls("000.00.00.H41", &tls_of(&h41)));
        assert!(indexed.binds_tls("000.00.00.G22", &tls_of(&g22)));
        // Another agency's certificate, a fresh one for the same code, its sign certificate.
        assert!(!indexed.binds_tls("000.00.00.G22", &tls_of(&h41)));
        let reissued = entry(&mut ca, "000.00.00.H41");
        assert!(!indexed.binds_tls("000.00.00.H41", &tls_of(&reissued)));
        let sign = h41.certificate("sign").unwrap().unwrap();
        assert!(!indexed.binds_tls("000.00.00.H41", &sign));
        // A hosted agency has no TLS certificate; an unknown one neither.
        assert!(!indexed.binds_tls("000.00.01.H41", &tls_of(&h41)));
        assert!(!indexed.binds_tls("000.00.00.H26", &tls_of(&h41)));
    }

    #[test]
    fn the_host_field_round_trips_and_is_absent_when_none() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let commune = hosted(&mut ca, "000.00.01.H41", "000.00.00.H41");
        let json = String::from_utf8(commune.to_json().unwrap()).unwrap();
        assert!(json.contains("\"host\": \"000.00.00.H41\""), "{json}");
        assert_eq!(Entry::from_json(json.as_bytes()).unwrap(), commune);
        let mut dir = Directory::default();
        dir.upsert(commune.clone()).unwrap();
        let back = IndexedDirectory::from_json(&dir.to_json().unwrap()).unwrap();
        assert_eq!(back.get("000.00.01.H41"), Some(&commune));
        // An entry without a host writes no `host`, and a file without one (older) loads.
        let province = entry(&mut ca, "000.00.00.H41");
        let json = String::from_utf8(province.to_json().unwrap()).unwrap();
        assert!(!json.contains("host"), "{json}");
        assert_eq!(Entry::from_json(json.as_bytes()).unwrap(), province);
    }

    #[test]
    fn alternate_relays_round_trip_and_are_absent_when_none() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let mut commune = entry(&mut ca, "000.01.41.H41");
        let json = String::from_utf8(commune.to_json().unwrap()).unwrap();
        assert!(!json.contains("alternate_relays"), "{json}");
        commune.relay = Some("000.00.00.H41".into());
        commune.alternate_relays = vec!["000.00.00.H40".into(), "000.00.00.H26".into()];
        let json = String::from_utf8(commune.to_json().unwrap()).unwrap();
        assert!(json.contains("\"alternate_relays\": ["), "{json}");
        assert_eq!(Entry::from_json(json.as_bytes()).unwrap(), commune);
    }

    #[test]
    fn bad_host_and_relay_codes_are_refused() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let mut dir = Directory::default();
        let refused = |dir: &mut Directory, entry: Entry, why: &str| {
            let err = dir.upsert(entry).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        };
        let mut bad = hosted(&mut ca, "000.00.01.H41", "000..H41");
        refused(&mut dir, bad.clone(), "the host of 000.00.01.H41");
        bad.host = Some("000.00.00.H41/x".into());
        refused(&mut dir, bad.clone(), "is not an organ code");
        bad.host = Some("000.00.01.H41".into());
        refused(&mut dir, bad.clone(), "its own host");
        let mut with_endpoint = hosted(&mut ca, "000.00.01.H41", "000.00.00.H41");
        with_endpoint.endpoint = Some("10.0.0.1:4433".into());
        refused(&mut dir, with_endpoint, "no endpoint or tls");
        let mut with_tls = hosted(&mut ca, "000.00.01.H41", "000.00.00.H41");
        with_tls.certificates.tls = entry(&mut ca, "000.00.01.H41").certificates.tls;
        refused(&mut dir, with_tls, "no endpoint or tls");
        let mut bad_relay = entry(&mut ca, "000.00.00.H26");
        bad_relay.relay = Some(".H41".into());
        refused(&mut dir, bad_relay, "the relay of 000.00.00.H26");
        let mut bad_alternate = entry(&mut ca, "000.00.00.H26");
        bad_alternate.relay = Some("000.00.00.H41".into());
        bad_alternate.alternate_relays = vec!["000.00.00.H40".into(), "H40.".into()];
        refused(&mut dir, bad_alternate.clone(), "an alternate relay of");
        bad_alternate.alternate_relays = vec!["000.00.00.H40".into()];
        bad_alternate.relay = None;
        refused(
            &mut dir,
            bad_alternate.clone(),
            "alternate relays but no relay",
        );
        bad_alternate.relay = Some("000.00.00.H41".into());
        bad_alternate.alternate_relays = vec!["000.00.00.H40".into(); 4];
        refused(&mut dir, bad_alternate, "more than 4 relays");
        assert!(dir.entries.is_empty(), "a refused import changes nothing");
        // The same checks when a whole file is loaded, indexed or not.
        let mut file = Directory::default();
        file.entries
            .push(hosted(&mut ca, "000.00.01.H41", "000..H41"));
        let bytes = file.to_json().unwrap();
        assert!(Directory::from_json(&bytes).is_err());
        assert!(IndexedDirectory::from_json(&bytes).is_err());
    }

    #[test]
    fn entries_whose_certificates_do_not_carry_their_code_are_refused() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let mut lying = entry(&mut ca, "000.00.00.H41");
        lying.organ_code = "000.00.00.G22".into();
        let mut dir = Directory::default();
        assert!(dir.upsert(lying.clone()).is_err());
        assert!(dir.entries.is_empty(), "a refused import changes nothing");
        let mut garbled = entry(&mut ca, "000.00.00.H41");
        garbled.certificates.enc = "not a certificate".into();
        assert!(dir.upsert(garbled).is_err());
        let unsorted = Directory {
            version: 1,
            entries: vec![
                entry(&mut ca, "000.00.00.H41"),
                entry(&mut ca, "000.00.00.G22"),
            ],
        };
        assert!(Directory::from_json(&unsorted.to_json().unwrap()).is_err());
        assert!(Directory::from_json(b"{\"version\":1,\"entries\":[],\"extra\":1}").is_err());
    }
}
