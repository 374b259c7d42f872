//! Record types, classes and response codes: numbers and their mnemonics.

pub const RCODE_NOERROR: u16 = 0;
pub const RCODE_SERVFAIL: u16 = 2;
pub const RCODE_NXDOMAIN: u16 = 3;

const RTYPES: &[(u16, &str)] = &[
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (10, "NULL"),
    (11, "WKS"),
    (12, "PTR"),
    (13, "HINFO"),
    (15, "MX"),
    (16, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (24, "SIG"),
    (25, "KEY"),
    (28, "AAAA"),
    (29, "LOC"),
    (33, "SRV"),
    (35, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (39, "DNAME"),
    (41, "OPT"),
    (42, "APL"),
    (43, "DS"),
    (44, "SSHFP"),
    (45, "IPSECKEY"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (49, "DHCID"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (53, "SMIMEA"),
    (55, "HIP"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (61, "OPENPGPKEY"),
    (62, "CSYNC"),
    (63, "ZONEMD"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (99, "SPF"),
    (108, "EUI48"),
    (109, "EUI64"),
    (249, "TKEY"),
    (250, "TSIG"),
    (251, "IXFR"),
    (252, "AXFR"),
    (253, "MAILB"),
    (254, "MAILA"),
    (255, "ANY"),
    (256, "URI"),
    (257, "CAA"),
    (32768, "TA"),
    (32769, "DLV"),
];

const RCODES: &[(u16, &str)] = &[
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (6, "YXDOMAIN"),
    (7, "YXRRSET"),
    (8, "NXRRSET"),
    (9, "NOTAUTH"),
    (10, "NOTZONE"),
    (16, "BADVERS"),
    (17, "BADKEY"),
    (18, "BADTIME"),
    (19, "BADMODE"),
    (20, "BADNAME"),
    (21, "BADALG"),
    (22, "BADTRUNC"),
    (23, "BADCOOKIE"),
];

/// `A`, `AAAA`, ... or `TYPE1234` for types without a mnemonic.
pub fn rtype_to_str(t: u16) -> std::borrow::Cow<'static, str> {
    match RTYPES.iter().find(|(n, _)| *n == t) {
        Some((_, s)) => (*s).into(),
        None => format!("TYPE{t}").into(),
    }
}

/// Accepts mnemonics (any case), `TYPEnnn` and plain numbers.
pub fn rtype_from_str(s: &str) -> Option<u16> {
    let s = s.trim();
    if let Some((n, _)) = RTYPES.iter().find(|(_, m)| m.eq_ignore_ascii_case(s)) {
        return Some(*n);
    }
    let digits = if s.len() > 4 && s.as_bytes()[..4].eq_ignore_ascii_case(b"TYPE") {
        &s[4..]
    } else {
        s
    };
    digits.parse().ok()
}

/// `NOERROR`, `NXDOMAIN`, ... or `RCODE23` for codes without a mnemonic.
pub fn rcode_to_str(r: u16) -> std::borrow::Cow<'static, str> {
    match RCODES.iter().find(|(n, _)| *n == r) {
        Some((_, s)) => (*s).into(),
        None => format!("RCODE{r}").into(),
    }
}

/// Accepts mnemonics (any case), `RCODEnn` and plain numbers.
pub fn rcode_from_str(s: &str) -> Option<u16> {
    let s = s.trim();
    if let Some((n, _)) = RCODES.iter().find(|(_, m)| m.eq_ignore_ascii_case(s)) {
        return Some(*n);
    }
    let digits = if s.len() > 5 && s.as_bytes()[..5].eq_ignore_ascii_case(b"RCODE") {
        &s[5..]
    } else {
        s
    };
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn mnemonics() {
        assert_eq!(rtype_to_str(65), "HTTPS");
        assert_eq!(rtype_to_str(65399), "TYPE65399");
        assert_eq!(rtype_from_str("aaaa"), Some(28));
        assert_eq!(rtype_from_str("TYPE65399"), Some(65399));
        assert_eq!(rtype_from_str("12"), Some(12));
        assert_eq!(rtype_from_str("bogus"), None);
        assert_eq!(rcode_from_str("nxdomain"), Some(3));
        assert_eq!(rcode_to_str(42), "RCODE42");
        // multi-byte characters where a prefix would be sliced (found by fuzzing the Zeek reader)
        assert_eq!(rtype_from_str("TXT\u{e9}\u{e9}x"), None);
        assert_eq!(rcode_from_str("RCOD\u{e9}1"), None);
    }
}
