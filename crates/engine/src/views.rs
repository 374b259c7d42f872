//! Read-only views of the engine's state for the API, the CLI and the dashboard: plain serde
//! structs built on request (never on the hot path).

use crate::alert::{Kind, Severity};
use crate::baseline::{flag, DestEntry, Device};
use crate::Engine;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;

/// Whom an acknowledgement or a block covers. Groups are the inventory groups (the same names
/// the resolver's blocking groups use).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", content = "value", rename_all = "lowercase")]
pub enum Scope {
    All,
    Group(String),
    Device(IpAddr),
}

impl Scope {
    /// `all`, `group:NAME`, `device:IP` (for audit lines, CLI output and the RPZ comments).
    pub fn label(&self) -> String {
        match self {
            Scope::All => "all".into(),
            Scope::Group(g) => format!("group:{g}"),
            Scope::Device(ip) => format!("device:{ip}"),
        }
    }
    /// Inverse of [`Scope::label`].
    pub fn parse_label(s: &str) -> Option<Scope> {
        if s == "all" {
            return Some(Scope::All);
        }
        if let Some(g) = s.strip_prefix("group:") {
            return (!g.is_empty()).then(|| Scope::Group(g.to_string()));
        }
        s.strip_prefix("device:")?.parse().ok().map(Scope::Device)
    }
    /// Does the scope cover a device with this address and group?
    pub fn covers(&self, ip: IpAddr, group: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Group(g) => group == Some(g.as_str()),
            Scope::Device(d) => *d == ip,
        }
    }
}

/// One device in a list.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeviceSummary {
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Event time, Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
    pub events: u64,
    pub learning: bool,
    /// Destinations in its baseline (known or novel).
    pub destinations: u64,
    pub open_alerts: u64,
}

/// One destination of a device's baseline.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeviceDestination {
    pub name: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
    pub days: u32,
    /// `learned`, `known` (promoted), `acknowledged`, `novel` or `suspect`.
    pub state: String,
}

/// One device with its baseline.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeviceView {
    #[serde(flatten)]
    pub summary: DeviceSummary,
    pub destinations: Vec<DeviceDestination>,
    /// ISO country codes reached.
    pub countries: Vec<String>,
    pub asns: Vec<u32>,
    /// Mean queries per hour for each hour of the week (168 values, Monday 00:00 first, site
    /// time), 0 where nothing is known yet.
    pub hour_of_week: Vec<f32>,
    /// Ids of the alerts open on this device (in the engine's index).
    pub open_alerts: Vec<String>,
}

/// One device that talks to a destination.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DestinationClient {
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
    pub state: String,
}

/// One intel feed that lists a name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IntelMatch {
    pub feed: String,
    /// The listed entry (the name or a parent).
    pub entry: String,
}

/// Who talks to a destination, since when.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DestinationView {
    pub name: String,
    /// Org-wide first sighting (event time, Unix seconds); None when no device has it in its
    /// baseline.
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub internal: bool,
    pub devices: Vec<DestinationClient>,
    pub intel: Vec<IntelMatch>,
    /// Ids of the open alerts on this destination.
    pub open_alerts: Vec<String>,
}

/// One detector kind's metadata: the one table the registry, the config check, the docs and
/// `/api/v1/kinds` all read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KindInfo {
    pub kind: Kind,
    /// The detector (config `disable = [...]` name) that raises it.
    pub detector: String,
    pub title: String,
    /// What it means, one or two sentences.
    pub description: String,
    /// What "acknowledge" adds to the baseline for this kind.
    pub ack_effect: String,
    /// The usual severity range.
    pub typical: (Severity, Severity),
}

/// One row of the kind table (static text; [`kinds`] hands out the serde form).
struct KindRow {
    kind: Kind,
    detector: &'static str,
    title: &'static str,
    description: &'static str,
    ack_effect: &'static str,
    typical: (Severity, Severity),
}

/// The one table of detector kinds: the registry's and the config's detector names, the docs
/// and `/api/v1/kinds` read it. One row per [`Kind`], in [`Kind::ALL`] order.
const KIND_TABLE: [KindRow; Kind::ALL.len()] = {
    use Severity::*;
    [
        KindRow {
            kind: Kind::NewDestination,
            detector: "new_destination",
            title: "New destination",
            description: "A device resolved a registered domain or internal host name that is not in its baseline.",
            ack_effect: "The destination joins the covered devices' baselines as acknowledged; new_destination findings on it are suppressed for them.",
            typical: (Info, High),
        },
        KindRow {
            kind: Kind::NewCountry,
            detector: "new_geo",
            title: "New country",
            description: "A device reached an address in a country it never reached before (GeoIP).",
            ack_effect: "The country joins the covered devices' countries and the destination their baselines; the finding is suppressed.",
            typical: (Info, Medium),
        },
        KindRow {
            kind: Kind::NewAsn,
            detector: "new_geo",
            title: "New network (ASN)",
            description: "A device reached an address in an autonomous system it never reached before (GeoIP ASN database).",
            ack_effect: "The ASN joins the covered devices' ASNs and the destination their baselines; the finding is suppressed.",
            typical: (Info, Medium),
        },
        KindRow {
            kind: Kind::TrafficChange,
            detector: "traffic_change",
            title: "Traffic change",
            description: "A device's query volume, distinct destinations or NXDOMAIN share in an hour is far from its hour-of-week profile.",
            ack_effect: "Suppressed for the covered devices until the acknowledgement ends.",
            typical: (Low, High),
        },
        KindRow {
            kind: Kind::Beaconing,
            detector: "beaconing",
            title: "Beaconing",
            description: "A device resolves a destination at regular intervals (command and control check-ins).",
            ack_effect: "The destination joins the covered devices' baselines as acknowledged; beaconing on it is suppressed.",
            typical: (Medium, Critical),
        },
        KindRow {
            kind: Kind::Dga,
            detector: "dga",
            title: "Generated domain names (DGA)",
            description: "Random-looking names, or a burst of never-seen NXDOMAIN names from one device (malware looking for its server).",
            ack_effect: "The destination joins the covered devices' baselines as acknowledged; DGA findings on it are suppressed.",
            typical: (Medium, Critical),
        },
        KindRow {
            kind: Kind::Tunneling,
            detector: "tunneling",
            title: "DNS tunneling",
            description: "Many unique, encoded-looking subdomains of one domain: data carried inside DNS queries.",
            ack_effect: "The destination joins the covered devices' baselines as acknowledged; tunneling findings on it are suppressed.",
            typical: (High, Critical),
        },
        KindRow {
            kind: Kind::ThreatIntel,
            detector: "threat_intel",
            title: "Threat intelligence match",
            description: "A queried name, CNAME target or answer address is on a configured threat-intel feed.",
            ack_effect: "Matches of this destination are suppressed for the covered devices (the feed is unchanged).",
            typical: (High, Critical),
        },
        KindRow {
            kind: Kind::Policy,
            detector: "policy",
            title: "Policy violation",
            description: "A configured deny or allow-only rule, a DNS-over-HTTPS resolver bypass or DNS rebinding.",
            ack_effect: "An exception: the rule no longer fires on this destination for the covered devices.",
            typical: (Low, High),
        },
        KindRow {
            kind: Kind::Reconnaissance,
            detector: "reconnaissance",
            title: "Reconnaissance",
            description: "PTR sweeps of internal address ranges or bursts of never-seen internal names from one device.",
            ack_effect: "Suppressed for the covered devices until the acknowledgement ends.",
            typical: (Medium, High),
        },
        KindRow {
            kind: Kind::NewDevice,
            detector: "new_device",
            title: "New device",
            description: "A device the organisation has not seen appeared after the organisation's learning period.",
            ack_effect: "Suppressed for the covered devices (the device keeps its baseline).",
            typical: (Info, Low),
        },
        KindRow {
            kind: Kind::Misconfiguration,
            detector: "misconfiguration",
            title: "Misconfiguration",
            description: "A device keeps asking for the same few names that do not exist (stale service discovery, a broken search list, a removed server still configured): worth fixing, not an attack.",
            ack_effect: "Suppressed for the covered devices until the acknowledgement ends.",
            typical: (Low, Medium),
        },
    ]
};

/// Every kind's metadata, one entry per [`Kind`] in [`Kind::ALL`] order.
pub fn kinds() -> &'static [KindInfo] {
    static KINDS: std::sync::OnceLock<Vec<KindInfo>> = std::sync::OnceLock::new();
    KINDS.get_or_init(|| {
        KIND_TABLE
            .iter()
            .map(|r| KindInfo {
                kind: r.kind,
                detector: r.detector.into(),
                title: r.title.into(),
                description: r.description.into(),
                ack_effect: r.ack_effect.into(),
                typical: r.typical,
            })
            .collect()
    })
}

impl Kind {
    /// This kind's row of [`kinds`].
    pub fn info(self) -> &'static KindInfo {
        &kinds()[self as usize]
    }
    /// The detector (config name) that raises this kind.
    pub fn detector(self) -> &'static str {
        KIND_TABLE[self as usize].detector
    }
}

/// The detector names (`[detection] disabled = [...]`), each once, in table order.
pub fn detector_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    for r in &KIND_TABLE {
        if !v.contains(&r.detector) {
            v.push(r.detector);
        }
    }
    v
}

/// The baseline state of one (device, destination) entry.
fn state_of(e: &DestEntry) -> &'static str {
    if e.flags & flag::ACKED != 0 {
        "acknowledged"
    } else if e.flags & flag::SUSPECT != 0 {
        "suspect"
    } else if e.flags & flag::LEARNED != 0 {
        "learned"
    } else if e.flags & flag::KNOWN != 0 {
        "known"
    } else {
        "novel"
    }
}

impl Engine {
    fn now_secs(&self) -> u32 {
        self.last_event
            .map_or(0, |t| t.secs().clamp(0, u32::MAX as i64) as u32)
    }
    fn summary(&self, d: &Device, open_alerts: u64) -> DeviceSummary {
        DeviceSummary {
            ip: d.ip.to_string(),
            name: d.name.as_deref().map(str::to_string),
            group: d.group.as_deref().map(str::to_string),
            first_seen: i64::from(d.first_seen),
            last_seen: i64::from(d.last_seen),
            events: d.events,
            learning: self.is_learning(d, self.now_secs()),
            destinations: d.dests.len() as u64,
            open_alerts,
        }
    }
    /// Every device, in order of first sighting (then address; request path: one pass over
    /// the live alerts for the counts).
    pub fn devices(&self) -> Vec<DeviceSummary> {
        let mut open: HashMap<IpAddr, u64> = HashMap::new();
        for (_, devs) in self.corr.book.members_by_alert() {
            for &d in devs {
                if let Some(m) = self.corr.devs.get(d as usize) {
                    *open.entry(m.ip).or_default() += 1;
                }
            }
        }
        let mut all: Vec<&Device> = self
            .shards
            .iter()
            .flat_map(|s| s.base.devices.iter())
            .collect();
        all.sort_by(|a, b| a.first_seen.cmp(&b.first_seen).then(a.ip.cmp(&b.ip)));
        all.into_iter()
            .map(|d| self.summary(d, open.get(&d.ip).copied().unwrap_or(0)))
            .collect()
    }
    /// One device with its baseline: destinations (most queried first), countries, ASNs, the
    /// 168 hour-of-week mean volumes and the ids of its live alerts.
    pub fn device(&self, ip: IpAddr) -> Option<DeviceView> {
        let ip = crate::net::canonical(ip);
        let shard = &self.shards[crate::msg::partition(ip) as usize % self.shards.len()];
        let d = shard.device_of(ip)?;
        let open_alerts = self
            .corr
            .dev_id(ip)
            .map(|id| self.corr.book.ids_for_device(id))
            .unwrap_or_default();
        let mut destinations: Vec<DeviceDestination> = d
            .dests
            .iter()
            .map(|(&did, e)| DeviceDestination {
                name: shard.base.dests[did as usize].name.to_string(),
                first_seen: i64::from(e.first),
                last_seen: i64::from(e.last),
                count: u64::from(e.count),
                days: u32::from(e.days),
                state: state_of(e).to_string(),
            })
            .collect();
        destinations.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
        let hour_of_week = match &d.profile {
            Some(p) => p.slots.iter().map(|s| s.volume.mean.max(0.0)).collect(),
            None => vec![0.0; 168],
        };
        Some(DeviceView {
            summary: self.summary(d, open_alerts.len() as u64),
            destinations,
            countries: d
                .countries
                .iter()
                .map(|c| crate::geo::country_str(c).to_string())
                .collect(),
            asns: d.asns.clone(),
            hour_of_week,
            open_alerts,
        })
    }
    /// Who talks to a destination (devices with it in their baseline), its org-wide first
    /// and last sighting, intel matches and live alerts. Scans every device (request path).
    pub fn destination(&self, name: &str) -> Option<DestinationView> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let od = self
            .corr
            .dest_index
            .get(name.as_str())
            .map(|&i| &self.corr.dests[i as usize]);
        let mut devices = Vec::new();
        let mut last = od.map(|o| o.last);
        for s in &self.shards {
            let Some(did) = s.base.dest_id(&name) else {
                continue;
            };
            if od.is_some() {
                last = last.max(Some(s.base.dests[did as usize].last));
            }
            for d in &s.base.devices {
                if let Some(e) = d.dests.get(&did) {
                    devices.push(DestinationClient {
                        ip: d.ip.to_string(),
                        name: d.name.as_deref().map(str::to_string),
                        group: d.group.as_deref().map(str::to_string),
                        first_seen: i64::from(e.first),
                        last_seen: i64::from(e.last),
                        count: u64::from(e.count),
                        state: state_of(e).to_string(),
                    });
                }
            }
        }
        let now = self
            .last_event
            .unwrap_or_else(|| dnsight_model::Ts::from_secs(0));
        let intel: Vec<IntelMatch> = self
            .cfg
            .intel
            .match_name(&name, now)
            .map(|(f, entry)| IntelMatch {
                feed: f.name.to_string(),
                entry: entry.to_string(),
            })
            .into_iter()
            .collect();
        let open_alerts = self.corr.book.ids_for_destination(&name);
        if od.is_none() && intel.is_empty() && open_alerts.is_empty() {
            return None;
        }
        let internal = od.map_or_else(
            || {
                self.cfg
                    .internal_suffixes
                    .iter()
                    .any(|s| crate::enrich::is_under(&name, s))
            },
            |o| o.internal,
        );
        Some(DestinationView {
            first_seen: od.map(|o| i64::from(o.first)),
            last_seen: last.map(i64::from),
            name,
            internal,
            devices,
            intel,
            open_alerts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testkit::{cfg, run};

    #[test]
    fn one_table_entry_per_kind_and_every_detector_in_it() {
        for k in Kind::ALL {
            let rows: Vec<&KindInfo> = kinds().iter().filter(|i| i.kind == k).collect();
            assert_eq!(rows.len(), 1, "{k}");
            assert_eq!(k.info().kind, k);
            assert!(!rows[0].title.is_empty() && !rows[0].ack_effect.is_empty());
            assert!(rows[0].typical.0 <= rows[0].typical.1, "{k}");
        }
        assert_eq!(kinds().len(), Kind::ALL.len());
        let mut c = cfg();
        c.geoip = None; // the registry lists every detector whatever is configured
        let reg: Vec<&str> = crate::detectors::registry(&c)
            .iter()
            .map(|d| d.name())
            .collect();
        for n in &reg {
            assert!(detector_names().contains(n), "{n} is not in the kind table");
        }
        let (mut reg, mut table) = (reg, detector_names());
        reg.sort_unstable();
        table.sort_unstable();
        assert_eq!(reg, table, "every table detector is registered, once");
    }

    /// The README's alert tables are the kind table: every kind has its row in "fires when"
    /// and its acknowledgement effect word for word.
    #[test]
    fn readme_documents_every_kind_from_the_table() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
        )
        .expect("README.md");
        for k in kinds() {
            let name = k.kind.as_str();
            assert!(
                readme.lines().any(|l| l.starts_with(&format!("| `{name}`"))
                    || l.starts_with(&format!("| `{name}`,"))),
                "README has no table row for {name}"
            );
            let row = format!("| `{name}` | {} |", k.ack_effect);
            assert!(
                readme.contains(&row),
                "README's acknowledge table lacks or differs for {name}: want {row}"
            );
        }
    }

    #[test]
    fn device_and_destination_views_tell_the_baseline_story() {
        let e = run(
            cfg(),
            "
            +0 x3 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +2h 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +1m 10.0.0.6 www.example.com A NOERROR 93.184.216.34
            @2026-11-03T09:00:00Z
            +0 10.0.0.5 evil.example A NOERROR 198.51.100.7
            +1h 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            ",
        );
        let all = e.devices();
        assert_eq!(all.len(), 2);
        let five = all.iter().find(|d| d.ip == "10.0.0.5").unwrap();
        assert_eq!(
            (five.events, five.destinations, five.open_alerts),
            (6, 2, 1)
        );
        assert!(!five.learning);
        let v = e.device("10.0.0.5".parse().unwrap()).unwrap();
        let st: Vec<(&str, &str)> = v
            .destinations
            .iter()
            .map(|d| (d.name.as_str(), d.state.as_str()))
            .collect();
        assert_eq!(
            st,
            vec![("example.com", "learned"), ("evil.example", "novel")]
        );
        assert_eq!(v.hour_of_week.len(), 168);
        // Monday 00:00 had 3 queries, Monday 01:00 none, Monday 02:00 one
        assert_eq!(&v.hour_of_week[..3], &[3.0, 0.0, 1.0]);
        assert_eq!(v.open_alerts.len(), 1);
        assert!(e.device("10.9.9.9".parse().unwrap()).is_none());
        let d = e.destination("EVIL.example.").unwrap();
        assert_eq!(d.devices.len(), 1);
        assert_eq!(
            (d.devices[0].ip.as_str(), d.devices[0].state.as_str()),
            ("10.0.0.5", "novel")
        );
        assert_eq!(d.open_alerts, v.open_alerts);
        assert!(!d.internal && d.intel.is_empty());
        assert!(e.destination("never.example").is_none());
        let w = e.destination("example.com").unwrap();
        assert_eq!(w.devices.len(), 2);
        assert!(w.first_seen.unwrap() <= w.last_seen.unwrap());
    }

    #[test]
    fn the_destination_view_lists_intel_matches() {
        let mut c = cfg();
        let mut set = crate::IntelSet::new();
        set.add_feed("urlhaus", "bad.example\n", crate::IntelFormat::Plain, None);
        c.intel = std::sync::Arc::new(set);
        let e = run(c, "+0 10.0.0.5 www.bad.example A NOERROR 198.51.100.7");
        let d = e.destination("bad.example").unwrap();
        assert_eq!(
            d.intel,
            vec![IntelMatch {
                feed: "urlhaus".into(),
                entry: "bad.example".into()
            }]
        );
        assert_eq!(d.open_alerts.len(), 1, "{d:?}");
    }
}
