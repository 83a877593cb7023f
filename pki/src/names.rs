//! Reading who a certificate names: the subject as text and the organ code (2.5.4.97).

use openssl::asn1::Asn1Object;
use openssl::x509::{X509NameRef, X509Ref};

/// OID of the X.520 `organizationIdentifier` attribute, which carries the organ code.
pub(crate) const ORGANIZATION_IDENTIFIER: &str = "2.5.4.97";

/// The `organizationIdentifier` (2.5.4.97) of the subject: vdx's organ code, when present.
pub fn organ_code(cert: &X509Ref) -> Option<String> {
    let nid = Asn1Object::from_str(ORGANIZATION_IDENTIFIER).ok()?.nid();
    cert.subject_name()
        .entries_by_nid(nid)
        .next()
        .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
}

/// The subject as `CN=..., O=..., organizationIdentifier=...`, in certificate order.
pub fn subject_string(cert: &X509Ref) -> String {
    name_string(cert.subject_name())
}

pub(crate) fn name_string(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            format!("{key}={}", String::from_utf8_lossy(e.data().as_slice()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Serial number in lower-case hex, as OpenSSL prints it.
pub fn serial_hex(cert: &X509Ref) -> String {
    cert.serial_number()
        .to_bn()
        .and_then(|bn| bn.to_hex_str().map(|s| s.to_lowercase()))
        .unwrap_or_else(|_| "?".into())
}
