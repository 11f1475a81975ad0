//! Convolution on the CPU: im2col in blocks of output positions small enough to stay in cache,
//! each block multiplied by the kernel with the same `gemm` kernels as matmul, the bias added
//! by the product itself (it accumulates onto the bias written first), blocks spread over
//! threads.

use super::conv_narrow::{self, Narrow};
use super::conv_winograd::{self, Winograd};
use super::kept::{Form, Kept};
use lamina_graph::op::ConvSpec;
use lamina_graph::{Error, HostData, Result};
use rayon::prelude::*;
use std::sync::Arc;

/// Patch-block elements aimed at per thread (floats): about 256 KiB.
const BLOCK_FLOATS: usize = 1 << 16;

/// The geometry of one convolution with two spatial axes (a 1-D one has height 1).
pub(super) struct Geometry {
    pub(super) n: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) cig: usize,
    pub(super) cout: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
    pub(super) stride: [usize; 2],
    pub(super) dil: [usize; 2],
    pub(super) spread: [usize; 2],
    pub(super) pad: [usize; 2],
    pub(super) groups: usize,
}

impl Geometry {
    fn new(sx: &[usize], sk: &[usize], out: &[usize], spec: &ConvSpec) -> Option<Geometry> {
        let two = |v: &[usize], one: usize| -> [usize; 2] {
            match v {
                [a] => [one, *a],
                [a, b] => [*a, *b],
                _ => [one, one],
            }
        };
        let r = spec.rank();
        if !(1..=2).contains(&r) {
            return None;
        }
        let [h, w] = two(&sx[1..=r], 1);
        let [kh, kw] = two(&sk[..r], 1);
        let [oh, ow] = two(&out[1..=r], 1);
        let pads: Vec<usize> = spec.padding.iter().map(|p| p.0).collect();
        Some(Geometry {
            n: sx[0],
            h,
            w,
            c: sx[r + 1],
            kh,
            kw,
            cig: sk[r],
            cout: sk[r + 1],
            oh,
            ow,
            stride: two(&spec.strides, 1),
            dil: two(&spec.dilation, 1),
            spread: two(&spec.input_dilation, 1),
            pad: two(&pads, 0),
            groups: spec.groups,
        })
    }

    /// Output row `r`'s position: `(x, y, image)`.
    #[inline]
    pub(super) fn position(&self, r: usize) -> (usize, usize, usize) {
        let (w, h) = (self.ow.max(1), self.oh.max(1));
        (r % w, (r / w) % h, r / (w * h))
    }

    /// The position of the output row after the one at `(x, y, image)`: stepping along the
    /// rows this way needs no division per row.
    #[inline]
    pub(super) fn next_position(&self, (x, y, b): (usize, usize, usize)) -> (usize, usize, usize) {
        if x + 1 < self.ow {
            (x + 1, y, b)
        } else if y + 1 < self.oh {
            (0, y + 1, b)
        } else {
            (0, 0, b + 1)
        }
    }

    /// The input row/column read by output `o` at tap `t` along axis `a` (0: height, 1:
    /// width), or `None` where it falls on padding or between spread elements.
    #[inline]
    fn source(&self, a: usize, o: usize, t: usize, len: usize) -> Option<usize> {
        let p = (o * self.stride[a] + t * self.dil[a]) as isize - self.pad[a] as isize;
        if p < 0 {
            return None;
        }
        let p = p as usize;
        // No division where nothing is spread (all but transposed convolutions): two divisions
        // per tap cost more than copying a tap's channels.
        let i = match self.spread[a] {
            1 => p,
            s if p.is_multiple_of(s) => p / s,
            _ => return None,
        };
        (i < len).then_some(i)
    }

    /// Whether the patches are the input itself (1x1 kernel, stride 1, no padding, one group).
    /// A depthwise convolution (one group per input channel, not transposed): computed
    /// directly, vectorised over the channels, without patches.
    fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.c && self.cig == 1 && self.spread == [1, 1]
    }

    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.spread == [1, 1]
            && self.pad == [0, 0]
            && self.groups == 1
    }
}

/// A depthwise convolution straight from its definition, vectorised over the contiguous
/// channels, output image lines over threads.
fn depthwise(g: &Geometry, x: &[f32], k: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let row_len = g.ow * g.cout;
    let one_row = |(r, dst): (usize, &mut [f32])| depthwise_rows(g, x, k, bias, r * g.ow, dst);
    let work = out.len() * g.kh * g.kw;
    if work < 1 << 18 || rayon::current_num_threads() == 1 {
        out.chunks_mut(row_len.max(1)).enumerate().for_each(one_row);
    } else {
        out.par_chunks_mut(row_len.max(1))
            .enumerate()
            .for_each(one_row);
    }
}

/// Output positions `r0..r0 + dst.len() / cout` of a depthwise convolution, with the widest
/// vectors this CPU has.
fn depthwise_rows(
    g: &Geometry,
    x: &[f32],
    k: &[f32],
    bias: Option<&[f32]>,
    r0: usize,
    dst: &mut [f32],
) {
    super::isa::call_with_best_isa!(
        depthwise_positions,
        (
            g: &Geometry,
            x: &[f32],
            k: &[f32],
            bias: Option<&[f32]>,
            r0: usize,
            dst: &mut [f32],
        )
    )
}

/// Each output position of `r0..`: the bias (or zero), then every tap's input channels times
/// its kernel row (each channel times its `cout / c` multipliers).
#[inline(always)]
fn depthwise_positions(
    g: &Geometry,
    x: &[f32],
    k: &[f32],
    bias: Option<&[f32]>,
    r0: usize,
    dst: &mut [f32],
) {
    let mult = g.cout / g.c.max(1);
    for (i, px) in dst.chunks_exact_mut(g.cout.max(1)).enumerate() {
        let r = r0 + i;
        let (ox, oy, b) = (r % g.ow, (r / g.ow) % g.oh, r / (g.ow * g.oh));
        match bias {
            Some(b) => px.copy_from_slice(b),
            None => px.fill(0.0),
        }
        for ty in 0..g.kh {
            let Some(iy) = g.source(0, oy, ty, g.h) else {
                continue;
            };
            for tx in 0..g.kw {
                let Some(ix) = g.source(1, ox, tx, g.w) else {
                    continue;
                };
                let src = &x[((b * g.h + iy) * g.w + ix) * g.c..][..g.c];
                let tap = &k[(ty * g.kw + tx) * g.cout..][..g.cout];
                if mult == 1 {
                    for ((o, &xv), &kv) in px.iter_mut().zip(src).zip(tap) {
                        *o += xv * kv;
                    }
                } else {
                    for (c, &xv) in src.iter().enumerate() {
                        let (o, kv) = (&mut px[c * mult..][..mult], &tap[c * mult..][..mult]);
                        for (o, &kv) in o.iter_mut().zip(kv) {
                            *o += xv * kv;
                        }
                    }
                }
            }
        }
    }
}

/// Output rows per block of patches: about `BLOCK_FLOATS` floats of patches, and at least a
/// few blocks per thread, so that threads share the work evenly (8 rows at least).
fn block_rows(rows: usize, kdim: usize, threads: usize) -> usize {
    let block = (BLOCK_FLOATS / kdim.max(1)).clamp(16, 1024);
    block.min(rows.div_ceil(threads * 4)).max(8)
}

/// Output rows per slab of work: Winograd's form takes whole rows of its tiles, the others
/// [`block_rows`].
fn slab_rows(g: &Geometry, threads: usize) -> usize {
    if conv_winograd::suits(g) {
        Winograd::slab_rows(g, threads)
    } else {
        block_rows(g.n * g.oh * g.ow, g.kh * g.kw * g.cig, threads)
    }
}

/// The bytes of patches a convolution holds while it runs: one block of `(rows, kh * kw *
/// cig)` floats per thread (none for a pointwise convolution, which reads its input in place).
/// The memory plan counts them, so a kernel of enormous taps times channels is refused by the
/// budget instead of aborting in the allocator.
pub fn scratch_bytes(sx: &[usize], sk: &[usize], out: &[usize], spec: &ConvSpec) -> u64 {
    let Some(g) = Geometry::new(sx, sk, out, spec) else {
        return 0;
    };
    let rows = g.n.saturating_mul(g.oh).saturating_mul(g.ow);
    let kdim = g.kh.saturating_mul(g.kw).saturating_mul(g.cig);
    if g.is_pointwise() || g.is_depthwise() || rows == 0 || g.cout == 0 {
        return 0;
    }
    let threads = rayon::current_num_threads().max(1);
    if conv_narrow::suits(&g) {
        return Narrow::bytes(&g);
    }
    if conv_winograd::suits(&g) {
        return Winograd::bytes(&g, threads.min(rows));
    }
    let block = block_rows(rows, kdim, threads).min(rows);
    (block as u64)
        .saturating_mul(kdim as u64)
        .saturating_mul(4)
        .saturating_mul(threads.min(rows.div_ceil(block)) as u64)
}

/// The bytes a fused region computing this convolution's rows holds while it runs: the
/// patches of [`scratch_bytes`] and, per thread, a slab of output rows.
pub fn fused_scratch_bytes(sx: &[usize], sk: &[usize], out: &[usize], spec: &ConvSpec) -> u64 {
    let Some(g) = Geometry::new(sx, sk, out, spec) else {
        return 0;
    };
    let rows = g.n.saturating_mul(g.oh).saturating_mul(g.ow);
    if rows == 0 {
        return 0;
    }
    let threads = rayon::current_num_threads().max(1);
    let block = slab_rows(&g, threads).min(rows);
    let slabs = (block as u64)
        .saturating_mul(g.cout as u64)
        .saturating_mul(4)
        .saturating_mul(threads.min(rows.div_ceil(block)) as u64);
    scratch_bytes(sx, sk, out, spec).saturating_add(slabs)
}

/// Output rows per slab of a fused region computing this convolution's rows (1 for shapes
/// the CPU convolution does not take).
pub fn fused_slab_rows(sx: &[usize], sk: &[usize], out: &[usize], spec: &ConvSpec) -> usize {
    Geometry::new(sx, sk, out, spec).map_or(1, |g| {
        slab_rows(&g, rayon::current_num_threads().max(1)).max(1)
    })
}

/// The bytes of this convolution's kernel transform kept between runs (0 where it has none).
pub fn kept_bytes(sx: &[usize], sk: &[usize], out: &[usize], spec: &ConvSpec) -> u64 {
    Geometry::new(sx, sk, out, spec)
        .filter(conv_winograd::suits)
        .map_or(0, |g| Winograd::kernel_bytes(&g))
}

/// A backend error of the CPU convolution.
fn fail(detail: &str) -> Error {
    Error::Backend {
        backend: "cpu".into(),
        detail: detail.into(),
    }
}

/// `conv(x, kernel) + bias` for channels-last `x` (each with its shape); see [`ConvSpec`]. The
/// output is written into `reuse`, a buffer of an earlier run, where it is one of the right size.
pub fn conv(
    (x, sx): (&HostData, &[usize]),
    (kernel, sk): (&HostData, &[usize]),
    bias: Option<&HostData>,
    spec: &ConvSpec,
    out_shape: &[usize],
    (reuse, kept): (Option<Arc<HostData>>, Option<Kept<'_>>),
) -> Result<Arc<HostData>> {
    let c = ConvRows::new((x, sx), (kernel, sk), bias, spec, (out_shape, kept))?;
    let g = &c.g;
    let rows = g.n * g.oh * g.ow;
    // Every element is written below (bias or zeros first where the product adds to it), so
    // a buffer of an earlier run is written over as it is, not cleared.
    let mut buffer = reuse
        .filter(|b| matches!(&**b, HostData::F32(v) if v.len() == rows * g.cout))
        .unwrap_or_else(|| Arc::new(HostData::F32(vec![0f32; rows * g.cout])));
    let Some(HostData::F32(out)) = Arc::get_mut(&mut buffer) else {
        return Err(fail("conv: the reused buffer is shared"));
    };
    if rows == 0 || g.cout == 0 {
        return Ok(buffer);
    }
    if g.is_depthwise() {
        depthwise(g, c.x, c.kernel, c.bias, out);
        return Ok(buffer);
    }
    let kdim = g.kh * g.kw * g.cig;
    let threads = rayon::current_num_threads().max(1);
    let block = c.slab_rows();
    let work = rows * kdim * g.cout;
    let run_block = |(bi, dst): (usize, &mut [f32])| c.rows(bi * block, dst);
    if work < 1 << 18 || threads == 1 {
        out.chunks_mut(block * g.cout)
            .enumerate()
            .for_each(run_block);
    } else {
        out.par_chunks_mut(block * g.cout)
            .enumerate()
            .for_each(run_block);
    }
    Ok(buffer)
}

/// Output rows `r0..r0 + m` (m = `dst.len() / cout`) of a convolution that is not depthwise:
/// each group's patches (or the input itself, for a pointwise one) times its kernel columns,
/// accumulated onto the bias where there is one.
fn dense_rows(
    g: &Geometry,
    x: &[f32],
    k: &[f32],
    bias: Option<&[f32]>,
    r0: usize,
    dst: &mut [f32],
    patches: &mut Vec<f32>,
) {
    let kdim = g.kh * g.kw * g.cig;
    let m = dst.len() / g.cout;
    if let Some(b) = bias {
        for row in dst.chunks_exact_mut(g.cout) {
            row.copy_from_slice(b);
        }
    }
    let cog = g.cout / g.groups;
    for grp in 0..g.groups {
        let lhs: &[f32] = if g.is_pointwise() {
            &x[r0 * kdim..(r0 + m) * kdim]
        } else {
            im2col(g, x, r0, m, grp, patches);
            patches
        };
        // SAFETY: `gemm_strided` takes raw pointers. `lhs` holds m rows of kdim floats (row stride
        // kdim); the kernel holds kdim rows of cout floats, of which columns grp*cog..+cog
        // are read (row stride cout); `dst` holds m rows of cout floats, of which the same
        // columns are written (row stride cout). All accesses stay inside the slices, and
        // `dst` is borrowed exclusively.
        unsafe {
            super::matmul::gemm_strided(
                (m, kdim, cog),
                (lhs.as_ptr(), kdim),
                (k.as_ptr().add(grp * cog), g.cout),
                (dst.as_mut_ptr().add(grp * cog), g.cout),
                bias.is_some(),
                false,
            );
        }
    }
}

/// A convolution whose output rows (positions, `cout` channels each) a fused region computes
/// itself, a slab at a time, so that its epilogue (an activation, a residual add) runs on
/// rows still in cache.
pub struct ConvRows<'a> {
    g: Geometry,
    x: &'a [f32],
    kernel: &'a [f32],
    bias: Option<&'a [f32]>,
    /// The padded input and packed kernel of a convolution of few input channels.
    narrow: Option<Narrow>,
    /// The transformed kernel of a 3x3 convolution computed by Winograd's form.
    winograd: Option<Winograd>,
}

impl<'a> ConvRows<'a> {
    /// The convolution of `x` (shape `sx`) by `kernel` (`sk`) plus `bias`, whose output has
    /// shape `out`: an error unless it is a float32 one with one or two spatial axes whose
    /// buffers have their shapes' sizes. A kernel transform is taken from `kept` where given.
    pub fn new(
        (x, sx): (&'a HostData, &[usize]),
        (kernel, sk): (&'a HostData, &[usize]),
        bias: Option<&'a HostData>,
        spec: &ConvSpec,
        (out, kept): (&[usize], Option<Kept<'_>>),
    ) -> Result<ConvRows<'a>> {
        let (HostData::F32(x), HostData::F32(kernel)) = (x, kernel) else {
            return Err(fail("conv takes float32 inputs"));
        };
        let bias = match bias {
            Some(HostData::F32(b)) => Some(b.as_slice()),
            Some(_) => return Err(fail("conv takes a float32 bias")),
            None => None,
        };
        let g = Geometry::new(sx, sk, out, spec)
            .ok_or_else(|| fail("the cpu convolution takes 1 or 2 spatial axes"))?;
        let sizes_ok = x.len() == g.n * g.h * g.w * g.c
            && kernel.len() == g.kh * g.kw * g.cig * g.cout
            && bias.is_none_or(|b| b.len() == g.cout)
            && g.groups > 0
            && g.cout.is_multiple_of(g.groups)
            && g.c == g.cig * g.groups;
        if !sizes_ok {
            return Err(fail(
                "conv: the input, kernel and bias sizes do not match their shapes",
            ));
        }
        let narrow = conv_narrow::suits(&g).then(|| Narrow::new(&g, x, kernel));
        let winograd = conv_winograd::suits(&g).then(|| {
            let make = || Winograd::transform(&g, kernel);
            Winograd::with(match kept {
                Some(kept) => kept.get_or_make(Form::Winograd, make),
                None => Arc::new(make()),
            })
        });
        Ok(ConvRows {
            g,
            x,
            kernel,
            bias,
            narrow,
            winograd,
        })
    }

    /// Output rows per slab: as many as keep a slab's patches in cache.
    pub fn slab_rows(&self) -> usize {
        slab_rows(&self.g, rayon::current_num_threads().max(1))
    }

    /// Writes output rows `r0..r0 + dst.len() / cout` into `dst`.
    pub fn rows(&self, r0: usize, dst: &mut [f32]) {
        super::scratch::with_buffers(|[patches]| self.rows_with(r0, dst, patches))
    }

    /// [`ConvRows::rows`] with `patches` as scratch.
    fn rows_with(&self, r0: usize, dst: &mut [f32], patches: &mut Vec<f32>) {
        if self.g.is_depthwise() {
            depthwise_rows(&self.g, self.x, self.kernel, self.bias, r0, dst);
        } else if let Some(narrow) = &self.narrow {
            narrow.rows(&self.g, self.bias, r0, dst);
        } else if let Some(winograd) = &self.winograd {
            winograd.rows(&self.g, self.x, self.bias, (r0, dst), patches);
        } else {
            dense_rows(&self.g, self.x, self.kernel, self.bias, r0, dst, patches);
        }
    }
}

/// Whether a convolution of these shapes is one [`ConvRows`] serves (one or two spatial axes).
pub fn fuses_rows(sx: &[usize], sk: &[usize], out: &[usize], spec: &ConvSpec) -> bool {
    Geometry::new(sx, sk, out, spec).is_some_and(|g| g.groups > 0)
}

/// The patches of output rows `r0..r0 + m` for group `grp`: row-major `(m, kh * kw * cig)`,
/// zeros where a tap falls on padding.
fn im2col(g: &Geometry, x: &[f32], r0: usize, m: usize, grp: usize, patches: &mut Vec<f32>) {
    let kdim = g.kh * g.kw * g.cig;
    // Every value is written below (a tap or a zero), so the buffer of the previous block is
    // written over, not cleared first.
    patches.resize(m * kdim, 0.0);
    let c0 = grp * g.cig;
    let whole_runs = g.cig == g.c && g.dil[1] == 1 && g.spread[1] == 1 && g.kw > 0;
    // The output position of row r0, then stepped along with the rows (no divisions per row).
    let (mut ow, mut oh, mut n) = g.position(r0);
    for row in patches[..m * kdim].chunks_exact_mut(kdim) {
        for (th, taps) in row.chunks_exact_mut(g.kw * g.cig).enumerate() {
            let Some(ih) = g.source(0, oh, th, g.h) else {
                taps.fill(0.0);
                continue;
            };
            let base = (n * g.h + ih) * g.w;
            // One group, unit steps along the row and every tap inside it: the row's taps are
            // one contiguous run of the input (kw pixels of all channels), copied at once.
            if whole_runs
                && let (Some(first), Some(_)) =
                    (g.source(1, ow, 0, g.w), g.source(1, ow, g.kw - 1, g.w))
            {
                let src = (base + first) * g.c;
                super::strided::copy_row(taps, &x[src..src + taps.len()]);
                continue;
            }
            for (tw, tap) in taps.chunks_exact_mut(g.cig).enumerate() {
                match g.source(1, ow, tw, g.w) {
                    Some(iw) => {
                        let src = (base + iw) * g.c + c0;
                        tap.copy_from_slice(&x[src..src + g.cig]);
                    }
                    None => tap.fill(0.0),
                }
            }
        }
        (ow, oh, n) = g.next_position((ow, oh, n));
    }
}
