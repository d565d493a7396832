//! Random draws that give the same values on every platform.
//!
//! rand documents its `usize` sampling as not portable (it samples 32 or 64 bits by target),
//! so sizes and indices are drawn as `u32` here and widened; times use `u64`.

use rand::Rng;

/// A uniform index below `n` (`n` ≥ 1 and < 2^32).
pub(crate) fn below<R: Rng + ?Sized>(rng: &mut R, n: usize) -> usize {
    rng.gen_range(0..n as u32) as usize
}

/// A uniform length in `lo..=hi` (`lo` ≤ `hi` < 2^32).
pub(crate) fn len_in<R: Rng + ?Sized>(rng: &mut R, lo: usize, hi: usize) -> usize {
    rng.gen_range(lo as u32..=hi as u32) as usize
}

/// A uniform element of a non-empty slice.
pub(crate) fn pick<T: Copy, R: Rng + ?Sized>(rng: &mut R, items: &[T]) -> T {
    items[below(rng, items.len())]
}

/// A uniform offset in `[0, duration_us)`, or 0 for an empty window.
pub(crate) fn instant<R: Rng + ?Sized>(rng: &mut R, duration_us: u64) -> u64 {
    if duration_us == 0 {
        0
    } else {
        rng.gen_range(0..duration_us)
    }
}

/// An inter-packet gap ~ Exp(mean), at least 1 µs, at most 8 × mean.
pub(crate) fn gap<R: Rng + ?Sized>(rng: &mut R, mean_us: u32) -> u64 {
    if mean_us == 0 {
        return 1;
    }
    let u = ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64; // (0, 1]
    let mean = f64::from(mean_us);
    let g = (-super::zipf::ln(u) * mean).min(8.0 * mean);
    ((g + 0.5) as u64).max(1)
}

pub(crate) fn bytes<R: Rng + ?Sized>(rng: &mut R, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn gaps_have_the_requested_mean_and_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let n = 200_000;
        let gaps: Vec<u64> = (0..n).map(|_| gap(&mut rng, 1000)).collect();
        let mean = gaps.iter().sum::<u64>() as f64 / n as f64;
        // Exp(1000) capped at 8000: mean = 1000 (1 - e^-8) ≈ 999.7.
        assert!((985.0..1015.0).contains(&mean), "mean gap {mean}");
        assert!(gaps.iter().all(|&g| (1..=8000).contains(&g)));
        assert_eq!(gap(&mut rng, 0), 1);
    }

    #[test]
    fn draws_are_pinned() {
        // The values a seed gives are part of the trace format: if rand or rand_chacha
        // changed them, every trace would change.
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let drawn = [
            below(&mut rng, 10) as u64,
            len_in(&mut rng, 100, 200) as u64,
            instant(&mut rng, 1_000_000),
            gap(&mut rng, 1000),
        ];
        assert_eq!(drawn, PINNED);
    }
    const PINNED: [u64; 4] = [2, 114, 772_313, 1067];
}
