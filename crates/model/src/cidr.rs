//! Address blocks (`10.0.0.0/8`, `fd00::/8`): the one CIDR type of dnsight (resolver ACLs and
//! groups, engine inventory groups and intel IP feeds, API client lists). No I/O.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 network. The address is stored masked (`10.1.2.3/16` is `10.1.0.0/16`).
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) match IPv4 blocks. Serialised as its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::/n` or a bare address (a host route). Errors say what is wrong.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a.trim(), Some(l.trim())),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block (e.g. 10.0.0.0/8)"))?;
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

    /// The block of `len` leading bits of `addr` (clamped to the family's width).
    pub fn new(addr: IpAddr, len: u8) -> Cidr {
        match addr {
            IpAddr::V4(a) => {
                let len = len.min(32);
                Cidr {
                    addr: IpAddr::V4(Ipv4Addr::from(mask32(u32::from(a), len))),
                    len,
                }
            }
            IpAddr::V6(a) => {
                let len = len.min(128);
                Cidr {
                    addr: IpAddr::V6(Ipv6Addr::from(mask128(u128::from(a), len))),
                    len,
                }
            }
        }
    }

    /// A single address (`/32` or `/128`); mapped IPv6 becomes IPv4.
    pub fn host(ip: IpAddr) -> Cidr {
        let ip = canonical(ip);
        Cidr::new(ip, if ip.is_ipv4() { 32 } else { 128 })
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }
    /// The (masked) network address.
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

    /// True when every address of `other` is in `self`.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.len >= self.len && self.contains_canonical(other.addr)
    }

    /// True when the two blocks share at least one address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.covers(other) || other.covers(self)
    }
}

/// Keeps the leading `len` bits (`len` ≤ 32).
pub fn mask32(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - len.min(32) as u32))
    }
}

/// Keeps the leading `len` bits (`len` ≤ 128).
pub fn mask128(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - len.min(128) as u32))
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

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        Cidr::parse(s)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Cidr::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_contains_display() {
        let c = Cidr::parse("10.1.2.3/16").unwrap();
        assert_eq!(c.to_string(), "10.1.0.0/16");
        assert!(c.contains("10.1.200.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.1".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0..=32"));
        assert!(Cidr::parse("nonsense").is_err());
        assert!(Cidr::parse("10.0.0.0/").is_err());
        assert!(Cidr::parse("10.0.0.0/-1").is_err());
        assert!("fd00::/129".parse::<Cidr>().is_err());
        let c6: Cidr = " fd00::/8 ".parse().unwrap();
        assert!(c6.contains("fd12::1".parse().unwrap()));
        assert!(!c6.contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(!Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("::2".parse().unwrap()));
        assert_eq!(Cidr::parse("1.2.3.4").unwrap().to_string(), "1.2.3.4/32");
        assert_eq!(
            Cidr::host("::ffff:1.2.3.4".parse().unwrap()).to_string(),
            "1.2.3.4/32"
        );
        let wide = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(wide.covers(&c) && !c.covers(&wide) && c.overlaps(&wide));
        assert!(!c.overlaps(&Cidr::parse("10.2.0.0/16").unwrap()));
    }

    #[test]
    fn serde_as_text() {
        let c = Cidr::parse("192.168.0.0/16").unwrap();
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(j, "\"192.168.0.0/16\"");
        assert_eq!(serde_json::from_str::<Cidr>(&j).unwrap(), c);
        assert!(serde_json::from_str::<Cidr>("\"10/8\"").is_err());
    }
}
