//! `dnsight train-dga` (hidden): retrains the lexical DGA/tunnel model from labeled name lists
//! and writes the model file embedded by the engine; `--eval-only` evaluates the embedded model
//! instead. Either way it can write the evaluation tables (`--report docs/evaluation-names.md`).
//!
//! Data: the baderj DGA list (`family,variant,domain,...`), the Umbrella top sites
//! (`rank,name`) and the tunnel name lists (`label,qname`) under `../shared/data`. The
//! train/test split is deterministic: a hash of the DGA name, of the benign registered domain
//! (so all hosts of one benign domain fall on the same side) and of the tunnel qname; about 20%
//! is held out. The held-out part is never used for training, only for thresholds and tables.
//!
//! Regenerate the model and the report:
//! `cargo run -p dnsight --release -- train-dga --report docs/evaluation-names.md`
//! Report only (embedded model): add `--eval-only`.

use anyhow::{Context, Result};
use dnsight_engine::dga::{self, train, Model};
use dnsight_model::Name;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// DGA names: CSV `family,variant,domain,...`.
    #[arg(
        long,
        default_value = "../shared/data/dga/baderj_generated_2024-03-01.csv"
    )]
    dga: PathBuf,
    /// Benign names: CSV `rank,name` (Umbrella top sites).
    #[arg(
        long,
        default_value = "../shared/data/benign/umbrella_top-sites-100000.csv"
    )]
    benign: PathBuf,
    /// Folder with `iodine_names.csv`, `dns2tcp_names.csv`, `plain_names.csv` (`label,qname`).
    #[arg(long, default_value = "../shared/data/tunnel")]
    tunnel_dir: PathBuf,
    /// Where to write the trained model.
    #[arg(long, default_value = "crates/engine/models/dga.bin")]
    out: PathBuf,
    /// Do not train: evaluate the embedded model (or `--model FILE`).
    #[arg(long)]
    eval_only: bool,
    /// With --eval-only: evaluate this model file instead of the embedded one.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Write the evaluation tables as Markdown to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Maximum number of boosted trees (early stopping on a validation part of the training
    /// data usually stops sooner).
    #[arg(long, default_value_t = 300)]
    trees: usize,
    /// Early stopping: rounds without validation improvement before stopping.
    #[arg(long, default_value_t = 60)]
    patience: usize,
    /// Pseudo-counts pulling each family's models towards the pooled DGA model.
    #[arg(long, default_value_t = 3.0)]
    family_prior: f64,
    /// Learning rate (shrinkage) of the boosted trees.
    #[arg(long, default_value_t = 0.2)]
    learning_rate: f64,
    /// Depth of each (oblivious) tree.
    #[arg(long, default_value_t = 6)]
    depth: u32,
    /// Weight of each benign registered domain relative to a DGA name (DGA families are
    /// capped at a total weight of 1000 each).
    #[arg(long, default_value_t = 6.0)]
    benign_weight: f64,
    /// Also feed the subdomain labels of the training-side Umbrella hosts to the benign n-gram
    /// model (more word statistics; never labels of held-out domains).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    lm_subdomains: bool,
    /// Also cross-validate the trees over 5 folds of the training side and print pooled
    /// detection at 0.1% / 1% FP (the figures to choose settings by; no held-out name involved);
    /// the final trees then learn from all training names (the folds' mean number of trees).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    cv: bool,
    /// Multiplier of the training weight of the wordlist families (see `WORDLIST_FAMILIES`):
    /// below 1, the trees learn less that word-like names can be generated, which keeps
    /// word-like benign names (and the suffixes those families use) from scoring high.
    #[arg(long, default_value_t = 1.0)]
    wordlist_weight: f64,
    /// Share of the training names each tree is fitted on (stochastic gradient boosting).
    #[arg(long, default_value_t = 1.0)]
    subsample: f64,
    /// With --cv: write the training-side names that cross-validation scores near or past the
    /// 0.1% threshold (top benign, missed DGA) to this file, for inspection.
    #[arg(long)]
    cv_misses: Option<PathBuf>,
    /// Also measure families never seen in training: split the families into K groups, train a
    /// model without each group (same settings, no cross-validation) and score every name of the
    /// left-out families at that model's own 0.1% / 1% FP thresholds on the held-out benign
    /// domains. 0 = off. Adds a section to the report; the shipped model is not changed.
    #[arg(long, default_value_t = 0)]
    leave_family_out: usize,
    /// Inputs the trees may not use, by name (comma-separated, e.g.
    /// `family_llr,family_char_llr,family_mix_llr`): an ablation.
    #[arg(long, value_delimiter = ',')]
    drop_features: Vec<String>,
    /// Keep only benign names ranked at or above this (1 = most popular; 0 = all): a cleaner
    /// benign side, chosen by rank and never by the classifier (a popularity list's tail holds
    /// tracking shards and some infected clients' DGA domains).
    #[arg(long, default_value_t = 0)]
    benign_max_rank: u64,
}

/// Families whose generators combine words or word-like syllables (or mutate a dictionary
/// seed), by inspection of their output; a character model is not expected to catch them all.
const WORDLIST_FAMILIES: &[(&str, &str)] = &[
    (
        "banjori",
        "mutates the first 4 letters of a dictionary seed domain",
    ),
    ("fosniw", "fixed words + counter (app2.winsoft1.com)"),
    ("ngioweb", "concatenated syllables from word lists"),
    (
        "unnamed_downloader",
        "permutations of one 5-letter label on github.io",
    ),
    ("darkcracks", "only 2 characters vary; a handful of names"),
];

/// Why a non-dictionary family that the leave-family-out models catch at 0% is missed, by
/// inspection of its names (the report prints these next to the family).
const LOFO_NOTES: &[(&str, &str)] = &[
    (
        "bumblebee",
        "11 random letters and digits under `.life` (`03auiboavvo.life`): they score about 0.3, \
         below the 0.1% threshold that Umbrella's own random-looking domains set; 63% at 1% FP",
    ),
    (
        "orchard",
        "8 hex digits (`2befd6eb.com`, also under duckdns.org): a hash-like label, as common among \
         benign CDN and tracking domains as among generators",
    ),
    (
        "pushdo",
        "pronounceable consonant-vowel strings under `.kz` (`bagirceaxoq.kz`): they look like words \
         to the character model",
    ),
];

struct Data {
    /// (family, name, test?)
    dga: Vec<(String, Name, bool)>,
    /// (registered domain, test?)
    benign: Vec<(Name, bool)>,
    /// Umbrella FQDNs with their split side
    benign_fqdn: Vec<(Name, bool)>,
    /// (file stem, label, name, test?)
    tunnel: Vec<(String, bool, Name, bool)>,
}

fn read_lines(p: &Path) -> Result<Vec<Vec<u8>>> {
    let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(b.split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .filter(|l| !l.is_empty())
        .collect())
}

/// A name from raw bytes as found in a file: presentation format when it parses, else the raw
/// bytes as labels (escaped). Never fails; None only for empty input.
pub fn name_from_bytes(raw: &[u8]) -> Option<Name> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() {
        return None;
    }
    if let Ok(s) = std::str::from_utf8(raw) {
        if let Ok(n) = Name::parse(s) {
            return (!n.is_root()).then_some(n);
        }
    }
    let n = Name::from_labels(raw.split(|&c| c == b'.').filter(|l| !l.is_empty()));
    (!n.is_root()).then_some(n)
}

fn registered_domain(n: &Name) -> Option<Name> {
    let sp = dga::split(n)?;
    if sp.label.is_empty() {
        return None;
    }
    Some(Name::from_canonical(&format!("{}.{}", sp.label, sp.suffix)))
}

fn load(args: &Args) -> Result<Data> {
    let mut dga_set = BTreeSet::new();
    let mut dga = Vec::new();
    for (i, line) in read_lines(&args.dga)?.into_iter().enumerate() {
        if i == 0 && line.starts_with(b"family,") {
            continue;
        }
        let mut it = line.splitn(4, |&c| c == b',');
        let fam = String::from_utf8_lossy(it.next().unwrap_or_default()).into_owned();
        let _variant = it.next();
        let Some(name) = it.next().and_then(name_from_bytes) else {
            continue;
        };
        if dga_set.insert((fam.clone(), name.clone())) {
            let test = train::in_test_split(name.as_str());
            dga.push((fam, name, test));
        }
    }
    let mut benign_set = BTreeSet::new();
    let mut benign = Vec::new();
    let mut benign_fqdn = Vec::new();
    for (i, line) in read_lines(&args.benign)?.into_iter().enumerate() {
        if i == 0 && line.starts_with(b"rank,") {
            continue;
        }
        let Some(pos) = line.iter().position(|&c| c == b',') else {
            continue;
        };
        if args.benign_max_rank > 0 {
            let rank = std::str::from_utf8(&line[..pos])
                .ok()
                .and_then(|r| r.trim().parse::<u64>().ok());
            if rank.is_none_or(|r| r > args.benign_max_rank) {
                continue;
            }
        }
        let Some(name) = name_from_bytes(&line[pos + 1..]) else {
            continue;
        };
        let Some(rd) = registered_domain(&name) else {
            continue;
        };
        let test = train::in_test_split(rd.as_str());
        benign_fqdn.push((name, test));
        if benign_set.insert(rd.clone()) {
            benign.push((rd, test));
        }
    }
    let mut tunnel = Vec::new();
    for stem in ["iodine", "dns2tcp", "plain"] {
        let p = args.tunnel_dir.join(format!("{stem}_names.csv"));
        for (i, line) in read_lines(&p)?.into_iter().enumerate() {
            if i == 0 && line.starts_with(b"label,") {
                continue;
            }
            let Some(pos) = line.iter().position(|&c| c == b',') else {
                continue;
            };
            let label = &line[..pos] == b"1";
            let raw = &line[pos + 1..];
            let Some(name) = name_from_bytes(raw) else {
                continue;
            };
            let test = train::in_test_split(&String::from_utf8_lossy(raw));
            tunnel.push((stem.to_string(), label, name, test));
        }
    }
    Ok(Data {
        dga,
        benign,
        benign_fqdn,
        tunnel,
    })
}

pub fn run(args: Args) -> Result<()> {
    if let Some(bad) = args
        .drop_features
        .iter()
        .find(|n| !dga::NameFeatures::NAMES.contains(&n.as_str()))
    {
        anyhow::bail!(
            "--drop-features: no input named {bad:?}; the inputs are {}",
            dga::NameFeatures::NAMES.join(", ")
        );
    }
    let data = load(&args)?;
    eprintln!(
        "loaded {} DGA names, {} benign registered domains ({} FQDNs), {} tunnel-set names",
        data.dga.len(),
        data.benign.len(),
        data.benign_fqdn.len(),
        data.tunnel.len()
    );
    // the validation figures the settings were chosen by, for the report
    let mut train_log: Vec<String> = Vec::new();
    let model: Model = if args.eval_only {
        match &args.model {
            Some(p) => Model::decode(
                &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("decoding {}", p.display()))?,
            None => dga::model().clone(),
        }
    } else {
        let (samples, tpos, tneg) = training_set(&data, &args, &|_| true);
        let cfg = train_config(&args, args.cv);
        let (mut m, cv) = train::train_cv(&samples, &tpos, &tneg, &cfg, &mut |s| {
            eprintln!("train-dga: {s}");
            if s.starts_with("validation:")
                || s.starts_with("early stopping:")
                || s.starts_with("cross-validation:")
            {
                train_log.push(s.to_string());
            }
        });
        if args.cv {
            let s = cv_summary(&samples, &cv, &m, args.cv_misses.as_deref())?;
            eprintln!("{s}");
            train_log.push(s);
        }
        let held: Vec<f64> = data
            .benign
            .iter()
            .filter(|b| b.1)
            .map(|(n, _)| m.score(n))
            .collect();
        m.threshold_0_1pct = train::threshold_at_fpr(&held, 0.001) as f32;
        m.threshold_1pct = train::threshold_at_fpr(&held, 0.01) as f32;
        let bytes = m.encode();
        std::fs::write(&args.out, &bytes)
            .with_context(|| format!("writing {}", args.out.display()))?;
        eprintln!("wrote {} ({} bytes)", args.out.display(), bytes.len());
        Model::decode(&bytes).context("re-reading the model just written")?
    };
    let mut report = evaluate(&model, &data, &args, &train_log);
    if args.leave_family_out > 0 {
        report.push_str(&leave_family_out(&data, &args, &model));
    }
    print!("{report}");
    if let Some(p) = &args.report {
        std::fs::write(p, &report).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

/// The training side: DGA names of the families `keep` accepts (each family capped at a total
/// weight of 1000), benign training domains, and the tunnel positives and negatives.
fn training_set(
    data: &Data,
    args: &Args,
    keep: &dyn Fn(&str) -> bool,
) -> (Vec<train::LabeledName>, Vec<Name>, Vec<Name>) {
    let mut fam_n: BTreeMap<&str, usize> = BTreeMap::new();
    for (f, _, test) in &data.dga {
        if !test && keep(f) {
            *fam_n.entry(f.as_str()).or_default() += 1;
        }
    }
    let mut samples = Vec::new();
    for (f, n, test) in &data.dga {
        if !test && keep(f) {
            let mut w = (1000.0 / fam_n[f.as_str()] as f64).min(1.0);
            if WORDLIST_FAMILIES.iter().any(|(x, _)| x == f) {
                w *= args.wordlist_weight;
            }
            samples.push(train::LabeledName {
                name: n.clone(),
                dga: true,
                weight: w,
                lm_only: false,
                family: f.clone(),
            });
        }
    }
    for (n, test) in &data.benign {
        if !test {
            samples.push(train::LabeledName {
                name: n.clone(),
                dga: false,
                weight: args.benign_weight,
                lm_only: false,
                family: String::new(),
            });
        }
    }
    if args.lm_subdomains {
        // held-out registered labels must not reach the language model by another route
        let held_out: BTreeSet<String> = data
            .benign
            .iter()
            .filter(|b| b.1)
            .filter_map(|(n, _)| dga::split(n).map(|s| s.label.to_string()))
            .collect();
        let mut seen = BTreeSet::new();
        for (n, test) in &data.benign_fqdn {
            let Some(sp) = dga::split(n).filter(|_| !test) else {
                continue;
            };
            if sp.subdomain.is_empty() {
                continue;
            }
            for l in Name::from_canonical(sp.subdomain).labels() {
                if !held_out.contains(l) && seen.insert(l.to_string()) {
                    let name = Name::from_canonical(&format!("{l}.com"));
                    samples.push(train::LabeledName {
                        name,
                        dga: false,
                        weight: args.benign_weight,
                        lm_only: true,
                        family: String::new(),
                    });
                }
            }
        }
    }
    let tpos: Vec<Name> = data
        .tunnel
        .iter()
        .filter(|t| !t.3 && t.1)
        .map(|t| t.2.clone())
        .collect();
    let mut tneg: Vec<Name> = data
        .tunnel
        .iter()
        .filter(|t| !t.3 && !t.1)
        .map(|t| t.2.clone())
        .collect();
    tneg.extend(
        data.benign_fqdn
            .iter()
            .filter(|(_, test)| !test)
            .map(|(n, _)| n.clone()),
    );
    (samples, tpos, tneg)
}

fn train_config(args: &Args, cross_validate: bool) -> train::TrainConfig {
    train::TrainConfig {
        trees: args.trees,
        depth: args.depth,
        learning_rate: args.learning_rate,
        patience: args.patience,
        family_prior: args.family_prior,
        cross_validate,
        subsample: args.subsample,
        drop_features: args
            .drop_features
            .iter()
            .filter_map(|n| dga::NameFeatures::NAMES.iter().position(|x| x == n))
            .fold(0, |m, i| m | (1 << i)),
        ..Default::default()
    }
}

/// FNV-1a: a stable hash for the fold order of families (the same on every machine and run).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The leave-family-out section of the report: families are dealt into `K` groups (in the
/// order of a hash of their names, so the groups are balanced and the same on every run); for
/// each group a model learns from every other family (training side only, same settings, no
/// cross-validation) and scores *all* names of the group's families, at thresholds set on the
/// held-out benign domains by that same model. Nothing of a scored family was seen in training.
fn leave_family_out(data: &Data, args: &Args, shipped: &Model) -> String {
    let k = args.leave_family_out.max(2);
    let mut families: Vec<&str> = data.dga.iter().map(|x| x.0.as_str()).collect();
    families.sort_unstable();
    families.dedup();
    families.sort_by_key(|f| (fnv(f), *f));
    let fold_of: BTreeMap<&str, usize> = families
        .iter()
        .enumerate()
        .map(|(i, f)| (*f, i % k))
        .collect();
    // the same "word-like" yardstick as the held-out table: the shipped model's benign n-grams
    let mut bll: Vec<f64> = data
        .benign
        .iter()
        .filter(|b| b.1)
        .map(|(n, _)| shipped.features(n).benign_ll)
        .collect();
    let q25 = {
        bll.sort_by(|a, b| a.total_cmp(b));
        bll.get(bll.len() / 4).copied().unwrap_or(f64::NAN)
    };
    struct Row<'a> {
        family: &'a str,
        fold: usize,
        scores: Vec<(f64, &'a Name)>,
        wordlike: bool,
        t01: f64,
        t1: f64,
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut fold_log = Vec::new();
    for fold in 0..k {
        let t0 = std::time::Instant::now();
        let (samples, tpos, tneg) =
            training_set(data, args, &|f| fold_of.get(f).is_some_and(|&g| g != fold));
        let (m, _) = train::train_cv(
            &samples,
            &tpos,
            &tneg,
            &train_config(args, false),
            &mut |s| eprintln!("train-dga: leave-family-out {}/{k}: {s}", fold + 1),
        );
        let held: Vec<f64> = data
            .benign
            .iter()
            .filter(|b| b.1)
            .map(|(n, _)| m.score(n))
            .collect();
        let (t01, t1) = (
            train::threshold_at_fpr(&held, 0.001),
            train::threshold_at_fpr(&held, 0.01),
        );
        let mut by_family: BTreeMap<&str, Vec<(f64, &Name)>> = BTreeMap::new();
        let mut lls: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for (f, n, _) in data.dga.iter().filter(|x| fold_of[x.0.as_str()] == fold) {
            by_family.entry(f).or_default().push((m.score(n), n));
            lls.entry(f)
                .or_default()
                .push(shipped.features(n).benign_ll);
        }
        fold_log.push(format!(
            "group {}: {} families left out, {} trees, thresholds {t01:.4} / {t1:.4}, {:.0} s",
            fold + 1,
            by_family.len(),
            m.trees.len(),
            t0.elapsed().as_secs_f64()
        ));
        for (family, scores) in by_family {
            let wordlike = median(lls.get_mut(family).map_or(&mut [][..], |v| &mut v[..])) > q25;
            rows.push(Row {
                family,
                fold,
                scores,
                wordlike,
                t01,
                t1,
            });
        }
    }
    rows.sort_by(|a, b| a.family.cmp(b.family));
    let mut o = String::new();
    let _ = writeln!(o, "## Families never seen in training (leave-family-out)\n");
    let _ = writeln!(
        o,
        "Generated with `--leave-family-out {k}`. The {} families are dealt into {k} groups; for each group a \
         model with the settings above learns from all other families (training side) and the benign \
         training domains, and scores every name of the left-out families, at the 0.1% and 1% FP \
         thresholds that this model gives on the held-out benign domains. So a row measures a family \
         the model never saw, which is what a new malware family looks like to a deployed dnsight: \
         the per-family features can only help through families that resemble it. Runs: {}.\n",
        families.len(),
        fold_log.join("; ")
    );
    let _ = writeln!(
        o,
        "Cross-date: the training data holds one generation date per family (2024-03-01), and the \
         generators are not part of this project, so a model trained on other dates of the same \
         family cannot be measured here. For seeded arithmetic families a new date gives new names \
         from the same algorithm; leave-family-out is the harder case, a different algorithm.\n"
    );
    let _ = writeln!(o, "| family | group | kind | word-like | names | median score | detected @0.1% FP | detected @1% FP |");
    let _ = writeln!(o, "|---|---:|---|---|---:|---:|---:|---:|");
    let mut nd_rates: Vec<(f64, &str)> = Vec::new();
    let mut low = Vec::new();
    for r in &rows {
        let n = r.scores.len();
        let d01 = r.scores.iter().filter(|x| x.0 > r.t01).count();
        let d1 = r.scores.iter().filter(|x| x.0 > r.t1).count();
        let kind = WORDLIST_FAMILIES.iter().any(|(w, _)| *w == r.family);
        let mut sc: Vec<f64> = r.scores.iter().map(|x| x.0).collect();
        let med = median(&mut sc);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {n} | {med:.3} | {} | {} |",
            r.family,
            r.fold + 1,
            if kind { "W" } else { "-" },
            if r.wordlike { "yes" } else { "no" },
            pct(d01, n),
            pct(d1, n)
        );
        if !kind && !r.wordlike {
            nd_rates.push((d01 as f64 / n.max(1) as f64, r.family));
        }
        if (d01 as f64) < 0.5 * n as f64 {
            let mut missed: Vec<&(f64, &Name)> = r.scores.iter().filter(|x| x.0 <= r.t01).collect();
            missed.sort_by(|a, b| a.1.cmp(b.1));
            low.push(format!(
                "{} ({}; e.g. {})",
                r.family,
                pct(d01, n),
                missed
                    .iter()
                    .take(3)
                    .map(|x| format!("`{}`", x.1.as_str().replace('|', "\\|").replace('`', "'")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let mut rates: Vec<f64> = nd_rates.iter().map(|x| x.0).collect();
    let med = median(&mut rates);
    let zero: Vec<&str> = nd_rates
        .iter()
        .filter(|x| x.0 == 0.0)
        .map(|x| x.1)
        .collect();
    let _ = writeln!(
        o,
        "\n**Summary at 0.1% FP, families never seen:** median per-family detection over the {} \
         non-dictionary families (kind `-`, not word-like) {:.1}%; at 0%: {}. The aim is a median of \
         90% or more.\n",
        nd_rates.len(),
        100.0 * med,
        if zero.is_empty() {
            "none".to_string()
        } else {
            zero.join(", ")
        }
    );
    let noted: Vec<String> = zero
        .iter()
        .map(|f| match LOFO_NOTES.iter().find(|(n, _)| n == f) {
            Some((_, why)) => format!("- {f}: {why}"),
            None => format!("- {f}: no reason written yet"),
        })
        .collect();
    if !noted.is_empty() {
        let _ = writeln!(
            o,
            "Why the non-dictionary families at 0% are missed (by inspection of their names):\n\n{}\n",
            noted.join("\n")
        );
    }
    let _ = writeln!(
        o,
        "Tried (median of this table, each with `--leave-family-out 5`, 2026-12-03): without the \
         per-family inputs (`--drop-features family_llr,family_char_llr,family_mix_llr`) 40.0%, so \
         the family models help even for families they never saw (a new family resembles some old \
         one); benign weight 3: 46.0%; depth 4: 50.8%; family prior 30: 54.2%, but 87.8% instead of \
         89.8% on the families it knows (cross-validation above), so not kept. A benign side \
         cleaned by rank (`--benign-max-rank`, for training and for the 0.1% threshold; \
         2026-12-04): top 50,000 names 61.4% (one family at 0: pushdo), top 20,000 55.0% (fewer \
         benign names set a noisier threshold). The cleaner list lowers the threshold, so a \
         deployed model calibrated on it would meet more false positives in the tail of real \
         traffic; the shipped model stays calibrated on the whole list.\n"
    );
    let _ = writeln!(
        o,
        "What carries the families a name model misses: the engine's per-device stage (a device \
         resolving a burst of never-seen names that do not resolve) does not depend on how the \
         names look, and alerts on every family's burst in `dnsight eval`. The figures above are for \
         single names at 0.1% false positives on a popularity list that itself holds random-looking \
         and hash-like domains (tracking, CDN shards), which sets a high threshold; at 1% the same \
         models catch most arithmetic families.\n"
    );
    if !low.is_empty() {
        let _ = writeln!(
            o,
            "Families under 50%, with names the left-out model missed (what a person would see): {}.\n",
            low.join("; ")
        );
    }
    o
}

/// Pooled cross-validation figures of the training side: detection at the 0.1% and 1% FP
/// thresholds of the out-of-fold benign scores, for all DGA names and for the non-dictionary
/// families (as the report defines them), plus the non-dictionary families below 95%.
fn cv_summary(
    samples: &[train::LabeledName],
    cv: &[Option<f64>],
    m: &Model,
    misses: Option<&Path>,
) -> Result<String> {
    let benign: Vec<f64> = samples
        .iter()
        .zip(cv)
        .filter(|(s, _)| !s.dga)
        .filter_map(|(_, c)| *c)
        .collect();
    let mut bll: Vec<f64> = samples
        .iter()
        .zip(cv)
        .filter(|(s, c)| !s.dga && c.is_some())
        .map(|(s, _)| m.features(&s.name).benign_ll)
        .collect();
    bll.sort_by(|a, b| a.total_cmp(b));
    let q25 = bll.get(bll.len() / 4).copied().unwrap_or(f64::NAN);
    let mut fams: BTreeMap<&str, Vec<(f64, f64, &Name)>> = BTreeMap::new();
    for (s, c) in samples.iter().zip(cv) {
        if let (true, Some(v)) = (s.dga, c) {
            fams.entry(s.family.as_str()).or_default().push((
                *v,
                m.features(&s.name).benign_ll,
                &s.name,
            ));
        }
    }
    let mut out = String::new();
    for fpr in [0.001, 0.01] {
        let t = train::threshold_at_fpr(&benign, fpr);
        let (mut an, mut ad, mut nn, mut nd) = (0, 0, 0, 0);
        let mut low = Vec::new();
        for (f, v) in &fams {
            let d = v.iter().filter(|x| x.0 > t).count();
            let mut ll: Vec<f64> = v.iter().map(|x| x.1).collect();
            let nondict = !WORDLIST_FAMILIES.iter().any(|(w, _)| w == f) && median(&mut ll) <= q25;
            an += v.len();
            ad += d;
            if nondict {
                nn += v.len();
                nd += d;
                if (d as f64) < 0.95 * v.len() as f64 && fpr < 0.005 {
                    low.push(format!("{f} {}", pct(d, v.len())));
                }
            }
        }
        let _ = write!(
            out,
            "cross-validation at {}% FP ({} benign): non-dictionary {nd} of {nn} ({}), all {ad} of {an} ({}){}; ",
            fpr * 100.0,
            benign.len(),
            pct(nd, nn),
            pct(ad, an),
            if low.is_empty() {
                String::new()
            } else {
                format!("; below 95%: {}", low.join(", "))
            }
        );
    }
    // a steadier figure: non-dictionary detection averaged over 0.05..0.2% FP
    let nondict: Vec<f64> = fams
        .iter()
        .filter(|(f, v)| {
            let mut ll: Vec<f64> = v.iter().map(|x| x.1).collect();
            !WORDLIST_FAMILIES.iter().any(|(w, _)| w == *f) && median(&mut ll) <= q25
        })
        .flat_map(|(_, v)| v.iter().map(|x| x.0))
        .collect();
    let fprs = [0.0005, 0.001, 0.0015, 0.002];
    let mean = fprs
        .iter()
        .map(|&fpr| {
            let t = train::threshold_at_fpr(&benign, fpr);
            nondict.iter().filter(|&&v| v > t).count() as f64 / nondict.len().max(1) as f64
        })
        .sum::<f64>()
        / fprs.len() as f64;
    let _ = write!(
        out,
        "cross-validation, non-dictionary detection averaged over 0.05/0.1/0.15/0.2% FP: {:.2}%; ",
        100.0 * mean
    );
    if let Some(p) = misses {
        let t = train::threshold_at_fpr(&benign, 0.001);
        let mut lines = Vec::new();
        let mut top: Vec<(f64, &Name)> = samples
            .iter()
            .zip(cv)
            .filter(|(s, _)| !s.dga)
            .filter_map(|(s, c)| c.map(|c| (c, &s.name)))
            .collect();
        top.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (v, n) in top.iter().take(60) {
            lines.push(format!("benign\t{v:.3}\t{}", n.as_str()));
        }
        for (f, v) in &fams {
            for (s, _, n) in v.iter().filter(|x| x.0 <= t) {
                lines.push(format!("{f}\t{s:.3}\t{}", n.as_str()));
            }
        }
        std::fs::write(p, lines.join("\n") + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(out.trim_end_matches("; ").to_string())
}

/// Nanoseconds per item of `f`: each chunk of 256 items is timed 5 times and its fastest pass
/// counts, so moments when another process had the (shared) core do not inflate the figure.
fn best_ns<T>(items: &[T], f: impl Fn(&T) -> f64) -> f64 {
    let mut total = 0.0;
    for chunk in items.chunks(256) {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t0 = std::time::Instant::now();
            let mut acc = 0.0;
            for it in chunk {
                acc += f(std::hint::black_box(it));
            }
            std::hint::black_box(acc);
            best = best.min(t0.elapsed().as_nanos() as f64);
        }
        total += best;
    }
    total / items.len().max(1) as f64
}

fn pct(a: usize, b: usize) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * a as f64 / b as f64)
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn evaluate(m: &Model, d: &Data, args: &Args, train_log: &[String]) -> String {
    let mut o = String::new();
    let benign_test: Vec<&Name> = d.benign.iter().filter(|b| b.1).map(|b| &b.0).collect();
    let bscores: Vec<f64> = benign_test.iter().map(|n| m.score(n)).collect();
    let t01 = train::threshold_at_fpr(&bscores, 0.001);
    let t1 = train::threshold_at_fpr(&bscores, 0.01);
    let fp01 = bscores.iter().filter(|&&s| s > t01).count();
    let fp1 = bscores.iter().filter(|&&s| s > t1).count();
    let fqdn_test: Vec<&Name> = d.benign_fqdn.iter().filter(|b| b.1).map(|b| &b.0).collect();
    let fq01 = fqdn_test.iter().filter(|n| m.score(n) > t01).count();
    let mut bll: Vec<f64> = benign_test
        .iter()
        .map(|n| m.features(n).benign_ll)
        .collect();
    let benign_ll_q25 = {
        bll.sort_by(|a, b| a.total_cmp(b));
        bll.get(bll.len() / 4).copied().unwrap_or(f64::NAN)
    };

    let _ = writeln!(
        o,
        "# Name scoring evaluation (lexical DGA model and tunnel score)\n"
    );
    let _ = writeln!(
        o,
        "Generated by `dnsight train-dga{} --report docs/evaluation-names.md` (run from the repository root \
         with `../shared/data` present). Model: {} trees of depth {}, {} suffixes in the rarity table.\n",
        if args.eval_only { " --eval-only" } else { "" },
        m.trees.len(),
        m.depth,
        m.tlds.len()
    );
    let _ = writeln!(
        o,
        "Split: deterministic, ~20% held out by a hash of the DGA name, of the benign registered domain \
         (all Umbrella hosts of one domain on the same side) and of the tunnel qname. Nothing below was \
         trained on. The DGA score looks at the registered-domain label only (`psl`, private section \
         included).\n"
    );
    let _ = writeln!(o, "## Model\n");
    let _ = writeln!(
        o,
        "Inputs ({} features): character statistics of the label (length, entropy, digit/vowel ratios, \
         consonant and digit runs, consonant/vowel alternation...), benign-vs-DGA character trigram and \
         bigram log-likelihood ratios, suffix rarity and the suffix's DGA-vs-benign log-likelihood ratio, \
         and per-family generative scores: for each of {} DGA classes (the largest families of the training \
         data, the rest pooled as `other`) a model of label length, suffix and character bigram chain, each \
         smoothed towards the pooled DGA model (`--family-prior` pseudo-counts); the features are the best \
         family's log-likelihood ratio against the benign model of the same form, and that of the \
         equal-weight mixture of all family models (evidence from several near families adds up). All n-gram, suffix and \
         family features of training names are computed out-of-fold (5 folds), so the trees see them as \
         they are for unseen names. They feed {} gradient-boosted oblivious trees of depth {} (one split per \
         level, so a tree is {} independent comparisons).\n",
        dga::NF,
        m.classes.len().saturating_sub(1),
        m.trees.len(),
        m.depth,
        m.depth
    );
    let _ = writeln!(
        o,
        "Settings (learning rate, benign weight, depth, family prior, features) were chosen by 5-fold \
         cross-validation of the *training* side, never on the held-out names below: for each fold the \
         trees learn from the other four (early stopping on the fold's log-loss) and score it; pooled, the \
         ~17,000 training-side benign domains give a 0.1% FP threshold at their ~17th highest score, a \
         steadier figure than a single validation part (whose ~2,500 benign names put it at the 3rd). \
         The settings were compared by the pooled non-dictionary detection at 0.1% FP and its average over \
         0.05/0.1/0.15/0.2% FP; the shipped trees learn from all training names, as many as the folds' \
         mean early-stopping point. {}\n",
        if train_log.is_empty() {
            "The training log (`dnsight train-dga` without `--eval-only`) prints those cross-validation figures."
                .to_string()
        } else {
            format!("This training run: {}.", train_log.join("; "))
        }
    );
    let _ = writeln!(
        o,
        "What was tried (cross-validation, non-dictionary detection at 0.1% FP / averaged over \
         0.05-0.2% FP; the differences below about one point are within the noise of ~17 benign names \
         setting the threshold): the previous settings (learning rate 0.3, family prior 10, no mixture \
         feature) 87.2%; learning rate 0.1: 88.9%; family prior 3: 89.4% / 88.8%; family prior 30 or 100: \
         87.8%, 87.0%; family prior 1: 87.1-90.4% / 88.3-89.3%; benign weight 3 or 12 instead of 6: 89.5% / \
         88.7%, 87.8% / 88.5%; depth 5 or 7: 89.4% / 89.2%, 88.5% / 88.4%; row subsampling 0.7 or 0.5: \
         89.6% / 89.5%, 89.2% / 87.1%; Umbrella subdomain labels in the benign language model: 86.9%; \
         word-likeness features (share of the label covered by character 4- and 5-grams found in at least \
         3 or 5 benign training labels, their longest run, and the suffix log-likelihood ratio counted only \
         for the uncovered part): 86.8-89.9% / 87.0-89.7%, no gain at 0.1% FP (a gain of ~0.2 points at 1% \
         FP), so not kept; the wordlist families at 1% of their weight: 89.9% / 89.1% but 1.3 points fewer \
         names of all families, not kept; the family-mixture feature: 89.8% / 89.3% at learning rate 0.1, \
         89.8% / 89.8% at 0.2 (62 trees) and 89.3% / 89.5% at 0.3 (32 trees): kept, with family prior 3 \
         and learning rate 0.2. Around that setting: benign weight 4 or 8: 90.4% / 89.9%, 87.1% / 88.1%; \
         family prior 2 or 5: 90.3% / 88.7%, 86.7% / 86.7%, all within the noise, so the setting stayed. (For the record, since its held-out figures were seen: learning rate 0.3 \
         was also trained in full, to halve the trees' cost, and gave 93.9% of the non-dictionary held-out \
         names against 94.6% here; 62 trees keep scoring under about 1 µs (see Speed), and the choice of \
         0.2 stands on the cross-validation figures above. Two early runs also printed held-out figures, with \
         the previous features: learning rate 0.1, 94.8%; 0.05, 93.9%.)\n"
    );
    let _ = writeln!(
        o,
        "Caveat: the per-family features learn the generators present in the training data. The held-out \
         names below are new names of the *same* families; a family never seen in training is scored by \
         the generic features only (randomness, n-grams, suffix), and the per-device NXDOMAIN stage.\n"
    );
    let _ = writeln!(o, "## Benign held-out set\n");
    let _ = writeln!(o, "| set | names | threshold | false positives |");
    let _ = writeln!(o, "|---|---:|---:|---:|");
    let _ = writeln!(
        o,
        "| Umbrella registered domains (0.1% target) | {} | {:.4} | {} ({}) |",
        bscores.len(),
        t01,
        fp01,
        pct(fp01, bscores.len())
    );
    let _ = writeln!(
        o,
        "| Umbrella registered domains (1% target) | {} | {:.4} | {} ({}) |",
        bscores.len(),
        t1,
        fp1,
        pct(fp1, bscores.len())
    );
    let _ = writeln!(
        o,
        "| Umbrella FQDNs of those domains, at the 0.1% threshold | {} | {:.4} | {} ({}) |",
        fqdn_test.len(),
        t01,
        fq01,
        pct(fq01, fqdn_test.len())
    );
    let mut top: Vec<(f64, &Name)> = bscores
        .iter()
        .copied()
        .zip(benign_test.iter().copied())
        .collect();
    top.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let _ = writeln!(
        o,
        "\nThe highest-scoring held-out benign domains (they set the 0.1% threshold): {}.",
        top.iter()
            .take(12)
            .map(|(s, n)| format!(
                "`{}` {:.4}",
                n.as_str().replace('|', "\\|").replace('`', "'"),
                s
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        o,
        "\nThresholds stored in the model (from the same held-out set at training time): 0.1% FP → {:.4}, 1% FP → {:.4} \
         (`dga::threshold_low_fp()`, `dga::threshold_1pct()`).\n",
        m.threshold_0_1pct, m.threshold_1pct
    );

    // per family
    let mut fams: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for (f, n, test) in &d.dga {
        if *test {
            let feats = m.features(n);
            fams.entry(f.as_str())
                .or_default()
                .push((m.score(n), feats.benign_ll));
        }
    }
    let _ = writeln!(o, "## DGA families (held-out names)\n");
    let _ = writeln!(
        o,
        "Detection = share of a family's held-out names scoring above the threshold. \"word-like\" = the \
         family's median benign trigram log-likelihood per character is above the 25th percentile of benign \
         labels ({benign_ll_q25:.2} nats). Kind: `W` = wordlist/dictionary-seeded (see notes), `-` = arithmetic/hash.\n"
    );
    let _ = writeln!(o, "| family | kind | word-like | held-out | median score | detected @0.1% FP | detected @1% FP |");
    let _ = writeln!(o, "|---|---|---|---:|---:|---:|---:|");
    let mut nd_rates = Vec::new();
    let (mut all_n, mut all_d) = (0usize, 0usize);
    let (mut nd_n, mut nd_d) = (0usize, 0usize);
    let mut misses = Vec::new();
    for (f, v) in &fams {
        let n = v.len();
        let d01 = v.iter().filter(|x| x.0 > t01).count();
        let d1 = v.iter().filter(|x| x.0 > t1).count();
        let mut sc: Vec<f64> = v.iter().map(|x| x.0).collect();
        let mut ll: Vec<f64> = v.iter().map(|x| x.1).collect();
        let wordlike = median(&mut ll) > benign_ll_q25;
        let kind = WORDLIST_FAMILIES.iter().any(|(w, _)| w == f);
        all_n += n;
        all_d += d01;
        if !kind && !wordlike {
            nd_rates.push(d01 as f64 / n as f64);
            nd_n += n;
            nd_d += d01;
            if (d01 as f64) < 0.95 * n as f64 {
                misses.push(format!("{f} ({})", pct(d01, n)));
            }
        }
        let _ = writeln!(
            o,
            "| {f} | {} | {} | {n} | {:.3} | {} | {} |",
            if kind { "W" } else { "-" },
            if wordlike { "yes" } else { "no" },
            median(&mut sc),
            pct(d01, n),
            pct(d1, n)
        );
    }
    let macro_nd = if nd_rates.is_empty() {
        f64::NAN
    } else {
        100.0 * nd_rates.iter().sum::<f64>() / nd_rates.len() as f64
    };
    let _ = writeln!(o, "\n**Summary at 0.1% FP:** all families {} of {} held-out names ({}); non-dictionary families (kind `-`, not word-like) {} of {} ({}), macro average over {} families {:.1}%.\n",
        all_d, all_n, pct(all_d, all_n), nd_d, nd_n, pct(nd_d, nd_n), nd_rates.len(), macro_nd);
    if misses.is_empty() {
        let _ = writeln!(o, "Every non-dictionary family reaches the 95% target.\n");
    } else {
        let _ = writeln!(
            o,
            "Non-dictionary families below the 95% target: {}.\n",
            misses.join(", ")
        );
        let _ = writeln!(
            o,
            "**The 95% aim is not met for these families, and a per-name character model is unlikely to \
             meet it honestly here.** Why: (1) the 0.1% threshold is set by the 5th highest of {} held-out \
             benign domains. The Umbrella list itself contains random-looking tracking and junk domains \
             (see the list above; they stay in the benign set): any DGA name scoring below the fifth of \
             them is missed, and nothing in a single random label tells such a name from a generator's. \
             Cross-validation on the training side shows the same ceiling at about 90% (its ~17,000 benign \
             domains hold more such names: `zdoiodhtqahjizqq.net`, `dkitrxmdwoqruvsi.net`, \
             `ksrndkehqnwntyxlhgto.com`, `xgw3sdzoac.com`, `mukvmxqx.com`...), and no setting or feature \
             tried moved it by more than the noise (see above). (2) Several families emit names a person \
             would not call random either: very short labels (qsnatch: 3-5 characters such as `rin.kg`, \
             `rz6.eu`, next to benign `ntp.li`, `mp3.pm`, `tru.am`), pronounceable syllable strings \
             (vawtrak's `.com` variant: `ennices.com`, `olorgafle.com`; nymaim, tempedreve), and mixed case \
             (reconyc), which DNS folds away before any model sees it. (3) Several rows have fewer than 25 \
             held-out names (locky, orchard, sharkbot, padcrypt, zloader, unnamed_javascript_dga...), where \
             one name is 4-33 points. The engine's per-device stage is the backstop for all of them: a \
             device resolving a burst of never-seen names that do not resolve is flagged whatever the names \
             look like.\n",
            bscores.len()
        );
    }
    let _ = writeln!(o, "Wordlist / dictionary-seeded families (kind `W`):\n");
    for (f, why) in WORDLIST_FAMILIES {
        let _ = writeln!(o, "- {f}: {why}");
    }
    let _ = writeln!(
        o,
        "\nNone of the classic pure-dictionary families (suppobox, matsnu, gozi, nymaim2, rovnix) is in this \
         data set; they and the `W`/word-like families above defeat a character model by design. The engine's \
         per-device stage carries them: a device resolving a burst of never-seen names that do not resolve \
         (NXDOMAIN) is flagged whatever the names look like.\n"
    );

    // tunnel
    let _ = writeln!(o, "## Tunnel score (held-out names of the tunnel set)\n");
    let _ = writeln!(
        o,
        "`tunnel_score` looks at the labels left of the registered domain; names without any score 0. \
         A logistic regression over 10 subdomain features (length, label count, bits per character under \
         the benign trigram model, entropy, digit/other ratios...) trained on the other ~80% of the tunnel \
         set plus the training side of the Umbrella FQDNs (as negatives).\n"
    );
    let mut neg_scores: Vec<f64> = d
        .tunnel
        .iter()
        .filter(|t| t.3 && !t.1)
        .map(|t| m.tunnel_score(&t.2))
        .collect();
    let umb: Vec<f64> = d
        .benign_fqdn
        .iter()
        .filter(|b| b.1)
        .map(|b| m.tunnel_score(&b.0))
        .collect();
    neg_scores.extend(umb.iter().copied());
    let tt01 = train::threshold_at_fpr(&neg_scores, 0.001);
    let tt1 = train::threshold_at_fpr(&neg_scores, 0.01);
    let _ = writeln!(o, "| set | label | held-out names | with subdomain | >0.5 | >{tt01:.3} (0.1% FP) | >{tt1:.3} (1% FP) |");
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|");
    for stem in ["iodine", "dns2tcp", "plain"] {
        let v: Vec<(&Name, bool)> = d
            .tunnel
            .iter()
            .filter(|t| t.3 && t.0 == stem)
            .map(|t| (&t.2, t.1))
            .collect();
        let label = v.first().map(|x| x.1).unwrap_or(false);
        let with_sub = v
            .iter()
            .filter(|x| dga::split(x.0).is_some_and(|s| !s.subdomain.is_empty()))
            .count();
        let s: Vec<f64> = v.iter().map(|x| m.tunnel_score(x.0)).collect();
        let c = |t: f64| s.iter().filter(|&&x| x > t).count();
        let _ = writeln!(
            o,
            "| {stem} | {} | {} | {} | {} | {} | {} |",
            if label { "tunnel" } else { "benign" },
            s.len(),
            with_sub,
            pct(c(0.5), s.len()),
            pct(c(tt01), s.len()),
            pct(c(tt1), s.len())
        );
    }
    let c = |t: f64| umb.iter().filter(|&&x| x > t).count();
    let umb_sub = d
        .benign_fqdn
        .iter()
        .filter(|b| b.1 && dga::split(&b.0).is_some_and(|s| !s.subdomain.is_empty()))
        .count();
    let _ = writeln!(
        o,
        "| Umbrella FQDNs | benign | {} | {} | {} | {} | {} |",
        umb.len(),
        umb_sub,
        pct(c(0.5), umb.len()),
        pct(c(tt01), umb.len()),
        pct(c(tt1), umb.len())
    );
    let _ = writeln!(
        o,
        "\nThresholds here are chosen on the held-out benign names of this table (plain + Umbrella FQDNs). \
         Per name, short tunnel polls (iodine's 8-character `paaamiii`-style pings) look like ordinary host \
         labels; the engine's tunneling detector aggregates per registered domain and device (unique \
         subdomains, encoded bytes over time), which is where those are caught.\n"
    );
    // speed: best of 3 passes over every name of the corpus
    let names: Vec<&Name> = d
        .benign_fqdn
        .iter()
        .map(|b| &b.0)
        .chain(d.dga.iter().map(|x| &x.1))
        .chain(d.tunnel.iter().map(|t| &t.2))
        .collect();
    let ns_score = best_ns(&names, |n| m.score(n));
    let ns_tunnel = best_ns(&names, |n| m.tunnel_score(n));
    let ns_split = best_ns(&names, |n| {
        dga::split(n).map_or(0.0, |s| s.label.len() as f64)
    });
    let xs: Vec<[f32; dga::NF]> = names.iter().map(|n| m.features(n).to_array()).collect();
    let ns_trees = best_ns(&xs, |x| m.logit(x) as f64);
    let _ = writeln!(o, "## Speed\n");
    let _ = writeln!(
        o,
        "Measured by this command over all {} corpus names (one core, {} build; each chunk of 256 \
         names timed 5 times, fastest pass counted): \
         `score` {:.0} ns/name, `tunnel_score` {:.0} ns/name (both include the public-suffix split). \
         Of `score`: the public-suffix split alone {:.0} ns/name, the {} trees alone {:.0} ns/name \
         (on precomputed feature vectors); the rest is the features (n-grams, per-family sums). \
         Scoring allocates nothing. Load average during the measurement: {} (the machine has 2 \
         cores shared with other builds; a high figure means pessimistic timings). The tables are \
         sized for the cache: trigrams as 16-bit milli-nats (237 KB), per-family bigram rows of {} \
         floats; repeated names in real traffic hit warm cache lines, this corpus has {} mostly \
         distinct names.\n",
        names.len(),
        if cfg!(debug_assertions) { "debug" } else { "release" },
        ns_score,
        ns_tunnel,
        ns_split,
        m.trees.len(),
        ns_trees,
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into()),
        dga::KP,
        names.len(),
    );
    o
}
