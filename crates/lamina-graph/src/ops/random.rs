//! Seeded random tensors (`keras.random.uniform` and `keras.random.normal`), as a VAE's
//! sampling layer needs them. Each value is a hash of its element's position and the seed
//! (a counter-based generator built from integer ops), so the same seed gives the same
//! tensor on the CPU and the GPU, at any batch size, on every run: Keras's behaviour for an
//! integer seed. Keras's `SeedGenerator`, which advances on every call, and JAX's bits are not
//! reproduced.

use super::{Axes, Size};
use crate::dtype::DType;
use crate::tensor::Tensor;

/// The PCG output hash (Jarzynski and Olano, "Hash Functions for GPU Rendering", 2020), a
/// bijection of `u32`: on the host, for the seed.
fn pcg(x: u32) -> u32 {
    let state = x.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

fn u32_scalar(v: u32) -> Tensor {
    Tensor::scalar_of(f64::from(v), DType::U32)
}

/// The same hash on a `u32` tensor, elementwise.
fn pcg_tensor(x: &Tensor) -> Tensor {
    let state = x
        .multiply(u32_scalar(747_796_405))
        .add(u32_scalar(2_891_336_453));
    let shift = state.right_shift(u32_scalar(28)).add(u32_scalar(4));
    let word = state
        .right_shift(&shift)
        .bitwise_xor(&state)
        .multiply(u32_scalar(277_803_737));
    word.right_shift(u32_scalar(22)).bitwise_xor(&word)
}

/// Two 32-bit keys from a 64-bit seed, one per stream.
fn keys(seed: u64, stream: u32) -> u32 {
    let lo = seed as u32;
    let hi = (seed >> 32) as u32;
    pcg(pcg(lo ^ pcg(hi)).wrapping_add(stream.wrapping_mul(0x9e37_79b9)))
}

/// Each element's row-major position in `like` (`u32`, `like`'s shape), sizes known only at
/// run time included.
fn positions(like: &Tensor) -> Tensor {
    let rank = like.rank();
    let mut index = u32_scalar(0);
    for axis in 0..rank {
        let size = like.size_of(axis as isize);
        let along = Tensor::arange_size(&size, DType::U32);
        let mut shape = vec![1i64; rank];
        shape[axis] = -1;
        let along = along.reshape(&shape);
        let count = match size {
            Size::Known(n) => u32_scalar(n as u32),
            _ => Tensor::arange_size(&size, DType::U32)
                .full_like(1.0, Some(DType::U32))
                .sum(Axes::All),
        };
        index = index.multiply(&count).add(&along);
    }
    if rank == 0 {
        index
    } else {
        index.broadcast_like(like)
    }
}

/// Uniform `float32` values in `[0, 1)` at every position of `like`, from stream `stream`.
fn unit_uniform(like: &Tensor, seed: u64, stream: u32) -> Tensor {
    let bits = pcg_tensor(&positions(like).bitwise_xor(u32_scalar(keys(seed, stream))));
    bits.right_shift(u32_scalar(8))
        .cast(DType::F32)
        .multiply(1.0 / 16_777_216.0)
}

impl Tensor {
    /// Uniform `float32` values in `[minval, maxval)` with `self`'s shape (its values unused),
    /// fixed by `seed`: `keras.random.uniform(ops.shape(x), minval, maxval, seed=seed)`.
    pub fn random_uniform_like(&self, minval: f32, maxval: f32, seed: u64) -> Tensor {
        unit_uniform(self, seed, 0)
            .multiply(maxval - minval)
            .add(minval)
    }

    /// Normal `float32` values of mean `mean` and standard deviation `stddev` with `self`'s
    /// shape (its values unused), fixed by `seed` (Box–Muller on two uniform streams):
    /// `keras.random.normal(ops.shape(x), mean, stddev, seed=seed)`.
    pub fn random_normal_like(&self, mean: f32, stddev: f32, seed: u64) -> Tensor {
        // u1 in (0, 1] so that its log is finite.
        let u1 = unit_uniform(self, seed, 1).multiply(-1.0).add(1.0);
        let u2 = unit_uniform(self, seed, 2);
        let radius = u1.log().multiply(-2.0).sqrt();
        let angle = u2.multiply(std::f32::consts::TAU);
        radius.multiply(angle.cos()).multiply(stddev).add(mean)
    }

    /// Uniform values of a fixed shape: `keras.random.uniform(shape, minval, maxval, seed)`.
    pub fn random_uniform(shape: &[usize], minval: f32, maxval: f32, seed: u64) -> Tensor {
        Tensor::scalar(0.0)
            .broadcast_to(shape)
            .random_uniform_like(minval, maxval, seed)
    }

    /// Normal values of a fixed shape: `keras.random.normal(shape, mean, stddev, seed)`.
    pub fn random_normal(shape: &[usize], mean: f32, stddev: f32, seed: u64) -> Tensor {
        Tensor::scalar(0.0)
            .broadcast_to(shape)
            .random_normal_like(mean, stddev, seed)
    }

    /// Broadcasts `self` to `like`'s shape, run-time sizes included (by adding zeros of
    /// `like`'s shape in `self`'s dtype).
    fn broadcast_like(&self, like: &Tensor) -> Tensor {
        self.add(like.full_like(0.0, Some(self.dtype())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_pcg_and_a_bijection_on_a_sample() {
        // Reference values of the PCG hash, worked out by its definition.
        assert_eq!(pcg(0), 129_708_002);
        let mut seen = std::collections::HashSet::new();
        for x in 0..100_000u32 {
            assert!(seen.insert(pcg(x)));
        }
    }
}
