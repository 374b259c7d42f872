//! dnsight-pipeline: the engine as a single-writer actor.
//!
//! One thread owns the engine and the triage store's write connection. It reads one channel of
//! event batches (from the resolver, passive sources and file readers: the producers) and one
//! channel of commands (from the API, the CLI and the notifier, through a [`Handle`]), and runs
//! its ticks on wall time whatever the load: alert output, store writes, expiry of blocks and
//! acknowledgements, the periodic save, intel reload, and — on a store shared with other
//! processes — the resync that applies what they committed.

use dnsight_engine::views::{DestinationView, DeviceSummary, DeviceView};
use dnsight_triage::{ActOutcome, AlertFilter, BlockRule, NewBlock, Reason, Secs, TriageError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Whom an action covers, relative to the alert it is taken on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeSel {
    /// The alert's device (every device of a roll-up, each its own scope).
    Device,
    /// The alert's group (an error when the alert has no single group).
    Group,
    All,
}

/// What a block covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockTarget {
    /// The alert's destination (registered domain) and everything under it.
    #[default]
    Domain,
    /// The exact name of the alert's sample query (or the destination when it has none).
    Exact,
}

/// One lifecycle action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// It is normal: joins the scope's baseline, findings suppressed until `until`.
    Ack {
        scope: ScopeSel,
        #[serde(default)]
        until: Option<Secs>,
    },
    /// Escalate: severity at least high, stays open.
    Flag,
    /// The resolver answers by the block policy from the next query.
    Block {
        scope: ScopeSel,
        #[serde(default)]
        target: BlockTarget,
        /// Seconds from now; None: until unblocked.
        #[serde(default)]
        duration: Option<Secs>,
    },
    /// Removes the blocks taken on these alerts.
    Unblock,
    Resolve {
        reason: Reason,
    },
    Note,
    Reopen,
}

/// Which alerts an action covers: explicit ids, or every alert matching a filter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Ids(Vec<String>),
    Filter(AlertFilter),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    pub target: Target,
    pub action: Action,
    #[serde(default)]
    pub note: Option<String>,
    /// Token or user name (set by the API from the credentials, never from the body).
    #[serde(skip)]
    pub actor: String,
    /// Only count what would be acted on.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    /// How many alerts the target covers.
    pub matched: u64,
    /// One per alert acted on (empty for a dry run).
    pub outcomes: Vec<ActOutcome>,
    /// Alerts the action could not apply to, with why (e.g. no group for `--scope group`).
    pub errors: Vec<ActionError>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionError {
    pub alert_id: String,
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Triage(#[from] TriageError),
    /// The request is wrong (→ 4xx).
    #[error("{0}")]
    Invalid(String),
    /// The pipeline has stopped (shutting down).
    #[error("the analysis pipeline is not running")]
    Stopped,
}

/// Counters of the pipeline itself, with the engine's.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PipelineStats {
    pub engine: dnsight_engine::EngineStats,
    pub events_in: u64,
    pub batches_in: u64,
    pub commands: u64,
    pub ticks: u64,
    pub alerts_written: u64,
    pub alert_lines_out: u64,
    pub saves: u64,
    pub save_errors: u64,
    pub last_save_unix: Option<Secs>,
    /// Resyncs with the triage store that found something to apply (what other processes,
    /// or this one, committed since the last).
    #[serde(default)]
    pub store_syncs: u64,
    pub store: dnsight_triage::StoreStats,
    /// Threat-intel feeds and GeoIP databases: entries, freshness, last download error.
    #[serde(default)]
    pub feeds: Vec<FeedStatus>,
    /// Ingestion health per source (resolver, passive sources, intakes): events, events/s,
    /// drops, rejects, up.
    #[serde(default)]
    pub sources: Vec<SourceStatus>,
}

/// The detection rules in force (`[[policy]]` and `[[detection.exempt]]` of the config), as
/// the dashboard's policy page lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesView {
    pub policy: Vec<PolicyRuleView>,
    pub exempt: Vec<ExemptionView>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRuleView {
    /// None: every device.
    pub group: Option<String>,
    pub deny: Vec<String>,
    pub allow_only: Vec<String>,
    pub allow_internal: bool,
    pub reason: String,
    /// Devices (ranges) and groups the rule does not apply to.
    pub except: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExemptionView {
    /// Devices (ranges) and groups covered.
    pub who: Vec<String>,
    /// Alert kinds (empty: all).
    pub kinds: Vec<String>,
    /// Destinations and names below them (empty: any).
    pub destinations: Vec<String>,
    pub reason: String,
}

impl RulesView {
    pub fn of(c: &dnsight_engine::EngineConfig) -> RulesView {
        fn s<T: ToString>(v: &[T]) -> Vec<String> {
            v.iter().map(|x| x.to_string()).collect()
        }
        RulesView {
            policy: c
                .policy
                .iter()
                .map(|r| PolicyRuleView {
                    group: r.group.as_ref().map(|g| g.to_string()),
                    deny: s(&r.deny),
                    allow_only: s(&r.allow_only),
                    allow_internal: r.allow_internal,
                    reason: r.reason.to_string(),
                    except: r
                        .except_devices
                        .iter()
                        .map(|c| c.to_string())
                        .chain(r.except_groups.iter().map(|g| format!("group {g}")))
                        .collect(),
                })
                .collect(),
            exempt: c
                .exempt
                .iter()
                .map(|e| ExemptionView {
                    who: e
                        .devices
                        .iter()
                        .map(|c| c.to_string())
                        .chain(e.groups.iter().map(|g| format!("group {g}")))
                        .collect(),
                    kinds: e.kinds.iter().map(|k| k.as_str().to_string()).collect(),
                    destinations: s(&e.destinations),
                    reason: e.reason.to_string(),
                })
                .collect(),
        }
    }
}

/// One enrichment source (a threat-intel feed or a GeoIP database) as `stats` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedStatus {
    /// `intel` or `geoip`.
    pub kind: String,
    pub name: String,
    /// Where it is downloaded from (none: a local file kept by someone else).
    pub url: Option<String>,
    pub path: String,
    /// Indicators loaded (0 for a database).
    pub entries: u64,
    /// Lines not understood and skipped.
    pub rejected: u64,
    /// Seconds since the URL last confirmed the copy (or since the file changed, without URL).
    pub age_secs: Option<u64>,
    /// The last download's error, if it failed.
    pub last_error: Option<String>,
    /// Older than its max age (a URL that has not answered for too long, or never did).
    pub stale: bool,
    pub category: Option<String>,
    pub severity: Option<String>,
}

mod actor;
mod sources;
pub use actor::{
    now_secs, spawn, Handle, IntelSource, OnAlert, OnBlocks, Outputs, Pipeline, PipelineConfig,
    Producer, Running, STORE_SYNC_DEFAULT,
};
pub use sources::{Probe, SourceMeter, SourceStatus, Sources};

#[doc(hidden)]
pub fn _assert_types(
    _: Option<(
        DeviceSummary,
        DeviceView,
        DestinationView,
        BlockRule,
        NewBlock,
        IpAddr,
    )>,
) {
}
