//! The site's time zone: UTC event time → local wall-clock seconds for hour-of-week profiles.
//!
//! PRODUCT.md: "hour-of-week profiles follow the site's configured time zone". An office in
//! Berlin starts work at 08:00 local time all year, so its profile slots must follow daylight
//! saving: a fixed offset would shift every slot by an hour for half of the year and make the
//! traffic-change detector compare Monday 08:00 with Monday 07:00.
//!
//! [`SiteTz`] accepts `UTC`, a fixed offset (`+01:00`, `-05:30`, `+0530`, `+1`) or an IANA name
//! (`Europe/Berlin`, `America/New_York`, any case). Names are looked up in the host's tz
//! database (`/usr/share/zoneinfo`, kept current by the OS) and, when the host has none or lacks
//! the name, in the copy of the IANA database embedded in the binary (jiff's
//! `tzdb-bundle-always`), so a fresh Debian without `tzdata` works the same.
//!
//! The hot path is cheap: the engine calls [`SiteTz::local_secs`] once per event, and it is a
//! range check plus an add. The offset is constant between two transitions of the zone, so the
//! current transition range `[lo, hi)` and its offset are cached; only an event outside it
//! (twice a year for a DST zone, or on out-of-order input) does a tz lookup.
//!
//! Local time is "UTC seconds + the offset in force at that instant". Around the spring
//! transition one local hour does not exist (no events land in it); around the autumn one the
//! repeated local hour receives the events of both real hours. That is what a person at the site
//! sees on the wall clock, which is what the profiles are about.

use compact_str::CompactString;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::Timestamp;
use std::sync::OnceLock;

/// An invalid `timezone` setting; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {given:?}: use an IANA name like \"Europe/Berlin\" or \"America/New_York\", \"UTC\", or a fixed offset like \"+01:00\"")]
pub struct TzError {
    pub given: String,
}

#[derive(Clone, Debug)]
enum Kind {
    /// UTC or a fixed offset: the cache covers all time.
    Fixed,
    /// An IANA zone with transitions.
    Zone(TimeZone),
}

/// The site time zone with a cached transition range. Cloning is cheap (the zone is shared).
#[derive(Clone, Debug)]
pub struct SiteTz {
    name: CompactString,
    kind: Kind,
    /// UTC seconds range `[lo, hi)` over which `off` (seconds east of UTC) holds.
    lo: i64,
    hi: i64,
    off: i64,
}

impl Default for SiteTz {
    fn default() -> Self {
        SiteTz::utc()
    }
}

impl PartialEq for SiteTz {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// The embedded IANA database (opened once).
fn bundled() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

impl SiteTz {
    pub fn utc() -> SiteTz {
        SiteTz::fixed(0)
    }

    /// A fixed offset east of UTC, in minutes (clamped to ±18 hours).
    pub fn fixed(minutes: i32) -> SiteTz {
        let m = minutes.clamp(-18 * 60, 18 * 60);
        let name = if m == 0 {
            CompactString::const_new("UTC")
        } else {
            let a = m.unsigned_abs();
            compact_str::format_compact!(
                "{}{:02}:{:02}",
                if m < 0 { '-' } else { '+' },
                a / 60,
                a % 60
            )
        };
        SiteTz {
            name,
            kind: Kind::Fixed,
            lo: i64::MIN,
            hi: i64::MAX,
            off: i64::from(m) * 60,
        }
    }

    /// Parses `UTC`/`Z`, a fixed offset (`+01:00`, `-0530`, `+1`) or an IANA zone name.
    pub fn parse(s: &str) -> Result<SiteTz, TzError> {
        let t = s.trim();
        let bad = || TzError {
            given: s.to_string(),
        };
        if t.is_empty() {
            return Err(bad());
        }
        if t.eq_ignore_ascii_case("utc") || t == "Z" {
            return Ok(SiteTz::utc());
        }
        if t.starts_with(['+', '-']) {
            return parse_offset(t).map(SiteTz::fixed).ok_or_else(bad);
        }
        // Only plausible zone names reach the databases (no paths, no control bytes).
        if t.len() > 64
            || t.starts_with('/')
            || t.contains("..")
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b))
        {
            return Err(bad());
        }
        let tz = jiff::tz::db()
            .get(t)
            .or_else(|_| bundled().get(t))
            .map_err(|_| bad())?;
        let name = tz.iana_name().unwrap_or(t).into();
        let mut z = SiteTz {
            name,
            kind: Kind::Zone(tz),
            lo: 0,
            hi: 0,
            off: 0,
        };
        z.refill(0);
        Ok(z)
    }

    /// The zone as configured, canonical spelling: `UTC`, `+01:00` or `Europe/Berlin`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for UTC and fixed offsets (no daylight saving).
    pub fn is_fixed(&self) -> bool {
        matches!(self.kind, Kind::Fixed)
    }

    /// Local wall-clock seconds (seconds since 1970-01-01T00:00 local) for a UTC time in
    /// seconds. Cheap: a range check and an add, except when `utc` leaves the cached
    /// transition range.
    #[inline]
    pub fn local_secs(&mut self, utc: i64) -> i64 {
        if utc < self.lo || utc >= self.hi {
            self.refill(utc);
        }
        utc.saturating_add(self.off)
    }

    /// The offset east of UTC in seconds at `utc` (no caching; for reports and tests).
    pub fn offset_secs_at(&self, utc: i64) -> i64 {
        match &self.kind {
            Kind::Fixed => self.off,
            Kind::Zone(tz) => match Timestamp::from_second(utc) {
                Ok(ts) => i64::from(tz.to_offset(ts).seconds()),
                Err(_) => self.off,
            },
        }
    }

    #[cold]
    fn refill(&mut self, utc: i64) {
        let Kind::Zone(tz) = &self.kind else {
            return;
        };
        let Ok(ts) = Timestamp::from_second(utc) else {
            // Outside jiff's range (far beyond any event the engine accepts): keep the
            // previous offset for this instant only.
            self.lo = utc;
            self.hi = utc.saturating_add(1);
            return;
        };
        self.off = i64::from(tz.to_offset(ts).seconds());
        // `following` yields transitions strictly after `ts`; `preceding` strictly before
        // its argument, so asking before `ts + 1s` finds a transition exactly at `ts` too.
        self.hi = tz
            .following(ts)
            .next()
            .map_or(i64::MAX, |t| t.timestamp().as_second());
        self.lo = Timestamp::from_second(utc.saturating_add(1))
            .ok()
            .and_then(|after| tz.preceding(after).next())
            .map_or(i64::MIN, |t| t.timestamp().as_second());
        // Defensive: the range must contain `utc`, whatever the iterators returned.
        if !(self.lo <= utc && utc < self.hi) {
            self.lo = utc;
            self.hi = utc.saturating_add(1);
        }
    }
}

/// `+01:00`, `-05:30`, `+0530`, `+1`, `-12` → minutes east of UTC (at most ±14:00).
fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    if h.is_empty() || h.len() > 2 || m.is_empty() || m.len() > 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60 && (h < 14 || m == 0)).then_some(sign * (h * 60 + m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    /// Local hour of day (0..24) as the engine derives it.
    fn local_hour(z: &mut SiteTz, t: i64) -> i64 {
        z.local_secs(t).div_euclid(3600).rem_euclid(24)
    }

    #[test]
    fn berlin_follows_daylight_saving_2026() {
        let mut z = SiteTz::parse("Europe/Berlin").unwrap();
        assert_eq!(z.name(), "Europe/Berlin");
        assert!(!z.is_fixed());
        // winter: UTC+1
        assert_eq!(local_hour(&mut z, utc("2026-03-29T00:59:59Z")), 1);
        // 2026-03-29 01:00Z: clocks jump from 02:00 to 03:00 local (CEST, UTC+2)
        assert_eq!(local_hour(&mut z, utc("2026-03-29T01:00:00Z")), 3);
        assert_eq!(local_hour(&mut z, utc("2026-07-01T06:30:00Z")), 8);
        // 2026-10-25 01:00Z: clocks go back from 03:00 to 02:00 local; 02:xx happens twice
        assert_eq!(local_hour(&mut z, utc("2026-10-25T00:30:00Z")), 2);
        assert_eq!(local_hour(&mut z, utc("2026-10-25T00:59:59Z")), 2);
        assert_eq!(local_hour(&mut z, utc("2026-10-25T01:00:00Z")), 2);
        assert_eq!(local_hour(&mut z, utc("2026-10-25T02:00:00Z")), 3);
        assert_eq!(local_hour(&mut z, utc("2026-12-01T07:00:00Z")), 8);
        // back in time (out-of-order input) refills the cache correctly
        assert_eq!(local_hour(&mut z, utc("2026-03-29T00:30:00Z")), 1);
        assert_eq!(z.offset_secs_at(utc("2026-08-01T00:00:00Z")), 7200);
    }

    #[test]
    fn new_york_and_case_insensitive_names() {
        let mut z = SiteTz::parse("america/new_york").unwrap();
        assert_eq!(z.name(), "America/New_York");
        // 2026-03-08 07:00Z: 02:00 EST → 03:00 EDT
        assert_eq!(local_hour(&mut z, utc("2026-03-08T06:59:00Z")), 1);
        assert_eq!(local_hour(&mut z, utc("2026-03-08T07:00:00Z")), 3);
        // 2026-11-01 06:00Z: 02:00 EDT → 01:00 EST
        assert_eq!(local_hour(&mut z, utc("2026-11-01T05:59:00Z")), 1);
        assert_eq!(local_hour(&mut z, utc("2026-11-01T06:00:00Z")), 1);
        assert_eq!(local_hour(&mut z, utc("2026-11-01T07:00:00Z")), 2);
    }

    #[test]
    fn cached_offsets_match_direct_lookups_every_quarter_hour() {
        for name in [
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe", // half-hour DST shift
            "Asia/Kolkata",
            "Pacific/Chatham",
        ] {
            let mut z = SiteTz::parse(name).unwrap();
            let start = utc("2025-12-01T00:00:00Z");
            let end = utc("2027-02-01T00:00:00Z");
            let mut t = start;
            while t < end {
                assert_eq!(z.local_secs(t), t + z.offset_secs_at(t), "{name} at {t}");
                assert_eq!(z.local_secs(t - 1), t - 1 + z.offset_secs_at(t - 1));
                t += 900;
            }
        }
    }

    #[test]
    fn fixed_offsets_still_work() {
        for (s, m, name) in [
            ("UTC", 0, "UTC"),
            ("utc", 0, "UTC"),
            ("Z", 0, "UTC"),
            ("+01:00", 60, "+01:00"),
            ("-05:30", -330, "-05:30"),
            ("+0530", 330, "+05:30"),
            ("+1", 60, "+01:00"),
            ("-12", -720, "-12:00"),
            ("+14:00", 840, "+14:00"),
        ] {
            let mut z = SiteTz::parse(s).unwrap();
            assert!(z.is_fixed(), "{s}");
            assert_eq!(z.name(), name, "{s}");
            let t = utc("2026-10-25T01:00:00Z");
            assert_eq!(z.local_secs(t), t + i64::from(m) * 60, "{s}");
        }
    }

    #[test]
    fn bad_names_are_errors_with_an_example() {
        for s in [
            "",
            "Mars/Olympus",
            "+25:00",
            "+14:30",
            "+01:60",
            "+",
            "-1:2:3",
            "../../etc/passwd",
            "/etc/localtime",
            "Europe/Berlin\0",
            "Europe/Berlín",
            "CET; rm",
        ] {
            let e = SiteTz::parse(s).unwrap_err().to_string();
            assert!(
                e.contains("Europe/Berlin") && e.contains("+01:00"),
                "{s:?}: {e}"
            );
        }
    }

    #[test]
    fn engine_hour_buckets_follow_the_site_zone() {
        use crate::{Engine, EngineConfig};
        use dnsight_model::{DnsEvent, Name, Ts};
        let mut e = Engine::new(EngineConfig {
            tz: SiteTz::parse("Europe/Berlin").unwrap(),
            ..EngineConfig::default()
        });
        let name = Name::parse("www.example.com").unwrap();
        let summer = utc("2026-07-01T06:30:00Z");
        let winter = utc("2026-12-01T07:30:00Z");
        for (i, t) in [summer, winter].into_iter().enumerate() {
            let ip = format!("10.0.0.{}", i + 1).parse().unwrap();
            e.observe(&DnsEvent::new(Ts::from_secs(t), ip, name.clone(), 1));
        }
        let hours: Vec<i64> = e
            .baselines()
            .devices
            .iter()
            .map(|d| i64::from(d.cur.hour))
            .collect();
        // both are 08:30 on the Berlin wall clock: hour index of local time
        assert_eq!(hours, vec![(summer + 7200) / 3600, (winter + 3600) / 3600]);
        assert_eq!(hours.iter().map(|h| h % 24).collect::<Vec<_>>(), [8, 8]);
    }

    #[test]
    fn the_embedded_database_has_the_zones() {
        let db = bundled();
        for n in ["Europe/Berlin", "America/New_York", "Asia/Tokyo"] {
            assert!(db.get(n).is_ok(), "{n} not embedded");
        }
    }
}
