//! Windows DNS Server analytic events (`Microsoft-Windows-DNSServer/Analytical`) as exported:
//! Event XML (`wevtutil qe ... /f:xml`, Event Viewer's "Save as XML"; one `<Event>` a line after
//! [`crate::doc::DocLines`]) and `Get-WinEvent ... | ConvertTo-Json` (PowerShell 5.1 and 7).
//!
//! Event IDs read: 256 `QUERY_RECEIVED` (the client's query: `Source`, `Port`, `XID`, `QNAME`,
//! `QTYPE`, `InterfaceIP`, `TCP`, `RD`), 257 `RESPONSE_SUCCESS` and 258 `RESPONSE_FAILURE` (the
//! answer to it: `Destination`, `Port`, `XID`, `RCODE`, `AA`, `AD`, and `PacketData`, the whole
//! response in hex, decoded for the answers). A query and its response pair on client, port, id,
//! name and type; a response whose query was not logged is an event of its own. 259
//! `IGNORED_QUERY` adds nothing (its 256 stays unanswered), 260–262 are the server's own
//! recursion to upstreams (not a device's traffic) and the other IDs (dynamic updates, zone
//! transfers, audit events) are skipped without being counted as rejects.
//!
//! Field values come from the XML's named `<Data Name=...>` elements; in the JSON export from
//! `Properties` (positional, in the event template's order) when it has the template's length,
//! else from the rendered `Message` (`QUERY_RECEIVED: TCP=0; InterfaceIP=...; ...`, first
//! occurrence of each key).

use super::{event, name, set_rcode, Msg, PKey, Parser};
use dnsight_model::{DnsEvent, Flags, Ts};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;

/// The field names of each event's template, in order (`Properties` in the JSON export).
fn template(id: u32) -> &'static [&'static str] {
    match id {
        256 => &[
            "TCP",
            "InterfaceIP",
            "Source",
            "RD",
            "QNAME",
            "QTYPE",
            "XID",
            "Port",
            "Flags",
            "PacketData",
        ],
        257 => &[
            "TCP",
            "InterfaceIP",
            "Destination",
            "AA",
            "AD",
            "QNAME",
            "QTYPE",
            "XID",
            "DNSSEC",
            "RCODE",
            "Port",
            "Flags",
            "Scope",
            "Zone",
            "PolicyName",
            "PacketData",
        ],
        258 => &[
            "TCP",
            "InterfaceIP",
            "Reason",
            "Destination",
            "QNAME",
            "QTYPE",
            "XID",
            "RCODE",
            "Port",
            "Flags",
            "Zone",
            "PolicyName",
            "PacketData",
        ],
        _ => &[],
    }
}

type Fields = HashMap<String, String>;

/// One event: its ID, time and fields.
struct WinEvent {
    id: u32,
    ts: Ts,
    fields: Fields,
}

/// `&amp;` `&lt;` `&gt;` `&quot;` `&apos;` `&#N;` `&#xN;`.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..end];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of the first `<tag ...>text</tag>`.
fn element<'a>(s: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}");
    let mut from = 0;
    loop {
        let i = from + s[from..].find(&open)?;
        let after = &s[i + open.len()..];
        match after.as_bytes().first() {
            Some(b'>' | b' ') => {
                let gt = after.find('>')?;
                if after[..gt].ends_with('/') {
                    return Some("");
                }
                let body = &after[gt + 1..];
                let end = body.find(&format!("</{tag}>"))?;
                return Some(&body[..end]);
            }
            _ => from = i + open.len(),
        }
    }
}

/// The value of `attr` in the first `<tag ...>`.
fn attribute<'a>(s: &'a str, tag: &str, attr: &str) -> Option<&'a str> {
    let open = format!("<{tag} ");
    let i = s.find(&open)?;
    let head = &s[i + open.len()..];
    let head = &head[..head.find('>')?];
    quoted_after(head, &format!("{attr}="))
}

fn quoted_after<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    loop {
        let i = from + s[from..].find(key)?;
        // a whole attribute name, not the end of a longer one
        if i > 0 && !s.as_bytes()[i - 1].is_ascii_whitespace() {
            from = i + key.len();
            continue;
        }
        let v = &s[i + key.len()..];
        let q = v.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let v = &v[1..];
        return Some(&v[..v.find(q)?]);
    }
}

fn from_xml(s: &str) -> Result<Option<WinEvent>, &'static str> {
    let system = element(s, "System").ok_or("log.bad_line")?;
    let provider = attribute(system, "Provider", "Name").unwrap_or("");
    let id: u32 = element(system, "EventID")
        .and_then(|t| t.trim().parse().ok())
        .ok_or("log.bad_line")?;
    if !is_dns_provider(provider) {
        return Ok(None);
    }
    let ts = attribute(system, "TimeCreated", "SystemTime")
        .and_then(super::ts_any)
        .ok_or("log.bad_time")?;
    let mut fields = Fields::new();
    if let Some(data) = element(s, "EventData") {
        let mut rest = data;
        while let Some(i) = rest.find("<Data ") {
            rest = &rest[i + 6..];
            let Some(gt) = rest.find('>') else { break };
            let head = &rest[..gt];
            let Some(n) = quoted_after(head, "Name=") else {
                rest = &rest[gt..];
                continue;
            };
            let n = n.to_string();
            if head.ends_with('/') {
                fields.entry(n).or_default();
                rest = &rest[gt..];
                continue;
            }
            let body = &rest[gt + 1..];
            let Some(end) = body.find("</Data>") else {
                break;
            };
            fields.entry(n).or_insert_with(|| unescape(&body[..end]));
            rest = &body[end..];
        }
    }
    Ok(Some(WinEvent { id, ts, fields }))
}

fn is_dns_provider(p: &str) -> bool {
    p.is_empty() || p.eq_ignore_ascii_case("Microsoft-Windows-DNSServer")
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct PsRecord {
    #[serde(alias = "EventID", alias = "EventId")]
    Id: Value,
    #[serde(default)]
    TimeCreated: Option<Value>,
    #[serde(default)]
    ProviderName: Option<String>,
    #[serde(default)]
    Message: Option<String>,
    #[serde(default)]
    Properties: Option<Vec<Value>>,
}

/// `/Date(1700000000123)/` (PowerShell 5.1's DateTime), or any form of [`super::ts_any`].
fn ps_time(v: &Value) -> Option<Ts> {
    match v {
        Value::String(s) => {
            if let Some(ms) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
                // `/Date(1700000000123+0100)/` carries an offset for display only
                let ms = ms.split(['+', '-']).next()?;
                let ms: i64 = ms.parse().ok()?;
                return Some(Ts(ms.checked_mul(1000)?));
            }
            super::ts_any(s)
        }
        // `Select-Object` output can nest DateTime as {"value": ..., "DateTime": "..."}
        Value::Object(o) => o.get("value").and_then(ps_time),
        Value::Number(n) => n.as_f64().filter(|v| v.is_finite()).map(super::epoch_any),
        _ => None,
    }
}

/// A property value as text: numbers and strings as they are, byte arrays as `0x...` hex.
fn prop_text(v: &Value) -> Option<String> {
    let v = match v {
        Value::Object(o) => o.get("Value")?,
        v => v,
    };
    Some(match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Array(a) => {
            let mut s = String::from("0x");
            for b in a {
                let b = b.as_u64().filter(|&b| b < 256)?;
                s.push_str(&format!("{b:02X}"));
            }
            s
        }
        _ => return None,
    })
}

/// An event as Elastic's agents ship it: Winlogbeat (`winlog.event_id`, `winlog.provider_name`)
/// or the ETW input (`event.code`, `event.provider`), the fields by name in
/// `winlog.event_data`, the time in `@timestamp`.
fn from_elastic(v: &Value) -> Result<Option<WinEvent>, &'static str> {
    let w = v.get("winlog").ok_or("log.bad_line")?;
    let text = |x: Option<&Value>| match x {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let id = text(w.get("event_id"))
        .or_else(|| text(v.pointer("/event/code")))
        .and_then(|s| s.trim().parse::<u32>().ok())
        .ok_or("log.bad_line")?;
    let provider = text(w.get("provider_name"))
        .or_else(|| text(v.pointer("/event/provider")))
        .unwrap_or_default();
    if !is_dns_provider(&provider) {
        return Ok(None);
    }
    let ts = v
        .get("@timestamp")
        .and_then(ps_time)
        .ok_or("log.bad_time")?;
    let mut fields = Fields::new();
    if let Some(Value::Object(data)) = w.get("event_data") {
        for (k, x) in data {
            if let Some(t) = prop_text(x) {
                fields.insert(k.clone(), t);
            }
        }
    }
    Ok(Some(WinEvent { id, ts, fields }))
}

fn from_json(s: &str) -> Result<Option<WinEvent>, &'static str> {
    let v: Value = serde_json::from_str(s).map_err(|_| "log.bad_json")?;
    if v.get("winlog").is_some() {
        return from_elastic(&v);
    }
    let r: PsRecord = serde_json::from_value(v).map_err(|_| "log.bad_line")?;
    let id = match &r.Id {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok())
    .ok_or("log.bad_line")?;
    if r.Message.is_none() && r.Properties.is_none() {
        return Err("log.bad_line"); // some other object with an `Id`
    }
    if !is_dns_provider(r.ProviderName.as_deref().unwrap_or("")) {
        return Ok(None);
    }
    let ts = r
        .TimeCreated
        .as_ref()
        .and_then(ps_time)
        .ok_or("log.bad_time")?;
    let tpl = template(id);
    let mut fields = Fields::new();
    match &r.Properties {
        Some(props) if !tpl.is_empty() && props.len() == tpl.len() => {
            for (k, v) in tpl.iter().zip(props) {
                if let Some(t) = prop_text(v) {
                    fields.insert(k.to_string(), t);
                }
            }
        }
        _ => {
            if let Some(m) = &r.Message {
                message_fields(m, &mut fields);
            }
        }
    }
    Ok(Some(WinEvent { id, ts, fields }))
}

/// The fields of a rendered message (`RESPONSE_SUCCESS: TCP=0; ...; QNAME=a.example.; QTYPE=1;
/// ...`). The name is attacker-chosen and may hold `; RCODE=0`: it is taken as everything from
/// the first `QNAME=` (the fields before it are the server's) to the last `; QTYPE=` (the fields
/// after it are numbers and the server's zone and policy names).
fn message_fields(m: &str, fields: &mut Fields) {
    let body = m.split_once(": ").map_or(m, |(_, b)| b);
    let mut kvs = |part: &str| {
        for kv in part.split(';') {
            if let Some((k, v)) = kv.split_once('=') {
                fields
                    .entry(k.trim().to_string())
                    .or_insert_with(|| v.trim().to_string());
            }
        }
    };
    match (body.find("QNAME="), body.rfind("; QTYPE=")) {
        (Some(qs), Some(qe)) if qe > qs => {
            kvs(&body[..qs]);
            let qname = body[qs + 6..qe].trim().to_string();
            kvs(&body[qe + 2..]);
            fields.insert("QNAME".into(), qname);
        }
        _ => kvs(body),
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The parse function of the `windows-events` format.
pub(crate) fn windows_event(
    p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let t = m.text;
    let ev = if t.starts_with("<Event") {
        from_xml(t)?
    } else if t.starts_with('{') {
        from_json(t)?
    } else {
        return Err("log.bad_line");
    };
    let Some(ev) = ev else { return Ok(()) };
    if !(256..=258).contains(&ev.id) {
        return Ok(());
    }
    let f = &ev.fields;
    let get = |k: &str| f.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let num = |k: &str| get(k).and_then(|s| s.parse::<u64>().ok());
    let qname = name(get("QNAME").ok_or("log.bad_line")?);
    let qtype = num("QTYPE")
        .and_then(|n| u16::try_from(n).ok())
        .ok_or("log.bad_line")?;
    let peer = if ev.id == 256 {
        "Source"
    } else {
        "Destination"
    };
    let client: IpAddr = get(peer)
        .ok_or("log.no_client")?
        .parse()
        .map_err(|_| "log.bad_addr")?;
    let port = num("Port").unwrap_or(0) as u16;
    let xid = num("XID").unwrap_or(0) as u16;
    let key = PKey::new(client, port, u32::from(xid), qname.clone(), qtype);
    let fill = |e: &mut DnsEvent| {
        e.client_port = port;
        e.id = xid;
        if let Some(s) = get("InterfaceIP").and_then(|s| s.parse().ok()) {
            e.server = s;
            e.server_port = 53;
        }
        if num("TCP") == Some(1) {
            e.transport = dnsight_model::Transport::Tcp;
        }
    };
    if ev.id == 256 {
        let mut e = event(ev.ts, client, qname, qtype);
        fill(&mut e);
        if num("RD") == Some(1) {
            e.flags.0 |= Flags::RD;
        }
        p.pending.insert(key, e, out);
        return Ok(());
    }
    let mut e = match p.pending.remove(&key) {
        Some(mut e) => {
            e.rtt_us = Some(ev.ts.0.saturating_sub(e.ts.0).clamp(0, u32::MAX as i64) as u32);
            e
        }
        None => {
            let mut e = event(ev.ts, client, qname, qtype);
            fill(&mut e);
            e
        }
    };
    let rcode = num("RCODE")
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(2);
    set_rcode(&mut e, rcode);
    if num("AA") == Some(1) {
        e.flags.0 |= Flags::AA;
    }
    if num("AD") == Some(1) {
        e.flags.0 |= Flags::AD;
    }
    if let Some(wire) = get("PacketData").and_then(hex) {
        if let Ok(msg) = p.decoder.decode(&wire) {
            e.flags = Flags(msg.header.flags.0 | Flags::QR);
            e.response_size = Some(msg.size);
            e.answers = msg.answers;
            e.answers.truncate(super::MAX_ANSWERS);
        }
    }
    p.pending.expire(ev.ts, out);
    out.push(e);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_helpers_take_what_they_should() {
        let s = "<Event><System><Provider Name='Microsoft-Windows-DNSServer' Guid='{x}'/><EventID Qualifiers=''>257</EventID><TimeCreated SystemTime=\"2026-12-03T12:00:00.1234567Z\"/></System></Event>";
        assert_eq!(element(s, "EventID"), Some("257"));
        assert_eq!(
            attribute(s, "Provider", "Name"),
            Some("Microsoft-Windows-DNSServer")
        );
        assert_eq!(
            attribute(s, "TimeCreated", "SystemTime"),
            Some("2026-12-03T12:00:00.1234567Z")
        );
        assert_eq!(unescape("a&amp;b&lt;&#x41;&#66;&bogus;&"), "a&b<AB&bogus;&");
        // a name that tries to set the fields after it
        let mut f = Fields::new();
        message_fields("RESPONSE_SUCCESS: TCP=0; InterfaceIP=10.0.0.1; Destination=10.0.0.5; AA=0; AD=0; QNAME=x; QTYPE=1; XID=1; RCODE=0; Port=9; Destination=6.6.6.6.; QTYPE=28; XID=7; DNSSEC=0; RCODE=3; Port=53211; Flags=0; Scope=Default; Zone=..Cache; PolicyName=NULL; PacketData=0x", &mut f);
        assert_eq!(
            f["QNAME"],
            "x; QTYPE=1; XID=1; RCODE=0; Port=9; Destination=6.6.6.6."
        );
        assert_eq!(
            (
                f["RCODE"].as_str(),
                f["QTYPE"].as_str(),
                f["Destination"].as_str(),
                f["Port"].as_str()
            ),
            ("3", "28", "10.0.0.5", "53211")
        );
        assert_eq!(hex("0x0A0b"), Some(vec![10, 11]));
        assert_eq!(hex("0x0A0"), None);
        assert_eq!(
            ps_time(&Value::String("/Date(1700000000123)/".into())),
            Some(Ts(1_700_000_000_123_000))
        );
    }
}
