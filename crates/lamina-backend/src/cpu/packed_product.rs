//! Matrix products against weights packed once into column panels: `a @ w` where `w` is a
//! weight matrix a loop or layer reads again and again (an LSTM's recurrent kernel, every
//! step). Each panel holds [`PANEL`] columns of every row of `w`, contiguous, so a product
//! streams it front to back (the hardware prefetchers follow it, and no row of it lies a
//! power-of-two stride from the next); a block of rows of `a` is multiplied by a panel in
//! registers (AVX-512: 12 rows × 32 columns, AVX2: 6 rows × 16 columns), each output the sum
//! of its `k` products in order, one fused multiply-add after the other. The sums therefore do
//! not depend on how many rows a product has or where a block starts. With AVX2, where `a` has
//! 16 rows or more (and at most 2^16 floats), they are first copied into the order a block
//! reads them, so the kernel reads one stream at fixed offsets instead of computing six row
//! addresses at every step of the sum.

use super::isa::Isa;
use super::kept::{Form, Kept};
use rayon::prelude::*;
use std::sync::Arc;

/// Columns per panel.
pub const PANEL: usize = 32;

/// A `k × n` row-major matrix packed into column panels of [`PANEL`] columns: panel `p` holds
/// columns `p * PANEL..` of rows `0..k`, [`PANEL`] floats per row, the last panel padded with
/// zeros.
#[derive(Clone, Debug)]
pub struct PackedColumns {
    k: usize,
    n: usize,
    panels: Arc<Vec<f32>>,
}

impl PackedColumns {
    /// The row-major `k × n` matrix `w` packed: the form `kept` holds for this buffer, or
    /// packed now (and kept there).
    pub fn of(w: &[f32], (k, n): (usize, usize), kept: Option<Kept<'_>>) -> PackedColumns {
        let make = || panels(w, k, n);
        let panels = match kept {
            Some(kept) => kept.get_or_make(Form::Panels, make),
            None => Arc::new(make()),
        };
        PackedColumns { k, n, panels }
    }

    /// The bytes a packed `k × n` matrix takes.
    pub fn bytes(k: usize, n: usize) -> u64 {
        (n.div_ceil(PANEL) * k * PANEL * 4) as u64
    }
}

/// The column panels of the row-major `k × n` matrix `w`.
fn panels(w: &[f32], k: usize, n: usize) -> Vec<f32> {
    assert_eq!(w.len(), k * n, "packed product: weights of {k} × {n}");
    let mut panels = vec![0f32; n.div_ceil(PANEL) * k * PANEL];
    if n > 0 && k > 0 {
        for (p, panel) in panels.chunks_exact_mut(k * PANEL).enumerate() {
            let (c0, cols) = (p * PANEL, PANEL.min(n - p * PANEL));
            for (row, dst) in w.chunks_exact(n).zip(panel.chunks_exact_mut(PANEL)) {
                dst[..cols].copy_from_slice(&row[c0..c0 + cols]);
            }
        }
    }
    panels
}

/// Whether [`product`] runs on this CPU with the instruction set in use (AVX2 with FMA or
/// AVX-512); elsewhere callers use the `gemm` crate.
pub fn available() -> bool {
    matches!(super::isa::active(), Isa::Avx2 | Isa::Avx512)
}

/// `c = a @ w`, or `c += a @ w` with `accumulate`, for row-major `a` (`m × k`, row stride
/// `lda`) and `c` (`m × n`, row stride `ldc`); the panels shared out over rayon's threads
/// where `threaded` (the same sums). Needs [`available`].
pub fn product(
    m: usize,
    (a, lda): (&[f32], usize),
    w: &PackedColumns,
    (c, ldc): (&mut [f32], usize),
    (accumulate, threaded): (bool, bool),
) {
    let isa = super::isa::active();
    product_with(isa, m, (a, lda), w, (c, ldc), (accumulate, threaded));
}

/// Checks a product's operands (panics where the caller broke the contract) and returns
/// whether it has any products to sum: with none, `c` is already the result (zeros for an
/// empty depth unless `accumulate`).
fn has_products(
    isa: Isa,
    m: usize,
    (a, lda): (&[f32], usize),
    w: &PackedColumns,
    (c, ldc): (&mut [f32], usize),
    accumulate: bool,
) -> bool {
    let (k, n) = (w.k, w.n);
    if m == 0 || n == 0 {
        return false;
    }
    assert!(
        lda >= k && ldc >= n,
        "packed product: row strides {lda}, {ldc} for {k} × {n}"
    );
    assert!(
        a.len() >= (m - 1) * lda + k && c.len() >= (m - 1) * ldc + n,
        "packed product: {m} rows of {k} and {n} in {} and {} floats",
        a.len(),
        c.len()
    );
    assert!(
        isa.supported(),
        "packed product: {} not on this CPU",
        isa.name()
    );
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(ldc).take(m) {
                row[..n].fill(0.0);
            }
        }
        return false;
    }
    true
}

/// The fewest rows of `a` that [`product`] packs with AVX2 (see [`pack_rows`]) before
/// multiplying.
#[cfg(target_arch = "x86_64")]
const PACK_MIN_ROWS: usize = 16;
/// The most floats of `a` that [`product`] packs (256 KiB): larger products keep `a` as it
/// lies, rather than holding a copy of it.
#[cfg(target_arch = "x86_64")]
const PACK_MAX_FLOATS: usize = 1 << 16;

/// Copies `rows` rows of `k` floats of `a` (row stride `lda`) into `packed` (`rows * k`
/// floats) in the AVX2 kernel's blocks ([`x86::avx2_block_rows`]): a block of `r` rows from row
/// `r0` holds its row `i`'s float `p` at `r0 * k + p * r + i`, so the kernel reads a block
/// front to back.
#[cfg(target_arch = "x86_64")]
fn pack_rows(a: &[f32], lda: usize, (rows, k): (usize, usize), packed: &mut [f32]) {
    let mut r0 = 0;
    while r0 < rows {
        let r = x86::avx2_block_rows(rows - r0);
        let block = &mut packed[r0 * k..(r0 + r) * k];
        for i in 0..r {
            let row = &a[(r0 + i) * lda..][..k];
            for (p, &x) in row.iter().enumerate() {
                block[p * r + i] = x;
            }
        }
        r0 += r;
    }
}

/// [`product`] with the instruction set `isa` (which this CPU must have).
fn product_with(
    isa: Isa,
    m: usize,
    (a, lda): (&[f32], usize),
    w: &PackedColumns,
    (c, ldc): (&mut [f32], usize),
    (accumulate, threaded): (bool, bool),
) {
    let k = w.k;
    if !has_products(isa, m, (a, lda), w, (c, ldc), accumulate) {
        return;
    }
    // AVX-512's kernel, with twice the registers, keeps its row addresses in them: packing
    // made its products slower (LSTM 34.1 -> 35.3 ms), AVX2's faster (53.3 -> 50.0 ms).
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 && m >= PACK_MIN_ROWS && m * k <= PACK_MAX_FLOATS {
        super::scratch::with_buffers(|[packed]| {
            packed.resize(m * k, 0.0);
            pack_rows(a, lda, (m, k), packed);
            panels_of(isa, m, (packed, None), w, (c, ldc), (accumulate, threaded));
        });
        return;
    }
    panels_of(isa, m, (a, Some(lda)), w, (c, ldc), (accumulate, threaded));
}

/// [`product_with`] once `a` is ready: its rows as they lie (with their stride), or packed
/// (`None`, AVX2 only) by [`pack_rows`] in blocks of the kernel's rows; each panel times all of them, the
/// panels shared out over rayon's threads where `threaded`.
fn panels_of(
    isa: Isa,
    m: usize,
    (a, lda): (&[f32], Option<usize>),
    w: &PackedColumns,
    (c, ldc): (&mut [f32], usize),
    (accumulate, threaded): (bool, bool),
) {
    let (k, n) = (w.k, w.n);
    let cp = c.as_mut_ptr() as usize;
    let one = |p: usize| {
        let (c0, cols) = (p * PANEL, PANEL.min(n - p * PANEL));
        let panel = &w.panels[p * k * PANEL..][..k * PANEL];
        // SAFETY: `has_products` kept every row of `a` (k floats from r * lda, or the m packed
        // rows of k floats) and of `c` (columns c0..c0 + cols from r * ldc) inside the slices,
        // which are borrowed for the whole product; each panel's columns are written by its
        // call alone; `panel` holds k rows of PANEL floats; `isa` is supported.
        unsafe {
            let (ap, cp) = (a.as_ptr(), (cp as *mut f32).add(c0));
            match (isa, lda) {
                #[cfg(target_arch = "x86_64")]
                (Isa::Avx512, Some(lda)) => {
                    x86::panel_avx512(m, k, (ap, lda), panel, (cp, ldc, cols), accumulate)
                }
                #[cfg(target_arch = "x86_64")]
                (Isa::Avx2, lda) => {
                    for half in 0..2 {
                        let (h0, hcols) = (half * 16, cols.saturating_sub(half * 16).min(16));
                        if hcols == 0 {
                            continue;
                        }
                        let (w, out) = (panel.as_ptr().add(h0), (cp.add(h0), ldc, hcols));
                        match lda {
                            Some(lda) => x86::panel_avx2(m, k, (ap, lda), w, out, accumulate),
                            None => x86::packed_rows_avx2(m, k, ap, w, out, accumulate),
                        }
                    }
                }
                _ => panic!("packed product: AVX2 or AVX-512 needed"),
            }
        }
    };
    let count = n.div_ceil(PANEL);
    if threaded {
        (0..count).into_par_iter().for_each(one);
    } else {
        (0..count).for_each(one);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::PANEL;
    use std::arch::x86_64::*;

    /// Calls `$block::<R>` on the five arguments in `$args`, `R` the rows `$left` (at most
    /// `$most`, one monomorphic block per row count).
    macro_rules! with_rows {
        ($block:ident, $left:expr, $args:expr, $most:literal, [$($r:literal),*]) => {{
            let (k, a, w, out, accumulate) = $args;
            match $left {
                $most.. => $block::<$most>(k, a, w, out, accumulate),
                $($r => $block::<$r>(k, a, w, out, accumulate),)*
                _ => $block::<1>(k, a, w, out, accumulate),
            }
        }};
    }

    /// Rows of `a` per AVX-512 block (two accumulators each: 24 of the 32 registers).
    const ROWS_512: usize = 12;
    /// Rows of `a` per AVX2 block (two accumulators each: 12 of the 16 registers).
    const ROWS_256: usize = 6;

    /// Rows in the next AVX2 block when `left` rows remain: [`ROWS_256`], but the last 7 or 8
    /// as two blocks of 3 or 4 rather than 6 and 1 or 2, whose few sums in flight leave an FMA
    /// unit idle (the sums are the same, each still in order).
    pub(super) fn avx2_block_rows(left: usize) -> usize {
        if left == 7 || left == 8 {
            4
        } else {
            left.min(ROWS_256)
        }
    }

    /// Every block of rows of `a` times one panel, into `cols` columns of `c`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn panel_avx512(
        m: usize,
        k: usize,
        (a, lda): (*const f32, usize),
        panel: &[f32],
        (c, ldc, cols): (*mut f32, usize, usize),
        accumulate: bool,
    ) {
        let w = panel.as_ptr();
        let mut r = 0;
        // SAFETY (all calls): the caller's bounds, block by block.
        unsafe {
            while r < m {
                let (ar, cr) = (a.add(r * lda), c.add(r * ldc));
                let out = (cr, ldc, cols);
                let args = (k, (ar, lda), w, out, accumulate);
                with_rows!(
                    block_avx512,
                    m - r,
                    args,
                    12,
                    [11, 10, 9, 8, 7, 6, 5, 4, 3, 2]
                );
                r += ROWS_512;
            }
        }
    }

    /// `rows` packed rows (by [`super::pack_rows`], `k` deep) times one half of a panel (`w` at
    /// the half's first column), into `cols` (at most 16) columns of `c`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn packed_rows_avx2(
        rows: usize,
        k: usize,
        a: *const f32,
        w: *const f32,
        (c, ldc, cols): (*mut f32, usize, usize),
        accumulate: bool,
    ) {
        // SAFETY (all calls): the caller's bounds, block by block.
        unsafe {
            let mut r = 0;
            while r < rows {
                let block = avx2_block_rows(rows - r);
                let out = (c.add(r * ldc), ldc, cols);
                let args = (k, (a.add(r * k), 0), w, out, accumulate);
                with_rows!(packed_avx2, block, args, 6, [5, 4, 3, 2]);
                r += block;
            }
        }
    }

    /// `R` rows of `a` times a panel: two 16-lane accumulators per row, summed over `k` in
    /// order, then stored (or added) into the first `cols` columns of `c`'s rows.
    #[inline(always)]
    unsafe fn block_avx512<const R: usize>(
        k: usize,
        (a, lda): (*const f32, usize),
        w: *const f32,
        (c, ldc, cols): (*mut f32, usize, usize),
        accumulate: bool,
    ) {
        // SAFETY: the caller's bounds: R rows of k floats of `a`, k rows of the panel, R rows
        // of `cols` floats of `c` (masked loads and stores past them).
        unsafe {
            let lo = if cols >= 16 {
                0xffff
            } else {
                (1u32 << cols) as u16 - 1
            };
            let hi = if cols >= 32 {
                0xffff
            } else {
                ((1u32 << cols.saturating_sub(16)) - 1) as u16
            };
            let mut acc0 = [_mm512_setzero_ps(); R];
            let mut acc1 = [_mm512_setzero_ps(); R];
            if accumulate {
                for i in 0..R {
                    acc0[i] = _mm512_maskz_loadu_ps(lo, c.add(i * ldc));
                    acc1[i] = _mm512_maskz_loadu_ps(hi, c.add(i * ldc + 16));
                }
            }
            let rows: [*const f32; R] = std::array::from_fn(|i| a.add(i * lda));
            for p in 0..k {
                let w0 = _mm512_loadu_ps(w.add(p * PANEL));
                let w1 = _mm512_loadu_ps(w.add(p * PANEL + 16));
                for i in 0..R {
                    let x = _mm512_set1_ps(*rows[i].add(p));
                    acc0[i] = _mm512_fmadd_ps(x, w0, acc0[i]);
                    acc1[i] = _mm512_fmadd_ps(x, w1, acc1[i]);
                }
            }
            for i in 0..R {
                _mm512_mask_storeu_ps(c.add(i * ldc), lo, acc0[i]);
                _mm512_mask_storeu_ps(c.add(i * ldc + 16), hi, acc1[i]);
            }
        }
    }

    /// Every block of rows of `a` times one half (16 columns) of a panel, into `cols`
    /// columns of `c`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn panel_avx2(
        m: usize,
        k: usize,
        (a, lda): (*const f32, usize),
        w: *const f32,
        (c, ldc, cols): (*mut f32, usize, usize),
        accumulate: bool,
    ) {
        let mut r = 0;
        // SAFETY (all calls): the caller's bounds, block by block.
        unsafe {
            while r < m {
                let (ar, cr) = (a.add(r * lda), c.add(r * ldc));
                let out = (cr, ldc, cols);
                let args = (k, (ar, lda), w, out, accumulate);
                let rows = avx2_block_rows(m - r);
                with_rows!(rows_avx2, rows, args, 6, [5, 4, 3, 2]);
                r += rows;
            }
        }
    }

    /// [`block_avx2`] on rows as they lie.
    #[inline(always)]
    unsafe fn rows_avx2<const R: usize>(
        k: usize,
        a: (*const f32, usize),
        w: *const f32,
        out: (*mut f32, usize, usize),
        accumulate: bool,
    ) {
        // SAFETY: the caller's.
        unsafe { block_avx2::<R, false>(k, a, w, out, accumulate) }
    }

    /// [`block_avx2`] on a block of packed rows.
    #[inline(always)]
    unsafe fn packed_avx2<const R: usize>(
        k: usize,
        a: (*const f32, usize),
        w: *const f32,
        out: (*mut f32, usize, usize),
        accumulate: bool,
    ) {
        // SAFETY: the caller's.
        unsafe { block_avx2::<R, true>(k, a, w, out, accumulate) }
    }

    /// `R` rows of `a` times 16 columns of a panel (`w` at the half's first column): two
    /// 8-lane accumulators per row, summed over `k` in order, into `cols` columns of `c`.
    /// With `PACKED`, `a` is a block of `R` packed rows (see [`super::pack_rows`]: element
    /// `(i, p)` at `p * R + i`) and `lda` is not read.
    #[inline(always)]
    unsafe fn block_avx2<const R: usize, const PACKED: bool>(
        k: usize,
        (a, lda): (*const f32, usize),
        w: *const f32,
        (c, ldc, cols): (*mut f32, usize, usize),
        accumulate: bool,
    ) {
        // SAFETY: as for `block_avx512`; partial rows go through a 16-float buffer.
        unsafe {
            let mut acc0 = [_mm256_setzero_ps(); R];
            let mut acc1 = [_mm256_setzero_ps(); R];
            if accumulate {
                for i in 0..R {
                    let mut row = [0f32; 16];
                    std::ptr::copy_nonoverlapping(c.add(i * ldc), row.as_mut_ptr(), cols);
                    acc0[i] = _mm256_loadu_ps(row.as_ptr());
                    acc1[i] = _mm256_loadu_ps(row.as_ptr().add(8));
                }
            }
            for p in 0..k {
                let w0 = _mm256_loadu_ps(w.add(p * PANEL));
                let w1 = _mm256_loadu_ps(w.add(p * PANEL + 8));
                for i in 0..R {
                    let x = if PACKED {
                        _mm256_set1_ps(*a.add(p * R + i))
                    } else {
                        _mm256_set1_ps(*a.add(i * lda + p))
                    };
                    acc0[i] = _mm256_fmadd_ps(x, w0, acc0[i]);
                    acc1[i] = _mm256_fmadd_ps(x, w1, acc1[i]);
                }
            }
            for i in 0..R {
                if cols == 16 {
                    _mm256_storeu_ps(c.add(i * ldc), acc0[i]);
                    _mm256_storeu_ps(c.add(i * ldc + 8), acc1[i]);
                } else {
                    let mut row = [0f32; 16];
                    _mm256_storeu_ps(row.as_mut_ptr(), acc0[i]);
                    _mm256_storeu_ps(row.as_mut_ptr().add(8), acc1[i]);
                    std::ptr::copy_nonoverlapping(row.as_ptr(), c.add(i * ldc), cols);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each output is its `k` products summed in order by fused multiply-adds (from the old
    /// value with `accumulate`): the definition, worked out here one `mul_add` at a time, bit
    /// for bit, on both instruction sets, on one thread and over threads; rows and columns
    /// past a block or panel, strides wider than the rows, and the floats between rows left
    /// as they were; with AVX2, rows packed first (16 or more, up to 2^16 floats) and rows as
    /// they lie (fewer, or more floats).
    #[test]
    fn products_are_their_fused_sums_in_order_on_each_instruction_set() {
        let value =
            |i: usize, seed: usize| ((i * 7919 + seed * 104729) % 2003) as f32 / 1001.0 - 1.0;
        let shapes = [
            (1, 1, 1),
            (5, 7, 17),
            (12, 64, 32),
            (13, 33, 33),
            (32, 256, 170),
            (25, 3, 96),
            (4, 0, 9),
            (100, 600, 70),
            (193, 257, 40),
            (16, 4096, 33),
            (17, 4096, 40),
        ];
        for isa in [Isa::Avx2, Isa::Avx512] {
            if !isa.supported() {
                eprintln!(
                    "this CPU has no {}; its packed product is not tested",
                    isa.name()
                );
                continue;
            }
            for (m, k, n) in shapes {
                let (lda, ldc) = (k + 3, n + 5);
                let a: Vec<f32> = (0..m * lda).map(|i| value(i, 1)).collect();
                let w: Vec<f32> = (0..k * n).map(|i| value(i, 2)).collect();
                let packed = PackedColumns::of(&w, (k, n), None);
                for (accumulate, threaded) in
                    [(false, false), (true, false), (false, true), (true, true)]
                {
                    let before: Vec<f32> = (0..m * ldc).map(|i| value(i, 3)).collect();
                    let mut c = before.clone();
                    product_with(
                        isa,
                        m,
                        (&a, lda),
                        &packed,
                        (&mut c, ldc),
                        (accumulate, threaded),
                    );
                    for r in 0..m {
                        for j in 0..ldc {
                            let at = r * ldc + j;
                            let want = if j >= n {
                                before[at]
                            } else {
                                let start = if accumulate { before[at] } else { 0.0 };
                                (0..k).fold(start, |s, p| a[r * lda + p].mul_add(w[p * n + j], s))
                            };
                            assert_eq!(
                                c[at].to_bits(),
                                want.to_bits(),
                                "{} {m}x{k}x{n}, accumulate {accumulate}, threaded {threaded}: \
                                 [{r}, {j}] {} vs {want}",
                                isa.name(),
                                c[at]
                            );
                        }
                    }
                }
            }
        }
    }
}
