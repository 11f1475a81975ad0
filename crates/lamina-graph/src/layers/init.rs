//! Weight initialisers: deterministic uniform draws from a small generator (SplitMix64).

/// `n` values uniform in `[-limit, limit)`, the same for the same seed.
pub(crate) fn uniform(n: usize, limit: f64, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 11) as f64 / (1u64 << 53) as f64;
            ((u * 2.0 - 1.0) * limit) as f32
        })
        .collect()
}

/// Glorot-uniform values for a `(fan_in, fan_out)` kernel.
pub(crate) fn glorot_uniform(fan_in: usize, fan_out: usize, seed: u64) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    uniform(fan_in * fan_out, limit, seed)
}
