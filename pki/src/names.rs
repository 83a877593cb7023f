//! Reading who a certificate names: the subject as text and the organ code (2.5.4.97).

use openssl::asn1::{Asn1Object, Asn1Time, Asn1TimeRef};
use openssl::x509::{X509NameEntryRef, X509NameRef, X509Ref};
use time::OffsetDateTime;

/// OID of the X.520 `organizationIdentifier` attribute, which carries the organ code.
pub(crate) const ORGANIZATION_IDENTIFIER: &str = "2.5.4.97";

/// The `organizationIdentifier` (2.5.4.97) of the subject: vdx's organ code, when present.
///
/// Directory lookups and the dispatch header's `From` are bound to the signer through this value.
pub fn organ_code(cert: &X509Ref) -> Option<String> {
    let nid = Asn1Object::from_str(ORGANIZATION_IDENTIFIER).ok()?.nid();
    cert.subject_name()
        .entries_by_nid(nid)
        .next()
        .map(entry_text)
}

/// The subject as `CN=..., O=..., organizationIdentifier=...`, in certificate order: one readable
/// form for logs, verdicts and the CLI.
pub fn subject_string(cert: &X509Ref) -> String {
    name_string(cert.subject_name())
}

/// Any name (subject or issuer) in the form of [`subject_string`].
pub(crate) fn name_string(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let object = e.object();
            let key = match object.nid().short_name() {
                Ok(short) => short.to_owned(),
                // An attribute OpenSSL has no name for: print its OID.
                Err(_) => object.to_string(),
            };
            format!("{key}={}", entry_text(e))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The attribute value as text, whatever ASN.1 string type carries it (UTF8String, BMPString ...).
fn entry_text(entry: &X509NameEntryRef) -> String {
    // Interior NULs are kept: "000.00.00.G22\0..." must not pass for "000.00.00.G22".
    entry
        .data()
        .to_string()
        .unwrap_or_else(|_| String::from_utf8_lossy(entry.data().as_slice()).into_owned())
}

/// Serial number in lower-case hex, as OpenSSL prints it: how CA state, CRL listings and verdicts
/// name a certificate.
pub fn serial_hex(cert: &X509Ref) -> String {
    cert.serial_number()
        .to_bn()
        .and_then(|bn| bn.to_hex_str().map(|s| s.to_lowercase()))
        .unwrap_or_else(|_| "?".into())
}

/// An ASN.1 time as an `OffsetDateTime` (UTC); `None` if OpenSSL cannot compare it.
pub(crate) fn offset_date_time(t: &Asn1TimeRef) -> Option<OffsetDateTime> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(t).ok()?;
    let secs = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

#[cfg(test)]
mod tests {
    use openssl::x509::{X509Builder, X509NameBuilder};

    use super::*;

    #[test]
    fn organ_code_and_subject_read_back_what_was_written() {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "UBND tỉnh Nghệ An")
            .unwrap();
        name.append_entry_by_text("organizationIdentifier", "000.00.00.H40")
            .unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        let cert = b.build();
        assert_eq!(organ_code(&cert).as_deref(), Some("000.00.00.H40"));
        assert_eq!(
            subject_string(&cert),
            "CN=UBND tỉnh Nghệ An, organizationIdentifier=000.00.00.H40"
        );
        let mut b = X509Builder::new().unwrap();
        let mut plain = X509NameBuilder::new().unwrap();
        plain.append_entry_by_text("CN", "no code").unwrap();
        b.set_subject_name(&plain.build()).unwrap();
        assert_eq!(organ_code(&b.build()), None);
    }

    #[test]
    fn asn1_times_convert() {
        let t = Asn1Time::from_unix(1_700_000_000).unwrap();
        assert_eq!(
            offset_date_time(&t).unwrap().unix_timestamp(),
            1_700_000_000
        );
    }
}

#[cfg(test)]
mod cases {

    use openssl::x509::X509Ref;

    use vdx_crypto::KeyKind;

    use crate::organ_code;
    use crate::testkit::*;
    use crate::{Ca, Profile};

    #[test]
    fn organ_codes_round_trip_through_certificates() {
        let mut ca = Ca::create("Root", KeyKind::EcP256, 30).unwrap();
        for org in ["000.00.00.G22", "000.00.00.H41", "H41.35", "X"] {
            let issued = ca
                .issue(&request(org, KeyKind::EcP256, Profile::Separate))
                .unwrap();
            for (_, cert, _) in issued.roles() {
                let cert: &X509Ref = cert;
                assert_eq!(organ_code(cert).as_deref(), Some(org));
            }
        }
        assert_eq!(organ_code(ca.cert()), None);
    }
}
