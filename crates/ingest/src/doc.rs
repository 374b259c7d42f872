//! Inputs that are documents rather than lines, turned into lines before sniffing.
//!
//! Some exports are not one record a line: `Get-WinEvent | ConvertTo-Json` writes one
//! pretty-printed JSON array, `wevtutil qe /f:xml` and Event Viewer's "Save as XML" write
//! `<Event>` elements (inside `<Events>` or concatenated), `gcloud logging read --format=json`
//! writes a JSON array, Firehose and some shippers concatenate objects (`{...}{...}`), and an
//! Azure storage export may hold one pretty-printed `{"records": [...]}`. [`DocLines`] is a
//! streaming transducer that writes each record of such an input on one line (a top-level array
//! is unpacked one level; newlines inside a record become spaces, which is lossless for JSON,
//! where raw newlines cannot occur inside strings), so the line readers, sniffing, the line cap
//! and `tail -F` following all work unchanged. Memory stays bounded: the transducer keeps no
//! record, only its nesting depth.
//!
//! Windows writes these exports in UTF-16 (PowerShell 5.1's `>` and `Out-File`, Event Viewer):
//! [`Utf16`] transcodes to UTF-8 when the input starts with a UTF-16 byte-order mark or looks
//! like UTF-16 text (`{\0`, `[\0`, `<\0`); a UTF-8 byte-order mark is dropped.

use std::io::{self, BufRead, Read};

/// What kind of document an input is, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// JSON that is not one object a line (an array, pretty-printed, concatenated objects).
    Json,
    /// Windows event XML (`<Event>` elements).
    Xml,
}

/// The document shape of an input's head, or `None` for a line-oriented input.
pub fn shape(head: &[u8]) -> Option<Shape> {
    let t = head.trim_ascii_start();
    match t.first()? {
        // an array of records (not `[INFO]`, `[1764763200]`, `[2026-12-03 ...]` log prefixes)
        b'[' => t[1..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .filter(|&&b| b == b'{')
            .map(|_| Shape::Json),
        b'<' => {
            let known = [&b"<?xml"[..], b"<Events", b"<Event ", b"<Event>"];
            (known.iter().any(|k| t.starts_with(k)) && memchr::memmem::find(t, b"<Event").is_some())
                .then_some(Shape::Xml)
        }
        b'{' => {
            let mut lines = t
                .split(|&b| b == b'\n')
                .map(|l| l.trim_ascii())
                .filter(|l| !l.is_empty());
            let first = lines.next()?;
            if first == b"{" {
                return Some(Shape::Json); // pretty-printed
            }
            let mut values = 0;
            for v in
                serde_json::Deserializer::from_slice(first).into_iter::<serde::de::IgnoredAny>()
            {
                match v {
                    Ok(_) => values += 1,
                    // `{"records": [` and the document goes on, unless the next line is the
                    // next record of JSON lines (or the first line was cut by the head's end)
                    Err(e) if e.is_eof() => {
                        let second = lines.next()?;
                        return (!second.starts_with(b"{")).then_some(Shape::Json);
                    }
                    Err(_) => return None,
                }
            }
            // objects concatenated on a line (`{...}{...}`); one object a line is JSON lines
            (values >= 2).then_some(Shape::Json)
        }
        _ => None,
    }
}

/// Decodes UTF-16 (LE or BE) input to UTF-8; passes anything else through. The encoding is
/// decided once from the first bytes.
pub struct Utf16<R> {
    inner: R,
    be: bool,
    pending: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    carry: Option<u8>,
    surrogate: Option<u16>,
}

/// The UTF-16 byte order of an input's head: `Some(true)` big-endian, `Some(false)`
/// little-endian, `None` when it is not UTF-16.
pub fn utf16_order(head: &[u8]) -> Option<bool> {
    match head {
        [0xff, 0xfe, ..] => Some(false),
        [0xfe, 0xff, ..] => Some(true),
        [c, 0, d, 0, ..]
            if b"{[<".contains(c) && (d.is_ascii_graphic() || d.is_ascii_whitespace()) =>
        {
            Some(false)
        }
        [0, c, 0, d, ..]
            if b"{[<".contains(c) && (d.is_ascii_graphic() || d.is_ascii_whitespace()) =>
        {
            Some(true)
        }
        _ => None,
    }
}

impl<R: BufRead> Utf16<R> {
    pub fn new(inner: R, big_endian: bool) -> Self {
        Utf16 {
            inner,
            be: big_endian,
            pending: Vec::new(),
            out: Vec::new(),
            pos: 0,
            carry: None,
            surrogate: None,
        }
    }

    fn push(&mut self, c: char) {
        if c == '\u{feff}' {
            return; // the byte-order mark
        }
        let mut b = [0u8; 4];
        self.out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    }

    fn unit(&mut self, u: u16) {
        match (self.surrogate.take(), u) {
            (Some(hi), 0xdc00..=0xdfff) => {
                let c = 0x10000 + ((u32::from(hi) - 0xd800) << 10) + (u32::from(u) - 0xdc00);
                self.push(char::from_u32(c).unwrap_or('\u{fffd}'));
            }
            (hi, 0xd800..=0xdbff) => {
                if hi.is_some() {
                    self.push('\u{fffd}');
                }
                self.surrogate = Some(u);
            }
            (hi, _) => {
                if hi.is_some() {
                    self.push('\u{fffd}');
                }
                self.push(char::from_u32(u32::from(u)).unwrap_or('\u{fffd}'));
            }
        }
    }

    fn refill(&mut self) -> io::Result<bool> {
        self.out.clear();
        self.pos = 0;
        let buf = self.inner.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        self.pending.clear();
        self.pending.extend_from_slice(buf);
        let n = buf.len();
        self.inner.consume(n);
        let bytes = std::mem::take(&mut self.pending);
        let mut it = bytes.iter().copied();
        loop {
            let a = match self.carry.take() {
                Some(a) => a,
                None => match it.next() {
                    Some(a) => a,
                    None => break,
                },
            };
            let Some(b) = it.next() else {
                self.carry = Some(a);
                break;
            };
            let u = if self.be {
                u16::from_be_bytes([a, b])
            } else {
                u16::from_le_bytes([a, b])
            };
            self.unit(u);
        }
        self.pending = bytes;
        Ok(true)
    }
}

impl<R: BufRead> Read for Utf16<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.out.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The transducer (see the module docs): reads a document, yields one record a line.
pub struct DocLines<R> {
    inner: R,
    shape: Shape,
    out: Vec<u8>,
    pos: usize,
    // JSON state
    depth: u32,
    array: bool,
    in_str: bool,
    esc: bool,
    scalar: bool,
    // XML state
    inside: bool,
    tail: Vec<u8>,
}

impl<R: BufRead> DocLines<R> {
    pub fn new(inner: R, shape: Shape) -> Self {
        DocLines {
            inner,
            shape,
            out: Vec::with_capacity(64 * 1024),
            pos: 0,
            depth: 0,
            array: false,
            in_str: false,
            esc: false,
            scalar: false,
            inside: false,
            tail: Vec::with_capacity(16),
        }
    }

    fn json(&mut self, b: u8) {
        let o = &mut self.out;
        if self.in_str {
            o.push(if b == b'\n' || b == b'\r' { b' ' } else { b });
            if self.esc {
                self.esc = false;
            } else if b == b'\\' {
                self.esc = true;
            } else if b == b'"' {
                self.in_str = false;
                if self.depth == u32::from(self.array) {
                    o.push(b'\n'); // a string record
                }
            }
            return;
        }
        let base = u32::from(self.array);
        if self.scalar {
            if b.is_ascii_whitespace() || b == b',' || b == b']' {
                self.scalar = false;
                o.push(b'\n');
                if b == b']' && self.array && self.depth == 1 {
                    self.array = false;
                    self.depth = 0;
                }
            } else {
                o.push(b);
            }
            return;
        }
        if self.depth == base {
            // between records
            match b {
                b'[' if !self.array && self.depth == 0 => {
                    self.array = true;
                    self.depth = 1;
                }
                b']' if self.array => {
                    self.array = false;
                    self.depth = 0;
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    o.push(b);
                }
                b'"' => {
                    self.in_str = true;
                    o.push(b);
                }
                b',' => {}
                _ if b.is_ascii_whitespace() => {}
                _ => {
                    self.scalar = true;
                    o.push(b);
                }
            }
            return;
        }
        o.push(if b == b'\n' || b == b'\r' { b' ' } else { b });
        match b {
            b'"' => self.in_str = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth -= 1;
                if self.depth == base {
                    o.push(b'\n');
                }
            }
            _ => {}
        }
    }

    fn xml(&mut self, b: u8) {
        let b = if b == b'\n' || b == b'\r' || b == b'\t' {
            b' '
        } else {
            b
        };
        if self.tail.len() == 8 {
            self.tail.remove(0);
        }
        self.tail.push(b);
        // `<Event` then a delimiter starts a record (not `<EventID>`, `<EventData>`, `<Events>`)
        let start = self.tail.len() >= 7
            && self.tail[self.tail.len() - 7..].starts_with(b"<Event")
            && matches!(b, b' ' | b'>' | b'/');
        if start {
            if self.inside {
                // the previous record never closed: its line ends here (and is rejected)
                self.out.push(b'\n');
            }
            self.inside = true;
            self.out.extend_from_slice(b"<Event");
            self.out.push(b);
            return;
        }
        if self.inside {
            self.out.push(b);
            if self.tail == b"</Event>" {
                self.out.push(b'\n');
                self.inside = false;
            }
        }
    }

    fn refill(&mut self) -> io::Result<bool> {
        self.out.clear();
        self.pos = 0;
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                // the end: a record left open is ended so its line is complete
                if (self.depth > u32::from(self.array) || self.scalar || self.inside)
                    && !matches!(self.out.last(), Some(b'\n'))
                {
                    self.out.push(b'\n');
                }
                self.depth = 0;
                self.array = false;
                self.scalar = false;
                self.in_str = false;
                self.inside = false;
                return Ok(!self.out.is_empty());
            }
            let chunk = buf.to_vec();
            let n = chunk.len();
            self.inner.consume(n);
            for b in chunk {
                match self.shape {
                    Shape::Json => self.json(b),
                    Shape::Xml => self.xml(b),
                }
            }
            if !self.out.is_empty() {
                return Ok(true);
            }
        }
    }
}

impl<R: BufRead> Read for DocLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.out.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &[u8], sh: Shape) -> String {
        let mut o = String::new();
        DocLines::new(std::io::BufReader::with_capacity(7, s), sh)
            .read_to_string(&mut o)
            .unwrap();
        o
    }

    #[test]
    fn json_documents_become_one_record_a_line() {
        let doc =
            b"[\n  {\n    \"a\": \"x\\\"}\",\n    \"b\": [1, {\"c\": 2}]\n  },\n  {\"d\": 3}\n]\n";
        assert_eq!(shape(doc), Some(Shape::Json));
        assert_eq!(
            lines(doc, Shape::Json),
            "{     \"a\": \"x\\\"}\",     \"b\": [1, {\"c\": 2}]   }\n{\"d\": 3}\n"
        );
        assert_eq!(
            lines(b"{\"a\":1}{\"b\":2}\n", Shape::Json),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(lines(b"[1, \"x\", true]", Shape::Json), "1\n\"x\"\ntrue\n");
        assert_eq!(shape(b"[1764763200] unbound[1:0] info: x\n"), None);
        assert_eq!(shape(b"[INFO] 10.0.0.1:53 - 1 \"A IN x. udp\"\n"), None);
        // a record cut short by the end of input still ends its line
        assert_eq!(lines(b"[{\"a\": [1,", Shape::Json), "{\"a\": [1,\n");
        // JSON lines are not a document
        assert_eq!(shape(b"{\"a\":1}\n{\"b\":2}\n"), None);
        assert_eq!(shape(b"{\n \"records\": [\n"), Some(Shape::Json));
        assert_eq!(shape(b"{\"a\":1}{\"b\":2}\n"), Some(Shape::Json));
    }

    #[test]
    fn xml_events_become_one_a_line() {
        let doc = b"<?xml version=\"1.0\"?>\r\n<Events>\r\n<Event xmlns='x'><System><EventID>256</EventID></System>\r\n<EventData><Data Name='QNAME'>a.</Data></EventData></Event><Event xmlns='x'><EventID>257</EventID></Event>\r\n</Events>";
        assert_eq!(shape(doc), Some(Shape::Xml));
        assert_eq!(
            lines(doc, Shape::Xml),
            "<Event xmlns='x'><System><EventID>256</EventID></System>  <EventData><Data Name='QNAME'>a.</Data></EventData></Event>\n<Event xmlns='x'><EventID>257</EventID></Event>\n"
        );
        // an event that never closes is cut where the next one starts
        assert_eq!(
            lines(b"<Event a='1'><EventID>1<Event a='2'></Event>", Shape::Xml),
            "<Event a='1'><EventID>1<Event\n<Event a='2'></Event>\n"
        );
        assert_eq!(shape(b"<134>Dec  3 named[1]: x"), None);
    }

    #[test]
    fn utf16_is_transcoded() {
        let text = "[{\"QNAME\":\"w\u{e9}b.example.\",\"x\":\"\u{1f600}\"}]";
        for be in [false, true] {
            let mut bytes = if be {
                vec![0xfe, 0xff]
            } else {
                vec![0xff, 0xfe]
            };
            for u in text.encode_utf16() {
                bytes.extend_from_slice(&if be { u.to_be_bytes() } else { u.to_le_bytes() });
            }
            assert_eq!(utf16_order(&bytes), Some(be));
            let mut o = String::new();
            Utf16::new(std::io::BufReader::with_capacity(3, &bytes[..]), be)
                .read_to_string(&mut o)
                .unwrap();
            assert_eq!(o, text);
        }
        assert_eq!(utf16_order(b"{\0\"\0"), Some(false));
        assert_eq!(utf16_order(b"{\"a\":1}"), None);
    }
}
