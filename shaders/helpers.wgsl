// Helper functions every generated kernel may call. Lamina's GPU backend appends this file to
// each kernel; it is a complete WGSL module on its own, validated by naga in a test.
//
// Where WGSL lets a driver assume there is no NaN or infinity, these helpers decide by tests on
// the bits, so that the GPU gives what the CPU interpreter (NumPy's semantics) gives.

fn lamina_tanh(x: f32) -> f32 {
    if (abs(x) > 15.0f) { return sign(x); }
    return tanh(x);
}
fn lamina_erf(x: f32) -> f32 {
    // Abramowitz and Stegun 7.1.26 refined: |error| < 1.2e-7.
    let z = abs(x);
    let t = 1.0f / (1.0f + 0.5f * z);
    let y = t * exp(-z * z - 1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f
        + t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f
        + t * (-0.82215223f + t * 0.17087277f)))))))));
    return select(1.0f - y, y - 1.0f, x < 0.0f);
}
fn lamina_pow(a: f32, b: f32) -> f32 {
    if (b == 0.0f || a == 1.0f) { return 1.0f; }
    if (lamina_isnan(a) || lamina_isnan(b)) { return bitcast<f32>(0x7fc00000u); }
    if (a == 0.0f) { return select(0.0f, bitcast<f32>(0x7f800000u), b < 0.0f); }
    if (a < 0.0f) {
        if (floor(b) != b) { return bitcast<f32>(0x7fc00000u); }
        let m = pow(-a, b);
        return select(m, -m, abs(b % 2.0f) == 1.0f);
    }
    return pow(a, b);
}
fn lamina_isnan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}
fn lamina_max(a: f32, b: f32) -> f32 {
    // NumPy's maximum: NaN wins; else the larger, `a` on ties.
    if (lamina_isnan(a)) { return a; }
    if (lamina_isnan(b)) { return b; }
    return select(b, a, a >= b);
}
fn lamina_min(a: f32, b: f32) -> f32 {
    if (lamina_isnan(a)) { return a; }
    if (lamina_isnan(b)) { return b; }
    return select(b, a, a <= b);
}
fn lamina_less(a: f32, b: f32) -> bool {
    return !lamina_isnan(a) && !lamina_isnan(b) && a < b;
}
fn lamina_less_equal(a: f32, b: f32) -> bool {
    return !lamina_isnan(a) && !lamina_isnan(b) && a <= b;
}
fn lamina_equal(a: f32, b: f32) -> bool {
    return !lamina_isnan(a) && !lamina_isnan(b) && a == b;
}
fn lamina_sign_nan(x: f32) -> f32 {
    if (lamina_isnan(x)) { return x; }
    return sign(x);
}
fn lamina_f32_to_i32(x: f32) -> i32 {
    // Rust's `as`: NaN is 0, out-of-range values saturate.
    if (lamina_isnan(x)) { return 0i; }
    if (x >= 2147483648.0f) { return 2147483647i; }
    if (x <= -2147483648.0f) { return -2147483647i - 1i; }
    return i32(x);
}
fn lamina_f32_to_u32(x: f32) -> u32 {
    if (lamina_isnan(x) || x <= 0.0f) { return 0u; }
    if (x >= 4294967296.0f) { return 4294967295u; }
    return u32(x);
}
fn lamina_isinf(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}
fn lamina_isfinite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}
fn lamina_argmax_better(v: f32, best: f32) -> bool {
    // The first NaN wins; -0.0 ranks below 0.0, as in Keras.
    if (lamina_isnan(best)) { return false; }
    if (lamina_isnan(v)) { return true; }
    return v > best || (v == best && bitcast<u32>(best) == 0x80000000u && bitcast<u32>(v) == 0u);
}
fn lamina_argmin_better(v: f32, best: f32) -> bool {
    if (lamina_isnan(best)) { return false; }
    if (lamina_isnan(v)) { return true; }
    return v < best || (v == best && bitcast<u32>(v) == 0x80000000u && bitcast<u32>(best) == 0u);
}
fn lamina_asin(x: f32) -> f32 {
    // Through atan2, which drivers implement to full precision (llvmpipe's asin is off by 1e-4).
    return atan2(x, sqrt((1.0f - x) * (1.0f + x)));
}
fn lamina_acos(x: f32) -> f32 {
    return atan2(sqrt((1.0f - x) * (1.0f + x)), x);
}
fn lamina_expm1(x: f32) -> f32 {
    // Taylor's series near 0, where exp(x) - 1 would cancel (and drivers' exp is only
    // accurate to a few ulp); exp(x) - 1 elsewhere.
    if (abs(x) < 0.5f) {
        let p = 1.0f + x * (0.5f + x * (1.6666667e-1f + x * (4.1666668e-2f + x * (8.3333338e-3f
            + x * (1.3888889e-3f + x * (1.9841270e-4f + x * (2.4801587e-5f + x * 2.7557319e-6f)))))));
        return x * p;
    }
    return exp(x) - 1.0f;
}
fn lamina_log1p(x: f32) -> f32 {
    // 2 atanh(s) with s = x / (2 + x) near 0, where log(1 + x) loses the digits of x (and
    // drivers' log is only accurate to 2^-21 absolute near 1); log(1 + x) elsewhere.
    if (abs(x) < 0.25f) {
        let s = x / (2.0f + x);
        let z = s * s;
        return 2.0f * s * (1.0f + z * (0.33333334f + z * (0.2f + z * (0.14285715f + z * 0.11111111f))));
    }
    return log(1.0f + x);
}
fn lamina_fmod(a: f32, b: f32) -> f32 {
    // C's fmod, with its special cases spelled out (WGSL's % leaves them to the driver).
    if (lamina_isnan(a) || lamina_isnan(b) || lamina_isinf(a) || b == 0.0f) {
        return bitcast<f32>(0x7fc00000u);
    }
    if (lamina_isinf(b)) { return a; }
    // a - q b with one rounding (exact for the true quotient); a quotient rounded up past an
    // integer flips the remainder's sign, and one step back mends it.
    let q = trunc(a / b);
    let r = fma(-q, b, a);
    if (r != 0.0f && ((r < 0.0f) != (a < 0.0f))) {
        return fma(-(q - sign(q)), b, a);
    }
    return r;
}
fn lamina_sign(v: f32) -> f32 {
    return select(select(v, -1.0f, v < 0.0f), 1.0f, v > 0.0f);
}
fn lamina_floor_div_f32(a: f32, b: f32) -> f32 {
    // Keras (JAX's _float_divmod, after CPython): so that 1 // 0.1 is 9.
    let m = lamina_fmod(a, b);
    let corrected = select(a - m, a, b == 0.0f);
    var div = corrected / b;
    if (b == 0.0f) {
        let inf = bitcast<f32>(0x7f800000u);
        let negative = (a < 0.0f) != ((bitcast<u32>(b) & 0x80000000u) != 0u);
        div = select(select(inf, -inf, negative), bitcast<f32>(0x7fc00000u), a == 0.0f || lamina_isnan(a));
    }
    if (m != 0.0f && lamina_sign(b) != lamina_sign(m)) { div = div - 1.0f; }
    return select(round(div), div, lamina_isinf(div) || lamina_isnan(div));
}
fn lamina_mod_f32(a: f32, b: f32) -> f32 {
    // Keras (JAX's remainder): a zero remainder keeps the sign of a.
    let m = lamina_fmod(a, b);
    if (m != 0.0f && ((m < 0.0f) != (b < 0.0f))) { return m + b; }
    return m;
}
fn lamina_floor_div_i32(a: i32, b: i32) -> i32 {
    if (b == 0i) { return 0i; }
    let q = a / b;
    let r = a - q * b;
    if (r != 0i && ((r < 0i) != (b < 0i))) { return q - 1i; }
    return q;
}
fn lamina_mod_i32(a: i32, b: i32) -> i32 {
    if (b == 0i) { return 0i; }
    let r = a % b;
    if (r != 0i && ((r < 0i) != (b < 0i))) { return r + b; }
    return r;
}
fn lamina_floor_div_u32(a: u32, b: u32) -> u32 {
    if (b == 0u) { return 0u; }
    return a / b;
}
fn lamina_mod_u32(a: u32, b: u32) -> u32 {
    if (b == 0u) { return 0u; }
    return a % b;
}
fn lamina_atan2(y: f32, x: f32) -> f32 {
    // C's atan2 for NaN, signed zeros and two infinities, which drivers leave undefined.
    let y_negative = (bitcast<u32>(y) & 0x80000000u) != 0u;
    if (lamina_isnan(y) || lamina_isnan(x)) { return bitcast<f32>(0x7fc00000u); }
    if (y == 0.0f) {
        if (x < 0.0f || (x == 0.0f && (bitcast<u32>(x) & 0x80000000u) != 0u)) {
            return select(3.14159274f, -3.14159274f, y_negative);
        }
        return y;
    }
    if (lamina_isinf(y) && lamina_isinf(x)) {
        let angle = select(2.35619450f, 0.78539819f, x > 0.0f);
        return select(angle, -angle, y_negative);
    }
    return atan2(y, x);
}
