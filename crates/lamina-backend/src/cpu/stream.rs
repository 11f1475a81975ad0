//! Streaming (non-temporal) stores for outputs larger than the caches: written straight to
//! memory, without first reading each cache line in (a plain store's read-for-ownership), which
//! spares a third of the memory traffic of a pass that reads one buffer and writes another.

/// Outputs of at least this many bytes are written with streaming stores: far past the last
/// level cache of the machines we measure on, where every line written would be evicted anyway.
pub const STREAM_BYTES: usize = 32 << 20;

/// Copies `src` into `dst` (same length) with streaming stores where the CPU has them; the
/// copy is ordered before later stores only after [`fence`].
#[inline]
pub fn copy(dst: &mut [f32], src: &[f32]) {
    debug_assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    {
        use super::isa::Isa;
        // 32-byte streaming stores on AVX-512 machines too: two of them fill a line in the
        // write-combining buffer as one 64-byte store does.
        if let Isa::Avx512 | Isa::Avx2 = super::isa::active() {
            // SAFETY: `active` reports only instruction sets the CPU has.
            return unsafe { copy_avx2(dst, src) };
        }
    }
    dst.copy_from_slice(src);
}

/// Orders the streaming stores made so far by this thread before its later stores (the end
/// of a task that wrote with [`copy`]).
#[inline]
pub fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` is part of SSE, which every x86-64 CPU has.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    }
}

/// The streaming copy in lanes of `W` floats: plain stores up to the first `W * 4`-byte
/// aligned element and after the last whole lane, `stream` for the aligned lanes between.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn copy_lanes<const W: usize>(
    dst: &mut [f32],
    src: &[f32],
    stream: impl Fn(*mut f32, *const f32),
) {
    let n = dst.len().min(src.len());
    let misaligned = (dst.as_ptr() as usize / 4) % W;
    let head = if misaligned == 0 {
        0
    } else {
        (W - misaligned).min(n)
    };
    dst[..head].copy_from_slice(&src[..head]);
    let body = (n - head) / W * W;
    for i in (head..head + body).step_by(W) {
        // In bounds: i + W <= head + body <= n; `dst + i` is aligned to W floats.
        stream(dst[i..].as_mut_ptr(), src[i..].as_ptr());
    }
    dst[head + body..n].copy_from_slice(&src[head + body..n]);
}

/// [`copy`] with AVX streaming stores (8 floats).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy_avx2(dst: &mut [f32], src: &[f32]) {
    use std::arch::x86_64::{_mm256_loadu_ps, _mm256_stream_ps};
    // SAFETY: `copy_lanes` passes pointers to 8 readable and 8 writable floats, the latter
    // 32-byte aligned.
    unsafe {
        copy_lanes::<8>(dst, src, |d, s| _mm256_stream_ps(d, _mm256_loadu_ps(s)));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn streaming_copies_equal_plain_ones_at_every_offset_and_length() {
        let src: Vec<f32> = (0..300).map(|i| i as f32 * 0.5 - 7.0).collect();
        for offset in 0..17 {
            for len in [0, 1, 7, 15, 16, 17, 31, 64, 255, 283] {
                let mut dst = vec![f32::NAN; offset + len + 3];
                super::copy(&mut dst[offset..offset + len], &src[..len]);
                super::fence();
                assert_eq!(&dst[offset..offset + len], &src[..len]);
                assert!(dst[..offset].iter().all(|x| x.is_nan()));
                assert!(dst[offset + len..].iter().all(|x| x.is_nan()));
            }
        }
    }
}
