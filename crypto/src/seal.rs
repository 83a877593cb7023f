//! Sealing: the package is signed (SignedData) and the result encrypted to every recipient
//! (AuthEnvelopedData, AES-256-GCM), in one pass over the input with bounded memory.
//!
//! The byte layout is what `openssl cms -sign -stream | openssl cms -encrypt -stream` produces:
//! see `docs/sealed-dispatch.md`.

use std::io::{self, Read, Write};

use der::Encode;
use openssl::hash::{Hasher, MessageDigest};
use openssl::pkey::Id;
use openssl::symm::{Cipher, Crypter, Mode};
use openssl::x509::X509Ref;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::ber::{der_tlv, tag, BerWriter};
use crate::recipient::{issuer_and_serial, wrap_for, RsaPadding};
use crate::variant::Recipients;
use crate::{oids, Error, PrivateKey};

/// Plaintext bytes per content segment, and per encrypted segment.
const SEGMENT: usize = 64 * 1024;
const GCM_NONCE_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;

/// What to seal with: who signs, who may read. Built once, used for one or many documents.
#[derive(Default)]
pub struct Sealer<'a> {
    signers: Vec<(&'a X509Ref, &'a PrivateKey)>,
    recipients: Vec<(&'a X509Ref, RsaPadding)>,
    chain: Vec<&'a X509Ref>,
}

/// Facts about a sealed document, for logs and the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SealSummary {
    /// Bytes of content signed and encrypted.
    pub content_bytes: u64,
    /// SHA-256 of the content, as signed.
    pub content_sha256: [u8; 32],
    /// The signing time written into every signer's signed attributes.
    pub signing_time: OffsetDateTime,
}

impl<'a> Sealer<'a> {
    /// An empty sealer; add at least one signer and one recipient.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a signer (the agency; a second one may be the competent person). The key must be the
    /// certificate's.
    pub fn signer(mut self, cert: &'a X509Ref, key: &'a PrivateKey) -> Result<Self, Error> {
        if !key.matches(cert) {
            return Err(Error::KeyMismatch);
        }
        self.signers.push((cert, key));
        Ok(self)
    }

    /// Adds a recipient agency by its encryption certificate.
    pub fn recipient(mut self, cert: &'a X509Ref, padding: RsaPadding) -> Self {
        self.recipients.push((cert, padding));
        self
    }

    /// Adds an intermediate CA certificate to carry in the SignedData, so the reader can build
    /// the signer's path.
    pub fn chain_cert(mut self, cert: &'a X509Ref) -> Self {
        self.chain.push(cert);
        self
    }

    /// Reads the whole of `input` and writes the sealed document to `output`.
    pub fn seal<R: Read, W: Write>(&self, mut input: R, output: W) -> Result<SealSummary, Error> {
        if self.signers.is_empty() {
            return Err(Error::Unsigned);
        }
        if self.recipients.is_empty() {
            return Err(Error::NotARecipient);
        }
        let mut cek = Zeroizing::new([0u8; 32]);
        openssl::rand::rand_bytes(&mut cek[..])?;
        let mut nonce = [0u8; GCM_NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce)?;

        let mut infos = Vec::with_capacity(self.recipients.len());
        for (cert, padding) in &self.recipients {
            infos.push(wrap_for(cert, &cek[..], *padding)?.to_der()?);
        }
        infos.sort();

        let mut out = BerWriter::new(output);
        out.begin(tag::SEQUENCE)?;
        out.tlv(tag::OID, oids::AUTH_ENVELOPED_DATA.as_bytes())?;
        out.begin(tag::CONTEXT_0_CONSTRUCTED)?;
        out.begin(tag::SEQUENCE)?;
        out.tlv(tag::INTEGER, &[0])?;
        out.tlv(tag::SET, &infos.concat())?;
        out.begin(tag::SEQUENCE)?;
        out.tlv(tag::OID, oids::DATA.as_bytes())?;
        let gcm_params = der_tlv(
            tag::SEQUENCE,
            &[
                der_tlv(tag::OCTET_STRING, &nonce),
                der_tlv(tag::INTEGER, &[GCM_TAG_LEN as u8]),
            ]
            .concat(),
        );
        out.raw(&der_tlv(
            tag::SEQUENCE,
            &[der_tlv(tag::OID, oids::AES256_GCM.as_bytes()), gcm_params].concat(),
        ))?;
        out.begin(tag::CONTEXT_0_CONSTRUCTED)?;

        let crypter = Crypter::new(Cipher::aes_256_gcm(), Mode::Encrypt, &cek[..], Some(&nonce))?;
        let mut plain = BerWriter::new(SegmentEncryptor::new(out, crypter));
        let summary = self.write_signed_data(&mut input, &mut plain)?;
        let (mut out, tag_bytes) = plain.into_inner().finish()?;

        out.end()?; // encryptedContent
        out.end()?; // authEncryptedContentInfo
        out.tlv(tag::OCTET_STRING, &tag_bytes)?;
        out.end()?; // AuthEnvelopedData
        out.end()?; // [0]
        out.end()?; // ContentInfo
        out.flush()?;
        Ok(summary)
    }

    /// A copy of a document this sealer wrote (`input`) that only `keep` can open: its
    /// `recipientInfos` reduced to theirs, every other byte as it was — the same encrypted
    /// content and tag, so no key is needed (`docs/broadcast.md`, rule 2). Refused when the
    /// envelope is not written as [`Sealer::seal`] writes it (indefinite lengths around the
    /// recipients), or when no RecipientInfo is addressed to `keep`. Returns the bytes written.
    /// To cut many copies of one document, read its [`Recipients`] once instead.
    pub fn cut_recipients<R: Read, W: Write>(
        mut input: R,
        mut output: W,
        keep: &[&X509Ref],
    ) -> Result<u64, Error> {
        let recipients = Recipients::read(&mut input)?;
        let kept = recipients.select(keep)?;
        if kept.is_empty() {
            return Err(Error::NotARecipient);
        }
        let head = recipients.head(&kept);
        output.write_all(&head)?;
        let copied = io::copy(&mut input, &mut output)?;
        output.flush()?;
        Ok(head.len() as u64 + copied)
    }

    /// Signs `input` without encrypting it: a `ContentInfo(SignedData)` with the content inside, for
    /// what is public but must be attributable (receipts, status notices). Recipients are ignored.
    pub fn sign<R: Read, W: Write>(&self, mut input: R, output: W) -> Result<SealSummary, Error> {
        if self.signers.is_empty() {
            return Err(Error::Unsigned);
        }
        let mut out = BerWriter::new(output);
        let summary = self.write_signed_data(&mut input, &mut out)?;
        out.flush()?;
        Ok(summary)
    }

    fn write_signed_data<R: Read, W: Write>(
        &self,
        input: &mut R,
        out: &mut BerWriter<W>,
    ) -> Result<SealSummary, Error> {
        let sha256_alg = der_tlv(tag::SEQUENCE, &der_tlv(tag::OID, oids::SHA256.as_bytes()));
        out.begin(tag::SEQUENCE)?;
        out.tlv(tag::OID, oids::SIGNED_DATA.as_bytes())?;
        out.begin(tag::CONTEXT_0_CONSTRUCTED)?;
        out.begin(tag::SEQUENCE)?;
        out.tlv(tag::INTEGER, &[1])?;
        out.tlv(tag::SET, &sha256_alg)?;
        out.begin(tag::SEQUENCE)?;
        out.tlv(tag::OID, oids::DATA.as_bytes())?;
        out.begin(tag::CONTEXT_0_CONSTRUCTED)?;
        out.begin(tag::OCTET_STRING_CONSTRUCTED)?;

        let mut hasher = Hasher::new(MessageDigest::sha256())?;
        let mut buf = vec![0u8; SEGMENT];
        let mut content_bytes = 0u64;
        loop {
            let n = read_full(input, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n])?;
            out.tlv(tag::OCTET_STRING, &buf[..n])?;
            content_bytes += n as u64;
        }
        let digest = hasher.finish()?;
        out.end()?; // OCTET STRING
        out.end()?; // [0]
        out.end()?; // encapContentInfo

        let mut certs: Vec<Vec<u8>> = Vec::new();
        for cert in self
            .signers
            .iter()
            .map(|(c, _)| *c)
            .chain(self.chain.iter().copied())
        {
            let der = cert.to_der()?;
            if !certs.contains(&der) {
                certs.push(der);
            }
        }
        out.tlv(tag::CONTEXT_0_CONSTRUCTED, &certs.concat())?;

        let signing_time = OffsetDateTime::now_utc();
        let mut signer_infos = Vec::with_capacity(self.signers.len());
        for (cert, key) in &self.signers {
            signer_infos.push(signer_info(cert, key, &digest, signing_time, &sha256_alg)?);
        }
        signer_infos.sort();
        out.tlv(tag::SET, &signer_infos.concat())?;
        out.end()?; // SignedData
        out.end()?; // [0]
        out.end()?; // ContentInfo

        let mut content_sha256 = [0u8; 32];
        content_sha256.copy_from_slice(&digest);
        Ok(SealSummary {
            content_bytes,
            content_sha256,
            signing_time,
        })
    }
}

/// One SignerInfo with signed attributes: content type, signing time, message digest.
fn signer_info(
    cert: &X509Ref,
    key: &PrivateKey,
    digest: &[u8],
    signing_time: OffsetDateTime,
    digest_alg: &[u8],
) -> Result<Vec<u8>, Error> {
    let attribute = |oid: &const_oid::ObjectIdentifier, value: Vec<u8>| {
        der_tlv(
            tag::SEQUENCE,
            &[der_tlv(tag::OID, oid.as_bytes()), der_tlv(tag::SET, &value)].concat(),
        )
    };
    let mut attrs = [
        attribute(
            &oids::ATTR_CONTENT_TYPE,
            der_tlv(tag::OID, oids::DATA.as_bytes()),
        ),
        attribute(&oids::ATTR_SIGNING_TIME, encode_time(signing_time)),
        attribute(
            &oids::ATTR_MESSAGE_DIGEST,
            der_tlv(tag::OCTET_STRING, digest),
        ),
    ];
    attrs.sort();
    let attrs = attrs.concat();

    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key.pkey())?;
    let signature = signer.sign_oneshot_to_vec(&der_tlv(tag::SET, &attrs))?;
    let signature_alg = match key.pkey().id() {
        Id::EC => der_tlv(
            tag::SEQUENCE,
            &der_tlv(tag::OID, oids::ECDSA_SHA256.as_bytes()),
        ),
        _ => der_tlv(
            tag::SEQUENCE,
            &[
                der_tlv(tag::OID, oids::RSA_ENCRYPTION.as_bytes()),
                vec![0x05, 0],
            ]
            .concat(),
        ),
    };
    let body = [
        der_tlv(tag::INTEGER, &[1]),
        issuer_and_serial(cert)?.to_der()?,
        digest_alg.to_vec(),
        der_tlv(tag::CONTEXT_0_CONSTRUCTED, &attrs),
        signature_alg,
        der_tlv(tag::OCTET_STRING, &signature),
    ]
    .concat();
    Ok(der_tlv(tag::SEQUENCE, &body))
}

/// UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5652 section 11.3).
fn encode_time(t: OffsetDateTime) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = (
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    );
    if (1950..2050).contains(&y) {
        let text = format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100);
        der_tlv(0x17, text.as_bytes())
    } else {
        let text = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
        der_tlv(0x18, text.as_bytes())
    }
}

/// Reads until `buf` is full or the input ends.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The plaintext side of the envelope: collects bytes into segments, encrypts each, and writes it
/// to the outer layer as one primitive OCTET STRING.
struct SegmentEncryptor<W> {
    out: BerWriter<W>,
    crypter: Crypter,
    pending: Vec<u8>,
    cipher_buf: Vec<u8>,
}

impl<W: Write> SegmentEncryptor<W> {
    fn new(out: BerWriter<W>, crypter: Crypter) -> Self {
        Self {
            out,
            crypter,
            pending: Vec::with_capacity(SEGMENT),
            cipher_buf: vec![0u8; SEGMENT + 32],
        }
    }

    fn encrypt(&mut self, plain: &[u8]) -> io::Result<()> {
        if plain.is_empty() {
            return Ok(());
        }
        if self.cipher_buf.len() < plain.len() + 32 {
            self.cipher_buf.resize(plain.len() + 32, 0);
        }
        let n = self
            .crypter
            .update(plain, &mut self.cipher_buf)
            .map_err(io::Error::other)?;
        self.out.tlv(tag::OCTET_STRING, &self.cipher_buf[..n])
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        self.encrypt(&pending)?;
        self.pending = pending;
        self.pending.clear();
        Ok(())
    }

    /// Encrypts what is left and returns the outer writer with the GCM tag.
    fn finish(mut self) -> Result<(BerWriter<W>, [u8; GCM_TAG_LEN]), Error> {
        self.flush_pending()?;
        let n = self.crypter.finalize(&mut self.cipher_buf)?;
        if n > 0 {
            self.out.tlv(tag::OCTET_STRING, &self.cipher_buf[..n])?;
        }
        let mut tag_bytes = [0u8; GCM_TAG_LEN];
        self.crypter.get_tag(&mut tag_bytes)?;
        Ok((self.out, tag_bytes))
    }
}

impl<W: Write> Write for SegmentEncryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.pending.is_empty() && data.len() >= SEGMENT {
            self.encrypt(&data[..SEGMENT])?;
            return Ok(SEGMENT);
        }
        let take = data.len().min(SEGMENT - self.pending.len());
        self.pending.extend_from_slice(&data[..take]);
        if self.pending.len() == SEGMENT {
            self.flush_pending()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
