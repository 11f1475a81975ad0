// Helper functions every generated kernel may call. Lamina's GPU backend appends this file to
// each kernel; it is a complete WGSL module on its own, validated by naga in a test.
//
// Where WGSL lets a driver assume there is no NaN or infinity, these helpers decide by tests on
// the bits, so that the GPU gives what the CPU interpreter (NumPy's semantics) gives.

// e^r for r in [-ln2/2, ln2/2]: Cephes' degree-5 polynomial, as the CPU's `exp`.
fn lamina_exp_poly(r: f32) -> f32 {
    var p = 1.9875691e-4f;
    p = fma(p, r, 1.3981999e-3f);
    p = fma(p, r, 8.333452e-3f);
    p = fma(p, r, 4.1665796e-2f);
    p = fma(p, r, 1.6666665e-1f);
    p = fma(p, r, 5.0000001e-1f);
    return fma(p, r * r, r) + 1.0f;
}
// 2^n for n in [-126, 127], through the exponent bits.
fn lamina_exp2i(n: i32) -> f32 {
    return bitcast<f32>(u32(n + 127i) << 23u);
}
// x - n ln2 in two parts (Cody and Waite), n = round(x / ln2).
fn lamina_exp_reduce(x: f32, n: f32) -> f32 {
    return fma(n, 2.1219444e-4f, fma(-n, 0.6933594f, x));
}
// e^x for x known to give a normal result (0 to 87 here), as the CPU's `exp_normal`.
fn lamina_exp_normal(x: f32) -> f32 {
    let n = round(x * 1.44269502f);
    return lamina_exp_poly(lamina_exp_reduce(x, n)) * lamina_exp2i(i32(n));
}
// e^x, the CPU's algorithm (opdef/scalar.rs): overflows to +inf above 88.72, subnormal results
// down to 0 below -103.97 (where the driver keeps subnormals).
fn lamina_exp(x: f32) -> f32 {
    if (lamina_isnan(x)) { return x; }
    if (x > 88.72284f) { return bitcast<f32>(0x7f800000u); }
    if (x < -103.97208f) { return 0.0f; }
    let xc = min(x, 88.72284f);
    let n = round(xc * 1.44269502f);
    let ni = i32(n);
    let n1 = ni >> 1u;
    return lamina_exp_poly(lamina_exp_reduce(xc, n)) * lamina_exp2i(n1) * lamina_exp2i(ni - n1);
}
// tanh, the CPU's algorithm: Cephes' odd polynomial below 0.625, 1 - 2/(e^{2|x|} + 1) above.
fn lamina_tanh(x: f32) -> f32 {
    if (lamina_isnan(x) || x == 0.0f) { return x; }
    let a = abs(x);
    if (a < 0.625f) {
        let z = x * x;
        var p = fma(-5.7049887e-3f, z, 2.0639089e-2f);
        p = fma(p, z, -5.3739718e-2f);
        p = fma(p, z, 1.3331443e-1f);
        p = fma(p, z, -3.3333286e-1f);
        return fma(p * z, x, x);
    }
    let e = lamina_exp_normal(2.0f * min(a, 20.0f));
    let t = 1.0f - 2.0f / (e + 1.0f);
    return select(t, -t, x < 0.0f);
}
// The logistic sigmoid 1 / (1 + e^-x), the CPU's algorithm.
fn lamina_sigmoid(x: f32) -> f32 {
    if (lamina_isnan(x)) { return x; }
    return 1.0f / (1.0f + lamina_exp(-x));
}
// erfc(|x|) for |x| in [0.84375, 6): FreeBSD's erff (as musl's and the libm crate's), with
// lamina_exp for expf.
fn lamina_erfc_mid(a: f32) -> f32 {
    if (a < 1.25f) {
        let s = a - 1.0f;
        let p = -2.3621185683e-03f + s * (4.1485610604e-01f + s * (-3.7220788002e-01f
            + s * (3.1834661961e-01f + s * (-1.1089469492e-01f + s * (3.5478305072e-02f
            + s * -2.1663755178e-03f)))));
        let q = 1.0f + s * (1.0642088205e-01f + s * (5.4039794207e-01f + s * (7.1828655899e-02f
            + s * (1.2617121637e-01f + s * (1.3637083583e-02f + s * 1.1984500103e-02f)))));
        return 1.0f - 8.4506291151e-01f - p / q;
    }
    let s = 1.0f / (a * a);
    var r: f32;
    var big_s: f32;
    if (bitcast<u32>(a) < 0x4036db6du) { // 1 / 0.35
        r = -9.8649440333e-03f + s * (-6.9385856390e-01f + s * (-1.0558626175e+01f
            + s * (-6.2375331879e+01f + s * (-1.6239666748e+02f + s * (-1.8460508728e+02f
            + s * (-8.1287437439e+01f + s * -9.8143291473e+00f))))));
        big_s = 1.0f + s * (1.9651271820e+01f + s * (1.3765776062e+02f + s * (4.3456588745e+02f
            + s * (6.4538726807e+02f + s * (4.2900814819e+02f + s * (1.0863500214e+02f
            + s * (6.5702495575e+00f + s * -6.0424413532e-02f)))))));
    } else {
        r = -9.8649431020e-03f + s * (-7.9928326607e-01f + s * (-1.7757955551e+01f
            + s * (-1.6063638306e+02f + s * (-6.3756646729e+02f + s * (-1.0250950928e+03f
            + s * -4.8351919556e+02f)))));
        big_s = 1.0f + s * (3.0338060379e+01f + s * (3.2579251099e+02f + s * (1.5367296143e+03f
            + s * (3.1998581543e+03f + s * (2.5530502930e+03f + s * (4.7452853394e+02f
            + s * -2.2440952301e+01f))))));
    }
    let z = bitcast<f32>(bitcast<u32>(a) & 0xffffe000u);
    return lamina_exp(-z * z - 0.5625f) * lamina_exp((z - a) * (z + a) + r / big_s) / a;
}
// erfc, the CPU's algorithm: t e^(-x² + P(t)), t = 1 / (1 + |x| / 2), with Numerical Recipes'
// Chebyshev fit P, -x² carried in two parts; 2 - erfc(-x) below 0.
fn lamina_erfc(x: f32) -> f32 {
    if (lamina_isnan(x)) { return x; }
    let a = abs(x);
    let t = 1.0f / fma(0.5f, a, 1.0f);
    var p = 0.17087277f;
    p = fma(p, t, -0.82215223f);
    p = fma(p, t, 1.4885159f);
    p = fma(p, t, -1.135204f);
    p = fma(p, t, 0.27886807f);
    p = fma(p, t, -0.18628806f);
    p = fma(p, t, 0.09678418f);
    p = fma(p, t, 0.37409196f);
    p = fma(p, t, 1.0000237f);
    p = fma(p, t, -1.2655122f);
    var y = 0.0f;
    if (a < 11.0f) {
        let h = a * a;
        let tail = p - fma(a, a, -h);
        let s = tail - h;
        if (s >= -103.97208f) {
            let n = round(s * 1.44269502f);
            let ni = i32(n);
            let n1 = ni >> 1u;
            let e = lamina_exp_poly(lamina_exp_reduce(-h, n) + tail);
            y = t * (e * lamina_exp2i(n1) * lamina_exp2i(ni - n1));
        }
    }
    return select(y, 2.0f - y, x < 0.0f);
}
// The Gauss error function, the CPU's algorithm: FreeBSD's erff with lamina_exp.
fn lamina_erf(x: f32) -> f32 {
    if (lamina_isnan(x)) { return x; }
    let a = abs(x);
    if (a < 0.84375f) {
        // Below 2^-28, x (1 + 2/sqrt(pi) - 1) without underflow.
        if (a < 3.7252903e-9f) { return 0.125f * (8.0f * x + 1.0270333290e+00f * x); }
        let z = x * x;
        let r = 1.2837916613e-01f + z * (-3.2504209876e-01f + z * (-2.8481749818e-02f
            + z * (-5.7702702470e-03f + z * -2.3763017452e-05f)));
        let s = 1.0f + z * (3.9791721106e-01f + z * (6.5022252500e-02f + z * (5.0813062117e-03f
            + z * (1.3249473704e-04f + z * -3.9602282413e-06f))));
        return x + x * (r / s);
    }
    var y = 1.0f;
    if (a < 6.0f) { y = 1.0f - lamina_erfc_mid(a); }
    return select(y, -y, x < 0.0f);
}
fn lamina_pow(a: f32, b: f32) -> f32 {
    if (b == 0.0f || a == 1.0f) { return 1.0f; }
    if (lamina_isnan(a) || lamina_isnan(b)) { return bitcast<f32>(0x7fc00000u); }
    // C's pow(-1, +-inf) is 1.
    if (abs(a) == 1.0f && lamina_isinf(b)) { return 1.0f; }
    // Small integer exponents by repeated squaring: exact where the result is an integer
    // (so integer tensors raised to integer powers round to the right integer).
    if (floor(b) == b && abs(b) <= 64.0f) {
        var e = u32(abs(b));
        var base = a;
        var acc = 1.0f;
        for (var i = 0u; i < 7u; i = i + 1u) {
            if ((e & 1u) != 0u) { acc = acc * base; }
            e = e >> 1u;
            base = base * base;
        }
        return select(acc, 1.0f / acc, b < 0.0f);
    }
    if (a == 0.0f) { return select(0.0f, bitcast<f32>(0x7f800000u), b < 0.0f); }
    if (lamina_isinf(a) && a < 0.0f) {
        // C's pow(-inf, b): an odd integer b keeps the sign.
        let odd = floor(b) == b && abs(b % 2.0f) == 1.0f;
        let m = select(bitcast<f32>(0x7f800000u), 0.0f, b < 0.0f);
        return select(m, -m, odd);
    }
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
    if (lamina_isnan(x) || x == 0.0f) { return x; }
    if (abs(x) > 1.0f) { return bitcast<f32>(0x7fc00000u); }
    return atan2(x, sqrt((1.0f - x) * (1.0f + x)));
}
fn lamina_acos(x: f32) -> f32 {
    if (lamina_isnan(x)) { return x; }
    if (abs(x) > 1.0f) { return bitcast<f32>(0x7fc00000u); }
    return atan2(sqrt((1.0f - x) * (1.0f + x)), x);
}
fn lamina_atan(x: f32) -> f32 {
    // NaN stays NaN and zeros keep their sign, which WGSL leaves to the driver.
    if (lamina_isnan(x) || x == 0.0f) { return x; }
    return atan2(x, 1.0f);
}
fn lamina_sinh(x: f32) -> f32 {
    if (x == 0.0f) { return x; }
    return sinh(x);
}
fn lamina_asinh(x: f32) -> f32 {
    if (x == 0.0f) { return x; }
    return asinh(x);
}
fn lamina_atanh(x: f32) -> f32 {
    if (x == 0.0f) { return x; }
    return atanh(x);
}
// e^r - 1 for |r| <= ln2/2: Taylor's polynomial of degree 8.
fn lamina_expm1_poly(r: f32) -> f32 {
    return r + r * r * (0.5f + r * (1.6666667e-1f + r * (4.1666668e-2f + r * (8.3333338e-3f
        + r * (1.3888889e-3f + r * (1.9841270e-4f + r * 2.4801587e-5f))))));
}
// e^x - 1, the CPU's algorithm: x = n ln2 + r, then 2^n (e^r - 1) + (2^n - 1), exact in its
// last step for small n, so there is no cancellation near 0.
fn lamina_expm1(x: f32) -> f32 {
    if (lamina_isnan(x)) { return x; }
    if (x > 88.72284f) { return bitcast<f32>(0x7f800000u); }
    if (x < -30.0f) { return -1.0f; }
    let n = round(x * 1.44269502f);
    if (n == 0.0f) { return select(lamina_expm1_poly(x), x, x == 0.0f); }
    let p = lamina_expm1_poly(lamina_exp_reduce(x, n));
    let ni = i32(n);
    if (ni > 24i) {
        let n1 = ni >> 1u;
        return (p + 1.0f) * lamina_exp2i(n1) * lamina_exp2i(ni - n1);
    }
    let s = lamina_exp2i(ni);
    return s * p + (s - 1.0f);
}
// The natural logarithm, the CPU's algorithm: Cephes' logf (x = m 2^e, m in [sqrt(1/2),
// sqrt(2)), a degree-9 polynomial in m - 1).
fn lamina_log(x: f32) -> f32 {
    if (lamina_isnan(x)) { return x; }
    if (x < 0.0f) { return bitcast<f32>(0x7fc00000u); }
    if (x == 0.0f) { return bitcast<f32>(0xff800000u); }
    if (lamina_isinf(x)) { return x; }
    var bits = bitcast<u32>(x);
    var e = -126i;
    if (bits < 0x00800000u) {
        bits = bitcast<u32>(x * 8388608.0f);
        e = e - 23i;
    }
    e = e + i32(bits >> 23u);
    var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f000000u);
    if (m < 0.70710677f) {
        e = e - 1i;
        m = m + m - 1.0f;
    } else {
        m = m - 1.0f;
    }
    let z = m * m;
    var y = ((((((((7.0376836292e-2f * m - 1.1514610310e-1f) * m + 1.1676998740e-1f) * m
        - 1.2420140846e-1f) * m + 1.4249322787e-1f) * m - 1.6668057665e-1f) * m
        + 2.0000714765e-1f) * m - 2.4999993993e-1f) * m + 3.3333331174e-1f) * m * z;
    let fe = f32(e);
    y = y - 2.12194440e-4f * fe;
    y = y - 0.5f * z;
    return (m + y) + 0.693359375f * fe;
}
// log(1 + x), the CPU's algorithm: 2 atanh(s) with s = x / (2 + x) near 0, where log(1 + x)
// loses the digits of x; elsewhere log(u), u = 1 + x, corrected by the rounding of u.
fn lamina_log1p(x: f32) -> f32 {
    if (lamina_isnan(x)) { return x; }
    if (abs(x) < 0.25f) {
        let s = x / (2.0f + x);
        let z = s * s;
        return 2.0f * s * (1.0f + z * (0.33333334f + z * (0.2f + z * (0.14285715f + z * 0.11111111f))));
    }
    if (x == -1.0f) { return bitcast<f32>(0xff800000u); }
    if (x < -1.0f) { return bitcast<f32>(0x7fc00000u); }
    if (lamina_isinf(x)) { return x; }
    let u = 1.0f + x;
    return lamina_log(u) - ((u - 1.0f) - x) / u;
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
    // A zero remainder has the sign of a, as C's fmod.
    return select(r, bitcast<f32>(bitcast<u32>(a) & 0x80000000u), r == 0.0f);
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
