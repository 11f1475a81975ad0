//! Batched matrix product with NumPy batch broadcasting.

use super::strided::broadcast_strides;
use lamina_graph::{Error, HostData, Result};
use std::sync::Arc;

/// `out = a @ b` for row-major `a` (m×k), `b` (k×n), `out` (m×n), with the `gemm` crate:
/// packed, SIMD micro-kernels chosen at run time for the CPU (AVX2/FMA where present), and
/// threads for large products.
fn gemm_f32(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    gemm_f32_with(m, k, n, a, b, out, m * n * k >= 1 << 18);
}

/// `gemm_f32`, on this thread alone unless `threaded` (for callers that spread the rows over
/// threads themselves).
pub fn gemm_f32_with(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    threaded: bool,
) {
    let threads = if threaded {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `gemm` takes raw pointers. The three slices have exactly m*k, k*n and m*n
    // elements (checked by the caller's slicing), the strides below describe row-major
    // matrices inside them, and `out` is exclusively borrowed, so no access is out of bounds
    // or aliased.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
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
    let mut index = vec![0usize; batch_shape.len()];
    for bi in 0..batches {
        let mut ao = 0isize;
        let mut bo = 0isize;
        for (d, &i) in index.iter().enumerate() {
            ao += a_batch[d] * i as isize;
            bo += b_batch[d] * i as isize;
        }
        let am = &a[ao as usize * m * k..][..m * k];
        let bm = &b[bo as usize * k * n..][..k * n];
        let om = &mut out[bi * m * n..][..m * n];
        gemm_f32(m, k, n, am, bm, om);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < batch_shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(buffer)
}
