//! The model file: format, decoding, and evaluation (n-gram tables, suffix tables, per-family
//! models, boosted oblivious trees, tunnel logistic regression).
//!
//! Format (little endian), written by [`Model::encode`]:
//! `DNSDGA03` (03: 22 inputs, the family-mixture one added), u32 alphabet, u32 n_features,
//! u32 n_tunnel_features, u32 depth, u32 n_trees,
//! f32 base score, f32 threshold (0.1% FP), f32 threshold (1% FP),
//! i16 trigram LLR[alpha³], i16 trigram benign log-prob[alpha³], i16 bigram LLR[alpha²]
//! (all in milli-nats), u32 n_tlds + (u8 len, bytes, f32 rarity)*, f32 unknown-TLD rarity,
//! u32 K classes + (u8 len, bytes)* class names (class 0 is benign, the others DGA families),
//! i16 suffix LLR[n_tlds + 1], i16 per-class suffix log-prob[(n_tlds + 1) × K],
//! i16 per-class length log-prob[LEN_BUCKETS × K], i16 per-class bigram log-prob[alpha² × K]
//! (milli-nats; the extra suffix row is "any other suffix"),
//! trees (per tree: (u8 feature, f32 threshold) per level, f32 per leaf), and the tunnel
//! model (f32 mean[n], f32 scale[n], f32 weight[n], f32 bias).
//!
//! The trees are *oblivious* (one split per level, shared by all nodes of that level, as in
//! CatBoost): a leaf index is `depth` independent comparisons, so hundreds of trees evaluate in
//! well under a microsecond with no data-dependent branches.
//! Decoding validates every length, so a corrupt file is an error, never a panic.

#![allow(clippy::needless_range_loop)] // index-parallel numeric arrays

use super::features::{
    label_features, split, subdomain_features, NameFeatures, NgramLm, SuffixInfo, TunnelFeatures,
    ALPHA, KP, LEN_BUCKETS, NF, NTF, PAD_LP,
};
use dnsight_model::Name;

const MAGIC: &[u8; 8] = b"DNSDGA03";
/// Fixed-point scale of the n-gram tables (milli-nats).
pub const TABLE_SCALE: f32 = 1000.0;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("not a dnsight DGA model (bad magic)")]
    BadMagic,
    #[error("model file truncated")]
    Truncated,
    #[error("model file has unexpected dimensions: {0}")]
    Dimensions(&'static str),
    #[error("model file has trailing bytes")]
    Trailing,
}

/// One oblivious regression tree of depth `d`: level `l` compares `x[f_l] > t_l` for every
/// node, and the answers are the bits of the leaf index (level `l` is bit `l`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    /// One (feature index, threshold) per level.
    pub nodes: Vec<(u8, f32)>,
    /// 2^depth leaf values (already multiplied by the learning rate).
    pub leaves: Vec<f32>,
}

impl Tree {
    /// Evaluates the tree on one feature vector (the reference for the fast layout).
    #[inline]
    pub fn eval_plain(&self, x: &[f32]) -> f32 {
        let mut i = 0usize;
        for (l, &(f, t)) in self.nodes.iter().enumerate() {
            let v = x.get(f as usize).copied().unwrap_or(0.0);
            i |= ((v > t) as usize) << l;
        }
        self.leaves.get(i).copied().unwrap_or(0.0)
    }
}

/// Logistic regression over standardized tunnel features.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TunnelModel {
    pub mean: [f32; NTF],
    pub scale: [f32; NTF],
    pub weight: [f32; NTF],
    pub bias: f32,
}

impl TunnelModel {
    pub fn logit(&self, x: &[f32; NTF]) -> f32 {
        let mut z = self.bias;
        for i in 0..NTF {
            z += self.weight[i] * (x[i] - self.mean[i]) / self.scale[i];
        }
        z
    }
}

/// A decoded DGA + tunnel model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub depth: u32,
    pub base: f32,
    pub threshold_0_1pct: f32,
    pub threshold_1pct: f32,
    /// log P_dga(c|ab) − log P_benign(c|ab), nats.
    pub tri_llr: Vec<f32>,
    /// log P_benign(c|ab), nats.
    pub tri_benign: Vec<f32>,
    /// log P_dga(b|a) − log P_benign(b|a), nats.
    pub bi_llr: Vec<f32>,
    /// Public suffix → rarity (−ln share among benign registered domains), sorted by suffix.
    pub tlds: Vec<(Box<str>, f32)>,
    pub tld_unknown: f32,
    /// Class names: `benign`, then the DGA families of the training data.
    pub classes: Vec<Box<str>>,
    /// log P(suffix | DGA) − log P(suffix | benign) per entry of `tlds`, then "other suffix".
    pub tld_llr: Vec<f32>,
    /// log P_k(suffix), row-major [(tlds.len() + 1) × classes.len()].
    pub class_tld: Vec<f32>,
    /// log P_k(length bucket), row-major [LEN_BUCKETS × classes.len()].
    pub class_len: Vec<f32>,
    /// log P_k(b | a), row-major [alpha² × classes.len()].
    pub class_bi: Vec<f32>,
    pub trees: Vec<Tree>,
    pub tunnel: TunnelModel,
    /// Evaluation layout derived from the fields above by [`Model::decode`].
    pub(super) fast: Fast,
}

/// Cache-friendly copies for scoring: both trigram tables interleaved (one cache line per
/// lookup), the per-class tables padded to [`KP`] columns, a hash index of the suffixes, and
/// the trees flattened into contiguous arrays (no pointer chase per tree).
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Fast {
    /// (LLR, benign log-prob) in milli-nats, as stored in the file: half the cache footprint.
    tri: Vec<[i16; 2]>,
    class_bi: Vec<[f32; KP]>,
    class_len: Vec<[f32; KP]>,
    class_tld: Vec<[f32; KP]>,
    /// Open-addressing table of suffix index + 1 (0 = empty), keyed by [`suffix_hash`].
    tld_slots: Vec<u16>,
    feat: Vec<u8>,
    thr: Vec<f32>,
    leaves: Vec<f32>,
    depth: usize,
}

/// FNV-1a of a suffix, for the suffix index (the keys are fixed by the model file, and a
/// colliding hostile suffix only costs a few extra comparisons).
#[inline]
fn suffix_hash(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in s {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ (h >> 31)
}

pub(crate) fn padded_rows(flat: &[f32], k: usize) -> Vec<[f32; KP]> {
    if k == 0 {
        return Vec::new();
    }
    flat.chunks_exact(k)
        .map(|r| {
            let mut row = [PAD_LP; KP];
            row[..k].copy_from_slice(r);
            row
        })
        .collect()
}

impl Fast {
    fn build(m: &Model) -> Fast {
        let k = m.classes.len();
        let mut f = Fast {
            tri: m
                .tri_llr
                .iter()
                .zip(&m.tri_benign)
                .map(|(&a, &b)| [quantize(a), quantize(b)])
                .collect(),
            class_bi: padded_rows(&m.class_bi, k),
            class_len: padded_rows(&m.class_len, k),
            class_tld: padded_rows(&m.class_tld, k),
            depth: m.depth as usize,
            ..Default::default()
        };
        let slots = (m.tlds.len() * 2).next_power_of_two().max(16);
        f.tld_slots = vec![0u16; slots];
        for (i, (name, _)) in m.tlds.iter().enumerate() {
            let mut h = suffix_hash(name.as_bytes()) as usize & (slots - 1);
            while f.tld_slots[h] != 0 {
                h = (h + 1) & (slots - 1);
            }
            f.tld_slots[h] = (i + 1) as u16;
        }
        for t in &m.trees {
            for &(fe, th) in &t.nodes {
                f.feat.push(fe);
                f.thr.push(th);
            }
            f.leaves.extend_from_slice(&t.leaves);
        }
        f
    }
}

impl NgramLm for Model {
    #[inline]
    fn tri(&self, i: usize) -> (f32, f32) {
        let [a, b] = self.fast.tri.get(i).copied().unwrap_or([0, 0]);
        (a as f32 / TABLE_SCALE, b as f32 / TABLE_SCALE)
    }
    #[inline]
    fn bi(&self, i: usize) -> f32 {
        self.bi_llr[i]
    }
    #[inline]
    fn fam_bi_add(&self, i: usize, acc: &mut [f32; KP]) {
        if let Some(row) = self.fast.class_bi.get(i) {
            for k in 0..KP {
                acc[k] += row[k];
            }
        }
    }
    #[inline]
    fn fam_len_add(&self, len_bucket: usize, acc: &mut [f32; KP]) {
        if let Some(row) = self.fast.class_len.get(len_bucket) {
            for k in 0..KP {
                acc[k] += row[k];
            }
        }
    }
}

/// Sum of the leaves of all oblivious trees of depth `D` (unrolled: `D` independent compares
/// per tree, four trees per step into four accumulators so the additions do not form one long
/// dependency chain).
#[inline]
fn eval_oblivious<const D: usize>(f: &Fast, xp: &[f32; 32]) -> f32 {
    let nl = 1usize << D;
    let leaf = |fe: &[u8], th: &[f32], lv: &[f32]| -> f32 {
        let mut i = 0usize;
        for l in 0..D {
            i |= ((xp[fe[l] as usize & 31] > th[l]) as usize) << l;
        }
        lv[i & (nl - 1)]
    };
    let mut z = [0f32; 4];
    let groups = f
        .feat
        .chunks_exact(4 * D)
        .zip(f.thr.chunks_exact(4 * D))
        .zip(f.leaves.chunks_exact(4 * nl));
    for ((fe, th), lv) in groups {
        for j in 0..4 {
            z[j] += leaf(
                &fe[j * D..(j + 1) * D],
                &th[j * D..(j + 1) * D],
                &lv[j * nl..(j + 1) * nl],
            );
        }
    }
    let done = f.leaves.len() / (4 * nl) * 4;
    let rest = f.feat[done * D..]
        .chunks_exact(D)
        .zip(f.thr[done * D..].chunks_exact(D))
        .zip(f.leaves[done * nl..].chunks_exact(nl));
    for ((fe, th), lv) in rest {
        z[0] += leaf(fe, th, lv);
    }
    (z[0] + z[1]) + (z[2] + z[3])
}

#[inline]
fn sigmoid(z: f32) -> f64 {
    1.0 / (1.0 + (-(z as f64)).exp())
}

static NO_CLASS_ROW: [f32; KP] = [PAD_LP; KP];

impl Model {
    /// Index of a public suffix in `tlds`, `None` when the model has not seen it.
    #[inline]
    pub fn tld_index(&self, suffix: &str) -> Option<usize> {
        let slots = &self.fast.tld_slots;
        if slots.is_empty() {
            return self.tlds.binary_search_by(|(k, _)| (**k).cmp(suffix)).ok();
        }
        let mask = slots.len() - 1;
        let mut h = suffix_hash(suffix.as_bytes()) as usize & mask;
        loop {
            let v = slots[h] as usize;
            if v == 0 {
                return None;
            }
            if self.tlds.get(v - 1).is_some_and(|(k, _)| &**k == suffix) {
                return Some(v - 1);
            }
            h = (h + 1) & mask;
        }
    }

    /// Rarity of a public suffix.
    pub fn tld_rarity(&self, suffix: &str) -> f32 {
        match self.tld_index(suffix) {
            Some(i) => self.tlds[i].1,
            None => self.tld_unknown,
        }
    }

    /// Name of class `k` of the per-family models (0 is `benign`).
    pub fn family_name(&self, k: u32) -> Option<&str> {
        self.classes.get(k as usize).map(|s| &**s)
    }

    fn suffix_info(&self, suffix: &str, known: bool, private: bool) -> SuffixInfo<'_> {
        let (row, rarity) = match self.tld_index(suffix) {
            Some(i) => (i, self.tlds[i].1),
            None => (self.tlds.len(), self.tld_unknown),
        };
        SuffixInfo {
            rarity: rarity as f64,
            llr: self.tld_llr.get(row).copied().unwrap_or(0.0) as f64,
            class_lp: self.fast.class_tld.get(row).unwrap_or(&NO_CLASS_ROW),
            known,
            private,
        }
    }

    /// Raw boosted-tree output (log-odds) for a feature vector.
    pub fn logit(&self, x: &[f32; NF]) -> f32 {
        let f = &self.fast;
        let d = f.depth;
        if d == 0 || f.feat.len() != self.trees.len() * d {
            // not built by `decode`: the plain layout
            return self.base + self.trees.iter().map(|t| t.eval_plain(x)).sum::<f32>();
        }
        // padded so that a masked feature index never needs a bounds check
        let mut xp = [0f32; 32];
        xp[..NF].copy_from_slice(x);
        match d {
            4 => self.base + eval_oblivious::<4>(f, &xp),
            5 => self.base + eval_oblivious::<5>(f, &xp),
            6 => self.base + eval_oblivious::<6>(f, &xp),
            7 => self.base + eval_oblivious::<7>(f, &xp),
            _ => {
                let mut z = self.base;
                let leaves = 1usize << d;
                for ((fe, th), lv) in f
                    .feat
                    .chunks_exact(d)
                    .zip(f.thr.chunks_exact(d))
                    .zip(f.leaves.chunks_exact(leaves))
                {
                    let mut i = 0usize;
                    for l in 0..d {
                        i |= ((xp[fe[l] as usize & 31] > th[l]) as usize) << l;
                    }
                    z += lv[i & (leaves - 1)];
                }
                z
            }
        }
    }

    /// Probability for a feature vector.
    pub fn prob(&self, x: &[f32; NF]) -> f64 {
        sigmoid(self.logit(x))
    }

    pub fn features(&self, name: &Name) -> NameFeatures {
        let Some(sp) = split(name) else {
            return NameFeatures::default();
        };
        if sp.label.is_empty() {
            return NameFeatures::default();
        }
        let sub_labels = if sp.subdomain.is_empty() {
            0
        } else {
            Name::from_canonical(sp.subdomain).label_count() as u32
        };
        label_features(
            sp.label,
            self,
            &self.suffix_info(sp.suffix, sp.suffix_known, sp.suffix_private),
            sub_labels,
        )
    }

    pub fn score(&self, name: &Name) -> f64 {
        let Some(sp) = split(name) else { return 0.0 };
        if sp.label.is_empty() {
            return 0.0;
        }
        let f = label_features(
            sp.label,
            self,
            &self.suffix_info(sp.suffix, sp.suffix_known, sp.suffix_private),
            0,
        );
        self.prob(&f.to_array())
    }

    pub fn tunnel_features(&self, name: &Name) -> TunnelFeatures {
        match split(name) {
            Some(sp) => subdomain_features(sp.subdomain, self),
            None => TunnelFeatures::default(),
        }
    }

    pub fn tunnel_score(&self, name: &Name) -> f64 {
        let Some(sp) = split(name) else { return 0.0 };
        if sp.subdomain.is_empty() {
            return 0.0;
        }
        let f = subdomain_features(sp.subdomain, self);
        sigmoid(self.tunnel.logit(&f.to_array()))
    }

    /// Serialises the model (see the module docs for the format).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(300_000);
        o.extend_from_slice(MAGIC);
        for v in [
            ALPHA as u32,
            NF as u32,
            NTF as u32,
            self.depth,
            self.trees.len() as u32,
        ] {
            o.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.base, self.threshold_0_1pct, self.threshold_1pct] {
            o.extend_from_slice(&v.to_le_bytes());
        }
        for table in [&self.tri_llr, &self.tri_benign, &self.bi_llr] {
            for &v in table.iter() {
                o.extend_from_slice(&quantize(v).to_le_bytes());
            }
        }
        o.extend_from_slice(&(self.tlds.len() as u32).to_le_bytes());
        for (k, v) in &self.tlds {
            let kb = &k.as_bytes()[..k.len().min(255)];
            o.push(kb.len() as u8);
            o.extend_from_slice(kb);
            o.extend_from_slice(&v.to_le_bytes());
        }
        o.extend_from_slice(&self.tld_unknown.to_le_bytes());
        o.extend_from_slice(&(self.classes.len() as u32).to_le_bytes());
        for k in &self.classes {
            let kb = &k.as_bytes()[..k.len().min(255)];
            o.push(kb.len() as u8);
            o.extend_from_slice(kb);
        }
        for table in [
            &self.tld_llr,
            &self.class_tld,
            &self.class_len,
            &self.class_bi,
        ] {
            for &v in table.iter() {
                o.extend_from_slice(&quantize(v).to_le_bytes());
            }
        }
        for t in &self.trees {
            for &(f, th) in &t.nodes {
                o.push(f);
                o.extend_from_slice(&th.to_le_bytes());
            }
            for &l in &t.leaves {
                o.extend_from_slice(&l.to_le_bytes());
            }
        }
        let tm = &self.tunnel;
        for arr in [&tm.mean, &tm.scale, &tm.weight] {
            for &v in arr.iter() {
                o.extend_from_slice(&v.to_le_bytes());
            }
        }
        o.extend_from_slice(&tm.bias.to_le_bytes());
        o
    }

    /// Decodes and validates a model file.
    pub fn decode(b: &[u8]) -> Result<Model, ModelError> {
        let mut r = Reader { b, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(ModelError::BadMagic);
        }
        if r.u32()? as usize != ALPHA {
            return Err(ModelError::Dimensions("alphabet"));
        }
        if r.u32()? as usize != NF {
            return Err(ModelError::Dimensions("feature count"));
        }
        if r.u32()? as usize != NTF {
            return Err(ModelError::Dimensions("tunnel feature count"));
        }
        let depth = r.u32()?;
        if !(1..=8).contains(&depth) {
            return Err(ModelError::Dimensions("tree depth"));
        }
        let ntrees = r.u32()? as usize;
        if ntrees > 100_000 {
            return Err(ModelError::Dimensions("tree count"));
        }
        let base = r.f32()?;
        let threshold_0_1pct = r.f32()?;
        let threshold_1pct = r.f32()?;
        let tri_llr = r.table(ALPHA * ALPHA * ALPHA)?;
        let tri_benign = r.table(ALPHA * ALPHA * ALPHA)?;
        let bi_llr = r.table(ALPHA * ALPHA)?;
        let ntld = r.u32()? as usize;
        if ntld > 60_000 {
            return Err(ModelError::Dimensions("suffix count"));
        }
        let mut tlds = Vec::with_capacity(ntld);
        for _ in 0..ntld {
            let k = r.short_str()?;
            let v = r.f32()?;
            tlds.push((k, v));
        }
        if !tlds.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(ModelError::Dimensions("suffix table not sorted"));
        }
        let tld_unknown = r.f32()?;
        let k = r.u32()? as usize;
        if k == 0 || k > KP {
            return Err(ModelError::Dimensions("class count"));
        }
        let mut classes = Vec::with_capacity(k);
        for _ in 0..k {
            classes.push(r.short_str()?);
        }
        let tld_llr = r.table(ntld + 1)?;
        let class_tld = r.table((ntld + 1) * k)?;
        let class_len = r.table(LEN_BUCKETS * k)?;
        let class_bi = r.table(ALPHA * ALPHA * k)?;
        let leaves_n = 1usize << depth;
        let mut trees = Vec::with_capacity(ntrees);
        for _ in 0..ntrees {
            let mut nodes = Vec::with_capacity(depth as usize);
            for _ in 0..depth {
                let f = r.take(1)?[0];
                if f as usize >= NF {
                    return Err(ModelError::Dimensions("tree feature index"));
                }
                nodes.push((f, r.f32()?));
            }
            let mut leaves = Vec::with_capacity(leaves_n);
            for _ in 0..leaves_n {
                leaves.push(r.f32()?);
            }
            trees.push(Tree { nodes, leaves });
        }
        let mut tunnel = TunnelModel::default();
        for i in 0..NTF {
            tunnel.mean[i] = r.f32()?;
        }
        for i in 0..NTF {
            tunnel.scale[i] = r.f32()?;
            if tunnel.scale[i].is_nan() || tunnel.scale[i] <= 0.0 {
                return Err(ModelError::Dimensions("tunnel scale"));
            }
        }
        for i in 0..NTF {
            tunnel.weight[i] = r.f32()?;
        }
        tunnel.bias = r.f32()?;
        if r.pos != b.len() {
            return Err(ModelError::Trailing);
        }
        let mut m = Model {
            depth,
            base,
            threshold_0_1pct,
            threshold_1pct,
            tri_llr,
            tri_benign,
            bi_llr,
            tlds,
            tld_unknown,
            classes,
            tld_llr,
            class_tld,
            class_len,
            class_bi,
            trees,
            tunnel,
            fast: Fast::default(),
        };
        m.fast = Fast::build(&m);
        Ok(m)
    }
}

/// Milli-nat fixed point, saturating.
fn quantize(v: f32) -> i16 {
    (v * TABLE_SCALE)
        .round()
        .clamp(i16::MIN as f32, i16::MAX as f32) as i16
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self.pos.checked_add(n).ok_or(ModelError::Truncated)?;
        let s = self.b.get(self.pos..end).ok_or(ModelError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn f32(&mut self) -> Result<f32, ModelError> {
        let s = self.take(4)?;
        Ok(f32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    /// `n` fixed-point log-probabilities (i16, milli-nats) as f32.
    fn table(&mut self, n: usize) -> Result<Vec<f32>, ModelError> {
        let raw = self.take(n.checked_mul(2).ok_or(ModelError::Truncated)?)?;
        Ok(raw
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / TABLE_SCALE)
            .collect())
    }
    /// A string of up to 255 bytes behind its length byte.
    fn short_str(&mut self) -> Result<Box<str>, ModelError> {
        let len = self.take(1)?[0] as usize;
        Ok(String::from_utf8_lossy(self.take(len)?)
            .into_owned()
            .into_boxed_str())
    }
}
