//! The one partition function: which partition (of `n`) a device's events belong to. Sensors
//! publish to the bus subject of this partition and the engine's workers own partitions by it,
//! so it must be the same everywhere and stable across processes, machines and versions: FNV-1a
//! (64 bit) over the address's 16-byte form (IPv4 mapped into IPv6), modulo `n`.

use std::net::IpAddr;

/// Partitions when nothing else is configured.
pub const DEFAULT_PARTITIONS: u32 = 64;

/// The partition (`0..n`) of a device address; `n == 0` is taken as 1.
pub fn partition(client: IpAddr, n: u32) -> u32 {
    let key = match crate::canonical(client) {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(n.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_spread_and_mapped_v4_is_v4() {
        // fixed values: a change here re-partitions every deployment
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let p = partition(a, 64);
        assert_eq!(p, partition("::ffff:10.0.0.1".parse().unwrap(), 64));
        assert_eq!(partition(a, 0), 0);
        assert_eq!(partition(a, 1), 0);
        let mut seen = [0u32; 64];
        for i in 0..6400u32 {
            let ip = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            seen[partition(ip, 64) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (50..=150).contains(&c)), "{seen:?}");
        assert_eq!(p, partition(a, 64), "deterministic");
        assert_eq!(partition(a, 64), FIXED_10_0_0_1);
    }
    const FIXED_10_0_0_1: u32 = 30;
}
