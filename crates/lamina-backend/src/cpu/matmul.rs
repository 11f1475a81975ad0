//! Batched matrix product with NumPy batch broadcasting.

use super::strided::broadcast_strides;
use lamina_graph::{Error, HostData, Result};
use rayon::prelude::*;
use std::sync::Arc;

/// `out = a @ b` for row-major `a` (m×k), `b` (k×n), `out` (m×n), with the `gemm` crate:
/// packed, SIMD micro-kernels chosen at run time for the CPU (AVX2/FMA where present), on this
/// thread alone unless `threaded` (for callers that spread the rows over threads themselves).
pub fn gemm_f32_with(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    threaded: bool,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && out.len() >= m * n);
    // SAFETY: the lengths are asserted above and `out` is exclusively borrowed.
    unsafe { gemm_into((m, k, n), a, b, out.as_mut_ptr(), threaded) }
}

/// `a @ b` (row-major m×k by k×n) in a new buffer that the GEMM writes without its being
/// cleared first: a large buffer comes from memory the heap reuses, which `vec![0.0; len]`
/// would set to zero only for the GEMM to write over it.
pub fn gemm_f32_new(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    threaded: bool,
) -> Vec<f32> {
    assert!(a.len() == m * k && b.len() == k * n);
    if k == 0 || m * n == 0 {
        return vec![0f32; m * n];
    }
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    // SAFETY: `out` has room for m×n floats and `a`, `b` hold m×k and k×n (asserted); the
    // GEMM only writes `out`, every one of its m×n elements (m, n and k are positive),
    // before the length is set.
    unsafe {
        gemm_into((m, k, n), a, b, out.as_mut_ptr(), threaded);
        out.set_len(m * n);
    }
    out
}

/// `out = a @ b` (row-major), writing every element of `out` without reading it.
///
/// # Safety
/// `a` and `b` hold at least m×k and k×n floats, `out` points to room for m×n floats, and
/// nothing else reads or writes that room meanwhile.
unsafe fn gemm_into(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    out: *mut f32,
    threaded: bool,
) {
    // SAFETY: the caller's contract; the strides describe row-major matrices inside the
    // three buffers, so no access is out of bounds or aliased.
    unsafe {
        gemm_strided(
            (m, k, n),
            (a.as_ptr(), k),
            (b.as_ptr(), n),
            (out, n),
            false,
            threaded,
        );
    }
}

/// `dst = lhs @ rhs`, or `dst += lhs @ rhs` with `accumulate`, for row-major matrices given
/// by their first element and row stride (elements of a row adjacent): `m × k` by `k × n`
/// into `m × n`, with the `gemm` crate, over rayon's threads where `threaded`.
///
/// # Safety
/// With its row stride, `lhs` addresses m×k floats, `rhs` k×n and `dst` m×n, all inside
/// live buffers; nothing else reads or writes `dst`'s floats meanwhile.
pub(super) unsafe fn gemm_strided(
    (m, k, n): (usize, usize, usize),
    (lhs, lhs_rs): (*const f32, usize),
    (rhs, rhs_rs): (*const f32, usize),
    (dst, dst_rs): (*mut f32, usize),
    accumulate: bool,
    threaded: bool,
) {
    let threads = if threaded {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs,
            1,
            lhs_rs as isize,
            rhs,
            1,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            threads,
        );
    }
}

/// `a @ b` for `a` of shape `[..., m, k]` and `b` of shape `[..., k, n]`, written into `reuse`
/// (a buffer of an earlier run) where it is one of the right size.
pub fn matmul(
    (a, sa): (&HostData, &[usize]),
    (b, sb): (&HostData, &[usize]),
    out_shape: &[usize],
    reuse: Option<Arc<HostData>>,
) -> Result<Arc<HostData>> {
    let (HostData::F32(a), HostData::F32(b)) = (a, b) else {
        return Err(Error::Backend {
            backend: "cpu".into(),
            detail: "matmul takes float32 inputs".into(),
        });
    };
    let (ra, rb, ro) = (sa.len(), sb.len(), out_shape.len());
    let (m, k, n) = (sa[ra - 2], sa[ra - 1], sb[rb - 1]);
    let batch_shape = &out_shape[..ro - 2];
    let batches: usize = batch_shape.iter().product();
    // Per-batch offsets, in units of whole matrices, via broadcast strides over batch dims.
    let a_batch = broadcast_strides(&sa[..ra - 2], batch_shape);
    let b_batch = broadcast_strides(&sb[..rb - 2], batch_shape);
    // Every element is written by its product (the GEMM does not read it), so a buffer of an
    // earlier run is written over as it is.
    let mut buffer = reuse
        .filter(|b| matches!(&**b, HostData::F32(v) if v.len() == batches * m * n))
        .unwrap_or_else(|| Arc::new(HostData::F32(vec![0f32; batches * m * n])));
    let Some(HostData::F32(out)) = Arc::get_mut(&mut buffer) else {
        return Err(Error::Backend {
            backend: "cpu".into(),
            detail: "matmul: the reused buffer is shared".into(),
        });
    };
    if m * n == 0 {
        return Ok(buffer);
    }
    // The offsets of batch `bi`'s operands, in units of whole matrices.
    let offsets = |bi: usize| {
        let (mut rest, mut ao, mut bo) = (bi, 0isize, 0isize);
        for d in (0..batch_shape.len()).rev() {
            let i = (rest % batch_shape[d]) as isize;
            rest /= batch_shape[d];
            ao += a_batch[d] * i;
            bo += b_batch[d] * i;
        }
        (ao as usize, bo as usize)
    };
    let product = |bi: usize, om: &mut [f32], threaded: bool| {
        let (ao, bo) = offsets(bi);
        let am = &a[ao * m * k..][..m * k];
        let bm = &b[bo * k * n..][..k * n];
        // Asked here, on the thread that runs the product (never from rayon's pool).
        if super::gemv::suits(m, k, n) {
            super::gemv::product(m, k, n, am, bm, om);
        } else {
            gemm_f32_with(m, k, n, am, bm, om, threaded);
        }
    };
    // Many products (attention's, one per batch and head): one per task, each on one thread,
    // rather than each product cut over the threads in turn.
    let threads = rayon::current_num_threads().max(1);
    if batches >= 2 * threads && batches * m * n * k >= 1 << 18 {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(bi, om)| product(bi, om, false));
    } else {
        for (bi, om) in out.chunks_mut(m * n).enumerate() {
            product(bi, om, m * n * k >= 1 << 18);
        }
    }
    Ok(buffer)
}
