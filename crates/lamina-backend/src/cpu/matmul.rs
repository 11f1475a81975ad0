//! Batched matrix product with NumPy batch broadcasting.

use super::strided::broadcast_strides;
use lamina_graph::{Error, HostData, Result};

/// `a @ b` for `a` of shape `[..., m, k]` and `b` of shape `[..., k, n]`.
pub fn matmul(
    a: &HostData,
    sa: &[usize],
    b: &HostData,
    sb: &[usize],
    out_shape: &[usize],
) -> Result<HostData> {
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
    let mut out = vec![0f32; batches * m * n];
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
        for i in 0..m {
            let orow = &mut om[i * n..(i + 1) * n];
            for p in 0..k {
                let av = am[i * k + p];
                let brow = &bm[p * n..(p + 1) * n];
                for (o, &bv) in orow.iter_mut().zip(brow) {
                    *o += av * bv;
                }
            }
        }
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < batch_shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(HostData::F32(out))
}
