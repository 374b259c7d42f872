//! dnsight-ingest: every way DNS data comes in, normalised to [`DnsEvent`]s.
//!
//! A source is an [`EventReader`]: it is pulled for batches of events and keeps
//! [`IngestStats`] (what it read and what it rejected, by reason). Formats are sniffed from the
//! content, never the file name; gzip is unwrapped transparently; `-` is stdin.
//!
//! Invariants: readers stream in bounded memory; malformed input is counted in
//! [`IngestStats::rejected`] and skipped, never a panic; sources never decide verdicts.

pub mod defrag;
pub mod dnstap;
pub mod doc;
pub mod follow;
pub mod jsonl;
pub mod live;
pub mod net;
pub mod pair;
pub mod pcap;
pub mod pcap_writer;
pub mod querylog;
pub mod syslog;
pub mod tcp;
pub mod zeek;

use dnsight_model::DnsEvent;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// What a reader has seen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestStats {
    /// Input units read: packets for captures, frames for dnstap, lines for logs.
    pub records: u64,
    /// DNS messages decoded (queries + responses).
    pub messages: u64,
    pub queries: u64,
    pub responses: u64,
    /// Events emitted (paired transactions, unanswered queries, unmatched responses).
    pub events: u64,
    /// Input that was not used, counted by reason (e.g. `dns.truncated`, `ip.bad_checksum`).
    pub rejected: BTreeMap<String, u64>,
}

impl IngestStats {
    pub fn reject(&mut self, reason: &str) {
        // look up first: allocating the key on every reject would cost a malloc per bad packet
        match self.rejected.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                self.rejected.insert(reason.to_string(), 1);
            }
        }
    }
    /// Counts an already-paired event read from a log (Zeek, JSON lines): its query and
    /// response sides as messages, and the event itself.
    pub fn count_logged_event(&mut self, ev: &DnsEvent) {
        let (q, r) = (ev.has_query() as u64, ev.has_response() as u64);
        self.queries += q;
        self.responses += r;
        self.messages += q + r;
        self.events += 1;
    }
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
    /// Adds another reader's figures into this one.
    pub fn merge(&mut self, o: &IngestStats) {
        self.records += o.records;
        self.messages += o.messages;
        self.queries += o.queries;
        self.responses += o.responses;
        self.events += o.events;
        for (k, v) in &o.rejected {
            *self.rejected.entry(k.clone()).or_default() += v;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: unrecognised input format (expected pcap, pcapng, dnstap, Zeek dns.log, JSON lines or a DNS query log: {})", querylog_names())]
    UnknownFormat { path: String },
    #[error("{0}")]
    Other(String),
}

fn querylog_names() -> String {
    querylog::FORMATS
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Options shared by all sources.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// UDP/TCP ports treated as DNS in captures (53 is always included).
    pub dns_ports: Vec<u16>,
    /// Seconds after which an unanswered query is emitted without a response (event time).
    pub pair_timeout_secs: u32,
    /// Zone of query-log timestamps that carry none (BIND, syslog, Windows DNS debug log).
    pub log_tz: jiff::tz::TimeZone,
    /// Use this format instead of sniffing (e.g. a followed log whose first lines are not
    /// queries yet).
    pub format: Option<Format>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            dns_ports: vec![53],
            pair_timeout_secs: 5,
            log_tz: jiff::tz::TimeZone::UTC,
            format: None,
        }
    }
}

/// A pull-based source of events.
pub trait EventReader: Send {
    /// Appends the next events to `out`. Returns `Ok(false)` at the end of input.
    fn next_batch(&mut self, out: &mut Vec<DnsEvent>) -> Result<bool, IngestError>;
    fn stats(&self) -> &IngestStats;
}

/// Input formats the sniffer recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
    Dnstap,
    ZeekTsv,
    ZeekJson,
    Jsonl,
    /// A third-party DNS query log (see [`querylog::FORMATS`]).
    Log(querylog::LogFormat),
}

impl Format {
    /// Lower-case name for reports and config: `pcap`, `zeek-tsv`, `bind`, `route53-resolver`...
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
            Format::Dnstap => "dnstap",
            Format::ZeekTsv => "zeek-tsv",
            Format::ZeekJson => "zeek-json",
            Format::Jsonl => "jsonl",
            Format::Log(f) => f.name(),
        }
    }
    /// By [`Format::name`].
    pub fn from_name(s: &str) -> Option<Format> {
        let fixed = [
            Format::Pcap,
            Format::PcapNg,
            Format::Dnstap,
            Format::ZeekTsv,
            Format::ZeekJson,
            Format::Jsonl,
        ];
        fixed
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .or_else(|| querylog::LogFormat::from_name(s).map(Format::Log))
    }
    /// What events of this format lack compared to a capture (empty when nothing).
    pub fn lacks(self) -> &'static str {
        match self {
            Format::ZeekTsv | Format::ZeekJson => "message sizes",
            Format::Log(f) => f.info().lacks,
            _ => "",
        }
    }
}

/// Guesses the format from the first bytes of (already decompressed) input.
pub fn sniff(head: &[u8]) -> Option<Format> {
    if head.len() >= 4 {
        let m = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        match m {
            0xa1b2c3d4 | 0xd4c3b2a1 | 0xa1b23c4d | 0x4d3cb2a1 => return Some(Format::Pcap),
            0x0a0d0d0a => return Some(Format::PcapNg),
            0 => return Some(Format::Dnstap), // Frame Streams files start with a control frame escape
            _ => {}
        }
    }
    let text = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &head[i..])
        .unwrap_or(&[]);
    if text.starts_with(b"#separator") || text.starts_with(b"#fields") {
        return Some(Format::ZeekTsv);
    }
    // Zeek logs may start with comment lines (e.g. Zeek's own test baselines, `### BTest ...`)
    if text.starts_with(b"#") {
        let has = |k: &[u8]| text.windows(k.len()).any(|w| w == k);
        if has(b"\n#separator") || has(b"\n#fields") {
            return Some(Format::ZeekTsv);
        }
    }
    if text.starts_with(b"{") {
        let line_end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
        let line = &text[..line_end];
        let has = |k: &[u8]| line.windows(k.len()).any(|w| w == k);
        if has(b"\"qname\"") {
            return Some(Format::Jsonl);
        }
        if has(b"\"id.orig_h\"") || has(b"\"trans_id\"") {
            return Some(Format::ZeekJson);
        }
        // before Zeek's `"query"` key, which e.g. Suricata's `"type":"query"` also has
        if let Some(f) = querylog::sniff(text) {
            return Some(Format::Log(f));
        }
        if has(b"\"query\"") {
            return Some(Format::ZeekJson);
        }
        return Some(Format::Jsonl);
    }
    querylog::sniff(text).map(Format::Log)
}

/// Opens a file (or `-` for stdin), unwrapping gzip, and returns a reader for its format.
pub fn open_path(path: &Path, opts: &IngestOptions) -> Result<Box<dyn EventReader>, IngestError> {
    open_path_detect(path, opts).map(|(_, r)| r)
}

/// Like [`open_path`], also telling which format was detected.
pub fn open_path_detect(
    path: &Path,
    opts: &IngestOptions,
) -> Result<(Format, Box<dyn EventReader>), IngestError> {
    let name = path.display().to_string();
    let io_err = |e| IngestError::Io {
        path: name.clone(),
        source: e,
    };
    let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(io_err)?)
    };
    open_reader_detect(raw, &name, opts)
}

/// Like [`open_path`] for any byte stream; `name` is used in messages.
pub fn open_reader(
    raw: Box<dyn Read + Send>,
    name: &str,
    opts: &IngestOptions,
) -> Result<Box<dyn EventReader>, IngestError> {
    open_reader_detect(raw, name, opts).map(|(_, r)| r)
}

/// Like [`open_reader`], also telling which format was detected.
pub fn open_reader_detect(
    raw: Box<dyn Read + Send>,
    name: &str,
    opts: &IngestOptions,
) -> Result<(Format, Box<dyn EventReader>), IngestError> {
    let io_err = |e| IngestError::Io {
        path: name.to_string(),
        source: e,
    };
    let mut buf = BufReader::with_capacity(256 * 1024, raw);
    let head = buf.fill_buf().map_err(io_err)?;
    let input: Box<dyn BufRead + Send> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::bufread::MultiGzDecoder::new(buf),
        ))
    } else {
        Box::new(buf)
    };
    let mut input = input;
    let textual = matches!(opts.format, None | Some(Format::Log(_)));
    if textual {
        // Windows exports: UTF-16 or a UTF-8 byte-order mark; documents rather than lines
        let head = input.fill_buf().map_err(io_err)?;
        if head.starts_with(&[0xef, 0xbb, 0xbf]) {
            input.consume(3);
        } else if let Some(be) = doc::utf16_order(head) {
            input = Box::new(BufReader::with_capacity(
                256 * 1024,
                doc::Utf16::new(input, be),
            ));
        }
        let head = input.fill_buf().map_err(io_err)?;
        if let Some(shape) = doc::shape(head) {
            input = Box::new(BufReader::with_capacity(
                256 * 1024,
                doc::DocLines::new(input, shape),
            ));
        }
    }
    let head = input.fill_buf().map_err(io_err)?.to_vec();
    let format = match opts.format {
        Some(f) => f,
        None => sniff(&head).ok_or_else(|| IngestError::UnknownFormat {
            path: name.to_string(),
        })?,
    };
    Ok((format, open_format(format, input, name, opts)?))
}

/// Builds the reader for a known format.
pub fn open_format(
    format: Format,
    input: Box<dyn BufRead + Send>,
    name: &str,
    opts: &IngestOptions,
) -> Result<Box<dyn EventReader>, IngestError> {
    match format {
        Format::Pcap | Format::PcapNg => pcap::reader(input, name, opts),
        Format::Dnstap => dnstap::file_reader(input, name, opts),
        Format::ZeekTsv => zeek::tsv_reader(input, name, opts),
        Format::ZeekJson => zeek::json_reader(input, name, opts),
        Format::Jsonl => jsonl::reader(input, name, opts),
        Format::Log(f) => querylog::reader(input, f, opts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]), Some(Format::Pcap));
        assert_eq!(sniff(&[0x0a, 0x0d, 0x0d, 0x0a]), Some(Format::PcapNg));
        assert_eq!(sniff(b"#separator \\x09\n"), Some(Format::ZeekTsv));
        assert_eq!(sniff(b"{\"ts\":1,\"qname\":\"a\"}"), Some(Format::Jsonl));
        assert_eq!(
            sniff(b"{\"ts\":1,\"id.orig_h\":\"a\",\"query\":\"x\"}"),
            Some(Format::ZeekJson)
        );
        assert_eq!(
            sniff(b"### BTest baseline\n#separator \\x09\n"),
            Some(Format::ZeekTsv)
        );
        assert_eq!(sniff(b"hello"), None);
    }
}
