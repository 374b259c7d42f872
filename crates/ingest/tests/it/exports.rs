//! Exports that are documents or envelopes rather than plain lines: the Windows DNS Server
//! analytic log as Event XML and as PowerShell JSON, and the cloud pipelines' envelopes
//! (CloudWatch Logs, Firehose, Azure diagnostic `records`, Google Cloud Logging exports). The
//! samples are written here the way each tool writes them (encodings included: Windows tools
//! write UTF-16), then sniffed and read through the same entry point as a file or an HTTP body.

use dnsight_ingest::querylog::LogFormat;
use dnsight_ingest::{open_reader_detect, Format, IngestOptions, IngestStats};
use dnsight_model::{DnsEvent, Ts};
use std::io::Write;

fn read(bytes: Vec<u8>) -> (Format, Vec<DnsEvent>, IngestStats) {
    let (f, mut r) = open_reader_detect(
        Box::new(std::io::Cursor::new(bytes)),
        "t",
        &IngestOptions::default(),
    )
    .unwrap();
    let mut out = Vec::new();
    while r.next_batch(&mut out).unwrap() {}
    (f, out, r.stats().clone())
}

fn utf16le_bom(s: &str) -> Vec<u8> {
    let mut b = vec![0xff, 0xfe];
    for u in s.encode_utf16() {
        b.extend_from_slice(&u.to_le_bytes());
    }
    b
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b).unwrap();
    gz.finish().unwrap()
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// `client name type rcode [addresses]` per event.
fn summary(evs: &[DnsEvent]) -> Vec<String> {
    evs.iter()
        .map(|e| {
            format!(
                "{} {} {} {} {:?}",
                e.client,
                e.qname,
                e.qtype,
                e.rcode.map_or("-".into(), dnsight_model::rcode_to_str),
                e.answers
                    .iter()
                    .filter_map(|a| a.addr())
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
            )
        })
        .collect()
}

fn ts(s: &str) -> Ts {
    Ts::parse(s).unwrap()
}

// The DNS messages of the samples (PacketData): the response to www.example.com A (id 0x1a2b,
// one answer 93.184.216.34, TTL 3600), its query, and an NXDOMAIN for nx.corp.example AAAA.
const RESPONSE_HEX: &str = "1A2B8180000100010000000003777777076578616D706C6503636F6D0000010001C00C0001000100000E1000045DB8D822";
const QUERY_HEX: &str = "1A2B0100000100000000000003777777076578616D706C6503636F6D0000010001";
const NX_HEX: &str = "030181830001000000000000026E7804636F7270076578616D706C6500001C0001";

fn xml_event(id: u32, time: &str, data: &[(&str, &str)]) -> String {
    let task = match id {
        256 => 1,
        257 => 2,
        258 => 3,
        _ => 5,
    };
    let mut s = format!("<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-DNSServer' Guid='{{EB79061A-A566-4698-9119-3ED2807060E7}}'/><EventID>{id}</EventID><Version>0</Version><Level>4</Level><Task>{task}</Task><Opcode>0</Opcode><Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime='{time}'/><EventRecordID>{id}</EventRecordID><Correlation/><Execution ProcessID='2412' ThreadID='3040'/><Channel>Microsoft-Windows-DNSServer/Analytical</Channel><Computer>DC1.corp.example</Computer><Security UserID='S-1-5-18'/></System><EventData>");
    for (k, v) in data {
        s.push_str(&format!("<Data Name='{k}'>{v}</Data>"));
    }
    s.push_str("</EventData></Event>");
    s
}

/// The sample's DNS events, each written by `fmt` (Event XML, or an Elastic agent's JSON).
fn dns_sample(fmt: fn(u32, &str, &[(&str, &str)]) -> String) -> Vec<String> {
    vec![
        fmt(
            256,
            "2026-12-03T12:00:00.100000000Z",
            &[
                ("TCP", "0"),
                ("InterfaceIP", "10.0.0.1"),
                ("Source", "10.0.0.5"),
                ("RD", "1"),
                ("QNAME", "www.example.com."),
                ("QTYPE", "1"),
                ("XID", "6699"),
                ("Port", "53211"),
                ("Flags", "256"),
                ("PacketData", &format!("0x{QUERY_HEX}")),
            ],
        ),
        // the server's own recursion: not a device's query
        fmt(
            260,
            "2026-12-03T12:00:00.101000000Z",
            &[
                ("TCP", "0"),
                ("Destination", "198.51.100.53"),
                ("InterfaceIP", "10.0.0.1"),
                ("RD", "0"),
                ("QNAME", "www.example.com."),
                ("QTYPE", "1"),
                ("XID", "4321"),
                ("Port", "0"),
                ("Flags", "0"),
                ("ServerScope", "Default"),
                ("CacheScope", "Default"),
                ("PolicyName", "NULL"),
                ("PacketData", "0x10E1"),
            ],
        ),
        fmt(
            257,
            "2026-12-03T12:00:00.130000000Z",
            &[
                ("TCP", "0"),
                ("InterfaceIP", "10.0.0.1"),
                ("Destination", "10.0.0.5"),
                ("AA", "0"),
                ("AD", "0"),
                ("QNAME", "www.example.com."),
                ("QTYPE", "1"),
                ("XID", "6699"),
                ("DNSSEC", "0"),
                ("RCODE", "0"),
                ("Port", "53211"),
                ("Flags", "33152"),
                ("Scope", "Default"),
                ("Zone", "..Cache"),
                ("PolicyName", "NULL"),
                ("PacketData", &format!("0x{RESPONSE_HEX}")),
            ],
        ),
        fmt(
            256,
            "2026-12-03T12:00:01.000000000Z",
            &[
                ("TCP", "1"),
                ("InterfaceIP", "10.0.0.1"),
                ("Source", "10.0.0.6"),
                ("RD", "1"),
                ("QNAME", "nx.corp.example."),
                ("QTYPE", "28"),
                ("XID", "769"),
                ("Port", "60001"),
                ("Flags", "256"),
                ("PacketData", "0x"),
            ],
        ),
        fmt(
            257,
            "2026-12-03T12:00:01.002000000Z",
            &[
                ("TCP", "1"),
                ("InterfaceIP", "10.0.0.1"),
                ("Destination", "10.0.0.6"),
                ("AA", "1"),
                ("AD", "0"),
                ("QNAME", "nx.corp.example."),
                ("QTYPE", "28"),
                ("XID", "769"),
                ("DNSSEC", "0"),
                ("RCODE", "3"),
                ("Port", "60001"),
                ("Flags", "34179"),
                ("Scope", "Default"),
                ("Zone", "corp.example"),
                ("PolicyName", "NULL"),
                ("PacketData", &format!("0x{NX_HEX}")),
            ],
        ),
        // a policy refusal: 258 without its 256 in the export; a name with markup in it
        fmt(
            258,
            "2026-12-03T12:00:02.000000000Z",
            &[
                ("TCP", "0"),
                ("InterfaceIP", "10.0.0.1"),
                ("Reason", "5"),
                ("Destination", "10.0.0.7"),
                ("QNAME", "&lt;b&gt;.blocked.example."),
                ("QTYPE", "1"),
                ("XID", "770"),
                ("RCODE", "5"),
                ("Port", "50000"),
                ("Flags", "33029"),
                ("Zone", ""),
                ("PolicyName", "BlockList"),
                ("PacketData", ""),
            ],
        ),
    ]
}

fn xml_sample() -> Vec<String> {
    let mut v = dns_sample(xml_event);
    v.extend([
        // an audit event of the same provider and an event of another provider: skipped
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-DNSServer' Guid='{EB79061A-A566-4698-9119-3ED2807060E7}'/><EventID>515</EventID><TimeCreated SystemTime='2026-12-03T12:00:03.000000000Z'/></System><EventData><Data Name='Type'>1</Data><Data Name='NAME'>host.corp.example</Data></EventData></Event>".to_string(),
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Kernel-General'/><EventID>256</EventID><TimeCreated SystemTime='2026-12-03T12:00:03.000000000Z'/></System><EventData><Data Name='QNAME'>not.dns</Data></EventData></Event>".to_string(),
    ]);
    v
}

const XML_WANT: [&str; 3] = [
    "10.0.0.5 www.example.com 1 NOERROR [\"93.184.216.34\"]",
    "10.0.0.6 nx.corp.example 28 NXDOMAIN []",
    "10.0.0.7 <b>.blocked.example 1 REFUSED []",
];

fn check_xml(evs: &[DnsEvent], st: &IngestStats) {
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    let mut got = summary(evs);
    got.sort();
    assert_eq!(got, XML_WANT);
    let e = evs
        .iter()
        .find(|e| e.qname.as_str() == "www.example.com")
        .unwrap();
    assert_eq!(e.ts, ts("2026-12-03T12:00:00.1Z"));
    assert_eq!(
        (e.client_port, e.id, e.rtt_us),
        (53211, 0x1a2b, Some(30_000))
    );
    assert_eq!(e.server.to_string(), "10.0.0.1");
    assert_eq!(e.answers[0].ttl, 3600);
    assert_eq!(e.response_size, Some(49));
    let nx = evs.iter().find(|e| e.qtype == 28).unwrap();
    assert_eq!(nx.transport, dnsight_model::Transport::Tcp);
}

/// `wevtutil qe Microsoft-Windows-DNSServer/Analytical /f:xml`: the events concatenated, no
/// root element, single-quoted attributes, UTF-8.
#[test]
fn windows_analytic_events_from_wevtutil_xml() {
    let text = xml_sample().concat();
    let (f, evs, st) = read(text.into_bytes());
    assert_eq!(f, Format::Log(LogFormat::WindowsEvents));
    check_xml(&evs, &st);
    assert_eq!(st.records, 8);
}

/// The same events as Elastic's agents ship them, one JSON object a line: Winlogbeat
/// (`winlog.event_id`, `winlog.provider_name`) and the ETW input (`event.code`,
/// `event.provider`), the fields by name in `winlog.event_data`.
#[test]
fn windows_analytic_events_from_winlogbeat_and_elastic_etw_json() {
    fn json(id: u32, time: &str, data: &[(&str, &str)]) -> String {
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            // the sample's values are written for XML: JSON carries the text itself
            .map(|(k, v)| {
                let t = v
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&");
                (k.to_string(), serde_json::Value::from(t))
            })
            .collect();
        let v = if matches!(id, 256 | 258) {
            serde_json::json!({"@timestamp": time, "event": {"code": id.to_string(), "provider": "Microsoft-Windows-DNSServer"},
                "winlog": {"channel": "16", "event_data": data}})
        } else {
            serde_json::json!({"@timestamp": time, "winlog": {"event_id": id, "provider_name": "Microsoft-Windows-DNSServer", "event_data": data}})
        };
        v.to_string()
    }
    let mut lines = dns_sample(json);
    // another provider's event: skipped, not rejected
    lines.push(r#"{"@timestamp":"2026-12-03T12:00:03Z","winlog":{"event_id":"256","provider_name":"Microsoft-Windows-Kernel-General","event_data":{"QNAME":"not.dns"}}}"#.into());
    let text = lines.join("\n") + "\n";
    let (f, evs, st) = read(text.into_bytes());
    assert_eq!(f, Format::Log(LogFormat::WindowsEvents));
    check_xml(&evs, &st);
}

/// Event Viewer's "Save as XML" (and `wevtutil qe ... /f:xml` redirected by PowerShell 5.1):
/// UTF-16LE with a byte-order mark, an XML declaration and an `<Events>` root, CRLF line ends.
#[test]
fn windows_analytic_events_from_event_viewer_xml_in_utf16() {
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n<Events>\r\n{}\r\n</Events>\r\n",
        xml_sample().join("\r\n")
    );
    let (f, evs, st) = read(utf16le_bom(&text));
    assert_eq!(f, Format::Log(LogFormat::WindowsEvents));
    check_xml(&evs, &st);
    // gzip around it is unwrapped first
    let (f, evs, st) = read(gzip(&utf16le_bom(&text)));
    assert_eq!(f, Format::Log(LogFormat::WindowsEvents));
    check_xml(&evs, &st);
}

fn bytes_json(hex: &str) -> String {
    let v: Vec<String> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap().to_string())
        .collect();
    format!("[{}]", v.join(","))
}

/// PowerShell's `Get-WinEvent -LogName Microsoft-Windows-DNSServer/Analytical -Oldest |
/// ConvertTo-Json`: an array of EventLogRecord objects. Windows PowerShell 5.1 (written with
/// `>`: UTF-16LE; `TimeCreated` as `/Date(ms)/`; at the default `-Depth 2` a byte array
/// property is only its type name) and PowerShell 7 with `-Depth 4` (UTF-8, ISO times with the
/// server's offset, PacketData as numbers).
#[test]
fn windows_analytic_events_from_get_winevent_convertto_json() {
    let props = |vals: &[&str]| -> String {
        vals.iter()
            .map(|v| format!("        {{\n            \"Value\":  {v}\n        }}"))
            .collect::<Vec<_>>()
            .join(",\n")
    };
    let record = |id: u32, ms: i64, msg: &str, p: &[&str]| {
        format!(
            "    {{\n        \"Id\":  {id},\n        \"Version\":  0,\n        \"Qualifiers\":  null,\n        \"Level\":  4,\n        \"Task\":  {},\n        \"Opcode\":  0,\n        \"Keywords\":  -9223372036854775808,\n        \"RecordId\":  {id}{ms},\n        \"ProviderName\":  \"Microsoft-Windows-DNSServer\",\n        \"ProviderId\":  \"eb79061a-a566-4698-9119-3ed2807060e7\",\n        \"LogName\":  \"Microsoft-Windows-DNSServer/Analytical\",\n        \"ProcessId\":  2412,\n        \"ThreadId\":  3040,\n        \"MachineName\":  \"DC1.corp.example\",\n        \"UserId\":  {{\n                       \"BinaryLength\":  12,\n                       \"AccountDomainSid\":  null,\n                       \"Value\":  \"S-1-5-18\"\n                   }},\n        \"TimeCreated\":  \"\\/Date({ms})\\/\",\n        \"ContainerLog\":  \"Microsoft-Windows-DNSServer/Analytical\",\n        \"LevelDisplayName\":  \"Information\",\n        \"OpcodeDisplayName\":  \"Info\",\n        \"TaskDisplayName\":  \"LOOK_UP\",\n        \"Message\":  \"{msg}\",\n        \"Properties\":  [\n{}\n                       ]\n    }}",
            id - 255,
            props(p)
        )
    };
    let t0 = 1_796_299_200_000i64; // 2026-12-03T12:00:00Z
    let ps51 = format!(
        "[\n{},\n{},\n{}\n]\n",
        record(256, t0 + 100, &format!("QUERY_RECEIVED: TCP=0; InterfaceIP=10.0.0.1; Source=10.0.0.5; RD=1; QNAME=www.example.com.; QTYPE=1; XID=6699; Port=53211; Flags=256; PacketData=0x{QUERY_HEX}"),
            &["0", "\"10.0.0.1\"", "\"10.0.0.5\"", "1", "\"www.example.com.\"", "1", "6699", "53211", "256", "\"System.Byte[]\""]),
        record(257, t0 + 130, "RESPONSE_SUCCESS: TCP=0; InterfaceIP=10.0.0.1; Destination=10.0.0.5; AA=0; AD=0; QNAME=www.example.com.; QTYPE=1; XID=6699; DNSSEC=0; RCODE=0; Port=53211; Flags=33152; Scope=Default; Zone=..Cache; PolicyName=NULL; PacketData=0x1A2B...",
            &["0", "\"10.0.0.1\"", "\"10.0.0.5\"", "0", "0", "\"www.example.com.\"", "1", "6699", "0", "0", "53211", "33152", "\"Default\"", "\"..Cache\"", "\"NULL\"", "\"System.Byte[]\""]),
        record(262, t0 + 140, "RECURSE_QUERY_TIMEOUT: TCP=0; InterfaceIP=10.0.0.1; Destination=198.51.100.53; QNAME=slow.example.; QTYPE=1; XID=1; Port=0; Flags=0; ServerScope=Default; CacheScope=Default",
            &["0"]),
    );
    let (f, evs, st) = read(utf16le_bom(&ps51));
    assert_eq!(f, Format::Log(LogFormat::WindowsEvents));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(summary(&evs), ["10.0.0.5 www.example.com 1 NOERROR []"]);
    assert_eq!(evs[0].ts, ts("2026-12-03T12:00:00.1Z"));
    assert_eq!(evs[0].rtt_us, Some(30_000));

    // PowerShell 7, -Depth 4: PacketData is there, so are the answers
    let ps7 = format!(
        "[\n  {{\n    \"Id\": 256,\n    \"ProviderName\": \"Microsoft-Windows-DNSServer\",\n    \"TimeCreated\": \"2026-12-03T13:00:00.1+01:00\",\n    \"Message\": \"QUERY_RECEIVED: ...\",\n    \"Properties\": [\n      {{ \"Value\": false }},\n      {{ \"Value\": \"10.0.0.1\" }},\n      {{ \"Value\": \"10.0.0.5\" }},\n      {{ \"Value\": true }},\n      {{ \"Value\": \"www.example.com.\" }},\n      {{ \"Value\": 1 }},\n      {{ \"Value\": 6699 }},\n      {{ \"Value\": 53211 }},\n      {{ \"Value\": 256 }},\n      {{ \"Value\": {} }}\n    ]\n  }},\n  {{\n    \"Id\": 257,\n    \"ProviderName\": \"Microsoft-Windows-DNSServer\",\n    \"TimeCreated\": \"2026-12-03T13:00:00.13+01:00\",\n    \"Message\": \"RESPONSE_SUCCESS: ...\",\n    \"Properties\": [\n      {{ \"Value\": false }}, {{ \"Value\": \"10.0.0.1\" }}, {{ \"Value\": \"10.0.0.5\" }}, {{ \"Value\": false }}, {{ \"Value\": false }},\n      {{ \"Value\": \"www.example.com.\" }}, {{ \"Value\": 1 }}, {{ \"Value\": 6699 }}, {{ \"Value\": false }}, {{ \"Value\": 0 }},\n      {{ \"Value\": 53211 }}, {{ \"Value\": 33152 }}, {{ \"Value\": \"Default\" }}, {{ \"Value\": \"..Cache\" }}, {{ \"Value\": \"NULL\" }},\n      {{ \"Value\": {} }}\n    ]\n  }}\n]\n",
        bytes_json(QUERY_HEX),
        bytes_json(RESPONSE_HEX)
    );
    let (f, evs, st) = read(ps7.into_bytes());
    assert_eq!(f, Format::Log(LogFormat::WindowsEvents));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(
        summary(&evs),
        ["10.0.0.5 www.example.com 1 NOERROR [\"93.184.216.34\"]"]
    );
    assert_eq!(evs[0].ts, ts("2026-12-03T12:00:00.1Z"));

    // `Select-Object Id, TimeCreated, Message | ConvertTo-Json -Compress`: only the message
    let compact = format!(
        "[{{\"Id\":257,\"TimeCreated\":\"\\/Date({})\\/\",\"Message\":\"RESPONSE_SUCCESS: TCP=0; InterfaceIP=10.0.0.1; Destination=10.0.0.9; AA=0; AD=0; QNAME=nx.corp.example.; QTYPE=28; XID=769; DNSSEC=0; RCODE=3; Port=60001; Flags=34179; Scope=Default; Zone=corp.example; PolicyName=NULL; PacketData=0x{NX_HEX}\"}}]",
        t0 + 2000
    );
    let (f, evs, st) = read(compact.into_bytes());
    assert_eq!(f, Format::Log(LogFormat::WindowsEvents));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(summary(&evs), ["10.0.0.9 nx.corp.example 28 NXDOMAIN []"]);
    assert_eq!(evs[0].client_port, 60001);
}

fn r53(t: &str, name: &str, rcode: &str, ip: &str, client: &str) -> String {
    let answers = if ip.is_empty() {
        String::new()
    } else {
        format!("{{\"Rdata\":\"{ip}\",\"Type\":\"A\",\"Class\":\"IN\"}}")
    };
    format!("{{\"version\":\"1.100000\",\"account_id\":\"123456789012\",\"region\":\"eu-west-1\",\"vpc_id\":\"vpc-0a1b2c3d4e5f67890\",\"query_timestamp\":\"{t}\",\"query_name\":\"{name}\",\"query_type\":\"A\",\"query_class\":\"IN\",\"rcode\":\"{rcode}\",\"answers\":[{answers}],\"srcaddr\":\"{client}\",\"srcport\":\"41000\",\"transport\":\"UDP\",\"srcids\":{{\"instance\":\"i-0abc123def4567890\"}}}}")
}

fn cloudwatch_payload(msgs: &[String]) -> String {
    let evs: Vec<String> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "{{\"id\":\"3792712345678901234567890123456789012345678901234567{i}\",\"timestamp\":1796299200000,\"message\":{}}}",
                serde_json::to_string(m).unwrap()
            )
        })
        .collect();
    format!("{{\"messageType\":\"DATA_MESSAGE\",\"owner\":\"123456789012\",\"logGroup\":\"/aws/route53resolver/vpc-0a1b2c3d4e5f67890\",\"logStream\":\"vpc-0a1b2c3d4e5f67890_i-0abc\",\"subscriptionFilters\":[\"to-dnsight\"],\"logEvents\":[{}]}}", evs.join(","))
}

const R53_WANT: [&str; 2] = [
    "10.1.2.3 api.example.com 1 NOERROR [\"203.0.113.10\"]",
    "10.1.2.4 nx.example.com 1 NXDOMAIN []",
];

fn r53_pair() -> Vec<String> {
    vec![
        r53(
            "2026-12-03T12:00:00Z",
            "api.example.com.",
            "NOERROR",
            "203.0.113.10",
            "10.1.2.3",
        ),
        r53(
            "2026-12-03T12:00:01Z",
            "nx.example.com.",
            "NXDOMAIN",
            "",
            "10.1.2.4",
        ),
    ]
}

/// A CloudWatch Logs subscription payload (gzip, as a Lambda, Kinesis or Firehose consumer gets
/// it), CloudWatch's export to S3 (time, space, message), and a control message.
#[test]
fn cloudwatch_subscription_and_export_carry_route53_records() {
    let payload = cloudwatch_payload(&r53_pair());
    let (f, evs, st) = read(gzip(payload.as_bytes()));
    assert_eq!(f, Format::Log(LogFormat::Route53Resolver));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(summary(&evs), R53_WANT);
    // several payloads, one a line, with the health check CloudWatch sends first
    let control = "{\"messageType\":\"CONTROL_MESSAGE\",\"owner\":\"CloudwatchLogs\",\"logGroup\":\"\",\"logStream\":\"\",\"subscriptionFilters\":[],\"logEvents\":[{\"id\":\"\",\"timestamp\":1796299200000,\"message\":\"CWL CONTROL MESSAGE: Checking health of destination Firehose.\"}]}";
    let (f, evs, st) = read(format!("{control}\n{payload}\n{payload}\n").into_bytes());
    assert_eq!(f, Format::Log(LogFormat::Route53Resolver));
    assert_eq!((evs.len(), st.rejected_total()), (4, 0), "{st:?}");
    // export to S3: `2026-12-03T12:00:00.000Z {...}` lines, gzip
    let export: String = r53_pair()
        .iter()
        .map(|m| format!("2026-12-03T12:00:00.000Z {m}\n"))
        .collect();
    let (f, evs, st) = read(gzip(export.as_bytes()));
    assert_eq!(f, Format::Log(LogFormat::Route53Resolver));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(summary(&evs), R53_WANT);
}

/// Firehose: the HTTP endpoint delivery request (what a Firehose stream POSTs to an HTTP
/// destination) whose records are CloudWatch subscription payloads (gzip, base64), and
/// Route 53 records concatenated without a delimiter, as Firehose writes them to S3.
#[test]
fn firehose_records_are_decoded() {
    let data = base64(&gzip(cloudwatch_payload(&r53_pair()).as_bytes()));
    let req = format!("{{\"requestId\":\"ed4acda5-034f-9f42-bba1-f29aea6d7d8f\",\"timestamp\":1796299205000,\"records\":[{{\"data\":\"{data}\"}},{{\"data\":\"{}\"}}]}}", base64(r53_pair()[0].as_bytes()));
    let (f, evs, st) = read(req.into_bytes());
    assert_eq!(f, Format::Log(LogFormat::Route53Resolver));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(summary(&evs), [R53_WANT[0], R53_WANT[1], R53_WANT[0]]);
    // S3 object written by Firehose: objects back to back
    let (f, evs, st) = read(gzip(r53_pair().concat().as_bytes()));
    assert_eq!(f, Format::Log(LogFormat::Route53Resolver));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(summary(&evs), R53_WANT);
    // a record whose data is not base64 is counted, the others still read
    let bad = format!(
        "{{\"requestId\":\"x\",\"timestamp\":1796299205000,\"records\":[{{\"data\":\"%%%\"}}]}}\n{}\n",
        r53_pair()[1]
    );
    let (_, evs, st) = read(bad.into_bytes());
    assert_eq!(evs.len(), 1);
    assert_eq!(st.rejected.get("log.bad_payload"), Some(&1), "{st:?}");
}

/// Azure diagnostic logs (Event Hubs messages and storage exports): `{"records": [...]}`, here
/// pretty-printed, with Azure Firewall's structured DNS table and a record of another category.
#[test]
fn azure_diagnostic_records_arrays() {
    let doc = r#"{
    "records": [
        {
            "time": "2026-12-03T12:00:00.1234567Z",
            "resourceId": "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.NETWORK/AZUREFIREWALLS/FW1",
            "category": "AZFWDnsQuery",
            "operationName": "AZFWDnsQuery",
            "properties": {
                "SourceIp": "10.0.2.4",
                "SourcePort": 61248,
                "QueryId": 6513,
                "QueryType": "A",
                "QueryClass": "IN",
                "QueryName": "www.example.com.",
                "Protocol": "udp",
                "RequestSize": 43,
                "DnssecOkBit": false,
                "EDNS0BufferSize": 512,
                "ResponseCode": "NOERROR",
                "ResponseFlags": "qr,rd,ra",
                "ResponseSize": 145,
                "RequestDurationSecs": 0.0028,
                "ErrorNumber": 0,
                "ErrorMessage": ""
            }
        },
        {
            "time": "2026-12-03T12:00:01.0000000Z",
            "resourceId": "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.NETWORK/AZUREFIREWALLS/FW1",
            "category": "AZFWNetworkRule",
            "operationName": "AZFWNetworkRule",
            "properties": { "Protocol": "TCP", "SourceIp": "10.0.2.4", "DestinationIp": "10.0.3.4" }
        },
        {
            "time": "2026-12-03T12:00:02.0000000Z",
            "resourceId": "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.NETWORK/AZUREFIREWALLS/FW1",
            "category": "AZFWDnsQuery",
            "operationName": "AZFWDnsQuery",
            "properties": { "SourceIp": "10.0.2.5", "SourcePort": 5000, "QueryId": 1, "QueryType": "AAAA", "QueryClass": "IN", "QueryName": "nx.example.com.", "Protocol": "tcp", "RequestSize": 40, "ResponseCode": "NXDOMAIN", "ResponseFlags": "qr,rd,ra", "ResponseSize": 120, "RequestDurationSecs": 0.01 }
        }
    ]
}
"#;
    let (f, evs, st) = read(doc.as_bytes().to_vec());
    assert_eq!(f, Format::Log(LogFormat::AzureFirewall));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(
        summary(&evs),
        [
            "10.0.2.4 www.example.com 1 NOERROR []",
            "10.0.2.5 nx.example.com 28 NXDOMAIN []"
        ]
    );
    assert_eq!(evs[0].client_port, 61248);
    // the same on one line (an Event Hubs message body), gzip
    let one: serde_json::Value = serde_json::from_str(doc).unwrap();
    let (f, evs, _) = read(gzip(one.to_string().as_bytes()));
    assert_eq!(f, Format::Log(LogFormat::AzureFirewall));
    assert_eq!(evs.len(), 2);
}

fn gcp_entry(t: &str, name: &str, rcode: &str, rdata: &str, client: &str) -> String {
    format!(
        r#"{{
    "insertId": "1x2y3z4a5b6c",
    "jsonPayload": {{
      "authAnswer": false,
      "protocol": "UDP",
      "queryName": "{name}",
      "queryType": "A",
      "rdata": "{rdata}",
      "responseCode": "{rcode}",
      "serverLatency": 14,
      "sourceIP": "{client}",
      "sourceNetwork": "default",
      "vmInstanceId": 4811234567890123456,
      "vmInstanceName": "123456789012.web-1",
      "vmProjectId": "my-project",
      "vmZoneName": "europe-west1-b"
    }},
    "logName": "projects/my-project/logs/dns.googleapis.com%2Fdns_queries",
    "receiveTimestamp": "{t}",
    "resource": {{
      "labels": {{
        "location": "europe-west1",
        "project_id": "my-project",
        "source_type": "gce-vm",
        "target_name": "",
        "target_type": "external"
      }},
      "type": "dns_query"
    }},
    "severity": "INFO",
    "timestamp": "{t}"
  }}"#
    )
}

/// Google Cloud Logging as exported: `gcloud logging read 'resource.type="dns_query"'
/// --format=json` (a pretty-printed array of entries) and a Pub/Sub push request from a log
/// sink (the entry base64 in `message.data`).
#[test]
fn google_cloud_logging_exports() {
    let a = gcp_entry(
        "2026-12-03T12:00:00.123456Z",
        "api.example.com.",
        "NOERROR",
        "api.example.com.\\t300\\tIN\\ta\\t203.0.113.10",
        "10.128.0.5",
    );
    let b = gcp_entry(
        "2026-12-03T12:00:01Z",
        "nx.example.com.",
        "NXDOMAIN",
        "",
        "10.128.0.6",
    );
    let doc = format!("[\n  {a},\n  {b}\n]\n");
    let (f, evs, st) = read(doc.into_bytes());
    assert_eq!(f, Format::Log(LogFormat::GcpDns));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(
        summary(&evs),
        [
            "10.128.0.5 api.example.com 1 NOERROR [\"203.0.113.10\"]",
            "10.128.0.6 nx.example.com 1 NXDOMAIN []"
        ]
    );
    assert_eq!(evs[0].ts, ts("2026-12-03T12:00:00.123456Z"));
    let compact: serde_json::Value = serde_json::from_str(&a).unwrap();
    let push = format!(
        "{{\"message\":{{\"attributes\":{{\"logging.googleapis.com/timestamp\":\"2026-12-03T12:00:00.123456Z\"}},\"data\":\"{}\",\"messageId\":\"2070443601311540\",\"publishTime\":\"2026-12-03T12:00:02.5Z\"}},\"subscription\":\"projects/my-project/subscriptions/dnsight-push\"}}\n",
        base64(compact.to_string().as_bytes())
    );
    let (f, evs, st) = read(push.into_bytes());
    assert_eq!(f, Format::Log(LogFormat::GcpDns));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(
        summary(&evs),
        ["10.128.0.5 api.example.com 1 NOERROR [\"203.0.113.10\"]"]
    );
}

/// A shipper's wrapper around a JSON record (Vector's `json` codec over an `aws_s3` source:
/// `{"message": "<the line>", "timestamp": ...}`).
#[test]
fn shipper_message_wrapper_around_a_json_record() {
    let lines: String = r53_pair()
        .iter()
        .map(|m| {
            format!(
                "{{\"bucket\":\"logs\",\"message\":{},\"object\":\"AWSLogs/x.log.gz\",\"source_type\":\"aws_s3\",\"timestamp\":\"2026-12-03T12:00:05Z\"}}\n",
                serde_json::to_string(m).unwrap()
            )
        })
        .collect();
    let (f, evs, st) = read(lines.into_bytes());
    assert_eq!(f, Format::Log(LogFormat::Route53Resolver));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(summary(&evs), R53_WANT);
}

/// Hostile documents: unclosed, deeply nested, wrong encodings: counted, never a panic or a
/// stall.
#[test]
fn hostile_documents_are_counted() {
    let mut deep = "[".to_string();
    deep.push_str(&"{\"records\":[".repeat(50));
    deep.push_str(&r53_pair()[0]);
    deep.push_str(&"]}".repeat(50));
    deep.push(']');
    let (_, evs, _) = read(deep.into_bytes());
    assert!(
        evs.is_empty(),
        "nesting past the envelope depth is not followed"
    );
    // an Event XML export cut in the middle of an event
    let mut cut = xml_sample().concat();
    cut.truncate(cut.len() - 300);
    let (f, evs, st) = read(cut.into_bytes());
    assert_eq!(f, Format::Log(LogFormat::WindowsEvents));
    assert!(!evs.is_empty());
    assert!(st.rejected_total() <= 1, "{st:?}");
    // odd-length UTF-16 and lone surrogates
    let mut b = utf16le_bom("[{\"Id\":256,\"Message\":\"x\"}]");
    b.extend_from_slice(&[0x00, 0xd8, 0x41]);
    let _ = open_reader_detect(
        Box::new(std::io::Cursor::new(b)),
        "t",
        &IngestOptions::default(),
    )
    .map(|(_, mut r)| while r.next_batch(&mut Vec::new()).unwrap() {});
}
