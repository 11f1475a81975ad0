//! Reductions. Rows of at most `THREAD_ROW_MAX` elements run one thread per row; rows up to
//! `COOP_MAX` run one workgroup per row, its threads reading neighbouring elements
//! (coalesced) and combining through workgroup memory; longer rows run in passes over chunks
//! of `COOP_MAX`, each pass writing partial results, so no thread's loop exceeds `TRIPS`
//! steps whatever the length. argmax/argmin follow the same shapes, carrying indices.

use super::Scratch;
use crate::gpu::ir::{BufferRef, Builder, Builtin, Expr, IndexOp, Kernel, Lit, Stmt, Val};
use crate::gpu::lower::{Coords, Label, Lowerer, Register};
use crate::gpu::plan::{COOP_MAX, RowGroup, THREAD_ROW_MAX, WG_ROW};
use lamina_graph::op::{ArgReduceOp, BinaryOp, Op, ReduceOp, UnaryOp};
use lamina_graph::{DType, Error, Program, Result};

/// The most loop steps of a one-thread-per-row kernel on a CPU-hosted adapter (llvmpipe stops
/// a shader's loops after 65,535 steps in all).
const CPU_ADAPTER_TRIPS: usize = 16_384;

/// Threads per workgroup of the one-thread-per-row kernels.
const WG_THREAD_ROWS: u32 = 64;

fn internal(what: &str) -> Error {
    Error::Backend {
        backend: "gpu".into(),
        detail: format!("internal: {what}"),
    }
}

fn init(op: ReduceOp, d: DType) -> Lit {
    match (op, d) {
        (ReduceOp::Sum | ReduceOp::Mean, d) => Lit::of(d, 0.0),
        (ReduceOp::Prod, d) => Lit::of(d, 1.0),
        (ReduceOp::Max, DType::F32) => Lit::F32(f32::NEG_INFINITY),
        (ReduceOp::Min, DType::F32) => Lit::F32(f32::INFINITY),
        (ReduceOp::Max, DType::I32) => Lit::I32(i32::MIN),
        (ReduceOp::Min, DType::I32) => Lit::I32(i32::MAX),
        (ReduceOp::Max, DType::Bool) => Lit::Bool(false),
        (ReduceOp::Min, DType::Bool) => Lit::Bool(true),
        (ReduceOp::Max, _) => Lit::U32(0),
        (ReduceOp::Min, _) => Lit::U32(u32::MAX),
    }
}

/// `acc op v`; a NaN, once met, stays (as NumPy's max and min).
fn combine(b: &mut Builder, op: ReduceOp, d: DType, acc: Val, v: Val) -> Val {
    let bin = match (op, d) {
        (ReduceOp::Sum | ReduceOp::Mean, DType::Bool) | (ReduceOp::Max, DType::Bool) => {
            BinaryOp::Or
        }
        (ReduceOp::Prod, DType::Bool) | (ReduceOp::Min, DType::Bool) => BinaryOp::And,
        (ReduceOp::Sum | ReduceOp::Mean, _) => BinaryOp::Add,
        (ReduceOp::Prod, _) => BinaryOp::Mul,
        (ReduceOp::Max, _) => BinaryOp::Max,
        (ReduceOp::Min, _) => BinaryOp::Min,
    };
    b.let_(d, Expr::Binary(bin, d, acc, v))
}

fn cast_to(b: &mut Builder, from: DType, to: DType, v: Val) -> Val {
    if from == to {
        v
    } else {
        b.let_(to, Expr::Cast { from, to, value: v })
    }
}

fn not(b: &mut Builder, v: Val) -> Val {
    b.let_(DType::Bool, Expr::Unary(UnaryOp::Not, DType::Bool, v))
}

/// Combines every thread's `partial` through workgroup memory; all threads get the result.
fn tree(
    b: &mut Builder,
    dtype: DType,
    lid: Val,
    partial: Val,
    op: &dyn Fn(&mut Builder, Val, Val) -> Val,
) -> Val {
    let arr = b.shared(dtype, WG_ROW);
    b.push(Stmt::StoreShared {
        array: arr,
        index: lid,
        value: partial,
    });
    b.push(Stmt::Barrier);
    let mut half = WG_ROW / 2;
    while half >= 1 {
        let h = b.u32(half);
        let active = b.index(IndexOp::Less, lid, h);
        b.if_(active, |b| {
            let x = b.let_(
                dtype,
                Expr::LoadShared {
                    array: arr,
                    index: lid,
                },
            );
            let j = b.index(IndexOp::Add, lid, h);
            let y = b.let_(
                dtype,
                Expr::LoadShared {
                    array: arr,
                    index: j,
                },
            );
            let z = op(b, x, y);
            b.push(Stmt::StoreShared {
                array: arr,
                index: lid,
                value: z,
            });
        });
        b.push(Stmt::Barrier);
        half /= 2;
    }
    let zero = b.u32(0);
    b.let_(
        dtype,
        Expr::LoadShared {
            array: arr,
            index: zero,
        },
    )
}

/// Places per-part coordinates on the axes of a tensor of rank `rank` (others are 0).
/// Coordinates on some axes of a tensor: the axes, and a value with its label for each.
type AxisPart<'a> = (&'a [usize], &'a [(Val, Label)]);

fn place(lw: &mut Lowerer<'_>, rank: usize, parts: &[AxisPart<'_>]) -> Coords {
    let zero = lw.b.u32(0);
    let mut c = vec![(zero, Label::Zero); rank];
    for (axes, vals) in parts {
        for (&d, v) in axes.iter().zip(vals.iter()) {
            c[d] = *v;
        }
    }
    Coords::Axes(c)
}

fn labelled(vals: Vec<Val>, labels: impl Fn(usize) -> Label) -> Vec<(Val, Label)> {
    vals.into_iter()
        .enumerate()
        .map(|(i, v)| (v, labels(i)))
        .collect()
}

/// A row kernel: the group's reductions in registers, then the root (the last reduction or
/// an elementwise consumer over the same rows).
pub fn row(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
    group: &RowGroup,
    gpu_shaped: bool,
) -> Result<Kernel> {
    let s = &group.input_shape;
    let kept: Vec<usize> = (0..s.len()).filter(|d| !group.axes.contains(d)).collect();
    let row_shape: Vec<usize> = kept.iter().map(|&d| s[d]).collect();
    let red_shape: Vec<usize> = group.axes.iter().map(|&d| s[d]).collect();
    let rows: usize = row_shape.iter().product();
    let inner: usize = red_shape.iter().product();
    // One thread per row while every loop of the kernel together stays under
    // `CPU_ADAPTER_TRIPS` steps on CPU-hosted adapters (`THREAD_ROW_MAX` on GPUs, where a
    // workgroup per row reads coalesced).
    let loops = group.members.len() + 1;
    let coop = if gpu_shaped {
        inner > THREAD_ROW_MAX
    } else {
        inner * loops > CPU_ADAPTER_TRIPS
    };
    let wg = if coop { WG_ROW } else { WG_THREAD_ROWS };
    let mut lw = Lowerer::new(Builder::new("row", wg), prog, shapes, mat);
    lw.set_root(root);
    let (row, lid) = if coop {
        (
            lw.b.let_(DType::U32, Expr::Builtin(Builtin::WorkgroupIndex)),
            Some(lw.b.let_(DType::U32, Expr::Builtin(Builtin::LocalIndex))),
        )
    } else {
        (
            lw.b.let_(DType::U32, Expr::Builtin(Builtin::GlobalIndex)),
            None,
        )
    };
    let n_rows = lw.b.param("rows", rows as u32);
    lw.b.return_unless_below(row, n_rows);
    let kept2 = kept.clone();
    let rc = lw.delinearize(row, &row_shape);
    let row_coords = labelled(rc, |i| Label::Thread(kept2[i]));
    let (start, step) = match lid {
        Some(l) => (l, lw.b.u32(WG_ROW)),
        None => (lw.b.u32(0), lw.b.u32(1)),
    };
    for &r in &group.members {
        let Op::Reduce {
            func: op, keepdims, ..
        } = &prog.nodes[r].op
        else {
            return Err(internal("a row member is not a reduction"));
        };
        let (op, keepdims) = (*op, *keepdims);
        let input = prog.nodes[r].inputs[0];
        let in_dtype = prog.nodes[input].dtype;
        let dtype = prog.nodes[r].dtype;
        let i0 = lw.b.lit(init(op, dtype));
        let acc = lw.b.var(dtype, i0);
        let n_inner = lw.b.param("inner", inner as u32);
        let axes = group.axes.clone();
        let (kept_ref, rows_ref) = (&kept, &row_coords);
        lw.loop_(start, n_inner, step, |lw, j| {
            let red = lw.delinearize(j, &red_shape);
            let red = labelled(red, |_| Label::Other);
            let c = place(lw, s.len(), &[(kept_ref, rows_ref), (&axes, &red)]);
            let v = lw.value(input, c)?;
            let v = cast_to(&mut lw.b, in_dtype, dtype, v);
            let cur = lw.b.read(acc, dtype);
            let next = combine(&mut lw.b, op, dtype, cur, v);
            lw.b.assign(acc, next);
            Ok(())
        })?;
        let mut res = lw.b.read(acc, dtype);
        if let Some(l) = lid {
            res = tree(&mut lw.b, dtype, l, res, &|b, x, y| {
                combine(b, op, dtype, x, y)
            });
        }
        if op == ReduceOp::Mean {
            let n = lw.b.lit(Lit::F32(inner as f32));
            res =
                lw.b.let_(dtype, Expr::Binary(BinaryOp::Div, DType::F32, res, n));
        }
        let axes_req: Vec<Option<usize>> = if keepdims {
            (0..s.len())
                .map(|d| (!group.axes.contains(&d) && s[d] != 1).then_some(d))
                .collect()
        } else {
            kept.iter().map(|&d| (s[d] != 1).then_some(d)).collect()
        };
        lw.registers.insert(
            r,
            Register {
                val: res,
                axes: axes_req,
            },
        );
    }
    let out_dtype = prog.nodes[root].dtype;
    let out_shape = shapes[root].clone();
    if group.members.last() == Some(&root) {
        let v = lw.registers[&root].val;
        match lid {
            Some(l) => {
                let one = lw.b.u32(1);
                let first = lw.b.index(IndexOp::Less, l, one);
                lw.b.if_(first, |b| b.store(BufferRef::Node(root), out_dtype, row, v));
            }
            None => lw.b.store(BufferRef::Node(root), out_dtype, row, v),
        }
    } else {
        let free: Vec<usize> = (0..out_shape.len()).filter(|d| !kept.contains(d)).collect();
        let free_shape: Vec<usize> = free.iter().map(|&d| out_shape[d]).collect();
        let n_free =
            lw.b.param("free", free_shape.iter().product::<usize>() as u32);
        let (kept_ref, rows_ref) = (&kept, &row_coords);
        lw.loop_(start, n_free, step, |lw, j| {
            let fc = lw.delinearize(j, &free_shape);
            let fc = labelled(fc, |_| Label::Other);
            let c = place(lw, out_shape.len(), &[(kept_ref, rows_ref), (&free, &fc)]);
            let v = lw.value(root, c.clone())?;
            let idx = lw.linearize(&c, &out_shape);
            lw.b.store(BufferRef::Node(root), out_dtype, idx, v);
            Ok(())
        })?;
    }
    let workgroups = if coop {
        rows as u64
    } else {
        (rows as u64).div_ceil(wg as u64)
    };
    Ok(lw.b.finish(workgroups, None))
}

/// Where a pass of a long reduction reads: the fused region of the reduction's input, or the
/// partial results of the previous pass.
enum Source {
    Region {
        input: usize,
        shape: Vec<usize>,
        axes: Vec<usize>,
    },
    Partials(BufferRef),
}

/// One pass: `rows * chunks` workgroups, each reducing `COOP_MAX` elements of a row of `len`.
/// With `with_index`, values travel with the index where they were found (argmax/argmin).
struct Pass<'s> {
    rows: usize,
    len: usize,
    source: Source,
    values_out: BufferRef,
    /// For argmax/argmin: the indices read with the partials and written with the results.
    indices: Option<(Option<BufferRef>, BufferRef)>,
    reduce: &'s dyn Fn(&mut Builder, Val, Val) -> Val,
    init: Lit,
    dtype: DType,
    /// Divide the final value by this (mean).
    divide: Option<usize>,
    /// The final pass of argmax/argmin writes `i32` indices only.
    arg: Option<ArgReduceOp>,
}

fn pass(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
    p: &Pass<'_>,
) -> Result<(Kernel, usize)> {
    let chunks = p.len.div_ceil(COOP_MAX).max(1);
    let mut lw = Lowerer::new(Builder::new("reduce_pass", WG_ROW), prog, shapes, mat);
    let w =
        lw.b.let_(DType::U32, Expr::Builtin(Builtin::WorkgroupIndex));
    let lid = lw.b.let_(DType::U32, Expr::Builtin(Builtin::LocalIndex));
    let n_work = lw.b.param("work", (p.rows * chunks) as u32);
    lw.b.return_unless_below(w, n_work);
    let n_chunks = lw.b.param("chunks", chunks as u32);
    let row = lw.b.index(IndexOp::Div, w, n_chunks);
    let chunk = lw.b.index(IndexOp::Rem, w, n_chunks);
    let cm = lw.b.u32(COOP_MAX as u32);
    let begin = lw.b.index(IndexOp::Mul, chunk, cm);
    let len = lw.b.param("len", p.len as u32);
    let end0 = lw.b.index(IndexOp::Add, begin, cm);
    let end = lw.b.index(IndexOp::Min, end0, len);
    let start = lw.b.index(IndexOp::Add, begin, lid);
    let step = lw.b.u32(WG_ROW);
    let i0 = lw.b.lit(p.init);
    let acc = lw.b.var(p.dtype, i0);
    let none = lw.b.u32(u32::MAX);
    let best_i = lw.b.var(DType::U32, none);
    lw.loop_(start, end, step, |lw, j| {
        let (v, idx) = match &p.source {
            Source::Region { input, shape, axes } => {
                let kept: Vec<usize> = (0..shape.len()).filter(|d| !axes.contains(d)).collect();
                let row_shape: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
                let red_shape: Vec<usize> = axes.iter().map(|&d| shape[d]).collect();
                let rc = lw.delinearize(row, &row_shape);
                let rc = labelled(rc, |_| Label::Other);
                let red = lw.delinearize(j, &red_shape);
                let red = labelled(red, |_| Label::Other);
                let c = place(lw, shape.len(), &[(&kept, &rc), (axes, &red)]);
                let v = lw.value(*input, c)?;
                let from = prog.nodes[*input].dtype;
                (cast_to(&mut lw.b, from, p.dtype, v), j)
            }
            Source::Partials(buf) => {
                let base = lw.b.index(IndexOp::Mul, row, len);
                let at = lw.b.index(IndexOp::Add, base, j);
                let v = lw.b.load(*buf, p.dtype, at);
                let idx = match p.indices {
                    Some((Some(ib), _)) => lw.b.load(ib, DType::U32, at),
                    _ => j,
                };
                (v, idx)
            }
        };
        let cur = lw.b.read(acc, p.dtype);
        if p.indices.is_some() {
            let cur_i = lw.b.read(best_i, DType::U32);
            let (nv, ni) = arg_pick(&mut lw.b, p.reduce, p.dtype, (cur, cur_i), (v, idx));
            lw.b.assign(acc, nv);
            lw.b.assign(best_i, ni);
        } else {
            let next = (p.reduce)(&mut lw.b, cur, v);
            lw.b.assign(acc, next);
        }
        Ok(())
    })?;
    let mut res = lw.b.read(acc, p.dtype);
    let mut res_i = lw.b.read(best_i, DType::U32);
    if p.indices.is_some() {
        let (v, i) = arg_tree(&mut lw.b, p.reduce, p.dtype, lid, res, res_i);
        res = v;
        res_i = i;
    } else {
        res = tree(&mut lw.b, p.dtype, lid, res, p.reduce);
    }
    if let Some(n) = p.divide {
        let n = lw.b.lit(Lit::F32(n as f32));
        res =
            lw.b.let_(p.dtype, Expr::Binary(BinaryOp::Div, DType::F32, res, n));
    }
    let zero = lw.b.u32(0);
    let one = lw.b.u32(1);
    let first = lw.b.index(IndexOp::Less, lid, one);
    let _ = zero;
    let dtype = p.dtype;
    let (values_out, indices, arg) = (p.values_out, p.indices, p.arg);
    lw.b.if_(first, |b| {
        if arg.is_some() {
            let i = b.let_(
                DType::I32,
                Expr::Bitcast {
                    to: DType::I32,
                    value: res_i,
                },
            );
            b.store(values_out, DType::I32, w, i);
        } else {
            b.store(values_out, dtype, w, res);
            if let Some((_, ib)) = indices {
                b.store(ib, DType::U32, w, res_i);
            }
        }
    });
    let _ = root;
    Ok((lw.b.finish((p.rows * chunks) as u64, None), chunks))
}

/// The better of two (value, index) pairs: the better value, the smaller index on a tie; an
/// index of `u32::MAX` is no value at all.
fn arg_pick(
    b: &mut Builder,
    better: &dyn Fn(&mut Builder, Val, Val) -> Val,
    dtype: DType,
    (va, ia): (Val, Val),
    (vb, ib): (Val, Val),
) -> (Val, Val) {
    let none = b.u32(u32::MAX);
    let a_none = b.let_(
        DType::Bool,
        Expr::Binary(BinaryOp::Equal, DType::U32, ia, none),
    );
    let b_none = b.let_(
        DType::Bool,
        Expr::Binary(BinaryOp::Equal, DType::U32, ib, none),
    );
    let b_better = better(b, vb, va);
    let a_better = better(b, va, vb);
    let a_not_better = not(b, a_better);
    let b_first = b.index(IndexOp::Less, ib, ia);
    let tie_b = b.let_(
        DType::Bool,
        Expr::Binary(BinaryOp::And, DType::Bool, a_not_better, b_first),
    );
    let b_wins0 = b.let_(
        DType::Bool,
        Expr::Binary(BinaryOp::Or, DType::Bool, b_better, tie_b),
    );
    let b_wins1 = b.let_(
        DType::Bool,
        Expr::Binary(BinaryOp::Or, DType::Bool, b_wins0, a_none),
    );
    let b_some = not(b, b_none);
    let b_wins = b.let_(
        DType::Bool,
        Expr::Binary(BinaryOp::And, DType::Bool, b_wins1, b_some),
    );
    let v = b.let_(
        dtype,
        Expr::Select {
            cond: b_wins,
            then: vb,
            otherwise: va,
        },
    );
    let i = b.let_(
        DType::U32,
        Expr::Select {
            cond: b_wins,
            then: ib,
            otherwise: ia,
        },
    );
    (v, i)
}

fn arg_tree(
    b: &mut Builder,
    better: &dyn Fn(&mut Builder, Val, Val) -> Val,
    dtype: DType,
    lid: Val,
    v: Val,
    i: Val,
) -> (Val, Val) {
    let av = b.shared(dtype, WG_ROW);
    let ai = b.shared(DType::U32, WG_ROW);
    b.push(Stmt::StoreShared {
        array: av,
        index: lid,
        value: v,
    });
    b.push(Stmt::StoreShared {
        array: ai,
        index: lid,
        value: i,
    });
    b.push(Stmt::Barrier);
    let mut half = WG_ROW / 2;
    while half >= 1 {
        let h = b.u32(half);
        let active = b.index(IndexOp::Less, lid, h);
        b.if_(active, |b| {
            let j = b.index(IndexOp::Add, lid, h);
            let x = b.let_(
                dtype,
                Expr::LoadShared {
                    array: av,
                    index: lid,
                },
            );
            let xi = b.let_(
                DType::U32,
                Expr::LoadShared {
                    array: ai,
                    index: lid,
                },
            );
            let y = b.let_(
                dtype,
                Expr::LoadShared {
                    array: av,
                    index: j,
                },
            );
            let yi = b.let_(
                DType::U32,
                Expr::LoadShared {
                    array: ai,
                    index: j,
                },
            );
            let (z, zi) = arg_pick(b, better, dtype, (x, xi), (y, yi));
            b.push(Stmt::StoreShared {
                array: av,
                index: lid,
                value: z,
            });
            b.push(Stmt::StoreShared {
                array: ai,
                index: lid,
                value: zi,
            });
        });
        b.push(Stmt::Barrier);
        half /= 2;
    }
    let zero = b.u32(0);
    let v = b.let_(
        dtype,
        Expr::LoadShared {
            array: av,
            index: zero,
        },
    );
    let i = b.let_(
        DType::U32,
        Expr::LoadShared {
            array: ai,
            index: zero,
        },
    );
    (v, i)
}

/// Runs passes until one chunk per row is left, the last pass writing `root`.
#[allow(clippy::too_many_arguments)]
fn passes(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
    scratch: &mut Scratch,
    rows: usize,
    len: usize,
    source: Source,
    reduce: &dyn Fn(&mut Builder, Val, Val) -> Val,
    init: Lit,
    dtype: DType,
    divide: Option<usize>,
    arg: Option<ArgReduceOp>,
) -> Result<Vec<Kernel>> {
    let mut kernels = Vec::new();
    let mut len = len;
    let mut source = source;
    let mut prev_indices: Option<BufferRef> = None;
    loop {
        let chunks = len.div_ceil(COOP_MAX).max(1);
        let last = chunks == 1;
        let (values_out, indices) = if last {
            let out = BufferRef::Node(root);
            (out, arg.map(|_| (prev_indices, out)))
        } else {
            let v = scratch.alloc(rows * chunks);
            let i = arg.map(|_| (prev_indices, scratch.alloc(rows * chunks)));
            (v, i)
        };
        let p = Pass {
            rows,
            len,
            source,
            values_out,
            indices,
            reduce,
            init,
            dtype,
            divide: if last { divide } else { None },
            arg: if last { arg } else { None },
        };
        let (k, _) = pass(prog, shapes, mat, root, &p)?;
        kernels.push(k);
        if last {
            return Ok(kernels);
        }
        prev_indices = indices.map(|(_, i)| i);
        source = Source::Partials(values_out);
        len = chunks;
    }
}

/// A reduction over rows longer than one workgroup reduces: passes over chunks.
pub fn long(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
    scratch: &mut Scratch,
) -> Result<Vec<Kernel>> {
    let node = &prog.nodes[root];
    let Op::Reduce { func: op, axes, .. } = &node.op else {
        return Err(internal("not a reduction"));
    };
    let op = *op;
    let input = node.inputs[0];
    let shape = shapes[input].clone();
    let inner: usize = axes.iter().map(|&d| shape[d]).product();
    let rows: usize = (0..shape.len())
        .filter(|d| !axes.contains(d))
        .map(|d| shape[d])
        .product();
    let dtype = node.dtype;
    let reduce = move |b: &mut Builder, x: Val, y: Val| combine(b, op, dtype, x, y);
    passes(
        prog,
        shapes,
        mat,
        root,
        scratch,
        rows,
        inner,
        Source::Region {
            input,
            shape,
            axes: axes.clone(),
        },
        &reduce,
        init(op, dtype),
        dtype,
        (op == ReduceOp::Mean).then_some(inner),
        None,
    )
}

/// argmax/argmin along one axis: the first extreme wins; for floats a NaN is the extreme (the
/// first one), and -0.0 ranks below 0.0.
pub fn arg(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
    scratch: &mut Scratch,
) -> Result<Vec<Kernel>> {
    let node = &prog.nodes[root];
    let Op::ArgReduce { func: op, axis, .. } = &node.op else {
        return Err(internal("not an argmax"));
    };
    let (op, axis) = (*op, *axis);
    let input = node.inputs[0];
    let shape = shapes[input].clone();
    let dtype = prog.nodes[input].dtype;
    let rows: usize = (0..shape.len())
        .filter(|&d| d != axis)
        .map(|d| shape[d])
        .product();
    let better = move |b: &mut Builder, v: Val, best: Val| -> Val {
        if dtype == DType::F32 {
            let f = if op == ArgReduceOp::ArgMax {
                "lamina_argmax_better"
            } else {
                "lamina_argmin_better"
            };
            b.let_(
                DType::Bool,
                Expr::Call {
                    function: f,
                    args: vec![v, best],
                },
            )
        } else {
            let cmp = if op == ArgReduceOp::ArgMax {
                BinaryOp::Greater
            } else {
                BinaryOp::Less
            };
            let d = if dtype == DType::Bool {
                DType::U32
            } else {
                dtype
            };
            let (v, best) = if dtype == DType::Bool {
                (
                    cast_to(b, DType::Bool, DType::U32, v),
                    cast_to(b, DType::Bool, DType::U32, best),
                )
            } else {
                (v, best)
            };
            b.let_(DType::Bool, Expr::Binary(cmp, d, v, best))
        }
    };
    passes(
        prog,
        shapes,
        mat,
        root,
        scratch,
        rows,
        shape[axis],
        Source::Region {
            input,
            shape,
            axes: vec![axis],
        },
        &better,
        Lit::of(dtype, 0.0),
        dtype,
        None,
        Some(op),
    )
}
