//! Formatting of times, counts and durations for pages.

use dnsight_model::Ts;

/// `2026-12-03 14:05` (UTC) of Unix seconds.
pub(crate) fn secs(t: i64) -> String {
    short(&Ts::from_secs(t).to_rfc3339())
}

/// `2026-12-03 14:05` of an event time.
pub(crate) fn ts(t: Ts) -> String {
    short(&t.to_rfc3339())
}

fn short(r: &str) -> String {
    r.get(..16).unwrap_or(r).replace('T', " ")
}

/// `1,234,567`.
pub(crate) fn n(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `45 s`, `12 min`, `3.5 h`, `2.0 d`.
pub(crate) fn dur(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

/// Bytes as `12.3 MB`.
pub(crate) fn bytes(b: u64) -> String {
    let b = b as f64;
    if b < 1024.0 * 1024.0 {
        format!("{:.0} KB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2} GB", b / 1024.0 / 1024.0 / 1024.0)
    }
}

/// Percent-encodes a path segment or query value.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(n(1_234_567), "1,234,567");
        assert_eq!(n(12), "12");
        assert_eq!(enc("a b/<x>"), "a%20b%2F%3Cx%3E");
        assert_eq!(secs(0), "1970-01-01 00:00");
    }
}
