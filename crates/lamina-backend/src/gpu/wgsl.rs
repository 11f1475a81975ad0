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
    }
}

/// One binary op on `a` and `b` of dtype `d`.
pub fn binary(op: BinaryOp, d: DType, a: &str, b: &str) -> String {
    let int = matches!(d, DType::I32 | DType::U32);
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
        BinaryOp::Max => format!("max({a}, {b})"),
        BinaryOp::Min => format!("min({a}, {b})"),
        BinaryOp::Less => format!("({a} < {b})"),
        BinaryOp::LessEqual => format!("({a} <= {b})"),
        BinaryOp::Greater => format!("({a} > {b})"),
        BinaryOp::GreaterEqual => format!("({a} >= {b})"),
        BinaryOp::Equal => format!("({a} == {b})"),
        BinaryOp::NotEqual => format!("({a} != {b})"),
        BinaryOp::And => format!("({a} && {b})"),
        BinaryOp::Or => format!("({a} || {b})"),
    }
}

/// A conversion between dtypes with the CPU interpreter's semantics.
pub fn cast(from: DType, to: DType, x: &str) -> String {
    match (from, to) {
        (a, b) if a == b => x.to_string(),
        (DType::Bool, t) => format!("select({}, {}, {x})", literal(t, 0.0), literal(t, 1.0)),
        (f, DType::Bool) => format!("({x} != {})", literal(f, 0.0)),
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
    if (b == 0.0f) { return 1.0f; }
    if (a == 0.0f) { return select(0.0f, bitcast<f32>(0x7f800000u), b < 0.0f); }
    if (a < 0.0f) {
        if (floor(b) != b) { return bitcast<f32>(0x7fc00000u); }
        let m = pow(-a, b);
        return select(m, -m, abs(b % 2.0f) == 1.0f);
    }
    return pow(a, b);
}
";
