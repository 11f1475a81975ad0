//! The one definition of every elementwise primitive: for each `UnaryOp`, `BinaryOp` and cast,
//! and each dtype it takes, the CPU scalar function and the WGSL spelling. The CPU interpreter
//! (`cpu/elementwise.rs`, and the slice loops of `cpu/math.rs`, which call the same scalar
//! functions) and the WGSL renderer (`gpu/wgsl.rs`) both read this table, so the two backends
//! cannot drift apart.
//!
//! A WGSL spelling is a template: `{x}` (unary), `{a}` and `{b}` (binary) stand for the
//! operands. The helper functions a spelling needs are the `lamina_*` names it calls, found in
//! `shaders/helpers.wgsl` by `lamina_shaders::helpers_for`, with their own dependencies.
//!
//! To add an op: its line in the declaration in `lamina-graph`'s `op.rs`
//! (`for_each_unary_op!` or `for_each_binary_op!`, which makes its variant, name, dtype rule,
//! place in `UnaryOp::ALL` or `BinaryOp::ALL`, `Tensor` method and Keras class), then its arm in
//! [`unary`] or [`binary`] here (their `match`es are exhaustive, so the op does not compile
//! without it), its scalar function in [`scalar`] if it is more than an expression, and its
//! WGSL helper in `shaders/helpers.wgsl` if no builtin has the CPU's semantics. Rare ops may be
//! lowered to others by the graph's op methods (`lamina-graph/src/ops/`), which is the one place
//! where compositions live.
//!
//! Accuracy: exp, log, tanh, sigmoid, erf, expm1 and log1p are one f32 algorithm on both
//! backends (ported line for line into `helpers.wgsl`), agreeing to an ulp or two. The ops
//! spelled with a WGSL builtin (sin, cos, tan, atan, the hyperbolic and inverse functions,
//! log2, log10, pow, atan2, sqrt) use Rust's `std` on the CPU and the driver's function on the
//! GPU, which agree only to the driver's accuracy.

pub mod scalar;

use lamina_graph::DType;
use lamina_graph::op::{BinaryOp, UnaryOp};

/// A scalar function of one value of type `T`: to a value of the same type, or to a bool (the
/// `is*` tests).
#[derive(Clone, Copy, Debug)]
pub enum Fn1<T> {
    /// `T -> T`.
    Map(fn(T) -> T),
    /// `T -> bool`.
    Test(fn(T) -> bool),
}

/// A scalar function of two values of type `T`: to a value of the same type, or to a bool (the
/// comparisons).
#[derive(Clone, Copy, Debug)]
pub enum Fn2<T> {
    /// `(T, T) -> T`.
    Map(fn(T, T) -> T),
    /// `(T, T) -> bool`.
    Test(fn(T, T) -> bool),
}

/// An op for one dtype: the CPU's scalar function and the WGSL template that computes the same.
#[derive(Clone, Copy, Debug)]
pub struct Impl<F> {
    /// The CPU scalar function.
    pub cpu: F,
    /// The WGSL expression, with `{x}` (or `{a}`, `{b}`) for the operands.
    pub wgsl: &'static str,
}

/// The definition of a unary op: one [`Impl`] per dtype it takes (`None`: the op rejects it).
#[derive(Clone, Copy, Debug)]
pub struct UnaryDef {
    /// The op.
    pub op: UnaryOp,
    /// On f32.
    pub f32: Option<Impl<Fn1<f32>>>,
    /// On i32.
    pub i32: Option<Impl<Fn1<i32>>>,
    /// On u32.
    pub u32: Option<Impl<Fn1<u32>>>,
    /// On bool.
    pub bool: Option<Impl<Fn1<bool>>>,
}

/// The definition of a binary op: one [`Impl`] per dtype of its (equal) operand types.
#[derive(Clone, Copy, Debug)]
pub struct BinaryDef {
    /// The op.
    pub op: BinaryOp,
    /// On f32.
    pub f32: Option<Impl<Fn2<f32>>>,
    /// On i32.
    pub i32: Option<Impl<Fn2<i32>>>,
    /// On u32.
    pub u32: Option<Impl<Fn2<u32>>>,
    /// On bool.
    pub bool: Option<Impl<Fn2<bool>>>,
}

impl UnaryDef {
    /// The keras.ops name.
    pub fn name(&self) -> &'static str {
        self.op.name()
    }

    /// The WGSL template for operands of dtype `d`, if the op takes it.
    pub fn wgsl(&self, d: DType) -> Option<&'static str> {
        match d {
            DType::F32 => self.f32.map(|i| i.wgsl),
            DType::I32 => self.i32.map(|i| i.wgsl),
            DType::U32 => self.u32.map(|i| i.wgsl),
            DType::Bool => self.bool.map(|i| i.wgsl),
        }
    }

    /// The WGSL helpers that the spelling for dtype `d` calls directly.
    pub fn helpers(&self, d: DType) -> Vec<&'static str> {
        self.wgsl(d)
            .map_or_else(Vec::new, lamina_shaders::helpers_called)
    }
}

impl BinaryDef {
    /// The keras.ops name.
    pub fn name(&self) -> &'static str {
        self.op.name()
    }

    /// The WGSL template for operands of dtype `d`, if the op takes it.
    pub fn wgsl(&self, d: DType) -> Option<&'static str> {
        match d {
            DType::F32 => self.f32.map(|i| i.wgsl),
            DType::I32 => self.i32.map(|i| i.wgsl),
            DType::U32 => self.u32.map(|i| i.wgsl),
            DType::Bool => self.bool.map(|i| i.wgsl),
        }
    }

    /// The WGSL helpers that the spelling for dtype `d` calls directly.
    pub fn helpers(&self, d: DType) -> Vec<&'static str> {
        self.wgsl(d)
            .map_or_else(Vec::new, lamina_shaders::helpers_called)
    }
}

fn map1<T>(cpu: fn(T) -> T, wgsl: &'static str) -> Option<Impl<Fn1<T>>> {
    Some(Impl {
        cpu: Fn1::Map(cpu),
        wgsl,
    })
}

fn test1<T>(cpu: fn(T) -> bool, wgsl: &'static str) -> Option<Impl<Fn1<T>>> {
    Some(Impl {
        cpu: Fn1::Test(cpu),
        wgsl,
    })
}

fn map2<T>(cpu: fn(T, T) -> T, wgsl: &'static str) -> Option<Impl<Fn2<T>>> {
    Some(Impl {
        cpu: Fn2::Map(cpu),
        wgsl,
    })
}

fn test2<T>(cpu: fn(T, T) -> bool, wgsl: &'static str) -> Option<Impl<Fn2<T>>> {
    Some(Impl {
        cpu: Fn2::Test(cpu),
        wgsl,
    })
}

/// The definition of a unary op.
pub fn unary(op: UnaryOp) -> UnaryDef {
    use UnaryOp as U;
    let none = UnaryDef {
        op,
        f32: None,
        i32: None,
        u32: None,
        bool: None,
    };
    // A float-only op.
    let float = |cpu: fn(f32) -> f32, wgsl| UnaryDef {
        f32: map1(cpu, wgsl),
        ..none
    };
    match op {
        U::Neg => UnaryDef {
            f32: map1(|x| -x, "(-{x})"),
            i32: map1(i32::wrapping_neg, "(-{x})"),
            u32: map1(u32::wrapping_neg, "(0u - {x})"),
            ..none
        },
        U::Abs => UnaryDef {
            f32: map1(f32::abs, "abs({x})"),
            i32: map1(i32::wrapping_abs, "abs({x})"),
            u32: map1(|x| x, "{x}"),
            ..none
        },
        U::Sign => UnaryDef {
            f32: map1(scalar::sign, "lamina_sign_nan({x})"),
            i32: map1(i32::signum, "sign({x})"),
            u32: map1(|x| (x > 0) as u32, "select(0u, 1u, {x} > 0u)"),
            ..none
        },
        U::Not => UnaryDef {
            bool: map1(|x| !x, "(!{x})"),
            ..none
        },
        U::Exp => float(scalar::exp, "lamina_exp({x})"),
        U::Log => float(scalar::log, "lamina_log({x})"),
        U::Sqrt => float(f32::sqrt, "sqrt({x})"),
        U::Rsqrt => float(|x| 1.0 / x.sqrt(), "(1.0f / sqrt({x}))"),
        U::Recip => float(|x| 1.0 / x, "(1.0f / {x})"),
        U::Tanh => float(scalar::tanh, "lamina_tanh({x})"),
        U::Sigmoid => float(scalar::sigmoid, "lamina_sigmoid({x})"),
        U::Sin => float(f32::sin, "sin({x})"),
        U::Cos => float(f32::cos, "cos({x})"),
        U::Erf => float(scalar::erf, "lamina_erf({x})"),
        U::Erfc => float(scalar::erfc, "lamina_erfc({x})"),
        U::Floor => float(f32::floor, "floor({x})"),
        U::Ceil => float(f32::ceil, "ceil({x})"),
        // WGSL's round is half to even, as NumPy's.
        U::Round => float(f32::round_ties_even, "round({x})"),
        U::Tan => float(f32::tan, "tan({x})"),
        U::Asin => float(f32::asin, "lamina_asin({x})"),
        U::Acos => float(f32::acos, "lamina_acos({x})"),
        U::Atan => float(f32::atan, "lamina_atan({x})"),
        U::Sinh => float(f32::sinh, "lamina_sinh({x})"),
        U::Cosh => float(f32::cosh, "cosh({x})"),
        U::Asinh => float(f32::asinh, "lamina_asinh({x})"),
        U::Acosh => float(f32::acosh, "acosh({x})"),
        U::Atanh => float(f32::atanh, "lamina_atanh({x})"),
        U::Expm1 => float(scalar::expm1, "lamina_expm1({x})"),
        U::Log1p => float(scalar::log1p, "lamina_log1p({x})"),
        U::Log2 => float(f32::log2, "log2({x})"),
        U::Log10 => float(f32::log10, "(lamina_log({x}) * 0.4342945f)"),
        U::IsNan => UnaryDef {
            f32: test1(f32::is_nan, "lamina_isnan({x})"),
            ..none
        },
        U::IsInf => UnaryDef {
            f32: test1(f32::is_infinite, "lamina_isinf({x})"),
            ..none
        },
        U::IsFinite => UnaryDef {
            f32: test1(f32::is_finite, "lamina_isfinite({x})"),
            ..none
        },
    }
}

/// The definition of a binary op.
pub fn binary(op: BinaryOp) -> BinaryDef {
    use BinaryOp as B;
    let none = BinaryDef {
        op,
        f32: None,
        i32: None,
        u32: None,
        bool: None,
    };
    // An op spelled the same for the three number types.
    let numeric =
        |f: fn(f32, f32) -> f32, i: fn(i32, i32) -> i32, u: fn(u32, u32) -> u32, w| BinaryDef {
            f32: map2(f, w),
            i32: map2(i, w),
            u32: map2(u, w),
            ..none
        };
    // A comparison: NaN-aware helpers for floats (WGSL lets drivers assume there is no NaN),
    // the operator for integers (and, for `==` and `!=`, bools).
    macro_rules! compare {
        ($op:tt, $float:literal, $int:literal) => {
            BinaryDef {
                f32: test2(|x, y| x $op y, $float),
                i32: test2(|x, y| x $op y, $int),
                u32: test2(|x, y| x $op y, $int),
                ..none
            }
        };
    }
    match op {
        B::Add => numeric(
            |x, y| x + y,
            i32::wrapping_add,
            u32::wrapping_add,
            "({a} + {b})",
        ),
        B::Sub => numeric(
            |x, y| x - y,
            i32::wrapping_sub,
            u32::wrapping_sub,
            "({a} - {b})",
        ),
        B::Mul => numeric(
            |x, y| x * y,
            i32::wrapping_mul,
            u32::wrapping_mul,
            "({a} * {b})",
        ),
        // Integer division by 0 is 0 (WGSL's would be `a`).
        B::Div => BinaryDef {
            f32: map2(|x, y| x / y, "({a} / {b})"),
            i32: map2(
                |x, y| if y == 0 { 0 } else { x.wrapping_div(y) },
                "select({a} / {b}, 0i, {b} == 0i)",
            ),
            u32: map2(
                |x, y| x.checked_div(y).unwrap_or(0),
                "select({a} / {b}, 0u, {b} == 0u)",
            ),
            ..none
        },
        B::Pow => BinaryDef {
            f32: map2(f32::powf, "lamina_pow({a}, {b})"),
            ..none
        },
        B::Max => BinaryDef {
            f32: map2(scalar::fmax_nan, "lamina_max({a}, {b})"),
            i32: map2(Ord::max, "max({a}, {b})"),
            u32: map2(Ord::max, "max({a}, {b})"),
            ..none
        },
        B::Min => BinaryDef {
            f32: map2(scalar::fmin_nan, "lamina_min({a}, {b})"),
            i32: map2(Ord::min, "min({a}, {b})"),
            u32: map2(Ord::min, "min({a}, {b})"),
            ..none
        },
        B::Less => compare!(<, "lamina_less({a}, {b})", "({a} < {b})"),
        B::LessEqual => compare!(<=, "lamina_less_equal({a}, {b})", "({a} <= {b})"),
        B::Greater => compare!(>, "lamina_less({b}, {a})", "({a} > {b})"),
        B::GreaterEqual => compare!(>=, "lamina_less_equal({b}, {a})", "({a} >= {b})"),
        B::Equal => BinaryDef {
            bool: test2(|x, y| x == y, "({a} == {b})"),
            ..compare!(==, "lamina_equal({a}, {b})", "({a} == {b})")
        },
        B::NotEqual => BinaryDef {
            bool: test2(|x, y| x != y, "({a} != {b})"),
            ..compare!(!=, "(!lamina_equal({a}, {b}))", "({a} != {b})")
        },
        B::And => BinaryDef {
            bool: map2(|x, y| x && y, "({a} && {b})"),
            ..none
        },
        B::Or => BinaryDef {
            bool: map2(|x, y| x || y, "({a} || {b})"),
            ..none
        },
        B::Atan2 => BinaryDef {
            f32: map2(scalar::atan2_f32, "lamina_atan2({a}, {b})"),
            ..none
        },
        B::FloorDiv => BinaryDef {
            f32: map2(scalar::floor_div_f32, "lamina_floor_div_f32({a}, {b})"),
            i32: map2(scalar::floor_div_i32, "lamina_floor_div_i32({a}, {b})"),
            u32: map2(
                |x, y| x.checked_div(y).unwrap_or(0),
                "lamina_floor_div_u32({a}, {b})",
            ),
            ..none
        },
        B::BitwiseAnd => BinaryDef {
            i32: map2(|x, y| x & y, "({a} & {b})"),
            u32: map2(|x, y| x & y, "({a} & {b})"),
            bool: map2(|x, y| x && y, "({a} && {b})"),
            ..none
        },
        B::BitwiseOr => BinaryDef {
            i32: map2(|x, y| x | y, "({a} | {b})"),
            u32: map2(|x, y| x | y, "({a} | {b})"),
            bool: map2(|x, y| x || y, "({a} || {b})"),
            ..none
        },
        B::BitwiseXor => BinaryDef {
            i32: map2(|x, y| x ^ y, "({a} ^ {b})"),
            u32: map2(|x, y| x ^ y, "({a} ^ {b})"),
            bool: map2(|x, y| x != y, "({a} != {b})"),
            ..none
        },
        // Shifts past the width (or by a negative amount) give NumPy's results, not WGSL's
        // modulo-width shift.
        B::LeftShift => BinaryDef {
            i32: map2(
                |x, y| if (0..32).contains(&y) { x << y } else { 0 },
                "select(0i, ({a} << u32({b} & 31i)), ({b} >= 0i) && ({b} < 32i))",
            ),
            u32: map2(
                |x, y| if y < 32 { x << y } else { 0 },
                "select(0u, ({a} << ({b} & 31u)), {b} < 32u)",
            ),
            ..none
        },
        B::RightShift => BinaryDef {
            i32: map2(
                |x, y| {
                    if (0..32).contains(&y) {
                        x >> y
                    } else {
                        x >> 31
                    }
                },
                "select(({a} >> 31u), ({a} >> u32({b} & 31i)), ({b} >= 0i) && ({b} < 32i))",
            ),
            u32: map2(
                |x, y| if y < 32 { x >> y } else { 0 },
                "select(0u, ({a} >> ({b} & 31u)), {b} < 32u)",
            ),
            ..none
        },
        B::Mod => BinaryDef {
            f32: map2(scalar::mod_f32, "lamina_mod_f32({a}, {b})"),
            i32: map2(scalar::mod_i32, "lamina_mod_i32({a}, {b})"),
            u32: map2(
                |x, y| x.checked_rem(y).unwrap_or(0),
                "lamina_mod_u32({a}, {b})",
            ),
            ..none
        },
    }
}

/// A value of one of the four dtypes, with its conversions to each: the CPU's definition of
/// `cast`. Float to int truncates toward zero (NaN becomes 0, out-of-range values saturate),
/// anything to bool is `!= 0`, bool to numbers is 0 or 1; [`cast_wgsl`] spells the same.
pub trait Scalar: Copy {
    /// The dtype.
    const DTYPE: DType;
    /// To f32 (integers rounded to nearest).
    fn to_f32(self) -> f32;
    /// To i32.
    fn to_i32(self) -> i32;
    /// To u32.
    fn to_u32(self) -> u32;
    /// To bool.
    fn to_bool(self) -> bool;
}

impl Scalar for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f32(self) -> f32 {
        self
    }
    fn to_i32(self) -> i32 {
        self as i32
    }
    fn to_u32(self) -> u32 {
        self as u32
    }
    fn to_bool(self) -> bool {
        self != 0.0
    }
}

impl Scalar for i32 {
    const DTYPE: DType = DType::I32;
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn to_i32(self) -> i32 {
        self
    }
    fn to_u32(self) -> u32 {
        self as u32
    }
    fn to_bool(self) -> bool {
        self != 0
    }
}

impl Scalar for u32 {
    const DTYPE: DType = DType::U32;
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn to_i32(self) -> i32 {
        self as i32
    }
    fn to_u32(self) -> u32 {
        self
    }
    fn to_bool(self) -> bool {
        self != 0
    }
}

impl Scalar for bool {
    const DTYPE: DType = DType::Bool;
    fn to_f32(self) -> f32 {
        self as u8 as f32
    }
    fn to_i32(self) -> i32 {
        self as i32
    }
    fn to_u32(self) -> u32 {
        self as u32
    }
    fn to_bool(self) -> bool {
        self
    }
}

/// The WGSL template (operand `{x}`) of a cast, with the semantics of [`Scalar`]'s conversions.
pub fn cast_wgsl(from: DType, to: DType) -> &'static str {
    use DType::*;
    match (from, to) {
        (F32, F32) | (I32, I32) | (U32, U32) | (Bool, Bool) => "{x}",
        (Bool, F32) => "select(0.0f, 1.0f, {x})",
        (Bool, I32) => "select(0i, 1i, {x})",
        (Bool, U32) => "select(0u, 1u, {x})",
        (F32, Bool) => "(!lamina_equal({x}, 0.0f))",
        (I32, Bool) => "({x} != 0i)",
        (U32, Bool) => "({x} != 0u)",
        (F32, I32) => "lamina_f32_to_i32({x})",
        (F32, U32) => "lamina_f32_to_u32({x})",
        (_, F32) => "f32({x})",
        (_, I32) => "i32({x})",
        (_, U32) => "u32({x})",
    }
}

/// Fills a WGSL template: each `{name}` becomes the operand of that name (`x`, `a` or `b`), in
/// one pass, so an operand's own text is never read as a placeholder.
pub fn render(template: &str, operands: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').and_then(|close| {
            let key = &after[..close];
            operands
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (close, *v))
        }) {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(all(test, feature = "gpu"))]
mod tests;
