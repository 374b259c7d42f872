//! Query logs from three different worlds in one `dnsight analyze` run: an AWS Route 53
//! Resolver log (cloud workload), a Windows DNS Server debug log (office domain controller) and
//! a Pi-hole log (branch office). Each has a device asking a name on the threat-intel feed; each
//! device gets its alert, and the report names each input's format and what it lacks.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `dnsight analyze` on `inputs` with a threat-intel feed of the names in `alerts`, and
/// checks what every such run must show: each input's report line names its format and event
/// count (`(file, "[format]", events)`), and for each `(device, name)` a `threat_intel` alert
/// names the device among its devices with that query among its samples. Returns the report.
fn analyze_with_feed(
    d: &Path,
    inputs: &[(PathBuf, &str, usize)],
    alerts: &[(&str, &str)],
) -> String {
    let intel = d.join("intel.txt");
    let feed: String = alerts.iter().map(|(_, q)| format!("{q}\n")).collect();
    std::fs::write(&intel, feed).unwrap();
    let out = d.join("alerts.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(["analyze", "--no-progress", "--intel"])
        .arg(&intel)
        .arg("--alerts-out")
        .arg(&out)
        .args(inputs.iter().map(|i| &i.0))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (path, fmt, events) in inputs {
        let file = path.file_name().unwrap().to_string_lossy();
        let line = report
            .lines()
            .find(|l| l.contains(&*file))
            .unwrap_or_else(|| panic!("{report}"));
        assert!(
            line.contains(fmt) && line.contains(&format!(" {events} events, 0 rejected")),
            "{line}\n{report}"
        );
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let v: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // one roll-up alert may name several devices that asked the feed's domain
    for (dev, q) in alerts {
        assert!(
            v.iter().any(|a| a["kind"] == "threat_intel"
                && a["devices"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|x| x == dev))
                && a["evidence"]["sample_queries"].to_string().contains(q)),
            "no threat_intel alert for {dev} / {q}:\n{text}"
        );
    }
    report
}

#[test]
fn route53_windows_and_pihole_logs_alert_for_their_devices() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r53 = d.join("route53.json");
    std::fs::write(&r53, concat!(
        r#"{"version":"1.100000","account_id":"111122223333","region":"eu-west-1","vpc_id":"vpc-0a1b2c3d","query_timestamp":"2026-12-03T09:00:00Z","query_name":"api.example.com.","query_type":"A","query_class":"IN","rcode":"NOERROR","answers":[{"Rdata":"203.0.113.9","Type":"A","Class":"IN"}],"srcaddr":"10.20.0.5","srcport":"40001","transport":"UDP","srcids":{"instance":"i-0abc"}}"#, "\n",
        r#"{"version":"1.100000","account_id":"111122223333","region":"eu-west-1","vpc_id":"vpc-0a1b2c3d","query_timestamp":"2026-12-03T09:00:05Z","query_name":"c2-cloud.evil.test.","query_type":"A","query_class":"IN","rcode":"NOERROR","answers":[{"Rdata":"198.51.100.66","Type":"A","Class":"IN"}],"srcaddr":"10.20.0.5","srcport":"40002","transport":"UDP","srcids":{"instance":"i-0abc"}}"#, "\n",
    )).unwrap();
    let win = d.join("dns.log");
    std::fs::write(&win, "\
DNS Server log file creation at 12/3/2026 9:00:00 AM
Log file wrap at 12/3/2026 9:00:00 AM

12/3/2026 9:00:10 AM 0F3C PACKET  000001F4A2B3C4D0 UDP Rcv 10.30.0.7       8f3a   Q [0001   D   NOERROR] A      (3)www(7)example(3)com(0)
12/3/2026 9:00:10 AM 0F3C PACKET  000001F4A2B3C4D0 UDP Snd 10.30.0.7       8f3a R Q [8081   DR  NOERROR] A      (3)www(7)example(3)com(0)
12/3/2026 9:00:12 AM 0F3C PACKET  000001F4A2B3C4D0 UDP Rcv 10.30.0.7       9001   Q [0001   D   NOERROR] A      (9)c2-office(4)evil(4)test(0)
12/3/2026 9:00:12 AM 0F3C PACKET  000001F4A2B3C4D0 UDP Snd 10.30.0.7       9001 R Q [8081   DR  NOERROR] A      (9)c2-office(4)evil(4)test(0)
").unwrap();
    let pihole = d.join("pihole.log");
    std::fs::write(
        &pihole,
        "\
Dec  3 09:00:20 dnsmasq[676]: query[A] news.example.org from 192.168.7.23
Dec  3 09:00:20 dnsmasq[676]: forwarded news.example.org to 1.1.1.1
Dec  3 09:00:20 dnsmasq[676]: reply news.example.org is 198.51.100.10
Dec  3 09:00:21 dnsmasq[676]: query[A] c2-branch.evil.test from 192.168.7.23
Dec  3 09:00:21 dnsmasq[676]: forwarded c2-branch.evil.test to 1.1.1.1
Dec  3 09:00:21 dnsmasq[676]: reply c2-branch.evil.test is 198.51.100.67
",
    )
    .unwrap();
    let report = analyze_with_feed(
        d,
        &[
            (r53, "[route53-resolver]", 2),
            (win, "[windows-dns]", 2),
            (pihole, "[dnsmasq]", 2),
        ],
        &[
            ("10.20.0.5", "c2-cloud.evil.test"),
            ("10.30.0.7", "c2-office.evil.test"),
            ("192.168.7.23", "c2-branch.evil.test"),
        ],
    );
    assert!(report.contains("this format lacks"), "{report}");
}

/// The exports and envelopes in one `dnsight analyze` run: a gzip'd CloudWatch Logs subscription
/// payload of Route 53 records, a Windows DNS analytic-event export as Windows PowerShell writes
/// it (UTF-16, `Get-WinEvent | ConvertTo-Json`) and an Azure `records` document: each device
/// asking the feed's name gets its alert, and the report names each input's format.
#[test]
fn cloudwatch_windows_events_and_azure_records_alert_for_their_devices() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r53 = r#"{"version":"1.100000","account_id":"111122223333","region":"eu-west-1","vpc_id":"vpc-0a1b2c3d","query_timestamp":"2026-12-03T09:00:05Z","query_name":"c2-cloud.evil.test.","query_type":"A","query_class":"IN","rcode":"NOERROR","answers":[{"Rdata":"198.51.100.66","Type":"A","Class":"IN"}],"srcaddr":"10.20.0.5","srcport":"40002","transport":"UDP","srcids":{"instance":"i-0abc"}}"#;
    let cw = format!(
        "{{\"messageType\":\"DATA_MESSAGE\",\"owner\":\"111122223333\",\"logGroup\":\"/aws/route53resolver\",\"logStream\":\"vpc-0a1b2c3d\",\"subscriptionFilters\":[\"dnsight\"],\"logEvents\":[{{\"id\":\"1\",\"timestamp\":1796288405000,\"message\":{}}}]}}",
        serde_json::to_string(r53).unwrap()
    );
    // gzip'd by the gzip program (Debian's essential package), as CloudWatch delivers it
    let raw = d.join("cloudwatch-payload");
    std::fs::write(&raw, &cw).unwrap();
    assert!(Command::new("gzip")
        .arg("-n")
        .arg(&raw)
        .status()
        .unwrap()
        .success());
    let cwf = d.join("cloudwatch-payload.gz");
    let ps = "[\r\n    {\r\n        \"Id\":  256,\r\n        \"ProviderName\":  \"Microsoft-Windows-DNSServer\",\r\n        \"TimeCreated\":  \"\\/Date(1796288410000)\\/\",\r\n        \"Message\":  \"QUERY_RECEIVED: TCP=0; InterfaceIP=10.30.0.1; Source=10.30.0.7; RD=1; QNAME=c2-office.evil.test.; QTYPE=1; XID=36666; Port=50001; Flags=256; PacketData=0x8F3A\"\r\n    },\r\n    {\r\n        \"Id\":  257,\r\n        \"ProviderName\":  \"Microsoft-Windows-DNSServer\",\r\n        \"TimeCreated\":  \"\\/Date(1796288410020)\\/\",\r\n        \"Message\":  \"RESPONSE_SUCCESS: TCP=0; InterfaceIP=10.30.0.1; Destination=10.30.0.7; AA=0; AD=0; QNAME=c2-office.evil.test.; QTYPE=1; XID=36666; DNSSEC=0; RCODE=0; Port=50001; Flags=33152; Scope=Default; Zone=..Cache; PolicyName=NULL; PacketData=0x8F3A\"\r\n    }\r\n]\r\n";
    let mut utf16 = vec![0xff, 0xfe];
    for u in ps.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    let win = d.join("dns-analytic.json");
    std::fs::write(&win, utf16).unwrap();
    let az = d.join("PT1H.json");
    std::fs::write(&az, "{\n  \"records\": [\n    {\n      \"time\": \"2026-12-03T09:00:20.0000000Z\",\n      \"category\": \"AZFWDnsQuery\",\n      \"operationName\": \"AZFWDnsQuery\",\n      \"properties\": {\"SourceIp\": \"10.40.0.8\", \"SourcePort\": 5353, \"QueryId\": 7, \"QueryType\": \"A\", \"QueryClass\": \"IN\", \"QueryName\": \"c2-azure.evil.test.\", \"Protocol\": \"udp\", \"RequestSize\": 40, \"ResponseCode\": \"NOERROR\", \"ResponseFlags\": \"qr,rd,ra\", \"ResponseSize\": 80, \"RequestDurationSecs\": 0.002}\n    }\n  ]\n}\n").unwrap();
    analyze_with_feed(
        d,
        &[
            (cwf, "[route53-resolver]", 1),
            (win, "[windows-events]", 1),
            (az, "[azure-firewall]", 1),
        ],
        &[
            ("10.20.0.5", "c2-cloud.evil.test"),
            ("10.30.0.7", "c2-office.evil.test"),
            ("10.40.0.8", "c2-azure.evil.test"),
        ],
    );
}
