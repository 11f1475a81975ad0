//! WGSL types, literals, loads and stores, and the spellings of the primitive ops, read from
//! the op table (`crate::opdef`), which holds each op's one definition for both backends.

use crate::opdef;
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

/// One unary op applied to `x` of dtype `d`, as the op table (`opdef`) spells it. A dtype the
/// op does not take (which the graph's dtype rules never produce) gets the f32 spelling, which
/// WGSL validation then rejects.
pub fn unary(op: UnaryOp, d: DType, x: &str) -> String {
    let def = opdef::unary(op);
    let template = def
        .wgsl(d)
        .or_else(|| def.wgsl(DType::F32))
        .or_else(|| def.wgsl(DType::Bool))
        .unwrap_or("{x}");
    opdef::render(template, &[("x", x)])
}

/// One binary op on `a` and `b` of dtype `d`, as the op table (`opdef`) spells it (with the
/// f32 spelling for a dtype the op does not take, as [`unary`]).
pub fn binary(op: BinaryOp, d: DType, a: &str, b: &str) -> String {
    let def = opdef::binary(op);
    let template = def
        .wgsl(d)
        .or_else(|| def.wgsl(DType::F32))
        .or_else(|| def.wgsl(DType::Bool))
        .unwrap_or("{a}");
    opdef::render(template, &[("a", a), ("b", b)])
}

/// A conversion between dtypes with the CPU interpreter's semantics (`opdef::Scalar`).
pub fn cast(from: DType, to: DType, x: &str) -> String {
    opdef::render(opdef::cast_wgsl(from, to), &[("x", x)])
}
