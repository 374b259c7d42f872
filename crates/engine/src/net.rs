//! Address helpers: CIDR ranges, private/special ranges (never sent to GeoIP), and reverse
//! (`in-addr.arpa` / `ip6.arpa`) names decoded back to addresses.
//!
//! Written by hand instead of pulling an IP-network crate: the engine needs only containment
//! tests, parsing with clear errors, and a prefix-bucketed set for intel IP lists.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 network, e.g. `10.0.0.0/8` or `fd00::/8`. The address is stored masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::/n` or a bare address (a host route).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR (e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(Cidr::new(addr, len))
    }
    pub fn new(addr: IpAddr, len: u8) -> Cidr {
        let addr = match addr {
            IpAddr::V4(a) => {
                let len = len.min(32);
                IpAddr::V4(Ipv4Addr::from(mask32(u32::from(a), len)))
            }
            IpAddr::V6(a) => {
                let len = len.min(128);
                IpAddr::V6(Ipv6Addr::from(mask128(u128::from(a), len)))
            }
        };
        Cidr { addr, len }
    }
    pub fn prefix_len(&self) -> u8 {
        self.len
    }
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.contains_canonical(canonical(ip))
    }
    /// [`contains`](Self::contains) for an address already passed through [`canonical`].
    pub fn contains_canonical(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => mask32(u32::from(a), self.len) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => mask128(u128::from(a), self.len) == u128::from(n),
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask32(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - len as u32))
    }
}
fn mask128(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - len as u32))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) become plain IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

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
        match c.addr {
            IpAddr::V4(a) => {
                let i = match self.v4.iter().position(|(l, _)| *l == c.len) {
                    Some(i) => i,
                    None => {
                        self.v4.push((c.len, Default::default()));
                        self.v4.sort_by_key(|(l, _)| std::cmp::Reverse(*l));
                        self.v4.iter().position(|(l, _)| *l == c.len).unwrap_or(0)
                    }
                };
                self.v4[i].1.insert(u32::from(a), v);
            }
            IpAddr::V6(a) => {
                let i = match self.v6.iter().position(|(l, _)| *l == c.len) {
                    Some(i) => i,
                    None => {
                        self.v6.push((c.len, Default::default()));
                        self.v6.sort_by_key(|(l, _)| std::cmp::Reverse(*l));
                        self.v6.iter().position(|(l, _)| *l == c.len).unwrap_or(0)
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
                        return Some((
                            v,
                            Cidr {
                                addr: IpAddr::V4(k.into()),
                                len: *l,
                            },
                        ));
                    }
                }
                None
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                for (l, m) in &self.v6 {
                    let k = mask128(a, *l);
                    if let Some(v) = m.get(&k) {
                        return Some((
                            v,
                            Cidr {
                                addr: IpAddr::V6(k.into()),
                                len: *l,
                            },
                        ));
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
