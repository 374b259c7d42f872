//! The TOML config file: raw serde structs (deny_unknown_fields) per section, validated into
//! built objects. Only this crate knows the file format.
//!
//! Sections: `[resolver]`/`[upstream]`/`[policy]`... in `resolver.rs`; detection, inventory,
//! intel, baselines in `engine.rs`.
//!
//! Groups are one table ([`GroupTable`]) shared by both: a group is a set of devices, defined
//! by `[inventory] groups` (CIDR blocks), the inventory CSV's group column (single addresses)
//! and `[[resolver.blocking.group]]` `clients` (CIDR blocks), in any mix. The engine's inventory
//! (alert groups, `[[detection.policy]]` groups, acknowledgements and blocks scoped to a group)
//! and the resolver's client groups (lists, block answer, blocks scoped to a group) are both
//! built from it, and both decide a device's group by the longest matching prefix. A block
//! given to two different groups is an error naming both places.
pub mod api;
pub mod bus;
pub mod engine;
pub mod notify;
pub mod querylog;
pub mod resolver;
pub mod store;

/// Every top-level section some part of dnsight reads (a name outside these is a typo).
pub const ALL_SECTIONS: &[&[&str]] = &[
    resolver::SECTIONS,
    engine::SECTIONS,
    api::SECTIONS,
    notify::SECTIONS,
    querylog::SECTIONS,
    store::SECTIONS,
    bus::SECTIONS,
];

use anyhow::{anyhow, bail};
use dnsight_model::Cidr;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One block of a group and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBlock {
    /// The block; a single address is a `/32` or `/128` (IPv4-mapped IPv6 as IPv4).
    pub cidr: Cidr,
    /// The group's canonical name ([`dnsight_engine::inventory::group_name`]).
    pub group: String,
    /// Where it was defined, for errors (e.g. `x.toml: inventory.groups.servers`).
    pub origin: String,
    /// From the inventory CSV (the engine's inventory holds those as host entries).
    pub from_csv: bool,
}

/// Every group block of a config, each block in one group only.
#[derive(Debug, Clone, Default)]
pub struct GroupTable {
    /// Group names in the order first defined: `[[resolver.blocking.group]]` in file order,
    /// then `[inventory] groups` by name, then the CSV's groups in file order.
    pub names: Vec<String>,
    pub blocks: Vec<GroupBlock>,
    by_cidr: HashMap<Cidr, usize>,
}

/// The inventory CSV a config names (`[inventory] file` or `--inventory`), read.
#[derive(Debug, Clone)]
pub struct InventoryCsv {
    pub path: PathBuf,
    pub text: String,
}

impl InventoryCsv {
    /// Reads `[inventory] file` (relative to `base_dir`), if set.
    pub fn read(inv: &engine::InventoryRaw, base_dir: &Path) -> anyhow::Result<Option<Self>> {
        let Some(p) = &inv.file else { return Ok(None) };
        let path = if p.is_absolute() {
            p.clone()
        } else {
            base_dir.join(p)
        };
        let b = std::fs::read(&path).map_err(|e| {
            anyhow!(
                "cannot read inventory (inventory.file) {}: {e}",
                path.display()
            )
        })?;
        Ok(Some(InventoryCsv {
            text: String::from_utf8_lossy(&b).into_owned(),
            path,
        }))
    }
}

impl GroupTable {
    /// Builds the table from the config's group definitions: `blocking` (the
    /// `[[resolver.blocking.group]]` entries), `inventory.groups` and the CSV's group column.
    /// `f` is the config file's name for messages. Errors: a bad block, an empty or repeated
    /// blocking group name, and a block (or CSV address) given to two different groups.
    pub fn build(
        inventory: &engine::InventoryRaw,
        csv: Option<&InventoryCsv>,
        blocking: &[resolver::GroupRaw],
        f: &str,
    ) -> anyhow::Result<GroupTable> {
        let mut t = GroupTable::default();
        let mut seen: Vec<String> = Vec::new();
        for g in blocking {
            let key = format!("{f}: [[resolver.blocking.group]] {:?}", g.name);
            let name = dnsight_engine::inventory::group_name(&g.name).ok_or_else(|| {
                anyhow!("{key}: `name` is empty; give the group a name, e.g. name = \"kids\"")
            })?;
            if seen.iter().any(|s| s == name.as_str()) {
                bail!("{key}: a second group of this name; merge their `clients` into one [[resolver.blocking.group]]");
            }
            seen.push(name.to_string());
            t.name(&name);
            for c in &g.clients {
                let cidr = Cidr::parse(c).map_err(|e| anyhow!("{key} clients: {e}"))?;
                t.add(cidr, &name, format!("{key} clients"), false)?;
            }
        }
        for (g, cidrs) in &inventory.groups {
            let key = format!("{f}: inventory.groups.{g}");
            let name = dnsight_engine::inventory::group_name(g).ok_or_else(|| {
                anyhow!("{f}: inventory.groups: an empty group name; name it, e.g. servers = [\"10.0.1.0/24\"]")
            })?;
            t.name(&name);
            for c in cidrs {
                let cidr = Cidr::parse(c).map_err(|e| anyhow!("{key}: {e}"))?;
                t.add(cidr, &name, key.clone(), false)?;
            }
        }
        if let Some(csv) = csv {
            for row in dnsight_engine::inventory::parse_csv(&csv.text).0 {
                let Some(name) = row.group.and_then(dnsight_engine::inventory::group_name) else {
                    continue;
                };
                t.name(&name);
                let origin = format!("{} line {} (inventory.file)", csv.path.display(), row.line);
                t.add(Cidr::host(row.ip), &name, origin, true)?;
            }
        }
        Ok(t)
    }

    fn name(&mut self, name: &str) {
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_string());
        }
    }

    fn add(
        &mut self,
        cidr: Cidr,
        group: &str,
        origin: String,
        from_csv: bool,
    ) -> anyhow::Result<()> {
        let full = if cidr.addr().is_ipv4() { 32 } else { 128 };
        let cidr = if cidr.prefix_len() == full {
            Cidr::host(cidr.addr())
        } else {
            cidr
        };
        if let Some(&i) = self.by_cidr.get(&cidr) {
            let b = &self.blocks[i];
            if b.group != group {
                bail!(
                    "{cidr} is in two groups: {:?} ({}) and {group:?} ({origin}); groups are one table for the inventory and the resolver's blocking, so a block or address belongs to one group: remove it from one (devices that differ from their network take a more specific block, e.g. a single address)",
                    b.group,
                    b.origin
                );
            }
            return Ok(());
        }
        self.by_cidr.insert(cidr, self.blocks.len());
        self.blocks.push(GroupBlock {
            cidr,
            group: group.to_string(),
            origin,
            from_csv,
        });
        Ok(())
    }

    /// Every block of one group, in definition order.
    pub fn cidrs(&self, group: &str) -> Vec<Cidr> {
        self.blocks
            .iter()
            .filter(|b| b.group == group)
            .map(|b| b.cidr)
            .collect()
    }
}

/// A config file holding `text`, in a temporary directory (the sections' tests).
#[cfg(test)]
pub(crate) fn test_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.toml");
    std::fs::write(&p, text).unwrap();
    (d, p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    /// Writes `config` (and the files it names) into a new directory; returns the built engine
    /// config and resolver policy, or the first error of each side.
    fn both(
        config: &str,
        csv: &str,
    ) -> (
        anyhow::Result<dnsight_engine::EngineConfig>,
        anyhow::Result<dnsight_resolver::policy::Policy>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ads.txt"), "ads.example\n").unwrap();
        std::fs::write(dir.path().join("adult.txt"), "adult.example\n").unwrap();
        std::fs::write(dir.path().join("inv.csv"), csv).unwrap();
        let p = dir.path().join("dnsight.toml");
        std::fs::write(&p, config).unwrap();
        let eng =
            engine::parse_sections(config, &p).and_then(|s| engine::validate(s, &p, dir.path()));
        let res = resolver::parse_sections(config, &p)
            .and_then(|s| {
                resolver::validate(s, &p, dir.path(), &resolver::ServeOverrides::default())
            })
            .and_then(|s| s.resolver.policy.build().map_err(|e| anyhow!(e)));
        (eng, res, dir)
    }

    const LISTS: &str = "[[resolver.blocking.list]]\npath = \"ads.txt\"\nname = \"ads\"\n[[resolver.blocking.list]]\npath = \"adult.txt\"\nname = \"adult\"\n";

    #[test]
    fn inventory_and_blocking_groups_are_one_table() {
        let config = format!(
            "{LISTS}
[[resolver.blocking.group]]
name = \"kids\"                     # only here
clients = [\"10.9.0.0/16\", \"10.0.1.77\"]
lists = [\"ads\", \"adult\"]
answer = \"refused\"

[[resolver.blocking.group]]
name = \"servers\"                  # lists here, devices in [inventory]
lists = [\"adult\"]

[[resolver.blocking.group]]
name = \"default\"
lists = [\"ads\"]

[inventory]
file = \"inv.csv\"
[inventory.groups]
servers = [\"10.0.1.0/24\"]
office = [\"10.0.0.0/8\", \"fd00::/8\"]   # only here
"
        );
        let csv =
            "ip,name,group\n10.0.1.10,db1,db\n10.9.0.5,kid-tablet,\n10.0.2.7,printer,office\n";
        let (eng, res, _dir) = both(&config, csv);
        let (eng, res) = (eng.unwrap(), res.unwrap());
        for (ip, want) in [
            ("10.9.1.1", Some("kids")),       // blocking only, inside office's /8
            ("10.9.0.5", Some("kids")),       // a CSV host without a group: its block decides
            ("10.0.1.5", Some("servers")),    // inventory block, blocking lists
            ("10.0.1.77", Some("kids")),      // a blocking /32 inside servers' /24
            ("10.0.1.10", Some("db")),        // a CSV device inside servers' /24
            ("::ffff:10.0.1.10", Some("db")), // IPv4-mapped
            ("10.0.2.7", Some("office")),
            ("10.200.0.1", Some("office")), // inventory only
            ("fd00::1", Some("office")),
            ("192.168.1.1", None), // no group: the resolver's default group
            ("2001:db8::1", None),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let inv = eng.inventory.lookup(ip).group;
            let rg = &res.group_of(ip).name;
            assert_eq!(inv.as_deref(), want, "engine, {ip}");
            assert_eq!(rg, want.unwrap_or("default"), "resolver, {ip}");
        }
        // what each group blocks with
        let lists = |ip: &str| {
            let g = res.group_of(ip.parse().unwrap());
            let names: Vec<&str> = g
                .lists
                .iter()
                .map(|&i| res.lists[i].name.as_str())
                .collect();
            (names, g.answer.clone())
        };
        use dnsight_resolver::BlockAnswer::{NxDomain, Refused};
        assert_eq!(lists("10.9.1.1"), (vec!["ads", "adult"], Refused));
        assert_eq!(lists("10.0.1.5"), (vec!["adult"], NxDomain));
        // only in the inventory: as the default group
        assert_eq!(lists("10.0.1.10"), (vec!["ads"], NxDomain));
        assert_eq!(lists("10.200.0.1"), (vec!["ads"], NxDomain));
        assert_eq!(lists("192.168.1.1"), (vec!["ads"], NxDomain));

        // without a `default` blocking group, inventory-only groups get every list
        let (_, res, _dir) = both(
            &format!("{LISTS}[inventory.groups]\nlab = [\"10.0.0.0/8\"]\n"),
            "",
        );
        let res = res.unwrap();
        let g = res.group_of("10.1.1.1".parse().unwrap());
        assert_eq!((g.name.as_str(), g.lists.len()), ("lab", 2));
    }

    #[test]
    fn a_block_in_two_groups_is_an_error_naming_both() {
        let cases = [
            (
                "[[resolver.blocking.group]]\nname = \"kids\"\nclients = [\"10.0.1.0/24\"]\n[inventory.groups]\nservers = [\"10.0.1.0/24\"]\n",
                "",
                vec!["10.0.1.0/24", "\"kids\"", "\"servers\"", "[[resolver.blocking.group]] \"kids\" clients", "inventory.groups.servers"],
            ),
            (
                // the same network written two ways
                "[inventory.groups]\na = [\"10.0.1.5/24\"]\nb = [\"10.0.1.0/24\"]\n",
                "",
                vec!["10.0.1.0/24", "inventory.groups.a", "inventory.groups.b"],
            ),
            (
                "[inventory]\nfile = \"inv.csv\"\n[inventory.groups]\nx = [\"10.0.1.10/32\"]\n",
                "ip,name,group\n10.0.1.10,db1,db\n",
                vec!["10.0.1.10/32", "\"x\"", "\"db\"", "inventory.groups.x", "inv.csv line 2 (inventory.file)"],
            ),
            (
                "[inventory]\nfile = \"inv.csv\"\n[[resolver.blocking.group]]\nname = \"kids\"\nclients = [\"10.0.1.10\"]\n",
                "10.0.1.10,db1,db\n",
                vec!["\"kids\"", "\"db\"", "inv.csv line 1"],
            ),
            (
                "[inventory]\nfile = \"inv.csv\"\n",
                "10.0.1.10,db1,db\n\n10.0.1.10,db1,web\n",
                vec!["\"db\"", "\"web\"", "inv.csv line 1", "inv.csv line 3"],
            ),
            (
                "[[resolver.blocking.group]]\nname = \"kids\"\nclients = [\"10.0.1.0/24\"]\n[[resolver.blocking.group]]\nname = \"kids\"\nclients = [\"10.0.2.0/24\"]\n",
                "",
                vec!["\"kids\"", "second group of this name"],
            ),
            (
                "[[resolver.blocking.group]]\nname = \"kids\"\nclients = [\"10.0.0.0/33\"]\n",
                "",
                vec!["[[resolver.blocking.group]] \"kids\" clients", "0..=32"],
            ),
        ];
        for (config, csv, want) in cases {
            let (eng, res, _dir) = both(config, csv);
            for (side, r) in [("engine", eng.map(|_| ())), ("resolver", res.map(|_| ()))] {
                let e = format!("{:#}", r.expect_err(config));
                for w in &want {
                    assert!(e.contains(w), "{side}: {w:?} not in {e}");
                }
            }
        }
        // the same block given to the same group in both places is fine
        let (eng, res, _dir) = both(
            "[[resolver.blocking.group]]\nname = \"servers\"\nclients = [\"10.0.1.0/24\"]\n[inventory.groups]\nservers = [\"10.0.1.0/24\"]\n",
            "",
        );
        assert!(eng.is_ok() && res.is_ok());
        // a blocking group with no devices anywhere
        let (_, res, _dir) = both("[[resolver.blocking.group]]\nname = \"kids\"\n", "");
        let e = format!("{:#}", res.err().unwrap());
        assert!(
            e.contains("`clients` is empty") && e.contains("[inventory] groups"),
            "{e}"
        );
    }
}
