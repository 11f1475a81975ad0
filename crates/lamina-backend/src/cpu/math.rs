//! The per-op loops over f32 slices that the compiler turns into SIMD code, and the sums and
//! extremes of the reductions. Every loop computes the op table's scalar function
//! (`crate::opdef`), the same code inlined, so its results are bit for bit the table's (tested
//! below); bools are 0.0 and 1.0 here, as in the fused interpreter.

use crate::opdef::{self, Fn1, Fn2, scalar};
use lamina_graph::op::{BinaryOp, UnaryOp};

macro_rules! map_unary {
    ($dst:expr, $src:expr, |$x:ident| $e:expr) => {
        for (o, &$x) in $dst.iter_mut().zip($src) {
            *o = $e;
        }
    };
}

/// `dst[i] = op(src[i])`, one specialised loop per common op, the table's function for the
/// rest (a test gives 1.0 or 0.0; a bool op reads `x != 0`).
#[inline(always)]
pub fn unary_slice(op: UnaryOp, src: &[f32], dst: &mut [f32]) {
    let t = |c: bool| if c { 1.0f32 } else { 0.0 };
    match op {
        UnaryOp::Neg => map_unary!(dst, src, |x| -x),
        UnaryOp::Abs => map_unary!(dst, src, |x| x.abs()),
        UnaryOp::Exp => map_unary!(dst, src, |x| scalar::exp(x)),
        // Small arguments alone: the polynomial, without an exponential and a division.
        UnaryOp::Tanh => map_small_blocks(
            (dst, src),
            scalar::TANH_SMALL,
            scalar::tanh_small,
            scalar::tanh,
        ),
        UnaryOp::Sigmoid => map_unary!(dst, src, |x| scalar::sigmoid(x)),
        // Small arguments alone: without two exponentials and three divisions.
        UnaryOp::Erf => map_small_blocks(
            (dst, src),
            scalar::ERF_SMALL,
            scalar::erf_small,
            scalar::erf,
        ),
        UnaryOp::Erfc => map_unary!(dst, src, |x| scalar::erfc(x)),
        UnaryOp::Sqrt => map_unary!(dst, src, |x| x.sqrt()),
        UnaryOp::Rsqrt => map_unary!(dst, src, |x| 1.0 / x.sqrt()),
        UnaryOp::Recip => map_unary!(dst, src, |x| 1.0 / x),
        UnaryOp::Not => map_unary!(dst, src, |x| t(x == 0.0)),
        other => {
            let def = opdef::unary(other);
            match (def.f32.map(|i| i.cpu), def.bool.map(|i| i.cpu)) {
                (Some(Fn1::Map(f)), _) => map_unary!(dst, src, |x| f(x)),
                (Some(Fn1::Test(f)), _) => map_unary!(dst, src, |x| t(f(x))),
                (None, Some(Fn1::Map(f))) => map_unary!(dst, src, |x| t(f(x != 0.0))),
                (None, Some(Fn1::Test(f))) => map_unary!(dst, src, |x| t(f(x != 0.0))),
                (None, None) => dst.fill(f32::NAN),
            }
        }
    }
}

/// Elements [`unary_slice`] checks at a time for `erf`'s and `tanh`'s small arguments.
const SMALL_BLOCK: usize = 16;

/// `dst[i] = full(src[i])`, where a block of [`SMALL_BLOCK`] arguments all below `limit` in
/// magnitude computes `small` instead: `full`'s own branch for them (the same values), alone.
#[inline(always)]
fn map_small_blocks(
    (dst, src): (&mut [f32], &[f32]),
    limit: f32,
    small: impl Fn(f32) -> f32,
    full: impl Fn(f32) -> f32,
) {
    for (o, x) in dst.chunks_mut(SMALL_BLOCK).zip(src.chunks(SMALL_BLOCK)) {
        if x.iter().fold(true, |ok, &v| ok & (v.abs() < limit)) {
            map_unary!(o, x, |v| small(v));
        } else {
            map_unary!(o, x, |v| full(v));
        }
    }
}

/// `dst[i] = op(a[i], b[i])` where `a` and `b` have `dst.len()` elements or one (broadcast),
/// one specialised loop per op and broadcast pattern (comparisons give 1.0 or 0.0; `and` and
/// `or` read `x != 0`).
#[inline(always)]
pub fn binary_slice(op: BinaryOp, a: &[f32], b: &[f32], dst: &mut [f32]) {
    macro_rules! zip {
        (|$x:ident, $y:ident| $e:expr) => {{
            let n = dst.len();
            match (a.len() == n, b.len() == n) {
                (true, true) => {
                    for ((o, &$x), &$y) in dst.iter_mut().zip(a).zip(b) {
                        *o = $e;
                    }
                }
                (true, false) => {
                    let $y = b[0];
                    for (o, &$x) in dst.iter_mut().zip(a) {
                        *o = $e;
                    }
                }
                (false, true) => {
                    let $x = a[0];
                    for (o, &$y) in dst.iter_mut().zip(b) {
                        *o = $e;
                    }
                }
                (false, false) => {
                    let ($x, $y) = (a[0], b[0]);
                    let v = $e;
                    dst.fill(v);
                }
            }
        }};
    }
    let t = |c: bool| if c { 1.0f32 } else { 0.0 };
    if op == BinaryOp::Div && a.len() == dst.len() && b.len() == 1 {
        return div_by_one(a, b[0], dst);
    }
    match op {
        BinaryOp::Add => zip!(|x, y| x + y),
        BinaryOp::Sub => zip!(|x, y| x - y),
        BinaryOp::Mul => zip!(|x, y| x * y),
        BinaryOp::Div => zip!(|x, y| x / y),
        BinaryOp::Max => zip!(|x, y| scalar::fmax_nan(x, y)),
        BinaryOp::Min => zip!(|x, y| scalar::fmin_nan(x, y)),
        BinaryOp::Less => zip!(|x, y| t(x < y)),
        BinaryOp::LessEqual => zip!(|x, y| t(x <= y)),
        BinaryOp::Greater => zip!(|x, y| t(x > y)),
        BinaryOp::GreaterEqual => zip!(|x, y| t(x >= y)),
        BinaryOp::Equal => zip!(|x, y| t(x == y)),
        BinaryOp::NotEqual => zip!(|x, y| t(x != y)),
        BinaryOp::And => zip!(|x, y| t(x != 0.0 && y != 0.0)),
        BinaryOp::Or => zip!(|x, y| t(x != 0.0 || y != 0.0)),
        BinaryOp::FloorDiv => zip!(|x, y| scalar::floor_div_f32(x, y)),
        BinaryOp::Mod => zip!(|x, y| scalar::mod_f32(x, y)),
        other => {
            let def = opdef::binary(other);
            match (def.f32.map(|i| i.cpu), def.bool.map(|i| i.cpu)) {
                (Some(Fn2::Map(f)), _) => zip!(|x, y| f(x, y)),
                (Some(Fn2::Test(f)), _) => zip!(|x, y| t(f(x, y))),
                (None, Some(Fn2::Map(f))) => zip!(|x, y| t(f(x != 0.0, y != 0.0))),
                (None, Some(Fn2::Test(f))) => zip!(|x, y| t(f(x != 0.0, y != 0.0))),
                (None, None) => dst.fill(f32::NAN),
            }
        }
    }
}

/// `dst[i] = a[i] * b[i] + c[i]` (`c[i] + a[i] * b[i]` where `c_first`), each operand of
/// `dst.len()` elements or one (broadcast): the product rounded, then the sum, as the two
/// ops one after the other give (no fused multiply-add).
#[inline(always)]
pub fn mul_add_slices(a: &[f32], b: &[f32], c: &[f32], c_first: bool, dst: &mut [f32]) {
    macro_rules! loops {
        ($x:ident, $y:ident, $z:ident => $value:expr) => {{
            let n = dst.len();
            match (a.len() == n, b.len() == n, c.len() == n) {
                (true, true, true) => {
                    for (((o, &$x), &$y), &$z) in dst.iter_mut().zip(a).zip(b).zip(c) {
                        *o = $value;
                    }
                }
                (true, true, false) => {
                    let $z = c[0];
                    for ((o, &$x), &$y) in dst.iter_mut().zip(a).zip(b) {
                        *o = $value;
                    }
                }
                (true, false, true) => {
                    let $y = b[0];
                    for ((o, &$x), &$z) in dst.iter_mut().zip(a).zip(c) {
                        *o = $value;
                    }
                }
                (false, true, true) => {
                    let $x = a[0];
                    for ((o, &$y), &$z) in dst.iter_mut().zip(b).zip(c) {
                        *o = $value;
                    }
                }
                (true, false, false) => {
                    let ($y, $z) = (b[0], c[0]);
                    for (o, &$x) in dst.iter_mut().zip(a) {
                        *o = $value;
                    }
                }
                (false, true, false) => {
                    let ($x, $z) = (a[0], c[0]);
                    for (o, &$y) in dst.iter_mut().zip(b) {
                        *o = $value;
                    }
                }
                (false, false, true) => {
                    let ($x, $y) = (a[0], b[0]);
                    for (o, &$z) in dst.iter_mut().zip(c) {
                        *o = $value;
                    }
                }
                (false, false, false) => {
                    let ($x, $y, $z) = (a[0], b[0], c[0]);
                    dst.fill($value);
                }
            }
        }};
    }
    // The two orders may differ in which NaN comes through when both operands are NaN, so
    // each keeps the order of the op it replaces.
    #[allow(clippy::if_same_then_else)]
    if c_first {
        loops!(x, y, z => z + x * y)
    } else {
        loops!(x, y, z => x * y + z)
    }
}

/// Magnitudes (as f32 bits) between which [`div_by_one`] takes the reciprocal's path: 2^-80
/// and 2^80 for the dividend, 2^-40 and 2^40 for the divisor, so that the reciprocal, the
/// quotient and the residual are all normal and finite.
const DIVIDEND_LO: u32 = (127 - 80) << 23;
const DIVIDEND_HI: u32 = (127 + 80) << 23;
const DIVISOR_LO: f32 = f32::from_bits((127 - 40) << 23);
const DIVISOR_HI: f32 = f32::from_bits((127 + 40) << 23);

/// `dst[i] = a[i] / b`, the IEEE quotient, bit for bit. Where the loops have FMA (the AVX2 and
/// AVX-512 copies), one division gives `y = 1/b` and each element is `q = a*y` corrected once,
/// `q + (a - b*q)*y` with two fused multiply-adds: Markstein's theorem makes that the correctly
/// rounded quotient when `y` is the rounded reciprocal and nothing under- or overflows, which
/// the magnitude checks ensure (a block with a zero, a tiny, huge or non-finite element is
/// divided plainly). Three pipelined operations instead of one division (10-16 cycles a
/// vector): softmax's and layer norm's last step.
#[inline(always)]
fn div_by_one(a: &[f32], b: f32, dst: &mut [f32]) {
    let Some(y) = reciprocal_for(b) else {
        for (o, &x) in dst.iter_mut().zip(a) {
            *o = x / b;
        }
        return;
    };
    for (o, x) in dst.chunks_mut(DIV_BLOCK).zip(a.chunks(DIV_BLOCK)) {
        div_block(x, b, y, o);
    }
}

/// [`div_by_one`] with the quotients written over the dividends: softmax's last step.
#[inline(always)]
pub fn div_by_one_in_place(x: &mut [f32], b: f32) {
    let Some(y) = reciprocal_for(b) else {
        for v in x.iter_mut() {
            *v /= b;
        }
        return;
    };
    for o in x.chunks_mut(DIV_BLOCK) {
        let mut block = [0f32; DIV_BLOCK];
        let block = &mut block[..o.len()];
        block.copy_from_slice(o);
        div_block(block, b, y, o);
    }
}

/// [`div_by_one_in_place`] for dividends the caller knows to lie in the reciprocal path's
/// range (magnitudes 2^-80 to 2^80, none zero or non-finite): no check and no copy, the same
/// bits. Softmax's rows whose exponentials are all at least e^[`IN_RANGE_EXP_LOWEST`].
#[inline(always)]
pub fn div_in_range_in_place(x: &mut [f32], b: f32) {
    let Some(y) = reciprocal_for(b) else {
        for v in x.iter_mut() {
            *v /= b;
        }
        return;
    };
    for v in x.iter_mut() {
        let q = *v * y;
        let r = (-q).mul_add(b, *v);
        *v = r.mul_add(y, q);
    }
}

/// The reciprocal `1 / b` through which [`div_in_range_in_place`] divides by `b`, or `None`
/// where it divides plainly (no FMA, or `b` of an extreme magnitude).
#[inline(always)]
pub fn in_range_reciprocal(b: f32) -> Option<f32> {
    reciprocal_for(b)
}

/// The lowest argument whose `exp` is certainly at least 2^-80, the reciprocal path's least
/// dividend (e^-55 is 2^-79.3).
pub const IN_RANGE_EXP_LOWEST: f32 = -55.0;

/// Elements [`div_by_one`] checks at a time for magnitudes the reciprocal's path takes.
const DIV_BLOCK: usize = 64;

/// `1 / b` where [`div_by_one`] may divide by `b` through its reciprocal (the loops have FMA
/// and `b` is of a moderate magnitude); `None` where each element is divided plainly.
#[inline(always)]
fn reciprocal_for(b: f32) -> Option<f32> {
    let fma = super::isa::active() != super::isa::Isa::Baseline;
    (fma && (DIVISOR_LO..=DIVISOR_HI).contains(&b.abs())).then(|| 1.0 / b)
}

/// `o[i] = x[i] / b` for one block, through `y = 1 / b` when every dividend has a moderate
/// magnitude (see [`div_by_one`]), plainly otherwise.
#[inline(always)]
fn div_block(x: &[f32], b: f32, y: f32, o: &mut [f32]) {
    let in_range = x.iter().fold(true, |ok, &v| {
        ok & ((v.to_bits() & 0x7fff_ffff).wrapping_sub(DIVIDEND_LO) < DIVIDEND_HI - DIVIDEND_LO)
    });
    if in_range {
        for (o, &v) in o.iter_mut().zip(x) {
            let q = v * y;
            let r = (-q).mul_add(b, v);
            *o = r.mul_add(y, q);
        }
    } else {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = v / b;
        }
    }
}

/// Elements each block of a sum adds in its 8 lanes (16 per lane), as NumPy's pairwise sum.
const SUM_BLOCK: usize = 128;

/// Sum in 8 interleaved lanes, over blocks of `SUM_BLOCK` elements combined pairwise (a
/// cascade: block sums are merged like a binary counter, so no recursion), so that the error
/// grows with the log of the length, as in NumPy, and a long row of ones does not stall at
/// 2^24. Vectorizes, and is the one summation order of the interpreter, fused or not.
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    // A short row's cascade has few levels to set up (at 2 KiB, the deep one's would cost
    // as much as summing a row of 256).
    if x.len() < SUM_BLOCK << SHALLOW_LEVELS {
        sum_with(x, Cascade::<SHALLOW_LEVELS>::new())
    } else {
        sum_with(x, Cascade::<{ usize::BITS as usize }>::new())
    }
}

/// Levels of the cascade of a row of fewer than `SUM_BLOCK << SHALLOW_LEVELS` values.
const SHALLOW_LEVELS: usize = 8;

/// [`sum`] through a cascade deep enough for `x`.
#[inline(always)]
fn sum_with<const LEVELS: usize>(x: &[f32], mut cascade: Cascade<LEVELS>) -> f32 {
    let blocks = x.chunks_exact(SUM_BLOCK);
    let rest = blocks.remainder();
    for block in blocks {
        cascade.push(block);
    }
    cascade.finish(rest)
}

/// `dst[i] = e^(x[i] - m)`, and the sum of `dst` in [`sum`]'s order: softmax's middle, in one
/// pass. Each block is summed right after it is computed, so that the sum's chain of additions
/// overlaps the next block's exponentials; the values and the sum are those of the two ops
/// run one after the other, bit for bit.
///
/// `lowest` is the smallest number in `x` (or anything smaller): where every `x - m` is at
/// least [`NORMAL_EXP_LOWEST`], each exponential is normal and is computed without `exp`'s range
/// checks and subnormal scaling, the same value.
#[inline(always)]
pub fn exp_shifted_and_sum(x: &[f32], m: f32, lowest: f32, dst: &mut [f32]) -> f32 {
    // The same sums either way; which is faster depends on the vector width.
    if super::isa::active() == super::isa::Isa::Avx512 {
        exp_shifted_and_sum_by::<true>(x, m, lowest, dst)
    } else {
        exp_shifted_and_sum_by::<false>(x, m, lowest, dst)
    }
}

/// [`exp_shifted_and_sum`], each block's exponentials made before they are summed where
/// `WIDE` (at the vector width), else summed as they are made.
#[inline(always)]
fn exp_shifted_and_sum_by<const WIDE: bool>(
    x: &[f32],
    m: f32,
    lowest: f32,
    dst: &mut [f32],
) -> f32 {
    const DEEP: usize = usize::BITS as usize;
    let normal = lowest - m >= NORMAL_EXP_LOWEST;
    match (x.len() < SUM_BLOCK << SHALLOW_LEVELS, normal) {
        (true, true) => exp_shifted_and_sum_with::<SHALLOW_LEVELS, true, WIDE>(x, m, dst),
        (true, false) => exp_shifted_and_sum_with::<SHALLOW_LEVELS, false, WIDE>(x, m, dst),
        (false, true) => exp_shifted_and_sum_with::<DEEP, true, WIDE>(x, m, dst),
        (false, false) => exp_shifted_and_sum_with::<DEEP, false, WIDE>(x, m, dst),
    }
}

/// The lowest argument for which `exp` is certainly normal (e^-87.33 is the smallest normal
/// float), so that [`scalar::exp_normal`] gives `exp`'s value.
pub const NORMAL_EXP_LOWEST: f32 = -87.0;

/// [`exp_shifted_and_sum`] through a cascade deep enough for `x`, with
/// [`scalar::exp_normal`] where `NORMAL`.
#[inline(always)]
fn exp_shifted_and_sum_with<const LEVELS: usize, const NORMAL: bool, const WIDE: bool>(
    x: &[f32],
    m: f32,
    dst: &mut [f32],
) -> f32 {
    let mut cascade = Cascade::<LEVELS>::new();
    let e = |v: f32| {
        if NORMAL {
            scalar::exp_normal(v - m)
        } else {
            scalar::exp(v - m)
        }
    };
    let split = x.len() - x.len() % SUM_BLOCK;
    let (dst_blocks, dst_rest) = dst.split_at_mut(split);
    for (o, block) in dst_blocks
        .chunks_exact_mut(SUM_BLOCK)
        .zip(x.chunks_exact(SUM_BLOCK))
    {
        if WIDE {
            // All the block's exponentials at the vector width, then their sum from the
            // first-level cache: made 16 at a time and summed 8 then 8 as below, they were
            // built from two 8-lane halves.
            map_unary!(o, block, |v| e(v));
            cascade.push(o);
        } else {
            // Each 16 exponentials added to the block's lanes as they are made, 8 then 8
            // ([`lanes_of`]'s order), rather than read back in a second loop.
            let mut lanes: Lanes = [0.0; 8];
            for (o16, x16) in o.chunks_exact_mut(16).zip(block.chunks_exact(16)) {
                let y: [f32; 16] = std::array::from_fn(|l| e(x16[l]));
                o16.copy_from_slice(&y);
                let (lo, hi): (Lanes, Lanes) = (
                    std::array::from_fn(|l| y[l]),
                    std::array::from_fn(|l| y[8 + l]),
                );
                lanes = add_lanes(&add_lanes(&lanes, &lo), &hi);
            }
            cascade.push_lanes(lanes);
        }
    }
    map_unary!(dst_rest, &x[split..], |v| e(v));
    cascade.finish(dst_rest)
}

/// Eight lanes of partial sums.
type Lanes = [f32; 8];

/// The pairwise sum's state: `stack[level]` holds the lanes of 2^level blocks while bit
/// `level` of `count` is set; `count` stays below `2^LEVELS`.
struct Cascade<const LEVELS: usize> {
    stack: [Lanes; LEVELS],
    count: usize,
}

impl<const LEVELS: usize> Cascade<LEVELS> {
    #[inline(always)]
    fn new() -> Self {
        Cascade {
            stack: [[0.0; 8]; LEVELS],
            count: 0,
        }
    }

    /// Adds a block of `SUM_BLOCK` values: its lanes, merged with the pending blocks.
    #[inline(always)]
    fn push(&mut self, block: &[f32]) {
        self.push_lanes(lanes_of(block));
    }

    /// Adds a block of `SUM_BLOCK` values by its lanes ([`lanes_of`]).
    #[inline(always)]
    fn push_lanes(&mut self, mut lanes: Lanes) {
        let mut level = 0;
        while (self.count >> level) & 1 == 1 {
            lanes = add_lanes(&self.stack[level], &lanes);
            level += 1;
        }
        self.stack[level] = lanes;
        self.count += 1;
    }

    /// The total, with `rest` (fewer than `SUM_BLOCK` values) added last.
    #[inline(always)]
    fn finish(self, rest: &[f32]) -> f32 {
        let chunks = rest.chunks_exact(8);
        let tail = chunks.remainder();
        let mut lanes = lanes_of(&rest[..rest.len() - tail.len()]);
        let mut pending = self.count;
        for level in &self.stack {
            if pending == 0 {
                break;
            }
            if pending & 1 == 1 {
                lanes = add_lanes(level, &lanes);
            }
            pending >>= 1;
        }
        let mut total = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
            + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
        for &v in tail {
            total += v;
        }
        total
    }
}

/// The lanes of `x` (a multiple of 8 values): lane `l` adds elements `l`, `l + 8`, ...
#[inline(always)]
fn lanes_of(x: &[f32]) -> Lanes {
    let mut lanes = [0f32; 8];
    for c in x.chunks_exact(8) {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    lanes
}

#[inline(always)]
fn add_lanes(a: &Lanes, b: &Lanes) -> Lanes {
    std::array::from_fn(|i| a[i] + b[i])
}

/// The largest number of `x` (-inf where there is none) and the smallest (+inf where there is
/// none), in one pass, without [`extreme`]'s NaN probe: softmax's first pass, which sees a NaN
/// in the row by its sum (the NaN's exponential makes it NaN).
#[inline(always)]
pub fn max_and_min_ignoring_nan(x: &[f32]) -> (f32, f32) {
    const LANES: usize = 32;
    let mut high = [f32::NEG_INFINITY; LANES];
    let mut low = [f32::INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for ((h, l), &v) in high.iter_mut().zip(&mut low).zip(c) {
            *h = if v > *h { v } else { *h };
            *l = if v < *l { v } else { *l };
        }
    }
    // The maximum folded as `extreme` folds it, so that a signed zero comes out the same.
    let pick = |v: f32, l: f32| if v > l { v } else { l };
    let h: [f32; 16] = std::array::from_fn(|i| pick(high[i + 16], high[i]));
    let h: [f32; 8] = std::array::from_fn(|i| pick(h[i + 8], h[i]));
    let h: [f32; 4] = std::array::from_fn(|i| pick(h[i + 4], h[i]));
    let mut m = pick(pick(h[3], h[1]), pick(h[2], h[0]));
    // The least as a tree of vector comparisons too (not 32 in a chain): only compared with
    // bounds, so which zero of two comes out does not matter.
    let least = |a: f32, b: f32| if b < a { b } else { a };
    let l: [f32; 16] = std::array::from_fn(|i| least(low[i], low[i + 16]));
    let l: [f32; 8] = std::array::from_fn(|i| least(l[i], l[i + 8]));
    let l: [f32; 4] = std::array::from_fn(|i| least(l[i], l[i + 4]));
    let mut lowest = least(least(l[0], l[2]), least(l[1], l[3]));
    for &v in rest {
        m = pick(v, m);
        lowest = if v < lowest { v } else { lowest };
    }
    (m, lowest)
}

/// Maximum (or minimum with `max = false`) in 32 lanes (several vectors, so that their
/// comparisons overlap); NaN anywhere gives NaN, as NumPy does. NaN is found through a probe
/// that adds `v * 0` (0 for a finite value, NaN for NaN and the infinities): only a row whose
/// probe is NaN is searched for a NaN. The lanes never hold a NaN: a comparison with one is
/// false, so the lane keeps its value.
#[inline(always)]
pub fn extreme(x: &[f32], max: bool) -> f32 {
    const LANES: usize = 32;
    let init = if max {
        f32::NEG_INFINITY
    } else {
        f32::INFINITY
    };
    let pick = |v: f32, l: f32| -> f32 {
        if max {
            if v > l { v } else { l }
        } else if v < l {
            v
        } else {
            l
        }
    };
    let mut lanes = [init; LANES];
    let mut probe = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for ((l, p), &v) in lanes.iter_mut().zip(&mut probe).zip(c) {
            *l = pick(v, *l);
            *p += v * 0.0;
        }
    }
    // Halves folded onto halves (a tree of vector comparisons, not 32 in a chain), in
    // fixed-size arrays that stay in registers.
    let l: [f32; 16] = std::array::from_fn(|i| pick(lanes[i + 16], lanes[i]));
    let l: [f32; 8] = std::array::from_fn(|i| pick(l[i + 8], l[i]));
    let l: [f32; 4] = std::array::from_fn(|i| pick(l[i + 4], l[i]));
    let m = pick(pick(l[3], l[1]), pick(l[2], l[0]));
    let p: [f32; 8] =
        std::array::from_fn(|i| (probe[i] + probe[i + 8]) + (probe[i + 16] + probe[i + 24]));
    let mut probe = p.iter().sum::<f32>();
    let mut m = m;
    for &v in rest {
        m = pick(v, m);
        probe += v * 0.0;
    }
    if probe != 0.0 && x.iter().any(|v| v.is_nan()) {
        f32::NAN
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values where implementations differ: NaN (both signs), infinities, signed zeros,
    /// subnormals, the ends of the float range, the edges of the algorithms' intervals, and a
    /// sweep of ordinary values.
    fn sweep() -> Vec<f32> {
        let mut v = vec![
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e-45,
            -1e-45,
            1e-40,
            -3e-39,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            1e30,
            -1e30,
            1.0,
            -1.0,
            0.5,
            -0.5,
            0.625,
            0.84375,
            1.25,
            2.857_143,
            6.0,
            -6.0,
            0.25,
            -0.25,
            88.72,
            88.73,
            -103.9,
            -104.0,
            -30.0,
            16_777_217.0,
            3e9,
        ];
        let mut x = -120.0f32;
        while x < 120.0 {
            v.push(x);
            x += 0.173;
        }
        let mut x = 1e-8f32;
        while x < 1e8 {
            v.push(x);
            v.push(-x);
            x *= 3.7;
        }
        v
    }

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// The table's scalar function of a unary op on the slices' f32 encoding.
    fn unary_ref(op: UnaryOp, x: f32) -> f32 {
        let def = opdef::unary(op);
        let t = |c: bool| if c { 1.0 } else { 0.0 };
        match (def.f32.map(|i| i.cpu), def.bool.map(|i| i.cpu)) {
            (Some(Fn1::Map(f)), _) => f(x),
            (Some(Fn1::Test(f)), _) => t(f(x)),
            (None, Some(Fn1::Map(f))) => t(f(x != 0.0)),
            (None, Some(Fn1::Test(f))) => t(f(x != 0.0)),
            (None, None) => unreachable!("{op:?} takes neither f32 nor bool"),
        }
    }

    fn binary_ref(op: BinaryOp, x: f32, y: f32) -> f32 {
        let def = opdef::binary(op);
        let t = |c: bool| if c { 1.0 } else { 0.0 };
        match (def.f32.map(|i| i.cpu), def.bool.map(|i| i.cpu)) {
            (Some(Fn2::Map(f)), _) => f(x, y),
            (Some(Fn2::Test(f)), _) => t(f(x, y)),
            (None, Some(Fn2::Map(f))) => t(f(x != 0.0, y != 0.0)),
            (None, Some(Fn2::Test(f))) => t(f(x != 0.0, y != 0.0)),
            (None, None) => unreachable!("{op:?} takes neither f32 nor bool"),
        }
    }

    #[test]
    fn unary_slices_are_bit_equal_to_the_table() {
        let src = sweep();
        for op in UnaryOp::ALL {
            let mut dst = vec![0f32; src.len()];
            unary_slice(op, &src, &mut dst);
            // The loops compiled for the instruction set the interpreter picks, threads and all.
            let big: Vec<f32> = src.iter().cycle().take(100_000).copied().collect();
            let par = super::super::vector::unary(op, &big);
            for (i, &x) in src.iter().enumerate() {
                let want = unary_ref(op, x);
                assert!(same(dst[i], want), "{op:?}({x:e}): {} vs {want}", dst[i]);
            }
            for (i, &x) in big.iter().enumerate() {
                assert!(same(par[i], unary_ref(op, x)), "{op:?}({x:e}) (vector)");
            }
        }
    }

    /// Maxima and minima of rows of every length up to 100 (whole chunks of lanes and tails),
    /// with a NaN or an infinity placed at every position: the row's extreme by definition,
    /// NaN wherever the row holds one.
    #[test]
    fn extremes_follow_the_definition_with_nan_anywhere() {
        assert_eq!(
            max_and_min_ignoring_nan(&[f32::NAN; 40]),
            (f32::NEG_INFINITY, f32::INFINITY)
        );
        for len in 0..100usize {
            let row: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.25)
                .collect();
            let mut cases = vec![row.clone()];
            for at in 0..len {
                for special in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut r = row.clone();
                    r[at] = special;
                    cases.push(r);
                }
            }
            for r in &cases {
                let nan = r.iter().any(|v| v.is_nan());
                let max = r
                    .iter()
                    .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
                let min = r
                    .iter()
                    .fold(f32::INFINITY, |m, &v| if v < m { v } else { m });
                for (want, got) in [(max, extreme(r, true)), (min, extreme(r, false))] {
                    if nan {
                        assert!(got.is_nan(), "length {len}: {got} for a row with NaN");
                    } else {
                        assert_eq!(got, want, "length {len}");
                    }
                }
                // The extremes of the numbers: the folds above skip NaN (a comparison with it
                // is false).
                assert_eq!(
                    max_and_min_ignoring_nan(r),
                    (max, min),
                    "length {len}, NaN ignored"
                );
            }
        }
    }

    /// A xorshift generator of 64-bit values from `seed` (not zero).
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Dividends whose quotients lie within a few ulps of a rounding midpoint (where a plain
    /// `a * (1/b)` rounds the wrong way about a time in four), random ones, and the edges of
    /// the reciprocal path's range: every quotient is `a / b` bit for bit.
    #[test]
    fn division_by_one_value_is_the_ieee_quotient() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15u64);
        let bits = |r: u64, exp: u32| f32::from_bits((r as u32 & 0x7f_ffff) | (exp << 23));
        let edges = [
            0.0,
            -0.0,
            1e-45,
            1e-30,
            8.3e-25,
            8.3e-26,
            1.2e24,
            1.3e24,
            3e38,
            f32::INFINITY,
            f32::NAN,
            -1.0,
            0.5,
        ];
        let mut wrong_by_reciprocal = 0;
        for round in 0..400 {
            let b = match round {
                0 => 9.1e-13,
                1 => 9.0e-13,
                2 => 1.09e12,
                3 => 1.1e12,
                4 => -3.0,
                _ => bits(next(), 127 + (round % 9)),
            };
            let mut a: Vec<f32> = edges.to_vec();
            for _ in 0..2000 {
                let q = bits(next(), 127 - 1 - (next() % 40) as u32);
                let mid = (q as f64 + f32::from_bits(q.to_bits() + 1) as f64) / 2.0;
                let near = (b as f64 * mid) as f32;
                a.push(f32::from_bits(
                    near.to_bits()
                        .wrapping_add(next() as u32 % 5)
                        .wrapping_sub(2),
                ));
                a.push(-bits(next(), 127 - (next() % 60) as u32));
            }
            let want: Vec<f32> = a.iter().map(|&x| x / b).collect();
            wrong_by_reciprocal += a
                .iter()
                .zip(&want)
                .filter(|(x, w)| **x * (1.0 / b) != **w)
                .count();
            let mut dst = vec![0f32; a.len()];
            binary_slice(BinaryOp::Div, &a, &[b], &mut dst);
            let par = super::super::vector::binary(BinaryOp::Div, &a, &[b], a.len());
            let mut in_place = a.clone();
            div_by_one_in_place(&mut in_place, b);
            for i in 0..a.len() {
                assert!(
                    same(in_place[i], want[i]),
                    "{:e} / {b:e}: {:e} (in place)",
                    a[i],
                    in_place[i]
                );
                assert!(same(dst[i], want[i]), "{:e} / {b:e}: {:e}", a[i], dst[i]);
                assert!(
                    same(par[i], want[i]),
                    "{:e} / {b:e}: {:e} (vector)",
                    a[i],
                    par[i]
                );
            }
        }
        // The cases are hard ones: the reciprocal alone gets many wrong.
        assert!(wrong_by_reciprocal > 100_000, "{wrong_by_reciprocal}");
    }

    /// Softmax's division of exponentials known to lie in the reciprocal path's range (from
    /// e^-55 to 1, near rounding midpoints and random) by sums from 1 up: the IEEE quotient
    /// bit for bit, as the checked division gives it.
    #[test]
    fn division_of_values_in_range_is_the_ieee_quotient() {
        let mut next = xorshift(0x2545_F491_4F6C_DD1Du64);
        let lowest = scalar::exp(IN_RANGE_EXP_LOWEST);
        assert!(lowest.to_bits() >= DIVIDEND_LO, "e^-55 is below the range");
        let mut wrong_by_reciprocal = 0;
        for round in 0..300u32 {
            let b = 1.0 + (next() % (1 << 20)) as f32 * 0.37 + round as f32;
            let mut a = vec![lowest, 1.0];
            for _ in 0..2000 {
                let q = f32::from_bits(
                    (next() as u32 & 0x7f_ffff) | ((127 - 1 - (next() % 60) as u32) << 23),
                );
                let mid = (q as f64 + f32::from_bits(q.to_bits() + 1) as f64) / 2.0;
                let near = ((b as f64 * mid) as f32).min(1.0).max(lowest);
                a.push(near);
                a.push(scalar::exp(-((next() % 55_000) as f32) / 1000.0));
            }
            let want: Vec<f32> = a.iter().map(|&x| x / b).collect();
            wrong_by_reciprocal += a
                .iter()
                .zip(&want)
                .filter(|(x, w)| **x * (1.0 / b) != **w)
                .count();
            let mut got = a.clone();
            div_in_range_in_place(&mut got, b);
            for i in 0..a.len() {
                assert!(same(got[i], want[i]), "{:e} / {b:e}: {:e}", a[i], got[i]);
            }
        }
        assert!(wrong_by_reciprocal > 10_000, "{wrong_by_reciprocal}");
    }

    /// Softmax's middle pass gives the exponentials and the sum of running `exp` and then
    /// `sum`, bit for bit, at lengths around the sum's blocks and cascade depths, whether a
    /// block's exponentials are summed as they are made or after (each width's way); a short
    /// row's shallow cascade and the deep one give the same sum; a long row of ones sums
    /// exactly. Arguments over a narrow range as well as a wide one, so the order of the
    /// sums shows.
    #[test]
    fn exponentials_summed_in_one_pass_match_the_two_ops() {
        let values = sweep();
        // Arguments over a wide range with the special values among them, and finite ones over
        // a narrow range (every term counts, so a sum in another order differs).
        for (scale, shift, specials) in [(30.0f32, -10.0f32, true), (1.0, 0.0, false)] {
            let mut x: Vec<f32> = (0..70_000)
                .map(|i| ((i as f32) * 0.618_034).sin() * scale + shift)
                .collect();
            for (k, &v) in values.iter().enumerate().filter(|_| specials) {
                x[k * 997 % 70_000] = v;
            }
            let lengths = [
                0, 1, 7, 8, 9, 127, 128, 129, 255, 256, 257, 300, 1000, 32_767, 32_768, 32_769,
                70_000,
            ];
            for len in lengths {
                for (offset, m) in [(0, 0.0), (3, 2.5), (11, -7.0), (0, f32::INFINITY)] {
                    let Some(row) = x.get(offset..offset + len) else {
                        continue;
                    };
                    let mut e = vec![0f32; len];
                    unary_slice(
                        UnaryOp::Exp,
                        &row.iter().map(|v| v - m).collect::<Vec<_>>(),
                        &mut e,
                    );
                    let want = sum(&e);
                    let mut got = vec![0f32; len];
                    for wide in [false, true] {
                        let s = if wide {
                            exp_shifted_and_sum_by::<true>(row, m, f32::NEG_INFINITY, &mut got)
                        } else {
                            exp_shifted_and_sum_by::<false>(row, m, f32::NEG_INFINITY, &mut got)
                        };
                        assert!(
                            same(s, want),
                            "len {len}, m {m}, {wide}: sum {s:e} != {want:e}"
                        );
                        for i in 0..len {
                            assert!(same(got[i], e[i]), "len {len}, m {m}, {wide}, element {i}");
                        }
                    }
                    // Rows whose every exponential is normal take `exp_normal`: the same bits,
                    // down to the edge of the normal range.
                    let (top, low) = max_and_min_ignoring_nan(row);
                    if !row.iter().any(|v| v.is_nan()) {
                        assert!(same(top, extreme(row, true)), "len {len}: maximum");
                    }
                    let normal: Vec<f32> = row
                        .iter()
                        .map(|&v| {
                            if v.is_nan() {
                                v
                            } else {
                                v.clamp(top - 86.0, top)
                            }
                        })
                        .collect();
                    let mut e = vec![0f32; len];
                    unary_slice(
                        UnaryOp::Exp,
                        &normal.iter().map(|v| v - top).collect::<Vec<_>>(),
                        &mut e,
                    );
                    let (ntop, nlow) = max_and_min_ignoring_nan(&normal);
                    if top.is_finite() && len > 0 && !row.iter().any(|v| v.is_nan()) {
                        assert!(nlow - ntop >= NORMAL_EXP_LOWEST, "len {len}: {low} {nlow}");
                    }
                    for wide in [false, true] {
                        let s = if wide {
                            exp_shifted_and_sum_by::<true>(&normal, ntop, nlow, &mut got)
                        } else {
                            exp_shifted_and_sum_by::<false>(&normal, ntop, nlow, &mut got)
                        };
                        assert!(same(s, sum(&e)), "len {len}, {wide}: normal sum");
                        for i in 0..len {
                            assert!(same(got[i], e[i]), "len {len}, {wide}, normal element {i}");
                        }
                    }
                    let finite: Vec<f32> = row.iter().map(|v| v.clamp(-1e6, 1e6)).collect();
                    if !finite.is_empty() && finite.len() < SUM_BLOCK << SHALLOW_LEVELS {
                        let deep = sum_with(&finite, Cascade::<{ usize::BITS as usize }>::new());
                        assert!(
                            same(sum(&finite), deep),
                            "len {len}: shallow and deep cascades"
                        );
                    }
                }
            }
        }
        // `exp_normal` is `exp` over the whole range it is used for, to its very edge.
        let n = 1 << 20;
        for i in 0..=n {
            let v = NORMAL_EXP_LOWEST * (i as f32 / n as f32);
            assert!(
                same(scalar::exp_normal(v), scalar::exp(v)),
                "exp_normal({v:e})"
            );
        }
        assert_eq!(sum(&vec![1.0; 1 << 25]), (1 << 25) as f32);
        assert_eq!(sum(&vec![1.0; (1 << 15) - 1]), ((1 << 15) - 1) as f32);
    }

    /// `exp` over its whole finite range (4 million arguments from -104 to 89, and the
    /// edges): within 1.05 ulp of the exact value for normal results (the worst here is 1.002;
    /// Cephes' polynomial is good to about one), within one and a half of the smallest
    /// subnormal below them, +inf past 88.72 and 0 below -103.97. Up to 88.72, not only to
    /// 88.38, where the argument was once clamped, 90 ulp too low at the top.
    #[test]
    fn exp_is_within_an_ulp_of_the_exact_value() {
        let n = 1 << 22;
        let mut x: Vec<f32> = (0..n)
            .map(|i| -104.0 + 193.0 * (i as f32 / n as f32))
            .collect();
        x.extend([
            -103.972_08,
            -103.972_07,
            -87.336_55,
            88.722_83,
            88.722_84,
            0.0,
            -0.0,
        ]);
        let mut got = vec![0f32; x.len()];
        unary_slice(UnaryOp::Exp, &x, &mut got);
        let mut worst = 0.0f64;
        for (&v, &g) in x.iter().zip(&got) {
            let exact = (v as f64).exp();
            if exact > f32::MAX as f64 {
                assert_eq!(g, f32::INFINITY, "exp({v:e})");
                continue;
            }
            // A subnormal result is the normal one's rounded again: half a unit more.
            let (ulp, bound) = if exact < f32::MIN_POSITIVE as f64 {
                (1e-45f64, 1.5)
            } else {
                let e = exact as f32;
                ((f32::from_bits(e.to_bits() + 1) - e) as f64, 1.05)
            };
            let err = (g as f64 - exact).abs() / ulp;
            if bound < 1.5 {
                worst = worst.max(err);
            }
            assert!(
                err <= bound,
                "exp({v:e}) = {g:e}, exact {exact:e}: {err} ulp"
            );
        }
        assert!(
            worst > 0.5,
            "the sweep should meet rounding errors: {worst}"
        );
    }

    /// `tanh` over [-10, 10] (4 million arguments, both branches and their edge at 0.625)
    /// and the edges: within 2 ulp of the exact value (the worst here is 1.3), odd, and ±1
    /// past 9.2.
    #[test]
    fn tanh_is_within_two_ulp_of_the_exact_value() {
        let n = 1 << 22;
        let mut x: Vec<f32> = (0..n)
            .map(|i| -10.0 + 20.0 * (i as f32 / n as f32))
            .collect();
        x.extend([
            0.625,
            0.624_999_94,
            -0.625,
            1e-30,
            -1e-30,
            0.0,
            -0.0,
            20.0,
            1e30,
        ]);
        let mut got = vec![0f32; x.len()];
        unary_slice(UnaryOp::Tanh, &x, &mut got);
        let mut worst = 0.0f64;
        for (&v, &g) in x.iter().zip(&got) {
            let exact = (v as f64).tanh();
            let e = exact as f32;
            let ulp = (f32::from_bits(e.abs().to_bits() + 1) - e.abs()) as f64;
            let err = (g as f64 - exact).abs() / ulp;
            worst = worst.max(err);
            assert!(
                err <= 2.0,
                "tanh({v:e}) = {g:e}, exact {exact:e}: {err} ulp"
            );
            assert_eq!(
                g.to_bits() >> 31,
                v.to_bits() >> 31,
                "tanh({v:e}) keeps the sign"
            );
            if v.abs() > 9.2 {
                assert_eq!(g.abs(), 1.0, "tanh({v:e})");
            }
        }
        assert!(
            worst > 0.5,
            "the sweep should meet rounding errors: {worst}"
        );
    }

    /// `erfc` over [-11, 11] (4 million arguments) within 6 ulp of libm's double-precision
    /// `erfc` (relative precision kept in the tail, where `1 - erf` would keep none), 0 in
    /// float32 past 10.06 and subnormal before, 2 below -4, and at the edges: ±0, ±inf, NaN.
    #[test]
    fn erfc_is_within_a_few_ulp_of_the_exact_value() {
        let n = 1 << 22;
        let x: Vec<f32> = (0..n)
            .map(|i| -11.0 + 22.0 * (i as f32 / n as f32))
            .collect();
        let mut got = vec![0f32; x.len()];
        unary_slice(UnaryOp::Erfc, &x, &mut got);
        let mut worst = 0.0f64;
        for (&v, &g) in x.iter().zip(&got) {
            let exact = libm::erfc(v as f64);
            // Subnormal results are within the same 6 units of the smallest subnormal.
            let e = exact as f32;
            let ulp = ((f32::from_bits(e.to_bits() + 1) - e) as f64).max(2f64.powi(-149));
            let err = (g as f64 - exact).abs() / ulp;
            worst = worst.max(err);
            assert!(
                err <= 6.0,
                "erfc({v:e}) = {g:e}, exact {exact:e}: {err} ulp"
            );
        }
        assert!(
            worst > 0.5,
            "the sweep should meet rounding errors: {worst}"
        );
        let edges = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 10.06, 1e-30];
        let mut out = [0f32; 6];
        unary_slice(UnaryOp::Erfc, &edges, &mut out);
        assert_eq!(out, [1.0, 1.0, 0.0, 2.0, 0.0, 1.0]);
        let mut nan = [0f32];
        unary_slice(UnaryOp::Erfc, &[f32::NAN], &mut nan);
        assert!(nan[0].is_nan());
    }

    /// `erf` over blocks of small arguments only (their one branch), mixed blocks and blocks
    /// with NaN, tiny and edge arguments gives the table's `erf`, bit for bit.
    #[test]
    fn erf_of_small_blocks_is_the_table_value() {
        let mut x: Vec<f32> = (0..4000)
            .map(|i| ((i as f32) * 0.731).sin() * 0.84)
            .collect();
        for (k, v) in [0.843_75, -0.843_749_94, 1e-30, -3e-9, f32::NAN, 5.0, -0.0]
            .into_iter()
            .enumerate()
        {
            x[100 + 37 * k] = v;
        }
        x.extend((0..100).map(|i| -3.0 + 0.06 * i as f32));
        let mut got = vec![0f32; x.len()];
        unary_slice(UnaryOp::Erf, &x, &mut got);
        for (i, (&v, &g)) in x.iter().zip(&got).enumerate() {
            assert!(same(g, scalar::erf(v)), "erf({v:e}) at {i}: {g:e}");
        }
    }

    /// `tanh` over blocks of small arguments only (the polynomial alone), mixed blocks and
    /// blocks with NaN, signed zeros and the branch's edge gives the table's `tanh`, bit for bit.
    #[test]
    fn tanh_of_small_blocks_is_the_table_value() {
        let mut x: Vec<f32> = (0..4000)
            .map(|i| ((i as f32) * 0.731).sin() * 0.62)
            .collect();
        for (k, v) in [0.625, -0.624_999_94, 1e-30, -3e-9, f32::NAN, 5.0, -0.0, 0.0]
            .into_iter()
            .enumerate()
        {
            x[100 + 37 * k] = v;
        }
        x.extend((0..100).map(|i| -3.0 + 0.06 * i as f32));
        let mut got = vec![0f32; x.len()];
        unary_slice(UnaryOp::Tanh, &x, &mut got);
        for (i, (&v, &g)) in x.iter().zip(&got).enumerate() {
            assert!(same(g, scalar::tanh(v)), "tanh({v:e}) at {i}: {g:e}");
        }
    }

    /// A multiply-add in one pass gives the bits of the product then the sum (in either order
    /// of the sum's operands), with each operand whole or broadcast, over the special values.
    #[test]
    fn multiply_adds_match_the_two_ops() {
        let v = sweep();
        let n = v.len();
        let a: Vec<f32> = v.clone();
        let b: Vec<f32> = v.iter().rev().copied().collect();
        let c: Vec<f32> = (0..n).map(|i| v[(i * 7 + 3) % n]).collect();
        for mask in 0..8 {
            for (pick, one) in [(0usize, 5usize), (3, 17)] {
                let arg = |x: &Vec<f32>, bit: usize| -> Vec<f32> {
                    if mask & bit == 0 {
                        x.clone()
                    } else {
                        vec![x[(pick + one * bit) % n]]
                    }
                };
                let (a, b, c) = (arg(&a, 1), arg(&b, 2), arg(&c, 4));
                let mut m = vec![0f32; n];
                binary_slice(BinaryOp::Mul, &a, &b, &mut m);
                if mask & 3 == 3 {
                    m.truncate(1);
                }
                for c_first in [false, true] {
                    let mut want = vec![0f32; n];
                    if c_first {
                        binary_slice(BinaryOp::Add, &c, &m, &mut want);
                    } else {
                        binary_slice(BinaryOp::Add, &m, &c, &mut want);
                    }
                    let mut got = vec![0f32; n];
                    mul_add_slices(&a, &b, &c, c_first, &mut got);
                    for i in 0..n {
                        assert!(
                            same(got[i], want[i]),
                            "mask {mask}, c_first {c_first}, element {i}: {:e} != {:e}",
                            got[i],
                            want[i]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn binary_slices_are_bit_equal_to_the_table() {
        let v = sweep();
        // Every pair of a thinned sweep, as whole slices and with each side broadcast.
        let thin: Vec<f32> = v.iter().step_by(5).copied().collect();
        let a: Vec<f32> = thin
            .iter()
            .flat_map(|&x| thin.iter().map(move |_| x))
            .collect();
        let b: Vec<f32> = thin.iter().flat_map(|_| thin.iter().copied()).collect();
        for op in BinaryOp::ALL {
            // The integer-only ops (the shifts) never reach the float slices: inference
            // refuses them on floats and bools.
            let def = opdef::binary(op);
            if def.f32.is_none() && def.bool.is_none() {
                continue;
            }
            let mut dst = vec![0f32; a.len()];
            binary_slice(op, &a, &b, &mut dst);
            let par = super::super::vector::binary(op, &a, &b, a.len());
            for i in 0..a.len() {
                let want = binary_ref(op, a[i], b[i]);
                assert!(same(dst[i], want), "{op:?}({:e}, {:e})", a[i], b[i]);
                assert!(
                    same(par[i], want),
                    "{op:?}({:e}, {:e}) (vector)",
                    a[i],
                    b[i]
                );
            }
            for &y in thin.iter().step_by(7) {
                let mut dst = vec![0f32; thin.len()];
                binary_slice(op, &thin, &[y], &mut dst);
                for (i, &x) in thin.iter().enumerate() {
                    assert!(same(dst[i], binary_ref(op, x, y)), "{op:?}({x:e}, [{y:e}])");
                }
                binary_slice(op, &[y], &thin, &mut dst);
                for (i, &x) in thin.iter().enumerate() {
                    assert!(same(dst[i], binary_ref(op, y, x)), "{op:?}([{y:e}], {x:e})");
                }
            }
        }
    }
}
