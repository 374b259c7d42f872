//! Each target's message format, with the escaping it needs. Alert names, summaries and
//! evidence come from DNS traffic (attacker-controlled bytes): JSON is written as JSON;
//! everything else first loses control characters (newlines, bidi overrides), then gets the
//! format's own escaping — SD-PARAM escaping for syslog, code spans with markup neutralised for
//! chat, and bounded single-line e-mail subjects (header values are also encoded by lettre).

use crate::config::{Chat, Target};
use dnsight_engine::Severity;
use dnsight_triage::{NotifyEvent, OutboxItem};
use serde_json::{json, Value};
use std::fmt::Write;

/// One notification, or a digest of several.
#[derive(Clone, Copy)]
pub enum Batch<'a> {
    One(&'a OutboxItem),
    Digest(&'a [OutboxItem]),
}

/// Most alerts listed in one digest message (the rest are counted).
pub const DIGEST_LISTED: usize = 50;

/// Control characters and invisible formatting characters as visible escapes; at most `max`
/// characters (then `…`).
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 8));
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            out.push('…');
            break;
        }
        let invisible = c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
        if invisible {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// RFC 5424 PARAM-VALUE: `"`, `\` and `]` escaped with a backslash, no control characters.
pub fn sd_param(s: &str) -> String {
    let mut out = String::new();
    for c in clean(s, 1000).chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A value in chat markup: an inline code span, so no markdown, mention (`@channel`, `<!here>`)
/// or link in it takes effect; Slack's `&`, `<`, `>` entities as well.
pub fn chat_code(s: &str) -> String {
    let c = clean(s, 300).replace('`', "'");
    let c = c
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if c.is_empty() {
        "-".into()
    } else {
        format!("`{c}`")
    }
}

fn link(t: &Target, id: &str) -> Option<String> {
    // ids are hex from the engine; refuse anything else in a URL
    let id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    // the dashboard's alert page (its sign-in page sends a person back to it)
    t.link.as_ref().map(|b| format!("{b}/ui/alerts/{id}"))
}

fn event_word(e: NotifyEvent) -> &'static str {
    e.as_str()
}

/// The JSON a webhook receives (and a `file` target writes, one per line).
pub fn json_body(t: &Target, b: Batch<'_>, sent_at: i64) -> Value {
    match b {
        Batch::One(i) => json!({
            "event": event_word(i.event),
            "target": t.name,
            "delivery": i.id,
            "sent_at": sent_at,
            "actor": i.actor,
            "note": i.note,
            "link": link(t, &i.alert.id),
            "alert": i.alert,
        }),
        Batch::Digest(items) => {
            let listed: Vec<Value> = items
                .iter()
                .take(DIGEST_LISTED)
                .map(|i| {
                    json!({
                        "event": event_word(i.event),
                        "id": i.alert.id,
                        "kind": i.alert.kind,
                        "severity": i.alert.severity,
                        "device": i.alert.device,
                        "destination": i.alert.destination,
                        "summary": i.alert.summary,
                        "link": link(t, &i.alert.id),
                    })
                })
                .collect();
            json!({
                "event": "digest",
                "target": t.name,
                "sent_at": sent_at,
                "count": items.len(),
                "by_severity": by_severity(items),
                "alerts": listed,
                "not_listed": items.len().saturating_sub(DIGEST_LISTED),
            })
        }
    }
}

fn by_severity(items: &[OutboxItem]) -> Value {
    let mut m = serde_json::Map::new();
    for s in Severity::ALL.iter().rev() {
        let n = items.iter().filter(|i| i.alert.severity == *s).count();
        if n > 0 {
            m.insert(s.as_str().into(), n.into());
        }
    }
    Value::Object(m)
}

fn sev_counts(items: &[OutboxItem]) -> String {
    Severity::ALL
        .iter()
        .rev()
        .filter_map(|s| {
            let n = items.iter().filter(|i| i.alert.severity == *s).count();
            (n > 0).then(|| format!("{n} {}", s.as_str()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A chat incoming-webhook payload: one short line (severity, device, destination, summary,
/// link) or a digest list.
pub fn chat_body(t: &Target, dialect: Chat, b: Batch<'_>) -> Value {
    let line = |i: &OutboxItem| {
        let a = &i.alert;
        let mut s = format!(
            "*{}* {} {} — {} → {}: {}",
            a.severity.as_str().to_uppercase(),
            a.kind.as_str(),
            event_word(i.event),
            chat_code(&a.device),
            chat_code(&a.destination),
            chat_code(&a.summary),
        );
        if let Some(l) = link(t, &a.id) {
            match dialect {
                Chat::Slack => {
                    let _ = write!(s, " <{l}|open>");
                }
                _ => {
                    let _ = write!(s, " [open]({l})");
                }
            }
        }
        s
    };
    let text = match b {
        Batch::One(i) => format!("dnsight: {}", line(i)),
        Batch::Digest(items) => {
            let mut s = format!(
                "dnsight digest: {} alerts ({})",
                items.len(),
                sev_counts(items)
            );
            for i in items.iter().take(DIGEST_LISTED.min(20)) {
                s.push('\n');
                s.push_str("• ");
                s.push_str(&line(i));
            }
            let more = items.len().saturating_sub(DIGEST_LISTED.min(20));
            if more > 0 {
                let _ = write!(s, "\n… and {more} more");
            }
            s
        }
    };
    match dialect {
        Chat::Slack | Chat::Mattermost => json!({ "text": text }),
        // Teams' incoming webhooks take the same `text` field (markdown)
        Chat::Teams => json!({ "text": text.replace('\n', "\n\n") }),
    }
}

fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Info => 6,
    }
}

/// The enterprise number in the structured data id (32473 is the one RFC 5612 sets aside for
/// examples and private use).
pub const SD_ID: &str = "dnsight@32473";

/// One RFC 5424 message (no framing): `<PRI>1 TIMESTAMP HOST APP - MSGID [SD] MSG`.
pub fn syslog_message(
    facility: u8,
    app: &str,
    hostname: &str,
    b: Batch<'_>,
    now_rfc3339: &str,
) -> String {
    let host: String = hostname
        .bytes()
        .filter(|b| (33..=126).contains(b))
        .take(255)
        .map(char::from)
        .collect();
    let host = if host.is_empty() { "-".into() } else { host };
    match b {
        Batch::One(i) => {
            let a = &i.alert;
            let pri = u16::from(facility) * 8 + u16::from(syslog_severity(a.severity));
            format!(
                "<{pri}>1 {now_rfc3339} {host} {app} - {msgid} [{SD_ID} event=\"{ev}\" id=\"{id}\" kind=\"{kind}\" severity=\"{sev}\" score=\"{score}\" status=\"{st}\" device=\"{dev}\" destination=\"{dest}\" count=\"{count}\" devices=\"{devs}\" actor=\"{actor}\"] {msg}",
                msgid = a.kind.as_str(),
                ev = i.event.as_str(),
                id = sd_param(&a.id),
                kind = a.kind.as_str(),
                sev = a.severity.as_str(),
                score = a.score,
                st = a.status.as_str(),
                dev = sd_param(&a.device),
                dest = sd_param(&a.destination),
                count = a.count,
                devs = a.device_count,
                actor = sd_param(&i.actor),
                msg = clean(&a.summary, 2000),
            )
        }
        Batch::Digest(items) => {
            let worst = items
                .iter()
                .map(|i| i.alert.severity)
                .max()
                .unwrap_or(Severity::Info);
            let pri = u16::from(facility) * 8 + u16::from(syslog_severity(worst));
            let ids: Vec<String> = items
                .iter()
                .take(DIGEST_LISTED)
                .map(|i| sd_param(&i.alert.id))
                .collect();
            format!(
                "<{pri}>1 {now_rfc3339} {host} {app} - digest [{SD_ID} event=\"digest\" count=\"{n}\" ids=\"{ids}\"] dnsight digest: {n} alerts ({counts})",
                n = items.len(),
                ids = ids.join(","),
                counts = sev_counts(items),
            )
        }
    }
}

/// E-mail subject and plain-text body.
pub fn email(t: &Target, b: Batch<'_>) -> (String, String) {
    let detail = |i: &OutboxItem, out: &mut String| {
        let a = &i.alert;
        let _ = writeln!(out, "Alert:       {}", clean(&a.id, 64));
        let _ = writeln!(out, "Event:       {}", i.event.as_str());
        let _ = writeln!(
            out,
            "Severity:    {} (score {})",
            a.severity.as_str(),
            a.score
        );
        let _ = writeln!(out, "Kind:        {}", a.kind.as_str());
        let _ = writeln!(out, "Status:      {}", a.status.as_str());
        let _ = writeln!(
            out,
            "Device:      {} ({} device(s))",
            clean(&a.device, 100),
            a.device_count
        );
        let _ = writeln!(out, "Destination: {}", clean(&a.destination, 300));
        let _ = writeln!(out, "Summary:     {}", clean(&a.summary, 2000));
        if i.actor != "system" {
            let _ = writeln!(out, "By:          {}", clean(&i.actor, 100));
        }
        if let Some(n) = &i.note {
            let _ = writeln!(out, "Note:        {}", clean(n, 2000));
        }
        if let Some(l) = link(t, &a.id) {
            let _ = writeln!(out, "Link:        {l}");
        }
    };
    match b {
        Batch::One(i) => {
            let a = &i.alert;
            // plain ASCII, so the subject stays one readable line in every mail client
            let mut subject = format!(
                "[dnsight] {} {} ({}): {}",
                a.severity.as_str(),
                a.kind.as_str(),
                i.event.as_str(),
                clean(&a.device, 60),
            );
            if !a.destination.is_empty() {
                subject.push_str(" -> ");
                subject.push_str(&clean(&a.destination, 80));
            }
            let mut body = String::new();
            detail(i, &mut body);
            let _ = writeln!(
                body,
                "\nEvidence:\n{}",
                serde_json::to_string_pretty(&a.evidence).unwrap_or_default()
            );
            (subject, body)
        }
        Batch::Digest(items) => {
            let subject = format!(
                "[dnsight] digest: {} alerts ({})",
                items.len(),
                sev_counts(items)
            );
            let mut body = format!(
                "{} alerts arrived faster than this target's rate; here they are in one message.\n\n",
                items.len()
            );
            for i in items.iter().take(DIGEST_LISTED) {
                detail(i, &mut body);
                body.push('\n');
            }
            let more = items.len().saturating_sub(DIGEST_LISTED);
            if more > 0 {
                let _ = writeln!(body, "… and {more} more (dnsight alerts list).");
            }
            (subject, body)
        }
    }
}
