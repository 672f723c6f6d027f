//! Tolerant readers for values written by every generation of the engine.
//!
//! Timestamps arrive as epoch seconds, epoch milliseconds, decimal strings of either, or
//! RFC 3339 strings; they are always read as milliseconds. JSON payloads arrive as text or as
//! objects; they are always read as text. Absent or null strings read as `""`.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Integers below this are epoch seconds (it is 1973-03-03 in milliseconds and the year 5138
/// in seconds), at or above it epoch milliseconds.
const SECONDS_LIMIT: i64 = 100_000_000_000;

fn scale(n: i64) -> i64 {
    // `unsigned_abs`: `i64::MIN.abs()` overflows.
    if n.unsigned_abs() < SECONDS_LIMIT.unsigned_abs() {
        n.saturating_mul(1000)
    } else {
        n
    }
}

/// A float timestamp's whole part, if it is finite and fits an `i64` (`u64` values past
/// `i64::MAX` arrive here too).
fn whole(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; every finite float below it in magnitude fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    // Checked just above: the whole part fits, so the cast neither saturates nor wraps.
    #[allow(clippy::cast_possible_truncation)]
    let cast = |f: f64| f.trunc() as i64;
    (f.is_finite() && f.abs() < LIMIT).then(|| cast(f))
}

/// Reads any timestamp spelling as epoch milliseconds; `None` for null or unreadable values.
pub fn millis_from_json(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(whole)).map(scale),
        Value::String(s) => {
            if let Ok(n) = s.trim().parse::<i64>() {
                return Some(scale(n));
            }
            chrono::DateTime::parse_from_rfc3339(s.trim())
                .ok()
                .map(|dt| dt.timestamp_millis())
        }
        _ => None,
    }
}

/// `deserialize_with` for a required timestamp; null or absent reads as 0.
pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(0),
        other => millis_from_json(other)
            .ok_or_else(|| serde::de::Error::custom(format!("not a timestamp: {other}"))),
    }
}

/// `deserialize_with` for an optional timestamp.
pub fn opt_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(None),
        other => millis_from_json(other)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("not a timestamp: {other}"))),
    }
}

/// `deserialize_with` for a JSON payload kept as text: accepts text, any JSON value (kept as
/// its compact text), or null (read as `""`).
pub fn json_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// `deserialize_with` for a string that older writers left null.
pub fn string_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// `deserialize_with` for a list of strings given as an array, as the JSON text of an array,
/// or as null.
pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Value::deserialize(d)?;
    let v = match v {
        Value::String(s) if s.trim().is_empty() => return Ok(Vec::new()),
        Value::String(s) => serde_json::from_str::<Value>(&s).map_err(serde::de::Error::custom)?,
        other => other,
    };
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => Ok(items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect()),
        other => Err(serde::de::Error::custom(format!(
            "expected a list of strings, found {other}"
        ))),
    }
}

/// `deserialize_with` for a count that older writers may have left null or negative.
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// Declares a lowercase enum that reads any capitalisation and writes lowercase.
#[macro_export]
macro_rules! lowercase_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let lower = s.trim().to_ascii_lowercase();
                $(if lower == $text { return Ok($name::$variant); })+
                Err(format!(
                    "'{}' is not one of: {}",
                    s,
                    [$($text),+].join(", ")
                ))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_in_every_spelling_read_as_millis() {
        assert_eq!(
            millis_from_json(&json!(1_700_000_000)),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            millis_from_json(&json!(1_700_000_000_123_i64)),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            millis_from_json(&json!("1700000000")),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            millis_from_json(&json!("2023-11-14T22:13:20.123Z")),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            millis_from_json(&json!(1_700_000_000.5)),
            Some(1_700_000_000_000)
        );
        assert_eq!(millis_from_json(&json!("yesterday")), None);
        // The extremes: no overflow, no panic.
        assert_eq!(millis_from_json(&json!(i64::MIN)), Some(i64::MIN));
        assert_eq!(
            millis_from_json(&json!(i64::MIN.to_string())),
            Some(i64::MIN)
        );
        assert_eq!(millis_from_json(&json!(-1)), Some(-1000));
        assert_eq!(millis_from_json(&json!(u64::MAX)), None);
        assert_eq!(millis_from_json(&json!(1e300)), None);
        assert_eq!(millis_from_json(&json!(null)), None);
    }

    #[test]
    fn string_lists_read_from_arrays_and_text() {
        #[derive(serde::Deserialize)]
        struct P {
            #[serde(deserialize_with = "string_list", default)]
            p: Vec<String>,
        }
        let a: P = serde_json::from_value(json!({"p": ["a", "b"]})).expect("array");
        let t: P = serde_json::from_value(json!({"p": "[\"a\",\"b\"]"})).expect("text");
        let n: P = serde_json::from_value(json!({"p": null})).expect("null");
        let m: P = serde_json::from_value(json!({})).expect("missing");
        assert_eq!(a.p, vec!["a", "b"]);
        assert_eq!(t.p, vec!["a", "b"]);
        assert!(n.p.is_empty() && m.p.is_empty());
    }
}
