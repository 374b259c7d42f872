//! A small pcap / pcapng writer with Ethernet, IPv4/IPv6, UDP and TCP framing around DNS bytes.
//!
//! Used by tests (captures built byte for byte, then read back through the real reader) and by
//! the simulator's pcap output. Checksums are computed (IPv4 header, UDP, TCP) so other tools
//! (tshark) accept the files.

use dnsight_model::Ts;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

/// Link types written by this module.
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;

/// TCP flag bits for [`tcp_packet`].
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// Classic pcap writer (little endian, micro- or nanosecond timestamps).
pub struct PcapWriter<W: Write> {
    w: W,
    nanos: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header for `linktype` with microsecond timestamps.
    pub fn new(w: W, linktype: u32) -> io::Result<Self> {
        Self::with_precision(w, linktype, false)
    }

    /// Like [`PcapWriter::new`], choosing nanosecond timestamps (magic `a1b23c4d`).
    pub fn with_precision(mut w: W, linktype: u32, nanos: bool) -> io::Result<Self> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        w.write_all(&magic.to_le_bytes())?;
        w.write_all(&2u16.to_le_bytes())?;
        w.write_all(&4u16.to_le_bytes())?;
        w.write_all(&0i32.to_le_bytes())?;
        w.write_all(&0u32.to_le_bytes())?;
        w.write_all(&262_144u32.to_le_bytes())?;
        w.write_all(&linktype.to_le_bytes())?;
        Ok(PcapWriter { w, nanos })
    }

    /// Writes one frame (already framed for the file's link type).
    pub fn write_packet(&mut self, ts: Ts, frame: &[u8]) -> io::Result<()> {
        let secs = ts.0.div_euclid(Ts::MICROS_PER_SEC) as u32;
        let us = ts.0.rem_euclid(Ts::MICROS_PER_SEC) as u32;
        let frac = if self.nanos { us * 1000 } else { us };
        self.w.write_all(&secs.to_le_bytes())?;
        self.w.write_all(&frac.to_le_bytes())?;
        self.w.write_all(&(frame.len() as u32).to_le_bytes())?;
        self.w.write_all(&(frame.len() as u32).to_le_bytes())?;
        self.w.write_all(frame)
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

/// pcapng writer: one section, any number of interfaces with their own link types and
/// timestamp resolutions (`tsresol` as in the `if_tsresol` option: 6 = µs, 9 = ns).
pub struct PcapNgWriter<W: Write> {
    w: W,
    /// Per interface: units per second.
    ifaces: Vec<u64>,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

impl<W: Write> PcapNgWriter<W> {
    pub fn new(mut w: W) -> io::Result<Self> {
        // Section Header Block
        w.write_all(&0x0a0d_0d0au32.to_le_bytes())?;
        w.write_all(&28u32.to_le_bytes())?;
        w.write_all(&0x1a2b_3c4du32.to_le_bytes())?;
        w.write_all(&1u16.to_le_bytes())?;
        w.write_all(&0u16.to_le_bytes())?;
        w.write_all(&(-1i64).to_le_bytes())?;
        w.write_all(&28u32.to_le_bytes())?;
        Ok(PcapNgWriter {
            w,
            ifaces: Vec::new(),
        })
    }

    /// Adds an interface; returns its id.
    pub fn add_interface(&mut self, linktype: u16, tsresol: u8) -> io::Result<u32> {
        // IDB with an if_tsresol option and the end-of-options marker
        let len = 20u32 + 8 + 4;
        self.w.write_all(&1u32.to_le_bytes())?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w.write_all(&linktype.to_le_bytes())?;
        self.w.write_all(&0u16.to_le_bytes())?;
        self.w.write_all(&262_144u32.to_le_bytes())?;
        self.w.write_all(&9u16.to_le_bytes())?;
        self.w.write_all(&1u16.to_le_bytes())?;
        self.w.write_all(&[tsresol, 0, 0, 0])?;
        self.w.write_all(&[0, 0, 0, 0])?;
        self.w.write_all(&len.to_le_bytes())?;
        let units = if tsresol & 0x80 != 0 {
            1u64 << (tsresol & 0x7f).min(63)
        } else {
            10u64.pow(tsresol.min(19) as u32)
        };
        self.ifaces.push(units);
        Ok(self.ifaces.len() as u32 - 1)
    }

    /// Writes one frame on interface `iface` as an Enhanced Packet Block.
    pub fn write_packet(&mut self, iface: u32, ts: Ts, frame: &[u8]) -> io::Result<()> {
        let units = *self
            .ifaces
            .get(iface as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unknown interface"))?;
        let t = (ts.0.max(0) as u128 * units as u128 / 1_000_000) as u64;
        let pad = pad4(frame.len());
        let len = (32 + frame.len() + pad) as u32;
        self.w.write_all(&6u32.to_le_bytes())?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w.write_all(&iface.to_le_bytes())?;
        self.w.write_all(&((t >> 32) as u32).to_le_bytes())?;
        self.w.write_all(&(t as u32).to_le_bytes())?;
        self.w.write_all(&(frame.len() as u32).to_le_bytes())?;
        self.w.write_all(&(frame.len() as u32).to_le_bytes())?;
        self.w.write_all(frame)?;
        self.w.write_all(&[0u8; 3][..pad])?;
        self.w.write_all(&len.to_le_bytes())
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn pseudo_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let mut acc = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum16(&s.octets(), acc);
            acc = sum16(&d.octets(), acc);
        }
        (s, d) => {
            acc = sum16(&v6(s), acc);
            acc = sum16(&v6(d), acc);
        }
    }
    acc + proto as u32 + len as u32
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// An IP header (v4 or v6 by the addresses) around `l4` with protocol `proto`.
/// For IPv4, `ip_id` is the identification field.
pub fn ip_packet(src: IpAddr, dst: IpAddr, proto: u8, ip_id: u16, l4: &[u8], out: &mut Vec<u8>) {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let start = out.len();
            let total = (20 + l4.len()) as u16;
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&ip_id.to_be_bytes());
            out.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let c = fold(sum16(&out[start..start + 20], 0));
            out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
        }
        (s, d) => {
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            out.extend_from_slice(&[proto, 64]);
            out.extend_from_slice(&v6(s));
            out.extend_from_slice(&v6(d));
        }
    }
    out.extend_from_slice(l4);
}

/// A UDP datagram (header + payload) with its checksum.
pub fn udp_segment(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut u = Vec::with_capacity(len);
    u.extend_from_slice(&src.port().to_be_bytes());
    u.extend_from_slice(&dst.port().to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let mut c = fold(sum16(&u, pseudo_sum(src.ip(), dst.ip(), 17, len)));
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// A TCP segment (20-byte header, no options) with its checksum.
pub fn tcp_segment(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&src.port().to_be_bytes());
    t.extend_from_slice(&dst.port().to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags]);
    t.extend_from_slice(&65535u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(payload);
    let c = fold(sum16(&t, pseudo_sum(src.ip(), dst.ip(), 6, t.len())));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// Prepends an Ethernet header (fixed MACs) for an IP packet.
pub fn ethernet(ip: &[u8], vlan: Option<u16>) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + ip.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1]);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&(v & 0x0fff).to_be_bytes());
    }
    let et: u16 = if ip.first().map(|b| b >> 4) == Some(6) {
        0x86dd
    } else {
        0x0800
    };
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// Ethernet + IP + UDP around a DNS message.
pub fn ethernet_udp(src: SocketAddr, dst: SocketAddr, dns: &[u8]) -> Vec<u8> {
    let mut ip = Vec::with_capacity(48 + dns.len());
    ip_packet(
        src.ip(),
        dst.ip(),
        17,
        1,
        &udp_segment(src, dst, dns),
        &mut ip,
    );
    ethernet(&ip, None)
}

/// Ethernet + IP + TCP around `payload` (for DNS over TCP, include the 2-byte length prefix).
pub fn ethernet_tcp(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut ip = Vec::with_capacity(60 + payload.len());
    ip_packet(
        src.ip(),
        dst.ip(),
        6,
        1,
        &tcp_segment(src, dst, seq, 0, flags, payload),
        &mut ip,
    );
    ethernet(&ip, None)
}

/// A DNS message with its TCP length prefix.
pub fn tcp_framed(dns: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + dns.len());
    v.extend_from_slice(&(dns.len() as u16).to_be_bytes());
    v.extend_from_slice(dns);
    v
}

/// Splits an IPv4 packet (no options) into fragments whose payloads are at most `max_payload`
/// bytes (rounded down to a multiple of 8).
pub fn fragment_ipv4(packet: &[u8], max_payload: usize) -> Vec<Vec<u8>> {
    let step = (max_payload / 8).max(1) * 8;
    let ihl = ((packet[0] & 0xf) as usize) * 4;
    let payload = &packet[ihl..];
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + step).min(payload.len());
        let mut f = packet[..ihl].to_vec();
        let more = end < payload.len();
        f[2..4].copy_from_slice(&((ihl + end - off) as u16).to_be_bytes());
        let fo = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
        f[6..8].copy_from_slice(&fo.to_be_bytes());
        f[10..12].copy_from_slice(&[0, 0]);
        let c = fold(sum16(&f[..ihl], 0));
        f[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&payload[off..end]);
        out.push(f);
        off = end;
    }
    out
}

/// Splits an IPv6 packet (fixed header only, no extension headers) into fragments with a
/// Fragment extension header.
pub fn fragment_ipv6(packet: &[u8], max_payload: usize, id: u32) -> Vec<Vec<u8>> {
    let step = (max_payload / 8).max(1) * 8;
    let next = packet[6];
    let payload = &packet[40..];
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + step).min(payload.len());
        let more = end < payload.len();
        let mut f = packet[..40].to_vec();
        f[6] = 44;
        f[4..6].copy_from_slice(&((8 + end - off) as u16).to_be_bytes());
        f.extend_from_slice(&[next, 0]);
        f.extend_from_slice(&((off as u16) | u16::from(more)).to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&payload[off..end]);
        out.push(f);
        off = end;
    }
    out
}
