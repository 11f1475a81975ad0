//! Reduction kernels: sum, mean, max, min, prod over axes; argmax/argmin; cumsum/cumprod.

use super::movement::permute;
use lamina_graph::op::{ArgReduceOp, ReduceOp, ScanOp};
use lamina_graph::{DType, Error, HostData, Result};

/// Moves the listed axes to the end, so that each reduction is over a contiguous row.
/// Returns the data and the row length.
fn rows_last(x: &HostData, shape: &[usize], axes: &[usize]) -> (HostData, usize) {
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let row: usize = axes.iter().map(|&a| shape[a]).product();
    let trailing = axes
        .iter()
        .enumerate()
        .all(|(i, &a)| a == shape.len() - axes.len() + i);
    if trailing {
        return (x.clone(), row);
    }
    let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
    (permute(x, shape, &perm), row)
}

fn bad(op: &str, dtype: DType) -> Error {
    Error::Backend {
        backend: "cpu".into(),
        detail: format!("reduction {op} has no kernel for dtype {dtype}"),
    }
}

/// Reduces over `axes` (sorted, distinct); the result is in row-major order of the kept axes,
/// which is also its order with `keepdims`.
pub fn reduce(op: ReduceOp, x: &HostData, shape: &[usize], axes: &[usize]) -> Result<HostData> {
    if let (HostData::F32(v), Some(&first), Some(&last)) = (x, axes.first(), axes.last())
        && last + 1 < shape.len()
        && last - first + 1 == axes.len()
        && op != ReduceOp::Prod
    {
        let outer: usize = shape[..first].iter().product();
        let count: usize = shape[first..=last].iter().product();
        let inner: usize = shape[last + 1..].iter().product();
        if count > 0 && inner > 0 {
            return Ok(HostData::F32(reduce_middle(op, v, outer, count, inner)));
        }
    }
    let (data, row) = rows_last(x, shape, axes);
    if row == 0 {
        return Err(Error::Backend {
            backend: "cpu".into(),
            detail: format!("reduction {} over an empty axis", op.name()),
        });
    }
    Ok(match &data {
        HostData::F32(v) => HostData::F32(
            v.chunks_exact(row)
                .map(|r| super::fused::reduce(op, r))
                .collect(),
        ),
        HostData::I32(v) => HostData::I32(
            v.chunks_exact(row)
                .map(|r| match op {
                    ReduceOp::Sum | ReduceOp::Mean => {
                        r.iter().fold(0i32, |a, &b| a.wrapping_add(b))
                    }
                    ReduceOp::Max => r.iter().copied().fold(i32::MIN, i32::max),
                    ReduceOp::Min => r.iter().copied().fold(i32::MAX, i32::min),
                    ReduceOp::Prod => r.iter().fold(1i32, |a, &b| a.wrapping_mul(b)),
                })
                .collect(),
        ),
        HostData::U32(v) => HostData::U32(
            v.chunks_exact(row)
                .map(|r| match op {
                    ReduceOp::Sum | ReduceOp::Mean => {
                        r.iter().fold(0u32, |a, &b| a.wrapping_add(b))
                    }
                    ReduceOp::Max => r.iter().copied().fold(0, u32::max),
                    ReduceOp::Min => r.iter().copied().fold(u32::MAX, u32::min),
                    ReduceOp::Prod => r.iter().fold(1u32, |a, &b| a.wrapping_mul(b)),
                })
                .collect(),
        ),
        HostData::Bool(_) => return Err(bad(op.name(), DType::Bool)),
    })
}

/// Reduces `x`, viewed as `(outer, count, inner)`, over its middle axis: whole contiguous rows
/// of `inner` values are combined at once (vectorisable), instead of transposing first. Max and
/// min propagate NaN, as NumPy does. Sums add the rows in order in blocks, one accumulator per
/// column (a last-axis sum adds in 8 lanes), so the two may differ in the last bits.
/// Rows a middle-axis sum adds per column before the blocks are combined pairwise.
const SUM_ROWS: usize = 128;

fn reduce_middle(op: ReduceOp, x: &[f32], outer: usize, count: usize, inner: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0.0f32; outer * inner];
    let block = |(o, acc): (usize, &mut [f32])| {
        let src = &x[o * count * inner..(o + 1) * count * inner];
        reduce_rows(op, src, count, inner, acc);
    };
    if outer * count * inner >= 1 << 16 {
        out.par_chunks_mut(inner).enumerate().for_each(block);
    } else {
        out.chunks_mut(inner).enumerate().for_each(block);
    }
    out
}

/// Combines `count` rows of `inner` values (`src`, row after row) into `acc`, column by
/// column: the one order of the interpreter's middle-axis reductions, fused or not.
pub fn reduce_rows(op: ReduceOp, src: &[f32], count: usize, inner: usize, acc: &mut [f32]) {
    if matches!(op, ReduceOp::Sum | ReduceOp::Mean) && count > SUM_ROWS {
        sum_blocks(src, inner, acc);
        if op == ReduceOp::Mean {
            let n = count as f32;
            acc.iter_mut().for_each(|a| *a /= n);
        }
        return;
    }
    acc.copy_from_slice(&src[..inner]);
    for row in src.chunks_exact(inner).skip(1) {
        match op {
            ReduceOp::Sum | ReduceOp::Mean => {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
            ReduceOp::Max => acc.iter_mut().zip(row).for_each(|(a, &v)| {
                if v > *a || v.is_nan() {
                    *a = v;
                }
            }),
            ReduceOp::Min => acc.iter_mut().zip(row).for_each(|(a, &v)| {
                if v < *a || v.is_nan() {
                    *a = v;
                }
            }),
            ReduceOp::Prod => acc.iter_mut().zip(row).for_each(|(a, &v)| *a *= v),
        }
    }
    if op == ReduceOp::Mean {
        let n = count as f32;
        acc.iter_mut().for_each(|a| *a /= n);
    }
}

/// Blocks of SUM_ROWS rows are summed apart and combined pairwise (a cascade, as the last-axis
/// sum does), so that a long axis of small values keeps its precision and does not stall once
/// a column's total reaches 2^24.
fn sum_blocks(src: &[f32], inner: usize, acc: &mut [f32]) {
    let mut stack: Vec<Vec<f32>> = Vec::new();
    let mut done = 0usize;
    for rows in src.chunks(SUM_ROWS * inner) {
        let mut part = rows[..inner].to_vec();
        for row in rows.chunks_exact(inner).skip(1) {
            part.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
        }
        let mut level = 0;
        while (done >> level) & 1 == 1 {
            part.iter_mut()
                .zip(&stack[level])
                .for_each(|(a, &v)| *a += v);
            level += 1;
        }
        if level == stack.len() {
            stack.push(part);
        } else {
            stack[level] = part;
        }
        done += 1;
    }
    acc.fill(0.0);
    for (level, pending) in stack.iter().enumerate() {
        if (done >> level) & 1 == 1 {
            acc.iter_mut().zip(pending).for_each(|(a, &v)| *a += v);
        }
    }
}

/// The index of the first maximum (or minimum) along `axis`, as `int32`. A NaN counts as the
/// extreme, as in NumPy, and -0.0 ranks below 0.0, as in Keras. Integers compare as integers (not through `f32`, which cannot tell
/// 2^24 from 2^24 + 1).
pub fn arg_reduce(op: ArgReduceOp, x: &HostData, shape: &[usize], axis: usize) -> Result<HostData> {
    /// Whether a value is -0.0, which Keras's argmax and argmin rank below 0.0.
    trait NegZero: Copy {
        fn neg_zero(self) -> bool;
    }
    impl NegZero for f32 {
        fn neg_zero(self) -> bool {
            self == 0.0 && self.is_sign_negative()
        }
    }
    impl NegZero for i32 {
        fn neg_zero(self) -> bool {
            false
        }
    }
    impl NegZero for u32 {
        fn neg_zero(self) -> bool {
            false
        }
    }
    fn pick<T: NegZero + PartialOrd>(op: ArgReduceOp, r: &[T]) -> i32 {
        // `v != v` only for NaN; integers never take that branch.
        #[allow(clippy::eq_op)]
        let is_nan = |v: T| v != v;
        let mut best = 0usize;
        for (i, &v) in r.iter().enumerate() {
            if is_nan(r[best]) {
                break;
            }
            let b = r[best];
            let better = match op {
                ArgReduceOp::ArgMax => {
                    v > b || is_nan(v) || (v == b && b.neg_zero() && !v.neg_zero())
                }
                ArgReduceOp::ArgMin => {
                    v < b || is_nan(v) || (v == b && v.neg_zero() && !b.neg_zero())
                }
            };
            if better {
                best = i;
            }
        }
        best as i32
    }
    let (data, row) = rows_last(x, shape, &[axis]);
    if row == 0 {
        return Err(bad("argmax over an empty axis", x.dtype()));
    }
    Ok(HostData::I32(match &data {
        HostData::F32(v) => v.chunks_exact(row).map(|r| pick(op, r)).collect(),
        HostData::I32(v) => v.chunks_exact(row).map(|r| pick(op, r)).collect(),
        HostData::U32(v) => v.chunks_exact(row).map(|r| pick(op, r)).collect(),
        HostData::Bool(_) => return Err(bad("argmax", DType::Bool)),
    }))
}

/// A running sum or product along `axis`.
pub fn scan(op: ScanOp, x: &HostData, shape: &[usize], axis: usize) -> Result<HostData> {
    let rank = shape.len();
    let mut perm: Vec<usize> = (0..rank).filter(|&a| a != axis).collect();
    perm.push(axis);
    let moved_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let data = if axis == rank - 1 {
        x.clone()
    } else {
        permute(x, shape, &perm)
    };
    let row = shape[axis];
    if row == 0 {
        return Ok(x.clone());
    }
    macro_rules! run {
        ($v:expr, $zero:expr, $one:expr, $add:expr, $mul:expr) => {{
            let mut out = $v.clone();
            for r in out.chunks_exact_mut(row) {
                let mut acc = match op {
                    ScanOp::CumSum => $zero,
                    ScanOp::CumProd => $one,
                };
                for e in r.iter_mut() {
                    acc = match op {
                        ScanOp::CumSum => $add(acc, *e),
                        ScanOp::CumProd => $mul(acc, *e),
                    };
                    *e = acc;
                }
            }
            out
        }};
    }
    let scanned = match &data {
        HostData::F32(v) => HostData::F32(run!(v, 0.0f32, 1.0f32, |a, b| a + b, |a, b| a * b)),
        HostData::I32(v) => {
            HostData::I32(run!(v, 0i32, 1i32, i32::wrapping_add, i32::wrapping_mul))
        }
        HostData::U32(v) => {
            HostData::U32(run!(v, 0u32, 1u32, u32::wrapping_add, u32::wrapping_mul))
        }
        HostData::Bool(_) => return Err(bad("cumsum", DType::Bool)),
    };
    if axis == rank - 1 {
        return Ok(scanned);
    }
    // Move the axis back: the inverse permutation.
    let mut inverse = vec![0usize; rank];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    Ok(permute(&scanned, &moved_shape, &inverse))
}
