//! The JSON formats of the registry (one object a line), and the container-log envelope.

use super::{answer, event, name, set_rcode, ts_any, Msg, PKey, Parser, MAX_ANSWERS};
use dnsight_model::{rcode_from_str, rtype_from_str, DnsEvent, Flags, Name, Transport, Ts};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::net::IpAddr;

type S<'a> = Cow<'a, str>;

fn parse<'a, T: Deserialize<'a>>(s: &'a str) -> Result<T, &'static str> {
    serde_json::from_str(s).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => "log.bad_line",
        _ => "log.bad_json",
    })
}

/// A number, or a string holding one.
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A time as a string (any of [`ts_any`]'s forms) or a number of (milli/micro/nano)seconds.
fn as_ts(v: &Value) -> Option<Ts> {
    match v {
        Value::String(s) => ts_any(s),
        Value::Number(n) => n.as_f64().filter(|v| v.is_finite()).map(super::epoch_any),
        _ => None,
    }
}

fn ip(s: &str) -> Result<IpAddr, &'static str> {
    s.trim().parse().map_err(|_| "log.bad_addr")
}

fn transport(s: &str) -> Transport {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Transport::Tcp,
        "dot" | "tls" => Transport::Dot,
        "doh" | "https" => Transport::Doh,
        "doq" | "quic" => Transport::Doq,
        _ => Transport::Udp,
    }
}

/// A JSON container log (`{"log": ...}` from Docker, `{"message": ...}` from shippers) holding a
/// text record: returns the record and the wrapper's time.
pub(crate) fn unwrap_envelope(s: &str) -> Option<(String, Option<String>)> {
    #[derive(Deserialize)]
    struct Env<'a> {
        #[serde(borrow, default)]
        log: Option<S<'a>>,
        #[serde(borrow, default)]
        message: Option<S<'a>>,
        #[serde(default)]
        time: Option<Value>,
        #[serde(default)]
        timestamp: Option<Value>,
        #[serde(default, rename = "@timestamp")]
        at_timestamp: Option<Value>,
    }
    let e: Env = serde_json::from_str(s).ok()?;
    let text = e.log.or(e.message)?;
    let t = e.time.or(e.timestamp).or(e.at_timestamp).map(|v| match v {
        Value::String(s) => s,
        other => other.to_string(),
    });
    Some((text.trim().to_string(), t))
}

// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct R53<'a> {
    #[serde(borrow)]
    query_timestamp: S<'a>,
    #[serde(borrow)]
    query_name: S<'a>,
    #[serde(borrow)]
    query_type: S<'a>,
    #[serde(borrow, default)]
    rcode: Option<S<'a>>,
    #[serde(borrow, default)]
    answers: Vec<R53Answer<'a>>,
    #[serde(borrow)]
    srcaddr: S<'a>,
    #[serde(default)]
    srcport: Option<Value>,
    #[serde(borrow, default)]
    transport: Option<S<'a>>,
}

#[derive(Deserialize)]
struct R53Answer<'a> {
    #[serde(borrow, rename = "Rdata", default)]
    rdata: S<'a>,
    #[serde(borrow, rename = "Type", default)]
    rtype: S<'a>,
}

/// AWS Route 53 Resolver query logs: `{"query_timestamp":...,"query_name":...,"query_type":...,
/// "rcode":...,"answers":[{"Rdata":...,"Type":...}],"srcaddr":...,"srcport":...,...}`.
pub(crate) fn route53_resolver(
    _p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let r: R53 = parse(m.text)?;
    let ts = ts_any(&r.query_timestamp).ok_or("log.bad_time")?;
    let qt = rtype_from_str(&r.query_type).ok_or("log.bad_line")?;
    let mut e = event(ts, ip(&r.srcaddr)?, name(&r.query_name), qt);
    e.client_port = r.srcport.as_ref().and_then(as_u64).unwrap_or(0) as u16;
    if let Some(t) = &r.transport {
        e.transport = transport(t);
    }
    if let Some(rc) = r.rcode.as_deref().and_then(rcode_from_str) {
        set_rcode(&mut e, rc);
    }
    let mut owner = e.qname.clone();
    for a in r.answers.iter().take(MAX_ANSWERS) {
        let Some(ty) = rtype_from_str(&a.rtype) else {
            continue;
        };
        if let Some(x) = answer(&owner, ty, 0, &a.rdata) {
            if ty == 5 {
                if let Some(t) = x.target() {
                    owner = t.clone();
                }
            }
            e.answers.push(x);
        }
    }
    out.push(e);
    Ok(())
}

// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Eve<'a> {
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(borrow)]
    event_type: S<'a>,
    #[serde(borrow, default)]
    src_ip: S<'a>,
    #[serde(default)]
    src_port: u16,
    #[serde(borrow, default)]
    dest_ip: S<'a>,
    #[serde(default)]
    dest_port: u16,
    #[serde(borrow, default)]
    proto: S<'a>,
    #[serde(default)]
    dns: Option<EveDns<'a>>,
}

#[derive(Deserialize)]
struct EveDns<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: S<'a>,
    #[serde(default)]
    id: u16,
    #[serde(borrow, default)]
    rrname: Option<S<'a>>,
    #[serde(borrow, default)]
    rrtype: Option<S<'a>>,
    #[serde(borrow, default)]
    rcode: Option<S<'a>>,
    #[serde(borrow, default)]
    flags: Option<S<'a>>,
    #[serde(borrow, default)]
    queries: Vec<EveRr<'a>>,
    #[serde(borrow, default)]
    answers: Vec<EveRr<'a>>,
    #[serde(default)]
    grouped: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct EveRr<'a> {
    #[serde(borrow, default)]
    rrname: S<'a>,
    #[serde(borrow, default)]
    rrtype: S<'a>,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    rdata: Option<Value>,
}

fn value_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

/// Suricata EVE `dns` events (v1–v3): a query (`type` query/request) waits for its answer
/// (`answer`/`response`, matched on client address, port and id); `answers` or `grouped` give
/// the records. Other event types of the same EVE file are skipped.
pub(crate) fn suricata(
    p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let v: Eve = parse(m.text)?;
    if v.event_type != "dns" {
        return Ok(());
    }
    let d = v.dns.ok_or("log.bad_line")?;
    let ts = v.timestamp.as_ref().and_then(as_ts).ok_or("log.bad_time")?;
    let (qn, qt) = match (&d.rrname, &d.rrtype, d.queries.first()) {
        (Some(n), t, _) => (name(n), t.as_deref().and_then(rtype_from_str).unwrap_or(0)),
        (None, _, Some(q)) => (name(&q.rrname), rtype_from_str(&q.rrtype).unwrap_or(0)),
        _ => (Name::root(), 0),
    };
    let is_query = matches!(d.kind.as_ref(), "query" | "request");
    let tr = transport(&v.proto);
    if is_query {
        let client = ip(&v.src_ip)?;
        let mut e = event(ts, client, qn, qt);
        e.client_port = v.src_port;
        e.server = ip(&v.dest_ip).unwrap_or(e.server);
        e.server_port = v.dest_port;
        e.id = d.id;
        e.transport = tr;
        let key = PKey::new(client, v.src_port, u32::from(d.id), Name::root(), 0);
        p.pending.insert(key, e, out);
        return Ok(());
    }
    if !matches!(d.kind.as_ref(), "answer" | "response") {
        return Ok(());
    }
    let client = ip(&v.dest_ip)?;
    let key = PKey::new(client, v.dest_port, u32::from(d.id), Name::root(), 0);
    let mut e = match p.pending.remove(&key) {
        Some(mut e) => {
            e.rtt_us = Some(ts.0.saturating_sub(e.ts.0).clamp(0, u32::MAX as i64) as u32);
            e
        }
        None => {
            let mut e = event(ts, client, qn, qt);
            e.client_port = v.dest_port;
            e.server = ip(&v.src_ip).unwrap_or(e.server);
            e.server_port = v.src_port;
            e.id = d.id;
            e.transport = tr;
            e
        }
    };
    let rc = d.rcode.as_deref().and_then(rcode_from_str).unwrap_or(0);
    set_rcode(&mut e, rc);
    if let Some(f) = d
        .flags
        .as_deref()
        .and_then(|f| u16::from_str_radix(f, 16).ok())
    {
        e.flags = Flags(Flags::from_header(f).0 | Flags::QR);
    }
    for a in d.answers.iter().take(MAX_ANSWERS) {
        let Some(ty) = rtype_from_str(&a.rrtype) else {
            continue;
        };
        let Some(data) = &a.rdata else { continue };
        if let Some(x) = answer(&name(&a.rrname), ty, a.ttl, &value_text(data)) {
            e.answers.push(x);
        }
    }
    if d.answers.is_empty() {
        if let Some(g) = &d.grouped {
            let owner = e.qname.clone();
            for (ty, vals) in g {
                let Some(ty) = rtype_from_str(ty) else {
                    continue;
                };
                let Value::Array(vals) = vals else { continue };
                for v in vals.iter().take(MAX_ANSWERS) {
                    if let Some(x) = answer(&owner, ty, 0, &value_text(v)) {
                        e.answers.push(x);
                    }
                }
            }
        }
    }
    p.pending.expire(ts, out);
    out.push(e);
    Ok(())
}

// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Ag<'a> {
    #[serde(borrow)]
    T: S<'a>,
    #[serde(borrow)]
    QH: S<'a>,
    #[serde(borrow)]
    QT: S<'a>,
    #[serde(borrow)]
    IP: S<'a>,
    #[serde(borrow, default)]
    CP: S<'a>,
    #[serde(borrow, default)]
    Answer: Option<S<'a>>,
    #[serde(default)]
    Elapsed: Option<u64>,
}

/// Standard base64 (with or without padding); `None` on any other byte.
pub(crate) fn base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// AdGuard Home `querylog.json`: `{"IP":...,"T":...,"QH":...,"QT":...,"QC":...,"CP":...,
/// "Answer":"<base64 DNS message>","Result":{...},"Elapsed":ns,...}`. The answer is a whole DNS
/// response: rcode, flags and records come from decoding it.
pub(crate) fn adguard(
    p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let a: Ag = parse(m.text)?;
    let ts = ts_any(&a.T).ok_or("log.bad_time")?;
    let qt = rtype_from_str(&a.QT).ok_or("log.bad_line")?;
    let mut e = event(ts, ip(&a.IP)?, name(&a.QH), qt);
    e.transport = transport(&a.CP);
    if let Some(ns) = a.Elapsed {
        e.rtt_us = Some((ns / 1000).min(u64::from(u32::MAX)) as u32);
    }
    if let Some(wire) = a.Answer.as_deref().and_then(base64) {
        if let Ok(msg) = p.decoder.decode(&wire) {
            set_rcode(&mut e, msg.rcode);
            e.flags = msg.header.flags;
            e.response_size = Some(msg.size);
            e.answers = msg.answers;
        }
    }
    out.push(e);
    Ok(())
}

// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Gcp<'a> {
    #[serde(borrow)]
    json_payload: GcpPayload<'a>,
    #[serde(default)]
    timestamp: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GcpPayload<'a> {
    #[serde(borrow)]
    query_name: S<'a>,
    #[serde(borrow)]
    query_type: S<'a>,
    #[serde(borrow, default)]
    response_code: Option<S<'a>>,
    #[serde(borrow, default)]
    rdata: Option<S<'a>>,
    #[serde(borrow, default, rename = "sourceIP")]
    source_ip: Option<S<'a>>,
    #[serde(borrow, default)]
    protocol: Option<S<'a>>,
    #[serde(default)]
    server_latency: Option<f64>,
    #[serde(default)]
    auth_answer: Option<bool>,
}

/// Google Cloud DNS query logs (Cloud Logging entries): `jsonPayload` with `queryName`,
/// `queryType`, `responseCode`, `sourceIP`, `rdata` (zone-file lines: `name\tttl\tIN\ttype\tdata`).
pub(crate) fn gcp(_p: &mut Parser, m: &Msg, out: &mut Vec<DnsEvent>) -> Result<(), &'static str> {
    let g: Gcp = parse(m.text)?;
    let j = g.json_payload;
    let ts = g.timestamp.as_ref().and_then(as_ts).ok_or("log.bad_time")?;
    let client = ip(j.source_ip.as_deref().ok_or("log.no_client")?)?;
    let qt = rtype_from_str(&j.query_type).ok_or("log.bad_line")?;
    let mut e = event(ts, client, name(&j.query_name), qt);
    if let Some(pr) = &j.protocol {
        e.transport = transport(pr);
    }
    if let Some(rc) = j.response_code.as_deref().and_then(rcode_from_str) {
        set_rcode(&mut e, rc);
        if j.auth_answer == Some(true) {
            e.flags.0 |= Flags::AA;
        }
    }
    e.rtt_us = j.server_latency.and_then(|ms| super::rtt_secs(ms / 1000.0));
    if let Some(rd) = &j.rdata {
        for line in rd.lines().take(MAX_ANSWERS) {
            let f: Vec<&str> = line.split(['\t', ' ']).filter(|s| !s.is_empty()).collect();
            if let [owner, ttl, _class, ty, data @ ..] = f.as_slice() {
                let (Some(ty), Ok(ttl)) = (rtype_from_str(ty), ttl.parse()) else {
                    continue;
                };
                if let Some(x) = answer(&name(owner), ty, ttl, &data.join(" ")) {
                    e.answers.push(x);
                }
            }
        }
    }
    out.push(e);
    Ok(())
}

// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Az<'a> {
    #[serde(borrow)]
    category: S<'a>,
    #[serde(default)]
    time: Option<Value>,
    #[serde(default)]
    properties: Option<AzProps<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AzProps<'a> {
    #[serde(borrow, default, rename = "msg")]
    msg: Option<S<'a>>,
    #[serde(borrow, default)]
    query_name: Option<S<'a>>,
    #[serde(borrow, default)]
    query_type: Option<S<'a>>,
    #[serde(default)]
    query_id: Option<u16>,
    #[serde(borrow, default)]
    protocol: Option<S<'a>>,
    #[serde(borrow, default)]
    source_ip: Option<S<'a>>,
    #[serde(default)]
    source_port: Option<u16>,
    #[serde(borrow, default)]
    response_code: Option<S<'a>>,
    #[serde(borrow, default)]
    response_flags: Option<S<'a>>,
    #[serde(default)]
    request_size: Option<u32>,
    #[serde(default)]
    response_size: Option<u32>,
    #[serde(default)]
    request_duration_secs: Option<f64>,
}

/// Azure Firewall DNS proxy: the legacy `AzureFirewallDnsProxy` category (`properties.msg`:
/// `DNS Request: 10.0.2.4:61248 - 6513 A IN name. udp 43 false 512 NXDOMAIN qr,rd,ra 145
/// 0.0028s`, CoreDNS's fields) and the structured `AZFWDnsQuery` table. Other categories of the
/// same diagnostic log are skipped.
pub(crate) fn azure(_p: &mut Parser, m: &Msg, out: &mut Vec<DnsEvent>) -> Result<(), &'static str> {
    let a: Az = parse(m.text)?;
    if !a.category.contains("Dns") && !a.category.contains("DNS") {
        return Ok(());
    }
    let props = a.properties.ok_or("log.bad_line")?;
    let ts = a.time.as_ref().and_then(as_ts).ok_or("log.bad_time")?;
    let mut e = if let Some(msg) = &props.msg {
        let Some(r) = msg.strip_prefix("DNS Request: ") else {
            return Ok(()); // other proxy messages (errors, upstream notes)
        };
        super::text::coredns_fields(r)?
    } else {
        let qt = rtype_from_str(props.query_type.as_deref().ok_or("log.bad_line")?)
            .ok_or("log.bad_line")?;
        let client = ip(props.source_ip.as_deref().ok_or("log.no_client")?)?;
        let mut e = event(
            Ts(0),
            client,
            name(props.query_name.as_deref().ok_or("log.bad_line")?),
            qt,
        );
        e.client_port = props.source_port.unwrap_or(0);
        e.id = props.query_id.unwrap_or(0);
        if let Some(pr) = &props.protocol {
            e.transport = transport(pr);
        }
        e.query_size = Some(props.request_size.unwrap_or(0));
        if let Some(rc) = props.response_code.as_deref().and_then(rcode_from_str) {
            set_rcode(&mut e, rc);
            e.response_size = Some(props.response_size.unwrap_or(0));
            e.flags.0 |= super::flag_names(props.response_flags.as_deref().unwrap_or(""));
        }
        e.rtt_us = props.request_duration_secs.and_then(super::rtt_secs);
        e
    };
    e.ts = ts;
    out.push(e);
    Ok(())
}

// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Cf<'a> {
    #[serde(default, alias = "Datetime")]
    Timestamp: Option<Value>,
    #[serde(borrow)]
    QueryName: S<'a>,
    #[serde(default)]
    QueryType: Option<Value>,
    #[serde(borrow, default)]
    QueryTypeName: Option<S<'a>>,
    #[serde(default, alias = "RCode")]
    ResponseCode: Option<Value>,
    #[serde(borrow, alias = "SrcIP")]
    SourceIP: S<'a>,
    #[serde(default)]
    SrcPort: Option<u16>,
    #[serde(borrow, default)]
    ResolvedIPs: Vec<S<'a>>,
    #[serde(borrow, default)]
    Protocol: Option<S<'a>>,
}

/// Cloudflare Logpush `dns_logs` (authoritative: `QueryName`, `QueryType`, `ResponseCode`,
/// `SourceIP`, `Timestamp`) and Zero Trust Gateway DNS (`Datetime`, `SrcIP`, `SrcPort`,
/// `QueryName`, `QueryType`/`QueryTypeName`, `RCode`, `ResolvedIPs`).
pub(crate) fn cloudflare(
    _p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let c: Cf = parse(m.text)?;
    let ts = c.Timestamp.as_ref().and_then(as_ts).ok_or("log.bad_time")?;
    let qt = match (&c.QueryType, &c.QueryTypeName) {
        (Some(v), _) if as_u64(v).is_some() => as_u64(v).and_then(|n| u16::try_from(n).ok()),
        (Some(Value::String(s)), _) => rtype_from_str(s),
        (_, Some(n)) => rtype_from_str(n),
        _ => Some(1),
    }
    .ok_or("log.bad_line")?;
    let mut e = event(ts, ip(&c.SourceIP)?, name(&c.QueryName), qt);
    e.client_port = c.SrcPort.unwrap_or(0);
    if let Some(pr) = &c.Protocol {
        e.transport = transport(pr);
    }
    let rc = match &c.ResponseCode {
        Some(Value::String(s)) => rcode_from_str(s),
        Some(v) => as_u64(v).and_then(|n| u16::try_from(n).ok()),
        None => None,
    };
    if let Some(rc) = rc {
        set_rcode(&mut e, rc);
    }
    let owner = e.qname.clone();
    for a in c.ResolvedIPs.iter().take(MAX_ANSWERS) {
        let Some(ty) = super::addr_type(a) else {
            continue;
        };
        if let Some(x) = answer(&owner, ty, 0, a) {
            e.answers.push(x);
        }
    }
    out.push(e);
    Ok(())
}
