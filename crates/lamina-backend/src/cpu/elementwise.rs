//! Elementwise kernels: unary math, broadcasting binary ops, `where` and `cast`. These define
//! the reference semantics of the primitives (NumPy's, with NaN-propagating max/min and
//! wrapping integer arithmetic).

use super::strided::{broadcast_strides, gather};
use lamina_graph::op::{BinaryOp, UnaryOp};
use lamina_graph::{DType, Error, HostData, Result};
use std::borrow::Cow;

/// `src` (of shape `from`) read as shape `to`, copying only when it must broadcast.
pub fn broadcast_to<'a, T: Copy>(src: &'a [T], from: &[usize], to: &[usize]) -> Cow<'a, [T]> {
    if from == to {
        Cow::Borrowed(src)
    } else {
        Cow::Owned(gather(src, to, &broadcast_strides(from, to), 0))
    }
}

/// Applies `f` to pairs of elements of `a` and `b` broadcast to `out`.
pub fn map2<A: Copy, B: Copy, R>(
    a: &[A],
    sa: &[usize],
    b: &[B],
    sb: &[usize],
    out: &[usize],
    f: impl Fn(A, B) -> R,
) -> Vec<R> {
    let n: usize = out.iter().product();
    if a.len() == n && b.len() == n && sa == out && sb == out {
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    if b.len() == 1 && a.len() == n && sa == out {
        let y = b[0];
        return a.iter().map(|&x| f(x, y)).collect();
    }
    if a.len() == 1 && b.len() == n && sb == out {
        let x = a[0];
        return b.iter().map(|&y| f(x, y)).collect();
    }
    let a = broadcast_to(a, sa, out);
    let b = broadcast_to(b, sb, out);
    a.iter().zip(b.iter()).map(|(&x, &y)| f(x, y)).collect()
}

/// The Gauss error function in f64 precision (libm), rounded to f32.
fn erf(x: f32) -> f32 {
    libm::erf(x as f64) as f32
}

/// NaN-propagating maximum, as NumPy's `maximum`.
#[inline(always)]
pub fn fmax_nan(a: f32, b: f32) -> f32 {
    // A NaN `a` is kept; a NaN `b` fails the comparison and is taken. Branch-free, so loops
    // over it vectorize.
    if (a >= b) | a.is_nan() { a } else { b }
}

/// NaN-propagating minimum, as NumPy's `minimum`.
#[inline(always)]
pub fn fmin_nan(a: f32, b: f32) -> f32 {
    if (a <= b) | a.is_nan() { a } else { b }
}

/// The scalar function of a float unary op.
pub fn unary_f32(op: UnaryOp) -> fn(f32) -> f32 {
    match op {
        UnaryOp::Neg => |x| -x,
        UnaryOp::Abs => f32::abs,
        UnaryOp::Exp => super::math::exp,
        UnaryOp::Log => f32::ln,
        UnaryOp::Sqrt => f32::sqrt,
        UnaryOp::Rsqrt => |x| 1.0 / x.sqrt(),
        UnaryOp::Recip => |x| 1.0 / x,
        UnaryOp::Tanh => super::math::tanh,
        UnaryOp::Sigmoid => super::math::sigmoid,
        UnaryOp::Sin => f32::sin,
        UnaryOp::Cos => f32::cos,
        UnaryOp::Erf => erf,
        UnaryOp::Floor => f32::floor,
        UnaryOp::Ceil => f32::ceil,
        UnaryOp::Round => f32::round_ties_even,
        UnaryOp::Sign => |x| {
            if x.is_nan() {
                x
            } else if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        },
        UnaryOp::Not => |x| if x == 0.0 { 1.0 } else { 0.0 },
        UnaryOp::Tan => f32::tan,
        UnaryOp::Asin => f32::asin,
        UnaryOp::Acos => f32::acos,
        UnaryOp::Atan => f32::atan,
        UnaryOp::Sinh => f32::sinh,
        UnaryOp::Cosh => f32::cosh,
        UnaryOp::Asinh => f32::asinh,
        UnaryOp::Acosh => f32::acosh,
        UnaryOp::Atanh => f32::atanh,
        UnaryOp::Expm1 => f32::exp_m1,
        UnaryOp::Log1p => f32::ln_1p,
        UnaryOp::Log2 => f32::log2,
        UnaryOp::Log10 => f32::log10,
        UnaryOp::IsNan => |x| if x.is_nan() { 1.0 } else { 0.0 },
        UnaryOp::IsInf => |x| if x.is_infinite() { 1.0 } else { 0.0 },
        UnaryOp::IsFinite => |x| if x.is_finite() { 1.0 } else { 0.0 },
    }
}

/// `floor_divide` of floats as Keras computes it (JAX's `_float_divmod`, after CPython):
/// `round((a - fmod(a, b)) / b)`, less one where the remainder's sign differs from `b`'s, so
/// that `1 // 0.1` is 9 as in Python; `x // 0` is ±inf (NaN for `0 // 0`).
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
/// `x % 0` is NaN.
#[inline(always)]
pub fn mod_f32(a: f32, b: f32) -> f32 {
    let m = a % b;
    if m != 0.0 && ((m < 0.0) != (b < 0.0)) {
        m + b
    } else {
        m
    }
}

/// `arctan2(a, b)` in f64 precision, rounded to f32.
#[inline(always)]
pub fn atan2_f32(a: f32, b: f32) -> f32 {
    (a as f64).atan2(b as f64) as f32
}

/// Python's floor division of signed integers (0 where `b` is 0, wrapping on overflow).
#[inline(always)]
fn floor_div_i32(a: i32, b: i32) -> i32 {
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

/// Python's `%` of signed integers: the sign of the divisor (0 where `b` is 0).
#[inline(always)]
fn mod_i32(a: i32, b: i32) -> i32 {
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

fn unsupported(op: &str, dtype: DType) -> Error {
    Error::Backend {
        backend: "cpu".into(),
        detail: format!("op {op} has no kernel for dtype {dtype}"),
    }
}

/// Runs a unary op.
pub fn unary(op: UnaryOp, x: &HostData) -> Result<HostData> {
    Ok(match x {
        HostData::F32(v) => {
            let out = super::vector::unary(op, v);
            if op.is_test() {
                HostData::Bool(out.iter().map(|&a| a != 0.0).collect())
            } else {
                HostData::F32(out)
            }
        }
        HostData::I32(v) => HostData::I32(match op {
            UnaryOp::Neg => v.iter().map(|a| a.wrapping_neg()).collect(),
            UnaryOp::Abs => v.iter().map(|a| a.wrapping_abs()).collect(),
            UnaryOp::Sign => v.iter().map(|a| a.signum()).collect(),
            _ => return Err(unsupported(op.name(), DType::I32)),
        }),
        HostData::U32(v) => HostData::U32(match op {
            UnaryOp::Abs => v.clone(),
            UnaryOp::Sign => v.iter().map(|&a| (a > 0) as u32).collect(),
            UnaryOp::Neg => v.iter().map(|a| a.wrapping_neg()).collect(),
            _ => return Err(unsupported(op.name(), DType::U32)),
        }),
        HostData::Bool(v) => match op {
            UnaryOp::Not => HostData::Bool(v.iter().map(|a| !a).collect()),
            _ => return Err(unsupported(op.name(), DType::Bool)),
        },
    })
}

/// Floor division and modulo of an integer type, as Python and NumPy define them.
trait IntDivMod: Sized {
    fn floor_div(a: Self, b: Self) -> Self;
    fn floor_mod(a: Self, b: Self) -> Self;
}

impl IntDivMod for i32 {
    fn floor_div(a: i32, b: i32) -> i32 {
        floor_div_i32(a, b)
    }
    fn floor_mod(a: i32, b: i32) -> i32 {
        mod_i32(a, b)
    }
}

impl IntDivMod for u32 {
    fn floor_div(a: u32, b: u32) -> u32 {
        a.checked_div(b).unwrap_or(0)
    }
    fn floor_mod(a: u32, b: u32) -> u32 {
        a.checked_rem(b).unwrap_or(0)
    }
}

macro_rules! int_binary {
    ($op:expr, $a:expr, $sa:expr, $b:expr, $sb:expr, $out:expr, $variant:ident, $t:ty) => {{
        let (a, b, sa, sb, out) = ($a, $b, $sa, $sb, $out);
        match $op {
            BinaryOp::Add => {
                HostData::$variant(map2(a, sa, b, sb, out, |x: $t, y: $t| x.wrapping_add(y)))
            }
            BinaryOp::Sub => {
                HostData::$variant(map2(a, sa, b, sb, out, |x: $t, y: $t| x.wrapping_sub(y)))
            }
            BinaryOp::Mul => {
                HostData::$variant(map2(a, sa, b, sb, out, |x: $t, y: $t| x.wrapping_mul(y)))
            }
            BinaryOp::Div => HostData::$variant(map2(a, sa, b, sb, out, |x: $t, y: $t| {
                if y == 0 { 0 } else { x.wrapping_div(y) }
            })),
            BinaryOp::FloorDiv => HostData::$variant(map2(a, sa, b, sb, out, |x: $t, y: $t| {
                <$t as IntDivMod>::floor_div(x, y)
            })),
            BinaryOp::Mod => HostData::$variant(map2(a, sa, b, sb, out, |x: $t, y: $t| {
                <$t as IntDivMod>::floor_mod(x, y)
            })),
            BinaryOp::Max => HostData::$variant(map2(a, sa, b, sb, out, |x: $t, y: $t| x.max(y))),
            BinaryOp::Min => HostData::$variant(map2(a, sa, b, sb, out, |x: $t, y: $t| x.min(y))),
            BinaryOp::Less => HostData::Bool(map2(a, sa, b, sb, out, |x: $t, y: $t| x < y)),
            BinaryOp::LessEqual => HostData::Bool(map2(a, sa, b, sb, out, |x: $t, y: $t| x <= y)),
            BinaryOp::Greater => HostData::Bool(map2(a, sa, b, sb, out, |x: $t, y: $t| x > y)),
            BinaryOp::GreaterEqual => {
                HostData::Bool(map2(a, sa, b, sb, out, |x: $t, y: $t| x >= y))
            }
            BinaryOp::Equal => HostData::Bool(map2(a, sa, b, sb, out, |x: $t, y: $t| x == y)),
            BinaryOp::NotEqual => HostData::Bool(map2(a, sa, b, sb, out, |x: $t, y: $t| x != y)),
            other => return Err(unsupported(other.name(), DType::I32)),
        }
    }};
}

/// The scalar function of a float arithmetic op (not comparisons).
pub fn binary_f32(op: BinaryOp) -> Option<fn(f32, f32) -> f32> {
    Some(match op {
        BinaryOp::Add => |x, y| x + y,
        BinaryOp::Sub => |x, y| x - y,
        BinaryOp::Mul => |x, y| x * y,
        BinaryOp::Div => |x, y| x / y,
        BinaryOp::Pow => f32::powf,
        BinaryOp::Max => fmax_nan,
        BinaryOp::Min => fmin_nan,
        BinaryOp::Atan2 => atan2_f32,
        BinaryOp::FloorDiv => floor_div_f32,
        BinaryOp::Mod => mod_f32,
        _ => return None,
    })
}

/// Whether an operand of `len` elements and shape `shape` is either the whole output or one
/// value broadcast everywhere.
fn same_or_scalar(len: usize, shape: &[usize], out: &[usize]) -> bool {
    len == 1 || shape == out
}

/// Runs a binary op on inputs of shapes `sa` and `sb`, broadcast to `out`.
pub fn binary(
    op: BinaryOp,
    a: &HostData,
    sa: &[usize],
    b: &HostData,
    sb: &[usize],
    out: &[usize],
) -> Result<HostData> {
    Ok(match (a, b) {
        (HostData::F32(a), HostData::F32(b)) => match binary_f32(op) {
            Some(_) if same_or_scalar(a.len(), sa, out) && same_or_scalar(b.len(), sb, out) => {
                let n = out.iter().product();
                HostData::F32(super::vector::binary(op, a, b, n))
            }
            Some(f) => HostData::F32(map2(a, sa, b, sb, out, f)),
            None => {
                let f: fn(f32, f32) -> bool = match op {
                    BinaryOp::Less => |x, y| x < y,
                    BinaryOp::LessEqual => |x, y| x <= y,
                    BinaryOp::Greater => |x, y| x > y,
                    BinaryOp::GreaterEqual => |x, y| x >= y,
                    BinaryOp::Equal => |x, y| x == y,
                    BinaryOp::NotEqual => |x, y| x != y,
                    other => return Err(unsupported(other.name(), DType::F32)),
                };
                HostData::Bool(map2(a, sa, b, sb, out, f))
            }
        },
        (HostData::I32(a), HostData::I32(b)) => int_binary!(op, a, sa, b, sb, out, I32, i32),
        (HostData::U32(a), HostData::U32(b)) => int_binary!(op, a, sa, b, sb, out, U32, u32),
        (HostData::Bool(a), HostData::Bool(b)) => {
            let f: fn(bool, bool) -> bool = match op {
                BinaryOp::And => |x, y| x && y,
                BinaryOp::Or => |x, y| x || y,
                BinaryOp::Equal => |x, y| x == y,
                BinaryOp::NotEqual => |x, y| x != y,
                other => return Err(unsupported(other.name(), DType::Bool)),
            };
            HostData::Bool(map2(a, sa, b, sb, out, f))
        }
        (a, b) => {
            return Err(Error::Backend {
                backend: "cpu".into(),
                detail: format!(
                    "op {} got mixed dtypes {} and {}",
                    op.name(),
                    a.dtype(),
                    b.dtype()
                ),
            });
        }
    })
}

/// `where(cond, a, b)` with the three broadcast to `out`.
pub fn select(
    cond: &HostData,
    sc: &[usize],
    a: &HostData,
    sa: &[usize],
    b: &HostData,
    sb: &[usize],
    out: &[usize],
) -> Result<HostData> {
    let HostData::Bool(c) = cond else {
        return Err(unsupported("where (condition)", cond.dtype()));
    };
    let c = broadcast_to(c, sc, out);
    macro_rules! pick {
        ($variant:ident, $x:expr, $y:expr) => {{
            let x = broadcast_to($x, sa, out);
            let y = broadcast_to($y, sb, out);
            HostData::$variant(
                c.iter()
                    .zip(x.iter().zip(y.iter()))
                    .map(|(&c, (&x, &y))| if c { x } else { y })
                    .collect(),
            )
        }};
    }
    Ok(match (a, b) {
        (HostData::F32(x), HostData::F32(y)) => pick!(F32, x, y),
        (HostData::I32(x), HostData::I32(y)) => pick!(I32, x, y),
        (HostData::U32(x), HostData::U32(y)) => pick!(U32, x, y),
        (HostData::Bool(x), HostData::Bool(y)) => pick!(Bool, x, y),
        (a, _) => return Err(unsupported("where (mixed branches)", a.dtype())),
    })
}

/// Converts between dtypes: float to int truncates toward zero (NaN becomes 0, out-of-range
/// values saturate), anything to bool is `!= 0`, bool to numbers is 0 or 1.
pub fn cast(x: &HostData, to: DType) -> HostData {
    fn conv<T: Copy, U>(v: &[T], f: impl Fn(T) -> U) -> Vec<U> {
        v.iter().map(|&x| f(x)).collect()
    }
    match (x, to) {
        (HostData::F32(v), DType::F32) => HostData::F32(v.clone()),
        (HostData::F32(v), DType::I32) => HostData::I32(conv(v, |x| x as i32)),
        (HostData::F32(v), DType::U32) => HostData::U32(conv(v, |x| x as u32)),
        (HostData::F32(v), DType::Bool) => HostData::Bool(conv(v, |x| x != 0.0)),
        (HostData::I32(v), DType::F32) => HostData::F32(conv(v, |x| x as f32)),
        (HostData::I32(v), DType::I32) => HostData::I32(v.clone()),
        (HostData::I32(v), DType::U32) => HostData::U32(conv(v, |x| x as u32)),
        (HostData::I32(v), DType::Bool) => HostData::Bool(conv(v, |x| x != 0)),
        (HostData::U32(v), DType::F32) => HostData::F32(conv(v, |x| x as f32)),
        (HostData::U32(v), DType::I32) => HostData::I32(conv(v, |x| x as i32)),
        (HostData::U32(v), DType::U32) => HostData::U32(v.clone()),
        (HostData::U32(v), DType::Bool) => HostData::Bool(conv(v, |x| x != 0)),
        (HostData::Bool(v), DType::F32) => HostData::F32(conv(v, |x| x as u8 as f32)),
        (HostData::Bool(v), DType::I32) => HostData::I32(conv(v, |x| x as i32)),
        (HostData::Bool(v), DType::U32) => HostData::U32(conv(v, |x| x as u32)),
        (HostData::Bool(v), DType::Bool) => HostData::Bool(v.clone()),
    }
}
