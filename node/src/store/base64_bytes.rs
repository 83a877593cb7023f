//! Bytes inside a JSON record (signed receipts, index keys) as base64 text: a JSON array of
//! numbers would take four times the space and far longer to read, and records are read often.
//! Reading also accepts the array form that records written before used.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{de, Deserialize, Deserializer, Serializer};

/// `#[serde(with = "base64_bytes")]` for `Vec<u8>`.
pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(bytes))
}

/// See [`serialize`].
pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    d.deserialize_any(BytesVisitor)
}

struct BytesVisitor;

impl<'de> de::Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("base64 text (or an array of bytes)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        STANDARD.decode(v).map_err(E::custom)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(byte) = seq.next_element()? {
            out.push(byte);
        }
        Ok(out)
    }
}

/// The same for `Option<Vec<u8>>` (with `#[serde(default, skip_serializing_if = ...)]`).
pub(super) mod option {
    use super::*;

    #[derive(Deserialize)]
    struct Bytes(#[serde(deserialize_with = "super::deserialize")] Vec<u8>);

    /// `#[serde(with = "base64_bytes::option")]`.
    pub(in crate::store) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => super::serialize(bytes, s),
            None => s.serialize_none(),
        }
    }

    /// See [`serialize`].
    pub(in crate::store) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<Bytes>::deserialize(d)?.map(|b| b.0))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        bytes: Vec<u8>,
        #[serde(
            default,
            with = "super::option",
            skip_serializing_if = "Option::is_none"
        )]
        maybe: Option<Vec<u8>>,
    }

    #[test]
    fn bytes_are_base64_and_the_old_array_form_still_reads() {
        let h = Holder {
            bytes: vec![0, 1, 254, 255],
            maybe: Some(vec![7; 3]),
        };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, r#"{"bytes":"AAH+/w==","maybe":"BwcH"}"#);
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), h);
        let old: Holder =
            serde_json::from_str(r#"{"bytes":[0,1,254,255],"maybe":[7,7,7]}"#).unwrap();
        assert_eq!(old, h);
        let none: Holder = serde_json::from_str(r#"{"bytes":""}"#).unwrap();
        assert_eq!(none.maybe, None);
        assert!(serde_json::from_str::<Holder>(r#"{"bytes":"not base64!"}"#).is_err());
    }
}
