//! The bounded on-disk spool: bus messages that could not be published, kept in order in one
//! append-only file (`spool.dat`) and replayed from the head when NATS is back.
//!
//! Record: `len:u32le` (of the rest) `check:u32le` (FNV-1a of the rest) `partition:u32le`
//! `events:u32le` `id_len:u8` `id` `payload`. The read position is kept in `spool.pos`
//! (8 bytes), written after every replayed record, so a restart replays from there (and
//! JetStream's message-id dedup drops the one record that may have gone out twice). A torn
//! last record (a crash mid-write) is cut off when the spool is opened. The pending bytes are
//! bounded: a message that does not fit is refused (the caller counts it as dropped). When
//! everything is replayed the file is emptied; a long replay with new records arriving
//! compacts it once the replayed part is more than half.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One bus message.
#[derive(Clone, Debug, PartialEq)]
pub struct Msg {
    pub partition: u32,
    /// Its `Nats-Msg-Id`: unique per sensor run and batch.
    pub id: String,
    /// Events in the payload (for the counters).
    pub events: u32,
    pub payload: bytes::Bytes,
}

pub struct Spool {
    dir: PathBuf,
    file: File,
    pos: File,
    head: u64,
    tail: u64,
    max_bytes: u64,
    peeked: Option<(Msg, u64)>,
}

fn fnv(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &x in b {
        h ^= u32::from(x);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

const COMPACT_AT: u64 = 64 << 20;

impl Spool {
    /// Opens (or creates) the spool in `dir`, holding at most `max_bytes` pending.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("spool.dat");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut pos = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("spool.pos"))?;
        let mut b = [0u8; 8];
        let head = match pos.read_exact(&mut b) {
            Ok(()) => u64::from_le_bytes(b),
            Err(_) => 0,
        };
        // the valid records end where the first torn or corrupt one starts
        let len = file.metadata()?.len();
        let mut good = 0u64;
        let mut at = 0u64;
        file.seek(SeekFrom::Start(0))?;
        let mut all = Vec::new();
        file.read_to_end(&mut all)?;
        while at + 8 <= len {
            let i = at as usize;
            let n = le32(&all[i..]) as u64;
            let check = le32(&all[i + 4..]);
            if at + 8 + n > len || fnv(&all[i + 8..i + 8 + n as usize]) != check {
                break;
            }
            at += 8 + n;
            good = at;
        }
        if good < len {
            file.set_len(good)?;
        }
        let head = if head > good { good } else { head };
        let mut s = Spool {
            dir: dir.to_path_buf(),
            file,
            pos,
            head,
            tail: good,
            max_bytes,
            peeked: None,
        };
        if s.head == s.tail {
            s.reset()?;
        }
        Ok(s)
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Bytes waiting to be replayed.
    pub fn pending_bytes(&self) -> u64 {
        self.tail - self.head
    }

    /// Appends a message; false when it does not fit (the caller counts it dropped).
    pub fn push(&mut self, m: &Msg) -> std::io::Result<bool> {
        let id = &m.id.as_bytes()[..m.id.len().min(255)];
        let mut rest = Vec::with_capacity(13 + id.len() + m.payload.len());
        rest.extend_from_slice(&m.partition.to_le_bytes());
        rest.extend_from_slice(&m.events.to_le_bytes());
        rest.push(id.len() as u8);
        rest.extend_from_slice(id);
        rest.extend_from_slice(&m.payload);
        let size = 8 + rest.len() as u64;
        if self.pending_bytes() + size > self.max_bytes {
            return Ok(false);
        }
        if self.head >= COMPACT_AT && self.head * 2 >= self.tail {
            self.compact()?;
        }
        let mut rec = Vec::with_capacity(size as usize);
        rec.extend_from_slice(&(rest.len() as u32).to_le_bytes());
        rec.extend_from_slice(&fnv(&rest).to_le_bytes());
        rec.extend_from_slice(&rest);
        self.file.seek(SeekFrom::Start(self.tail))?;
        self.file.write_all(&rec)?;
        self.tail += size;
        Ok(true)
    }

    /// The oldest message, not yet removed.
    pub fn peek(&mut self) -> std::io::Result<Option<Msg>> {
        if self.is_empty() {
            return Ok(None);
        }
        if let Some((m, _)) = &self.peeked {
            return Ok(Some(m.clone()));
        }
        self.file.seek(SeekFrom::Start(self.head))?;
        let mut h = [0u8; 8];
        self.file.read_exact(&mut h)?;
        let n = le32(&h) as usize;
        let mut rest = vec![0u8; n];
        self.file.read_exact(&mut rest)?;
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt spool record");
        if rest.len() < 9 {
            return Err(bad());
        }
        let partition = le32(&rest);
        let events = le32(&rest[4..]);
        let il = rest[8] as usize;
        if rest.len() < 9 + il {
            return Err(bad());
        }
        let id = String::from_utf8_lossy(&rest[9..9 + il]).into_owned();
        let payload = bytes::Bytes::copy_from_slice(&rest[9 + il..]);
        let m = Msg {
            partition,
            id,
            events,
            payload,
        };
        self.peeked = Some((m.clone(), 8 + n as u64));
        Ok(Some(m))
    }

    /// Removes the oldest message (after it was published).
    pub fn pop(&mut self) -> std::io::Result<()> {
        if self.peeked.is_none() {
            self.peek()?;
        }
        if let Some((_, size)) = self.peeked.take() {
            self.head += size;
            if self.head >= self.tail {
                self.reset()?;
            } else {
                self.pos.seek(SeekFrom::Start(0))?;
                self.pos.write_all(&self.head.to_le_bytes())?;
            }
        }
        Ok(())
    }

    fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.head = 0;
        self.tail = 0;
        self.peeked = None;
        self.pos.seek(SeekFrom::Start(0))?;
        self.pos.write_all(&0u64.to_le_bytes())?;
        Ok(())
    }

    /// Moves the pending records to the start of the file.
    fn compact(&mut self) -> std::io::Result<()> {
        let tmp = self.dir.join("spool.dat.tmp");
        let mut out = File::create(&tmp)?;
        self.file.seek(SeekFrom::Start(self.head))?;
        std::io::copy(&mut (&self.file).take(self.tail - self.head), &mut out)?;
        out.sync_all()?;
        // the position first: a crash before the rename replays the old file from its start
        // (records twice, which JetStream drops by message id within its window), never
        // skips a pending one
        self.pos.seek(SeekFrom::Start(0))?;
        self.pos.write_all(&0u64.to_le_bytes())?;
        self.pos.sync_all()?;
        std::fs::rename(&tmp, self.dir.join("spool.dat"))?;
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join("spool.dat"))?;
        self.tail -= self.head;
        self.head = 0;
        self.peeked = None;
        Ok(())
    }
}

/// The little-endian u32 at the start of `b` (0 for a slice shorter than 4 bytes; callers check
/// lengths first, so a corrupt record is reported as such, never a panic).
fn le32(b: &[u8]) -> u32 {
    match b.get(..4) {
        Some(&[a, b2, c, d]) => u32::from_le_bytes([a, b2, c, d]),
        _ => 0,
    }
}
