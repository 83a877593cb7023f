//! A pull-reader of BER over any `io::Read`, keeping only the current element's header in memory.

use std::io::{self, Read};

use super::{tag, Header};
use crate::Error;

/// Reads BER headers and values from a stream, counting the offset for error messages.
pub(crate) struct BerReader<R> {
    inner: R,
    offset: u64,
    peeked: Option<Header>,
}

/// The extent of an open constructed element: a definite end offset, or "until end-of-contents".
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    end: Option<u64>,
}

impl<R: Read> BerReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            offset: 0,
            peeked: None,
        }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.peeked.map_or(self.offset, |h| h.offset)
    }

    pub(crate) fn malformed(&self, what: &'static str) -> Error {
        Error::Malformed {
            offset: self.offset(),
            what,
        }
    }

    /// Reads exactly `buf.len()` bytes; running out is [`Error::Truncated`].
    pub(crate) fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Error::Truncated {
                offset: self.offset,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The next header, or `None` at a clean end of input.
    pub(crate) fn peek(&mut self) -> Result<Option<Header>, Error> {
        if self.peeked.is_none() {
            self.peeked = self.parse_header()?;
        }
        Ok(self.peeked)
    }

    /// The next header; end of input here is truncation.
    pub(crate) fn header(&mut self) -> Result<Header, Error> {
        match self.peek()? {
            Some(h) => {
                self.peeked = None;
                Ok(h)
            }
            None => Err(Error::Truncated {
                offset: self.offset,
            }),
        }
    }

    /// The next header, which must carry `tag`.
    pub(crate) fn expect_tag(&mut self, tag: u8, what: &'static str) -> Result<Header, Error> {
        let h = self.header()?;
        if h.tag != tag {
            return Err(Error::Malformed {
                offset: h.offset,
                what,
            });
        }
        Ok(h)
    }

    /// Enters a constructed element whose header was just read.
    pub(crate) fn enter(&self, h: &Header, what: &'static str) -> Result<Frame, Error> {
        if !h.constructed() {
            return Err(Error::Malformed {
                offset: h.offset,
                what,
            });
        }
        Ok(Frame { end: h.end() })
    }

    /// Expects a constructed element with `tag` and enters it.
    pub(crate) fn open(&mut self, tag: u8, what: &'static str) -> Result<Frame, Error> {
        let h = self.expect_tag(tag, what)?;
        self.enter(&h, what)
    }

    /// True when the frame has no more children (consuming its end-of-contents if indefinite).
    pub(crate) fn at_end(&mut self, frame: Frame) -> Result<bool, Error> {
        match frame.end {
            Some(end) => {
                let here = self.offset();
                if here > end {
                    return Err(self.malformed("element overruns its container"));
                }
                Ok(here == end)
            }
            None => match self.peek()? {
                Some(h) if h.is_eoc() => {
                    self.peeked = None;
                    Ok(true)
                }
                Some(h) if h.tag == tag::EOC => Err(self.malformed("bad end-of-contents")),
                Some(_) => Ok(false),
                None => Err(Error::Truncated {
                    offset: self.offset,
                }),
            },
        }
    }

    /// Leaves a frame that must have no more children.
    pub(crate) fn close(&mut self, frame: Frame, what: &'static str) -> Result<(), Error> {
        if self.at_end(frame)? {
            Ok(())
        } else {
            Err(self.malformed(what))
        }
    }

    /// The value of a primitive definite-length element whose header was just read.
    pub(crate) fn value(
        &mut self,
        h: &Header,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, Error> {
        let len = match h.len {
            Some(len) if !h.constructed() => len,
            _ => {
                return Err(Error::Malformed {
                    offset: h.offset,
                    what,
                })
            }
        };
        check_limit(h, len, limit, what)?;
        let mut buf = vec![0; len as usize];
        self.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Reads a primitive element with `tag` and returns its value.
    pub(crate) fn primitive(
        &mut self,
        tag: u8,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, Error> {
        let h = self.expect_tag(tag, what)?;
        self.value(&h, limit, what)
    }

    /// Reads an OBJECT IDENTIFIER.
    pub(crate) fn oid(&mut self) -> Result<const_oid::ObjectIdentifier, Error> {
        let offset = self.offset();
        let bytes = self.primitive(tag::OID, 64, "object identifier")?;
        const_oid::ObjectIdentifier::from_bytes(&bytes).map_err(|_| Error::Malformed {
            offset,
            what: "object identifier",
        })
    }

    /// A whole element (header included) whose header was just read, as raw bytes. Nested
    /// indefinite lengths are copied as they are. More than `limit` bytes in all is
    /// [`Error::TooLarge`], found before the bytes are read when the length is definite.
    pub(crate) fn element_from(
        &mut self,
        h: &Header,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let mut budget = Budget {
            used: 0,
            limit,
            start: h.offset,
            what,
        };
        self.walk(h, &mut budget, 0, Some(&mut out))?;
        Ok(out)
    }

    /// Reads the next whole element as raw bytes.
    pub(crate) fn element(&mut self, limit: u64, what: &'static str) -> Result<Vec<u8>, Error> {
        let h = self.header()?;
        self.element_from(&h, limit, what)
    }

    /// Reads past the next whole element without keeping it (for parts vdx does not use: CRLs in
    /// SignedData, originatorInfo, unprotected and unauthenticated attributes). At most `limit`
    /// bytes, as for [`BerReader::element`], but nothing beyond a small buffer is allocated.
    pub(crate) fn skip(&mut self, limit: u64, what: &'static str) -> Result<(), Error> {
        let h = self.header()?;
        let mut budget = Budget {
            used: 0,
            limit,
            start: h.offset,
            what,
        };
        self.walk(&h, &mut budget, 0, None)
    }

    /// Copies (into `out`) or skips (without) the element whose header was just read, children of
    /// indefinite-length elements one by one, nested at most [`MAX_DEPTH`] deep.
    fn walk(
        &mut self,
        h: &Header,
        budget: &mut Budget,
        depth: usize,
        mut out: Option<&mut Vec<u8>>,
    ) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(Error::Malformed {
                offset: h.offset,
                what: "elements nested too deeply",
            });
        }
        budget.take(u64::from(h.header_len), None)?;
        if let Some(out) = out.as_deref_mut() {
            out.extend_from_slice(h.raw());
        }
        match h.len {
            Some(len) => {
                budget.take(len, Some(len))?;
                match out {
                    Some(out) => {
                        let start = out.len();
                        // The budget bounds `len` far below usize::MAX.
                        out.resize(start + len as usize, 0);
                        self.read_exact(&mut out[start..])?;
                    }
                    None => {
                        let mut left = len;
                        let mut buf = [0u8; 4096];
                        while left > 0 {
                            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                            self.read_exact(&mut buf[..n])?;
                            left -= n as u64;
                        }
                    }
                }
            }
            None => {
                if !h.constructed() {
                    return Err(Error::Malformed {
                        offset: h.offset,
                        what: "indefinite length on a primitive element",
                    });
                }
                loop {
                    let child = self.header()?;
                    if child.is_eoc() {
                        budget.take(u64::from(child.header_len), None)?;
                        if let Some(out) = out.as_deref_mut() {
                            out.extend_from_slice(child.raw());
                        }
                        break;
                    }
                    self.walk(&child, budget, depth + 1, out.as_deref_mut())?;
                }
            }
        }
        Ok(())
    }

    fn parse_header(&mut self) -> Result<Option<Header>, Error> {
        let start = self.offset;
        let mut raw = [0u8; 10];
        let mut first = [0u8; 1];
        loop {
            match self.inner.read(&mut first) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.offset += 1;
        let tag = first[0];
        if tag & 0x1f == 0x1f {
            return Err(Error::Malformed {
                offset: start,
                what: "multi-byte tag",
            });
        }
        raw[0] = tag;
        let mut len_byte = [0u8; 1];
        self.read_exact(&mut len_byte)?;
        raw[1] = len_byte[0];
        let mut header_len = 2u8;
        let len = match len_byte[0] {
            0x80 => None,
            b if b < 0x80 => Some(u64::from(b)),
            b => {
                let n = usize::from(b & 0x7f);
                if n > 8 {
                    return Err(Error::Malformed {
                        offset: start,
                        what: "length field too long",
                    });
                }
                let mut bytes = [0u8; 8];
                self.read_exact(&mut bytes[8 - n..])?;
                raw[2..2 + n].copy_from_slice(&bytes[8 - n..]);
                header_len += n as u8;
                Some(u64::from_be_bytes(bytes))
            }
        };
        Ok(Some(Header {
            tag,
            len,
            offset: start,
            header_len,
            raw,
        }))
    }
}

/// Elements copied or skipped whole nest at most this deep (certificates and attributes need a
/// handful of levels); deeper is refused rather than recursed into.
const MAX_DEPTH: usize = 32;

/// The bytes an element copied or skipped whole may still take.
struct Budget {
    used: u64,
    limit: u64,
    start: u64,
    what: &'static str,
}

impl Budget {
    /// Counts `n` more bytes; `declared` is the length to report when a definite length is too big.
    fn take(&mut self, n: u64, declared: Option<u64>) -> Result<(), Error> {
        let used = self.used.saturating_add(n);
        if used > self.limit {
            return Err(Error::TooLarge {
                offset: self.start,
                what: self.what,
                len: declared.unwrap_or(used),
                limit: self.limit,
            });
        }
        self.used = used;
        Ok(())
    }
}

fn check_limit(h: &Header, len: u64, limit: u64, what: &'static str) -> Result<(), Error> {
    if len > limit {
        return Err(Error::TooLarge {
            offset: h.offset,
            what,
            len,
            limit,
        });
    }
    Ok(())
}

/// Streams the octets of an OCTET STRING (primitive, or constructed of segments, nested or not,
/// definite or indefinite) without holding more than the caller's buffer.
pub(crate) struct OctetStream {
    stack: Vec<Frame>,
    remaining: u64,
}

/// Constructed strings nest one level in practice; deeper nesting is refused to bound the stack.
const MAX_NESTING: usize = 8;

impl OctetStream {
    /// Starts at an element whose header was just read: `tag` is the primitive form expected
    /// (0x04, or 0x80 for an IMPLICIT [0]); its constructed form is accepted too.
    pub(crate) fn start(h: &Header, primitive_tag: u8) -> Result<Self, Error> {
        if h.tag == primitive_tag {
            let remaining = h.len.ok_or(Error::Malformed {
                offset: h.offset,
                what: "indefinite length on a primitive string",
            })?;
            return Ok(Self {
                stack: Vec::new(),
                remaining,
            });
        }
        if h.tag == primitive_tag | 0x20 {
            return Ok(Self {
                stack: vec![Frame { end: h.end() }],
                remaining: 0,
            });
        }
        Err(Error::Malformed {
            offset: h.offset,
            what: "expected an OCTET STRING",
        })
    }

    /// Fills `buf` with the next octets; `Ok(0)` means the string has ended.
    pub(crate) fn read<R: Read>(
        &mut self,
        r: &mut BerReader<R>,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        loop {
            if self.remaining > 0 {
                let n = buf
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                let got = loop {
                    match r.inner.read(&mut buf[..n]) {
                        Ok(got) => break got,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e.into()),
                    }
                };
                if got == 0 {
                    return Err(Error::Truncated { offset: r.offset });
                }
                r.offset += got as u64;
                self.remaining -= got as u64;
                return Ok(got);
            }
            let Some(&top) = self.stack.last() else {
                return Ok(0);
            };
            if r.at_end(top)? {
                self.stack.pop();
                continue;
            }
            let h = r.header()?;
            match h.tag {
                tag::OCTET_STRING => {
                    self.remaining = h.len.ok_or(Error::Malformed {
                        offset: h.offset,
                        what: "indefinite length on a primitive string",
                    })?;
                }
                tag::OCTET_STRING_CONSTRUCTED if self.stack.len() < MAX_NESTING => {
                    self.stack.push(Frame { end: h.end() });
                }
                _ => {
                    return Err(Error::Malformed {
                        offset: h.offset,
                        what: "expected an OCTET STRING segment",
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(bytes: &[u8], primitive_tag: u8) -> Result<Vec<u8>, Error> {
        let mut r = BerReader::new(bytes);
        let h = r.header()?;
        let mut s = OctetStream::start(&h, primitive_tag)?;
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = s.read(&mut r, &mut buf)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    }

    #[test]
    fn octet_strings_in_every_shape() {
        assert_eq!(collect(&[0x04, 3, 1, 2, 3], 0x04).unwrap(), [1, 2, 3]);
        let indefinite = [0x24, 0x80, 0x04, 2, 1, 2, 0x04, 1, 3, 0, 0];
        assert_eq!(collect(&indefinite, 0x04).unwrap(), [1, 2, 3]);
        let nested = [0xA0, 0x80, 0x24, 0x80, 0x04, 1, 9, 0, 0, 0x04, 0, 0, 0];
        assert_eq!(collect(&nested, 0x80).unwrap(), [9]);
        let definite = [0x24, 6, 0x04, 1, 7, 0x04, 1, 8];
        assert_eq!(collect(&definite, 0x04).unwrap(), [7, 8]);
    }

    #[test]
    fn damaged_strings_are_errors() {
        assert!(matches!(
            collect(&[0x04, 5, 1, 2], 0x04),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            collect(&[0x24, 0x80, 0x02, 1, 1, 0, 0], 0x04),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            collect(&[0x24, 0x80, 0x04, 1, 1], 0x04),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn elements_are_copied_raw_and_limited() {
        let bytes = [0x31, 0x80, 0x30, 0x01, 0x05, 0, 0, 0xff];
        let mut r = BerReader::new(&bytes[..]);
        assert_eq!(r.element(100, "set").unwrap(), &bytes[..7]);
        let mut r = BerReader::new(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(r.element(1000, "x"), Err(Error::TooLarge { .. })));
    }
}

#[cfg(test)]
mod hostile_lengths {
    use super::*;

    #[test]
    fn a_length_near_u64_max_is_truncation_not_overflow() {
        let bytes = [
            0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00,
        ];
        let mut r = BerReader::new(&bytes[..]);
        let frame = r.open(tag::SEQUENCE, "seq").unwrap();
        assert!(!r.at_end(frame).unwrap());
        r.primitive(tag::INTEGER, 8, "int").unwrap();
        assert!(matches!(r.header(), Err(Error::Truncated { .. })));
    }

    #[test]
    fn a_gigabyte_length_in_a_buffered_element_is_refused_from_its_header() {
        for copy in [true, false] {
            let mut input = crate::lazy::Lazy {
                fill: 0,
                head: vec![0x30, 0x84, 0x40, 0, 0, 0],
                total: (1 << 30) + 6,
                pos: 0,
            };
            let mut r = BerReader::new(&mut input);
            let err = if copy {
                r.element(1 << 20, "recipientInfos").map(|_| ())
            } else {
                r.skip(16 << 20, "crls")
            };
            assert!(
                matches!(err, Err(Error::TooLarge { len, .. }) if len == 1 << 30),
                "{err:?}"
            );
            assert_eq!(input.pos, 6);
        }
    }

    #[test]
    fn indefinite_elements_are_limited_in_size_and_depth() {
        // A megabyte of nested indefinite SEQUENCEs: refused, not a stack overflow.
        let deep: Vec<u8> = [0x30, 0x80].repeat(1 << 19);
        let mut r = BerReader::new(&deep[..]);
        assert!(matches!(
            r.element(4 << 20, "x"),
            Err(Error::Malformed {
                what: "elements nested too deeply",
                ..
            })
        ));
        let mut r = BerReader::new(&deep[..]);
        assert!(matches!(r.skip(4 << 20, "x"), Err(Error::Malformed { .. })));
        // Many small children add up to the limit.
        let mut wide = vec![0x31, 0x80];
        for _ in 0..1000 {
            wide.extend_from_slice(&[0x04, 0x02, 1, 2]);
        }
        wide.extend_from_slice(&[0, 0]);
        let mut r = BerReader::new(&wide[..]);
        assert!(matches!(r.element(1000, "x"), Err(Error::TooLarge { .. })));
        let mut r = BerReader::new(&wide[..]);
        assert_eq!(r.element(8000, "x").unwrap(), wide);
    }

    #[test]
    fn skipping_reads_past_large_elements_without_holding_them() {
        // 15 MiB of definite-length content under a 16 MiB limit, then the next element.
        let len: u32 = 15 << 20;
        let mut head = vec![0xA1, 0x84];
        head.extend_from_slice(&len.to_be_bytes());
        let mut input = crate::lazy::Lazy {
            fill: 0,
            head,
            total: 6 + u64::from(len) + 2,
            pos: 0,
        };
        let mut r = BerReader::new(&mut input);
        r.skip(16 << 20, "crls").unwrap();
        assert_eq!(r.offset(), 6 + u64::from(len));
        let next = r.header().unwrap();
        assert_eq!((next.tag, next.len), (0, Some(0)));
    }
}
