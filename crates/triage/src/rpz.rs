//! RPZ zone rendering: the blocks and allows as a Response Policy Zone that BIND, Unbound,
//! Knot Resolver and PowerDNS Recursor load (by file or by zone transfer).
//!
//! Owner names are relative to the zone (`evil.example` in zone `rpz.dnsight` triggers on
//! `evil.example.`). A block is `name CNAME .` (NXDOMAIN), an allow `name CNAME rpz-passthru.`;
//! a rule with `subdomains` also gets the `*.name` wildcard. Only rules scoped to everyone go
//! in: a resolver fed by RPZ cannot tell dnsight's groups or devices apart. Allows beat blocks,
//! as in dnsight's own resolver: a block owner is left out when an allow covers it (the same
//! owner, or an allow with subdomains on the name or a parent). Output is sorted and
//! deterministic, so an unchanged rule set gives a byte-identical file.

use crate::sqlite::normalize_name;
use crate::{BlockRule, Scope};
use std::collections::BTreeMap;
use std::fmt::Write;

/// TTL of the policy records and negative answers.
pub const TTL: u32 = 60;

/// Renders the zone `zone` (e.g. `rpz.dnsight`) with SOA serial `serial`.
pub fn render(zone: &str, serial: u32, rules: &[BlockRule]) -> String {
    // the zone name is configuration, but never let it break a line or a record
    let zone: String = zone
        .split(|c: char| c.is_whitespace() || c.is_control())
        .find(|t| !t.is_empty())
        .unwrap_or("")
        .trim_end_matches('.')
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, ';' | '(' | ')' | '"' | '\\'))
        .collect();
    let mut by_name: BTreeMap<String, Vec<&BlockRule>> = BTreeMap::new();
    for r in rules {
        if r.scope != Scope::All {
            continue;
        }
        // rules come validated from the store; anything else is left out, not trusted
        let Ok(name) = normalize_name(&r.name) else {
            continue;
        };
        by_name.entry(name).or_default().push(r);
    }
    // names an allow covers with everything under them
    let allow_tree: Vec<String> = by_name
        .iter()
        .filter(|(_, rs)| rs.iter().any(|r| r.allow && r.subdomains))
        .map(|(n, _)| n.clone())
        .collect();
    let under_allow = |name: &str| {
        allow_tree.iter().any(|a| {
            name.len() > a.len()
                && name.ends_with(a.as_str())
                && name.as_bytes()[name.len() - a.len() - 1] == b'.'
        })
    };

    let mut o = String::new();
    let _ = writeln!(o, "; dnsight response policy zone (generated; do not edit)");
    if !zone.is_empty() {
        let _ = writeln!(o, "$ORIGIN {zone}.");
    }
    let _ = writeln!(o, "$TTL {TTL}");
    let _ = writeln!(
        o,
        "@ IN SOA localhost. hostmaster.localhost. {serial} 300 60 604800 {TTL}"
    );
    let _ = writeln!(o, "@ IN NS localhost.");
    for (name, mut rs) in by_name {
        rs.sort_by_key(|r| r.id);
        let own_allow = rs.iter().any(|r| r.allow);
        // an allow on a parent name with its subdomains covers this name and everything under it
        let covered = !own_allow && under_allow(&name);
        for r in &rs {
            let line = format!(
                "; id={} {} scope={} subdomains={} expires={}{}",
                r.id,
                if r.allow { "allow" } else { "block" },
                r.scope.label(),
                r.subdomains,
                r.expires_at
                    .map_or_else(|| "never".to_string(), |e| e.to_string()),
                if covered { " (under an allow)" } else { "" }
            );
            let _ = writeln!(o, "{}", comment_safe(&line));
        }
        if covered {
            continue;
        }
        let target = |allow: bool| if allow { "rpz-passthru." } else { "." };
        let _ = writeln!(o, "{name} CNAME {}", target(own_allow));
        if rs.iter().any(|r| r.subdomains) {
            let wild_allow = rs.iter().any(|r| r.allow && r.subdomains);
            let _ = writeln!(o, "*.{name} CNAME {}", target(wild_allow));
        }
    }
    o
}

/// A comment never spans lines: control characters become `?`.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: i64, name: &str, subdomains: bool, allow: bool, scope: Scope) -> BlockRule {
        BlockRule {
            id,
            name: name.into(),
            subdomains,
            scope,
            allow,
            created_by: "t".into(),
            created_at: 1,
            expires_at: if id == 2 { Some(1_700_000_000) } else { None },
            note: Some("line\nbreak".into()),
            alert_id: None,
        }
    }

    fn sample() -> Vec<BlockRule> {
        vec![
            rule(3, "zeta.example", false, false, Scope::All),
            rule(1, "evil.example", true, false, Scope::All),
            rule(2, "evil.example", false, true, Scope::All),
            rule(
                4,
                "group-only.example",
                true,
                false,
                Scope::Group("kids".into()),
            ),
            rule(
                5,
                "dev-only.example",
                false,
                false,
                Scope::Device("10.0.0.5".parse().unwrap()),
            ),
            rule(6, "cdn.example", true, true, Scope::All),
            rule(7, "ads.cdn.example", true, false, Scope::All),
        ]
    }

    #[test]
    fn golden() {
        let got = render("rpz.dnsight.", 42, &sample());
        let want = "\
; dnsight response policy zone (generated; do not edit)
$ORIGIN rpz.dnsight.
$TTL 60
@ IN SOA localhost. hostmaster.localhost. 42 300 60 604800 60
@ IN NS localhost.
; id=7 block scope=all subdomains=true expires=never (under an allow)
; id=6 allow scope=all subdomains=true expires=never
cdn.example CNAME rpz-passthru.
*.cdn.example CNAME rpz-passthru.
; id=1 block scope=all subdomains=true expires=never
; id=2 allow scope=all subdomains=false expires=1700000000
evil.example CNAME rpz-passthru.
*.evil.example CNAME .
; id=3 block scope=all subdomains=false expires=never
zeta.example CNAME .
";
        assert_eq!(got, want);
        // deterministic whatever the input order
        let mut rev = sample();
        rev.reverse();
        assert_eq!(render("rpz.dnsight.", 42, &rev), want);
    }

    #[test]
    fn empty_zone_has_soa_and_ns() {
        let got = render("rpz.dnsight", 1, &[]);
        assert!(got.contains("@ IN SOA localhost. hostmaster.localhost. 1 300 60 604800 60\n"));
        assert!(got.contains("@ IN NS localhost.\n"));
        assert_eq!(got.lines().filter(|l| l.contains("CNAME")).count(), 0);
    }

    #[test]
    fn hostile_names_are_escaped_or_left_out_and_every_line_parses() {
        let mut rules = sample();
        rules.push(rule(8, "bad name.example", false, false, Scope::All));
        rules.push(rule(
            9,
            "x.example\n@ IN NS evil.",
            false,
            false,
            Scope::All,
        ));
        rules.push(rule(10, "semi;colon.example", false, false, Scope::All));
        rules.push(rule(11, "UPPER.Example.", false, false, Scope::All));
        let got = render("rpz.dnsight\nevil", 7, &rules);
        assert!(!got.contains("bad name"));
        assert!(!got.contains("NS evil"));
        assert!(got.contains("$ORIGIN rpz.dnsight.\n"));
        // a zone-file special is escaped, never bare
        assert!(got.contains("semi\\;colon.example CNAME .\n"), "{got}");
        assert!(!got.contains("semi;"));
        assert!(got.contains("upper.example CNAME .\n"));
        assert!(got.ends_with('\n'));
        for line in got.lines() {
            check_line(line);
        }
    }

    /// What a zone-file parser would accept from us: comments, our two directives, SOA/NS at
    /// the apex, and `owner CNAME target` with a valid owner.
    fn check_line(line: &str) {
        if line.starts_with(';') {
            assert!(!line.contains('\n') && !line.contains('\r'));
            return;
        }
        let f: Vec<&str> = line.split(' ').collect();
        match f[0] {
            "$ORIGIN" => {
                assert_eq!(f.len(), 2, "{line}");
                assert!(f[1].ends_with('.'), "{line}");
            }
            "$TTL" => {
                assert_eq!(f.len(), 2, "{line}");
                f[1].parse::<u32>().expect("ttl");
            }
            "@" => match f[2] {
                "SOA" => {
                    assert_eq!(f.len(), 10, "{line}");
                    for n in &f[5..] {
                        n.parse::<u32>().expect("soa number");
                    }
                }
                "NS" => assert_eq!(f.len(), 4, "{line}"),
                _ => panic!("unexpected apex record {line}"),
            },
            owner => {
                assert_eq!(f.len(), 3, "{line}");
                assert_eq!(f[1], "CNAME", "{line}");
                assert!(f[2] == "." || f[2] == "rpz-passthru.", "{line}");
                let bare = owner.strip_prefix("*.").unwrap_or(owner);
                assert_eq!(normalize_name(bare).unwrap(), bare, "{line}");
            }
        }
    }
}
