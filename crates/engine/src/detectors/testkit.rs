//! Story fixtures for detector tests: one event a line, parsed by [`parse`].
//!
//! ```text
//! # comment
//! @2026-11-02T08:00:00Z                      set the clock (default: Monday 2026-11-02 00:00 UTC)
//! +30s 10.0.0.5 a1b2.example A NXDOMAIN      advance, then one event
//! +1m 10.0.0.5 www.example.com A NOERROR 93.184.216.34 cname:edge.cdn.example
//! +300s~20s x12 10.0.0.5 c2.example A NOERROR 198.51.100.7   12 events, 300 s apart ± 20 s
//! +2s x40 10.0.0.5 {r}.example A NXDOMAIN    {r}: 12 pseudo-random letters (each), {i}: index
//! ```
//! Time steps: `+N` with `ms`, `s`, `m`, `h`, `d` (no unit = seconds). Answers: IP addresses,
//! `cname:NAME`, `ptr:NAME`, `txt:TEXT`, `ttl:N` (applies to following answers).
//! Jitter and `{r}` come from a fixed-seed generator: fixtures are deterministic.

use crate::alert::Alert;
use crate::config::EngineConfig;
use crate::engine::Engine;
use dnsight_model::{Answer, DnsEvent, Name, RData, Ts};

/// Monday 2026-11-02T00:00:00Z.
pub const START: i64 = 1_793_577_600;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn dur(s: &str) -> i64 {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .parse::<f64>()
            .map(|v| (v * 1e3) as i64)
            .unwrap_or_else(|_| panic!("bad duration {s:?}"));
    }
    let (n, mul) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1),
        Some(b'm') => (&s[..s.len() - 1], 60),
        Some(b'h') => (&s[..s.len() - 1], 3600),
        Some(b'd') => (&s[..s.len() - 1], 86400),
        _ => (s, 1),
    };
    n.parse::<f64>()
        .map(|v| (v * mul as f64 * 1e6) as i64)
        .unwrap_or_else(|_| panic!("bad duration {s:?}"))
}

/// Parses a fixture into events.
pub fn parse(fixture: &str) -> Vec<DnsEvent> {
    let mut now: i64 = START * 1_000_000;
    let mut rng = Lcg(42);
    let mut out = Vec::new();
    let mut idx = 0u64;
    for line in fixture.lines() {
        let line = line.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(t) = line.strip_prefix('@') {
            now = Ts::parse(t).expect("bad @time").0;
            continue;
        }
        let mut f = line.split_whitespace().peekable();
        let step = f.next().expect("time step");
        let (step, jitter) = match step.trim_start_matches('+').split_once('~') {
            Some((a, j)) => (dur(a), dur(j)),
            None => (dur(step.trim_start_matches('+')), 0),
        };
        let mut times = 1;
        if let Some(r) = f
            .peek()
            .and_then(|t| t.strip_prefix('x'))
            .and_then(|n| n.parse::<usize>().ok())
        {
            times = r;
            f.next();
        }
        let rest: Vec<&str> = f.collect();
        assert!(
            rest.len() >= 4,
            "fixture line needs: time client qname qtype rcode [answers]: {line:?}"
        );
        for _ in 0..times {
            let j = if jitter > 0 {
                (rng.next() as i64 % (2 * jitter + 1)) - jitter
            } else {
                0
            };
            now += step + j;
            idx += 1;
            let mut rnd = String::new();
            for _ in 0..12 {
                rnd.push((b'a' + (rng.next() % 26) as u8) as char);
            }
            let qname = rest[1]
                .replace("{r}", &rnd)
                .replace("{i}", &idx.to_string());
            let qtype = dnsight_model::rtype_from_str(rest[2]).expect("qtype");
            let mut ev = DnsEvent::new(
                Ts(now),
                rest[0].parse().expect("client address"),
                Name::parse(&qname).expect("qname"),
                qtype,
            );
            ev.rcode = match rest[3] {
                "-" | "NORESPONSE" => None,
                r => Some(dnsight_model::rcode_from_str(r).expect("rcode")),
            };
            ev.query_size = Some(30 + qname.len() as u32);
            let mut ttl = 300;
            let mut owner = ev.qname.clone();
            for a in &rest[4..] {
                let (rtype, data) = if let Some(t) = a.strip_prefix("ttl:") {
                    ttl = t.parse().expect("ttl");
                    continue;
                } else if let Some(c) = a.strip_prefix("cname:") {
                    (5, RData::Name(Name::parse(c).expect("cname")))
                } else if let Some(c) = a.strip_prefix("ptr:") {
                    (12, RData::Name(Name::parse(c).expect("ptr")))
                } else if let Some(c) = a.strip_prefix("txt:") {
                    (16, RData::Text(c.into()))
                } else {
                    let ip: std::net::IpAddr =
                        a.parse().unwrap_or_else(|_| panic!("bad answer {a:?}"));
                    (if ip.is_ipv4() { 1 } else { 28 }, RData::Addr(ip))
                };
                ev.answers.push(Answer {
                    name: owner.clone(),
                    rtype,
                    ttl,
                    data: data.clone(),
                });
                if let RData::Name(n) = data {
                    owner = n;
                }
            }
            ev.response_size = ev.rcode.map(|_| 40 + 16 * ev.answers.len() as u32);
            out.push(ev);
        }
    }
    out
}

/// Runs a fixture through a fresh in-memory engine.
pub fn run(cfg: EngineConfig, fixture: &str) -> Engine {
    let mut e = Engine::new(cfg);
    for ev in parse(fixture) {
        e.observe(&ev);
    }
    e
}

/// A config for stories: one day of learning.
pub fn cfg() -> EngineConfig {
    EngineConfig {
        learn_days: 1,
        ..EngineConfig::default()
    }
}

/// Alerts of the given kind (all kinds when None) as compact lines, most severe first:
/// `kind severity device destination xCOUNT`.
pub fn lines(e: &Engine, kind: Option<&str>) -> String {
    let v: Vec<Alert> = e.all_alerts();
    let mut out = String::new();
    for a in v
        .iter()
        .filter(|a| kind.is_none_or(|k| a.kind.as_str() == k))
    {
        let dev = if a.device_count > 1 {
            format!("{}+{}", a.device, a.device_count - 1)
        } else {
            a.device.clone()
        };
        out.push_str(&format!(
            "{} {} {} {} x{}\n",
            a.kind.as_str(),
            a.severity.as_str(),
            dev,
            if a.destination.is_empty() {
                "-"
            } else {
                &a.destination
            },
            a.count
        ));
    }
    out
}

/// Asserts that the alerts of `kind` render exactly as `expected` (whitespace-trimmed lines).
#[track_caller]
pub fn assert_alerts(e: &Engine, kind: Option<&str>, expected: &str) {
    let got = lines(e, kind);
    let norm = |s: &str| {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        norm(&got),
        norm(expected),
        "\n--- got ---\n{got}\n--- all alerts ---\n{}",
        lines(e, None)
    );
}

#[test]
fn fixture_parser() {
    let evs = parse("+30s 10.0.0.5 a1b2.example A NXDOMAIN\n+1m x3 10.0.0.6 www.example.com A NOERROR ttl:60 cname:edge.cdn.example 93.184.216.34\n+1s fd00::5 {r}.test TXT - \n");
    assert_eq!(evs.len(), 5);
    assert_eq!(evs[0].ts, Ts((START + 30) * 1_000_000));
    assert!(evs[0].is_nxdomain());
    assert_eq!(evs[3].ts, Ts((START + 30 + 180) * 1_000_000));
    assert_eq!(evs[1].answers.len(), 2);
    assert_eq!(evs[1].answers[1].name.as_str(), "edge.cdn.example");
    assert_eq!(evs[1].answers[0].ttl, 60);
    assert_eq!(evs[4].rcode, None);
    assert_eq!(evs[4].qname.as_str().len(), 12 + 5);
}
