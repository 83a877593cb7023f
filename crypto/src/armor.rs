//! Input framing: DER/BER as is, or base64 inside PEM (`-----BEGIN CMS-----`, `PKCS7`) or an S/MIME
//! body (`MIME-Version: ...` headers, blank line, base64), as `openssl cms` would accept.

use std::io::{self, BufRead, BufReader, Read};

use base64::Engine;

use crate::Error;

const BUFFER: usize = 256 * 1024;

/// Wraps `input` so that reading it yields the binary CMS, whatever armour it came in.
pub(crate) fn dearmor<'a, R: Read + 'a>(input: R) -> Result<Box<dyn Read + 'a>, Error> {
    let mut input = BufReader::with_capacity(BUFFER, input);
    let head = loop {
        match input.fill_buf() {
            Ok(head) => break head,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    };
    let Some(&first) = head.first() else {
        return Err(Error::Empty);
    };
    if first == 0x30 {
        return Ok(Box::new(input));
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]).into_owned();
    let trimmed = text.trim_start();
    if trimmed.is_empty() && head.iter().all(|b| b.is_ascii_whitespace()) && head.len() < 512 {
        return Err(Error::Empty);
    }
    let skip_until_blank_line = if trimmed.starts_with("-----BEGIN") {
        false
    } else if looks_like_mime_header(trimmed) {
        true
    } else {
        return Err(Error::Malformed {
            offset: 0,
            what: "not DER, BER, PEM or S/MIME",
        });
    };
    skip_preamble(&mut input, skip_until_blank_line)?;
    Ok(Box::new(BufReader::with_capacity(
        BUFFER,
        Base64Reader {
            inner: input,
            quad: Vec::with_capacity(BUFFER),
            plain: Vec::with_capacity(BUFFER),
            plain_pos: 0,
            done: false,
        },
    )))
}

fn looks_like_mime_header(text: &str) -> bool {
    let line = text.lines().next().unwrap_or("");
    match line.split_once(':') {
        Some((name, _)) => {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }
        None => false,
    }
}

/// Longest line accepted before the base64 body (a MIME header line, or the PEM `-----BEGIN` line,
/// which detection requires to come first after less than 512 bytes of whitespace). RFC 5322 allows 998 characters; 8 KiB leaves room and bounds memory.
pub(crate) const MAX_LINE: u64 = 8 * 1024;
/// Most bytes accepted before the base64 body starts (all MIME headers up to the blank line).
pub(crate) const MAX_PREAMBLE: u64 = 64 * 1024;

/// Skips the PEM `-----BEGIN` line, or the MIME headers up to the first blank line, holding at most
/// one line of [`MAX_LINE`] bytes and reading at most [`MAX_PREAMBLE`] bytes.
fn skip_preamble<R: BufRead>(input: &mut R, mime: bool) -> Result<(), Error> {
    let mut line = Vec::new();
    let mut offset = 0u64;
    loop {
        line.clear();
        let start = offset;
        let ended = read_line(input, &mut line, MAX_LINE).map_err(|e| match e {
            Error::Overlong { .. } => Error::Overlong {
                offset: start,
                what: if mime {
                    "S/MIME header line"
                } else {
                    "PEM BEGIN line"
                },
                limit: MAX_LINE,
            },
            other => other,
        })?;
        offset += line.len() as u64;
        if !ended && line.is_empty() {
            return Err(Error::Truncated { offset });
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if mime && text.is_empty() {
            return Ok(());
        }
        if !mime && text.starts_with("-----BEGIN") {
            return Ok(());
        }
        if !ended {
            return Err(Error::Truncated { offset });
        }
        if offset > MAX_PREAMBLE {
            return Err(Error::Overlong {
                offset: 0,
                what: if mime {
                    "S/MIME header block"
                } else {
                    "text before the PEM body"
                },
                limit: MAX_PREAMBLE,
            });
        }
    }
}

/// Reads one line (its `\n` included) into `line`; true when it ended with `\n`, false at the end of
/// input. A line longer than `limit` is [`Error::Overlong`] as soon as `limit` bytes have gone by.
fn read_line<R: BufRead>(input: &mut R, line: &mut Vec<u8>, limit: u64) -> Result<bool, Error> {
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if chunk.is_empty() {
            return Ok(false);
        }
        let (take, ended) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if (line.len() + take) as u64 > limit {
            return Err(Error::Overlong {
                offset: 0,
                what: "line",
                limit,
            });
        }
        line.extend_from_slice(&chunk[..take]);
        input.consume(take);
        if ended {
            return Ok(true);
        }
    }
}

/// Decodes base64 as it streams, ignoring whitespace and stopping at a `-----END` line.
struct Base64Reader<R> {
    inner: R,
    /// Base64 characters not yet decoded.
    quad: Vec<u8>,
    /// Decoded bytes not yet handed out, from `plain_pos` on.
    plain: Vec<u8>,
    plain_pos: usize,
    done: bool,
}

impl<R: BufRead> Read for Base64Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.plain_pos < self.plain.len() {
                let n = out.len().min(self.plain.len() - self.plain_pos);
                out[..n].copy_from_slice(&self.plain[self.plain_pos..self.plain_pos + n]);
                self.plain_pos += n;
                return Ok(n);
            }
            let usable = self.quad.len() / 4 * 4;
            if usable > 0 {
                self.plain.resize(usable / 4 * 3, 0);
                let n = base64::engine::general_purpose::STANDARD
                    .decode_slice(&self.quad[..usable], &mut self.plain)
                    .map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("bad base64: {e}"))
                    })?;
                self.plain.truncate(n);
                self.plain_pos = 0;
                self.quad.drain(..usable);
                continue;
            }
            if self.done {
                if self.quad.is_empty() {
                    return Ok(0);
                }
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "base64 body ends mid-quad",
                ));
            }
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                self.done = true;
                continue;
            }
            let mut used = 0;
            for &b in chunk {
                used += 1;
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => {
                        self.quad.push(b)
                    }
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    b'-' => {
                        self.done = true;
                        break;
                    }
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "invalid character in base64 body",
                        ))
                    }
                }
            }
            self.inner.consume(used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        dearmor(input)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_armour_yields_the_same_bytes() {
        let der: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 0x30) as u8).collect();
        let mut der = der;
        der[0] = 0x30;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let wrapped: String = b64
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let pem = format!("-----BEGIN CMS-----\n{wrapped}-----END CMS-----\n");
        let smime = format!(
            "MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n{}\r\n\r\n",
            wrapped.replace('\n', "\r\n")
        );
        assert_eq!(read_all(&der).unwrap(), der);
        assert_eq!(read_all(pem.as_bytes()).unwrap(), der);
        assert_eq!(read_all(smime.as_bytes()).unwrap(), der);
    }

    #[test]
    fn empty_and_garbage_are_told_apart() {
        assert!(matches!(read_all(b""), Err(Error::Empty)));
        assert!(matches!(read_all(b"\n \n"), Err(Error::Empty)));
        assert!(matches!(
            read_all(b"hello world"),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn a_line_of_100_mb_is_refused_after_its_limit() {
        let cases: [(&[u8], u8, &str); 3] = [
            (b"MIME-Version: 1.0\r\nX-Long: ", b'a', "S/MIME header line"),
            (b"-----BEGIN CMS", b'-', "PEM BEGIN line"),
            (b"-----BEGIN", b' ', "PEM BEGIN line"),
        ];
        for (head, fill, want) in cases {
            let mut input = crate::lazy::Lazy {
                head: head.to_vec(),
                fill,
                total: 100 << 20,
                pos: 0,
            };
            match dearmor(&mut input).map(|_| ()) {
                Err(Error::Overlong { what, limit, .. }) => {
                    assert_eq!(what, want);
                    assert_eq!(limit, MAX_LINE);
                }
                other => panic!("{want}: {other:?}"),
            }
            // Stopped at the limit: one buffer's worth read, not the 100 MB.
            assert!(input.pos <= 2 * BUFFER as u64, "{want}: read {}", input.pos);
        }
    }

    #[test]
    fn headers_without_end_are_refused_after_their_limit() {
        // Short MIME header lines that never reach the blank line.
        let mut lines = b"MIME-Version: 1.0\n".to_vec();
        while lines.len() < 200_000 {
            lines.extend_from_slice(b"X-Filler: 0123456789\n");
        }
        let mut input = crate::lazy::Lazy {
            total: lines.len() as u64,
            head: lines,
            fill: 0,
            pos: 0,
        };
        assert!(matches!(
            dearmor(&mut input).map(|_| ()),
            Err(Error::Overlong {
                what: "S/MIME header block",
                limit: MAX_PREAMBLE,
                ..
            })
        ));
        // Within the limits, headers end and the body decodes.
        let ok = b"MIME-Version: 1.0\nContent-Type: application/pkcs7-mime\n\nMAA=\n";
        assert_eq!(read_all(ok).unwrap(), [0x30, 0]);
        assert!(matches!(
            read_all(b"MIME-Version: 1.0\nX: y"),
            Err(Error::Truncated { .. })
        ));
    }
}
