//! The shape of a stored row, read without building a JSON tree: each top-level member's
//! name and the kind of its value, borrowing from the input where it can. Verify reads every
//! row, so this is its hot path; a `serde_json::Value` would allocate every string.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The kind of a member's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX`.
    BigUint,
    Float,
    Str(Cow<'a, str>),
    /// An array or an object.
    Nested,
}

/// Calls `member` with each top-level member of a JSON object, in order, without collecting
/// them (verify reads every row: no allocation per row). `Ok(false)` when the value is valid
/// JSON but not an object.
pub(crate) fn each_member<'de, F>(bytes: &'de [u8], member: F) -> Result<bool, serde_json::Error>
where
    F: FnMut(Cow<'de, str>, Kind<'de>),
{
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let is_object = de::DeserializeSeed::deserialize(Members(member), &mut de)?;
    de.end()?;
    Ok(is_object)
}

struct Members<F>(F);

impl<'de, F: FnMut(Cow<'de, str>, Kind<'de>)> de::DeserializeSeed<'de> for Members<F> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(Cow<'de, str>, Kind<'de>)> Visitor<'de> for Members<F> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<bool, A::Error> {
        while let Some(Name(name)) = map.next_key()? {
            let kind: Kind<'de> = map.next_value()?;
            (self.0)(name, kind);
        }
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// A member name, borrowed unless it holds escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> de::Deserialize<'de> for Kind<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Kind<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Kind::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
                Ok(Kind::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
                Ok(Kind::Int(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(n).map_or(Kind::BigUint, Kind::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Kind::Float)
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Kind::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Kind::Str(Cow::Owned(s.to_string())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Kind::Nested)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Kind::Nested)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_and_kinds_without_a_tree() {
        let mut members = Vec::new();
        let is_object = each_member(
            br#"{"id": 7, "big": 18446744073709551615, "x": 1.5, "s": "a\"b", "b": true, "n": null, "o": {"k": [1]}}"#,
            |name, kind| members.push((name, kind)),
        )
        .expect("parse");
        assert!(is_object);
        let kinds: Vec<(&str, Kind)> = members
            .iter()
            .map(|(k, v)| (k.as_ref(), v.clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("id", Kind::Int(7)),
                ("big", Kind::BigUint),
                ("x", Kind::Float),
                ("s", Kind::Str(Cow::Borrowed("a\"b"))),
                ("b", Kind::Bool(true)),
                ("n", Kind::Null),
                ("o", Kind::Nested),
            ]
        );
    }

    #[test]
    fn tells_non_objects_and_non_json_apart() {
        let parse = |bytes: &[u8]| each_member(bytes, |_, _| {});
        assert!(!parse(b"[1, 2]").expect("json"));
        assert!(!parse(b"\"text\"").expect("json"));
        assert!(parse(b"{}").expect("json"));
        assert!(parse(b"{\"a\": 1").is_err());
        assert!(parse(b"{} trailing").is_err());
    }
}
