//! The ingest summary printed at the end of `dnsight analyze`: events, queries, responses,
//! devices, top talkers and destinations, and rejected input by reason.
//!
//! Memory is bounded: at most [`MAX_KEYS`] distinct devices and destinations are counted
//! exactly; beyond that new keys are folded into an "(other)" bucket and the overflow counted.

use dnsight_ingest::IngestStats;
use dnsight_model::{DnsEvent, Name};
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;

pub const MAX_KEYS: usize = 200_000;

#[derive(Default)]
pub struct Summary {
    pub events: u64,
    pub unanswered: u64,
    pub unmatched_responses: u64,
    pub nxdomain: u64,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    devices: HashMap<IpAddr, u64, foldhash::fast::RandomState>,
    destinations: HashMap<String, u64, foldhash::quality::RandomState>,
    overflow_devices: u64,
    overflow_destinations: u64,
}

/// The registered domain (eTLD+1) of a name, or the name itself when it has none.
pub fn registered_domain(name: &Name) -> &str {
    let s = name.as_str();
    psl::domain_str(s).unwrap_or(s)
}

#[derive(Serialize)]
pub struct Top {
    pub key: String,
    pub count: u64,
}

#[derive(Serialize)]
pub struct SummaryReport<'a> {
    pub inputs: Vec<InputReport>,
    pub records: u64,
    pub messages: u64,
    pub queries: u64,
    pub responses: u64,
    pub events: u64,
    pub unanswered_queries: u64,
    pub responses_without_query: u64,
    pub nxdomain: u64,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    pub devices: usize,
    pub destinations: usize,
    pub top_talkers: Vec<Top>,
    pub top_destinations: Vec<Top>,
    pub rejected_total: u64,
    pub rejected: &'a std::collections::BTreeMap<String, u64>,
}

#[derive(Serialize, Clone)]
pub struct InputReport {
    pub path: String,
    pub format: String,
    pub events: u64,
    pub rejected: u64,
    /// What the format does not carry (query logs): which detections its events cannot feed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lacks: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Summary {
    pub fn observe(&mut self, ev: &DnsEvent) {
        self.events += 1;
        if !ev.has_response() {
            self.unanswered += 1;
        }
        if !ev.has_query() && ev.has_response() {
            self.unmatched_responses += 1;
        }
        if ev.is_nxdomain() {
            self.nxdomain += 1;
        }
        let t = ev.ts.micros();
        self.first_ts = Some(self.first_ts.map_or(t, |f| f.min(t)));
        self.last_ts = Some(self.last_ts.map_or(t, |l| l.max(t)));
        if let Some(c) = self.devices.get_mut(&ev.client) {
            *c += 1;
        } else if self.devices.len() < MAX_KEYS {
            self.devices.insert(ev.client, 1);
        } else {
            self.overflow_devices += 1;
        }
        // counted without allocating; a String is made only for a new key
        let d = registered_domain(&ev.qname);
        if let Some(c) = self.destinations.get_mut(d) {
            *c += 1;
        } else if self.destinations.len() < MAX_KEYS {
            self.destinations.insert(d.to_string(), 1);
        } else {
            self.overflow_destinations += 1;
        }
    }

    fn top<K: ToString>(map: impl Iterator<Item = (K, u64)>, n: usize) -> Vec<Top> {
        let mut v: Vec<Top> = map
            .map(|(k, c)| Top {
                key: k.to_string(),
                count: c,
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        v.truncate(n);
        v
    }

    pub fn report<'a>(
        &self,
        stats: &'a IngestStats,
        inputs: Vec<InputReport>,
    ) -> SummaryReport<'a> {
        let ts = |t: Option<i64>| t.map(|t| dnsight_model::Ts(t).to_rfc3339());
        SummaryReport {
            inputs,
            records: stats.records,
            messages: stats.messages,
            queries: stats.queries,
            responses: stats.responses,
            events: self.events,
            unanswered_queries: self.unanswered,
            responses_without_query: self.unmatched_responses,
            nxdomain: self.nxdomain,
            first_event: ts(self.first_ts),
            last_event: ts(self.last_ts),
            devices: self.devices.len(),
            destinations: self.destinations.len(),
            top_talkers: Self::top(self.devices.iter().map(|(k, v)| (k, *v)), 10),
            top_destinations: Self::top(self.destinations.iter().map(|(k, v)| (k, *v)), 10),
            rejected_total: stats.rejected_total(),
            rejected: &stats.rejected,
        }
    }
}

impl SummaryReport<'_> {
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "== Input ==");
        for i in &self.inputs {
            match &i.error {
                Some(e) => {
                    let _ = writeln!(s, "  {}  ERROR: {}", i.path, e);
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  {}  [{}]  {} events, {} rejected",
                        i.path, i.format, i.events, i.rejected
                    );
                    if !i.lacks.is_empty() {
                        let _ = writeln!(s, "    (this format lacks {})", i.lacks);
                    }
                }
            }
        }
        let _ = writeln!(
            s,
            "  records read {}, DNS messages {} ({} queries, {} responses)",
            self.records, self.messages, self.queries, self.responses
        );
        let _ = writeln!(
            s,
            "  events {} ({} unanswered queries, {} responses without query, {} NXDOMAIN)",
            self.events, self.unanswered_queries, self.responses_without_query, self.nxdomain
        );
        if let (Some(f), Some(l)) = (&self.first_event, &self.last_event) {
            let _ = writeln!(s, "  time span {f} .. {l}");
        }
        let _ = writeln!(
            s,
            "  devices {}, destinations (registered domains) {}",
            self.devices, self.destinations
        );
        if !self.top_talkers.is_empty() {
            let _ = writeln!(s, "\n== Top talkers ==");
            for t in &self.top_talkers {
                let _ = writeln!(s, "  {:>10}  {}", t.count, t.key);
            }
        }
        if !self.top_destinations.is_empty() {
            let _ = writeln!(s, "\n== Top destinations ==");
            for t in &self.top_destinations {
                let _ = writeln!(s, "  {:>10}  {}", t.count, t.key);
            }
        }
        let _ = writeln!(s, "\n== Rejected input: {} ==", self.rejected_total);
        for (k, v) in self.rejected {
            let _ = writeln!(s, "  {v:>10}  {k}");
        }
        s
    }
}
