//! **new_country / new_asn**: answers for a device's query land in a country (or an autonomous
//! system) the device has never reached.
//!
//! Why: infrastructure for command-and-control and exfiltration is often hosted where the
//! organisation's normal traffic never goes. Only answer addresses outside private and special
//! ranges are looked up (GeoIP from a MaxMind-format database); without a database this
//! detector is off and the engine says so once (`Engine::notices`).
//!
//! Score: new_country `10 + 15·stability`, `+25·(0.4+0.6·stability)` if no device of the
//! organisation ever reached that country (`+12·(…)` if only one did), `+10` in a tight group,
//! `−15` for devices that already reach 20 or more countries. new_asn is the same idea with base `15` and is reported
//! only when the country is not new (a new country already says it).
//!
//! Known false positives: CDNs and anycast moving a service between regions, travelling
//! laptops with split tunnels, GeoIP database updates. Prevalence across the org damps them.

use super::{Ctx, Detector};
use crate::alert::{Finding, Kind};
use crate::enrich::Enriched;
use crate::geo::country_str;
use serde_json::json;

#[derive(Default)]
pub struct NewGeo;

impl Detector for NewGeo {
    fn name(&self) -> &'static str {
        "new_geo"
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        if ev.learning || ev.geo[0].is_none() {
            return;
        }
        let s = ctx.dev.stability();
        // built only when a finding is made (this runs on every answered event)
        let who = || match &ctx.dev.name {
            Some(n) => format!("{} ({n})", ev.ev.client),
            None => ev.ev.client.to_string(),
        };
        let mut new_country = false;
        for (ip, g) in ev.geo.iter().flatten() {
            if let Some(c) = g.country {
                if !new_country && !ctx.dev.countries.contains(&c) {
                    new_country = true;
                    let org = ctx.base.countries.get(&c).copied().unwrap_or(0);
                    let mut score = 10.0 + 15.0 * s;
                    if org == 0 {
                        score += 25.0 * (0.4 + 0.6 * s);
                    } else if org == 1 {
                        score += 12.0 * (0.4 + 0.6 * s);
                    }
                    if ev.tight {
                        score += 10.0;
                    }
                    if ctx.dev.countries.len() >= 20 {
                        score -= 15.0;
                    }
                    let known: Vec<&str> = ctx.dev.countries.iter().map(country_str).collect();
                    let who = who();
                    out.push(Finding {
                        kind: Kind::NewCountry,
                        dev: ev.dev,
                        destination: ev.dest.into(),
                        score,
                        summary: format!(
                            "{who} reached country {} for the first time ({} → {ip}){}.",
                            country_str(&c),
                            ev.ev.qname.as_str(),
                            if org == 0 {
                                "; no device of the organisation ever did"
                            } else {
                                ""
                            }
                        ),
                        evidence: json!({
                            "country": country_str(&c),
                            "address": ip.to_string(),
                            "asn": g.asn,
                            "device_countries": known,
                            "org_devices_in_country": org,
                            "device_stability": (s * 100.0).round() / 100.0,
                        }),
                        sample: Some(ev.sample()),
                        repeat: false,
                    });
                }
            }
        }
        if new_country {
            return;
        }
        for (ip, g) in ev.geo.iter().flatten() {
            if let Some(a) = g.asn {
                if !ctx.dev.asns.contains(&a) {
                    let org = ctx.base.asns.get(&a).copied().unwrap_or(0);
                    let mut score = 15.0 + 15.0 * s;
                    if org == 0 {
                        score += 20.0;
                    }
                    if ev.tight {
                        score += 10.0;
                    }
                    if ctx.dev.asns.len() >= 50 {
                        score -= 10.0;
                    }
                    let who = who();
                    out.push(Finding {
                        kind: Kind::NewAsn,
                        dev: ev.dev,
                        destination: ev.dest.into(),
                        score,
                        summary: format!("{who} reached network AS{a} for the first time ({} → {ip}).", ev.ev.qname.as_str()),
                        evidence: json!({ "asn": a, "address": ip.to_string(), "device_asns": ctx.dev.asns.len(), "org_devices_in_asn": org }),
                        sample: Some(ev.sample()),
                        repeat: false,
                    });
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::engine::Engine;

    fn geo_cfg() -> Option<crate::config::EngineConfig> {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/geo/maxmind-test-data");
        if !base.exists() {
            eprintln!("skipped: GeoIP test databases not present (corpus part)");
            return None;
        }
        let g = crate::geo::Geo::open(&[
            &base.join("GeoLite2-Country-Test.mmdb"),
            &base.join("GeoLite2-ASN-Test.mmdb"),
        ])
        .unwrap();
        Some(crate::config::EngineConfig {
            geoip: Some(std::sync::Arc::new(g)),
            ..cfg()
        })
    }

    #[test]
    fn new_country_then_new_asn() {
        // MaxMind test data: 2.125.160.216 GB; 81.2.69.142 GB; 89.160.20.112 SE; 1.128.0.1 AS1221.
        let Some(cfg) = geo_cfg() else { return };
        let e = run(
            cfg,
            "
            +0 10.0.0.5 www.example.co.uk A NOERROR 2.125.160.216
            +1d 10.0.0.5 news.example.co.uk A NOERROR 81.2.69.142     # GB again: nothing
            +1m 10.0.0.5 shop.example.se A NOERROR 89.160.20.112      # SE: new country
            +1m 10.0.0.5 shop.example.se A NOERROR 89.160.20.112      # SE is now known: nothing
            +1m 10.0.0.5 cdn.example.net A NOERROR 10.1.2.3           # private: never looked up
            ",
        );
        // medium (a quiet device, a country nobody reached); the new destination beside it says
        // the same thing ("new to this device"), so together they stay medium (`alert::combine`)
        assert_alerts(
            &e,
            Some("new_country"),
            "new_country medium 10.0.0.5 example.se x1",
        );
        assert_eq!(
            e.alerts()
                .iter()
                .find(|a| a.kind.as_str() == "new_country")
                .unwrap()
                .own_score
                .round(),
            47.0
        );
        let a = e
            .alerts()
            .into_iter()
            .find(|a| a.kind.as_str() == "new_country")
            .unwrap();
        assert_eq!(a.evidence["country"], "SE");
        assert_eq!(a.evidence["device_countries"], serde_json::json!(["GB"]));
    }

    #[test]
    fn without_a_database_it_is_off_and_says_so() {
        let e = Engine::new(cfg());
        assert!(
            e.notices().iter().any(|n| n.contains("new_country")),
            "{:?}",
            e.notices()
        );
    }
}
