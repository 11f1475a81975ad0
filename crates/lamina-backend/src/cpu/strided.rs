//! Strided reads: the index arithmetic behind every view (broadcast, permute, slice).

/// Row-major strides of a contiguous tensor of this shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut acc = 1isize;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i] as isize;
    }
    strides
}

/// Strides that read a contiguous tensor of shape `from` as if broadcast to `to` (NumPy rules:
/// align right, size-1 dims repeat with stride 0).
pub fn broadcast_strides(from: &[usize], to: &[usize]) -> Vec<isize> {
    let base = contiguous_strides(from);
    let off = to.len() - from.len();
    (0..to.len())
        .map(|i| {
            if i < off {
                0
            } else {
                let j = i - off;
                if from[j] == 1 && to[i] != 1 {
                    0
                } else {
                    base[j]
                }
            }
        })
        .collect()
}

/// Reads `src` through a view (`shape`, `strides`, `offset`) into a new contiguous vector.
pub fn gather<T: Copy>(src: &[T], shape: &[usize], strides: &[isize], offset: isize) -> Vec<T> {
    let total: usize = shape.iter().product();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let rank = shape.len();
    if rank == 0 {
        out.push(src[offset as usize]);
        return out;
    }
    let inner = shape[rank - 1];
    let inner_stride = strides[rank - 1];
    let mut index = vec![0usize; rank - 1];
    let mut base = offset;
    loop {
        if inner_stride == 1 {
            let start = base as usize;
            out.extend_from_slice(&src[start..start + inner]);
        } else {
            let mut p = base;
            for _ in 0..inner {
                out.push(src[p as usize]);
                p += inner_stride;
            }
        }
        if !advance(&mut index, &mut base, shape, strides) {
            return out;
        }
    }
}

/// Steps the index over the leading axes (all but the last) like an odometer, moving `base`
/// along with it; `false` once every index has wrapped around.
#[inline(always)]
fn advance(index: &mut [usize], base: &mut isize, shape: &[usize], strides: &[isize]) -> bool {
    for axis in (0..index.len()).rev() {
        index[axis] += 1;
        *base += strides[axis];
        if index[axis] < shape[axis] {
            return true;
        }
        *base -= strides[axis] * shape[axis] as isize;
        index[axis] = 0;
    }
    false
}

/// Reads `src` through a view (`shape`, `strides`, `offset`) into `dst`, which holds exactly
/// the view's elements: [`gather`] without allocating, runs along the last axis copied in
/// vector pieces rather than by `memcpy` calls.
pub fn gather_into<T: Copy>(
    dst: &mut [T],
    src: &[T],
    shape: &[usize],
    strides: &[isize],
    offset: isize,
) {
    let rank = shape.len();
    if dst.is_empty() {
        return;
    }
    if rank == 0 {
        dst[0] = src[offset as usize];
        return;
    }
    let inner = shape[rank - 1];
    let inner_stride = strides[rank - 1];
    let mut index = vec![0usize; rank - 1];
    let mut base = offset;
    for row in dst.chunks_exact_mut(inner.max(1)) {
        if inner_stride == 1 {
            let start = base as usize;
            copy_row(row, &src[start..start + inner]);
        } else {
            let mut p = base;
            for o in row.iter_mut() {
                *o = src[p as usize];
                p += inner_stride;
            }
        }
        advance(&mut index, &mut base, shape, strides);
    }
}

/// Copies a short row in fixed 16-element pieces, which compile to vector moves; a
/// `copy_from_slice` of a run-time length calls the C library's `memcpy`, whose start-up cost
/// dominates rows of a few hundred bytes.
#[inline(always)]
pub fn copy_row<T: Copy>(dst: &mut [T], src: &[T]) {
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (a, b) in (&mut d).zip(&mut s) {
        let b: &[T; 16] = b.try_into().expect("a 16-element chunk");
        let a: &mut [T; 16] = a.try_into().expect("a 16-element chunk");
        *a = *b;
    }
    for (a, &b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a = b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_transposes_and_broadcasts() {
        // [[0,1,2],[3,4,5]] transposed is [[0,3],[1,4],[2,5]].
        let src: Vec<i32> = (0..6).collect();
        assert_eq!(gather(&src, &[3, 2], &[1, 3], 0), vec![0, 3, 1, 4, 2, 5]);
        // [10, 20] broadcast to (2, 2) along rows.
        let s = broadcast_strides(&[2], &[2, 2]);
        assert_eq!(gather(&[10, 20], &[2, 2], &s, 0), vec![10, 20, 10, 20]);
        // [[1],[2]] broadcast to (2, 3).
        let s = broadcast_strides(&[2, 1], &[2, 3]);
        assert_eq!(gather(&[1, 2], &[2, 3], &s, 0), vec![1, 1, 1, 2, 2, 2]);
        // Reversed: start at the end with a negative stride.
        assert_eq!(gather(&[1, 2, 3], &[3], &[-1], 2), vec![3, 2, 1]);
        // Into a buffer: the same elements as `gather`, for a permutation of (2, 3, 4).
        let src: Vec<i32> = (0..24).collect();
        let (shape, strides) = ([4, 2, 3], [1, 12, 4]);
        let mut dst = vec![-1; 24];
        gather_into(&mut dst, &src, &shape, &strides, 0);
        assert_eq!(dst, gather(&src, &shape, &strides, 0));
        assert_eq!(&dst[..6], &[0, 4, 8, 12, 16, 20]);
    }
}
