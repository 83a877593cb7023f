//! Opening: decrypt the envelope as it streams, verify the SignedData inside, and only then call the
//! result good. Plaintext reaches the caller's writer before the GCM tag and the signatures have been
//! checked, so the caller must hold it aside (a temporary file) until `open` returns `Ok`.

use std::io::{self, Read, Write};

use der::Decode;
use openssl::symm::{Cipher, Crypter, Mode};
use openssl::x509::{X509Ref, X509};
use spki::AlgorithmIdentifierOwned;

use crate::ber::{split_der, tag, BerReader, OctetStream};
use crate::recipient::{unsupported, unwrap_ours};
use crate::signed::{self, SignerReport};
use crate::{armor, oids, Error, PrivateKey};

pub(crate) const MAX_RECIPIENT_INFOS: u64 = 1024 * 1024;
const MAX_ORIGINATOR_INFO: u64 = 1024 * 1024;
const MAX_ALGORITHM: u64 = 4 * 1024;
const MAX_ATTRIBUTES: u64 = 64 * 1024;
const CHUNK: usize = 64 * 1024;

/// The recipient side: our certificate and its private key.
pub struct Opener<'a> {
    cert: &'a X509Ref,
    key: &'a PrivateKey,
    extra_certs: Vec<X509>,
}

/// A document that decrypted, passed its integrity check, and whose every signature verified.
/// Only [`Opener::open`] makes one. Whether the signers are trusted is decided by `vdx-pki`.
#[derive(Debug)]
pub struct Opened {
    signers: Vec<SignerReport>,
    certificates: Vec<X509>,
    content_bytes: u64,
    envelope: &'static str,
}

impl Opened {
    /// Every signer, in the order of the SignerInfos.
    pub fn signers(&self) -> &[SignerReport] {
        &self.signers
    }

    /// All certificates the document carried: the untrusted pool for path building.
    pub fn certificates(&self) -> &[X509] {
        &self.certificates
    }

    /// Bytes of content written to the output.
    pub fn content_bytes(&self) -> u64 {
        self.content_bytes
    }

    /// How the content was protected, e.g. `authEnvelopedData/aes-256-gcm`.
    pub fn envelope(&self) -> &'static str {
        self.envelope
    }
}

impl<'a> Opener<'a> {
    /// Refuses a key that is not the certificate's, before any input is read.
    pub fn new(cert: &'a X509Ref, key: &'a PrivateKey) -> Result<Self, Error> {
        if !key.matches(cert) {
            return Err(Error::KeyMismatch);
        }
        Ok(Self {
            cert,
            key,
            extra_certs: Vec::new(),
        })
    }

    /// Certificates to look signers up in when the document does not carry them.
    pub fn extra_certs(mut self, certs: Vec<X509>) -> Self {
        self.extra_certs = certs;
        self
    }

    /// Decrypts and verifies `input` (DER, BER, PEM or S/MIME), streaming the content to `output`.
    pub fn open<R: Read, W: Write>(&self, input: R, mut output: W) -> Result<Opened, Error> {
        let mut r = BerReader::new(armor::dearmor(input)?);
        let ci = r.open(tag::SEQUENCE, "ContentInfo")?;
        let content_type = r.oid()?;
        let authenticated = match content_type {
            oids::AUTH_ENVELOPED_DATA => true,
            oids::ENVELOPED_DATA => false,
            oids::SIGNED_DATA => {
                return Err(Error::NotEnveloped("signedData (not encrypted)".into()))
            }
            other => return Err(Error::NotEnveloped(other.to_string())),
        };
        let explicit = r.open(tag::CONTEXT_0_CONSTRUCTED, "content [0]")?;
        let body = r.open(tag::SEQUENCE, "enveloped content")?;
        let version = r.primitive(tag::INTEGER, 8, "version")?;
        // RFC 5083: AuthEnvelopedData is always version 0; RFC 5652 6.1 for EnvelopedData.
        let known = if authenticated {
            &[0u8][..]
        } else {
            &[0, 2, 3, 4][..]
        };
        if version.len() != 1 || !known.contains(&version[0]) {
            return Err(r.malformed("unknown envelope version"));
        }
        if r.peek()?.map(|h| h.tag) == Some(tag::CONTEXT_0_CONSTRUCTED) {
            r.skip(MAX_ORIGINATOR_INFO, "originatorInfo")?;
        }
        let infos = r.element(MAX_RECIPIENT_INFOS, "recipientInfos")?;
        if infos.first() != Some(&tag::SET) {
            return Err(r.malformed("recipientInfos"));
        }
        let eci = r.open(tag::SEQUENCE, "encryptedContentInfo")?;
        if r.oid()? != oids::DATA {
            return Err(r.malformed("encrypted content type is not id-data"));
        }
        let alg = AlgorithmIdentifierOwned::from_der(
            &r.element(MAX_ALGORITHM, "content encryption algorithm")?,
        )?;
        let cipher = ContentCipher::from_algorithm(&alg, authenticated)?;
        let cek = unwrap_ours(&infos, self.cert, self.key, cipher.cipher.key_len())?;
        let h = r.header()?;
        if h.tag != tag::CONTEXT_0 && h.tag != tag::CONTEXT_0_CONSTRUCTED {
            return Err(Error::Malformed {
                offset: h.offset,
                what: "encrypted content missing",
            });
        }
        let stream = OctetStream::start(&h, tag::CONTEXT_0)?;
        let mut crypter = Crypter::new(cipher.cipher, Mode::Decrypt, &cek, Some(&cipher.iv))?;
        if cipher.tag_len.is_none() {
            crypter.pad(true);
        }
        let mut plain = Decrypting {
            r,
            stream,
            crypter,
            finalize_at_end: cipher.tag_len.is_none(),
            inbuf: vec![0; CHUNK],
            outbuf: vec![0; CHUNK + 32],
            out_pos: 0,
            out_len: 0,
            ended: false,
        };

        let inner = signed::read(&mut plain, &mut output).map_err(from_io);
        let inner = inner.and_then(|content| {
            let mut rest = [0u8; 1];
            match plain.read(&mut rest).map_err(|e| from_io(e.into()))? {
                0 => Ok(content),
                _ => Err(Error::Malformed {
                    offset: 0,
                    what: "data after the signed content",
                }),
            }
        });
        // Whatever the inner layer said, an integrity failure of the envelope is the truer verdict.
        let outer = plain.finish(eci, cipher.tag_len).and_then(|mut r| {
            if authenticated {
                r.close(body, "AuthEnvelopedData")?;
            } else {
                if r.peek()?.map(|h| h.tag) == Some(tag::CONTEXT_1_CONSTRUCTED) {
                    r.skip(MAX_ATTRIBUTES, "unprotectedAttrs")?;
                }
                r.close(body, "EnvelopedData")?;
            }
            r.close(explicit, "content [0]")?;
            r.close(ci, "ContentInfo")?;
            match r.peek()? {
                None => Ok(()),
                Some(_) => Err(r.malformed("trailing data after the document")),
            }
        });
        let content = match (inner, outer) {
            (_, Err(Error::IntegrityFailed)) => return Err(Error::IntegrityFailed),
            (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
            (Ok(content), Ok(())) => content,
        };
        output.flush()?;
        let signers = content.verify(&self.extra_certs)?;
        Ok(Opened {
            signers,
            certificates: content.certificates().to_vec(),
            content_bytes: content.content_bytes,
            envelope: cipher.name,
        })
    }
}

/// Verifies a signed, unencrypted document (`ContentInfo(SignedData)`, as [`Sealer::sign`] writes
/// or `openssl cms -sign -nodetach` does), streaming its content to `output`; every signature must
/// verify. Like [`Opener::open`], the content is not to be trusted until this returns `Ok`, and whether
/// the signers are trusted is `vdx-pki`'s decision.
///
/// [`Sealer::sign`]: crate::Sealer::sign
pub fn verify_signed<R: Read, W: Write>(
    input: R,
    mut output: W,
    extra_certs: &[X509],
) -> Result<Opened, Error> {
    let content = signed::read(armor::dearmor(input)?, &mut output)?;
    output.flush()?;
    let signers = content.verify(extra_certs)?;
    Ok(Opened {
        signers,
        certificates: content.certificates().to_vec(),
        content_bytes: content.content_bytes,
        envelope: "signedData",
    })
}

/// The content-encryption algorithm and its parameters.
struct ContentCipher {
    cipher: Cipher,
    iv: Vec<u8>,
    /// GCM tag length; `None` for CBC.
    tag_len: Option<usize>,
    name: &'static str,
}

impl ContentCipher {
    fn from_algorithm(alg: &AlgorithmIdentifierOwned, authenticated: bool) -> Result<Self, Error> {
        let bad = |what| Error::Malformed { offset: 0, what };
        let params = alg
            .parameters
            .as_ref()
            .ok_or(bad("content encryption parameters missing"))?;
        let params = der::Encode::to_der(params)?;
        let (cipher, name, gcm) = match alg.oid {
            oids::AES128_GCM => (Cipher::aes_128_gcm(), "authEnvelopedData/aes-128-gcm", true),
            oids::AES192_GCM => (Cipher::aes_192_gcm(), "authEnvelopedData/aes-192-gcm", true),
            oids::AES256_GCM => (Cipher::aes_256_gcm(), "authEnvelopedData/aes-256-gcm", true),
            oids::AES128_CBC => (Cipher::aes_128_cbc(), "envelopedData/aes-128-cbc", false),
            oids::AES192_CBC => (Cipher::aes_192_cbc(), "envelopedData/aes-192-cbc", false),
            oids::AES256_CBC => (Cipher::aes_256_cbc(), "envelopedData/aes-256-cbc", false),
            oids::DES_EDE3_CBC => (Cipher::des_ede3_cbc(), "envelopedData/des-ede3-cbc", false),
            other => return Err(unsupported(other, "content encryption")),
        };
        if gcm != authenticated {
            return Err(bad("cipher does not match the envelope type"));
        }
        if !gcm {
            let (t, iv, _) = split_der(&params).ok_or(bad("IV"))?;
            if t != tag::OCTET_STRING || Some(iv.len()) != cipher.iv_len() {
                return Err(bad("IV"));
            }
            return Ok(Self {
                cipher,
                iv: iv.to_vec(),
                tag_len: None,
                name,
            });
        }
        // GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }
        let (tag::SEQUENCE, seq, _) = split_der(&params).ok_or(bad("GCM parameters"))? else {
            return Err(bad("GCM parameters"));
        };
        let (t, nonce, rest) = split_der(seq).ok_or(bad("GCM parameters"))?;
        if t != tag::OCTET_STRING || nonce.is_empty() || nonce.len() > 64 {
            return Err(bad("GCM nonce"));
        }
        let tag_len = match split_der(rest) {
            None if rest.is_empty() => 12,
            Some((tag::INTEGER, &[n], _)) if (12..=16).contains(&n) => usize::from(n),
            _ => return Err(bad("GCM tag length")),
        };
        if nonce.len() != 12 {
            return Err(bad("GCM nonce length other than 12"));
        }
        Ok(Self {
            cipher,
            iv: nonce.to_vec(),
            tag_len: Some(tag_len),
            name,
        })
    }
}

/// A `Read` of the plaintext: pulls ciphertext segments from the outer reader and decrypts them.
struct Decrypting<R> {
    r: BerReader<R>,
    stream: OctetStream,
    crypter: Crypter,
    finalize_at_end: bool,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    ended: bool,
}

impl<R: Read> Read for Decrypting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_pos < self.out_len {
                let n = buf.len().min(self.out_len - self.out_pos);
                buf[..n].copy_from_slice(&self.outbuf[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            let n = self
                .stream
                .read(&mut self.r, &mut self.inbuf)
                .map_err(io::Error::other)?;
            self.out_pos = 0;
            if n == 0 {
                self.ended = true;
                self.out_len = 0;
                if self.finalize_at_end {
                    // CBC: the last block and its padding; bad padding means altered ciphertext.
                    self.out_len = self
                        .crypter
                        .finalize(&mut self.outbuf)
                        .map_err(|_| io::Error::other(Error::IntegrityFailed))?;
                }
                continue;
            }
            self.out_len = self
                .crypter
                .update(&self.inbuf[..n], &mut self.outbuf)
                .map_err(io::Error::other)?;
        }
    }
}

impl<R: Read> Decrypting<R> {
    /// Consumes the rest of the ciphertext, checks the tag (GCM) and hands back the outer reader
    /// positioned after the encrypted content info (and the MAC, for AuthEnvelopedData).
    fn finish(
        mut self,
        eci: crate::ber::Frame,
        tag_len: Option<usize>,
    ) -> Result<BerReader<R>, Error> {
        let mut sink = [0u8; CHUNK];
        while self.read(&mut sink).map_err(|e| from_io(e.into()))? > 0 {}
        let mut r = self.r;
        r.close(eci, "encryptedContentInfo")?;
        let Some(tag_len) = tag_len else {
            return Ok(r);
        };
        if r.peek()?.map(|h| h.tag) == Some(tag::CONTEXT_1_CONSTRUCTED) {
            return Err(Error::AuthAttributesUnsupported);
        }
        let mac = r.primitive(tag::OCTET_STRING, 64, "mac")?;
        if mac.len() != tag_len {
            return Err(Error::IntegrityFailed);
        }
        if r.peek()?.map(|h| h.tag) == Some(tag::CONTEXT_2_CONSTRUCTED) {
            r.skip(MAX_ATTRIBUTES, "unauthAttrs")?;
        }
        self.crypter.set_tag(&mac)?;
        self.crypter
            .finalize(&mut self.outbuf)
            .map_err(|_| Error::IntegrityFailed)?;
        Ok(r)
    }
}

/// Recovers our own error from one that crossed an `io::Read` boundary.
fn from_io(e: Error) -> Error {
    match e {
        Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<Error>()) => io
            .into_inner()
            .and_then(|inner| inner.downcast::<Error>().ok())
            .map_or(Error::IntegrityFailed, |boxed| *boxed),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpki::{agency, ca, Party};
    use crate::{RsaPadding, Sealer};

    use crate::KeyKind;

    fn seal(content: &[u8], signer: &Party, to: &[&Party], padding: RsaPadding) -> Vec<u8> {
        let mut sealer = Sealer::new().signer(&signer.cert, &signer.key).unwrap();
        for r in to {
            sealer = sealer.recipient(&r.cert, padding);
        }
        let mut out = Vec::new();
        let summary = sealer.seal(content, &mut out).unwrap();
        assert_eq!(summary.content_bytes, content.len() as u64);
        out
    }

    fn open(sealed: &[u8], me: &Party) -> Result<(Vec<u8>, Opened), Error> {
        let mut out = Vec::new();
        let opened = Opener::new(&me.cert, &me.key)?.open(sealed, &mut out)?;
        Ok((out, opened))
    }

    #[test]
    fn a_copy_cut_for_some_recipients_opens_for_them_alone_and_is_smaller() {
        let ca = ca().unwrap();
        let sender = agency(&ca, "Sender", KeyKind::EcP256).unwrap();
        let ec = agency(&ca, "EC recipient", KeyKind::EcP256).unwrap();
        let rsa = agency(&ca, "RSA recipient", KeyKind::Rsa).unwrap();
        let other = agency(&ca, "Other EC recipient", KeyKind::EcP256).unwrap();
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
        let sealed = seal(&content, &sender, &[&ec, &rsa, &other], RsaPadding::Oaep);
        for (keep, shut_out) in [(&ec, [&rsa, &other]), (&rsa, [&ec, &other])] {
            let mut cut = Vec::new();
            let written = Sealer::cut_recipients(&sealed[..], &mut cut, &[&keep.cert]).unwrap();
            assert_eq!(written, cut.len() as u64);
            assert!(
                cut.len() < sealed.len(),
                "the others' RecipientInfos are gone"
            );
            // The same encrypted content and tag: the end of the file is the same bytes.
            let tail = sealed.len() - content.len();
            assert_eq!(cut[cut.len() - tail..], sealed[sealed.len() - tail..]);
            assert_eq!(open(&cut, keep).unwrap().0, content);
            for nobody in shut_out {
                assert!(matches!(open(&cut, nobody), Err(Error::NotARecipient)));
            }
        }
        // OpenSSL decrypts a cut copy too (the RSA recipient's, OAEP).
        let mut cut = Vec::new();
        Sealer::cut_recipients(&sealed[..], &mut cut, &[&rsa.cert]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cut.der"), &cut).unwrap();
        std::fs::write(dir.path().join("to.pem"), rsa.cert.to_pem().unwrap()).unwrap();
        std::fs::write(
            dir.path().join("to.key"),
            rsa.key.to_pkcs8_pem(None).unwrap().as_slice(),
        )
        .unwrap();
        let out = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args([
                "cms", "-decrypt", "-inform", "DER", "-in", "cut.der", "-recip", "to.pem",
                "-inkey", "to.key", "-binary",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut verified = Vec::new();
        verify_signed(&out.stdout[..], &mut verified, &[]).unwrap();
        assert_eq!(verified, content);
        let mut both = Vec::new();
        Sealer::cut_recipients(&sealed[..], &mut both, &[&ec.cert, &rsa.cert]).unwrap();
        assert_eq!(open(&both, &rsa).unwrap().0, content);
        assert_eq!(open(&both, &ec).unwrap().0, content);
        // Nobody kept, or not a document this sealer wrote: refused.
        let stranger = agency(&ca, "Stranger", KeyKind::EcP256).unwrap();
        assert!(matches!(
            Sealer::cut_recipients(&sealed[..], &mut Vec::new(), &[&stranger.cert]),
            Err(Error::NotARecipient)
        ));
        let mut signed = Vec::new();
        Sealer::new()
            .signer(&sender.cert, &sender.key)
            .unwrap()
            .sign(&content[..], &mut signed)
            .unwrap();
        assert!(matches!(
            Sealer::cut_recipients(&signed[..], &mut Vec::new(), &[&ec.cert]),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn round_trip_to_ec_and_rsa_recipients() {
        let ca = ca().unwrap();
        let sender = agency(&ca, "Sender", KeyKind::EcP256).unwrap();
        let ec = agency(&ca, "EC recipient", KeyKind::EcP256).unwrap();
        let rsa = agency(&ca, "RSA recipient", KeyKind::Rsa).unwrap();
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for padding in [RsaPadding::Oaep, RsaPadding::Pkcs1] {
            let sealed = seal(&content, &sender, &[&ec, &rsa], padding);
            for me in [&ec, &rsa] {
                let (plain, opened) = open(&sealed, me).unwrap();
                assert_eq!(plain, content);
                assert_eq!(opened.signers().len(), 1);
                assert_eq!(
                    opened.signers()[0].certificate().to_der().unwrap(),
                    sender.cert.to_der().unwrap()
                );
                assert!(opened.signers()[0].signing_time().is_some());
                assert_eq!(opened.envelope(), "authEnvelopedData/aes-256-gcm");
            }
        }
    }

    #[test]
    fn signed_only_documents_verify_here_and_in_openssl() {
        let ca = ca().unwrap();
        let office = agency(&ca, "Office", KeyKind::EcP256).unwrap();
        let mut signed = Vec::new();
        Sealer::new()
            .signer(&office.cert, &office.key)
            .unwrap()
            .sign(&b"receipt: stored"[..], &mut signed)
            .unwrap();
        let mut content = Vec::new();
        let verified = verify_signed(&signed[..], &mut content, &[]).unwrap();
        assert_eq!(content, b"receipt: stored");
        assert_eq!(verified.envelope(), "signedData");
        assert_eq!(verified.signers().len(), 1);
        let mut tampered = signed.clone();
        let at = signed.windows(6).position(|w| w == b"stored").unwrap();
        tampered[at] ^= 1;
        assert!(matches!(
            verify_signed(&tampered[..], &mut Vec::new(), &[]),
            Err(Error::DigestMismatch { .. })
        ));

        // OpenSSL agrees, with the CA as its only trust.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.der"), &signed).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert.to_pem().unwrap()).unwrap();
        let out = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args([
                "cms", "-verify", "-inform", "DER", "-in", "r.der", "-CAfile", "ca.pem",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"receipt: stored");
    }

    #[test]
    fn two_signers_both_verify() {
        let ca = ca().unwrap();
        let office = agency(&ca, "Office", KeyKind::Rsa).unwrap();
        let person = agency(&ca, "Competent person", KeyKind::EcP256).unwrap();
        let to = agency(&ca, "Recipient", KeyKind::EcP256).unwrap();
        let mut out = Vec::new();
        Sealer::new()
            .signer(&office.cert, &office.key)
            .unwrap()
            .signer(&person.cert, &person.key)
            .unwrap()
            .recipient(&to.cert, RsaPadding::Oaep)
            .seal(&b"two signatures"[..], &mut out)
            .unwrap();
        let (plain, opened) = open(&out, &to).unwrap();
        assert_eq!(plain, b"two signatures");
        assert_eq!(opened.signers().len(), 2);
    }

    #[test]
    fn refusals_are_specific() {
        let ca = ca().unwrap();
        let sender = agency(&ca, "Sender", KeyKind::EcP256).unwrap();
        let to = agency(&ca, "Recipient", KeyKind::EcP256).unwrap();
        let other = agency(&ca, "Other", KeyKind::EcP256).unwrap();
        let sealed = seal(b"secret", &sender, &[&to], RsaPadding::Oaep);

        assert!(matches!(open(&sealed, &other), Err(Error::NotARecipient)));
        assert!(matches!(
            Opener::new(&to.cert, &other.key),
            Err(Error::KeyMismatch)
        ));
        assert!(matches!(open(b"", &to), Err(Error::Empty)));
        assert!(matches!(
            open(b"garbage!", &to),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            open(&sealed[..sealed.len() / 2], &to),
            Err(Error::Truncated { .. })
        ));
        for cut in 0..sealed.len() {
            assert!(
                open(&sealed[..cut], &to).is_err(),
                "prefix of {cut} bytes opened"
            );
        }
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad, &to).is_err(), "flip at byte {i} opened");
        }
        let mut tail = sealed.clone();
        let n = tail.len();
        tail[n - 12] ^= 0x80; // inside the GCM tag
        assert!(matches!(open(&tail, &to), Err(Error::IntegrityFailed)));
    }

    #[test]
    fn a_failed_tag_wins_over_garbage_plaintext() {
        let ca = ca().unwrap();
        let sender = agency(&ca, "Sender", KeyKind::EcP256).unwrap();
        let to = agency(&ca, "Recipient", KeyKind::EcP256).unwrap();
        let sealed = seal(&[7u8; 100_000], &sender, &[&to], RsaPadding::Oaep);
        // The first ciphertext byte: after the GCM parameters, `[0] (inf)`, then a segment header.
        let gcm = [
            0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2E,
        ];
        let at = sealed.windows(gcm.len()).position(|w| w == gcm).unwrap();
        let content = at
            + sealed[at..]
                .windows(2)
                .position(|w| w == [0xA0, 0x80])
                .unwrap()
            + 2;
        assert_eq!(sealed[content], tag::OCTET_STRING);
        let first = match sealed[content + 1] {
            n if n < 0x80 => content + 2,
            n => content + 2 + usize::from(n & 0x7f),
        };
        // GCM is a stream cipher: the plaintext's first byte (0x30, the inner ContentInfo) turns
        // into 0x31, which the SignedData parser refuses at once, long before the tag.
        let mut bad = sealed.clone();
        bad[first] ^= 0x01;
        assert!(matches!(open(&bad, &to), Err(Error::IntegrityFailed)));
        // What the inner layer then reads (a SignedData like the sealed one, first byte flipped)
        // is a parse error of its own: the tag's verdict is the one reported.
        let mut inner = Vec::new();
        Sealer::new()
            .signer(&sender.cert, &sender.key)
            .unwrap()
            .sign(&[7u8; 100_000][..], &mut inner)
            .unwrap();
        inner[0] ^= 0x01;
        assert!(matches!(
            signed::read(&inner[..], &mut Vec::new()),
            Err(Error::Malformed { .. })
        ));
        // Every byte of the first segment, flipped: always the integrity verdict.
        for i in (first..first + 2000).step_by(7) {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert!(
                matches!(open(&bad, &to), Err(Error::IntegrityFailed)),
                "flip at {i}"
            );
        }
    }

    #[test]
    fn a_gigabyte_recipient_infos_length_is_refused_from_its_header() {
        let ca = ca().unwrap();
        let sender = agency(&ca, "Sender", KeyKind::EcP256).unwrap();
        let to = agency(&ca, "Recipient", KeyKind::EcP256).unwrap();
        let sealed = seal(b"x", &sender, &[&to], RsaPadding::Oaep);
        // version INTEGER 0, then the recipientInfos SET header (short or long form).
        let at = sealed
            .windows(4)
            .position(|w| w == [0x02, 0x01, 0x00, 0x31])
            .unwrap()
            + 3;
        let header_len = match sealed[at + 1] {
            n if n < 0x80 => 2,
            n => 2 + usize::from(n & 0x7f),
        };
        let mut bad = sealed[..at].to_vec();
        bad.extend_from_slice(&[0x31, 0x84, 0x40, 0, 0, 0]);
        bad.extend_from_slice(&sealed[at + header_len..]);
        assert!(matches!(
            open(&bad, &to),
            Err(Error::TooLarge { what: "recipientInfos", len, limit: MAX_RECIPIENT_INFOS, .. })
                if len == 1 << 30
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn random_content_round_trips(content in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300_000)) {
            let ca = ca().unwrap();
            let sender = agency(&ca, "Sender", KeyKind::EcP256).unwrap();
            let to = agency(&ca, "Recipient", KeyKind::EcP256).unwrap();
            let sealed = seal(&content, &sender, &[&to], RsaPadding::Oaep);
            let (plain, _) = open(&sealed, &to).unwrap();
            proptest::prop_assert_eq!(plain, content);
        }
    }
}
