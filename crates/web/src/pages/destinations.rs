//! Destinations: search, the destinations of open alerts, and one destination — who talks to
//! it and since when, intel matches, blocks, open alerts.

use super::{dest_link, device_link};
use crate::fmt::{enc, n, secs};
use crate::layout::{self, shell};
use crate::session::User;
use crate::table::col;
use crate::Web;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub(crate) struct DestQuery {
    q: Option<String>,
}

pub(crate) async fn list(
    State(web): State<Web>,
    user: User,
    Query(q): Query<DestQuery>,
) -> Response {
    if let Some(name) = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        return Redirect::to(&format!("/ui/destinations/{}", enc(name))).into_response();
    }
    // the counts only: no alert is first seen after the end of time (no per-hour rows)
    let o = match web.api.read(|s| s.alert_overview(i64::MAX, 100)).await {
        Ok(o) => o,
        Err(e) => return crate::error_response(e),
    };
    let body = html! {
        h1 { "Destinations" }
        form.filters method="get" action="/ui/destinations" {
            label { "Name or address " input name="q" size="30" placeholder="example.com" required; }
            button type="submit" { "Look up" }
        }
        h2 { "Destinations of open alerts" }
        (crate::table::counts("Destination", &o.top_destinations, "destination", dest_link))
    };
    shell("Destinations", &user, "destinations", body).into_response()
}

pub(crate) async fn page(State(web): State<Web>, user: User, Path(name): Path<String>) -> Response {
    let n0 = match dnsight_api::canonical_name(&name) {
        Ok(n) => n,
        Err(e) => return crate::error_response(e),
    };
    let n1 = n0.clone();
    let view = match web.api.pipe(move |h| h.destination(&n1)).await {
        Ok(v) => v,
        Err(e) => return crate::error_response(e),
    };
    let now = crate::session::now();
    let blocks = match web.api.read(move |s| s.active_blocks(now)).await {
        Ok(b) => b,
        Err(e) => return crate::error_response(e),
    };
    let covering: Vec<_> = blocks
        .into_iter()
        .filter(|b| b.name == n0 || (b.subdomains && n0.ends_with(&format!(".{}", b.name))))
        .collect();
    // what it resolved to lately, from the query log (its newest rows under the name)
    let n2 = n0.clone();
    let answers = match web
        .api
        .read(move |s| {
            s.search_queries(&dnsight_triage::QueryFilter {
                suffix: Some(n2),
                limit: Some(ANSWER_ROWS),
                ..Default::default()
            })
        })
        .await
    {
        Ok(p) => Some(answer_counts(&p.rows)),
        // no query log (turned off, or a store without one): the section says so
        Err(_) => None,
    };
    // where the answers are: the engine's GeoIP databases, looked up here (not on the actor)
    let geo = web.api.pipe(|h| h.geo()).await.ok().flatten();
    let (answers, places) = match (answers, geo) {
        (Some(mut a), Some(g)) => {
            let places = locate(&mut a, &g);
            (Some(a), Some(places))
        }
        (a, _) => (a, None),
    };
    let Some(v) = view else {
        if covering.is_empty() {
            return layout::not_found(&format!(
                "No device has talked to {n0:?}, and no block covers it."
            ));
        }
        return shell(
            "Destination",
            &user,
            "destinations",
            html! {
                h1.name { (n0) }
                p { "No device has this destination in its baseline." }
                (blocks_table(&covering))
            },
        )
        .into_response();
    };
    let body = html! {
        p.crumbs { a href="/ui/destinations" { "Destinations" } " › " (v.name) }
        h1.name { (v.name) }
        dl.facts {
            dt { "First seen" } dd { (v.first_seen.map(secs).unwrap_or_else(|| "—".into())) " (organisation)" }
            dt { "Last seen" } dd { (v.last_seen.map(secs).unwrap_or_else(|| "—".into())) }
            dt { "Internal" } dd { @if v.internal { "yes" } @else { "no" } }
            dt { "Devices" } dd { (v.devices.len()) }
            dt { "Open alerts" } dd { a href=(format!("/ui/alerts?destination={}", enc(&v.name))) { (v.open_alerts.len()) } }
            dt { "Queries" } dd { a href=(format!("/ui/queries?name={}", enc(&v.name))) { "in the query log" } }
        }
        section {
            h2 { "Threat intelligence" }
            @if v.intel.is_empty() { p.dim { "No feed lists it." } }
            ul { @for m in &v.intel { li { strong { (m.feed) } " lists " code { (m.entry) } } } }
        }
        section { h2 { "Blocks and allows" } (blocks_table(&covering)) }
        section {
            h2 { "Answers" }
            @match &answers {
                None => p.dim { "The query log is off: no answers to show." },
                Some(a) if a.is_empty() => p.dim { "No answer in the query log's newest " (ANSWER_ROWS) " queries under this name." },
                Some(a) => {
                    p.dim { "From the newest " (ANSWER_ROWS) " queries under this name in the query log." }
                    (crate::table::Table::new(vec![
                        col("Answer", "name", |r: &AnswerCount| html! { code { (r.answer) } }),
                        col("Where", "nowrap", |r: &AnswerCount| html! { (r.place.as_deref().unwrap_or("")) }),
                        col("Times", "num", |r: &AnswerCount| html! { (n(r.count)) }),
                        col("Last", "nowrap", |r: &AnswerCount| html! { (r.last) }),
                    ]).render(a))
                }
            }
        }
        section #countries {
            h2 { "Countries and networks of its answers" }
            @match &places {
                None => p.dim { "No GeoIP database ([geoip] in the config, or --geoip FILE): countries are not known." },
                Some(pl) if pl.is_empty() => p.dim { "None of its answers is a public address in the GeoIP databases." },
                Some(pl) => {
                    (crate::table::Table::new(vec![
                        col("Country", "", |p: &Place| html! { (p.country) }),
                        col("Network (ASN)", "", |p: &Place| html! { @if let Some(a) = p.asn { "AS" (a) } @else { span.dim { "—" } } }),
                        col("Answers", "num", |p: &Place| html! { (n(p.count)) }),
                    ]).class("countries").render(pl))
                }
            }
        }
        section {
            h2 { "Who talks to it" }
            div.scroll {
            table {
                thead { tr { th { "Device" } th { "Group" } th { "Since" } th { "Last" } th.num { "Count" } th { "State" } } }
                tbody { @for d in &v.devices {
                    tr { td { (device_link(&d.ip, d.name.as_deref())) } td { (d.group.as_deref().unwrap_or("—")) }
                         td.nowrap { (secs(d.first_seen)) } td.nowrap { (secs(d.last_seen)) } td.num { (n(d.count)) } td { (d.state) } }
                } }
            }
            }
        }
    };
    shell("Destination", &user, "destinations", body).into_response()
}

fn blocks_table(b: &[dnsight_triage::BlockRule]) -> maud::Markup {
    crate::table::blocks(
        b,
        vec![col("", "", |_: &dnsight_triage::BlockRule| {
            html! { a href="/ui/policy" { "policy" } }
        })],
    )
}

/// Query-log rows the answers section reads (one indexed page).
const ANSWER_ROWS: u32 = 1000;
/// Distinct answers shown at most.
const MAX_ANSWERS: usize = 30;

/// One answer (`TYPE data`, as the query log keeps it) and how often it came back.
pub(crate) struct AnswerCount {
    pub answer: String,
    pub count: u64,
    /// When it was last seen (the newest row's time, RFC 3339).
    pub last: String,
    /// `GB · AS64500` of an address answer (filled in by [`locate`]).
    pub place: Option<String>,
}

/// A country and network the answers point to, and how many answers did.
#[derive(Debug, PartialEq)]
pub(crate) struct Place {
    pub country: String,
    pub asn: Option<u32>,
    pub count: u64,
}

/// Looks up every address answer (`A x`, `AAAA x`) in `geo`: its place on the answer, and the
/// places summed by answers, most first. Private and special addresses have none.
pub(crate) fn locate(answers: &mut [AnswerCount], geo: &dnsight_engine::Geo) -> Vec<Place> {
    let mut by: std::collections::BTreeMap<(String, Option<u32>), u64> = Default::default();
    for a in answers.iter_mut() {
        let ip = a
            .answer
            .strip_prefix("A ")
            .or_else(|| a.answer.strip_prefix("AAAA "))
            .and_then(|x| x.trim().parse::<std::net::IpAddr>().ok());
        let Some(ip) = ip else { continue };
        let (info, _) = geo.lookup(ip);
        let country = info
            .country
            .as_ref()
            .map(|c| dnsight_engine::geo::country_str(c).to_string());
        if country.is_none() && info.asn.is_none() {
            continue;
        }
        let cc = country.unwrap_or_else(|| "??".into());
        a.place = Some(match info.asn {
            Some(n) => format!("{cc} · AS{n}"),
            None => cc.clone(),
        });
        *by.entry((cc, info.asn)).or_default() += a.count;
    }
    let mut v: Vec<Place> = by
        .into_iter()
        .map(|((country, asn), count)| Place {
            country,
            asn,
            count,
        })
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.count));
    v
}

/// Distinct answers of query-log rows (newest first), most frequent first.
pub(crate) fn answer_counts(rows: &[dnsight_triage::QueryRow]) -> Vec<AnswerCount> {
    let mut by: std::collections::HashMap<&str, (u64, &str, usize)> = Default::default();
    for (i, r) in rows.iter().enumerate() {
        for a in &r.answers {
            let e = by.entry(a.as_str()).or_insert((0, r.time.as_str(), i));
            e.0 += r.count;
        }
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by(|a, b| {
        b.1 .0
            .cmp(&a.1 .0)
            .then(a.1 .2.cmp(&b.1 .2))
            .then(a.0.cmp(b.0))
    });
    v.into_iter()
        .take(MAX_ANSWERS)
        .map(|(a, (count, last, _))| AnswerCount {
            answer: a.to_string(),
            count,
            last: last.to_string(),
            place: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(time: &str, answers: &[&str]) -> dnsight_triage::QueryRow {
        dnsight_triage::QueryRow {
            id: 0,
            ts_us: 0,
            time: time.into(),
            client: "10.0.0.5".into(),
            name: "a.example".into(),
            qtype: "A".into(),
            rcode: Some("NOERROR".into()),
            answers: answers.iter().map(|a| a.to_string()).collect(),
            action: None,
            blocked: None,
            upstream_us: None,
            source: "resolver".into(),
            transport: "udp".into(),
            count: 1,
        }
    }

    #[test]
    fn address_answers_get_their_country_and_network() {
        use mmdb_writer::{Value, Writer};
        let mut w = Writer::new("dnsight-test-country-asn");
        for (net, cc, asn) in [
            ("81.2.69.0/24", "GB", 64_500u32),
            ("2a02:1::/32", "DE", 64_501),
        ] {
            w.insert_value(
                net.parse::<ipnet::IpNet>().unwrap(),
                Value::map([
                    ("country_code", Value::from(cc)),
                    ("autonomous_system_number", Value::from(asn)),
                ]),
            )
            .unwrap();
        }
        let geo = dnsight_engine::Geo::from_bytes(vec![w.to_bytes().unwrap()]).unwrap();
        let rows = [
            row("t3", &["A 81.2.69.142", "AAAA 2a02:1::5"]),
            row("t2", &["A 81.2.69.143", "CNAME x.cdn.example"]),
            row("t1", &["A 10.0.0.9"]),
        ];
        let mut a = answer_counts(&rows);
        let places = locate(&mut a, &geo);
        assert_eq!(
            places,
            vec![
                Place {
                    country: "GB".into(),
                    asn: Some(64_500),
                    count: 2
                },
                Place {
                    country: "DE".into(),
                    asn: Some(64_501),
                    count: 1
                },
            ]
        );
        let of = |x: &str| a.iter().find(|r| r.answer == x).unwrap().place.clone();
        assert_eq!(of("A 81.2.69.142").as_deref(), Some("GB · AS64500"));
        assert_eq!(of("A 10.0.0.9"), None, "private: never looked up");
        assert_eq!(of("CNAME x.cdn.example"), None);
    }

    #[test]
    fn answers_are_counted_most_frequent_first_with_their_newest_time() {
        let rows = [
            row("t3", &["A 192.0.2.2"]),
            row("t2", &["A 192.0.2.1", "A 192.0.2.2"]),
            row("t1", &["A 192.0.2.1"]),
            row("t0", &["CNAME x.cdn.example", "A 192.0.2.2"]),
        ];
        let got: Vec<(String, u64, String)> = answer_counts(&rows)
            .into_iter()
            .map(|a| (a.answer, a.count, a.last))
            .collect();
        assert_eq!(
            got,
            vec![
                ("A 192.0.2.2".into(), 3, "t3".into()),
                ("A 192.0.2.1".into(), 2, "t2".into()),
                ("CNAME x.cdn.example".into(), 1, "t0".into()),
            ]
        );
    }
}
