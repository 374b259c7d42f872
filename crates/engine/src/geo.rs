//! GeoIP: country code and ASN of answer addresses from MaxMind-format (mmdb) databases.
//!
//! Accepts MaxMind GeoIP2/GeoLite2 Country/City (`country.iso_code`), ip-location-db style
//! (`country_code`) and ASN databases (`autonomous_system_number`); one database may carry
//! both. Private and special ranges are never looked up (public databases map some of them to
//! countries). Lookups go through a small direct-mapped cache because answer addresses repeat
//! heavily; a corrupt record is a miss, never a panic.

use crate::net::{canonical, is_special};
use maxminddb::{PathElement, Reader};
use std::net::IpAddr;
use std::path::Path;

/// Two-letter country code, upper case (`*b"US"`).
pub type Country = [u8; 2];

/// What the databases say about one address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeoInfo {
    pub country: Option<Country>,
    pub asn: Option<u32>,
}

/// Loaded GeoIP databases (immutable, shared behind an `Arc`).
pub struct Geo {
    readers: Vec<Reader<Vec<u8>>>,
}

/// A per-engine lookup cache in front of a shared [`Geo`].
pub struct GeoCache {
    db: std::sync::Arc<Geo>,
    cache: Vec<Option<(IpAddr, GeoInfo)>>,
    pub lookups: u64,
    pub cache_hits: u64,
    pub errors: u64,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Geo({} databases)", self.readers.len())
    }
}

/// Direct-mapped cache slots (~32 bytes each, 1 MB): answer addresses follow a long-tailed
/// popularity, and 8192 slots missed on a quarter of the benchmark's lookups.
const CACHE: usize = 32_768;

impl Geo {
    /// Opens one or more mmdb files (e.g. a country and an ASN database).
    pub fn open(paths: &[&Path]) -> Result<Geo, String> {
        let mut readers = Vec::new();
        for p in paths {
            let bytes =
                std::fs::read(p).map_err(|e| format!("GeoIP database {}: {e}", p.display()))?;
            readers.push(Reader::from_source(bytes).map_err(|e| {
                format!(
                    "GeoIP database {}: not a valid mmdb file ({e})",
                    p.display()
                )
            })?);
        }
        Ok(Geo::from_readers(readers))
    }
    /// From in-memory database bytes (tests, embedded data).
    pub fn from_bytes(dbs: Vec<Vec<u8>>) -> Result<Geo, String> {
        let mut readers = Vec::new();
        for b in dbs {
            readers.push(
                Reader::from_source(b).map_err(|e| format!("not a valid mmdb database ({e})"))?,
            );
        }
        Ok(Geo::from_readers(readers))
    }
    fn from_readers(readers: Vec<Reader<Vec<u8>>>) -> Geo {
        Geo { readers }
    }
    /// Does any database carry ASNs? (Decided from the database type in the metadata.)
    pub fn has_asn(&self) -> bool {
        self.readers.iter().any(|r| {
            r.metadata()
                .database_type
                .to_ascii_lowercase()
                .contains("asn")
        })
    }
    /// Uncached lookup; private and special addresses give nothing. Returns (info, errors).
    pub fn lookup(&self, ip: IpAddr) -> (GeoInfo, u64) {
        let ip = canonical(ip);
        let mut errors = 0;
        let mut info = GeoInfo::default();
        if is_special(ip) {
            return (info, 0);
        }
        for r in &self.readers {
            let Ok(res) = r.lookup(ip) else {
                errors += 1;
                continue;
            };
            if !res.has_data() {
                continue;
            }
            if info.country.is_none() {
                // borrowed from the database: no allocation per lookup
                let c: Option<&str> = res
                    .decode_path(&[PathElement::Key("country"), PathElement::Key("iso_code")])
                    .ok()
                    .flatten()
                    .or_else(|| {
                        res.decode_path(&[PathElement::Key("country_code")])
                            .ok()
                            .flatten()
                    });
                info.country = c.and_then(code);
            }
            if info.asn.is_none() {
                info.asn = res
                    .decode_path(&[PathElement::Key("autonomous_system_number")])
                    .ok()
                    .flatten();
            }
        }
        (info, errors)
    }
}

impl GeoCache {
    pub fn new(db: std::sync::Arc<Geo>) -> GeoCache {
        GeoCache {
            db,
            cache: vec![None; CACHE],
            lookups: 0,
            cache_hits: 0,
            errors: 0,
        }
    }
    pub fn db(&self) -> &Geo {
        &self.db
    }
    /// Cached [`Geo::lookup`].
    pub fn lookup(&mut self, ip: IpAddr) -> GeoInfo {
        let ip = canonical(ip);
        if is_special(ip) {
            return GeoInfo::default();
        }
        let slot = slot_of(ip);
        if let Some((k, v)) = self.cache[slot] {
            if k == ip {
                self.cache_hits += 1;
                return v;
            }
        }
        self.lookups += 1;
        let (info, e) = self.db.lookup(ip);
        self.errors += e;
        self.cache[slot] = Some((ip, info));
        info
    }
}

fn slot_of(ip: IpAddr) -> usize {
    use std::hash::BuildHasher;
    (foldhash::fast::FixedState::with_seed(0x9e37).hash_one(ip) as usize) % CACHE
}

fn code(c: &str) -> Option<Country> {
    let b = c.as_bytes();
    (b.len() == 2 && b.iter().all(u8::is_ascii_alphabetic))
        .then(|| [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
}

/// `*b"US"` as text.
pub fn country_str(c: &Country) -> &str {
    std::str::from_utf8(c).unwrap_or("??")
}

#[cfg(test)]
mod tests {
    use super::*;
    const DIR: &str = "../../../shared/data/geo";

    #[test]
    fn maxmind_test_databases() {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
        if !base.exists() {
            eprintln!("skipped: {} not present (corpus part)", base.display());
            return;
        }
        let country = base.join("maxmind-test-data/GeoLite2-Country-Test.mmdb");
        let asn = base.join("maxmind-test-data/GeoLite2-ASN-Test.mmdb");
        let mut g = GeoCache::new(std::sync::Arc::new(Geo::open(&[&country, &asn]).unwrap()));
        assert!(g.db().has_asn());
        // Known answers from MaxMind's source-data: 2.125.160.216 is GB; 1.128.0.0 is AS1221.
        assert_eq!(
            g.lookup("2.125.160.216".parse().unwrap()).country,
            Some(*b"GB")
        );
        assert_eq!(g.lookup("1.128.0.0".parse().unwrap()).asn, Some(1221));
        assert_eq!(
            g.lookup("2.125.160.216".parse().unwrap()).country,
            Some(*b"GB")
        );
        assert_eq!(g.cache_hits, 1);
        // never looked up: private ranges
        assert_eq!(g.lookup("10.0.0.1".parse().unwrap()), GeoInfo::default());
        let loc = base.join("ip-location-db/geo-whois-asn-country.mmdb");
        let mut g = GeoCache::new(std::sync::Arc::new(Geo::open(&[&loc]).unwrap()));
        assert!(g.lookup("8.8.8.8".parse().unwrap()).country.is_some());
        assert_eq!(
            g.lookup("192.168.1.1".parse().unwrap()).country,
            None,
            "private range must not be looked up"
        );
        // corrupt databases: an error at open or misses, never a panic
        for e in std::fs::read_dir(base.join("maxmind-test-data/bad-data"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in walk(&e.path()) {
                if let Ok(g) = Geo::open(&[&f]) {
                    let _ = g.lookup("1.1.1.1".parse().unwrap());
                    let _ = g.lookup("2001:db8::1".parse().unwrap());
                }
            }
        }
    }

    fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
        if p.is_dir() {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .flat_map(|e| walk(&e.path()))
                .collect()
        } else if p.extension().is_some_and(|e| e == "mmdb") {
            vec![p.to_path_buf()]
        } else {
            vec![]
        }
    }

    #[test]
    fn not_a_database() {
        assert!(Geo::from_bytes(vec![b"garbage".to_vec()])
            .unwrap_err()
            .contains("mmdb"));
    }
}
