//! The event batch encoding: exact round trips, and hostile bytes give an error, never a panic.

use compact_str::CompactString;
use dnsight_bus::codec::{decode, encode, DecodeError};
use dnsight_model::{
    Answer, DnsEvent, Flags, Name, RData, Source, Transport, Ts, Verdict, VerdictAction,
};
use std::net::IpAddr;

fn events() -> Vec<DnsEvent> {
    let mut v = Vec::new();
    for i in 0..300u32 {
        let client: IpAddr = if i % 3 == 0 {
            format!("2001:db8::{:x}", i).parse().unwrap()
        } else {
            IpAddr::from([10, 0, (i >> 8) as u8, i as u8])
        };
        let q = Name::parse(&format!("host{}.Example{}.com", i % 7, i % 5)).unwrap();
        // times go back and forth (a capture's pairs are not sorted)
        let ts = Ts::from_micros(
            1_800_000_000_000_000 + i64::from(i) * 1000 - (i64::from(i % 4) * 777_777),
        );
        let mut e = DnsEvent::new(ts, client, q.clone(), if i % 2 == 0 { 1 } else { 28 });
        e.client_port = (40000 + i) as u16;
        e.server = "192.0.2.53".parse().unwrap();
        e.server_port = 53;
        e.transport = Transport::ALL[(i % 6) as usize];
        e.source = Source::ALL[(i % 8) as usize];
        e.id = (i * 7919) as u16;
        e.opcode = (i % 3) as u8;
        e.rcode = if i % 11 == 0 {
            None
        } else {
            Some((i % 4) as u16)
        };
        e.flags = Flags(Flags::QR | Flags::RD | if i % 2 == 0 { Flags::AD } else { 0 });
        e.query_size = if i % 13 == 0 { None } else { Some(30 + i) };
        e.response_size = if i % 11 == 0 {
            None
        } else {
            Some(u32::MAX - i)
        };
        e.rtt_us = if i % 5 == 0 { None } else { Some(i * 3) };
        e.answers = (0..(i % 4))
            .map(|k| Answer {
                name: q.clone(),
                rtype: [1, 5, 16, 28][k as usize],
                ttl: 300 + k,
                data: match k {
                    0 => RData::Addr("192.0.2.7".parse().unwrap()),
                    1 => RData::Name(Name::parse("cdn.example.net").unwrap()),
                    2 => RData::Text(CompactString::from("v=spf1 \\\"x\\\" \\255")),
                    _ => RData::Addr("2001:db8::7".parse().unwrap()),
                },
            })
            .collect();
        e.verdict = match i % 4 {
            0 => None,
            1 => Some(Verdict {
                action: VerdictAction::Blocked,
                rule: Some(CompactString::from("blocklist:ünïcode-lïst.txt")),
            }),
            2 => Some(Verdict {
                action: VerdictAction::ALL[(i % 7) as usize],
                rule: None,
            }),
            _ => Some(Verdict {
                action: VerdictAction::Local,
                rule: Some(CompactString::from("")),
            }),
        };
        v.push(e);
    }
    // a root query, an escaped name, a mapped IPv4 client
    let mut e = DnsEvent::new(
        Ts::from_micros(-5),
        "::ffff:10.1.2.3".parse().unwrap(),
        Name::root(),
        2,
    );
    e.answers.push(Answer {
        name: Name::parse("a\\000b\\.c.example").unwrap(),
        rtype: 12,
        ttl: 0,
        data: RData::Name(Name::parse("a\\000b\\.c.example").unwrap()),
    });
    v.push(e);
    v
}

#[test]
fn round_trip_is_exact_and_compact() {
    let v = events();
    let b = encode(&v);
    assert_eq!(decode(&b).unwrap(), v);
    assert_eq!(decode(&encode(&[])).unwrap(), Vec::<DnsEvent>::new());
    let json: usize = v
        .iter()
        .map(|e| serde_json::to_string(e).unwrap().len() + 1)
        .sum();
    eprintln!(
        "{} events: {} bytes encoded ({:.1} per event), {} as JSON lines",
        v.len(),
        b.len(),
        b.len() as f64 / v.len() as f64,
        json
    );
    assert!(b.len() * 4 < json, "at least 4x smaller than JSON");
}

#[test]
fn hostile_bytes_are_errors_not_panics() {
    let b = encode(&events()[..40]);
    // every truncation
    for n in 0..b.len() {
        assert!(decode(&b[..n]).is_err(), "a batch cut at {n} decodes");
    }
    // trailing bytes
    let mut t = b.clone();
    t.push(0);
    assert!(decode(&t).is_err());
    // other versions and magic
    let mut w = b.clone();
    w[4] = 2;
    assert_eq!(decode(&w), Err(DecodeError::Version(2)));
    assert_eq!(decode(b"JUNKJUNK"), Err(DecodeError::Magic));
    // a huge count with nothing behind it: an error at once, no huge allocation
    let mut h = b"DNSB\x01".to_vec();
    h.extend_from_slice(&[0xff, 0xff, 0x3f]);
    assert!(decode(&h).is_err());
    let mut h = b"DNSB\x01".to_vec();
    h.extend_from_slice(&[0xff; 12]);
    assert!(decode(&h).is_err());
    // every single-byte change, and pseudo-random garbage after a valid header
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..b.len() {
        let mut m = b.clone();
        m[i] ^= (rnd() as u8) | 1;
        let _ = decode(&m);
    }
    for _ in 0..2000 {
        let n = (rnd() % 300) as usize;
        let mut g = b"DNSB\x01".to_vec();
        g.extend((0..n).map(|_| rnd() as u8));
        let _ = decode(&g);
    }
    // a name that is not printable ASCII is refused
    let mut e = DnsEvent::new(
        Ts::from_micros(1),
        "10.0.0.1".parse().unwrap(),
        Name::parse("abc.example").unwrap(),
        1,
    );
    e.answers.clear();
    let mut m = encode(&[e]);
    let at = m.windows(3).position(|w| w == b"abc").unwrap();
    m[at] = 0x07;
    assert!(decode(&m).is_err());
}
