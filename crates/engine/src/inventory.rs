//! Device identity: who is behind a client address.
//!
//! Three sources: the inventory CSV (`ip,name,group`), DHCP leases (dnsmasq's
//! `expiry mac ip hostname clientid` lines or ISC dhcpd `lease ... { ... }` blocks, which give
//! names but no groups), and CIDR groups from the config (`servers = 10.0.1.0/24`).
//! Parsers are pure functions over text; malformed lines are counted and skipped, never fatal.
//!
//! A device's group is decided by one rule, the same one the resolver's client groups use:
//! the longest matching prefix wins. A host entry's group is a `/32` (or `/128`), so it wins
//! over every CIDR group; among CIDR groups the most specific block containing the address
//! decides. Group names go through [`group_name`] wherever they come from, so the same text
//! names the same group in the engine, the resolver and alerts.

use crate::net::{canonical, Cidr};
use compact_str::CompactString;
use std::net::IpAddr;

/// What we know about one address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: Option<CompactString>,
    pub group: Option<CompactString>,
}

/// Inventory: exact addresses from CSV/leases plus CIDR groups.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    hosts: foldhash::HashMap<IpAddr, DeviceInfo>,
    /// (network, group name), most specific first.
    groups: Vec<(Cidr, CompactString)>,
    /// Lines rejected by the parsers, for the report.
    pub rejected: u64,
}

impl Inventory {
    pub fn new() -> Inventory {
        Inventory::default()
    }
    pub fn len(&self) -> usize {
        self.hosts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.groups.is_empty()
    }
    /// Adds or overrides one host. Empty name/group strings mean "unknown".
    pub fn add_host(&mut self, ip: IpAddr, name: Option<&str>, group: Option<&str>) {
        let e = self.hosts.entry(canonical(ip)).or_default();
        if let Some(n) = name.map(str::trim).filter(|s| !s.is_empty()) {
            e.name = Some(sanitize(n));
        }
        if let Some(g) = group.and_then(group_name) {
            e.group = Some(g);
        }
    }
    /// Adds a CIDR group (an empty name is ignored); lookups prefer the longest prefix, and
    /// among blocks of one length the one added first.
    pub fn add_group(&mut self, cidr: Cidr, group: &str) {
        let Some(g) = group_name(group) else { return };
        let at = self
            .groups
            .partition_point(|(c, _)| c.prefix_len() >= cidr.prefix_len());
        self.groups.insert(at, (cidr, g));
    }
    /// Loads `ip,name,group` CSV text (header line optional, `#` comments allowed; see
    /// [`parse_csv`]). Returns the number of hosts added.
    pub fn load_csv(&mut self, text: &str) -> usize {
        let (rows, rejected) = parse_csv(text);
        self.rejected += rejected;
        for r in &rows {
            self.add_host(r.ip, r.name, r.group);
        }
        rows.len()
    }
    /// Loads a DHCP leases file: dnsmasq (`1700000000 aa:bb:.. 10.0.0.5 host *`) or ISC dhcpd
    /// (`lease 10.0.0.5 { client-hostname "host"; }`). Only names are taken. Returns hosts added.
    pub fn load_dhcp_leases(&mut self, text: &str) -> usize {
        let mut n = 0;
        if text.contains("lease ") && text.contains('{') {
            // ISC format
            let mut cur: Option<IpAddr> = None;
            for line in text.lines() {
                let l = line.trim();
                if let Some(rest) = l.strip_prefix("lease ") {
                    cur = rest.trim_end_matches('{').trim().parse().ok();
                    if cur.is_none() {
                        self.rejected += 1;
                    }
                } else if let Some(rest) = l.strip_prefix("client-hostname ") {
                    if let Some(ip) = cur {
                        let name = rest.trim_end_matches(';').trim().trim_matches('"');
                        self.add_host(ip, Some(name), None);
                        n += 1;
                    }
                } else if l.starts_with('}') {
                    cur = None;
                }
            }
            return n;
        }
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.is_empty() || f[0] == "duid" {
                continue;
            }
            if f.len() < 4 {
                self.rejected += 1;
                continue;
            }
            match f[2].parse::<IpAddr>() {
                Ok(ip) if f[3] != "*" => {
                    self.add_host(ip, Some(f[3]), None);
                    n += 1;
                }
                Ok(_) => {}
                Err(_) => self.rejected += 1,
            }
        }
        n
    }
    /// Name and group for an address: the name from its host entry; the group of the longest
    /// matching prefix (the host entry's group, a `/32` or `/128`, else the most specific CIDR
    /// group containing the address).
    pub fn lookup(&self, ip: IpAddr) -> DeviceInfo {
        let ip = canonical(ip);
        let mut info = self.hosts.get(&ip).cloned().unwrap_or_default();
        if info.group.is_none() {
            info.group = self
                .groups
                .iter()
                .find(|(c, _)| c.contains(ip))
                .map(|(_, g)| g.clone());
        }
        info
    }
}

/// One data line of an inventory CSV: `ip,name,group`, fields trimmed and unquoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvRow<'a> {
    /// 1-based line number in the text.
    pub line: usize,
    pub ip: IpAddr,
    /// Empty or missing fields are `None`.
    pub name: Option<&'a str>,
    pub group: Option<&'a str>,
}

/// Parses inventory CSV text (`ip,name,group`; a header line before the first row, blank lines
/// and `#` comments are skipped). Returns the rows in order and the number of lines rejected
/// (no IP address in the first field). The one parser for the engine's inventory and for
/// whoever needs the CSV's per-device groups (the resolver's client groups).
pub fn parse_csv(text: &str) -> (Vec<CsvRow<'_>>, u64) {
    let mut rows = Vec::new();
    let mut rejected = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split(',').map(|s| s.trim().trim_matches('"').trim());
        let ip = f.next().unwrap_or("");
        let mut field = || f.next().filter(|s| !s.is_empty());
        match ip.parse::<IpAddr>() {
            Ok(ip) => rows.push(CsvRow {
                line: i + 1,
                ip,
                name: field(),
                group: field(),
            }),
            Err(_) if rows.is_empty() && ip.eq_ignore_ascii_case("ip") => {} // header
            Err(_) => rejected += 1,
        }
    }
    (rows, rejected)
}

/// The canonical form of a group name, wherever it is written (CSV, `[inventory] groups`, the
/// resolver's blocking groups): trimmed, escaped to printable ASCII, at most 128 bytes.
/// `None` for an empty name.
pub fn group_name(s: &str) -> Option<CompactString> {
    let s = s.trim();
    (!s.is_empty()).then(|| sanitize(s))
}

/// Names and groups from files are shown in reports: keep them printable ASCII.
fn sanitize(s: &str) -> CompactString {
    let mut out = dnsight_model::escape_text(s);
    out.truncate(out.len().min(128));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn csv_leases_and_groups() {
        let mut inv = Inventory::new();
        let n = inv.load_csv(
            "ip,name,group\n10.0.0.5,alice-laptop,workstations\n# c\nbogus,x,y\n10.0.1.10,db1,db\n",
        );
        assert_eq!(n, 2);
        assert_eq!(inv.rejected, 1);
        inv.add_group(Cidr::parse("10.0.1.0/24").unwrap(), "servers");
        inv.add_group(Cidr::parse("10.0.0.0/8").unwrap(), "office");
        let d = inv.lookup("10.0.0.5".parse().unwrap());
        assert_eq!(d.name.as_deref(), Some("alice-laptop"));
        assert_eq!(d.group.as_deref(), Some("workstations"));
        assert_eq!(
            inv.lookup("10.0.1.10".parse().unwrap()).group.as_deref(),
            Some("db")
        );
        assert_eq!(
            inv.lookup("10.0.1.11".parse().unwrap()).group.as_deref(),
            Some("servers")
        );
        assert_eq!(
            inv.lookup("10.9.1.11".parse().unwrap()).group.as_deref(),
            Some("office")
        );
        assert_eq!(
            inv.lookup("192.168.0.1".parse().unwrap()),
            DeviceInfo::default()
        );

        let n = inv.load_dhcp_leases("1764383249 aa:bb:cc:dd:ee:ff 10.0.0.7 printer-2 01:aa\n1764383249 aa:bb 10.0.0.8 * *\nshort line\n");
        assert_eq!(n, 1);
        assert_eq!(
            inv.lookup("10.0.0.7".parse().unwrap()).name.as_deref(),
            Some("printer-2")
        );
        let n = inv.load_dhcp_leases("lease 10.0.0.9 {\n  starts 4 2026/11/26 10:00:00;\n  client-hostname \"bob\\\"<pc>\";\n}\n");
        assert_eq!(n, 1);
        let bob = inv.lookup("10.0.0.9".parse().unwrap()).name.unwrap();
        assert!(bob.starts_with("bob"), "{bob}");
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut inv = Inventory::new();
        // narrow first, then wide: the order blocks are added in does not matter
        inv.add_group(Cidr::parse("10.0.1.77").unwrap(), "kids");
        inv.add_group(Cidr::parse("10.0.1.0/24").unwrap(), "servers");
        inv.add_group(Cidr::parse("10.0.0.0/8").unwrap(), "office");
        inv.add_group(Cidr::parse("10.0.1.0/24").unwrap(), "lab");
        inv.add_group(Cidr::parse("10.1.0.0/16").unwrap(), " ");
        inv.load_csv("10.0.1.10, db1 , \" db \"\n10.0.1.11,nogroup,\n");
        let g = |s: &str| inv.lookup(ip(s)).group;
        assert_eq!(g("10.0.1.77").as_deref(), Some("kids"));
        assert_eq!(g("10.0.1.5").as_deref(), Some("servers")); // equal blocks: the first
        assert_eq!(g("10.0.1.10").as_deref(), Some("db")); // a host entry is a /32
        assert_eq!(g("::ffff:10.0.1.10").as_deref(), Some("db"));
        assert_eq!(g("10.0.1.11").as_deref(), Some("servers")); // no group: its block
        assert_eq!(g("10.1.0.1").as_deref(), Some("office")); // empty names are ignored
        assert_eq!(g("11.0.0.1"), None);
    }

    #[test]
    fn csv_rows_carry_line_numbers_and_canonical_groups() {
        let (rows, rejected) =
            parse_csv("# inventory\nIP,name,group\n\n10.0.0.5,\"a\",\" ws \"\nnope,x,y\n::1,,\n");
        assert_eq!(rejected, 1);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].line, rows[0].name, rows[0].group),
            (4, Some("a"), Some("ws"))
        );
        assert_eq!((rows[1].line, rows[1].name, rows[1].group), (6, None, None));
        assert_eq!(group_name("  kids ").as_deref(), Some("kids"));
        assert_eq!(group_name(" \t"), None);
        assert!(group_name("a\u{7}b")
            .unwrap()
            .bytes()
            .all(|c| (0x20..0x7f).contains(&c)));
    }

    proptest::proptest! {
        #[test]
        fn any_inventory_or_leases_text_loads_without_panic(text in "(?s).{0,400}") {
            let mut inv = Inventory::new();
            let a = inv.load_csv(&text);
            let b = inv.load_dhcp_leases(&text);
            proptest::prop_assert!(a + b <= 2 * text.lines().count() + 2);
            let d = inv.lookup("10.0.0.1".parse().unwrap());
            proptest::prop_assert!(d.name.iter().all(|n| n.bytes().all(|c| (0x20..0x7f).contains(&c))));
        }
    }
}
