//! Live capture from a network interface with a Linux `AF_PACKET` socket — no libpcap.
//!
//! The default build must not need system C libraries, so instead of the `pcap` crate this
//! opens a cooked (`SOCK_DGRAM`) packet socket bound to one interface: the kernel strips the
//! link layer (and VLAN tags) and reports the ethertype, so every interface type (Ethernet,
//! loopback, tunnels) looks the same. Frames then go through the same [`PacketDecoder`] as
//! capture files. On loopback the kernel shows every packet twice (outgoing and incoming);
//! the outgoing copy is skipped, as libpcap does.
//!
//! Event time for live traffic is the arrival time (the wall clock, read here and only here).
//! [`EventReader::next_batch`] returns at least every [`POLL_MS`] milliseconds (possibly with no
//! events) so callers can stop; on those ticks unanswered queries are timed out.
//! Needs `CAP_NET_RAW` (root).

use crate::net::PacketDecoder;
use crate::{EventReader, IngestError, IngestOptions, IngestStats};
use dnsight_model::{DnsEvent, Source, Ts};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest wait inside one `next_batch` call.
pub const POLL_MS: i64 = 250;
const BATCH: usize = 1024;
const ARPHRD_LOOPBACK: u16 = 772;
const PACKET_OUTGOING: u8 = 4;

/// A live capture on one interface.
pub struct LiveReader {
    fd: i32,
    dec: PacketDecoder,
    buf: Vec<u8>,
}

/// Opens a live capture on `interface` (e.g. `eth0`, `lo`).
pub fn live_reader(
    interface: &str,
    opts: &IngestOptions,
) -> Result<Box<dyn EventReader>, IngestError> {
    Ok(Box::new(LiveReader::open(interface, opts)?))
}

fn now() -> Ts {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Ts(d.as_micros() as i64)
}

impl LiveReader {
    pub fn open(interface: &str, opts: &IngestOptions) -> Result<LiveReader, IngestError> {
        let err = |what: &str| {
            IngestError::Other(format!(
                "live capture on {interface:?}: {what}: {}",
                std::io::Error::last_os_error()
            ))
        };
        let cname = std::ffi::CString::new(interface)
            .map_err(|_| IngestError::Other(format!("bad interface name {interface:?}")))?;
        // SAFETY: plain libc calls with valid pointers and sizes; the fd is owned by the reader.
        unsafe {
            let ifindex = libc::if_nametoindex(cname.as_ptr());
            if ifindex == 0 {
                return Err(err("no such interface"));
            }
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                proto as i32,
            );
            if fd < 0 {
                return Err(err("socket(AF_PACKET) failed (needs root or CAP_NET_RAW)"));
            }
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            if libc::bind(
                fd,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) < 0
            {
                let e = err("bind");
                libc::close(fd);
                return Err(e);
            }
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: (POLL_MS * 1000) as libc::suseconds_t,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            let rcvbuf: libc::c_int = 8 << 20;
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &rcvbuf as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
            // promiscuous mode, so a mirror/SPAN port shows other hosts' DNS (best effort)
            let mut mreq: libc::packet_mreq = std::mem::zeroed();
            mreq.mr_ifindex = ifindex as i32;
            mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq as *const libc::packet_mreq as *const libc::c_void,
                std::mem::size_of::<libc::packet_mreq>() as u32,
            );
            Ok(LiveReader {
                fd,
                dec: PacketDecoder::new(Source::Live, opts),
                buf: vec![0u8; 256 * 1024],
            })
        }
    }

    /// Receives one packet: Ok(Some(len, ethertype)), Ok(None) on timeout, or skip (Some with
    /// ethertype 0) for copies to ignore.
    fn recv(&mut self) -> std::io::Result<Option<(usize, u16, bool)>> {
        // SAFETY: the buffer and address outlive the call; sizes are correct.
        unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            let n = libc::recvfrom(
                self.fd,
                self.buf.as_mut_ptr() as *mut libc::c_void,
                self.buf.len(),
                libc::MSG_TRUNC,
                &mut sll as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut alen,
            );
            if n < 0 {
                let e = std::io::Error::last_os_error();
                return match e.kind() {
                    std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::Interrupted => Ok(None),
                    _ => Err(e),
                };
            }
            let skip = sll.sll_hatype == ARPHRD_LOOPBACK && sll.sll_pkttype == PACKET_OUTGOING;
            let len = (n as usize).min(self.buf.len());
            Ok(Some((len, u16::from_be(sll.sll_protocol), skip)))
        }
    }
}

impl Drop for LiveReader {
    fn drop(&mut self) {
        // SAFETY: the fd was opened by this reader and is closed once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

impl EventReader for LiveReader {
    fn next_batch(&mut self, out: &mut Vec<DnsEvent>) -> Result<bool, IngestError> {
        let start = out.len();
        let deadline = now().0 + POLL_MS * 1000;
        loop {
            match self.recv() {
                Ok(Some((len, ethertype, skip))) => {
                    if skip {
                        continue;
                    }
                    let ts = now();
                    // rebuild a minimal SLL2-like view: dispatch on the ethertype
                    match ethertype {
                        0x0800 | 0x86dd => {
                            let data = &self.buf[..len];
                            self.dec.ip_packet(ts, data, out);
                        }
                        _ => {}
                    }
                    if out.len() - start >= BATCH || ts.0 >= deadline {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(IngestError::Other(format!("live capture: {e}"))),
            }
        }
        self.dec.advance(now(), out);
        Ok(true)
    }

    fn stats(&self) -> &IngestStats {
        &self.dec.stats
    }
}
