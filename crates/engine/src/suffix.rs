//! Name sets matched by suffix: "is this name, or one of its parents, listed?".
//!
//! One mechanism for every list of domains the engine checks per event (threat-intel feeds,
//! DNS-over-HTTPS resolver names, ...): a hash map probed with the name and then each parent
//! (`a.b.example.com`, `b.example.com`, `example.com`, `com`), so the cost grows with the
//! number of labels, not with the length of the list. Names are the model's escaped
//! presentation form: an escaped dot (`\.`) inside a label is not a label boundary.

use compact_str::CompactString;
use std::collections::HashMap;

/// Listed names (keys trusted: they come from configuration and feeds; lookups alone cannot
/// degrade the table, so a fast hasher is fine).
#[derive(Clone, Debug)]
pub struct SuffixMap<V> {
    map: HashMap<CompactString, V, foldhash::fast::RandomState>,
    /// Fewest and most labels of a listed name: a lookup only probes the suffixes of a name
    /// with a label count in this range (`www.example.com` against a list of registered
    /// domains probes `example.com` only, not `www.example.com` and `com`).
    min_labels: u16,
    max_labels: u16,
}

impl<V> Default for SuffixMap<V> {
    fn default() -> Self {
        SuffixMap {
            map: HashMap::default(),
            min_labels: u16::MAX,
            max_labels: 0,
        }
    }
}

impl<V> SuffixMap<V> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Adds `name` unless it is already listed (the first value wins). True when added.
    pub fn insert_first(&mut self, name: impl Into<CompactString>, v: V) -> bool {
        let name = name.into();
        let n = labels(&name);
        self.min_labels = self.min_labels.min(n);
        self.max_labels = self.max_labels.max(n);
        let mut added = false;
        self.map.entry(name).or_insert_with(|| {
            added = true;
            v
        });
        added
    }
    /// The most specific listed name covering `name` (itself or a parent) and its value.
    pub fn find<'n>(&self, name: &'n str) -> Option<(&'n str, &V)> {
        self.find_where(name, |_| true)
    }
    /// Like [`find`](Self::find), skipping listed names whose value fails `keep` (e.g. an
    /// expired feed), so that a less specific live entry can still match.
    pub fn find_where<'n>(
        &self,
        name: &'n str,
        keep: impl Fn(&V) -> bool,
    ) -> Option<(&'n str, &V)> {
        if self.map.is_empty() {
            return None;
        }
        let mut n = labels(name);
        let mut s = name;
        while n > self.max_labels {
            s = next_parent(s)?;
            n -= 1;
        }
        while n >= self.min_labels {
            if let Some(v) = self.map.get(s) {
                if keep(v) {
                    return Some((s, v));
                }
            }
            s = next_parent(s)?;
            n -= 1;
        }
        None
    }
}

/// Labels of an escaped presentation name (an escaped dot does not separate labels).
fn labels(s: &str) -> u16 {
    let b = s.as_bytes();
    let (mut i, mut n) = (0, 1u16);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'.' => {
                n = n.saturating_add(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    n
}

/// The parent of an escaped presentation name (`a.b.c` → `b.c`), None for a single label.
pub fn next_parent(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'.' => return Some(&s[i + 1..]).filter(|r| !r.is_empty()),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn matches_the_name_or_a_parent_at_label_boundaries_only() {
        let mut m = SuffixMap::new();
        assert!(m.insert_first("dns.google", 1));
        assert!(!m.insert_first("dns.google", 2), "first value wins");
        m.insert_first("example.com", 3);
        assert_eq!(m.find("dns.google"), Some(("dns.google", &1)));
        assert_eq!(m.find("a.b.example.com"), Some(("example.com", &3)));
        assert_eq!(m.find("notdns.google"), None, "not a label boundary");
        assert_eq!(m.find("google"), None);
        assert_eq!(m.find(""), None);
        // an escaped dot is part of a label
        assert_eq!(m.find("a\\.example.com"), None, "its parent is `com`");
        m.insert_first("a\\.example.com", 4);
        assert_eq!(m.find("x.a\\.example.com"), Some(("a\\.example.com", &4)));
        assert_eq!(m.find_where("a.example.com", |v| *v != 3), None);
        // probes are bounded by the listed names' label counts, without changing the answer
        let mut k = SuffixMap::new();
        k.insert_first("a.b.example.org", 1);
        k.insert_first("example.org", 2);
        assert_eq!(k.find("x.y.a.b.example.org"), Some(("a.b.example.org", &1)));
        assert_eq!(k.find("x.y.c.b.example.org"), Some(("example.org", &2)));
        assert_eq!(k.find("org"), None);
        assert_eq!(labels("a\\.b.c"), 2);
        assert_eq!(next_parent("com"), None);
        assert_eq!(next_parent("a.com"), Some("com"));
        assert_eq!(next_parent("a."), None);
    }
}
