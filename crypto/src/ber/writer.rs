//! BER output in the shape `openssl cms -stream` writes: indefinite-length containers around small
//! DER parts, and content as a constructed OCTET STRING of segments.

use std::io::{self, Write};

use super::tag;

/// A `Write` that knows how to put BER headers on the wire.
pub(crate) struct BerWriter<W> {
    inner: W,
}

impl<W: Write> BerWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self { inner }
    }

    /// Opens a constructed element whose end will be marked by [`Self::end`].
    pub(crate) fn begin(&mut self, tag: u8) -> io::Result<()> {
        self.inner.write_all(&[tag, 0x80])
    }

    /// Closes the innermost indefinite-length element.
    pub(crate) fn end(&mut self) -> io::Result<()> {
        self.inner.write_all(&[tag::EOC, 0])
    }

    /// Writes one complete definite-length element.
    pub(crate) fn tlv(&mut self, tag: u8, value: &[u8]) -> io::Result<()> {
        self.header(tag, value.len())?;
        self.inner.write_all(value)
    }

    /// Writes a definite-length header; the caller writes the value.
    pub(crate) fn header(&mut self, tag: u8, len: usize) -> io::Result<()> {
        let mut buf = [0u8; 10];
        let n = encode_header(&mut buf, tag, len);
        self.inner.write_all(&buf[..n])
    }

    /// Bytes that are already encoded (DER from the `der` crate, for instance).
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

fn encode_header(buf: &mut [u8; 10], tag: u8, len: usize) -> usize {
    buf[0] = tag;
    if len < 0x80 {
        buf[1] = len as u8;
        return 2;
    }
    let bytes = (len as u64).to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let n = bytes.len() - skip;
    buf[1] = 0x80 | n as u8;
    buf[2..2 + n].copy_from_slice(&bytes[skip..]);
    2 + n
}

/// One DER element in memory: for the small structures we assemble by hand.
pub(crate) fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 10];
    let n = encode_header(&mut buf, tag, value.len());
    let mut out = Vec::with_capacity(n + value.len());
    out.extend_from_slice(&buf[..n]);
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(der_tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        assert_eq!(&der_tlv(0x04, &[0; 200])[..3], &[0x04, 0x81, 200]);
        assert_eq!(&der_tlv(0x04, &[0; 300])[..4], &[0x04, 0x82, 1, 44]);
    }
}
