//! Writing a simulation: events as JSON lines or Zeek dns.log (pcap via the project's pcap
//! writer, when available), and the operator's files: `inventory.csv`, `dnsight.toml`,
//! `intel.txt`, plus `labels.json` for the scorer.

use crate::org::Group;
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

/// `dnsight.toml`: groups, internal suffixes and policy a real operator would configure.
pub fn config_toml(sim: &Simulation) -> String {
    let _ = Group::Server;
    format!(
        r#"# dnsight configuration for the simulated organisation (written by `dnsight simulate`).

[site]
timezone = "UTC"
internal_suffixes = ["{INTERNAL_SUFFIX}", "in-addr.arpa"]
internal_networks = ["10.0.0.0/8", "fd00::/8"]

[inventory]
file = "inventory.csv"

[intel]
files = ["intel.txt"]

[baseline]
learn_days = {learn}

# Servers must use the local mirror, never the public package repositories.
[[policy.deny]]
group = "servers"
destinations = ["deb.debian.org", "security.debian.org", "pypi.org", "files.pythonhosted.org", "registry.npmjs.org"]
reason = "servers must use mirror.{INTERNAL_SUFFIX} / pypi-mirror.{INTERNAL_SUFFIX}"

# Databases may only reach internal names.
[[policy.allow_only]]
group = "databases"
destinations = ["{INTERNAL_SUFFIX}", "in-addr.arpa"]
reason = "databases have no business on the Internet"

# Resolver bypass via DNS over HTTPS.
[policy.doh]
names = ["use-application-dns.net", "dns.google", "cloudflare-dns.com", "mozilla.cloudflare-dns.com", "dns.quad9.net", "doh.opendns.com"]
"#,
        learn = sim.cfg.learn_days
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

/// pcap output: not available until the project's wire encoder and pcap writer land.
pub struct PcapOut<'a, W: Write> {
    _w: &'a mut W,
}

impl<'a, W: Write> PcapOut<'a, W> {
    pub fn new(w: &'a mut W) -> Self {
        PcapOut { _w: w }
    }
    pub fn write(&mut self, _e: &DnsEvent) -> std::io::Result<()> {
        Err(std::io::Error::other("pcap output is not available yet (needs the DNS wire encoder); use --format jsonl or zeek"))
    }
}
