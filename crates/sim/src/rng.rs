//! Deterministic randomness: every stream is a ChaCha8 generator seeded from the run's seed and
//! a fixed tuple of tags (device index, day, scenario...), so output never depends on the
//! clock, thread scheduling or the order in which parts are generated.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// splitmix64-style mixing of two words.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(0x632b_e59b_d9b4_e019);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of a string, stable across runs and platforms (FNV-1a, then mixed).
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h, 0)
}

/// A generator for one stream, identified by `tags`.
pub fn stream(seed: u64, tags: &[u64]) -> ChaCha8Rng {
    let mut s = mix(seed, 0x5eed);
    for t in tags {
        s = mix(s, *t);
    }
    ChaCha8Rng::seed_from_u64(s)
}
