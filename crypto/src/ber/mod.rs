//! Just enough BER for streaming CMS: a pull-reader over `io::Read` and a writer with indefinite lengths.
//!
//! Only the small elements (algorithm identifiers, recipient and signer infos, certificates) are ever
//! held in memory, and each with a hard size limit; the content octets stream through in segments.
//! Tags are single-byte (all CMS needs); anything else is refused as corrupt.

mod reader;
mod writer;

pub(crate) use reader::{BerReader, Frame, OctetStream};
pub(crate) use writer::{der_tlv, BerWriter};

/// The tags CMS uses, as their single identifier octet.
pub(crate) mod tag {
    pub(crate) const EOC: u8 = 0x00;
    pub(crate) const INTEGER: u8 = 0x02;
    pub(crate) const OCTET_STRING: u8 = 0x04;
    pub(crate) const OCTET_STRING_CONSTRUCTED: u8 = 0x24;
    pub(crate) const OID: u8 = 0x06;
    pub(crate) const SEQUENCE: u8 = 0x30;
    pub(crate) const SET: u8 = 0x31;
    /// `[0]` primitive: an IMPLICIT OCTET STRING such as `encryptedContent`.
    pub(crate) const CONTEXT_0: u8 = 0x80;
    /// `[0]` constructed.
    pub(crate) const CONTEXT_0_CONSTRUCTED: u8 = 0xA0;
    /// `[1]` constructed.
    pub(crate) const CONTEXT_1_CONSTRUCTED: u8 = 0xA1;
    /// `[2]` constructed.
    pub(crate) const CONTEXT_2_CONSTRUCTED: u8 = 0xA2;
}

/// One TLV header as read: where it starts, and the value's length (`None` when indefinite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) tag: u8,
    pub(crate) len: Option<u64>,
    /// Offset of the first identifier octet.
    pub(crate) offset: u64,
    /// Octets of identifier plus length.
    pub(crate) header_len: u8,
    raw: [u8; 10],
}

impl Header {
    pub(crate) fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    pub(crate) fn is_eoc(&self) -> bool {
        self.tag == tag::EOC && self.len == Some(0)
    }

    /// The header octets exactly as they were read.
    pub(crate) fn raw(&self) -> &[u8] {
        &self.raw[..usize::from(self.header_len)]
    }

    /// Offset just past the value, for definite lengths.
    pub(crate) fn end(&self) -> Option<u64> {
        // Saturating: a hostile length past the end of any stream just never ends (truncation).
        self.len.map(|len| {
            self.offset
                .saturating_add(u64::from(self.header_len))
                .saturating_add(len)
        })
    }
}

/// Splits a DER element held in memory: `(tag, value, rest)`. Definite lengths only.
pub(crate) fn split_der(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 8 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = len.checked_mul(256)?.checked_add(usize::from(b))?;
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    Some((tag, value, rest))
}

/// The elements of a DER SET or SEQUENCE value, each with its own header.
pub(crate) fn der_children(mut value: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !value.is_empty() {
        let (_, _, rest) = split_der(value)?;
        out.push(&value[..value.len() - rest.len()]);
        value = rest;
    }
    Some(out)
}
