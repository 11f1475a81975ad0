//! Streaming (non-temporal) stores for outputs larger than the caches: written straight to
//! memory, without first reading each cache line in (a plain store's read-for-ownership), which
//! spares a third of the memory traffic of a pass that reads one buffer and writes another.

/// Outputs of at least this many bytes are written with streaming stores: a quarter of the
/// last-level cache (as Linux reports it), past which a pass's input and output no longer stay
/// in the cache between runs and every line written would be evicted anyway; 32 MiB where the
/// cache size is unknown. On a machine with a 480 MiB cache (as the development VMs report), a
/// 64 MiB output written in place is faster than streamed, since the next run finds it cached.
pub fn stream_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| last_level_cache_bytes().map_or(32 << 20, |b| (b / 4).max(4 << 20)))
}

/// The size of the highest-level cache of CPU 0, from Linux's sysfs.
fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    let mut best: Option<(u32, usize)> = None;
    for entry in dir.flatten() {
        let read = |f: &str| std::fs::read_to_string(entry.path().join(f)).ok();
        let (Some(level), Some(size)) = (read("level"), read("size")) else {
            continue;
        };
        let Ok(level) = level.trim().parse::<u32>() else {
            continue;
        };
        let Some(bytes) = parse_size(size.trim()) else {
            continue;
        };
        if best.is_none_or(|(l, _)| level > l) {
            best = Some((level, bytes));
        }
    }
    best.map(|(_, b)| b)
}

/// A sysfs cache size: `32768K`, `2M`, or bytes.
fn parse_size(s: &str) -> Option<usize> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits.parse().ok()?;
    let scale = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

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

/// `dst[i] = src[i] / b` through `y = 1 / b` (see [`super::math::in_range_reciprocal`]: the
/// quotient `q = src * y` corrected once by the fused remainder `src - q b`), written with
/// streaming stores where the CPU has them: softmax's last pass straight into its output.
/// The dividends must lie in the reciprocal path's range; ordered as [`copy`] is.
#[inline]
pub fn copy_divided(dst: &mut [f32], src: &[f32], b: f32, y: f32) {
    debug_assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    {
        use super::isa::Isa;
        if let Isa::Avx512 | Isa::Avx2 = super::isa::active() {
            // SAFETY: `active` reports only instruction sets the CPU has (both have FMA).
            return unsafe { copy_divided_avx2(dst, src, b, y) };
        }
    }
    divided(dst, src, b, y);
}

/// The quotients of [`copy_divided`], element by element with plain stores.
#[inline(always)]
fn divided(dst: &mut [f32], src: &[f32], b: f32, y: f32) {
    for (d, &v) in dst.iter_mut().zip(src) {
        let q = v * y;
        let r = (-q).mul_add(b, v);
        *d = r.mul_add(y, q);
    }
}

/// [`copy_divided`] with AVX streaming stores for the whole lines of `dst`, as [`copy_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn copy_divided_avx2(dst: &mut [f32], src: &[f32], b: f32, y: f32) {
    use std::arch::x86_64::*;
    let (n, head, end) = whole_lines(dst, src);
    divided(&mut dst[..head], &src[..head], b, y);
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    // SAFETY: as in `copy_avx2`: each line lies inside both slices and `d + i` is 64-byte
    // aligned.
    unsafe {
        let (bv, yv) = (_mm256_set1_ps(b), _mm256_set1_ps(y));
        let quotient = |v: __m256| {
            let q = _mm256_mul_ps(v, yv);
            let r = _mm256_fnmadd_ps(q, bv, v);
            _mm256_fmadd_ps(r, yv, q)
        };
        let mut i = head;
        while i < end {
            _mm256_stream_ps(d.add(i), quotient(_mm256_loadu_ps(s.add(i))));
            _mm256_stream_ps(d.add(i + 8), quotient(_mm256_loadu_ps(s.add(i + 8))));
            i += LINE;
        }
    }
    divided(&mut dst[end..n], &src[end..n], b, y);
}

/// Asks the cache for the lines of `data`, to be read soon (a hint: no effect on results).
#[inline(always)]
pub fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks(16) {
        // SAFETY: a prefetch reads nothing and faults on nothing; the address is in `data`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
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

/// [`copy`] with AVX streaming stores for the whole 64-byte lines of `dst` (two 8-float stores
/// each), plain stores for the part before the first and after the last: a line is written
/// one way or the other, never both (a streaming store to a line held in the cache flushes it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy_avx2(dst: &mut [f32], src: &[f32]) {
    use std::arch::x86_64::{_mm256_loadu_ps, _mm256_stream_ps};
    let (n, head, end) = whole_lines(dst, src);
    plain(&mut dst[..head], &src[..head]);
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    // SAFETY: each line is 16 floats at an offset i with i + 16 <= end <= n, inside both
    // slices, and `d + i` is 64-byte aligned.
    unsafe {
        let mut i = head;
        while i < end {
            _mm256_stream_ps(d.add(i), _mm256_loadu_ps(s.add(i)));
            _mm256_stream_ps(d.add(i + 8), _mm256_loadu_ps(s.add(i + 8)));
            i += LINE;
        }
    }
    plain(&mut dst[end..n], &src[end..n]);
}

/// Floats per 64-byte line.
const LINE: usize = 16;

/// Where the whole 64-byte lines of `dst` lie: `(n, head, end)`, the length written (the
/// shorter of the two), and the range `head..end` of whole lines (`end - head` a multiple of
/// [`LINE`]), the part before written plainly and the part after too.
#[inline(always)]
fn whole_lines(dst: &[f32], src: &[f32]) -> (usize, usize, usize) {
    let n = dst.len().min(src.len());
    let misaligned = (dst.as_ptr() as usize / 4) % LINE;
    let head = if misaligned == 0 {
        0
    } else {
        (LINE - misaligned).min(n)
    };
    (n, head, head + (n - head) / LINE * LINE)
}

/// A copy of fewer than 16 floats, element by element (a `memcpy` call costs more).
#[inline(always)]
fn plain(dst: &mut [f32], src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sysfs_cache_sizes_parse() {
        assert_eq!(super::parse_size("491520K"), Some(480 << 20));
        assert_eq!(super::parse_size("2M"), Some(2 << 20));
        assert_eq!(super::parse_size("1024"), Some(1024));
        assert_eq!(super::parse_size("12Q"), None);
        assert_eq!(super::parse_size(""), None);
        assert!(super::stream_bytes() >= 4 << 20);
    }

    /// The streamed quotients are softmax's in-place ones (`div_in_range_in_place`), bit for
    /// bit, at every alignment and length, and nothing outside `dst` is written.
    #[test]
    fn streamed_quotients_equal_the_in_place_ones() {
        let src: Vec<f32> = (0..300)
            .map(|i| ((i * 37) % 101) as f32 * 0.013 + 1e-3)
            .collect();
        let b: f32 = src.iter().sum();
        let Some(y) = super::super::math::in_range_reciprocal(b) else {
            eprintln!("this CPU has no FMA: softmax divides plainly, and never streams quotients");
            return;
        };
        let mut want = src.clone();
        super::super::math::div_in_range_in_place(&mut want, b);
        for offset in 0..17 {
            for len in [0, 1, 7, 15, 16, 17, 31, 64, 255, 283] {
                let mut dst = vec![f32::NAN; offset + len + 3];
                super::copy_divided(&mut dst[offset..offset + len], &src[..len], b, y);
                super::fence();
                for (i, (g, w)) in dst[offset..offset + len].iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "offset {offset}, length {len}, [{i}]"
                    );
                }
                assert!(dst[..offset].iter().all(|x| x.is_nan()));
                assert!(dst[offset + len..].iter().all(|x| x.is_nan()));
            }
        }
    }

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
