//! Random numbers for id substitution: a SplitMix64 generator and a Zipf sampler.
//!
//! The Zipf distribution over ranks `1..=n` with exponent `s` gives rank `k` probability
//! `k^-s / H(n, s)`, where `H(n, s) = Σ_{i=1..n} i^-s`. `s = 0` is uniform; `s ≈ 1` is the
//! classic "a few hot keys" shape of cache workloads. Rank `k` becomes the id `offset + k - 1`,
//! so the hottest id is `offset`.
//!
//! Sampling inverts a precomputed cumulative table with a binary search: exact for any `s ≥ 0`,
//! `O(log n)` per draw and `8·n` bytes of memory, which is why `n` is capped at
//! [`MAX_ZIPF_N`]. Each worker owns its generator, seeded from the run seed and its index, so
//! runs with the same seed draw the same ids per connection.

/// Largest supported `n` (the table costs 8 bytes per rank: 80 MB at the cap).
pub const MAX_ZIPF_N: u64 = 10_000_000;

/// SplitMix64 (Steele, Lea and Flood): tiny, fast and statistically fine for load generation.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for worker `stream` of a run seeded with `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut g = SplitMix64(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        // Decorrelate nearby seeds before first use.
        g.next_u64();
        g
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A Zipf sampler over ids `offset ..= offset + n - 1`.
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cdf[k-1] = P(rank ≤ k)`; the last entry is exactly 1.
    cdf: Vec<f64>,
    offset: u64,
}

impl Zipf {
    /// Builds the table. `n` in `1..=MAX_ZIPF_N`, `exponent` finite and `≥ 0`.
    pub fn new(n: u64, exponent: f64, offset: u64) -> Result<Self, String> {
        if n == 0 || n > MAX_ZIPF_N {
            return Err(format!(
                "zipf.n must be between 1 and {MAX_ZIPF_N}, got {n}"
            ));
        }
        if !exponent.is_finite() || exponent < 0.0 {
            return Err(format!(
                "zipf.exponent must be a finite number ≥ 0, got {exponent}"
            ));
        }
        if offset.checked_add(n - 1).is_none() {
            return Err("zipf.offset + zipf.n overflows u64".into());
        }
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0f64;
        for k in 1..=n {
            sum += (k as f64).powf(-exponent);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Ok(Zipf { cdf, offset })
    }

    /// Number of distinct ids.
    pub fn n(&self) -> u64 {
        self.cdf.len() as u64
    }

    /// Probability of rank `k` (1-based); 0 outside `1..=n`.
    pub fn pmf(&self, k: u64) -> f64 {
        if k == 0 || k > self.n() {
            return 0.0;
        }
        let i = (k - 1) as usize;
        if i == 0 {
            self.cdf[0]
        } else {
            self.cdf[i] - self.cdf[i - 1]
        }
    }

    /// Draws a 1-based rank.
    pub fn sample_rank(&self, rng: &mut SplitMix64) -> u64 {
        let u = rng.next_f64();
        // First index whose cumulative probability exceeds u; u < 1 = last entry, so it exists.
        let i = self.cdf.partition_point(|&c| c <= u);
        i.min(self.cdf.len() - 1) as u64 + 1
    }

    /// Draws an id (`offset + rank - 1`).
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        self.offset + self.sample_rank(rng) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_and_uniformish() {
        let mut a = SplitMix64::new(42, 0);
        let mut b = SplitMix64::new(42, 0);
        let mut c = SplitMix64::new(42, 1);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        let mut g = SplitMix64::new(7, 3);
        let n = 100_000;
        let mut mean = 0.0;
        for _ in 0..n {
            let f = g.next_f64();
            assert!((0.0..1.0).contains(&f));
            mean += f;
        }
        mean /= n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn pmf_matches_the_formula() {
        let z = Zipf::new(100, 1.0, 0).unwrap();
        let h: f64 = (1..=100).map(|k| 1.0 / k as f64).sum();
        for k in [1u64, 2, 10, 100] {
            let want = 1.0 / (k as f64 * h);
            assert!((z.pmf(k) - want).abs() < 1e-12, "k={k}");
        }
        assert_eq!(z.pmf(0), 0.0);
        assert_eq!(z.pmf(101), 0.0);
        let total: f64 = (1..=100).map(|k| z.pmf(k)).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn samples_stay_in_range_and_follow_the_pmf() {
        let z = Zipf::new(1000, 1.1, 5000).unwrap();
        let mut rng = SplitMix64::new(1, 0);
        let draws = 200_000;
        let mut counts = vec![0u64; 1000];
        for _ in 0..draws {
            let id = z.sample(&mut rng);
            assert!((5000..6000).contains(&id), "{id}");
            counts[(id - 5000) as usize] += 1;
        }
        // The hottest ranks are within a few standard deviations of their expectation.
        for k in 1..=5u64 {
            let p = z.pmf(k);
            let expect = p * draws as f64;
            let sd = (draws as f64 * p * (1.0 - p)).sqrt();
            let got = counts[(k - 1) as usize] as f64;
            assert!(
                (got - expect).abs() < 5.0 * sd,
                "rank {k}: {got} vs {expect}"
            );
        }
        // Monotone on average: the top 10 ranks beat ranks 11-20 by a wide margin.
        let top: u64 = counts[..10].iter().sum();
        let next: u64 = counts[10..20].iter().sum();
        assert!(top > 3 * next, "{top} vs {next}");
    }

    #[test]
    fn exponent_zero_is_uniform() {
        let z = Zipf::new(4, 0.0, 1).unwrap();
        for k in 1..=4 {
            assert!((z.pmf(k) - 0.25).abs() < 1e-12);
        }
        let mut rng = SplitMix64::new(9, 9);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[(z.sample(&mut rng) - 1) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn single_id_and_bad_parameters() {
        let z = Zipf::new(1, 2.0, 77).unwrap();
        let mut rng = SplitMix64::new(0, 0);
        for _ in 0..100 {
            assert_eq!(z.sample(&mut rng), 77);
        }
        assert!(Zipf::new(0, 1.0, 0).is_err());
        assert!(Zipf::new(MAX_ZIPF_N + 1, 1.0, 0).is_err());
        assert!(Zipf::new(10, -0.5, 0).is_err());
        assert!(Zipf::new(10, f64::NAN, 0).is_err());
        assert!(Zipf::new(10, 1.0, u64::MAX).is_err());
        assert!(Zipf::new(10, 1.0, u64::MAX - 9).is_ok());
    }
}
