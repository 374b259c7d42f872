//! Packets → DNS messages: link layers, IPv4/IPv6 (with extension headers, tunnels and
//! fragment reassembly), UDP and DNS over TCP, on the configured DNS ports.
//!
//! [`PacketDecoder`] is shared by the pcap/pcapng reader and live capture. It takes one captured
//! frame (link type + bytes + time) at a time, peels the layers with bounds-checked slicing (no
//! copies on the common UDP path), hands UDP payloads and reassembled TCP messages to the
//! [`Pairer`], and counts every malformed layer by reason (`link.*`, `ip.*`, `udp.*`, `tcp.*`,
//! `dns.*`). Packets that are simply not DNS (ARP, other ports) are ignored, not rejected.
//!
//! Supported link types: NULL/loopback (0, both byte orders), Ethernet (1) with 802.1Q/QinQ VLAN
//! tags, MPLS and PPPoE, FDDI (10), PPP (9, 50), raw IP (12, 14, 101, 228, 229), Cisco HDLC (104),
//! OpenBSD loopback (108), Linux SLL (113) and SLL2 (276). IP-in-IP, IPv6-in-IPv4 and plain GRE
//! tunnels are followed (bounded depth).

use crate::defrag::{Defrag, FragKey};
use crate::pair::{PacketInfo, Pairer};
use crate::tcp::{FlowKey, TcpReassembler};
use crate::{IngestOptions, IngestStats};
use dnsight_model::{DnsEvent, Source, Transport, Ts};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Maximum nesting of tunnels / VLAN tags / MPLS labels followed.
const MAX_DEPTH: usize = 8;

/// A set of UDP/TCP ports (bitmap).
#[derive(Clone)]
pub struct PortSet(Box<[u64; 1024]>);

impl PortSet {
    pub fn new(ports: &[u16]) -> PortSet {
        let mut s = PortSet(Box::new([0; 1024]));
        for &p in ports.iter().chain([53u16].iter()) {
            s.0[p as usize / 64] |= 1 << (p % 64);
        }
        s
    }
    #[inline]
    pub fn contains(&self, p: u16) -> bool {
        self.0[p as usize / 64] & (1 << (p % 64)) != 0
    }
}

/// Network-layer protocol found under the link layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    Ipv4,
    Ipv6,
}

fn by_version(p: &[u8]) -> Option<L3> {
    match p.first().map(|b| b >> 4) {
        Some(4) => Some(L3::Ipv4),
        Some(6) => Some(L3::Ipv6),
        _ => None,
    }
}

/// Dispatches on an ethertype, following VLAN tags, MPLS labels and PPPoE (bounded).
fn ethertype(mut et: u16, mut p: &[u8]) -> Result<Option<(L3, &[u8])>, &'static str> {
    for _ in 0..MAX_DEPTH {
        match et {
            0x0800 => return Ok(Some((L3::Ipv4, p))),
            0x86dd => return Ok(Some((L3::Ipv6, p))),
            0x8100 | 0x88a8 | 0x9100 | 0x9200 => {
                if p.len() < 4 {
                    return Err("link.truncated");
                }
                et = u16::from_be_bytes([p[2], p[3]]);
                p = &p[4..];
            }
            0x8847 | 0x8848 => {
                // MPLS: pop labels until bottom of stack, then guess from the IP version
                let mut q = p;
                loop {
                    if q.len() < 4 {
                        return Err("link.truncated");
                    }
                    let bos = q[2] & 1 != 0;
                    q = &q[4..];
                    if bos {
                        break;
                    }
                }
                return Ok(by_version(q).map(|l| (l, q)));
            }
            0x8864 => {
                // PPPoE session: 6-byte header, then a PPP protocol number
                if p.len() < 8 {
                    return Err("link.truncated");
                }
                return Ok(ppp_proto(u16::from_be_bytes([p[6], p[7]]), &p[8..]));
            }
            _ => return Ok(None),
        }
    }
    Err("link.too_deep")
}

fn ppp_proto(proto: u16, p: &[u8]) -> Option<(L3, &[u8])> {
    match proto {
        0x0021 => Some((L3::Ipv4, p)),
        0x0057 => Some((L3::Ipv6, p)),
        _ => None,
    }
}

fn null_family(fam: u32) -> Option<L3> {
    match fam {
        2 => Some(L3::Ipv4),
        10 | 24 | 28 | 30 => Some(L3::Ipv6),
        _ => None,
    }
}

/// Strips the link layer. `Ok(None)` for frames that do not carry IP.
pub fn decap(linktype: u32, d: &[u8]) -> Result<Option<(L3, &[u8])>, &'static str> {
    let need = |n: usize| {
        if d.len() < n {
            Err("link.truncated")
        } else {
            Ok(())
        }
    };
    match linktype {
        1 => {
            need(14)?;
            let et = u16::from_be_bytes([d[12], d[13]]);
            if et <= 1500 {
                // 802.3 length field: only LLC/SNAP carries IP
                need(22)?;
                if d[14] == 0xaa && d[15] == 0xaa && d[16] == 0x03 {
                    return ethertype(u16::from_be_bytes([d[20], d[21]]), &d[22..]);
                }
                return Ok(None);
            }
            ethertype(et, &d[14..])
        }
        0 => {
            need(4)?;
            let le = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
            let be = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
            Ok(null_family(le)
                .or_else(|| null_family(be))
                .map(|l| (l, &d[4..])))
        }
        108 => {
            need(4)?;
            Ok(null_family(u32::from_be_bytes([d[0], d[1], d[2], d[3]])).map(|l| (l, &d[4..])))
        }
        12 | 14 | 101 => Ok(by_version(d).map(|l| (l, d))),
        228 => Ok(Some((L3::Ipv4, d))),
        229 => Ok(Some((L3::Ipv6, d))),
        113 => {
            need(16)?;
            ethertype(u16::from_be_bytes([d[14], d[15]]), &d[16..])
        }
        276 => {
            need(20)?;
            ethertype(u16::from_be_bytes([d[0], d[1]]), &d[20..])
        }
        9 | 50 => {
            // PPP, optionally with HDLC-like address/control bytes
            let p = if d.len() >= 2 && d[0] == 0xff && d[1] == 0x03 {
                &d[2..]
            } else {
                d
            };
            if p.len() < 2 {
                return Err("link.truncated");
            }
            if p[0] & 1 == 1 {
                // compressed 1-byte protocol field
                return Ok(ppp_proto(p[0] as u16, &p[1..]));
            }
            Ok(ppp_proto(u16::from_be_bytes([p[0], p[1]]), &p[2..]))
        }
        10 => {
            // FDDI: frame control + 2 MACs, then LLC/SNAP
            need(21)?;
            if d[13] == 0xaa && d[14] == 0xaa && d[15] == 0x03 {
                return ethertype(u16::from_be_bytes([d[19], d[20]]), &d[21..]);
            }
            Ok(None)
        }
        104 => {
            need(4)?;
            ethertype(u16::from_be_bytes([d[2], d[3]]), &d[4..])
        }
        _ => Err("link.unsupported_type"),
    }
}

/// Decodes captured frames into DNS events. One per capture (it holds the reassembly and
/// pairing state).
pub struct PacketDecoder {
    ports: PortSet,
    defrag: Defrag,
    tcp: TcpReassembler,
    pairer: Pairer,
    pub stats: IngestStats,
}

impl PacketDecoder {
    pub fn new(source: Source, opts: &IngestOptions) -> PacketDecoder {
        PacketDecoder {
            ports: PortSet::new(&opts.dns_ports),
            defrag: Defrag::new(),
            tcp: TcpReassembler::new(),
            pairer: Pairer::new(source, opts),
            stats: IngestStats::default(),
        }
    }

    /// Moves event time forward without a packet (live capture when idle).
    pub fn advance(&mut self, now: Ts, out: &mut Vec<DnsEvent>) {
        self.pairer.advance(now, &mut self.stats, out);
    }

    /// End of input: emits pending queries, counts unfinished TCP messages and fragments.
    pub fn flush(&mut self, out: &mut Vec<DnsEvent>) {
        let (tcp, pairer, stats) = (&mut self.tcp, &mut self.pairer, &mut self.stats);
        tcp.flush(stats, &mut |st: &mut IngestStats,
                               k: &FlowKey,
                               ts: Ts,
                               msg: &[u8]| {
            pairer.push(&tcp_info(k, ts), msg, st, out);
        });
        self.defrag.flush(&mut self.stats);
        self.pairer.flush(&mut self.stats, out);
    }

    /// Processes one captured frame.
    pub fn packet(&mut self, ts: Ts, linktype: u32, data: &[u8], out: &mut Vec<DnsEvent>) {
        self.stats.records += 1;
        match decap(linktype, data) {
            Ok(Some((l3, p))) => self.ip(ts, l3, p, 0, out),
            Ok(None) => {}
            Err(reason) => self.stats.reject(reason),
        }
    }

    /// Processes one IP packet (no link layer).
    pub fn ip_packet(&mut self, ts: Ts, data: &[u8], out: &mut Vec<DnsEvent>) {
        self.stats.records += 1;
        match by_version(data) {
            Some(l3) => self.ip(ts, l3, data, 0, out),
            None => self.stats.reject("ip.bad_version"),
        }
    }

    fn ip(&mut self, ts: Ts, l3: L3, p: &[u8], depth: usize, out: &mut Vec<DnsEvent>) {
        if depth > MAX_DEPTH {
            self.stats.reject("ip.too_deep");
            return;
        }
        match l3 {
            L3::Ipv4 => self.ipv4(ts, p, depth, out),
            L3::Ipv6 => self.ipv6(ts, p, depth, out),
        }
    }

    fn ipv4(&mut self, ts: Ts, p: &[u8], depth: usize, out: &mut Vec<DnsEvent>) {
        if p.len() < 20 {
            self.stats.reject("ip.truncated");
            return;
        }
        if p[0] >> 4 != 4 {
            self.stats.reject("ip.bad_version");
            return;
        }
        let ihl = (p[0] & 0xf) as usize * 4;
        let total = u16::from_be_bytes([p[2], p[3]]) as usize;
        if ihl < 20 || p.len() < ihl {
            self.stats.reject("ip.bad_header");
            return;
        }
        // total length 0 happens with TCP segmentation offload: use what was captured
        let end = if total == 0 {
            p.len()
        } else {
            total.min(p.len())
        };
        if end < ihl {
            self.stats.reject("ip.bad_header");
            return;
        }
        let payload = &p[ihl..end];
        let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
        let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
        let proto = p[9];
        let frag = u16::from_be_bytes([p[6], p[7]]);
        let more = frag & 0x2000 != 0;
        let offset = (frag & 0x1fff) as usize * 8;
        if more || offset > 0 {
            if !self.is_interesting(proto) {
                return;
            }
            if total > p.len() {
                self.stats.reject("ip.fragment_truncated");
                return;
            }
            let key = FragKey {
                src,
                dst,
                id: u16::from_be_bytes([p[4], p[5]]) as u32,
                proto,
            };
            if let Some(whole) = self
                .defrag
                .add(ts, key, offset, more, payload, &mut self.stats)
            {
                self.l4(ts, src, dst, proto, &whole, depth, out);
            }
            return;
        }
        self.l4(ts, src, dst, proto, payload, depth, out);
    }

    fn is_interesting(&self, proto: u8) -> bool {
        matches!(proto, 17 | 6 | 4 | 41 | 47)
    }

    fn ipv6(&mut self, ts: Ts, p: &[u8], depth: usize, out: &mut Vec<DnsEvent>) {
        if p.len() < 40 {
            self.stats.reject("ip.truncated");
            return;
        }
        if p[0] >> 4 != 6 {
            self.stats.reject("ip.bad_version");
            return;
        }
        let plen = u16::from_be_bytes([p[4], p[5]]) as usize;
        let end = if plen == 0 {
            p.len()
        } else {
            (40 + plen).min(p.len())
        };
        let mut src = [0u8; 16];
        src.copy_from_slice(&p[8..24]);
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&p[24..40]);
        let (src, dst) = (
            IpAddr::V6(Ipv6Addr::from(src)),
            IpAddr::V6(Ipv6Addr::from(dst)),
        );
        let truncated = 40 + plen > p.len();
        self.ipv6_chain(ts, src, dst, p[6], &p[40..end], truncated, true, depth, out);
    }

    /// Walks IPv6 extension headers starting with next-header `nh` over `p`.
    #[allow(clippy::too_many_arguments)]
    fn ipv6_chain(
        &mut self,
        ts: Ts,
        src: IpAddr,
        dst: IpAddr,
        mut nh: u8,
        mut p: &[u8],
        truncated: bool,
        allow_frag: bool,
        depth: usize,
        out: &mut Vec<DnsEvent>,
    ) {
        for _ in 0..16 {
            match nh {
                0 | 43 | 60 | 135 | 139 | 140 => {
                    if p.len() < 8 {
                        self.stats.reject("ip.truncated");
                        return;
                    }
                    let len = (p[1] as usize + 1) * 8;
                    if p.len() < len {
                        self.stats.reject("ip.truncated");
                        return;
                    }
                    nh = p[0];
                    p = &p[len..];
                }
                51 => {
                    if p.len() < 8 {
                        self.stats.reject("ip.truncated");
                        return;
                    }
                    let len = (p[1] as usize + 2) * 4;
                    if p.len() < len {
                        self.stats.reject("ip.truncated");
                        return;
                    }
                    nh = p[0];
                    p = &p[len..];
                }
                44 => {
                    if !allow_frag {
                        self.stats.reject("ip.nested_fragment");
                        return;
                    }
                    if p.len() < 8 {
                        self.stats.reject("ip.truncated");
                        return;
                    }
                    let next = p[0];
                    let fo = u16::from_be_bytes([p[2], p[3]]);
                    let offset = (fo & 0xfff8) as usize;
                    let more = fo & 1 != 0;
                    let id = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                    let data = &p[8..];
                    if !more && offset == 0 {
                        // atomic fragment
                        nh = next;
                        p = data;
                        continue;
                    }
                    if truncated {
                        self.stats.reject("ip.fragment_truncated");
                        return;
                    }
                    let key = FragKey {
                        src,
                        dst,
                        id,
                        proto: next,
                    };
                    if let Some(whole) =
                        self.defrag
                            .add(ts, key, offset, more, data, &mut self.stats)
                    {
                        self.ipv6_chain(ts, src, dst, next, &whole, false, false, depth, out);
                    }
                    return;
                }
                59 => return,
                _ => {
                    self.l4(ts, src, dst, nh, p, depth, out);
                    return;
                }
            }
        }
        self.stats.reject("ip.too_many_extension_headers");
    }

    #[allow(clippy::too_many_arguments)]
    fn l4(
        &mut self,
        ts: Ts,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        p: &[u8],
        depth: usize,
        out: &mut Vec<DnsEvent>,
    ) {
        match proto {
            17 => self.udp(ts, src, dst, p, depth, out),
            6 => self.tcp(ts, src, dst, p, out),
            4 => self.ip(ts, L3::Ipv4, p, depth + 1, out),
            41 => self.ip(ts, L3::Ipv6, p, depth + 1, out),
            47 => self.gre(ts, p, depth, out),
            _ => {}
        }
    }

    fn gre(&mut self, ts: Ts, p: &[u8], depth: usize, out: &mut Vec<DnsEvent>) {
        if p.len() < 4 {
            self.stats.reject("gre.truncated");
            return;
        }
        let flags = u16::from_be_bytes([p[0], p[1]]);
        if flags & 0x7 != 0 {
            return; // GRE version 1 (PPTP) and others: not followed
        }
        let mut off = 4;
        for bit in [0x8000u16, 0x2000, 0x1000] {
            if flags & bit != 0 {
                off += 4;
            }
        }
        if p.len() < off {
            self.stats.reject("gre.truncated");
            return;
        }
        match u16::from_be_bytes([p[2], p[3]]) {
            0x0800 => self.ip(ts, L3::Ipv4, &p[off..], depth + 1, out),
            0x86dd => self.ip(ts, L3::Ipv6, &p[off..], depth + 1, out),
            0x6558 => {
                // transparent Ethernet bridging
                if let Ok(Some((l3, q))) = decap(1, &p[off..]) {
                    self.ip(ts, l3, q, depth + 1, out)
                }
            }
            _ => {}
        }
    }

    fn udp(
        &mut self,
        ts: Ts,
        src: IpAddr,
        dst: IpAddr,
        p: &[u8],
        depth: usize,
        out: &mut Vec<DnsEvent>,
    ) {
        if p.len() < 8 {
            self.stats.reject("udp.truncated");
            return;
        }
        let sport = u16::from_be_bytes([p[0], p[1]]);
        let dport = u16::from_be_bytes([p[2], p[3]]);
        if !self.ports.contains(sport) && !self.ports.contains(dport) {
            if dport == 4789 || dport == 6081 {
                self.udp_tunnel(ts, dport, &p[8..], depth, out);
            }
            return;
        }
        let len = u16::from_be_bytes([p[4], p[5]]) as usize;
        if len < 8 {
            self.stats.reject("udp.bad_length");
            return;
        }
        // a length beyond the captured bytes is a short snaplen: decode what is there
        let payload = &p[8..len.min(p.len())];
        let info = PacketInfo {
            ts,
            src,
            src_port: sport,
            dst,
            dst_port: dport,
            transport: Transport::Udp,
        };
        self.pairer.push(&info, payload, &mut self.stats, out);
    }

    /// VXLAN (4789) and Geneve (6081) carry Ethernet frames (or IP for Geneve).
    fn udp_tunnel(&mut self, ts: Ts, port: u16, p: &[u8], depth: usize, out: &mut Vec<DnsEvent>) {
        if depth >= MAX_DEPTH || p.len() < 8 {
            return;
        }
        let (proto, inner) = if port == 4789 {
            (0x6558, &p[8..])
        } else {
            let opt_len = (p[0] & 0x3f) as usize * 4;
            if p.len() < 8 + opt_len {
                return;
            }
            (u16::from_be_bytes([p[2], p[3]]), &p[8 + opt_len..])
        };
        let l3 = match proto {
            0x6558 => decap(1, inner).ok().flatten(),
            0x0800 => Some((L3::Ipv4, inner)),
            0x86dd => Some((L3::Ipv6, inner)),
            _ => None,
        };
        if let Some((l3, q)) = l3 {
            self.ip(ts, l3, q, depth + 1, out);
        }
    }

    fn tcp(&mut self, ts: Ts, src: IpAddr, dst: IpAddr, p: &[u8], out: &mut Vec<DnsEvent>) {
        if p.len() < 20 {
            self.stats.reject("tcp.truncated");
            return;
        }
        let sport = u16::from_be_bytes([p[0], p[1]]);
        let dport = u16::from_be_bytes([p[2], p[3]]);
        if !self.ports.contains(sport) && !self.ports.contains(dport) {
            return;
        }
        let seq = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        let doff = (p[12] >> 4) as usize * 4;
        if doff < 20 || doff > p.len() {
            self.stats.reject("tcp.bad_header");
            return;
        }
        let flags = p[13];
        let key = FlowKey {
            src,
            dst,
            src_port: sport,
            dst_port: dport,
        };
        let (tcp, pairer) = (&mut self.tcp, &mut self.pairer);
        tcp.segment(
            ts,
            key,
            seq,
            flags,
            &p[doff..],
            &mut self.stats,
            &mut |st: &mut IngestStats, k: &FlowKey, ts: Ts, msg: &[u8]| {
                pairer.push(&tcp_info(k, ts), msg, st, out);
            },
        );
    }
}

fn tcp_info(k: &FlowKey, ts: Ts) -> PacketInfo {
    PacketInfo {
        ts,
        src: k.src,
        src_port: k.src_port,
        dst: k.dst,
        dst_port: k.dst_port,
        transport: Transport::Tcp,
    }
}
