//! The directory of agencies (spec: `docs/directory.md`): which certificates bind to which organ code,
//! and where each agency's node listens. Parsed strictly; an entry whose certificates do not carry its
//! organ code is refused.

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
        let dir: Self = serde_json::from_slice(bytes).map_err(|e| Error::Parse {
            what: "directory",
            reason: e.to_string(),
        })?;
        if dir.version != 1 {
            return Err(Error::Request(format!(
                "directory version {} is not 1",
                dir.version
            )));
        }
        for entry in &dir.entries {
            entry.check()?;
        }
        let mut codes: Vec<&str> = dir.entries.iter().map(|e| e.organ_code.as_str()).collect();
        codes.dedup();
        if codes.len() != dir.entries.len() || !codes.is_sorted() {
            return Err(Error::Request(
                "directory entries must be unique and sorted by organ code".into(),
            ));
        }
        Ok(dir)
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

    /// The entry of an organ code.
    pub fn get(&self, organ_code: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.organ_code == organ_code)
    }

    /// True when `cert` is the TLS certificate the directory gives for `organ_code`: the network
    /// binding a peer must satisfy.
    pub fn binds_tls(&self, organ_code: &str, cert: &X509Ref) -> bool {
        let Some(tls) = self
            .get(organ_code)
            .and_then(|e| e.certificates.tls.as_ref())
        else {
            return false;
        };
        match (
            X509::from_pem(tls.as_bytes()).and_then(|c| c.to_der()),
            cert.to_der(),
        ) {
            (Ok(ours), Ok(theirs)) => ours == theirs,
            _ => false,
        }
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
        let code = &self.organ_code;
        let shape_ok = !code.is_empty()
            && code.len() <= 32
            && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
            && !code.split('.').any(str::is_empty);
        if !shape_ok {
            return Err(Error::Request(format!("{code:?} is not an organ code")));
        }
        let name_len = self.name.chars().count();
        if name_len == 0 || name_len > 500 || self.name.chars().any(char::is_control) {
            return Err(Error::Request(format!(
                "the name of {code} must be 1-500 characters of text"
            )));
        }
        for role in ["sign", "enc", "tls"] {
            if let Some(cert) = self.certificate(role)? {
                if organ_code(&cert).as_deref() != Some(code.as_str()) {
                    return Err(Error::Request(format!(
                        "the {role} certificate of {code} carries organ code {:?}",
                        organ_code(&cert)
                    )));
                }
            }
        }
        Ok(())
    }
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
        let tls = moved.certificate("tls").unwrap().unwrap();
        assert!(back.binds_tls("000.00.00.H41", &tls));
        assert!(!back.binds_tls("000.00.00.G22", &tls));
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
