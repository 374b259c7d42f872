//! Third-party DNS query logs: one registry of line formats ([`FORMATS`]), one reader.
//!
//! Every format here is a log with one record a line: resolver query logs (BIND and the
//! BIND-derived appliances, Unbound, dnsmasq/Pi-hole, PowerDNS Recursor, CoreDNS, Technitium,
//! Windows DNS Server's debug log and its analytic events as Event XML or PowerShell JSON),
//! cloud resolvers (AWS Route 53 Resolver and public zone
//! logs, Google Cloud DNS, Azure Firewall DNS proxy), services and sensors (Cisco Umbrella CSV,
//! Cloudflare Logpush/Gateway DNS, AdGuard Home `querylog.json`, Suricata EVE `dns`). Each entry
//! of [`FORMATS`] names the format, says what it lacks compared to a packet capture (shown in the
//! `analyze` report per input), and has one parse function.
//!
//! **Sniffing is trial parsing**: the first lines of the input are given to each format's parser
//! in registry order; the first format that turns a line into an event wins. There is no second
//! description of a format that could drift from its parser.
//!
//! **Envelopes** are unwrapped before a line reaches its format: a syslog header (RFC 3164 with
//! or without `<PRI>` and host, RFC 5424, rsyslog's ISO-timestamp file format), or a JSON
//! container-log wrapper (`{"log": ...}`, `{"message": ...}` with `time`/`@timestamp`). The
//! envelope's time is used when the message has none of its own. So a Pi-hole log, the same
//! lines forwarded by rsyslog, and the same lines from `kubectl logs` in JSON all read alike.
//! Cloud envelopes (CloudWatch Logs, Firehose, Azure `records`, Pub/Sub; see `cloud.rs`) are
//! removed first, each record inside going through the same steps; inputs that are documents
//! (JSON arrays, pretty-printed JSON, Event XML) were already made one record a line by
//! [`crate::doc`].
//!
//! **Time**: zone-less timestamps (BIND, dnsmasq/syslog, Windows, Technitium `Local`) are read
//! in [`crate::IngestOptions::log_tz`] (UTC unless told otherwise). Syslog's RFC 3164 stamps
//! have no year: the current year is assumed, or the previous one when that would put the line
//! more than two days in the future. CoreDNS's plain log has no time at all: the time the line
//! is read is used (right for a followed log, approximate for an old file).
//!
//! **Pairing**: formats that log a query and its reply on separate lines (Unbound with
//! `log-queries` and `log-replies`, dnsmasq, Windows debug log and analytic events, PowerDNS
//! Recursor's structured Question/Answer lines, Suricata) keep the query pending
//! in a bounded table ([`Pending`]) until its reply line, its timeout in event time
//! (`pair_timeout_secs`), or the end of input; whatever is pending and answered is also emitted
//! whenever the buffered input is used up, so a followed log does not hold events back.
//!
//! Rejects, counted by reason and skipped (never a panic): `log.bad_line` (not the format),
//! `log.bad_time`, `log.bad_addr`, `log.bad_payload` and `log.payload_too_large` (an envelope's
//! base64/gzip data), `log.no_client` (a record without a client address, e.g. a
//! Cloud DNS record of a non-VM source), `log.reply_without_query` (dnsmasq reply lines whose
//! query line was not seen: the client is unknown), `log.bad_json`, `log.line_too_long`,
//! `log.read_error`. Lines the format writes that are not about a query (service start-up,
//! dnsmasq's `forwarded`, the Windows log's header) are skipped without being counted as
//! rejects.

mod cloud;
mod json;
mod text;
mod winevent;

pub(crate) use text::syslog_app;

use crate::jsonl::{CappedLines, MAX_LINE};
use crate::{EventReader, IngestError, IngestOptions, IngestStats};
use dnsight_model::{Answer, DnsEvent, Flags, Name, RData, Source, Ts};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr};

/// The line formats, a closed list (see [`FORMATS`] for what each is).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogFormat {
    Route53Resolver,
    SuricataEve,
    AdGuard,
    GcpDns,
    AzureFirewall,
    Cloudflare,
    Bind,
    Unbound,
    Dnsmasq,
    PowerDns,
    CoreDns,
    WindowsDebug,
    Technitium,
    Route53Public,
    Umbrella,
    WindowsEvents,
}

type ParseFn = fn(&mut Parser, &Msg, &mut Vec<DnsEvent>) -> Result<(), &'static str>;

/// One entry of the registry.
pub struct FormatInfo {
    pub format: LogFormat,
    /// Short name, used in reports and in `format = "..."` of a `[[source]]`.
    pub name: &'static str,
    /// What writes it.
    pub title: &'static str,
    /// What the format does not carry (so which detections its events cannot feed).
    pub lacks: &'static str,
    /// Its records are JSON objects (tried on lines starting with `{`).
    json: bool,
    parse: ParseFn,
}

/// The registry: sniffing tries the formats in this order.
pub static FORMATS: &[FormatInfo] = &[
    FormatInfo {
        format: LogFormat::Route53Resolver,
        name: "route53-resolver",
        title: "AWS Route 53 Resolver query logs (JSON: S3, CloudWatch, Firehose)",
        lacks: "answer TTLs; response flags and sizes",
        json: true,
        parse: json::route53_resolver,
    },
    FormatInfo {
        format: LogFormat::SuricataEve,
        name: "suricata",
        title: "Suricata EVE JSON, event_type dns",
        lacks: "message sizes",
        json: true,
        parse: json::suricata,
    },
    FormatInfo {
        format: LogFormat::AdGuard,
        name: "adguard",
        title: "AdGuard Home querylog.json",
        lacks: "nothing that matters: the answer is the logged DNS message",
        json: true,
        parse: json::adguard,
    },
    FormatInfo {
        format: LogFormat::GcpDns,
        name: "gcp-dns",
        title: "Google Cloud DNS query logs (Cloud Logging JSON)",
        lacks: "client ports; response flags and sizes",
        json: true,
        parse: json::gcp,
    },
    FormatInfo {
        format: LogFormat::AzureFirewall,
        name: "azure-firewall",
        title: "Azure Firewall DNS proxy logs (AzureFirewallDnsProxy and AZFWDnsQuery JSON)",
        lacks: "answers (no new-country or answer-based detection)",
        json: true,
        parse: json::azure,
    },
    FormatInfo {
        format: LogFormat::Cloudflare,
        name: "cloudflare",
        title: "Cloudflare Logpush DNS logs and Gateway DNS logs (JSON)",
        lacks: "answers in DNS logs (Gateway logs have resolved IPs); flags and sizes",
        json: true,
        parse: json::cloudflare,
    },
    FormatInfo {
        format: LogFormat::Bind,
        name: "bind",
        title: "BIND querylog and security log, and BIND-derived appliances (Infoblox NIOS, EfficientIP)",
        lacks: "BIND's querylog has no rcode and no answers (Infoblox and EfficientIP add both): no NXDOMAIN or answer-based detection from a plain querylog",
        json: false,
        parse: text::bind,
    },
    FormatInfo {
        format: LogFormat::Unbound,
        name: "unbound",
        title: "Unbound log-queries / log-replies",
        lacks: "answers; rcode unless log-replies is on",
        json: false,
        parse: text::unbound,
    },
    FormatInfo {
        format: LogFormat::Dnsmasq,
        name: "dnsmasq",
        title: "dnsmasq and Pi-hole log-queries",
        lacks: "answer TTLs; second-resolution times; without log-queries=extra, replies are matched to queries by name",
        json: false,
        parse: text::dnsmasq,
    },
    FormatInfo {
        format: LogFormat::PowerDns,
        name: "powerdns",
        title: "PowerDNS Recursor query logging (quiet=no; classic and structured lines)",
        lacks: "answers; rcode in the classic format (structured logging's Answer lines carry it)",
        json: false,
        parse: text::powerdns,
    },
    FormatInfo {
        format: LogFormat::CoreDns,
        name: "coredns",
        title: "CoreDNS log plugin (common format)",
        lacks: "answers; a time of its own (the container log's or the read time is used)",
        json: false,
        parse: text::coredns,
    },
    FormatInfo {
        format: LogFormat::WindowsDebug,
        name: "windows-dns",
        title: "Windows DNS Server debug log (dns.log, packet logging)",
        lacks: "answers (the detail lines are not read); times in the server's local zone with 1 s resolution",
        json: false,
        parse: text::windows,
    },
    FormatInfo {
        format: LogFormat::WindowsEvents,
        name: "windows-events",
        title: "Windows DNS Server analytic events (Event XML from wevtutil or Event Viewer; Get-WinEvent | ConvertTo-Json; Winlogbeat or Elastic agent JSON)",
        lacks: "answer sections only where PacketData was kept; the server's own recursion (events 260-262) is not read",
        json: true,
        parse: winevent::windows_event,
    },
    FormatInfo {
        format: LogFormat::Technitium,
        name: "technitium",
        title: "Technitium DNS Server query log (log file)",
        lacks: "answer TTLs, flags and sizes",
        json: false,
        parse: text::technitium,
    },
    FormatInfo {
        format: LogFormat::Route53Public,
        name: "route53-public",
        title: "AWS Route 53 public hosted zone query logs",
        lacks: "the device: the client is the recursive resolver (or its EDNS subnet); answers",
        json: false,
        parse: text::route53_public,
    },
    FormatInfo {
        format: LogFormat::Umbrella,
        name: "umbrella",
        title: "Cisco Umbrella DNS logs (CSV)",
        lacks: "answers; client ports",
        json: false,
        parse: text::umbrella,
    },
];

impl LogFormat {
    pub fn info(self) -> &'static FormatInfo {
        FORMATS
            .iter()
            .find(|f| f.format == self)
            .expect("every format is in the registry")
    }
    pub fn name(self) -> &'static str {
        self.info().name
    }
    /// By registry name (as in `format = "dnsmasq"`).
    pub fn from_name(s: &str) -> Option<LogFormat> {
        FORMATS
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(s))
            .map(|f| f.format)
    }
}

pub use jiff::tz::TimeZone;

/// The zone for [`IngestOptions::log_tz`] from its configured name: an IANA name
/// (`Europe/Paris`), `UTC`, or `local` (the system's zone).
pub fn time_zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    match name {
        "local" => jiff::tz::TimeZone::try_system()
            .map_err(|e| format!("the system time zone is not known: {e}")),
        "UTC" | "utc" => Ok(jiff::tz::TimeZone::UTC),
        n => jiff::tz::TimeZone::get(n).map_err(|_| {
            format!("unknown time zone {n:?} (an IANA name such as Europe/Paris, UTC or local)")
        }),
    }
}

/// One record after its envelope was removed.
pub(crate) struct Msg<'a> {
    pub text: &'a str,
    /// The envelope's time (syslog header, container log), when it had one.
    pub ts: Option<Ts>,
}

/// Reject reasons of the reader itself.
const REASONS: (&str, &str) = ("log.read_error", "log.line_too_long");

/// Key of a query waiting for its reply line. Each format fills what it has (unused parts
/// stay zero).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PKey {
    pub client: IpAddr,
    pub port: u16,
    pub id: u32,
    pub name: Name,
    pub qtype: u16,
}

impl PKey {
    pub fn new(client: IpAddr, port: u16, id: u32, name: Name, qtype: u16) -> PKey {
        PKey {
            client,
            port,
            id,
            name,
            qtype,
        }
    }
}

/// Queries waiting for their reply line, bounded, expired in event time.
pub(crate) struct Pending {
    map: HashMap<PKey, (DnsEvent, u64), foldhash::fast::RandomState>,
    order: VecDeque<(Ts, PKey, u64)>,
    seq: u64,
    timeout_us: i64,
}

/// Most queries kept waiting for a reply line.
const MAX_PENDING: usize = 50_000;

impl Pending {
    fn new(timeout_secs: u32) -> Pending {
        Pending {
            map: HashMap::default(),
            order: VecDeque::new(),
            seq: 0,
            timeout_us: i64::from(timeout_secs.max(1)) * Ts::MICROS_PER_SEC,
        }
    }

    /// Adds a query; one already pending under the same key is emitted first (unanswered).
    pub fn insert(&mut self, key: PKey, ev: DnsEvent, out: &mut Vec<DnsEvent>) {
        self.expire(ev.ts, out);
        if let Some((old, _)) = self.map.remove(&key) {
            out.push(old);
        }
        while self.map.len() >= MAX_PENDING {
            let Some((_, k, s)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|(_, q)| *q == s) {
                if let Some((old, _)) = self.map.remove(&k) {
                    out.push(old);
                }
            }
        }
        self.seq += 1;
        self.order.push_back((ev.ts, key.clone(), self.seq));
        self.map.insert(key, (ev, self.seq));
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.order
                .retain(|(_, k, s)| map.get(k).is_some_and(|(_, q)| q == s));
        }
    }

    pub fn get_mut(&mut self, key: &PKey) -> Option<&mut DnsEvent> {
        self.map.get_mut(key).map(|(e, _)| e)
    }

    pub fn remove(&mut self, key: &PKey) -> Option<DnsEvent> {
        self.map.remove(key).map(|(e, _)| e)
    }

    /// Emits the queries older than the timeout at event time `now`.
    pub fn expire(&mut self, now: Ts, out: &mut Vec<DnsEvent>) {
        while let Some((ts, _, _)) = self.order.front() {
            if ts.0.saturating_add(self.timeout_us) > now.0 {
                break;
            }
            let Some((_, k, s)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|(_, q)| *q == s) {
                if let Some((e, _)) = self.map.remove(&k) {
                    out.push(e);
                }
            }
        }
    }

    /// Emits what is pending: everything, or only the queries that have their reply.
    fn flush(&mut self, answered_only: bool, out: &mut Vec<DnsEvent>) {
        let order = std::mem::take(&mut self.order);
        for (ts, k, s) in order {
            let keep = match self.map.get(&k) {
                Some((e, q)) if *q == s => answered_only && !e.has_response(),
                _ => continue,
            };
            if keep {
                self.order.push_back((ts, k, s));
            } else if let Some((e, _)) = self.map.remove(&k) {
                out.push(e);
            }
        }
    }
}

/// Per-reader parsing state: the format, the clock references, the pending queries.
pub(crate) struct Parser {
    pub format: LogFormat,
    pub tz: jiff::tz::TimeZone,
    /// Wall-clock time when the reader was opened (for syslog's missing year).
    pub opened: Ts,
    pub pending: Pending,
    /// dnsmasq without `log-queries=extra`: the query the last `<CNAME>` reply belonged to.
    pub chain: Option<PKey>,
    pub decoder: dnsight_model::wire::Decoder,
    /// Rejects of records inside an envelope beyond the one `line` returns; the reader counts
    /// them after each line ([`Parser::take_rejects`]).
    pub rejects: Vec<&'static str>,
}

fn wall_now() -> Ts {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ts(d.as_micros() as i64)
}

impl Parser {
    pub fn new(format: LogFormat, opts: &IngestOptions) -> Parser {
        Parser {
            format,
            tz: opts.log_tz.clone(),
            opened: wall_now(),
            pending: Pending::new(opts.pair_timeout_secs),
            chain: None,
            decoder: dnsight_model::wire::Decoder::new(),
            rejects: Vec::new(),
        }
    }

    /// Parses one raw line (envelope included).
    pub fn line(&mut self, raw: &[u8], out: &mut Vec<DnsEvent>) -> Result<(), &'static str> {
        let text = String::from_utf8_lossy(raw);
        self.record(&text, None, 0, out)
    }

    /// Counts the rejects of records inside envelopes (see [`Parser::rejects`]).
    pub(crate) fn take_rejects(&mut self, stats: &mut IngestStats) {
        for r in self.rejects.drain(..) {
            stats.reject(r);
        }
    }

    /// One record: a cloud envelope's records in turn (nested up to [`cloud::MAX_DEPTH`]), or
    /// the record itself. `env_ts` is the time an outer envelope gave it.
    fn record(
        &mut self,
        text: &str,
        env_ts: Option<Ts>,
        depth: u8,
        out: &mut Vec<DnsEvent>,
    ) -> Result<(), &'static str> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        if depth < cloud::MAX_DEPTH {
            if let Some(inner) = cloud::unwrap(text) {
                // the first error is the line's; the others are counted on the side
                let mut first = Ok(());
                let mut any = false;
                for (t, ts) in inner? {
                    let before = out.len();
                    match self.record(&t, ts.or(env_ts), depth + 1, out) {
                        Ok(()) => any |= out.len() > before,
                        Err(e) if first.is_ok() => first = Err(e),
                        Err(e) => self.rejects.push(e),
                    }
                }
                // a record that made events counts; its envelope's other failures go aside
                if any {
                    if let Err(e) = first {
                        self.rejects.push(e);
                    }
                    return Ok(());
                }
                return first;
            }
        }
        self.plain(text, env_ts, out)
    }

    fn plain(
        &mut self,
        text: &str,
        env_ts: Option<Ts>,
        out: &mut Vec<DnsEvent>,
    ) -> Result<(), &'static str> {
        let info = self.format.info();
        if text.starts_with('{') && !info.json {
            // a container-log wrapper around a text format
            let (inner, ts) = json::unwrap_envelope(text).ok_or("log.bad_json")?;
            let ts = ts.as_deref().and_then(ts_any).or(env_ts);
            return self.message(&inner, ts, out);
        }
        if info.json {
            if text.starts_with('{') {
                return (info.parse)(self, &Msg { text, ts: env_ts }, out);
            }
            // a JSON record carried by syslog (`suricata: {...}`)
            let (msg, ts) = text::strip_syslog(text, self);
            return (info.parse)(
                self,
                &Msg {
                    text: msg.trim(),
                    ts: ts.or(env_ts),
                },
                out,
            );
        }
        self.message(text, env_ts, out)
    }

    fn message(
        &mut self,
        text: &str,
        ts: Option<Ts>,
        out: &mut Vec<DnsEvent>,
    ) -> Result<(), &'static str> {
        let (msg, env_ts) = text::strip_syslog(text, self);
        let parse = self.format.info().parse;
        parse(
            self,
            &Msg {
                text: msg.trim(),
                ts: env_ts.or(ts),
            },
            out,
        )
    }

    /// A civil time in the log's zone.
    pub fn civil(&self, dt: jiff::civil::DateTime) -> Option<Ts> {
        dt.to_zoned(self.tz.clone())
            .ok()
            .map(|z| Ts(z.timestamp().as_microsecond()))
    }

    /// A civil time without a year (RFC 3164): this year, or last year if that is in the future.
    pub fn civil_no_year(
        &self,
        month: i8,
        day: i8,
        h: i8,
        mi: i8,
        s: i8,
        micros: i32,
    ) -> Option<Ts> {
        let now = jiff::Timestamp::from_microsecond(self.opened.0)
            .ok()?
            .to_zoned(self.tz.clone());
        let mk = |y: i16| {
            jiff::civil::DateTime::new(y, month, day, h, mi, s, micros * 1000)
                .ok()
                .and_then(|dt| self.civil(dt))
        };
        let y = now.year();
        match mk(y) {
            Some(t) if t.0 <= self.opened.0 + 2 * 86_400 * Ts::MICROS_PER_SEC => Some(t),
            _ => mk(y - 1),
        }
    }

    /// Emits what is pending (end of input, or only answered queries when the input is idle).
    pub(crate) fn flush(&mut self, answered_only: bool, out: &mut Vec<DnsEvent>) {
        self.pending.flush(answered_only, out);
    }
}

/// A fresh event for a query seen in a log: source `log`, no response yet.
pub(crate) fn event(ts: Ts, client: IpAddr, qname: Name, qtype: u16) -> DnsEvent {
    DnsEvent {
        server: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        server_port: 0,
        rcode: None,
        flags: Flags(0),
        query_size: Some(0),
        source: Source::Log,
        ..DnsEvent::new(ts, client, qname, qtype)
    }
}

/// Marks an event as answered with `rcode` (flags get QR).
pub(crate) fn set_rcode(e: &mut DnsEvent, rcode: u16) {
    e.rcode = Some(rcode);
    e.flags.0 |= Flags::QR;
    if e.response_size.is_none() {
        e.response_size = Some(0);
    }
}

/// Header flags from their lower-case names, comma-separated (`qr,aa,rd,ra`: CoreDNS, Azure).
pub(crate) fn flag_names(list: &str) -> u16 {
    list.split(',')
        .map(|f| match f.trim() {
            "qr" => Flags::QR,
            "aa" => Flags::AA,
            "tc" => Flags::TC,
            "rd" => Flags::RD,
            "ra" => Flags::RA,
            "ad" => Flags::AD,
            "cd" => Flags::CD,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

/// A / AAAA for text that is an address.
pub(crate) fn addr_type(s: &str) -> Option<u16> {
    match s.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => Some(1),
        Ok(IpAddr::V6(_)) => Some(28),
        Err(_) => None,
    }
}

/// A response time in seconds as microseconds (None when not a sane number).
pub(crate) fn rtt_secs(s: f64) -> Option<u32> {
    (s.is_finite() && s >= 0.0).then(|| (s * 1e6).min(u32::MAX as f64) as u32)
}

/// Answers kept per record.
pub(crate) const MAX_ANSWERS: usize = 64;

/// An answer from its textual parts; `None` when an address record does not hold an address.
pub(crate) fn answer(owner: &Name, rtype: u16, ttl: u32, data: &str) -> Option<Answer> {
    let data = data.trim();
    let rdata = match rtype {
        1 | 28 => RData::Addr(data.parse().ok()?),
        2 | 5 | 12 | 39 => RData::Name(Name::parse_lenient(data)),
        _ => RData::Text(dnsight_model::escape_text(data)),
    };
    Some(Answer {
        name: owner.clone(),
        rtype,
        ttl,
        data: rdata,
    })
}

/// A name as a log prints it (presentation format, trailing dot optional, escapes kept).
pub(crate) fn name(s: &str) -> Name {
    Name::parse_lenient(s.trim())
}

/// `1.2.3.4`, `1.2.3.4#53`, `1.2.3.4:53`, `1.2.3.4/53`, `::1#53`, `[::1]:53`.
pub(crate) fn addr_port(s: &str) -> Option<(IpAddr, u16)> {
    let s = s.trim();
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some((a, 0));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some((sa.ip(), sa.port()));
    }
    let i = s.rfind(['#', '/', ':'])?;
    let a = s[..i]
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some((a, s[i + 1..].parse().ok()?))
}

/// Any timestamp the JSON formats use: RFC 3339 (also `+0000` offsets and no offset, read as
/// UTC), or a number of seconds, milliseconds, microseconds or nanoseconds since the epoch.
pub(crate) fn ts_any(s: &str) -> Option<Ts> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let v: f64 = s.parse().ok()?;
        return Some(epoch_any(v));
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(Ts(t.as_microsecond()));
    }
    // `+0000` offsets (Suricata) and `2020-07-23 23:49:54` (no zone: UTC)
    let split = s
        .len()
        .checked_sub(5)
        .filter(|&i| s.is_char_boundary(i))
        .map(|i| s.split_at(i));
    let fixed: Cow<str> = match split {
        Some((head, off))
            if (off.starts_with('+') || off.starts_with('-'))
                && off[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{head}{}:{}", &off[..3], &off[3..]).into()
        }
        _ => s.into(),
    };
    if let Ok(t) = fixed.parse::<jiff::Timestamp>() {
        return Some(Ts(t.as_microsecond()));
    }
    let dt: jiff::civil::DateTime = s.replace(' ', "T").parse().ok()?;
    dt.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| Ts(z.timestamp().as_microsecond()))
}

/// Epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude.
pub(crate) fn epoch_any(v: f64) -> Ts {
    let secs = if v > 1e17 {
        v / 1e9
    } else if v > 1e14 {
        v / 1e6
    } else if v > 1e11 {
        v / 1e3
    } else {
        v
    };
    Ts::from_secs_f64(secs)
}

/// Longest record (line) of a query log: larger than other line formats' cap, since one cloud
/// envelope (a CloudWatch payload, an Azure `records` document) is one line.
const MAX_RECORD: usize = 16 * MAX_LINE;

/// Reader over a query log of one format (see the module docs).
pub struct LogReader {
    lines: CappedLines,
    stats: IngestStats,
    done: bool,
    parser: Parser,
}

impl LogReader {
    pub fn new(input: Box<dyn BufRead + Send>, format: LogFormat, opts: &IngestOptions) -> Self {
        LogReader {
            lines: CappedLines::new(input, MAX_RECORD),
            stats: IngestStats::default(),
            done: false,
            parser: Parser::new(format, opts),
        }
    }
}

fn count(stats: &mut IngestStats, evs: &[DnsEvent]) {
    for e in evs {
        stats.count_logged_event(e);
    }
}

impl EventReader for LogReader {
    fn next_batch(&mut self, out: &mut Vec<DnsEvent>) -> Result<bool, IngestError> {
        let parser = &mut self.parser;
        let more = self
            .lines
            .pump_idle(&mut self.done, &mut self.stats, REASONS, |text, s| {
                let before = out.len();
                match text {
                    Some(t) => {
                        if let Err(reason) = parser.line(t, out) {
                            s.reject(reason);
                        }
                        parser.take_rejects(s);
                    }
                    // the input is idle: what has its answer goes out now
                    None => parser.flush(true, out),
                }
                count(s, &out[before..]);
                out.len() - before
            });
        let before = out.len();
        if self.done {
            self.parser.flush(false, out);
        } else if self.lines.drained() {
            self.parser.flush(true, out);
        }
        count(&mut self.stats, &out[before..]);
        Ok(more || out.len() > before)
    }

    fn stats(&self) -> &IngestStats {
        &self.stats
    }
}

/// Opens a reader for `format` (see the module docs).
pub fn reader(
    input: Box<dyn BufRead + Send>,
    format: LogFormat,
    opts: &IngestOptions,
) -> Result<Box<dyn EventReader>, IngestError> {
    Ok(Box::new(LogReader::new(input, format, opts)))
}

/// Lines of the head tried when sniffing.
const SNIFF_LINES: usize = 64;

/// Guesses the log format of the first bytes of an input by trial parsing (module docs).
pub fn sniff(head: &[u8]) -> Option<LogFormat> {
    let opts = IngestOptions::default();
    let mut parsers: Vec<Parser> = FORMATS
        .iter()
        .map(|f| Parser::new(f.format, &opts))
        .collect();
    // the last line of the head may be cut short unless the head ends with a newline
    let complete = match memchr::memrchr(b'\n', head) {
        Some(i) if i + 1 < head.len() => &head[..i + 1],
        Some(_) => head,
        None => head,
    };
    let mut out = Vec::new();
    // a format that recognised a record it could not use (no client, a reply whose query came
    // before the head): taken only when no format made an event
    let mut weak = None;
    for line in complete.split(|&b| b == b'\n').take(SNIFF_LINES) {
        let t = line.trim_ascii();
        if t.is_empty() {
            continue;
        }
        for p in parsers.iter_mut() {
            out.clear();
            match p.line(t, &mut out) {
                Ok(()) => {
                    p.flush(false, &mut out);
                    if !out.is_empty() {
                        return Some(p.format);
                    }
                }
                Err("log.no_client" | "log.reply_without_query") => {
                    weak = weak.or(Some(p.format));
                }
                Err(_) => {}
            }
        }
    }
    weak
}

#[cfg(test)]
mod tests;
