//! Movement kernels: permute, slice, broadcast (strided reads) and concatenate.

use super::strided::{broadcast_strides, contiguous_strides, gather};
use lamina_graph::op::AxisSlice;
use lamina_graph::{Error, HostData, Result};
use rayon::prelude::*;

/// Applies the same generic expression to whichever vector a `HostData` holds.
macro_rules! each_dtype {
    ($data:expr, |$v:ident| $body:expr) => {
        match $data {
            HostData::F32($v) => HostData::F32($body),
            HostData::I32($v) => HostData::I32($body),
            HostData::U32($v) => HostData::U32($body),
            HostData::Bool($v) => HostData::Bool($body),
        }
    };
}

/// Reads `x` (shape `shape`) through a view.
pub fn view(x: &HostData, out_shape: &[usize], strides: &[isize], offset: isize) -> HostData {
    each_dtype!(x, |v| gather(v, out_shape, strides, offset))
}

/// Output axis `i` is input axis `perm[i]`: the output's first axis split over threads when
/// the tensor is large (a permutation of attention's heads moves megabytes each run), runs
/// along the last axis copied in vector pieces.
pub fn permute(x: &HostData, shape: &[usize], perm: &[usize]) -> HostData {
    let base = contiguous_strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let strides: Vec<isize> = perm.iter().map(|&p| base[p]).collect();
    let total: usize = out_shape.iter().product();
    let Some((&first, rest)) = out_shape.split_first() else {
        return view(x, &out_shape, &strides, 0);
    };
    let per = total / first.max(1);
    if per == 0 {
        return view(x, &out_shape, &strides, 0);
    }
    each_dtype!(x, |v| {
        let mut out = vec![Default::default(); total];
        let one = |(i, dst): (usize, &mut [_])| {
            let at = strides[0] * i as isize;
            super::strided::gather_into(dst, v, rest, &strides[1..], at)
        };
        if total >= PARALLEL_PERMUTE && first > 1 {
            out.par_chunks_mut(per).enumerate().for_each(one);
        } else {
            out.chunks_mut(per).enumerate().for_each(one);
        }
        out
    })
}

/// Elements from which [`permute`] splits its work over threads.
const PARALLEL_PERMUTE: usize = 1 << 18;

/// A NumPy slice on every axis.
pub fn slice(x: &HostData, shape: &[usize], axes: &[AxisSlice], out_shape: &[usize]) -> HostData {
    let base = contiguous_strides(shape);
    let mut offset = 0isize;
    let mut strides = Vec::with_capacity(shape.len());
    for (i, sl) in axes.iter().enumerate() {
        let (start, _, step) = sl.resolve(shape[i]);
        offset += start as isize * base[i];
        strides.push(base[i] * step as isize);
    }
    view(x, out_shape, &strides, offset)
}

/// NumPy broadcast to a larger shape.
pub fn broadcast(x: &HostData, shape: &[usize], out_shape: &[usize]) -> HostData {
    view(x, out_shape, &broadcast_strides(shape, out_shape), 0)
}

/// Joins inputs along `axis`; each input is copied block by block into place.
pub fn concat(
    parts: &[(&HostData, &[usize])],
    axis: usize,
    out_shape: &[usize],
) -> Result<HostData> {
    let outer: usize = out_shape[..axis].iter().product();
    let inner: usize = out_shape[axis + 1..].iter().product();
    let total: usize = out_shape.iter().product();
    macro_rules! join {
        ($variant:ident) => {{
            let mut out = Vec::with_capacity(total);
            for o in 0..outer {
                for (data, shape) in parts {
                    let HostData::$variant(v) = data else {
                        return Err(Error::Backend {
                            backend: "cpu".into(),
                            detail: "concatenate got inputs of different dtypes".into(),
                        });
                    };
                    let chunk = shape[axis] * inner;
                    out.extend_from_slice(&v[o * chunk..(o + 1) * chunk]);
                }
            }
            HostData::$variant(out)
        }};
    }
    Ok(match parts.first().map(|p| p.0) {
        Some(HostData::F32(_)) => join!(F32),
        Some(HostData::I32(_)) => join!(I32),
        Some(HostData::U32(_)) => join!(U32),
        Some(HostData::Bool(_)) => join!(Bool),
        None => HostData::F32(Vec::new()),
    })
}

/// `take` along `axis`: for each index, the slice of `params` at that position; a negative
/// index counts from the end, as in NumPy. An index outside `-size..size` is an error naming
/// it. `reuse` is a buffer of an earlier run that
/// nobody holds any more, written over when it has the right type (no new pages to fault in).
pub fn take(
    params: &HostData,
    shape: &[usize],
    indices: &HostData,
    axis: usize,
    reuse: Option<std::sync::Arc<HostData>>,
) -> Result<std::sync::Arc<HostData>> {
    let size = shape[axis];
    let ids: Vec<usize> = match indices {
        HostData::I32(v) => v
            .iter()
            .map(|&i| {
                let wrapped = if i < 0 {
                    i as i64 + size as i64
                } else {
                    i as i64
                };
                usize::try_from(wrapped)
                    .ok()
                    .filter(|&i| i < size)
                    .ok_or(i as i64)
            })
            .collect::<std::result::Result<_, i64>>(),
        HostData::U32(v) => v
            .iter()
            .map(|&i| Some(i as usize).filter(|&i| i < size).ok_or(i as i64))
            .collect::<std::result::Result<_, i64>>(),
        _ => {
            return Err(Error::Backend {
                backend: "cpu".into(),
                detail: "take: indices must be int32 or uint32".into(),
            });
        }
    }
    .map_err(|bad| lamina_graph::ops::index_out_of_range(bad, axis, shape))?;
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut buffer = reuse
        .filter(|b| std::mem::discriminant(&**b) == std::mem::discriminant(params))
        .unwrap_or_else(|| std::sync::Arc::new(params_like(params)));
    let Some(out) = std::sync::Arc::get_mut(&mut buffer) else {
        return Err(Error::Backend {
            backend: "cpu".into(),
            detail: "take: the reused buffer is shared".into(),
        });
    };
    // Output row r (of `inner` values) is row ids[r % n] of outer block r / n of the table:
    // rows are copied in parallel tasks of many rows, into a buffer resized (not rebuilt) when
    // it is reused.
    let n = ids.len();
    macro_rules! fill {
        ($v:expr, $o:expr) => {{
            let total = outer * n * inner;
            $o.resize(total, Default::default());
            if inner > 0 {
                let rows_per_task = (TAKE_TASK / inner).max(1);
                let task = |(t, chunk): (usize, &mut [_])| {
                    for (k, row) in chunk.chunks_exact_mut(inner).enumerate() {
                        let r = t * rows_per_task + k;
                        let start = ((r / n) * size + ids[r % n]) * inner;
                        super::strided::copy_row(row, &$v[start..start + inner]);
                    }
                };
                if total >= 2 * TAKE_TASK {
                    $o.par_chunks_mut(rows_per_task * inner)
                        .enumerate()
                        .for_each(task);
                } else {
                    $o.chunks_mut(rows_per_task * inner)
                        .enumerate()
                        .for_each(task);
                }
            }
        }};
    }
    match (params, out) {
        (HostData::F32(v), HostData::F32(o)) => fill!(v, o),
        (HostData::I32(v), HostData::I32(o)) => fill!(v, o),
        (HostData::U32(v), HostData::U32(o)) => fill!(v, o),
        (HostData::Bool(v), HostData::Bool(o)) => fill!(v, o),
        _ => {
            return Err(Error::Backend {
                backend: "cpu".into(),
                detail: "take: buffer of another type".into(),
            });
        }
    }
    Ok(buffer)
}

/// Elements one thread task of `take` copies.
const TAKE_TASK: usize = 1 << 14;

/// An empty vector of the same type as `x`.
fn params_like(x: &HostData) -> HostData {
    match x {
        HostData::F32(_) => HostData::F32(Vec::new()),
        HostData::I32(_) => HostData::I32(Vec::new()),
        HostData::U32(_) => HostData::U32(Vec::new()),
        HostData::Bool(_) => HostData::Bool(Vec::new()),
    }
}
