//! The engine's seeded generator: ChaCha8 from `rand_chacha`, whose streams the rand project
//! keeps value-stable, so a seed names the same weights, masks and permutations on every machine.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Stream of the main generator (initialisers, dropout, augmentation, in call order).
const MAIN_STREAM: u64 = 0;
/// Stream of the sandbox's system randomness (a guest's WASI `random`): apart from the main
/// stream, so a trainer's runtime drawing random bytes does not move its weights or masks.
const SYSTEM_STREAM: u64 = 1;

/// A ChaCha8 generator with the few draws the engine needs.
#[derive(Clone, Debug)]
pub(crate) struct Rng(ChaCha8Rng);

impl Rng {
    /// The main generator of an engine seeded with `seed`.
    pub(crate) fn main(seed: u64) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(MAIN_STREAM);
        Rng(r)
    }

    /// The system-randomness generator of an engine seeded with `seed` (see [`SYSTEM_STREAM`]).
    pub(crate) fn system(seed: u64) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(SYSTEM_STREAM);
        Rng(r)
    }

    /// Fills `out` with the generator's next bytes.
    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        self.0.fill_bytes(out);
    }

    /// An independent generator for the permutation of `(split, epoch)`: it does not depend on
    /// anything else the trainer did, so the same epoch is always shuffled the same way.
    pub(crate) fn for_shuffle(seed: u64, split: usize, epoch: u32) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        // Stream ids with the top bit set are reserved for shuffles; split < 2^31 always
        // (a dataset has at most a handful of splits).
        let split = (split as u64) & 0x7fff_ffff;
        r.set_stream((1 << 63) | (split << 32) | u64::from(epoch));
        Rng(r)
    }

    /// The generator's position in its stream (words consumed), for checkpoints.
    pub(crate) fn position(&self) -> u128 {
        self.0.get_word_pos()
    }

    /// Moves the generator to `position` in its stream (resuming from a checkpoint).
    pub(crate) fn seek(&mut self, position: u128) {
        self.0.set_word_pos(position);
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn unit_f64(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, 1)` with 24 random bits.
    pub(crate) fn unit_f32(&mut self) -> f32 {
        (self.0.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform integer in `0..n` without modulo bias; `n >= 1`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        // Rejection: accept draws below the largest multiple of n.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.0.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// One fair coin.
    pub(crate) fn coin(&mut self) -> bool {
        self.0.next_u32() & 1 == 1
    }

    /// Standard normal draws (Box–Muller, both values used), `n` of them.
    pub(crate) fn normals(&mut self, n: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            // 1 - u is in (0, 1], so the logarithm is finite.
            let u1 = 1.0 - self.unit_f64();
            let u2 = self.unit_f64();
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = std::f64::consts::TAU * u2;
            out.push(r * theta.cos());
            if out.len() < n {
                out.push(r * theta.sin());
            }
        }
        out
    }

    /// A Fisher–Yates permutation of `0..n`.
    pub(crate) fn permutation(&mut self, n: usize) -> Vec<u64> {
        let mut p: Vec<u64> = (0..n as u64).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<f64> = {
            let mut r = Rng::main(7);
            (0..4).map(|_| r.unit_f64()).collect()
        };
        let b: Vec<f64> = {
            let mut r = Rng::main(7);
            (0..4).map(|_| r.unit_f64()).collect()
        };
        assert_eq!(a, b);
        let p1 = Rng::for_shuffle(7, 0, 1).permutation(50);
        let p2 = Rng::for_shuffle(7, 0, 1).permutation(50);
        let p3 = Rng::for_shuffle(7, 0, 2).permutation(50);
        let p4 = Rng::for_shuffle(7, 1, 1).permutation(50);
        assert_eq!(p1, p2);
        assert_ne!(p1, p3);
        assert_ne!(p1, p4);
        let mut s1 = [0u8; 16];
        let mut s2 = [0u8; 16];
        Rng::system(7).fill(&mut s1);
        Rng::system(7).fill(&mut s2);
        assert_eq!(s1, s2);
        let mut m = [0u8; 16];
        Rng::main(7).fill(&mut m);
        assert_ne!(s1, m, "the system stream is not the main one");
        let mut sorted = p1.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<u64>>());
    }

    #[test]
    fn normals_have_unit_moments() {
        let v = Rng::main(1).normals(20_000);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
    }

    #[test]
    fn below_is_in_range() {
        let mut r = Rng::main(3);
        for n in 1..50u64 {
            for _ in 0..20 {
                assert!(r.below(n) < n);
            }
        }
    }
}
