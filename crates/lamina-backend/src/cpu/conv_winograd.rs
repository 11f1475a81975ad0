//! 3x3 convolutions of stride 1 by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016). Each 2x2 tile of output
//! positions comes from the 4x4 block of input around it: the block is transformed (`Bᵀ d B`,
//! additions only), multiplied channel by channel with the kernel's transform (`G g Gᵀ`) as
//! 16 products of `(tiles, cig)` by `(cig, cout)`, and transformed back (`Aᵀ m A`). That is
//! 16 multiplications per tile and input channel instead of 36. The transforms' constants
//! are 0, ±1 and ±1/2, so the results differ from the direct sums by rounding only. The
//! kernel's transform is made once and kept with the executable while the kernel is the same
//! buffer (see [`super::kept::KeptKernels`]); the products are the `gemm` crate's.

use super::conv::Geometry;

/// Input and output channels below which the direct form is kept: with few channels the
/// products are too short for the transforms to pay for themselves.
const MIN_CHANNELS: usize = 16;
/// The fewest tiles (over the whole batch) for which the form pays for itself: ResNet50's
/// 28x28 stage at batch 1 (196 tiles) gained 5%, its 7x7 stage at batch 8 (128) lost.
const MIN_TILES: usize = 192;
/// Floats of transformed input and products one block of tiles holds (512 KiB: a quarter of
/// L2; 1 MiB and 256 KiB were 3-5% slower on cnn's convolutions).
const BLOCK_FLOATS: usize = 1 << 17;
/// The fewest and most tiles per block.
const BLOCK_TILES: (usize, usize) = (8, 256);

/// `G` of F(2x2, 3x3): the kernel's transform is `G g Gᵀ`.
const G: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// Whether a convolution takes this form: a 3x3 kernel, stride and dilation 1, one group, no
/// spread input (not a transposed convolution), at least [`MIN_CHANNELS`] channels in and out.
pub(super) fn suits(g: &Geometry) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == [1, 1]
        && g.dil == [1, 1]
        && g.spread == [1, 1]
        && g.groups == 1
        && g.cig >= MIN_CHANNELS
        && g.cout >= MIN_CHANNELS
        && g.oh > 0
        && g.ow > 0
        && g.n
            .saturating_mul(g.oh.div_ceil(2))
            .saturating_mul(g.ow.div_ceil(2))
            >= MIN_TILES
}

/// Tiles per block: about [`BLOCK_FLOATS`] of transformed input and products.
fn block_tiles(g: &Geometry) -> usize {
    (BLOCK_FLOATS / (16 * (g.cig + g.cout))).clamp(BLOCK_TILES.0, BLOCK_TILES.1)
}

/// Tiles along the height and the width (a last, partial tile where a side is odd).
fn tiles(g: &Geometry) -> (usize, usize) {
    (g.oh.div_ceil(2), g.ow.div_ceil(2))
}

/// The scratch floats one block holds: transformed input and products of its tiles, the
/// intermediate rows of one tile's transforms, and a row of zeros for the padding.
fn scratch_floats(g: &Geometry, tiles: usize) -> usize {
    16 * tiles * (g.cig + g.cout) + 16 * g.cig.max(g.cout) + g.cig
}

/// A convolution's kernel transformed for F(2x2, 3x3).
pub(super) struct Winograd {
    /// `u[(xi * cig + c) * cout + k]`: element `xi` (of 16) of the transform of the kernel of
    /// input channel `c` and output channel `k`.
    u: std::sync::Arc<Vec<f32>>,
}

impl Winograd {
    /// Transforms `kernel` (`3 * 3 * cig` rows of `cout`) where [`suits`] said so.
    pub(super) fn transform(g: &Geometry, kernel: &[f32]) -> Vec<f32> {
        let mut u = vec![0f32; 16 * g.cig * g.cout];
        transform_kernel(g, kernel, &mut u);
        u
    }

    /// The form with its transformed kernel `u` (from [`Winograd::transform`]).
    pub(super) fn with(u: std::sync::Arc<Vec<f32>>) -> Winograd {
        Winograd { u }
    }

    /// The bytes of the transformed kernel, kept between runs.
    pub(super) fn kernel_bytes(g: &Geometry) -> u64 {
        16u64
            .saturating_mul(g.cig as u64)
            .saturating_mul(g.cout as u64)
            .saturating_mul(4)
    }

    /// The bytes this form holds while it runs: one block's scratch for each of `threads`
    /// threads (the transformed kernel is counted as kept, [`Winograd::kernel_bytes`]).
    pub(super) fn bytes(g: &Geometry, threads: usize) -> u64 {
        (scratch_floats(g, block_tiles(g)) as u64).saturating_mul(4 * threads as u64)
    }

    /// Output rows per slab: whole pairs of output image rows (one row of tiles), about a
    /// block of tiles, and at least a few slabs per thread.
    pub(super) fn slab_rows(g: &Geometry, threads: usize) -> usize {
        let (th, tw) = tiles(g);
        let units = g.n.saturating_mul(th);
        let per_block = (block_tiles(g) / tw).max(1);
        per_block.min(units.div_ceil(threads * 4)).max(1) * 2 * g.ow
    }

    /// Output positions `r0..r0 + dst.len() / cout` of `x`'s convolution, plus `bias`: every
    /// row of tiles they touch is computed, a block of tiles at a time, and the positions
    /// inside the range are written. `scratch` is the caller's to reuse.
    pub(super) fn rows(
        &self,
        g: &Geometry,
        x: &[f32],
        bias: Option<&[f32]>,
        (r0, dst): (usize, &mut [f32]),
        scratch: &mut Vec<f32>,
    ) {
        let (c, k) = (g.cig, g.cout);
        let m = dst.len() / k;
        if m == 0 {
            return;
        }
        let (th, tw) = tiles(g);
        let unit_of = |r: usize| {
            let (_, y, b) = g.position(r);
            b * th + y / 2
        };
        let (first, last) = (unit_of(r0), unit_of(r0 + m - 1));
        let per_block = (block_tiles(g) / tw).max(1);
        let mut unit = first;
        while unit <= last {
            let units = per_block.min(last + 1 - unit);
            let count = units * tw;
            scratch.resize(scratch_floats(g, count), 0.0);
            let (v, rest) = scratch.split_at_mut(16 * count * c);
            let (products, rest) = rest.split_at_mut(16 * count * k);
            let (tmp, zeros) = rest.split_at_mut(16 * c.max(k));
            zeros.fill(0.0);
            let tile_at = |t: usize| {
                let u = unit + t / tw;
                (u / th, u % th, t % tw)
            };
            for (t, block) in v.chunks_exact_mut(16 * c).enumerate() {
                transform_input(g, x, zeros, tile_at(t), tmp, block);
            }
            for xi in 0..16 {
                // SAFETY: `gemm_strided` takes raw pointers. `v` holds `count` tiles of 16 rows of c
                // floats, of which row xi of each is read (row stride 16c); `u` holds 16
                // blocks of c rows of k floats, of which block xi is read; `products` holds
                // `count` tiles of 16 rows of k, of which row xi of each is written (row
                // stride 16k). All accesses stay inside the slices, and `products` is
                // borrowed exclusively.
                unsafe {
                    super::matmul::gemm_strided(
                        (count, c, k),
                        (v.as_ptr().add(xi * c), 16 * c),
                        (self.u.as_ptr().add(xi * c * k), k),
                        (products.as_mut_ptr().add(xi * k), 16 * k),
                        false,
                        false,
                    );
                }
            }
            for (t, block) in products.chunks_exact(16 * k).enumerate() {
                let (b, ty, tx) = tile_at(t);
                // The output rows of the tile's four positions, where they are in range.
                let mut targets = [None; 4];
                for (i, target) in targets.iter_mut().enumerate() {
                    let (y, xx) = (2 * ty + i / 2, 2 * tx + i % 2);
                    let r = (b * g.oh + y) * g.ow + xx;
                    if y < g.oh && xx < g.ow && (r0..r0 + m).contains(&r) {
                        *target = Some(r - r0);
                    }
                }
                if targets.iter().any(Option::is_some) {
                    transform_output(block, k, bias, tmp, targets, dst);
                }
            }
            unit += units;
        }
    }
}

/// `out[q] = f(a[q], b[q])` over `out`, in a form the compiler vectorises.
#[inline(always)]
fn map2(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    let n = out.len();
    for ((o, &a), &b) in out.iter_mut().zip(&a[..n]).zip(&b[..n]) {
        *o = f(a, b);
    }
}

/// `out[q] = f(out[q], a[q])` over `out`.
#[inline(always)]
fn map2_in_place(out: &mut [f32], a: &[f32], f: impl Fn(f32, f32) -> f32) {
    let n = out.len();
    for (o, &a) in out.iter_mut().zip(&a[..n]) {
        *o = f(*o, a);
    }
}

/// `out[q] = f(a[q], b[q], c[q])` over `out`.
#[inline(always)]
fn map3(out: &mut [f32], a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) {
    let n = out.len();
    for (((o, &a), &b), &c) in out.iter_mut().zip(&a[..n]).zip(&b[..n]).zip(&c[..n]) {
        *o = f(a, b, c);
    }
}

/// `u = G g Gᵀ` for every pair of input and output channels (see [`Winograd::u`]), input
/// channel by input channel, so that its nine kernel rows are read once, from cache.
fn transform_kernel(g: &Geometry, kernel: &[f32], u: &mut [f32]) {
    super::isa::call_with_best_isa!(
        transform_kernel_with,
        (g: &Geometry, kernel: &[f32], u: &mut [f32])
    )
}

#[inline(always)]
fn transform_kernel_with(g: &Geometry, kernel: &[f32], u: &mut [f32]) {
    let (c, k) = (g.cig, g.cout);
    for ci in 0..c {
        for xi in 0..16 {
            let (a, b) = (xi / 4, xi % 4);
            let dst = &mut u[(xi * c + ci) * k..][..k];
            for tap in 0..9 {
                let w = G[a][tap / 3] * G[b][tap % 3];
                if w != 0.0 {
                    map2_in_place(dst, &kernel[(tap * c + ci) * k..][..k], |d, s| d + w * s);
                }
            }
        }
    }
}

/// Splits `s` into its first four runs of `n` floats.
fn four(s: &mut [f32], n: usize) -> [&mut [f32]; 4] {
    let (a, s) = s.split_at_mut(n);
    let (b, s) = s.split_at_mut(n);
    let (c, s) = s.split_at_mut(n);
    [a, b, c, &mut s[..n]]
}

/// The tile `(image, tile row, tile column)`'s 4x4 input block transformed, `Bᵀ d B`, into
/// `out` (16 rows of `cig`: row `4 i + j` is element `(i, j)`); `tmp` holds `Bᵀ d`.
fn transform_input(
    g: &Geometry,
    x: &[f32],
    zeros: &[f32],
    tile: (usize, usize, usize),
    tmp: &mut [f32],
    out: &mut [f32],
) {
    super::isa::call_with_best_isa!(
        transform_input_with,
        (
            g: &Geometry,
            x: &[f32],
            zeros: &[f32],
            tile: (usize, usize, usize),
            tmp: &mut [f32],
            out: &mut [f32],
        )
    )
}

#[inline(always)]
fn transform_input_with(
    g: &Geometry,
    x: &[f32],
    zeros: &[f32],
    (b, ty, tx): (usize, usize, usize),
    tmp: &mut [f32],
    out: &mut [f32],
) {
    let c = g.cig;
    let zeros = &zeros[..c];
    // Input pixel (row i, column j) of the block, or zeros on the padding.
    let pixel = |i: usize, j: usize| -> &[f32] {
        let y = (2 * ty + i).checked_sub(g.pad[0]).filter(|&y| y < g.h);
        let xx = (2 * tx + j).checked_sub(g.pad[1]).filter(|&xx| xx < g.w);
        match (y, xx) {
            (Some(y), Some(xx)) => &x[((b * g.h + y) * g.w + xx) * c..][..c],
            _ => zeros,
        }
    };
    // Bᵀ d, column by column: tmp row 4 j + i is element (i, j).
    for j in 0..4 {
        let (d0, d1, d2, d3) = (pixel(0, j), pixel(1, j), pixel(2, j), pixel(3, j));
        let [t0, t1, t2, t3] = four(&mut tmp[4 * j * c..], c);
        map2(t0, d0, d2, |a, b| a - b);
        map2(t1, d1, d2, |a, b| a + b);
        map2(t2, d2, d1, |a, b| a - b);
        map2(t3, d1, d3, |a, b| a - b);
    }
    // (Bᵀ d) B, row by row.
    for i in 0..4 {
        let row = |j: usize| &tmp[(4 * j + i) * c..][..c];
        let (a0, a1, a2, a3) = (row(0), row(1), row(2), row(3));
        let [v0, v1, v2, v3] = four(&mut out[4 * i * c..], c);
        map2(v0, a0, a2, |a, b| a - b);
        map2(v1, a1, a2, |a, b| a + b);
        map2(v2, a2, a1, |a, b| a - b);
        map2(v3, a1, a3, |a, b| a - b);
    }
}

/// A tile's products (`m`: 16 rows of `cout`) transformed back, `Aᵀ m A`, plus `bias`: output
/// `(i, j)` written to row `targets[2 i + j]` of `dst` where it has one; `tmp` holds `m A`.
fn transform_output(
    m: &[f32],
    k: usize,
    bias: Option<&[f32]>,
    tmp: &mut [f32],
    targets: [Option<usize>; 4],
    dst: &mut [f32],
) {
    super::isa::call_with_best_isa!(
        transform_output_with,
        (
            m: &[f32],
            k: usize,
            bias: Option<&[f32]>,
            tmp: &mut [f32],
            targets: [Option<usize>; 4],
            dst: &mut [f32],
        )
    )
}

#[inline(always)]
fn transform_output_with(
    m: &[f32],
    k: usize,
    bias: Option<&[f32]>,
    tmp: &mut [f32],
    targets: [Option<usize>; 4],
    dst: &mut [f32],
) {
    // m A, row by row: tmp row 2 i + j is element (i, j) of the 4x2 result.
    for i in 0..4 {
        let row = |j: usize| &m[(4 * i + j) * k..][..k];
        let (m0, m1, m2, m3) = (row(0), row(1), row(2), row(3));
        let (s0, rest) = tmp[2 * i * k..].split_at_mut(k);
        let s1 = &mut rest[..k];
        map3(s0, m0, m1, m2, |a, b, c| a + b + c);
        map3(s1, m1, m2, m3, |a, b, c| a - b - c);
    }
    // Aᵀ (m A), column by column, plus the bias.
    for j in 0..2 {
        let row = |i: usize| &tmp[(2 * i + j) * k..][..k];
        let (s0, s1, s2, s3) = (row(0), row(1), row(2), row(3));
        if let Some(r) = targets[j] {
            let out = &mut dst[r * k..][..k];
            map3(out, s0, s1, s2, |a, b, c| a + b + c);
            if let Some(bias) = bias {
                map2_in_place(out, bias, |s, b| b + s);
            }
        }
        if let Some(r) = targets[2 + j] {
            let out = &mut dst[r * k..][..k];
            map3(out, s1, s2, s3, |a, b, c| a - b - c);
            if let Some(bias) = bias {
                map2_in_place(out, bias, |s, b| b + s);
            }
        }
    }
}
