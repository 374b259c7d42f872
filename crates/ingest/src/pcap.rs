//! pcap and pcapng files → DNS events.
//!
//! The container is read with `pcap-parser` (streaming, bounded buffer): classic pcap in either
//! byte order with micro- or nanosecond timestamps, and pcapng with any number of sections and
//! interfaces, each interface with its own link type and timestamp resolution/offset. Each frame
//! goes through [`PacketDecoder`] (link layer → IP → UDP/TCP → DNS → pairing).
//!
//! A corrupt or truncated container stops the file (there is no way to find the next record
//! boundary in classic pcap) but everything before it comes out, and the reason is counted:
//! `pcap.truncated`, `pcap.corrupt`, `pcap.record_too_large`, `pcapng.unknown_interface`.

use crate::net::PacketDecoder;
use crate::{EventReader, IngestError, IngestOptions, IngestStats};
use dnsight_model::{DnsEvent, Source, Ts};
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};
use std::io::{BufRead, Read};

/// Events handed out per batch (roughly).
const BATCH: usize = 4096;
const INITIAL_BUFFER: usize = 1 << 20;
const MAX_BUFFER: usize = 32 << 20;

#[derive(Clone, Copy, Debug)]
struct Iface {
    linktype: u32,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset: i64,
}

/// Streams events out of one pcap or pcapng file.
pub struct PcapReader {
    inner: Option<Box<dyn PcapReaderIterator + Send>>,
    st: State,
    capacity: usize,
    done: bool,
}

/// Everything but the container reader (blocks borrow the reader while they are handled).
struct State {
    dec: PacketDecoder,
    /// Classic pcap: link type and whether timestamps are in nanoseconds.
    legacy: Option<(u32, bool)>,
    ifaces: Vec<Iface>,
    last_ts: Ts,
}

/// Opens a pcap or pcapng stream (already decompressed).
pub fn reader(
    input: Box<dyn BufRead + Send>,
    name: &str,
    opts: &IngestOptions,
) -> Result<Box<dyn EventReader>, IngestError> {
    Ok(Box::new(PcapReader::new(input, name, opts, Source::Pcap)?))
}

impl PcapReader {
    pub fn new(
        input: Box<dyn BufRead + Send>,
        name: &str,
        opts: &IngestOptions,
        source: Source,
    ) -> Result<PcapReader, IngestError> {
        let mut dec = PacketDecoder::new(source, opts);
        let inner = match pcap_parser::create_reader(INITIAL_BUFFER, ReadAll(input)) {
            Ok(r) => Some(r),
            Err(PcapError::Eof) => None,
            Err(PcapError::Incomplete(_)) => {
                dec.stats.reject("pcap.truncated");
                None
            }
            Err(PcapError::ReadError) => {
                return Err(IngestError::Other(format!("{name}: read error")))
            }
            Err(_) => {
                return Err(IngestError::UnknownFormat {
                    path: name.to_string(),
                })
            }
        };
        Ok(PcapReader {
            inner,
            st: State {
                dec,
                legacy: None,
                ifaces: Vec::new(),
                last_ts: Ts(0),
            },
            capacity: INITIAL_BUFFER,
            done: false,
        })
    }

    fn finish(&mut self, out: &mut Vec<DnsEvent>) {
        if !self.done {
            self.done = true;
            self.inner = None;
            self.st.dec.flush(out);
        }
    }
}

impl State {
    fn handle(&mut self, block: PcapBlockOwned<'_>, out: &mut Vec<DnsEvent>) {
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                self.legacy = Some(((h.network.0 as u32) & 0xffff, h.is_nanosecond_precision()));
            }
            PcapBlockOwned::Legacy(b) => {
                let (linktype, nanos) = self.legacy.unwrap_or((1, false));
                let frac = if nanos {
                    b.ts_usec as i64 / 1000
                } else {
                    b.ts_usec as i64
                };
                let ts = Ts(b.ts_sec as i64 * Ts::MICROS_PER_SEC + frac);
                self.last_ts = ts;
                let n = (b.caplen as usize).min(b.data.len());
                self.dec.packet(ts, linktype, &b.data[..n], out);
            }
            PcapBlockOwned::NG(Block::SectionHeader(_)) => self.ifaces.clear(),
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                self.ifaces.push(Iface {
                    linktype: (idb.linktype.0 as u32) & 0xffff,
                    resolution: idb.ts_resolution().filter(|&r| r > 0).unwrap_or(1_000_000),
                    offset: idb.ts_offset(),
                });
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let Some(iface) = self.ifaces.get(epb.if_id as usize).copied() else {
                    self.dec.stats.records += 1;
                    self.dec.stats.reject("pcapng.unknown_interface");
                    return;
                };
                let raw = ((epb.ts_high as u128) << 32) | epb.ts_low as u128;
                let us = raw * 1_000_000 / iface.resolution as u128;
                let ts = Ts((us.min(i64::MAX as u128) as i64)
                    .saturating_add(iface.offset.saturating_mul(Ts::MICROS_PER_SEC)));
                self.last_ts = ts;
                let n = (epb.caplen as usize).min(epb.data.len());
                self.dec.packet(ts, iface.linktype, &epb.data[..n], out);
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                let Some(iface) = self.ifaces.first().copied() else {
                    self.dec.stats.records += 1;
                    self.dec.stats.reject("pcapng.unknown_interface");
                    return;
                };
                let n = (spb.origlen as usize).min(spb.data.len());
                self.dec
                    .packet(self.last_ts, iface.linktype, &spb.data[..n], out);
            }
            PcapBlockOwned::NG(_) => {}
        }
    }
}

impl EventReader for PcapReader {
    fn next_batch(&mut self, out: &mut Vec<DnsEvent>) -> Result<bool, IngestError> {
        if self.done {
            return Ok(false);
        }
        let start = out.len();
        let mut stalls = 0;
        loop {
            let Some(inner) = self.inner.as_mut() else {
                self.finish(out);
                return Ok(out.len() > start);
            };
            match inner.next() {
                Ok((offset, block)) => {
                    stalls = 0;
                    self.st.handle(block, out);
                    inner.consume(offset);
                    if out.len() - start >= BATCH {
                        return Ok(true);
                    }
                }
                Err(PcapError::Eof) => {
                    self.finish(out);
                    return Ok(true);
                }
                Err(PcapError::Incomplete(_)) => {
                    stalls += 1;
                    if stalls > 3 || inner.refill().is_err() {
                        if !inner.data().is_empty() {
                            self.st.dec.stats.reject("pcap.truncated");
                        }
                        self.finish(out);
                        return Ok(true);
                    }
                }
                Err(PcapError::UnexpectedEof) => {
                    if !inner.data().is_empty() {
                        self.st.dec.stats.reject("pcap.truncated");
                    }
                    self.finish(out);
                    return Ok(true);
                }
                Err(PcapError::BufferTooSmall) => {
                    if self.capacity >= MAX_BUFFER || !inner.grow(self.capacity * 2) {
                        self.st.dec.stats.reject("pcap.record_too_large");
                        self.finish(out);
                        return Ok(true);
                    }
                    self.capacity *= 2;
                    if inner.refill().is_err() {
                        self.finish(out);
                        return Ok(true);
                    }
                }
                Err(PcapError::ReadError) => {
                    self.st.dec.stats.reject("pcap.read_error");
                    self.finish(out);
                    return Ok(true);
                }
                Err(_) => {
                    self.st.dec.stats.reject("pcap.corrupt");
                    self.finish(out);
                    return Ok(true);
                }
            }
        }
    }

    fn stats(&self) -> &IngestStats {
        &self.st.dec.stats
    }
}

/// `Read` adapter over a `BufRead` trait object (pcap-parser wants `Read + Send`).
struct ReadAll(Box<dyn BufRead + Send>);

impl Read for ReadAll {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}
