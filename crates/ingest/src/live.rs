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
//! A classic BPF filter ([`dns_port_filter`]) lets the kernel drop traffic that cannot be DNS,
//! so a busy interface does not copy every packet to userland. Needs `CAP_NET_RAW` (root).

use crate::net::PacketDecoder;
use crate::{EventReader, IngestError, IngestOptions, IngestStats};
use dnsight_model::{DnsEvent, Source, Ts};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest wait inside one `next_batch` call.
pub const POLL_MS: i64 = 250;
const BATCH: usize = 1024;
const ARPHRD_LOOPBACK: u16 = 772;
const SO_ATTACH_FILTER: libc::c_int = 26;
const PACKET_OUTGOING: u8 = 4;

/// A live capture on one interface.
pub struct LiveReader {
    fd: i32,
    filtered: bool,
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
            // let the kernel drop what cannot be DNS (best effort: without it userland filters)
            let mut filtered = false;
            if let Some(mut prog) = dns_port_filter(&opts.dns_ports) {
                let fprog = libc::sock_fprog {
                    len: prog.len() as u16,
                    filter: prog.as_mut_ptr(),
                };
                filtered = libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    SO_ATTACH_FILTER,
                    &fprog as *const libc::sock_fprog as *const libc::c_void,
                    std::mem::size_of::<libc::sock_fprog>() as u32,
                ) == 0;
            }
            Ok(LiveReader {
                fd,
                filtered,
                dec: PacketDecoder::new(Source::Live, opts),
                buf: vec![0u8; 256 * 1024],
            })
        }
    }

    /// True when the kernel filter (see [`dns_port_filter`]) is attached.
    pub fn kernel_filter(&self) -> bool {
        self.filtered
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

/// A classic BPF program for a cooked (`SOCK_DGRAM`) packet socket that keeps IPv4/IPv6
/// UDP and TCP packets with a source or destination port in `ports` (53, VXLAN 4789 and Geneve
/// 6081 always), IPv4 fragments after the first, IPv4 tunnels (IP-in-IP, 6in4, GRE), and IPv6
/// packets whose next header is not UDP/TCP (extension headers, fragments, tunnels: decided in
/// userland). Everything else is dropped in the kernel. None if the program would not fit.
pub fn dns_port_filter(ports: &[u16]) -> Option<Vec<libc::sock_filter>> {
    #[derive(Clone, Copy)]
    enum T {
        Next,
        Accept,
        Drop,
        At(usize),
    }
    let mut ports: Vec<u16> = ports.iter().copied().chain([53, 4789, 6081]).collect();
    ports.sort_unstable();
    ports.dedup();
    let mut prog: Vec<(u16, T, T, u32)> = Vec::new();
    const LD_W: u16 = 0x20;
    const LD_H: u16 = 0x28;
    const LD_B: u16 = 0x30;
    const LDX_MSH: u16 = 0xb1;
    const LD_H_IND: u16 = 0x48;
    const JEQ: u16 = 0x15;
    const JSET: u16 = 0x45;
    let n = ports.len();
    // layout (indices are fixed by construction):
    //  0 ld proto; 1 jeq v4; 2 jeq v6 else drop
    //  v4 (3): ldb [9]; jeq 17/6 -> p4; jeq 4/41/47 -> accept; drop
    //  p4: ldh [6]; jset 0x1fff -> accept; ldxb msh [0]; ldh [x+0]; n x jeq; ldh [x+2]; n x jeq; drop
    //  v6: ldb [6]; jeq 17/6 -> p6; accept; p6: ldh [40]; n x jeq; ldh [42]; n x jeq; drop
    let v4 = 3;
    let p4 = v4 + 8;
    let v6 = p4 + 3 + 2 * (n + 1) + 1;
    let p6 = v6 + 4;
    prog.push((
        LD_W,
        T::Next,
        T::Next,
        (libc::SKF_AD_OFF as u32).wrapping_add(0),
    ));
    prog.push((JEQ, T::At(v4), T::Next, 0x0800));
    prog.push((JEQ, T::At(v6), T::Drop, 0x86dd));
    prog.push((LD_B, T::Next, T::Next, 9));
    prog.push((JEQ, T::At(p4), T::Next, 17));
    prog.push((JEQ, T::At(p4), T::Next, 6));
    prog.push((JEQ, T::Accept, T::Next, 4));
    prog.push((JEQ, T::Accept, T::Next, 41));
    prog.push((JEQ, T::Accept, T::Next, 47));
    prog.push((0x06, T::Next, T::Next, 0)); // ret 0 (drop)
    prog.push((0x06, T::Next, T::Next, 0)); // padding so p4 = v4 + 8 stays simple
    debug_assert_eq!(prog.len(), p4);
    prog.push((LD_H, T::Next, T::Next, 6));
    prog.push((JSET, T::Accept, T::Next, 0x1fff));
    prog.push((LDX_MSH, T::Next, T::Next, 0));
    for off in [0u32, 2] {
        prog.push((LD_H_IND, T::Next, T::Next, off));
        for &p in &ports {
            prog.push((JEQ, T::Accept, T::Next, p as u32));
        }
    }
    prog.push((0x06, T::Next, T::Next, 0));
    debug_assert_eq!(prog.len(), v6);
    prog.push((LD_B, T::Next, T::Next, 6));
    prog.push((JEQ, T::At(p6), T::Next, 17));
    prog.push((JEQ, T::At(p6), T::Accept, 6));
    prog.push((0x06, T::Next, T::Next, 0)); // unreachable filler
    debug_assert_eq!(prog.len(), p6);
    for off in [40u32, 42] {
        prog.push((LD_H, T::Next, T::Next, off));
        for &p in &ports {
            prog.push((JEQ, T::Accept, T::Next, p as u32));
        }
    }
    let drop_at = prog.len();
    prog.push((0x06, T::Next, T::Next, 0));
    let accept_at = prog.len();
    prog.push((0x06, T::Next, T::Next, 262_144));
    let mut out = Vec::with_capacity(prog.len());
    for (i, &(code, jt, jf, k)) in prog.iter().enumerate() {
        let rel = |t: T| -> Option<u8> {
            let target = match t {
                T::Next => i + 1,
                T::Accept => accept_at,
                T::Drop => drop_at,
                T::At(x) => x,
            };
            u8::try_from(target.checked_sub(i + 1)?).ok()
        };
        out.push(libc::sock_filter {
            code,
            jt: rel(jt)?,
            jf: rel(jf)?,
            k,
        });
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap_writer::{ip_packet, tcp_segment, udp_segment};

    /// A tiny interpreter for the opcodes the filter uses; `proto` is the ethertype.
    fn run(prog: &[libc::sock_filter], proto: u16, pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |i: usize| pkt.get(i).copied();
        let half = |i: usize| Some(u16::from_be_bytes([byte(i)?, byte(i + 1)?]) as u32);
        loop {
            let f = &prog[pc];
            pc += 1;
            match f.code {
                0x20 => a = proto as u32,
                0x28 => match half(f.k as usize) {
                    Some(v) => a = v,
                    None => return 0,
                },
                0x30 => match byte(f.k as usize) {
                    Some(v) => a = v as u32,
                    None => return 0,
                },
                0xb1 => match byte(f.k as usize) {
                    Some(v) => x = 4 * (v as u32 & 0xf),
                    None => return 0,
                },
                0x48 => match half((x + f.k) as usize) {
                    Some(v) => a = v,
                    None => return 0,
                },
                0x15 => pc += if a == f.k { f.jt } else { f.jf } as usize,
                0x45 => pc += if a & f.k != 0 { f.jt } else { f.jf } as usize,
                0x06 => return f.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn udp(src: &str, dst: &str) -> Vec<u8> {
        let (s, d): (std::net::SocketAddr, std::net::SocketAddr) =
            (src.parse().unwrap(), dst.parse().unwrap());
        let mut ip = Vec::new();
        ip_packet(
            s.ip(),
            d.ip(),
            17,
            1,
            &udp_segment(s, d, b"payload"),
            &mut ip,
        );
        ip
    }

    #[test]
    fn filter_keeps_dns_ports_and_drops_the_rest() {
        let prog = dns_port_filter(&[5353]).unwrap();
        assert!(run(&prog, 0x0800, &udp("10.0.0.1:4000", "10.0.0.2:53")) > 0);
        assert!(run(&prog, 0x0800, &udp("10.0.0.2:53", "10.0.0.1:4000")) > 0);
        assert!(run(&prog, 0x0800, &udp("10.0.0.1:5353", "224.0.0.251:5353")) > 0);
        assert_eq!(run(&prog, 0x0800, &udp("10.0.0.1:4000", "10.0.0.2:443")), 0);
        assert!(run(&prog, 0x86dd, &udp("[fd00::1]:4000", "[fd00::2]:53")) > 0);
        assert_eq!(
            run(&prog, 0x86dd, &udp("[fd00::1]:4000", "[fd00::2]:443")),
            0
        );
        let (s, d) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut tcp = Vec::new();
        ip_packet(
            s,
            d,
            6,
            1,
            &tcp_segment(
                std::net::SocketAddr::new(s, 4000),
                std::net::SocketAddr::new(d, 53),
                1,
                0,
                0x18,
                b"x",
            ),
            &mut tcp,
        );
        assert!(run(&prog, 0x0800, &tcp) > 0);
        // a later IPv4 fragment has no UDP header: kept for reassembly
        let mut frag = udp("10.0.0.1:4000", "10.0.0.2:443");
        frag[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
        assert!(run(&prog, 0x0800, &frag) > 0);
        // ARP and IPv4 with options shifting the UDP header
        assert_eq!(run(&prog, 0x0806, &[0; 28]), 0);
        let mut opts = udp("10.0.0.1:4000", "10.0.0.2:53");
        opts[0] = 0x46;
        opts.splice(20..20, [1, 1, 1, 0]);
        assert!(run(&prog, 0x0800, &opts) > 0);
        // too many ports to encode the jumps: no filter
        let many: Vec<u16> = (1000..1300).collect();
        assert!(dns_port_filter(&many).is_none());
    }
}
