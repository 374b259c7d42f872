//! The simulated organisation: groups, devices, the address plan, internal host names and the
//! inventory a real operator would keep.

use crate::world::{nm, Hosting, World, INTERNAL_SUFFIX};
use rand::Rng;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    Workstation,
    Server,
    Database,
    Iot,
    DomainController,
    Mail,
}

impl Group {
    /// The group name used in the inventory, config and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Workstation => "workstations",
            Group::Server => "servers",
            Group::Database => "db",
            Group::Iot => "iot",
            Group::DomainController => "domain-controllers",
            Group::Mail => "mail",
        }
    }
}

/// Sub-roles that change behaviour inside a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Desktop,
    App,
    Web,
    Ci,
    K8s,
    Monitor,
    Backup,
    Db,
    Printer,
    Camera,
    Thermostat,
    Tv,
    Speaker,
    Dc,
    Mx,
}

#[derive(Clone, Debug)]
pub struct Device {
    pub idx: usize,
    pub ip: IpAddr,
    pub name: String,
    pub group: Group,
    pub role: Role,
    /// First simulated day the device is on the network.
    pub active_from: u32,
    /// Listed in inventory.csv.
    pub inventory: bool,
    /// Catalog indexes this person visits most (workstations).
    pub favorites: Vec<usize>,
    /// Activity multiplier.
    pub activity: f64,
    /// Uses the search-suffix-first resolution order (ndots) for external names.
    pub ndots: bool,
    /// Anti-virus reputation zone this device's AV product uses.
    pub av_zone: &'static str,
}

pub struct Org {
    pub devices: Vec<Device>,
}

/// Internal infrastructure hosts: (name, last octet in 10.0.0.0/24).
pub const INFRA: &[(&str, u8)] = &[
    ("dc01", 10),
    ("dc02", 11),
    ("mx01", 25),
    ("mx02", 26),
    ("dns", 53),
    ("mirror", 80),
    ("pypi-mirror", 81),
    ("registry", 82),
    ("intranet", 100),
    ("fileserver01", 101),
    ("print01", 102),
    ("jira", 103),
    ("exchange", 104),
    ("monitor01", 110),
    ("backup01", 111),
    ("ntp", 123),
    ("vpn", 140),
    ("git", 150),
    ("smtp", 25),
];

pub fn internal(host: &str) -> String {
    format!("{host}.{INTERNAL_SUFFIX}")
}

impl Org {
    /// Builds `n` devices (at least 12) and registers the intranet in `world`.
    pub fn build(seed: u64, n: usize, world: &mut World) -> Org {
        let n = n.max(12);
        let mut rng = crate::rng::stream(seed, &[3]);
        let dcs = 2;
        let mail = if n >= 40 { 2 } else { 1 };
        let dbs = (n * 3 / 100).max(2);
        let servers = (n * 8 / 100).max(4);
        let iot = (n * 7 / 100).max(2);
        let ws = n - dcs - mail - dbs - servers - iot;
        let mut devices = Vec::with_capacity(n + 2);
        let push = |ip: IpAddr,
                    name: String,
                    group: Group,
                    role: Role,
                    rng: &mut rand_chacha::ChaCha8Rng,
                    devices: &mut Vec<Device>| {
            let idx = devices.len();
            devices.push(Device {
                idx,
                ip,
                name,
                group,
                role,
                active_from: 0,
                inventory: true,
                favorites: vec![],
                activity: 0.5 + rng.random::<f64>() * 1.1,
                ndots: false,
                av_zone: if rng.random_bool(0.9) {
                    "avqs.mcafee.com"
                } else {
                    "sophosxl.net"
                },
            });
        };
        for i in 0..dcs {
            push(
                v4(10, 0, 0, 10 + i as u8),
                format!("dc{:02}", i + 1),
                Group::DomainController,
                Role::Dc,
                &mut rng,
                &mut devices,
            );
        }
        for i in 0..mail {
            push(
                v4(10, 0, 0, 25 + i as u8),
                format!("mx{:02}", i + 1),
                Group::Mail,
                Role::Mx,
                &mut rng,
                &mut devices,
            );
        }
        let srv_roles = [
            Role::App,
            Role::App,
            Role::Web,
            Role::Ci,
            Role::K8s,
            Role::Monitor,
            Role::Backup,
            Role::App,
            Role::K8s,
            Role::Web,
        ];
        for i in 0..servers {
            let role = srv_roles[i % srv_roles.len()];
            let pre = match role {
                Role::App => "app",
                Role::Web => "web",
                Role::Ci => "ci",
                Role::K8s => "k8s-node",
                Role::Monitor => "mon",
                _ => "bak",
            };
            push(
                v4(10, 2, 0, 10 + i as u8),
                format!("{pre}{:02}", i + 1),
                Group::Server,
                role,
                &mut rng,
                &mut devices,
            );
        }
        for i in 0..dbs {
            push(
                v4(10, 3, 0, 10 + i as u8),
                format!("db{:02}", i + 1),
                Group::Database,
                Role::Db,
                &mut rng,
                &mut devices,
            );
        }
        let iot_roles = [
            (Role::Printer, "printer"),
            (Role::Camera, "cam"),
            (Role::Thermostat, "thermostat"),
            (Role::Tv, "tv"),
            (Role::Speaker, "speaker"),
            (Role::Camera, "cam"),
        ];
        for i in 0..iot {
            let (role, pre) = iot_roles[i % iot_roles.len()];
            push(
                v4(10, 4, (i / 200) as u8, 10 + (i % 200) as u8),
                format!("{pre}-{:03}", i + 1),
                Group::Iot,
                role,
                &mut rng,
                &mut devices,
            );
        }
        for i in 0..ws {
            let ip = if i % 20 == 7 {
                IpAddr::V6(Ipv6Addr::new(
                    0xfd00,
                    0xc0,
                    1,
                    0,
                    0,
                    0,
                    (i / 65000) as u16,
                    (i % 65000) as u16 + 0x100,
                ))
            } else {
                v4(10, 1, (i / 240) as u8, 10 + (i % 240) as u8)
            };
            push(
                ip,
                format!("ws-{:04}", i + 1),
                Group::Workstation,
                Role::Desktop,
                &mut rng,
                &mut devices,
            );
        }
        for d in devices.iter_mut() {
            if d.role == Role::K8s {
                d.ndots = true;
            }
            if d.group == Group::Workstation {
                let k = rng.random_range(15..45);
                d.favorites = (0..k).map(|_| world.zipf(&mut rng)).collect();
            }
        }
        let org = Org { devices };
        org.register_intranet(world);
        org
    }

    /// Adds a device (scenarios, confounders) and its PTR record when inventoried.
    #[allow(clippy::too_many_arguments)]
    pub fn add_device(
        &mut self,
        world: &mut World,
        ip: IpAddr,
        name: &str,
        group: Group,
        role: Role,
        from_day: u32,
        inventory: bool,
        favorites: Vec<usize>,
    ) -> usize {
        let idx = self.devices.len();
        self.devices.push(Device {
            idx,
            ip,
            name: name.to_string(),
            group,
            role,
            active_from: from_day,
            inventory,
            favorites,
            activity: 1.0,
            ndots: false,
            av_zone: "avqs.mcafee.com",
        });
        if let (IpAddr::V4(a), true) = (ip, inventory) {
            world.ptr.insert(a, internal(name));
        }
        idx
    }

    fn register_intranet(&self, world: &mut World) {
        let mut seen = HashMap::new();
        for (h, o) in INFRA {
            let name = internal(h);
            let a = Ipv4Addr::new(10, 0, 0, *o);
            world.register_fixed(&name, vec![], vec![IpAddr::V4(a)], 3600);
            seen.entry(a).or_insert(name);
        }
        world.register_fixed(
            &internal("ldap"),
            vec![(internal("ldap"), internal("dc01"), 600)],
            vec![v4(10, 0, 0, 10)],
            600,
        );
        world.register_fixed(
            &internal("mail"),
            vec![(internal("mail"), internal("exchange"), 3600)],
            vec![v4(10, 0, 0, 104)],
            3600,
        );
        for d in &self.devices {
            let name = internal(&d.name);
            if let IpAddr::V4(a) = d.ip {
                world.register_fixed(
                    &name,
                    vec![],
                    vec![d.ip],
                    if d.group == Group::Workstation {
                        1200
                    } else {
                        3600
                    },
                );
                seen.entry(a).or_insert(name);
            }
        }
        for (a, n) in seen {
            world.ptr.insert(a, n);
        }
        // SRV records of the domain controllers
        for srv in [
            "_ldap._tcp.dc._msdcs",
            "_kerberos._tcp",
            "_ldap._tcp.default-first-site-name._sites.dc._msdcs",
            "_gc._tcp",
        ] {
            let name = format!("{srv}.{INTERNAL_SUFFIX}");
            world.register_fixed(&name, vec![], vec![], 600);
        }
        // external services every group uses
        let us =
            |w: &mut World, n: &str, ttl: u32| w.register_host(n, Hosting::Direct, "US", ttl, true);
        for (n, ttl) in [
            ("outlook.office365.com", 60),
            ("login.microsoftonline.com", 300),
            ("teams.microsoft.com", 300),
            ("graph.microsoft.com", 300),
            ("settings-win.data.microsoft.com", 300),
            ("v10.events.data.microsoft.com", 300),
            ("time.windows.com", 3600),
            ("ctldl.windowsupdate.com", 3600),
            ("slscr.update.microsoft.com", 300),
            ("clientservices.googleapis.com", 300),
            ("update.googleapis.com", 300),
            ("safebrowsing.googleapis.com", 300),
            ("accounts.google.com", 300),
            ("edge.microsoft.com", 300),
            ("ocsp.digicert.com", 3600),
            ("r3.o.lencr.org", 300),
            ("s3.eu-central-1.amazonaws.com", 5),
            ("sts.amazonaws.com", 60),
            ("o450123.ingest.sentry.io", 60),
            ("api.github.com", 60),
            ("codeload.github.com", 60),
            ("objects.githubusercontent.com", 300),
            ("acme-v02.api.letsencrypt.org", 300),
            ("h10141.www1.hp.com", 3600),
            ("xmpp013.hpeprint.com", 60),
            ("home.nest.com", 300),
            ("time.google.com", 3600),
            ("samsungcloudsolution.com", 600),
            ("device-metrics-us.amazon.com", 60),
            ("api.amazonalexa.com", 300),
            ("0.debian.pool.ntp.org", 130),
        ] {
            us(world, n, ttl);
        }
        world.register_host("devices.ezvizlife.com", Hosting::Direct, "SG", 60, false);
        world.register_host("api.hik-connect.com", Hosting::Direct, "CN", 60, false);
        for n in [
            "deb.debian.org",
            "security.debian.org",
            "pypi.org",
            "files.pythonhosted.org",
            "registry.npmjs.org",
        ] {
            world.register_host(n, Hosting::Fastly, "US", 300, true);
        }
        let _ = nm;
    }

    pub fn by_ip(&self, ip: IpAddr) -> Option<&Device> {
        self.devices.iter().find(|d| d.ip == ip)
    }
}

pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// The reverse-lookup name of an address (`d.c.b.a.in-addr.arpa` or nibble form for IPv6).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let mut s = String::new();
            for b in a.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}
