//! A test-only PKI for the crate's tests: a root and end-entity certificates made in memory with
//! OpenSSL (`vdx-pki` depends on this crate, so its CA cannot be used here).

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

use crate::{KeyKind, PrivateKey};

pub(crate) struct Party {
    pub(crate) cert: X509,
    pub(crate) key: PrivateKey,
}

/// What building a test certificate can fail with (OpenSSL errors, key generation).
type Built<T> = Result<T, Box<dyn std::error::Error>>;

fn build(name: &str, kind: KeyKind, issuer: Option<&Party>, ca: bool) -> Built<Party> {
    let key = PrivateKey::generate(kind)?;
    let mut n = X509NameBuilder::new()?;
    n.append_entry_by_text("CN", name)?;
    n.append_entry_by_text("organizationIdentifier", "000.00.00.G22")?;
    let n = n.build();
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = BigNum::from_u32(rand_u32()?)?.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&n)?;
    b.set_issuer_name(issuer.map_or(&n, |i| i.cert.subject_name()))?;
    b.set_pubkey(key.pkey())?;
    let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(30)?);
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    let mut bc = BasicConstraints::new();
    if ca {
        bc.ca();
    }
    b.append_extension(bc.critical().build()?)?;
    let ku = if ca {
        KeyUsage::new().key_cert_sign().crl_sign().build()?
    } else {
        KeyUsage::new()
            .digital_signature()
            .non_repudiation()
            .key_encipherment()
            .key_agreement()
            .build()?
    };
    b.append_extension(ku)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    let signing_key = issuer.map_or(&key, |i| &i.key);
    b.sign(signing_key.pkey(), MessageDigest::sha256())?;
    Ok(Party {
        cert: b.build(),
        key,
    })
}

fn rand_u32() -> Built<u32> {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b)?;
    Ok(u32::from_be_bytes(b) >> 1)
}

pub(crate) fn ca() -> Built<Party> {
    build("Test Root", KeyKind::EcP256, None, true)
}

pub(crate) fn agency(ca: &Party, name: &str, kind: KeyKind) -> Built<Party> {
    build(name, kind, Some(ca), false)
}
