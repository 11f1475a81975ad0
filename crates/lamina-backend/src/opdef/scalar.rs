//! The scalar functions of the op table: one value in, one out, the algorithm written once.
//! The float functions that have no exactly rounded WGSL builtin (exp, log, tanh, sigmoid, erf,
//! expm1, log1p) are branch-light f32 algorithms that `shaders/helpers.wgsl` ports line for
//! line, so that the CPU interpreter and the GPU agree to an ulp or two (the GPU may fuse a
//! multiply and an add into one rounding, and may flush subnormals). `exp`'s reduction and
//! polynomial are fused multiply-adds (`mul_add`; WGSL's `fma`): one instruction each where
//! the CPU has FMA, and a call to the C library's correctly rounded `fmaf` on the SSE2-only
//! path, so that every instruction set gives the same bits.

// The polynomial coefficients are Cephes' and FreeBSD's as published; f32 rounds them.
#![allow(clippy::excessive_precision)]

/// e^x: range reduction to r in [-ln2/2, ln2/2], Cephes' degree-5 polynomial, and scaling by
/// 2^n through the exponent bits. Overflows to +inf above 88.72; subnormal results below -87.3
/// down to 0 below -103.97. WGSL: `lamina_exp`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(-103.972_08, 88.722_84);
    let (y, ni) = exp_parts(xc);
    // 2^n in two normal factors, so that results below 2^-126 come out subnormal (rounded
    // once) rather than clamped to the smallest normal, and n = 128 (above 88.38) is reached.
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let v = y * exp2i(n1) * exp2i(n2);
    if x > 88.722_84 {
        f32::INFINITY
    } else if x < -103.972_08 {
        0.0
    } else {
        v
    }
}

/// 2^n for n in [-126, 127], through the exponent bits. WGSL: `lamina_exp2i`.
#[inline(always)]
fn exp2i(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

const LOG2E: f32 = std::f32::consts::LOG2_E;

/// `x - n ln2` in two parts (Cody and Waite), each a fused multiply-add. WGSL:
/// `lamina_exp_reduce`.
#[inline(always)]
fn exp_reduce(x: f32, n: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = 2.121_944_4e-4;
    n.mul_add(LN2_LO, (-n).mul_add(LN2_HI, x))
}

/// `e^x = y * 2^n` for `x` in the clamped range: `(y, n)`, with y in [0.7, 1.42].
#[inline(always)]
fn exp_parts(x: f32) -> (f32, i32) {
    let (n, ni) = exp_exponent(x);
    (exp_poly(exp_reduce(x, n)), ni)
}

/// `n = round(x log2 e)`, half to even as WGSL's `round`, as a float and an integer. The
/// integer comes from the low mantissa bits of `x log2 e + 1.5 * 2^23`: integer arithmetic that
/// vectorizes, where a float-to-int `as` (saturating) would not.
#[inline(always)]
fn exp_exponent(x: f32) -> (f32, i32) {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting rounds to nearest
    let t = x * LOG2E + ROUND;
    (t - ROUND, t.to_bits() as i32 - ROUND.to_bits() as i32)
}

/// e^r for r in [-ln2/2, ln2/2]: Cephes' polynomial, by Horner's rule in fused multiply-adds.
/// WGSL: `lamina_exp_poly`.
#[inline(always)]
fn exp_poly(r: f32) -> f32 {
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5.000_000_1e-1);
    p.mul_add(r * r, r) + 1.0
}

/// `exp` for arguments known to give a normal result (-87 to 87): the same value, without
/// the range checks and the subnormal scaling (one exact scaling by 2^n instead of two).
/// WGSL: `lamina_exp_normal`.
#[inline(always)]
pub fn exp_normal(x: f32) -> f32 {
    let (y, ni) = exp_parts(x);
    y * exp2i(ni)
}

/// tanh(x): Cephes' odd polynomial for |x| < 0.625 (in fused multiply-adds), `1 - 2/(e^{2|x|}
/// + 1)` above, the sign restored; exactly ±1 for large |x|, -0 for -0. WGSL: `lamina_tanh`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let small = tanh_polynomial(x);
    let e = exp_normal(2.0 * a.min(20.0));
    let large = 1.0 - 2.0 / (e + 1.0);
    let large = if x < 0.0 { -large } else { large };
    let r = if a < TANH_SMALL { small } else { large };
    // NaN as it came, and ±0 with its sign (the polynomial gives +0 for -0).
    if x.is_nan() || x == 0.0 { x } else { r }
}

/// The magnitude below which [`tanh`] takes its odd polynomial.
pub const TANH_SMALL: f32 = 0.625;

/// [`tanh`] for |x| < [`TANH_SMALL`], the same value: its polynomial alone, without the
/// exponential and the division of larger arguments.
#[inline(always)]
pub fn tanh_small(x: f32) -> f32 {
    let r = tanh_polynomial(x);
    if x == 0.0 { x } else { r }
}

/// Cephes' odd polynomial for tanh, `x + x³ P(x²)`, in fused multiply-adds.
#[inline(always)]
fn tanh_polynomial(x: f32) -> f32 {
    let z = x * x;
    let mut p = (-5.704_988_7e-3f32).mul_add(z, 2.063_908_9e-2);
    p = p.mul_add(z, -5.373_971_8e-2);
    p = p.mul_add(z, 1.333_144_3e-1);
    p = p.mul_add(z, -3.333_328_6e-1);
    (p * z).mul_add(x, x)
}

/// The logistic sigmoid `1 / (1 + e^-x)`; a NaN comes back as it came (not negated by `-x`),
/// so that NaN bits do not depend on the order in which later ops read their operands. WGSL:
/// `lamina_sigmoid`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let s = 1.0 / (1.0 + exp(-x));
    if x.is_nan() { x } else { s }
}

/// erfc(a) for a in [0.84375, 6): FreeBSD's `erff` (as musl's and the libm crate's), with
/// [`exp`] for `expf`. Every branch is computed and the right one selected, so that slice
/// loops over it vectorize. WGSL: `lamina_erfc_mid`.
#[inline(always)]
fn erfc_mid(a: f32) -> f32 {
    let near = {
        let s = a - 1.0;
        let p = -2.3621185683e-03
            + s * (4.1485610604e-01
                + s * (-3.7220788002e-01
                    + s * (3.1834661961e-01
                        + s * (-1.1089469492e-01
                            + s * (3.5478305072e-02 + s * -2.1663755178e-03)))));
        let q = 1.0
            + s * (1.0642088205e-01
                + s * (5.4039794207e-01
                    + s * (7.1828655899e-02
                        + s * (1.2617121637e-01 + s * (1.3637083583e-02 + s * 1.1984500103e-02)))));
        1.0 - 8.4506291151e-01 - p / q
    };
    let s = 1.0 / (a * a);
    let lower = {
        // |x| < 1 / 0.35
        let r = -9.8649440333e-03
            + s * (-6.9385856390e-01
                + s * (-1.0558626175e+01
                    + s * (-6.2375331879e+01
                        + s * (-1.6239666748e+02
                            + s * (-1.8460508728e+02
                                + s * (-8.1287437439e+01 + s * -9.8143291473e+00))))));
        let big_s = 1.0
            + s * (1.9651271820e+01
                + s * (1.3765776062e+02
                    + s * (4.3456588745e+02
                        + s * (6.4538726807e+02
                            + s * (4.2900814819e+02
                                + s * (1.0863500214e+02
                                    + s * (6.5702495575e+00 + s * -6.0424413532e-02)))))));
        (r, big_s)
    };
    let upper = {
        let r = -9.8649431020e-03
            + s * (-7.9928326607e-01
                + s * (-1.7757955551e+01
                    + s * (-1.6063638306e+02
                        + s * (-6.3756646729e+02
                            + s * (-1.0250950928e+03 + s * -4.8351919556e+02)))));
        let big_s = 1.0
            + s * (3.0338060379e+01
                + s * (3.2579251099e+02
                    + s * (1.5367296143e+03
                        + s * (3.1998581543e+03
                            + s * (2.5530502930e+03
                                + s * (4.7452853394e+02 + s * -2.2440952301e+01))))));
        (r, big_s)
    };
    // |x| < 1 / 0.35 takes the first set.
    let (r, big_s) = if a.to_bits() < 0x4036_db6d {
        lower
    } else {
        upper
    };
    let z = f32::from_bits(a.to_bits() & 0xffff_e000);
    let far = exp(-z * z - 0.5625) * exp((z - a) * (z + a) + r / big_s) / a;
    if a < 1.25 { near } else { far }
}

/// The Gauss error function: FreeBSD's `erff` with [`exp`] for `expf`, within 2 ulp; branch
/// free, as `erfc_mid`. WGSL: `lamina_erf`.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let small = erf_small(x);
    let y = if a < 6.0 { 1.0 - erfc_mid(a) } else { 1.0 };
    let large = if x < 0.0 { -y } else { y };
    let v = if a < ERF_SMALL { small } else { large };
    if x.is_nan() { x } else { v }
}

/// The complementary error function `1 - erf(x)`, with its relative precision where `erf` is
/// near 1: `t e^(-x² + P(t))` for `x >= 0`, `t = 1 / (1 + x / 2)`, with the Chebyshev fit `P`
/// of Numerical Recipes' `erfcc` (relative error below 1.2e-7), `-x²` carried in two parts
/// (its rounding error added after the exponential's range reduction, so that it is not lost
/// to the ulp of `x²`); `2 - erfc(-x)` below 0. Branch free, one division and one
/// exponential, so that slice loops over it vectorize. WGSL: `lamina_erfc`.
#[inline(always)]
pub fn erfc(x: f32) -> f32 {
    const P: [f32; 10] = [
        -1.265_512_2,
        1.000_023_7,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_204,
        1.488_515_9,
        -0.822_152_23,
        0.170_872_77,
    ];
    const LOWEST: f32 = -103.972_08; // below, e^s is 0 in float32
    let a = x.abs();
    let t = 1.0 / 0.5f32.mul_add(a, 1.0);
    let mut p = P[9];
    for &c in P[..9].iter().rev() {
        p = p.mul_add(t, c);
    }
    // -a² = -(h + l) exactly; s = -a² + P(t) rounded, only to choose the power of two.
    let h = a * a;
    let tail = p - a.mul_add(a, -h);
    let s = tail - h;
    let (n, ni) = exp_exponent(s.max(LOWEST));
    let n1 = ni >> 1;
    let e = exp_poly(exp_reduce(-h, n) + tail) * exp2i(n1) * exp2i(ni - n1);
    // Past 10.05 (s below LOWEST, or NaN for a = inf) erfc(a) is 0 in float32.
    let y = if s >= LOWEST { t * e } else { 0.0 };
    let v = if x < 0.0 { 2.0 - y } else { y };
    if x.is_nan() { x } else { v }
}

/// Below this magnitude [`erf`] is [`erf_small`].
pub const ERF_SMALL: f32 = 0.84375;

/// [`erf`] for |x| < [`ERF_SMALL`], the same value: its rational approximation alone, without
/// the other branches' exponentials and divisions (which slice loops take only for blocks with
/// a larger argument).
#[inline(always)]
pub fn erf_small(x: f32) -> f32 {
    let a = x.abs();
    let small = {
        let z = x * x;
        let r = 1.2837916613e-01
            + z * (-3.2504209876e-01
                + z * (-2.8481749818e-02 + z * (-5.7702702470e-03 + z * -2.3763017452e-05)));
        let s = 1.0
            + z * (3.9791721106e-01
                + z * (6.5022252500e-02
                    + z * (5.0813062117e-03 + z * (1.3249473704e-04 + z * -3.9602282413e-06))));
        x + x * (r / s)
    };
    // Below 2^-28, x (1 + 2/sqrt(pi) - 1) without underflow.
    let tiny = 0.125 * (8.0 * x + 1.0270333290e+00 * x);
    if a < 3.725_290_3e-9 { tiny } else { small }
}

/// e^r - 1 for |r| <= ln2/2: Taylor's polynomial of degree 8. WGSL: `lamina_expm1_poly`.
#[inline(always)]
fn expm1_poly(r: f32) -> f32 {
    r + r
        * r
        * (0.5
            + r * (1.666_666_7e-1
                + r * (4.166_666_8e-2
                    + r * (8.333_333_8e-3
                        + r * (1.388_888_9e-3 + r * (1.984_127e-4 + r * 2.480_158_7e-5))))))
}

/// e^x - 1, accurate near 0: x = n ln2 + r, then `2^n (e^r - 1) + (2^n - 1)`, whose last step
/// is exact for small n, so nothing cancels. WGSL: `lamina_expm1`.
pub fn expm1(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 88.722_84 {
        return f32::INFINITY;
    }
    if x < -30.0 {
        return -1.0;
    }
    let n = (x * LOG2E).round_ties_even();
    if n == 0.0 {
        // (x, not the polynomial, at ±0, to keep the sign of a zero.)
        return if x == 0.0 { x } else { expm1_poly(x) };
    }
    let p = expm1_poly(exp_reduce(x, n));
    let ni = n as i32;
    if ni > 24 {
        let n1 = ni >> 1;
        return (p + 1.0) * exp2i(n1) * exp2i(ni - n1);
    }
    let s = exp2i(ni);
    s * p + (s - 1.0)
}

/// The natural logarithm: Cephes' `logf` (x = m 2^e with m in [sqrt(1/2), sqrt(2)), a
/// polynomial in m - 1), within 1 ulp; subnormal inputs scaled first. WGSL: `lamina_log`.
pub fn log(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    let mut bits = x.to_bits();
    let mut e = -126i32;
    if bits < 0x0080_0000 {
        bits = (x * 8_388_608.0).to_bits();
        e -= 23;
    }
    e += (bits >> 23) as i32;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    if m < std::f32::consts::FRAC_1_SQRT_2 {
        e -= 1;
        m = m + m - 1.0;
    } else {
        m -= 1.0;
    }
    let z = m * m;
    let mut y = ((((((((7.0376836292e-2 * m - 1.1514610310e-1) * m + 1.1676998740e-1) * m
        - 1.2420140846e-1)
        * m
        + 1.4249322787e-1)
        * m
        - 1.6668057665e-1)
        * m
        + 2.0000714765e-1)
        * m
        - 2.4999993993e-1)
        * m
        + 3.3333331174e-1)
        * m
        * z;
    let fe = e as f32;
    y -= 2.12194440e-4 * fe;
    y -= 0.5 * z;
    (m + y) + 0.693359375 * fe
}

/// log(1 + x), accurate near 0: `2 atanh(s)` with `s = x / (2 + x)` for |x| < 1/4, elsewhere
/// `log(u)` with u = 1 + x, corrected by the rounding of u. WGSL: `lamina_log1p`.
pub fn log1p(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x.abs() < 0.25 {
        let s = x / (2.0 + x);
        let z = s * s;
        return 2.0
            * s
            * (1.0 + z * (0.333_333_34 + z * (0.2 + z * (0.142_857_15 + z * 0.111_111_11))));
    }
    if x == -1.0 {
        return f32::NEG_INFINITY;
    }
    if x < -1.0 {
        return f32::NAN;
    }
    if x.is_infinite() {
        return x;
    }
    let u = 1.0 + x;
    log(u) - ((u - 1.0) - x) / u
}

/// NaN-propagating maximum, as NumPy's `maximum`. WGSL: `lamina_max`.
#[inline(always)]
pub fn fmax_nan(a: f32, b: f32) -> f32 {
    // A NaN `a` is kept; a NaN `b` fails the comparison and is taken. Branch-free, so loops
    // over it vectorize.
    if (a >= b) | a.is_nan() { a } else { b }
}

/// NaN-propagating minimum, as NumPy's `minimum`. WGSL: `lamina_min`.
#[inline(always)]
pub fn fmin_nan(a: f32, b: f32) -> f32 {
    if (a <= b) | a.is_nan() { a } else { b }
}

/// -1, 0 or 1 by the sign of `x`, keeping NaN (and the sign of a zero). WGSL: `lamina_sign_nan`.
#[inline(always)]
pub fn sign(x: f32) -> f32 {
    if x.is_nan() {
        x
    } else if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// `floor_divide` of floats as Keras computes it (JAX's `_float_divmod`, after CPython):
/// `round((a - fmod(a, b)) / b)`, less one where the remainder's sign differs from `b`'s, so
/// that `1 // 0.1` is 9 as in Python; `x // 0` is ±inf (NaN for `0 // 0`). WGSL:
/// `lamina_floor_div_f32`.
#[inline(always)]
pub fn floor_div_f32(a: f32, b: f32) -> f32 {
    let m = a % b;
    let corrected = if b == 0.0 { a } else { a - m };
    let div = corrected / b;
    let sign = |v: f32| {
        if v > 0.0 {
            1.0
        } else if v < 0.0 {
            -1.0
        } else {
            v
        }
    };
    #[allow(clippy::float_cmp)]
    let adjust = m != 0.0 && sign(b) != sign(m);
    let div = if adjust { div - 1.0 } else { div };
    div.round()
}

/// `mod` of floats as Keras computes it (JAX's `remainder`): `fmod(a, b)`, plus `b` where it
/// is non-zero and its sign differs from `b`'s; a zero remainder keeps the sign of `a`, and
/// `x % 0` is NaN. WGSL: `lamina_mod_f32`.
#[inline(always)]
pub fn mod_f32(a: f32, b: f32) -> f32 {
    let m = a % b;
    if m != 0.0 && ((m < 0.0) != (b < 0.0)) {
        m + b
    } else {
        m
    }
}

/// `arctan2(a, b)` in f64 precision, rounded to f32. WGSL: `lamina_atan2` (the driver's atan2
/// with C's special cases).
#[inline(always)]
pub fn atan2_f32(a: f32, b: f32) -> f32 {
    (a as f64).atan2(b as f64) as f32
}

/// Python's floor division of signed integers (0 where `b` is 0, wrapping on overflow). WGSL:
/// `lamina_floor_div_i32`.
#[inline(always)]
pub fn floor_div_i32(a: i32, b: i32) -> i32 {
    if b == 0 {
        return 0;
    }
    let q = a.wrapping_div(b);
    if (a.wrapping_rem(b) != 0) && ((a < 0) != (b < 0)) {
        q.wrapping_sub(1)
    } else {
        q
    }
}

/// Python's `%` of signed integers: the sign of the divisor (0 where `b` is 0). WGSL:
/// `lamina_mod_i32`.
#[inline(always)]
pub fn mod_i32(a: i32, b: i32) -> i32 {
    if b == 0 {
        return 0;
    }
    let r = a.wrapping_rem(b);
    if r != 0 && ((r < 0) != (b < 0)) {
        r + b
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> i64 {
        if a == b || (a.is_nan() && b.is_nan()) {
            return 0;
        }
        // Distance on the ordered integer line of floats (so that -0 and 0 are neighbours).
        let key = |v: f32| {
            let i = v.to_bits() as i32 as i64;
            if i < 0 { i64::from(i32::MIN) - i } else { i }
        };
        (key(a) - key(b)).abs()
    }

    /// The worst ulp error of `f` against `want` (f64) over a sweep of [lo, hi).
    fn worst(f: fn(f32) -> f32, want: fn(f64) -> f64, lo: f32, hi: f32, step: f32) -> i64 {
        let mut w = 0;
        let mut x = lo;
        while x < hi {
            let e = ulps(f(x), want(x as f64) as f32);
            assert!(e < 1000, "{x}: got {}, want {}", f(x), want(x as f64));
            w = w.max(e);
            x += step;
        }
        w
    }

    #[test]
    fn exp_is_within_a_few_ulp_of_libm() {
        assert!(worst(exp, f64::exp, -87.0, 88.0, 0.0137) <= 2);
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

    #[test]
    fn erf_is_within_two_ulp_of_libm() {
        assert!(worst(erf, libm::erf, -7.0, 7.0, 0.000731) <= 2);
        assert!(worst(erf, libm::erf, -1e-3, 1e-3, 1.37e-7) <= 2);
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
        assert_eq!(erf(-0.0).to_bits(), (-0.0f32).to_bits());
        assert!(erf(f32::NAN).is_nan());
        assert_eq!(erf(1e-40), libm::erf(1e-40f32 as f64) as f32);
    }

    #[test]
    fn expm1_is_within_two_ulp_of_libm() {
        assert!(worst(expm1, f64::exp_m1, -40.0, 88.7, 0.00731) <= 2);
        assert!(worst(expm1, f64::exp_m1, -1e-3, 1e-3, 1.37e-7) <= 1);
        assert_eq!(expm1(f32::INFINITY), f32::INFINITY);
        assert_eq!(expm1(89.0), f32::INFINITY);
        assert_eq!(expm1(f32::NEG_INFINITY), -1.0);
        assert_eq!(expm1(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(expm1(1e-7), (1e-7f32 as f64).exp_m1() as f32);
    }

    #[test]
    fn log_and_log1p_are_within_two_ulp_of_libm() {
        assert!(worst(log, f64::ln, 1e-6, 10.0, 0.000137) <= 1);
        let mut x = 1e-38f32;
        while x < 3e38 {
            assert!(ulps(log(x), (x as f64).ln() as f32) <= 1, "log({x})");
            x *= 1.0137;
        }
        assert!(ulps(log(1e-42), (1e-42f32 as f64).ln() as f32) <= 1);
        assert_eq!(log(1.0), 0.0);
        assert_eq!(log(0.0), f32::NEG_INFINITY);
        assert_eq!(log(-0.0), f32::NEG_INFINITY);
        assert!(log(-1.0).is_nan());
        assert_eq!(log(f32::INFINITY), f32::INFINITY);
        assert!(worst(log1p, f64::ln_1p, -0.999, 20.0, 0.000173) <= 2);
        assert!(worst(log1p, f64::ln_1p, -1e-3, 1e-3, 1.37e-7) <= 2);
        assert_eq!(log1p(-1.0), f32::NEG_INFINITY);
        assert!(log1p(-2.0).is_nan());
        assert_eq!(log1p(f32::INFINITY), f32::INFINITY);
        assert_eq!(log1p(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(log1p(3e38), (3e38f64).ln_1p() as f32);
    }
}
