//! Convolution kernels, with the root as epilogue (bias, an inference BatchNormalization, the
//! activation, a residual add applied before the only write). Three forms, chosen by shape:
//!
//! - **Direct**: one thread per output position and four neighbouring output channels,
//!   looping over the window and the input channels of the group, reading the input where it
//!   lies (no im2col). Depthwise
//!   convolutions (one input channel per group) always run this way, whatever the channel
//!   count, and so do transposed ones (visiting only the taps that land on input elements);
//!   on CPU-hosted adapters every convolution with a window does.
//! - **Implicit GEMM**: the convolution as the product of its (virtual) im2col matrix,
//!   `(batch * output positions) x (taps * channels per group)`, with the kernel, one product
//!   per group, on the matmul templates of `shaders/`. The im2col is never stored: each element
//!   of an operand tile is gathered from the input as the tile is loaded.
//! - **Pointwise**: a 1x1 convolution with stride 1 and no padding is a plain matrix product of
//!   the input in place (the same templates, plain loads).
//!
//! The kernel's code depends on the convolution's structure (rank, groups or not, padding or
//! not, spread or not), never on its sizes, which are uniform parameters: a model's convolutions
//! compile to a handful of pipelines whatever their channel counts.

use super::Scratch;
use super::matmul::{K_CHUNK, Splits, Tiling, add_bias, epilogue, product_kernels};
use super::template::{self, EPILOGUE_ARGS};
use crate::gpu::ir::{BufferRef, Builder, Builtin, Expr, IndexOp, Kernel, Lit, Val, Var};
use crate::gpu::lower::{Coords, Label, Lowerer};
use lamina_graph::op::{BinaryOp, ConvSpec, Op, UnaryOp};
use lamina_graph::{DType, Error, Program, Result};

/// The most iterations a loop statement may run in one thread, over all its entries: lavapipe
/// stops a shader loop after 65,535.
const MAX_TRIPS: usize = 65_535;

/// A convolution kernel to build.
pub struct ConvKernel {
    /// The convolution node.
    pub conv: usize,
    /// The node written (the convolution or its elementwise epilogue).
    pub root: usize,
    /// Tile through workgroup memory (GPUs) or not (CPU-hosted adapters).
    pub shared_memory: bool,
}

/// How a convolution is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvMethod {
    /// One thread per output element over its window.
    Direct,
    /// The product of the im2col matrix, gathered as it is loaded, with the kernel.
    ImplicitGemm,
    /// A 1x1 convolution: the product of the input in place with the kernel.
    Pointwise,
}

/// The sizes of one convolution, read from its program shapes.
struct Geometry {
    spec: ConvSpec,
    batch: usize,
    /// Spatial input sizes.
    input: Vec<usize>,
    cin: usize,
    /// Spatial kernel sizes.
    kernel: Vec<usize>,
    /// Input channels per group.
    cig: usize,
    cout: usize,
    /// Output channels per group.
    cog: usize,
    /// Spatial output sizes.
    out: Vec<usize>,
    x: usize,
    w: usize,
    bias: Option<usize>,
}

impl Geometry {
    fn new(prog: &Program, shapes: &[Vec<usize>], conv: usize) -> Result<Geometry> {
        let node = &prog.nodes[conv];
        let Op::Conv { spec } = &node.op else {
            return Err(internal("a convolution kernel for another op"));
        };
        let r = spec.rank();
        let (sx, sk, sy) = (
            &shapes[node.inputs[0]],
            &shapes[node.inputs[1]],
            &shapes[conv],
        );
        if sx.len() != r + 2 || sk.len() != r + 2 || sy.len() != r + 2 || spec.groups == 0 {
            return Err(internal("convolution shapes of the wrong rank"));
        }
        Ok(Geometry {
            spec: spec.clone(),
            batch: sx[0],
            input: sx[1..=r].to_vec(),
            cin: sx[r + 1],
            kernel: sk[..r].to_vec(),
            cig: sk[r],
            cout: sk[r + 1],
            cog: sk[r + 1] / spec.groups,
            out: sy[1..=r].to_vec(),
            x: node.inputs[0],
            w: node.inputs[1],
            bias: node.inputs.get(2).copied(),
        })
    }

    fn rank(&self) -> usize {
        self.kernel.len()
    }

    fn taps(&self) -> usize {
        self.kernel.iter().product()
    }

    /// Output positions of all images (the im2col's rows).
    fn rows(&self) -> usize {
        self.batch * self.out.iter().product::<usize>()
    }

    /// Whether the input is read in place: one tap, stride 1, no padding, no spreading.
    fn pointwise(&self) -> bool {
        let s = &self.spec;
        self.taps() == 1
            && s.strides.iter().all(|&v| v == 1)
            && s.input_dilation.iter().all(|&v| v == 1)
            && s.padding.iter().all(|&p| p == (0, 0))
    }

    /// Whether the input is spread (a transposed convolution): the direct kernel visits only
    /// the taps that land on input elements, where an im2col would multiply zeros.
    fn spread(&self) -> bool {
        self.spec.input_dilation.iter().any(|&s| s > 1)
    }

    fn method(&self, shared_memory: bool) -> ConvMethod {
        // The gathered index of the virtual im2col must fit 32 bits.
        let im2col = (self.spec.groups as u128)
            * (self.rows() as u128)
            * (self.taps() as u128)
            * (self.cig as u128);
        let gemm_fits = im2col < u32::MAX as u128;
        // The direct kernel's innermost loop runs taps * cig times a thread (lavapipe stops a
        // loop after MAX_TRIPS); longer windows split their sums over workgroups as products.
        let direct_fits = self.taps().saturating_mul(self.cig) <= MAX_TRIPS;
        if (self.cig == 1 || self.spread()) && (direct_fits || !gemm_fits) {
            return ConvMethod::Direct;
        }
        if self.pointwise() {
            return ConvMethod::Pointwise;
        }
        if gemm_fits && (shared_memory || !direct_fits) {
            ConvMethod::ImplicitGemm
        } else {
            ConvMethod::Direct
        }
    }
}

fn internal(what: &str) -> Error {
    Error::Backend {
        backend: "gpu".into(),
        detail: format!("internal: {what}"),
    }
}

/// The kernels of a convolution with its epilogue.
pub fn build(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    c: &ConvKernel,
    scratch: &mut Scratch,
) -> Result<Vec<Kernel>> {
    let g = Geometry::new(prog, shapes, c.conv)?;
    match g.method(c.shared_memory) {
        ConvMethod::Direct => Ok(vec![direct(prog, shapes, mat, c, &g)?]),
        method => gemm(prog, shapes, mat, c, &g, method, scratch),
    }
}

/// Where output position `o` reads the input at tap `k` along spatial axis `d`: the clamped
/// input coordinate and whether it lies on the input (not on padding or between spread
/// elements), or `None` where it always does.
fn source(lw: &mut Lowerer<'_>, g: &Geometry, d: usize, o: Val, k: Val) -> (Val, Option<Val>) {
    let s = &g.spec;
    let stride = lw.b.param("stride", s.strides[d] as u32);
    let dil = lw.b.param("dilation", s.dilation[d] as u32);
    let a = lw.b.index(IndexOp::Mul, o, stride);
    let b = lw.b.index(IndexOp::Mul, k, dil);
    let mut p = lw.b.index(IndexOp::Add, a, b);
    let (lo, hi) = s.padding[d];
    let spread = s.input_dilation[d];
    if lo == 0 && hi == 0 && spread == 1 {
        return (p, None);
    }
    if lo != 0 {
        // Wrapping: a position before the input becomes a huge one, caught below.
        let pad = lw.b.param("pad", lo as u32);
        p = lw.b.index(IndexOp::Sub, p, pad);
    }
    let len = (g.input[d].max(1) - 1) * spread + 1;
    let n = lw.b.param("spread_len", len as u32);
    let mut valid = lw.b.index(IndexOp::Less, p, n);
    if spread != 1 {
        let sp = lw.b.param("spread", spread as u32);
        let rem = lw.b.index(IndexOp::Rem, p, sp);
        let zero = lw.b.u32(0);
        let nonzero = lw.b.index(IndexOp::Less, zero, rem);
        let on =
            lw.b.let_(DType::Bool, Expr::Unary(UnaryOp::Not, DType::Bool, nonzero));
        valid = lw.b.let_(
            DType::Bool,
            Expr::Binary(BinaryOp::And, DType::Bool, valid, on),
        );
        p = lw.b.index(IndexOp::Div, p, sp);
    }
    let last = lw.b.param("last", (g.input[d] as u32).saturating_sub(1));
    let clamped = lw.b.index(IndexOp::Min, p, last);
    (clamped, Some(valid))
}

/// `a && b` where either may be absent (always true).
fn both(lw: &mut Lowerer<'_>, a: Option<Val>, b: Option<Val>) -> Option<Val> {
    match (a, b) {
        (Some(a), Some(b)) => {
            Some(lw.b.let_(DType::Bool, Expr::Binary(BinaryOp::And, DType::Bool, a, b)))
        }
        (a, None) => a,
        (None, b) => b,
    }
}

/// The index of channel 0 of the input pixel at image `b` and spatial coordinates `pos`.
fn input_pixel(lw: &mut Lowerer<'_>, g: &Geometry, b: Val, pos: &[Val]) -> Val {
    let mut idx = b;
    for (d, &p) in pos.iter().enumerate() {
        let size = lw.b.param("size", g.input[d] as u32);
        let t = lw.b.index(IndexOp::Mul, idx, size);
        idx = lw.b.index(IndexOp::Add, t, p);
    }
    let cin = lw.b.param("channels", g.cin as u32);
    lw.b.index(IndexOp::Mul, idx, cin)
}

/// `v`, or zero where `valid` is false (padding, or between spread elements).
fn zero_unless(lw: &mut Lowerer<'_>, v: Val, valid: Option<Val>) -> Val {
    match valid {
        Some(cond) => {
            let zero = lw.b.lit(Lit::F32(0.0));
            lw.b.let_(
                DType::F32,
                Expr::Select {
                    cond,
                    then: v,
                    otherwise: zero,
                },
            )
        }
        None => v,
    }
}

/// Output channels each thread of the direct kernel computes: neighbouring channels share
/// the window's index arithmetic and, within a group, the input values.
const LANES: usize = 4;

/// The output channels one thread of the direct kernel computes.
struct Lanes {
    /// Per lane: its output channel, clamped to the last one (lanes past it compute a copy
    /// and store nothing).
    channel: Vec<Val>,
    /// Per lane: the first input channel of its group.
    first: Vec<Val>,
    /// Per lane: the accumulator.
    acc: Vec<Var>,
    /// Whether all lanes read the same input channels (one group for all).
    shared_input: bool,
}

/// The direct kernel: one thread per output position and `LANES` neighbouring output
/// channels, looping over the window (one loop per spatial axis) and the input channels of
/// the group, the window's index arithmetic done once per tap.
fn direct(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    c: &ConvKernel,
    g: &Geometry,
) -> Result<Kernel> {
    const WG: u32 = 256;
    let trips = g.taps().saturating_mul(g.cig);
    if trips > MAX_TRIPS {
        return Err(prog.nodes[c.conv].attribute(Error::Backend {
            backend: "gpu".into(),
            detail: format!(
                "conv of {trips} kernel taps times channels per group with an im2col past 32-bit indexing: the GPU backend loops at most {MAX_TRIPS} times a thread; use the cpu backend"
            ),
        }));
    }
    let out_shape = shapes[c.root].clone();
    let lanes = LANES.min(g.cout.max(1));
    let blocks = g.cout.div_ceil(lanes).max(1);
    let threads = g.rows() * blocks;
    let mut lw = Lowerer::new(Builder::new("conv_direct", WG), prog, shapes, mat);
    lw.set_root(c.root);
    let t = lw.b.let_(DType::U32, Expr::Builtin(Builtin::GlobalIndex));
    let nt = lw.b.param("threads", threads as u32);
    lw.b.return_unless_below(t, nt);
    let nb = lw.b.param("blocks", blocks as u32);
    let block = lw.b.index(IndexOp::Rem, t, nb);
    let pixel = lw.b.index(IndexOp::Div, t, nb);
    let mut rows_shape = vec![g.batch];
    rows_shape.extend_from_slice(&g.out);
    let coords = lw.delinearize(pixel, &rows_shape);
    let (b, o) = (coords[0], coords[1..].to_vec());
    let width = lw.b.u32(lanes as u32);
    let co0 = lw.b.index(IndexOp::Mul, block, width);
    let last =
        lw.b.param("last_channel", (g.cout as u32).saturating_sub(1));
    let zero_f = lw.b.lit(Lit::F32(0.0));
    let mut l = Lanes {
        channel: Vec::with_capacity(lanes),
        first: Vec::with_capacity(lanes),
        acc: Vec::with_capacity(lanes),
        shared_input: g.spec.groups == 1 || g.cog.is_multiple_of(lanes),
    };
    for j in 0..lanes {
        let jv = lw.b.u32(j as u32);
        let co = lw.b.index(IndexOp::Add, co0, jv);
        let co = lw.b.index(IndexOp::Min, co, last);
        let first = if g.spec.groups == 1 {
            lw.b.u32(0)
        } else {
            let cog = lw.b.param("group_out", g.cog as u32);
            let grp = lw.b.index(IndexOp::Div, co, cog);
            let cig = lw.b.param("group_in", g.cig as u32);
            lw.b.index(IndexOp::Mul, grp, cig)
        };
        l.channel.push(co);
        l.first.push(first);
        l.acc.push(lw.b.var(DType::F32, zero_f));
    }
    window(&mut lw, g, b, &o, &l, 0, &mut Vec::new(), None)?;
    // The epilogue of each lane, at (b, o..., channel), for the channels that exist.
    for j in 0..lanes {
        let jv = lw.b.u32(j as u32);
        let co = lw.b.index(IndexOp::Add, co0, jv);
        let store = |lw: &mut Lowerer<'_>| -> Result<()> {
            let sum = lw.b.read(l.acc[j], DType::F32);
            let sum = add_bias(lw, g.bias, l.channel[j], sum)?;
            let mut axes: Vec<(Val, Label)> = coords
                .iter()
                .enumerate()
                .map(|(d, &v)| (v, Label::Thread(d)))
                .collect();
            axes.push((co, Label::Thread(out_shape.len() - 1)));
            epilogue(lw, c.conv, c.root, &out_shape, sum, Coords::Axes(axes))
        };
        if g.cout.is_multiple_of(lanes) {
            store(&mut lw)?;
        } else {
            let cout = lw.b.param("out_channels", g.cout as u32);
            let inside = lw.b.index(IndexOp::Less, co, cout);
            lw.if_(inside, store)?;
        }
    }
    Ok(lw.b.finish((threads as u64).div_ceil(WG as u64), None))
}

/// The loops of the direct kernel from spatial axis `d` inwards: `pos` holds the input
/// coordinates and kernel taps of the outer axes, `valid` whether they all lie on the input.
#[allow(clippy::too_many_arguments)]
fn window(
    lw: &mut Lowerer<'_>,
    g: &Geometry,
    b: Val,
    o: &[Val],
    l: &Lanes,
    d: usize,
    pos: &mut Vec<(Val, Val)>,
    valid: Option<Val>,
) -> Result<()> {
    let zero = lw.b.u32(0);
    let one = lw.b.u32(1);
    if d < g.rank() {
        let n = lw.b.param("kernel", g.kernel[d] as u32);
        let spread = g.spec.input_dilation[d];
        let (start, step) = if spread > 1 && g.spec.dilation[d] == 1 {
            // A transposed convolution: the taps landing on input elements are those with
            // o * stride + k - pad a multiple of the spread; the first is
            // (pad - o * stride) mod spread, then every spread-th.
            let sp = lw.b.param("spread", spread as u32);
            let stride = lw.b.param("stride", g.spec.strides[d] as u32);
            let phase =
                lw.b.param("pad_phase", (g.spec.padding[d].0 % spread) as u32);
            let at = lw.b.index(IndexOp::Mul, o[d], stride);
            let at = lw.b.index(IndexOp::Rem, at, sp);
            let up = lw.b.index(IndexOp::Add, phase, sp);
            let k0 = lw.b.index(IndexOp::Sub, up, at);
            (lw.b.index(IndexOp::Rem, k0, sp), sp)
        } else {
            (zero, one)
        };
        return lw.loop_(start, n, step, |lw, k| {
            let (p, v) = source(lw, g, d, o[d], k);
            let v = both(lw, valid, v);
            pos.push((p, k));
            let r = window(lw, g, b, o, l, d + 1, pos, v);
            pos.pop();
            r
        });
    }
    // Where this tap's input pixel and kernel rows start, once per tap.
    let mut tap = zero;
    for (axis, &(_, k)) in pos.iter().enumerate() {
        let size = lw.b.param("kernel", g.kernel[axis] as u32);
        let t = lw.b.index(IndexOp::Mul, tap, size);
        tap = lw.b.index(IndexOp::Add, t, k);
    }
    let spatial: Vec<Val> = pos.iter().map(|&(p, _)| p).collect();
    let pixel = input_pixel(lw, g, b, &spatial);
    let cig = lw.b.param("group_in", g.cig as u32);
    let cout = lw.b.param("out_channels", g.cout as u32);
    let rows = lw.b.index(IndexOp::Mul, tap, cig);
    let row0 = lw.b.index(IndexOp::Mul, rows, cout);
    let inputs = if l.shared_input { 1 } else { l.first.len() };
    let x_base: Vec<Val> = (0..inputs)
        .map(|j| lw.b.index(IndexOp::Add, pixel, l.first[j]))
        .collect();
    let w_base: Vec<Val> = l
        .channel
        .iter()
        .map(|&co| lw.b.index(IndexOp::Add, row0, co))
        .collect();
    let step = |lw: &mut Lowerer<'_>, ci: Val| -> Result<()> {
        let xs: Vec<Val> = x_base
            .iter()
            .map(|&base| {
                let at = lw.b.index(IndexOp::Add, base, ci);
                let v = lw.b.load(BufferRef::Node(g.x), DType::F32, at);
                zero_unless(lw, v, valid)
            })
            .collect();
        let w_row = lw.b.index(IndexOp::Mul, ci, cout);
        for (j, &wb) in w_base.iter().enumerate() {
            let wi = lw.b.index(IndexOp::Add, wb, w_row);
            let w = weight(lw, g, wi)?;
            let x = xs[if l.shared_input { 0 } else { j }];
            let prod =
                lw.b.let_(DType::F32, Expr::Binary(BinaryOp::Mul, DType::F32, x, w));
            let cur = lw.b.read(l.acc[j], DType::F32);
            let next = lw.b.let_(
                DType::F32,
                Expr::Binary(BinaryOp::Add, DType::F32, cur, prod),
            );
            lw.b.assign(l.acc[j], next);
        }
        Ok(())
    };
    if g.cig == 1 {
        step(lw, zero)
    } else {
        lw.loop_(zero, cig, one, step)
    }
}

/// The convolution as matrix products on the matmul templates: per group, the im2col rows
/// (gathered from the input at each read, or the input itself for a 1x1 convolution) times
/// the group's columns of the kernel.
fn gemm(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    c: &ConvKernel,
    g: &Geometry,
    method: ConvMethod,
    scratch: &mut Scratch,
) -> Result<Vec<Kernel>> {
    let out_shape = shapes[c.root].clone();
    let groups = g.spec.groups;
    let (m, k, n) = (g.rows(), g.taps() * g.cig, g.cog);
    let Some(t) = Tiling::new(m, k, n, groups, c.shared_memory) else {
        return Err(prog.nodes[c.conv].attribute(Error::Backend {
            backend: "gpu".into(),
            detail: format!(
                "conv with {k} values per output: the GPU backend allows at most {}; use the cpu backend",
                K_CHUNK * K_CHUNK
            ),
        }));
    };
    let total: usize = out_shape.iter().product();
    let partials = (t.splits > 1).then(|| scratch.alloc(t.splits * total));
    let kind = match method {
        ConvMethod::Pointwise => "conv_pointwise",
        _ => "conv_gemm",
    };
    let mut lw = Lowerer::new(Builder::new(kind, 256), prog, shapes, mat);
    lw.set_root(c.root);
    // A: rows of the im2col (a pointwise input's rows are its pixels, `cin` apart); B: the
    // kernel as (taps * cig) x cout, a group's columns `cog` wide.
    let a_sm = if method == ConvMethod::Pointwise {
        g.cin
    } else {
        k
    };
    t.declare(&mut lw.b, [a_sm as isize, 1, g.cout as isize, 1]);
    let mut functions = Vec::new();
    // Where group `batch` starts in each operand.
    let a_group = if method == ConvMethod::Pointwise {
        g.cig
    } else {
        m * k
    };
    for (name, per_group) in [("a_base", a_group), ("b_base", g.cog)] {
        functions.push(template::function(
            &mut lw,
            name,
            &[DType::U32],
            |lw, args| {
                let base = if groups == 1 {
                    lw.b.u32(0)
                } else {
                    let s = lw.b.param("group_stride", per_group as u32);
                    lw.b.index(IndexOp::Mul, args[0], s)
                };
                Ok(Some((base, DType::U32)))
            },
        )?);
    }
    functions.push(template::function(
        &mut lw,
        "load_a",
        &[DType::U32],
        |lw, args| {
            let v = if method == ConvMethod::Pointwise {
                lw.b.load(BufferRef::Node(g.x), DType::F32, args[0])
            } else {
                gather(lw, g, args[0], m, k)
            };
            Ok(Some((v, DType::F32)))
        },
    )?);
    functions.push(template::function(
        &mut lw,
        "load_b",
        &[DType::U32],
        |lw, args| Ok(Some((weight(lw, g, args[0])?, DType::F32))),
    )?);
    // The epilogue: output element (row, group * cog + col), or a partial product in the
    // output's layout.
    let epilogue_fn = template::function(&mut lw, "epilogue", &EPILOGUE_ARGS, |lw, args| {
        let &[batch, split, row, col, acc] = args else {
            return Ok(None);
        };
        let channel = if groups == 1 {
            col
        } else {
            let cog = lw.b.param("group_out", g.cog as u32);
            let first = lw.b.index(IndexOp::Mul, batch, cog);
            lw.b.index(IndexOp::Add, first, col)
        };
        let cout = lw.b.param("out_channels", g.cout as u32);
        let at = lw.b.index(IndexOp::Mul, row, cout);
        let at = lw.b.index(IndexOp::Add, at, channel);
        match partials {
            Some(p) => {
                let nt = lw.b.param("total", total as u32);
                let base = lw.b.index(IndexOp::Mul, split, nt);
                let x = lw.b.index(IndexOp::Add, base, at);
                lw.b.store(p, DType::F32, x, acc);
            }
            None => {
                let sum = add_bias(lw, g.bias, channel, acc)?;
                let coords = Coords::Linear {
                    index: at,
                    shape: out_shape.clone(),
                    labels: (0..out_shape.len()).map(Label::Thread).collect(),
                };
                epilogue(lw, c.conv, c.root, &out_shape, sum, coords)?;
            }
        }
        Ok(None)
    })?;
    functions.push(epilogue_fn);
    let sum = partials.map(|p| Splits {
        mm: c.conv,
        root: c.root,
        bias: g.bias,
        partials: p,
        splits: t.splits,
    });
    product_kernels(prog, shapes, mat, lw, &t, functions, sum)
}

/// Element `i` of the kernel, read from its buffer or computed where it is read (a folded
/// BatchNormalization, a reshape).
fn weight(lw: &mut Lowerer<'_>, g: &Geometry, i: Val) -> Result<Val> {
    let shape = lw.shape(g.w).to_vec();
    let labels = vec![Label::Other; shape.len()];
    lw.value(
        g.w,
        Coords::Linear {
            index: i,
            shape,
            labels,
        },
    )
}

/// Element `i` of the virtual im2col, `groups` matrices of `m` x `k` one after another: the
/// input value under tap `kk / cig`, channel `kk % cig` of the group, at output position
/// `row`, gathered where it lies.
fn gather(lw: &mut Lowerer<'_>, g: &Geometry, i: Val, m: usize, k: usize) -> Val {
    let (grp, within) = if g.spec.groups == 1 {
        (None, i)
    } else {
        let mk = lw.b.param("group_stride", (m * k) as u32);
        (
            Some(lw.b.index(IndexOp::Div, i, mk)),
            lw.b.index(IndexOp::Rem, i, mk),
        )
    };
    let kk_n = lw.b.param("k", k as u32);
    let row = lw.b.index(IndexOp::Div, within, kk_n);
    let kk = lw.b.index(IndexOp::Rem, within, kk_n);
    let cig = lw.b.param("group_in", g.cig as u32);
    let ci = lw.b.index(IndexOp::Rem, kk, cig);
    let tap = lw.b.index(IndexOp::Div, kk, cig);
    let taps = lw.delinearize(tap, &g.kernel);
    let mut rows_shape = vec![g.batch];
    rows_shape.extend_from_slice(&g.out);
    let rc = lw.delinearize(row, &rows_shape);
    let mut pos = Vec::with_capacity(g.rank());
    let mut valid = None;
    for d in 0..g.rank() {
        let (p, v) = source(lw, g, d, rc[d + 1], taps[d]);
        valid = both(lw, valid, v);
        pos.push(p);
    }
    let channel = match grp {
        Some(grp) => {
            let first = lw.b.index(IndexOp::Mul, grp, cig);
            lw.b.index(IndexOp::Add, first, ci)
        }
        None => ci,
    };
    let pixel = input_pixel(lw, g, rc[0], &pos);
    let at = lw.b.index(IndexOp::Add, pixel, channel);
    let v = lw.b.load(BufferRef::Node(g.x), DType::F32, at);
    zero_unless(lw, v, valid)
}
