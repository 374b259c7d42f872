//! Where simulated answers live: pools of public addresses per country.
//!
//! With a MaxMind-format database (`--geoip`), the pools are built from the networks the
//! database itself assigns to each country, so the engine (reading the same database) sees the
//! countries the simulator intended. Without one, fixed address blocks per country are used; the
//! country labels are then only the simulator's intent (the engine's country detector is off
//! without a database anyway). Private and special ranges never enter a pool.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// Countries the simulator hosts destinations in: common hosting countries first, then the
/// "unusual" ones used by scenarios (a server reaching a new country).
pub const COUNTRIES: &[&str] = &[
    "US", "DE", "NL", "IE", "GB", "FR", "SE", "JP", "SG", "CA", "AU", "CH", "RU", "CN", "IR", "VN",
    "BR", "UA", "RO", "KR",
];

#[derive(Clone, Debug, Default)]
struct Pool {
    v4: Vec<(u32, u8)>,
    v6: Vec<(u128, u8)>,
}

/// Address pools per country.
#[derive(Clone, Debug)]
pub struct GeoPools {
    pools: BTreeMap<&'static str, Pool>,
    /// True when built from a database (countries are what the database says).
    pub from_mmdb: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot open GeoIP database {path}: {msg}")]
    Open { path: String, msg: String },
}

fn special_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || a.is_unspecified()
        || o[0] == 0
        || o[0] >= 224
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
}

fn special_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    // only global unicast 2000::/3, minus documentation 2001:db8::/32 and 6to4/teredo oddities
    (s[0] & 0xe000) != 0x2000
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || s[0] == 0x2002
        || (s[0] == 0x2001 && s[1] == 0)
}

impl GeoPools {
    /// Fixed blocks per country (used without a database). The blocks are real allocations of
    /// hosting providers in those countries as of 2026, but no database confirms them here.
    pub fn builtin() -> GeoPools {
        let table: &[(&str, &[&str], &[&str])] = &[
            (
                "US",
                &[
                    "104.16.0.0/13",
                    "13.32.0.0/15",
                    "142.250.0.0/15",
                    "20.36.0.0/14",
                    "52.0.0.0/11",
                ],
                &["2606:4700::/32", "2600:1f00::/24", "2607:f8b0::/32"],
            ),
            (
                "DE",
                &["88.198.0.0/16", "78.46.0.0/15", "3.120.0.0/14"],
                &["2a01:4f8::/32"],
            ),
            (
                "NL",
                &["185.107.56.0/22", "37.97.128.0/17", "20.50.0.0/18"],
                &["2a05:d018::/32"],
            ),
            (
                "IE",
                &["52.208.0.0/13", "34.240.0.0/13"],
                &["2a05:d018:1000::/36"],
            ),
            (
                "GB",
                &["212.58.224.0/19", "51.140.0.0/14"],
                &["2a00:1098::/32"],
            ),
            (
                "FR",
                &["51.15.0.0/16", "163.172.0.0/16"],
                &["2001:bc8::/32"],
            ),
            ("SE", &["194.71.0.0/16"], &["2a00:800::/32"]),
            (
                "JP",
                &["133.242.0.0/16", "52.192.0.0/14"],
                &["2001:e40::/32"],
            ),
            (
                "SG",
                &["52.76.0.0/15", "13.212.0.0/14"],
                &["2406:da18::/32"],
            ),
            (
                "CA",
                &["99.79.0.0/16", "35.182.0.0/15"],
                &["2605:8d80::/32"],
            ),
            (
                "AU",
                &["13.236.0.0/14", "1.128.0.0/11"],
                &["2406:da1c::/32"],
            ),
            ("CH", &["194.209.0.0/16"], &["2a02:aa8::/32"]),
            (
                "RU",
                &["5.255.192.0/18", "77.88.0.0/18", "95.108.128.0/17"],
                &["2a02:6b8::/32"],
            ),
            (
                "CN",
                &["101.226.0.0/15", "180.163.0.0/16", "220.181.0.0/16"],
                &["240e::/20"],
            ),
            (
                "IR",
                &["2.176.0.0/12", "5.200.64.0/18"],
                &["2a01:5ec0::/32"],
            ),
            ("VN", &["14.160.0.0/11"], &["2402:800::/32"]),
            ("BR", &["177.0.0.0/12", "200.147.0.0/16"], &["2804::/16"]),
            ("UA", &["91.196.0.0/16"], &["2a02:2378::/32"]),
            ("RO", &["86.120.0.0/14"], &["2a02:2f00::/24"]),
            (
                "KR",
                &["211.234.0.0/16", "121.128.0.0/10"],
                &["2001:2d8::/32"],
            ),
        ];
        let mut pools = BTreeMap::new();
        for (c, v4, v6) in table {
            let mut p = Pool::default();
            for n in *v4 {
                let (a, l) = n.split_once('/').unwrap_or((n, "24"));
                if let (Ok(a), Ok(l)) = (a.parse::<Ipv4Addr>(), l.parse::<u8>()) {
                    p.v4.push((u32::from(a), l));
                }
            }
            for n in *v6 {
                let (a, l) = n.split_once('/').unwrap_or((n, "48"));
                if let (Ok(a), Ok(l)) = (a.parse::<Ipv6Addr>(), l.parse::<u8>()) {
                    p.v6.push((u128::from(a), l));
                }
            }
            let key = COUNTRIES.iter().find(|k| *k == c).copied().unwrap_or("US");
            pools.insert(key, p);
        }
        GeoPools {
            pools,
            from_mmdb: false,
        }
    }

    /// Builds pools from every network the database assigns to one of [`COUNTRIES`]. Works with
    /// databases whose records have `country_code` (ip-location-db) or `country.iso_code`
    /// (MaxMind GeoIP2/GeoLite2).
    pub fn from_mmdb(path: &Path) -> Result<GeoPools, GeoError> {
        let err = |m: String| GeoError::Open {
            path: path.display().to_string(),
            msg: m,
        };
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| err(e.to_string()))?;
        let mut pools: BTreeMap<&'static str, Pool> = BTreeMap::new();
        let iter = reader
            .networks(Default::default())
            .map_err(|e| err(e.to_string()))?;
        for item in iter {
            let Ok(item) = item else { continue };
            let Ok(net) = item.network() else { continue };
            let cc: Option<&str> = item
                .decode_path(&maxminddb::path!["country_code"])
                .ok()
                .flatten()
                .or_else(|| {
                    item.decode_path(&maxminddb::path!["country", "iso_code"])
                        .ok()
                        .flatten()
                });
            let Some(cc) = cc else { continue };
            let Some(key) = COUNTRIES.iter().find(|k| **k == cc).copied() else {
                continue;
            };
            let pool = pools.entry(key).or_default();
            match net.network() {
                IpAddr::V4(a) if !special_v4(a) && net.prefix() >= 8 => {
                    pool.v4.push((u32::from(a), net.prefix()))
                }
                IpAddr::V6(a) if !special_v6(a) && net.prefix() >= 16 && net.prefix() <= 64 => {
                    pool.v6.push((u128::from(a), net.prefix()))
                }
                _ => {}
            }
        }
        pools.retain(|_, p| !p.v4.is_empty());
        if pools.is_empty() {
            return Err(err(
                "no networks with a country_code for any simulated country".into(),
            ));
        }
        Ok(GeoPools {
            pools,
            from_mmdb: true,
        })
    }

    pub fn has(&self, country: &str) -> bool {
        self.pools.contains_key(country)
    }

    /// A deterministic public address in `country` for `key` (same key, same address). Falls
    /// back to the US pool, then any pool, when the country has none.
    pub fn addr(&self, country: &str, key: u64, v6: bool) -> IpAddr {
        let pool = self
            .pools
            .get(country)
            .or_else(|| self.pools.get("US"))
            .or_else(|| self.pools.values().next());
        let Some(pool) = pool else {
            return IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        };
        let h = crate::rng::mix(key, 0x9e37_79b9);
        if v6 && !pool.v6.is_empty() {
            let (base, len) = pool.v6[(h % pool.v6.len() as u64) as usize];
            let host_bits = 128 - len as u32;
            let r = crate::rng::mix(h, 7) as u128 | ((crate::rng::mix(h, 8) as u128) << 64);
            let mask = if host_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            let a = (base & !mask) | (r & mask) | 1;
            return IpAddr::V6(Ipv6Addr::from(a));
        }
        let (base, len) = pool.v4[(h % pool.v4.len() as u64) as usize];
        let host_bits = 32 - len.min(32) as u32;
        let mask = if host_bits >= 32 {
            u32::MAX
        } else {
            (1u32 << host_bits) - 1
        };
        let mut a = (base & !mask) | ((crate::rng::mix(h, 3) as u32) & mask);
        // avoid network and broadcast-looking last octets, without leaving the network (P2: a
        // fixed .10 escaped networks smaller than /24 and landed in another country)
        if a & 0xff == 0 || a & 0xff == 255 {
            a = if host_bits > 8 {
                (a & !0xff) | 10
            } else {
                (base & !mask) | (mask >> 1).max(1).min(mask)
            };
        }
        if special_v4(Ipv4Addr::from(a)) {
            a = base | 1;
        }
        IpAddr::V4(Ipv4Addr::from(a))
    }
}
