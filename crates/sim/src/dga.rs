//! Domain-generation algorithm names for the DGA scenarios.
//!
//! With `--dga-file` (the `family,variant,domain,generator_args` CSV of real families in
//! `../shared/data/dga/`), scenarios use real families' output. Without it, two simple built-in
//! algorithms stand in: a character DGA (Conficker-like random letters) and a dictionary DGA
//! (suppobox-like word pairs), the latter being the kind lexical models miss.

use rand::Rng;
use std::collections::BTreeMap;
use std::path::Path;

/// Names per family, in file order.
#[derive(Clone, Debug, Default)]
pub struct DgaSet {
    pub families: BTreeMap<String, Vec<String>>,
}

/// Character-based families preferred for the scenario (present in the public corpus).
const PREFERRED: &[&str] = &[
    "murofet", "qakbot", "ramnit", "pushdo", "simda", "nymaim", "tinba", "shiotob", "ranbyus",
    "necurs", "pykspa",
];

impl DgaSet {
    /// Reads the CSV; malformed lines are skipped (counted in the returned number).
    pub fn load(path: &Path) -> std::io::Result<(DgaSet, usize)> {
        let text = std::fs::read_to_string(path)?;
        let mut set = DgaSet::default();
        let mut bad = 0;
        for (i, line) in text.lines().enumerate() {
            if i == 0 && line.starts_with("family") {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 3 || f[2].is_empty() || !f[2].contains('.') || f[2].len() > 253 {
                bad += 1;
                continue;
            }
            set.families
                .entry(f[0].to_string())
                .or_default()
                .push(f[2].to_ascii_lowercase());
        }
        Ok((set, bad))
    }

    /// A character-DGA family from the file, chosen by `pick`, with at least 40 names.
    pub fn pick_family(&self, pick: u64) -> Option<(&str, &[String])> {
        let cands: Vec<&str> = PREFERRED
            .iter()
            .copied()
            .filter(|f| self.families.get(*f).is_some_and(|v| v.len() >= 40))
            .collect();
        if cands.is_empty() {
            return None;
        }
        let f = cands[(pick % cands.len() as u64) as usize];
        self.families
            .get_key_value(f)
            .map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// Built-in character DGA: a linear congruential generator over a date seed (Conficker-like).
pub fn builtin_char(seed: u32, n: usize) -> Vec<String> {
    let mut s = seed as u64 | 1;
    let tlds = ["com", "net", "org", "info", "biz", "ru"];
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = 8 + (s >> 61) as usize;
            let mut name = String::new();
            for _ in 0..len {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                name.push((b'a' + ((s >> 33) % 26) as u8) as char);
            }
            format!("{name}.{}", tlds[((s >> 40) % tlds.len() as u64) as usize])
        })
        .collect()
}

const DICT: &[&str] = &[
    "table", "window", "garden", "people", "weather", "little", "mother", "picture", "country",
    "number", "morning", "summer", "letter", "history", "answer", "nature", "simple", "follow",
    "strong", "market", "science", "common", "figure", "travel", "animal", "season", "energy",
    "bottle", "secret", "silver", "rather", "circle", "system", "region", "measure", "record",
    "finger", "flower", "middle", "reason",
];

/// Built-in dictionary DGA: two dictionary words per name (suppobox-like).
pub fn builtin_dict<R: Rng>(rng: &mut R, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let a = DICT[rng.random_range(0..DICT.len())];
            let b = DICT[rng.random_range(0..DICT.len())];
            format!("{a}{b}.net")
        })
        .collect()
}
