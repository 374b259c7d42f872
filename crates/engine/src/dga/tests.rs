//! Unit tests of the lexical DGA and tunnel scores against the embedded model.

use super::features::{label_syms, split_str};
use super::*;
use dnsight_model::Name;

fn n(s: &str) -> Name {
    Name::parse(s).unwrap()
}

#[test]
fn embedded_model_loads_and_round_trips() {
    let m = Model::decode(MODEL_BYTES).expect("embedded model decodes");
    assert!(!m.trees.is_empty());
    assert!(MODEL_BYTES.len() < 2_000_000, "model file must stay small");
    assert_eq!(m.encode(), MODEL_BYTES, "encode(decode(file)) is the file");
    assert!(m.threshold_0_1pct > 0.0 && m.threshold_0_1pct < 1.0);
    assert!(m.threshold_1pct <= m.threshold_0_1pct);
}

#[test]
fn corrupt_model_files_are_errors_not_panics() {
    assert_eq!(Model::decode(b"").unwrap_err(), ModelError::Truncated);
    assert_eq!(
        Model::decode(b"NOTAMODELFILE").unwrap_err(),
        ModelError::BadMagic
    );
    for cut in [9, 100, 5000, MODEL_BYTES.len() / 2, MODEL_BYTES.len() - 1] {
        assert!(
            Model::decode(&MODEL_BYTES[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    let mut longer = MODEL_BYTES.to_vec();
    longer.push(0);
    assert_eq!(Model::decode(&longer).unwrap_err(), ModelError::Trailing);
    // flipping bytes anywhere must not panic
    let mut b = MODEL_BYTES.to_vec();
    for i in (0..b.len()).step_by(997) {
        b[i] ^= 0xff;
        let _ = Model::decode(&b);
        b[i] ^= 0xff;
    }
}

#[test]
fn obvious_dga_names_score_high() {
    let t = threshold_low_fp();
    for s in [
        "xjw3kq9vzpl0ybm4.com",
        "qwzxkvbnmplrtq.net",
        "v7l5gr1qjcaidu0a6tlfq0vfd.org",
        "fystdyleerxiqahsedwv.com",
        "mjkqpzhxwvbtrs.biz",
    ] {
        let p = score(&n(s));
        assert!(p > t, "{s}: {p} <= low-FP threshold {t}");
    }
}

#[test]
fn popular_names_score_low() {
    let t = threshold_1pct();
    for s in [
        "google.com",
        "www.google.com",
        "facebook.com",
        "wikipedia.org",
        "en.wikipedia.org",
        "microsoft.com",
        "events.data.microsoft.com",
        "amazon.co.uk",
        "github.com",
        "debian.org",
        "bbc.co.uk",
        "stackoverflow.com",
        "netflix.com",
        "weather.com",
    ] {
        let p = score(&n(s));
        assert!(p < t, "{s}: {p} >= 1%-FP threshold {t}");
    }
    // the CDN host label is not what is scored: the registered domain is
    let cdn = score(&n("e8218.dscb1.akamaiedge.net"));
    assert!(cdn < t, "{cdn}");
}

#[test]
fn scores_are_probabilities_and_suffix_only_names_score_zero() {
    assert_eq!(score(&Name::root()), 0.0);
    assert_eq!(score(&n("com")), 0.0);
    assert_eq!(score(&n("co.uk")), 0.0);
    let p = score(&n("example.com"));
    assert!((0.0..=1.0).contains(&p));
}

#[test]
fn split_uses_the_public_suffix_list_with_private_section() {
    let s = split_str("a.b.example.co.uk").unwrap();
    assert_eq!(
        (s.subdomain, s.label, s.suffix, s.suffix_known),
        ("a.b", "example", "co.uk", true)
    );
    let s = split_str("x1y2z3.duckdns.org").unwrap();
    assert_eq!(
        (s.subdomain, s.label, s.suffix),
        ("", "x1y2z3", "duckdns.org")
    );
    let s = split_str("qecoonyd.bazar").unwrap();
    assert_eq!(
        (s.label, s.suffix, s.suffix_known),
        ("qecoonyd", "bazar", false)
    );
    let s = split_str("com").unwrap();
    assert_eq!((s.label, s.suffix), ("", "com"));
    assert!(split_str(".").is_none());
    // an escaped dot is not a label boundary
    let name = Name::from_labels([&b"a.b"[..], b"example", b"com"]);
    let s = split(&name).unwrap();
    assert_eq!(
        (s.subdomain, s.label, s.suffix),
        ("a\\.b", "example", "com")
    );
    let name = Name::from_labels([&b"x"[..], b"ex.ample", b"com"]);
    let s = split(&name).unwrap();
    assert_eq!((s.subdomain, s.label), ("x", "ex\\.ample"));
}

#[test]
fn escapes_are_one_symbol_each() {
    let mut buf = [0u8; 64];
    let (k, total) = label_syms("a\\010b\\.c", &mut buf);
    assert_eq!((k, total), (5, 5));
    assert_eq!(&buf[..5], &[0, features::OTHER, 1, features::OTHER, 2]);
    // truncated escapes at the end do not read out of bounds
    let (_, total) = label_syms("ab\\0", &mut buf);
    assert_eq!(total, 3);
    let (_, total) = label_syms("ab\\", &mut buf);
    assert_eq!(total, 3);
}

#[test]
fn features_explain_the_score() {
    let f = features(&n("www.xjw3kq9vzpl0ybm4.com"));
    assert_eq!(f.stats.len, 16);
    assert_eq!(f.subdomain_labels, 1);
    assert!(f.ngram_llr > 0.0, "{f:?}");
    let g = features(&n("wikipedia.org"));
    assert!(g.ngram_llr < 0.0, "{g:?}");
    assert!(g.benign_ll > f.benign_ll);
    assert_eq!(f.stats.max_digit_run, 1);
    assert!((f.stats.digit_ratio - 4.0 / 16.0).abs() < 1e-9);
}

#[test]
fn family_features_name_the_closest_generator() {
    let m = model();
    // simda's consonant-vowel pattern, mydoom's ten-letter alphabet
    for (name, family) in [("puzydog.com", "simda"), ("empewsqsqa.ws", "mydoom")] {
        let f = features(&n(name));
        assert_eq!(m.family_name(f.family), Some(family), "{name}: {f:?}");
        assert!(f.family_llr > 5.0, "{name}: {f:?}");
    }
    assert_eq!(m.family_name(0), Some("benign"));
    let f = features(&n("wikipedia.org"));
    assert!(f.family_llr < 0.0, "{f:?}");
    assert!((features(&n("puzydog.com")).stats.cv_alternation - 1.0).abs() < 1e-9);
}

#[test]
fn tunnel_score_separates_payload_from_hostnames() {
    let payload =
        n("0eaba822hbybdn4yfplbyycynihdsxeybakw.iix4pskyegpvvqu0on3ngjxzddpz.hidemyself.org");
    let b32 = n("mzxw6ytboi2dsnzrgu3tmnzqg4ydkmbqgazdcobsgu3dmnrrgi4tknjqgy2d.t.example.com");
    let plain = n("www.example.com");
    let none = n("example.com");
    assert_eq!(tunnel_score(&none), 0.0);
    let tp = tunnel_score(&payload);
    let tb = tunnel_score(&b32);
    let tw = tunnel_score(&plain);
    assert!(tp > 0.9 && tb > 0.9, "{tp} {tb}");
    assert!(tw < 0.5, "{tw}");
    let f = tunnel_features(&payload);
    assert_eq!(f.labels, 2);
    assert_eq!(f.chars, 36 + 28);
}

#[test]
fn deterministic_split_is_stable() {
    // the split must never change, or held-out names would leak into training
    let keys: Vec<bool> = ["google.com", "example.com", "qecoonyd.bazar", "a", ""]
        .iter()
        .map(|k| train::in_test_split(k))
        .collect();
    assert_eq!(
        keys,
        [
            train::in_test_split("google.com"),
            train::in_test_split("example.com"),
            train::in_test_split("qecoonyd.bazar"),
            train::in_test_split("a"),
            train::in_test_split("")
        ]
    );
    let share = (0..10_000)
        .filter(|i| train::in_test_split(&format!("name{i}.com")))
        .count();
    assert!((1500..2500).contains(&share), "{share}");
}

#[test]
fn threshold_at_fpr_counts_strictly_above() {
    let b: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
    let t = train::threshold_at_fpr(&b, 0.01);
    assert_eq!(b.iter().filter(|&&x| x > t).count(), 10);
    let t = train::threshold_at_fpr(&b, 0.001);
    assert_eq!(b.iter().filter(|&&x| x > t).count(), 1);
}

#[test]
fn training_on_a_toy_set_learns_the_difference() {
    // tiny end-to-end run of the trainer: random consonant strings vs word-like names
    let words = [
        "shop", "news", "mail", "cloud", "photo", "music", "travel", "market", "bank", "health",
        "games", "sport", "video", "radio", "store", "world", "home", "daily", "city", "live",
        "book", "food", "green", "blue",
    ];
    let mut samples = Vec::new();
    let mut x: u64 = 12345;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..words.len() {
        for j in 0..words.len() {
            if i != j {
                let s = format!("{}{}.com", words[i], words[j]);
                samples.push(train::LabeledName {
                    name: n(&s),
                    dga: false,
                    weight: 1.0,
                    lm_only: false,
                    family: String::new(),
                });
            }
        }
    }
    for _ in 0..500 {
        let len = 10 + (rnd() % 8) as usize;
        let s: String = (0..len)
            .map(|_| (b'a' + (rnd() % 26) as u8) as char)
            .collect();
        samples.push(train::LabeledName {
            name: n(&format!("{s}.net")),
            dga: true,
            weight: 1.0,
            lm_only: false,
            family: "random".into(),
        });
    }
    for depth in [3, 6] {
        let cfg = train::TrainConfig {
            trees: 30,
            depth,
            ..Default::default()
        };
        let m = train::train(&samples, &[], &[], &cfg, &mut |_| {});
        let again = Model::decode(&m.encode()).unwrap();
        assert_eq!(again, m);
        assert_eq!(m.depth, depth);
        let good = m.score(&n("greenmarket.com"));
        let bad = m.score(&n("qxkzvbwmrtpl.net"));
        assert!(good < 0.5 && bad > 0.5, "depth {depth}: {good} {bad}");
        assert_fast_matches_plain(&m, 500);
    }
}

/// The unrolled/grouped tree evaluation equals the reference evaluation, whatever the tree
/// count (groups of four plus a remainder) and depth.
fn assert_fast_matches_plain(m: &Model, vectors: usize) {
    let mut x: u64 = 99;
    for _ in 0..vectors {
        let v: [f32; NF] = std::array::from_fn(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 100.0 - 10.0
        });
        let plain = m.base + m.trees.iter().map(|t| t.eval_plain(&v)).sum::<f32>();
        let fast = m.logit(&v);
        assert!((plain - fast).abs() < 1e-3, "{plain} {fast}");
    }
}

#[test]
fn fast_tree_layout_matches_the_plain_trees_for_any_tree_count() {
    for keep in [1, 3, 5, 7, 8] {
        let mut m = model().clone();
        m.trees.truncate(keep);
        let m = Model::decode(&m.encode()).unwrap();
        assert_eq!(m.trees.len(), keep.min(model().trees.len()));
        assert_fast_matches_plain(&m, 500);
    }
}

proptest::proptest! {
    #[test]
    fn any_bytes_never_panic(labels in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..70), 0..8)) {
        let name = Name::from_labels(labels.iter().map(|l| l.as_slice()));
        let p = score(&name);
        proptest::prop_assert!((0.0..=1.0).contains(&p));
        let t = tunnel_score(&name);
        proptest::prop_assert!((0.0..=1.0).contains(&t));
        let _ = features(&name);
        let _ = tunnel_features(&name);
    }

    #[test]
    fn any_text_never_panics(s in "\\PC{0,300}") {
        let name = Name::from_canonical(&s);
        let p = score(&name);
        proptest::prop_assert!((0.0..=1.0).contains(&p));
        let _ = tunnel_score(&name);
        let _ = split_str(&s);
    }
}

#[test]
fn fast_tree_layout_matches_the_plain_trees() {
    assert_fast_matches_plain(model(), 2000);
}

#[test]
fn fast_exp_matches_libm_on_nonpositive_inputs() {
    use super::features::exp_nonpos;
    let mut x = 0.0f32;
    while x > -80.0 {
        let (a, b) = (exp_nonpos(x), x.exp());
        assert!((a - b).abs() <= 4e-6 * b, "exp({x}) = {b}, fast {a}");
        x -= 0.037;
    }
    assert!(exp_nonpos(-1.0e7) >= 0.0 && exp_nonpos(-1.0e7) < 1e-30);
    assert_eq!(exp_nonpos(5.0), 1.0, "positive inputs are clamped to 0");
    assert!(exp_nonpos(f32::NAN).is_nan() || exp_nonpos(f32::NAN) >= 0.0);
}
