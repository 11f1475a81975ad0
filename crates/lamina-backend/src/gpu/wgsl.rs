//! WGSL spellings of the primitive ops, one line each, and the helper functions kernels share.

use lamina_graph::DType;
use lamina_graph::op::{BinaryOp, UnaryOp};

/// The WGSL type of a value in registers.
pub fn reg_type(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::I32 => "i32",
        DType::U32 => "u32",
        DType::Bool => "bool",
    }
}

/// The WGSL element type of a storage buffer (bools are stored as `u32` 0 or 1).
pub fn store_type(d: DType) -> &'static str {
    match d {
        DType::Bool => "u32",
        other => reg_type(other),
    }
}

/// Converts a loaded storage word to a register value.
pub fn load(d: DType, e: &str) -> String {
    match d {
        DType::Bool => format!("({e} != 0u)"),
        _ => e.to_string(),
    }
}

/// Converts a register value to a storage word.
pub fn store(d: DType, e: &str) -> String {
    match d {
        DType::Bool => format!("select(0u, 1u, {e})"),
        _ => e.to_string(),
    }
}

/// Prints a float so that WGSL reads back exactly the same f32 (bit pattern for non-finite).
pub fn f32_lit(v: f32) -> String {
    if v.is_finite() {
        let s = format!("{v:?}");
        if s.contains('.') || s.contains('e') {
            format!("{s}f")
        } else {
            format!("{s}.0f")
        }
    } else {
        format!("bitcast<f32>({}u)", v.to_bits())
    }
}

/// A literal of a dtype from an f64 value.
pub fn literal(d: DType, v: f64) -> String {
    match d {
        DType::F32 => f32_lit(v as f32),
        DType::I32 => format!("i32({})", v as i32),
        DType::U32 => format!("{}u", v as u32),
        DType::Bool => (if v != 0.0 { "true" } else { "false" }).to_string(),
    }
}

/// One unary op applied to `x` of dtype `d`.
pub fn unary(op: UnaryOp, d: DType, x: &str) -> String {
    match (op, d) {
        (UnaryOp::Neg, DType::U32) => format!("(0u - {x})"),
        (UnaryOp::Neg, _) => format!("(-{x})"),
        (UnaryOp::Abs, DType::U32) => x.to_string(),
        (UnaryOp::Abs, _) => format!("abs({x})"),
        (UnaryOp::Sign, DType::U32) => format!("select(0u, 1u, {x} > 0u)"),
        (UnaryOp::Sign, DType::F32) => format!("lamina_sign_nan({x})"),
        (UnaryOp::Sign, _) => format!("sign({x})"),
        (UnaryOp::Exp, _) => format!("exp({x})"),
        (UnaryOp::Log, _) => format!("log({x})"),
        (UnaryOp::Sqrt, _) => format!("sqrt({x})"),
        (UnaryOp::Rsqrt, _) => format!("(1.0f / sqrt({x}))"),
        (UnaryOp::Recip, _) => format!("(1.0f / {x})"),
        (UnaryOp::Tanh, _) => format!("lamina_tanh({x})"),
        (UnaryOp::Sigmoid, _) => format!("(1.0f / (1.0f + exp(-{x})))"),
        (UnaryOp::Sin, _) => format!("sin({x})"),
        (UnaryOp::Cos, _) => format!("cos({x})"),
        (UnaryOp::Erf, _) => format!("lamina_erf({x})"),
        (UnaryOp::Floor, _) => format!("floor({x})"),
        (UnaryOp::Ceil, _) => format!("ceil({x})"),
        (UnaryOp::Round, _) => format!("round({x})"),
        (UnaryOp::Not, _) => format!("(!{x})"),
        (UnaryOp::Tan, _) => format!("tan({x})"),
        (UnaryOp::Asin, _) => format!("lamina_asin({x})"),
        (UnaryOp::Acos, _) => format!("lamina_acos({x})"),
        (UnaryOp::Atan, _) => format!("atan({x})"),
        (UnaryOp::Sinh, _) => format!("sinh({x})"),
        (UnaryOp::Cosh, _) => format!("cosh({x})"),
        (UnaryOp::Asinh, _) => format!("asinh({x})"),
        (UnaryOp::Acosh, _) => format!("acosh({x})"),
        (UnaryOp::Atanh, _) => format!("atanh({x})"),
        (UnaryOp::Expm1, _) => format!("lamina_expm1({x})"),
        (UnaryOp::Log1p, _) => format!("lamina_log1p({x})"),
        (UnaryOp::Log2, _) => format!("log2({x})"),
        (UnaryOp::Log10, _) => format!("(log({x}) * 0.4342944819032518f)"),
        (UnaryOp::IsNan, _) => format!("lamina_isnan({x})"),
        (UnaryOp::IsInf, _) => format!("lamina_isinf({x})"),
        (UnaryOp::IsFinite, _) => format!("lamina_isfinite({x})"),
    }
}

/// One binary op on `a` and `b` of dtype `d`.
pub fn binary(op: BinaryOp, d: DType, a: &str, b: &str) -> String {
    let int = matches!(d, DType::I32 | DType::U32);
    let float = d == DType::F32;
    match op {
        BinaryOp::Add => format!("({a} + {b})"),
        BinaryOp::Sub => format!("({a} - {b})"),
        BinaryOp::Mul => format!("({a} * {b})"),
        BinaryOp::Div if int => format!(
            "select({a} / {b}, {}, {b} == {})",
            literal(d, 0.0),
            literal(d, 0.0)
        ),
        BinaryOp::Div => format!("({a} / {b})"),
        BinaryOp::Pow => format!("lamina_pow({a}, {b})"),
        // Floats: NaN handled by bit tests, since WGSL lets drivers assume there is none.
        BinaryOp::Max if float => format!("lamina_max({a}, {b})"),
        BinaryOp::Min if float => format!("lamina_min({a}, {b})"),
        BinaryOp::Max => format!("max({a}, {b})"),
        BinaryOp::Min => format!("min({a}, {b})"),
        BinaryOp::Less if float => format!("lamina_less({a}, {b})"),
        BinaryOp::LessEqual if float => format!("lamina_less_equal({a}, {b})"),
        BinaryOp::Greater if float => format!("lamina_less({b}, {a})"),
        BinaryOp::GreaterEqual if float => format!("lamina_less_equal({b}, {a})"),
        BinaryOp::Equal if float => format!("lamina_equal({a}, {b})"),
        BinaryOp::NotEqual if float => format!("(!lamina_equal({a}, {b}))"),
        BinaryOp::Less => format!("({a} < {b})"),
        BinaryOp::LessEqual => format!("({a} <= {b})"),
        BinaryOp::Greater => format!("({a} > {b})"),
        BinaryOp::GreaterEqual => format!("({a} >= {b})"),
        BinaryOp::Equal => format!("({a} == {b})"),
        BinaryOp::NotEqual => format!("({a} != {b})"),
        BinaryOp::And => format!("({a} && {b})"),
        BinaryOp::Or => format!("({a} || {b})"),
        BinaryOp::Atan2 => format!("atan2({a}, {b})"),
        BinaryOp::FloorDiv | BinaryOp::Mod => {
            let which = if op == BinaryOp::FloorDiv {
                "floor_div"
            } else {
                "mod"
            };
            format!("lamina_{which}_{}({a}, {b})", reg_type(d))
        }
    }
}

/// A conversion between dtypes with the CPU interpreter's semantics.
pub fn cast(from: DType, to: DType, x: &str) -> String {
    match (from, to) {
        (a, b) if a == b => x.to_string(),
        (DType::Bool, t) => format!("select({}, {}, {x})", literal(t, 0.0), literal(t, 1.0)),
        (DType::F32, DType::Bool) => format!("(!lamina_equal({x}, 0.0f))"),
        (f, DType::Bool) => format!("({x} != {})", literal(f, 0.0)),
        (DType::F32, DType::I32) => format!("lamina_f32_to_i32({x})"),
        (DType::F32, DType::U32) => format!("lamina_f32_to_u32({x})"),
        (_, t) => format!("{}({x})", reg_type(t)),
    }
}

/// Helper functions every kernel may call: a tanh safe for large inputs, erf, and a pow that
/// follows `powf` for negative bases and zero.
pub const PRELUDE: &str = "\
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
    return a - b * trunc(a / b);
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
";
