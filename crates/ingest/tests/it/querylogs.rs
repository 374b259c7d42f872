//! Corpus check of the query-log readers: every sample under `../shared/data/logs/` (real
//! vendor fixtures, see its README) is sniffed as the expected format and read; every reject
//! must be one the table below explains. Skips with a message when the folder is missing.

use dnsight_ingest::querylog::LogFormat;
use dnsight_ingest::{open_path_detect, Format, IngestOptions};
use std::path::{Path, PathBuf};

fn logs_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/logs");
    d.is_dir().then_some(d)
}

/// (folder, expected format, rejects explained: (reason, count, why)).
type Expect = (
    &'static str,
    Option<LogFormat>,
    &'static [(&'static str, u64, &'static str)],
);

const EXPECT: &[Expect] = &[
    ("route53_resolver", Some(LogFormat::Route53Resolver), &[]),
    ("route53_public", Some(LogFormat::Route53Public), &[]),
    (
        "gcp_cloud_dns",
        Some(LogFormat::GcpDns),
        &[(
            "log.no_client",
            1,
            "a record of a non-VM source network: no sourceIP",
        )],
    ),
    ("azure_firewall_dns", Some(LogFormat::AzureFirewall), &[]),
    // the analytic (ETW) events are one pretty-printed JSON document, not one record a line
    ("windows_dns_etw", None, &[]),
    ("infoblox", Some(LogFormat::Bind), &[]),
    (
        "bind",
        Some(LogFormat::Bind),
        &[(
            "log.bad_time",
            2,
            "two lines written without print-time and no syslog header: no time at all",
        )],
    ),
    ("efficientip", Some(LogFormat::Bind), &[]),
    ("unbound", Some(LogFormat::Unbound), &[]),
    // the sample holds reply and gravity lines only, no query line: no client, so no event
    (
        "pihole",
        Some(LogFormat::Dnsmasq),
        &[(
            "log.reply_without_query",
            23,
            "reply lines whose query line is not in the sample",
        )],
    ),
    ("coredns", Some(LogFormat::CoreDns), &[]),
    ("cisco_umbrella_dns", Some(LogFormat::Umbrella), &[]),
    ("cloudflare_dns", Some(LogFormat::Cloudflare), &[]),
    ("suricata_eve_dns", Some(LogFormat::SuricataEve), &[]),
];

const FIRSTS: &[&str] = &[
    "route53_resolver 172.31.86.159 does-not-exist.abc.com A NXDOMAIN",
    "route53_public 55.36.5.7 example.com A NOERROR",
    "gcp_cloud_dns 10.154.0.3 elastic.co A NOERROR",
    "azure_firewall_dns 1.128.0.0 ntp.ubuntu.com A NOERROR",
    "azure_firewall_dns 10.0.2.4 wpad.example.com A NXDOMAIN",
    "infoblox 192.168.0.1 a1.foo.com A NOERROR",
    "bind 192.168.1.1 example.com ANY REFUSED",
    "bind 104.219.136.31 example.com ANY REFUSED",
    "efficientip 10.63.240.253 wpad.erasmusmc.nl A NXDOMAIN",
    "unbound 192.168.1.1 api.opensubtitles.org A -",
    "coredns 172.17.0.4 httpbin.org.cluster.local A NXDOMAIN",
    "coredns 172.17.0.1 host.example.com A NOERROR",
    "cisco_umbrella_dns 192.168.1.1 www.elastic.co A NOERROR",
    "cloudflare_dns 175.16.199.0 example.com TYPE65535 NOERROR",
    "suricata_eve_dns 10.0.2.15 google.com AAAA NOERROR",
];

#[test]
fn every_vendor_sample_reads_with_only_explained_rejects() {
    let Some(dir) = logs_dir() else {
        eprintln!("skipping: ../shared/data/logs not present");
        return;
    };
    let mut report = Vec::new();
    let mut firsts = Vec::new();
    for (folder, want, explained) in EXPECT {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(folder))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        let mut rejected = std::collections::BTreeMap::<String, u64>::new();
        let mut events = 0;
        for f in &files {
            let r = open_path_detect(f, &IngestOptions::default());
            let Some(want) = want else {
                assert!(!matches!(r, Ok((Format::Log(_), _))), "{}", f.display());
                continue;
            };
            let (fmt, mut r) = r.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert_eq!(fmt, Format::Log(*want), "{}", f.display());
            let mut out = Vec::new();
            while r.next_batch(&mut out).unwrap() {}
            events += out.len();
            if let Some(e) = out.first() {
                let line = format!(
                    "{folder} {} {} {} {}",
                    e.client,
                    e.qname,
                    dnsight_model::rtype_to_str(e.qtype),
                    e.rcode.map_or("-".into(), dnsight_model::rcode_to_str)
                );
                firsts.push(line);
            }
            for (k, v) in &r.stats().rejected {
                *rejected.entry(k.clone()).or_default() += v;
            }
        }
        let expl: std::collections::BTreeMap<String, u64> = explained
            .iter()
            .map(|(k, n, _)| (k.to_string(), *n))
            .collect();
        assert_eq!(rejected, expl, "{folder}: rejects not explained");
        assert!(
            want.is_none() || events > 0 || *folder == "pihole",
            "{folder}: no events"
        );
        report.push(format!("{folder}: {events} events, rejects {rejected:?}"));
    }
    eprintln!("{}", report.join("\n"));
    // field-level expectations: the first event of each sample file (client, name, type, rcode)
    assert_eq!(firsts, FIRSTS);
}
