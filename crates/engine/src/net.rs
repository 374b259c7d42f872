//! Address helpers: CIDR ranges, private/special ranges (never sent to GeoIP), and reverse
//! (`in-addr.arpa` / `ip6.arpa`) names decoded back to addresses.
//!
//! [`Cidr`] itself is the model's ([`dnsight_model::Cidr`], shared with the resolver); this
//! module adds the special ranges, reverse names and a prefix-bucketed set for intel IP lists.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use dnsight_model::cidr::{canonical, mask128, mask32};
pub use dnsight_model::Cidr;

/// Private, loopback, link-local, CGNAT, documentation, multicast, reserved and other special
/// ranges: never looked up in GeoIP (public databases map some of them to countries).
pub fn is_special(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_unspecified()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 CGNAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15 benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64
                || s[0] == 0x2002 // 6to4
                || (s[0] == 0x2001 && s[1] == 0) // Teredo
        }
    }
}

/// Decodes `d.c.b.a.in-addr.arpa` (four labels) and nibble-form `ip6.arpa` names to the address
/// they ask about. Partial reverse names (e.g. `10.in-addr.arpa`) give None.
pub fn reverse_name_addr(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut oct = [0u8; 4];
        let mut n = 0;
        for l in rest.split('.') {
            if n == 4 {
                return None;
            }
            oct[3 - n] = l.parse().ok()?;
            n += 1;
        }
        return (n == 4).then(|| IpAddr::V4(Ipv4Addr::from(oct)));
    }
    if let Some(rest) = name.strip_suffix(".ip6.arpa") {
        let mut v: u128 = 0;
        let mut n = 0;
        for l in rest.split('.').rev() {
            if l.len() != 1 || n == 32 {
                return None;
            }
            v = (v << 4) | u128::from(l.chars().next()?.to_digit(16)? as u8);
            n += 1;
        }
        return (n == 32).then(|| IpAddr::V6(Ipv6Addr::from(v)));
    }
    None
}

/// True for names under `in-addr.arpa` or `ip6.arpa`.
pub fn is_reverse_name(name: &str) -> bool {
    name.ends_with("in-addr.arpa") || name.ends_with("ip6.arpa")
}

/// A set of CIDRs bucketed by prefix length: a lookup is one hash probe per distinct length.
#[derive(Clone, Debug, Default)]
pub struct CidrSet<V> {
    v4: Vec<(u8, foldhash::HashMap<u32, V>)>,
    v6: Vec<(u8, foldhash::HashMap<u128, V>)>,
    len: usize,
}

impl<V: Clone> CidrSet<V> {
    pub fn new() -> Self {
        CidrSet {
            v4: Vec::new(),
            v6: Vec::new(),
            len: 0,
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn insert(&mut self, c: Cidr, v: V) {
        self.len += 1;
        match c.addr() {
            IpAddr::V4(a) => {
                let i = match self.v4.iter().position(|(l, _)| *l == c.prefix_len()) {
                    Some(i) => i,
                    None => {
                        self.v4.push((c.prefix_len(), Default::default()));
                        self.v4.sort_by_key(|(l, _)| std::cmp::Reverse(*l));
                        self.v4
                            .iter()
                            .position(|(l, _)| *l == c.prefix_len())
                            .unwrap_or(0)
                    }
                };
                self.v4[i].1.insert(u32::from(a), v);
            }
            IpAddr::V6(a) => {
                let i = match self.v6.iter().position(|(l, _)| *l == c.prefix_len()) {
                    Some(i) => i,
                    None => {
                        self.v6.push((c.prefix_len(), Default::default()));
                        self.v6.sort_by_key(|(l, _)| std::cmp::Reverse(*l));
                        self.v6
                            .iter()
                            .position(|(l, _)| *l == c.prefix_len())
                            .unwrap_or(0)
                    }
                };
                self.v6[i].1.insert(u128::from(a), v);
            }
        }
    }
    /// The value of the most specific network containing `ip`.
    pub fn get(&self, ip: IpAddr) -> Option<(&V, Cidr)> {
        match canonical(ip) {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                for (l, m) in &self.v4 {
                    let k = mask32(a, *l);
                    if let Some(v) = m.get(&k) {
                        return Some((v, Cidr::new(IpAddr::V4(k.into()), *l)));
                    }
                }
                None
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                for (l, m) in &self.v6 {
                    let k = mask128(a, *l);
                    if let Some(v) = m.get(&k) {
                        return Some((v, Cidr::new(IpAddr::V6(k.into()), *l)));
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn cidr_contains_and_errors() {
        let c = Cidr::parse("10.1.2.3/16").unwrap();
        assert_eq!(c.to_string(), "10.1.0.0/16");
        assert!(c.contains("10.1.200.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.1".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0..=32"));
        assert!(Cidr::parse("nonsense").is_err());
        let c6 = Cidr::parse("fd00::/8").unwrap();
        assert!(c6.contains("fd12::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
    #[test]
    fn special_ranges() {
        for s in [
            "10.0.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "100.64.0.1",
            "fe80::1",
            "fd00::1",
            "::1",
            "169.254.1.1",
            "::ffff:192.168.1.1",
        ] {
            assert!(is_special(s.parse().unwrap()), "{s}");
        }
        for s in ["8.8.8.8", "2a00:1450::1", "93.184.216.34"] {
            assert!(!is_special(s.parse().unwrap()), "{s}");
        }
    }
    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name_addr("5.0.0.10.in-addr.arpa"),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(reverse_name_addr("0.10.in-addr.arpa"), None);
        assert_eq!(reverse_name_addr("x.0.0.10.in-addr.arpa"), None);
        assert_eq!(reverse_name_addr("1.2.3.4.5.in-addr.arpa"), None);
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
        assert_eq!(reverse_name_addr(v6), Some("fd00::1".parse().unwrap()));
    }
    #[test]
    fn cidr_set_most_specific() {
        let mut s = CidrSet::new();
        s.insert(Cidr::parse("10.0.0.0/8").unwrap(), "wide");
        s.insert(Cidr::parse("10.1.0.0/16").unwrap(), "narrow");
        s.insert(Cidr::parse("2001:db8::/32").unwrap(), "v6");
        assert_eq!(s.get("10.1.2.3".parse().unwrap()).unwrap().0, &"narrow");
        assert_eq!(s.get("10.2.2.3".parse().unwrap()).unwrap().0, &"wide");
        assert_eq!(s.get("2001:db8::5".parse().unwrap()).unwrap().0, &"v6");
        assert!(s.get("11.0.0.1".parse().unwrap()).is_none());
    }
}
