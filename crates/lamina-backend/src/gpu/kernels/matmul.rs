//! Matmul kernels from the templates of `shaders/`: the tiled product through workgroup
//! memory for GPUs, the streaming one for CPU-hosted adapters and for products of at most 4
//! rows (matrix-vector). The generated parts are the operand reads (strided views, so
//! transposes and slices cost nothing) and the epilogue, the elementwise ops that follow the
//! product, applied before its only write. Inner dimensions longer than `K_CHUNK` are split
//! over workgroups whose partial products a second kernel sums before the epilogue.

use super::Scratch;
use super::template::{self, EPILOGUE_ARGS};
use crate::gpu::ir::{BufferRef, Builder, Builtin, Expr, IndexOp, Kernel, Template, Val};
use crate::gpu::lower::{Coords, Label, Lowerer, Register};
use crate::gpu::plan::View;
use lamina_graph::{DType, Error, Program, Result};

/// The longest stretch of the inner dimension one workgroup adds up.
pub const K_CHUNK: usize = 4096;

/// What a matmul kernel computes.
pub struct Operands {
    /// The matmul node.
    pub mm: usize,
    /// The node written (the matmul or its elementwise epilogue).
    pub root: usize,
    /// The left operand.
    pub a: View,
    /// The right operand.
    pub b: View,
    /// Tile through workgroup memory (GPUs) or stream from global memory (CPU adapters).
    pub shared_memory: bool,
}

/// The kernels of a matmul with its epilogue.
pub fn build(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    o: &Operands,
    scratch: &mut Scratch,
) -> Result<Vec<Kernel>> {
    let out_shape = shapes[o.root].clone();
    let sa = shapes[prog.nodes[o.mm].inputs[0]].clone();
    let sb = shapes[prog.nodes[o.mm].inputs[1]].clone();
    let r = out_shape.len();
    let (m, k, n) = (sa[sa.len() - 2], sa[sa.len() - 1], sb[sb.len() - 1]);
    let batches: usize = out_shape[..r - 2].iter().product();
    let Some(t) = Tiling::new(m, k, n, batches, o.shared_memory) else {
        return Err(prog.nodes[o.mm].attribute(Error::Backend {
            backend: "gpu".into(),
            detail: format!(
                "matmul with an inner dimension of {k}: the GPU backend allows at most {}; use the cpu backend",
                K_CHUNK * K_CHUNK
            ),
        }));
    };
    let partials = (t.splits > 1).then(|| scratch.alloc(t.splits * batches * m * n));

    let mut lw = Lowerer::new(Builder::new("matmul", 256), prog, shapes, mat);
    lw.set_root(o.root);
    t.declare(
        &mut lw.b,
        [
            o.a.strides[sa.len() - 2],
            o.a.strides[sa.len() - 1],
            o.b.strides[sb.len() - 2],
            o.b.strides[sb.len() - 1],
        ],
    );
    let mut functions = base_functions(&mut lw, o, [sa.len(), sb.len()], &out_shape)?;
    functions.extend(load_functions(&mut lw, o, shapes)?);
    functions.push(epilogue_function(&mut lw, o, &out_shape, partials, (m, n))?);
    let sum = partials.map(|p| Splits {
        mm: o.mm,
        root: o.root,
        bias: None,
        partials: p,
        splits: t.splits,
    });
    product_kernels(prog, shapes, mat, lw, &t, functions, sum)
}

/// The template functions `a_base`, `b_base`: where a batch's matrix starts in each operand.
fn base_functions(
    lw: &mut Lowerer<'_>,
    o: &Operands,
    ranks: [usize; 2],
    out_shape: &[usize],
) -> Result<Vec<crate::gpu::ir::Function>> {
    // Wrapping arithmetic, exact for negative strides.
    let r = out_shape.len();
    let batch_shape = &out_shape[..r - 2];
    let mut functions = Vec::new();
    for (name, view, rank) in [("a_base", &o.a, ranks[0]), ("b_base", &o.b, ranks[1])] {
        functions.push(template::function(lw, name, &[DType::U32], |lw, args| {
            let bc = lw.delinearize(args[0], batch_shape);
            let mut acc = lw.b.param("offset", view.offset as i32 as u32);
            let boff = r - rank;
            for d in 0..rank.saturating_sub(2) {
                if view.strides[d] != 0 {
                    let st = lw.b.param("batch_stride", view.strides[d] as i32 as u32);
                    let t = lw.b.index(IndexOp::Mul, bc[d + boff], st);
                    acc = lw.b.index(IndexOp::Add, acc, t);
                }
            }
            Ok(Some((acc, DType::U32)))
        })?);
    }
    Ok(functions)
}

/// The template functions `load_a`, `load_b`: element `i` of each operand.
fn load_functions(
    lw: &mut Lowerer<'_>,
    o: &Operands,
    shapes: &[Vec<usize>],
) -> Result<Vec<crate::gpu::ir::Function>> {
    let mut functions = Vec::new();
    for (name, view) in [("load_a", &o.a), ("load_b", &o.b)] {
        functions.push(template::function(lw, name, &[DType::U32], |lw, args| {
            let i = args[0];
            // A fused operand (an im2col made of slices and concatenations) is computed where
            // it is read: implicit GEMM, no buffer in between.
            let v = if view.fused {
                let shape = shapes[view.node].clone();
                let labels = vec![Label::Other; shape.len()];
                lw.value(
                    view.node,
                    Coords::Linear {
                        index: i,
                        shape,
                        labels,
                    },
                )?
            } else {
                lw.b.load(BufferRef::Node(view.node), DType::F32, i)
            };
            Ok(Some((v, DType::F32)))
        })?);
    }
    Ok(functions)
}

/// The template function `epilogue`: the root's value written once, or a partial product.
fn epilogue_function(
    lw: &mut Lowerer<'_>,
    o: &Operands,
    out_shape: &[usize],
    partials: Option<BufferRef>,
    (m, n): (usize, usize),
) -> Result<crate::gpu::ir::Function> {
    // The root's value from the accumulator, written once; or, when the inner dimension is
    // split, the partial product.
    let r = out_shape.len();
    let batch_shape = &out_shape[..r - 2];
    let batches: usize = batch_shape.iter().product();
    template::function(lw, "epilogue", &EPILOGUE_ARGS, |lw, args| {
        let &[batch, split, row, col, acc] = args else {
            return Ok(None);
        };
        match partials {
            Some(p) => {
                let nb = lw.b.param("batches", batches as u32);
                let pm = lw.b.param("m", m as u32);
                let pn = lw.b.param("n", n as u32);
                let sb_ = lw.b.index(IndexOp::Mul, split, nb);
                let x = lw.b.index(IndexOp::Add, sb_, batch);
                let x = lw.b.index(IndexOp::Mul, x, pm);
                let x = lw.b.index(IndexOp::Add, x, row);
                let x = lw.b.index(IndexOp::Mul, x, pn);
                let x = lw.b.index(IndexOp::Add, x, col);
                lw.b.store(p, DType::F32, x, acc);
            }
            None => {
                let bc = lw.delinearize(batch, batch_shape);
                let mut coords: Vec<(Val, Label)> = bc
                    .into_iter()
                    .enumerate()
                    .map(|(d, v)| (v, Label::Thread(d)))
                    .collect();
                coords.push((row, Label::Thread(r - 2)));
                coords.push((col, Label::Thread(r - 1)));
                epilogue(lw, o.mm, o.root, out_shape, acc, Coords::Axes(coords))?;
            }
        }
        Ok(None)
    })
}

/// The kernels of a product on a template: the product with its template `functions`, then,
/// where the inner dimension is split, the kernel summing the partial products (`sum`).
pub fn product_kernels(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    lw: Lowerer<'_>,
    t: &Tiling,
    functions: Vec<crate::gpu::ir::Function>,
    sum: Option<Splits>,
) -> Result<Vec<Kernel>> {
    let main = lw.b.finish(
        t.tiles as u64,
        Some(Template {
            source: t.template(),
            functions,
        }),
    );
    let mut kernels = vec![main];
    if let Some(s) = sum {
        kernels.push(sum_splits(prog, shapes, mat, &s)?);
    }
    Ok(kernels)
}

/// How a product of `batches` matrices, `m` x `k` times `k` x `n`, is spread over the
/// workgroups of a matmul template.
pub struct Tiling {
    /// Whether the tiled template (workgroup memory) runs, else the streaming one.
    pub tiled: bool,
    threads_x: usize,
    tile_rows: usize,
    tile_cols: usize,
    tiles_m: usize,
    tiles_n: usize,
    /// Workgroups the inner dimension is split over (their partial products summed after).
    pub splits: usize,
    k_chunk: usize,
    /// Workgroups to dispatch.
    pub tiles: usize,
    m: usize,
    k: usize,
    n: usize,
}

impl Tiling {
    /// The tiling of the product on a GPU (`shared_memory`) or a CPU-hosted adapter; `None`
    /// where the inner dimension needs more than `K_CHUNK` splits.
    pub fn new(
        m: usize,
        k: usize,
        n: usize,
        batches: usize,
        shared_memory: bool,
    ) -> Option<Tiling> {
        let narrow = m <= 4;
        // The tiled template's 16x16 threads cover 64x64; the streaming one's threads, 4x4
        // each, form 16x16 (64x64) or, for at most 4 rows, one row of 256 (4x1024).
        let (threads_x, tile_rows, tile_cols) = if narrow {
            (256usize, 4usize, 1024usize)
        } else {
            (16, 64, 64)
        };
        let (tiles_m, tiles_n) = (m.div_ceil(tile_rows).max(1), n.div_ceil(tile_cols).max(1));
        let splits = k.div_ceil(K_CHUNK).max(1);
        if splits > K_CHUNK {
            return None;
        }
        let k_chunk = if splits == 1 { k.max(1) } else { K_CHUNK };
        Some(Tiling {
            tiled: shared_memory && !narrow,
            threads_x,
            tile_rows,
            tile_cols,
            tiles_m,
            tiles_n,
            splits,
            k_chunk,
            tiles: batches * tiles_m * tiles_n * splits,
            m,
            k,
            n,
        })
    }

    /// Declares the template's parameters, with the operands' strides `[a_sm, a_sk, b_sk,
    /// b_sn]` (in elements; negative ones wrap).
    pub fn declare(&self, b: &mut Builder, strides: [isize; 4]) {
        let [a_sm, a_sk, b_sk, b_sn] = strides.map(|s| s as i32 as u32 as usize);
        for (name, v) in [
            ("tiles", self.tiles),
            ("tiles_m", self.tiles_m),
            ("tiles_n", self.tiles_n),
            ("splits", self.splits),
            ("k_chunk", self.k_chunk),
            ("m", self.m),
            ("n", self.n),
            ("k", self.k),
            ("a_sm", a_sm),
            ("a_sk", a_sk),
            ("b_sk", b_sk),
            ("b_sn", b_sn),
            ("threads_x", self.threads_x),
            ("tile_rows", self.tile_rows),
            ("tile_cols", self.tile_cols),
        ] {
            b.declare_param(name, v as u32);
        }
    }

    /// The template the tiling runs on.
    pub fn template(&self) -> &'static str {
        if self.tiled {
            lamina_shaders::MATMUL_TILED
        } else {
            lamina_shaders::MATMUL_STREAM
        }
    }
}

/// The root's value with the register of `mm` (a matmul or convolution) holding `acc`,
/// stored at `coords`.
pub fn epilogue(
    lw: &mut Lowerer<'_>,
    mm: usize,
    root: usize,
    out_shape: &[usize],
    acc: Val,
    coords: Coords,
) -> Result<()> {
    lw.registers.insert(
        mm,
        Register {
            val: acc,
            axes: (0..out_shape.len())
                .map(|d| (out_shape[d] != 1).then_some(d))
                .collect(),
        },
    );
    let v = lw.value(root, coords.clone())?;
    let idx = lw.linearize(&coords, out_shape);
    let dtype = lw.program().nodes[root].dtype;
    lw.b.store(BufferRef::Node(root), dtype, idx, v);
    Ok(())
}

/// `acc` plus element `channel` of the bias `bias` (a vector, read from its buffer or
/// computed there), when there is one.
pub fn add_bias(lw: &mut Lowerer<'_>, bias: Option<usize>, channel: Val, acc: Val) -> Result<Val> {
    let Some(b) = bias else {
        return Ok(acc);
    };
    let shape = lw.shape(b).to_vec();
    let labels = vec![Label::Other; shape.len()];
    let v = lw.value(
        b,
        Coords::Linear {
            index: channel,
            shape,
            labels,
        },
    )?;
    Ok(lw.b.let_(
        DType::F32,
        Expr::Binary(lamina_graph::op::BinaryOp::Add, DType::F32, acc, v),
    ))
}

/// Partial products of a split inner dimension, stored in the output's layout one split
/// after another, to be summed.
pub struct Splits {
    /// The matmul or convolution node.
    pub mm: usize,
    /// The node written (`mm` or its elementwise epilogue).
    pub root: usize,
    /// A bias added along the last axis after the sum (a convolution's).
    pub bias: Option<usize>,
    /// The scratch buffer of partial products.
    pub partials: BufferRef,
    /// How many.
    pub splits: usize,
}

/// Sums the partial products of a split inner dimension and applies the epilogue: one thread
/// per output element.
pub fn sum_splits(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    s: &Splits,
) -> Result<Kernel> {
    const WG: u32 = 256;
    let out_shape = shapes[s.root].clone();
    let mut lw = Lowerer::new(Builder::new("matmul_splits", WG), prog, shapes, mat);
    lw.set_root(s.root);
    let t = lw.b.let_(DType::U32, Expr::Builtin(Builtin::GlobalIndex));
    let total: usize = out_shape.iter().product();
    let nt = lw.b.param("total", total as u32);
    lw.b.return_unless_below(t, nt);
    let zero_f = lw.b.lit(crate::gpu::ir::Lit::F32(0.0));
    let sum = lw.b.var(DType::F32, zero_f);
    let zero = lw.b.u32(0);
    let one = lw.b.u32(1);
    let ns = lw.b.param("splits", s.splits as u32);
    lw.loop_(zero, ns, one, |lw, i| {
        let base = lw.b.index(IndexOp::Mul, i, nt);
        let at = lw.b.index(IndexOp::Add, base, t);
        let v = lw.b.load(s.partials, DType::F32, at);
        let cur = lw.b.read(sum, DType::F32);
        let next = lw.b.let_(
            DType::F32,
            Expr::Binary(lamina_graph::op::BinaryOp::Add, DType::F32, cur, v),
        );
        lw.b.assign(sum, next);
        Ok(())
    })?;
    let mut acc = lw.b.read(sum, DType::F32);
    if s.bias.is_some() {
        let channels =
            lw.b.param("size", out_shape.last().copied().unwrap_or(1) as u32);
        let channel = lw.b.index(IndexOp::Rem, t, channels);
        acc = add_bias(&mut lw, s.bias, channel, acc)?;
    }
    let coords = Coords::Linear {
        index: t,
        shape: out_shape.clone(),
        labels: (0..out_shape.len()).map(Label::Thread).collect(),
    };
    epilogue(&mut lw, s.mm, s.root, &out_shape, acc, coords)?;
    Ok(lw.b.finish((total as u64).div_ceil(WG as u64), None))
}

/// A product of two row-major matrices read from buffers as they are (`a`: `m` x `k`, rows
/// `a_row` apart; `b`: `k` x `n` from element `b_first`, rows `b_row` apart), for kernels that
/// multiply buffers of their own (a recurrent loop's states and weights).
pub struct BufferProduct {
    /// The left matrix's buffer.
    pub a: BufferRef,
    /// The distance between its rows, in elements.
    pub a_row: usize,
    /// The right matrix's buffer.
    pub b: BufferRef,
    /// Where its first element lies.
    pub b_first: usize,
    /// The distance between its rows, in elements.
    pub b_row: usize,
    /// Rows of the product.
    pub m: usize,
    /// The inner dimension.
    pub k: usize,
    /// Columns of the product.
    pub n: usize,
}

/// The kernel of a [`BufferProduct`] on the matmul templates, each finished value handed to
/// `store(builder, row, col, value)`; `None` where the inner dimension is longer than one
/// workgroup adds up (`K_CHUNK`).
pub fn buffer_product(
    kind: &'static str,
    p: &BufferProduct,
    shared_memory: bool,
    store: impl FnOnce(&mut Builder, Val, Val, Val),
) -> Option<Kernel> {
    let t = Tiling::new(p.m, p.k, p.n, 1, shared_memory)?;
    if t.splits > 1 {
        return None;
    }
    let mut b = Builder::new(kind, 256);
    t.declare(&mut b, [p.a_row as isize, 1, p.b_row as isize, 1]);
    let mut functions = Vec::new();
    for (name, first) in [("a_base", 0usize), ("b_base", p.b_first)] {
        functions.push(
            template::function(&mut b, name, &[DType::U32], |b, _| {
                Ok(Some((b.param("first", first as u32), DType::U32)))
            })
            .ok()?,
        );
    }
    for (name, buffer) in [("load_a", p.a), ("load_b", p.b)] {
        functions.push(
            template::function(&mut b, name, &[DType::U32], |b, args| {
                Ok(Some((b.load(buffer, DType::F32, args[0]), DType::F32)))
            })
            .ok()?,
        );
    }
    functions.push(
        template::function(&mut b, "epilogue", &EPILOGUE_ARGS, |b, args| {
            store(b, args[2], args[3], args[4]);
            Ok(None)
        })
        .ok()?,
    );
    Some(b.finish(
        t.tiles as u64,
        Some(Template {
            source: t.template(),
            functions,
        }),
    ))
}
