//! Read-only views of the engine's state for the API, the CLI and the dashboard: plain serde
//! structs built on request (never on the hot path).

use crate::alert::{Kind, Severity};
use serde::{Deserialize, Serialize};
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
