//! `dnsight score-names`: the built binary reads names (files, stdin, hostile bytes) and prints
//! `name<TAB>probability` or JSON lines.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn run(args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .arg("score-names")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dnsight");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn parse_tsv(out: &[u8]) -> Vec<(String, f64)> {
    let text = std::str::from_utf8(out).expect("output is UTF-8");
    text.lines()
        .map(|l| {
            let (n, p) = l.split_once('\t').expect("name<TAB>probability");
            (n.to_string(), p.parse::<f64>().expect("probability"))
        })
        .collect()
}

#[test]
fn scores_stdin_and_separates_random_from_popular() {
    let (ok, out, _) = run(
        &[],
        b"google.com\nWikipedia.ORG.\nxjw3kq9vzpl0ybm4.com\nqwzxkvbnmplrtq.net\n",
    );
    assert!(ok);
    let rows = parse_tsv(&out);
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "google.com",
            "wikipedia.org",
            "xjw3kq9vzpl0ybm4.com",
            "qwzxkvbnmplrtq.net"
        ]
    );
    assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.1)));
    assert!(rows[0].1 < 0.5 && rows[1].1 < 0.5, "{rows:?}");
    assert!(rows[2].1 > 0.9 && rows[3].1 > 0.9, "{rows:?}");
}

#[test]
fn file_and_dash_arguments_read_the_same_names() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("names.txt");
    std::fs::write(&f, b"example.com\r\nv7l5gr1qjcaidu0a6tlfq0vfd.org\n").unwrap();
    let (ok, from_file, _) = run(&[f.to_str().unwrap()], b"");
    assert!(ok);
    let (ok2, from_dash, _) = run(&["-"], b"example.com\r\nv7l5gr1qjcaidu0a6tlfq0vfd.org\n");
    assert!(ok2);
    assert_eq!(from_file, from_dash);
    assert_eq!(parse_tsv(&from_file).len(), 2);
    let (ok, _, err) = run(&[dir.path().join("missing.txt").to_str().unwrap()], b"");
    assert!(!ok);
    assert!(err.contains("missing.txt"), "{err}");
}

#[test]
fn hostile_bytes_are_escaped_and_never_crash() {
    let mut input: Vec<u8> = Vec::new();
    input.extend_from_slice(b"\n\n   \n"); // empty lines are skipped
    input.extend_from_slice(b"a\tb<script>\"x\".evil.com\n");
    input.extend_from_slice(b"nul\x00byte.\xff\xfe.example\n");
    input.extend_from_slice(b"bad\\escape\\9\n");
    input.extend_from_slice(&[b'x'; 400]);
    input.push(b'\n');
    input.extend_from_slice(b"....\n");
    input.extend_from_slice(b"caf\xc3\xa9.fr"); // no final newline
    let (ok, out, err) = run(&[], &input);
    assert!(ok, "{err}");
    let rows = parse_tsv(&out);
    assert_eq!(rows.len(), 5, "{rows:?}");
    for (name, p) in &rows {
        assert!(
            name.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "unescaped output {name:?}"
        );
        assert!((0.0..=1.0).contains(p));
    }
    assert_eq!(rows[0].0, "a\\009b<script>\\\"x\\\".evil.com");
    assert_eq!(rows[1].0, "nul\\000byte.\\255\\254.example");
    assert_eq!(rows[4].0, "caf\\195\\169.fr");
    assert!(err.contains("skipped 4"), "{err}");

    let (ok, out, _) = run(&["--json"], &input);
    assert!(ok);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 5);
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object a line");
        assert!(v["score"]
            .as_f64()
            .is_some_and(|p| (0.0..=1.0).contains(&p)));
        assert!(v["tunnel_score"]
            .as_f64()
            .is_some_and(|p| (0.0..=1.0).contains(&p)));
    }
}

#[test]
fn json_carries_features_and_tunnel_score() {
    let (ok, out, _) = run(
        &["--json"],
        b"www.example.com\n0eaba822hbybdn4yfplbyycynihdsxeybakw.iix4pskyegpvvqu0on3ngjxzddpz.hidemyself.org\n",
    );
    assert!(ok);
    let v: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v[0]["name"], "www.example.com");
    assert_eq!(v[0]["registered_domain"], "example.com");
    assert_eq!(v[0]["features"]["len"], 7);
    assert_eq!(v[0]["features"]["subdomain_labels"], 1);
    assert!(v[0]["features"]["ngram_llr"].is_number());
    assert!(
        v[0]["closest_family"].is_string(),
        "the closest per-family model is named: {}",
        v[0]
    );
    assert!(v[0]["tunnel_score"].as_f64().unwrap() < 0.5);
    assert_eq!(v[1]["registered_domain"], "hidemyself.org");
    assert!(v[1]["tunnel_score"].as_f64().unwrap() > 0.9);
    assert_eq!(v[1]["tunnel_features"]["labels"], 2);
}

/// With the shared corpus present: DGA names from the evaluation list score above popular
/// names on average (a smoke check of the embedded model through the CLI).
#[test]
fn corpus_dga_names_outscore_popular_names() {
    let dga = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/dga/baderj_generated_2024-03-01.csv");
    let benign = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/benign/umbrella_top-sites-100000.csv");
    let (Ok(d), Ok(b)) = (
        std::fs::read_to_string(&dga),
        std::fs::read_to_string(&benign),
    ) else {
        eprintln!("score_names: ../shared/data not present, skipped the corpus part");
        return;
    };
    let pick = |text: &str, col: usize| -> String {
        text.lines()
            .skip(1)
            .step_by(50)
            .filter_map(|l| l.split(',').nth(col))
            .map(|n| format!("{n}\n"))
            .collect()
    };
    let mean = |input: String| -> f64 {
        let (ok, out, _) = run(&[], input.as_bytes());
        assert!(ok);
        let rows = parse_tsv(&out);
        assert!(rows.len() > 100);
        rows.iter().map(|r| r.1).sum::<f64>() / rows.len() as f64
    };
    let md = mean(pick(&d, 2));
    let mb = mean(pick(&b, 1));
    eprintln!("score_names: mean DGA score {md:.3}, mean popular-name score {mb:.3}");
    assert!(md > 0.8 && mb < 0.3, "{md} {mb}");
}
