//! Request parameters: times, durations, alert filters (query string and JSON), with errors that
//! name the parameter and the accepted forms.

use dnsight_engine::{Kind, Severity, Status};
use dnsight_triage::{AlertFilter, Secs, Sort};
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};

/// Parses a duration: seconds (`3600`) or a number with a unit `s`, `m`, `h`, `d`, `w`
/// (`90s`, `30m`, `1h`, `7d`, `2w`); parts may be combined (`1h30m`).
pub fn parse_duration(s: &str) -> Result<Secs, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a duration: give seconds or e.g. 30m, 1h, 7d, 1h30m");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<i64>() {
        return if n > 0 { Ok(n) } else { Err(bad()) };
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mult = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !num.is_empty() || total <= 0 {
        return Err(bad());
    }
    Ok(total)
}

/// Parses a point in time: Unix seconds, RFC 3339 (`2026-11-30T08:00:00Z`) or a date
/// (`2026-11-30`, midnight UTC).
pub fn parse_time(s: &str) -> Result<Secs, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_second());
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        if let Ok(z) = d.to_zoned(jiff::tz::TimeZone::UTC) {
            return Ok(z.timestamp().as_second());
        }
    }
    Err(format!(
        "{s:?} is not a time: give Unix seconds, RFC 3339 (2026-11-30T08:00:00Z) or a date (2026-11-30)"
    ))
}

/// A time in the past: a point in time, or a duration meaning that long ago (`24h`).
pub fn parse_since(s: &str, now: Secs) -> Result<Secs, String> {
    parse_time(s).or_else(|e| parse_duration(s).map(|d| now - d).map_err(|_| e))
}

/// A time in the future: a point in time, or a duration from now (`7d`).
pub fn parse_until(s: &str, now: Secs) -> Result<Secs, String> {
    parse_time(s).or_else(|e| parse_duration(s).map(|d| now + d).map_err(|_| e))
}

/// A time given as a JSON number (Unix seconds) or string (any form [`parse_time`] takes, or a
/// duration).
#[derive(Clone, Debug, PartialEq)]
pub enum TimeArg {
    Secs(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for TimeArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        Ok(match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a time must be Unix seconds (a number) or a string such as 2026-11-30T08:00:00Z or 7d",
            )
        })? {
            Raw::N(n) => TimeArg::Secs(n),
            Raw::S(s) => TimeArg::Text(s),
        })
    }
}

impl TimeArg {
    pub fn until(&self, now: Secs) -> Result<Secs, String> {
        match self {
            TimeArg::Secs(n) => Ok(*n),
            TimeArg::Text(s) => parse_until(s, now),
        }
    }
    pub fn since(&self, now: Secs) -> Result<Secs, String> {
        match self {
            TimeArg::Secs(n) => Ok(*n),
            TimeArg::Text(s) => parse_since(s, now),
        }
    }
    /// As a duration (`for`): seconds or `1h`.
    pub fn duration(&self) -> Result<Secs, String> {
        match self {
            TimeArg::Secs(n) if *n > 0 => Ok(*n),
            TimeArg::Secs(n) => Err(format!("{n} is not a positive number of seconds")),
            TimeArg::Text(s) => parse_duration(s),
        }
    }
}

fn list<T>(
    param: &str,
    v: &str,
    parse: impl Fn(&str) -> Option<T>,
    all: &[&str],
) -> Result<Vec<T>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            parse(s)
                .ok_or_else(|| format!("{param}: unknown value {s:?}; one of {}", all.join(", ")))
        })
        .collect()
}

/// Statuses, comma separated; `all` (alone or among others) means any status.
pub fn parse_statuses(v: &str) -> Result<Vec<Status>, String> {
    if v.split(',').any(|s| s.trim().eq_ignore_ascii_case("all")) {
        return Ok(Vec::new());
    }
    let mut all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
    all.push("all");
    list("status", v, Status::parse, &all)
}

pub fn parse_kinds(v: &str) -> Result<Vec<Kind>, String> {
    let all: Vec<&str> = Kind::ALL.iter().map(|s| s.as_str()).collect();
    list("kind", v, Kind::parse, &all)
}

pub fn parse_severity(v: &str) -> Result<Severity, String> {
    Severity::parse(v.trim()).ok_or_else(|| {
        let all: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "severity: unknown value {v:?}; one of {} (the minimum to list)",
            all.join(", ")
        )
    })
}

pub fn parse_sort(v: &str) -> Result<Sort, String> {
    match v.trim() {
        "severity" => Ok(Sort::Severity),
        "last_seen" => Ok(Sort::LastSeen),
        "first_seen" => Ok(Sort::FirstSeen),
        "count" => Ok(Sort::Count),
        _ => Err(format!(
            "sort: unknown value {v:?}; one of severity, last_seen, first_seen, count"
        )),
    }
}

fn destination(v: &str) -> Result<String, String> {
    let t = v.trim().trim_end_matches('.').to_ascii_lowercase();
    if t.is_empty() || t.len() > 1024 {
        return Err("destination: give a name, an address or *.suffix".into());
    }
    Ok(t)
}

fn device(v: &str) -> Result<String, String> {
    let t = v.trim();
    t.parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("device: {t:?} is not an IP address"))
}

/// Alert list parameters (all optional; comma lists where noted).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Statuses, comma separated: open, acknowledged, flagged, blocked, resolved, reopened, or all.
    pub status: Option<String>,
    /// Minimum severity: info, low, medium, high, critical.
    pub severity: Option<String>,
    /// Kinds, comma separated (see /api/v1/kinds).
    pub kind: Option<String>,
    /// Device address (matches roll-ups that include it).
    pub device: Option<String>,
    /// Inventory group.
    pub group: Option<String>,
    /// Exact destination, or `*.suffix`.
    pub destination: Option<String>,
    /// Seen at or after: Unix seconds, RFC 3339, a date, or a duration ago (`24h`).
    pub since: Option<String>,
    /// First seen before: Unix seconds, RFC 3339 or a date.
    pub until: Option<String>,
    /// severity (default), last_seen, first_seen, count.
    pub sort: Option<String>,
    /// Page size, 1..=1000 (default 100).
    pub limit: Option<String>,
    /// Alerts to skip (default 0).
    pub offset: Option<String>,
}

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

impl AlertQuery {
    pub fn to_filter(&self, now: Secs) -> Result<AlertFilter, String> {
        let mut f = AlertFilter::default();
        if let Some(v) = &self.status {
            f.status = parse_statuses(v)?;
        }
        if let Some(v) = &self.severity {
            f.min_severity = Some(parse_severity(v)?);
        }
        if let Some(v) = &self.kind {
            f.kind = parse_kinds(v)?;
        }
        if let Some(v) = &self.device {
            f.device = Some(device(v)?);
        }
        if let Some(v) = &self.group {
            f.group = Some(v.trim().to_string());
        }
        if let Some(v) = &self.destination {
            f.destination = Some(destination(v)?);
        }
        if let Some(v) = &self.since {
            f.since = Some(parse_since(v, now).map_err(|e| format!("since: {e}"))?);
        }
        if let Some(v) = &self.until {
            f.until = Some(parse_time(v).map_err(|e| format!("until: {e}"))?);
        }
        if let Some(v) = &self.sort {
            f.sort = parse_sort(v)?;
        }
        f.limit = Some(match &self.limit {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| format!("limit: {v:?} must be 1..={MAX_LIMIT}; page with offset"))?,
        });
        if let Some(v) = &self.offset {
            f.offset = v
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("offset: {v:?} must be a whole number >= 0"))?;
        }
        Ok(f)
    }
}

/// Which alerts a bulk action covers (JSON; every field optional; empty lists mean any).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    /// Statuses, e.g. `["open","reopened"]`.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub status: Vec<Status>,
    /// Minimum severity.
    #[serde(default, alias = "min_severity")]
    #[schema(value_type = Option<String>)]
    pub severity: Option<Severity>,
    /// Kinds, e.g. `["new_destination"]`.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub kind: Vec<Kind>,
    pub device: Option<String>,
    pub group: Option<String>,
    /// Exact destination or `*.suffix`.
    pub destination: Option<String>,
    /// Unix seconds or a string (RFC 3339, a date, or a duration ago).
    #[schema(value_type = Option<Object>)]
    pub since: Option<TimeArg>,
    #[schema(value_type = Option<Object>)]
    pub until: Option<TimeArg>,
}

impl FilterBody {
    pub fn to_filter(&self, now: Secs) -> Result<AlertFilter, String> {
        Ok(AlertFilter {
            status: self.status.clone(),
            min_severity: self.severity,
            kind: self.kind.clone(),
            device: self.device.as_deref().map(device).transpose()?,
            group: self.group.as_ref().map(|g| g.trim().to_string()),
            destination: self.destination.as_deref().map(destination).transpose()?,
            since: self
                .since
                .as_ref()
                .map(|t| t.since(now))
                .transpose()
                .map_err(|e| format!("since: {e}"))?,
            until: self
                .until
                .as_ref()
                .map(|t| match t {
                    TimeArg::Secs(n) => Ok(*n),
                    TimeArg::Text(s) => parse_time(s),
                })
                .transpose()
                .map_err(|e| format!("until: {e}"))?,
            limit: None,
            ..AlertFilter::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("7d"), Ok(7 * 86400));
        for bad in ["", "0", "-5", "1x", "h", "1h3", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert_eq!(
            parse_time("2026-11-30T08:00:00Z"),
            Ok(1_795_996_800 + 8 * 3600)
        );
        assert_eq!(parse_time("2026-11-30"), Ok(1_795_996_800));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_since("1h", 10_000), Ok(6400));
        assert_eq!(parse_until("1h", 10_000), Ok(13_600));
    }

    #[test]
    fn alert_query() {
        let q = AlertQuery {
            status: Some("open, reopened".into()),
            severity: Some("high".into()),
            kind: Some("dga,policy".into()),
            destination: Some("*.Example.COM.".into()),
            limit: Some("5".into()),
            ..Default::default()
        };
        let f = q.to_filter(0).unwrap();
        assert_eq!(f.status, vec![Status::Open, Status::Reopened]);
        assert_eq!(f.min_severity, Some(Severity::High));
        assert_eq!(f.kind, vec![Kind::Dga, Kind::Policy]);
        assert_eq!(f.destination.as_deref(), Some("*.example.com"));
        assert_eq!(f.limit, Some(5));
        assert_eq!(parse_statuses("all"), Ok(vec![]));
        let bad = AlertQuery {
            limit: Some("1001".into()),
            ..Default::default()
        };
        assert!(bad.to_filter(0).unwrap_err().contains("1..=1000"));
        let bad = AlertQuery {
            kind: Some("nope".into()),
            ..Default::default()
        };
        assert!(bad.to_filter(0).unwrap_err().contains("new_destination"));
    }
}
