//! Training of the lexical model, in plain Rust (no ML crate): n-gram counting, gradient-boosted
//! trees, a logistic regression for the tunnel score, and the evaluation helpers.
//!
//! Used by the hidden `dnsight train-dga` command, which does the file I/O. Everything here is
//! deterministic: the same inputs give a byte-identical model file.
//!
//! To keep the n-gram and suffix features honest, the boosted trees are trained on
//! *out-of-fold* features: each training label is scored against counts from the other four of
//! five folds, so the trees see feature values distributed like those of unseen names. (A
//! leave-one-out encoding leaks the class: removing a label's own count shifts the value in a
//! class-dependent direction, and trees learn that shift.)

#![allow(clippy::needless_range_loop)] // index-parallel numeric arrays

use super::features::{
    bi_idx, label_features, label_syms, split_str, subdomain_features, tri_idx, NgramLm, ALPHA,
    BOUNDARY, MAXS, NF, NTF,
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
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            trees: 300,
            depth: 3,
            learning_rate: 0.1,
            lambda: 1.0,
            min_child_weight: 2.0,
            smoothing: 0.2,
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

/// Out-of-fold counts: the totals minus one fold's counts. Scoring a training label against
/// counts that exclude its whole fold (not only itself) avoids the target leak of
/// leave-one-out encodings, where the mere removal of a label's own count reveals its class.
struct Oof<'a> {
    total: &'a Counts,
    fold: &'a Counts,
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
    // 1. symbols, suffixes
    struct Prep {
        syms: Vec<u8>,
        suffix: String,
        known: bool,
        private: bool,
        label: String,
        class: usize,
        w: f64,
        fold: usize,
        lm_only: bool,
    }
    let mut prep = Vec::with_capacity(samples.len());
    for s in samples {
        let Some(sp) = split_str(s.name.as_str()) else {
            continue;
        };
        if sp.label.is_empty() {
            continue;
        }
        let mut buf = [0u8; MAXS];
        let (n, _) = label_syms(sp.label, &mut buf);
        prep.push(Prep {
            syms: buf[..n].to_vec(),
            suffix: sp.suffix.to_string(),
            known: sp.suffix_known,
            private: sp.suffix_private,
            label: sp.label.to_string(),
            class: s.dga as usize,
            w: s.weight,
            fold: fold_of(s.name.as_str()),
            lm_only: s.lm_only,
        });
    }
    log(&format!("training on {} labels", prep.len()));

    // 2. n-gram counts
    let mut counts = Counts::new(cfg.smoothing);
    let mut fold_counts: Vec<Counts> = (0..FOLDS).map(|_| Counts::new(cfg.smoothing)).collect();
    for p in &prep {
        counts.add(&p.syms, p.class, p.w);
        fold_counts[p.fold].add(&p.syms, p.class, p.w);
    }

    // 3. suffix rarity from benign weights
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

    // 4. out-of-fold features
    let mut x: Vec<[f32; NF]> = Vec::with_capacity(prep.len());
    let mut y: Vec<f32> = Vec::with_capacity(prep.len());
    let mut w: Vec<f32> = Vec::with_capacity(prep.len());
    for p in prep.iter().filter(|p| !p.lm_only) {
        let oof = Oof {
            total: &counts,
            fold: &fold_counts[p.fold],
        };
        let c = tld.get(p.suffix.as_str()).copied().unwrap_or(0.0)
            - tld_fold
                .get(&(p.suffix.as_str(), p.fold))
                .copied()
                .unwrap_or(0.0);
        let f = label_features(
            &p.label,
            &oof,
            rarity_of(c, benign_total - benign_fold[p.fold]),
            p.known,
            p.private,
            0,
        );
        x.push(f.to_array());
        y.push(p.class as f32);
        w.push(p.w as f32);
    }

    // 5. boosted trees
    let (base, trees) = gbdt(&x, &y, &w, cfg, log);

    // 6. final tables
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
    let tlds: Vec<(Box<str>, f32)> = tld
        .iter()
        .filter(|(k, _)| k.len() <= 255)
        .map(|(k, &c)| (Box::<str>::from(*k), rarity(c) as f32))
        .collect();
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
        trees,
        tunnel: TunnelModel {
            scale: [1.0; NTF],
            ..Default::default()
        },
        fast: Default::default(),
    };
    // round-trip through the file format so training-time and run-time tables are identical
    model = Model::decode(&model.encode()).expect("fresh model encodes");

    // 7. tunnel logistic regression
    model.tunnel = train_tunnel(&model, tunnel_pos, tunnel_neg, log);
    model
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
    cfg: &TrainConfig,
    log: Log<'_>,
) -> (f32, Vec<Tree>) {
    let n = x.len();
    const MAXB: usize = 64;
    let mut cuts: Vec<Vec<f32>> = Vec::with_capacity(NF);
    for f in 0..NF {
        let mut col: Vec<f32> = x.iter().map(|r| r[f]).collect();
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
    for i in 0..n {
        if y[i] > 0.5 {
            sp += w[i] as f64
        } else {
            sn += w[i] as f64
        }
    }
    let base = (sp.max(1e-9) / sn.max(1e-9)).ln();
    let mut fx: Vec<f64> = vec![base; n];
    let depth = cfg.depth as usize;
    let inner = (1usize << depth) - 1;
    let mut g = vec![0.0f64; n];
    let mut h = vec![0.0f64; n];
    let mut assign = vec![0u32; n];
    let mut trees = Vec::with_capacity(cfg.trees);
    for t in 0..cfg.trees {
        let mut loss = 0.0;
        for i in 0..n {
            let p = sig(fx[i]);
            let wi = w[i] as f64;
            g[i] = wi * (p - y[i] as f64);
            h[i] = wi * (p * (1.0 - p)).max(1e-12);
            let pc = if y[i] > 0.5 { p } else { 1.0 - p };
            loss -= wi * pc.max(1e-15).ln();
        }
        if t % 50 == 0 {
            log(&format!(
                "tree {t}: weighted log-loss {:.5}",
                loss / (sp + sn)
            ));
        }
        assign.iter_mut().for_each(|a| *a = 0);
        let mut nodes: Vec<(u8, f32)> = vec![(0, f32::INFINITY); inner];
        for level in 0..depth {
            let first = (1usize << level) - 1;
            let width = 1usize << level;
            // hist[node][f][bin] = (G, H)
            let mut hist = vec![[0.0f64; 2]; width * NF * MAXB];
            for i in 0..n {
                let node = assign[i] as usize - first;
                let base_i = node * NF * MAXB;
                for f in 0..NF {
                    let e = &mut hist[base_i + f * MAXB + bins[i][f] as usize];
                    e[0] += g[i];
                    e[1] += h[i];
                }
            }
            let mut best_bin = vec![u8::MAX; width];
            for node in 0..width {
                let mut best = (0.0f64, 0usize, usize::MAX);
                for f in 0..NF {
                    let hs = &hist[node * NF * MAXB + f * MAXB..node * NF * MAXB + (f + 1) * MAXB];
                    let gt: f64 = hs.iter().map(|e| e[0]).sum();
                    let ht: f64 = hs.iter().map(|e| e[1]).sum();
                    let parent = gt * gt / (ht + cfg.lambda);
                    let (mut gl, mut hl) = (0.0, 0.0);
                    for b in 0..cuts[f].len() {
                        gl += hs[b][0];
                        hl += hs[b][1];
                        let (gr, hr) = (gt - gl, ht - hl);
                        if hl < cfg.min_child_weight || hr < cfg.min_child_weight {
                            continue;
                        }
                        let gain =
                            gl * gl / (hl + cfg.lambda) + gr * gr / (hr + cfg.lambda) - parent;
                        if gain > best.0 + 1e-9 {
                            best = (gain, f, b);
                        }
                    }
                }
                if best.2 != usize::MAX {
                    nodes[first + node] = (best.1 as u8, cuts[best.1][best.2]);
                    best_bin[node] = best.2 as u8;
                }
            }
            for i in 0..n {
                let a = assign[i] as usize;
                let (f, _) = nodes[a];
                let bb = best_bin[a - first];
                let right = bb != u8::MAX && bins[i][f as usize] > bb;
                assign[i] = (2 * a + 1 + right as usize) as u32;
            }
        }
        let mut lg = vec![[0.0f64; 2]; inner + 1];
        for i in 0..n {
            let l = assign[i] as usize - inner;
            lg[l][0] += g[i];
            lg[l][1] += h[i];
        }
        let leaves: Vec<f32> = lg
            .iter()
            .map(|e| (-e[0] / (e[1] + cfg.lambda) * cfg.learning_rate) as f32)
            .collect();
        for i in 0..n {
            fx[i] += leaves[assign[i] as usize - inner] as f64;
        }
        trees.push(Tree { nodes, leaves });
    }
    (base as f32, trees)
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
