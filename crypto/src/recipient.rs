//! RecipientInfos: wrapping the content-encryption key for each recipient, and unwrapping ours.
//!
//! We write RSA-OAEP (SHA-256, MGF1-SHA-256) or PKCS#1 v1.5 key transport for RSA certificates, and
//! ECDH `dhSinglePass-stdDH-sha256kdf-scheme` with AES-256 key wrap for EC certificates (RFC 5753).
//! We read those and what OpenSSL writes by default (SHA-1 KDF, OAEP with SHA-1).

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    KeyAgreeRecipientIdentifier, KeyAgreeRecipientInfo, KeyTransRecipientInfo,
    OriginatorIdentifierOrKey, OriginatorPublicKey, RecipientEncryptedKey, RecipientIdentifier,
    RecipientInfo,
};
use const_oid::ObjectIdentifier as Oid;
use der::asn1::{BitString, OctetString};
use der::{Any, Decode, Encode};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcKey, EcKeyRef, EcPoint, PointConversionForm};
use openssl::hash::{Hasher, MessageDigest};
use openssl::pkey::{Id, PKey};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::x509::X509Ref;
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use crate::ber::{der_children, der_tlv, split_der};
use crate::{oids, Error, PrivateKey};

/// How to transport the content key to an RSA recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RsaPadding {
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256: the default, and the only sound choice.
    #[default]
    Oaep,
    /// PKCS#1 v1.5: for recipients whose tokens or software know nothing else.
    Pkcs1,
}

/// Issuer and serial of a certificate: how recipients and signers are named in CMS.
pub(crate) fn issuer_and_serial(cert: &X509Ref) -> Result<IssuerAndSerialNumber, Error> {
    let parsed = x509_cert::Certificate::from_der(&cert.to_der()?)?;
    Ok(IssuerAndSerialNumber {
        issuer: parsed.tbs_certificate.issuer,
        serial_number: parsed.tbs_certificate.serial_number,
    })
}

/// Builds the RecipientInfo that gives `cek` to the holder of `cert`.
pub(crate) fn wrap_for(
    cert: &X509Ref,
    cek: &[u8],
    padding: RsaPadding,
) -> Result<RecipientInfo, Error> {
    let public = cert.public_key()?;
    let rid = issuer_and_serial(cert)?;
    match public.id() {
        Id::RSA => {
            let mut ctx = PkeyCtx::new(&public)?;
            ctx.encrypt_init()?;
            let alg = match padding {
                RsaPadding::Oaep => {
                    ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
                    ctx.set_rsa_oaep_md(openssl::md::Md::sha256())?;
                    ctx.set_rsa_mgf1_md(openssl::md::Md::sha256())?;
                    algorithm(oids::RSAES_OAEP, Some(&oaep_sha256_params()))?
                }
                RsaPadding::Pkcs1 => {
                    ctx.set_rsa_padding(Padding::PKCS1)?;
                    algorithm(oids::RSA_ENCRYPTION, Some(&[0x05, 0x00]))?
                }
            };
            let mut wrapped = Vec::new();
            ctx.encrypt_to_vec(cek, &mut wrapped)?;
            Ok(RecipientInfo::Ktri(KeyTransRecipientInfo {
                version: CmsVersion::V0,
                rid: RecipientIdentifier::IssuerAndSerialNumber(rid),
                key_enc_alg: alg,
                enc_key: OctetString::new(wrapped)?,
            }))
        }
        Id::EC => {
            let their = public.ec_key()?;
            let ephemeral = EcKey::generate(their.group())?;
            let mut bn = BigNumContext::new()?;
            let point = ephemeral.public_key().to_bytes(
                ephemeral.group(),
                PointConversionForm::UNCOMPRESSED,
                &mut bn,
            )?;
            let wrap_alg = der_tlv(0x30, &der_tlv(0x06, oids::AES256_WRAP.as_bytes()));
            let z = ecdh(&PKey::from_ec_key(ephemeral)?, &their)?;
            let kek = x963_kdf(
                MessageDigest::sha256(),
                &z,
                &shared_info(&wrap_alg, None, 32),
                32,
            )?;
            let wrapped = aes_wrap(&kek, cek)?;
            Ok(RecipientInfo::Kari(KeyAgreeRecipientInfo {
                version: CmsVersion::V3,
                originator: OriginatorIdentifierOrKey::OriginatorKey(OriginatorPublicKey {
                    algorithm: AlgorithmIdentifierOwned {
                        oid: oids::EC_PUBLIC_KEY,
                        parameters: None,
                    },
                    public_key: BitString::from_bytes(&point)?,
                }),
                ukm: None,
                key_enc_alg: algorithm(oids::DH_STD_SHA256KDF, Some(&wrap_alg))?,
                recipient_enc_keys: vec![RecipientEncryptedKey {
                    rid: KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(rid),
                    enc_key: OctetString::new(wrapped)?,
                }],
            }))
        }
        _ => Err(Error::Certificate(
            "recipient certificate has neither an RSA nor an EC key".into(),
        )),
    }
}

/// The names a RecipientInfo `element` (one DER element of a `recipientInfos` SET) is addressed
/// by — issuer and serial number, or subject key identifier, as [`unwrap_ours`] looks for its
/// own — in the form [`names_of`] gives a certificate's. An element vdx cannot parse names nobody.
pub(crate) fn addressees(element: &[u8]) -> Vec<Vec<u8>> {
    let Ok(info) = RecipientInfo::from_der(element) else {
        return Vec::new();
    };
    let ias = |i: &IssuerAndSerialNumber| i.to_der().ok().map(|d| [b"i".as_slice(), &d].concat());
    let ski = |k: &[u8]| Some([b"s".as_slice(), k].concat());
    match &info {
        RecipientInfo::Ktri(ktri) => match &ktri.rid {
            RecipientIdentifier::IssuerAndSerialNumber(i) => ias(i),
            RecipientIdentifier::SubjectKeyIdentifier(k) => ski(k.0.as_bytes()),
        }
        .into_iter()
        .collect(),
        RecipientInfo::Kari(kari) => kari
            .recipient_enc_keys
            .iter()
            .filter_map(|rek| match &rek.rid {
                KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(i) => ias(i),
                KeyAgreeRecipientIdentifier::RKeyId(r) => {
                    ski(r.subject_key_identifier.0.as_bytes())
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The names a RecipientInfo for `cert` may be addressed by (see [`addressees`]).
pub(crate) fn names_of(cert: &X509Ref) -> Result<Vec<Vec<u8>>, Error> {
    let mut names = vec![[b"i".as_slice(), &issuer_and_serial(cert)?.to_der()?].concat()];
    if let Some(ski) = cert.subject_key_id() {
        names.push([b"s".as_slice(), ski.as_slice()].concat());
    }
    Ok(names)
}

/// Finds the RecipientInfo addressed to `cert` in the raw `recipientInfos` SET and recovers the
/// content key, which must be `key_len` bytes.
pub(crate) fn unwrap_ours(
    recipient_infos: &[u8],
    cert: &X509Ref,
    key: &PrivateKey,
    key_len: usize,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let malformed = |what| Error::Malformed { offset: 0, what };
    let (_, value, _) = split_der(recipient_infos).ok_or(malformed("recipientInfos"))?;
    let ours = issuer_and_serial(cert)?.to_der()?;
    let our_ski = cert.subject_key_id().map(|s| s.as_slice().to_vec());
    let is_ours_ias =
        |ias: &IssuerAndSerialNumber| ias.to_der().map(|d| d == ours).unwrap_or(false);
    let is_ours_ski = |ski: &[u8]| our_ski.as_deref() == Some(ski);

    // One element at a time: a megabyte of tiny elements must not become a vector of slices. The
    // whole SET is checked to split cleanly first, as before any recipient is tried.
    let mut rest = value;
    while !rest.is_empty() {
        let (_, _, after) = split_der(rest).ok_or(malformed("recipientInfos"))?;
        rest = after;
    }
    let mut rest = value;
    while !rest.is_empty() {
        let (_, _, after) = split_der(rest).ok_or(malformed("recipientInfos"))?;
        let element = &rest[..rest.len() - after.len()];
        rest = after;
        // Recipient types we cannot parse (password, KEK, other) are simply not ours.
        let Ok(info) = RecipientInfo::from_der(element) else {
            continue;
        };
        match info {
            RecipientInfo::Ktri(ktri) => {
                let matched = match &ktri.rid {
                    RecipientIdentifier::IssuerAndSerialNumber(ias) => {
                        ktri.version == CmsVersion::V0 && is_ours_ias(ias)
                    }
                    RecipientIdentifier::SubjectKeyIdentifier(ski) => {
                        ktri.version == CmsVersion::V2 && is_ours_ski(ski.0.as_bytes())
                    }
                };
                if matched {
                    return rsa_unwrap(&ktri, key, key_len);
                }
            }
            RecipientInfo::Kari(kari) if kari.version == CmsVersion::V3 => {
                for rek in kari.recipient_enc_keys.iter() {
                    let matched = match &rek.rid {
                        KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(ias) => is_ours_ias(ias),
                        KeyAgreeRecipientIdentifier::RKeyId(rkid) => {
                            is_ours_ski(rkid.subject_key_identifier.0.as_bytes())
                        }
                    };
                    if matched {
                        return ecdh_unwrap(&kari, rek.enc_key.as_bytes(), key, key_len);
                    }
                }
            }
            _ => {}
        }
    }
    Err(Error::NotARecipient)
}

fn rsa_unwrap(
    ktri: &KeyTransRecipientInfo,
    key: &PrivateKey,
    key_len: usize,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    if key.pkey().id() != Id::RSA {
        return Err(Error::KeyMismatch);
    }
    let mut ctx = PkeyCtx::new(key.pkey())?;
    ctx.decrypt_init()?;
    let alg = &ktri.key_enc_alg;
    let oaep = match alg.oid {
        oids::RSA_ENCRYPTION => false,
        oids::RSAES_OAEP => true,
        other => return Err(unsupported(other, "key transport")),
    };
    if oaep {
        let (hash, mgf_hash) = parse_oaep_params(alg.parameters.as_ref())?;
        ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
        ctx.set_rsa_oaep_md(hash)?;
        ctx.set_rsa_mgf1_md(mgf_hash)?;
    } else {
        ctx.set_rsa_padding(Padding::PKCS1)?;
    }
    let mut cek = Zeroizing::new(Vec::new());
    let decrypted = ctx.decrypt_to_vec(ktri.enc_key.as_bytes(), &mut cek);
    match decrypted {
        Ok(_) if cek.len() == key_len => Ok(cek),
        // PKCS#1 v1.5: answer a failed unwrap with a random key, so that a padding oracle learns
        // nothing; the content's integrity check then fails instead (RFC 3218).
        _ if !oaep => {
            let mut random = Zeroizing::new(vec![0u8; key_len]);
            openssl::rand::rand_bytes(&mut random)?;
            Ok(random)
        }
        _ => Err(Error::KeyDecryptFailed),
    }
}

fn ecdh_unwrap(
    kari: &KeyAgreeRecipientInfo,
    wrapped: &[u8],
    key: &PrivateKey,
    key_len: usize,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let ours = key.pkey().ec_key().map_err(|_| Error::KeyMismatch)?;
    let OriginatorIdentifierOrKey::OriginatorKey(originator) = &kari.originator else {
        return Err(Error::UnsupportedAlgorithm {
            oid: "originator identified by certificate".into(),
            usage: "key agreement (only ephemeral-static ECDH is supported)",
        });
    };
    if originator.algorithm.oid != oids::EC_PUBLIC_KEY {
        return Err(unsupported(originator.algorithm.oid, "originator key"));
    }
    let hash = match kari.key_enc_alg.oid {
        oids::DH_STD_SHA1KDF | oids::DH_COFACTOR_SHA1KDF => MessageDigest::sha1(),
        oids::DH_STD_SHA224KDF | oids::DH_COFACTOR_SHA224KDF => MessageDigest::sha224(),
        oids::DH_STD_SHA256KDF | oids::DH_COFACTOR_SHA256KDF => MessageDigest::sha256(),
        oids::DH_STD_SHA384KDF | oids::DH_COFACTOR_SHA384KDF => MessageDigest::sha384(),
        oids::DH_STD_SHA512KDF | oids::DH_COFACTOR_SHA512KDF => MessageDigest::sha512(),
        other => return Err(unsupported(other, "key agreement")),
    };
    let wrap_alg = kari
        .key_enc_alg
        .parameters
        .as_ref()
        .ok_or(Error::Malformed {
            offset: 0,
            what: "key agreement without a key-wrap algorithm",
        })?
        .to_der()?;
    let wrap = AlgorithmIdentifierOwned::from_der(&wrap_alg)?;
    let kek_len = match wrap.oid {
        oids::AES128_WRAP => 16,
        oids::AES192_WRAP => 24,
        oids::AES256_WRAP => 32,
        other => return Err(unsupported(other, "key wrap")),
    };
    let mut bn = BigNumContext::new()?;
    let point_bytes = originator.public_key.as_bytes().ok_or(Error::Malformed {
        offset: 0,
        what: "originator public key has unused bits",
    })?;
    let point =
        EcPoint::from_bytes(ours.group(), point_bytes, &mut bn).map_err(|_| Error::Malformed {
            offset: 0,
            what: "originator public key is not a point on the recipient's curve",
        })?;
    let theirs = EcKey::from_public_key(ours.group(), &point)?;
    let z = ecdh(key.pkey(), &theirs)?;
    let ukm = kari.ukm.as_ref().map(|u| u.as_bytes());
    let kek = x963_kdf(hash, &z, &shared_info(&wrap_alg, ukm, kek_len), kek_len)?;
    let cek = aes_unwrap(&kek, wrapped)?;
    if cek.len() != key_len {
        return Err(Error::KeyDecryptFailed);
    }
    Ok(cek)
}

/// ECDH between our key and a peer's public key, which OpenSSL decoded (so it is on the curve).
/// OpenSSL's own check of the peer's key (a scalar multiplication by the group order, as costly as
/// the agreement itself) is made only where it adds something: on a curve whose cofactor is not 1.
/// With cofactor 1 every point on the curve but infinity is in the prime-order group, and
/// infinity is refused here.
fn ecdh(
    ours: &PKey<openssl::pkey::Private>,
    theirs: &EcKeyRef<openssl::pkey::Public>,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let group = theirs.group();
    if theirs.public_key().is_infinity(group) {
        return Err(Error::Malformed {
            offset: 0,
            what: "the peer's public key is the point at infinity",
        });
    }
    let mut bn = BigNumContext::new()?;
    let mut cofactor = BigNum::new()?;
    group.cofactor(&mut cofactor, &mut bn)?;
    let check = cofactor != BigNum::from_u32(1)?;
    let theirs = PKey::from_ec_key(theirs.to_owned())?;
    let mut deriver = openssl::derive::Deriver::new(ours)?;
    deriver.set_peer_ex(&theirs, check)?;
    Ok(Zeroizing::new(deriver.derive_to_vec()?))
}

/// ECC-CMS-SharedInfo (RFC 5753 section 7.2), the KDF's "other info".
fn shared_info(wrap_alg: &[u8], ukm: Option<&[u8]>, kek_len: usize) -> Vec<u8> {
    let mut body = wrap_alg.to_vec();
    if let Some(ukm) = ukm {
        body.extend(der_tlv(0xA0, &der_tlv(0x04, ukm)));
    }
    let bits = (kek_len as u32 * 8).to_be_bytes();
    body.extend(der_tlv(0xA2, &der_tlv(0x04, &bits)));
    der_tlv(0x30, &body)
}

/// ANSI X9.63 KDF: `Hash(Z || counter || SharedInfo)` for counter = 1, 2, ... until `len` bytes.
fn x963_kdf(
    md: MessageDigest,
    z: &[u8],
    shared_info: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + md.size()));
    let mut counter = 1u32;
    while out.len() < len {
        let mut h = Hasher::new(md)?;
        h.update(z)?;
        h.update(&counter.to_be_bytes())?;
        h.update(shared_info)?;
        out.extend_from_slice(&h.finish()?);
        counter += 1;
    }
    out.truncate(len);
    Ok(out)
}

fn aes_wrap(kek: &[u8], cek: &[u8]) -> Result<Vec<u8>, Error> {
    let key = openssl::aes::AesKey::new_encrypt(kek).map_err(|_| Error::KeyDecryptFailed)?;
    let mut out = vec![0u8; cek.len() + 8];
    openssl::aes::wrap_key(&key, None, &mut out, cek).map_err(|_| Error::KeyDecryptFailed)?;
    Ok(out)
}

fn aes_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return Err(Error::KeyDecryptFailed);
    }
    let key = openssl::aes::AesKey::new_decrypt(kek).map_err(|_| Error::KeyDecryptFailed)?;
    let mut out = Zeroizing::new(vec![0u8; wrapped.len() - 8]);
    openssl::aes::unwrap_key(&key, None, &mut out, wrapped).map_err(|_| Error::KeyDecryptFailed)?;
    Ok(out)
}

/// RSAES-OAEP-params with SHA-256 and MGF1-SHA-256, stated explicitly (absent means SHA-1).
fn oaep_sha256_params() -> Vec<u8> {
    let sha256 = der_tlv(
        0x30,
        &[der_tlv(0x06, oids::SHA256.as_bytes()), vec![0x05, 0]].concat(),
    );
    let mgf1 = der_tlv(
        0x30,
        &[der_tlv(0x06, oids::MGF1.as_bytes()), sha256.clone()].concat(),
    );
    der_tlv(
        0x30,
        &[der_tlv(0xA0, &sha256), der_tlv(0xA1, &mgf1)].concat(),
    )
}

fn parse_oaep_params(
    params: Option<&Any>,
) -> Result<(&'static openssl::md::MdRef, &'static openssl::md::MdRef), Error> {
    let bad = Error::Malformed {
        offset: 0,
        what: "RSAES-OAEP parameters",
    };
    let mut hash = openssl::md::Md::sha1();
    let mut mgf_hash = openssl::md::Md::sha1();
    let Some(params) = params else {
        return Ok((hash, mgf_hash));
    };
    let der = params.to_der()?;
    let (_, value, _) = split_der(&der).ok_or(Error::Malformed {
        offset: 0,
        what: "RSAES-OAEP parameters",
    })?;
    for field in der_children(value).ok_or(bad)? {
        let (tag, inner, _) = split_der(field).ok_or(Error::Malformed {
            offset: 0,
            what: "RSAES-OAEP parameters",
        })?;
        let alg = AlgorithmIdentifierOwned::from_der(inner)?;
        match tag {
            0xA0 => hash = md(&alg.oid)?,
            0xA1 => {
                if alg.oid != oids::MGF1 {
                    return Err(unsupported(alg.oid, "OAEP mask generation"));
                }
                let inner_alg: AlgorithmIdentifierOwned = alg
                    .parameters
                    .as_ref()
                    .ok_or(Error::Malformed {
                        offset: 0,
                        what: "MGF1 without a hash",
                    })?
                    .decode_as()?;
                mgf_hash = md(&inner_alg.oid)?;
            }
            0xA2 => {
                let label: Option<OctetString> =
                    alg.parameters.as_ref().map(|p| p.decode_as()).transpose()?;
                if alg.oid != oids::P_SPECIFIED || label.is_some_and(|l| !l.as_bytes().is_empty()) {
                    return Err(unsupported(alg.oid, "OAEP label"));
                }
            }
            _ => {
                return Err(Error::Malformed {
                    offset: 0,
                    what: "RSAES-OAEP parameters",
                })
            }
        }
    }
    Ok((hash, mgf_hash))
}

fn md(oid: &Oid) -> Result<&'static openssl::md::MdRef, Error> {
    use openssl::md::Md;
    Ok(match *oid {
        oids::SHA1 => Md::sha1(),
        oids::SHA224 => Md::sha224(),
        oids::SHA256 => Md::sha256(),
        oids::SHA384 => Md::sha384(),
        oids::SHA512 => Md::sha512(),
        other => return Err(unsupported(other, "digest")),
    })
}

pub(crate) fn unsupported(oid: Oid, usage: &'static str) -> Error {
    Error::UnsupportedAlgorithm {
        oid: oid.to_string(),
        usage,
    }
}

/// An AlgorithmIdentifier with optional DER-encoded parameters.
pub(crate) fn algorithm(
    oid: Oid,
    params: Option<&[u8]>,
) -> Result<AlgorithmIdentifierOwned, Error> {
    Ok(AlgorithmIdentifierOwned {
        oid,
        parameters: params.map(Any::from_der).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use openssl::ec::EcGroup;
    use openssl::nid::Nid;

    use super::*;

    fn p256() -> EcGroup {
        EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()
    }

    #[test]
    fn both_sides_of_an_agreement_derive_the_same_secret() {
        let (a, b) = (
            EcKey::generate(&p256()).unwrap(),
            EcKey::generate(&p256()).unwrap(),
        );
        let public = |k: &EcKey<openssl::pkey::Private>| {
            EcKey::from_public_key(k.group(), k.public_key()).unwrap()
        };
        let ab = ecdh(&PKey::from_ec_key(a.clone()).unwrap(), &public(&b)).unwrap();
        let ba = ecdh(&PKey::from_ec_key(b).unwrap(), &public(&a)).unwrap();
        assert_eq!(ab, ba);
        assert_eq!(ab.len(), 32);
    }

    #[test]
    fn the_point_at_infinity_is_refused_as_a_peer_key() {
        let group = p256();
        let ours = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        // OpenSSL decodes the one-byte encoding 00, which an originator key could carry, to it.
        let infinity =
            EcPoint::from_bytes(&group, &[0], &mut BigNumContext::new().unwrap()).unwrap();
        assert!(infinity.is_infinity(&group));
        let theirs = EcKey::from_public_key(&group, &infinity).unwrap();
        let refused = ecdh(&ours, &theirs);
        assert!(
            matches!(refused, Err(Error::Malformed { what, .. }) if what.contains("infinity")),
            "{refused:?}"
        );
    }
}
