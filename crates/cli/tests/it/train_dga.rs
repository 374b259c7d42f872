//! `dnsight train-dga --leave-family-out K`: on a small labeled set written by the test, every
//! family is scored by a model that never saw it, and the report's table says so.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

const WORDS: &[&str] = &[
    "alpha", "river", "stone", "garden", "market", "cloud", "bright", "north", "silver", "forest",
    "ocean", "maple", "rapid", "summit", "harbor", "golden", "valley", "crystal", "meadow",
    "falcon", "pixel", "urban", "vector", "nova", "orbit", "prime", "solar", "lunar", "atlas",
    "echo", "delta", "vista", "metro", "coral", "ember", "haven", "lotus", "nimbus", "quartz",
    "sierra", "tango", "zenith", "bloom", "cedar", "dune", "fable", "grove", "ivory", "jade",
    "karma", "lemon", "mango", "noble", "olive", "pearl", "quest", "robin", "sage", "tiger",
    "unity", "willow", "yarn", "zest", "news", "shop", "media", "tech", "home", "world", "daily",
    "group", "online", "store", "travel",
];

/// A deterministic generator (xorshift) so the data set is the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }
}

fn write_data(dir: &Path) {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut dga = String::from("family,variant,domain,generator_args\n");
    for _ in 0..300 {
        let _ = writeln!(
            dga,
            "randalpha,,{}.net,",
            r.chars(b"abcdefghijklmnopqrstuvwxyz", 16)
        );
        let _ = writeln!(dga, "randhex,,{}.com,", r.chars(b"0123456789abcdef", 14));
        let (a, b) = (r.pick(WORDS), r.pick(WORDS));
        let _ = writeln!(dga, "wordy,,{a}{b}.com,");
    }
    std::fs::write(dir.join("dga.csv"), dga).unwrap();
    let mut benign = String::from("rank,name\n");
    let tlds = ["com", "net", "org", "io", "co.uk", "de"];
    for i in 0..2500 {
        let name = match i % 3 {
            0 => r.pick(WORDS).to_string(),
            1 => format!("{}{}", r.pick(WORDS), r.pick(WORDS)),
            _ => format!("{}-{}", r.pick(WORDS), r.pick(WORDS)),
        };
        let _ = writeln!(benign, "{},www.{name}{i}.{}", i + 1, r.pick(&tlds));
    }
    std::fs::write(dir.join("benign.csv"), benign).unwrap();
    let tunnel = dir.join("tunnel");
    std::fs::create_dir_all(&tunnel).unwrap();
    for (stem, label) in [("iodine", 1), ("dns2tcp", 1), ("plain", 0)] {
        let mut t = String::from("label,qname\n");
        for _ in 0..40 {
            let q = if label == 1 {
                format!(
                    "{}.t.example.org",
                    r.chars(b"abcdefghijklmnopqrstuvwxyz0123456789", 40)
                )
            } else {
                format!("www.{}.example.org", r.pick(WORDS))
            };
            let _ = writeln!(t, "{label},{q}");
        }
        std::fs::write(tunnel.join(format!("{stem}_names.csv")), t).unwrap();
    }
}

/// The row of `family` in the leave-family-out table: (group, detected at 1% FP in percent).
fn row(report: &str, family: &str) -> (u32, f64) {
    let section = report
        .split("## Families never seen in training")
        .nth(1)
        .expect("the leave-family-out section");
    let rows: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with(&format!("| {family} |")))
        .collect();
    assert_eq!(rows.len(), 1, "one row for {family}: {section}");
    let cells: Vec<&str> = rows[0].split('|').map(str::trim).collect();
    let group = cells[2].parse().unwrap();
    let at1 = cells[8].trim_end_matches('%').parse().unwrap();
    (group, at1)
}

#[test]
fn leave_family_out_scores_every_family_with_a_model_that_never_saw_it() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let report = dir.path().join("report.md");
    let out = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .arg("train-dga")
        .arg("--eval-only")
        .args([
            "--leave-family-out",
            "3",
            "--trees",
            "40",
            "--patience",
            "10",
        ])
        .arg("--dga")
        .arg(dir.path().join("dga.csv"))
        .arg("--benign")
        .arg(dir.path().join("benign.csv"))
        .arg("--tunnel-dir")
        .arg(dir.path().join("tunnel"))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(
        text.contains("The 3 families are dealt into 3 groups"),
        "{text}"
    );
    let (ga, alpha) = row(&text, "randalpha");
    let (gh, _) = row(&text, "randhex");
    let (gw, wordy) = row(&text, "wordy");
    // one family per group: each was left out of its own model
    let mut groups = [ga, gh, gw];
    groups.sort_unstable();
    assert_eq!(groups, [1, 2, 3]);
    assert!(err.contains("leave-family-out 3/3"), "{err}");
    // random letters, never seen, still look generated next to these word-made benign names;
    // word pairs look like the benign names and are (rightly) not told apart by the name model
    assert!(alpha >= 50.0, "randalpha {alpha}%: {text}");
    assert!(
        wordy < alpha,
        "wordy {wordy}% vs randalpha {alpha}%: {text}"
    );
}
