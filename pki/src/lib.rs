//! Certificates for vdx: the profiles agencies get, a development CA that issues them, and path
//! validation that decides whether a signer is trusted.
//!
//! A pure library: it takes and returns bytes and OpenSSL objects; the `vdx` command line does the
//! file handling. Validation fails closed: a certificate that cannot be validated is refused.

mod ca;
mod crl;
mod directory;
mod error;
mod names;
mod validate;
mod zone;

pub use ca::{Ca, IssueRequest, Issued, Profile};
pub use crl::RevocationReason;
pub use directory::{Certificates, Directory, Entry, IndexedDirectory, ParsedCertificates};
pub use error::{Error, ZoneRefusal};
pub use names::{organ_code, serial_hex, subject_string};
pub use validate::{parse_certs, parse_crls, TrustStore, ValidatedSigner};
pub use zone::{
    verify_zone_files, Checked, Delegation, SignedZone, Zone, ZoneCertificates, ZoneEntry, ZoneSet,
    DIRECTORY_SIGNING_OID, MAX_ZONE_BYTES, ROOT_ZONE,
};

/// Fixtures for the crate's tests: requests, role lookups, trust stores and the OpenSSL CLI.
#[cfg(test)]
mod testkit {
    use std::path::Path;
    use std::process::Command;

    use openssl::x509::X509;
    use vdx_crypto::{KeyKind, PrivateKey};

    use crate::{Ca, IssueRequest, Issued, Profile, TrustStore};

    pub(crate) fn request(org: &str, kind: KeyKind, profile: Profile) -> IssueRequest {
        IssueRequest {
            org: org.into(),
            name: format!("Agency {org}"),
            kind,
            profile,
            not_before: None,
            days: 30,
        }
    }

    /// An agency with EC keys in the separate profile: what most tests need.
    pub(crate) fn issue_ec(ca: &mut Ca, org: &str) -> Issued {
        ca.issue(&request(org, KeyKind::EcP256, Profile::Separate))
            .unwrap()
    }

    /// A fresh CA and one agency of each shape: EC separate (G22), RSA separate (H26), RSA
    /// combined "government" profile (H41).
    pub(crate) fn ca_with_every_profile() -> (Ca, [Issued; 3]) {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        let ec = issue_ec(&mut ca, "000.00.00.G22");
        let rsa = ca
            .issue(&request("000.00.00.H26", KeyKind::Rsa, Profile::Separate))
            .unwrap();
        let combined = ca
            .issue(&request("000.00.00.H41", KeyKind::Rsa, Profile::Combined))
            .unwrap();
        (ca, [ec, rsa, combined])
    }

    pub(crate) fn cert_of(issued: &Issued, role: &str) -> X509 {
        issued
            .roles()
            .into_iter()
            .find(|(r, _, _)| *r == role)
            .map(|(_, c, _)| c.to_owned())
            .unwrap()
    }

    pub(crate) fn key_of<'a>(issued: &'a Issued, role: &str) -> &'a PrivateKey {
        issued
            .roles()
            .into_iter()
            .find(|(r, _, _)| *r == role)
            .map(|(_, _, k)| k)
            .unwrap()
    }

    pub(crate) fn store(ca: &Ca, crls: Vec<openssl::x509::X509Crl>) -> TrustStore {
        TrustStore::new(vec![ca.cert().to_owned()], vec![], crls).unwrap()
    }

    pub(crate) fn code(result: Result<crate::ValidatedSigner, crate::Error>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    /// Runs the OpenSSL CLI in `dir`; returns (success, stdout + stderr).
    pub(crate) fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
