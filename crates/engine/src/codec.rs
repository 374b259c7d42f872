//! The compact binary encoding of persisted state: little-endian integers and floats,
//! length-prefixed strings, addresses as 16 bytes (IPv4 mapped into IPv6).
//!
//! Decoding never panics: [`Rd`] returns `None` on short or malformed input, and callers count
//! the record as corrupt and skip it.

use std::net::{IpAddr, Ipv6Addr};

/// Appends values to a byte buffer.
pub trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_f32(&mut self, v: f32);
    fn put_f64(&mut self, v: f64);
    /// A length (u32) followed by the bytes.
    fn put_str(&mut self, s: &str);
    fn put_ip(&mut self, ip: IpAddr);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_f32(&mut self, v: f32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_f64(&mut self, v: f64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_str(&mut self, s: &str) {
        let n = s.len().min(u32::MAX as usize);
        self.put_u32(n as u32);
        self.extend_from_slice(&s.as_bytes()[..n]);
    }
    fn put_ip(&mut self, ip: IpAddr) {
        self.extend_from_slice(&ip_key(ip));
    }
}

/// 16-byte form of an address (IPv4 mapped into IPv6).
pub fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The address of a 16-byte key, canonical (mapped IPv4 back to IPv4).
pub fn key_ip(k: &[u8]) -> Option<IpAddr> {
    let b: [u8; 16] = k.try_into().ok()?;
    Some(crate::net::canonical(IpAddr::V6(Ipv6Addr::from(b))))
}

/// A cursor that fails (None) instead of panicking on short input.
pub struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    pub fn new(b: &'a [u8]) -> Rd<'a> {
        Rd { b }
    }
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn arr<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.arr().map(u16::from_le_bytes)
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.arr().map(u32::from_le_bytes)
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.arr().map(u64::from_le_bytes)
    }
    pub fn f32(&mut self) -> Option<f32> {
        self.u32().map(f32::from_bits)
    }
    pub fn f64(&mut self) -> Option<f64> {
        self.u64().map(f64::from_bits)
    }
    pub fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    pub fn ip(&mut self) -> Option<IpAddr> {
        key_ip(self.take(16)?)
    }
    /// A count of records that each take at least `min_bytes`: a count the remaining input
    /// cannot hold is malformed (so a hostile count never drives a huge allocation or loop).
    pub fn count(&mut self, min_bytes: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.saturating_mul(min_bytes.max(1)) <= self.b.len()).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_short_input() {
        let mut b = Vec::new();
        b.put_u8(7);
        b.put_u16(300);
        b.put_u32(70_000);
        b.put_u64(1 << 40);
        b.put_f64(0.25);
        b.put_str("a\\000b.example");
        b.put_ip("10.0.0.5".parse().unwrap());
        b.put_ip("2001:db8::1".parse().unwrap());
        let mut r = Rd::new(&b);
        assert_eq!(r.u8(), Some(7));
        assert_eq!(r.u16(), Some(300));
        assert_eq!(r.u32(), Some(70_000));
        assert_eq!(r.u64(), Some(1 << 40));
        assert_eq!(r.f64(), Some(0.25));
        assert_eq!(r.str(), Some("a\\000b.example"));
        assert_eq!(r.ip(), Some("10.0.0.5".parse().unwrap()));
        assert_eq!(r.ip(), Some("2001:db8::1".parse().unwrap()));
        assert!(r.is_empty());
        for cut in 0..b.len() {
            let mut r = Rd::new(&b[..cut]);
            let all = (|| {
                r.u8()?;
                r.u16()?;
                r.u32()?;
                r.u64()?;
                r.f64()?;
                r.str()?;
                r.ip()?;
                r.ip()
            })();
            assert!(all.is_none(), "cut at {cut}");
        }
        // a count larger than the input can hold is refused
        let mut c = Vec::new();
        c.put_u32(u32::MAX);
        c.put_u32(1);
        assert_eq!(Rd::new(&c).count(8), None);
    }
}
