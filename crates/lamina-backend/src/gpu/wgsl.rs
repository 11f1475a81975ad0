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
        BinaryOp::Atan2 => format!("lamina_atan2({a}, {b})"),
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

/// Helper functions every kernel may call (`shaders/helpers.wgsl`): NaN-aware comparisons,
/// max/min and casts, a tanh safe for large inputs, erf, a pow that follows `powf`, expm1,
/// log1p, floor division and modulo.
pub const PRELUDE: &str = lamina_shaders::HELPERS;
