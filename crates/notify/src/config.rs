//! `[[notify]]` targets: what the config file says, validated into [`Target`]s.
//!
//! ```toml
//! [[notify]]
//! name = "soc"                    # unique; used in the outbox, the API and `notify test`
//! type = "webhook"                # webhook | slack | mattermost | teams | syslog | email | file
//! url = "https://hooks.example/dnsight"
//! secret_env = "DNSIGHT_HOOK_SECRET"   # or `secret = "..."`: signs each body (HMAC-SHA256)
//! min_severity = "medium"         # default medium
//! kinds = ["dga", "threat_intel"] # default: every kind
//! groups = ["servers"]            # default: every group (and devices in none)
//! events = ["new", "escalated", "reopened"]   # the default
//! digest_after = 20               # more than 20 messages in digest_minutes → digests
//! digest_minutes = 10
//! digest_every_secs = 60          # at most one digest this often
//! max_attempts = 8                # tries before a notification is kept as failed
//! timeout_secs = 10
//! ca_file = "private-ca.pem"      # also trust this CA (https, syslog over TLS, SMTP)
//! link = "https://dnsight.corp.example:8053"   # base of the links to alerts
//! ```

use dnsight_engine::{Kind, Severity};
use dnsight_triage::NotifyEvent;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One `[[notify]]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRaw {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    // routing
    pub min_severity: Option<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub events: Vec<String>,
    // flood control and delivery
    pub digest_after: Option<u32>,
    pub digest_minutes: Option<u32>,
    pub digest_every_secs: Option<u32>,
    pub max_attempts: Option<u32>,
    pub timeout_secs: Option<u32>,
    pub ca_file: Option<PathBuf>,
    pub link: Option<String>,
    // webhook and chat
    pub url: Option<String>,
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    // syslog
    pub address: Option<String>,
    pub transport: Option<String>,
    pub server_name: Option<String>,
    pub facility: Option<String>,
    pub app_name: Option<String>,
    // e-mail
    pub smtp: Option<String>,
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    // file
    pub path: Option<PathBuf>,
}

/// Chat payload dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chat {
    Slack,
    Mattermost,
    Teams,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTransport {
    Udp,
    /// RFC 6587 octet counting.
    Tcp,
    /// RFC 5425 (octet counting over TLS).
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required: no fallback to plain text).
    StartTls,
    /// TLS from the first byte (port 465).
    Wrapper,
    /// No TLS (a relay on loopback only).
    None,
}

/// Where a target delivers.
#[derive(Debug, Clone)]
pub enum Dest {
    Webhook {
        url: String,
        secret: Option<String>,
    },
    Chat {
        url: String,
        dialect: Chat,
    },
    Syslog {
        /// host:port as written (resolved at each connect).
        address: String,
        transport: SyslogTransport,
        server_name: String,
        facility: u8,
        app_name: String,
    },
    Email {
        host: String,
        port: u16,
        tls: SmtpTls,
        credentials: Option<(String, String)>,
        from: String,
        to: Vec<String>,
    },
    /// JSON lines appended to a file; `-` is standard output.
    File {
        path: PathBuf,
    },
}

/// Which alerts and events a target wants.
#[derive(Debug, Clone)]
pub struct Route {
    pub min_severity: Severity,
    pub kinds: Vec<Kind>,
    pub groups: Vec<String>,
    pub events: Vec<NotifyEvent>,
}

impl Route {
    pub fn wants(&self, a: &dnsight_engine::Alert, e: NotifyEvent) -> bool {
        // a person's action is news whatever the alert's severity
        let by_person = !matches!(
            e,
            NotifyEvent::New | NotifyEvent::Escalated | NotifyEvent::Grew
        );
        self.events.contains(&e)
            && (by_person || a.severity >= self.min_severity)
            && (self.kinds.is_empty() || self.kinds.contains(&a.kind))
            && (self.groups.is_empty() || a.group.as_ref().is_some_and(|g| self.groups.contains(g)))
    }
}

/// Flood control: past `after` single messages in `window`, what is left goes out as one
/// digest at most every `every`; critical alerts always go out one by one.
#[derive(Debug, Clone, Copy)]
pub struct DigestRule {
    pub after: u32,
    pub window: Duration,
    pub every: Duration,
}

/// A validated target.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub dest: Dest,
    pub route: Route,
    pub digest: DigestRule,
    pub max_attempts: u32,
    pub timeout: Duration,
    /// PEM certificates trusted besides the public roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Base URL of links to alerts.
    pub link: Option<String>,
}

impl Target {
    pub fn type_name(&self) -> &'static str {
        match &self.dest {
            Dest::Webhook { .. } => "webhook",
            Dest::Chat {
                dialect: Chat::Slack,
                ..
            } => "slack",
            Dest::Chat {
                dialect: Chat::Mattermost,
                ..
            } => "mattermost",
            Dest::Chat {
                dialect: Chat::Teams,
                ..
            } => "teams",
            Dest::Syslog { .. } => "syslog",
            Dest::Email { .. } => "email",
            Dest::File { .. } => "file",
        }
    }

    /// Where it delivers, for people (no secrets).
    pub fn describe(&self) -> String {
        match &self.dest {
            Dest::Webhook { url, .. } | Dest::Chat { url, .. } => redact_url(url),
            Dest::Syslog {
                address, transport, ..
            } => format!("{address} ({transport:?})").to_lowercase(),
            Dest::Email { host, port, to, .. } => format!("{} via {host}:{port}", to.join(", ")),
            Dest::File { path } => path.display().to_string(),
        }
    }
}

/// The URL without user info or query (which may hold a token).
pub(crate) fn redact_url(u: &str) -> String {
    let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
    let host_path = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let base = host_path.split(['?', '#']).next().unwrap_or("");
    // Slack/Teams hook paths are secrets too: keep the host only
    let host = base.split('/').next().unwrap_or("");
    format!("{scheme}://{host}/…")
}

pub const DEFAULT_EVENTS: [NotifyEvent; 3] = [
    NotifyEvent::New,
    NotifyEvent::Escalated,
    NotifyEvent::Reopened,
];

/// Validates every `[[notify]]` table; `base` resolves relative paths; `env` reads
/// `secret_env`/`password_env` (the process environment in production).
pub fn validate(
    raws: &[TargetRaw],
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Target>, String> {
    let mut out: Vec<Target> = Vec::new();
    for (i, r) in raws.iter().enumerate() {
        let t = validate_one(r, base, env).map_err(|e| {
            let who = r
                .name
                .as_deref()
                .map_or(format!("[[notify]] #{}", i + 1), |n| {
                    format!("[[notify]] {:?}", n)
                });
            format!("{who}: {e}")
        })?;
        if out.iter().any(|o| o.name == t.name) {
            return Err(format!(
                "[[notify]]: two targets are named {:?}; names must be unique",
                t.name
            ));
        }
        out.push(t);
    }
    Ok(out)
}

fn need<'a>(v: &'a Option<String>, key: &str, kind: &str) -> Result<&'a str, String> {
    v.as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| format!("type = \"{kind}\" needs `{key}`"))
}

fn http_url(u: &str) -> Result<String, String> {
    let lower = u.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || u.len() < 10 {
        return Err(format!(
            "url {:?} is not an http:// or https:// URL",
            redact_url(u)
        ));
    }
    if u.chars().any(|c| c.is_control() || c == ' ') {
        return Err("url contains spaces or control characters".into());
    }
    Ok(u.to_string())
}

fn secret_of(
    plain: &Option<String>,
    var: &Option<String>,
    what: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    match (plain, var) {
        (Some(_), Some(_)) => Err(format!("give `{what}` or `{what}_env`, not both")),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(v)) => env(v).filter(|s| !s.is_empty()).map(Some).ok_or_else(|| {
            format!("`{what}_env` names {v:?}, which is not set in the environment")
        }),
        (None, None) => Ok(None),
    }
}

fn facility(s: &str) -> Option<u8> {
    let names = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp",
    ];
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Some(i as u8);
    }
    let l = s.to_ascii_lowercase();
    l.strip_prefix("local")
        .and_then(|d| d.parse::<u8>().ok())
        .filter(|d| *d <= 7)
        .map(|d| 16 + d)
}

fn host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    let (h, p) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("{s:?}: the port is not a number"))?,
        ),
        _ => (s, default_port),
    };
    let h = h.trim_matches(['[', ']']);
    if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?} is not HOST:PORT"));
    }
    Ok((h.to_string(), p))
}

fn validate_one(
    r: &TargetRaw,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, String> {
    let name = r
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or("needs a `name`")?;
    if name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "name {name:?}: use up to 64 letters, digits, '-', '_' or '.'"
        ));
    }
    let kind = r
        .kind
        .as_deref()
        .ok_or("needs a `type`: webhook, slack, mattermost, teams, syslog, email or file")?;
    let dest = match kind.to_ascii_lowercase().as_str() {
        "webhook" => Dest::Webhook {
            url: http_url(need(&r.url, "url", kind)?)?,
            secret: secret_of(&r.secret, &r.secret_env, "secret", env)?,
        },
        "slack" | "mattermost" | "teams" => Dest::Chat {
            url: http_url(need(&r.url, "url", kind)?)?,
            dialect: match kind.to_ascii_lowercase().as_str() {
                "slack" => Chat::Slack,
                "mattermost" => Chat::Mattermost,
                _ => Chat::Teams,
            },
        },
        "syslog" => {
            let transport = match r
                .transport
                .as_deref()
                .unwrap_or("udp")
                .to_ascii_lowercase()
                .as_str()
            {
                "udp" => SyslogTransport::Udp,
                "tcp" => SyslogTransport::Tcp,
                "tls" => SyslogTransport::Tls,
                t => return Err(format!("transport {t:?}: use udp, tcp or tls")),
            };
            let default_port = if transport == SyslogTransport::Tls {
                6514
            } else {
                514
            };
            let address = need(&r.address, "address", kind)?;
            let (host, port) = host_port(address, default_port)?;
            let f = r.facility.as_deref().unwrap_or("local0");
            Dest::Syslog {
                address: if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                },
                transport,
                server_name: r.server_name.clone().unwrap_or(host),
                facility: facility(f).ok_or_else(|| {
                    format!("facility {f:?}: use e.g. local0..local7, daemon, auth, user")
                })?,
                app_name: r
                    .app_name
                    .clone()
                    .filter(|a| a.len() <= 48 && a.bytes().all(|b| (33..=126).contains(&b)))
                    .unwrap_or_else(|| "dnsight".into()),
            }
        }
        "email" => {
            let tls = match r
                .tls
                .as_deref()
                .unwrap_or("starttls")
                .to_ascii_lowercase()
                .as_str()
            {
                "starttls" => SmtpTls::StartTls,
                "tls" | "wrapper" => SmtpTls::Wrapper,
                "none" => SmtpTls::None,
                t => return Err(format!("tls {t:?}: use starttls, tls or none")),
            };
            let default_port = match tls {
                SmtpTls::Wrapper => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            };
            let (host, port) = host_port(need(&r.smtp, "smtp", kind)?, default_port)?;
            let from = need(&r.from, "from", kind)?.to_string();
            check_mailbox(&from).map_err(|e| format!("from: {e}"))?;
            if r.to.is_empty() {
                return Err("type = \"email\" needs `to` (a list of addresses)".into());
            }
            for t in &r.to {
                check_mailbox(t).map_err(|e| format!("to: {e}"))?;
            }
            let password = secret_of(&r.password, &r.password_env, "password", env)?;
            let credentials = match (&r.username, password) {
                (Some(u), Some(p)) => Some((u.clone(), p)),
                (None, None) => None,
                _ => return Err("give both `username` and a password, or neither".into()),
            };
            Dest::Email {
                host,
                port,
                tls,
                credentials,
                from,
                to: r.to.clone(),
            }
        }
        "file" => {
            let p = r
                .path
                .clone()
                .ok_or("type = \"file\" needs `path` (\"-\" for standard output)")?;
            Dest::File {
                path: if p.as_os_str() == "-" || p.is_absolute() {
                    p
                } else {
                    base.join(p)
                },
            }
        }
        other => {
            return Err(format!(
                "type {other:?}: use webhook, slack, mattermost, teams, syslog, email or file"
            ))
        }
    };
    let min_severity = match &r.min_severity {
        Some(s) => Severity::parse(s).ok_or_else(|| {
            format!("min_severity {s:?}: use info, low, medium, high or critical")
        })?,
        None => Severity::Medium,
    };
    let mut kinds = Vec::new();
    for k in &r.kinds {
        kinds.push(Kind::parse(k).ok_or_else(|| {
            format!("kinds: {k:?} is not an alert kind (`dnsight kinds` lists them)")
        })?);
    }
    let mut events = Vec::new();
    for e in &r.events {
        events.push(NotifyEvent::parse(e).ok_or_else(|| {
            format!(
                "events: {e:?}: use {}",
                NotifyEvent::ALL.map(|e| e.as_str()).join(", ")
            )
        })?);
    }
    if events.is_empty() {
        events = DEFAULT_EVENTS.to_vec();
    }
    let ca_pem = match &r.ca_file {
        Some(p) => {
            let p = if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            };
            let b = std::fs::read(&p).map_err(|e| format!("ca_file {}: {e}", p.display()))?;
            if !String::from_utf8_lossy(&b).contains("-----BEGIN CERTIFICATE-----") {
                return Err(format!("ca_file {}: no PEM certificate in it", p.display()));
            }
            Some(b)
        }
        None => None,
    };
    if let Some(l) = &r.link {
        http_url(l).map_err(|e| format!("link: {e}"))?;
    }
    let positive = |v: Option<u32>, d: u32, key: &str| -> Result<u32, String> {
        match v {
            Some(0) => Err(format!("{key} must be at least 1")),
            Some(n) => Ok(n),
            None => Ok(d),
        }
    };
    Ok(Target {
        name: name.to_string(),
        dest,
        route: Route {
            min_severity,
            kinds,
            groups: r.groups.clone(),
            events,
        },
        digest: DigestRule {
            after: positive(r.digest_after, 20, "digest_after")?,
            window: Duration::from_secs(
                60 * u64::from(positive(r.digest_minutes, 10, "digest_minutes")?),
            ),
            every: Duration::from_secs(u64::from(positive(
                r.digest_every_secs,
                60,
                "digest_every_secs",
            )?)),
        },
        max_attempts: positive(r.max_attempts, 8, "max_attempts")?.min(50),
        timeout: Duration::from_secs(u64::from(
            positive(r.timeout_secs, 10, "timeout_secs")?.min(300),
        )),
        ca_pem,
        link: r.link.as_ref().map(|l| l.trim_end_matches('/').to_string()),
    })
}

/// A bare address (`soc@example.com`): no display names, no header-breaking bytes.
fn check_mailbox(s: &str) -> Result<(), String> {
    let ok = s.len() <= 254
        && s.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b',' | b';' | b'"'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not an e-mail address like soc@example.com",
            s.escape_debug().to_string()
        ))
    }
}
