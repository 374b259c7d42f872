//! Device identity: who is behind a client address.
//!
//! Three sources, most specific first: the inventory CSV (`ip,name,group`), DHCP leases
//! (dnsmasq's `expiry mac ip hostname clientid` lines or ISC dhcpd `lease ... { ... }` blocks,
//! which give names but no groups), and CIDR groups from the config (`servers = 10.0.1.0/24`).
//! Parsers are pure functions over text; malformed lines are counted and skipped, never fatal.

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
        if let Some(g) = group.map(str::trim).filter(|s| !s.is_empty()) {
            e.group = Some(sanitize(g));
        }
    }
    /// Adds a CIDR group; lookups prefer the longest prefix.
    pub fn add_group(&mut self, cidr: Cidr, group: &str) {
        self.groups.push((cidr, sanitize(group)));
        self.groups
            .sort_by_key(|(c, _)| std::cmp::Reverse(c.prefix_len()));
    }
    /// Loads `ip,name,group` CSV text (header line optional, `#` comments allowed).
    /// Returns the number of hosts added.
    pub fn load_csv(&mut self, text: &str) -> usize {
        let mut n = 0;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut f = line.split(',').map(|s| s.trim().trim_matches('"'));
            let ip = f.next().unwrap_or("");
            match ip.parse::<IpAddr>() {
                Ok(ip) => {
                    self.add_host(ip, f.next(), f.next());
                    n += 1;
                }
                Err(_) if n == 0 && ip.eq_ignore_ascii_case("ip") => {} // header
                Err(_) => self.rejected += 1,
            }
        }
        n
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
    /// Name and group for an address: host entry first, group from the host entry or the most
    /// specific CIDR group.
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
