//! Variants of a sealed document (`docs/broadcast.md` rule 2): the same envelope with fewer
//! RecipientInfos. The recipients are read once, so that a sender or a relay cuts copies for
//! thousands of agencies at the cost of one look-up each, not one scan of them all.

use std::collections::HashMap;
use std::io::Read;

use openssl::x509::X509Ref;

use crate::ber::{der_children, der_tlv, split_der, tag, BerReader};
use crate::recipient::{addressees, names_of};
use crate::{oids, Error};

/// Most bytes of `recipientInfos` read: a dispatch to 4,096 agencies (some 550 bytes each for
/// RSA-3072), at the sender or at a relay. An opener reads 1 MiB at most, and the copies it gets
/// carry its own only.
const MAX_RECIPIENT_INFOS: u64 = 4 << 20;

/// The beginning of an envelope written by [`crate::Sealer::seal`], up to and including its
/// RecipientInfos; the rest (the encrypted content and its tag) is the same in every variant.
pub struct Recipients {
    /// ContentInfo, type, [0], AuthEnvelopedData, version: all before the recipients.
    head: Vec<u8>,
    /// Each RecipientInfo, DER, in the sender's order.
    infos: Vec<Vec<u8>>,
    /// Which RecipientInfos each name addresses.
    by_name: HashMap<Vec<u8>, Vec<usize>>,
    /// Bytes of the envelope read: where the rest starts.
    read: u64,
}

impl Recipients {
    /// Reads the envelope's beginning from `input`, leaving it at the first byte of the rest.
    /// Refused when the envelope is not written as `seal` writes it (indefinite lengths around
    /// the recipients, so that nothing outside them counts their bytes).
    pub fn read<R: Read>(input: R) -> Result<Self, Error> {
        let mut r = BerReader::new(input);
        let mut head = Vec::new();
        let open = |r: &mut BerReader<R>, head: &mut Vec<u8>, expected: u8, what| {
            let h = r.header()?;
            if h.tag != expected || h.len.is_some() {
                return Err(r.malformed(what));
            }
            head.extend_from_slice(h.raw());
            Ok::<_, Error>(())
        };
        open(&mut r, &mut head, tag::SEQUENCE, "ContentInfo")?;
        let content_type = r.element(64, "contentType")?;
        if content_type != der_tlv(tag::OID, oids::AUTH_ENVELOPED_DATA.as_bytes()) {
            return Err(r.malformed("not AuthEnvelopedData"));
        }
        head.extend_from_slice(&content_type);
        open(&mut r, &mut head, tag::CONTEXT_0_CONSTRUCTED, "content [0]")?;
        open(&mut r, &mut head, tag::SEQUENCE, "AuthEnvelopedData")?;
        let version = r.element(16, "version")?;
        if version != [tag::INTEGER, 1, 0] {
            return Err(r.malformed("AuthEnvelopedData version is not 0"));
        }
        head.extend_from_slice(&version);
        let set = r.element(MAX_RECIPIENT_INFOS, "recipientInfos")?;
        let (set_tag, value, rest) = split_der(&set).ok_or(r.malformed("recipientInfos"))?;
        if set_tag != tag::SET || !rest.is_empty() {
            return Err(r.malformed("recipientInfos"));
        }
        let infos: Vec<Vec<u8>> = der_children(value)
            .ok_or(r.malformed("recipientInfos"))?
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let mut by_name: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (i, info) in infos.iter().enumerate() {
            for name in addressees(info) {
                by_name.entry(name).or_default().push(i);
            }
        }
        Ok(Self {
            head,
            infos,
            by_name,
            read: r.offset(),
        })
    }

    /// How many bytes of the envelope [`Recipients::read`] took: the rest starts there.
    pub fn len_read(&self) -> u64 {
        self.read
    }

    /// The RecipientInfos addressed to any of `certs`, in the sender's order (none: empty).
    pub fn select(&self, certs: &[&X509Ref]) -> Result<Vec<usize>, Error> {
        let mut kept = Vec::new();
        for cert in certs {
            for name in names_of(cert)? {
                kept.extend(self.by_name.get(&name).into_iter().flatten().copied());
            }
        }
        kept.sort_unstable();
        kept.dedup();
        Ok(kept)
    }

    /// The beginning of the variant that keeps the RecipientInfos `kept` (from
    /// [`Recipients::select`]); the rest follows it unchanged.
    pub fn head(&self, kept: &[usize]) -> Vec<u8> {
        let set: Vec<u8> = kept
            .iter()
            .filter_map(|&i| self.infos.get(i))
            .flatten()
            .copied()
            .collect();
        [self.head.as_slice(), &der_tlv(tag::SET, &set)].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpki::{agency, ca};
    use crate::{KeyKind, RsaPadding, Sealer};

    #[test]
    fn a_variant_of_a_variant_is_the_copy_the_sender_cuts() {
        let ca = ca().unwrap();
        let sender = agency(&ca, "Sender", KeyKind::EcP256).unwrap();
        let to: Vec<_> = (0..5)
            .map(|n| {
                let kind = if n == 2 {
                    KeyKind::Rsa
                } else {
                    KeyKind::EcP256
                };
                agency(&ca, &format!("Commune {n}"), kind).unwrap()
            })
            .collect();
        let sealer = to.iter().fold(
            Sealer::new().signer(&sender.cert, &sender.key).unwrap(),
            |s, p| s.recipient(&p.cert, RsaPadding::Oaep),
        );
        let mut sealed = Vec::new();
        sealer.seal(&b"circular"[..], &mut sealed).unwrap();
        let cut = |from: &[u8], keep: &[usize]| {
            let certs: Vec<_> = keep.iter().map(|&i| to[i].cert.as_ref()).collect();
            let mut out = Vec::new();
            Sealer::cut_recipients(from, &mut out, &certs).unwrap();
            out
        };
        // A relay's share {1, 2, 4}, then commune 2's copy cut from it: the same bytes the sender
        // cuts for commune 2 alone (so its receipt names what the sender recorded).
        let share = cut(&sealed, &[4, 1, 2]);
        assert_eq!(cut(&share, &[2]), cut(&sealed, &[2]));
        let recipients = Recipients::read(&sealed[..]).unwrap();
        assert_eq!(recipients.infos.len(), 5);
        let certs: Vec<_> = [&to[3], &to[0]].iter().map(|p| p.cert.as_ref()).collect();
        let kept = recipients.select(&certs).unwrap();
        assert_eq!(kept.len(), 2);
        let head = recipients.head(&kept);
        let rest = &sealed[recipients.len_read() as usize..];
        assert_eq!([head.as_slice(), rest].concat(), cut(&sealed, &[0, 3]));
        let stranger = agency(&ca, "Stranger", KeyKind::EcP256).unwrap();
        assert!(recipients.select(&[&stranger.cert]).unwrap().is_empty());
    }
}
