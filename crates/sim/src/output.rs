//! Writing a simulation: events as JSON lines or Zeek dns.log (pcap via the project's pcap
//! writer, when available), and the operator's files: `inventory.csv`, `dnsight.toml`,
//! `intel.txt`, plus `labels.json` for the scorer.

use crate::world::INTERNAL_SUFFIX;
use crate::Simulation;
use dnsight_model::{rcode_to_str, rtype_to_str, DnsEvent, Flags, RData, Transport};
use std::io::Write;

/// Output formats of `dnsight simulate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Zeek,
    Pcap,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "json" => Ok(Format::Jsonl),
            "zeek" => Ok(Format::Zeek),
            "pcap" => Ok(Format::Pcap),
            o => Err(format!(
                "unknown format {o:?} (expected jsonl, zeek or pcap)"
            )),
        }
    }
}

impl Format {
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Jsonl => "events.jsonl",
            Format::Zeek => "dns.log",
            Format::Pcap => "dns.pcap",
        }
    }
}

/// Zeek's escaping for a field (our names are printable ASCII already; separators are not).
fn zeek_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            ',' => out.push_str("\\x2c"),
            '\t' => out.push_str("\\x09"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || (c as u32) >= 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32 & 0xff))
            }
            c => out.push(c),
        }
    }
}

pub const ZEEK_FIELDS: &str = "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\tqclass\tqclass_name\tqtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected";
pub const ZEEK_TYPES: &str = "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount\tinterval\tstring\tcount\tstring\tcount\tstring\tcount\tstring\tbool\tbool\tbool\tbool\tcount\tvector[string]\tvector[interval]\tbool";

/// The Zeek dns.log header (`open` is the `#open` timestamp text).
pub fn zeek_header(open: &str) -> String {
    format!("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n#open\t{open}\n{ZEEK_FIELDS}\n{ZEEK_TYPES}\n")
}

/// One dns.log line (without newline). `n` makes the connection uid unique.
pub fn zeek_line(e: &DnsEvent, n: u64) -> String {
    let mut l = String::with_capacity(200);
    let secs = e.ts.0.div_euclid(1_000_000);
    let us = e.ts.0.rem_euclid(1_000_000);
    l.push_str(&format!("{secs}.{us:06}\t"));
    // uid: "C" + 17 base62 characters
    const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut x = crate::rng::mix(n, 0x2ee1);
    l.push('C');
    for i in 0..17 {
        if i == 10 {
            x = crate::rng::mix(x, n);
        }
        l.push(B62[(x % 62) as usize] as char);
        x /= 62;
    }
    let proto = match e.transport {
        Transport::Tcp | Transport::Dot => "tcp",
        _ => "udp",
    };
    l.push_str(&format!(
        "\t{}\t{}\t{}\t{}\t{proto}\t{}\t",
        e.client, e.client_port, e.server, e.server_port, e.id
    ));
    match e.rtt_us {
        Some(r) => l.push_str(&format!("{:.6}", r as f64 / 1e6)),
        None => l.push('-'),
    }
    l.push('\t');
    zeek_escape(e.qname.as_str(), &mut l);
    let qclass = if e.qclass == 1 {
        "C_INTERNET".to_string()
    } else {
        e.qclass.to_string()
    };
    l.push_str(&format!(
        "\t{}\t{qclass}\t{}\t{}\t",
        e.qclass,
        e.qtype,
        rtype_to_str(e.qtype)
    ));
    match e.rcode {
        Some(r) => l.push_str(&format!("{r}\t{}\t", rcode_to_str(r))),
        None => l.push_str("-\t-\t"),
    }
    let b = |f: u16| if e.flags.has(f) { "T" } else { "F" };
    l.push_str(&format!(
        "{}\t{}\t{}\t{}\t0\t",
        b(Flags::AA),
        b(Flags::TC),
        b(Flags::RD),
        b(Flags::RA)
    ));
    if e.answers.is_empty() {
        l.push_str("-\t-");
    } else {
        for (i, a) in e.answers.iter().enumerate() {
            if i > 0 {
                l.push(',');
            }
            match &a.data {
                RData::Addr(ip) => l.push_str(&ip.to_string()),
                RData::Name(n) => zeek_escape(n.as_str(), &mut l),
                RData::Text(t) if a.rtype == 16 => {
                    l.push_str(&format!("TXT {} ", t.len()));
                    zeek_escape(t, &mut l);
                }
                RData::Text(t) => zeek_escape(t, &mut l),
            }
        }
        l.push('\t');
        for (i, a) in e.answers.iter().enumerate() {
            if i > 0 {
                l.push(',');
            }
            l.push_str(&format!("{}.000000", a.ttl));
        }
    }
    l.push_str("\tF");
    l
}

/// `inventory.csv`: `ip,name,group` for every inventoried device.
pub fn inventory_csv(sim: &Simulation) -> String {
    let mut s = String::from("ip,name,group\n");
    for d in sim.org.devices.iter().filter(|d| d.inventory) {
        s.push_str(&format!("{},{},{}\n", d.ip, d.name, d.group.as_str()));
    }
    s
}

/// `intel.txt`: a plain feed, one domain or address a line, with `#` comments.
pub fn intel_txt(sim: &Simulation) -> String {
    let mut s = String::from(
        "# attacker infrastructure feed (simulated): one domain or IP address per line\n",
    );
    for i in &sim.plan.intel {
        s.push_str(i);
        s.push('\n');
    }
    s
}

/// `dnsight.toml`: what a real operator would configure (the engine's config sections): the
/// learning cut-off, internal suffixes, CIDR groups, policy rules, GeoIP and the intel feed.
pub fn config_toml(sim: &Simulation) -> String {
    let geo = match &sim.cfg.geoip {
        Some(p) => {
            let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            format!("databases = [{:?}]", p.display().to_string())
        }
        None => {
            "# databases = [\"/path/to/country.mmdb\"]   # simulated without a database".to_string()
        }
    };
    format!(
        r#"# dnsight configuration for the simulated organisation (written by `dnsight simulate`).
# Relative paths are relative to this file.

[detection]
learn_until = "{learn}"   # the simulated learning period (normal traffic only) ends here
timezone = "UTC"
internal_suffixes = ["{INTERNAL_SUFFIX}"]
doh_bypass = true
doh_names = ["use-application-dns.net", "dns.google", "cloudflare-dns.com", "mozilla.cloudflare-dns.com", "dns.quad9.net"]

[[detection.policy]]
group = "servers"
deny = ["deb.debian.org", "security.debian.org", "pypi.org", "files.pythonhosted.org", "registry.npmjs.org"]
reason = "servers must use mirror.{INTERNAL_SUFFIX} and pypi-mirror.{INTERNAL_SUFFIX}, not public repositories"

[[detection.policy]]
group = "db"
allow_only = ["{INTERNAL_SUFFIX}", "10.in-addr.arpa"]
reason = "database hosts may only reach internal services"

[inventory]
file = "inventory.csv"

[inventory.groups]
workstations = ["10.1.0.0/16", "fd00:c0:1::/48"]
servers = ["10.2.0.0/24"]
db = ["10.3.0.0/24"]
iot = ["10.4.0.0/16"]

[geoip]
{geo}

[[intel]]
name = "sim-feed"
file = "intel.txt"
format = "auto"
"#,
        learn = sim.labels.learn_until
    )
}

/// Writes all operator files and labels into `dir`.
pub fn write_operator_files(sim: &Simulation, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(dir.join("inventory.csv"), inventory_csv(sim))?;
    std::fs::write(dir.join("intel.txt"), intel_txt(sim))?;
    std::fs::write(dir.join("dnsight.toml"), config_toml(sim))?;
    let mut f = std::fs::File::create(dir.join("labels.json"))?;
    serde_json::to_writer_pretty(&mut f, &sim.labels).map_err(std::io::Error::other)?;
    f.write_all(b"\n")?;
    Ok(())
}

/// pcap output: each event becomes a query packet (client to resolver) at its time and a
/// response packet at time + rtt, Ethernet/IPv4-or-IPv6/UDP, written with the project's pcap
/// writer and wire encoder. Answers the encoder cannot express (e.g. HTTPS parameters in text
/// form) are left out of the response; events it cannot encode at all are counted in `skipped`.
pub struct PcapOut<'a, W: Write> {
    w: dnsight_ingest::pcap_writer::PcapWriter<&'a mut W>,
    buf: Vec<u8>,
    pub skipped: u64,
}

impl<'a, W: Write> PcapOut<'a, W> {
    pub fn new(w: &'a mut W) -> std::io::Result<Self> {
        Ok(PcapOut {
            w: dnsight_ingest::pcap_writer::PcapWriter::new(w, 1)?,
            buf: Vec::with_capacity(1500),
            skipped: 0,
        })
    }

    pub fn write(&mut self, e: &DnsEvent) -> std::io::Result<()> {
        use dnsight_model::wire::{encode_query, encode_response, Question};
        use std::net::SocketAddr;
        let q = Question {
            name: e.qname.clone(),
            qtype: e.qtype,
            qclass: e.qclass,
        };
        let client = SocketAddr::new(e.client, e.client_port);
        let server = SocketAddr::new(e.server, 53);
        if client.is_ipv4() != server.is_ipv4() {
            self.skipped += 1;
            return Ok(());
        }
        self.buf.clear();
        if encode_query(&mut self.buf, e.id, Flags(Flags::RD), &q).is_err() {
            self.skipped += 1;
            return Ok(());
        }
        let frame = dnsight_ingest::pcap_writer::ethernet_udp(client, server, &self.buf);
        self.w.write_packet(e.ts, &frame)?;
        let Some(rcode) = e.rcode else { return Ok(()) };
        self.buf.clear();
        if encode_response(&mut self.buf, e.id, e.flags, rcode, &q, &e.answers).is_err() {
            let kept: Vec<_> = e
                .answers
                .iter()
                .filter(|a| !matches!(a.data, RData::Text(_)) || a.rtype == 16 || a.rtype == 15)
                .cloned()
                .collect();
            self.buf.clear();
            if encode_response(&mut self.buf, e.id, e.flags, rcode, &q, &kept).is_err() {
                self.buf.clear();
                if encode_response(&mut self.buf, e.id, e.flags, rcode, &q, &[]).is_err() {
                    self.skipped += 1;
                    return Ok(());
                }
            }
        }
        let frame = dnsight_ingest::pcap_writer::ethernet_udp(server, client, &self.buf);
        let rtt = e.rtt_us.unwrap_or(500) as i64;
        self.w.write_packet(dnsight_model::Ts(e.ts.0 + rtt), &frame)
    }
}
