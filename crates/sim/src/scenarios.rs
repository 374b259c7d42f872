//! Injected attack scenarios and benign confounders, each with its label.
//!
//! Attacks start after the learning days; each label names the device(s), the window, the kind
//! and the destinations, plus the alert kinds a detector is expected to raise. Confounders are
//! benign surprises that real networks have (an org-wide update, a SaaS rollout, a CDN moving a
//! domain to another country, a new employee's laptop); alerts on them count against the
//! detectors. Nothing here is tuned to what the detectors happen to catch.

use crate::dga::{builtin_char, builtin_dict, DgaSet};
use crate::org::{internal, reverse_name, v4, Group, Org, Role};
use crate::traffic::{db_names, finish_event, make_event, HOUR_US, SEC_US};
use crate::world::{alnum, hex, nm, word_domain, Hosting, World};
use dnsight_model::{Answer, DnsEvent, RData, Ts, RCODE_NOERROR, RCODE_NXDOMAIN};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;

/// One labeled scenario (attack or benign confounder).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScenarioLabel {
    pub id: String,
    /// beaconing, dga, tunnel_fast, exfil_slow, new_country, package_repo, db_rate, intel_qname,
    /// intel_cname, intel_ip, doh_bypass, ptr_sweep, new_device; confounders: org_update,
    /// saas_rollout, cdn_move, new_laptop, scanner_routine, misconfig, av_scan, device_off.
    pub kind: String,
    /// True for benign confounders.
    pub benign: bool,
    /// Client addresses involved (empty = any device).
    pub devices: Vec<String>,
    #[serde(default)]
    pub device_names: Vec<String>,
    /// The group of the devices ("" when mixed or any).
    #[serde(default)]
    pub group: String,
    pub start: Ts,
    pub end: Ts,
    /// Names, registered domains, addresses or country codes involved.
    pub destinations: Vec<String>,
    /// Alert kinds a detector should raise for it.
    #[serde(default)]
    pub expected_kinds: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// Everything the simulator labels.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Labels {
    pub seed: u64,
    pub devices: usize,
    pub days: u32,
    pub learn_days: u32,
    pub start: Ts,
    pub learn_until: Ts,
    pub end: Ts,
    /// True when answer countries came from a GeoIP database.
    #[serde(default)]
    pub geoip: bool,
    pub scenarios: Vec<ScenarioLabel>,
}

/// What planning produced: attack events, per-device extra periodic names and labels.
pub struct Plan {
    pub events: Vec<DnsEvent>,
    /// device index -> (name, period s, from µs)
    pub extra: HashMap<usize, Vec<(String, u32, i64)>>,
    pub labels: Vec<ScenarioLabel>,
    /// Intel feed entries (domains and addresses) a real operator would have.
    pub intel: Vec<String>,
    /// Devices switched off: (device index, from µs, to µs); their normal traffic is dropped.
    pub off: Vec<(usize, i64, i64)>,
}

struct Planner<'a> {
    rng: ChaCha8Rng,
    world: &'a mut World,
    org: &'a mut Org,
    start: i64,
    learn_days: u32,
    days: u32,
    end: i64,
    used: Vec<usize>,
    plan: Plan,
    slot: u32,
}

fn s(ip: IpAddr) -> String {
    ip.to_string()
}

fn reg(name: &str) -> String {
    // registered domain of a simulator name: the last two labels (three for co.uk)
    let l: Vec<&str> = name.split('.').collect();
    let n = if name.ends_with(".co.uk") { 3 } else { 2 };
    l[l.len().saturating_sub(n)..].join(".")
}

impl Planner<'_> {
    /// A start time in the detection period: day by round robin, hour in office hours.
    fn when(&mut self, office: bool) -> i64 {
        let det = (self.days - self.learn_days).max(1);
        let mut day = self.learn_days + (self.slot % det);
        self.slot += 1;
        // attacks on workstations happen on working days
        if office {
            for _ in 0..7 {
                if crate::traffic::weekday(self.start + day as i64 * crate::traffic::DAY_US) < 5 {
                    break;
                }
                day = if day + 1 < self.days {
                    day + 1
                } else {
                    self.learn_days + (day + 1 - self.learn_days) % det
                };
            }
        }
        let h = if office {
            9.5 + self.rng.random::<f64>() * 5.0
        } else {
            self.rng.random::<f64>() * 20.0
        };
        self.start + day as i64 * crate::traffic::DAY_US + (h * HOUR_US as f64) as i64
    }

    fn pick(&mut self, group: Group, role: Option<Role>) -> usize {
        let cands: Vec<usize> = self
            .org
            .devices
            .iter()
            .filter(|d| {
                d.group == group
                    && role.is_none_or(|r| d.role == r)
                    && d.active_from == 0
                    && !self.used.contains(&d.idx)
            })
            .map(|d| d.idx)
            .collect();
        let cands = if cands.is_empty() {
            // reuse a device active from the start; any of the group only when none is
            let of_group = |late: bool| -> Vec<usize> {
                self.org
                    .devices
                    .iter()
                    .filter(|d| {
                        d.group == group
                            && role.is_none_or(|r| d.role == r)
                            && (late || d.active_from == 0)
                    })
                    .map(|d| d.idx)
                    .collect()
            };
            let v = of_group(false);
            if v.is_empty() {
                of_group(true)
            } else {
                v
            }
        } else {
            cands
        };
        let i = cands[self.rng.random_range(0..cands.len())];
        self.used.push(i);
        i
    }

    fn ev(&mut self, ts: i64, dev: usize, qname: &str, qtype: u16) {
        if ts >= self.end {
            return;
        }
        let ip = self.org.devices[dev].ip;
        let (e, _) = make_event(self.world, &mut self.rng, ts, ip, qname, qtype);
        self.plan.events.push(e);
    }

    fn raw(
        &mut self,
        ts: i64,
        dev: usize,
        qname: &str,
        qtype: u16,
        rcode: u16,
        answers: Vec<Answer>,
    ) {
        if ts >= self.end {
            return;
        }
        let mut e = DnsEvent::new(Ts(ts), self.org.devices[dev].ip, nm(qname), qtype);
        e.rcode = Some(rcode);
        e.answers = answers;
        finish_event(&mut self.rng, &mut e);
        self.plan.events.push(e);
    }

    #[allow(clippy::too_many_arguments)]
    fn label(
        &mut self,
        kind: &str,
        benign: bool,
        devs: &[usize],
        start: i64,
        end: i64,
        dest: Vec<String>,
        kinds: &[&str],
        desc: String,
    ) {
        let group = {
            let mut g: Vec<&str> = devs
                .iter()
                .map(|d| self.org.devices[*d].group.as_str())
                .collect();
            g.dedup();
            if g.len() == 1 {
                g[0].to_string()
            } else {
                String::new()
            }
        };
        let id = format!(
            "{kind}-{}",
            self.plan.labels.iter().filter(|l| l.kind == kind).count() + 1
        );
        self.plan.labels.push(ScenarioLabel {
            id,
            kind: kind.into(),
            benign,
            devices: devs.iter().map(|d| s(self.org.devices[*d].ip)).collect(),
            device_names: devs
                .iter()
                .map(|d| self.org.devices[*d].name.clone())
                .collect(),
            group,
            start: Ts(start),
            end: Ts(end.min(self.end)),
            destinations: dest,
            expected_kinds: kinds.iter().map(|k| k.to_string()).collect(),
            description: desc,
        });
    }

    fn c2_domain(&mut self) -> String {
        let w = word_domain(&mut self.rng);
        let (l, t) = w.split_once('.').unwrap_or((&w, "com"));
        let pre = ["cdn", "api", "sync", "update", "cloud", "static"][self.rng.random_range(0..6)];
        format!("{pre}-{l}.{t}")
    }

    fn beaconing(&mut self, period: u32, jitter: f64, ttl: u32, dur_h: i64, group: Group) {
        let dev = self.pick(group, None);
        let t0 = self.when(group == Group::Workstation);
        let dom = self.c2_domain();
        let host = format!("api.{dom}");
        let cc = ["NL", "DE", "US", "FR"][self.rng.random_range(0..4)];
        self.world
            .register_host(&host, Hosting::Direct, cc, ttl, false);
        let end = (t0 + dur_h * HOUR_US).min(self.end);
        let mut t = t0;
        let mut last_emit = i64::MIN;
        while t < end {
            if t >= last_emit.saturating_add(ttl as i64 * SEC_US) {
                self.ev(t, dev, &host, 1);
                last_emit = t;
            }
            let j = 1.0 + (self.rng.random::<f64>() * 2.0 - 1.0) * jitter;
            t += (period as f64 * j * SEC_US as f64) as i64;
        }
        let desc = format!(
            "C2 beacon every {period}s, jitter {:.0}%, answer TTL {ttl}s",
            jitter * 100.0
        );
        self.label(
            "beaconing",
            false,
            &[dev],
            t0,
            end,
            vec![host, dom],
            &["beaconing", "new_destination"],
            desc,
        );
    }

    fn dga(&mut self, names: Vec<String>, family: &str) {
        let dev = self.pick(Group::Workstation, None);
        let t0 = self.when(true);
        let n = names.len();
        let span = 20 * 60 * SEC_US;
        let winner = self.rng.random_range(0..n);
        for (i, name) in names.iter().enumerate() {
            let t = t0 + (i as i64 * span) / n as i64 + self.rng.random_range(0..SEC_US);
            if i == winner {
                let a = self.world.geo.addr("RU", self.rng.random(), false);
                self.raw(
                    t,
                    dev,
                    name,
                    1,
                    RCODE_NOERROR,
                    vec![Answer {
                        name: nm(name),
                        rtype: 1,
                        ttl: 300,
                        data: RData::Addr(a),
                    }],
                );
            } else {
                self.raw(t, dev, name, 1, RCODE_NXDOMAIN, vec![]);
            }
        }
        let desc = format!("{n} names of DGA family {family}, one resolving");
        self.label(
            "dga",
            false,
            &[dev],
            t0,
            t0 + span,
            names,
            &["dga", "new_destination"],
            desc,
        );
    }

    fn b32<R: Rng>(rng: &mut R, n: usize) -> String {
        const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
        (0..n).map(|_| A[rng.random_range(0..32)] as char).collect()
    }

    fn tunnel_iodine(&mut self) {
        let dev = self.pick(Group::Workstation, None);
        let t0 = self.when(true);
        let dom = word_domain(&mut self.rng);
        let zone = format!("t.{dom}");
        let dur = 10 * 60 * SEC_US;
        let mut t = t0;
        while t < t0 + dur {
            let q = format!(
                "{}{}.{}.{}.{zone}",
                ["0", "a", "b", "y"][self.rng.random_range(0..4)],
                Self::b32(&mut self.rng, 56),
                Self::b32(&mut self.rng, 57),
                Self::b32(&mut self.rng, 40)
            );
            let data = format!("\\# 120 {}", hex(&mut self.rng, 240));
            self.raw(
                t,
                dev,
                &q,
                10,
                RCODE_NOERROR,
                vec![Answer {
                    name: nm(&q),
                    rtype: 10,
                    ttl: 0,
                    data: RData::Text(data.into()),
                }],
            );
            t += self.rng.random_range(50_000..200_000);
        }
        self.label(
            "tunnel_fast",
            false,
            &[dev],
            t0,
            t0 + dur,
            vec![zone, dom],
            &["tunneling"],
            "iodine-like tunnel: NULL queries with base32 labels, ~8 q/s for 10 min".into(),
        );
    }

    fn tunnel_dnscat(&mut self) {
        let dev = self.pick(Group::Workstation, None);
        let t0 = self.when(true);
        let dom = word_domain(&mut self.rng);
        let dur = 15 * 60 * SEC_US;
        let mut t = t0;
        while t < t0 + dur {
            let qt = [16u16, 5, 15][self.rng.random_range(0..3)];
            let l2 = self.rng.random_range(10..62);
            let q = format!(
                "{}.{}.{dom}",
                hex(&mut self.rng, 62),
                hex(&mut self.rng, l2)
            );
            let data: RData = match qt {
                5 => RData::Name(nm(&format!("{}.{dom}", hex(&mut self.rng, 60)))),
                15 => RData::Text(format!("10 {}.{dom}", hex(&mut self.rng, 60)).into()),
                _ => RData::Text(format!("\"{}\"", hex(&mut self.rng, 200)).into()),
            };
            self.raw(
                t,
                dev,
                &q,
                qt,
                RCODE_NOERROR,
                vec![Answer {
                    name: nm(&q),
                    rtype: qt,
                    ttl: 0,
                    data,
                }],
            );
            t += self.rng.random_range(200_000..600_000);
        }
        self.label(
            "tunnel_fast",
            false,
            &[dev],
            t0,
            t0 + dur,
            vec![dom],
            &["tunneling"],
            "dnscat2-like tunnel: TXT/CNAME/MX queries with hex labels, ~2.5 q/s for 15 min".into(),
        );
    }

    fn exfil_slow(&mut self) {
        let dev = self.pick(Group::Server, Some(Role::App));
        let t0 = self.when(false);
        let dom = word_domain(&mut self.rng);
        let dur = 8 * HOUR_US;
        let end = (t0 + dur).min(self.end);
        let mut t = t0;
        let mut seq = 0u32;
        while t < end {
            let q = format!("{}.{:x}.{dom}", Self::b32(&mut self.rng, 52), seq);
            seq += 1;
            self.raw(t, dev, &q, 1, RCODE_NXDOMAIN, vec![]);
            t += 60 * SEC_US + self.rng.random_range(-5 * SEC_US..5 * SEC_US);
        }
        self.label(
            "exfil_slow",
            false,
            &[dev],
            t0,
            end,
            vec![dom],
            &["tunneling"],
            "slow exfiltration: one 52-char base32 label a minute for 8 h (~2 KB/h)".into(),
        );
    }

    fn new_country(&mut self) {
        let dev = self.pick(Group::Server, Some(Role::App));
        let t0 = self.when(false);
        let cc = self.world.unusual_country(self.rng.random());
        let dom = word_domain(&mut self.rng);
        let host = format!("api.{dom}");
        self.world
            .register_host(&host, Hosting::Direct, cc, 300, false);
        let addrs = self
            .world
            .host(&host)
            .map(|r| self.world.addrs(r, t0, false))
            .unwrap_or_default();
        let end = (t0 + 2 * HOUR_US).min(self.end);
        let mut t = t0;
        while t < end {
            self.ev(t, dev, &host, 1);
            t += 600 * SEC_US + self.rng.random_range(0..60 * SEC_US);
        }
        let mut dest = vec![host, dom, cc.to_string()];
        dest.extend(addrs.iter().map(|a| a.to_string()));
        self.label(
            "new_country",
            false,
            &[dev],
            t0,
            end,
            dest,
            &["new_country", "new_asn", "new_destination"],
            format!("a server starts talking to a service hosted in {cc}"),
        );
    }

    fn package_repo(&mut self) {
        let dev = self.pick(Group::Server, Some(Role::Web));
        let t0 = self.when(false);
        let names = [
            "deb.debian.org",
            "security.debian.org",
            "pypi.org",
            "files.pythonhosted.org",
        ];
        for (i, n) in names.iter().enumerate() {
            for k in 0..3 {
                self.ev(t0 + (i as i64 * 120 + k * 400) * SEC_US, dev, n, 1);
                self.ev(t0 + (i as i64 * 120 + k * 400) * SEC_US + 200, dev, n, 28);
            }
        }
        self.label(
            "package_repo",
            false,
            &[dev],
            t0,
            t0 + 30 * 60 * SEC_US,
            names.iter().map(|s| s.to_string()).collect(),
            &["policy", "new_destination"],
            "a server pulls packages from public repositories instead of the local mirror".into(),
        );
    }

    fn db_rate(&mut self) {
        let dev = self.pick(Group::Database, None);
        let t0 = self.when(false);
        let dur = 3 * HOUR_US;
        let mut dest = vec![];
        for (n, qt, p) in db_names() {
            let ttl = self.world.resolve(&n, qt, t0).cache_ttl;
            let eff = p.max(ttl) as i64 * SEC_US / 20;
            let mut t = t0 + self.rng.random_range(0..eff.max(1));
            while t < t0 + dur {
                self.ev(t, dev, &n, qt);
                t += eff + self.rng.random_range(0..eff / 10 + 1);
            }
            dest.push(n);
        }
        self.label(
            "db_rate",
            false,
            &[dev],
            t0,
            t0 + dur,
            dest,
            &["traffic_change"],
            "a database's query rate jumps 20x for 3 h (same names)".into(),
        );
    }

    fn intel(&mut self) {
        // (a) the queried name is on the feed
        let dev = self.pick(Group::Workstation, None);
        let t0 = self.when(true);
        let bad1 = format!("secure-{}", word_domain(&mut self.rng));
        let q1 = format!("update.{bad1}");
        self.world
            .register_host(&q1, Hosting::Direct, "NL", 300, false);
        for k in 0..4 {
            self.ev(t0 + k * 420 * SEC_US, dev, &q1, 1);
        }
        self.plan.intel.push(bad1.clone());
        self.label(
            "intel_qname",
            false,
            &[dev],
            t0,
            t0 + HOUR_US,
            vec![q1, bad1],
            &["threat_intel"],
            "a workstation resolves a domain on the threat-intel feed".into(),
        );
        // (b) a CNAME in the chain is on the feed
        let dev = self.pick(Group::Workstation, None);
        let t0 = self.when(true);
        let front = word_domain(&mut self.rng);
        let bad2 = format!(
            "{}-{}.{}",
            alnum(&mut self.rng, 5),
            ["track", "stat", "push"][self.rng.random_range(0..3)],
            ["xyz", "top", "online"][self.rng.random_range(0..3)]
        );
        let q2 = format!("img.{front}");
        let target = format!("x{}.{bad2}", self.rng.random_range(1..9));
        let a = self.world.geo.addr("US", self.rng.random(), false);
        self.world
            .register_fixed(&q2, vec![(q2.clone(), target.clone(), 300)], vec![a], 300);
        for k in 0..3 {
            self.ev(t0 + k * 600 * SEC_US, dev, &q2, 1);
        }
        self.plan.intel.push(bad2.clone());
        self.label(
            "intel_cname",
            false,
            &[dev],
            t0,
            t0 + HOUR_US,
            vec![q2, target, bad2],
            &["threat_intel"],
            "a benign-looking name whose CNAME target is on the feed".into(),
        );
        // (c) an answer address is on the feed
        let dev = self.pick(Group::Workstation, None);
        let t0 = self.when(true);
        let q3 = format!("cdn.{}", word_domain(&mut self.rng));
        let bad_ip = self.world.geo.addr("RO", self.rng.random(), false);
        self.world.register_fixed(&q3, vec![], vec![bad_ip], 300);
        for k in 0..3 {
            self.ev(t0 + k * 600 * SEC_US, dev, &q3, 1);
        }
        self.plan.intel.push(bad_ip.to_string());
        self.label(
            "intel_ip",
            false,
            &[dev],
            t0,
            t0 + HOUR_US,
            vec![q3, bad_ip.to_string()],
            &["threat_intel"],
            "a name resolving to an address on the feed".into(),
        );
    }

    fn doh(&mut self) {
        let dev = self.pick(Group::Workstation, None);
        let t0 = self.when(true);
        let names = [
            "use-application-dns.net",
            "mozilla.cloudflare-dns.com",
            "dns.google",
            "cloudflare-dns.com",
        ];
        for n in names {
            self.world
                .register_host(n, Hosting::Direct, "US", 300, true);
        }
        for (i, n) in names.iter().enumerate() {
            self.ev(t0 + i as i64 * 2 * SEC_US, dev, n, 1);
            self.ev(t0 + i as i64 * 2 * SEC_US + 300, dev, n, 28);
        }
        self.label(
            "doh_bypass",
            false,
            &[dev],
            t0,
            t0 + 10 * 60 * SEC_US,
            names.iter().map(|s| s.to_string()).collect(),
            &["policy"],
            "a browser switches to DNS over HTTPS (canary + DoH endpoints)".into(),
        );
    }

    fn ptr_sweep(&mut self) {
        let dev = self.pick(Group::Workstation, None);
        let t0 = self.when(true);
        let mut t = t0;
        for net in [2u8, 3] {
            for h in 1..=254u8 {
                self.ev(t, dev, &reverse_name(v4(10, net, 0, h)), 12);
                t += self.rng.random_range(150_000..350_000);
            }
        }
        self.label(
            "ptr_sweep",
            false,
            &[dev],
            t0,
            t,
            vec!["2.10.in-addr.arpa".into(), "3.10.in-addr.arpa".into()],
            &["reconnaissance"],
            "PTR sweep over 10.2.0.0/24 and 10.3.0.0/24".into(),
        );
    }

    fn new_device(&mut self) {
        let t0 = self.when(false);
        let day = ((t0 - self.start) / crate::traffic::DAY_US) as u32;
        let ip = v4(10, 2, 0, 250);
        let dev = self.org.add_device(
            self.world,
            ip,
            "unknown-10-2-0-250",
            Group::Server,
            Role::App,
            day,
            false,
            vec![],
        );
        let end = (t0 + 6 * HOUR_US).min(self.end);
        self.world
            .register_host("archive.raspberrypi.com", Hosting::Direct, "GB", 300, true);
        self.world
            .register_host("raspbian.raspberrypi.org", Hosting::Direct, "GB", 300, true);
        let mut t = t0;
        while t < end {
            for (i, n) in [
                "0.debian.pool.ntp.org",
                "archive.raspberrypi.com",
                "raspbian.raspberrypi.org",
            ]
            .iter()
            .enumerate()
            {
                self.ev(t + i as i64 * SEC_US, dev, n, 1);
            }
            t += HOUR_US;
        }
        self.label(
            "new_device",
            false,
            &[dev],
            t0,
            end,
            vec![ip.to_string()],
            &["new_device"],
            "an unknown device (not in the inventory) appears on the server network".into(),
        );
        self.used.push(dev);
    }

    // ---- benign confounders ----

    fn org_update(&mut self) {
        let t0 = self.when(false);
        let t0 = t0 - (t0 - self.start).rem_euclid(crate::traffic::DAY_US) + 10 * HOUR_US;
        let dom = format!(
            "{}agent.io",
            ["fleet", "secure", "observe", "patch"][self.rng.random_range(0..4)]
        );
        let host = format!("updates.{dom}");
        self.world
            .register_host(&host, Hosting::CloudFront, "US", 300, true);
        let servers: Vec<usize> = self
            .org
            .devices
            .iter()
            .filter(|d| d.group == Group::Server && d.inventory)
            .map(|d| d.idx)
            .collect();
        for d in &servers {
            let from = t0 + self.rng.random_range(0..2 * HOUR_US);
            self.plan
                .extra
                .entry(*d)
                .or_default()
                .push((host.clone(), 3600, from));
        }
        self.label(
            "org_update",
            true,
            &servers,
            t0,
            self.end,
            vec![host, dom],
            &[],
            "org-wide agent update: every server starts checking a new vendor domain the same day"
                .into(),
        );
    }

    fn saas(&mut self) {
        let t0 = self.when(true);
        let t0 = t0 - (t0 - self.start).rem_euclid(crate::traffic::DAY_US) + 9 * HOUR_US;
        let dom = format!(
            "{}.com",
            ["loopwork", "teamgrid", "paperflow", "brightdesk"][self.rng.random_range(0..4)]
        );
        let names = [
            format!("app.{dom}"),
            format!("api.{dom}"),
            format!("cdn.{dom}"),
        ];
        for n in &names {
            self.world
                .register_host(n, Hosting::Akamai, "US", 300, true);
        }
        let ws: Vec<usize> = self
            .org
            .devices
            .iter()
            .filter(|d| {
                d.group == Group::Workstation && d.active_from == 0 && !self.used.contains(&d.idx)
            })
            .map(|d| d.idx)
            .collect();
        let mut chosen: Vec<usize> = ws
            .iter()
            .copied()
            .filter(|_| self.rng.random_bool(0.8))
            .collect();
        if chosen.is_empty() {
            // tiny organisations: every workstation is busy with an attack; take one anyway
            chosen.extend(
                self.org
                    .devices
                    .iter()
                    .find(|d| d.group == Group::Workstation)
                    .map(|d| d.idx),
            );
        }
        for d in &chosen {
            let from = t0 + self.rng.random_range(0..4 * HOUR_US);
            for (n, p) in names.iter().zip([1800u32, 900, 3600]) {
                self.plan
                    .extra
                    .entry(*d)
                    .or_default()
                    .push((n.clone(), p, from));
            }
        }
        let mut dest: Vec<String> = names.to_vec();
        dest.push(dom);
        self.label(
            "saas_rollout",
            true,
            &chosen,
            t0,
            self.end,
            dest,
            &[],
            "a SaaS tool is rolled out to ~80% of workstations".into(),
        );
    }

    fn cdn_move(&mut self) {
        let t0 = self.when(false);
        // a popular domain everyone uses
        let idx = self.rng.random_range(1..8.min(self.world.catalog.len()));
        let d = self.world.catalog[idx].clone();
        let to = ["IE", "SG", "JP", "DE", "NL"]
            .into_iter()
            .find(|c| *c != d.country)
            .unwrap_or("IE");
        let mut names = vec![d.name.clone(), format!("www.{}", d.name)];
        names.extend(d.hosts.iter().cloned());
        for n in &names {
            if let Some(r) = self.world.host_mut(n) {
                r.moved = Some((t0, to));
            }
        }
        let mut dest = names;
        dest.push(to.into());
        self.label(
            "cdn_move",
            true,
            &[],
            t0,
            self.end,
            dest,
            &[],
            format!(
                "the CDN serving {} moves it from {} to {to}",
                d.name, d.country
            ),
        );
    }

    /// An inventory scanner's PTR sweep of the workstation network every night at 02:00, from
    /// the first day (so during learning too): its routine, not reconnaissance.
    /// A server of its own for a confounder (in the inventory, normal traffic from day 0), so
    /// that confounders never share a device with an attack or with each other.
    fn own_server(&mut self, last_octet: u8, name: &str) -> usize {
        let dev = self.org.add_device(
            self.world,
            v4(10, 2, 0, last_octet),
            name,
            Group::Server,
            Role::App,
            0,
            true,
            vec![],
        );
        self.used.push(dev);
        dev
    }

    fn scanner_routine(&mut self) {
        let dev = self.own_server(240, "scan01");
        for day in 0..self.days {
            let mut t = self.start
                + day as i64 * crate::traffic::DAY_US
                + 2 * HOUR_US
                + self.rng.random_range(0..10 * 60 * SEC_US);
            for h in 1..=254u8 {
                self.ev(t, dev, &reverse_name(v4(10, 1, 0, h)), 12);
                t += self.rng.random_range(200_000..600_000);
            }
        }
        let from = self.start + self.learn_days as i64 * crate::traffic::DAY_US;
        self.label(
            "scanner_routine",
            true,
            &[dev],
            from,
            self.end,
            vec![],
            &[],
            "an inventory scanner sweeps 10.1.0.0/24 by PTR every night at 02:00, learning included"
                .into(),
        );
    }

    /// A server whose retired names are still configured: it re-asks the same few names that
    /// do not exist every few seconds for the rest of the run.
    fn misconfig(&mut self) {
        let dev = self.own_server(241, "app-legacy");
        let t0 = self.when(false);
        let names = [
            internal("fs-old"),
            format!("_ldap._tcp.dc._msdcs.old.{}", crate::world::INTERNAL_SUFFIX),
            "telemetry.retired-vendor.com".to_string(),
        ];
        let mut t = t0;
        let end = (t0 + 30 * HOUR_US).min(self.end);
        while t < end {
            for (i, n) in names.iter().enumerate() {
                let qtype = if n.starts_with("_ldap") { 33 } else { 1 };
                self.raw(
                    t + i as i64 * 300_000,
                    dev,
                    n,
                    qtype,
                    RCODE_NXDOMAIN,
                    vec![],
                );
            }
            t += self.rng.random_range(3 * SEC_US..6 * SEC_US);
        }
        self.label(
            "misconfig",
            true,
            &[dev],
            t0,
            end,
            vec![],
            &[],
            "a server keeps re-asking three retired names that no longer exist (every ~4 s)".into(),
        );
    }

    /// A workstation's antivirus runs a full scan: hundreds of reputation lookups an hour with
    /// hash labels, to the same zone every workstation uses lightly.
    fn av_scan(&mut self) {
        let dev = self.pick(Group::Workstation, None);
        let t0 = self.when(true);
        let end = (t0 + 3 * HOUR_US).min(self.end);
        let zone = self.org.devices[dev].av_zone;
        let mut t = t0;
        while t < end {
            let h = hex(&mut self.rng, 40);
            let name = if zone == "sophosxl.net" {
                format!(
                    "{}.{}.f.sophosxl.net",
                    &h[..32],
                    self.rng.random_range(0..9)
                )
            } else {
                format!("{h}.{zone}")
            };
            self.ev(t, dev, &name, 1);
            t += self.rng.random_range(2 * SEC_US..12 * SEC_US);
        }
        self.label(
            "av_scan",
            true,
            &[dev],
            t0,
            end,
            vec![],
            &[],
            format!(
                "a full antivirus scan: ~500 hash-label reputation lookups an hour under {zone}"
            ),
        );
    }

    /// A DGA whose names partly resolve (parked and sinkholed domains): one infection, many
    /// generated names that answer.
    fn dga_resolving(&mut self, names: Vec<String>, family: &str) {
        let dev = self.pick(Group::Workstation, None);
        let t0 = self.when(true);
        let n = names.len();
        let span = 15 * 60 * SEC_US;
        for (i, name) in names.iter().enumerate() {
            let t = t0 + (i as i64 * span) / n as i64 + self.rng.random_range(0..SEC_US);
            if i % 3 == 0 {
                let cc = ["US", "DE", "RU"][self.rng.random_range(0..3)];
                let a = self.world.geo.addr(cc, self.rng.random(), false);
                let ans = vec![Answer {
                    name: nm(name),
                    rtype: 1,
                    ttl: 300,
                    data: RData::Addr(a),
                }];
                self.raw(t, dev, name, 1, RCODE_NOERROR, ans);
            } else {
                self.raw(t, dev, name, 1, RCODE_NXDOMAIN, vec![]);
            }
        }
        let desc = format!(
            "{n} names of DGA family {family}, a third of them resolving (parked, sinkholed)"
        );
        self.label(
            "dga",
            false,
            &[dev],
            t0,
            t0 + span,
            names,
            &["dga", "new_destination"],
            desc,
        );
    }

    /// Short C2 and tunnel sessions of a dozen queries, in the documented wire formats of
    /// public tools (no threat feed knows their domains): what a cold-start detector must see.
    /// `variant`: 0 dnscat2 (hex session id + sequence under TXT/MX/CNAME), 1 DNSExfiltrator
    /// (base32 chunks `<seq>.<data>` under TXT... answered), 2 a TXT stager pulling numbered
    /// chunks, 3 an A-record tunnel (short base32-like labels, answers in CGNAT space), 4 C2
    /// rotating record types over a lookalike domain with base64 in labels, 5 iodine/sods
    /// style NULL queries.
    fn cold_c2(&mut self, variant: u32) {
        let dev = self.pick(Group::Workstation, None);
        let t0 = self.when(true);
        let w = word_domain(&mut self.rng);
        let (l, tld) = w.split_once('.').unwrap_or((&w, "com"));
        let dom = match variant {
            4 => format!("rnicrosoft-{l}.{tld}"),
            _ => format!("{l}.{tld}"),
        };
        let txt = |s: String| {
            vec![Answer {
                name: nm("x.invalid"),
                rtype: 16,
                ttl: 0,
                data: RData::Text(s.into()),
            }]
        };
        let session = hex(&mut self.rng, 4);
        let mut t = t0;
        let mut names = Vec::new();
        for i in 0..12u32 {
            t += self.rng.random_range(500_000..3 * SEC_US);
            let (q, qt, ans): (String, u16, Vec<Answer>) = match variant {
                0 => {
                    let data = hex(&mut self.rng, 24);
                    let qt = [16u16, 15, 5][i as usize % 3];
                    (
                        format!("{session}{:04x}{data}.{dom}", i),
                        qt,
                        txt(hex(&mut self.rng, 30)),
                    )
                }
                1 => {
                    let b32 = Self::b32(&mut self.rng, 40);
                    (format!("{i}.{b32}.{dom}"), 16, txt("OK".into()))
                }
                2 => (
                    format!("{}.dl.{dom}", i + 1),
                    16,
                    txt(alnum(&mut self.rng, 200)),
                ),
                3 => {
                    let d = Self::b32(&mut self.rng, 8);
                    let a = dnsight_model::Answer {
                        name: nm("x.invalid"),
                        rtype: 1,
                        ttl: 0,
                        data: RData::Addr(v4(
                            100,
                            64 + (i % 4) as u8,
                            self.rng.random(),
                            self.rng.random(),
                        )),
                    };
                    (format!("{d}.{dom}"), 1, vec![a])
                }
                4 => {
                    let b = alnum(&mut self.rng, 14);
                    let qt = [1u16, 28, 16, 15, 5, 33][i as usize % 6];
                    let a = if qt == 1 {
                        vec![Answer {
                            name: nm("x.invalid"),
                            rtype: 1,
                            ttl: 60,
                            data: RData::Addr(self.world.geo.addr("NL", self.rng.random(), false)),
                        }]
                    } else {
                        txt(alnum(&mut self.rng, 40))
                    };
                    (format!("{b}==.{dom}"), qt, a)
                }
                _ => {
                    let b = Self::b32(&mut self.rng, 30);
                    (format!("p{b}.t.{dom}"), 10, txt("\\# 4 00000000".into()))
                }
            };
            let mut ans = ans;
            for a in &mut ans {
                a.name = nm(&q);
            }
            self.raw(t, dev, &q, qt, RCODE_NOERROR, ans);
            names.push(q);
        }
        let what = [
            "dnscat2 (hex session labels under TXT/MX/CNAME)",
            "DNSExfiltrator (numbered base32 chunks, TXT)",
            "a TXT stager pulling 12 numbered chunks",
            "an A-record tunnel (short base32 labels, answers in 100.64.0.0/10)",
            "C2 rotating record types over a lookalike domain, base64 in labels",
            "iodine/sods-style NULL queries",
        ][variant as usize % 6];
        self.label(
            "c2_cold",
            false,
            &[dev],
            t0,
            t + SEC_US,
            vec![dom],
            &["tunneling"],
            format!("12 queries of {what}, no feed knows the domain"),
        );
    }

    /// A server switched off over two days (maintenance), then back: quiet is not an attack.
    fn device_off(&mut self) -> (usize, i64, i64) {
        let dev = self.own_server(242, "app-maint");
        let t0 = self.when(false);
        let t0 = t0 - (t0 - self.start).rem_euclid(crate::traffic::DAY_US);
        let end = (t0 + 2 * crate::traffic::DAY_US).min(self.end);
        self.label(
            "device_off",
            true,
            &[dev],
            t0,
            (end + 6 * HOUR_US).min(self.end),
            vec![],
            &[],
            "a server is switched off for two days, then comes back".into(),
        );
        (dev, t0, end)
    }

    fn new_laptop(&mut self) {
        let t0 = self.when(true);
        let day = ((t0 - self.start) / crate::traffic::DAY_US) as u32;
        let t0 = self.start + day as i64 * crate::traffic::DAY_US;
        let favs = (0..30).map(|_| self.world.zipf(&mut self.rng)).collect();
        let ip = v4(10, 1, 9, 200);
        let dev = self.org.add_device(
            self.world,
            ip,
            "ws-new-hire",
            Group::Workstation,
            Role::Desktop,
            day,
            true,
            favs,
        );
        self.world
            .register_fixed(&internal("ws-new-hire"), vec![], vec![ip], 1200);
        self.used.push(dev);
        self.label(
            "new_laptop",
            true,
            &[dev],
            t0,
            self.end,
            vec![],
            &[],
            "a new employee's laptop (in the inventory) joins the network".into(),
        );
    }
}

/// Plans all scenarios: registers their names in the world, adds devices to the org and
/// generates the attack events.
pub fn plan(
    seed: u64,
    world: &mut World,
    org: &mut Org,
    start: i64,
    days: u32,
    learn_days: u32,
    dga: Option<&DgaSet>,
) -> Plan {
    let end = start + days as i64 * crate::traffic::DAY_US;
    let mut p = Planner {
        rng: crate::rng::stream(seed, &[5]),
        world,
        org,
        start,
        learn_days,
        days,
        end,
        used: vec![],
        plan: Plan {
            events: vec![],
            extra: HashMap::new(),
            labels: vec![],
            intel: vec![],
            off: vec![],
        },
        slot: 0,
    };
    p.beaconing(30, 0.1, 20, 6, Group::Workstation);
    p.beaconing(300, 0.25, 60, 24, Group::Server);
    p.beaconing(900, 0.4, 300, 36, Group::Workstation);
    let pick: u64 = p.rng.random();
    let fam = dga
        .and_then(|d| d.pick_family(pick))
        .map(|(f, v)| (f.to_string(), v.to_vec()));
    match fam {
        Some((f, v)) => {
            let n = p.rng.random_range(50..120).min(v.len());
            let off = p.rng.random_range(0..=(v.len() - n));
            p.dga(v[off..off + n].to_vec(), &f);
        }
        None => {
            let n = p.rng.random_range(50..120);
            let s: u32 = p.rng.random();
            p.dga(builtin_char(s, n), "builtin-char (Conficker-like)");
        }
    }
    let n = p.rng.random_range(40..80);
    let mut r2 = crate::rng::stream(seed, &[6]);
    let mut names = builtin_dict(&mut r2, n);
    names.sort();
    names.dedup();
    p.dga(names, "builtin-dictionary (suppobox-like word pairs)");
    p.tunnel_iodine();
    p.tunnel_dnscat();
    p.exfil_slow();
    p.new_country();
    p.package_repo();
    p.db_rate();
    p.intel();
    p.doh();
    p.ptr_sweep();
    p.new_device();
    p.org_update();
    p.saas();
    p.cdn_move();
    p.new_laptop();
    // confounders of issue 12 (routines, misconfiguration, benign encoders, quiet) and a DGA
    // whose names partly resolve; planned last so the scenarios above keep their devices
    p.scanner_routine();
    p.misconfig();
    p.av_scan();
    let n = p.rng.random_range(60..90);
    let s2: u32 = p.rng.random();
    let fam2 = dga
        .and_then(|d| d.pick_family(u64::from(s2)))
        .map(|(f, v)| (f.to_string(), v.to_vec()));
    match fam2 {
        Some((f, v)) if v.len() >= n => {
            let off = p.rng.random_range(0..=(v.len() - n));
            p.dga_resolving(v[off..off + n].to_vec(), &f);
        }
        _ => p.dga_resolving(builtin_char(s2, n), "builtin-char (Conficker-like)"),
    }
    for v in 0..6 {
        p.cold_c2(v);
    }
    let off = p.device_off();
    p.plan.off.push(off);
    // decoy feed entries a real operator's list would also contain
    for i in 0..150 {
        let d = word_domain(&mut p.rng);
        let (l, t) = d.split_once('.').unwrap_or((&d, "com"));
        p.plan.intel.push(format!("{l}-login{i}.{t}"));
    }
    for _ in 0..20 {
        let a = p.world.geo.addr("RU", p.rng.random(), false);
        p.plan.intel.push(a.to_string());
    }
    let mut plan = p.plan;
    plan.events.sort_by_key(|e| e.ts);
    let _ = reg;
    plan
}
