//! Convolutions of few input channels (an image's first layer, 3 channels) with AVX-512,
//! without patches. With so few channels im2col's patch rows are short (27 values for a 3x3
//! kernel) and the GEMM spends more time packing them than multiplying; here the input is
//! copied once per run with its zero padding around it, so that each row of taps of an output
//! position (`kw` pixels of all channels) is one contiguous run of the padded input, and a
//! register tile of 8 positions by 32 output channels keeps its 16 sums in registers over
//! every tap, reading the runs where they lie. The kernel is packed once per run into panels
//! of 32 output channels.

use super::conv::Geometry;

/// Output channels per panel: two AVX-512 vectors.
const PANEL: usize = 32;
/// Output positions per register tile (with two vectors each: 16 accumulators).
const TILE: usize = 8;
/// Input channels below which the tiles replace im2col and the GEMM.
const MAX_CHANNELS: usize = 8;

/// Whether this CPU and convolution take the tiles: AVX-512, one group, fewer than
/// [`MAX_CHANNELS`] input channels, no spread input (not a transposed convolution), no
/// dilation along the width (so a row of taps is contiguous), a kernel larger than 1x1.
pub(super) fn suits(g: &Geometry) -> bool {
    super::isa::active() == super::isa::Isa::Avx512
        && g.groups == 1
        && g.cig < MAX_CHANNELS
        && g.spread == [1, 1]
        && g.dil[1] == 1
        && g.kh * g.kw > 1
        && g.cout > 0
        && g.oh > 0
        && g.ow > 0
}

/// The padded height and width: every row and column some output position's taps read,
/// counted from the first padding row and column.
fn padded_sides(g: &Geometry) -> (usize, usize) {
    (
        (g.oh - 1) * g.stride[0] + (g.kh - 1) * g.dil[0] + 1,
        (g.ow - 1) * g.stride[1] + g.kw,
    )
}

/// A convolution's input with its padding, and its kernel in panels, made once per run.
pub(super) struct Narrow {
    /// `(n, hp, wp, c)`: the input at `(y - pad_h, x - pad_w)`, zero outside it.
    padded: Vec<f32>,
    hp: usize,
    wp: usize,
    /// `panels[(p * kdim + i) * PANEL + j]` is kernel element `(i, p * PANEL + j)`, zero past
    /// the last output channel.
    panels: Vec<f32>,
}

impl Narrow {
    /// Pads `x` and packs `kernel` (`kh * kw * cig` rows of `cout`) where [`suits`] said so.
    pub(super) fn new(g: &Geometry, x: &[f32], kernel: &[f32]) -> Narrow {
        let (hp, wp) = padded_sides(g);
        let mut padded = vec![0f32; g.n * hp * wp * g.c];
        for b in 0..g.n {
            for py in 0..hp {
                let Some(y) = py.checked_sub(g.pad[0]).filter(|&y| y < g.h) else {
                    continue;
                };
                // Columns px with px - pad_w in 0..w.
                let first = g.pad[1].min(wp);
                let last = (g.pad[1] + g.w).min(wp);
                if first >= last {
                    continue;
                }
                let src = ((b * g.h + y) * g.w + (first - g.pad[1])) * g.c;
                let dst = ((b * hp + py) * wp + first) * g.c;
                let len = (last - first) * g.c;
                padded[dst..dst + len].copy_from_slice(&x[src..src + len]);
            }
        }
        let kdim = g.kh * g.kw * g.cig;
        let count = g.cout.div_ceil(PANEL);
        let mut panels = vec![0f32; count * kdim * PANEL];
        for (p, panel) in panels.chunks_exact_mut(kdim * PANEL).enumerate() {
            let c0 = p * PANEL;
            let width = PANEL.min(g.cout - c0);
            for (i, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                row[..width].copy_from_slice(&kernel[i * g.cout + c0..i * g.cout + c0 + width]);
            }
        }
        Narrow {
            padded,
            hp,
            wp,
            panels,
        }
    }

    /// The bytes [`Narrow::new`] holds for this convolution.
    pub(super) fn bytes(g: &Geometry) -> u64 {
        let (hp, wp) = padded_sides(g);
        let padded = [g.n, hp, wp, g.c]
            .iter()
            .fold(4u64, |acc, &d| acc.saturating_mul(d as u64));
        let panels = [g.cout.div_ceil(PANEL) * PANEL, g.kh, g.kw, g.cig]
            .iter()
            .fold(4u64, |acc, &d| acc.saturating_mul(d as u64));
        padded.saturating_add(panels)
    }

    /// Output positions `r0..r0 + dst.len() / cout` (plus `bias`).
    pub(super) fn rows(&self, g: &Geometry, bias: Option<&[f32]>, r0: usize, dst: &mut [f32]) {
        assert!(suits(g), "conv narrow: a convolution it does not suit");
        let m = dst.len() / g.cout;
        assert!(
            r0 + m <= g.n * g.oh * g.ow && self.padded.len() == g.n * self.hp * self.wp * g.c,
            "conv narrow: rows past the output"
        );
        let run = g.kw * g.cig;
        let kdim = g.kh * run;
        let zeros = vec![0f32; run];
        // Per row of taps, the start of the run each position of the tile reads.
        let mut starts = vec![zeros.as_ptr(); g.kh * TILE];
        let mut sums = [0f32; TILE * PANEL];
        // The position of row r0, then stepped along with the rows.
        let (mut ox, mut oy, mut b) = g.position(r0);
        let row_step = g.dil[0] * self.wp * g.c;
        for t0 in (0..m).step_by(TILE) {
            let here = TILE.min(m - t0);
            for r in 0..TILE {
                if r >= here {
                    (0..g.kh).for_each(|th| starts[th * TILE + r] = zeros.as_ptr());
                    continue;
                }
                let at = ((b * self.hp + oy * g.stride[0]) * self.wp + ox * g.stride[1]) * g.c;
                let last = at + (g.kh - 1) * row_step + run;
                let window = &self.padded[at..last];
                for th in 0..g.kh {
                    starts[th * TILE + r] = window[th * row_step..].as_ptr();
                }
                (ox, oy, b) = g.next_position((ox, oy, b));
            }
            for (p, panel) in self.panels.chunks_exact(kdim * PANEL).enumerate() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `suits` checked that the CPU has AVX-512. Every pointer in `starts`
                // points at `run` readable floats (sliced above, or `zeros`); `panel` holds
                // `kh * run` rows of 32 floats; `sums` holds 8 rows of 32.
                unsafe {
                    tile(&starts, g.kh, run, panel.as_ptr(), sums.as_mut_ptr())
                };
                let c0 = p * PANEL;
                let width = PANEL.min(g.cout - c0);
                for (r, row) in sums.chunks_exact(PANEL).take(here).enumerate() {
                    let out = &mut dst[(t0 + r) * g.cout + c0..][..width];
                    match bias {
                        Some(b) => {
                            for ((o, &s), &b) in out.iter_mut().zip(row).zip(&b[c0..c0 + width]) {
                                *o = b + s;
                            }
                        }
                        None => out.copy_from_slice(&row[..width]),
                    }
                }
            }
        }
    }
}

/// Eight positions (`starts[th * 8 + r]`: position r's run of taps in row th) by one panel
/// (`rows * run` rows of 32) into `sums` (8 rows of 32): 16 sums in registers, two loads and
/// eight broadcasts for every 16 fused multiply-adds.
///
/// # Safety
/// The CPU has AVX-512; every pointer of `starts` (`rows * 8` of them) points at `run` floats,
/// `panel` at `rows * run * 32` floats, `sums` at 256 floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile(starts: &[*const f32], rows: usize, run: usize, panel: *const f32, sums: *mut f32) {
    use std::arch::x86_64::*;
    // SAFETY: every pointer below stays inside what the caller promises.
    unsafe {
        let z = _mm512_setzero_ps();
        let (mut c0, mut c1, mut c2, mut c3, mut c4, mut c5, mut c6, mut c7) =
            (z, z, z, z, z, z, z, z);
        let (mut d0, mut d1, mut d2, mut d3, mut d4, mut d5, mut d6, mut d7) =
            (z, z, z, z, z, z, z, z);
        let mut w = panel;
        for p in starts[..rows * TILE].chunks_exact(TILE) {
            let p: [*const f32; TILE] = [p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]];
            for i in 0..run {
                let wl = _mm512_loadu_ps(w);
                let wr = _mm512_loadu_ps(w.add(16));
                w = w.add(PANEL);
                macro_rules! position {
                    ($r:expr, $c:ident, $d:ident) => {
                        let v = _mm512_set1_ps(*p[$r].add(i));
                        $c = _mm512_fmadd_ps(v, wl, $c);
                        $d = _mm512_fmadd_ps(v, wr, $d);
                    };
                }
                position!(0, c0, d0);
                position!(1, c1, d1);
                position!(2, c2, d2);
                position!(3, c3, d3);
                position!(4, c4, d4);
                position!(5, c5, d5);
                position!(6, c6, d6);
                position!(7, c7, d7);
            }
        }
        for (r, (c, d)) in [
            (c0, d0),
            (c1, d1),
            (c2, d2),
            (c3, d3),
            (c4, d4),
            (c5, d5),
            (c6, d6),
            (c7, d7),
        ]
        .into_iter()
        .enumerate()
        {
            _mm512_storeu_ps(sums.add(r * PANEL), c);
            _mm512_storeu_ps(sums.add(r * PANEL + 16), d);
        }
    }
}
