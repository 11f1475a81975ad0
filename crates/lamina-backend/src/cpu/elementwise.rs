//! Elementwise kernels: unary math, broadcasting binary ops, `where` and `cast`, applying the
//! scalar functions of the op table (`crate::opdef`), which define the reference semantics of
//! the primitives (NumPy's, with NaN-propagating max/min and wrapping integer arithmetic).

use super::strided::{broadcast_strides, gather};
use crate::opdef::{self, Fn1, Fn2, Impl, Scalar};
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

fn unsupported(op: &str, dtype: DType) -> Error {
    Error::Backend {
        backend: "cpu".into(),
        detail: format!("op {op} has no kernel for dtype {dtype}"),
    }
}

/// Applies one dtype's definition of a unary op to `v`: a tensor of the same dtype
/// (`wrap`), or of bools for a test.
fn apply1<T: Copy>(
    f: Option<Impl<Fn1<T>>>,
    v: &[T],
    wrap: fn(Vec<T>) -> HostData,
    name: &str,
    dtype: DType,
) -> Result<HostData> {
    match f.map(|i| i.cpu) {
        Some(Fn1::Map(f)) => Ok(wrap(v.iter().map(|&x| f(x)).collect())),
        Some(Fn1::Test(f)) => Ok(HostData::Bool(v.iter().map(|&x| f(x)).collect())),
        None => Err(unsupported(name, dtype)),
    }
}

/// Runs a unary op.
pub fn unary(op: UnaryOp, x: &HostData) -> Result<HostData> {
    let def = opdef::unary(op);
    match x {
        HostData::F32(v) => {
            // The slice loops, which compute the table's functions (bools as 0 and 1).
            let out = super::vector::unary(op, v);
            Ok(match def.f32.map(|i| i.cpu) {
                Some(Fn1::Test(_)) => HostData::Bool(out.iter().map(|&a| a != 0.0).collect()),
                _ => HostData::F32(out),
            })
        }
        HostData::I32(v) => apply1(def.i32, v, HostData::I32, op.name(), DType::I32),
        HostData::U32(v) => apply1(def.u32, v, HostData::U32, op.name(), DType::U32),
        HostData::Bool(v) => apply1(def.bool, v, HostData::Bool, op.name(), DType::Bool),
    }
}

/// Whether an operand of `len` elements and shape `shape` is either the whole output or one
/// value broadcast everywhere.
fn same_or_scalar(len: usize, shape: &[usize], out: &[usize]) -> bool {
    len == 1 || shape == out
}

/// Applies one dtype's definition of a binary op to `a` and `b` broadcast to `out`.
fn apply2<T: Copy>(
    f: Option<Impl<Fn2<T>>>,
    (a, sa): (&[T], &[usize]),
    (b, sb): (&[T], &[usize]),
    out: &[usize],
    wrap: fn(Vec<T>) -> HostData,
    name: &str,
    dtype: DType,
) -> Result<HostData> {
    match f.map(|i| i.cpu) {
        Some(Fn2::Map(f)) => Ok(wrap(map2(a, sa, b, sb, out, f))),
        Some(Fn2::Test(f)) => Ok(HostData::Bool(map2(a, sa, b, sb, out, f))),
        None => Err(unsupported(name, dtype)),
    }
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
    let def = opdef::binary(op);
    let name = op.name();
    match (a, b) {
        (HostData::F32(a), HostData::F32(b)) => match def.f32.map(|i| i.cpu) {
            // The slice loops (the table's functions) where no operand needs broadcasting.
            Some(Fn2::Map(_))
                if same_or_scalar(a.len(), sa, out) && same_or_scalar(b.len(), sb, out) =>
            {
                let n = out.iter().product();
                Ok(HostData::F32(super::vector::binary(op, a, b, n)))
            }
            _ => apply2(
                def.f32,
                (a, sa),
                (b, sb),
                out,
                HostData::F32,
                name,
                DType::F32,
            ),
        },
        (HostData::I32(a), HostData::I32(b)) => apply2(
            def.i32,
            (a, sa),
            (b, sb),
            out,
            HostData::I32,
            name,
            DType::I32,
        ),
        (HostData::U32(a), HostData::U32(b)) => apply2(
            def.u32,
            (a, sa),
            (b, sb),
            out,
            HostData::U32,
            name,
            DType::U32,
        ),
        (HostData::Bool(a), HostData::Bool(b)) => apply2(
            def.bool,
            (a, sa),
            (b, sb),
            out,
            HostData::Bool,
            name,
            DType::Bool,
        ),
        (a, b) => Err(Error::Backend {
            backend: "cpu".into(),
            detail: format!(
                "op {} got mixed dtypes {} and {}",
                op.name(),
                a.dtype(),
                b.dtype()
            ),
        }),
    }
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

/// Converts between dtypes with the conversions of `opdef::Scalar`: float to int truncates
/// toward zero (NaN becomes 0, out-of-range values saturate), anything to bool is `!= 0`, bool
/// to numbers is 0 or 1.
pub fn cast(x: &HostData, to: DType) -> HostData {
    if x.dtype() == to {
        return x.clone();
    }
    fn conv<T: Scalar>(v: &[T], to: DType) -> HostData {
        match to {
            DType::F32 => HostData::F32(v.iter().map(|x| x.to_f32()).collect()),
            DType::I32 => HostData::I32(v.iter().map(|x| x.to_i32()).collect()),
            DType::U32 => HostData::U32(v.iter().map(|x| x.to_u32()).collect()),
            DType::Bool => HostData::Bool(v.iter().map(|x| x.to_bool()).collect()),
        }
    }
    match x {
        HostData::F32(v) => conv(v, to),
        HostData::I32(v) => conv(v, to),
        HostData::U32(v) => conv(v, to),
        HostData::Bool(v) => conv(v, to),
    }
}
