//! The text line formats of the registry, and the syslog envelope.

use super::{addr_port, answer, event, name, set_rcode, Msg, PKey, Parser, MAX_ANSWERS};
use dnsight_model::{rcode_from_str, rtype_from_str, DnsEvent, Flags, Name, Transport, Ts};
use std::net::{IpAddr, Ipv4Addr};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month(s: &str) -> Option<i8> {
    let s = s.get(..3)?;
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(s))
        .map(|i| i as i8 + 1)
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `hh:mm:ss[.frac]` → (h, m, s, microseconds).
fn clock(s: &str) -> Option<(i8, i8, i8, i32)> {
    let (hms, frac) = match s.split_once(['.', ',']) {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let mut it = hms.split(':');
    let h = num(it.next()?)?;
    let m = num(it.next()?)?;
    let sec = num(it.next()?)?;
    if it.next().is_some() {
        return None;
    }
    let mut us = 0i32;
    if !frac.is_empty() {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = &frac[..frac.len().min(6)];
        us = digits.parse::<i32>().ok()? * 10i32.pow(6 - digits.len() as u32);
    }
    Some((h, m, sec, us))
}

fn civil(p: &Parser, y: i16, mo: i8, d: i8, c: (i8, i8, i8, i32)) -> Option<Ts> {
    let dt = jiff::civil::DateTime::new(y, mo, d, c.0, c.1, c.2, c.3 * 1000).ok()?;
    p.civil(dt)
}

/// Splits off the first whitespace-separated token.
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    match s.find(char::is_whitespace) {
        Some(i) => Some((&s[..i], &s[i..])),
        None => Some((s, "")),
    }
}

/// `Mmm dd hh:mm:ss[.frac] ` (RFC 3164) at the start of `s`.
fn bsd_time<'a>(s: &'a str, p: &Parser) -> Option<(Ts, &'a str)> {
    let (m, rest) = token(s)?;
    if m.len() != 3 {
        return None;
    }
    let mo = month(m)?;
    let (d, rest) = token(rest)?;
    let d: i8 = num(d)?;
    let (c, rest) = token(rest)?;
    let c = clock(c)?;
    Some((p.civil_no_year(mo, d, c.0, c.1, c.2, c.3)?, rest))
}

/// After a syslog timestamp: `[host] tag[pid]: message` → the message.
fn strip_tag(r: &str) -> &str {
    let Some((t1, rest1)) = token(r) else {
        return r;
    };
    if t1.ends_with(':') {
        return rest1.trim_start();
    }
    if let Some((t2, rest2)) = token(rest1) {
        if t2.ends_with(':') {
            return rest2.trim_start();
        }
        // `host address tag[pid]: ` (Infoblox relays)
        if let Some((t3, rest3)) = token(rest2) {
            if t3.ends_with("]:") {
                return rest3.trim_start();
            }
        }
    }
    r
}

/// Removes a syslog header (RFC 3164, RFC 5424, rsyslog's ISO-time file format) from a line;
/// returns the message and the header's time.
pub(crate) fn strip_syslog<'a>(s: &'a str, p: &Parser) -> (&'a str, Option<Ts>) {
    let mut rest = s;
    let mut pri = false;
    if let Some(r) = rest.strip_prefix('<') {
        if let Some(i) = r.find('>') {
            if (1..=3).contains(&i) && r[..i].bytes().all(|b| b.is_ascii_digit()) {
                rest = &r[i + 1..];
                pri = true;
            }
        }
    }
    if pri {
        if let Some(r) = rest.strip_prefix("1 ") {
            return rfc5424(r);
        }
    }
    if let Some((ts, r)) = bsd_time(rest, p) {
        return (strip_tag(r), Some(ts));
    }
    // rsyslog's RSYSLOG_FileFormat: `2026-12-03T12:16:19.123456+00:00 host tag: msg`
    if let Some((t, r)) = token(rest) {
        if t.len() >= 19 && t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b'T' {
            if let Ok(ts) = t.parse::<jiff::Timestamp>() {
                let m = strip_tag(r);
                if m.len() < r.len() {
                    return (m, Some(Ts(ts.as_microsecond())));
                }
            }
        }
    }
    (rest, None)
}

/// The program name of a syslog line (RFC 5424's APP-NAME, RFC 3164's tag without `[pid]`).
pub(crate) fn syslog_app(s: &str) -> Option<&str> {
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('<') {
        let i = r.find('>')?;
        rest = &r[i + 1..];
        if let Some(r) = rest.strip_prefix("1 ") {
            let mut it = r.split_ascii_whitespace();
            let app = it.nth(2)?;
            return (app != "-").then_some(app);
        }
    }
    let t = rest
        .split_ascii_whitespace()
        .take(6)
        .find(|t| t.ends_with(':'))?;
    let t = t.trim_end_matches(':');
    let t = t.split('[').next().unwrap_or(t);
    (!t.is_empty()).then_some(t)
}

/// `TIMESTAMP HOST APP PROCID MSGID SD MSG` (after `<PRI>1 `).
fn rfc5424(r: &str) -> (&str, Option<Ts>) {
    let mut rest = r;
    let mut ts = None;
    for i in 0..5 {
        let Some((t, r2)) = token(rest) else {
            return (rest, ts);
        };
        if i == 0 {
            ts = t
                .parse::<jiff::Timestamp>()
                .ok()
                .map(|t| Ts(t.as_microsecond()));
        }
        rest = r2;
    }
    // structured data: `-` or one or more `[...]` (with `\]` escapes)
    let r = rest.trim_start();
    let r = if let Some(x) = r.strip_prefix('-') {
        x
    } else {
        let b = r.as_bytes();
        let mut i = 0;
        while i < b.len() && b[i] == b'[' {
            i += 1;
            while i < b.len() && b[i] != b']' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        }
        r.get(i.min(r.len())..).unwrap_or("")
    };
    let r = r.trim_start();
    (r.strip_prefix('\u{feff}').unwrap_or(r), ts)
}

/// The time of a record: its own, else the envelope's.
fn need_ts(own: Option<Ts>, m: &Msg) -> Result<Ts, &'static str> {
    own.or(m.ts).ok_or("log.bad_time")
}

// ---------------------------------------------------------------------------------------------
// BIND and BIND-derived appliances

/// `19-Oct-2022 05:34:02.425` at the start of a message.
fn bind_time<'a>(s: &'a str, p: &Parser) -> Option<(Ts, &'a str)> {
    let (date, rest) = token(s)?;
    let mut it = date.split('-');
    let d: i8 = num(it.next()?)?;
    let mo = month(it.next()?)?;
    let y: i16 = num(it.next()?)?;
    let (c, rest) = token(rest)?;
    Some((civil(p, y, mo, d, clock(c)?)?, rest))
}

/// BIND's query flags after `IN A`: `+` recursion desired, `E` EDNS, `T` TCP, `D` DO, `C` CD.
fn bind_flags(e: &mut DnsEvent, f: &str) {
    if f.starts_with('+') {
        e.flags.0 |= Flags::RD;
    }
    if f.contains('T') {
        e.transport = Transport::Tcp;
    }
    if f.contains('C') {
        e.flags.0 |= Flags::CD;
    }
}

/// BIND querylog (`client @0x.. 1.2.3.4#5353 (name): query: name IN A +E(0)K (10.0.0.1)`), its
/// security log (`query (cache) 'name/A/IN' denied`, `zone transfer ... denied`), Infoblox NIOS
/// (`client 1.2.3.4#53 UDP: query: name IN A response: NOERROR +ED name 300 IN A 1.2.3.4;`) and
/// EfficientIP (`client 1.2.3.4#53 (name): answer: name IN A (10.0.0.1) -> NOERROR 7 A 1.2.3.4`).
pub(crate) fn bind(p: &mut Parser, m: &Msg, out: &mut Vec<DnsEvent>) -> Result<(), &'static str> {
    let (own, rest) = match bind_time(m.text, p) {
        Some((t, r)) => (Some(t), r),
        None => (None, m.text),
    };
    let Some(at) = rest.find("client ") else {
        // BIND's other messages (zone transfers, validation, start-up): not about a query
        return if rest.contains("named") || m.ts.is_some() || own.is_some() {
            Ok(())
        } else {
            Err("log.bad_line")
        };
    };
    let mut r = &rest[at + 7..];
    let ts = need_ts(own, m)?;
    let (mut t, mut r2) = token(r).ok_or("log.bad_line")?;
    if t.starts_with("@0x") {
        (t, r2) = token(r2).ok_or("log.bad_line")?;
    }
    let (client, port) = addr_port(t.trim_end_matches(':')).ok_or("log.bad_addr")?;
    r = r2.trim_start();
    // `(name):` — the name is repeated below
    if r.starts_with('(') {
        let close = r.find("):").ok_or("log.bad_line")?;
        r = &r[close + 2..];
    }
    let mut r = r.trim_start().trim_start_matches(':').trim_start();
    // `view internal: `
    if let Some(v) = r.strip_prefix("view ") {
        if let Some(i) = v.find(": ") {
            r = &v[i + 2..];
        }
    }
    let mut transport = Transport::Udp;
    let r = if let Some(x) = r.strip_prefix("UDP: ") {
        x
    } else if let Some(x) = r.strip_prefix("TCP: ") {
        transport = Transport::Tcp;
        x
    } else {
        r
    };
    let mut e;
    if let Some(q) = r.strip_prefix("query: ") {
        let mut it = q.split_ascii_whitespace();
        let n = name(it.next().ok_or("log.bad_line")?);
        let _class = it.next().ok_or("log.bad_line")?;
        let qt = rtype_from_str(it.next().ok_or("log.bad_line")?).ok_or("log.bad_line")?;
        e = event(ts, client, n, qt);
        e.transport = transport;
        if let Some(f) = it.next() {
            if f != "response:" {
                bind_flags(&mut e, f);
            }
        }
        for w in it.by_ref() {
            if let Some(s) = w.strip_prefix('(').and_then(|w| w.strip_suffix(')')) {
                if let Ok(a) = s.parse() {
                    e.server = a;
                }
            }
        }
        if let Some(i) = q.find(" response: ") {
            infoblox_response(&mut e, &q[i + 11..]);
        }
    } else if let Some(a) = r.strip_prefix("answer: ") {
        // EfficientIP: `name IN TYPE (server) -> RCODE [ttl TYPE data]...`
        let (head, tail) = a.split_once("->").ok_or("log.bad_line")?;
        let mut it = head.split_ascii_whitespace();
        let n = name(it.next().ok_or("log.bad_line")?);
        let _class = it.next();
        let qt = rtype_from_str(it.next().ok_or("log.bad_line")?).ok_or("log.bad_line")?;
        e = event(ts, client, n, qt);
        if let Some(s) = it
            .next()
            .and_then(|w| w.strip_prefix('(')?.strip_suffix(')'))
        {
            if let Ok(a) = s.parse() {
                e.server = a;
            }
        }
        let mut t = tail.split_ascii_whitespace();
        let rc = rcode_from_str(t.next().ok_or("log.bad_line")?).ok_or("log.bad_line")?;
        set_rcode(&mut e, rc);
        let mut owner = e.qname.clone();
        let words: Vec<&str> = t.collect();
        for w in words.chunks(3).take(MAX_ANSWERS) {
            let [ttl, ty, data] = w else { break };
            let (Some(ttl), Some(ty)) = (ttl.parse().ok(), rtype_from_str(ty)) else {
                break;
            };
            if let Some(ans) = answer(&owner, ty, ttl, data) {
                if let Some(n) = ans.target().filter(|_| ty == 5) {
                    owner = n.clone();
                }
                e.answers.push(ans);
            }
        }
    } else if let Some(f) = r.strip_prefix("query failed (") {
        // `query failed (REFUSED) for name/IN/TXT at query.c:10288`
        let (rc, q) = f.split_once(") for ").ok_or("log.bad_line")?;
        let q = q.split_ascii_whitespace().next().ok_or("log.bad_line")?;
        let mut parts = q.rsplitn(3, '/');
        let qt = rtype_from_str(parts.next().ok_or("log.bad_line")?).ok_or("log.bad_line")?;
        let _class = parts.next();
        let n = name(parts.next().ok_or("log.bad_line")?);
        e = event(ts, client, n, qt);
        set_rcode(&mut e, rcode_from_str(rc).unwrap_or(2));
    } else if let Some(i) = r.find(" denied") {
        // `query (cache) 'name/TYPE/CLASS' denied`, `zone transfer 'zone/AXFR/IN' denied`
        let q = &r[..i];
        let start = q.find('\'').ok_or("log.bad_line")?;
        let inner = q[start + 1..].trim_end_matches('\'');
        let mut parts = inner.rsplitn(3, '/');
        let _class = parts.next();
        let qt = rtype_from_str(parts.next().ok_or("log.bad_line")?).ok_or("log.bad_line")?;
        let n = name(parts.next().ok_or("log.bad_line")?);
        e = event(ts, client, n, qt);
        set_rcode(&mut e, 5);
    } else {
        return Ok(()); // other client messages: notify, transfer, update, rewriting
    };
    e.client_port = port;
    e.server_port = 53;
    out.push(e);
    Ok(())
}

/// Infoblox: `NOERROR +ED a.foo.com 28800 IN A 1.2.3.4; a.foo.com 28800 IN A 5.6.7.8;`
fn infoblox_response(e: &mut DnsEvent, r: &str) {
    let mut it = r.splitn(3, ' ');
    let Some(rc) = it.next().and_then(rcode_from_str) else {
        return;
    };
    set_rcode(e, rc);
    let _flags = it.next();
    let Some(rest) = it.next() else { return };
    for rr in rest.split(';').take(MAX_ANSWERS) {
        let w: Vec<&str> = rr.split_ascii_whitespace().collect();
        if let [owner, ttl, _class, ty, data @ ..] = w.as_slice() {
            let (Some(ttl), Some(ty)) = (ttl.parse().ok(), rtype_from_str(ty)) else {
                continue;
            };
            if let Some(a) = answer(&name(owner), ty, ttl, &data.join(" ")) {
                e.answers.push(a);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Unbound

/// Unbound `log-queries` (`info: 127.0.0.1 www.example.com. A IN`) and `log-replies`
/// (`... A IN NOERROR 0.000123 0 61`: rcode, seconds, from cache, size), in its log file
/// (`[1700000000] unbound[123:0] info: ...`), with `log-time-ascii`, or via syslog. A query line
/// waits for its reply line.
pub(crate) fn unbound(
    p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let mut r = m.text;
    let mut own = None;
    // `[1700000000] `
    if let Some(x) = r.strip_prefix('[') {
        if let Some((secs, rest)) = x.split_once("] ") {
            if let Some(v) = num::<i64>(secs) {
                own = Some(Ts::from_secs(v));
                r = rest;
            }
        }
    }
    // `unbound[123:0] ` and/or `[123:0] `, then `info: `
    if let Some((t, rest)) = token(r) {
        if t.starts_with("unbound") {
            r = rest.trim_start();
        }
    }
    if let Some((t, rest)) = token(r) {
        if t.starts_with('[') && t.ends_with(']') {
            r = rest.trim_start();
        }
    }
    // (`info:` is gone when a syslog-style header took it for the tag)
    let r = r.strip_prefix("info: ").unwrap_or(r);
    let w: Vec<&str> = r.split_ascii_whitespace().collect();
    let (client, n, qt) = match w.as_slice() {
        [c, n, t, class, ..] if n.ends_with('.') && class.len() <= 8 => {
            let Ok(client) = c.parse::<IpAddr>() else {
                return if c.contains('.') || c.contains(':') {
                    Err("log.bad_addr")
                } else {
                    Ok(()) // another info line (start of service, statistics)
                };
            };
            (client, name(n), rtype_from_str(t).ok_or("log.bad_line")?)
        }
        _ => return Ok(()),
    };
    let ts = need_ts(own, m)?;
    let key = PKey::new(client, 0, 0, n.clone(), qt);
    match &w[4..] {
        [] => {
            let e = event(ts, client, n, qt);
            p.pending.insert(key, e, out);
        }
        [rc, secs, _from_cache, size, ..] => {
            let rc = rcode_from_str(rc).ok_or("log.bad_line")?;
            let mut e = p
                .pending
                .remove(&key)
                .unwrap_or_else(|| event(ts, client, n, qt));
            set_rcode(&mut e, rc);
            e.rtt_us = secs.parse().ok().and_then(super::rtt_secs);
            e.response_size = size.parse().ok().or(Some(0));
            p.pending.expire(ts, out);
            out.push(e);
        }
        _ => return Err("log.bad_line"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// dnsmasq / Pi-hole

/// dnsmasq and Pi-hole `log-queries` (optionally `=extra`, which prefixes
/// `SERIAL CLIENT/PORT`): `query[A] name from 10.0.0.5` opens a query; `reply`, `cached`,
/// `config`, `/etc/hosts`, `gravity blocked` and similar `<what> name is <data>` lines add its
/// answer or rcode (`NXDOMAIN`, `NODATA`, `SERVFAIL`, `REFUSED`, `<CNAME>` then the chain).
pub(crate) fn dnsmasq(
    p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let mut r = m.text;
    // log-queries=extra: `12 10.0.0.5/53211 query[A] ...`
    let mut serial = None;
    if let Some((t1, rest)) = token(r) {
        if let Some(s) = num::<u32>(t1) {
            if let Some((t2, rest2)) = token(rest) {
                if let Some((a, port)) = addr_port(t2) {
                    serial = Some((s, a, port));
                    r = rest2.trim_start();
                }
            }
        }
    }
    if let Some(q) = r.strip_prefix("query[") {
        let (ty, rest) = q.split_once("] ").ok_or("log.bad_line")?;
        let (n, from) = rest.split_once(" from ").ok_or("log.bad_line")?;
        let qt = rtype_from_str(ty).ok_or("log.bad_line")?;
        let (client, cport) = addr_port(from).ok_or("log.bad_addr")?;
        let ts = m.ts.ok_or("log.bad_time")?;
        let n = name(n);
        let mut e = event(ts, client, n.clone(), qt);
        let key = match serial {
            Some((s, a, port)) => {
                e.client_port = port;
                PKey::new(a, 0, s, Name::root(), 0)
            }
            None => {
                e.client_port = cport;
                PKey::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, 0, n, 0)
            }
        };
        p.chain = None;
        p.pending.insert(key, e, out);
        return Ok(());
    }
    // `<what> name is <data>`
    let Some((head, data)) = r.rsplit_once(" is ") else {
        return Ok(()); // forwarded, dnssec-query, start-up and other lines
    };
    let Some((what, n)) = head.rsplit_once(' ') else {
        return Ok(());
    };
    if what.is_empty() || what.starts_with("query") || what == "forwarded" {
        return Ok(());
    }
    let n = name(n);
    let key = match serial {
        Some((s, a, _)) => PKey::new(a, 0, s, Name::root(), 0),
        None => {
            let k = PKey::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, 0, n.clone(), 0);
            if p.pending.get_mut(&k).is_some() {
                k
            } else {
                match p.chain.clone() {
                    Some(k) => k,
                    None => return Err("log.reply_without_query"),
                }
            }
        }
    };
    let Some(e) = p.pending.get_mut(&key) else {
        return Err("log.reply_without_query");
    };
    let data = data.trim();
    match data {
        "NXDOMAIN" | "NXDOMAIN-IPv4" | "NXDOMAIN-IPv6" => set_rcode(e, 3),
        "SERVFAIL" => set_rcode(e, 2),
        "REFUSED" => set_rcode(e, 5),
        d if d.starts_with("NODATA") => set_rcode(e, 0),
        "<CNAME>" => {
            set_rcode(e, 0);
            p.chain = Some(key);
            return Ok(());
        }
        d if d.starts_with('<') => set_rcode(e, 0), // <SRV>, <TXT>, <MX>, <HTTPS>...
        d => {
            set_rcode(e, 0);
            if e.answers.len() < MAX_ANSWERS {
                // the CNAME chain: the previous answer names this owner
                let link = e.answers.last().map(|a| a.name.clone());
                let owner = n.clone();
                if e.answers.is_empty() && owner != e.qname {
                    if let Some(a) = super::answer(&e.qname, 5, 0, owner.as_str()) {
                        e.answers.push(a);
                    }
                } else if link.as_ref().is_some_and(|l| *l != owner)
                    && !e.answers.iter().any(|a| a.target() == Some(&owner))
                    && owner != e.qname
                {
                    if let Some(prev) = link {
                        if let Some(a) = super::answer(&prev, 5, 0, owner.as_str()) {
                            e.answers.push(a);
                        }
                    }
                }
                let ty = super::addr_type(d).unwrap_or(if e.qtype == 12 { 12 } else { 16 });
                if let Some(a) = super::answer(&owner, ty, 0, d) {
                    e.answers.push(a);
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// PowerDNS Recursor

/// `key="value"` pairs of a structured log line.
fn kv<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=\"");
    let mut from = 0;
    while let Some(i) = s[from..].find(&pat) {
        let at = from + i;
        if at == 0 || s.as_bytes()[at - 1] == b' ' {
            let v = &s[at + pat.len()..];
            return v.find('"').map(|j| &v[..j]);
        }
        from = at + pat.len();
    }
    None
}

/// PowerDNS Recursor with `quiet=no`: classic `question for 'www.example.com|A' from
/// 10.0.0.5:40000` and structured (`msg="Question" ... qname="www.example.com" qtype="A"
/// remote="10.0.0.5:40000"`, with `ts="1700000000.123"`). Structured logging (4.8 and later)
/// also writes `msg="Answer"` with the same `remote`, `qname` and `qtype` and the `rcode` (a
/// number) and `totms`: the question waits for it, so those events have their rcode.
pub(crate) fn powerdns(
    p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let r = m.text;
    let question = r.contains("msg=\"Question\"");
    if question || r.contains("msg=\"Answer\"") {
        let n = kv(r, "qname").ok_or("log.bad_line")?;
        let qt = rtype_from_str(kv(r, "qtype").ok_or("log.bad_line")?).ok_or("log.bad_line")?;
        let (client, port) =
            addr_port(kv(r, "remote").ok_or("log.bad_line")?).ok_or("log.bad_addr")?;
        let own = kv(r, "ts")
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .map(Ts::from_secs_f64);
        let ts = need_ts(own, m)?;
        let key = PKey::new(client, port, 0, name(n), qt);
        let fresh = || {
            let mut e = event(ts, client, name(n), qt);
            e.client_port = port;
            if kv(r, "proto") == Some("tcp") {
                e.transport = Transport::Tcp;
            }
            e
        };
        if question {
            p.pending.insert(key, fresh(), out);
            return Ok(());
        }
        let mut e = p.pending.remove(&key).unwrap_or_else(fresh);
        if let Some(rc) = kv(r, "rcode").and_then(|c| c.parse::<u16>().ok()) {
            set_rcode(&mut e, rc);
        }
        if let Some(ms) = kv(r, "totms").and_then(|t| t.parse::<f64>().ok()) {
            e.rtt_us = super::rtt_secs(ms / 1000.0);
        }
        p.pending.expire(ts, out);
        out.push(e);
        return Ok(());
    }
    let Some(i) = r.find("question for '") else {
        // other structured and classic lines (start-up banner, housekeeping) are no query
        return if r.contains("msg=")
            || r.contains("question")
            || r.contains("PowerDNS")
            || r.starts_with("Using ")
        {
            Ok(())
        } else {
            Err("log.bad_line")
        };
    };
    let q = &r[i + 14..];
    let (nq, rest) = q.split_once('\'').ok_or("log.bad_line")?;
    let (n, ty) = nq.rsplit_once('|').ok_or("log.bad_line")?;
    let qt = rtype_from_str(ty).ok_or("log.bad_line")?;
    let from = rest
        .trim_start()
        .strip_prefix("from ")
        .ok_or("log.bad_line")?;
    let from = from.split_ascii_whitespace().next().ok_or("log.bad_line")?;
    let (client, port) = addr_port(from).ok_or("log.bad_addr")?;
    let mut e = event(need_ts(None, m)?, client, name(n), qt);
    e.client_port = port;
    out.push(e);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CoreDNS (and Azure Firewall's DNS proxy, which writes the same fields)

/// `[INFO] 10.0.0.5:42114 - 64820 "A IN host.example.com. udp 57 false 1232" NOERROR qr,aa,rd
/// 66 0.000150566s`, optionally after an RFC 3339 time (`kubectl logs --timestamps`).
pub(crate) fn coredns(
    _p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let mut r = m.text;
    let mut own = None;
    if let Some((t, rest)) = token(r) {
        if let Ok(ts) = t.parse::<jiff::Timestamp>() {
            own = Some(Ts(ts.as_microsecond()));
            r = rest.trim_start();
        }
    }
    let r = r.strip_prefix("[INFO] ").ok_or("log.bad_line")?;
    let mut e = coredns_fields(r)?;
    e.ts = own.or(m.ts).unwrap_or_else(super::wall_now);
    out.push(e);
    Ok(())
}

/// The common fields: `client:port - id "TYPE CLASS name proto size do bufsize" RCODE flags
/// rsize duration` (quotes optional). The time is left at 0.
pub(crate) fn coredns_fields(r: &str) -> Result<DnsEvent, &'static str> {
    let cleaned = r.replace('"', " ");
    let w: Vec<&str> = cleaned.split_ascii_whitespace().collect();
    let [cl, dash, id, ty, _class, n, proto, qsize, _do, _buf, rc, rest @ ..] = w.as_slice() else {
        return Err("log.bad_line");
    };
    if *dash != "-" {
        return Err("log.bad_line");
    }
    let (client, port) = addr_port(cl).ok_or("log.bad_addr")?;
    let qt = rtype_from_str(ty).ok_or("log.bad_line")?;
    let mut e = event(Ts(0), client, name(n), qt);
    e.client_port = port;
    e.id = id.parse().unwrap_or(0);
    e.transport = if proto.eq_ignore_ascii_case("tcp") {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    e.query_size = Some(qsize.parse().unwrap_or(0));
    if let Some(rc) = rcode_from_str(rc) {
        set_rcode(&mut e, rc);
        if let [flags, rsize, dur, ..] = rest {
            e.flags.0 |= super::flag_names(flags);
            e.response_size = rsize.parse().ok().or(Some(0));
            e.rtt_us = dur
                .strip_suffix('s')
                .and_then(|d| d.parse().ok())
                .and_then(super::rtt_secs);
        }
    }
    Ok(e)
}

// ---------------------------------------------------------------------------------------------
// Windows DNS Server debug log

/// `(3)www(7)example(3)com(0)` → `www.example.com`.
fn windows_name(s: &str) -> Option<Name> {
    let b = s.as_bytes();
    let mut labels: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'(' {
            return None;
        }
        let close = i + b[i..].iter().position(|&c| c == b')')?;
        let n: usize = std::str::from_utf8(&b[i + 1..close]).ok()?.parse().ok()?;
        if n == 0 {
            break;
        }
        let start = close + 1;
        let end = start.checked_add(n)?;
        labels.push(b.get(start..end)?);
        i = end;
    }
    Some(Name::from_labels(labels))
}

/// `6/1/2021 10:00:01 AM` (US), `2021-06-01 10:00:01`, `01.06.2021 10:00:01`: date, time and an
/// optional AM/PM; returns the time and the rest.
fn windows_time<'a>(s: &'a str, p: &Parser) -> Option<(Ts, &'a str)> {
    let (d, rest) = token(s)?;
    let (c, mut rest) = token(rest)?;
    let (y, mo, day) = if d.contains('/') {
        let mut it = d.split('/');
        let mo: i8 = num(it.next()?)?;
        let day: i8 = num(it.next()?)?;
        (num::<i16>(it.next()?)?, mo, day)
    } else if d.contains('-') {
        let mut it = d.split('-');
        let y = num(it.next()?)?;
        (y, num(it.next()?)?, num(it.next()?)?)
    } else {
        let mut it = d.split('.');
        let day = num(it.next()?)?;
        let mo = num(it.next()?)?;
        (num(it.next()?)?, mo, day)
    };
    let (mut h, mi, sec, us) = clock(c)?;
    if let Some((ampm, r2)) = token(rest) {
        if ampm.eq_ignore_ascii_case("PM") || ampm.eq_ignore_ascii_case("AM") {
            if !(1..=12).contains(&h) {
                return None;
            }
            let pm = ampm.eq_ignore_ascii_case("PM");
            h = (h % 12) + if pm { 12 } else { 0 };
            rest = r2;
        }
    }
    Some((civil(p, y, mo, day, (h, mi, sec, us))?, rest))
}

/// Windows DNS Server debug log packet lines: `6/1/2021 10:00:01 AM 0F3C PACKET
/// 000000A1B2C3D4E0 UDP Rcv 10.0.0.20 8f3a   Q [0001   D   NOERROR] A (3)www(7)example(3)com(0)`.
/// A received query (`Rcv`, no `R`) waits for the response sent back to the same address with
/// the same id (`Snd`, `R`); the server's own queries to its forwarders are not device traffic
/// and are skipped.
pub(crate) fn windows(
    p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let Some((ts, rest)) = windows_time(m.text, p) else {
        return Ok(()); // header, field key, detail lines
    };
    let w: Vec<&str> = rest.split_ascii_whitespace().collect();
    let Some(pk) = w.iter().position(|t| *t == "PACKET") else {
        return Ok(()); // other events the debug log can hold
    };
    let w = &w[pk + 1..];
    // ctx, proto, dir, ip, xid, [R], opcode, [flags-hex, [chars], rcode], qtype, name
    let [_ctx, proto, dir, ip, xid, rest @ ..] = w else {
        return Err("log.bad_line");
    };
    let client: IpAddr = ip.parse().map_err(|_| "log.bad_addr")?;
    let id = u16::from_str_radix(xid, 16).map_err(|_| "log.bad_line")?;
    let (is_resp, rest) = match rest {
        ["R", r @ ..] => (true, r),
        r => (false, r),
    };
    let [_opcode, rest @ ..] = rest else {
        return Err("log.bad_line");
    };
    let close = rest
        .iter()
        .position(|t| t.ends_with(']'))
        .ok_or("log.bad_line")?;
    let bracket = &rest[..=close];
    let flags_hex = bracket
        .first()
        .and_then(|t| u16::from_str_radix(t.trim_start_matches('['), 16).ok())
        .unwrap_or(0);
    // the header's flag word, printed byte-swapped (`8081` is QR RD RA)
    let word = flags_hex.swap_bytes();
    let rcode_txt = bracket[close].trim_end_matches(']');
    let [ty, qn, ..] = &rest[close + 1..] else {
        return Err("log.bad_line");
    };
    let qt = rtype_from_str(ty).ok_or("log.bad_line")?;
    let n = windows_name(qn).ok_or("log.bad_line")?;
    let key = PKey::new(client, 0, u32::from(id), n.clone(), qt);
    let incoming = dir.eq_ignore_ascii_case("Rcv");
    match (incoming, is_resp) {
        (true, false) => {
            let mut e = event(ts, client, n, qt);
            e.id = id;
            e.flags = Flags::from_header(word);
            if proto.eq_ignore_ascii_case("TCP") {
                e.transport = Transport::Tcp;
            }
            e.server_port = 53;
            p.pending.insert(key, e, out);
        }
        (false, true) => {
            let rc = rcode_from_str(rcode_txt).unwrap_or(word & 0x0f);
            let mut e = match p.pending.remove(&key) {
                Some(e) => e,
                None => {
                    let mut e = event(ts, client, n, qt);
                    e.id = id;
                    e.query_size = None;
                    e
                }
            };
            let rtt = ts.0.saturating_sub(e.ts.0).clamp(0, u32::MAX as i64) as u32;
            if e.has_query() {
                e.rtt_us = Some(rtt);
            }
            set_rcode(&mut e, rc);
            e.flags = Flags(Flags::from_header(word).0 | Flags::QR);
            p.pending.expire(ts, out);
            out.push(e);
        }
        _ => {} // the server's own recursion
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Technitium

/// Technitium DNS Server's query log file lines: `[2023-01-01 12:00:00 UTC] [10.0.0.5:53421]
/// [UDP] QNAME: example.com; QTYPE: A; QCLASS: IN; RCODE: NoError; ANSWER: [1.2.3.4, 5.6.7.8]`.
pub(crate) fn technitium(
    p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let r = m.text.strip_prefix('[').ok_or("log.bad_line")?;
    let (when, r) = r.split_once("] [").ok_or("log.bad_line")?;
    let (ep, r) = r.split_once("] [").ok_or("log.bad_line")?;
    let (proto, r) = r.split_once("] ").ok_or("log.bad_line")?;
    if !r.starts_with("QNAME: ") {
        return Err("log.bad_line");
    }
    let (date, rest) = when.split_once(' ').ok_or("log.bad_time")?;
    let (clk, zone) = rest.split_once(' ').unwrap_or((rest, "UTC"));
    let mut it = date.split('-');
    let (Some(y), Some(mo), Some(d)) = (
        it.next().and_then(num::<i16>),
        it.next().and_then(num::<i8>),
        it.next().and_then(num::<i8>),
    ) else {
        return Err("log.bad_time");
    };
    let c = clock(clk).ok_or("log.bad_time")?;
    let dt = jiff::civil::DateTime::new(y, mo, d, c.0, c.1, c.2, c.3 * 1000)
        .map_err(|_| "log.bad_time")?;
    let ts = if zone.eq_ignore_ascii_case("UTC") {
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| Ts(z.timestamp().as_microsecond()))
    } else {
        p.civil(dt)
    }
    .ok_or("log.bad_time")?;
    let (client, port) = addr_port(ep).ok_or("log.bad_addr")?;
    let field = |k: &str| {
        r.split("; ")
            .find_map(|f| f.strip_prefix(k).map(|v| v.trim().trim_end_matches(';')))
    };
    let n = name(field("QNAME: ").ok_or("log.bad_line")?);
    let qt = rtype_from_str(field("QTYPE: ").ok_or("log.bad_line")?).ok_or("log.bad_line")?;
    let mut e = event(ts, client, n, qt);
    e.client_port = port;
    e.transport = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Transport::Tcp,
        "tls" => Transport::Dot,
        "https" => Transport::Doh,
        "quic" => Transport::Doq,
        _ => Transport::Udp,
    };
    if let Some(rc) = field("RCODE: ").and_then(rcode_from_str) {
        set_rcode(&mut e, rc);
    }
    if let Some(a) = field("ANSWER: ") {
        let a = a.trim_start_matches('[').trim_end_matches(']');
        let owner = e.qname.clone();
        for d in a
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .take(MAX_ANSWERS)
        {
            let ty = super::addr_type(d).unwrap_or(5);
            if let Some(x) = answer(&owner, ty, 0, d) {
                e.answers.push(x);
            }
        }
    }
    out.push(e);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Route 53 public hosted zones

/// `1.0 2017-12-13T08:16:02.130Z Z123412341234 example.com A NOERROR UDP FRA6 55.36.5.7
/// 192.168.222.0/24`: version, time, zone id, name, type, rcode, protocol, edge location,
/// resolver address, EDNS client subnet (or `-`).
pub(crate) fn route53_public(
    _p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    let w: Vec<&str> = m.text.split_ascii_whitespace().collect();
    let [ver, t, _zone, n, ty, rc, proto, _edge, resolver, ..] = w.as_slice() else {
        return Err("log.bad_line");
    };
    if !ver.starts_with("1.") {
        return Err("log.bad_line");
    }
    let ts = t.parse::<jiff::Timestamp>().map_err(|_| "log.bad_time")?;
    let client: IpAddr = resolver.parse().map_err(|_| "log.bad_addr")?;
    let qt = rtype_from_str(ty).ok_or("log.bad_line")?;
    let mut e = event(Ts(ts.as_microsecond()), client, name(n), qt);
    set_rcode(&mut e, rcode_from_str(rc).ok_or("log.bad_line")?);
    if proto.eq_ignore_ascii_case("TCP") {
        e.transport = Transport::Tcp;
    }
    out.push(e);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cisco Umbrella

/// Splits one CSV line (RFC 4180 quotes, `""` inside quotes).
pub(crate) fn csv_fields(s: &str) -> Vec<std::borrow::Cow<'_, str>> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        // (some exports put a space after the comma)
        while i < b.len() && b[i] == b' ' && b[i..].iter().find(|&&c| c != b' ') == Some(&b'"') {
            i += 1;
        }
        if i < b.len() && b[i] == b'"' {
            let mut v = String::new();
            let mut j = i + 1;
            let mut start = j;
            loop {
                match s[j..].find('"') {
                    Some(k) => {
                        let q = j + k;
                        v.push_str(&s[start..q]);
                        if b.get(q + 1) == Some(&b'"') {
                            v.push('"');
                            j = q + 2;
                            start = j;
                        } else {
                            j = q + 1;
                            break;
                        }
                    }
                    None => {
                        v.push_str(&s[start..]);
                        j = s.len();
                        break;
                    }
                }
            }
            out.push(v.into());
            match s[j..].find(',') {
                Some(k) => i = j + k + 1,
                None => return out,
            }
        } else {
            match s[i..].find(',') {
                Some(k) => {
                    out.push(s[i..i + k].into());
                    i += k + 1;
                }
                None => {
                    out.push(s[i..].into());
                    return out;
                }
            }
        }
    }
}

/// Cisco Umbrella DNS logs: `"time","identity","identities","internal ip","external ip",
/// "action","query type","rcode","domain","categories",...` — `1 (A)` types, `Blocked` actions.
pub(crate) fn umbrella(
    _p: &mut Parser,
    m: &Msg,
    out: &mut Vec<DnsEvent>,
) -> Result<(), &'static str> {
    if !m.text.starts_with('"') {
        return Err("log.bad_line");
    }
    let f = csv_fields(m.text);
    if f.len() < 9 {
        return Err("log.bad_line");
    }
    let ts = super::ts_any(&f[0]).ok_or("log.bad_time")?;
    let client: IpAddr = f[3]
        .trim()
        .parse()
        .or_else(|_| f[4].trim().parse())
        .map_err(|_| "log.bad_addr")?;
    let ty = f[6].trim();
    let qt = match ty.split_once(' ') {
        Some((n, _)) => n.parse().ok(),
        None => rtype_from_str(ty),
    }
    .ok_or("log.bad_line")?;
    let mut e = event(ts, client, name(&f[8]), qt);
    if let Some(rc) = rcode_from_str(&f[7]) {
        set_rcode(&mut e, rc);
    }
    out.push(e);
    Ok(())
}
