//! The inner layer: SignedData read as a stream (content to the caller's writer, digests on the
//! fly), then each SignerInfo checked against the digests once the content has passed.

use std::io::{Read, Write};

use cms::cert::IssuerAndSerialNumber;
use const_oid::ObjectIdentifier as Oid;
use der::{Decode, Encode};
use openssl::hash::{Hasher, MessageDigest};
use openssl::pkey::Id;
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::x509::{X509Ref, X509};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;

use crate::ber::{der_children, split_der, tag, BerReader, OctetStream};
use crate::recipient::unsupported;
use crate::{oids, Error};

/// Hard limits on the small elements, so a hostile length cannot make us allocate gigabytes.
const MAX_ALGORITHM: u64 = 4 * 1024;
/// One certificate: real ones are 1-4 KiB; 64 KiB leaves room for large extensions.
const MAX_CERTIFICATE: u64 = 64 * 1024;
/// Certificates in one document: a signer or two and their chains need far fewer.
const MAX_CERTIFICATES: usize = 100;
/// All certificates of one document together: what is held before the GCM tag has been checked.
const MAX_CERTIFICATES_BYTES: u64 = 1024 * 1024;
/// CRLs in SignedData are not used (revocation data comes from `vdx-pki`): skipped, not held.
const MAX_CRLS: u64 = 16 * 1024 * 1024;
const MAX_SIGNER_INFO: u64 = 256 * 1024;
const MAX_SIGNERS: usize = 16;

/// What the stream showed, before any signature has been checked.
pub(crate) struct SignedContent {
    econtent_type: Oid,
    digests: Vec<(Oid, Vec<u8>)>,
    certificates: Vec<X509>,
    signer_infos: Vec<Vec<u8>>,
    pub(crate) content_bytes: u64,
}

/// A signer whose signature has verified over the content. Path validation is `vdx-pki`'s job.
#[derive(Debug, Clone)]
pub struct SignerReport {
    cert: X509,
    signing_time: Option<OffsetDateTime>,
    digest: &'static str,
}

impl SignerReport {
    /// The certificate that verified the signature.
    pub fn certificate(&self) -> &X509Ref {
        &self.cert
    }

    /// The signingTime attribute, when the signer included one: validity is checked at this time.
    pub fn signing_time(&self) -> Option<OffsetDateTime> {
        self.signing_time
    }

    /// The digest algorithm's name (e.g. "sha256"), for the verdict.
    pub fn digest_algorithm(&self) -> &'static str {
        self.digest
    }
}

/// Reads a `ContentInfo(SignedData)` from `input`, writing the encapsulated content to `output`.
pub(crate) fn read<R: Read, W: Write>(input: R, output: &mut W) -> Result<SignedContent, Error> {
    let mut r = BerReader::new(input);
    let ci = r.open(tag::SEQUENCE, "inner ContentInfo")?;
    let oid = r.oid()?;
    if oid != oids::SIGNED_DATA {
        return Err(Error::Unsigned);
    }
    let explicit = r.open(tag::CONTEXT_0_CONSTRUCTED, "SignedData [0]")?;
    let sd = r.open(tag::SEQUENCE, "SignedData")?;
    r.primitive(tag::INTEGER, 8, "SignedData version")?;

    let mut hashers = Vec::new();
    let algs = r.open(tag::SET, "digestAlgorithms")?;
    while !r.at_end(algs)? {
        let alg =
            AlgorithmIdentifierOwned::from_der(&r.element(MAX_ALGORITHM, "digest algorithm")?)?;
        if let Some(md) = oids::digest(&alg.oid) {
            if !hashers.iter().any(|(o, _)| *o == alg.oid) {
                hashers.push((alg.oid, Hasher::new(md)?));
            }
        }
    }

    let eci = r.open(tag::SEQUENCE, "encapContentInfo")?;
    let econtent_type = r.oid()?;
    if r.at_end(eci)? {
        return Err(Error::Detached);
    }
    let wrapper = r.open(tag::CONTEXT_0_CONSTRUCTED, "eContent [0]")?;
    let h = r.header()?;
    let mut content = OctetStream::start(&h, tag::OCTET_STRING)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut content_bytes = 0u64;
    loop {
        let n = content.read(&mut r, &mut buf)?;
        if n == 0 {
            break;
        }
        for (_, hasher) in &mut hashers {
            hasher.update(&buf[..n])?;
        }
        output.write_all(&buf[..n])?;
        content_bytes += n as u64;
    }
    r.close(wrapper, "eContent [0]")?;
    r.close(eci, "encapContentInfo")?;

    let mut certificates = Vec::new();
    if r.peek()?.map(|h| h.tag) == Some(tag::CONTEXT_0_CONSTRUCTED) {
        let set = r.open(tag::CONTEXT_0_CONSTRUCTED, "certificates")?;
        let mut count = 0;
        let mut bytes = 0u64;
        while !r.at_end(set)? {
            if count == MAX_CERTIFICATES {
                return Err(Error::TooMany {
                    offset: r.offset(),
                    what: "certificates in the signed document",
                    limit: MAX_CERTIFICATES as u64,
                });
            }
            count += 1;
            let offset = r.offset();
            let element = r.element(MAX_CERTIFICATE, "certificate")?;
            bytes += element.len() as u64;
            if bytes > MAX_CERTIFICATES_BYTES {
                return Err(Error::TooLarge {
                    offset,
                    what: "certificates in the signed document",
                    len: bytes,
                    limit: MAX_CERTIFICATES_BYTES,
                });
            }
            // Attribute certificates and other choices carry nothing we use.
            if element.first() == Some(&tag::SEQUENCE) {
                let cert = crate::parsed::certificate(&element)
                    .map_err(|e| Error::Certificate(format!("in the signed document: {e}")))?;
                certificates.push(cert);
            }
        }
    }
    if r.peek()?.map(|h| h.tag) == Some(tag::CONTEXT_1_CONSTRUCTED) {
        r.skip(MAX_CRLS, "crls")?;
    }
    let mut signer_infos = Vec::new();
    let set = r.open(tag::SET, "signerInfos")?;
    while !r.at_end(set)? {
        if signer_infos.len() == MAX_SIGNERS {
            return Err(Error::TooMany {
                offset: r.offset(),
                what: "SignerInfos",
                limit: MAX_SIGNERS as u64,
            });
        }
        signer_infos.push(r.element(MAX_SIGNER_INFO, "SignerInfo")?);
    }
    r.close(sd, "SignedData")?;
    r.close(explicit, "SignedData [0]")?;
    r.close(ci, "inner ContentInfo")?;

    let mut digests = Vec::with_capacity(hashers.len());
    for (oid, mut hasher) in hashers {
        digests.push((oid, hasher.finish()?.to_vec()));
    }
    Ok(SignedContent {
        econtent_type,
        digests,
        certificates,
        signer_infos,
        content_bytes,
    })
}

impl SignedContent {
    /// Certificates the document carried (signers and intermediates), for path building.
    pub(crate) fn certificates(&self) -> &[X509] {
        &self.certificates
    }

    /// Checks every SignerInfo; all must verify, and there must be at least one.
    pub(crate) fn verify(&self, extra_certs: &[X509]) -> Result<Vec<SignerReport>, Error> {
        if self.signer_infos.is_empty() {
            return Err(Error::Unsigned);
        }
        let mut reports = Vec::with_capacity(self.signer_infos.len());
        for (index, info) in self.signer_infos.iter().enumerate() {
            reports.push(self.verify_one(index, info, extra_certs)?);
        }
        Ok(reports)
    }

    fn verify_one(&self, index: usize, info: &[u8], extra: &[X509]) -> Result<SignerReport, Error> {
        let bad = || Error::Malformed {
            offset: 0,
            what: "SignerInfo",
        };
        let (_, value, _) = split_der(info).ok_or_else(bad)?;
        let fields = der_children(value).ok_or_else(bad)?;
        if fields.len() < 5 {
            return Err(bad());
        }
        let cert = self
            .find_cert(fields[1], extra)
            .ok_or(Error::SignerCertificateMissing { index })?;
        let signer = subject(&cert);
        let digest_alg = AlgorithmIdentifierOwned::from_der(fields[2])?;
        let md = oids::digest(&digest_alg.oid)
            .ok_or_else(|| unsupported(digest_alg.oid, "signer digest"))?;
        let content_digest = self
            .digests
            .iter()
            .find(|(oid, _)| *oid == digest_alg.oid)
            .map(|(_, d)| d.as_slice())
            .ok_or(Error::Malformed {
                offset: 0,
                what: "signer digest algorithm not listed in digestAlgorithms",
            })?;

        let (signed_attrs, rest) = if fields[3].first() == Some(&tag::CONTEXT_0_CONSTRUCTED) {
            (Some(fields[3]), &fields[4..])
        } else {
            (None, &fields[3..])
        };
        if rest.len() < 2 {
            return Err(bad());
        }
        let signature_alg = AlgorithmIdentifierOwned::from_der(rest[0])?;
        let (sig_tag, signature, _) = split_der(rest[1]).ok_or_else(bad)?;
        if sig_tag != tag::OCTET_STRING {
            return Err(bad());
        }

        let mut signing_time = None;
        let signed_digest = match signed_attrs {
            Some(raw) => {
                signing_time = self.check_attributes(raw, content_digest, &signer)?;
                // Verify over the bytes as received, with the [0] tag turned into SET (RFC 5652 5.4).
                let mut as_set = raw.to_vec();
                as_set[0] = tag::SET;
                openssl::hash::hash(md, &as_set)?.to_vec()
            }
            None => content_digest.to_vec(),
        };

        let public = cert.public_key()?;
        let mut ctx = PkeyCtx::new(&public)?;
        ctx.verify_init()?;
        match (public.id(), signature_alg.oid) {
            (
                Id::RSA,
                oids::RSA_ENCRYPTION
                | oids::SHA1_WITH_RSA
                | oids::SHA224_WITH_RSA
                | oids::SHA256_WITH_RSA
                | oids::SHA384_WITH_RSA
                | oids::SHA512_WITH_RSA,
            ) => {
                ctx.set_rsa_padding(Padding::PKCS1)?;
                ctx.set_signature_md(md_ref(md))?;
            }
            (
                Id::EC,
                oids::EC_PUBLIC_KEY
                | oids::ECDSA_SHA1
                | oids::ECDSA_SHA224
                | oids::ECDSA_SHA256
                | oids::ECDSA_SHA384
                | oids::ECDSA_SHA512,
            ) => {}
            (_, other) => return Err(unsupported(other, "signature")),
        }
        if !ctx.verify(&signed_digest, signature).unwrap_or(false) {
            return Err(Error::BadSignature { signer });
        }
        Ok(SignerReport {
            cert,
            signing_time,
            digest: md_name(md),
        })
    }

    /// Checks contentType and messageDigest, and returns signingTime if present.
    fn check_attributes(
        &self,
        raw: &[u8],
        content_digest: &[u8],
        signer: &str,
    ) -> Result<Option<OffsetDateTime>, Error> {
        let bad = |what| Error::Malformed { offset: 0, what };
        let (_, value, _) = split_der(raw).ok_or(bad("signed attributes"))?;
        let mut content_type_ok = false;
        let mut digest_ok = false;
        let mut signing_time = None;
        for attr in der_children(value).ok_or(bad("signed attributes"))? {
            let (_, body, _) = split_der(attr).ok_or(bad("signed attribute"))?;
            let (oid_tag, oid, rest) = split_der(body).ok_or(bad("signed attribute"))?;
            let (set_tag, values, _) = split_der(rest).ok_or(bad("signed attribute"))?;
            if oid_tag != tag::OID || set_tag != tag::SET {
                return Err(bad("signed attribute"));
            }
            let oid = Oid::from_bytes(oid).map_err(|_| bad("attribute type"))?;
            let (value_tag, value, _) = split_der(values).ok_or(bad("attribute value"))?;
            match oid {
                oids::ATTR_CONTENT_TYPE => {
                    if value_tag != tag::OID || value != self.econtent_type.as_bytes() {
                        return Err(Error::BadSignature {
                            signer: signer.to_owned(),
                        });
                    }
                    content_type_ok = true;
                }
                oids::ATTR_MESSAGE_DIGEST => {
                    if value_tag != tag::OCTET_STRING || value != content_digest {
                        return Err(Error::DigestMismatch {
                            signer: signer.to_owned(),
                        });
                    }
                    digest_ok = true;
                }
                oids::ATTR_SIGNING_TIME => signing_time = Some(parse_time(value_tag, value)?),
                _ => {}
            }
        }
        if !content_type_ok || !digest_ok {
            return Err(bad("signed attributes lack content type or message digest"));
        }
        Ok(signing_time)
    }

    fn find_cert(&self, sid: &[u8], extra: &[X509]) -> Option<X509> {
        let mut candidates = self.certificates.iter().chain(extra.iter());
        match *sid.first()? {
            tag::SEQUENCE => {
                let wanted = IssuerAndSerialNumber::from_der(sid).ok()?.to_der().ok()?;
                candidates
                    .find(|c| {
                        crate::recipient::issuer_and_serial(c)
                            .and_then(|ias| Ok(ias.to_der()?))
                            .is_ok_and(|d| d == wanted)
                    })
                    .cloned()
            }
            tag::CONTEXT_0 => {
                let (_, ski, _) = split_der(sid)?;
                candidates
                    .find(|c| c.subject_key_id().is_some_and(|k| k.as_slice() == ski))
                    .cloned()
            }
            _ => None,
        }
    }
}

/// A readable one-line subject for messages.
pub(crate) fn subject(cert: &X509Ref) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| {
            let key = e.object().nid().short_name().ok()?;
            let value = String::from_utf8_lossy(e.data().as_slice()).into_owned();
            Some(format!("{key}={value}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_time(tag: u8, value: &[u8]) -> Result<OffsetDateTime, Error> {
    let bad = || Error::Malformed {
        offset: 0,
        what: "signingTime",
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let digits = text.strip_suffix('Z').ok_or_else(bad)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let number = |s: &str| s.parse::<i32>().map_err(|_| bad());
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = number(&digits[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (number(&digits[..4])?, &digits[4..]),
        _ => return Err(bad()),
    };
    let field = |i: usize| rest[i..i + 2].parse::<u8>().map_err(|_| bad());
    let month = time::Month::try_from(field(0)?).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(year, month, field(2)?).map_err(|_| bad())?;
    let clock = time::Time::from_hms(field(4)?, field(6)?, field(8)?).map_err(|_| bad())?;
    Ok(date.with_time(clock).assume_utc())
}

fn md_ref(md: MessageDigest) -> &'static openssl::md::MdRef {
    use openssl::md::Md;
    match md.type_().as_raw() {
        n if n == MessageDigest::sha1().type_().as_raw() => Md::sha1(),
        n if n == MessageDigest::sha224().type_().as_raw() => Md::sha224(),
        n if n == MessageDigest::sha384().type_().as_raw() => Md::sha384(),
        n if n == MessageDigest::sha512().type_().as_raw() => Md::sha512(),
        _ => Md::sha256(),
    }
}

fn md_name(md: MessageDigest) -> &'static str {
    md.type_().short_name().unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpki::{agency, ca, Party};
    use crate::{verify_signed, KeyKind, Sealer};

    fn sign(signer: &Party, chain: &[&Party]) -> Vec<u8> {
        let mut sealer = Sealer::new().signer(&signer.cert, &signer.key).unwrap();
        for c in chain {
            sealer = sealer.chain_cert(&c.cert);
        }
        let mut out = Vec::new();
        sealer.sign(&b"content"[..], &mut out).unwrap();
        out
    }

    #[test]
    fn at_most_100_certificates_are_accepted() {
        let ca = ca().unwrap();
        let office = agency(&ca, "Office", KeyKind::EcP256).unwrap();
        let others: Vec<Party> = (0..MAX_CERTIFICATES)
            .map(|i| agency(&ca, &format!("Other {i}"), KeyKind::EcP256).unwrap())
            .collect();
        let refs: Vec<&Party> = others.iter().collect();
        // The signer's own certificate and 99 more: accepted, all of them kept.
        let fits = sign(&office, &refs[..MAX_CERTIFICATES - 1]);
        let opened = verify_signed(&fits[..], &mut Vec::new(), &[]).unwrap();
        assert_eq!(opened.certificates().len(), MAX_CERTIFICATES);
        // One more is refused by count, naming the limit.
        let over = sign(&office, &refs);
        match verify_signed(&over[..], &mut Vec::new(), &[]) {
            Err(e @ Error::TooMany { limit: 100, .. }) => {
                assert_eq!(e.code(), "corrupt");
                assert!(e.to_string().contains("more than 100 certificates"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_gigabyte_certificate_length_is_refused_from_its_header() {
        let ca = ca().unwrap();
        let office = agency(&ca, "Office", KeyKind::EcP256).unwrap();
        let signed = sign(&office, &[]);
        // The certificate's own header (`30 82 hi lo`) becomes `30 84 40 00 00 00`.
        let der = office.cert.to_der().unwrap();
        let at = signed.windows(der.len()).position(|w| w == der).unwrap();
        assert_eq!(&signed[at..at + 2], [0x30, 0x82]);
        let mut bad = signed[..at].to_vec();
        bad.extend_from_slice(&[0x30, 0x84, 0x40, 0, 0, 0]);
        bad.extend_from_slice(&signed[at + 4..]);
        assert!(matches!(
            verify_signed(&bad[..], &mut Vec::new(), &[]),
            Err(Error::TooLarge { what: "certificate", len, limit: MAX_CERTIFICATE, .. }) if len == 1 << 30
        ));
    }
}
