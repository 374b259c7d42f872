//! `dnsight alerts|devices|blocks ...`: the API's client. Everything goes through the HTTP API
//! of a running `dnsight serve` (or `demo`), so actions take the same path as the dashboard's:
//! the pipeline commits them, the resolver applies blocks from the next query.

use anyhow::{anyhow, bail, Context};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::time::Duration;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8053";

/// Where the API is and who we are.
#[derive(ClapArgs, Debug, Clone)]
pub struct Conn {
    /// API address [env: DNSIGHT_SERVER] [default: http://127.0.0.1:8053]
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// API token [env: DNSIGHT_TOKEN]
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Print the JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Conn {
    fn server(&self) -> String {
        let s = self
            .server
            .clone()
            .or_else(|| {
                std::env::var("DNSIGHT_SERVER")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let s = s.trim_end_matches('/').to_string();
        if s.starts_with("http://") || s.starts_with("https://") {
            s
        } else {
            format!("http://{s}")
        }
    }
    fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var("DNSIGHT_TOKEN").ok())
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().to_string())
    }
}

struct Api {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Api {
    fn new(c: &Conn) -> Api {
        Api {
            base: c.server(),
            token: c.token(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(300))
                .build(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.request(method, &url);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let r = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        match r {
            Ok(resp) => {
                let text = resp
                    .into_string()
                    .with_context(|| format!("reading the answer of {url}"))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{url} did not answer JSON; is --server the dnsight API?"))
            }
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                let msg = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or_else(|| text.chars().take(300).collect());
                Err(match code {
                    401 => anyhow!(
                        "{} answered 401: {}\n  pass --token or set DNSIGHT_TOKEN; create one with `dnsight token create --role analyst --name NAME --state DIR`",
                        self.base, clean(&msg)
                    ),
                    403 => anyhow!("{} answered 403: {}", self.base, clean(&msg)),
                    429 => anyhow!("{} answered 429: {} (too many bad tokens from this address)", self.base, clean(&msg)),
                    _ => anyhow!("{} answered {code}: {}", self.base, clean(&msg)),
                })
            }
            Err(ureq::Error::Transport(t)) => Err(anyhow!(
                "cannot reach the dnsight API at {}: {t}\n  is `dnsight serve --api ...` running? (pass --server URL or set DNSIGHT_SERVER)",
                self.base
            )),
        }
    }
    fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call("GET", path, None)
    }
    fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call("POST", path, Some(body))
    }
}

/// Control characters, and the bidirectional overrides that reorder what a terminal shows,
/// written as escapes: names and notes come from the network and from other people.
pub fn clean(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control()
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
        {
            o.extend(c.escape_unicode());
        } else {
            o.push(c);
        }
    }
    o
}

fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~*".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(x) => clean(x),
        other => clean(&other.to_string()),
    }
}

fn secs(v: &Value) -> String {
    match v.as_i64() {
        Some(t) => dnsight_model::Ts::from_secs(t).to_rfc3339(),
        None => s(v),
    }
}

/// Prints rows as aligned columns (cells already cleaned).
fn table(head: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let n = cells.len();
        let mut o = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                o.push_str(&c);
            } else {
                o.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        println!("{}", o.trim_end());
    };
    line(head.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

fn short(s: String, n: usize) -> String {
    if s.chars().count() <= n {
        s
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

// ---------------------------------------------------------------- alerts

#[derive(ClapArgs, Debug)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: AlertsCmd,
}

#[derive(Subcommand, Debug)]
pub enum AlertsCmd {
    /// List alerts (most severe first).
    List(ListArgs),
    /// One alert with its evidence and history.
    Show { id: String },
    /// It is normal: the destination joins the scope's baseline; findings are suppressed.
    Ack {
        #[command(flatten)]
        target: ActTarget,
        #[arg(long, value_enum)]
        scope: ScopeArg,
        /// Until when (a time, or a duration such as 7d); default: for good.
        #[arg(long)]
        until: Option<String>,
    },
    /// Escalate: severity at least high, stays open.
    Flag {
        #[command(flatten)]
        target: ActTarget,
    },
    /// Block the alerts' destinations in the resolver.
    Block {
        #[command(flatten)]
        target: ActTarget,
        #[arg(long, value_enum)]
        scope: ScopeArg,
        /// Only the exact name of the sample query, not the whole domain.
        #[arg(long)]
        exact: bool,
        /// For how long (1h, 7d, seconds); default: until unblocked.
        #[arg(long = "for")]
        duration: Option<String>,
    },
    /// Remove the blocks taken on these alerts.
    Unblock {
        #[command(flatten)]
        target: ActTarget,
    },
    /// Close with a reason.
    Resolve {
        #[command(flatten)]
        target: ActTarget,
        #[arg(long, value_enum)]
        reason: ReasonArg,
    },
    /// Add a note (give the text with --note).
    Note {
        #[command(flatten)]
        target: ActTarget,
    },
    /// Open again.
    Reopen {
        #[command(flatten)]
        target: ActTarget,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ScopeArg {
    Device,
    Group,
    All,
}

impl ScopeArg {
    fn as_str(self) -> &'static str {
        match self {
            ScopeArg::Device => "device",
            ScopeArg::Group => "group",
            ScopeArg::All => "all",
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
#[value(rename_all = "snake_case")]
pub enum ReasonArg {
    TruePositive,
    BenignPositive,
    FalsePositive,
    Duplicate,
}

impl ReasonArg {
    fn as_str(self) -> &'static str {
        match self {
            ReasonArg::TruePositive => "true_positive",
            ReasonArg::BenignPositive => "benign_positive",
            ReasonArg::FalsePositive => "false_positive",
            ReasonArg::Duplicate => "duplicate",
        }
    }
}

#[derive(ClapArgs, Debug)]
pub struct ListArgs {
    /// Statuses, comma separated (open, acknowledged, flagged, blocked, resolved, reopened).
    #[arg(long)]
    status: Option<String>,
    /// Minimum severity (info, low, medium, high, critical).
    #[arg(long)]
    severity: Option<String>,
    /// Kinds, comma separated.
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    device: Option<String>,
    #[arg(long)]
    group: Option<String>,
    /// Exact destination or *.suffix.
    #[arg(long)]
    destination: Option<String>,
    /// Seen since (a time, or a duration ago such as 24h).
    #[arg(long)]
    since: Option<String>,
    /// First seen before.
    #[arg(long)]
    until: Option<String>,
    /// severity, last_seen, first_seen, count.
    #[arg(long)]
    sort: Option<String>,
    /// At most this many (1..=1000, default 100).
    #[arg(long)]
    limit: Option<u32>,
    #[arg(long)]
    offset: Option<u64>,
}

/// Which alerts an action covers: ids, or every alert matching the --filter-* flags.
#[derive(ClapArgs, Debug)]
pub struct ActTarget {
    /// Alert ids.
    ids: Vec<String>,
    /// A note kept in each alert's history.
    #[arg(long)]
    note: Option<String>,
    /// Bulk: statuses (comma separated) of the alerts to act on.
    #[arg(long)]
    filter_status: Option<String>,
    /// Bulk: minimum severity.
    #[arg(long)]
    filter_severity: Option<String>,
    /// Bulk: kinds (comma separated).
    #[arg(long)]
    filter_kind: Option<String>,
    #[arg(long)]
    filter_device: Option<String>,
    #[arg(long)]
    filter_group: Option<String>,
    /// Bulk: exact destination or *.suffix.
    #[arg(long)]
    filter_destination: Option<String>,
    #[arg(long)]
    filter_since: Option<String>,
    #[arg(long)]
    filter_until: Option<String>,
    /// Bulk: act without asking (the count is printed first).
    #[arg(long)]
    yes: bool,
    /// Only print how many alerts the action would cover.
    #[arg(long)]
    dry_run: bool,
}

fn comma(v: &Option<String>) -> Option<Vec<String>> {
    v.as_ref().map(|s| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    })
}

impl ActTarget {
    fn filter(&self) -> Option<Value> {
        let mut f = serde_json::Map::new();
        if let Some(v) = comma(&self.filter_status) {
            f.insert("status".into(), json!(v));
        }
        if let Some(v) = &self.filter_severity {
            f.insert("severity".into(), json!(v));
        }
        if let Some(v) = comma(&self.filter_kind) {
            f.insert("kind".into(), json!(v));
        }
        for (k, v) in [
            ("device", &self.filter_device),
            ("group", &self.filter_group),
            ("destination", &self.filter_destination),
            ("since", &self.filter_since),
            ("until", &self.filter_until),
        ] {
            if let Some(v) = v {
                f.insert(k.into(), json!(v));
            }
        }
        (!f.is_empty()).then_some(Value::Object(f))
    }
}

fn list_query(a: &ListArgs) -> String {
    let mut q = Vec::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            q.push(format!("{k}={}", enc(&v)));
        }
    };
    add("status", a.status.clone());
    add("severity", a.severity.clone());
    add("kind", a.kind.clone());
    add("device", a.device.clone());
    add("group", a.group.clone());
    add("destination", a.destination.clone());
    add("since", a.since.clone());
    add("until", a.until.clone());
    add("sort", a.sort.clone());
    add("limit", a.limit.map(|n| n.to_string()));
    add("offset", a.offset.map(|n| n.to_string()));
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

pub fn alerts(a: AlertsArgs) -> anyhow::Result<()> {
    let api = Api::new(&a.conn);
    let json_out = a.conn.json;
    let (target, body) = match a.cmd {
        AlertsCmd::List(l) => {
            let v = api.get(&format!("/api/v1/alerts{}", list_query(&l)))?;
            if json_out {
                return print_json(&v["alerts"]);
            }
            let rows: Vec<Vec<String>> = v["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    vec![
                        s(&x["id"]),
                        s(&x["severity"]),
                        s(&x["status"]),
                        s(&x["kind"]),
                        s(&x["device"]),
                        short(s(&x["destination"]), 40),
                        s(&x["count"]),
                        s(&x["last_seen"]),
                        short(s(&x["summary"]), 80),
                    ]
                })
                .collect();
            table(
                &[
                    "ID",
                    "SEVERITY",
                    "STATUS",
                    "KIND",
                    "DEVICE",
                    "DESTINATION",
                    "COUNT",
                    "LAST SEEN",
                    "SUMMARY",
                ],
                &rows,
            );
            let total = v["total"].as_u64().unwrap_or(0);
            if total as usize > rows.len() {
                eprintln!(
                    "{} of {total} alerts (page with --limit and --offset)",
                    rows.len()
                );
            }
            return Ok(());
        }
        AlertsCmd::Show { id } => {
            let v = api.get(&format!("/api/v1/alerts/{}", enc(&id)))?;
            if json_out {
                return print_json(&v);
            }
            return show_alert(&v);
        }
        AlertsCmd::Ack {
            target,
            scope,
            until,
        } => {
            let mut b = json!({"action": "ack", "scope": scope.as_str()});
            if let Some(u) = until {
                b["until"] = json!(u);
            }
            (target, b)
        }
        AlertsCmd::Flag { target } => (target, json!({"action": "flag"})),
        AlertsCmd::Block {
            target,
            scope,
            exact,
            duration,
        } => {
            let mut b = json!({"action": "block", "scope": scope.as_str(), "target": if exact { "exact" } else { "domain" }});
            if let Some(d) = duration {
                b["for"] = json!(d);
            }
            (target, b)
        }
        AlertsCmd::Unblock { target } => (target, json!({"action": "unblock"})),
        AlertsCmd::Resolve { target, reason } => (
            target,
            json!({"action": "resolve", "reason": reason.as_str()}),
        ),
        AlertsCmd::Note { target } => {
            if target.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
                bail!("give the note's text with --note TEXT");
            }
            (target, json!({"action": "note"}))
        }
        AlertsCmd::Reopen { target } => (target, json!({"action": "reopen"})),
    };
    act(&api, json_out, target, body)
}

fn act(api: &Api, json_out: bool, t: ActTarget, mut body: Value) -> anyhow::Result<()> {
    if let Some(n) = &t.note {
        body["note"] = json!(n);
    }
    let action = body["action"].as_str().unwrap_or("").to_string();
    match (t.ids.is_empty(), t.filter()) {
        (false, Some(_)) => bail!("give alert ids or --filter-* flags, not both"),
        (true, None) => bail!(
            "give alert ids (see `dnsight alerts list`) or --filter-* flags for a bulk action (e.g. --filter-kind new_destination --filter-device 10.0.0.5)"
        ),
        (false, None) => {
            body["ids"] = json!(t.ids);
        }
        (true, Some(f)) => {
            body["filter"] = f;
            let mut dry = body.clone();
            dry["dry_run"] = json!(true);
            let n = api.post("/api/v1/alerts/actions", &dry)?["matched"]
                .as_u64()
                .unwrap_or(0);
            if t.dry_run || !json_out {
                eprintln!("{action}: {n} alerts match the filter");
            }
            if t.dry_run {
                if json_out {
                    print_json(&json!({"matched": n}))?;
                }
                return Ok(());
            }
            if n == 0 {
                return Ok(());
            }
            if !t.yes {
                bail!("pass --yes to {action} these {n} alerts (or --dry-run to only count them)");
            }
        }
    }
    if t.dry_run {
        body["dry_run"] = json!(true);
    }
    let r = api.post("/api/v1/alerts/actions", &body)?;
    if json_out {
        print_json(&r)?;
    } else {
        for o in r["outcomes"].as_array().into_iter().flatten() {
            let mut line = format!(
                "{}  {} -> {}",
                s(&o["alert_id"]),
                s(&o["before"]),
                s(&o["after"])
            );
            if let Some(b) = o.get("block").filter(|b| !b.is_null()) {
                line.push_str(&format!(
                    "  block {} {} ({})",
                    s(&b["id"]),
                    s(&b["name"]),
                    scope_label(&b["scope"])
                ));
            }
            if let Some(k) = o.get("ack").filter(|k| !k.is_null()) {
                line.push_str(&format!("  ack for {}", scope_label(&k["scope"])));
                if !k["until"].is_null() {
                    line.push_str(&format!(" until {}", secs(&k["until"])));
                }
            }
            println!("{line}");
        }
        if t.dry_run {
            println!("{action}: {} alerts would be covered", s(&r["matched"]));
        }
    }
    let errors = r["errors"].as_array().cloned().unwrap_or_default();
    for e in &errors {
        eprintln!("{}: {}", s(&e["alert_id"]), s(&e["error"]));
    }
    if !errors.is_empty() {
        bail!(
            "{} of {} alerts could not be changed",
            errors.len(),
            s(&r["matched"])
        );
    }
    Ok(())
}

fn scope_label(v: &Value) -> String {
    match (v["scope"].as_str(), &v["value"]) {
        (Some("all"), _) => "all".into(),
        (Some(k), val) => format!("{k}:{}", s(val)),
        _ => s(v),
    }
}

fn show_alert(v: &Value) -> anyhow::Result<()> {
    for (k, label) in [
        ("id", "id"),
        ("kind", "kind"),
        ("severity", "severity"),
        ("score", "score"),
        ("status", "status"),
        ("reason", "reason"),
        ("device", "device"),
        ("device_name", "device name"),
        ("group", "group"),
        ("destination", "destination"),
        ("first_seen", "first seen"),
        ("last_seen", "last seen"),
        ("count", "count"),
        ("device_count", "devices"),
        ("summary", "summary"),
        ("note", "note"),
    ] {
        if !v[k].is_null() {
            println!("{label:<12} {}", s(&v[k]));
        }
    }
    if !v["evidence"].is_null() {
        println!("evidence");
        for l in serde_json::to_string_pretty(&v["evidence"])?.lines() {
            println!("  {}", clean(l));
        }
    }
    let h = v["history"].as_array().cloned().unwrap_or_default();
    if !h.is_empty() {
        println!("history");
        for e in h {
            let mut line = format!(
                "  {}  {}  {}",
                secs(&e["ts"]),
                s(&e["actor"]),
                s(&e["action"])
            );
            if !e["status_before"].is_null() || !e["status_after"].is_null() {
                line.push_str(&format!(
                    "  {} -> {}",
                    s(&e["status_before"]),
                    s(&e["status_after"])
                ));
            }
            if !e["scope"].is_null() {
                line.push_str(&format!("  scope {}", s(&e["scope"])));
            }
            if !e["note"].is_null() {
                line.push_str(&format!("  note: {}", s(&e["note"])));
            }
            println!("{line}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- devices

#[derive(ClapArgs, Debug)]
pub struct DevicesArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: DevicesCmd,
}

#[derive(Subcommand, Debug)]
pub enum DevicesCmd {
    /// Every device the engine knows.
    List,
    /// One device and its baseline.
    Show { ip: String },
}

pub fn devices(a: DevicesArgs) -> anyhow::Result<()> {
    let api = Api::new(&a.conn);
    match a.cmd {
        DevicesCmd::List => {
            let v = api.get("/api/v1/devices")?;
            if a.conn.json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    vec![
                        s(&d["ip"]),
                        s(&d["name"]),
                        s(&d["group"]),
                        s(&d["events"]),
                        s(&d["destinations"]),
                        s(&d["open_alerts"]),
                        if d["learning"] == true {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                        secs(&d["last_seen"]),
                    ]
                })
                .collect();
            table(
                &[
                    "IP",
                    "NAME",
                    "GROUP",
                    "EVENTS",
                    "DESTINATIONS",
                    "OPEN ALERTS",
                    "LEARNING",
                    "LAST SEEN",
                ],
                &rows,
            );
        }
        DevicesCmd::Show { ip } => {
            let v = api.get(&format!("/api/v1/devices/{}", enc(&ip)))?;
            if a.conn.json {
                return print_json(&v);
            }
            for (k, label) in [
                ("ip", "ip"),
                ("name", "name"),
                ("group", "group"),
                ("events", "events"),
                ("learning", "learning"),
            ] {
                if !v[k].is_null() {
                    println!("{label:<12} {}", s(&v[k]));
                }
            }
            println!("{:<12} {}", "first seen", secs(&v["first_seen"]));
            println!("{:<12} {}", "last seen", secs(&v["last_seen"]));
            let open: Vec<String> = v["open_alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            if !open.is_empty() {
                println!("{:<12} {}", "open alerts", open.join(" "));
            }
            let rows: Vec<Vec<String>> = v["destinations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    vec![
                        short(s(&d["name"]), 60),
                        s(&d["state"]),
                        s(&d["count"]),
                        s(&d["days"]),
                        secs(&d["last_seen"]),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                println!();
                table(
                    &["DESTINATION", "STATE", "COUNT", "DAYS", "LAST SEEN"],
                    &rows,
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- blocks

#[derive(ClapArgs, Debug)]
pub struct BlocksArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: BlocksCmd,
}

#[derive(Subcommand, Debug)]
pub enum BlocksCmd {
    /// Active blocks and allows.
    List,
    /// Block (or allow) a name.
    Add {
        name: String,
        #[arg(long, value_enum, default_value = "all")]
        scope: ScopeArg,
        /// The group, for --scope group.
        #[arg(long)]
        group: Option<String>,
        /// The device address, for --scope device.
        #[arg(long)]
        device: Option<String>,
        /// For how long (1h, 7d, seconds); default: until removed.
        #[arg(long = "for")]
        duration: Option<String>,
        /// Only the exact name, not the names under it.
        #[arg(long)]
        exact: bool,
        /// An allow exception instead of a block.
        #[arg(long)]
        allow: bool,
        #[arg(long)]
        note: Option<String>,
    },
    /// Remove a block or allow by id.
    Rm { id: i64 },
}

pub fn blocks(a: BlocksArgs) -> anyhow::Result<()> {
    let api = Api::new(&a.conn);
    match a.cmd {
        BlocksCmd::List => {
            let v = api.get("/api/v1/blocks")?;
            if a.conn.json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    vec![
                        s(&b["id"]),
                        if b["allow"] == true {
                            "allow".into()
                        } else {
                            "block".into()
                        },
                        format!(
                            "{}{}",
                            if b["subdomains"] == true { "*." } else { "" },
                            s(&b["name"])
                        ),
                        scope_label(&b["scope"]),
                        if b["expires_at"].is_null() {
                            "-".into()
                        } else {
                            secs(&b["expires_at"])
                        },
                        s(&b["created_by"]),
                        short(s(&b["note"]), 40),
                    ]
                })
                .collect();
            table(
                &["ID", "TYPE", "NAME", "SCOPE", "EXPIRES", "BY", "NOTE"],
                &rows,
            );
        }
        BlocksCmd::Add {
            name,
            scope,
            group,
            device,
            duration,
            exact,
            allow,
            note,
        } => {
            let scope_v = match scope {
                ScopeArg::All => {
                    if group.is_some() || device.is_some() {
                        bail!("--group and --device go with --scope group / --scope device");
                    }
                    json!({"scope": "all"})
                }
                ScopeArg::Group => {
                    json!({"scope": "group", "value": group.ok_or_else(|| anyhow!("--scope group needs --group NAME"))?})
                }
                ScopeArg::Device => {
                    json!({"scope": "device", "value": device.ok_or_else(|| anyhow!("--scope device needs --device IP"))?})
                }
            };
            let mut b =
                json!({"name": name, "subdomains": !exact, "scope": scope_v, "allow": allow});
            if let Some(d) = duration {
                b["for"] = json!(d);
            }
            if let Some(n) = note {
                b["note"] = json!(n);
            }
            let r = api.post("/api/v1/blocks", &b)?;
            if a.conn.json {
                return print_json(&r);
            }
            println!(
                "{} {}: {}{} for {}{}",
                if r["allow"] == true { "allow" } else { "block" },
                s(&r["id"]),
                if r["subdomains"] == true { "*." } else { "" },
                s(&r["name"]),
                scope_label(&r["scope"]),
                if r["expires_at"].is_null() {
                    String::new()
                } else {
                    format!(" until {}", secs(&r["expires_at"]))
                }
            );
        }
        BlocksCmd::Rm { id } => {
            let r = api.call("DELETE", &format!("/api/v1/blocks/{id}"), None)?;
            if a.conn.json {
                return print_json(&r);
            }
            println!(
                "removed {} {}: {}",
                if r["allow"] == true { "allow" } else { "block" },
                s(&r["id"]),
                s(&r["name"])
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_escapes_controls_and_bidi() {
        assert_eq!(clean("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(clean("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(clean("<plain> \"text\" ünï"), "<plain> \"text\" ünï");
    }

    #[test]
    fn query_strings_are_encoded() {
        let l = ListArgs {
            status: Some("open,reopened".into()),
            severity: None,
            kind: None,
            device: None,
            group: Some("a b&c".into()),
            destination: Some("*.example.com".into()),
            since: None,
            until: None,
            sort: None,
            limit: Some(5),
            offset: None,
        };
        assert_eq!(
            list_query(&l),
            "?status=open%2Creopened&group=a%20b%26c&destination=*.example.com&limit=5"
        );
    }
}

// ---------------------------------------------------------------- queries

/// What a device asked, and when: the query log (newest first).
#[derive(ClapArgs, Debug)]
pub struct QueriesArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Read the state directory's store directly (no running `serve` needed) instead of the API.
    #[arg(long, value_name = "DIR")]
    pub state: Option<std::path::PathBuf>,
    /// Client address (or its pseudonym `anon-...`).
    #[arg(long)]
    pub device: Option<String>,
    /// Exact query name.
    #[arg(long)]
    pub name: Option<String>,
    /// The name and everything under it.
    #[arg(long)]
    pub suffix: Option<String>,
    /// Record type (A, AAAA, TXT, ...).
    #[arg(long = "type", value_name = "TYPE")]
    pub qtype: Option<String>,
    /// Response code (NXDOMAIN, SERVFAIL, ...).
    #[arg(long)]
    pub rcode: Option<String>,
    /// Only queries the resolver blocked.
    #[arg(long)]
    pub blocked: bool,
    /// At or after: a duration ago (`1h`, `7d`), Unix seconds, RFC 3339 or a date.
    #[arg(long)]
    pub since: Option<String>,
    /// Before: Unix seconds, RFC 3339 or a date.
    #[arg(long)]
    pub until: Option<String>,
    /// Rows (default 50, at most 10000 a page).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue from a previous page's cursor.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print CSV (every page up to --limit rows) instead of a table.
    #[arg(long)]
    pub csv: bool,
}

fn queries_filter(a: &QueriesArgs) -> anyhow::Result<dnsight_triage::QueryFilter> {
    let now = dnsight_pipeline::now_secs();
    let q = dnsight_api::QueriesQuery {
        device: a.device.clone(),
        name: a.name.clone(),
        suffix: a.suffix.clone(),
        qtype: a.qtype.clone(),
        rcode: a.rcode.clone(),
        blocked: a.blocked.then(|| "true".to_string()),
        since: a.since.clone(),
        until: a.until.clone(),
        cursor: a.cursor.clone(),
        limit: Some(
            a.limit
                .clamp(1, dnsight_triage::querylog::MAX_PAGE)
                .to_string(),
        ),
        format: None,
    };
    q.to_filter(now).map_err(|e| anyhow!("--{e}"))
}

fn queries_path(f: &dnsight_triage::QueryFilter) -> String {
    let mut p: Vec<String> = Vec::new();
    let mut add = |k: &str, v: String| p.push(format!("{k}={}", enc(&v)));
    if let Some(v) = &f.device {
        add("device", v.clone());
    }
    if let Some(v) = &f.name {
        add("name", v.clone());
    }
    if let Some(v) = &f.suffix {
        add("suffix", v.clone());
    }
    if let Some(v) = f.qtype {
        add("type", v.to_string());
    }
    if let Some(v) = f.rcode {
        add("rcode", v.to_string());
    }
    if let Some(v) = f.blocked {
        add("blocked", v.to_string());
    }
    if let Some(v) = f.since_us {
        add("since", (v / 1_000_000).to_string());
    }
    if let Some(v) = f.until_us {
        add("until", (v / 1_000_000).to_string());
    }
    if let Some(v) = &f.cursor {
        add("cursor", v.clone());
    }
    if let Some(v) = f.limit {
        add("limit", v.to_string());
    }
    format!("/api/v1/queries?{}", p.join("&"))
}

pub fn queries(a: QueriesArgs) -> anyhow::Result<()> {
    let f = queries_filter(&a)?;
    let page: dnsight_triage::QueryPage = match &a.state {
        Some(dir) => {
            use dnsight_triage::TriageStore;
            if !dir.join(dnsight_triage::TRIAGE_FILE).exists() {
                bail!("{} holds no triage store (run `dnsight serve --state {0}` or `dnsight analyze --state {0} FILE` first)", dir.display());
            }
            let st = dnsight_triage::SqliteStore::open(dir)
                .map_err(|e| anyhow!("opening the store in {}: {e}", dir.display()))?;
            st.search_queries(&f).map_err(|e| anyhow!("{e}"))?
        }
        None => {
            let api = Api::new(&a.conn);
            serde_json::from_value(api.get(&queries_path(&f))?)
                .context("the API's query page was not understood")?
        }
    };
    if a.conn.json {
        return print_json(&serde_json::to_value(&page)?);
    }
    if a.csv {
        let mut out = String::from(dnsight_triage::querylog::CSV_HEADER);
        for r in &page.rows {
            out.push_str(&dnsight_triage::querylog::csv_row(r));
        }
        print!("{out}");
        if let Some(n) = &page.next {
            eprintln!("more: --cursor {n}");
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = page
        .rows
        .iter()
        .map(|r| {
            vec![
                clean(&r.time),
                r.count.to_string(),
                clean(&r.client),
                clean(&r.qtype),
                clean(&r.name),
                clean(r.rcode.as_deref().unwrap_or("-")),
                short(clean(&r.answers.join(" ")), 48),
                clean(
                    r.blocked
                        .as_deref()
                        .map(|b| format!("blocked ({b})"))
                        .as_deref()
                        .or(r.action.as_deref())
                        .unwrap_or(&r.source),
                ),
                r.upstream_us
                    .map(|u| format!("{:.1}", f64::from(u) / 1000.0))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "TIME",
            "COUNT",
            "CLIENT",
            "TYPE",
            "NAME",
            "RCODE",
            "ANSWERS",
            "WHAT",
            "UPSTREAM MS",
        ],
        &rows,
    );
    match &page.next {
        Some(n) => eprintln!(
            "{} rows ({} queries); more: --cursor {n}",
            page.rows.len(),
            page.rows.iter().map(|r| r.count).sum::<u64>()
        ),
        None => eprintln!(
            "{} rows ({} queries)",
            page.rows.len(),
            page.rows.iter().map(|r| r.count).sum::<u64>()
        ),
    }
    Ok(())
}
