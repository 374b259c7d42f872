//! Training of the lexical model, in plain Rust (no ML crate): n-gram counting, per-family
//! generative models (length, suffix and bigram chain per DGA family, smoothed towards the
//! pooled DGA model), gradient-boosted oblivious trees with early stopping on a validation part
//! of the training data, a logistic regression for the tunnel score, and the evaluation helpers.
//!
//! Used by the hidden `dnsight train-dga` command, which does the file I/O. Everything here is
//! deterministic: the same inputs give a byte-identical model file.
//!
//! To keep the n-gram and suffix features honest, the boosted trees are trained on
//! *out-of-fold* features: each training label is scored against counts from the other four of
//! five folds, so the trees see feature values distributed like those of unseen names. (A
//! leave-one-out encoding leaks the class: removing a label's own count shifts the value in a
//! class-dependent direction, and trees learn that shift.)
//!
//! Settings are compared by cross-validating the trees over the same 5 folds ([`train_cv`]):
//! pooled out-of-fold scores of the whole training side give a steadier 0.1% false-positive
//! figure than one small validation part, and the held-out split is never looked at.

#![allow(clippy::needless_range_loop)] // index-parallel numeric arrays

use super::features::{
    bi_idx, label_features, label_syms, len_bucket, split_str, subdomain_features, tri_idx,
    NgramLm, SuffixInfo, ALPHA, BOUNDARY, KP, LEN_BUCKETS, MAXS, NF, NTF,
};
use super::model::{Model, Tree, TunnelModel};
use dnsight_model::Name;

/// One labeled training name.
#[derive(Debug, Clone)]
pub struct LabeledName {
    pub name: Name,
    pub dga: bool,
    /// Sample weight (e.g. to keep large DGA families from dominating).
    pub weight: f64,
    /// Only feeds the n-gram language model (e.g. extra benign host labels), not the trees.
    pub lm_only: bool,
    /// The DGA family (for the per-family models); ignored for benign names.
    pub family: String,
}

/// Hyper-parameters.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub trees: usize,
    pub depth: u32,
    pub learning_rate: f64,
    pub lambda: f64,
    pub min_child_weight: f64,
    /// Additive smoothing of the n-gram models.
    pub smoothing: f64,
    /// Strength of the prior that pulls each family's models towards the pooled DGA model
    /// (pseudo-counts).
    pub family_prior: f64,
    /// Stop adding trees when the validation loss has not improved for this many rounds.
    pub patience: usize,
    /// Share (percent) of the training names kept aside for early stopping.
    pub validation_pct: u64,
    /// Also cross-validate the trees over the 5 folds (see [`train_cv`]).
    pub cross_validate: bool,
    /// Share of the training rows each tree is fitted on (stochastic gradient boosting).
    pub subsample: f64,
    /// Inputs the trees may not use (bit i = `NameFeatures::NAMES[i]`): they are held
    /// constant in training, so no split can pick them (for ablations).
    pub drop_features: u32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            trees: 300,
            depth: 6,
            learning_rate: 0.1,
            lambda: 1.0,
            min_child_weight: 2.0,
            smoothing: 0.2,
            family_prior: 10.0,
            patience: 60,
            validation_pct: 15,
            cross_validate: false,
            subsample: 1.0,
            drop_features: 0,
        }
    }
}

/// Deterministic split: true for about 20% of keys (FNV-1a of the key), the held-out test set.
pub fn in_test_split(key: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.as_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // mix the high bits in: FNV's low bits are weak
    (h ^ (h >> 29)).is_multiple_of(5)
}

/// The smallest threshold `t` such that at most `fpr` of `benign` scores are `> t`.
/// Names are flagged when their score is strictly above the threshold.
pub fn threshold_at_fpr(benign: &[f64], fpr: f64) -> f64 {
    if benign.is_empty() {
        return 0.5;
    }
    let mut s: Vec<f64> = benign.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let k = (fpr * s.len() as f64).floor() as usize;
    s[k.min(s.len() - 1)]
}

/// Weighted n-gram counts for both classes (index 0 benign, 1 DGA).
struct Counts {
    tri: Vec<[f64; 2]>,
    ctx2: Vec<[f64; 2]>,
    bi: Vec<[f64; 2]>,
    ctx1: Vec<[f64; 2]>,
    alpha: f64,
}

/// The n-grams of one padded label: trigram indices, their context (bigram) indices, bigram
/// indices and their context (unigram) indices.
fn label_grams(syms: &[u8]) -> (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>) {
    let n = syms.len() as isize;
    let at = |i: isize| {
        if i < 0 || i >= n {
            BOUNDARY
        } else {
            syms[i as usize]
        }
    };
    let mut tri = Vec::new();
    let mut c2 = Vec::new();
    let mut bi = Vec::new();
    let mut c1 = Vec::new();
    if syms.is_empty() {
        return (tri, c2, bi, c1);
    }
    for i in 0..n {
        tri.push(tri_idx(at(i - 1), at(i), at(i + 1)));
        c2.push(bi_idx(at(i - 1), at(i)));
    }
    for i in -1..n {
        bi.push(bi_idx(at(i), at(i + 1)));
        c1.push(at(i) as usize);
    }
    (tri, c2, bi, c1)
}

impl Counts {
    fn new(alpha: f64) -> Self {
        let a3 = ALPHA * ALPHA * ALPHA;
        let a2 = ALPHA * ALPHA;
        Counts {
            tri: vec![[0.0; 2]; a3],
            ctx2: vec![[0.0; 2]; a2],
            bi: vec![[0.0; 2]; a2],
            ctx1: vec![[0.0; 2]; ALPHA],
            alpha,
        }
    }
    fn add(&mut self, syms: &[u8], class: usize, w: f64) {
        let (t, c2, b, c1) = label_grams(syms);
        for i in t {
            self.tri[i][class] += w;
        }
        for i in c2 {
            self.ctx2[i][class] += w;
        }
        for i in b {
            self.bi[i][class] += w;
        }
        for i in c1 {
            self.ctx1[i][class] += w;
        }
    }
    fn lp(&self, num: f64, den: f64) -> f64 {
        ((num.max(0.0) + self.alpha) / (den.max(0.0) + self.alpha * ALPHA as f64)).ln()
    }
}

/// Raw per-class counts for the per-family models (class 0 benign, 1.. DGA families), plus
/// the pooled DGA counts (weighted like the trees' samples) that each family is smoothed
/// towards, so that a family with a handful of names borrows from all the others.
#[derive(Clone)]
struct ClassCounts {
    k: usize,
    /// Suffix rows: the known suffixes, then "any other suffix".
    rows: usize,
    bi: Vec<f64>,
    ctx: Vec<f64>,
    len: Vec<f64>,
    tld: Vec<f64>,
    n: Vec<f64>,
    pool_bi: Vec<f64>,
    pool_ctx: Vec<f64>,
    pool_len: Vec<f64>,
    pool_tld: Vec<f64>,
    pool_n: f64,
}

/// Log-probability tables of the per-class models (flat, `k` columns, as in the model file).
struct ClassTables {
    tld_llr: Vec<f32>,
    tld: Vec<f32>,
    len: Vec<f32>,
    bi: Vec<f32>,
    /// The same, padded to [`KP`] columns.
    tld_rows: Vec<[f32; KP]>,
    len_rows: Vec<[f32; KP]>,
    bi_rows: Vec<[f32; KP]>,
}

impl ClassCounts {
    fn new(k: usize, rows: usize) -> Self {
        let a2 = ALPHA * ALPHA;
        ClassCounts {
            k,
            rows,
            bi: vec![0.0; a2 * k],
            ctx: vec![0.0; ALPHA * k],
            len: vec![0.0; LEN_BUCKETS * k],
            tld: vec![0.0; rows * k],
            n: vec![0.0; k],
            pool_bi: vec![0.0; a2],
            pool_ctx: vec![0.0; ALPHA],
            pool_len: vec![0.0; LEN_BUCKETS],
            pool_tld: vec![0.0; rows],
            pool_n: 0.0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        syms: &[u8],
        total_len: usize,
        class: usize,
        row: usize,
        w: f64,
        lm_only: bool,
    ) {
        let k = self.k;
        let (_, _, bis, ctxs) = label_grams(syms);
        for (&b, &c) in bis.iter().zip(&ctxs) {
            self.bi[b * k + class] += 1.0;
            self.ctx[c * k + class] += 1.0;
            if class > 0 {
                self.pool_bi[b] += w;
                self.pool_ctx[c] += w;
            }
        }
        if lm_only {
            return;
        }
        let lb = len_bucket(total_len);
        self.len[lb * k + class] += 1.0;
        self.tld[row * k + class] += 1.0;
        self.n[class] += 1.0;
        if class > 0 {
            self.pool_len[lb] += w;
            self.pool_tld[row] += w;
            self.pool_n += w;
        }
    }

    /// `self − other`, element-wise (out-of-fold counts).
    fn minus(&self, o: &ClassCounts) -> ClassCounts {
        let sub =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x - y).collect() };
        ClassCounts {
            k: self.k,
            rows: self.rows,
            bi: sub(&self.bi, &o.bi),
            ctx: sub(&self.ctx, &o.ctx),
            len: sub(&self.len, &o.len),
            tld: sub(&self.tld, &o.tld),
            n: sub(&self.n, &o.n),
            pool_bi: sub(&self.pool_bi, &o.pool_bi),
            pool_ctx: sub(&self.pool_ctx, &o.pool_ctx),
            pool_len: sub(&self.pool_len, &o.pool_len),
            pool_tld: sub(&self.pool_tld, &o.pool_tld),
            pool_n: self.pool_n - o.pool_n,
        }
    }

    /// Smoothed log-probabilities: benign and the pooled DGA model with additive smoothing,
    /// each family as a Dirichlet posterior around the pooled DGA model (`beta` pseudo-counts).
    fn tables(&self, alpha: f64, beta: f64) -> ClassTables {
        let k = self.k;
        let a = ALPHA as f64;
        let ln = |x: f64| x.max(1e-300).ln() as f32;
        let mut bi = vec![0f32; ALPHA * ALPHA * k];
        for i in 0..ALPHA * ALPHA {
            let c = i / ALPHA;
            let pool = (self.pool_bi[i].max(0.0) + alpha) / (self.pool_ctx[c].max(0.0) + alpha * a);
            bi[i * k] =
                ln((self.bi[i * k].max(0.0) + alpha) / (self.ctx[c * k].max(0.0) + alpha * a));
            for cl in 1..k {
                bi[i * k + cl] = ln((self.bi[i * k + cl].max(0.0) + beta * pool)
                    / (self.ctx[c * k + cl].max(0.0) + beta));
            }
        }
        let lb = LEN_BUCKETS as f64;
        let mut len = vec![0f32; LEN_BUCKETS * k];
        for l in 0..LEN_BUCKETS {
            let pool = (self.pool_len[l].max(0.0) + 0.5) / (self.pool_n.max(0.0) + 0.5 * lb);
            len[l * k] = ln((self.len[l * k].max(0.0) + 0.5) / (self.n[0].max(0.0) + 0.5 * lb));
            for cl in 1..k {
                len[l * k + cl] =
                    ln((self.len[l * k + cl].max(0.0) + beta * pool)
                        / (self.n[cl].max(0.0) + beta));
            }
        }
        let v = self.rows as f64;
        let mut tld = vec![0f32; self.rows * k];
        let mut tld_llr = vec![0f32; self.rows];
        for r in 0..self.rows {
            let pool = (self.pool_tld[r].max(0.0) + 0.5) / (self.pool_n.max(0.0) + 0.5 * v);
            let p0 = (self.tld[r * k].max(0.0) + 0.5) / (self.n[0].max(0.0) + 0.5 * v);
            tld[r * k] = ln(p0);
            tld_llr[r] = ln(pool) - ln(p0);
            for cl in 1..k {
                tld[r * k + cl] =
                    ln((self.tld[r * k + cl].max(0.0) + beta * pool)
                        / (self.n[cl].max(0.0) + beta));
            }
        }
        ClassTables {
            tld_rows: super::model::padded_rows(&tld, k),
            len_rows: super::model::padded_rows(&len, k),
            bi_rows: super::model::padded_rows(&bi, k),
            tld_llr,
            tld,
            len,
            bi,
        }
    }
}

/// Out-of-fold counts: the totals minus one fold's counts. Scoring a training label against
/// counts that exclude its whole fold (not only itself) avoids the target leak of
/// leave-one-out encodings, where the mere removal of a label's own count reveals its class.
struct Oof<'a> {
    total: &'a Counts,
    fold: &'a Counts,
    classes: &'a ClassTables,
}

impl NgramLm for Oof<'_> {
    fn tri(&self, i: usize) -> (f32, f32) {
        let ctx = i / ALPHA;
        let mut lp = [0.0; 2];
        for (cls, v) in lp.iter_mut().enumerate() {
            let num = self.total.tri[i][cls] - self.fold.tri[i][cls];
            let den = self.total.ctx2[ctx][cls] - self.fold.ctx2[ctx][cls];
            *v = self.total.lp(num, den);
        }
        ((lp[1] - lp[0]) as f32, lp[0] as f32)
    }
    fn bi(&self, i: usize) -> f32 {
        let ctx = i / ALPHA;
        let mut lp = [0.0; 2];
        for (cls, v) in lp.iter_mut().enumerate() {
            let num = self.total.bi[i][cls] - self.fold.bi[i][cls];
            let den = self.total.ctx1[ctx][cls] - self.fold.ctx1[ctx][cls];
            *v = self.total.lp(num, den);
        }
        (lp[1] - lp[0]) as f32
    }
    fn fam_bi_add(&self, i: usize, acc: &mut [f32; KP]) {
        let row = &self.classes.bi_rows[i];
        for k in 0..KP {
            acc[k] += row[k];
        }
    }
    fn fam_len_add(&self, len_bucket: usize, acc: &mut [f32; KP]) {
        let row = &self.classes.len_rows[len_bucket];
        for k in 0..KP {
            acc[k] += row[k];
        }
    }
}

/// Number of folds for the out-of-fold n-gram and suffix features.
const FOLDS: usize = 5;

fn fold_of(key: &str) -> usize {
    let mut h: u64 = 0x84222325cbf29ce4;
    for &b in key.as_bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    ((h >> 33) % FOLDS as u64) as usize
}

/// Progress/diagnostic messages from training, for the CLI to print.
pub type Log<'a> = &'a mut dyn FnMut(&str);

/// Trains the DGA model (n-gram tables, suffix rarity, boosted trees) and the tunnel logistic
/// regression. Thresholds are left at 0.5 / 0.5; the caller sets them from held-out data.
///
/// `tunnel_pos` / `tunnel_neg`: names whose subdomain part is / is not an encoded payload.
pub fn train(
    samples: &[LabeledName],
    tunnel_pos: &[Name],
    tunnel_neg: &[Name],
    cfg: &TrainConfig,
    log: Log<'_>,
) -> Model {
    train_cv(samples, tunnel_pos, tunnel_neg, cfg, log).0
}

/// [`train`], and with `cfg.cross_validate` also out-of-fold tree scores of the training names:
/// for each of the 5 folds, trees are trained on the other four (early stopping on that fold)
/// and score that fold. The result has one entry per sample: the log-odds, or `None` for
/// `lm_only` samples, names without a registered label, or when not cross-validating.
///
/// Why: the validation part used for early stopping holds ~2,500 benign names, so its 0.1%
/// false-positive threshold is the 3rd highest benign score, too noisy to choose settings by.
/// Pooled over all folds, the training side's ~17,000 benign names put that threshold at the
/// 17th, a steadier figure, and nothing of the held-out split is involved.
pub fn train_cv(
    samples: &[LabeledName],
    tunnel_pos: &[Name],
    tunnel_neg: &[Name],
    cfg: &TrainConfig,
    log: Log<'_>,
) -> (Model, Vec<Option<f64>>) {
    // 1. symbols, suffixes
    struct Prep {
        sample: usize,
        syms: Vec<u8>,
        total_len: usize,
        suffix: String,
        known: bool,
        private: bool,
        label: String,
        class: usize,
        family: String,
        w: f64,
        fold: usize,
        val: bool,
        lm_only: bool,
    }
    let mut prep = Vec::with_capacity(samples.len());
    for (si, s) in samples.iter().enumerate() {
        let Some(sp) = split_str(s.name.as_str()) else {
            continue;
        };
        if sp.label.is_empty() {
            continue;
        }
        let mut buf = [0u8; MAXS];
        let (n, total_len) = label_syms(sp.label, &mut buf);
        prep.push(Prep {
            sample: si,
            syms: buf[..n].to_vec(),
            total_len,
            suffix: sp.suffix.to_string(),
            known: sp.suffix_known,
            private: sp.suffix_private,
            label: sp.label.to_string(),
            class: s.dga as usize,
            family: s.family.clone(),
            w: s.weight,
            fold: fold_of(s.name.as_str()),
            val: in_validation(s.name.as_str(), cfg.validation_pct),
            lm_only: s.lm_only,
        });
    }
    log(&format!("training on {} labels", prep.len()));

    // 2. classes of the per-family models: benign, then the families by size (the smallest
    //    share an `other` class if there are more than fit)
    let mut fam_n: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for p in prep.iter().filter(|p| p.class == 1 && !p.lm_only) {
        *fam_n.entry(p.family.as_str()).or_default() += 1;
    }
    let mut fams: Vec<(&str, usize)> = fam_n.into_iter().collect();
    fams.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut classes: Vec<Box<str>> = vec!["benign".into()];
    let mut class_of: std::collections::BTreeMap<&str, usize> = Default::default();
    for (i, (f, _)) in fams.iter().enumerate() {
        if i + 2 < KP {
            classes.push((*f).into());
            class_of.insert(f, i + 1);
        } else {
            if classes.len() < KP {
                classes.push("other".into());
            }
            class_of.insert(f, KP - 1);
        }
    }
    if classes.len() == 1 {
        classes.push("dga".into());
    }
    let k = classes.len();
    let kclass = |p: &Prep| -> usize {
        if p.class == 0 {
            0
        } else {
            class_of.get(p.family.as_str()).copied().unwrap_or(1)
        }
    };

    // 3. suffix table: every suffix of a training registered domain, benign or DGA
    let suffixes: Vec<&str> = {
        let set: std::collections::BTreeSet<&str> = prep
            .iter()
            .filter(|p| !p.lm_only && p.suffix.len() <= 255)
            .map(|p| p.suffix.as_str())
            .collect();
        set.into_iter().collect()
    };
    let rows = suffixes.len() + 1;
    let row_of = |s: &str| suffixes.binary_search(&s).unwrap_or(rows - 1);

    // 4. n-gram and per-class counts, in total and per fold
    let mut counts = Counts::new(cfg.smoothing);
    let mut fold_counts: Vec<Counts> = (0..FOLDS).map(|_| Counts::new(cfg.smoothing)).collect();
    let mut cc = ClassCounts::new(k, rows);
    let mut cc_fold: Vec<ClassCounts> = (0..FOLDS).map(|_| ClassCounts::new(k, rows)).collect();
    for p in &prep {
        counts.add(&p.syms, p.class, p.w);
        fold_counts[p.fold].add(&p.syms, p.class, p.w);
        let (kc, row) = (kclass(p), row_of(&p.suffix));
        cc.add(&p.syms, p.total_len, kc, row, p.w, p.lm_only);
        cc_fold[p.fold].add(&p.syms, p.total_len, kc, row, p.w, p.lm_only);
    }
    let fold_tables: Vec<ClassTables> = cc_fold
        .iter()
        .map(|f| cc.minus(f).tables(cfg.smoothing, cfg.family_prior))
        .collect();

    // 5. suffix rarity from benign weights
    let mut tld: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
    let mut tld_fold: std::collections::BTreeMap<(&str, usize), f64> =
        std::collections::BTreeMap::new();
    let mut benign_total = 0.0;
    let mut benign_fold = [0.0f64; FOLDS];
    for p in prep.iter().filter(|p| p.class == 0 && !p.lm_only) {
        *tld.entry(p.suffix.as_str()).or_default() += p.w;
        *tld_fold.entry((p.suffix.as_str(), p.fold)).or_default() += p.w;
        benign_total += p.w;
        benign_fold[p.fold] += p.w;
    }
    let rarity_of = |c: f64, total: f64| -> f64 { -((c.max(0.0) + 0.5) / total.max(1.0)).ln() };
    let rarity = |c: f64| -> f64 { rarity_of(c, benign_total) };
    let tld_unknown = rarity(0.0);

    // 6. out-of-fold features
    let mut x: Vec<[f32; NF]> = Vec::with_capacity(prep.len());
    let mut y: Vec<f32> = Vec::with_capacity(prep.len());
    let mut w: Vec<f32> = Vec::with_capacity(prep.len());
    let mut val: Vec<bool> = Vec::with_capacity(prep.len());
    let mut row_sample: Vec<(usize, usize)> = Vec::with_capacity(prep.len());
    for p in prep.iter().filter(|p| !p.lm_only) {
        row_sample.push((p.sample, p.fold));
        let ft = &fold_tables[p.fold];
        let oof = Oof {
            total: &counts,
            fold: &fold_counts[p.fold],
            classes: ft,
        };
        let c = tld.get(p.suffix.as_str()).copied().unwrap_or(0.0)
            - tld_fold
                .get(&(p.suffix.as_str(), p.fold))
                .copied()
                .unwrap_or(0.0);
        let row = row_of(&p.suffix);
        let si = SuffixInfo {
            rarity: rarity_of(c, benign_total - benign_fold[p.fold]),
            llr: ft.tld_llr[row] as f64,
            class_lp: &ft.tld_rows[row],
            known: p.known,
            private: p.private,
        };
        let f = label_features(&p.label, &oof, &si, 0);
        let mut row = f.to_array();
        for (i, v) in row.iter_mut().enumerate() {
            if cfg.drop_features & (1 << i) != 0 {
                *v = 0.0;
            }
        }
        x.push(row);
        y.push(p.class as f32);
        w.push(p.w as f32);
        val.push(p.val);
    }

    // 7. boosted trees (and, when asked, their cross-validation)
    let mut cv: Vec<Option<f64>> = vec![None; samples.len()];
    let (base, trees) = if cfg.cross_validate {
        let mut stops = Vec::with_capacity(FOLDS);
        for f in 0..FOLDS {
            let vmask: Vec<bool> = row_sample.iter().map(|r| r.1 == f).collect();
            let (_, t, vfx) = gbdt(&x, &y, &w, &vmask, cfg, &mut |_| {});
            stops.push(t.len());
            let rows = row_sample.iter().filter(|r| r.1 == f);
            for (r, v) in rows.zip(vfx) {
                cv[r.0] = Some(v);
            }
        }
        // the final trees learn from every training name; their number is the folds' mean
        // early-stopping point
        let n = (stops.iter().sum::<usize>() as f64 / FOLDS as f64).round() as usize;
        log(&format!(
            "cross-validation: {} names scored out of fold; early stopping per fold at {stops:?} trees; \
             final model: {n} trees on all training names",
            cv.iter().filter(|c| c.is_some()).count()
        ));
        let all = vec![false; x.len()];
        let fcfg = TrainConfig {
            trees: n.max(1),
            ..cfg.clone()
        };
        let (b, t, _) = gbdt(&x, &y, &w, &all, &fcfg, log);
        (b, t)
    } else {
        let (b, t, _) = gbdt(&x, &y, &w, &val, cfg, log);
        (b, t)
    };

    // 8. final tables
    let a3 = ALPHA * ALPHA * ALPHA;
    let mut tri_llr = vec![0.0f32; a3];
    let mut tri_benign = vec![0.0f32; a3];
    for i in 0..a3 {
        let ctx = i / ALPHA;
        let lb = counts.lp(counts.tri[i][0], counts.ctx2[ctx][0]);
        let ld = counts.lp(counts.tri[i][1], counts.ctx2[ctx][1]);
        tri_llr[i] = (ld - lb) as f32;
        tri_benign[i] = lb as f32;
    }
    let bi_llr: Vec<f32> = (0..ALPHA * ALPHA)
        .map(|i| {
            let ctx = i / ALPHA;
            (counts.lp(counts.bi[i][1], counts.ctx1[ctx][1])
                - counts.lp(counts.bi[i][0], counts.ctx1[ctx][0])) as f32
        })
        .collect();
    let tlds: Vec<(Box<str>, f32)> = suffixes
        .iter()
        .map(|k| {
            (
                Box::<str>::from(*k),
                rarity(tld.get(k).copied().unwrap_or(0.0)) as f32,
            )
        })
        .collect();
    let ct = cc.tables(cfg.smoothing, cfg.family_prior);
    let mut model = Model {
        depth: cfg.depth,
        base,
        threshold_0_1pct: 0.5,
        threshold_1pct: 0.5,
        tri_llr,
        tri_benign,
        bi_llr,
        tlds,
        tld_unknown: tld_unknown as f32,
        classes,
        tld_llr: ct.tld_llr,
        class_tld: ct.tld,
        class_len: ct.len,
        class_bi: ct.bi,
        trees,
        tunnel: TunnelModel {
            scale: [1.0; NTF],
            ..Default::default()
        },
        fast: Default::default(),
    };
    // round-trip through the file format so training-time and run-time tables are identical
    model = Model::decode(&model.encode()).expect("fresh model encodes");

    // 9. tunnel logistic regression
    model.tunnel = train_tunnel(&model, tunnel_pos, tunnel_neg, log);
    (model, cv)
}

/// Names kept aside from the trees for early stopping (a hash independent of the test split
/// and of the folds).
fn in_validation(key: &str, pct: u64) -> bool {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for &b in key.as_bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        h ^= h >> 27;
    }
    h % 100 < pct
}

fn sig(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Quantile cut points of one feature: `x <= cut[b]` is bin `<= b`.
fn cuts_for(vals: &mut [f32], max_bins: usize) -> Vec<f32> {
    vals.sort_by(|a, b| a.total_cmp(b));
    let mut uniq: Vec<f32> = Vec::new();
    for &v in vals.iter() {
        if uniq.last() != Some(&v) {
            uniq.push(v);
        }
    }
    let mut cuts = Vec::new();
    if uniq.len() <= max_bins {
        for w in uniq.windows(2) {
            cuts.push((w[0] + w[1]) / 2.0);
        }
    } else {
        let n = vals.len();
        for k in 1..max_bins {
            let v = vals[k * n / max_bins];
            if cuts.last().is_none_or(|&l| v > l) && v < *uniq.last().unwrap_or(&v) {
                cuts.push(v);
            }
        }
    }
    cuts
}

fn gbdt(
    x: &[[f32; NF]],
    y: &[f32],
    w: &[f32],
    val: &[bool],
    cfg: &TrainConfig,
    log: Log<'_>,
) -> (f32, Vec<Tree>, Vec<f64>) {
    let n = x.len();
    const MAXB: usize = 64;
    let train_idx: Vec<usize> = (0..n).filter(|&i| !val[i]).collect();
    let val_idx: Vec<usize> = (0..n).filter(|&i| val[i]).collect();
    let mut cuts: Vec<Vec<f32>> = Vec::with_capacity(NF);
    for f in 0..NF {
        let mut col: Vec<f32> = train_idx.iter().map(|&i| x[i][f]).collect();
        cuts.push(cuts_for(&mut col, MAXB));
    }
    let bins: Vec<[u8; NF]> = x
        .iter()
        .map(|r| {
            let mut b = [0u8; NF];
            for f in 0..NF {
                b[f] = cuts[f].partition_point(|&c| r[f] > c) as u8;
            }
            b
        })
        .collect();
    let (mut sp, mut sn) = (0.0f64, 0.0f64);
    for &i in &train_idx {
        if y[i] > 0.5 {
            sp += w[i] as f64
        } else {
            sn += w[i] as f64
        }
    }
    let base = (sp.max(1e-9) / sn.max(1e-9)).ln();
    let mut fx: Vec<f64> = vec![base; n];
    let depth = cfg.depth as usize;
    let nleaves = 1usize << depth;
    let mut g = vec![0.0f64; n];
    let mut h = vec![0.0f64; n];
    let mut assign = vec![0u32; n];
    let mut trees: Vec<Tree> = Vec::with_capacity(cfg.trees);
    let mut hist = vec![[0.0f64; 2]; (nleaves / 2).max(1) * NF * MAXB];
    let val_w: f64 = val_idx.iter().map(|&i| w[i] as f64).sum();
    let loss_of = |fx: &[f64], idx: &[usize]| -> f64 {
        idx.iter()
            .map(|&i| {
                let p = sig(fx[i]);
                let pc = if y[i] > 0.5 { p } else { 1.0 - p };
                -(w[i] as f64) * pc.max(1e-15).ln()
            })
            .sum::<f64>()
    };
    let mut best = (f64::INFINITY, 0usize);
    let mut best_val_fx: Vec<f64> = Vec::new();
    for t in 0..cfg.trees {
        for &i in &train_idx {
            let p = sig(fx[i]);
            let wi = w[i] as f64;
            g[i] = wi * (p - y[i] as f64);
            h[i] = wi * (p * (1.0 - p)).max(1e-12);
        }
        assign.iter_mut().for_each(|a| *a = 0);
        // stochastic boosting: each tree sees a deterministic pseudo-random share of the rows
        let tree_idx: Vec<usize> = if cfg.subsample < 1.0 {
            train_idx
                .iter()
                .copied()
                .filter(|&i| {
                    let h = ((i as u64) << 20 ^ t as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    ((h >> 40) as f64 / (1u64 << 24) as f64) < cfg.subsample
                })
                .collect()
        } else {
            train_idx.clone()
        };
        let mut nodes: Vec<(u8, f32)> = Vec::with_capacity(depth);
        for level in 0..depth {
            let width = 1usize << level;
            // hist[node][f][bin] = (G, H)
            let hs = &mut hist[..width * NF * MAXB];
            hs.iter_mut().for_each(|e| *e = [0.0; 2]);
            for &i in &tree_idx {
                let base_i = assign[i] as usize * NF * MAXB;
                for f in 0..NF {
                    let e = &mut hs[base_i + f * MAXB + bins[i][f] as usize];
                    e[0] += g[i];
                    e[1] += h[i];
                }
            }
            // one split for the whole level: the (feature, cut) with the largest summed gain
            let mut best_split = (0.0f64, usize::MAX, 0usize);
            for f in 0..NF {
                let nc = cuts[f].len();
                if nc == 0 {
                    continue;
                }
                let mut gain = vec![0.0f64; nc];
                let mut hl_all = vec![0.0f64; nc];
                let mut hr_all = vec![0.0f64; nc];
                for node in 0..width {
                    let hn = &hs[node * NF * MAXB + f * MAXB..node * NF * MAXB + (f + 1) * MAXB];
                    let gt: f64 = hn.iter().map(|e| e[0]).sum();
                    let ht: f64 = hn.iter().map(|e| e[1]).sum();
                    let parent = gt * gt / (ht + cfg.lambda);
                    let (mut gl, mut hl) = (0.0, 0.0);
                    for b in 0..nc {
                        gl += hn[b][0];
                        hl += hn[b][1];
                        let (gr, hr) = (gt - gl, ht - hl);
                        hl_all[b] += hl;
                        hr_all[b] += hr;
                        if hl < cfg.min_child_weight || hr < cfg.min_child_weight {
                            continue;
                        }
                        gain[b] +=
                            gl * gl / (hl + cfg.lambda) + gr * gr / (hr + cfg.lambda) - parent;
                    }
                }
                for b in 0..nc {
                    if hl_all[b] >= cfg.min_child_weight
                        && hr_all[b] >= cfg.min_child_weight
                        && gain[b] > best_split.0 + 1e-9
                    {
                        best_split = (gain[b], f, b);
                    }
                }
            }
            let (f, b) = if best_split.1 == usize::MAX {
                // nothing to gain: a split every name takes the same way
                (0usize, u8::MAX as usize)
            } else {
                (best_split.1, best_split.2)
            };
            let thr = cuts[f].get(b).copied().unwrap_or(f32::INFINITY);
            nodes.push((f as u8, thr));
            for i in 0..n {
                let right = b != u8::MAX as usize && bins[i][f] as usize > b;
                assign[i] |= (right as u32) << level;
            }
        }
        let mut lg = vec![[0.0f64; 2]; nleaves];
        for &i in &tree_idx {
            let l = assign[i] as usize;
            lg[l][0] += g[i];
            lg[l][1] += h[i];
        }
        let leaves: Vec<f32> = lg
            .iter()
            .map(|e| (-e[0] / (e[1] + cfg.lambda) * cfg.learning_rate) as f32)
            .collect();
        for i in 0..n {
            fx[i] += leaves[assign[i] as usize] as f64;
        }
        trees.push(Tree { nodes, leaves });
        if val_idx.is_empty() {
            continue;
        }
        let vl = loss_of(&fx, &val_idx) / val_w.max(1e-9);
        if vl < best.0 {
            best = (vl, t + 1);
            best_val_fx = val_idx.iter().map(|&i| fx[i]).collect();
        }
        if t % 50 == 0 {
            log(&format!(
                "tree {t}: train log-loss {:.5}, validation log-loss {vl:.5}",
                loss_of(&fx, &train_idx) / (sp + sn)
            ));
        }
        if t + 1 >= best.1 + cfg.patience {
            break;
        }
    }
    if !val_idx.is_empty() {
        log(&format!(
            "early stopping: {} trees (best validation log-loss {:.5}, {} validation names)",
            best.1,
            best.0,
            val_idx.len()
        ));
        trees.truncate(best.1.max(1));
        // what the hyper-parameters are chosen by: detection on the validation part
        let benign: Vec<f64> = val_idx
            .iter()
            .zip(&best_val_fx)
            .filter(|(&i, _)| y[i] < 0.5)
            .map(|(_, &v)| v)
            .collect();
        for fpr in [0.001, 0.01] {
            let t = threshold_at_fpr(&benign, fpr);
            let (mut d, mut nd) = (0usize, 0usize);
            for (&i, &v) in val_idx.iter().zip(&best_val_fx) {
                if y[i] > 0.5 {
                    nd += 1;
                    d += (v > t) as usize;
                }
            }
            log(&format!(
                "validation: {d} of {nd} DGA names ({:.2}%) above the {}% FP threshold of {} benign names",
                100.0 * d as f64 / nd.max(1) as f64,
                fpr * 100.0,
                benign.len()
            ));
        }
    }
    (base as f32, trees, best_val_fx)
}

fn train_tunnel(model: &Model, pos: &[Name], neg: &[Name], log: Log<'_>) -> TunnelModel {
    let mut xs: Vec<[f32; NTF]> = Vec::new();
    let mut ys: Vec<f64> = Vec::new();
    for (names, y) in [(pos, 1.0), (neg, 0.0)] {
        for n in names {
            let Some(sp) = split_str(n.as_str()) else {
                continue;
            };
            if sp.subdomain.is_empty() {
                continue;
            }
            xs.push(subdomain_features(sp.subdomain, model).to_array());
            ys.push(y);
        }
    }
    let mut tm = TunnelModel {
        scale: [1.0; NTF],
        ..Default::default()
    };
    let np = ys.iter().filter(|&&y| y > 0.5).count();
    let nn = ys.len() - np;
    log(&format!(
        "tunnel model: {np} positive, {nn} negative subdomains"
    ));
    if np == 0 || nn == 0 {
        // no data: a fixed fallback on bits per character and length
        tm.weight[0] = 1.0;
        tm.weight[3] = 1.0;
        tm.mean[0] = 3.0;
        tm.mean[3] = 4.5;
        tm.bias = -2.0;
        return tm;
    }
    for f in 0..NTF {
        let m = xs.iter().map(|x| x[f] as f64).sum::<f64>() / xs.len() as f64;
        let v = xs.iter().map(|x| (x[f] as f64 - m).powi(2)).sum::<f64>() / xs.len() as f64;
        tm.mean[f] = m as f32;
        tm.scale[f] = (v.sqrt() as f32).max(1e-3);
    }
    let wp = 0.5 / np as f64;
    let wn = 0.5 / nn as f64;
    let z: Vec<[f64; NTF]> = xs
        .iter()
        .map(|x| std::array::from_fn(|f| (x[f] as f64 - tm.mean[f] as f64) / tm.scale[f] as f64))
        .collect();
    let mut wt = [0.0f64; NTF];
    let mut b = 0.0f64;
    let l2 = 1e-3;
    for _ in 0..3000 {
        let mut gw = [0.0f64; NTF];
        let mut gb = 0.0;
        for (zi, &yi) in z.iter().zip(&ys) {
            let s = b + (0..NTF).map(|f| wt[f] * zi[f]).sum::<f64>();
            let e = (sig(s) - yi) * if yi > 0.5 { wp } else { wn };
            for f in 0..NTF {
                gw[f] += e * zi[f];
            }
            gb += e;
        }
        for f in 0..NTF {
            wt[f] -= 0.5 * (gw[f] + l2 * wt[f]);
        }
        b -= 0.5 * gb;
    }
    for f in 0..NTF {
        tm.weight[f] = wt[f] as f32;
    }
    tm.bias = b as f32;
    tm
}
