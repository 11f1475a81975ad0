//! Vectorizable math for the CPU: `exp`, `tanh`, `sigmoid` without branches or library calls,
//! to about 2 ulp, and the per-op loops that the compiler turns into SIMD code.

// The polynomial coefficients are Cephes' as published; f32 rounds them on parsing.
#![allow(clippy::excessive_precision)]

use lamina_graph::op::{BinaryOp, UnaryOp};

/// e^x: range reduction to r in [-ln2/2, ln2/2], Cephes' degree-5 polynomial, and scaling by
/// 2^n through the exponent bits. Overflows to +inf above 88.72; subnormal results below -87.3
/// down to 0 below -103.97.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(-103.972_08, 88.376_26);
    let (y, ni) = exp_parts(xc);
    // 2^n in two normal factors, so that results below 2^-126 come out subnormal (rounded
    // once) rather than clamped to the smallest normal.
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let scale1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let scale2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let v = y * scale1 * scale2;
    if x > 88.722_84 {
        f32::INFINITY
    } else if x < -103.972_08 {
        0.0
    } else {
        v
    }
}

/// `e^x = y * 2^n` for `x` in the clamped range: `(y, n)`, with y in [0.7, 1.42].
#[inline(always)]
fn exp_parts(x: f32) -> (f32, i32) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting rounds to nearest
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    // The integer n from t's low mantissa bits: integer arithmetic that vectorizes, where a
    // float-to-int `as` (saturating) would not.
    let ni = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    (p * r * r + r + 1.0, ni)
}

/// `exp` for arguments known to give a normal result (0 to 87 here): the same value, without
/// the range checks and the subnormal scaling.
#[inline(always)]
fn exp_normal(x: f32) -> f32 {
    let (y, ni) = exp_parts(x);
    y * f32::from_bits(((ni + 127) as u32) << 23)
}

/// tanh(x): Cephes' odd polynomial for |x| < 0.625, `1 - 2/(e^{2|x|} + 1)` above, the sign
/// restored; exactly ±1 for large |x|.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let small = ((((-5.704_988_7e-3f32 * z + 2.063_908_9e-2) * z - 5.373_971_8e-2) * z
        + 1.333_144_3e-1)
        * z
        - 3.333_328_6e-1)
        * z
        * x
        + x;
    let e = exp_normal(2.0 * a.min(20.0));
    let large = 1.0 - 2.0 / (e + 1.0);
    let large = if x < 0.0 { -large } else { large };
    let r = if a < 0.625 { small } else { large };
    if x.is_nan() { x } else { r }
}

/// The logistic sigmoid `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

macro_rules! map_unary {
    ($dst:expr, $src:expr, |$x:ident| $e:expr) => {
        for (o, &$x) in $dst.iter_mut().zip($src) {
            *o = $e;
        }
    };
}

/// `dst[i] = op(src[i])`, one specialised loop per op.
#[inline(always)]
pub fn unary_slice(op: UnaryOp, src: &[f32], dst: &mut [f32]) {
    match op {
        UnaryOp::Neg => map_unary!(dst, src, |x| -x),
        UnaryOp::Abs => map_unary!(dst, src, |x| x.abs()),
        UnaryOp::Exp => map_unary!(dst, src, |x| exp(x)),
        UnaryOp::Tanh => map_unary!(dst, src, |x| tanh(x)),
        UnaryOp::Sigmoid => map_unary!(dst, src, |x| sigmoid(x)),
        UnaryOp::Sqrt => map_unary!(dst, src, |x| x.sqrt()),
        UnaryOp::Rsqrt => map_unary!(dst, src, |x| 1.0 / x.sqrt()),
        UnaryOp::Recip => map_unary!(dst, src, |x| 1.0 / x),
        UnaryOp::Not => map_unary!(dst, src, |x| if x == 0.0 { 1.0 } else { 0.0 }),
        other => {
            let f = super::elementwise::unary_f32(other);
            map_unary!(dst, src, |x| f(x))
        }
    }
}

/// `dst[i] = op(a[i], b[i])` where `a` and `b` have `dst.len()` elements or one (broadcast),
/// one specialised loop per op and broadcast pattern.
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
    match op {
        BinaryOp::Add => zip!(|x, y| x + y),
        BinaryOp::Sub => zip!(|x, y| x - y),
        BinaryOp::Mul => zip!(|x, y| x * y),
        BinaryOp::Div => zip!(|x, y| x / y),
        BinaryOp::Pow => zip!(|x, y| x.powf(y)),
        BinaryOp::Max => zip!(|x, y| super::elementwise::fmax_nan(x, y)),
        BinaryOp::Min => zip!(|x, y| super::elementwise::fmin_nan(x, y)),
        BinaryOp::Less => zip!(|x, y| t(x < y)),
        BinaryOp::LessEqual => zip!(|x, y| t(x <= y)),
        BinaryOp::Greater => zip!(|x, y| t(x > y)),
        BinaryOp::GreaterEqual => zip!(|x, y| t(x >= y)),
        BinaryOp::Equal => zip!(|x, y| t(x == y)),
        BinaryOp::NotEqual => zip!(|x, y| t(x != y)),
        BinaryOp::And => zip!(|x, y| t(x != 0.0 && y != 0.0)),
        BinaryOp::Or => zip!(|x, y| t(x != 0.0 || y != 0.0)),
        BinaryOp::Atan2 => zip!(|x, y| super::elementwise::atan2_f32(x, y)),
        BinaryOp::FloorDiv => zip!(|x, y| super::elementwise::floor_div_f32(x, y)),
        BinaryOp::Mod => zip!(|x, y| super::elementwise::mod_f32(x, y)),
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
    type Lanes = [f32; 8];
    fn add(a: &Lanes, b: &Lanes) -> Lanes {
        std::array::from_fn(|i| a[i] + b[i])
    }
    // stack[level] holds the lanes of 2^level blocks while bit `level` of `count` is set.
    let mut stack = [[0f32; 8]; usize::BITS as usize];
    let mut count = 0usize;
    let blocks = x.chunks_exact(SUM_BLOCK);
    let rest = blocks.remainder();
    for block in blocks {
        let mut lanes = [0f32; 8];
        for c in block.chunks_exact(8) {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l += v;
            }
        }
        let mut level = 0;
        while (count >> level) & 1 == 1 {
            lanes = add(&stack[level], &lanes);
            level += 1;
        }
        stack[level] = lanes;
        count += 1;
    }
    let mut lanes = [0f32; 8];
    let chunks = rest.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    for (level, pending) in stack.iter().enumerate() {
        if (count >> level) & 1 == 1 {
            lanes = add(pending, &lanes);
        }
    }
    let mut total = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for &v in tail {
        total += v;
    }
    total
}

/// Maximum (or minimum with `max = false`) in 8 lanes; NaN anywhere gives NaN, as NumPy does.
#[inline(always)]
pub fn extreme(x: &[f32], max: bool) -> f32 {
    let init = if max {
        f32::NEG_INFINITY
    } else {
        f32::INFINITY
    };
    let mut lanes = [init; 8];
    let mut nan = false;
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            nan |= v.is_nan();
            *l = if max {
                if v > *l { v } else { *l }
            } else if v < *l {
                v
            } else {
                *l
            };
        }
    }
    let mut m = init;
    for &v in lanes.iter().chain(rest) {
        nan |= v.is_nan();
        m = if max {
            if v > m { v } else { m }
        } else if v < m {
            v
        } else {
            m
        };
    }
    if nan { f32::NAN } else { m }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> i64 {
        (a.to_bits() as i64 - b.to_bits() as i64).abs()
    }

    #[test]
    fn exp_is_within_a_few_ulp_of_libm() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp() as f32;
            worst = worst.max(ulps(exp(x), want));
            x += 0.0137;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_is_accurate_everywhere() {
        let mut x = -12.0f32;
        while x < 12.0 {
            let want = (x as f64).tanh();
            let got = tanh(x) as f64;
            assert!(
                (got - want).abs() <= 3e-7 * want.abs().max(1e-30) + 1e-38
                    || ulps(got as f32, want as f32) <= 3,
                "tanh({x}) = {got}, want {want}"
            );
            x += 0.00731;
        }
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
        assert!(tanh(f32::NAN).is_nan());
    }
}
