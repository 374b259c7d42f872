//! JSON-lines source: dnsight's own event schema, one [`DnsEvent`] JSON object per line (the same
//! format `dnsight analyze --events-out` writes; see [`DnsEvent`] for the keys).
//!
//! Why a dedicated reader: events exported by one dnsight (or produced by another tool) can be
//! replayed through the engine without loss. Each line is decoded independently, so a bad line
//! costs only itself: it is counted in [`IngestStats::rejected`] by reason and skipped:
//! - `jsonl.bad_json`: not JSON (syntax error, truncated object, invalid UTF-8);
//! - `jsonl.bad_event`: valid JSON that is not a valid event (missing `ts`/`client`/`qname`, bad
//!   address, unknown qtype mnemonic, ...);
//! - `jsonl.line_too_long`: longer than [`MAX_LINE`] bytes; the line is skipped without being
//!   buffered, so memory stays bounded whatever the input;
//! - `jsonl.read_error`: the underlying stream failed (e.g. corrupt gzip); reading stops there.
//!
//! Blank lines are ignored and not counted as rejects. This module also holds [`CappedLines`],
//! the bounded line splitter shared with the Zeek reader.

use crate::{EventReader, IngestError, IngestOptions, IngestStats};
use dnsight_model::{DnsEvent, Source};
use std::io::{self, BufRead};

/// Longest line (in bytes, without the newline) the line-based readers accept.
pub const MAX_LINE: usize = 1 << 20;

/// Events handed out per [`EventReader::next_batch`] call.
const BATCH: usize = 1024;

/// One step of [`CappedLines`].
pub(crate) enum Line<'a> {
    /// A complete line without its `\n` (and without a trailing `\r`).
    Text(&'a [u8]),
    /// A line longer than the cap; its bytes were discarded.
    TooLong,
}

/// Splits a byte stream into lines, never buffering more than `cap` bytes of one line. A line
/// that lies whole in the reader's buffer is returned in place (no copy).
pub(crate) struct CappedLines {
    input: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    cap: usize,
    /// Bytes of the input buffer handed out by the previous call, consumed at the next one.
    pending: usize,
    /// The last line ended exactly where the buffered input ended: the next line needs a read,
    /// which may block on a live (followed) file.
    drained: bool,
}

impl CappedLines {
    pub(crate) fn new(input: Box<dyn BufRead + Send>, cap: usize) -> Self {
        CappedLines {
            input,
            buf: Vec::with_capacity(256),
            cap,
            pending: 0,
            drained: false,
        }
    }

    /// The next line, or `None` at the end of input.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        if self.pending > 0 {
            self.input.consume(std::mem::take(&mut self.pending));
        }
        // fast path: the whole line is already buffered
        let found = loop {
            match self.input.fill_buf() {
                Ok([]) => return Ok(None),
                Ok(b) => {
                    break memchr::memchr(b'\n', b)
                        .filter(|&i| i <= self.cap)
                        .map(|i| (i, b.len()))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if let Some((i, len)) = found {
            self.pending = i + 1;
            self.drained = i + 1 == len;
            // the data is still buffered: this fill_buf does no I/O
            let avail = self.input.fill_buf()?;
            let line = &avail[..i.min(avail.len())];
            return Ok(Some(Line::Text(line.strip_suffix(b"\r").unwrap_or(line))));
        }
        self.slow_line()
    }

    /// A line spread over several buffer fills (or too long): copied into `buf`, capped.
    fn slow_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let avail = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if !any {
                    return Ok(None);
                }
                self.drained = true;
                break;
            }
            any = true;
            match memchr::memchr(b'\n', avail) {
                Some(i) => {
                    if !too_long {
                        if self.buf.len() + i > self.cap {
                            too_long = true;
                        } else {
                            self.buf.extend_from_slice(&avail[..i]);
                        }
                    }
                    self.drained = i + 1 == avail.len();
                    self.input.consume(i + 1);
                    break;
                }
                None => {
                    let n = avail.len();
                    if !too_long {
                        if self.buf.len() + n > self.cap {
                            too_long = true;
                            self.buf.clear();
                        } else {
                            self.buf.extend_from_slice(avail);
                        }
                    }
                    self.input.consume(n);
                }
            }
        }
        if too_long {
            self.buf.clear();
            return Ok(Some(Line::TooLong));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(Line::Text(&self.buf)))
    }

    /// True when the previous line used up all buffered input (see the field docs). Readers end
    /// a batch there, so a followed file delivers what it has instead of waiting for a full batch.
    pub(crate) fn drained(&self) -> bool {
        self.drained
    }

    /// One `next_batch` of a line-oriented reader (JSON lines, Zeek TSV and JSON): reads lines
    /// until `BATCH` events came out or the buffered input is drained, counts each line in
    /// `stats.records`, a read error (`reasons.0`, which ends the input) and an over-long line
    /// (`reasons.1`), and hands every other line to `f`, which returns how many events it
    /// emitted. Returns what [`EventReader::next_batch`] returns.
    pub(crate) fn pump(
        &mut self,
        done: &mut bool,
        stats: &mut IngestStats,
        reasons: (&'static str, &'static str),
        mut f: impl FnMut(&[u8], &mut IngestStats) -> usize,
    ) -> bool {
        self.pump_idle(done, stats, reasons, |l, s| l.map_or(0, |t| f(t, s)))
    }

    /// Like [`CappedLines::pump`], for readers that hold events back (pairing across lines):
    /// `f(None, ..)` is called when the buffered input is used up and the batch has no event
    /// yet, before a read that may block on a followed file; it returns what it emitted then.
    pub(crate) fn pump_idle(
        &mut self,
        done: &mut bool,
        stats: &mut IngestStats,
        reasons: (&'static str, &'static str),
        mut f: impl FnMut(Option<&[u8]>, &mut IngestStats) -> usize,
    ) -> bool {
        if *done {
            return false;
        }
        let mut n = 0;
        while n < BATCH && !(n > 0 && self.drained()) {
            let line = match self.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => {
                    *done = true;
                    break;
                }
                Err(_) => {
                    stats.reject(reasons.0);
                    *done = true;
                    break;
                }
            };
            stats.records += 1;
            match line {
                Line::TooLong => stats.reject(reasons.1),
                Line::Text(t) => n += f(Some(t), stats),
            }
            if n == 0 && self.drained() {
                n += f(None, stats);
            }
        }
        n > 0 || !*done
    }
}

/// Reader for dnsight JSON lines.
pub struct JsonlReader {
    lines: CappedLines,
    stats: IngestStats,
    done: bool,
}

impl JsonlReader {
    pub fn new(input: Box<dyn BufRead + Send>) -> Self {
        Self::with_line_cap(input, MAX_LINE)
    }

    /// Like [`JsonlReader::new`] with a different line-length cap (bytes).
    pub fn with_line_cap(input: Box<dyn BufRead + Send>, cap: usize) -> Self {
        JsonlReader {
            lines: CappedLines::new(input, cap),
            stats: IngestStats::default(),
            done: false,
        }
    }
}

/// Decodes one line; `Err` carries the reject reason. A line without a `source` key is marked
/// [`Source::Jsonl`] (the schema's default would claim `pcap`).
pub fn parse_line(line: &[u8]) -> Result<DnsEvent, &'static str> {
    let mut ev = serde_json::from_slice::<DnsEvent>(line).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => "jsonl.bad_event",
        _ => "jsonl.bad_json",
    })?;
    if memchr::memmem::find(line, b"\"source\"").is_none() {
        ev.source = Source::Jsonl;
    }
    Ok(ev)
}

impl EventReader for JsonlReader {
    fn next_batch(&mut self, out: &mut Vec<DnsEvent>) -> Result<bool, IngestError> {
        let reasons = ("jsonl.read_error", "jsonl.line_too_long");
        Ok(self
            .lines
            .pump(&mut self.done, &mut self.stats, reasons, |text, s| {
                if text.iter().all(|b| b.is_ascii_whitespace()) {
                    return 0;
                }
                match parse_line(text) {
                    Ok(ev) => {
                        s.count_logged_event(&ev);
                        out.push(ev);
                        1
                    }
                    Err(reason) => {
                        s.reject(reason);
                        0
                    }
                }
            }))
    }

    fn stats(&self) -> &IngestStats {
        &self.stats
    }
}

/// Opens a JSON-lines reader (see the module docs).
pub fn reader(
    input: Box<dyn BufRead + Send>,
    name: &str,
    opts: &IngestOptions,
) -> Result<Box<dyn EventReader>, IngestError> {
    let _ = (name, opts);
    Ok(Box::new(JsonlReader::new(input)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnsight_model::{Name, Ts};

    fn read_all(data: &[u8], cap: usize) -> (Vec<DnsEvent>, IngestStats) {
        let mut r = JsonlReader::with_line_cap(Box::new(io::Cursor::new(data.to_vec())), cap);
        let mut out = Vec::new();
        while r.next_batch(&mut out).unwrap() {}
        (out, r.stats().clone())
    }

    #[test]
    fn bad_lines_are_counted_and_skipped() {
        let good = DnsEvent::new(
            Ts(1_000_000),
            "10.0.0.5".parse().unwrap(),
            Name::parse("a.example").unwrap(),
            1,
        )
        .to_json_line();
        let long = format!("{{\"x\":\"{}\"}}", "a".repeat(good.len() + 50));
        let data = format!("{good}\r\nnot json\n\n{{\"ts\":1}}\n{long}\n{{\"ts\":1,\"client\":\"10.0.0.1\",\"qname\":\"b\",\"qtype\":\"BOGUS\"}}\n\u{0}\u{1}\n{good}");
        let (evs, st) = read_all(data.as_bytes(), good.len() + 10);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1].qname.as_str(), "a.example");
        assert_eq!(st.records, 8);
        assert_eq!(st.rejected.get("jsonl.bad_json"), Some(&2), "{st:?}");
        assert_eq!(st.rejected.get("jsonl.bad_event"), Some(&2));
        assert_eq!(st.rejected.get("jsonl.line_too_long"), Some(&1));
        assert_eq!(st.events, 2);
    }

    #[test]
    fn multibyte_mnemonics_are_bad_events_not_panics() {
        let data = "{\"ts\":1,\"client\":\"10.0.0.1\",\"qname\":\"a\",\"qtype\":\"TYP\u{e9}1\"}\n{\"ts\":1,\"client\":\"10.0.0.1\",\"qname\":\"a\",\"rcode\":\"RCOD\u{e9}\"}\n";
        let (evs, st) = read_all(data.as_bytes(), MAX_LINE);
        assert!(evs.is_empty());
        assert_eq!(st.rejected.get("jsonl.bad_event"), Some(&2), "{st:?}");
    }

    #[test]
    fn source_defaults_to_jsonl() {
        let data = b"{\"ts\":1,\"client\":\"10.0.0.1\",\"qname\":\"a\"}\n{\"ts\":1,\"client\":\"10.0.0.1\",\"qname\":\"a\",\"source\":\"dnstap\"}\n";
        let (evs, _) = read_all(data, MAX_LINE);
        assert_eq!(evs[0].source, Source::Jsonl);
        assert_eq!(evs[1].source, Source::Dnstap);
    }

    #[test]
    fn capped_lines_handles_small_reads() {
        // a BufReader with a tiny buffer forces lines to span many fill_buf calls
        let data = b"abc\ndefghijkl\nxy".to_vec();
        let input = io::BufReader::with_capacity(2, io::Cursor::new(data));
        let mut l = CappedLines::new(Box::new(input), 5);
        let mut got = Vec::new();
        while let Some(line) = l.next_line().unwrap() {
            got.push(match line {
                Line::Text(t) => String::from_utf8(t.to_vec()).unwrap(),
                Line::TooLong => "<long>".into(),
            });
        }
        assert_eq!(got, ["abc", "<long>", "xy"]);
    }
}
