//! Cloud envelopes: the wrappers cloud log pipelines put around the records of the formats in
//! the registry, removed before a record reaches its format (any format: a CloudWatch event's
//! `message` may be a Route 53 record or a BIND line).
//!
//! - **CloudWatch Logs** subscription payloads (`{"messageType":"DATA_MESSAGE","logGroup":...,
//!   "logEvents":[{"id":...,"timestamp":ms,"message":"..."}]}`, gzip, as delivered to Lambda,
//!   Kinesis or Firehose; `CONTROL_MESSAGE` payloads carry no records) and CloudWatch's export to
//!   S3 (`2026-12-03T12:00:00.000Z {...}`: the event's time, a space, the message);
//! - **Firehose** records (`{"records":[{"data":"<base64>"}]}`: the HTTP endpoint delivery
//!   request and the transformation-Lambda event); the data is decoded, gunzipped when it is gzip
//!   (CloudWatch subscription data is), and each line or concatenated object of it is a record;
//! - **Azure** diagnostic logs (`{"records":[{...},{...}]}`, Event Hubs and storage exports);
//! - **Google Cloud** Pub/Sub messages carrying Cloud Logging entries (`{"message":{"data":
//!   "<base64 LogEntry>",...},"subscription":...}`) and JSON arrays of entries
//!   (`gcloud logging read --format=json`, one line or, via [`crate::doc`], pretty-printed);
//! - shippers' `{"message": "<record>", "timestamp": ...}` wrappers around a JSON record.
//!
//! Envelopes nest (Firehose → CloudWatch → Route 53) up to [`MAX_DEPTH`] levels; a decoded
//! payload is capped at [`MAX_PAYLOAD`] bytes (`log.payload_too_large`), bad base64 or gzip is
//! `log.bad_payload`.

use super::{ts_any, Ts};
use serde::Deserialize;
use serde_json::Value;
use std::io::Read;

/// Envelopes inside envelopes, at most.
pub(crate) const MAX_DEPTH: u8 = 4;
/// Largest decoded payload (bytes).
pub(crate) const MAX_PAYLOAD: usize = 16 << 20;

/// A record taken out of an envelope, with the envelope's time for it.
pub(crate) type Inner = (String, Option<Ts>);

/// The keys that mark an envelope, searched on every JSON record (searchers built once).
static KEYS: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 4]> =
    std::sync::LazyLock::new(|| {
        ["\"logEvents\"", "\"records\"", "\"message\"", "}{"]
            .map(|k| memchr::memmem::Finder::new(k.as_bytes()).into_owned())
    });

fn has(s: &str, k: usize) -> bool {
    KEYS[k].find(s.as_bytes()).is_some()
}

/// The records inside `text` when it is an envelope; `None` when it is not one (the caller
/// parses it as a record).
pub(crate) fn unwrap(text: &str) -> Option<Result<Vec<Inner>, &'static str>> {
    let t = text.trim_start();
    match t.as_bytes().first()? {
        b'[' => array(t).map(Ok),
        b'{' => {
            if has(t, 0) {
                if let Some(r) = cloudwatch(t) {
                    return Some(r);
                }
            }
            if has(t, 1) {
                if let Some(r) = records(t) {
                    return Some(r);
                }
            }
            if has(t, 2) {
                if let Some(r) = message(t) {
                    return Some(r);
                }
            }
            if has(t, 3) {
                // objects concatenated on one line (Firehose to S3 without a delimiter)
                let mut out = Vec::new();
                split_payload(t, None, &mut out);
                if out.len() > 1 {
                    return Some(Ok(out));
                }
            }
            None
        }
        b'0'..=b'9' => export_line(t).map(|r| Ok(vec![r])),
        _ => None,
    }
}

fn as_ts(v: &Value) -> Option<Ts> {
    match v {
        Value::String(s) => ts_any(s),
        Value::Number(n) => n.as_f64().filter(|v| v.is_finite()).map(super::epoch_any),
        _ => None,
    }
}

fn text_of(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A JSON array of records (not a text line that starts with `[`).
fn array(t: &str) -> Option<Vec<Inner>> {
    let v: Vec<Value> = serde_json::from_str(t).ok()?;
    Some(v.into_iter().map(|e| (text_of(e), None)).collect())
}

fn cloudwatch(t: &str) -> Option<Result<Vec<Inner>, &'static str>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Cw {
        #[serde(default)]
        message_type: Option<String>,
        log_events: Vec<Ev>,
    }
    #[derive(Deserialize)]
    struct Ev {
        #[serde(default)]
        timestamp: Option<Value>,
        message: String,
    }
    let cw: Cw = serde_json::from_str(t).ok()?;
    if cw.message_type.as_deref() == Some("CONTROL_MESSAGE") {
        return Some(Ok(Vec::new()));
    }
    Some(Ok(cw
        .log_events
        .into_iter()
        .map(|e| (e.message, e.timestamp.as_ref().and_then(as_ts)))
        .collect()))
}

fn records(t: &str) -> Option<Result<Vec<Inner>, &'static str>> {
    #[derive(Deserialize)]
    struct Recs {
        records: Vec<Value>,
        #[serde(default)]
        timestamp: Option<Value>,
    }
    let r: Recs = serde_json::from_str(t).ok()?;
    let env_ts = r.timestamp.as_ref().and_then(as_ts);
    let mut out = Vec::new();
    for rec in r.records {
        // Firehose: {"data": base64} (and recordId, approximateArrivalTimestamp); Azure: the
        // record itself
        let firehose = match &rec {
            Value::Object(o) => {
                o.get("data").is_some_and(Value::is_string)
                    && !o.contains_key("category")
                    && !o.contains_key("time")
            }
            _ => false,
        };
        if firehose {
            let ts = rec
                .get("approximateArrivalTimestamp")
                .and_then(as_ts)
                .or(env_ts);
            let data = rec.get("data").and_then(Value::as_str).unwrap_or("");
            match payload(data) {
                Ok(text) => split_payload(&text, ts, &mut out),
                Err(e) => return Some(Err(e)),
            }
        } else {
            out.push((text_of(rec), None));
        }
    }
    Some(Ok(out))
}

/// Pub/Sub (`{"message":{"data":...}}`) or a shipper's `{"message":"{...}"}` wrapper.
fn message(t: &str) -> Option<Result<Vec<Inner>, &'static str>> {
    #[derive(Deserialize)]
    struct W {
        message: Value,
        #[serde(default)]
        timestamp: Option<Value>,
        #[serde(default, rename = "@timestamp")]
        at_timestamp: Option<Value>,
    }
    let w: W = serde_json::from_str(t).ok()?;
    let ts = w.timestamp.or(w.at_timestamp).as_ref().and_then(as_ts);
    match w.message {
        Value::Object(o) => {
            let data = o.get("data")?.as_str()?;
            let ts = o.get("publishTime").and_then(as_ts).or(ts);
            let mut out = Vec::new();
            match payload(data) {
                Ok(text) => split_payload(&text, ts, &mut out),
                Err(e) => return Some(Err(e)),
            }
            Some(Ok(out))
        }
        // a JSON record as a string; a text record is the container-log path's
        Value::String(s) if s.trim_start().starts_with('{') => Some(Ok(vec![(s, ts)])),
        _ => None,
    }
}

/// CloudWatch's export to S3: `TIMESTAMP SP MESSAGE`, the message a JSON record.
fn export_line(t: &str) -> Option<Inner> {
    let (stamp, rest) = t.split_once(' ')?;
    if stamp.len() < 20 || stamp.as_bytes().get(4) != Some(&b'-') {
        return None;
    }
    let rest = rest.trim_start();
    if !rest.starts_with('{') {
        return None;
    }
    let ts = stamp.parse::<jiff::Timestamp>().ok()?;
    Some((rest.to_string(), Some(Ts(ts.as_microsecond()))))
}

/// Base64, then gunzip when the bytes are gzip; capped at [`MAX_PAYLOAD`].
fn payload(data: &str) -> Result<String, &'static str> {
    let bytes = super::json::base64(data.trim()).ok_or("log.bad_payload")?;
    if bytes.len() > MAX_PAYLOAD {
        return Err("log.payload_too_large");
    }
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .take(MAX_PAYLOAD as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| "log.bad_payload")?;
        if out.len() > MAX_PAYLOAD {
            return Err("log.payload_too_large");
        }
        out
    } else {
        bytes
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A decoded payload's records: its lines, and objects concatenated on one line.
fn split_payload(text: &str, ts: Option<Ts>, out: &mut Vec<Inner>) {
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        if l.starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(l).is_err() {
            let mut any = false;
            for v in serde_json::Deserializer::from_str(l).into_iter::<Value>() {
                match v {
                    Ok(v) => {
                        any = true;
                        out.push((v.to_string(), ts));
                    }
                    Err(_) => break,
                }
            }
            if any {
                continue;
            }
        }
        out.push((l.to_string(), ts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_give_their_records() {
        let cw = r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1796299200000,"message":"{\"a\":1}"},{"id":"2","timestamp":1796299201000,"message":"x y"}]}"#;
        let r = unwrap(cw).unwrap().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0, "{\"a\":1}");
        assert_eq!(r[1].1, Some(Ts(1_796_299_201_000_000)));
        let ctl = r#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}"#;
        assert!(unwrap(ctl).unwrap().unwrap().is_empty());
        assert_eq!(unwrap("{\"a\":1}").map(|r| r.is_ok()), None);
        let az = r#"{"records":[{"time":"2026-12-03T12:00:00Z","category":"AZFWDnsQuery"},{"time":"x","category":"y"}]}"#;
        assert_eq!(unwrap(az).unwrap().unwrap().len(), 2);
        // Firehose: base64 of two concatenated objects
        let fh = r#"{"requestId":"r","timestamp":1796299200000,"records":[{"data":"eyJhIjoxfXsiYiI6Mn0="}]}"#;
        let r = unwrap(fh).unwrap().unwrap();
        assert_eq!(
            r.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            ["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(
            unwrap(r#"{"records":[{"data":"!!"}]}"#).unwrap(),
            Err("log.bad_payload")
        );
        let ex = unwrap("2026-12-03T12:00:00.000Z {\"a\":1}")
            .unwrap()
            .unwrap();
        assert_eq!(ex[0].1, Some(Ts(1_796_299_200_000_000)));
        assert!(unwrap("2026-12-03T12:00:00.000Z named: x").is_none());
    }
}
