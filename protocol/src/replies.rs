//! Signed replies (OFFER kind 3, `docs/receipts.md`): a delivery receipt and its notice 01 sent
//! back as one object, each part still a complete signed CMS object that verifies on its own. Our
//! signed objects use BER indefinite lengths (they are written as a stream), so each part is
//! preceded by its length: u32, big-endian.

/// The object a list of signed parts travels as.
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| 4 + p.len()).sum());
    for part in parts {
        // A part is a receipt or a notice: a few KiB, far below u32::MAX.
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// Why an object of kind 3 is refused before any signature is looked at.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RepliesError {
    /// A length that runs past the end, or an empty part.
    #[error("the replies are cut or malformed at byte {0}")]
    Malformed(usize),
    /// Not the receipt and the notice (`docs/receipts.md`).
    #[error("{0} parts instead of 2 (a delivery receipt, then notice 01)")]
    Parts(usize),
}

/// The two parts of a signed replies object: the delivery receipt, then the notice.
pub fn split(object: &[u8]) -> Result<[&[u8]; 2], RepliesError> {
    let mut parts = Vec::new();
    let mut rest = object;
    while !rest.is_empty() {
        let at = object.len() - rest.len();
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or(RepliesError::Malformed(at))?;
        let len = u32::from_be_bytes(*len) as usize;
        if len == 0 || len > tail.len() {
            return Err(RepliesError::Malformed(at));
        }
        let (part, tail) = tail.split_at(len);
        parts.push(part);
        rest = tail;
    }
    <[&[u8]; 2]>::try_from(parts).map_err(|parts| RepliesError::Parts(parts.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_parts_split_back_exactly_and_anything_else_is_refused() {
        let (receipt, notice) = (vec![1u8; 300], vec![2u8; 40]);
        let object = join(&[&receipt, &notice]);
        assert_eq!(object.len(), 4 + 300 + 4 + 40);
        assert_eq!(split(&object).unwrap(), [&receipt[..], &notice[..]]);

        assert_eq!(split(&join(&[&receipt])), Err(RepliesError::Parts(1)));
        let three = join(&[&receipt, &notice, &notice]);
        assert_eq!(split(&three), Err(RepliesError::Parts(3)));
        assert_eq!(split(&[]), Err(RepliesError::Parts(0)));
        // Cut anywhere, trailing bytes, or an empty part.
        for cut in [1, 3, 5, 303, 305, object.len() - 1] {
            assert!(
                matches!(split(&object[..cut]), Err(RepliesError::Malformed(_))),
                "{cut}"
            );
        }
        let mut trailing = object.clone();
        trailing.push(0);
        assert_eq!(split(&trailing), Err(RepliesError::Malformed(object.len())));
        assert_eq!(
            split(&join(&[&receipt, &[]])),
            Err(RepliesError::Malformed(304))
        );
    }
}
