//! Flow sizes ~ Zipf(n, s), sampled so that every platform draws the same sizes.
//!
//! `f64::powf`, `ln` and `exp` come from the platform's libm, whose last bits differ between
//! systems, and one differing bit in a cumulative table can move a sample across a bucket
//! edge. So the weights k^-s are computed here with `+ - * /` only (IEEE 754 rounds those
//! identically everywhere), the table is quantised to integers, and sampling is an integer
//! draw plus a binary search.

use rand::Rng;

/// Cumulative weights are scaled to this (2^53: every value is exact in an f64).
const SCALE: u64 = 1 << 53;

/// Zipf(n, s) over 1..=n: P(k) ∝ k^-s.
#[derive(Debug, Clone)]
pub(crate) struct Zipf {
    /// `cumulative[k - 1]` = SCALE × P(X ≤ k), non-decreasing, the last one exactly SCALE.
    cumulative: Vec<u64>,
    mean: f64,
}

impl Zipf {
    /// `n` ≥ 1 and `s` finite and ≥ 0 (the caller validates both).
    pub(crate) fn new(n: u32, s: f64) -> Zipf {
        let n = n.max(1);
        let weights: Vec<f64> = (1..=n).map(|k| exp(-s * ln(f64::from(k)))).collect();
        let total: f64 = weights.iter().sum();
        let mut running = 0.0;
        let mut weighted = 0.0;
        let mut cumulative: Vec<u64> = weights
            .iter()
            .zip(1u32..)
            .map(|(w, k)| {
                running += w;
                weighted += w * f64::from(k);
                // Monotone: running grows, and division and the cast both round monotonically.
                (running / total * SCALE as f64) as u64
            })
            .collect();
        if let Some(last) = cumulative.last_mut() {
            *last = SCALE;
        }
        Zipf {
            cumulative,
            mean: weighted / total,
        }
    }

    pub(crate) fn sample<R: Rng>(&self, rng: &mut R) -> u32 {
        let u = rng.gen_range(0..SCALE);
        // The last entry is SCALE > u, so the index is at most n - 1.
        self.cumulative.partition_point(|&c| c <= u) as u32 + 1
    }

    /// The distribution's mean (for sizing presets; not used when sampling).
    pub(crate) fn mean(&self) -> f64 {
        self.mean
    }
}

const LN_2: f64 = std::f64::consts::LN_2;

/// Natural logarithm of a positive, normal `x`, from basic arithmetic only (see the module
/// doc). Accurate to a few ulp, which is plenty for sampling.
pub(crate) fn ln(x: f64) -> f64 {
    if !(x.is_normal() && x > 0.0) {
        return f64::NEG_INFINITY;
    }
    // x = m × 2^e with m in [1, 2); then centre m on 1 so the series converges fast.
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    // ln m = 2 atanh(t) = 2 (t + t³/3 + t⁵/5 + …), t = (m-1)/(m+1), |t| < 0.172.
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let mut term = t;
    let mut sum = 0.0;
    for k in 0..24 {
        sum += term / f64::from(2 * k + 1);
        term *= t2;
    }
    e as f64 * LN_2 + 2.0 * sum
}

/// e^y for y ≤ 0, from basic arithmetic only (see the module doc). Underflows to 0 below
/// -700.
pub(crate) fn exp(y: f64) -> f64 {
    if y.is_nan() || y < -700.0 {
        return 0.0;
    }
    let y = y.min(0.0);
    // y = n ln 2 + r with r in [0, ln 2): e^y = 2^n e^r. floor is exact on every platform.
    let n = (y / LN_2).floor();
    let r = y - n * LN_2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..24 {
        term *= r / f64::from(k);
        sum += term;
    }
    // n is in [-1010, 0], so 2^n is a normal f64 built from its exponent bits.
    let two_n = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    sum * two_n
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn ln_and_exp_agree_with_libm() {
        for &x in &[
            1e-16, 0.001, 0.3, 0.5, 1.0, 1.5, 2.0, 3.0, 10.0, 1234.5, 1e6, 4e9,
        ] {
            let (ours, std) = (ln(x), x.ln());
            assert!((ours - std).abs() <= 1e-14 * std.abs().max(1.0), "ln({x})");
        }
        for &y in &[0.0, -1e-9, -0.5, -1.0, -2.3, -10.0, -100.0, -690.0] {
            let (ours, std) = (exp(y), y.exp());
            assert!(
                (ours - std).abs() <= 1e-13 * std,
                "exp({y}): {ours} vs {std}"
            );
        }
        assert_eq!(exp(-800.0), 0.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert_eq!(ln(-1.0), f64::NEG_INFINITY);
    }

    #[test]
    fn samples_stay_in_range_and_follow_the_law() {
        let zipf = Zipf::new(100, 1.0);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0u32; 101];
        for _ in 0..100_000 {
            let k = zipf.sample(&mut rng);
            assert!((1..=100).contains(&k));
            counts[k as usize] += 1;
        }
        // P(1) / P(2) = 2 for s = 1; P(1) = 1 / H(100) ≈ 0.193.
        let ratio = f64::from(counts[1]) / f64::from(counts[2]);
        assert!((1.85..2.15).contains(&ratio), "P(1)/P(2) = {ratio}");
        assert!((18_500..20_100).contains(&counts[1]), "{}", counts[1]);
    }

    #[test]
    fn exponent_zero_is_uniform_and_huge_exponent_is_always_one() {
        let uniform = Zipf::new(4, 0.0);
        assert!((uniform.mean() - 2.5).abs() < 1e-12);
        let point = Zipf::new(50, 200.0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!((0..1000).all(|_| point.sample(&mut rng) == 1));
        let single = Zipf::new(1, 1.0);
        assert_eq!(single.sample(&mut rng), 1);
    }
}
