//! The one parser of domain/address list formats, shared by the resolver's block/allow lists
//! and the engine's threat-intel feeds, so "blocked by list L" and "alerted by feed F" mean the
//! same thing for the same file. No I/O: callers pass the text and get typed [`Entry`]s.
//!
//! # What each line means
//!
//! The syntax of each line decides its meaning, whatever the file is called (lists mix them):
//!
//! | line | entry |
//! |---|---|
//! | `ads.example` (plain) | `ads.example` **and** every name below it |
//! | `0.0.0.0 ads.example other.example` (hosts) | each name **and** every name below it (`localhost` and friends skipped) |
//! | `*.ads.example` (wildcard) | every name **below** `ads.example`, not the name itself |
//! | `\|\|ads.example^` (adblock, `$options` allowed) | `ads.example` **and** every name below it |
//! | `@@\|\|ok.ads.example^` | an exception (allow) for `ok.ads.example` and below |
//! | `198.51.100.0/24`, `2001:db8::1` | an address block |
//! | RPZ zone (`$ORIGIN`, `SOA`, `CNAME .` …) | see below |
//!
//! Hosts and plain lines cover the name and its subdomains. This is the engine's long-standing
//! reading of threat feeds (a C2 domain's random subdomains are the C2 too; the simulator,
//! the detection examples and the feed tests rely on it) and was the resolver's for plain lines;
//! the resolver used to read hosts lines as the exact name, and now agrees. Note that the
//! block-list peers differ: AdGuard Home documents `1.2.3.4 example.org` and a bare
//! `example.org` as that domain "but not its subdomains" (and fixed hosts rules that reached
//! subdomains as a bug, AdGuardHome#3998), and Pi-hole's gravity matches subscribed domains
//! exactly; both use `||name^` for "and subdomains". So a hosts list written for them blocks a
//! little more here. [`HOSTS_SUBDOMAINS`] and [`PLAIN_SUBDOMAINS`] are the two switches if that
//! choice is revisited (both users follow them).
//!
//! RPZ (QNAME triggers): an owner is the exact name, `*.owner` every name below it; `CNAME .` =
//! NXDOMAIN, `CNAME *.` = NODATA, `CNAME rpz-passthru.` = allow (an exception),
//! `CNAME rpz-drop.` = drop, A/AAAA/CNAME data = local data answered instead. IP triggers
//! (`32.4.3.2.1.rpz-ip`) become address blocks; other trigger kinds (`rpz-nsdname`,
//! `rpz-client-ip`, `rpz-nsip`) and unknown actions are rejected.
//!
//! # What is rejected (counted, never fatal)
//!
//! Names must be LDH-ish ASCII (letters, digits, `-`, `_`), labels 1–63 bytes, the whole name at
//! most 253 characters: so NULs, control bytes, spaces inside a token, `..`, unicode (IDNs must
//! be in their `xn--` form), URLs and paths are rejected, as are adblock cosmetic rules (`##`),
//! regex rules, URL rules (`||x/path`) and the AdGuard DNS modifiers that narrow a rule
//! (`$client`, `$dnstype`, `$denyallow`, `$ctag`, `$dnsrewrite`, `$badfilter`: applying them
//! as plain blocks would block more than the list means).

use crate::cidr::Cidr;
use std::borrow::Cow;
use std::net::IpAddr;

/// Whether a hosts line (`0.0.0.0 name`) covers the subdomains of its names.
pub const HOSTS_SUBDOMAINS: bool = true;
/// Whether a plain line (`name`) covers the subdomains of its name.
pub const PLAIN_SUBDOMAINS: bool = true;

/// How to read a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// RPZ when the text looks like a zone file ([`sniff_rpz`]), else per line.
    #[default]
    Auto,
    /// Per line (plain, hosts, wildcard, adblock and address lines may be mixed).
    Lines,
    /// An RPZ zone file.
    Rpz,
    /// Address/CIDR lines only (the first token of each line).
    Ip,
}

impl Format {
    /// Config names: `auto`, `plain`/`domains`/`hosts`/`adblock`/`lines` (all read per line),
    /// `rpz`, `ip`/`ips`/`cidr`.
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s.to_ascii_lowercase().as_str() {
            "auto" => Format::Auto,
            "plain" | "domains" | "hosts" | "adblock" | "lines" => Format::Lines,
            "rpz" | "zone" => Format::Rpz,
            "ip" | "ips" | "cidr" => Format::Ip,
            _ => return None,
        })
    }
}

/// What a line names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// A domain name in presentation form, trailing dot removed, not yet lowercased (RPZ owners
    /// are lowercased).
    Name(Cow<'a, str>),
    Net(Cidr),
}

/// RPZ actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpzAction<'a> {
    NxDomain,
    NoData,
    Passthru,
    Drop,
    /// Local data: record type and its presentation rdata (an address or a name).
    Local {
        rtype: u16,
        data: &'a str,
    },
}

/// One parsed rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub target: Target<'a>,
    /// The rule also covers every name below the name.
    pub subdomains: bool,
    /// `*.name`: only names below (implies `subdomains`); the name itself is not covered.
    pub wildcard: bool,
    /// An exception (adblock `@@`, RPZ passthru): allow, not block.
    pub exception: bool,
    /// Set for entries of an RPZ zone.
    pub rpz: Option<RpzAction<'a>>,
    /// 1-based line number (the first line of a multi-line zone record).
    pub line: u32,
}

/// Counts from one parse.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub entries: u64,
    /// Lines (or hosts names) that could not be used.
    pub rejected: u64,
    /// Line numbers of the first few rejected lines (for messages).
    pub first_rejected: Vec<u32>,
    /// The format actually used (Auto resolved).
    pub format: Format,
}

impl Counts {
    fn reject(&mut self, line: u32) {
        self.rejected += 1;
        if self.first_rejected.len() < 5 {
            self.first_rejected.push(line);
        }
    }
}

/// Names hosts files map to themselves: never rules.
const HOSTS_SKIP: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// A plausible domain name: returns it without its trailing dot.
pub fn valid_name(s: &str) -> Option<&str> {
    let t = s.strip_suffix('.').unwrap_or(s);
    if t.is_empty() || t.len() > 253 {
        return None;
    }
    for label in t.split('.') {
        let l = label.as_bytes();
        if l.is_empty()
            || l.len() > 63
            || !l
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
    }
    Some(t)
}

/// True when the first lines of `text` look like a zone file.
pub fn sniff_rpz(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';') && !l.starts_with('#'))
        .take(50)
        .any(|l| {
            if l.starts_with("$ORIGIN") || l.starts_with("$TTL") {
                return true;
            }
            let mut w = l.split_whitespace();
            let mut prev = "";
            for x in w.by_ref() {
                if x.eq_ignore_ascii_case("SOA") {
                    return true;
                }
                if prev.eq_ignore_ascii_case("CNAME")
                    && (x == "." || x == "*." || x.to_ascii_lowercase().starts_with("rpz-"))
                {
                    return true;
                }
                prev = x;
            }
            false
        })
}

/// Parses `text`, calling `f` for every entry; returns the counts.
pub fn parse<'a>(text: &'a str, format: Format, mut f: impl FnMut(Entry<'a>)) -> Counts {
    let format = match format {
        Format::Auto if sniff_rpz(text) => Format::Rpz,
        Format::Auto => Format::Lines,
        f => f,
    };
    let mut c = Counts {
        format,
        ..Counts::default()
    };
    match format {
        Format::Rpz => parse_rpz(text, &mut c, &mut f),
        Format::Ip => {
            for (i, raw) in text.lines().enumerate() {
                let n = i as u32 + 1;
                let line = strip_comment(raw.trim());
                if line.is_empty() {
                    continue;
                }
                match Cidr::parse(line.split_whitespace().next().unwrap_or("")) {
                    Ok(net) => emit(&mut c, &mut f, Target::Net(net), false, false, n),
                    Err(_) => c.reject(n),
                }
            }
        }
        _ => {
            for (i, raw) in text.lines().enumerate() {
                parse_line(raw, i as u32 + 1, &mut c, &mut f);
            }
        }
    }
    c
}

/// Collects every entry (convenience for tests and small files).
pub fn parse_all(text: &str, format: Format) -> (Vec<Entry<'_>>, Counts) {
    let mut v = Vec::new();
    let c = parse(text, format, |e| v.push(e));
    (v, c)
}

fn emit<'a>(
    c: &mut Counts,
    f: &mut impl FnMut(Entry<'a>),
    target: Target<'a>,
    subdomains: bool,
    exception: bool,
    line: u32,
) {
    c.entries += 1;
    f(Entry {
        target,
        subdomains,
        wildcard: false,
        exception,
        rpz: None,
        line,
    });
}

/// Drops a trailing ` # comment` (a `#` after whitespace).
fn strip_comment(line: &str) -> &str {
    if line.starts_with('#') {
        return "";
    }
    let b = line.as_bytes();
    for i in 1..b.len() {
        if b[i] == b'#' && (b[i - 1] == b' ' || b[i - 1] == b'\t') {
            return line[..i].trim_end();
        }
    }
    line
}

const NARROWING_OPTIONS: &[&str] = &[
    "client",
    "ctag",
    "dnstype",
    "dnsrewrite",
    "denyallow",
    "badfilter",
];

fn parse_line<'a>(raw: &'a str, n: u32, c: &mut Counts, f: &mut impl FnMut(Entry<'a>)) {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('!') || line.starts_with('[') {
        return;
    }
    let line = strip_comment(line);
    if line.is_empty() {
        return;
    }
    // adblock
    let (exception, rest) = match line.strip_prefix("@@") {
        Some(r) => (true, r),
        None => (false, line),
    };
    if let Some(r) = rest.strip_prefix("||") {
        let end = r.find(['^', '$', '/', '|']).unwrap_or(r.len());
        let (name, tail) = r.split_at(end);
        let tail = tail.strip_prefix('^').unwrap_or(tail);
        let tail = tail.strip_prefix('|').unwrap_or(tail);
        let ok_tail = match tail.strip_prefix('$') {
            None => tail.is_empty(),
            Some(opts) => opts.split(',').all(|o| {
                let k = o.trim_start_matches('~').split('=').next().unwrap_or("");
                !NARROWING_OPTIONS.iter().any(|x| k.eq_ignore_ascii_case(x))
            }),
        };
        match valid_name(name) {
            Some(name) if ok_tail => {
                emit(c, f, Target::Name(Cow::Borrowed(name)), true, exception, n)
            }
            _ => c.reject(n),
        }
        return;
    }
    if exception {
        c.reject(n); // @@ without || (regex or URL exceptions)
        return;
    }
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or("");
    if first.parse::<IpAddr>().is_ok() {
        let mut any = false;
        for d in words {
            any = true;
            if HOSTS_SKIP.contains(&d) || d.parse::<IpAddr>().is_ok() {
                continue;
            }
            match valid_name(d) {
                Some(name) => emit(
                    c,
                    f,
                    Target::Name(Cow::Borrowed(name)),
                    HOSTS_SUBDOMAINS,
                    false,
                    n,
                ),
                None => c.reject(n),
            }
        }
        if !any {
            // a bare address: an address line
            if let Ok(net) = Cidr::parse(first) {
                emit(c, f, Target::Net(net), false, false, n);
            }
        }
        return;
    }
    if words.next().is_some() {
        c.reject(n);
        return;
    }
    if first.contains('/') {
        match Cidr::parse(first) {
            Ok(net) => emit(c, f, Target::Net(net), false, false, n),
            Err(_) => c.reject(n),
        }
        return;
    }
    if let Some(rest) = first.strip_prefix("*.") {
        match valid_name(rest) {
            Some(name) => {
                c.entries += 1;
                f(Entry {
                    target: Target::Name(Cow::Borrowed(name)),
                    subdomains: true,
                    wildcard: true,
                    exception: false,
                    rpz: None,
                    line: n,
                });
            }
            None => c.reject(n),
        }
        return;
    }
    match valid_name(first) {
        Some(name) => emit(
            c,
            f,
            Target::Name(Cow::Borrowed(name)),
            PLAIN_SUBDOMAINS,
            false,
            n,
        ),
        None => c.reject(n),
    }
}

fn strip_zone_comment(line: &str) -> &str {
    // `;` starts a comment outside quotes
    let mut in_q = false;
    for (i, ch) in line.char_indices() {
        match ch {
            '"' => in_q = !in_q,
            ';' if !in_q => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Zone records longer than this (joined parentheses) are rejected: a hostile file cannot make
/// the parser hold an unbounded record.
const MAX_RECORD: usize = 64 * 1024;

fn parse_rpz<'a>(text: &'a str, c: &mut Counts, f: &mut impl FnMut(Entry<'a>)) {
    let mut origin = String::new();
    let mut pending = String::new();
    let mut pending_line = 0u32;
    let mut last_owner = String::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i as u32 + 1;
        let line = strip_zone_comment(raw);
        // parenthesised multi-line records are only SOA-like data: join them, then skip
        if !pending.is_empty() || line.contains('(') {
            if pending.is_empty() {
                pending_line = n;
            } else {
                pending.push(' ');
            }
            pending.push_str(line);
            if pending.len() > MAX_RECORD {
                pending.clear();
                c.reject(pending_line);
                continue;
            }
            if pending.matches('(').count() > pending.matches(')').count() {
                continue;
            }
            let joined = std::mem::take(&mut pending).replace(['(', ')'], " ");
            // only SOA-like plumbing spans lines; a trigger written so cannot borrow from the
            // text and is counted as rejected
            let before = c.entries;
            let mut got = false;
            rpz_record(
                &joined,
                pending_line,
                &mut origin,
                &mut last_owner,
                c,
                &mut |_| got = true,
            );
            if got {
                c.entries = before;
                c.reject(pending_line);
            }
            continue;
        }
        rpz_record(line, n, &mut origin, &mut last_owner, c, f);
    }
    if !pending.is_empty() {
        c.reject(pending_line); // unbalanced parenthesis at end of file
    }
}

/// One zone record; `f` receives entries borrowing from `line`.
fn rpz_record<'a>(
    line: &'a str,
    n: u32,
    origin: &mut String,
    last_owner: &mut String,
    c: &mut Counts,
    f: &mut impl FnMut(Entry<'a>),
) {
    if line.trim().is_empty() {
        return;
    }
    if let Some(rest) = line.strip_prefix("$ORIGIN") {
        *origin = rest.trim().trim_end_matches('.').to_ascii_lowercase();
        return;
    }
    if line.starts_with('$') {
        return;
    }
    let starts_blank = line.starts_with([' ', '\t']);
    let mut words = line.split_whitespace();
    let owner = if starts_blank {
        last_owner.clone()
    } else {
        let o = words.next().unwrap_or("").to_ascii_lowercase();
        last_owner.clone_from(&o);
        o
    };
    let mut words = words.peekable();
    // TTL and class, in either order
    while let Some(w) = words.peek() {
        if w.bytes().all(|b| b.is_ascii_digit()) || w.eq_ignore_ascii_case("IN") {
            words.next();
        } else {
            break;
        }
    }
    let Some(rtype) = words.next() else {
        c.reject(n);
        return;
    };
    let rtype_n = crate::rtype_from_str(rtype);
    if matches!(rtype_n, Some(2 | 6 | 16 | 46 | 47 | 48)) {
        return; // NS, SOA, TXT, DNSSEC records: zone plumbing
    }
    if owner == "@" || owner.is_empty() {
        return;
    }
    // owner relative to the origin
    let rel: String = match owner.strip_suffix('.') {
        Some(abs) => match abs
            .strip_suffix(origin.as_str())
            .and_then(|s| s.strip_suffix('.'))
        {
            Some(r) if !origin.is_empty() => r.to_string(),
            _ => abs.to_string(),
        },
        None => owner,
    };
    let data = words.next();
    let action = match (rtype_n, data) {
        (Some(5), Some(".")) => RpzAction::NxDomain,
        (Some(5), Some("*.")) => RpzAction::NoData,
        (Some(5), Some(t)) if t.eq_ignore_ascii_case("rpz-passthru.") => RpzAction::Passthru,
        (Some(5), Some(t)) if t.eq_ignore_ascii_case("rpz-drop.") => RpzAction::Drop,
        (Some(5), Some(t)) if t.to_ascii_lowercase().starts_with("rpz-") => {
            c.reject(n); // rpz-tcp-only. and other actions we do not implement
            return;
        }
        (Some(t @ (1 | 28 | 5)), Some(d)) => {
            let ok = match t {
                1 => d.parse::<std::net::Ipv4Addr>().is_ok(),
                28 => d.parse::<std::net::Ipv6Addr>().is_ok(),
                _ => valid_name(d).is_some(),
            };
            if !ok {
                c.reject(n);
                return;
            }
            RpzAction::Local { rtype: t, data: d }
        }
        _ => {
            c.reject(n);
            return;
        }
    };
    let exception = action == RpzAction::Passthru;
    // IP triggers: prefix-length.reversed.address.rpz-ip
    if let Some(ipt) = rel.strip_suffix(".rpz-ip") {
        match rpz_ip(ipt) {
            Some(net) => {
                c.entries += 1;
                f(Entry {
                    target: Target::Net(net),
                    subdomains: false,
                    wildcard: false,
                    exception,
                    rpz: Some(action),
                    line: n,
                });
            }
            None => c.reject(n),
        }
        return;
    }
    if rel.contains("rpz-") {
        c.reject(n); // rpz-nsdname, rpz-client-ip, rpz-nsip triggers
        return;
    }
    let (wildcard, name) = match rel.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, rel.as_str()),
    };
    let Some(name) = valid_name(name) else {
        c.reject(n);
        return;
    };
    c.entries += 1;
    f(Entry {
        target: Target::Name(Cow::Owned(name.to_string())),
        subdomains: wildcard,
        wildcard,
        exception,
        rpz: Some(action),
        line: n,
    });
}

/// `32.4.3.2.1` → 1.2.3.4/32; `48.zz.1.db8.2001` → 2001:db8:1::/48 (RPZ IP trigger labels).
fn rpz_ip(t: &str) -> Option<Cidr> {
    let mut parts = t.split('.');
    let len: u8 = parts.next()?.parse().ok()?;
    let rest: Vec<&str> = parts.collect();
    if rest.len() == 4 && rest.iter().all(|p| p.parse::<u8>().is_ok()) {
        let a: Vec<&str> = rest.iter().rev().copied().collect();
        return Cidr::parse(&format!("{}/{len}", a.join("."))).ok();
    }
    if rest.is_empty() || rest.len() > 8 {
        return None;
    }
    let mut groups: Vec<&str> = rest.iter().rev().copied().collect();
    let text = if let Some(z) = groups.iter().position(|g| *g == "zz") {
        groups[z] = "";
        let mut s = groups.join(":");
        if z == 0 {
            s.insert(0, ':');
        }
        if z == groups.len() - 1 {
            s.push(':');
        }
        s
    } else {
        groups.join(":")
    };
    Cidr::parse(&format!("{text}/{len}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<(String, bool, bool, bool)> {
        let (v, _) = parse_all(text, Format::Auto);
        v.into_iter()
            .filter_map(|e| match e.target {
                Target::Name(n) => Some((n.into_owned(), e.subdomains, e.wildcard, e.exception)),
                Target::Net(_) => None,
            })
            .collect()
    }

    #[test]
    fn each_line_format() {
        let text = "# comment\n! adblock comment\n[Adblock Plus 2.0]\n\
            0.0.0.0 exact.example other.example # trailing\n127.0.0.1 localhost\n\
            plain.example\n*.wild.example\n||ad.example^\n||ad2.example^$third-party\n\
            @@||ok.ad.example^\n198.51.100.0/24\n2001:db8::1\n";
        let (v, c) = parse_all(text, Format::Auto);
        assert_eq!(c.format, Format::Lines);
        assert_eq!(c.rejected, 0, "{c:?}");
        assert_eq!(c.entries as usize, v.len());
        assert_eq!(
            names(text),
            vec![
                ("exact.example".into(), true, false, false),
                ("other.example".into(), true, false, false),
                ("plain.example".into(), true, false, false),
                ("wild.example".into(), true, true, false),
                ("ad.example".into(), true, false, false),
                ("ad2.example".into(), true, false, false),
                ("ok.ad.example".into(), true, false, true),
            ]
        );
        let nets: Vec<String> = v
            .iter()
            .filter_map(|e| match &e.target {
                Target::Net(n) => Some(n.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(nets, vec!["198.51.100.0/24", "2001:db8::1/128"]);
        assert_eq!(v[0].line, 4);
        assert_eq!(v.last().unwrap().line, 12);
    }

    #[test]
    fn hostile_lines_are_rejected() {
        let long_label = format!("{}.example", "a".repeat(64));
        let long_name = format!("{}example", "abcdefghi.".repeat(26));
        let cases = [
            "bad..name.example",
            ".leading.example",
            "nul\0.example",
            "ctrl\x07.example",
            "bücher.example",
            "日本.example",
            long_label.as_str(),
            long_name.as_str(),
            "not a domain line",
            "bad\\name.example",
            "http://x.example/path",
            "||x.example/ads/*",
            "||x.example^$dnstype=AAAA",
            "||x.example^$client=10.0.0.1",
            "@@/regex/",
            "example.com##.banner",
            "example.com#comment",
            "0.0.0.0 bad..example",
            "10.0.0.0/33",
            "*.",
            "||^",
        ];
        for l in cases {
            let (v, c) = parse_all(l, Format::Lines);
            assert!(v.is_empty(), "{l:?} gave {v:?}");
            assert_eq!(c.rejected, 1, "{l:?}");
        }
        // the longest legal name is accepted
        let ok = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(ok.len(), 253);
        assert_eq!(parse_all(&ok, Format::Lines).0.len(), 1);
        assert!(valid_name(&format!("{ok}x")).is_none());
        assert_eq!(
            valid_name("xn--bcher-kva.example."),
            Some("xn--bcher-kva.example")
        );
    }

    #[test]
    fn ip_format_and_sniffing() {
        let (v, c) = parse_all("198.51.100.0/24 # c\n2001:db8::1\nnot-an-ip\n", Format::Ip);
        assert_eq!((v.len(), c.rejected), (2, 1));
        assert!(!sniff_rpz("ads.example\n0.0.0.0 x.example\n"));
        assert!(sniff_rpz("; zone\n$TTL 60\nx CNAME .\n"));
        assert!(sniff_rpz("x.example CNAME rpz-passthru.\n"));
        assert_eq!(Format::parse("hosts"), Some(Format::Lines));
        assert_eq!(Format::parse("RPZ"), Some(Format::Rpz));
        assert_eq!(Format::parse("bogus"), None);
    }

    #[test]
    fn rpz_zone() {
        let zone = "$TTL 60\n$ORIGIN rpz.local.\n@ SOA ns.rpz.local. admin.rpz.local. (\n 1 3600 600\n 86400 60 )\n  NS ns.rpz.local.\n\
            nx.example CNAME .\n*.nx.example 300 IN CNAME .\nnodata.example CNAME *.\nok.nx.example CNAME rpz-passthru.\n\
            drop.example CNAME rpz-drop.\nlocal.example A 10.1.2.3\n AAAA ::1\nabs.example.rpz.local. CNAME .\n\
            32.4.3.2.1.rpz-ip CNAME .\n48.zz.1.db8.2001.rpz-ip CNAME .\nns.example.rpz-nsdname CNAME .\ntcp.example CNAME rpz-tcp-only.\n\
            bad..example CNAME .\nlocal2.example A not-an-ip\n";
        let (v, c) = parse_all(zone, Format::Auto);
        assert_eq!(c.format, Format::Rpz);
        assert_eq!(c.rejected, 4, "{c:?}");
        let got: Vec<String> = v
            .iter()
            .map(|e| {
                let t = match &e.target {
                    Target::Name(n) => n.to_string(),
                    Target::Net(n) => n.to_string(),
                };
                format!(
                    "{t} {} {} {:?}",
                    e.wildcard,
                    e.exception,
                    e.rpz.as_ref().unwrap()
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "nx.example false false NxDomain",
                "nx.example true false NxDomain",
                "nodata.example false false NoData",
                "ok.nx.example false true Passthru",
                "drop.example false false Drop",
                "local.example false false Local { rtype: 1, data: \"10.1.2.3\" }",
                "local.example false false Local { rtype: 28, data: \"::1\" }",
                "abs.example false false NxDomain",
                "1.2.3.4/32 false false NxDomain",
                "2001:db8:1::/48 false false NxDomain",
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "(?s).{0,600}", fmt in 0usize..4) {
            let f = [Format::Auto, Format::Lines, Format::Rpz, Format::Ip][fmt];
            let mut n = 0u64;
            let c = parse(&text, f, |e| {
                n += 1;
                if let Target::Name(name) = &e.target {
                    assert!(valid_name(name).is_some(), "{name:?}");
                }
            });
            proptest::prop_assert_eq!(n, c.entries);
            proptest::prop_assert!(c.entries + c.rejected <= (text.lines().count() as u64 + 1) * 64);
        }

        #[test]
        fn list_like_lines_never_panic(lines in proptest::collection::vec("(0\\.0\\.0\\.0 |\\|\\||@@\\|\\||\\*\\.)?[a-z0-9.\\-_\\\\\u{0}ü*^$/|#! ]{0,40}", 0..30)) {
            let text = lines.join("\n");
            let _ = parse_all(&text, Format::Auto);
            let zone = format!("$ORIGIN rpz.\n{}", lines.iter().map(|l| format!("{l} CNAME .")).collect::<Vec<_>>().join("\n"));
            let _ = parse_all(&zone, Format::Rpz);
        }
    }
}
