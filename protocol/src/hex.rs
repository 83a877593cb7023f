//! Lower-case hexadecimal, the form ids and digests take in every text format of vdx.

/// `bytes` as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Exactly `2 * N` lower-case hex digits as bytes; anything else is `None`.
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let canonical = text.len() == 2 * N
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !canonical {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        assert_eq!(encode(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(decode::<3>("00abff"), Some([0x00, 0xab, 0xff]));
        let every: [u8; 256] = std::array::from_fn(|b| b as u8);
        let text = encode(&every);
        assert_eq!(decode::<256>(&text), Some(every));
        assert_eq!(&text[0x7a * 2..0x7a * 2 + 2], "7a");
        for bad in ["00ABFF", "00abf", "00abfff", "00abgg", "+0abff"] {
            assert_eq!(decode::<3>(bad), None, "{bad}");
        }
    }
}
