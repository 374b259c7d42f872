//! Frame Streams (fstrm): the framing dnstap travels in, in files and over sockets.
//!
//! A stream is a sequence of frames, each a 32-bit big-endian length and that many bytes. A
//! length of zero escapes a *control frame*: another 32-bit length, then a 32-bit control type
//! (ACCEPT 1, START 2, STOP 3, READY 4, FINISH 5) and fields (type 1 = content type, length,
//! bytes). Files are unidirectional: START(content type) data... STOP. Sockets use the
//! bidirectional handshake: the sender says READY (content types it can send), the receiver
//! answers ACCEPT (the one it takes), the sender sends START, data frames, STOP, and the receiver
//! ends with FINISH.
//!
//! This module reads and writes frames with hard caps (data frames over the caller's limit are
//! skipped without being buffered; control frames are at most [`MAX_CONTROL`] bytes), and offers
//! both ends of the handshake: [`accept_handshake`] (what dnsight's listener does) and
//! [`Writer::connect`] (what a DNS server does; used by tests and by anyone who wants to stream
//! dnstap into dnsight).

use std::io::{self, BufRead, Read, Write};

/// The content type dnstap uses.
pub const DNSTAP_CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";
/// Largest control frame accepted (fstrm itself uses 512 bytes).
pub const MAX_CONTROL: usize = 4096;
/// Default cap on a data frame: two maximum-size DNS messages plus generous metadata.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

pub const CONTROL_ACCEPT: u32 = 1;
pub const CONTROL_START: u32 = 2;
pub const CONTROL_STOP: u32 = 3;
pub const CONTROL_READY: u32 = 4;
pub const CONTROL_FINISH: u32 = 5;
const FIELD_CONTENT_TYPE: u32 = 1;

/// A decoded control frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    pub kind: u32,
    pub content_types: Vec<Vec<u8>>,
}

impl Control {
    pub fn new(kind: u32, content_type: Option<&[u8]>) -> Control {
        Control {
            kind,
            content_types: content_type.map(|c| vec![c.to_vec()]).unwrap_or_default(),
        }
    }

    /// Parses the body of a control frame (after the escape and length).
    pub fn decode(b: &[u8]) -> Result<Control, FrameError> {
        if b.len() < 4 {
            return Err(FrameError::BadControl);
        }
        let kind = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if !(CONTROL_ACCEPT..=CONTROL_FINISH).contains(&kind) {
            return Err(FrameError::BadControl);
        }
        let mut content_types = Vec::new();
        let mut p = &b[4..];
        while !p.is_empty() {
            if p.len() < 8 {
                return Err(FrameError::BadControl);
            }
            let ftype = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
            let flen = u32::from_be_bytes([p[4], p[5], p[6], p[7]]) as usize;
            let v = p.get(8..8 + flen).ok_or(FrameError::BadControl)?;
            if ftype == FIELD_CONTENT_TYPE {
                content_types.push(v.to_vec());
            }
            p = &p[8 + flen..];
        }
        Ok(Control {
            kind,
            content_types,
        })
    }

    /// The whole frame on the wire (escape, length, body).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = self.kind.to_be_bytes().to_vec();
        for c in &self.content_types {
            body.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
            body.extend_from_slice(&(c.len() as u32).to_be_bytes());
            body.extend_from_slice(c);
        }
        let mut out = vec![0, 0, 0, 0];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// True when this frame names no content type or names `ct` among its types.
    pub fn allows(&self, ct: &[u8]) -> bool {
        self.content_types.is_empty() || self.content_types.iter().any(|c| c == ct)
    }
}

/// Why a stream could not be read further.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("stream ends inside a frame")]
    Truncated,
    #[error("malformed control frame")]
    BadControl,
    #[error("control frame too large")]
    ControlTooLarge,
    #[error("unexpected control frame in the handshake")]
    Handshake,
    #[error("content type not offered")]
    ContentType,
}

impl FrameError {
    /// Stable reject-counter name.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Io(_) => "fstrm.io_error",
            FrameError::Truncated => "fstrm.truncated",
            FrameError::BadControl => "fstrm.bad_control",
            FrameError::ControlTooLarge => "fstrm.control_too_large",
            FrameError::Handshake => "fstrm.bad_handshake",
            FrameError::ContentType => "fstrm.content_type_mismatch",
        }
    }
}

/// One frame read from a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Data(&'a [u8]),
    Control(Control),
    /// A data frame longer than the cap (its length); its bytes were skipped.
    TooLarge(u32),
}

/// Reads frames from any byte stream, with a cap on data frame size.
pub struct FrameReader<R> {
    r: R,
    buf: Vec<u8>,
    max_frame: usize,
}

impl<R: Read> FrameReader<io::BufReader<R>> {
    /// True when the next read would have to go to the underlying stream (nothing buffered).
    pub fn buffer_empty(&self) -> bool {
        self.r.buffer().is_empty()
    }
}

impl<R: BufRead> FrameReader<R> {
    pub fn new(r: R, max_frame: usize) -> Self {
        FrameReader {
            r,
            buf: Vec::new(),
            max_frame,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.r
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.r
    }

    /// Reads 4 bytes; `Ok(None)` on a clean end of stream before the first byte.
    fn read_u32(&mut self, eof_ok: bool) -> Result<Option<u32>, FrameError> {
        let mut b = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.r.read(&mut b[got..]) {
                Ok(0) => {
                    return if got == 0 && eof_ok {
                        Ok(None)
                    } else {
                        Err(FrameError::Truncated)
                    };
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(u32::from_be_bytes(b)))
    }

    fn read_body(&mut self, len: usize) -> Result<(), FrameError> {
        self.buf.clear();
        let got = (&mut self.r).take(len as u64).read_to_end(&mut self.buf)?;
        if got < len {
            return Err(FrameError::Truncated);
        }
        Ok(())
    }

    /// The next frame, or `None` at a clean end of stream (between frames).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        let Some(len) = self.read_u32(true)? else {
            return Ok(None);
        };
        if len == 0 {
            let clen = self.read_u32(false)?.unwrap_or(0) as usize;
            if clen > MAX_CONTROL {
                return Err(FrameError::ControlTooLarge);
            }
            self.read_body(clen)?;
            return Ok(Some(Frame::Control(Control::decode(&self.buf)?)));
        }
        if len as usize > self.max_frame {
            let skipped = io::copy(&mut (&mut self.r).take(len as u64), &mut io::sink())?;
            if skipped < len as u64 {
                return Err(FrameError::Truncated);
            }
            return Ok(Some(Frame::TooLarge(len)));
        }
        self.read_body(len as usize)?;
        Ok(Some(Frame::Data(&self.buf)))
    }

    /// Reads the next frame and requires it to be a control frame.
    pub fn next_control(&mut self) -> Result<Control, FrameError> {
        match self.next_frame()? {
            Some(Frame::Control(c)) => Ok(c),
            None => Err(FrameError::Truncated),
            Some(_) => Err(FrameError::Handshake),
        }
    }
}

/// Receiver side of the bidirectional handshake, after the connection is accepted: reads READY,
/// answers ACCEPT for `content_type`, reads START. A sender that skips READY and starts with
/// START (unidirectional senders writing to a socket) is accepted as well. Returns whether the
/// stream is bidirectional (then the receiver must answer STOP with FINISH).
pub fn accept_handshake<R: BufRead, W: Write>(
    r: &mut FrameReader<R>,
    w: &mut W,
    content_type: &[u8],
) -> Result<bool, FrameError> {
    let first = r.next_control()?;
    match first.kind {
        CONTROL_START if first.allows(content_type) => Ok(false),
        CONTROL_START => Err(FrameError::ContentType),
        CONTROL_READY => {
            if !first.allows(content_type) {
                return Err(FrameError::ContentType);
            }
            w.write_all(&Control::new(CONTROL_ACCEPT, Some(content_type)).encode())?;
            w.flush()?;
            let start = r.next_control()?;
            if start.kind != CONTROL_START {
                return Err(FrameError::Handshake);
            }
            if !start.allows(content_type) {
                return Err(FrameError::ContentType);
            }
            Ok(true)
        }
        _ => Err(FrameError::Handshake),
    }
}

/// Writes a Frame Streams stream: a file (unidirectional) or a socket (bidirectional, with
/// [`Writer::connect`]). Frames are written as given; wrap the stream in a `BufWriter` for files.
pub struct Writer<W: Write> {
    w: W,
    /// Set for bidirectional streams: where FINISH is read from.
    reader: Option<FrameReader<io::BufReader<Box<dyn Read + Send>>>>,
}

impl<W: Write> Writer<W> {
    /// Starts a unidirectional stream (writes START with the content type).
    pub fn new(mut w: W, content_type: &[u8]) -> io::Result<Writer<W>> {
        w.write_all(&Control::new(CONTROL_START, Some(content_type)).encode())?;
        Ok(Writer { w, reader: None })
    }

    /// Sender side of the bidirectional handshake: READY → (ACCEPT) → START. `read_half` is the
    /// receiving side of the same connection (e.g. `stream.try_clone()`).
    pub fn connect(
        mut w: W,
        read_half: Box<dyn Read + Send>,
        content_type: &[u8],
    ) -> Result<Writer<W>, FrameError> {
        w.write_all(&Control::new(CONTROL_READY, Some(content_type)).encode())?;
        w.flush()?;
        let mut reader = FrameReader::new(io::BufReader::new(read_half), MAX_CONTROL);
        let accept = reader.next_control()?;
        if accept.kind != CONTROL_ACCEPT {
            return Err(FrameError::Handshake);
        }
        if !accept.allows(content_type) {
            return Err(FrameError::ContentType);
        }
        w.write_all(&Control::new(CONTROL_START, Some(content_type)).encode())?;
        w.flush()?;
        Ok(Writer {
            w,
            reader: Some(reader),
        })
    }

    /// Writes one data frame (empty payloads are not representable and are skipped).
    pub fn write_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        if payload.is_empty() {
            return Ok(());
        }
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        self.w.write_all(&len.to_be_bytes())?;
        self.w.write_all(payload)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Writes STOP; on a bidirectional stream waits for the receiver's FINISH. Returns the
    /// underlying writer.
    pub fn finish(mut self) -> Result<W, FrameError> {
        self.w
            .write_all(&Control::new(CONTROL_STOP, None).encode())?;
        self.w.flush()?;
        if let Some(mut r) = self.reader.take() {
            let fin = r.next_control()?;
            if fin.kind != CONTROL_FINISH {
                return Err(FrameError::Handshake);
            }
        }
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(b: Vec<u8>, max: usize) -> FrameReader<io::Cursor<Vec<u8>>> {
        FrameReader::new(io::Cursor::new(b), max)
    }

    #[test]
    fn file_roundtrip_and_caps() {
        let mut w = Writer::new(Vec::new(), DNSTAP_CONTENT_TYPE).unwrap();
        w.write_frame(b"hello").unwrap();
        w.write_frame(&[7u8; 100]).unwrap();
        w.write_frame(b"").unwrap();
        w.write_frame(b"x").unwrap();
        let bytes = w.finish().unwrap();
        let mut r = reader(bytes.clone(), 50);
        assert_eq!(
            r.next_frame().unwrap(),
            Some(Frame::Control(Control::new(
                CONTROL_START,
                Some(DNSTAP_CONTENT_TYPE)
            )))
        );
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Data(b"hello")));
        assert_eq!(r.next_frame().unwrap(), Some(Frame::TooLarge(100)));
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Data(b"x")));
        assert_eq!(
            r.next_frame().unwrap(),
            Some(Frame::Control(Control::new(CONTROL_STOP, None)))
        );
        assert_eq!(r.next_frame().unwrap(), None);
        // every truncation is reported, never a panic
        for cut in 1..bytes.len() {
            let mut r = reader(bytes[..cut].to_vec(), 50);
            let mut res = Ok(());
            while let Some(f) = r.next_frame().transpose() {
                if let Err(e) = f {
                    res = Err(e);
                    break;
                }
            }
            if let Err(e) = res {
                assert_eq!(e.reason(), "fstrm.truncated", "cut at {cut}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn write_read_roundtrip(
            frames in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300), 0..20),
            types in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..3),
            kind in 1u32..=5,
        ) {
            let mut w = Writer::new(Vec::new(), DNSTAP_CONTENT_TYPE).unwrap();
            for f in &frames {
                w.write_frame(f).unwrap();
            }
            let bytes = w.finish().unwrap();
            let mut r = reader(bytes, 1 << 20);
            proptest::prop_assert_eq!(r.next_control().unwrap(), Control::new(CONTROL_START, Some(DNSTAP_CONTENT_TYPE)));
            for f in &frames {
                proptest::prop_assert_eq!(r.next_frame().unwrap(), Some(Frame::Data(f.as_slice())));
            }
            proptest::prop_assert_eq!(r.next_control().unwrap().kind, CONTROL_STOP);
            proptest::prop_assert_eq!(r.next_frame().unwrap(), None);
            let c = Control { kind, content_types: types };
            let enc = c.encode();
            proptest::prop_assert_eq!(Control::decode(&enc[8..]).unwrap(), c);
        }
    }

    #[test]
    fn hostile_control_frames() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0, 0, 0, 0, 0, 0, 0, 2, 0, 0], "fstrm.bad_control"),
            (
                vec![0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 9],
                "fstrm.bad_control",
            ),
            (
                vec![
                    0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff,
                ],
                "fstrm.bad_control",
            ),
            (
                vec![0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
                "fstrm.control_too_large",
            ),
        ];
        for (bytes, reason) in cases {
            let mut r = reader(bytes, 100);
            assert_eq!(r.next_frame().unwrap_err().reason(), reason);
        }
    }

    #[test]
    fn handshake_rejects_other_content_types() {
        let mut input = Control::new(CONTROL_READY, Some(b"protobuf:other")).encode();
        input.extend(Control::new(CONTROL_START, None).encode());
        let mut out = Vec::new();
        let err =
            accept_handshake(&mut reader(input, 100), &mut out, DNSTAP_CONTENT_TYPE).unwrap_err();
        assert_eq!(err.reason(), "fstrm.content_type_mismatch");
        assert!(out.is_empty());
        // READY offering several types, one of them ours
        let mut ready = Control::new(CONTROL_READY, Some(b"protobuf:other"));
        ready.content_types.push(DNSTAP_CONTENT_TYPE.to_vec());
        let mut input = ready.encode();
        input.extend(Control::new(CONTROL_START, Some(DNSTAP_CONTENT_TYPE)).encode());
        assert!(accept_handshake(&mut reader(input, 100), &mut out, DNSTAP_CONTENT_TYPE).unwrap());
        assert_eq!(
            Control::decode(&out[8..]).unwrap(),
            Control::new(CONTROL_ACCEPT, Some(DNSTAP_CONTENT_TYPE))
        );
    }
}
