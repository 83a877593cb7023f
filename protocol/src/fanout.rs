//! The fan-out object (OFFER kind 4, `docs/broadcast.md` rule 4): one copy of a dispatch for
//! several recipients behind one next hop. Its bytes are a member list, then the sealed variant
//! for those members; the next hop splits it without opening it.

use std::collections::HashSet;
use std::io::Read;

use crate::OrganCode;

/// What a fan-out object starts with.
pub const MAGIC: &[u8; 8] = b"VDXFAN1\n";
/// Fewest members: one recipient travels as an ordinary dispatch.
pub const MIN_MEMBERS: usize = 2;
/// Most members: the most recipients a dispatch may name.
pub const MAX_MEMBERS: usize = crate::header::DispatchHeader::MAX_RECIPIENTS;
/// Most bytes a member takes in the list (a u8 length, an organ code of at most 32 bytes, an id).
pub const MAX_MEMBER_BYTES: usize = 1 + 32 + 16;

/// One recipient a fan-out object carries a copy for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The recipient agency.
    pub to: OrganCode,
    /// The transfer id its own copy travels (and is receipted) under.
    pub id: [u8; 16],
}

/// A member list as read from a fan-out object: 2 to [`MAX_MEMBERS`] members, no code and no
/// id twice. Holding one proves that much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members(Vec<Member>);

/// Why a member list is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FanOutError {
    /// Not a fan-out object, a count out of range, a cut list, a bad code or a repeat.
    #[error("malformed fan-out object: {0}")]
    Malformed(&'static str),
    /// The object could not be read.
    #[error("reading a fan-out object: {0}")]
    Io(#[from] std::io::Error),
}

impl Members {
    /// Checks `members` against the rules a reader applies.
    pub fn new(members: Vec<Member>) -> Result<Self, FanOutError> {
        if !(MIN_MEMBERS..=MAX_MEMBERS).contains(&members.len()) {
            return Err(FanOutError::Malformed("member count out of range"));
        }
        let mut codes = HashSet::with_capacity(members.len());
        let mut ids = HashSet::with_capacity(members.len());
        for m in &members {
            if m.to.as_str().len() > OrganCode::MAX_LEN {
                return Err(FanOutError::Malformed("organ code too long"));
            }
            if !codes.insert(m.to.as_str()) || !ids.insert(m.id) {
                return Err(FanOutError::Malformed("a member twice"));
            }
        }
        Ok(Self(members))
    }

    /// The members, in the sender's order.
    pub fn as_slice(&self) -> &[Member] {
        &self.0
    }

    /// The head of a fan-out object: magic, count, members. The variant follows it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(10 + self.0.len() * MAX_MEMBER_BYTES);
        out.extend_from_slice(MAGIC);
        // At most MAX_MEMBERS (4,096): fits.
        out.extend_from_slice(&(self.0.len() as u16).to_be_bytes());
        for m in &self.0 {
            let code = m.to.as_str().as_bytes();
            out.push(code.len() as u8);
            out.extend_from_slice(code);
            out.extend_from_slice(&m.id);
        }
        out
    }

    /// Reads the head of a fan-out object from `input`, leaving it at the variant's first byte;
    /// returns the members and the head's length.
    pub fn read(mut input: impl Read) -> Result<(Self, u64), FanOutError> {
        let cut = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FanOutError::Malformed("cut member list"),
            _ => FanOutError::Io(e),
        };
        let mut head = [0u8; 10];
        input.read_exact(&mut head).map_err(cut)?;
        if &head[..8] != MAGIC {
            return Err(FanOutError::Malformed("not a fan-out object"));
        }
        let count = usize::from(u16::from_be_bytes([head[8], head[9]]));
        if !(MIN_MEMBERS..=MAX_MEMBERS).contains(&count) {
            return Err(FanOutError::Malformed("member count out of range"));
        }
        let mut members = Vec::with_capacity(count);
        let mut len = 10u64;
        for _ in 0..count {
            let mut n = [0u8; 1];
            input.read_exact(&mut n).map_err(cut)?;
            let n = usize::from(n[0]);
            if n == 0 || n > OrganCode::MAX_LEN {
                return Err(FanOutError::Malformed("organ code length"));
            }
            let mut code = vec![0u8; n + 16];
            input.read_exact(&mut code).map_err(cut)?;
            let to = std::str::from_utf8(&code[..n])
                .ok()
                .and_then(|c| c.parse().ok())
                .ok_or(FanOutError::Malformed("not an organ code"))?;
            let mut id = [0u8; 16];
            id.copy_from_slice(&code[n..]);
            members.push(Member { to, id });
            len += 1 + n as u64 + 16;
        }
        Ok((Self::new(members)?, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u8) -> Member {
        Member {
            to: format!("000.{n:02}.41.H41").parse().unwrap(),
            id: [n; 16],
        }
    }

    #[test]
    fn a_member_list_reads_back_and_leaves_the_variant() {
        let members = Members::new((1..=3).map(member).collect()).unwrap();
        let mut object = members.encode();
        let head_len = object.len() as u64;
        object.extend_from_slice(b"the variant");
        let mut input = object.as_slice();
        let (read, len) = Members::read(&mut input).unwrap();
        assert_eq!((read, len), (members, head_len));
        assert_eq!(input, b"the variant");
    }

    #[test]
    fn malformed_lists_are_refused() {
        let good = Members::new(vec![member(1), member(2)]).unwrap().encode();
        let refused = |bytes: &[u8]| Members::read(bytes).unwrap_err().to_string();
        assert!(refused(b"VDXFAN2\n\x00\x02").contains("not a fan-out"));
        assert!(refused(&good[..good.len() - 1]).contains("cut"));
        let mut one = good.clone();
        one[9] = 1;
        assert!(refused(&one).contains("count"));
        let mut zero_len = good.clone();
        zero_len[10] = 0;
        assert!(refused(&zero_len).contains("length"));
        let mut bad_code = good.clone();
        bad_code[11] = b' ';
        assert!(refused(&bad_code).contains("organ code"));
        let twice = [&good[..10], &good[10..40], &good[10..40]].concat();
        assert!(refused(&twice).contains("twice"));
        assert!(Members::new(vec![member(1)]).is_err());
        let same_id = Member {
            id: [1; 16],
            ..member(2)
        };
        assert!(Members::new(vec![member(1), same_id]).is_err());
    }
}
