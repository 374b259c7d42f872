//! Event time: microseconds since the Unix epoch (UTC). Serialised as RFC 3339 text.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A point in event time, microseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ts(pub i64);

impl Ts {
    pub const MICROS_PER_SEC: i64 = 1_000_000;

    pub fn from_secs_f64(s: f64) -> Ts {
        Ts((s * 1e6).round() as i64)
    }
    pub fn from_secs(s: i64) -> Ts {
        Ts(s.saturating_mul(Self::MICROS_PER_SEC))
    }
    pub fn from_micros(us: i64) -> Ts {
        Ts(us)
    }
    pub fn micros(self) -> i64 {
        self.0
    }
    pub fn secs(self) -> i64 {
        self.0.div_euclid(Self::MICROS_PER_SEC)
    }
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    pub fn add_secs(self, s: i64) -> Ts {
        Ts(self
            .0
            .saturating_add(s.saturating_mul(Self::MICROS_PER_SEC)))
    }
    /// RFC 3339 UTC text with microseconds, e.g. `2026-11-29T02:27:29.123456Z`.
    pub fn to_rfc3339(self) -> String {
        match jiff::Timestamp::from_microsecond(self.0) {
            Ok(t) => format!("{t:.6}"),
            Err(_) => format!("@{}", self.0),
        }
    }
    /// Parses RFC 3339 (any offset) or a plain number of seconds since the epoch.
    pub fn parse(s: &str) -> Option<Ts> {
        let s = s.trim();
        if let Ok(t) = s.parse::<jiff::Timestamp>() {
            return Some(Ts(t.as_microsecond()));
        }
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Ts::from_secs_f64)
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ts({})", self.to_rfc3339())
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A hand-written visitor: untagged enums buffer the value and are several times slower.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Ts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time or seconds since the epoch")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Ts, E> {
                if v.is_finite() && v.abs() < 9.2e12 {
                    Ok(Ts::from_secs_f64(v))
                } else {
                    Err(E::custom("timestamp out of range"))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Ts, E> {
                Ok(Ts::from_secs(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Ts, E> {
                Ok(Ts::from_secs(
                    i64::try_from(v).map_err(|_| E::custom("timestamp out of range"))?,
                ))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Ts, E> {
                Ts::parse(s).ok_or_else(|| E::custom(format!("bad timestamp {s:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rfc3339_roundtrip() {
        let t = Ts(1_764_383_249_123_456);
        let s = t.to_rfc3339();
        assert_eq!(s, "2025-11-29T02:27:29.123456Z");
        assert_eq!(Ts::parse(&s), Some(t));
        assert_eq!(Ts::parse("1764383249.5"), Some(Ts(1_764_383_249_500_000)));
        assert_eq!(Ts::parse("2025-11-29T03:27:29.123456+01:00"), Some(t));
    }
}
