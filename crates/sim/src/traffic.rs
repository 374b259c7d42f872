//! Normal traffic: what each kind of device resolves in a day, with a TTL-aware client cache.
//!
//! Workstations follow office hours (quieter weekends, holidays), browse with Zipf popularity
//! over the catalog plus personal favourites and a daily long tail of never-seen domains, load
//! third-party page resources (A, AAAA and HTTPS queries), talk to Microsoft 365, run Chromium's
//! random single-label intranet probes, antivirus reputation lookups with hash labels and the odd
//! search-suffix NXDOMAIN. Servers, databases, IoT, domain controllers and mail servers run around
//! the clock with periodic telemetry, PTR lookups, SRV lookups and (for mail) DNSBL checks. A
//! query is only emitted when the client's cache has no live answer, so periodic traffic is
//! quantised by TTLs as on a real network.

use crate::org::{internal, reverse_name, Device, Group, Org, Role};
use crate::world::{alnum, hex, letters, nm, World, INTERNAL_SUFFIX, RESOLVER_ADDR, THIRD_PARTY};
use dnsight_model::{DnsEvent, Flags, Ts};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::net::IpAddr;

pub const DAY_US: i64 = 86_400_000_000;
pub const HOUR_US: i64 = 3_600_000_000;
pub const SEC_US: i64 = 1_000_000;

/// Per-device client cache: hash of (name, qtype) -> expiry (µs). A 64-bit hash of
/// simulator-made names stands in for the key (a collision only skips one query).
#[derive(Default, Clone)]
pub struct ClientCache {
    map: HashMap<u64, i64>,
}

impl ClientCache {
    fn key(name: &str, qtype: u16) -> u64 {
        crate::rng::mix(crate::rng::hash_str(name), qtype as u64)
    }
    fn fresh(&self, name: &str, qtype: u16, ts: i64) -> bool {
        self.map
            .get(&Self::key(name, qtype))
            .is_some_and(|&e| e > ts)
    }
    fn put(&mut self, name: &str, qtype: u16, exp: i64) {
        self.map.insert(Self::key(name, qtype), exp);
    }
    /// Drops expired entries (bounds memory across days).
    pub fn prune(&mut self, now: i64) {
        self.map.retain(|_, e| *e > now);
    }
}

/// Builds one event as the resolver would log it.
pub fn make_event(
    world: &World,
    rng: &mut ChaCha8Rng,
    ts: i64,
    client: IpAddr,
    qname: &str,
    qtype: u16,
) -> (DnsEvent, u32) {
    let r = world.resolve(qname, qtype, ts);
    let mut e = DnsEvent::new(Ts(ts), client, nm(qname), qtype);
    e.rcode = Some(r.rcode);
    e.answers = r.answers;
    finish_event(rng, &mut e);
    (e, r.cache_ttl)
}

/// Fills in ports, id, sizes and round-trip time.
pub fn finish_event(rng: &mut ChaCha8Rng, e: &mut DnsEvent) {
    e.server = IpAddr::V4(RESOLVER_ADDR);
    if e.client.is_ipv6() {
        e.server = "fd00:c0::53".parse().unwrap_or(e.server);
    }
    e.client_port = rng.random_range(49152..=65535);
    e.id = rng.random();
    e.flags = Flags(Flags::QR | Flags::RD | Flags::RA);
    let q = 12 + e.qname.wire_len() as u32 + 4 + 11;
    e.query_size = Some(q);
    let mut r = q;
    for a in &e.answers {
        r += 12
            + match &a.data {
                dnsight_model::RData::Addr(IpAddr::V4(_)) => 4,
                dnsight_model::RData::Addr(IpAddr::V6(_)) => 16,
                dnsight_model::RData::Name(n) => n.wire_len() as u32,
                dnsight_model::RData::Text(t) => t.len() as u32 / 2 + 2,
            };
    }
    e.response_size = Some(r);
    e.rtt_us = Some(if rng.random_bool(0.75) {
        rng.random_range(80..900)
    } else {
        rng.random_range(2_000..80_000)
    });
}

/// Generates one device's traffic for one day.
pub struct DayGen<'a> {
    pub world: &'a World,
    pub dev: &'a Device,
    pub cache: &'a mut ClientCache,
    pub rng: ChaCha8Rng,
    pub out: &'a mut Vec<DnsEvent>,
    pub day_start: i64,
    pub day: u32,
    /// Today's long-tail domains (never seen before today).
    pub tail: &'a [String],
    /// Extra periodic names for this device from confounders (name, period s, from µs).
    pub extra: &'a [(String, u32, i64)],
    /// A workstation's session today (set by the generator).
    pub session: Option<(i64, i64)>,
}

impl DayGen<'_> {
    /// Emits a query unless the client cache still holds the answer.
    pub fn q(&mut self, ts: i64, name: &str, qtype: u16) {
        if ts < self.day_start || ts >= self.day_start + DAY_US {
            return;
        }
        if self.cache.fresh(name, qtype, ts) {
            return;
        }
        // ndots-style search: the suffixed name is tried first for external names
        if self.dev.ndots && !name.ends_with(INTERNAL_SUFFIX) && !name.ends_with(".arpa") {
            let s = format!("{name}.{INTERNAL_SUFFIX}");
            if !self.cache.fresh(&s, qtype, ts) {
                let (e, ttl) = make_event(self.world, &mut self.rng, ts, self.dev.ip, &s, qtype);
                self.cache.put(&s, qtype, ts + ttl as i64 * SEC_US);
                self.out.push(e);
            }
        }
        let (e, ttl) = make_event(
            self.world,
            &mut self.rng,
            ts + 300,
            self.dev.ip,
            name,
            qtype,
        );
        self.cache.put(name, qtype, ts + ttl as i64 * SEC_US);
        self.out.push(e);
    }

    fn a_aaaa(&mut self, ts: i64, name: &str, https: bool) {
        self.q(ts, name, 1);
        self.q(ts + 150, name, 28);
        if https {
            self.q(ts + 200, name, 65);
        }
    }

    /// Periodic queries every `period` s (± jitter) between `from` and `to` (µs).
    fn periodic(&mut self, name: &str, qtype: u16, period: u32, jitter: f64, from: i64, to: i64) {
        let p = period as i64 * SEC_US;
        let phase = (crate::rng::hash_str(name) ^ self.dev.idx as u64) as i64 % p.max(1);
        let mut t = from - (from - phase).rem_euclid(p.max(1)) + p;
        while t < to {
            let j = if jitter > 0.0 {
                ((self.rng.random::<f64>() - 0.5) * jitter * p as f64) as i64
            } else {
                0
            };
            self.q(t + j, name, qtype);
            t += p;
        }
    }

    /// Poisson arrivals at `per_hour` between `from` and `to`.
    fn poisson_times(&mut self, per_hour: f64, from: i64, to: i64) -> Vec<i64> {
        let mut v = Vec::new();
        if per_hour <= 0.0 {
            return v;
        }
        let mut t = from;
        loop {
            let u: f64 = self.rng.random::<f64>().max(1e-12);
            t += (-u.ln() / per_hour * HOUR_US as f64) as i64;
            if t >= to {
                return v;
            }
            v.push(t);
        }
    }

    pub fn run(&mut self) {
        match self.dev.group {
            Group::Workstation => self.workstation(),
            Group::Server => self.server(),
            Group::Database => self.database(),
            Group::Iot => self.iot(),
            Group::DomainController => self.dc(),
            Group::Mail => self.mail(),
        }
        let d0 = self.day_start;
        let (lo, hi) = match (self.dev.group, self.session) {
            (Group::Workstation, Some(s)) => s,
            (Group::Workstation, None) => return,
            _ => (d0, d0 + DAY_US),
        };
        let extra = self.extra;
        for (name, period, from) in extra {
            let from = (*from).max(lo);
            self.periodic(name, 1, *period, 0.3, from, hi);
        }
    }

    fn chromium_probes(&mut self, ts: i64) {
        for i in 0..3 {
            let n = self.rng.random_range(7..=15);
            let l = letters(&mut self.rng, n);
            // the single label goes out with the search suffix appended, then bare
            self.q(ts + i * 2_000, &format!("{l}.{INTERNAL_SUFFIX}"), 1);
            if self.rng.random_bool(0.5) {
                self.q(ts + i * 2_000 + 500, &l, 1);
            }
        }
    }

    fn workstation(&mut self) {
        let wd = weekday(self.day_start);
        let d0 = self.day_start;
        let (start, end) = if wd < 5 {
            if self.rng.random_bool(0.07) {
                return; // holiday, sick, travelling
            }
            let s = d0
                + (7.5 * HOUR_US as f64 + self.rng.random::<f64>() * 2.0 * HOUR_US as f64) as i64;
            (
                s,
                s + 8 * HOUR_US + (self.rng.random::<f64>() * 1.5 * HOUR_US as f64) as i64,
            )
        } else {
            if !self.rng.random_bool(0.08) {
                return;
            }
            let s = d0
                + (10.0 * HOUR_US as f64 + self.rng.random::<f64>() * 4.0 * HOUR_US as f64) as i64;
            (
                s,
                s + HOUR_US + (self.rng.random::<f64>() * 2.0 * HOUR_US as f64) as i64,
            )
        };
        self.session = Some((start, end));
        // boot / logon
        let dc = format!("_ldap._tcp.dc._msdcs.{INTERNAL_SUFFIX}");
        self.q(start, &dc, 33);
        self.q(
            start + 40_000,
            &format!("_kerberos._tcp.{INTERNAL_SUFFIX}"),
            33,
        );
        self.q(
            start + 60_000,
            &format!("_ldap._tcp.default-first-site-name._sites.dc._msdcs.{INTERNAL_SUFFIX}"),
            33,
        );
        self.q(start + 90_000, &internal("dc01"), 1);
        self.q(start + 120_000, &internal("wpad"), 1);
        self.chromium_probes(start + 2 * SEC_US);
        for (i, n) in [
            "login.microsoftonline.com",
            "outlook.office365.com",
            "teams.microsoft.com",
            "time.windows.com",
            "clientservices.googleapis.com",
            "edge.microsoft.com",
        ]
        .iter()
        .enumerate()
        {
            self.a_aaaa(start + (3 + i as i64) * SEC_US, n, false);
        }
        self.q(start + 10 * SEC_US, &internal("intranet"), 1);
        self.q(start + 11 * SEC_US, &internal("fileserver01"), 1);
        // keep-alives and telemetry during the session
        for (n, p) in [
            ("outlook.office365.com", 300),
            ("teams.microsoft.com", 600),
            ("graph.microsoft.com", 900),
            ("settings-win.data.microsoft.com", 1800),
            ("v10.events.data.microsoft.com", 900),
            ("safebrowsing.googleapis.com", 1800),
            ("ocsp.digicert.com", 3600),
            ("update.googleapis.com", 7200),
        ] {
            self.periodic(n, 1, p, 0.15, start, end);
        }
        self.periodic(&dc, 33, 3600, 0.1, start, end);
        // browsing
        let per_hour = 12.0 * self.dev.activity;
        let visits = self.poisson_times(per_hour, start, end);
        for t in visits {
            let lunch = {
                let h = (t - d0) / HOUR_US;
                h == 12
            };
            if lunch && self.rng.random_bool(0.5) {
                continue;
            }
            let r: f64 = self.rng.random();
            let site = if r < 0.03 && !self.tail.is_empty() {
                self.tail[self.rng.random_range(0..self.tail.len())].clone()
            } else if r < 0.6 && !self.dev.favorites.is_empty() {
                self.world.catalog
                    [self.dev.favorites[self.rng.random_range(0..self.dev.favorites.len())]]
                .name
                .clone()
            } else {
                self.world.catalog[self.world.zipf(&mut self.rng)]
                    .name
                    .clone()
            };
            let www = format!("www.{site}");
            let host = if self.world.has_host(&www) {
                www
            } else {
                site.clone()
            };
            self.a_aaaa(t, &host, true);
            if let Some(d) = self
                .world
                .index
                .get(&site)
                .map(|i| self.world.catalog[*i].clone())
            {
                for (i, dep) in d.deps.iter().enumerate() {
                    let dep = THIRD_PARTY[*dep as usize];
                    self.a_aaaa(t + (i as i64 + 1) * 80_000, dep, true);
                }
                for (i, h) in d.hosts.iter().enumerate() {
                    if self.rng.random_bool(0.5) {
                        self.a_aaaa(t + (i as i64 + 1) * 120_000, h, false);
                    }
                }
            }
            // video/social CDN hosts: random-looking but benign
            if self.rng.random_bool(0.04) {
                let n = format!(
                    "r{}---sn-{}.googlevideo.com",
                    self.rng.random_range(1..9),
                    alnum(&mut self.rng, 8)
                );
                self.q(t + SEC_US, &n, 1);
            }
        }
        // antivirus reputation lookups: hash-like labels
        for t in self.poisson_times(5.0, start, end) {
            let h = hex(&mut self.rng, 40);
            let name = if self.dev.av_zone == "sophosxl.net" {
                format!(
                    "{}.{}.f.sophosxl.net",
                    &h[..32],
                    self.rng.random_range(0..9)
                )
            } else {
                format!("{h}.avqs.mcafee.com")
            };
            self.q(t, &name, 1);
        }
        // network changes (VPN, Wi-Fi): more Chromium probes
        for t in self.poisson_times(0.2, start, end) {
            self.chromium_probes(t);
        }
        // typed single-label names through the search suffix; some exist
        for t in self.poisson_times(0.3, start, end) {
            let w = [
                "wiki",
                "hr",
                "payroll",
                "jira",
                "intranet",
                "print01",
                "git",
                "confluence",
                "timesheet",
                "crm",
            ][self.rng.random_range(0..10)];
            self.q(t, &internal(w), 1);
        }
        if self.rng.random_bool(0.05) {
            let t = start + self.rng.random_range(0..(end - start).max(1));
            self.q(t, "12.0.0.10.in-addr.arpa", 12);
        }
    }

    fn load(&self, t: i64) -> f64 {
        let h = ((t - self.day_start) / HOUR_US) as u32;
        let office = (8..19).contains(&h) && weekday(self.day_start) < 5;
        if office {
            1.0
        } else {
            0.35
        }
    }

    fn server(&mut self) {
        let d0 = self.day_start;
        let d1 = d0 + DAY_US;
        self.periodic(&internal("monitor01"), 1, 60, 0.05, d0, d1);
        self.periodic(&internal("ldap"), 1, 600, 0.1, d0, d1);
        self.periodic(&internal("ntp"), 1, 1024, 0.0, d0, d1);
        let apt = d0 + 6 * HOUR_US + self.rng.random_range(0..HOUR_US);
        self.a_aaaa(apt, &internal("mirror"), false);
        match self.dev.role {
            Role::App | Role::K8s => {
                self.periodic(&internal("db01"), 1, 30, 0.2, d0, d1);
                for t in self.poisson_times(20.0, d0, d1) {
                    if self.rng.random_bool(self.load(t)) {
                        self.q(t, "s3.eu-central-1.amazonaws.com", 1);
                    }
                }
                for t in self.poisson_times(3.0, d0, d1) {
                    self.q(t, "o450123.ingest.sentry.io", 1);
                }
                self.periodic("sts.amazonaws.com", 1, 3600, 0.2, d0, d1);
                for t in self.poisson_times(2.0, d0, d1) {
                    self.q(t, &internal("smtp"), 1);
                }
            }
            Role::Web => {
                self.periodic(&internal("db01"), 1, 60, 0.2, d0, d1);
                self.periodic("r3.o.lencr.org", 1, 3600, 0.3, d0, d1);
                if weekday(d0) == 0 {
                    self.q(d0 + 3 * HOUR_US, "acme-v02.api.letsencrypt.org", 1);
                }
                for t in self.poisson_times(4.0, d0, d1) {
                    let ip = self.world.geo.addr("US", self.rng.random(), false);
                    self.q(t, &reverse_name(ip), 12);
                }
            }
            Role::Ci => {
                for t in self.poisson_times(6.0, d0, d1) {
                    if self.rng.random_bool(self.load(t)) {
                        for n in [
                            internal("mirror"),
                            internal("pypi-mirror"),
                            internal("registry"),
                            internal("git"),
                            "api.github.com".into(),
                            "codeload.github.com".into(),
                            "objects.githubusercontent.com".into(),
                        ] {
                            self.a_aaaa(t, &n, false);
                        }
                    }
                }
            }
            Role::Monitor => {
                let ptrs: Vec<String> = self
                    .world
                    .ptr
                    .keys()
                    .map(|a| reverse_name(IpAddr::V4(*a)))
                    .collect();
                let mut ptrs = ptrs;
                ptrs.sort();
                for t in self.poisson_times(30.0, d0, d1) {
                    let p = ptrs[self.rng.random_range(0..ptrs.len())].clone();
                    self.q(t, &p, 12);
                }
                for (h, _) in crate::org::INFRA.iter().take(12) {
                    self.periodic(&internal(h), 1, 300, 0.05, d0, d1);
                }
            }
            _ => {
                let b = d0 + HOUR_US + self.rng.random_range(0..HOUR_US);
                for (i, n) in [
                    internal("db01"),
                    internal("db02"),
                    internal("fileserver01"),
                    "s3.eu-central-1.amazonaws.com".into(),
                ]
                .iter()
                .enumerate()
                {
                    self.q(b + i as i64 * 60 * SEC_US, n, 1);
                }
            }
        }
    }

    fn database(&mut self) {
        let d0 = self.day_start;
        let d1 = d0 + DAY_US;
        for (n, qt, p) in db_names() {
            self.periodic(&n, qt, p, 0.05, d0, d1);
        }
        let t = d0 + 6 * HOUR_US + self.rng.random_range(0..HOUR_US);
        self.a_aaaa(t, &internal("mirror"), false);
        let t = d0 + 2 * HOUR_US + self.rng.random_range(0..HOUR_US / 2);
        self.q(t, &internal("backup01"), 1);
    }

    fn iot(&mut self) {
        let d0 = self.day_start;
        let d1 = d0 + DAY_US;
        let list: &[(&str, u32)] = match self.dev.role {
            Role::Printer => &[("xmpp013.hpeprint.com", 600), ("h10141.www1.hp.com", 43200)],
            Role::Camera => &[("devices.ezvizlife.com", 60), ("api.hik-connect.com", 300)],
            Role::Thermostat => &[("home.nest.com", 300), ("time.google.com", 3600)],
            Role::Tv => &[("samsungcloudsolution.com", 1800), ("netflix.com", 3600)],
            _ => &[
                ("device-metrics-us.amazon.com", 120),
                ("api.amazonalexa.com", 300),
            ],
        };
        for (n, p) in list {
            self.periodic(n, 1, *p, 0.02, d0, d1);
        }
    }

    fn dc(&mut self) {
        let d0 = self.day_start;
        let d1 = d0 + DAY_US;
        self.periodic(
            &format!("_ldap._tcp.dc._msdcs.{INTERNAL_SUFFIX}"),
            33,
            900,
            0.1,
            d0,
            d1,
        );
        self.periodic("ctldl.windowsupdate.com", 1, 3600, 0.2, d0, d1);
        self.periodic("time.windows.com", 1, 3600, 0.0, d0, d1);
        let mut addrs: Vec<_> = self.world.ptr.keys().copied().collect();
        addrs.sort();
        for t in self.poisson_times(8.0, d0, d1) {
            let a = addrs[self.rng.random_range(0..addrs.len())];
            self.q(t, &reverse_name(IpAddr::V4(a)), 12);
        }
    }

    fn mail(&mut self) {
        let d0 = self.day_start;
        let d1 = d0 + DAY_US;
        for t in self.poisson_times(25.0, d0, d1) {
            if !self.rng.random_bool(self.load(t)) {
                continue;
            }
            // inbound message: DNSBL on the sender address, its PTR, the sender domain's policy
            let cc = crate::geo::COUNTRIES[self.rng.random_range(0..12)];
            let ip = self.world.geo.addr(cc, self.rng.random(), false);
            if let IpAddr::V4(a) = ip {
                let o = a.octets();
                let rev = format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0]);
                self.q(t, &format!("{rev}.zen.spamhaus.org"), 1);
                self.q(t + 5_000, &format!("{rev}.bl.spamcop.net"), 1);
            }
            self.q(t + 10_000, &reverse_name(ip), 12);
            let dom = self.world.catalog[self.world.zipf(&mut self.rng)]
                .name
                .clone();
            self.q(t + 20_000, &dom, 16);
            self.q(t + 25_000, &format!("_dmarc.{dom}"), 16);
            self.q(t + 30_000, &format!("selector1._domainkey.{dom}"), 16);
        }
        for t in self.poisson_times(8.0, d0, d1) {
            if !self.rng.random_bool(self.load(t)) {
                continue;
            }
            let dom = self.world.catalog[self.world.zipf(&mut self.rng)]
                .name
                .clone();
            self.q(t, &dom, 15);
            self.q(t + 2_000, &format!("mx1.{dom}"), 1);
        }
        let _ = Org::by_ip;
    }
}

/// What a database resolves: (name, qtype, period in seconds).
pub fn db_names() -> Vec<(String, u16, u32)> {
    vec![
        (internal("monitor01"), 1, 60),
        (internal("ntp"), 1, 1024),
        (internal("ldap"), 1, 600),
        ("10.0.2.10.in-addr.arpa".to_string(), 12, 120),
        ("11.0.2.10.in-addr.arpa".to_string(), 12, 120),
    ]
}

/// Day of week of a day start, 0 = Monday (the Unix epoch was a Thursday).
pub fn weekday(ts_us: i64) -> u32 {
    ((ts_us.div_euclid(DAY_US) + 3).rem_euclid(7)) as u32
}

/// Today's never-seen-before domains (the daily long tail).
pub fn daily_tail(seed: u64, day: u32, n: usize) -> Vec<String> {
    let mut rng = crate::rng::stream(seed, &[4, day as u64]);
    (0..n)
        .map(|_| {
            let d = crate::world::word_domain(&mut rng);
            // a distinguishing suffix keeps tail domains distinct from the catalog
            let (l, t) = d.split_once('.').unwrap_or((&d, "com"));
            format!("{l}{}.{t}", rng.random_range(2..99))
        })
        .collect()
}

#[allow(dead_code)]
fn unused(_: &Device) {}
