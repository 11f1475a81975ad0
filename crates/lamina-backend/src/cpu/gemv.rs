//! Products of a few rows (batch-1 inference) against large weights. The weights are read
//! once per product, so their bandwidth is the whole cost: the weights' rows are split in two
//! contiguous halves, one per thread (the caller and the helper thread of `pair`), each summed
//! into its own partial product, and the caller adds the two. A half of a dense layer's
//! weights (a megabyte or so) then stays in its core's L2 from one run to the next (a split by
//! columns would not: its rows, a power-of-two stride apart, use half of the cache's sets).

use super::isa::call_with_best_isa;

/// The most rows a product may have to be run here.
pub const MAX_ROWS: usize = 4;

/// The fewest weights (k×n) worth the helper thread: smaller ones are left to the GEMM.
const MIN_WEIGHTS: usize = 1 << 16;

/// Output columns each pass over a half of the weights accumulates in registers.
const COLUMNS: usize = 64;

/// Columns per strip for a single row: 128 (eight AVX-512 accumulators, eight chains of
/// multiply-adds that overlap, half a kilobyte of each weight row read at once).
const WIDE_COLUMNS: usize = 128;

/// Whether an m×k by k×n product is one for [`product`]: a few rows against large weights,
/// asked for from outside rayon's pool (whose threads the helper would compete with).
pub fn suits(m: usize, k: usize, n: usize) -> bool {
    (1..=MAX_ROWS).contains(&m)
        && k >= 2
        && k * n >= MIN_WEIGHTS
        && rayon::current_thread_index().is_none()
}

/// `out = a @ b` for row-major `a` (m×k, m at most [`MAX_ROWS`]), `b` (k×n) and `out` (m×n):
/// rows `0..k/2` of `b` on this thread, the rest on the helper (or here, after the first half,
/// when the helper is busy), then `out` = first partial + second partial. The same sums in the
/// same order wherever the halves run.
pub fn product(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(m <= MAX_ROWS && a.len() == m * k && b.len() == k * n && out.len() == m * n);
    let half = k / 2;
    let mut theirs = vec![0f32; m * n];
    let theirs_at = theirs.as_mut_ptr() as usize;
    let second = || {
        // SAFETY: `theirs` holds m×n floats, outlives this closure (`both` returns only after
        // it has ended), and nothing else touches it meanwhile.
        let part = unsafe { std::slice::from_raw_parts_mut(theirs_at as *mut f32, m * n) };
        partial(m, k, n, a, b, half..k, part);
    };
    super::pair::both(|| partial(m, k, n, a, b, 0..half, out), &second);
    for (o, t) in out.iter_mut().zip(&theirs) {
        *o += t;
    }
}

/// `out = a[:, rows] @ b[rows, :]`, compiled for the instruction set in use.
fn partial(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    call_with_best_isa!(
        partial_any,
        (
            m: usize,
            k: usize,
            n: usize,
            a: &[f32],
            b: &[f32],
            rows: std::ops::Range<usize>,
            out: &mut [f32],
        )
    )
}

/// [`partial`] for any row count up to [`MAX_ROWS`], each count its own loop.
#[inline(always)]
fn partial_any(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    match m {
        1 => partial_rows::<1, WIDE_COLUMNS>(k, n, a, b, rows, out),
        2 => partial_rows::<2, COLUMNS>(k, n, a, b, rows, out),
        3 => partial_rows::<3, COLUMNS>(k, n, a, b, rows, out),
        _ => partial_rows::<4, COLUMNS>(k, n, a, b, rows, out),
    }
}

/// [`partial`] for `M` rows: for each block of `COLUMNS` output columns, the `M` rows'
/// accumulators stay in registers while the block's column strip of `b` is read row by row.
#[inline(always)]
fn partial_rows<const M: usize, const COLUMNS: usize>(
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    let mut c = 0;
    while c + COLUMNS <= n {
        let mut acc = [[0f32; COLUMNS]; M];
        for i in rows.clone() {
            let strip = &b[i * n + c..i * n + c + COLUMNS];
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = a[r * k + i];
                for (s, &w) in acc.iter_mut().zip(strip) {
                    *s += x * w;
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            out[r * n + c..r * n + c + COLUMNS].copy_from_slice(acc);
        }
        c += COLUMNS;
    }
    if c < n {
        // The last columns, fewer than a block.
        let width = n - c;
        let mut acc = [[0f32; COLUMNS]; M];
        for i in rows {
            let strip = &b[i * n + c..i * n + n];
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = a[r * k + i];
                for (s, &w) in acc[..width].iter_mut().zip(strip) {
                    *s += x * w;
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            out[r * n + c..r * n + n].copy_from_slice(&acc[..width]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row count and a width with a tail: each output is the two halves' sums, each in
    /// row order, added (worked out here in f64 and compared within a float's rounding).
    #[test]
    fn products_of_a_few_rows_match_their_definition() {
        for m in 1..=MAX_ROWS {
            let (k, n) = (301, 200);
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 17) as f32 - 8.0) * 0.05)
                .collect();
            let mut out = vec![f32::NAN; m * n];
            product(m, k, n, &a, &b, &mut out);
            for r in 0..m {
                for c in 0..n {
                    let want: f64 = (0..k)
                        .map(|i| a[r * k + i] as f64 * b[i * n + c] as f64)
                        .sum();
                    let got = out[r * n + c] as f64;
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{m} rows [{r}, {c}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// The result does not depend on where the second half ran: the same bits from
    /// concurrent callers (most of which find the helper taken and run both halves).
    #[test]
    fn the_halves_give_the_same_bits_on_any_thread() {
        let (m, k, n) = (1, 512, 256);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut first = vec![0f32; n];
        product(m, k, n, &a, &b, &mut first);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let mut out = vec![0f32; n];
                        product(m, k, n, &a, &b, &mut out);
                        assert!(
                            out.iter()
                                .zip(&first)
                                .all(|(x, y)| x.to_bits() == y.to_bits())
                        );
                    }
                });
            }
        });
    }
}
