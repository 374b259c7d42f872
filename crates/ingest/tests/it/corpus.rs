//! Corpus check against a peer: every capture under `../shared/data/captures/` is read without
//! panic, and the DNS queries and responses on UDP/TCP port 53 that dnsight extracts match what
//! `tshark` extracts (per message: `dns.flags.response` 0 and 1), and so do the query names
//! (as sets of distinct names).
//!
//! Skips with a message when the data folder or tshark is missing. Files run in parallel.

use dnsight_ingest::{open_reader, sniff, Format, IngestOptions};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Files where tshark's count is wrong (or dnsight deliberately differs), with the reason.
/// Keyed by path relative to `captures/`; value: why.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

fn captures_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let d = root.join("../shared/data/captures");
    d.is_dir().then_some(d)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// True when the file's content (after gunzip) is pcap or pcapng.
fn is_capture(p: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(p) else {
        return false;
    };
    let mut head = [0u8; 64];
    let n = f.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    let head: Vec<u8> = if head.starts_with(&[0x1f, 0x8b]) {
        let mut d = flate2::read::MultiGzDecoder::new(std::fs::File::open(p).unwrap());
        let mut b = vec![0u8; 64];
        let n = d.read(&mut b).unwrap_or(0);
        b.truncate(n);
        b
    } else {
        head.to_vec()
    };
    matches!(sniff(&head), Some(Format::Pcap | Format::PcapNg))
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    queries: u64,
    responses: u64,
    names: BTreeSet<String>,
    /// tshark printed a placeholder for a name it could not decode (`<name too long>`...).
    undecodable_names: bool,
    rejected: u64,
}

fn dnsight_counts(p: &Path) -> Result<(Counts, String), String> {
    let bytes = std::fs::read(p).map_err(|e| e.to_string())?;
    let r = std::panic::catch_unwind(|| {
        let mut r = open_reader(
            Box::new(std::io::Cursor::new(bytes)),
            "corpus",
            &IngestOptions::default(),
        )
        .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let mut names = BTreeSet::new();
        loop {
            let more = r.next_batch(&mut out).map_err(|e| e.to_string())?;
            for e in out.drain(..) {
                if !e.qname.is_root() {
                    names.insert(unescape_for_tshark(e.qname.as_str()));
                }
            }
            if !more {
                break;
            }
        }
        let st = r.stats().clone();
        let rejects = format!("{:?}", st.rejected);
        Ok::<_, String>((
            Counts {
                queries: st.queries,
                responses: st.responses,
                names,
                undecodable_names: false,
                rejected: st.rejected_total(),
            },
            rejects,
        ))
    });
    match r {
        Ok(r) => r,
        Err(_) => Err("PANIC".to_string()),
    }
}

/// dnsight escapes `.` inside a label and a few specials as `\c`; tshark prints them raw.
/// (`\DDD` escapes are kept: tshark prints non-printable bytes the same way.)
fn unescape_for_tshark(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && !b[i + 1].is_ascii_digit() {
            out.push(b[i + 1] as char);
            i += 2;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Converts tshark's rendering of a name for comparison: lowercased; `None` for tshark's
/// placeholders for names it could not decode (`<name too long>`, `<name contains a pointer
/// that loops>`: dnsight rejects those messages) and for the root (`<Root>`: dnsight's events
/// for messages without a question also carry the root, so the root is left out on both sides).
fn norm_tshark_name(s: &str) -> Option<String> {
    if s.is_empty() || (s.starts_with('<') && s.ends_with('>')) {
        return None;
    }
    Some(s.to_ascii_lowercase())
}

fn tshark_counts(p: &Path) -> Result<Counts, String> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(p)
        .args([
            "-Y",
            "dns && (udp.port==53 || tcp.port==53)",
            "-T",
            "fields",
            "-e",
            "dns.flags.response",
            "-e",
            "dns.qry.name",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\u{1f}",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut c = Counts::default();
    for line in text.lines() {
        let mut f = line.splitn(2, '\t');
        let flags = f.next().unwrap_or("");
        let names = f.next().unwrap_or("");
        for v in flags.split('\u{1f}') {
            match v {
                "0" | "False" => c.queries += 1,
                "1" | "True" => c.responses += 1,
                _ => {}
            }
        }
        for n in names.split('\u{1f}') {
            match norm_tshark_name(n) {
                Some(n) => {
                    c.names.insert(n);
                }
                None => c.undecodable_names |= n.starts_with('<') && n != "<Root>",
            }
        }
    }
    Ok(c)
}

#[test]
fn corpus_matches_tshark() {
    let Some(dir) = captures_dir() else {
        println!("corpus check skipped: ../shared/data/captures not found");
        return;
    };
    let mut files = Vec::new();
    walk(&dir, &mut files);
    files.retain(|p| is_capture(p));
    files.sort();
    assert!(!files.is_empty());
    let have_tshark = Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_tshark {
        println!(
            "corpus check: tshark not found, checking only that every capture reads without panic"
        );
    }
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
        * 2;
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = files.get(i) else { break };
                let ours = dnsight_counts(p);
                let theirs = if have_tshark {
                    Some(tshark_counts(p))
                } else {
                    None
                };
                results.lock().unwrap().push((p.clone(), ours, theirs));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut failures = Vec::new();
    let (mut tq, mut tr) = (0, 0);
    for (p, ours, theirs) in &results {
        let rel = p.strip_prefix(&dir).unwrap_or(p).display().to_string();
        let (ours, rejects) = match ours {
            Ok(o) => o,
            Err(e) if e == "PANIC" => {
                failures.push(format!("{rel}: PANIC"));
                continue;
            }
            Err(e) => {
                // a file dnsight refuses to open is only a failure if tshark finds DNS in it
                println!("{rel}: not opened: {e}");
                if let Some(Ok(t)) = theirs {
                    if t.queries + t.responses > 0 {
                        failures.push(format!(
                            "{rel}: not opened ({e}) but tshark sees {}q/{}r",
                            t.queries, t.responses
                        ));
                    }
                }
                continue;
            }
        };
        tq += ours.queries;
        tr += ours.responses;
        let Some(theirs) = theirs else { continue };
        let theirs = match theirs {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{rel}: tshark failed: {e}"));
                continue;
            }
        };
        // a message tshark could not decode a name in must show up in dnsight's reject counts
        if theirs.undecodable_names && ours.rejected == 0 {
            failures.push(format!(
                "{rel}: tshark found undecodable names but dnsight counted no rejects"
            ));
        }
        let known = KNOWN_DIFFERENCES.iter().find(|(f, _)| *f == rel);
        let counts_ok = ours.queries == theirs.queries && ours.responses == theirs.responses;
        let names_ok = ours.names == theirs.names;
        if counts_ok && names_ok {
            if known.is_some() {
                println!("{rel}: listed in KNOWN_DIFFERENCES but now matches");
            }
            continue;
        }
        let mut msg = format!(
            "{rel}: dnsight {}q/{}r, tshark {}q/{}r; rejects {rejects}",
            ours.queries, ours.responses, theirs.queries, theirs.responses
        );
        if !names_ok {
            let only_ours: Vec<_> = ours.names.difference(&theirs.names).take(5).collect();
            let only_theirs: Vec<_> = theirs.names.difference(&ours.names).take(5).collect();
            msg += &format!("; names only dnsight {only_ours:?}, only tshark {only_theirs:?}");
        }
        match known {
            Some((_, why)) => println!("known difference: {msg} ({why})"),
            None => failures.push(msg),
        }
    }
    println!(
        "corpus: {} captures, dnsight {tq} queries / {tr} responses on port 53",
        results.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
