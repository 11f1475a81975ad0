//! cumsum/cumprod along an axis. Lines of at most `CHUNK` elements run one thread per line.
//! Longer lines run in three passes: each chunk of `CHUNK` elements scanned by one thread
//! (its total kept), the chunk totals scanned per line, and each element combined with the
//! total of the chunks before it; no loop runs more than `CHUNK` steps.

use super::Scratch;
use crate::gpu::ir::{BufferRef, Builder, Builtin, Expr, IndexOp, Kernel, Lit, Val};
use crate::gpu::lower::{Coords, Label, Lowerer};
use lamina_graph::op::{BinaryOp, Op, ScanOp};
use lamina_graph::{DType, Error, Program, Result};

/// The longest stretch one thread scans.
pub const CHUNK: usize = 2048;
const WG: u32 = 64;

fn step(b: &mut Builder, op: ScanOp, d: DType, acc: Val, v: Val) -> Val {
    let bin = match op {
        ScanOp::CumSum => BinaryOp::Add,
        ScanOp::CumProd => BinaryOp::Mul,
    };
    b.let_(d, Expr::Binary(bin, d, acc, v))
}

fn identity(op: ScanOp, d: DType) -> Lit {
    match op {
        ScanOp::CumSum => Lit::of(d, 0.0),
        ScanOp::CumProd => Lit::of(d, 1.0),
    }
}

/// One scan node as its passes see it: the op along `axis` of `input`, whose other axes index
/// the lines, each cut into `chunks` chunks of at most `CHUNK` elements.
struct Scan<'p> {
    prog: &'p Program,
    shapes: &'p [Vec<usize>],
    mat: &'p dyn Fn(usize) -> bool,
    root: usize,
    op: ScanOp,
    axis: usize,
    input: usize,
    /// The input's shape.
    s: Vec<usize>,
    dtype: DType,
    in_dtype: DType,
    /// The length of a line (the axis).
    n: usize,
    /// The axes other than `axis`.
    kept: Vec<usize>,
    /// The sizes of the `kept` axes.
    line_shape: Vec<usize>,
    /// The number of lines.
    lines: usize,
    /// The number of chunks in a line.
    chunks: usize,
}

/// The kernels of a scan node.
pub fn build(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
    scratch: &mut Scratch,
) -> Result<Vec<Kernel>> {
    let scan = Scan::new(prog, shapes, mat, root)?;
    let totals = (scan.chunks > 1).then(|| scratch.alloc(scan.lines * scan.chunks));
    let mut kernels = vec![scan.chunk_pass(totals)?];
    let Some(totals) = totals else {
        return Ok(kernels);
    };
    kernels.push(scan.totals_pass(totals));
    kernels.push(scan.offsets_pass(totals));
    Ok(kernels)
}

impl<'p> Scan<'p> {
    /// The scan node `root`, refused when its lines are longer than the passes can scan.
    fn new(
        prog: &'p Program,
        shapes: &'p [Vec<usize>],
        mat: &'p dyn Fn(usize) -> bool,
        root: usize,
    ) -> Result<Scan<'p>> {
        let node = &prog.nodes[root];
        let Op::Scan { func: op, axis } = &node.op else {
            return Err(Error::Backend {
                backend: "gpu".into(),
                detail: "internal: not a scan".into(),
            });
        };
        let (op, axis) = (*op, *axis);
        let input = node.inputs[0];
        let s = shapes[input].clone();
        let dtype = node.dtype;
        let in_dtype = prog.nodes[input].dtype;
        let n = s[axis];
        let kept: Vec<usize> = (0..s.len()).filter(|&d| d != axis).collect();
        let line_shape: Vec<usize> = kept.iter().map(|&d| s[d]).collect();
        let lines: usize = line_shape.iter().product();
        let chunks = n.div_ceil(CHUNK).max(1);
        if chunks > CHUNK {
            return Err(node.attribute(Error::Backend {
                backend: "gpu".into(),
                detail: format!(
                    "{} along an axis of {n} elements: the GPU backend scans at most {} elements per line; use the cpu backend",
                    op_name(op),
                    CHUNK * CHUNK
                ),
            }));
        }
        Ok(Scan {
            prog,
            shapes,
            mat,
            root,
            op,
            axis,
            input,
            s,
            dtype,
            in_dtype,
            n,
            kept,
            line_shape,
            lines,
            chunks,
        })
    }

    /// Pass 1: one thread per (line, chunk) scans the chunk into the output, and keeps the
    /// chunk's total in `totals` when there are several chunks.
    fn chunk_pass(&self, totals: Option<BufferRef>) -> Result<Kernel> {
        let Scan {
            op,
            axis,
            input,
            dtype,
            in_dtype,
            n,
            lines,
            chunks,
            root,
            ..
        } = *self;
        let (s, kept, line_shape) = (&self.s, &self.kept, &self.line_shape);
        let mut lw = Lowerer::new(Builder::new("scan", WG), self.prog, self.shapes, self.mat);
        lw.set_root(root);
        let g = lw.b.let_(DType::U32, Expr::Builtin(Builtin::GlobalIndex));
        let work = lw.b.param("work", (lines * chunks) as u32);
        lw.b.return_unless_below(g, work);
        let nc = lw.b.param("chunks", chunks as u32);
        let line = lw.b.index(IndexOp::Div, g, nc);
        let chunk = lw.b.index(IndexOp::Rem, g, nc);
        let lc = lw.delinearize(line, line_shape);
        let c = lw.b.u32(CHUNK as u32);
        let begin = lw.b.index(IndexOp::Mul, chunk, c);
        let len = lw.b.param("len", n as u32);
        let e0 = lw.b.index(IndexOp::Add, begin, c);
        let end = lw.b.index(IndexOp::Min, e0, len);
        let one = lw.b.u32(1);
        let id = lw.b.lit(identity(op, dtype));
        let acc = lw.b.var(dtype, id);
        lw.loop_(begin, end, one, |lw, j| {
            let zero = lw.b.u32(0);
            let mut coords = vec![(zero, Label::Zero); s.len()];
            for (k, &d) in kept.iter().enumerate() {
                coords[d] = (lc[k], Label::Other);
            }
            coords[axis] = (j, Label::Other);
            let cs = Coords::Axes(coords);
            let v = lw.value(input, cs.clone())?;
            let v = if in_dtype == dtype {
                v
            } else {
                lw.b.let_(
                    dtype,
                    Expr::Cast {
                        from: in_dtype,
                        to: dtype,
                        value: v,
                    },
                )
            };
            let cur = lw.b.read(acc, dtype);
            let next = step(&mut lw.b, op, dtype, cur, v);
            lw.b.assign(acc, next);
            let idx = lw.linearize(&cs, s);
            lw.b.store(BufferRef::Node(root), dtype, idx, next);
            Ok(())
        })?;
        if let Some(t) = totals {
            let total = lw.b.read(acc, dtype);
            lw.b.store(t, dtype, g, total);
        }
        Ok(lw
            .b
            .finish(((lines * chunks) as u64).div_ceil(WG as u64), None))
    }

    /// Pass 2: an exclusive scan of each line's chunk totals, in place.
    fn totals_pass(&self, totals: BufferRef) -> Kernel {
        let Scan {
            op,
            dtype,
            lines,
            chunks,
            ..
        } = *self;
        let mut b = Builder::new("scan_totals", WG);
        let line = b.let_(DType::U32, Expr::Builtin(Builtin::GlobalIndex));
        let nl = b.param("lines", lines as u32);
        b.return_unless_below(line, nl);
        let nc = b.param("chunks", chunks as u32);
        let base = b.index(IndexOp::Mul, line, nc);
        let zero = b.u32(0);
        let one = b.u32(1);
        let id = b.lit(identity(op, dtype));
        let acc = b.var(dtype, id);
        b.loop_(zero, nc, one, |b, k| {
            let at = b.index(IndexOp::Add, base, k);
            let t = b.load(totals, dtype, at);
            let cur = b.read(acc, dtype);
            b.store(totals, dtype, at, cur);
            let next = step(b, op, dtype, cur, t);
            b.assign(acc, next);
        });
        b.finish((lines as u64).div_ceil(WG as u64), None)
    }

    /// Pass 3: every element of a chunk after the first combined with the total of the chunks
    /// before it.
    fn offsets_pass(&self, totals: BufferRef) -> Kernel {
        let Scan {
            op,
            axis,
            dtype,
            chunks,
            root,
            ..
        } = *self;
        let (s, kept, line_shape) = (&self.s, &self.kept, &self.line_shape);
        let mut lw = Lowerer::new(
            Builder::new("scan_offsets", 256),
            self.prog,
            self.shapes,
            self.mat,
        );
        let t = lw.b.let_(DType::U32, Expr::Builtin(Builtin::GlobalIndex));
        let total: usize = s.iter().product();
        let nt = lw.b.param("total", total as u32);
        lw.b.return_unless_below(t, nt);
        let coords = lw.delinearize(t, s);
        let lcs: Vec<Val> = kept.iter().map(|&d| coords[d]).collect();
        let line = {
            let zero = lw.b.u32(0);
            let mut acc = zero;
            let mut stride = 1usize;
            for k in (0..line_shape.len()).rev() {
                if line_shape[k] != 1 {
                    let st = lw.b.param("stride", stride as u32);
                    let term = lw.b.index(IndexOp::Mul, lcs[k], st);
                    acc = lw.b.index(IndexOp::Add, acc, term);
                }
                stride *= line_shape[k];
            }
            acc
        };
        let c = lw.b.u32(CHUNK as u32);
        let chunk = lw.b.index(IndexOp::Div, coords[axis], c);
        let nc = lw.b.param("chunks", chunks as u32);
        let base = lw.b.index(IndexOp::Mul, line, nc);
        let at = lw.b.index(IndexOp::Add, base, chunk);
        let off = lw.b.load(totals, dtype, at);
        let out = BufferRef::Node(root);
        let v = lw.b.load(out, dtype, t);
        let r = step(&mut lw.b, op, dtype, off, v);
        lw.b.store(out, dtype, t, r);
        lw.b.finish((total as u64).div_ceil(256), None)
    }
}

fn op_name(op: ScanOp) -> &'static str {
    match op {
        ScanOp::CumSum => "cumsum",
        ScanOp::CumProd => "cumprod",
    }
}
