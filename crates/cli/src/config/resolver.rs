//! Config sections for `dnsight serve`: `[resolver]` (listeners, upstreams, ACL, limits),
//! `[resolver.cache]`, `[resolver.rate_limit]`, `[resolver.blocking]` with `[[resolver.blocking.list]]`
//! and `[[resolver.blocking.group]]`, `[[resolver.forward]]` (conditional forwarding), and
//! `[[source]]` (passive sources run beside the resolver).
//!
//! Two phases, like every section: raw serde structs with `deny_unknown_fields` (a typo is an
//! error that names the key) → a validated [`ServeSettings`] holding a
//! [`dnsight_resolver::ResolverConfig`]. Errors name the file, the key and the fix. Relative
//! paths in the file are relative to the file's directory; paths from flags to the working
//! directory. Command-line flags override the file.

use anyhow::{anyhow, bail, Context};
use dnsight_resolver::{
    BlockAnswer, CacheConfig, Cidr, GroupSpec, ListRole, ListSpec, ResolverConfig, UpstreamProto,
    UpstreamSpec,
};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Top-level sections this module owns.
pub const SECTIONS: &[&str] = &["resolver", "source"];

/// `[resolver]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverRaw {
    /// UDP+TCP listen addresses, `ADDR:PORT` (default `127.0.0.1:5353`).
    pub listen: Option<Vec<String>>,
    /// Upstream resolvers: `ADDR:PORT` or `ADDR` (UDP with TCP fallback), `tcp://ADDR:PORT`.
    #[serde(default)]
    pub upstreams: Vec<String>,
    pub upstream_timeout_ms: Option<u64>,
    /// `in_order` (default: failover, healthy first) or `fastest` (every healthy upstream at
    /// once, the first answer wins); for every set of upstreams (default, zones, groups).
    pub upstream_strategy: Option<String>,
    pub health_interval_secs: Option<u64>,
    /// Who may query (CIDR blocks). Default: loopback and private ranges.
    pub acl: Option<Vec<String>>,
    /// Answer ANY with a single HINFO (RFC 8482). Default true.
    pub minimal_any: Option<bool>,
    pub max_query_size: Option<usize>,
    /// UDP worker threads per listener (0 = one per CPU).
    pub udp_workers: Option<usize>,
    /// Datagrams per recvmmsg/sendmmsg call (1 = one recv/send syscall per packet). Default 32.
    pub udp_batch: Option<usize>,
    pub tcp_idle_timeout_secs: Option<u64>,
    pub max_tcp_connections: Option<usize>,
    /// Capacity of the queue between the resolver and the analysis (events beyond are dropped
    /// and counted, never waited for).
    pub event_queue: Option<usize>,
    /// Decode answers into events (costs a copy per query). Default true.
    pub event_answers: Option<bool>,
    /// Seconds between stats log lines (0 = only at shutdown). Default 300.
    pub stats_interval_secs: Option<u64>,
    /// DNS-over-TLS listeners, `ADDR:PORT` (need tls_cert and tls_key).
    #[serde(default)]
    pub dot_listen: Vec<String>,
    /// DNS-over-HTTPS listeners, `ADDR:PORT` (need tls_cert and tls_key).
    #[serde(default)]
    pub doh_listen: Vec<String>,
    /// DoH path (default `/dns-query`).
    pub doh_path: Option<String>,
    /// Certificate chain (PEM) for DoT/DoH listeners.
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for DoT/DoH listeners.
    pub tls_key: Option<PathBuf>,
    /// Extra CA certificate (PEM) trusted for tls:// and https:// upstreams.
    pub upstream_ca: Option<PathBuf>,
    /// `pass` (default: DO/CD forwarded, RRSIGs kept, AD only from trusted upstreams) or
    /// `validate` (dnsight validates; bogus answers become SERVFAIL).
    pub dnssec: Option<String>,
    /// DNSKEY records (zone-file form, e.g. a `K*.key` file) to validate from instead of the
    /// root's keys.
    pub dnssec_trust_anchor: Option<PathBuf>,
    /// Upstreams (`ADDR[:PORT]`, in any set) whose AD bit is believed.
    #[serde(default)]
    pub dnssec_trusted_upstreams: Vec<String>,
    #[serde(default)]
    pub cache: CacheRaw,
    #[serde(default)]
    pub rate_limit: RateLimitRaw,
    #[serde(default)]
    pub blocking: BlockingRaw,
    #[serde(default)]
    pub local: LocalRaw,
    /// `[[resolver.forward]]`: conditional-forwarding zones.
    #[serde(default)]
    pub forward: Vec<ForwardRaw>,
}

/// `[resolver.local]`: names the resolver answers itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalRaw {
    /// `NAME [TTL] TYPE DATA` (A, AAAA, CNAME, TXT, PTR; `*.NAME` wildcards) or hosts lines
    /// `ADDRESS NAME...`.
    #[serde(default)]
    pub records: Vec<String>,
    /// Files of such lines (hosts files work), reloaded like the block lists.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// TTL of records that give none (default 300).
    pub ttl: Option<u32>,
    /// Answer PTR queries for the addresses of A/AAAA records (default true).
    pub ptr: Option<bool>,
}

/// `[[resolver.forward]]`: zones answered by their own upstreams (e.g. the domain controllers),
/// tried before `[resolver] upstreams`; the longest zone wins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardRaw {
    /// Domain names (`corp.example`: it and everything below) and address blocks for reverse
    /// zones (`10.20.0.0/16` = `20.10.in-addr.arpa`).
    pub zones: Vec<String>,
    /// Same forms as `[resolver] upstreams`, tried in order.
    pub upstreams: Vec<String>,
    /// Never send these zones' names to the default upstreams, even when their own fail
    /// (they get SERVFAIL). Default false: fall back to the default upstreams.
    #[serde(default)]
    pub internal_only: bool,
}

/// `[resolver.cache]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRaw {
    pub max_entries: Option<usize>,
    pub min_ttl: Option<u32>,
    pub max_ttl: Option<u32>,
    pub max_negative_ttl: Option<u32>,
    /// Seconds past expiry an answer may be served when no upstream answers (0 = off).
    pub serve_stale: Option<u32>,
    /// Refresh popular answers in the last 10% of their TTL (default true).
    pub prefetch: Option<bool>,
}

/// `[resolver.rate_limit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRaw {
    /// Queries per second per client address (0 = off). Default 1000.
    pub qps: Option<u32>,
    pub burst: Option<u32>,
    /// Clients never limited. Default loopback.
    pub exempt: Option<Vec<String>>,
}

/// `[resolver.blocking]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockingRaw {
    /// `nxdomain` (default), `nodata`, `null` (0.0.0.0 / ::), `sinkhole`, `refused`.
    pub answer: Option<String>,
    pub sinkhole_v4: Option<String>,
    pub sinkhole_v6: Option<String>,
    /// TTL of synthesised block answers (default 60).
    pub ttl: Option<u32>,
    /// Seconds between checks of list files for changes (0 = only on SIGHUP). Default 30.
    pub poll_interval_secs: Option<u64>,
    #[serde(default)]
    pub list: Vec<ListRaw>,
    #[serde(default)]
    pub group: Vec<GroupRaw>,
}

/// `[[resolver.blocking.list]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRaw {
    /// The list file. With `url`, the local copy that dnsight downloads to (and loads from).
    pub path: PathBuf,
    /// `http://` or `https://` address the list is downloaded from, every `refresh_secs`.
    pub url: Option<String>,
    /// How often `url` is downloaded again (default 86400 = daily; at least 60).
    pub refresh_secs: Option<u64>,
    /// Shown in verdicts and referenced by groups (default: the file name).
    pub name: Option<String>,
    /// `block` (default) or `allow`.
    pub role: Option<String>,
}

/// `[[resolver.blocking.group]]`: a group of the one group table (see [`super::GroupTable`]),
/// with the lists and block answer its devices get.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRaw {
    pub name: String,
    /// Client CIDR blocks in this group, added to the blocks `[inventory]` gives a group of
    /// this name (`default` matches everyone no block matches).
    #[serde(default)]
    pub clients: Vec<String>,
    /// List names applied to this group (default: all lists).
    pub lists: Option<Vec<String>>,
    pub answer: Option<String>,
    /// Upstreams of this group's own instead of `[resolver] upstreams` (same forms; forward
    /// zones still go to their servers). Not for `default`.
    pub upstreams: Option<Vec<String>>,
}

/// `[[source]]`: passive sources run in the same process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRaw {
    /// `dnstap` (listen = `unix:/path` or `tcp:ADDR:PORT`), `zeek`, `jsonl` or `log` (path: a
    /// file that is followed as it grows; `log` is any DNS query log the reader knows),
    /// `syslog` (listen = `udp:ADDR:PORT`, `tcp:ADDR:PORT` or `tls:ADDR:PORT` with `tls_cert` and
    /// `tls_key`: query logs sent by syslog, from the
    /// `allow`ed senders), `capture` (interface: live packet capture, needs root or CAP_NET_RAW).
    pub kind: String,
    pub listen: Option<String>,
    pub path: Option<PathBuf>,
    pub interface: Option<String>,
    /// `capture`: extra UDP/TCP ports treated as DNS (53 always is).
    #[serde(default)]
    pub dns_ports: Vec<u16>,
    /// `log` (and `zeek`/`jsonl`): read the file as this format instead of sniffing it.
    pub format: Option<String>,
    /// `log`: zone of timestamps that carry none (IANA name, `UTC` or `local`; default UTC).
    pub log_tz: Option<String>,
    /// `syslog`: sender addresses (CIDR) allowed to send; default loopback only.
    #[serde(default)]
    pub allow: Vec<String>,
    /// `syslog` with listen = `tls:ADDR:PORT` (RFC 5425): the server's certificate chain and
    /// private key (PEM files).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// A `format = "..."` / `--format` value: any input format by its report name.
pub fn parse_format(s: &str) -> anyhow::Result<dnsight_ingest::Format> {
    dnsight_ingest::Format::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = dnsight_ingest::querylog::FORMATS
            .iter()
            .map(|f| f.name)
            .collect();
        anyhow!(
            "unknown format {s:?}; use pcap, pcapng, dnstap, zeek-tsv, zeek-json, jsonl or one of the query logs: {}",
            names.join(", ")
        )
    })
}

/// A `log_tz = "..."` / `--log-tz` value.
pub fn parse_log_tz(s: &str) -> anyhow::Result<dnsight_ingest::querylog::TimeZone> {
    dnsight_ingest::querylog::time_zone(s).map_err(|e| anyhow!(e))
}

/// A validated passive source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    DnstapUnix(PathBuf),
    DnstapTcp(SocketAddr),
    Tail {
        kind: String,
        path: PathBuf,
        /// Read as this format instead of sniffing.
        format: Option<dnsight_ingest::Format>,
        /// Zone of zone-less log timestamps (validated name).
        log_tz: Option<String>,
    },
    Capture {
        interface: String,
        dns_ports: Vec<u16>,
    },
    /// A syslog receiver for query logs (UDP, TCP, or TCP with TLS).
    Syslog {
        tcp: bool,
        addr: SocketAddr,
        allow: Vec<Cidr>,
        log_tz: Option<String>,
        /// TLS (certificate, key) files: syslog over TLS, RFC 5425.
        tls: Option<(PathBuf, PathBuf)>,
    },
}

/// The resolver's sections, raw.
#[derive(Debug, Default)]
pub struct ServeSections {
    pub resolver: ResolverRaw,
    pub sources: Vec<SourceRaw>,
    /// `[inventory]` (the engine's section): its groups and the CSV's per-device groups are
    /// client groups too (one group table, see [`super::GroupTable`]).
    pub inventory: super::engine::InventoryRaw,
}

/// Everything `serve` needs besides the engine.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub resolver: ResolverConfig,
    pub stats_interval: Duration,
    pub sources: Vec<SourceConfig>,
    /// Lists downloaded from URLs into their local file.
    pub fetches: Vec<ListFetch>,
}

/// A list kept fresh from a URL: downloaded to `path` (atomically, checked), which the
/// resolver's file polling then reloads like any other list.
pub use crate::fetch::Fetch as ListFetch;

/// Command-line overrides.
#[derive(Debug, Default, Clone)]
pub struct ServeOverrides {
    pub listen: Vec<String>,
    pub upstreams: Vec<String>,
    pub blocklists: Vec<PathBuf>,
    /// `--inventory CSV` (relative to the working directory): replaces `[inventory] file`, for
    /// the client groups as for the engine.
    pub inventory: Option<PathBuf>,
}

/// Checks that every top-level key of the file belongs to some section owner.
pub fn check_top_level(text: &str, file: &Path, known: &[&[&str]]) -> anyhow::Result<()> {
    let table: toml::Table =
        toml::from_str(text).with_context(|| format!("{}: not valid TOML", file.display()))?;
    let all: Vec<&str> = known.iter().flat_map(|k| k.iter().copied()).collect();
    for k in table.keys() {
        if !all.contains(&k.as_str()) {
            bail!(
                "{}: unknown section `{k}`; valid top-level sections are: {}",
                file.display(),
                all.join(", ")
            );
        }
    }
    Ok(())
}

/// Picks the resolver's sections out of a config file.
pub fn parse_sections(text: &str, file: &Path) -> anyhow::Result<ServeSections> {
    let table: toml::Table =
        toml::from_str(text).with_context(|| format!("{}: not valid TOML", file.display()))?;
    let mut s = ServeSections::default();
    if let Some(v) = table.get("resolver").cloned() {
        s.resolver = v
            .try_into()
            .map_err(|e| anyhow!("{}: [resolver]: {e}", file.display()))?;
    }
    if let Some(v) = table.get("source").cloned() {
        s.sources = v.try_into().map_err(|e| {
            anyhow!(
                "{}: [[source]]: {e} (each needs `kind`, and `listen` or `path`)",
                file.display()
            )
        })?;
    }
    if let Some(v) = table.get("inventory").cloned() {
        s.inventory = v
            .try_into()
            .map_err(|e| anyhow!("{}: [inventory]: {e}", file.display()))?;
    }
    Ok(s)
}

/// `[[resolver.blocking.group]]` alone, for the engine's side of the group table (the rest of
/// `[resolver]` is left to [`parse_sections`]).
pub fn blocking_groups(table: &toml::Table, file: &Path) -> anyhow::Result<Vec<GroupRaw>> {
    let Some(v) = table
        .get("resolver")
        .and_then(|r| r.get("blocking"))
        .and_then(|b| b.get("group"))
    else {
        return Ok(Vec::new());
    };
    v.clone()
        .try_into()
        .map_err(|e| anyhow!("{}: [[resolver.blocking.group]]: {e}", file.display()))
}

fn parse_addr(s: &str, default_port: u16) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, default_port))
}

/// `ADDR:PORT` for a listener.
pub fn parse_listen(s: &str, key: &str) -> anyhow::Result<SocketAddr> {
    s.trim().parse().map_err(|_| anyhow!("{key}: {s:?} is not ADDR:PORT; use e.g. 127.0.0.1:5353 or [::1]:5353 (port 53 needs CAP_NET_BIND_SERVICE)"))
}

/// `ADDR[:PORT]` (UDP with TCP fallback), `tcp://ADDR[:PORT]`, `tls://ADDR[:PORT][#NAME]`
/// (DoT, port 853) or `https://ADDR[:PORT][/PATH][#NAME]` (DoH, port 443, path /dns-query).
/// NAME is the name the upstream's certificate must carry (default: the address).
pub fn parse_upstream(s: &str, key: &str) -> anyhow::Result<UpstreamSpec> {
    let fix = "use ADDR[:PORT] (UDP, TCP on truncation), tcp://ADDR[:PORT], tls://ADDR[:PORT]#NAME or https://ADDR[:PORT]/dns-query#NAME";
    let (proto, rest, port) = if let Some(r) = s.strip_prefix("tcp://") {
        (UpstreamProto::Tcp, r, 53)
    } else if let Some(r) = s.strip_prefix("udp://") {
        (UpstreamProto::Udp, r, 53)
    } else if let Some(r) = s.strip_prefix("tls://") {
        (UpstreamProto::Dot, r, 853)
    } else if let Some(r) = s.strip_prefix("https://") {
        (UpstreamProto::Doh, r, 443)
    } else if s.contains("://") {
        bail!("{key}: {s:?}: unsupported scheme; {fix}");
    } else {
        (UpstreamProto::Udp, s, 53)
    };
    let (rest, tls_name) = match rest.split_once('#') {
        Some((r, n)) if !n.is_empty() => (r, Some(n.to_string())),
        Some(_) => bail!("{key}: {s:?}: empty name after #; {fix}"),
        None => (rest, None),
    };
    if tls_name.is_some() && matches!(proto, UpstreamProto::Udp | UpstreamProto::Tcp) {
        bail!("{key}: {s:?}: #NAME only applies to tls:// and https:// upstreams");
    }
    let (hostport, path) = match (proto, rest.find('/')) {
        (UpstreamProto::Doh, Some(i)) => (&rest[..i], Some(rest[i..].to_string())),
        (_, Some(_)) => bail!("{key}: {s:?}: unexpected path; {fix}"),
        (_, None) => (rest, None),
    };
    let addr = parse_addr(hostport, port).ok_or_else(|| anyhow!("{key}: {s:?}: {hostport:?} is not an IP address with an optional port (names need a bootstrap resolver: give the address and the name as #NAME); {fix}"))?;
    Ok(UpstreamSpec {
        addr,
        proto,
        tls_name,
        path,
        trusted: false,
    })
}

fn parse_cidrs(v: &[String], key: &str) -> anyhow::Result<Vec<Cidr>> {
    v.iter()
        .map(|s| s.parse::<Cidr>().map_err(|e| anyhow!("{key}: {e}")))
        .collect()
}

fn parse_answer(
    s: &str,
    key: &str,
    v4: Option<std::net::Ipv4Addr>,
    v6: Option<std::net::Ipv6Addr>,
) -> anyhow::Result<BlockAnswer> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "nxdomain" => BlockAnswer::NxDomain,
        "nodata" => BlockAnswer::NoData,
        "null" | "zero" => BlockAnswer::Null,
        "refused" => BlockAnswer::Refused,
        "sinkhole" => {
            if v4.is_none() && v6.is_none() {
                bail!("{key} = \"sinkhole\" needs [resolver.blocking] sinkhole_v4 and/or sinkhole_v6 addresses");
            }
            BlockAnswer::Sinkhole { v4, v6 }
        }
        other => bail!("{key}: unknown block answer {other:?}; use nxdomain, nodata, null, sinkhole or refused"),
    })
}

fn rel(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Validates the raw sections (+ overrides) into settings. Does not read list files (the
/// resolver loads them at start, so `check-config` reports missing lists separately); does
/// read the inventory CSV (`[inventory] file`), whose per-device groups are client groups.
///
/// Client groups come from the one group table ([`super::GroupTable`]): every group of
/// `[[resolver.blocking.group]]`, `[inventory] groups` and the CSV's group column, each with
/// all its blocks from every place. A group named in `[[resolver.blocking.group]]` has the
/// lists and answer given there; a group defined only in `[inventory]` has those of the
/// `default` blocking group when there is one, else every list and `[resolver.blocking]
/// answer`, so its devices are blocked as before they had a group.
pub fn validate(
    mut s: ServeSections,
    file: &Path,
    base_dir: &Path,
    o: &ServeOverrides,
) -> anyhow::Result<ServeSettings> {
    let f = file.display();
    if let Some(p) = &o.inventory {
        let cwd = std::env::current_dir().context("the working directory")?;
        s.inventory.file = Some(cwd.join(p));
    }
    let r = s.resolver;
    let mut cfg = ResolverConfig::default();
    // `listen = []` (explicitly empty) runs dnsight as a passive analyser of its [[source]]s only
    let passive_only = o.listen.is_empty() && r.listen.as_ref().is_some_and(|l| l.is_empty());
    let listen: Vec<String> = if !o.listen.is_empty() {
        o.listen.clone()
    } else {
        r.listen.unwrap_or_default()
    };
    if passive_only {
        cfg.listen.clear();
    }
    if !listen.is_empty() {
        cfg.listen = listen
            .iter()
            .map(|l| parse_listen(l, &format!("{f}: [resolver] listen")))
            .collect::<anyhow::Result<_>>()?;
    }
    let ups: Vec<String> = if !o.upstreams.is_empty() {
        o.upstreams.clone()
    } else {
        r.upstreams
    };
    cfg.upstreams = ups
        .iter()
        .map(|u| parse_upstream(u, &format!("{f}: [resolver] upstreams")))
        .collect::<anyhow::Result<_>>()?;
    for line in &r.local.records {
        dnsight_resolver::local::check_line(line)
            .map_err(|e| anyhow!("{f}: [resolver.local] records: {e}"))?;
    }
    cfg.policy.local.records = r.local.records.clone();
    cfg.policy.local.files = r.local.files.iter().map(|p| rel(base_dir, p)).collect();
    if let Some(t) = r.local.ttl {
        cfg.policy.local.ttl = t;
    }
    if let Some(p) = r.local.ptr {
        cfg.policy.local.ptr = p;
    }
    let mut seen_zones: Vec<(Vec<u8>, String)> = Vec::new();
    let own = r
        .blocking
        .group
        .iter()
        .filter(|g| g.upstreams.is_some())
        .count();
    if own > dnsight_resolver::policy::MAX_VIEWS {
        bail!("{f}: [[resolver.blocking.group]]: {own} groups have upstreams of their own; at most {} may", dnsight_resolver::policy::MAX_VIEWS);
    }
    for (i, fw) in r.forward.iter().enumerate() {
        let key = format!("{f}: [[resolver.forward]] #{}", i + 1);
        if fw.zones.is_empty() {
            bail!("{key}: `zones` is empty; list domains and address blocks, e.g. zones = [\"corp.example\", \"10.20.0.0/16\"]");
        }
        if fw.upstreams.is_empty() {
            bail!("{key}: `upstreams` is empty; give the zones' servers, e.g. upstreams = [\"10.20.0.10\"]");
        }
        for z in &fw.zones {
            for w in
                dnsight_resolver::route::zone_names(z).map_err(|e| anyhow!("{key} zones: {e}"))?
            {
                if let Some((_, other)) = seen_zones.iter().find(|(x, _)| *x == w) {
                    bail!(
                        "{key} zones: {z:?} is already forwarded by {other}; give each zone once"
                    );
                }
                seen_zones.push((w, format!("{key} ({z:?})")));
            }
        }
        cfg.forwards.push(dnsight_resolver::ForwardSpec {
            zones: fw.zones.clone(),
            upstreams: fw
                .upstreams
                .iter()
                .map(|u| parse_upstream(u, &format!("{key} upstreams")))
                .collect::<anyhow::Result<_>>()?,
            internal_only: fw.internal_only,
        });
    }
    if let Some(st) = &r.upstream_strategy {
        cfg.upstream_strategy = match st.as_str() {
            "in_order" => dnsight_resolver::Strategy::InOrder,
            "fastest" => dnsight_resolver::Strategy::Fastest,
            other => bail!("{f}: [resolver] upstream_strategy = {other:?}: use \"in_order\" (failover) or \"fastest\" (all at once, first answer wins)"),
        };
    }
    if let Some(ms) = r.upstream_timeout_ms {
        if ms == 0 || ms > 30_000 {
            bail!("{f}: [resolver] upstream_timeout_ms = {ms}: use 1..=30000");
        }
        cfg.upstream_timeout = Duration::from_millis(ms);
    }
    cfg.dot_listen = r
        .dot_listen
        .iter()
        .map(|l| parse_listen(l, &format!("{f}: [resolver] dot_listen")))
        .collect::<anyhow::Result<_>>()?;
    cfg.doh_listen = r
        .doh_listen
        .iter()
        .map(|l| parse_listen(l, &format!("{f}: [resolver] doh_listen")))
        .collect::<anyhow::Result<_>>()?;
    if let Some(p) = r.doh_path {
        if !p.starts_with('/') {
            bail!("{f}: [resolver] doh_path = {p:?}: must start with /, e.g. \"/dns-query\"");
        }
        cfg.doh_path = p;
    }
    match (r.tls_cert, r.tls_key) {
        (Some(c), Some(k)) => {
            cfg.tls = Some(dnsight_resolver::TlsFiles {
                cert: rel(base_dir, &c),
                key: rel(base_dir, &k),
            })
        }
        (None, None) => {
            if !cfg.dot_listen.is_empty() || !cfg.doh_listen.is_empty() {
                bail!("{f}: [resolver] dot_listen/doh_listen need tls_cert = \"cert.pem\" and tls_key = \"key.pem\"");
            }
        }
        _ => bail!("{f}: [resolver] tls_cert and tls_key go together: set both"),
    }
    cfg.upstream_ca = r.upstream_ca.map(|p| rel(base_dir, &p));
    if let Some(s) = r.health_interval_secs {
        cfg.health_interval = Duration::from_secs(s.max(1));
    }
    if let Some(acl) = r.acl {
        cfg.rules.acl = parse_cidrs(&acl, &format!("{f}: [resolver] acl"))?;
        if cfg.rules.acl.iter().any(|c| c.prefix_len() == 0) {
            tracing::warn!("{f}: [resolver] acl contains a /0 block: this is an open resolver");
        }
    }
    if let Some(b) = r.minimal_any {
        cfg.rules.minimal_any = b;
    }
    if let Some(n) = r.max_query_size {
        if !(12..=65535).contains(&n) {
            bail!("{f}: [resolver] max_query_size = {n}: use 12..=65535");
        }
        cfg.rules.max_query_size = n;
    }
    if let Some(b) = r.event_answers {
        cfg.rules.event_answers = b;
    }
    if let Some(n) = r.udp_batch {
        cfg.udp_batch = n.clamp(1, 64);
    }
    if let Some(n) = r.udp_workers {
        cfg.udp_workers = n.min(256);
    }
    if let Some(s) = r.tcp_idle_timeout_secs {
        cfg.tcp_idle_timeout = Duration::from_secs(s.clamp(1, 3600));
    }
    if let Some(n) = r.max_tcp_connections {
        cfg.max_tcp_connections = n.max(1);
    }
    if let Some(n) = r.event_queue {
        if n == 0 {
            bail!("{f}: [resolver] event_queue = 0: the queue needs room for at least one event (default 65536)");
        }
        cfg.event_queue = n;
    }
    let c = r.cache;
    let d = CacheConfig::default();
    cfg.cache = CacheConfig {
        max_entries: c.max_entries.unwrap_or(d.max_entries),
        min_ttl: c.min_ttl.unwrap_or(d.min_ttl),
        max_ttl: c.max_ttl.unwrap_or(d.max_ttl),
        max_negative_ttl: c.max_negative_ttl.unwrap_or(d.max_negative_ttl),
        serve_stale: c.serve_stale.unwrap_or(d.serve_stale),
        prefetch: c.prefetch.unwrap_or(d.prefetch),
    };
    if cfg.cache.min_ttl > cfg.cache.max_ttl {
        bail!(
            "{f}: [resolver.cache] min_ttl ({}) is larger than max_ttl ({})",
            cfg.cache.min_ttl,
            cfg.cache.max_ttl
        );
    }
    let rl = r.rate_limit;
    if let Some(q) = rl.qps {
        cfg.rate_limit_qps = q;
        cfg.rate_limit_burst = q.saturating_mul(2);
    }
    if let Some(b) = rl.burst {
        cfg.rate_limit_burst = b;
    }
    if let Some(e) = rl.exempt {
        cfg.rate_limit_exempt = parse_cidrs(&e, &format!("{f}: [resolver.rate_limit] exempt"))?;
    }
    let b = r.blocking;
    let v4 = b
        .sinkhole_v4
        .as_deref()
        .map(|s| {
            s.parse().map_err(|_| {
                anyhow!("{f}: [resolver.blocking] sinkhole_v4 = {s:?} is not an IPv4 address")
            })
        })
        .transpose()?;
    let v6 = b
        .sinkhole_v6
        .as_deref()
        .map(|s| {
            s.parse().map_err(|_| {
                anyhow!("{f}: [resolver.blocking] sinkhole_v6 = {s:?} is not an IPv6 address")
            })
        })
        .transpose()?;
    if let Some(a) = &b.answer {
        cfg.policy.default_answer =
            parse_answer(a, &format!("{f}: [resolver.blocking] answer"), v4, v6)?;
    }
    if let Some(t) = b.ttl {
        cfg.policy.block_ttl = t;
    }
    let poll = Duration::from_secs(b.poll_interval_secs.unwrap_or(30));
    cfg.list_poll_interval = poll;
    let mut names = Vec::new();
    let mut fetches = Vec::new();
    for (i, l) in b.list.iter().enumerate() {
        let path = rel(base_dir, &l.path);
        let name = l
            .name
            .clone()
            .unwrap_or_else(|| dnsight_resolver::policy::list_name(&path));
        if names.contains(&name) {
            bail!("{f}: [[resolver.blocking.list]] #{}: duplicate list name {name:?}; give each list a distinct `name`", i + 1);
        }
        let role = match l.role.as_deref().unwrap_or("block") {
            "block" => ListRole::Block,
            "allow" => ListRole::Allow,
            other => bail!("{f}: [[resolver.blocking.list]] {name:?}: role = {other:?}; use \"block\" or \"allow\""),
        };
        if let Some(url) = &l.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("{f}: [[resolver.blocking.list]] {name:?}: url = {url:?}: use an http:// or https:// address");
            }
            let every = l.refresh_secs.unwrap_or(86_400);
            if every < 60 {
                bail!("{f}: [[resolver.blocking.list]] {name:?}: refresh_secs = {every}: use at least 60");
            }
            fetches.push(ListFetch::new(
                &name,
                url,
                path.clone(),
                Duration::from_secs(every),
                crate::fetch::Check::List,
            ));
        } else if l.refresh_secs.is_some() {
            bail!("{f}: [[resolver.blocking.list]] {name:?}: refresh_secs needs a url; add url = \"https://...\" or remove refresh_secs");
        }
        names.push(name.clone());
        cfg.policy.lists.push(ListSpec { name, path, role });
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    for p in &o.blocklists {
        let path = cwd.join(p);
        let mut name = dnsight_resolver::policy::list_name(&path);
        while names.contains(&name) {
            name.push('\'');
        }
        names.push(name.clone());
        cfg.policy.lists.push(ListSpec {
            name,
            path,
            role: ListRole::Block,
        });
    }
    let csv = super::InventoryCsv::read(&s.inventory, base_dir)?;
    let table = super::GroupTable::build(&s.inventory, csv.as_ref(), &b.group, &f.to_string())?;
    let mut specs: Vec<GroupSpec> = Vec::new();
    for g in &b.group {
        let key = format!("{f}: [[resolver.blocking.group]] {:?}", g.name);
        let name = dnsight_engine::inventory::group_name(&g.name)
            .map(|n| n.to_string())
            .unwrap_or_default();
        let clients = table.cidrs(&name);
        if name != "default" && clients.is_empty() {
            bail!("{key}: `clients` is empty and [inventory] has no group {name:?}; list CIDR blocks, e.g. clients = [\"10.9.0.0/16\"], or define the group in [inventory] groups or the inventory CSV");
        }
        if let Some(ls) = &g.lists {
            for l in ls {
                if !names.contains(l) {
                    bail!(
                        "{key}: lists: no list named {l:?}; known lists: {}",
                        names.join(", ")
                    );
                }
            }
        }
        let answer = g
            .answer
            .as_deref()
            .map(|a| parse_answer(a, &format!("{key} answer"), v4, v6))
            .transpose()?;
        let upstreams = match &g.upstreams {
            None => None,
            Some(_) if name == "default" => bail!("{key}: upstreams: the default group's upstreams are [resolver] upstreams; set them there"),
            Some(u) if u.is_empty() => bail!("{key}: upstreams = []: give at least one, or remove the key to use [resolver] upstreams"),
            Some(u) => Some(
                u.iter()
                    .map(|x| parse_upstream(x, &format!("{key} upstreams")))
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
        };
        specs.push(GroupSpec {
            name,
            clients,
            lists: g.lists.clone(),
            answer,
            upstreams,
        });
    }
    // groups only the inventory defines: blocked like the default group
    let (dl, da) = specs
        .iter()
        .find(|g| g.name == "default")
        .map(|g| (g.lists.clone(), g.answer.clone()))
        .unwrap_or((None, None));
    for name in &table.names {
        if !specs.iter().any(|g| &g.name == name) {
            specs.push(GroupSpec {
                name: name.clone(),
                clients: table.cidrs(name),
                lists: dl.clone(),
                answer: da.clone(),
                upstreams: None,
            });
        }
    }
    cfg.policy.groups = specs;
    // DNSSEC
    if let Some(m) = &r.dnssec {
        cfg.dnssec = match m.as_str() {
            "pass" => dnsight_resolver::DnssecMode::Pass,
            "validate" => dnsight_resolver::DnssecMode::Validate,
            other => bail!("{f}: [resolver] dnssec = {other:?}: use \"pass\" (AD only from dnssec_trusted_upstreams) or \"validate\" (dnsight validates; bogus answers get SERVFAIL)"),
        };
    }
    if let Some(p) = &r.dnssec_trust_anchor {
        if cfg.dnssec != dnsight_resolver::DnssecMode::Validate {
            bail!("{f}: [resolver] dnssec_trust_anchor is only used with dnssec = \"validate\"; set it");
        }
        let p = rel(base_dir, p);
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "{f}: [resolver] dnssec_trust_anchor: cannot read {}",
                p.display()
            )
        })?;
        dnsight_resolver::dnssec::read_anchors(&text)
            .map_err(|e| anyhow!("{f}: [resolver] dnssec_trust_anchor {}: {e}", p.display()))?;
        cfg.dnssec_trust_anchor = Some(p);
    }
    for t in &r.dnssec_trusted_upstreams {
        let key = format!("{f}: [resolver] dnssec_trusted_upstreams");
        let a = parse_addr(t, 53).ok_or_else(|| anyhow!("{key}: {t:?} is not ADDR[:PORT]"))?;
        let mut found = false;
        let groups = cfg
            .policy
            .groups
            .iter_mut()
            .filter_map(|g| g.upstreams.as_mut());
        for set in std::iter::once(&mut cfg.upstreams)
            .chain(cfg.forwards.iter_mut().map(|fw| &mut fw.upstreams))
            .chain(groups)
        {
            for u in set.iter_mut().filter(|u| u.addr == a) {
                u.trusted = true;
                found = true;
            }
        }
        if !found {
            bail!("{key}: {t:?} is none of the upstreams (default, [[resolver.forward]] or group upstreams)");
        }
    }
    let mut sources = Vec::new();
    for (i, src) in s.sources.iter().enumerate() {
        let key = format!("{f}: [[source]] #{}", i + 1);
        sources.push(match src.kind.as_str() {
            "dnstap" => {
                let l = src.listen.as_deref().ok_or_else(|| anyhow!("{key}: kind = \"dnstap\" needs listen = \"unix:/path/to.sock\" or \"tcp:127.0.0.1:6000\""))?;
                if let Some(p) = l.strip_prefix("unix:") {
                    SourceConfig::DnstapUnix(rel(base_dir, Path::new(p)))
                } else if let Some(a) = l.strip_prefix("tcp:") {
                    SourceConfig::DnstapTcp(parse_listen(a, &format!("{key} listen"))?)
                } else {
                    bail!("{key}: listen = {l:?}: prefix it with unix: or tcp:");
                }
            }
            k @ ("zeek" | "jsonl" | "log") => {
                let p = src.path.as_ref().ok_or_else(|| anyhow!("{key}: kind = {k:?} needs path = \"...\""))?;
                let format = match &src.format {
                    Some(f) => Some(parse_format(f).map_err(|e| anyhow!("{key}: format: {e}"))?),
                    None => None,
                };
                if let Some(tz) = &src.log_tz {
                    parse_log_tz(tz).map_err(|e| anyhow!("{key}: log_tz: {e}"))?;
                }
                SourceConfig::Tail { kind: k.to_string(), path: rel(base_dir, p), format, log_tz: src.log_tz.clone() }
            }
            "syslog" => {
                let l = src.listen.as_deref().ok_or_else(|| anyhow!("{key}: kind = \"syslog\" needs listen = \"udp:0.0.0.0:5514\" or \"tcp:0.0.0.0:5514\""))?;
                let (tcp, a) = if let Some(a) = l.strip_prefix("udp:") {
                    (false, a)
                } else if let Some(a) = l.strip_prefix("tcp:") {
                    (true, a)
                } else if let Some(a) = l.strip_prefix("tls:") {
                    (true, a)
                } else {
                    bail!("{key}: listen = {l:?}: prefix it with udp:, tcp: or tls:");
                };
                let tls = match (l.starts_with("tls:"), &src.tls_cert, &src.tls_key) {
                    (true, Some(c), Some(k)) => Some((rel(base_dir, c), rel(base_dir, k))),
                    (true, _, _) => bail!("{key}: listen = {l:?} needs tls_cert = \"cert.pem\" and tls_key = \"key.pem\""),
                    (false, None, None) => None,
                    (false, _, _) => bail!("{key}: tls_cert and tls_key need listen = \"tls:ADDR:PORT\""),
                };
                if let Some(tz) = &src.log_tz {
                    parse_log_tz(tz).map_err(|e| anyhow!("{key}: log_tz: {e}"))?;
                }
                SourceConfig::Syslog {
                    tcp,
                    addr: parse_listen(a, &format!("{key} listen"))?,
                    allow: parse_cidrs(&src.allow, &format!("{key} allow"))?,
                    log_tz: src.log_tz.clone(),
                    tls,
                }
            }
            "capture" => {
                let i = src.interface.as_deref().ok_or_else(|| anyhow!("{key}: kind = \"capture\" needs interface = \"eth0\""))?;
                if i.is_empty() || i.len() > 15 {
                    bail!("{key}: interface = {i:?} is not an interface name (1-15 characters, e.g. eth0)");
                }
                SourceConfig::Capture { interface: i.to_string(), dns_ports: src.dns_ports.clone() }
            }
            other => bail!("{key}: unknown kind {other:?}; use dnstap, zeek, jsonl, log, syslog or capture"),
        });
    }
    Ok(ServeSettings {
        resolver: cfg,
        stats_interval: Duration::from_secs(r.stats_interval_secs.unwrap_or(300)),
        sources,
        fetches,
    })
}

/// Reads the file (if any) and applies the overrides.
pub fn load(file: Option<&Path>, o: &ServeOverrides) -> anyhow::Result<ServeSettings> {
    match file {
        Some(p) => {
            let b = std::fs::read(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?;
            let text = String::from_utf8_lossy(&b);
            check_top_level(&text, p, super::ALL_SECTIONS)?;
            let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
            validate(parse_sections(&text, p)?, p, &base, o)
        }
        None => validate(
            ServeSections::default(),
            Path::new("<flags>"),
            Path::new("."),
            o,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
    }

    #[test]
    fn serve_example_parses_and_lists_load() {
        let p = examples_dir().join("serve.toml");
        let s = load(Some(&p), &ServeOverrides::default()).unwrap();
        let r = &s.resolver;
        assert_eq!(
            r.listen,
            vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(r.upstreams.len(), 2);
        assert_eq!(r.upstreams[1].proto, UpstreamProto::Tcp);
        assert!(r.policy.lists.len() >= 2);
        let policy = r.policy.build().unwrap();
        assert!(policy.total_rules() > 0);
        assert_eq!(policy.groups.len(), 2);
        assert_eq!(s.sources.len(), 1);
        assert_eq!(r.forwards.len(), 2);
        assert_eq!(r.upstream_strategy, dnsight_resolver::Strategy::InOrder);
        assert!(policy.local.len() >= 3, "{}", policy.local.len());
        assert_eq!(
            policy.local.rejected, 0,
            "{:?}",
            policy.local.first_rejected
        );
        assert!(r.forwards[0].internal_only);
        assert_eq!(r.forwards[0].zones[..2], ["corp.example", "10.20.0.0/16"]);
    }

    #[test]
    fn the_readme_office_config_is_valid() {
        let readme = std::fs::read_to_string(examples_dir().join("../README.md")).unwrap();
        let at = readme.find("**In front of an office network.**").unwrap();
        let block = readme[at..].split("```toml\n").nth(1).unwrap();
        let text = block.split("```").next().unwrap();
        let f = Path::new("README.md");
        let s = validate(
            parse_sections(text, f).unwrap(),
            f,
            Path::new("."),
            &ServeOverrides::default(),
        )
        .unwrap();
        let r = &s.resolver;
        assert_eq!((r.forwards.len(), r.upstreams.len()), (1, 2));
        assert_eq!(r.policy.view_upstreams().len(), 1);
        assert_eq!(r.policy.local.records.len(), 2);
    }

    #[test]
    fn groups_may_have_their_own_upstreams() {
        let f = Path::new("x.toml");
        let parse = |t: &str| {
            parse_sections(t, f)
                .and_then(|s| validate(s, f, Path::new("."), &ServeOverrides::default()))
        };
        let s = parse("[resolver]\nupstreams = [\"10.0.0.1\"]\n[[resolver.blocking.group]]\nname = \"guests\"\nclients = [\"10.99.0.0/16\"]\nupstreams = [\"tls://9.9.9.11#dns11.quad9.net\"]\n[[resolver.blocking.group]]\nname = \"office\"\nclients = [\"10.1.0.0/16\"]\n").unwrap();
        let p = s.resolver.policy.build().unwrap();
        assert_eq!(p.views, 1);
        assert_eq!(p.group_of("10.99.1.1".parse().unwrap()).view, 1);
        assert_eq!(p.group_of("10.1.1.1".parse().unwrap()).view, 0);
        assert_eq!(
            s.resolver.policy.view_upstreams()[0][0].proto,
            UpstreamProto::Dot
        );
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        let e =
            err("[[resolver.blocking.group]]\nname = \"default\"\nupstreams = [\"10.0.0.1\"]\n");
        assert!(e.contains("[resolver] upstreams"), "{e}");
        let e = err("[[resolver.blocking.group]]\nname = \"g\"\nclients = [\"10.0.0.0/8\"]\nupstreams = []\n");
        assert!(e.contains("upstreams = []"), "{e}");
    }

    #[test]
    fn dnssec_keys_are_checked() {
        let f = Path::new("x.toml");
        let dir = tempfile::tempdir().unwrap();
        let parse = |t: &str| {
            parse_sections(t, f)
                .and_then(|s| validate(s, f, dir.path(), &ServeOverrides::default()))
        };
        let s = parse("[resolver]\nupstreams = [\"10.0.0.1\", \"10.0.0.2:5300\"]\ndnssec_trusted_upstreams = [\"10.0.0.2:5300\"]\n[[resolver.forward]]\nzones = [\"corp.example\"]\nupstreams = [\"10.0.0.2:5300\"]\n").unwrap();
        let r = &s.resolver;
        assert_eq!(r.dnssec, dnsight_resolver::DnssecMode::Pass);
        assert!(!r.upstreams[0].trusted && r.upstreams[1].trusted);
        assert!(r.forwards[0].upstreams[0].trusted);
        std::fs::write(
            dir.path().join("anchor.key"),
            "dnssec.example. IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("bad.key"),
            "dnssec.example. IN DS 1 13 2 ab\n",
        )
        .unwrap();
        let s = parse("[resolver]\ndnssec = \"validate\"\ndnssec_trust_anchor = \"anchor.key\"\n")
            .unwrap();
        assert_eq!(s.resolver.dnssec, dnsight_resolver::DnssecMode::Validate);
        assert_eq!(
            s.resolver.dnssec_trust_anchor,
            Some(dir.path().join("anchor.key"))
        );
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        let e = err("[resolver]\ndnssec = \"strict\"\n");
        assert!(e.contains("validate"), "{e}");
        let e = err("[resolver]\ndnssec_trust_anchor = \"anchor.key\"\n");
        assert!(e.contains("dnssec = \"validate\""), "{e}");
        let e = err("[resolver]\ndnssec = \"validate\"\ndnssec_trust_anchor = \"bad.key\"\n");
        assert!(e.contains("DNSKEY"), "{e}");
        let e = err(
            "[resolver]\nupstreams = [\"10.0.0.1\"]\ndnssec_trusted_upstreams = [\"10.9.9.9\"]\n",
        );
        assert!(e.contains("none of the upstreams"), "{e}");
    }

    #[test]
    fn forward_zones_are_checked() {
        let f = Path::new("x.toml");
        let parse = |t: &str| {
            parse_sections(t, f)
                .and_then(|s| validate(s, f, Path::new("."), &ServeOverrides::default()))
        };
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        let ok = parse("[[resolver.forward]]\nzones = [\"corp.example\", \"fd00:20::/32\"]\nupstreams = [\"10.20.0.10\", \"tls://10.20.0.11#dc2.corp.example\"]\n").unwrap();
        let fw = &ok.resolver.forwards[0];
        assert_eq!((fw.upstreams.len(), fw.internal_only), (2, false));
        let e = err("[[resolver.forward]]\nzones = [\"10.20\"]\nupstreams = [\"10.0.0.1\"]\n");
        assert!(e.contains("#1") && e.contains("10.20.0.0/16"), "{e}");
        let e = err("[[resolver.forward]]\nzones = [\"corp.example\"]\nupstreams = []\n");
        assert!(e.contains("upstreams") && e.contains("empty"), "{e}");
        let e = err("[[resolver.forward]]\nzones = [\"corp.example\"]\nupstreams = [\"dc1\"]\n");
        assert!(e.contains("#1 upstreams"), "{e}");
        let e = err("[[resolver.forward]]\nzones = [\"10.20.0.0/16\"]\nupstreams = [\"10.0.0.1\"]\n[[resolver.forward]]\nzones = [\"20.10.in-addr.arpa\"]\nupstreams = [\"10.0.0.2\"]\n");
        assert!(
            e.contains("#2") && e.contains("already forwarded by") && e.contains("#1"),
            "{e}"
        );
        let e = err("[resolver]\nupstream_strategy = \"random\"\n");
        assert!(
            e.contains("upstream_strategy") && e.contains("fastest"),
            "{e}"
        );
        let e = err("[resolver.local]\nrecords = [\"nas.office.example MX 10 mail\"]\n");
        assert!(
            e.contains("[resolver.local] records") && e.contains("NAME [TTL] TYPE DATA"),
            "{e}"
        );
        let e = err("[[resolver.forward]]\nzone = \"corp.example\"\nupstreams = [\"10.0.0.1\"]\n");
        assert!(e.contains("zone"), "{e}");
    }

    #[test]
    fn every_example_config_passes_the_top_level_check() {
        for e in std::fs::read_dir(examples_dir()).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&p).unwrap();
                check_top_level(&text, &p, super::super::ALL_SECTIONS).unwrap();
                let s = parse_sections(&text, &p).unwrap();
                validate(s, &p, p.parent().unwrap(), &ServeOverrides::default()).unwrap();
            }
        }
    }

    #[test]
    fn inventory_flag_gives_the_resolver_the_csv_groups() {
        let d = tempfile::tempdir().unwrap();
        let csv = d.path().join("inv.csv");
        std::fs::write(&csv, "ip,name,group\n10.0.0.9,tablet,kids\n").unwrap();
        let conf = d.path().join("c.toml");
        std::fs::write(
            &conf,
            "[[resolver.blocking.group]]\nname = \"kids\"\nanswer = \"refused\"\n",
        )
        .unwrap();
        // without the CSV the group has no devices: a clear error
        assert!(load(Some(&conf), &ServeOverrides::default()).is_err());
        let o = ServeOverrides {
            inventory: Some(csv),
            ..Default::default()
        };
        let s = load(Some(&conf), &o).unwrap();
        let policy = s.resolver.policy.build().unwrap();
        assert_eq!(policy.group_of("10.0.0.9".parse().unwrap()).name, "kids");
        assert_eq!(policy.group_of("10.0.0.8".parse().unwrap()).name, "default");
    }

    #[test]
    fn flags_override_the_file() {
        let o = ServeOverrides {
            listen: vec!["127.0.0.1:5390".into()],
            upstreams: vec!["127.0.0.1:5300".into(), "tcp://[::1]:53".into()],
            blocklists: vec!["x.txt".into()],
            ..Default::default()
        };
        let s = load(None, &o).unwrap();
        assert_eq!(s.resolver.listen[0].port(), 5390);
        assert_eq!(s.resolver.upstreams[1].addr, "[::1]:53".parse().unwrap());
        assert_eq!(s.resolver.policy.lists[0].name, "x.txt");
        let u = parse_upstream("https://9.9.9.9/dns-query#dns.quad9.net", "k").unwrap();
        assert_eq!(
            (
                u.proto,
                u.addr.port(),
                u.path.as_deref(),
                u.tls_name.as_deref()
            ),
            (
                UpstreamProto::Doh,
                443,
                Some("/dns-query"),
                Some("dns.quad9.net")
            )
        );
        let u = parse_upstream("tls://[2620:fe::fe]#dns.quad9.net", "k").unwrap();
        assert_eq!((u.proto, u.addr.port()), (UpstreamProto::Dot, 853));
        assert!(parse_upstream("9.9.9.9#x", "k").is_err());
    }

    #[test]
    fn log_sources_take_a_format_and_a_zone() {
        let f = Path::new("x.toml");
        let t = "[resolver]\nlisten = []\n[[source]]\nkind = \"log\"\npath = \"/var/log/pihole/pihole.log\"\nformat = \"dnsmasq\"\nlog_tz = \"Europe/Paris\"\n[[source]]\nkind = \"log\"\npath = \"dns.log\"\n";
        let s = validate(
            parse_sections(t, f).unwrap(),
            f,
            Path::new("/etc/dnsight"),
            &ServeOverrides::default(),
        )
        .unwrap();
        assert_eq!(
            s.sources,
            [
                SourceConfig::Tail {
                    kind: "log".into(),
                    path: "/var/log/pihole/pihole.log".into(),
                    format: dnsight_ingest::Format::from_name("dnsmasq"),
                    log_tz: Some("Europe/Paris".into()),
                },
                SourceConfig::Tail {
                    kind: "log".into(),
                    path: "/etc/dnsight/dns.log".into(),
                    format: None,
                    log_tz: None,
                },
            ]
        );
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let f = Path::new("x.toml");
        let err = |t: &str| {
            let r = parse_sections(t, f)
                .and_then(|s| validate(s, f, Path::new("."), &ServeOverrides::default()));
            format!("{:#}", r.unwrap_err())
        };
        let e = err("[resolver]\nlisten_on = [\"1.2.3.4:53\"]\n");
        assert!(e.contains("listen_on") && e.contains("[resolver]"), "{e}");
        let e = err("[resolver]\nlisten = [\"localhost\"]\n");
        assert!(e.contains("listen") && e.contains("127.0.0.1:5353"), "{e}");
        let e = err("[resolver]\nupstreams = [\"https://dns.example/q\"]\n");
        assert!(e.contains("bootstrap") && e.contains("#NAME"), "{e}");
        let e = err("[resolver]\nupstreams = [\"quic://9.9.9.9\"]\n");
        assert!(e.contains("unsupported scheme"), "{e}");
        let e = err("[resolver]\ndot_listen = [\"127.0.0.1:853\"]\n");
        assert!(e.contains("tls_cert"), "{e}");
        let e = err("[resolver.blocking]\nanswer = \"sinkhole\"\n");
        assert!(e.contains("sinkhole_v4"), "{e}");
        let e = err("[resolver]\nacl = [\"10.0.0.0/40\"]\n");
        assert!(e.contains("acl") && e.contains("prefix"), "{e}");
        let e = err("[[resolver.blocking.list]]\npath = \"a.txt\"\n[[resolver.blocking.group]]\nname = \"kids\"\nclients = [\"10.0.0.0/8\"]\nlists = [\"b\"]\n");
        assert!(
            e.contains("no list named \"b\"") && e.contains("a.txt"),
            "{e}"
        );
        let e = err("[[source]]\nkind = \"dnstap\"\n");
        assert!(e.contains("unix:"), "{e}");
        let e = err("[[source]]\nkind = \"syslog\"\nlisten = \"0.0.0.0:5514\"\n");
        assert!(e.contains("udp:"), "{e}");
        let e = err("[[source]]\nkind = \"syslog\"\nlisten = \"udp:0.0.0.0:5514\"\nallow = [\"10.0.0.0/33\"]\n");
        assert!(e.contains("allow"), "{e}");
        let e = err("[[source]]\nkind = \"syslog\"\nlisten = \"tls:0.0.0.0:6514\"\n");
        assert!(e.contains("tls_cert"), "{e}");
        let e = err("[[source]]\nkind = \"syslog\"\nlisten = \"tcp:0.0.0.0:6514\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n");
        assert!(e.contains("tls:ADDR:PORT"), "{e}");
        let e = err("[[source]]\nkind = \"log\"\npath = \"q.log\"\nformat = \"pihole\"\n");
        assert!(e.contains("format") && e.contains("dnsmasq"), "{e}");
        let e = err("[[source]]\nkind = \"log\"\npath = \"q.log\"\nlog_tz = \"Mars/Base\"\n");
        assert!(e.contains("log_tz") && e.contains("IANA"), "{e}");
        let e = format!(
            "{:#}",
            check_top_level("[resolvr]\n", f, &[SECTIONS]).unwrap_err()
        );
        assert!(e.contains("resolvr") && e.contains("resolver"), "{e}");
    }
}
