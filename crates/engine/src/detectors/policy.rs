//! **policy**: configured rules for groups, resolver bypass, and DNS rebinding.
//!
//! - `deny`: a group must never resolve these (e.g. `servers` use `mirror.corp.example`, never
//!   `deb.debian.org`); the alert carries the rule's reason.
//! - `allow_only`: a group (e.g. `db`) may resolve only these names and, unless switched off,
//!   internal names; anything else is a violation.
//! - DoH bypass (on by default): DNS-over-HTTPS resolver names (`dns.google`,
//!   `cloudflare-dns.com`, ...) and Firefox's canary `use-application-dns.net` show a client
//!   about to route its DNS around the organisation's resolver (and around dnsight).
//! - Rebinding: an external name that resolves to an internal address (Zeek's
//!   detect-external-names) can let a web page reach internal services.
//!
//! Why: policy needs no baseline, so it fires from the first event. Names match themselves and
//! everything below them.
//!
//! Loopback answers (127.0.0.0/8) are not counted: DNSBLs and antivirus reputation services
//! answer with them by design.
//!
//! Known false positives: split-horizon setups where public names legitimately resolve to
//! private addresses (VPN portals, `*.corp.example` published publicly): add those suffixes to
//! `internal_suffixes`. Browsers probe the canary routinely; its alert is low.

use super::{Ctx, Detector};
use crate::alert::{Finding, Kind};
use crate::config::EngineConfig;
use crate::enrich::{is_under, Enriched};
use serde_json::json;

/// Well-known DNS-over-HTTPS resolver names.
pub const DOH_NAMES: &[&str] = &[
    "dns.google",
    "dns.google.com",
    "cloudflare-dns.com",
    "mozilla.cloudflare-dns.com",
    "one.one.one.one",
    "dns.quad9.net",
    "dns9.quad9.net",
    "doh.opendns.com",
    "doh.cleanbrowsing.org",
    "dns.nextdns.io",
    "doh.dns.sb",
    "dns.adguard.com",
    "dns.adguard-dns.com",
    "doh.mullvad.net",
    "chrome.cloudflare-dns.com",
];

/// Firefox's canary domain.
pub const CANARY: &str = "use-application-dns.net";

/// The DoH resolver list is matched during enrichment (`Enriched::doh`, cached per name).
pub struct Policy;

impl Policy {
    pub fn new(_cfg: &EngineConfig) -> Policy {
        Policy
    }
}

impl Detector for Policy {
    fn name(&self) -> &'static str {
        "policy"
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        let q = ev.ev.qname.as_str();
        let group = ev.group.as_deref();
        let mut push = |score: f64, rule: &str, reason: &str, summary: String| {
            if ctx.book.is_open(Kind::Policy, ev.dev, ev.dest) {
                out.push(Finding::repeat(Kind::Policy, ev.dev, ev.dest));
                return;
            }
            out.push(Finding {
                kind: Kind::Policy,
                dev: ev.dev,
                destination: ev.dest.into(),
                score: if ev.tight { score + 10.0 } else { score },
                summary,
                evidence: json!({ "rule": rule, "reason": reason, "group": group, "qname": q }),
                sample: Some(ev.sample()),
                repeat: false,
            });
        };
        for r in &ctx.cfg.policy {
            if let Some(g) = &r.group {
                if group != Some(g.as_str()) {
                    continue;
                }
            }
            if (!r.except_devices.is_empty() || !r.except_groups.is_empty())
                && r.excepts(ev.ev.client, group)
            {
                continue;
            }
            let gname = r.group.as_deref().unwrap_or("every device");
            if let Some(d) = r.deny.iter().find(|d| is_under(q, d)) {
                push(
                    55.0,
                    &format!("deny {d} for {gname}"),
                    &r.reason,
                    format!(
                        "{} in group {gname} resolved {q}, which policy forbids: {}.",
                        ev.ev.client, r.reason
                    ),
                );
                return;
            }
            if !r.allow_only.is_empty() && ev.reverse_addr.is_none() {
                let allowed = r.allow_only.iter().any(|a| is_under(q, a))
                    || (r.allow_internal && ev.internal);
                if !allowed {
                    push(
                        50.0,
                        &format!("allow_only for {gname}"),
                        &r.reason,
                        format!(
                            "{} in group {gname} resolved {q}, outside its allowed list: {}.",
                            ev.ev.client, r.reason
                        ),
                    );
                    return;
                }
            }
        }
        if ctx.cfg.doh_bypass {
            if is_under(q, CANARY) {
                push(20.0, "doh_canary", "Firefox checks use-application-dns.net before enabling DNS over HTTPS", format!("{} probed the DoH canary {q}: a browser is deciding whether to bypass the local resolver.", ev.ev.client));
                return;
            }
            if let Some(d) = ev.doh {
                push(45.0, "doh_bypass", "DNS-over-HTTPS resolvers bypass the organisation's resolver and its protection", format!("{} resolved the DNS-over-HTTPS resolver {d}: its DNS may bypass the organisation's resolver.", ev.ev.client));
                return;
            }
        }
        // loopback answers are how DNSBLs and antivirus reputation services (spamhaus, McAfee
        // GTI, Sophos) encode verdicts: not rebinding
        let addr = if ev.internal_answer && !ev.internal && ev.resolved() {
            ev.ev.answers.iter().filter_map(|a| a.addr()).find(|a| {
                crate::enrich::is_internal_addr(ctx.cfg, *a)
                    && !crate::net::canonical(*a).is_loopback()
            })
        } else {
            None
        };
        if addr.is_some() {
            let learned = ev.entry.is_some_and(|e| e.is_known());
            push(
                if learned { 25.0 } else { 50.0 },
                "rebinding",
                "an external name resolving to an internal address can expose internal services (DNS rebinding)",
                format!("External name {q} resolved to internal address {} for {}.", addr.map(|a| a.to_string()).unwrap_or_default(), ev.ev.client),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::config::PolicyRule;

    #[test]
    fn deny_allow_only_doh_and_rebinding() {
        let mut cfg = cfg();
        cfg.internal_suffixes.push("corp.example".into());
        cfg.inventory
            .add_host("10.0.1.20".parse().unwrap(), Some("web1"), Some("servers"));
        cfg.inventory
            .add_host("10.0.1.10".parse().unwrap(), Some("db1"), Some("db"));
        cfg.policy.push(PolicyRule {
            group: Some("servers".into()),
            deny: vec!["deb.debian.org".into()],
            allow_only: vec![],
            allow_internal: true,
            reason: "use mirror.corp.example".into(),
            ..Default::default()
        });
        cfg.policy.push(PolicyRule {
            group: Some("db".into()),
            deny: vec![],
            allow_only: vec!["ntp.org".into()],
            allow_internal: true,
            reason: "db hosts are isolated".into(),
            ..Default::default()
        });
        let e = run(
            cfg,
            "
            +0 10.0.1.20 deb.debian.org A NOERROR 151.101.2.132        # servers: forbidden
            +1s 10.0.1.20 mirror.corp.example A NOERROR 10.0.5.5       # fine
            +1s 10.0.0.50 deb.debian.org A NOERROR 151.101.2.132       # not a server: fine
            +1s 10.0.1.10 pool.ntp.org A NOERROR 162.159.200.1         # db: allowed
            +1s 10.0.1.10 backup.corp.example A NOERROR 10.0.5.6       # db: internal allowed
            +1s 10.0.1.10 pastebin.com A NOERROR 104.20.1.1            # db: not allowed
            +1s 10.0.0.51 use-application-dns.net A NOERROR            # canary: low
            +1s 10.0.0.51 dns.google A NOERROR 8.8.8.8                 # DoH bypass
            +1s 10.0.0.52 intranet.attacker.example A NOERROR 192.168.1.1  # rebinding
            +1s 10.0.0.53 2.0.0.127.zen.spamhaus.org A NOERROR 127.0.0.2  # a DNSBL verdict: not rebinding
            ",
        );
        assert_alerts(
            &e,
            Some("policy"),
            "policy high 10.0.1.20 debian.org x1
             policy medium 10.0.1.10 pastebin.com x1
             policy medium 10.0.0.52 attacker.example x1
             policy medium 10.0.0.51 dns.google x1
             policy low 10.0.0.51 use-application-dns.net x1",
        );
        let a = e
            .alerts()
            .into_iter()
            .find(|a| a.destination == "debian.org")
            .unwrap();
        assert!(
            a.summary.contains("use mirror.corp.example"),
            "{}",
            a.summary
        );
    }

    #[test]
    fn excepted_devices_and_groups_do_not_break_the_rule() {
        let mut cfg = cfg();
        cfg.inventory
            .add_group(crate::Cidr::parse("10.0.3.0/24").unwrap(), "mirrors");
        cfg.policy.push(PolicyRule {
            deny: vec!["deb.debian.org".into()],
            reason: "use the local mirror".into(),
            except_devices: vec![
                crate::Cidr::parse("10.0.0.5").unwrap(),
                crate::Cidr::parse("10.1.0.0/24").unwrap(),
            ],
            except_groups: vec!["mirrors".into()],
            ..Default::default()
        });
        let e = run(
            cfg,
            "
            +0 10.0.0.5 deb.debian.org A NOERROR 151.101.2.132    # excepted device
            +1s 10.1.0.77 deb.debian.org A NOERROR 151.101.2.132  # excepted range
            +1s 10.0.3.9 deb.debian.org A NOERROR 151.101.2.132   # the mirrors group syncs it
            +1s 10.0.0.6 deb.debian.org A NOERROR 151.101.2.132   # everyone else: forbidden
            +1s 10.1.1.1 deb.debian.org A NOERROR 151.101.2.132   # just outside the range
            ",
        );
        let a = e
            .alerts()
            .into_iter()
            .find(|a| a.kind == crate::Kind::Policy)
            .unwrap();
        assert_eq!(a.devices, vec!["10.0.0.6", "10.1.1.1"]);
    }
}
