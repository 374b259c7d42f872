//! Feature extraction for the lexical models: the registered-domain split, the character
//! alphabet, per-label statistics and n-gram features.
//!
//! Names arrive in dnsight's escaped presentation form (`\DDD`, `\.`); an escape sequence counts
//! as one "other" character, so hostile bytes are features, never errors. Everything here works
//! on fixed-size stack buffers: long labels are truncated for the n-gram part (their full length
//! still counts), so cost is bounded whatever the input.

use dnsight_model::Name;
use serde::Serialize;

/// Alphabet size: `a-z`, `0-9`, `-`, "other" (escaped bytes, `_`, anything else), boundary.
pub const ALPHA: usize = 39;
/// Symbol for any character outside `a-z0-9-`.
pub const OTHER: u8 = 37;
/// Start/end-of-label symbol for n-grams.
pub const BOUNDARY: u8 = 38;
/// At most this many symbols of a label are used for n-grams and character statistics.
pub const MAXS: usize = 64;
/// Number of DGA model inputs.
pub const NF: usize = 22;
/// At most this many classes in the per-family models: class 0 is benign, the others are the
/// DGA families seen in training. Rows are padded to this width (padding scores `PAD_LP`), so
/// the per-class sums are fixed-size loops the compiler vectorises.
pub const KP: usize = 32;
/// Log-probability of the padding classes: low enough never to win a maximum.
pub const PAD_LP: f32 = -1.0e6;
/// Label lengths at or above this share one bucket in the per-class length models.
pub const LEN_BUCKETS: usize = 40;
/// Number of tunnel model inputs.
pub const NTF: usize = 10;
/// At most this many subdomain symbols are examined for the tunnel score.
const MAX_SUB: usize = 256;

/// Maps one (lowercased) byte to its symbol.
#[inline]
pub fn sym(b: u8) -> u8 {
    match b {
        b'a'..=b'z' => b - b'a',
        b'A'..=b'Z' => b - b'A',
        b'0'..=b'9' => 26 + (b - b'0'),
        b'-' => 36,
        _ => OTHER,
    }
}

/// A name split around its public suffix. All parts are slices of the escaped presentation text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split<'a> {
    /// Labels left of the registered domain, dot-joined ("" when there are none).
    pub subdomain: &'a str,
    /// The label just left of the public suffix ("" when the name is only a suffix).
    pub label: &'a str,
    /// The public suffix (`com`, `co.uk`, `duckdns.org`, or the last label when unknown).
    pub suffix: &'a str,
    /// Whether the suffix is on the public suffix list (ICANN or private section).
    pub suffix_known: bool,
    /// Whether the suffix is from the list's private section (`duckdns.org`, `cloudfront.net`).
    pub suffix_private: bool,
}

/// Splits a name into subdomain, registered label and public suffix. `None` for the root.
pub fn split(name: &Name) -> Option<Split<'_>> {
    split_str(name.as_str())
}

/// [`split`] on presentation text (already lowercased).
pub fn split_str(s: &str) -> Option<Split<'_>> {
    if s.is_empty() || s == "." {
        return None;
    }
    let s = s
        .strip_suffix('.')
        .filter(|t| !t.is_empty() && !t.ends_with('\\'))
        .unwrap_or(s);
    let b = s.as_bytes();
    // the last 8 unescaped dot positions (ring buffer)
    let mut dots = [0usize; 8];
    let mut nd = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'.' => {
                dots[nd % 8] = i;
                nd += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    let dot_from_end = |k: usize| -> Option<usize> {
        // k-th unescaped dot from the end (1-based)
        if k == 0 || k > nd || k > 8 {
            None
        } else {
            Some(dots[(nd - k) % 8])
        }
    };
    let (k, known) = match psl::suffix(b) {
        Some(suf) => {
            let sb = suf.as_bytes();
            let k = if sb.contains(&b'\\') || sb.is_empty() {
                1
            } else {
                sb.iter().filter(|&&c| c == b'.').count() + 1
            };
            (k, suf.typ())
        }
        None => (1, None),
    };
    let suffix_start = match dot_from_end(k) {
        Some(d) => d + 1,
        None => {
            if k > nd {
                // the whole name is (at most) a suffix
                return Some(Split {
                    subdomain: "",
                    label: "",
                    suffix: s,
                    suffix_known: known.is_some(),
                    suffix_private: known == Some(psl::Type::Private),
                });
            }
            // more than 8 suffix labels: treat the last label as the suffix
            dot_from_end(1).map(|d| d + 1).unwrap_or(0)
        }
    };
    let suffix = &s[suffix_start..];
    if suffix_start == 0 {
        return Some(Split {
            subdomain: "",
            label: "",
            suffix,
            suffix_known: known.is_some(),
            suffix_private: known == Some(psl::Type::Private),
        });
    }
    let label_end = suffix_start - 1;
    let label_start = match dot_from_end(k + 1) {
        Some(d) if d < label_end => d + 1,
        _ => {
            if nd > k && k + 1 > 8 {
                // cannot locate: scan back for the previous unescaped dot
                prev_dot(b, label_end).map(|d| d + 1).unwrap_or(0)
            } else {
                0
            }
        }
    };
    let label = &s[label_start..label_end];
    let subdomain = if label_start > 0 {
        &s[..label_start - 1]
    } else {
        ""
    };
    Some(Split {
        subdomain,
        label,
        suffix,
        suffix_known: known.is_some(),
        suffix_private: known == Some(psl::Type::Private),
    })
}

fn prev_dot(b: &[u8], end: usize) -> Option<usize> {
    // an unescaped dot before `end`; scan forward to respect escapes
    let mut last = None;
    let mut i = 0;
    while i < end {
        match b[i] {
            b'\\' => i += 2,
            b'.' => {
                last = Some(i);
                i += 1
            }
            _ => i += 1,
        }
    }
    last
}

/// Decodes one escaped presentation label into symbols. Returns (stored, total) symbol counts;
/// only the first `out.len()` symbols are stored.
pub fn label_syms(label: &str, out: &mut [u8]) -> (usize, usize) {
    let b = label.as_bytes();
    let mut n = 0usize;
    let mut total = 0usize;
    let mut i = 0;
    while i < b.len() {
        let s = if b[i] == b'\\' {
            if i + 3 < b.len()
                && b[i + 1].is_ascii_digit()
                && b[i + 2].is_ascii_digit()
                && b[i + 3].is_ascii_digit()
            {
                let v = (b[i + 1] - b'0') as u32 * 100
                    + (b[i + 2] - b'0') as u32 * 10
                    + (b[i + 3] - b'0') as u32;
                i += 4;
                if v <= 255 {
                    sym(v as u8)
                } else {
                    OTHER
                }
            } else if i + 1 < b.len() {
                let c = b[i + 1];
                i += 2;
                sym(c)
            } else {
                i += 1;
                OTHER
            }
        } else {
            let c = b[i];
            i += 1;
            sym(c)
        };
        if n < out.len() {
            out[n] = s;
            n += 1;
        }
        total += 1;
    }
    (n, total)
}

/// Character statistics of a symbol sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LabelStats {
    pub len: u32,
    pub entropy: f64,
    pub digit_ratio: f64,
    pub vowel_ratio: f64,
    pub other_ratio: f64,
    pub max_consonant_run: u32,
    pub max_digit_run: u32,
    pub hyphens: u32,
    pub unique_ratio: f64,
    pub hex_only: bool,
    /// Letter/digit alternations per character.
    pub switches: f64,
    /// Share of adjacent letter pairs that alternate consonant/vowel (1.0 for `puzydog`).
    pub cv_alternation: f64,
}

/// Accumulates character statistics over one or more labels.
struct StatsAcc {
    counts: [u16; ALPHA],
    n: u32,
    digits: u32,
    vowels: u32,
    letters: u32,
    other: u32,
    hyph: u32,
    max_cons: u32,
    max_dig: u32,
    switches: u32,
    letter_pairs: u32,
    cv_alt: u32,
    hex_only: bool,
    /// Σ c·log2(c) over the symbol counts, kept up to date (entropy without a pass over them).
    sum_clogc: f64,
    uniq: u32,
}

impl StatsAcc {
    fn new() -> Self {
        StatsAcc {
            counts: [0; ALPHA],
            n: 0,
            digits: 0,
            vowels: 0,
            letters: 0,
            other: 0,
            hyph: 0,
            max_cons: 0,
            max_dig: 0,
            switches: 0,
            letter_pairs: 0,
            cv_alt: 0,
            hex_only: true,
            sum_clogc: 0.0,
            uniq: 0,
        }
    }
    /// Branch-free on the characters (random labels would mispredict every branch).
    fn label(&mut self, syms: &[u8]) {
        let (mut prev_l, mut prev_d, mut prev_v) = (0u32, 0u32, 0u32);
        let (mut cons_run, mut dig_run) = (0u32, 0u32);
        let mut not_hex = 0u32;
        for (i, &s) in syms.iter().enumerate() {
            let s = (s as usize).min(ALPHA - 1);
            let before = self.counts[s];
            self.counts[s] = before.saturating_add(1);
            self.uniq += (before == 0) as u32;
            self.sum_clogc += clog2c(before.saturating_add(1)) - clog2c(before);
            let c = SYM_CLASS[s] as u32;
            let d = c & 1;
            let l = (c >> 1) & 1;
            let v = (c >> 2) & 1;
            let cons = l & (v ^ 1);
            self.digits += d;
            self.letters += l;
            self.vowels += v;
            self.hyph += (c >> 3) & 1;
            self.other += (c >> 4) & 1;
            not_hex |= (c >> 5) & 1;
            dig_run = (dig_run + 1) * d;
            cons_run = (cons_run + 1) * cons;
            self.max_dig = self.max_dig.max(dig_run);
            self.max_cons = self.max_cons.max(cons_run);
            let has_prev = (i > 0) as u32;
            self.switches += has_prev & ((prev_d & l) | (prev_l & d));
            let pair = has_prev & prev_l & l;
            self.letter_pairs += pair;
            self.cv_alt += pair & (prev_v ^ v);
            (prev_l, prev_d, prev_v) = (l, d, v);
        }
        self.n += syms.len() as u32;
        self.hex_only &= not_hex == 0;
    }
    fn finish(&self, total_len: usize) -> LabelStats {
        let n = self.n.max(1) as f64;
        // entropy = log2(n) − Σ c·log2(c) / n, with c·log2(c) from a table for small counts
        let (sum_clogc, uniq) = (self.sum_clogc, self.uniq);
        let ent = if self.n == 0 {
            0.0
        } else {
            (n.log2() - sum_clogc / n).max(0.0)
        };
        LabelStats {
            len: total_len.min(u32::MAX as usize) as u32,
            entropy: ent,
            digit_ratio: self.digits as f64 / n,
            vowel_ratio: self.vowels as f64 / self.letters.max(1) as f64,
            other_ratio: self.other as f64 / n,
            max_consonant_run: self.max_cons,
            max_digit_run: self.max_dig,
            hyphens: self.hyph,
            unique_ratio: uniq as f64 / n,
            hex_only: self.hex_only && self.n > 0,
            switches: self.switches as f64 / n,
            cv_alternation: if self.letter_pairs == 0 {
                0.0
            } else {
                self.cv_alt as f64 / self.letter_pairs as f64
            },
        }
    }
}

/// `c · log2(c)`, from a table for the counts the scored labels can have.
#[inline]
fn clog2c(c: u16) -> f64 {
    match clog2c_table().get(c as usize) {
        Some(&v) => v,
        None => c as f64 * (c as f64).log2(),
    }
}

fn clog2c_table() -> &'static [f64; MAX_SUB + 1] {
    static T: std::sync::OnceLock<[f64; MAX_SUB + 1]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        std::array::from_fn(|i| {
            if i < 2 {
                0.0
            } else {
                i as f64 * (i as f64).log2()
            }
        })
    })
}

/// Per-symbol class bits: 1 digit, 2 letter, 4 vowel, 8 hyphen, 16 other, 32 not a hex digit.
static SYM_CLASS: [u8; ALPHA] = {
    let mut t = [0u8; ALPHA];
    let mut s = 0;
    while s < ALPHA {
        t[s] = if s < 26 {
            let vowel = matches!(s, 0 | 4 | 8 | 14 | 20 | 24);
            2 | if vowel { 4 } else { 0 } | if s > 5 { 32 } else { 0 }
        } else if s < 36 {
            1
        } else if s == 36 {
            8 | 32
        } else {
            16 | 32
        };
        s += 1;
    }
    t
};

/// Statistics of one label's symbols.
pub fn stats(syms: &[u8], total_len: usize) -> LabelStats {
    let mut a = StatsAcc::new();
    a.label(syms);
    a.finish(total_len)
}

/// Index of trigram (a, b, c).
#[inline]
pub fn tri_idx(a: u8, b: u8, c: u8) -> usize {
    (a as usize * ALPHA + b as usize) * ALPHA + c as usize
}
/// Index of bigram (a, b).
#[inline]
pub fn bi_idx(a: u8, b: u8) -> usize {
    a as usize * ALPHA + b as usize
}

/// Source of n-gram log-probabilities: the embedded tables at run time, leave-one-out counts
/// during training.
pub trait NgramLm {
    /// (log P_dga(c|ab) − log P_benign(c|ab), log P_benign(c|ab)) for trigram index `i`.
    fn tri(&self, i: usize) -> (f32, f32);
    /// log P_dga(b|a) − log P_benign(b|a) for bigram index `i`.
    fn bi(&self, i: usize) -> f32;
    /// Adds log P_k(b|a) of bigram index `i` to `acc[k]` for every class `k` (0 = benign,
    /// 1.. = DGA families; padding classes get [`PAD_LP`]).
    fn fam_bi_add(&self, i: usize, acc: &mut [f32; KP]);
    /// Adds log P_k(length bucket) to `acc[k]` for every class.
    fn fam_len_add(&self, len_bucket: usize, acc: &mut [f32; KP]);
}

/// The length bucket of a label of `len` characters.
#[inline]
pub fn len_bucket(len: usize) -> usize {
    len.min(LEN_BUCKETS - 1)
}

/// N-gram summary of one label.
#[derive(Debug, Clone, Copy, Default)]
pub struct NgramSummary {
    pub n_tri: u32,
    pub tri_llr_sum: f64,
    pub tri_benign_sum: f64,
    pub tri_llr_pos: u32,
    pub n_bi: u32,
    pub bi_llr_sum: f64,
}

/// Walks the boundary-padded trigrams (`^ab`, ..., `yz$`) and bigrams of a label.
pub fn ngrams<L: NgramLm + ?Sized>(syms: &[u8], lm: &L, acc: &mut NgramSummary) {
    ngrams_impl(syms, lm, acc, None)
}

/// [`ngrams`], also summing the per-class bigram chain log-likelihoods into `fam`.
pub fn ngrams_fam<L: NgramLm + ?Sized>(
    syms: &[u8],
    lm: &L,
    acc: &mut NgramSummary,
    fam: &mut [f32; KP],
) {
    ngrams_impl(syms, lm, acc, Some(fam))
}

#[inline(always)]
fn ngrams_impl<L: NgramLm + ?Sized>(
    syms: &[u8],
    lm: &L,
    acc: &mut NgramSummary,
    mut fam: Option<&mut [f32; KP]>,
) {
    if syms.is_empty() {
        return;
    }
    let n = syms.len();
    let at = |i: isize| -> u8 {
        if i < 0 || i as usize >= n {
            BOUNDARY
        } else {
            syms[i as usize]
        }
    };
    // trigrams (x[i-1], x[i], x[i+1]) for i in 0..n, with x[-1] = x[n] = boundary
    for i in 0..n as isize {
        let (llr, lp) = lm.tri(tri_idx(at(i - 1), at(i), at(i + 1)));
        acc.n_tri += 1;
        acc.tri_llr_sum += llr as f64;
        acc.tri_benign_sum += lp as f64;
        if llr > 0.0 {
            acc.tri_llr_pos += 1;
        }
    }
    for i in -1..n as isize {
        let bi = bi_idx(at(i), at(i + 1));
        acc.bi_llr_sum += lm.bi(bi) as f64;
        acc.n_bi += 1;
        if let Some(f) = fam.as_deref_mut() {
            lm.fam_bi_add(bi, f);
        }
    }
}

/// Features of a name's registered-domain label, the inputs of the DGA model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct NameFeatures {
    /// Character statistics of the registered-domain label.
    #[serde(flatten)]
    pub stats: LabelStats,
    /// Mean per-character log-likelihood ratio, DGA vs benign trigram models (> 0: DGA-like).
    pub ngram_llr: f64,
    /// Mean per-character log-probability under the benign trigram model (nats; higher = more
    /// word-like).
    pub benign_ll: f64,
    /// Mean bigram log-likelihood ratio (DGA vs benign).
    pub bigram_llr: f64,
    /// Share of trigrams more likely under the DGA model.
    pub dga_trigram_share: f64,
    /// −ln of the TLD's share among popular registered domains (higher = rarer).
    pub tld_rarity: f64,
    /// log P(suffix | DGA) − log P(suffix | benign), pooled over all families (nats).
    pub suffix_llr: f64,
    /// Best per-family log-likelihood ratio of the whole registered domain (length, suffix and
    /// bigram chain under the closest DGA family's model, minus the same under the benign
    /// model), nats. Large when the name looks like one known generator's output.
    pub family_llr: f64,
    /// Log-likelihood ratio of the whole registered domain under the equal-weight mixture of
    /// all DGA family models against the benign model, nats: like `family_llr`, but evidence
    /// from several near families adds up instead of only the best one counting.
    pub family_mix_llr: f64,
    /// The bigram-chain part of `family_llr` per bigram (how family-like the characters are,
    /// whatever the length and suffix).
    pub family_char_llr: f64,
    /// Index of the closest DGA family in the model (see `Model::family_name`); informational.
    pub family: u32,
    /// Whether the public suffix is on the public suffix list.
    pub suffix_known: bool,
    /// Whether it is from the list's private section (hosting, dynamic DNS, cloud platforms).
    pub suffix_private: bool,
    /// Labels left of the registered domain (informational; not a model input).
    pub subdomain_labels: u32,
}

impl NameFeatures {
    /// The model's input vector (order fixed by the model file).
    pub fn to_array(&self) -> [f32; NF] {
        let s = &self.stats;
        [
            s.len.min(255) as f32,
            s.entropy as f32,
            s.digit_ratio as f32,
            s.vowel_ratio as f32,
            s.max_consonant_run.min(255) as f32,
            s.max_digit_run.min(255) as f32,
            s.hyphens.min(255) as f32,
            s.unique_ratio as f32,
            s.hex_only as u8 as f32,
            s.switches as f32,
            self.ngram_llr as f32,
            self.benign_ll as f32,
            self.bigram_llr as f32,
            self.dga_trigram_share as f32,
            self.tld_rarity as f32,
            self.suffix_known as u8 as f32 + self.suffix_private as u8 as f32,
            s.other_ratio as f32,
            self.suffix_llr as f32,
            self.family_llr.clamp(-1.0e4, 1.0e4) as f32,
            self.family_char_llr as f32,
            s.cv_alternation as f32,
            self.family_mix_llr.clamp(-1.0e4, 1.0e4) as f32,
        ]
    }

    /// Human names of the model inputs, in [`NameFeatures::to_array`] order.
    pub const NAMES: [&'static str; NF] = [
        "len",
        "entropy",
        "digit_ratio",
        "vowel_ratio",
        "max_consonant_run",
        "max_digit_run",
        "hyphens",
        "unique_ratio",
        "hex_only",
        "switches",
        "ngram_llr",
        "benign_ll",
        "bigram_llr",
        "dga_trigram_share",
        "tld_rarity",
        "suffix_kind",
        "other_ratio",
        "suffix_llr",
        "family_llr",
        "family_char_llr",
        "cv_alternation",
        "family_mix_llr",
    ];
}

/// What the caller knows about the public suffix of the label being scored.
#[derive(Debug, Clone, Copy)]
pub struct SuffixInfo<'a> {
    /// −ln of the suffix's share among benign registered domains.
    pub rarity: f64,
    /// log P(suffix | DGA) − log P(suffix | benign).
    pub llr: f64,
    /// log P_k(suffix) per class (row of the per-family suffix table).
    pub class_lp: &'a [f32; KP],
    pub known: bool,
    pub private: bool,
}

/// Computes the DGA features of a registered-domain label.
pub fn label_features<L: NgramLm + ?Sized>(
    label: &str,
    lm: &L,
    suffix: &SuffixInfo<'_>,
    subdomain_labels: u32,
) -> NameFeatures {
    let mut buf = [0u8; MAXS];
    let (n, total) = label_syms(label, &mut buf);
    let syms = &buf[..n];
    let stats = stats(syms, total);
    let mut ng = NgramSummary::default();
    let mut chain = [0f32; KP];
    ngrams_fam(syms, lm, &mut ng, &mut chain);
    let mut whole = *suffix.class_lp;
    lm.fam_len_add(len_bucket(total), &mut whole);
    // best DGA family for the whole name; its chain part is reported separately
    for (w, c) in whole.iter_mut().zip(&chain) {
        *w += c;
    }
    let best_v = whole[1..].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let best = whole[1..]
        .iter()
        .position(|&v| v == best_v)
        .map_or(1, |i| i + 1);
    let best_chain = chain[1..].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    // log of the mean of the families' likelihoods (padding classes contribute exp(-1e6) = 0)
    let nfam = whole[1..]
        .iter()
        .filter(|&&v| v > PAD_LP / 2.0)
        .count()
        .max(1);
    let mut e = [0f32; KP];
    for (o, &v) in e.iter_mut().zip(&whole) {
        *o = exp_nonpos(v - best_v);
    }
    // eight partial sums (a plain sequential sum would not vectorise); class 0 is benign
    e[0] = 0.0;
    let mut lanes = [0f32; 8];
    for c in e.chunks_exact(8) {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    let mix_sum: f32 = lanes.iter().sum();
    let mix = best_v + mix_sum.ln() - (nfam as f32).ln();
    let nt = ng.n_tri.max(1) as f64;
    let nb = ng.n_bi.max(1) as f64;
    NameFeatures {
        stats,
        ngram_llr: ng.tri_llr_sum / nt,
        benign_ll: ng.tri_benign_sum / nt,
        bigram_llr: ng.bi_llr_sum / nb,
        dga_trigram_share: ng.tri_llr_pos as f64 / nt,
        tld_rarity: suffix.rarity,
        suffix_llr: suffix.llr,
        family_llr: (best_v - whole[0]) as f64,
        family_mix_llr: (mix - whole[0]) as f64,
        family_char_llr: (best_chain - chain[0]) as f64 / nb,
        family: best as u32,
        suffix_known: suffix.known,
        suffix_private: suffix.private,
        subdomain_labels,
    }
}

/// `e^x` for `x <= 0` (relative error below 4e-6; inputs under -80 give a tiny positive value),
/// branch-free so that the per-family loop vectorises: `libm`'s `expf` for 31 classes per name
/// would cost more than all the other features together, and so would Rust's saturating
/// float-to-integer cast, hence the rounding trick for the integer part.
#[inline(always)]
pub fn exp_nonpos(x: f32) -> f32 {
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits
    const ROUND: f32 = 12_582_912.0;
    let y = x.clamp(-80.0, 0.0) * std::f32::consts::LOG2_E;
    let r = y + ROUND;
    let k = r - ROUND; // nearest integer to y, as a float
    let ki = (r.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let t = (y - k) * std::f32::consts::LN_2; // |t| <= ln(2)/2
    let p = 1.0
        + t * (1.0
            + t * (0.5
                + t * (1.0 / 6.0 + t * (1.0 / 24.0 + t * (1.0 / 120.0 + t * (1.0 / 720.0))))));
    f32::from_bits((ki.wrapping_add(127) as u32) << 23) * p
}

/// Features of the subdomain part (labels left of the registered domain), the inputs of the
/// tunnel model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TunnelFeatures {
    /// Characters in the subdomain part, dots excluded (escapes count as one).
    pub chars: u32,
    pub labels: u32,
    pub max_label_len: u32,
    /// Mean surprise per character under the benign trigram model, in bits.
    pub bits_per_char: f64,
    /// Shannon entropy of the subdomain's characters, bits.
    pub entropy: f64,
    pub digit_ratio: f64,
    pub other_ratio: f64,
    /// Mean trigram log-likelihood ratio DGA vs benign.
    pub ngram_llr: f64,
    pub unique_ratio: f64,
    pub switches: f64,
}

impl TunnelFeatures {
    /// The tunnel model's input vector.
    pub fn to_array(&self) -> [f32; NTF] {
        [
            (1.0 + self.chars as f32).ln(),
            self.labels.min(255) as f32,
            (1.0 + self.max_label_len as f32).ln(),
            self.bits_per_char as f32,
            self.entropy as f32,
            self.digit_ratio as f32,
            self.other_ratio as f32,
            self.ngram_llr as f32,
            self.unique_ratio as f32,
            self.switches as f32,
        ]
    }
    pub const NAMES: [&'static str; NTF] = [
        "ln_chars",
        "labels",
        "ln_max_label_len",
        "bits_per_char",
        "entropy",
        "digit_ratio",
        "other_ratio",
        "ngram_llr",
        "unique_ratio",
        "switches",
    ];
}

/// Computes the tunnel features of a subdomain string (escaped presentation, dot-separated).
pub fn subdomain_features<L: NgramLm + ?Sized>(sub: &str, lm: &L) -> TunnelFeatures {
    if sub.is_empty() {
        return TunnelFeatures::default();
    }
    let b = sub.as_bytes();
    let mut acc = StatsAcc::new();
    let mut ng = NgramSummary::default();
    let mut labels = 0u32;
    let mut max_label = 0u32;
    let mut chars = 0usize;
    let mut examined = 0usize;
    let mut start = 0usize;
    let mut i = 0usize;
    let mut buf = [0u8; MAXS];
    loop {
        let at_end = i >= b.len();
        if at_end || b[i] == b'.' {
            let label = &sub[start..i.min(b.len())];
            if !label.is_empty() {
                labels += 1;
                let (n, total) = label_syms(label, &mut buf);
                chars += total;
                max_label = max_label.max(total.min(u32::MAX as usize) as u32);
                if examined < MAX_SUB {
                    let take = n.min(MAX_SUB - examined);
                    examined += take;
                    acc.label(&buf[..take]);
                    ngrams(&buf[..take], lm, &mut ng);
                }
            }
            if at_end {
                break;
            }
            i += 1;
            start = i;
        } else if b[i] == b'\\' {
            i += 2;
        } else {
            i += 1;
        }
    }
    let st = acc.finish(chars);
    let nt = ng.n_tri.max(1) as f64;
    TunnelFeatures {
        chars: chars.min(u32::MAX as usize) as u32,
        labels,
        max_label_len: max_label,
        bits_per_char: -ng.tri_benign_sum / nt / std::f64::consts::LN_2,
        entropy: st.entropy,
        digit_ratio: st.digit_ratio,
        other_ratio: st.other_ratio,
        ngram_llr: ng.tri_llr_sum / nt,
        unique_ratio: st.unique_ratio,
        switches: st.switches,
    }
}
