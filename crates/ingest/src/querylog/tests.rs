//! One story per format: a few lines written the way the program writes them (from the
//! vendors' documented formats, or copied from a real run of the Debian package where the
//! integration tests do not already run it), sniffed, read, and checked field by field.

use super::*;
use crate::{open_reader, Format};
use dnsight_model::Transport;
use dnsight_model::RCODE_NXDOMAIN;

fn read_with(text: &str, opts: &IngestOptions) -> (Format, Vec<DnsEvent>, IngestStats) {
    let head = text.as_bytes();
    let f = crate::sniff(head).unwrap_or_else(|| panic!("not sniffed: {text}"));
    let mut r = open_reader(
        Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
        "t",
        opts,
    )
    .unwrap();
    let mut out = Vec::new();
    while r.next_batch(&mut out).unwrap() {}
    (f, out, r.stats().clone())
}

fn read(text: &str) -> (Format, Vec<DnsEvent>, IngestStats) {
    read_with(text, &IngestOptions::default())
}

fn ts(s: &str) -> Ts {
    Ts::parse(s).unwrap()
}

fn addrs(e: &DnsEvent) -> Vec<String> {
    e.answers
        .iter()
        .filter_map(|a| a.addr())
        .map(|a| a.to_string())
        .collect()
}

#[test]
fn bind_querylog_and_security_lines() {
    let text = "\
03-Dec-2026 12:16:19.123 queries: info: client @0x7f3a2c00e1d8 10.0.0.5#51234 (www.Example.com): query: www.Example.com IN A +E(0)K (10.0.0.1)
03-Dec-2026 12:16:20.000 queries: info: client @0x7f3a2c00e1d8 2001:db8::5#40000 (mail.example.com): query: mail.example.com IN MX -T (2001:db8::1)
19-Oct-2022 05:34:02.425 client @0x7f65100ee4d8 192.168.1.1#3076 (example.com): query (cache) 'example.com/ANY/IN' denied
03-Dec-2026 12:16:21.000 queries: info: client garbage
";
    let (f, evs, st) = read(text);
    assert_eq!(f, Format::Log(LogFormat::Bind));
    assert_eq!(evs.len(), 3, "{st:?}");
    let e = &evs[0];
    assert_eq!(e.ts, ts("2026-12-03T12:16:19.123Z"));
    assert_eq!(e.client.to_string(), "10.0.0.5");
    assert_eq!(e.client_port, 51234);
    assert_eq!(e.qname.as_str(), "www.example.com");
    assert_eq!(e.qtype, 1);
    assert_eq!(e.server.to_string(), "10.0.0.1");
    assert!(e.flags.has(Flags::RD) && e.rcode.is_none() && e.source == Source::Log);
    assert_eq!(evs[1].transport, Transport::Tcp);
    assert!(!evs[1].flags.has(Flags::RD));
    assert_eq!((evs[2].qtype, evs[2].rcode), (255, Some(5)));
    assert_eq!(st.rejected.get("log.bad_addr"), Some(&1), "{st:?}");
}

#[test]
fn bind_zone_less_times_use_the_configured_zone() {
    let opts = IngestOptions {
        log_tz: jiff::tz::TimeZone::get("Europe/Paris").unwrap(),
        ..Default::default()
    };
    let (_, evs, _) = read_with(
        "03-Jul-2026 12:00:00.000 client @0x1 10.0.0.5#5 (a.example): query: a.example IN A + (10.0.0.1)\n",
        &opts,
    );
    assert_eq!(evs[0].ts, ts("2026-07-03T10:00:00Z"));
}

#[test]
fn infoblox_and_efficientip_carry_rcode_and_answers() {
    let text = "<30>Mar 11 23:51:31 infoblox.localdomain named[11042]: 07-Apr-2022 08:08:10.043 client 192.168.0.1#57398 UDP: query: a1.foo.com IN A response: NOERROR +ED a1.foo.com 28800 IN A 10.1.1.1; a1.foo.com 28800 IN A 10.1.1.2;
<30>Mar 11 23:51:31 infoblox.localdomain named[11042]: 07-Apr-2022 08:08:10.043 client 192.168.0.1#57398 UDP: query: nx.foo.com IN A response: NXDOMAIN +ED
<13>Feb 25 10:14:13 named[52927]: client 10.63.240.253#63059 (eu.example.com.): answer: eu.example.com. IN A (10.176.0.10) -> NOERROR 51 CNAME eu.cdn.example.net. 7 A 20.50.73.9
";
    let (f, evs, st) = read(text);
    assert_eq!(f, Format::Log(LogFormat::Bind));
    assert_eq!(evs.len(), 3, "{st:?}");
    assert_eq!(evs[0].ts, ts("2022-04-07T08:08:10.043Z"));
    assert_eq!(evs[0].rcode, Some(0));
    assert_eq!(addrs(&evs[0]), ["10.1.1.1", "10.1.1.2"]);
    assert!(evs[1].is_nxdomain());
    let e = &evs[2];
    assert_eq!(e.server.to_string(), "10.176.0.10");
    assert_eq!(
        e.answers[0].target().unwrap().as_str(),
        "eu.cdn.example.net"
    );
    assert_eq!(e.answers[1].name.as_str(), "eu.cdn.example.net");
    assert_eq!(addrs(e), ["20.50.73.9"]);
    assert_eq!(st.rejected_total(), 0);
}

#[test]
fn unbound_queries_and_replies_pair() {
    // as Unbound 1.17 writes its log file with log-queries and log-replies (copied from a run)
    let text = "\
[1796300172] unbound[21485:0] info: start of service (unbound 1.17.1).
[1796300173] unbound[21485:0] info: 127.0.0.1 www.example.test. A IN
[1796300173] unbound[21485:0] info: 127.0.0.1 www.example.test. A IN NOERROR 0.000000 1 61
[1796300173] unbound[21485:0] info: 127.0.0.1 nope.example.test. AAAA IN
[1796300173] unbound[21485:0] info: 127.0.0.1 nope.example.test. AAAA IN NXDOMAIN 0.000000 1 46
[1796300174] unbound[21485:0] info: 10.0.0.7 only-query.example. TXT IN
";
    let (f, evs, st) = read(text);
    assert_eq!(f, Format::Log(LogFormat::Unbound));
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert_eq!(evs[0].ts, Ts::from_secs(1796300173));
    assert_eq!(evs[0].qname.as_str(), "www.example.test");
    assert_eq!((evs[0].rcode, evs[0].response_size), (Some(0), Some(61)));
    assert!(evs[1].is_nxdomain() && evs[1].qtype == 28);
    assert_eq!((evs[2].qtype, evs[2].rcode), (16, None));
    assert_eq!(st.rejected_total(), 0);
    // via syslog (pfSense) and with log-time-ascii
    let (f, evs, _) = read("<30>Aug 15 16:19:02 unbound[26931]: [26931:0] info: 192.168.1.1 api.example.org. A IN\nDec 03 12:16:13 unbound[21485:0] info: 10.0.0.9 b.example. A IN NOERROR 0.01 0 50\n");
    assert_eq!(f, Format::Log(LogFormat::Unbound));
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].client.to_string(), "192.168.1.1");
    assert_eq!(evs[1].rtt_us, Some(10_000));
}

#[test]
fn dnsmasq_extra_pairs_by_serial() {
    // dnsmasq 2.90 with log-queries=extra (copied from a run against Unbound)
    let text = "\
Dec  3 12:16:18 dnsmasq[21565]: started, version 2.90 cachesize 100
Dec  3 12:16:19 dnsmasq[21565]: 1 127.0.0.1/33743 query[A] www.example.test from 127.0.0.1
Dec  3 12:16:19 dnsmasq[21565]: 1 127.0.0.1/33743 forwarded www.example.test to 127.0.0.1#53530
Dec  3 12:16:19 dnsmasq[21565]: 1 127.0.0.1/33743 reply www.example.test is 192.0.2.1
Dec  3 12:16:19 dnsmasq[21565]: 2 127.0.0.1/51477 query[A] nope.example.test from 127.0.0.1
Dec  3 12:16:19 dnsmasq[21565]: 2 127.0.0.1/51477 reply nope.example.test is NXDOMAIN
Dec  3 12:16:19 dnsmasq[21565]: 4 127.0.0.1/40402 query[A] blocked.test from 127.0.0.1
Dec  3 12:16:19 dnsmasq[21565]: 4 127.0.0.1/40402 config blocked.test is 0.0.0.0
Dec  3 12:16:19 dnsmasq[21565]: 5 127.0.0.1/45313 query[AAAA] www.example.test from 127.0.0.1
Dec  3 12:16:19 dnsmasq[21565]: 5 127.0.0.1/45313 reply www.example.test is NODATA-IPv6
";
    let (f, evs, st) = read(text);
    assert_eq!(f, Format::Log(LogFormat::Dnsmasq));
    assert_eq!(evs.len(), 4, "{evs:?}");
    assert_eq!(evs[0].client_port, 33743);
    assert_eq!(addrs(&evs[0]), ["192.0.2.1"]);
    assert!(evs[1].is_nxdomain());
    assert_eq!(addrs(&evs[2]), ["0.0.0.0"]);
    assert_eq!(
        (evs[3].qtype, evs[3].rcode, evs[3].answers.len()),
        (28, Some(0), 0)
    );
    assert_eq!(st.rejected_total(), 0);
}

#[test]
fn pihole_plain_log_queries_with_a_cname_chain() {
    let text = "\
Sep 21 00:00:10 dnsmasq[676]: query[A] www.example.org from 192.168.1.23
Sep 21 00:00:10 dnsmasq[676]: forwarded www.example.org to 1.1.1.1
Sep 21 00:00:10 dnsmasq[676]: reply www.example.org is <CNAME>
Sep 21 00:00:10 dnsmasq[676]: reply edge.cdn.example.net is 198.51.100.7
Sep 21 00:00:10 dnsmasq[676]: reply edge.cdn.example.net is 198.51.100.8
Sep 21 00:00:11 dnsmasq[676]: query[A] ads.example from 192.168.1.23
Sep 21 00:00:11 dnsmasq[676]: gravity blocked ads.example is 0.0.0.0
Sep 21 00:00:12 dnsmasq[676]: reply clients.l.google.com is 1.2.3.4
";
    let (_, evs, st) = read(text);
    assert_eq!(evs.len(), 2, "{evs:?}");
    let e = &evs[0];
    assert_eq!(e.client.to_string(), "192.168.1.23");
    assert_eq!(e.answers[0].rtype, 5);
    assert_eq!(
        e.answers[0].target().unwrap().as_str(),
        "edge.cdn.example.net"
    );
    assert_eq!(addrs(e), ["198.51.100.7", "198.51.100.8"]);
    assert_eq!(addrs(&evs[1]), ["0.0.0.0"]);
    assert_eq!(st.rejected.get("log.reply_without_query"), Some(&1));
}

#[test]
fn windows_debug_log_pairs_query_and_response() {
    let text = "\
DNS Server log file creation at 12/3/2026 12:00:00 PM
Log file wrap at 12/3/2026 12:00:00 PM

Message logging key (for packets - other items use a subset of these fields):
\tField #  Information         Values
\t-------  -----------         ------
\t   1     Date
\t   2     Time

12/3/2026 1:15:02 PM 0F3C PACKET  000001F4A2B3C4D0 UDP Rcv 10.0.0.20       8f3a   Q [0001   D   NOERROR] A      (3)www(7)example(3)com(0)
12/3/2026 1:15:02 PM 0F3C PACKET  000001F4A2B3C4D0 UDP Snd 10.0.0.1        41c2   Q [0001   D   NOERROR] A      (3)www(7)example(3)com(0)
12/3/2026 1:15:02 PM 0F3C PACKET  000001F4A2B3C4D0 UDP Rcv 10.0.0.1        41c2 R Q [8081   DR  NOERROR] A      (3)www(7)example(3)com(0)
12/3/2026 1:15:03 PM 0F3C PACKET  000001F4A2B3C4D0 UDP Snd 10.0.0.20       8f3a R Q [8081   DR  NOERROR] A      (3)www(7)example(3)com(0)
12/3/2026 1:15:04 PM 0F3C PACKET  000001F4A2B3C4D0 TCP Rcv 10.0.0.21       0007   Q [0001   D   NOERROR] AAAA   (4)nope(4)corp(0)
12/3/2026 1:15:04 PM 0F3C PACKET  000001F4A2B3C4D0 TCP Snd 10.0.0.21       0007 R Q [8385 A DR NXDOMAIN] AAAA   (4)nope(4)corp(0)
";
    let (f, evs, st) = read(text);
    assert_eq!(f, Format::Log(LogFormat::WindowsDebug));
    assert_eq!(evs.len(), 2, "{evs:?}");
    let e = &evs[0];
    assert_eq!(e.ts, ts("2026-12-03T13:15:02Z"));
    assert_eq!(e.client.to_string(), "10.0.0.20");
    assert_eq!(e.qname.as_str(), "www.example.com");
    assert_eq!(
        (e.id, e.rcode, e.rtt_us),
        (0x8f3a, Some(0), Some(1_000_000))
    );
    assert!(e.flags.has(Flags::RD) && e.flags.has(Flags::RA) && e.flags.has(Flags::QR));
    assert!(evs[1].is_nxdomain() && evs[1].flags.has(Flags::AA));
    assert_eq!(evs[1].transport, Transport::Tcp);
    assert_eq!(st.rejected_total(), 0, "{st:?}");
}

#[test]
fn route53_resolver_json() {
    let text = r#"{"version":"1.100000","account_id":"111122223333","region":"eu-west-1","vpc_id":"vpc-0a1b2c3d","query_timestamp":"2026-12-03T12:00:01Z","query_name":"api.example.com.","query_type":"A","query_class":"IN","rcode":"NOERROR","answers":[{"Rdata":"api.edge.example.net.","Type":"CNAME","Class":"IN"},{"Rdata":"203.0.113.9","Type":"A","Class":"IN"}],"srcaddr":"10.1.2.3","srcport":"48701","transport":"UDP","srcids":{"instance":"i-0abc"}}
{"version":"1.100000","query_timestamp":"2026-12-03T12:00:02Z","query_name":"nx.example.com.","query_type":"AAAA","query_class":"IN","rcode":"NXDOMAIN","answers":[],"srcaddr":"10.1.2.3","srcport":48702,"transport":"TCP","srcids":{}}
"#;
    let (f, evs, st) = read(text);
    assert_eq!(f, Format::Log(LogFormat::Route53Resolver));
    assert_eq!(evs.len(), 2);
    let e = &evs[0];
    assert_eq!(
        (e.client.to_string().as_str(), e.client_port),
        ("10.1.2.3", 48701)
    );
    assert_eq!(e.answers[1].name.as_str(), "api.edge.example.net");
    assert_eq!(addrs(e), ["203.0.113.9"]);
    assert!(evs[1].is_nxdomain());
    assert_eq!(evs[1].transport, Transport::Tcp);
    assert_eq!(st.rejected_total(), 0);
}

#[test]
fn suricata_eve_pairs_query_and_answer() {
    let text = r#"{"timestamp":"2026-12-03T12:00:00.100000+0000","flow_id":1,"event_type":"flow","src_ip":"10.0.2.15"}
{"timestamp":"2026-12-03T12:00:00.100000+0000","flow_id":2,"event_type":"dns","src_ip":"10.0.2.15","src_port":46686,"dest_ip":"10.0.2.3","dest_port":53,"proto":"UDP","dns":{"type":"query","id":51803,"rrname":"google.com","rrtype":"A","tx_id":0}}
{"timestamp":"2026-12-03T12:00:00.130000+0000","flow_id":2,"event_type":"dns","src_ip":"10.0.2.3","src_port":53,"dest_ip":"10.0.2.15","dest_port":46686,"proto":"UDP","dns":{"version":2,"type":"answer","id":51803,"flags":"8180","qr":true,"rd":true,"ra":true,"rcode":"NOERROR","rrname":"google.com","rrtype":"A","answers":[{"rrname":"google.com","rrtype":"A","ttl":299,"rdata":"142.250.1.1"}]}}
{"timestamp":"2026-12-03T12:00:01+0000","event_type":"dns","src_ip":"10.0.2.3","src_port":53,"dest_ip":"10.0.2.16","dest_port":5000,"proto":"UDP","dns":{"version":2,"type":"answer","id":7,"rcode":"NXDOMAIN","rrname":"nx.example","rrtype":"A"}}
"#;
    let (f, evs, st) = read(text);
    assert_eq!(f, Format::Log(LogFormat::SuricataEve));
    assert_eq!(evs.len(), 2, "{evs:?}");
    let e = &evs[0];
    assert_eq!(
        (e.client.to_string().as_str(), e.client_port),
        ("10.0.2.15", 46686)
    );
    assert_eq!(e.rtt_us, Some(30_000));
    assert_eq!(addrs(e), ["142.250.1.1"]);
    assert_eq!(e.answers[0].ttl, 299);
    assert_eq!(evs[1].client.to_string(), "10.0.2.16");
    assert!(evs[1].is_nxdomain());
    assert_eq!(st.rejected_total(), 0);
}

#[test]
fn coredns_plain_kubectl_and_json_wrapped() {
    let text = "[INFO] 10.244.0.5:42114 - 64820 \"A IN host.example.com. udp 57 false 1232\" NOERROR qr,aa,rd 66 0.000150566s\n";
    let (f, evs, _) = read(text);
    assert_eq!(f, Format::Log(LogFormat::CoreDns));
    let e = &evs[0];
    assert_eq!(
        (e.client.to_string().as_str(), e.client_port, e.id),
        ("10.244.0.5", 42114, 64820)
    );
    assert_eq!(
        (e.query_size, e.response_size, e.rtt_us),
        (Some(57), Some(66), Some(150))
    );
    assert!(e.flags.has(Flags::AA) && !e.flags.has(Flags::RA));
    let (_, evs, _) = read("2026-12-03T12:00:00.5Z [INFO] [::1]:37915 - 62762 \"AAAA IN x.example. tcp 29 false 512\" NXDOMAIN qr,rd,ra 100 0.00006286s\n");
    assert_eq!(evs[0].ts, ts("2026-12-03T12:00:00.5Z"));
    assert_eq!(evs[0].transport, Transport::Tcp);
    let (f, evs, _) = read("{\"log\":\"[INFO] 172.17.0.9:37723 - 6966 \\\"A IN httpbin.org. udp 29 false 512\\\" NOERROR qr,rd,ra 83 0.000082083s\\n\",\"stream\":\"stdout\",\"time\":\"2019-03-19T02:57:23.214583742Z\"}\n");
    assert_eq!(f, Format::Log(LogFormat::CoreDns));
    assert_eq!(evs[0].ts, ts("2019-03-19T02:57:23.214583Z"));
}

#[test]
fn powerdns_classic_and_structured() {
    let text = "\
Dec 03 12:00:00 ns1 pdns-recursor[811]: 7 [1/1] question for 'www.example.com|A' from 10.0.0.5:40000
Dec 03 12:00:01 ns1 pdns_recursor[811]: msg=\"Question\" subsystem=\"syncres\" level=\"0\" prio=\"Info\" tid=\"1\" ts=\"1796300101.250\" ecs=\"\" mtid=\"3\" proto=\"tcp\" qname=\"mail.example.com\" qtype=\"MX\" remote=\"10.0.0.6:40001\"
Dec 03 12:00:01 ns1 pdns_recursor[811]: msg=\"Answer\" subsystem=\"syncres\" level=\"0\" prio=\"Info\" tid=\"1\" ts=\"1796300101.260\" additional=\"1\" answers=\"0\" dotout=\"0\" ecs=\"\" mtid=\"3\" netms=\"0.102000\" outqueries=\"1\" proto=\"tcp\" qname=\"mail.example.com\" qtype=\"MX\" rcode=\"3\" rd=\"1\" remote=\"10.0.0.6:40001\" tcpout=\"0\" throttled=\"0\" timeouts=\"0\" totms=\"9.5\" validationState=\"Indeterminate\"
Dec 03 12:00:02 PowerDNS Recursor 4.8.8 (C) 2001-2022 PowerDNS.COM BV
";
    let (f, evs, st) = read(text);
    assert_eq!(f, Format::Log(LogFormat::PowerDns));
    assert_eq!(evs.len(), 2, "{st:?}");
    assert_eq!(
        (evs[0].qname.as_str(), evs[0].client_port),
        ("www.example.com", 40000)
    );
    assert_eq!(evs[1].ts, Ts::from_secs_f64(1796300101.25));
    assert_eq!((evs[1].qtype, evs[1].transport), (15, Transport::Tcp));
    assert_eq!((evs[1].rcode, evs[1].rtt_us), (Some(3), Some(9500)));
    assert!(evs[0].rcode.is_none());
    assert_eq!(st.rejected_total(), 0, "{st:?}");
}

#[test]
fn adguard_querylog_decodes_the_answer() {
    use dnsight_model::wire::{encode_response, Question};
    let mut wire = Vec::new();
    let q = Question::new(Name::parse("example.org").unwrap(), 1);
    let ans = Answer {
        name: q.name.clone(),
        rtype: 1,
        ttl: 60,
        data: RData::Addr("93.184.216.34".parse().unwrap()),
    };
    encode_response(&mut wire, 1, Flags(Flags::RD | Flags::RA), 0, &q, &[ans]).unwrap();
    let b64 = b64(&wire);
    let text = format!("{{\"IP\":\"192.168.1.2\",\"T\":\"2026-12-03T13:00:00.123456789+01:00\",\"QH\":\"example.org\",\"QT\":\"A\",\"QC\":\"IN\",\"CP\":\"\",\"Answer\":\"{b64}\",\"Result\":{{}},\"Elapsed\":1234000,\"Upstream\":\"https://dns10.quad9.net:443/dns-query\"}}\n");
    let (f, evs, _) = read(&text);
    assert_eq!(f, Format::Log(LogFormat::AdGuard));
    let e = &evs[0];
    assert_eq!(e.ts, ts("2026-12-03T12:00:00.123456Z"));
    assert_eq!((e.rcode, e.rtt_us), (Some(0), Some(1234)));
    assert_eq!(addrs(e), ["93.184.216.34"]);
}

fn b64(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn gcp_azure_cloudflare_json() {
    let gcp = r#"{"insertId":"x","jsonPayload":{"authAnswer":false,"protocol":"UDP","queryName":"www.example.com.","queryType":"A","rdata":"www.example.com.\t300\tIN\ta\t198.51.100.4\nwww.example.com.\t300\tIN\ta\t198.51.100.5","responseCode":"NOERROR","serverLatency":14,"sourceIP":"10.154.0.3","sourceNetwork":"default"},"logName":"projects/p/logs/dns.googleapis.com%2Fdns_queries","timestamp":"2026-12-03T09:16:05.341873447Z"}
{"insertId":"y","jsonPayload":{"queryName":"api.example.","queryType":"A","rdata":"","responseCode":"NXDOMAIN","sourceNetwork":"net"},"timestamp":"2026-12-03T09:16:06Z"}
"#;
    let (f, evs, st) = read(gcp);
    assert_eq!(f, Format::Log(LogFormat::GcpDns));
    assert_eq!(addrs(&evs[0]), ["198.51.100.4", "198.51.100.5"]);
    assert_eq!(evs[0].rtt_us, Some(14_000));
    assert_eq!(st.rejected.get("log.no_client"), Some(&1));

    let az = r#"{"category":"AzureFirewallDnsProxy","operationName":"AzureFirewallDnsProxyLog","properties":{"msg":"DNS Request: 10.0.2.4:61248 - 6513 A IN wpad.example.com. udp 43 false 512 NXDOMAIN qr,rd,ra 145 0.002846368s"},"resourceId":"/SUBSCRIPTIONS/X","time":"2026-06-08T20:40:04.0527790Z"}
{"category":"AZFWDnsQuery","properties":{"Protocol":"udp","QueryClass":"IN","QueryId":35817,"QueryName":"ntp.ubuntu.com.","QueryType":"A","RequestDurationSecs":0.0000286,"RequestSize":32,"ResponseCode":"NOERROR","ResponseFlags":"qr,aa,rd,ra","ResponseSize":152,"SourceIp":"10.0.2.5","SourcePort":47785},"time":"2026-01-31T23:39:50.8623870Z"}
{"category":"AzureFirewallNetworkRule","properties":{"msg":"TCP request from 10.0.0.1"},"time":"2026-01-31T23:39:50Z"}
"#;
    let (f, evs, st) = read(az);
    assert_eq!(f, Format::Log(LogFormat::AzureFirewall));
    assert_eq!(evs.len(), 2);
    assert!(evs[0].is_nxdomain());
    assert_eq!(evs[0].ts, ts("2026-06-08T20:40:04.052779Z"));
    assert_eq!(
        (evs[1].client_port, evs[1].id, evs[1].response_size),
        (47785, 35817, Some(152))
    );
    assert_eq!(st.rejected_total(), 0);

    let cf = r#"{"ColoCode":"MRS","EDNSSubnet":"1.128.0.0","EDNSSubnetLength":0,"QueryName":"example.com","QueryType":28,"ResponseCached":false,"ResponseCode":3,"SourceIP":"175.16.199.0","Timestamp":"1653557034000000000"}
{"Datetime":"2026-12-03T12:00:00Z","SrcIP":"10.0.0.5","SrcPort":5353,"QueryName":"www.example.com","QueryType":1,"QueryTypeName":"A","RCode":0,"ResolvedIPs":["203.0.113.1"],"Protocol":"https"}
"#;
    let (f, evs, _) = read(cf);
    assert_eq!(f, Format::Log(LogFormat::Cloudflare));
    assert_eq!(evs[0].ts, Ts::from_secs(1653557034));
    assert!(evs[0].is_nxdomain() && evs[0].qtype == 28);
    assert_eq!(addrs(&evs[1]), ["203.0.113.1"]);
    assert_eq!(evs[1].transport, Transport::Doh);
}

#[test]
fn technitium_route53_public_umbrella() {
    let (f, evs, _) = read("[2026-12-03 12:00:00 UTC] [192.168.1.10:53421] [UDP] QNAME: www.example.com; QTYPE: A; QCLASS: IN; RCODE: NoError; ANSWER: [203.0.113.5, 203.0.113.6]\n[2026-12-03 12:00:01 UTC] [192.168.1.10:53422] [HTTPS] QNAME: nx.example.com; QTYPE: AAAA; QCLASS: IN; RCODE: NxDomain; ANSWER: []\n");
    assert_eq!(f, Format::Log(LogFormat::Technitium));
    assert_eq!(addrs(&evs[0]), ["203.0.113.5", "203.0.113.6"]);
    assert!(evs[1].is_nxdomain() && evs[1].transport == Transport::Doh);

    let (f, evs, _) = read("1.0 2017-12-13T08:16:02.130Z Z123412341234 example.com A NOERROR UDP FRA6 55.36.5.7 -\n1.0 2017-12-13T08:15:50.342Z Z123412341234 bad.example.com A NXDOMAIN UDP IAD12 2001:db8::1234 192.168.111.0/24\n");
    assert_eq!(f, Format::Log(LogFormat::Route53Public));
    assert_eq!(evs[0].client.to_string(), "55.36.5.7");
    assert!(evs[1].is_nxdomain());

    let (f, evs, _) = read("\"2026-07-23 23:49:54\",\"user\",\"user,Machine\",\"192.168.1.1\",\"81.2.69.144\",\"Allowed\",\"1 (A)\",\"NOERROR\",\"www.example.co.\",\"Software/Technology\",\"Policy\",\"AD Users\",\"\"\n\"2026-07-23 23:50:25\",\"user\",\"user\",\"192.168.1.2\",\"81.2.69.144\",\"Blocked\",\"28 (AAAA)\",\"NXDOMAIN\",\"bad.example.\",\"Malware\",\"Policy\",\"AD Users\",\"BlockedCategories\"\n");
    assert_eq!(f, Format::Log(LogFormat::Umbrella));
    assert_eq!(evs[0].ts, ts("2026-07-23T23:49:54Z"));
    assert_eq!(evs[0].client.to_string(), "192.168.1.1");
    assert_eq!((evs[1].qtype, evs[1].rcode), (28, Some(RCODE_NXDOMAIN)));
}

#[test]
fn syslog_envelopes_rfc5424_and_iso() {
    let text = "<134>1 2026-12-03T12:00:00.250Z pihole dnsmasq 676 - - query[A] a.example from 10.0.0.5\n<134>1 2026-12-03T12:00:00.300Z pihole dnsmasq 676 - [meta x=\"1\"] reply a.example is 192.0.2.9\n";
    let (f, evs, _) = read(text);
    assert_eq!(f, Format::Log(LogFormat::Dnsmasq));
    assert_eq!(evs[0].ts, ts("2026-12-03T12:00:00.250Z"));
    assert_eq!(addrs(&evs[0]), ["192.0.2.9"]);
    let (_, evs, _) = read("2026-12-03T12:00:00.250000+00:00 ns1 named[1]: client @0x1 10.0.0.5#5 (a.example): query: a.example IN A + (10.0.0.1)\n");
    assert_eq!(evs[0].ts, ts("2026-12-03T12:00:00.250Z"));
}

#[test]
fn forced_format_reads_lines_that_do_not_sniff() {
    let opts = IngestOptions {
        format: Some(Format::Log(LogFormat::Dnsmasq)),
        ..Default::default()
    };
    let (_, evs, _) = {
        let mut r = open_reader(
            Box::new(std::io::Cursor::new(
                b"Dec  3 12:00:00 dnsmasq[1]: started\n".to_vec(),
            )),
            "t",
            &opts,
        )
        .unwrap();
        let mut out = Vec::new();
        while r.next_batch(&mut out).unwrap() {}
        ((), out, ())
    };
    assert!(evs.is_empty());
    assert_eq!(
        Format::from_name("windows-dns"),
        Some(Format::Log(LogFormat::WindowsDebug))
    );
    assert_eq!(Format::from_name("zeek-tsv"), Some(Format::ZeekTsv));
}

#[test]
fn every_registry_name_is_distinct_and_has_what_it_lacks() {
    let mut names: Vec<&str> = FORMATS.iter().map(|f| f.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), FORMATS.len());
    assert!(FORMATS
        .iter()
        .all(|f| !f.lacks.is_empty() && !f.title.is_empty()));
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    const SEEDS: &[&str] = &[
        "03-Dec-2026 12:16:19.123 queries: info: client @0x7f3a2c00e1d8 10.0.0.5#51234 (www.example.com): query: www.example.com IN A +E(0)K (10.0.0.1)",
        "[1796300173] unbound[21485:0] info: 127.0.0.1 www.example.test. A IN NOERROR 0.000000 1 61",
        "Dec  3 12:16:19 dnsmasq[21565]: 1 127.0.0.1/33743 reply www.example.test is 192.0.2.1",
        "12/3/2026 1:15:04 PM 0F3C PACKET  000001F4A2B3C4D0 TCP Snd 10.0.0.21       0007 R Q [8385 A DR NXDOMAIN] AAAA   (4)nope(4)corp(0)",
        "[INFO] 10.244.0.5:42114 - 64820 \"A IN host.example.com. udp 57 false 1232\" NOERROR qr,aa,rd 66 0.000150566s",
        "[2026-12-03 12:00:00 UTC] [192.168.1.10:53421] [UDP] QNAME: www.example.com; QTYPE: A; QCLASS: IN; RCODE: NoError; ANSWER: [203.0.113.5]",
        "\"2026-07-23 23:49:54\",\"user\",\"u\",\"192.168.1.1\",\"81.2.69.144\",\"Allowed\",\"1 (A)\",\"NOERROR\",\"www.example.co.\"",
        "<134>1 2026-12-03T12:00:00.250Z pihole dnsmasq 676 - [a=\"\\]\"] query[A] a.example from 10.0.0.5",
        r#"{"query_timestamp":"2026-12-03T12:00:01Z","query_name":"a.","query_type":"A","rcode":"NOERROR","answers":[{"Rdata":"1.2.3.4","Type":"A"}],"srcaddr":"10.1.2.3"}"#,
        r#"{"timestamp":"2026-12-03T12:00:00+0000","event_type":"dns","src_ip":"10.0.2.3","dest_ip":"10.0.2.15","dns":{"type":"answer","grouped":{"A":["1.2.3.4"]}}}"#,
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
        /// Any mutation of a valid line of any format, read as every format: no panic, every
        /// line accounted for.
        #[test]
        fn mutated_lines_never_panic(seed in 0..SEEDS.len(), cut in 0usize..200, junk in proptest::collection::vec(any::<u8>(), 0..24), at in 0usize..200) {
            let s = SEEDS[seed].as_bytes();
            let mut line: Vec<u8> = s[..cut.min(s.len())].to_vec();
            let at = at.min(line.len());
            line.splice(at..at, junk.iter().copied().filter(|&b| b != b'\n'));
            line.extend_from_slice(&s[cut.min(s.len())..]);
            line.push(b'\n');
            let _ = crate::sniff(&line);
            for f in FORMATS {
                let opts = IngestOptions { format: Some(Format::Log(f.format)), ..Default::default() };
                let mut r = open_reader(Box::new(std::io::Cursor::new(line.clone())), "t", &opts).unwrap();
                let mut out = Vec::new();
                while r.next_batch(&mut out).unwrap() {}
                prop_assert_eq!(r.stats().records, 1);
                prop_assert_eq!(r.stats().events as usize, out.len());
                for e in &out {
                    prop_assert!(e.qname.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
                }
            }
        }

        /// The `query_log` fuzz target (fuzz/fuzz_targets/query_log.rs) run in the normal test
        /// suite: the first byte picks a format or sniffing, a second picks a document shape
        /// to put in front (JSON array, Event XML, UTF-16, a cloud envelope), then random bytes.
        /// Never a panic; names printable; the stats agree with the output.
        #[test]
        fn query_log_fuzz_target_on_random_bytes(mode in any::<u8>(), shape in 0u8..6, bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut data: Vec<u8> = match shape {
                0 => Vec::new(),
                1 => b"[\n  {\n".to_vec(),
                2 => b"<Event xmlns='x'><System><EventID>257</EventID>".to_vec(),
                3 => vec![0xff, 0xfe, b'[', 0, b'{', 0],
                4 => b"{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":[{\"message\":\"".to_vec(),
                _ => b"{\"records\":[{\"data\":\"".to_vec(),
            };
            data.extend_from_slice(&bytes);
            let opts = IngestOptions {
                format: FORMATS.get(mode as usize).map(|f| Format::Log(f.format)),
                ..Default::default()
            };
            if let Ok(mut r) = open_reader(Box::new(std::io::Cursor::new(data)), "fuzz", &opts) {
                let mut out = Vec::new();
                let mut rounds = 0;
                while let Ok(true) = r.next_batch(&mut out) {
                    rounds += 1;
                    prop_assert!(rounds < 1_000_000);
                }
                for e in &out {
                    prop_assert!(e.qname.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
                    for a in &e.answers {
                        prop_assert!(a.name.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
                    }
                }
                prop_assert_eq!(r.stats().events as usize, out.len());
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = crate::sniff(&bytes);
            for f in FORMATS {
                let opts = IngestOptions { format: Some(Format::Log(f.format)), ..Default::default() };
                let mut r = open_reader(Box::new(std::io::Cursor::new(bytes.clone())), "t", &opts).unwrap();
                let mut out = Vec::new();
                while r.next_batch(&mut out).unwrap() {}
            }
        }
    }
}

#[test]
fn a_followed_pihole_log_delivers_answered_queries_without_waiting() {
    use crate::follow::{follow_path, FollowOptions, Start};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pihole.log");
    std::fs::write(
        &path,
        "Dec  3 12:00:00 dnsmasq[1]: query[A] a.example from 10.0.0.5\n",
    )
    .unwrap();
    let opts = FollowOptions {
        start: Start::Beginning,
        poll: std::time::Duration::from_millis(5),
    };
    let (mut r, stop) = follow_path(&path, &opts, &IngestOptions::default()).unwrap();
    let s = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(20));
        s.stop();
    });
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"Dec  3 12:00:00 dnsmasq[1]: reply a.example is 192.0.2.1\n")
        .unwrap();
    let mut out = Vec::new();
    while out.is_empty() {
        assert!(r.next_batch(&mut out).unwrap());
    }
    // the answered query came out while the file is idle: no later line was needed
    assert_eq!(addrs(&out[0]), ["192.0.2.1"]);
    f.write_all(b"Dec  3 12:00:01 dnsmasq[1]: query[A] b.example from 10.0.0.6\n")
        .unwrap();
    stop.stop();
    while r.next_batch(&mut out).unwrap() {}
    // the unanswered one is emitted at the end
    assert_eq!(out.len(), 2);
    assert!(out[1].rcode.is_none());
}
