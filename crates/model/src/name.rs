//! Domain names as a lowercased, escaped presentation-format newtype.

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A DNS name in lowercased presentation format, without the trailing dot (the root is `.`).
///
/// Every byte outside `!`..`~` is written as `\DDD` (decimal, as in zone files and `dig`), and
/// `.` inside a label, `\`, `"`, `(`, `)`, `;`, `@`, `$` as `\` + the character. The stored text
/// is therefore printable ASCII with no spaces, quotes or control characters, whatever the wire
/// bytes were. Only ASCII letters are lowercased (DNS case-insensitivity is ASCII-only).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Name(CompactString);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("bad escape sequence in name")]
    BadEscape,
    #[error("empty label in name")]
    EmptyLabel,
    #[error("label longer than 63 bytes")]
    LabelTooLong,
    #[error("name longer than 255 bytes")]
    NameTooLong,
}

fn needs_backslash(b: u8) -> bool {
    matches!(b, b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$')
}

/// Appends one raw label, lowercased and escaped, to `out` (no separator).
pub(crate) fn push_label(out: &mut CompactString, label: &[u8]) {
    for &b in label {
        let b = b.to_ascii_lowercase();
        if !(0x21..=0x7e).contains(&b) {
            out.push('\\');
            out.push((b'0' + b / 100) as char);
            out.push((b'0' + (b / 10) % 10) as char);
            out.push((b'0' + b % 10) as char);
        } else if needs_backslash(b) {
            out.push('\\');
            out.push(b as char);
        } else {
            out.push(b as char);
        }
    }
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Self {
        Name(CompactString::const_new("."))
    }

    /// Builds a name from raw wire labels (without the terminating empty label).
    /// Never fails: any bytes are escaped.
    pub fn from_labels<'a, I: IntoIterator<Item = &'a [u8]>>(labels: I) -> Self {
        let mut s = CompactString::default();
        for (i, l) in labels.into_iter().enumerate() {
            if i > 0 {
                s.push('.');
            }
            push_label(&mut s, l);
        }
        if s.is_empty() {
            return Self::root();
        }
        Name(s)
    }

    /// Parses presentation format (`www.Example.com.`, with `\DDD` and `\c` escapes),
    /// lowercases and re-escapes it canonically. A trailing dot is optional.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let labels = split_presentation(text)?;
        let total: usize = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
        if total > 255 {
            return Err(NameError::NameTooLong);
        }
        Ok(Self::from_labels(labels.iter().map(|l| l.as_slice())))
    }

    /// Parses leniently for log formats (Zeek, JSON lines): like [`Name::parse`] but bytes that
    /// are not valid escapes are taken literally and length limits are not enforced.
    pub fn parse_lenient(text: &str) -> Self {
        match split_presentation(text) {
            Ok(labels) => Self::from_labels(labels.iter().map(|l| l.as_slice())),
            Err(_) => {
                let t = text.strip_suffix('.').unwrap_or(text);
                if t.is_empty() {
                    return Self::root();
                }
                Self::from_labels(t.split('.').map(|l| l.as_bytes()))
            }
        }
    }

    /// Wraps text that is already in canonical form (as produced by this type). Used by
    /// deserialisers of trusted internal data; callers from untrusted input use [`Name::parse`].
    pub fn from_canonical(s: &str) -> Self {
        Name(CompactString::from(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "."
    }

    /// Labels in presentation (escaped) form, left to right. The root has none.
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        let s: &str = if self.is_root() { "" } else { &self.0 };
        LabelIter { s }
    }

    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// Raw wire bytes of each label (escapes decoded).
    pub fn wire_labels(&self) -> Vec<Vec<u8>> {
        if self.is_root() {
            return Vec::new();
        }
        split_presentation(&self.0).unwrap_or_default()
    }

    /// Length of the name in wire format (labels + length bytes + root byte).
    pub fn wire_len(&self) -> usize {
        self.wire_labels()
            .iter()
            .map(|l| l.len() + 1)
            .sum::<usize>()
            + 1
    }

    /// True when `self` equals `suffix` or ends with `.suffix`.
    pub fn is_subdomain_of(&self, suffix: &str) -> bool {
        let s = self.as_str();
        let suffix = suffix.trim_end_matches('.');
        if suffix.is_empty() {
            return true;
        }
        s == suffix
            || (s.len() > suffix.len()
                && s.ends_with(suffix)
                && s.as_bytes()[s.len() - suffix.len() - 1] == b'.'
                && !is_escaped_at(s, s.len() - suffix.len() - 1))
    }

    /// The name without its first `n` labels, or None if it has fewer labels.
    pub fn parent(&self, n: usize) -> Option<Name> {
        let labels: Vec<&str> = self.labels().collect();
        if n > labels.len() {
            return None;
        }
        if n == labels.len() {
            return Some(Name::root());
        }
        Some(Name(CompactString::from(labels[n..].join("."))))
    }
}

fn is_escaped_at(s: &str, pos: usize) -> bool {
    // a character at `pos` is escaped if preceded by an odd number of backslashes
    let b = s.as_bytes();
    let mut n = 0;
    let mut i = pos;
    while i > 0 && b[i - 1] == b'\\' {
        n += 1;
        i -= 1;
    }
    n % 2 == 1
}

struct LabelIter<'a> {
    s: &'a str,
}

impl<'a> LabelIter<'a> {
    fn split_point_front(&self) -> Option<usize> {
        let b = self.s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'.' => return Some(i),
                _ => i += 1,
            }
        }
        None
    }
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.s.is_empty() {
            return None;
        }
        match self.split_point_front() {
            Some(i) => {
                let l = &self.s[..i];
                self.s = &self.s[i + 1..];
                Some(l)
            }
            None => {
                let l = self.s;
                self.s = "";
                Some(l)
            }
        }
    }
}

impl<'a> DoubleEndedIterator for LabelIter<'a> {
    fn next_back(&mut self) -> Option<&'a str> {
        if self.s.is_empty() {
            return None;
        }
        // find the last unescaped dot
        let b = self.s.as_bytes();
        let mut last = None;
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'.' => {
                    last = Some(i);
                    i += 1
                }
                _ => i += 1,
            }
        }
        match last {
            Some(i) => {
                let l = &self.s[i + 1..];
                self.s = &self.s[..i];
                Some(l)
            }
            None => {
                let l = self.s;
                self.s = "";
                Some(l)
            }
        }
    }
}

/// Splits presentation text into raw labels, decoding escapes.
fn split_presentation(text: &str) -> Result<Vec<Vec<u8>>, NameError> {
    let t = text.as_bytes();
    if t.is_empty() || t == b"." {
        return Ok(Vec::new());
    }
    let mut labels = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let c = t[i];
        match c {
            b'\\' => {
                let next = *t.get(i + 1).ok_or(NameError::BadEscape)?;
                if next.is_ascii_digit() {
                    let d = t.get(i + 1..i + 4).ok_or(NameError::BadEscape)?;
                    if !d.iter().all(|x| x.is_ascii_digit()) {
                        return Err(NameError::BadEscape);
                    }
                    let v = (d[0] - b'0') as u32 * 100
                        + (d[1] - b'0') as u32 * 10
                        + (d[2] - b'0') as u32;
                    if v > 255 {
                        return Err(NameError::BadEscape);
                    }
                    cur.push(v as u8);
                    i += 4;
                } else {
                    cur.push(next);
                    i += 2;
                }
            }
            b'.' => {
                if cur.is_empty() {
                    return Err(NameError::EmptyLabel);
                }
                if cur.len() > 63 {
                    return Err(NameError::LabelTooLong);
                }
                labels.push(std::mem::take(&mut cur));
                i += 1;
            }
            _ => {
                cur.push(c);
                i += 1;
            }
        }
    }
    if !cur.is_empty() {
        if cur.len() > 63 {
            return Err(NameError::LabelTooLong);
        }
        labels.push(cur);
    }
    Ok(labels)
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({})", self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Name::parse_lenient(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_and_escapes() {
        let n = Name::from_labels([&b"WWW"[..], b"Ex<a>mple\n", b"a.b", b"com"]);
        assert_eq!(n.as_str(), "www.ex<a>mple\\010.a\\.b.com");
        assert_eq!(n.label_count(), 4);
        assert_eq!(n.labels().next_back(), Some("com"));
        assert_eq!(Name::parse(n.as_str()).unwrap(), n);
        assert_eq!(n.wire_labels()[2], b"a.b".to_vec());
    }

    #[test]
    fn root_and_trailing_dot() {
        assert!(Name::parse(".").unwrap().is_root());
        assert_eq!(Name::parse("Example.COM.").unwrap().as_str(), "example.com");
        assert_eq!(Name::parse("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(Name::parse("a\\"), Err(NameError::BadEscape));
        assert_eq!(Name::parse("a\\25"), Err(NameError::BadEscape));
        assert_eq!(Name::parse("a\\999"), Err(NameError::BadEscape));
    }

    #[test]
    fn subdomain_and_parent() {
        let n = Name::parse("a.b.example.com").unwrap();
        assert!(n.is_subdomain_of("example.com"));
        assert!(n.is_subdomain_of("example.com."));
        assert!(!n.is_subdomain_of("ample.com"));
        assert_eq!(n.parent(2).unwrap().as_str(), "example.com");
        assert!(n.parent(4).unwrap().is_root());
        assert!(n.parent(5).is_none());
        let tricky = Name::from_labels([&b"x.example"[..], b"com"]);
        assert!(!tricky.is_subdomain_of("example.com"));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_roundtrip(labels in proptest::collection::vec(proptest::collection::vec(1u8..=255, 1..20), 0..5)) {
            let n = Name::from_labels(labels.iter().map(|l| l.as_slice()));
            proptest::prop_assert!(n.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
            let again = Name::parse(n.as_str()).unwrap();
            proptest::prop_assert_eq!(&again, &n);
            let lower: Vec<Vec<u8>> = labels.iter().map(|l| l.to_ascii_lowercase()).collect();
            proptest::prop_assert_eq!(n.wire_labels(), lower);
        }
    }
}
