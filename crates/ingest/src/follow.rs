//! Following a growing log file (`tail -F`), for the passive Zeek and JSON-lines sources of
//! `dnsight serve`.
//!
//! [`Follow`] is a [`Read`] over a file that never reports end of input while the file may still
//! grow: at the end it waits ([`FollowOptions::poll`]) and reads again. It notices rotation (the
//! path now names another file: Zeek renames `dns.log` every hour and starts a new one) and
//! truncation (the file got shorter), and then reads the new content from its start. It returns
//! end of input only after [`FollowHandle::stop`].
//!
//! The line readers end a batch whenever the buffered input is used up, so a followed file
//! delivers each line as it appears instead of waiting for a full batch ([`follow_path`] wires
//! this together). Starting at the end of an existing file is the default (a restarted service
//! does not replay history); Zeek TSV needs its header, so the leading `#` lines of the file are
//! replayed first ([`Start::EndWithHeader`]).

use crate::{open_reader, EventReader, IngestError, IngestOptions};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where following starts in a file that already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Read the whole file, then follow.
    Beginning,
    /// Only what is appended from now on.
    End,
    /// The file's leading `#` lines (a Zeek TSV header, at most 64 KiB), then what is appended.
    EndWithHeader,
}

#[derive(Clone, Debug)]
pub struct FollowOptions {
    pub start: Start,
    /// How often the end of the file is polled for new data, rotation and truncation.
    pub poll: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            start: Start::EndWithHeader,
            poll: Duration::from_millis(250),
        }
    }
}

/// Stops a [`Follow`] from another thread: it returns end of input once it has read everything.
#[derive(Clone, Debug, Default)]
pub struct FollowHandle(Arc<AtomicBool>);

impl FollowHandle {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A file followed as it grows (see the module docs).
pub struct Follow {
    path: PathBuf,
    file: Option<File>,
    /// (device, inode) of the open file.
    id: (u64, u64),
    pos: u64,
    /// Header bytes still to hand out before the file content (for [`Start::EndWithHeader`]).
    prefix: io::Cursor<Vec<u8>>,
    poll: Duration,
    stop: FollowHandle,
}

fn leading_comment_lines(f: &mut File) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    (&mut *f).take(64 * 1024).read_to_end(&mut head)?;
    let mut end = 0;
    for line in head.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b"#") || !line.ends_with(b"\n") {
            break;
        }
        end += line.len();
    }
    head.truncate(end);
    Ok(head)
}

impl Follow {
    /// Opens `path` (which must exist) and positions as `opts.start` says.
    pub fn open(
        path: impl AsRef<Path>,
        opts: &FollowOptions,
    ) -> io::Result<(Follow, FollowHandle)> {
        let path = path.as_ref().to_path_buf();
        let mut file = File::open(&path)?;
        let md = file.metadata()?;
        let prefix = if opts.start == Start::EndWithHeader {
            leading_comment_lines(&mut file)?
        } else {
            Vec::new()
        };
        let pos = match opts.start {
            Start::Beginning => 0,
            Start::End | Start::EndWithHeader => md.len(),
        };
        file.seek(SeekFrom::Start(pos))?;
        let stop = FollowHandle::default();
        let f = Follow {
            path,
            file: Some(file),
            id: (md.dev(), md.ino()),
            pos,
            prefix: io::Cursor::new(prefix),
            poll: opts.poll,
            stop: stop.clone(),
        };
        Ok((f, stop))
    }

    /// At the end of the current file: switches to a rotated-in file or rewinds a truncated one.
    /// Returns true when there may be new data to read.
    fn check_rotation(&mut self) -> bool {
        let Ok(md) = std::fs::metadata(&self.path) else {
            return false;
        };
        if (md.dev(), md.ino()) != self.id {
            // the old file may still have grown after our last read; it was drained above
            if let Ok(f) = File::open(&self.path) {
                self.file = Some(f);
                self.id = (md.dev(), md.ino());
                self.pos = 0;
                return true;
            }
            return false;
        }
        if md.len() < self.pos {
            if let Some(f) = self.file.as_mut() {
                if f.seek(SeekFrom::Start(0)).is_ok() {
                    self.pos = 0;
                    return true;
                }
            }
        }
        md.len() > self.pos
    }
}

impl Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.prefix.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        loop {
            if let Some(f) = self.file.as_mut() {
                let n = f.read(buf)?;
                if n > 0 {
                    self.pos += n as u64;
                    return Ok(n);
                }
            }
            if self.check_rotation() {
                continue;
            }
            if self.stop.is_stopped() {
                return Ok(0);
            }
            std::thread::sleep(self.poll);
        }
    }
}

/// Opens `path` for following; the display name is for errors and reports.
fn open_follow(
    path: &Path,
    opts: &FollowOptions,
) -> Result<(String, Follow, FollowHandle), IngestError> {
    let name = path.display().to_string();
    let (f, handle) = Follow::open(path, opts).map_err(|e| IngestError::Io {
        path: name.clone(),
        source: e,
    })?;
    Ok((name, f, handle))
}

/// Follows a Zeek dns.log (TSV or JSON) or dnsight JSON-lines file: waits until the file exists
/// and has its first bytes, sniffs the format, and returns the reader with its stop handle. The
/// reader's `next_batch` blocks while no new lines arrive and returns `Ok(false)` after
/// [`FollowHandle::stop`] once the file is read to its end. Run it on a dedicated thread.
pub fn follow_path(
    path: &Path,
    opts: &FollowOptions,
    ingest: &IngestOptions,
) -> Result<(Box<dyn EventReader>, FollowHandle), IngestError> {
    let (name, f, handle) = open_follow(path, opts)?;
    // sniffing needs the first bytes; with Start::End on a file without a header that means
    // waiting for the first appended line
    let reader = open_reader(
        Box::new(BufReader::with_capacity(64 * 1024, f)),
        &name,
        ingest,
    )?;
    Ok((reader, handle))
}

/// Like [`follow_path`], but returns at once: the format is sniffed on the first
/// `next_batch` call (which waits, stoppably, for the first appended bytes). Use this when the
/// caller must not block on a log file that is still empty, e.g. a service starting its sources.
pub fn follow_path_deferred(
    path: &Path,
    opts: &FollowOptions,
    ingest: &IngestOptions,
) -> Result<(Box<dyn EventReader>, FollowHandle), IngestError> {
    let (name, f, handle) = open_follow(path, opts)?;
    Ok((
        Box::new(Deferred {
            pending: Some(f),
            inner: None,
            name,
            ingest: ingest.clone(),
            empty: crate::IngestStats::default(),
        }),
        handle,
    ))
}

struct Deferred {
    pending: Option<Follow>,
    inner: Option<Box<dyn EventReader>>,
    name: String,
    ingest: IngestOptions,
    empty: crate::IngestStats,
}

impl EventReader for Deferred {
    fn next_batch(&mut self, out: &mut Vec<dnsight_model::DnsEvent>) -> Result<bool, IngestError> {
        if let Some(f) = self.pending.take() {
            let r = open_reader(
                Box::new(BufReader::with_capacity(64 * 1024, f)),
                &self.name,
                &self.ingest,
            );
            // (stopped before any byte arrived shows as an unknown format: the caller logs it)
            self.inner = Some(r?);
        }
        match self.inner.as_mut() {
            Some(r) => r.next_batch(out),
            None => Ok(false),
        }
    }
    fn stats(&self) -> &crate::IngestStats {
        self.inner.as_ref().map_or(&self.empty, |r| r.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Fails a test instead of hanging it: stops the follower after 20 s whatever happens.
    fn watchdog(stop: &FollowHandle) {
        let s = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(20));
            s.stop();
        });
    }

    fn line(i: u32) -> String {
        format!(
            "{{\"ts\":{},\"client\":\"10.0.0.{}\",\"qname\":\"n{i}.example\"}}\n",
            1_700_000_000 + i,
            i % 250
        )
    }

    #[test]
    fn follows_appends_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, line(0)).unwrap();
        let opts = FollowOptions {
            start: Start::Beginning,
            poll: Duration::from_millis(5),
        };
        let (mut r, stop) = follow_path(&path, &opts, &IngestOptions::default()).unwrap();
        watchdog(&stop);
        let mut out = Vec::new();
        assert!(r.next_batch(&mut out).unwrap());
        assert_eq!(
            out.len(),
            1,
            "the existing line comes out without waiting for a full batch"
        );
        // appended lines, one of them written in two pieces
        {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(line(1).as_bytes()).unwrap();
            let l2 = line(2);
            f.write_all(&l2.as_bytes()[..10]).unwrap();
            f.flush().unwrap();
            f.write_all(&l2.as_bytes()[10..]).unwrap();
        }
        while out.len() < 3 {
            assert!(r.next_batch(&mut out).unwrap());
        }
        // rotation: the file is renamed and a new one appears
        std::fs::rename(&path, dir.path().join("events.jsonl.1")).unwrap();
        std::fs::write(&path, line(3)).unwrap();
        while out.len() < 4 {
            assert!(r.next_batch(&mut out).unwrap());
        }
        // truncation: the file is emptied and written again (shorter than before: like
        // `tail -F`, truncation is noticed when the file becomes shorter than the read position)
        std::fs::write(
            &path,
            "{\"ts\":1,\"client\":\"::1\",\"qname\":\"n4.example\"}\n",
        )
        .unwrap();
        while out.len() < 5 {
            assert!(r.next_batch(&mut out).unwrap());
        }
        let names: Vec<&str> = out.iter().map(|e| e.qname.as_str()).collect();
        assert_eq!(
            names,
            [
                "n0.example",
                "n1.example",
                "n2.example",
                "n3.example",
                "n4.example"
            ]
        );
        stop.stop();
        while r.next_batch(&mut out).unwrap() {}
        assert_eq!(out.len(), 5);
        assert_eq!(r.stats().rejected_total(), 0, "{:?}", r.stats());
    }

    #[test]
    fn zeek_tsv_from_the_end_keeps_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dns.log");
        let header =
            "#separator \\x09\n#fields\tts\tid.orig_h\tquery\n#types\ttime\taddr\tstring\n";
        std::fs::write(
            &path,
            format!("{header}1700000000.0\t10.0.0.1\told.example\n"),
        )
        .unwrap();
        let (mut r, stop) = follow_path(
            &path,
            &FollowOptions {
                poll: Duration::from_millis(5),
                ..Default::default()
            },
            &IngestOptions::default(),
        )
        .unwrap();
        watchdog(&stop);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"1700000001.0\t10.0.0.2\tnew.example\n")
            .unwrap();
        let mut out = Vec::new();
        while out.is_empty() {
            assert!(r.next_batch(&mut out).unwrap());
        }
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].qname.as_str(),
            "new.example",
            "history is not replayed"
        );
        stop.stop();
        while r.next_batch(&mut out).unwrap() {}
        assert_eq!(r.stats().rejected_total(), 0, "{:?}", r.stats());
    }
}
