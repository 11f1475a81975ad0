//! Kernel templates: elementwise, row (reductions with their producers and consumer fused),
//! argmax/argmin, scan, and tiled matmul with a fused epilogue. Each returns WGSL plus the
//! values of its info uniform and the buffers it reads.

use super::emit::{Coord, Emitter, Label, Register, Retry, place};
use super::wgsl;
use lamina_graph::op::{ArgReduceOp, BinaryOp, Op, ReduceOp, ScanOp};
use lamina_graph::{DType, Program};

/// Threads per workgroup of elementwise kernels.
pub const WG_ELEMENTWISE: u32 = 256;
/// Threads per workgroup of row kernels.
pub const WG_ROW: u32 = 64;
/// Side of the square of threads of a matmul workgroup.
pub const TILE: u32 = 16;

/// A generated kernel.
#[derive(Clone, Debug)]
pub struct KernelCode {
    /// The WGSL source.
    pub wgsl: String,
    /// The info uniform's values.
    pub info: Vec<u32>,
    /// The nodes whose buffers it reads, in binding order (bindings 1..).
    pub reads: Vec<usize>,
    /// The node it writes.
    pub output: usize,
    /// How many workgroups it needs (before folding onto a 2-D grid).
    pub workgroups: u64,
    /// A short description for statistics and errors.
    pub kind: &'static str,
}

fn assemble(em: &Emitter<'_>, out_dtype: DType, wg: u32, body: &[String]) -> String {
    let mut s = String::new();
    let n = em.info.len().div_ceil(4).max(1);
    s += &format!("struct Info {{ v: array<vec4<u32>, {n}> }};\n");
    s += "@group(0) @binding(0) var<uniform> info: Info;\n";
    s += "fn I(i: u32) -> u32 { return info.v[i / 4u][i % 4u]; }\n";
    for (b, &node) in em.bindings.iter().enumerate() {
        s += &format!(
            "@group(0) @binding({}) var<storage, read> in{b}: array<{}>;\n",
            b + 1,
            wgsl::store_type(em.dtype(node))
        );
    }
    s += &format!(
        "@group(0) @binding({}) var<storage, read_write> out: array<{}>;\n",
        em.bindings.len() + 1,
        wgsl::store_type(out_dtype)
    );
    s += wgsl::PRELUDE;
    s += &format!("@compute @workgroup_size({wg})\n");
    s += "fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {\n";
    s += &format!("    let t = gid.x + gid.y * nwg.x * {wg}u;\n");
    s += "    if (t >= I(0u)) { return; }\n";
    for l in body {
        s += "    ";
        s += l;
        s += "\n";
    }
    s += "}\n";
    s
}

fn indent(lines: Vec<String>) -> Vec<String> {
    lines.into_iter().map(|l| format!("    {l}")).collect()
}

/// Adds `for (var j = start; j < bound; j++) { body }` to the emitter's current scope.
fn push_loop(em: &mut Emitter<'_>, j: &str, start: &str, bound: &str, body: Vec<String>) {
    em.line(format!(
        "for (var {j}: u32 = {start}; {j} < {bound}; {j} = {j} + 1u) {{"
    ));
    for l in indent(body) {
        em.line(l);
    }
    em.line("}".into());
}

/// One thread per output element.
pub fn elementwise(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
) -> Result<KernelCode, Retry> {
    let mut em = Emitter::new(prog, shapes, mat);
    let shape = shapes[root].clone();
    let total: usize = shape.iter().product();
    em.param(total);
    let coords = em.delinearize("t", &shape, Label::Thread);
    let v = em.emit(root, &coords)?;
    let idx = em.linearize(&coords, &shape);
    let dtype = prog.nodes[root].dtype;
    em.line(format!("out[{idx}] = {};", wgsl::store(dtype, &v)));
    let body = em.take_lines();
    Ok(KernelCode {
        wgsl: assemble(&em, dtype, WG_ELEMENTWISE, &body),
        info: em.info.clone(),
        reads: em.bindings.clone(),
        output: root,
        workgroups: (total as u64).div_ceil(WG_ELEMENTWISE as u64),
        kind: "elementwise",
    })
}

/// Elements a float sum adds in registers before adding the block to the row's total.
const SUM_BLOCK: usize = 128;

fn reduce_init(op: ReduceOp, d: DType) -> String {
    match (op, d) {
        (ReduceOp::Sum | ReduceOp::Mean, d) => wgsl::literal(d, 0.0),
        (ReduceOp::Prod, d) => wgsl::literal(d, 1.0),
        (ReduceOp::Max, DType::F32) => "bitcast<f32>(0xff800000u)".into(),
        (ReduceOp::Min, DType::F32) => "bitcast<f32>(0x7f800000u)".into(),
        (ReduceOp::Max, DType::I32) => "(-2147483647 - 1)".into(),
        (ReduceOp::Min, DType::I32) => "2147483647".into(),
        (ReduceOp::Max, _) => "0u".into(),
        (ReduceOp::Min, _) => "4294967295u".into(),
    }
}

fn reduce_step(op: ReduceOp, d: DType, acc: &str, v: &str) -> String {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => format!("{acc} = {acc} + {v};"),
        ReduceOp::Prod => format!("{acc} = {acc} * {v};"),
        // A NaN, once met, stays (lamina_max keeps a NaN first argument), as NumPy's max.
        ReduceOp::Max | ReduceOp::Min => {
            let f = wgsl::binary(
                if op == ReduceOp::Max {
                    BinaryOp::Max
                } else {
                    BinaryOp::Min
                },
                d,
                acc,
                v,
            );
            format!("{acc} = {f};")
        }
    }
}

/// The reduce nodes a row kernel computes, in order, with the input shape and axes they share.
pub struct RowGroup {
    /// Reduce nodes, in program order.
    pub members: Vec<usize>,
    /// The shape of their inputs.
    pub input_shape: Vec<usize>,
    /// The reduced axes.
    pub axes: Vec<usize>,
}

/// One thread per row (the kept coordinates of the group's reductions): the reductions run one
/// after the other in registers, then the root is written, either the last reduction itself or
/// an elementwise consumer looped over the row.
pub fn row(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
    group: &RowGroup,
) -> Result<KernelCode, Retry> {
    let mut em = Emitter::new(prog, shapes, mat);
    let s = &group.input_shape;
    let kept: Vec<usize> = (0..s.len()).filter(|d| !group.axes.contains(d)).collect();
    let row_shape: Vec<usize> = kept.iter().map(|&d| s[d]).collect();
    let red_shape: Vec<usize> = group.axes.iter().map(|&d| s[d]).collect();
    let rows: usize = row_shape.iter().product();
    let inner: usize = red_shape.iter().product();
    em.param(rows);
    // Row coordinates, labelled by their axis in the reduction input.
    let kept2 = kept.clone();
    let row_coords = em.delinearize("t", &row_shape, |i| Label::Thread(kept2[i]));
    for &r in &group.members {
        let Op::Reduce { op, keepdims, .. } = &prog.nodes[r].op else {
            return Err(Retry::Materialize(vec![r]));
        };
        let input = prog.nodes[r].inputs[0];
        let dtype = prog.nodes[r].dtype;
        let acc = em.fresh("acc");
        em.line(format!(
            "var {acc}: {} = {};",
            wgsl::reg_type(dtype),
            reduce_init(*op, dtype)
        ));
        let n_inner = em.param(inner);
        let j = em.fresh("j");
        let axes = group.axes.clone();
        // Float sums accumulate blocks of SUM_BLOCK elements apart and then add the blocks
        // with compensation, so that a long row of small values neither drifts nor stalls
        // once the total reaches 2^24.
        let blocked = matches!(op, ReduceOp::Sum | ReduceOp::Mean) && dtype == DType::F32;
        let target = if blocked {
            em.fresh("part")
        } else {
            acc.clone()
        };
        let (res, body) = em.scope(|em| -> Result<(), Retry> {
            let red = em.delinearize(&j, &red_shape, |_| Label::Other);
            let coords = place(s.len(), &[(&kept, &row_coords), (&axes, &red)]);
            let v = em.emit(input, &coords)?;
            em.line(reduce_step(*op, dtype, &target, &v));
            Ok(())
        });
        res?;
        if blocked {
            let jb = em.fresh("jb");
            let (comp, y, t) = (em.fresh("comp"), em.fresh("y"), em.fresh("t"));
            em.line(format!("var {comp}: f32 = 0.0f;"));
            em.line(format!(
                "for (var {jb}: u32 = 0u; {jb} < {n_inner}; {jb} = {jb} + {SUM_BLOCK}u) {{"
            ));
            em.line(format!("    var {target}: f32 = 0.0f;"));
            let mut inner_loop = Vec::new();
            inner_loop.push(format!(
                "for (var {j}: u32 = {jb}; {j} < min({jb} + {SUM_BLOCK}u, {n_inner}); {j} = {j} + 1u) {{"
            ));
            inner_loop.extend(indent(body));
            inner_loop.push("}".into());
            // The blocks are added with Kahan's compensation, so that many blocks of similar
            // values do not drift (the CPU combines its blocks pairwise instead).
            inner_loop.push(format!("let {y} = {target} - {comp};"));
            inner_loop.push(format!("let {t} = {acc} + {y};"));
            inner_loop.push(format!("{comp} = ({t} - {acc}) - {y};"));
            inner_loop.push(format!("{acc} = {t};"));
            for l in indent(inner_loop) {
                em.line(l);
            }
            em.line("}".into());
        } else {
            push_loop(&mut em, &j, "0u", &n_inner, body);
        }
        if *op == ReduceOp::Mean {
            em.line(format!("{acc} = {acc} / f32({n_inner});"));
        }
        // The register: which thread coordinate each of the reduction's axes must be read at.
        let axes_req: Vec<Option<usize>> = if *keepdims {
            (0..s.len())
                .map(|d| {
                    if group.axes.contains(&d) || s[d] == 1 {
                        None
                    } else {
                        Some(d)
                    }
                })
                .collect()
        } else {
            kept.iter()
                .map(|&d| if s[d] == 1 { None } else { Some(d) })
                .collect()
        };
        em.registers.insert(
            r,
            Register {
                name: acc,
                axes: axes_req,
            },
        );
    }
    let out_dtype = prog.nodes[root].dtype;
    let out_shape = shapes[root].clone();
    if group.members.last() == Some(&root) {
        let name = em.registers[&root].name.clone();
        em.line(format!("out[t] = {};", wgsl::store(out_dtype, &name)));
    } else {
        // An elementwise consumer of the same rank, whose kept axes are the rows.
        let free: Vec<usize> = (0..out_shape.len()).filter(|d| !kept.contains(d)).collect();
        let free_shape: Vec<usize> = free.iter().map(|&d| out_shape[d]).collect();
        let n_free = em.param(free_shape.iter().product());
        let j = em.fresh("j");
        let (res, body) = em.scope(|em| -> Result<(), Retry> {
            let fc = em.delinearize(&j, &free_shape, |_| Label::Other);
            let coords = place(out_shape.len(), &[(&kept, &row_coords), (&free, &fc)]);
            let v = em.emit(root, &coords)?;
            let idx = em.linearize(&coords, &out_shape);
            em.line(format!("out[{idx}] = {};", wgsl::store(out_dtype, &v)));
            Ok(())
        });
        res?;
        push_loop(&mut em, &j, "0u", &n_free, body);
    }
    let body = em.take_lines();
    Ok(KernelCode {
        wgsl: assemble(&em, out_dtype, WG_ROW, &body),
        info: em.info.clone(),
        reads: em.bindings.clone(),
        output: root,
        workgroups: (rows as u64).div_ceil(WG_ROW as u64),
        kind: "row",
    })
}

/// What argmax and scan kernels share: one thread per line along `axis` of the root's input.
struct AlongAxis {
    input: usize,
    shape: Vec<usize>,
    rows: usize,
    /// The thread's coordinates in the input, 0 on `axis`.
    row_coords: Vec<Coord>,
    dtype: DType,
    /// The uniform holding the length of `axis`.
    n: String,
}

fn along_axis(
    em: &mut Emitter<'_>,
    prog: &Program,
    shapes: &[Vec<usize>],
    root: usize,
    axis: usize,
) -> AlongAxis {
    let input = prog.nodes[root].inputs[0];
    let shape = shapes[input].clone();
    let kept: Vec<usize> = (0..shape.len()).filter(|&d| d != axis).collect();
    let row_shape: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
    let rows: usize = row_shape.iter().product();
    em.param(rows);
    let lines = em.delinearize("t", &row_shape, |_| Label::Other);
    let row_coords = place(shape.len(), &[(&kept, &lines)]);
    let dtype = em.dtype(input);
    let n = em.param(shape[axis]);
    AlongAxis {
        input,
        shape,
        rows,
        row_coords,
        dtype,
        n,
    }
}

/// argmax/argmin along one axis: one thread per output element, the first extreme wins.
pub fn arg_reduce(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
) -> Result<KernelCode, Retry> {
    let Op::ArgReduce { op, axis, .. } = &prog.nodes[root].op else {
        return Err(Retry::Materialize(vec![root]));
    };
    let mut em = Emitter::new(prog, shapes, mat);
    let AlongAxis {
        input,
        rows,
        row_coords,
        dtype,
        n,
        ..
    } = along_axis(&mut em, prog, shapes, root, *axis);
    let (best, bi, j) = (em.fresh("best"), em.fresh("bi"), em.fresh("j"));
    // The row's coordinates, the reduced axis at 0 (the first element).
    let coords = row_coords;
    let v0 = em.emit(input, &coords)?;
    em.line(format!("var {best}: {} = {v0};", wgsl::reg_type(dtype)));
    em.line(format!("var {bi}: i32 = 0;"));
    let cmp = if *op == ArgReduceOp::ArgMax { ">" } else { "<" };
    let (res, body) = em.scope(|em| -> Result<(), Retry> {
        let mut c = coords.clone();
        c[*axis] = Coord {
            expr: j.clone(),
            label: Label::Other,
        };
        let v = em.emit(input, &c)?;
        let better = if dtype == DType::F32 {
            let which = if *op == ArgReduceOp::ArgMax {
                "max"
            } else {
                "min"
            };
            format!("lamina_arg{which}_better({v}, {best})")
        } else {
            format!("{v} {cmp} {best}")
        };
        em.line(format!(
            "if ({better}) {{ {best} = {v}; {bi} = i32({j}); }}"
        ));
        Ok(())
    });
    res?;
    push_loop(&mut em, &j, "1u", &n, body);
    em.line(format!("out[t] = {bi};"));
    let body = em.take_lines();
    Ok(KernelCode {
        wgsl: assemble(&em, DType::I32, WG_ROW, &body),
        info: em.info.clone(),
        reads: em.bindings.clone(),
        output: root,
        workgroups: (rows as u64).div_ceil(WG_ROW as u64),
        kind: "argreduce",
    })
}

/// cumsum/cumprod: one thread per line along the axis.
pub fn scan(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
) -> Result<KernelCode, Retry> {
    let Op::Scan { op, axis } = &prog.nodes[root].op else {
        return Err(Retry::Materialize(vec![root]));
    };
    let mut em = Emitter::new(prog, shapes, mat);
    let AlongAxis {
        input,
        shape: s,
        rows,
        row_coords,
        dtype,
        n,
    } = along_axis(&mut em, prog, shapes, root, *axis);
    let (acc, j) = (em.fresh("acc"), em.fresh("j"));
    let (init, step) = match op {
        ScanOp::CumSum => (wgsl::literal(dtype, 0.0), "+"),
        ScanOp::CumProd => (wgsl::literal(dtype, 1.0), "*"),
    };
    em.line(format!("var {acc}: {} = {init};", wgsl::reg_type(dtype)));
    let (res, body) = em.scope(|em| -> Result<(), Retry> {
        let mut c = row_coords.clone();
        c[*axis] = Coord {
            expr: j.clone(),
            label: Label::Other,
        };
        let v = em.emit(input, &c)?;
        em.line(format!("{acc} = {acc} {step} {v};"));
        let idx = em.linearize(&c, &s);
        em.line(format!("out[{idx}] = {acc};"));
        Ok(())
    });
    res?;
    push_loop(&mut em, &j, "0u", &n, body);
    let body = em.take_lines();
    Ok(KernelCode {
        wgsl: assemble(&em, dtype, WG_ROW, &body),
        info: em.info.clone(),
        reads: em.bindings.clone(),
        output: root,
        workgroups: (rows as u64).div_ceil(WG_ROW as u64),
        kind: "scan",
    })
}

/// A strided view of a buffer: what a matmul operand reads.
#[derive(Clone, Debug)]
pub struct View {
    /// The node whose buffer is read.
    pub node: usize,
    /// Strides per axis of the operand (0 for broadcast axes), in elements.
    pub strides: Vec<isize>,
    /// Offset in elements.
    pub offset: isize,
}

/// What a matmul kernel reads, and which template it uses.
#[derive(Clone, Debug)]
pub struct MatmulOperands {
    /// The left operand.
    pub a: View,
    /// The right operand.
    pub b: View,
    /// Tile through workgroup memory (GPUs) or stream from global memory (CPU adapters).
    pub shared_memory: bool,
}

/// A tiled matmul of two strided views, with an optional elementwise epilogue (bias,
/// activation) computed on the accumulator before the only write.
pub fn matmul(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    mm: usize,
    root: usize,
    operands: &MatmulOperands,
) -> Result<KernelCode, Retry> {
    let (a, b) = (&operands.a, &operands.b);
    let mut em = Emitter::new(prog, shapes, mat);
    let out_shape = shapes[root].clone();
    let (sa, sb) = (
        shapes[prog.nodes[mm].inputs[0]].clone(),
        shapes[prog.nodes[mm].inputs[1]].clone(),
    );
    let r = out_shape.len();
    let (m, k, n) = (sa[sa.len() - 2], sa[sa.len() - 1], sb[sb.len() - 1]);
    // Threads of a workgroup: 16x16 threads with 4x4 blocks (a 64x64 tile), or for at most
    // 4 rows (batch-1 inference) one row of 256 threads (a 4x1024 tile), so that no
    // workgroup computes rows that do not exist.
    let narrow = m <= 4;
    let shared_memory = operands.shared_memory && !narrow;
    let (threads_x, tile_rows, tile_cols) = if narrow {
        (256u32, 4u32, 1024u32)
    } else {
        (16, 64, 64)
    };
    let batch_shape: Vec<usize> = out_shape[..r - 2].to_vec();
    let batches: usize = batch_shape.iter().product();
    let (tm, tn) = (
        (m as u64).div_ceil(tile_rows as u64),
        (n as u64).div_ceil(tile_cols as u64),
    );
    let tiles = batches as u64 * tm * tn;
    em.param(tiles as usize);
    let ba = em.bind(a.node);
    let bb = em.bind(b.node);
    let p_tn = em.param(tn as usize);
    let p_tm = em.param(tm as usize);
    let (pm, pk, pn) = (em.param(m), em.param(k), em.param(n));
    em.line(format!("let tile_n = t % {p_tn};"));
    em.line(format!("let tile_m = (t / {p_tn}) % {p_tm};"));
    em.line(format!("let bidx = t / ({p_tn} * {p_tm});"));
    // Batch coordinates and the operands' base offsets.
    let bcoords = em.delinearize("bidx", &batch_shape, Label::Thread);
    let off = |em: &mut Emitter<'_>, v: &View, rank: usize| -> String {
        let mut terms = vec![format!(
            "i32({})",
            em.param(v.offset as i32 as u32 as usize)
        )];
        let boff = r - rank;
        for d in 0..rank.saturating_sub(2) {
            if v.strides[d] != 0 {
                let st = em.param(v.strides[d] as i32 as u32 as usize);
                terms.push(format!("i32({}) * i32({st})", bcoords[d + boff].expr));
            }
        }
        terms.join(" + ")
    };
    let a_off = off(&mut em, a, sa.len());
    let b_off = off(&mut em, b, sb.len());
    let (a_sm, a_sk) = (a.strides[sa.len() - 2], a.strides[sa.len() - 1]);
    let (b_sk, b_sn) = (b.strides[sb.len() - 2], b.strides[sb.len() - 1]);
    let pas = (
        em.param(a_sm as i32 as u32 as usize),
        em.param(a_sk as i32 as u32 as usize),
    );
    let pbs = (
        em.param(b_sk as i32 as u32 as usize),
        em.param(b_sn as i32 as u32 as usize),
    );
    em.line(format!("let a_base = {a_off};"));
    em.line(format!("let b_base = {b_off};"));
    // A 64x64 output tile per workgroup of 16x16 threads, each thread a 4x4 block; the
    // k dimension advances 16 at a time through workgroup memory.
    em.line(format!("let tx = lid.x % {threads_x}u;"));
    em.line(format!("let ty = lid.x / {threads_x}u;"));
    em.line(format!("let row0 = tile_m * {tile_rows}u;"));
    em.line(format!("let col0 = tile_n * {tile_cols}u;"));
    for i in 0..4 {
        for j in 0..4 {
            em.line(format!("var c{i}{j}: f32 = 0.0f;"));
        }
    }
    // 16 explicit multiply-adds: no private arrays, which SIMT-on-CPU drivers turn into
    // gathers and scatters.
    let fma_block = |em: &mut Emitter<'_>, indent: &str| {
        for i in 0..4 {
            for j in 0..4 {
                em.line(format!("{indent}c{i}{j} = c{i}{j} + a{i} * b{j};"));
            }
        }
    };
    if shared_memory {
        em.line(format!(
            "for (var k0: u32 = 0u; k0 < {pk}; k0 = k0 + 16u) {{"
        ));
        em.line("    for (var l: u32 = 0u; l < 4u; l = l + 1u) {".into());
        em.line("        let e = lid.x + l * 256u;".into());
        em.line("        let ar = e / 16u; let ac = e % 16u;".into());
        em.line("        let gr = row0 + ar; let gk = k0 + ac;".into());
        em.line(format!(
            "        ta[ar][ac] = select(0.0f, in{ba}[u32(a_base + i32(min(gr, {pm} - 1u)) * i32({}) + i32(min(gk, {pk} - 1u)) * i32({}))], gr < {pm} && gk < {pk});",
            pas.0, pas.1
        ));
        em.line("        let br = e / 64u; let bc = e % 64u;".into());
        em.line("        let gk2 = k0 + br; let gc = col0 + bc;".into());
        em.line(format!(
            "        tb[br][bc] = select(0.0f, in{bb}[u32(b_base + i32(min(gk2, {pk} - 1u)) * i32({}) + i32(min(gc, {pn} - 1u)) * i32({}))], gk2 < {pk} && gc < {pn});",
            pbs.0, pbs.1
        ));
        em.line("    }".into());
        em.line("    workgroupBarrier();".into());
        em.line("    for (var q: u32 = 0u; q < 16u; q = q + 1u) {".into());
        for i in 0..4 {
            em.line(format!("        let a{i} = ta[ty * 4u + {i}u][q];"));
        }
        for j in 0..4 {
            em.line(format!("        let b{j} = tb[q][tx * 4u + {j}u];"));
        }
        fma_block(&mut em, "        ");
        em.line("    }".into());
        em.line("    workgroupBarrier();".into());
        em.line("}".into());
    } else {
        // Without workgroup memory: each thread streams its 4 rows of A and 4 columns of B
        // (what CPU-hosted adapters such as lavapipe run fastest, with no barriers).
        for i in 0..4 {
            em.line(format!(
                "let ar{i} = min(row0 + ty * 4u + {i}u, {pm} - 1u);"
            ));
            em.line(format!(
                "let bc{i} = min(col0 + tx * 4u + {i}u, {pn} - 1u);"
            ));
        }
        em.line(format!("for (var p: u32 = 0u; p < {pk}; p = p + 1u) {{"));
        for i in 0..4 {
            em.line(format!(
                "    let a{i} = in{ba}[u32(a_base + i32(ar{i}) * i32({}) + i32(p) * i32({}))];",
                pas.0, pas.1
            ));
        }
        for j in 0..4 {
            em.line(format!(
                "    let b{j} = in{bb}[u32(b_base + i32(p) * i32({}) + i32(bc{j}) * i32({}))];",
                pbs.0, pbs.1
            ));
        }
        fma_block(&mut em, "    ");
        em.line("}".into());
    }
    let mut epilogue_registers = Vec::new();
    for i in 0..4 {
        for j in 0..4 {
            epilogue_registers.push((i, j));
        }
    }
    for (i, j) in epilogue_registers {
        em.line(format!("let row{i}{j} = row0 + ty * 4u + {i}u;"));
        em.line(format!("let col{i}{j} = col0 + tx * 4u + {j}u;"));
        em.line(format!("if (row{i}{j} < {pm} && col{i}{j} < {pn}) {{"));
        let mut coords = bcoords.clone();
        coords.push(Coord {
            expr: format!("row{i}{j}"),
            label: Label::Thread(r - 2),
        });
        coords.push(Coord {
            expr: format!("col{i}{j}"),
            label: Label::Thread(r - 1),
        });
        em.registers.insert(
            mm,
            Register {
                name: format!("c{i}{j}"),
                axes: (0..r)
                    .map(|d| if out_shape[d] == 1 { None } else { Some(d) })
                    .collect(),
            },
        );
        let (res, body) = em.scope(|em| -> Result<(), Retry> {
            let v = em.emit(root, &coords)?;
            let idx = em.linearize(&coords, &out_shape);
            em.line(format!(
                "out[{idx}] = {};",
                wgsl::store(prog.nodes[root].dtype, &v)
            ));
            Ok(())
        });
        res?;
        for l in indent(body) {
            em.line(l);
        }
        em.line("}".into());
    }
    let body = em.take_lines();
    // The matmul template differs from the others: one workgroup per tile, shared tiles.
    let mut s = assemble(&em, prog.nodes[root].dtype, TILE * TILE, &body);
    let shared_decl = if shared_memory {
        "var<workgroup> ta: array<array<f32, 16>, 64>;\nvar<workgroup> tb: array<array<f32, 64>, 16>;\n"
    } else {
        ""
    };
    s = s.replace(
        "fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {\n",
        "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {\n",
    );
    s = s.replace(
        &format!("    let t = gid.x + gid.y * nwg.x * {}u;\n", TILE * TILE),
        "    let t = wid.x + wid.y * nwg.x;\n",
    );
    let entry = format!("@compute @workgroup_size({})\n", TILE * TILE);
    s = s.replace(&entry, &format!("{shared_decl}{entry}"));
    Ok(KernelCode {
        wgsl: s,
        info: em.info.clone(),
        reads: em.bindings.clone(),
        output: root,
        workgroups: tiles,
        kind: "matmul",
    })
}
