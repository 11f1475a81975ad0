//! Fused evaluation on the CPU: a region of elementwise ops, concatenations and reductions over
//! the last axis is evaluated row by row (or, without reductions, block by block) in small
//! buffers that stay in cache, with one tight loop per op and rows spread over threads. Only
//! the region's root is written to memory.

use lamina_graph::op::{AxisSlice, BinaryOp, ConvSpec, Op, ReduceOp, UnaryOp};
use lamina_graph::{DType, HostData, Program};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

/// Elements per block when a region has no reductions.
const BLOCK: usize = 512;
/// The fewest rows for which a region computes its matrix product itself: below, a plain
/// (threaded) product and a separate epilogue pass are as fast.
const MIN_PRODUCT_ROWS: usize = 64;
/// The most bytes of a region's matrix product one task computes before its epilogue.
const SLAB_BYTES: usize = 1 << 20;
/// The longest rows of a product or convolution that its region evaluates in blocks.
const SLAB_BLOCK_ROW_MAX: usize = 64;
/// Blocks (or rows of about a block) one thread task evaluates in turn.
const BLOCKS_PER_TASK: usize = 32;
/// The most rows a slice read through a row map may have (a map of 32 MiB).
const MAX_MAPPED_ROWS: usize = 1 << 22;

/// The most ops one fused region holds.
const MAX_REGION: usize = 512;

/// How a region reads a buffer computed outside it.
#[derive(Clone, Copy, Debug)]
enum Read {
    /// Row `i` is elements `i*len..(i+1)*len`.
    PerRow,
    /// Every row reads elements `0..len` (a broadcast vector or scalar).
    Shared,
    /// Row `i` is row `ids[i]` of a table (a lookup by the ids of node `ids`, read in place
    /// instead of being copied out first).
    Rows {
        /// The node holding one id per row.
        ids: usize,
    },
    /// Row `i` is row `map[i]` of a buffer: a slice that keeps the last axis whole (a pooling
    /// window's tap, a strided crop), read in place instead of being copied out first. The
    /// index is into the kernel's row maps, worked out from the shapes when it is planned.
    Mapped {
        /// The row map: `FusedKernel::row_maps[map]`.
        map: usize,
    },
    /// Row `i` is output row (position) `i` of the region's convolution
    /// ([`FusedKernel::conv`]), computed by the region itself slab by slab, so that its
    /// epilogue (an activation, a residual add) runs on rows still in cache.
    ConvRows,
    /// Row `i` is row `i` of the product `a @ b` (2-D), computed by the region itself slab by
    /// slab, so that its epilogue (bias, activation) runs on rows still in cache.
    Product {
        /// The left operand, `[m, k]`.
        a: usize,
        /// The right operand, `[k, n]`.
        b: usize,
    },
}

/// The rows of a region's matrix product computed for the current task, and the index of
/// its first row.
type Slab<'a> = Option<(&'a [f32], usize)>;

/// What a region reads: each leaf step's data, and for lookups the table row of each region
/// row.
struct Inputs<'a> {
    data: Vec<Option<std::borrow::Cow<'a, [f32]>>>,
    rows: Vec<Option<std::borrow::Cow<'a, [usize]>>>,
}

#[derive(Clone, Debug)]
enum Step {
    Leaf {
        node: usize,
        read: Read,
    },
    Unary(UnaryOp, usize),
    Binary(BinaryOp, usize, usize),
    Where(usize, usize, usize),
    Reduce(ReduceOp, usize),
    Concat(Vec<usize>),
    Copy(usize),
    ToBool(usize),
    /// `exp(a - max(a)) / sum(exp(a - max(a)))` over the row of step `a`: the five steps of a
    /// softmax, evaluated in three passes over the row instead of five (see [`fuse_softmax`]).
    Softmax(usize),
    /// `a * b + c` (or `c + a * b` where `c_first`), rounded twice as the two steps it
    /// replaces are, in one pass (see [`fuse_multiply_add`]).
    MulAdd {
        a: usize,
        b: usize,
        c: usize,
        c_first: bool,
    },
}

/// What a pass over a task's rows (or blocks) reads, and how it writes them.
#[derive(Clone, Copy)]
struct Pass<'a> {
    /// The region's leaves.
    leaves: &'a Inputs<'a>,
    /// The rows of the region's own matrix product computed for this task, if it has one.
    slab: Slab<'a>,
    /// Rows (reductions allowed) rather than blocks.
    per_row: bool,
    /// Whether the results go to memory with streaming stores (the caller fences).
    stream: bool,
}

impl<'a> Pass<'a> {
    fn new(leaves: &'a Inputs<'a>, slab: Slab<'a>, per_row: bool, stream: bool) -> Pass<'a> {
        Pass {
            leaves,
            slab,
            per_row,
            stream,
        }
    }
}

/// How far ahead (in bytes of output, rounded to rows or blocks) a pass asks the cache for its
/// leaves' rows: far enough for the lines to arrive in time, near enough that the requests
/// in flight do not fill the line-fill buffers and stall the pass (side by side on a 64 MiB
/// softmax and `x * 2 + 1`, 4 KiB beat 8 and 16 KiB by 10-25%).
const PREFETCH_BYTES: usize = 4096;
/// How far ahead the output's rows are asked for, to be written: one row of 1 KiB or more.
const OUT_PREFETCH_BYTES: usize = 1024;
/// The most rows (or blocks) ahead a pass asks for.
const PREFETCH_UNITS_MAX: usize = 16;

/// A fused region: its steps in order (each reads earlier steps), the length of each step's
/// row, and how many rows there are.
#[derive(Clone, Debug)]
pub struct FusedKernel {
    steps: Vec<Step>,
    lens: Vec<usize>,
    rows: usize,
    /// Whether rows may be cut into blocks (no reductions or concatenations).
    blockwise: bool,
    /// For a region computing its own product or convolution rows: whether each slab of rows
    /// is evaluated in blocks of `BLOCK` values rather than row by row (short rows, no
    /// reductions or concatenations).
    slab_blocks: bool,
    /// The length of the root's rows (its last dimension).
    row_len: usize,
    /// For blocks: whether each step is one value broadcast everywhere.
    scalar: Vec<bool>,
    /// The buffers read, for liveness.
    pub reads: Vec<usize>,
    /// The row maps of the leaves read through a slice ([`Read::Mapped`]).
    row_maps: Vec<Vec<usize>>,
    /// The convolution whose rows the region computes itself ([`Read::ConvRows`]).
    conv: Option<ConvLeaf>,
    /// The bytes the region holds while it runs besides its output (the convolution's
    /// patches and row slabs), worked out when it is planned.
    scratch: u64,
    /// A reduction over the axis before the last that consumes the region's rows, with the
    /// length of that axis: the region's output is then the reduction's.
    sink: Option<(ReduceOp, usize)>,
    /// The convolution region whose output this region alone reads, through row maps (a
    /// pooling after a convolution): computed slab by slab for each task's rows, never
    /// written to memory whole.
    producer: Option<Box<Producer>>,
}

/// A convolution region computed by the region that reads it (see [`FusedKernel::producer`]).
#[derive(Clone, Debug)]
struct Producer {
    /// The node the region computes (its root), which the reader's row maps index.
    node: usize,
    kernel: FusedKernel,
    /// The reader's rows per task.
    rows_per_task: usize,
}

/// A convolution computed by the region that reads it: its operands and shapes.
#[derive(Clone, Debug)]
struct ConvLeaf {
    x: usize,
    kernel: usize,
    bias: Option<usize>,
    spec: ConvSpec,
    shapes: [Vec<usize>; 3],
}

impl ConvLeaf {
    /// The convolution over this run's `values`, its kernel transform kept in `kept`; `None`
    /// where an operand is missing or the CPU convolution does not take it.
    fn rows<'v>(
        &self,
        values: &'v [Option<std::sync::Arc<HostData>>],
        kept: &super::kept::KeptKernels,
    ) -> Option<super::conv::ConvRows<'v>> {
        let bias = match self.bias {
            Some(b) => Some(values[b].as_deref()?),
            None => None,
        };
        let [sx, sk, so] = &self.shapes;
        let kept = kept.of(self.kernel, values[self.kernel].as_ref()?);
        super::conv::ConvRows::new(
            (values[self.x].as_deref()?, sx),
            (values[self.kernel].as_deref()?, sk),
            bias,
            &self.spec,
            (so, kept),
        )
        .ok()
    }
}

fn fusible_op(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary { .. }
            | Op::Binary { .. }
            | Op::Where
            | Op::Cast { .. }
            | Op::Concat { .. }
            | Op::Reduce { .. }
    )
}

struct Builder<'a> {
    prog: &'a Program,
    shapes: &'a [Vec<usize>],
    lead: Vec<usize>,
    steps: Vec<Step>,
    lens: Vec<usize>,
    index: HashMap<usize, usize>,
    reads: Vec<usize>,
    /// Broadcasts read through (their input read in their place), never materialised.
    through: Vec<usize>,
    /// How many nodes (and outputs) read each node.
    consumers: &'a [usize],
    /// The row maps of [`Read::Mapped`] leaves.
    row_maps: Vec<Vec<usize>>,
    /// The convolution of a [`Read::ConvRows`] leaf.
    conv: Option<ConvLeaf>,
    /// The length of the region's rows (the root's last dimension).
    full: usize,
    /// Whether a reduction takes the region's rows (a sink): its output is then not one row
    /// per product or convolution row, so neither is computed by the region.
    sink: bool,
}

impl Builder<'_> {
    /// The row length of `n` if its shape has the region's leading dims (or broadcasts to
    /// them when `shared_ok`), with how it would be read as a leaf.
    fn row_len(&self, n: usize) -> Option<(usize, Read)> {
        let s = &self.shapes[n];
        let r = self.lead.len() + 1;
        if s.len() > r {
            return None;
        }
        let padded: Vec<usize> = std::iter::repeat_n(1, r - s.len())
            .chain(s.iter().copied())
            .collect();
        let last = padded[r - 1];
        if padded[..r - 1] == self.lead[..] {
            Some((last, Read::PerRow))
        } else if padded[..r - 1].iter().all(|&d| d == 1) {
            Some((last, Read::Shared))
        } else {
            None
        }
    }

    /// Whether the region already computes a product or a convolution of its own (one per
    /// region).
    fn computes_own_rows(&self) -> bool {
        self.conv.is_some()
            || self.steps.iter().any(|s| {
                matches!(
                    s,
                    Step::Leaf {
                        read: Read::Product { .. },
                        ..
                    }
                )
            })
    }

    /// For a slice `n` (of `axes`) whose rows are the region's and which keeps its input's
    /// last axis whole (`len` values): the input, and for each row of the slice the row of the
    /// input it is.
    fn slice_rows(&self, n: usize, axes: &[AxisSlice], len: usize) -> Option<(usize, Vec<usize>)> {
        let m = self.prog.nodes[n].inputs[0];
        let (si, so) = (&self.shapes[m], &self.shapes[n]);
        let r = so.len();
        if self.prog.nodes[m].dtype != DType::F32 || si.len() != r || axes.len() != r || r < 2 {
            return None;
        }
        let (first, count, step) = axes[r - 1].resolve(si[r - 1]);
        if (first, count, step) != (0, len, 1) || si[r - 1] != len {
            return None;
        }
        // Input rows are numbered over the leading axes; an output row's index along axis d
        // is input index first_d + i * step_d there.
        let lead_in = &si[..r - 1];
        let mut stride = vec![1isize; r - 1];
        for d in (0..r.saturating_sub(2)).rev() {
            stride[d] = stride[d + 1] * lead_in[d + 1] as isize;
        }
        let mut base = 0isize;
        let mut steps = Vec::with_capacity(r - 1);
        for d in 0..r - 1 {
            let (f, c, st) = axes[d].resolve(si[d]);
            if c != so[d] {
                return None;
            }
            base += f as isize * stride[d];
            steps.push(st as isize * stride[d]);
        }
        // The map is made when the program is compiled, before the memory budget is checked:
        // a slice of more rows is copied out as before (and counted by the budget).
        let rows: usize = so[..r - 1].iter().product();
        if rows > MAX_MAPPED_ROWS {
            return None;
        }
        let mut map = Vec::with_capacity(rows);
        let mut index = vec![0usize; r - 1];
        for _ in 0..rows {
            let at: isize = base
                + index
                    .iter()
                    .zip(&steps)
                    .map(|(&i, &st)| i as isize * st)
                    .sum::<isize>();
            map.push(usize::try_from(at).ok()?);
            for d in (0..r - 1).rev() {
                index[d] += 1;
                if index[d] < so[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Some((m, map))
    }

    fn dtype_ok(&self, n: usize) -> bool {
        matches!(self.prog.nodes[n].dtype, DType::F32 | DType::Bool)
    }

    /// Adds node `n` (as a computed step when `inside`, else as a leaf read).
    fn add(&mut self, n: usize, inside: &HashSet<usize>) -> Option<usize> {
        if let Some(&i) = self.index.get(&n) {
            return Some(i);
        }
        let node = &self.prog.nodes[n];
        let step = if inside.contains(&n) {
            let ins: Vec<usize> = node
                .inputs
                .iter()
                .map(|&m| self.add(m, inside))
                .collect::<Option<Vec<_>>>()?;
            match &node.op {
                Op::Unary { func: u } => Step::Unary(*u, ins[0]),
                Op::Binary { func: b } => Step::Binary(*b, ins[0], ins[1]),
                Op::Where => Step::Where(ins[0], ins[1], ins[2]),
                Op::Cast { dtype: DType::Bool }
                    if self.prog.nodes[node.inputs[0]].dtype == DType::F32 =>
                {
                    Step::ToBool(ins[0])
                }
                Op::Cast { .. } => Step::Copy(ins[0]),
                Op::Reduce { func: op, .. } => Step::Reduce(*op, ins[0]),
                Op::Concat { .. } => Step::Concat(ins),
                _ => return None,
            }
        } else {
            if !self.dtype_ok(n) {
                return None;
            }
            let (len, read) = self.row_len(n)?;
            // A broadcast over leading dims only is read as its input: the same row for every
            // row of the region, so the broadcast tensor is never materialised.
            let source = match &node.op {
                // A lookup whose rows are the region's rows, by ids from a model input (checked
                // before the run): read from the table in place.
                Op::Gather { axis: 0 } if matches!(read, Read::PerRow) => {
                    let (table, ids) = (node.inputs[0], node.inputs[1]);
                    let ts = &self.shapes[table];
                    let ok = ts.len() == 2
                        && ts[1] == len
                        && self.prog.nodes[table].dtype == DType::F32
                        && matches!(self.prog.nodes[ids].op, Op::Input { .. })
                        && matches!(self.prog.nodes[ids].dtype, DType::I32 | DType::U32)
                        && self.shapes[ids].iter().product::<usize>()
                            == self.lead.iter().product::<usize>();
                    if ok {
                        self.through.push(n);
                        self.reads.push(ids);
                        Some((table, Read::Rows { ids }))
                    } else {
                        None
                    }
                }
                // A matrix product read only by this region, rows for rows: computed by the
                // region (one product per region, row mode).
                Op::MatMul if matches!(read, Read::PerRow) => {
                    let (a, b) = (node.inputs[0], node.inputs[1]);
                    let (sa, sb) = (&self.shapes[a], &self.shapes[b]);
                    // `a` may have several leading axes (a Dense on a sequence): its rows.
                    let lead_a = &sa[..sa.len().saturating_sub(1)];
                    let ok = !self.sink
                        && len == self.full
                        && sa.len() >= 2
                        // One right operand for all rows, or one per batch of a batched
                        // product (attention's scores of each batch and head).
                        && (sb.len() == 2
                            || (sb.len() == sa.len() && sb[..sb.len() - 2] == sa[..sa.len() - 2]))
                        && self.shapes[n].len() == sa.len()
                        && sb[sb.len() - 1] == len
                        && self.lead == lead_a
                        && lead_a.iter().product::<usize>() >= MIN_PRODUCT_ROWS
                        && self.prog.nodes[a].dtype == DType::F32
                        && self.prog.nodes[b].dtype == DType::F32
                        && self.consumers[n] == 1
                        && !self.computes_own_rows();
                    if ok {
                        self.through.push(n);
                        self.reads.push(a);
                        self.reads.push(b);
                        Some((n, Read::Product { a, b }))
                    } else {
                        None
                    }
                }
                // A slice of a buffer the region does not itself compute.
                Op::Slice { axes }
                    if matches!(read, Read::PerRow) && !inside.contains(&node.inputs[0]) =>
                {
                    self.slice_rows(n, axes, len).map(|(m, map)| {
                        self.through.push(n);
                        self.row_maps.push(map);
                        (
                            m,
                            Read::Mapped {
                                map: self.row_maps.len() - 1,
                            },
                        )
                    })
                }
                // A convolution read only by this region, positions for rows: computed by the
                // region (one product or convolution per region, row mode).
                Op::Conv { spec } if matches!(read, Read::PerRow) => {
                    let (x, kernel) = (node.inputs[0], node.inputs[1]);
                    let bias = node.inputs.get(2).copied();
                    let f32s = node
                        .inputs
                        .iter()
                        .all(|&m| self.prog.nodes[m].dtype == DType::F32);
                    let ok = f32s
                        && !self.sink
                        && len == self.full
                        && self.consumers[n] == 1
                        && !self.computes_own_rows()
                        && super::conv::fuses_rows(
                            &self.shapes[x],
                            &self.shapes[kernel],
                            &self.shapes[n],
                            spec,
                        );
                    if ok {
                        self.through.push(n);
                        self.reads.extend(node.inputs.iter().copied());
                        self.conv = Some(ConvLeaf {
                            x,
                            kernel,
                            bias,
                            spec: spec.clone(),
                            shapes: [
                                self.shapes[x].clone(),
                                self.shapes[kernel].clone(),
                                self.shapes[n].clone(),
                            ],
                        });
                        Some((n, Read::ConvRows))
                    } else {
                        None
                    }
                }
                Op::BroadcastTo { .. } => {
                    let m = node.inputs[0];
                    match self.row_len(m) {
                        Some((len_m, read_m)) if len_m == len && self.dtype_ok(m) => {
                            self.through.push(n);
                            Some((m, read_m))
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            let (leaf, read) = source.unwrap_or((n, read));
            if !matches!(read, Read::Product { .. } | Read::ConvRows) {
                self.reads.push(leaf);
            }
            Step::Leaf { node: leaf, read }
        };
        let (len, _) = self.row_len(n)?;
        self.steps.push(step);
        self.lens.push(len);
        self.index.insert(n, self.steps.len() - 1);
        Some(self.steps.len() - 1)
    }
}

/// Whether node `n` can be computed inside a region whose rows have leading dims `lead`.
fn can_fuse(prog: &Program, shapes: &[Vec<usize>], n: usize, lead: &[usize]) -> bool {
    let node = &prog.nodes[n];
    let s = &shapes[n];
    if !fusible_op(&node.op) || !matches!(node.dtype, DType::F32 | DType::Bool) {
        return false;
    }
    if s.len() != lead.len() + 1 || s[..lead.len()] != *lead {
        return false;
    }
    let r = s.len();
    let input_ok = |m: usize| matches!(prog.nodes[m].dtype, DType::F32 | DType::Bool);
    if !node.inputs.iter().all(|&m| input_ok(m)) {
        return false;
    }
    match &node.op {
        Op::Reduce { axes, keepdims, .. } => {
            // A reduction over an empty row is the interpreter's error, never fused.
            *keepdims
                && axes.as_slice() == [r - 1]
                && node.dtype == DType::F32
                && shapes[node.inputs[0]].last().is_some_and(|&n| n > 0)
        }
        Op::Concat { axis } => *axis == r - 1,
        Op::Cast { dtype: to } => matches!(to, DType::F32 | DType::Bool),
        _ => true,
    }
}

/// Plans fused regions for a program with concrete shapes: for each node, `Some(kernel)`
/// where the node is a region root computed fused, and the set of nodes that never need a
/// buffer (inside regions only).
pub fn plan(prog: &Program, shapes: &[Vec<usize>]) -> (Vec<Option<FusedKernel>>, HashSet<usize>) {
    let n = prog.nodes.len();
    let mut needed: HashSet<usize> = prog.outputs.iter().copied().collect();
    let mut kernels: Vec<Option<FusedKernel>> = vec![None; n];
    let mut internal: HashSet<usize> = HashSet::new();
    let consumers = consumer_counts(prog);
    let readers = readers_of(prog);
    // Each region's nodes (inside it or read through), by root.
    let mut members: HashMap<usize, HashSet<usize>> = HashMap::new();
    for root in (0..n).rev() {
        if !needed.contains(&root) {
            continue;
        }
        let node = &prog.nodes[root];
        match region_at(prog, shapes, root, &needed, &consumers, &readers) {
            // A region of one op gains nothing over the interpreter's kernel for it, unless it
            // reads a slice or a broadcast in place (a pooling window's taps), or broadcasts an
            // operand that is more than one value (the interpreter's general broadcasting loop
            // is scalar code on one thread).
            Some(Region {
                kernel: k,
                inside,
                through,
            }) if inside.len() > 1
                || k.sink.is_some()
                || !through.is_empty()
                || broadcasts_rows(prog, shapes, root) =>
            {
                for &r in &k.reads {
                    needed.insert(r);
                }
                internal.extend(through.iter().copied());
                for &m in &inside {
                    if m != root {
                        internal.insert(m);
                    }
                }
                members.insert(root, inside.into_iter().chain(through).collect());
                kernels[root] = Some(k);
            }
            _ => {
                needed.extend(node.inputs.iter().copied());
            }
        }
    }
    internal.retain(|m| !needed.contains(m));
    fuse_producers(prog, &readers, &members, &mut kernels, &mut internal);
    (kernels, internal)
}

/// Hands each convolution region whose output one region alone reads, through row maps
/// only (a pooling's taps), to that reader as its producer (see [`FusedKernel::producer`]):
/// the convolution's output is then never written to memory whole. Only where the reader's
/// tasks, about a convolution slab each, reach producer rows that overlap by at most a
/// quarter (a pool's windows, not a gather from anywhere).
fn fuse_producers(
    prog: &Program,
    readers: &[Vec<usize>],
    members: &HashMap<usize, HashSet<usize>>,
    kernels: &mut [Option<FusedKernel>],
    internal: &mut HashSet<usize>,
) {
    let threads = rayon::current_num_threads().max(1) as u64;
    for root in 0..kernels.len() {
        let Some(reader) = &kernels[root] else {
            continue;
        };
        if reader.conv.is_some() || reader.sink.is_some() || reader.row_maps.is_empty() {
            continue;
        }
        // Every leaf reads one node through a row map, or is shared by every row.
        let mut source = None;
        let only_mapped = reader.steps.iter().all(|s| match s {
            Step::Leaf {
                node,
                read: Read::Mapped { .. },
            } => *source.get_or_insert(*node) == *node,
            Step::Leaf { read, .. } => matches!(read, Read::Shared),
            _ => true,
        });
        let Some(x) = source.filter(|_| only_mapped) else {
            continue;
        };
        let Some(first) = &kernels[x] else {
            continue;
        };
        let Some(c) = &first.conv else {
            continue;
        };
        let read_only_here = members
            .get(&root)
            .is_some_and(|inside| readers[x].iter().all(|r| inside.contains(r)));
        if first.sink.is_some()
            || first.producer.is_some()
            || prog.outputs.contains(&x)
            || !read_only_here
            || first.rows == 0
            || reader.rows == 0
        {
            continue;
        }
        let [sx, sk, so] = &c.shapes;
        let slab = super::conv::fused_slab_rows(sx, sk, so, &c.spec);
        let rows_per_task = (slab.saturating_mul(reader.rows) / first.rows).max(1);
        let (mut total, mut widest) = (0usize, 0usize);
        for r0 in (0..reader.rows).step_by(rows_per_task) {
            let (lo, hi) = reader.mapped_span(r0, rows_per_task.min(reader.rows - r0));
            total += hi - lo;
            widest = widest.max(hi - lo);
        }
        if total > first.rows + first.rows / 4 {
            continue;
        }
        let first = kernels[x].take().expect("checked above");
        let Some(reader) = kernels[root].as_mut() else {
            continue;
        };
        reader.reads.retain(|&r| r != x);
        reader.reads.extend(first.reads.iter().copied());
        // The producer's scratch, and per thread its convolution rows and epilogue rows.
        let rows_bytes = (widest as u64)
            .saturating_mul(first.row_len as u64)
            .saturating_mul(8)
            .saturating_mul(threads);
        reader.scratch = reader
            .scratch
            .saturating_add(first.scratch)
            .saturating_add(rows_bytes);
        reader.producer = Some(Box::new(Producer {
            node: x,
            kernel: first,
            rows_per_task,
        }));
        internal.insert(x);
    }
}

/// A planned region: its kernel, the nodes inside it, and the nodes it reads through.
struct Region {
    kernel: FusedKernel,
    inside: HashSet<usize>,
    through: Vec<usize>,
}

/// Whether node `n` is an elementwise op with an operand broadcast to its shape that is
/// neither the whole shape nor one value (a bias along the last axis, a per-row scale).
fn broadcasts_rows(prog: &Program, shapes: &[Vec<usize>], n: usize) -> bool {
    let node = &prog.nodes[n];
    matches!(node.op, Op::Binary { .. } | Op::Where)
        && node.inputs.iter().any(|&m| {
            let count: usize = shapes[m].iter().product();
            shapes[m] != shapes[n] && count > 1
        })
}

/// How many nodes (and outputs) read each node of `prog`.
fn consumer_counts(prog: &Program) -> Vec<usize> {
    let mut consumers = vec![0usize; prog.nodes.len()];
    for node in &prog.nodes {
        for &i in &node.inputs {
            consumers[i] += 1;
        }
    }
    for &o in &prog.outputs {
        consumers[o] += 1;
    }
    consumers
}

/// The nodes that read each node of `prog` (a node read twice by one reader lists it twice).
fn readers_of(prog: &Program) -> Vec<Vec<usize>> {
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); prog.nodes.len()];
    for (k, node) in prog.nodes.iter().enumerate() {
        for &i in &node.inputs {
            readers[i].push(k);
        }
    }
    readers
}

/// The region `root` computes fused (its input's region where `root` is a sink), if any.
fn region_at(
    prog: &Program,
    shapes: &[Vec<usize>],
    root: usize,
    needed: &HashSet<usize>,
    consumers: &[usize],
    readers: &[Vec<usize>],
) -> Option<Region> {
    let sink = sink_of(prog, shapes, root, consumers);
    let region_root = sink.map_or(root, |(src, ..)| src);
    let s = &shapes[region_root];
    if s.is_empty() || prog.nodes[region_root].dtype != DType::F32 {
        return None;
    }
    let lead = s[..s.len() - 1].to_vec();
    if !can_fuse(prog, shapes, region_root, &lead) {
        return None;
    }
    let inside = grow_region(prog, shapes, region_root, &lead, needed, readers);
    build_region(prog, shapes, region_root, lead, inside, consumers, sink)
}

/// Where `root` is a reduction that can sink its input's region: (input, op, axis length).
fn sink_of(
    prog: &Program,
    shapes: &[Vec<usize>],
    root: usize,
    consumers: &[usize],
) -> Option<(usize, ReduceOp, usize)> {
    // A reduction over the axis before the last, of a region read by nothing else: the
    // region runs row by row into a cache-sized buffer and the reduction takes its rows
    // from there, so the region's output is never written out.
    let node = &prog.nodes[root];
    match &node.op {
        Op::Reduce { func: op, axes, .. } if axes.len() == 1 && node.dtype == DType::F32 => {
            let src = node.inputs[0];
            let ss = &shapes[src];
            let fits = ss.len() >= 2
                && axes[0] + 2 == ss.len()
                && ss[axes[0]] > 0
                && ss[ss.len() - 1] > 0
                && consumers[src] == 1
                && prog.nodes[src].dtype == DType::F32
                && can_fuse(prog, shapes, src, &ss[..ss.len() - 1]);
            fits.then_some((src, *op, ss[axes[0]]))
        }
        _ => None,
    }
}

/// The nodes of the region rooted at `region_root`, less those something outside reads.
fn grow_region(
    prog: &Program,
    shapes: &[Vec<usize>],
    region_root: usize,
    lead: &[usize],
    needed: &HashSet<usize>,
    readers: &[Vec<usize>],
) -> HashSet<usize> {
    // Grow the region through fusible inputs with the same rows.
    let mut inside: HashSet<usize> = HashSet::new();
    let mut stack = vec![region_root];
    while let Some(m) = stack.pop() {
        // Regions stay small enough for a recursive build and a cache-sized set of
        // row buffers; what is left over gets regions of its own.
        if inside.len() >= MAX_REGION || !inside.insert(m) {
            continue;
        }
        for &i in &prog.nodes[m].inputs {
            if !inside.contains(&i) && !needed.contains(&i) && can_fuse(prog, shapes, i, lead) {
                stack.push(i);
            }
        }
    }
    // A node that something outside the region also reads gets a buffer of its
    // own instead of being computed again by each region that reads it: otherwise
    // a chain of regions sharing a running value (an unrolled recurrence's cell
    // state) recomputes the whole chain in every region.
    loop {
        let shared: Vec<usize> = inside
            .iter()
            .copied()
            .filter(|&m| m != region_root && readers[m].iter().any(|r| !inside.contains(r)))
            .collect();
        if shared.is_empty() {
            break;
        }
        for m in shared {
            inside.remove(&m);
        }
    }
    inside
}

/// The kernel of the region of nodes `inside`; `None` where one of them is no step.
fn build_region(
    prog: &Program,
    shapes: &[Vec<usize>],
    region_root: usize,
    lead: Vec<usize>,
    inside: HashSet<usize>,
    consumers: &[usize],
    sink: Option<(usize, ReduceOp, usize)>,
) -> Option<Region> {
    let s = &shapes[region_root];
    let mut b = Builder {
        prog,
        shapes,
        lead,
        steps: Vec::new(),
        lens: Vec::new(),
        index: HashMap::new(),
        reads: Vec::new(),
        through: Vec::new(),
        consumers,
        row_maps: Vec::new(),
        conv: None,
        full: s[s.len() - 1],
        sink: sink.is_some(),
    };
    b.add(region_root, &inside)?;
    fuse_softmax(&mut b.steps, &mut b.lens);
    fuse_multiply_add(&mut b.steps, &mut b.lens);
    let rows: usize = b.lead.iter().product();
    let full = s[s.len() - 1];
    let scalar = scalar_steps(&b.steps, &b.lens, rows);
    let product = b.steps.iter().any(|s| {
        matches!(
            s,
            Step::Leaf {
                read: Read::Product { .. } | Read::ConvRows,
                ..
            }
        )
    });
    let no_row_ops = inside
        .iter()
        .all(|&m| !matches!(prog.nodes[m].op, Op::Reduce { .. } | Op::Concat { .. }));
    let fits_blocks = no_row_ops && steps_fit_blocks(&b.steps, &b.lens, &scalar, full);
    let blockwise = !product && fits_blocks;
    // A product's or convolution's short rows (a convolution's 32 or 64 channels) are
    // evaluated a block of rows at a time: per row, the steps' own overhead would outweigh
    // their work. Longer rows stay row by row, where a row shared by all (a per-channel
    // scale) is read in place rather than repeated down each block.
    let slab_blocks = product && fits_blocks && full <= SLAB_BLOCK_ROW_MAX;
    Some(Region {
        kernel: FusedKernel {
            steps: b.steps,
            lens: b.lens,
            rows,
            blockwise,
            slab_blocks,
            row_len: full,
            scalar,
            reads: b.reads,
            row_maps: b.row_maps,
            scratch: b.conv.as_ref().map_or(0, |c| {
                let [sx, sk, so] = &c.shapes;
                super::conv::fused_scratch_bytes(sx, sk, so, &c.spec)
            }),
            conv: b.conv,
            // A sink's region never computes a product or convolution (see `Builder::sink`).
            sink: sink.map(|(_, op, count)| (op, count)),
            producer: None,
        },
        inside,
        through: b.through,
    })
}

/// The steps a step reads.
fn operands(step: &Step) -> Vec<usize> {
    match step {
        Step::Leaf { .. } => Vec::new(),
        Step::Unary(_, a)
        | Step::Reduce(_, a)
        | Step::Copy(a)
        | Step::ToBool(a)
        | Step::Softmax(a) => vec![*a],
        Step::MulAdd { a, b, c, .. } => vec![*a, *b, *c],
        Step::Binary(_, a, b) => vec![*a, *b],
        Step::Where(c, a, b) => vec![*c, *a, *b],
        Step::Concat(parts) => parts.clone(),
    }
}

/// `step` reading `new[k]` wherever it read step `k`.
fn renumber(step: &mut Step, new: &[usize]) {
    match step {
        Step::Leaf { .. } => {}
        Step::Unary(_, a)
        | Step::Reduce(_, a)
        | Step::Copy(a)
        | Step::ToBool(a)
        | Step::Softmax(a) => *a = new[*a],
        Step::MulAdd { a, b, c, .. } => (*a, *b, *c) = (new[*a], new[*b], new[*c]),
        Step::Binary(_, a, b) => (*a, *b) = (new[*a], new[*b]),
        Step::Where(c, a, b) => (*c, *a, *b) = (new[*c], new[*a], new[*b]),
        Step::Concat(parts) => parts.iter_mut().for_each(|p| *p = new[*p]),
    }
}

/// How many steps read each step, the region's result (the last step) counting once more
/// for its consumers.
fn step_uses(steps: &[Step]) -> Vec<usize> {
    let mut uses = vec![0usize; steps.len()];
    for step in steps {
        for k in operands(step) {
            uses[k] += 1;
        }
    }
    if let Some(u) = uses.last_mut() {
        *u += 1;
    }
    uses
}

/// Removes the steps marked in `dropped` (read by no step that stays), renumbering the rest.
fn drop_steps(steps: &mut Vec<Step>, lens: &mut Vec<usize>, dropped: &[bool]) {
    if !dropped.contains(&true) {
        return;
    }
    let mut new = vec![usize::MAX; steps.len()];
    let mut kept = 0;
    for (k, slot) in new.iter_mut().enumerate() {
        if !dropped[k] {
            *slot = kept;
            kept += 1;
        }
    }
    let old_steps = std::mem::take(steps);
    let old_lens = std::mem::take(lens);
    for (k, (mut step, len)) in old_steps.into_iter().zip(old_lens).enumerate() {
        if !dropped[k] {
            renumber(&mut step, &new);
            steps.push(step);
            lens.push(len);
        }
    }
}

/// Replaces each softmax over a row (`m = max(a)`, `d = a - m`, `e = exp(d)`, `s = sum(e)`,
/// `e / s`, with `m`, `d`, `e` and `s` read by nothing else) with one [`Step::Softmax`]:
/// the same operations in the same order, so the same bits, without writing and reading `d`
/// and with the sum taken while the exponentials are computed.
fn fuse_softmax(steps: &mut Vec<Step>, lens: &mut Vec<usize>) {
    let n = steps.len();
    let uses = step_uses(steps);
    let mut dropped = vec![false; n];
    for q in 0..n {
        let Step::Binary(BinaryOp::Div, e, s) = steps[q] else {
            continue;
        };
        let Step::Reduce(ReduceOp::Sum, e2) = steps[s] else {
            continue;
        };
        let Step::Unary(UnaryOp::Exp, d) = steps[e] else {
            continue;
        };
        let Step::Binary(BinaryOp::Sub, a, m) = steps[d] else {
            continue;
        };
        let Step::Reduce(ReduceOp::Max, a2) = steps[m] else {
            continue;
        };
        let row = lens[a];
        let fits = e2 == e
            && a2 == a
            && [e, d, q].iter().all(|&k| lens[k] == row)
            && lens[m] == 1
            && lens[s] == 1
            && (uses[m], uses[d], uses[e], uses[s]) == (1, 1, 2, 1);
        if fits {
            steps[q] = Step::Softmax(a);
            for k in [m, d, e, s] {
                dropped[k] = true;
            }
        }
    }
    drop_steps(steps, lens, &dropped);
}

/// Replaces each sum of a product read by nothing else (`m = a * b`, `m + c` or `c + m`) with
/// one [`Step::MulAdd`]: a polynomial's Horner steps, a normalisation's scale and shift. The same two roundings in the same order, so the same bits, in one pass over the
/// row instead of two.
fn fuse_multiply_add(steps: &mut Vec<Step>, lens: &mut Vec<usize>) {
    let n = steps.len();
    let uses = step_uses(steps);
    let mut dropped = vec![false; n];
    for q in 0..n {
        let Step::Binary(BinaryOp::Add, x, y) = steps[q] else {
            continue;
        };
        let product = |k: usize| match steps[k] {
            Step::Binary(BinaryOp::Mul, a, b) if uses[k] == 1 && !dropped[k] => Some((a, b)),
            _ => None,
        };
        let (m, c, c_first, (a, b)) = if let Some(ab) = product(x) {
            (x, y, false, ab)
        } else if let Some(ab) = product(y) {
            (y, x, true, ab)
        } else {
            continue;
        };
        // Each operand is the row or one value (as the two steps' operands may be).
        let len = lens[q];
        if [a, b, c].iter().any(|&k| lens[k] != len && lens[k] != 1) || lens[m] != len {
            continue;
        }
        steps[q] = Step::MulAdd { a, b, c, c_first };
        dropped[m] = true;
    }
    drop_steps(steps, lens, &dropped);
}

/// Which of `steps` are scalars: one value everywhere.
fn scalar_steps(steps: &[Step], lens: &[usize], rows: usize) -> Vec<bool> {
    let mut scalar: Vec<bool> = Vec::with_capacity(steps.len());
    for (st, &len) in steps.iter().zip(lens) {
        let sc = match st {
            Step::Leaf {
                read: Read::Shared, ..
            } => len == 1,
            Step::Leaf {
                read: Read::PerRow, ..
            } => len * rows == 1,
            Step::Leaf {
                read:
                    Read::Rows { .. } | Read::Mapped { .. } | Read::Product { .. } | Read::ConvRows,
                ..
            } => false,
            Step::Unary(_, a) | Step::Copy(a) | Step::ToBool(a) => scalar[*a],
            Step::Softmax(_) => false,
            Step::MulAdd { a, b, c, .. } => scalar[*a] && scalar[*b] && scalar[*c],
            Step::Binary(_, a, c) => scalar[*a] && scalar[*c],
            Step::Where(c, a, d) => scalar[*c] && scalar[*a] && scalar[*d],
            Step::Reduce(..) | Step::Concat(_) => false,
        };
        scalar.push(sc);
    }
    scalar
}

/// Whether blocks may cut across rows: every step a scalar or whole rows of `full` values.
fn steps_fit_blocks(steps: &[Step], lens: &[usize], scalar: &[bool], full: usize) -> bool {
    // Blocks cut across rows only when every value is either a whole tensor of the root's
    // shape or a scalar. A leaf with one value per row, or one row shared by all, is
    // expanded to the block as it is read.
    steps.iter().zip(lens).zip(scalar).all(|((st, &len), &sc)| {
        sc || match st {
            Step::Leaf {
                read: Read::PerRow, ..
            } => len == full || len == 1,
            Step::Leaf {
                read: Read::Shared | Read::Rows { .. } | Read::Mapped { .. },
                ..
            } => len == full,
            _ => true,
        }
    })
}

fn as_f32(d: &HostData) -> Option<std::borrow::Cow<'_, [f32]>> {
    match d {
        HostData::F32(v) => Some(std::borrow::Cow::Borrowed(v)),
        HostData::Bool(v) => Some(std::borrow::Cow::Owned(
            v.iter().map(|&b| b as u8 as f32).collect(),
        )),
        _ => None,
    }
}

/// A reduction of one row, in the interpreter's one summation order.
#[inline(always)]
pub fn reduce(op: ReduceOp, x: &[f32]) -> f32 {
    match op {
        ReduceOp::Sum => super::math::sum(x),
        ReduceOp::Mean => super::math::sum(x) / x.len() as f32,
        ReduceOp::Max => super::math::extreme(x, true),
        ReduceOp::Min => super::math::extreme(x, false),
        ReduceOp::Prod => x.iter().product(),
    }
}

/// Fills a block that starts at flat element `start` of a tensor with rows of `full` values,
/// one row segment at a time: with `per_row`, each element gets `data[row]`; otherwise
/// `data[column]` (one row shared by every row).
#[inline(always)]
fn expand(dst: &mut [f32], start: usize, full: usize, data: &[f32], per_row: bool) {
    let mut row = start / full;
    let mut col = start % full;
    let mut pos = 0;
    while pos < dst.len() {
        let n = (full - col).min(dst.len() - pos);
        let seg = &mut dst[pos..pos + n];
        if per_row {
            seg.fill(data[row]);
        } else {
            super::strided::copy_row(seg, &data[col..col + n]);
        }
        pos += n;
        col = 0;
        row += 1;
    }
}

fn bool_f32(b: bool) -> f32 {
    if b { 1.0 } else { 0.0 }
}

impl FusedKernel {
    /// `eval_units`, compiled for the widest vector instructions the CPU has (see [`Isa`]):
    /// AVX-512 (16 lanes), AVX2 and FMA (8 lanes), or SSE2 (4). The same IEEE operations in the
    /// same order, so the same results on every path. One call covers a task's rows or blocks,
    /// so the instruction set is chosen once per task, not once per row.
    fn eval_best(
        &self,
        pass: Pass<'_>,
        scratch: &mut [Vec<f32>],
        out: &mut [f32],
        start: usize,
        width: usize,
    ) {
        let kernel = self;
        super::isa::call_with_best_isa!(
            FusedKernel::eval_units,
            (
                kernel: &FusedKernel,
                pass: Pass<'_>,
                scratch: &mut [Vec<f32>],
                out: &mut [f32],
                start: usize,
                width: usize,
            )
        )
    }

    /// Evaluates the consecutive rows (or blocks) of `width` values that `out` holds, the first
    /// being row (or the block starting at element) `start`.
    #[inline(always)]
    fn eval_units(
        &self,
        pass: Pass<'_>,
        scratch: &mut [Vec<f32>],
        out: &mut [f32],
        start: usize,
        width: usize,
    ) {
        // Leaves read in place: the slice of the leaf's data a step reads, where it needs no
        // copy (a whole row or block of it, or its one value). A plain array for the usual
        // small region, made once per task (not per row: 512 bytes to clear).
        let mut inline: [Option<&[f32]>; 32] = [None; 32];
        let mut spilled: Vec<Option<&[f32]>>;
        let direct: &mut [Option<&[f32]>] = if self.steps.len() <= inline.len() {
            &mut inline[..self.steps.len()]
        } else {
            spilled = vec![None; self.steps.len()];
            &mut spilled
        };
        let w = width.max(1);
        let total = out.len();
        let units = total.div_ceil(w);
        // How many rows (or blocks) ahead the leaves and the output are asked for.
        let unit_bytes = w * std::mem::size_of::<f32>();
        let ahead_in = (PREFETCH_BYTES / unit_bytes).clamp(1, PREFETCH_UNITS_MAX);
        let ahead_out = (OUT_PREFETCH_BYTES / unit_bytes).clamp(1, PREFETCH_UNITS_MAX);
        for i in 0..units {
            let first = if pass.per_row {
                start + i
            } else {
                start + i * width
            };
            if i + ahead_in < units {
                if pass.per_row {
                    self.prefetch_row(pass.leaves, first + ahead_in);
                } else {
                    self.prefetch_block(pass.leaves, first + ahead_in * width, width);
                }
            }
            if !pass.stream && i + ahead_out < units {
                let at = (i + ahead_out) * w;
                super::stream::prefetch(&out[at..(at + w).min(total)]);
            }
            let unit = &mut out[i * w..((i + 1) * w).min(total)];
            let len = unit.len();
            self.eval(pass, direct, scratch, unit, first, len);
        }
    }

    /// Asks the cache for row `row` of each leaf read one row per region row, a few rows
    /// before the pass reads it: a row is read by a reduction's first pass, which otherwise
    /// waits for each of its lines in turn (and the output row, before it is written, unless
    /// it is written with streaming stores).
    #[inline(always)]
    fn prefetch_row(&self, leaves: &Inputs<'_>, row: usize) {
        for (si, step) in self.steps.iter().enumerate() {
            let Step::Leaf { read, .. } = step else {
                continue;
            };
            // The leaf's row for region row `row`: its own, or a lookup's table row.
            let at = match read {
                Read::PerRow => row,
                Read::Rows { .. } => match leaves.rows[si].as_deref().and_then(|r| r.get(row)) {
                    Some(&id) => id,
                    None => continue,
                },
                _ => continue,
            };
            let d = self.lens[si];
            if let Some(data) = leaves.data[si].as_deref()
                && let Some(r) = data.get(at * d..(at + 1) * d)
            {
                super::stream::prefetch(r);
            }
        }
    }

    /// Asks the cache for the block of `width` values starting at element `start` of each leaf
    /// read element for element (not a broadcast row or value), a few blocks before the pass
    /// reads it.
    #[inline(always)]
    fn prefetch_block(&self, leaves: &Inputs<'_>, start: usize, width: usize) {
        let full = self.row_len.max(1);
        for (si, step) in self.steps.iter().enumerate() {
            let Step::Leaf { read, .. } = step else {
                continue;
            };
            let Some(data) = leaves.data[si].as_deref() else {
                continue;
            };
            match read {
                Read::PerRow if !self.scalar[si] && self.lens[si] == full => {
                    if let Some(r) = data.get(start..(start + width).min(data.len())) {
                        super::stream::prefetch(r);
                    }
                }
                // A lookup's table rows lie anywhere in the table: each row of the block.
                Read::Rows { .. } if self.lens[si] == full => {
                    let ids = leaves.rows[si].as_deref().unwrap_or(&[]);
                    let rows = start / full..(start + width).div_ceil(full);
                    for &id in ids.get(rows).unwrap_or(&[]) {
                        if let Some(r) = data.get(id * full..(id + 1) * full) {
                            super::stream::prefetch(r);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Evaluates the steps for rows (or blocks) `first..first+count` into `out`, reading the
    /// leaves from `leaves` (f32 data per step index; `None` for computed steps). With
    /// `stream`, the result is computed in cache and written to `out` with streaming stores
    /// (the caller fences).
    #[inline(always)]
    fn eval<'p>(
        &self,
        pass: Pass<'p>,
        direct: &mut [Option<&'p [f32]>],
        scratch: &mut [Vec<f32>],
        out: &mut [f32],
        start: usize,
        width: usize,
    ) {
        let Pass {
            leaves,
            slab,
            per_row,
            stream,
        } = pass;
        let last = self.steps.len() - 1;
        let mut wrote_out = false;
        // A softmax that ends a streamed region: its row, not yet divided by its sum `s`,
        // and `1 / s`, to be divided on its way to the output.
        let mut divide_out: Option<(f32, f32)> = None;
        let out_len = out.len();
        for (si, step) in self.steps.iter().enumerate() {
            let len = if per_row {
                self.lens[si]
            } else if self.scalar[si] {
                1
            } else {
                width
            };
            // Set again below where this row's leaf is read in place.
            direct[si] = None;
            let (done, rest) = scratch.split_at_mut(si);
            // The last step writes straight into the output when it fills it.
            let into_out =
                !stream && si == last && len == out.len() && !matches!(step, Step::Leaf { .. });
            let dst: &mut [f32] = if into_out {
                wrote_out = true;
                &mut *out
            } else {
                rest[0].resize(len, 0.0);
                &mut rest[0]
            };
            let get = |k: usize| -> &[f32] { direct[k].unwrap_or(&done[k]) };
            match step {
                Step::Leaf { read, .. } => {
                    let data = leaves.data[si].as_deref().unwrap_or(&[]);
                    let full = self.row_len.max(1);
                    let src = match (read, per_row) {
                        (Read::Product { .. } | Read::ConvRows, true) => {
                            let d = self.lens[si];
                            let (rows, first) = slab.unwrap_or((&[], start));
                            &rows[(start - first) * d..(start - first + 1) * d]
                        }
                        // Blocks of a slab: `first` is then the slab's first element.
                        (Read::Product { .. } | Read::ConvRows, false) => {
                            let (rows, first) = slab.unwrap_or((&[], start));
                            &rows[start - first..start - first + width]
                        }
                        (Read::Rows { .. } | Read::Mapped { .. }, true) => {
                            let id = leaves.rows[si].as_ref().map_or(0, |r| r[start]);
                            let d = self.lens[si];
                            &data[id * d..(id + 1) * d]
                        }
                        (Read::Rows { .. } | Read::Mapped { .. }, false) => {
                            // Row segments of the block, each from its table row.
                            let ids = leaves.rows[si].as_deref().unwrap_or(&[]);
                            let (mut row, mut col, mut pos) = (start / full, start % full, 0);
                            while pos < dst.len() {
                                let n = (full - col).min(dst.len() - pos);
                                let from = ids[row] * full + col;
                                super::strided::copy_row(
                                    &mut dst[pos..pos + n],
                                    &data[from..from + n],
                                );
                                pos += n;
                                col = 0;
                                row += 1;
                            }
                            continue;
                        }
                        (Read::Shared, true) => &data[..self.lens[si]],
                        (Read::PerRow, true) => {
                            &data[start * self.lens[si]..(start + 1) * self.lens[si]]
                        }
                        (_, false) if self.scalar[si] => &data[..1],
                        (Read::PerRow, false) if self.lens[si] == full => {
                            &data[start..start + width]
                        }
                        (Read::PerRow, false) => {
                            // One value per row: repeat it along the row.
                            expand(dst, start, full, data, true);
                            continue;
                        }
                        (Read::Shared, false) => {
                            // One row shared by every row: repeat it down the rows.
                            expand(dst, start, full, data, false);
                            continue;
                        }
                    };
                    if si == last {
                        dst.copy_from_slice(src);
                    } else {
                        direct[si] = Some(src);
                    }
                }
                Step::Unary(u, a) => super::math::unary_slice(*u, get(*a), dst),
                Step::Binary(b, x, y) => super::math::binary_slice(*b, get(*x), get(*y), dst),
                Step::Where(c, a, b) => {
                    let (c, a, b) = (get(*c), get(*a), get(*b));
                    let n = dst.len();
                    if c.len() == n && a.len() == n && b.len() == n {
                        for (((o, &c), &a), &b) in dst.iter_mut().zip(c).zip(a).zip(b) {
                            *o = if c != 0.0 { a } else { b };
                        }
                    } else if c.len() == n && a.len() == n && b.len() == 1 {
                        let b = b[0];
                        for ((o, &c), &a) in dst.iter_mut().zip(c).zip(a) {
                            *o = if c != 0.0 { a } else { b };
                        }
                    } else {
                        let at = |v: &[f32], i: usize| if v.len() == n { v[i] } else { v[0] };
                        for (i, o) in dst.iter_mut().enumerate() {
                            *o = if at(c, i) != 0.0 { at(a, i) } else { at(b, i) };
                        }
                    }
                }
                Step::Reduce(op, a) => {
                    dst[0] = reduce(*op, get(*a));
                }
                Step::MulAdd { a, b, c, c_first } => {
                    super::math::mul_add_slices(get(*a), get(*b), get(*c), *c_first, dst)
                }
                Step::Softmax(a) => {
                    let x = get(*a);
                    let (m, lowest) = super::math::max_and_min_ignoring_nan(x);
                    let mut s = super::math::exp_shifted_and_sum(x, m, lowest, dst);
                    if s.is_nan() {
                        // A NaN in the row (or +inf): again with the maximum that is NaN
                        // where the row holds one, so that the NaNs that come out are the
                        // five ops' own, the same on every instruction set.
                        let m = super::math::extreme(x, true);
                        s = super::math::exp_shifted_and_sum(x, m, f32::NEG_INFINITY, dst);
                    }
                    let in_range = lowest - m >= super::math::IN_RANGE_EXP_LOWEST;
                    let streamed = stream && si == last && dst.len() == out_len;
                    if let (true, true, Some(y)) =
                        (in_range, streamed, super::math::in_range_reciprocal(s))
                    {
                        divide_out = Some((s, y));
                    } else if in_range {
                        super::math::div_in_range_in_place(dst, s);
                    } else {
                        super::math::div_by_one_in_place(dst, s);
                    }
                }
                Step::Concat(parts) => {
                    let mut off = 0;
                    for &p in parts {
                        let v = get(p);
                        super::strided::copy_row(&mut dst[off..off + v.len()], v);
                        off += v.len();
                    }
                }
                Step::ToBool(a) => {
                    let a = get(*a);
                    if a.len() == dst.len() {
                        dst.iter_mut()
                            .zip(a)
                            .for_each(|(o, &x)| *o = bool_f32(x != 0.0));
                    } else {
                        dst.fill(bool_f32(a[0] != 0.0));
                    }
                }
                Step::Copy(a) => {
                    let a = get(*a);
                    if a.len() == dst.len() {
                        dst.copy_from_slice(a);
                    } else {
                        dst.fill(a[0]);
                    }
                }
            }
        }
        if wrote_out {
            return;
        }
        let last = &scratch[last];
        if let Some((s, y)) = divide_out {
            super::stream::copy_divided(out, last, s, y);
            return;
        }
        if last.len() == out.len() && stream {
            super::stream::copy(out, last);
        } else if last.len() == out.len() {
            out.copy_from_slice(last);
        } else {
            out.fill(last[0]);
        }
    }

    /// Runs the region: `values` gives the data of each node computed so far. `reuse` is a
    /// buffer of an earlier run that nobody holds any more: written over instead of allocating
    /// (and page-faulting) a new one.
    pub fn run(
        &self,
        values: &[Option<std::sync::Arc<HostData>>],
        out_len: usize,
        reuse: Option<std::sync::Arc<HostData>>,
        kept: &super::kept::KeptKernels,
    ) -> Option<std::sync::Arc<HostData>> {
        if let Some(p) = &self.producer {
            return self.run_with_producer(values, (out_len, reuse), p, kept);
        }
        let leaves = self.inputs(values)?;
        let product = self.steps.iter().find_map(|s| match s {
            Step::Leaf {
                read: Read::Product { a, b },
                ..
            } => Some((*a, *b)),
            _ => None,
        });
        let mut buffer = reuse
            .filter(|b| matches!(&**b, HostData::F32(v) if v.len() == out_len))
            .unwrap_or_else(|| std::sync::Arc::new(HostData::F32(vec![0f32; out_len])));
        let Some(HostData::F32(out)) = std::sync::Arc::get_mut(&mut buffer) else {
            return None;
        };
        let n_steps = self.steps.len();
        if out_len == 0 {
            return Some(buffer);
        }
        // An output far larger than the caches is written with streaming stores.
        let stream = out_len * 4 >= super::stream::stream_bytes();
        if let Some((op, count)) = self.sink {
            self.run_sink(&leaves, op, count, out);
        } else if self.blockwise {
            // A task takes many blocks, so that its scratch is made once per task rather than
            // once per block.
            out.par_chunks_mut(BLOCK * BLOCKS_PER_TASK)
                .enumerate()
                .for_each(|(t, task)| {
                    let mut scratch = vec![Vec::with_capacity(BLOCK); n_steps];
                    let start = t * BLOCKS_PER_TASK * BLOCK;
                    let pass = Pass::new(&leaves, None, false, stream);
                    self.eval_best(pass, &mut scratch, task, start, BLOCK);
                    if stream {
                        super::stream::fence();
                    }
                });
        } else if let Some((a, b)) = product {
            self.run_product(values, &leaves, a, b, out)?;
        } else if let Some(c) = &self.conv {
            self.run_conv(values, &leaves, c, (out, kept))?;
        } else {
            let row_len = out_len / self.rows.max(1);
            let rows_per_task = (BLOCK * BLOCKS_PER_TASK / row_len.max(1)).max(1);
            out.par_chunks_mut(row_len * rows_per_task)
                .enumerate()
                .for_each_init(
                    || vec![Vec::new(); n_steps],
                    |scratch, (t, chunk)| {
                        let pass = Pass::new(&leaves, None, true, stream);
                        self.eval_best(pass, scratch, chunk, t * rows_per_task, row_len);
                        if stream {
                            super::stream::fence();
                        }
                    },
                );
        }
        Some(buffer)
    }
}

impl FusedKernel {
    /// What the region reads from `values`: each leaf's data and each lookup's or slice's
    /// table rows; `None` where a buffer it reads is missing or not float32.
    fn inputs<'v>(&'v self, values: &'v [Option<std::sync::Arc<HostData>>]) -> Option<Inputs<'v>> {
        let data: Vec<Option<std::borrow::Cow<'_, [f32]>>> = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Leaf { node, .. } => values[*node].as_deref().and_then(as_f32),
                _ => None,
            })
            .collect();
        if self.steps.iter().zip(&data).any(|(s, l)| {
            matches!(s, Step::Leaf { read, .. } if !matches!(read, Read::Product { .. } | Read::ConvRows))
                && l.is_none()
        }) {
            return None;
        }
        // Table rows of lookups: negative ids count from the end (the ids were checked against
        // the table before the run; clamping keeps every read in bounds regardless).
        let mut rows = Vec::with_capacity(self.steps.len());
        for (si, s) in self.steps.iter().enumerate() {
            rows.push(match s {
                Step::Leaf {
                    read: Read::Rows { ids },
                    ..
                } => {
                    let size = (data[si].as_ref()?.len() / self.lens[si].max(1)) as i64;
                    if size == 0 && self.rows > 0 {
                        return None;
                    }
                    let fix =
                        |i: i64| (if i < 0 { i + size } else { i }).clamp(0, size - 1) as usize;
                    Some(std::borrow::Cow::Owned(match values[*ids].as_deref()? {
                        HostData::I32(v) => v.iter().map(|&i| fix(i as i64)).collect(),
                        HostData::U32(v) => v.iter().map(|&i| fix(i as i64)).collect(),
                        _ => return None,
                    }))
                }
                Step::Leaf {
                    read: Read::Mapped { map },
                    ..
                } => Some(std::borrow::Cow::Borrowed(self.row_maps[*map].as_slice())),
                _ => None,
            });
        }
        Some(Inputs { data, rows })
    }

    /// The bytes the region holds while it runs besides its output: the patches and row
    /// slabs of a convolution it computes itself.
    pub fn scratch_bytes(&self) -> u64 {
        self.scratch
    }

    /// The kernel node and the bytes of the transform kept between runs of the convolution
    /// this region (or its producer) computes, if it keeps one.
    pub fn kept_kernel(&self) -> Option<(usize, u64)> {
        let c = self
            .conv
            .as_ref()
            .or_else(|| self.producer.as_ref()?.kernel.conv.as_ref())?;
        let [sx, sk, so] = &c.shapes;
        let bytes = super::conv::kept_bytes(sx, sk, so, &c.spec);
        (bytes > 0).then_some((c.kernel, bytes))
    }

    /// Row mode for a region whose rows feed a reduction over the axis before the last: for
    /// each outer index, its `count` rows are evaluated into a buffer that stays in cache and
    /// reduced there, in the interpreter's one order for such reductions.
    fn run_sink(&self, leaves: &Inputs<'_>, op: ReduceOp, count: usize, out: &mut [f32]) {
        let d = self.row_len;
        let outer = self.rows / count.max(1);
        if d == 0 || outer == 0 {
            return;
        }
        let threads = rayon::current_num_threads().max(1);
        let per_task = outer.div_ceil(threads * 4).max(1);
        out.par_chunks_mut(per_task * d)
            .enumerate()
            .for_each(|(t, task)| {
                let mut rows = vec![0f32; count * d];
                let mut scratch = vec![Vec::new(); self.steps.len()];
                for (k, acc) in task.chunks_mut(d).enumerate() {
                    let o = t * per_task + k;
                    if self.blockwise {
                        // The outer index's rows are one contiguous range: cache-sized blocks.
                        let pass = Pass::new(leaves, None, false, false);
                        self.eval_best(pass, &mut scratch, &mut rows, o * count * d, BLOCK);
                    } else {
                        let pass = Pass::new(leaves, None, true, false);
                        self.eval_best(pass, &mut scratch, &mut rows, o * count, d);
                    }
                    super::reduce::reduce_rows(op, &rows, count, d, acc);
                }
            });
    }

    /// Evaluates the region over the task's rows `first..` whose product or convolution rows
    /// are `slab`: row by row, or in blocks of `BLOCK` values where `slab_blocks` says so.
    fn eval_slab(
        &self,
        leaves: &Inputs<'_>,
        slab: &[f32],
        first: usize,
        scratch: &mut [Vec<f32>],
        task: &mut [f32],
    ) {
        let n = self.row_len;
        if self.slab_blocks {
            let pass = Pass::new(leaves, Some((slab, first * n)), false, false);
            self.eval_best(pass, scratch, task, first * n, BLOCK);
        } else {
            let pass = Pass::new(leaves, Some((slab, first)), true, false);
            self.eval_best(pass, scratch, task, first, n);
        }
    }

    /// Runs a region that reads its producer's rows (see [`FusedKernel::producer`]): each task
    /// computes the producer's rows its row maps reach (the convolution, then the producer's
    /// epilogue) into buffers of its own, then its own rows from them.
    fn run_with_producer(
        &self,
        values: &[Option<std::sync::Arc<HostData>>],
        (out_len, reuse): (usize, Option<std::sync::Arc<HostData>>),
        p: &Producer,
        kept: &super::kept::KeptKernels,
    ) -> Option<std::sync::Arc<HostData>> {
        let k1 = &p.kernel;
        let c = k1.conv.as_ref()?;
        let conv = c.rows(values, kept)?;
        let first_leaves = k1.inputs(values)?;
        // This region's own leaves other than the producer's rows (shared values).
        let own: Vec<Option<std::borrow::Cow<'_, [f32]>>> = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Leaf { node, .. } if *node != p.node => {
                    values[*node].as_deref().and_then(as_f32)
                }
                _ => None,
            })
            .collect();
        let mut buffer = reuse
            .filter(|b| matches!(&**b, HostData::F32(v) if v.len() == out_len))
            .unwrap_or_else(|| std::sync::Arc::new(HostData::F32(vec![0f32; out_len])));
        let Some(HostData::F32(out)) = std::sync::Arc::get_mut(&mut buffer) else {
            return None;
        };
        let (n, width) = (self.row_len, k1.row_len);
        if out_len == 0 || n == 0 || width == 0 {
            return Some(buffer);
        }
        out.par_chunks_mut(p.rows_per_task * n)
            .enumerate()
            .for_each_init(
                || {
                    let scratch = |k: &FusedKernel| vec![Vec::new(); k.steps.len()];
                    (scratch(k1), scratch(self))
                },
                |(first_scratch, scratch), (t, task)| {
                    super::scratch::with_buffers(|[conv_rows, rows]| {
                        let r0 = t * p.rows_per_task;
                        let m = task.len() / n;
                        let (lo, hi) = self.mapped_span(r0, m);
                        conv_rows.resize((hi - lo) * width, 0.0);
                        conv.rows(lo, conv_rows);
                        rows.resize((hi - lo) * width, 0.0);
                        k1.eval_slab(&first_leaves, conv_rows, lo, first_scratch, rows);
                        // The task's rows read the producer's rows lo..hi as rows 0.., through
                        // their row maps shifted by lo.
                        let data = self
                            .steps
                            .iter()
                            .zip(&own)
                            .map(|(s, d)| match s {
                                Step::Leaf { node, .. } if *node == p.node => {
                                    Some(std::borrow::Cow::Borrowed(&rows[..]))
                                }
                                _ => d.as_deref().map(std::borrow::Cow::Borrowed),
                            })
                            .collect();
                        let maps = self
                            .steps
                            .iter()
                            .map(|s| match s {
                                Step::Leaf {
                                    read: Read::Mapped { map },
                                    ..
                                } => Some(std::borrow::Cow::Owned(
                                    self.row_maps[*map][r0..r0 + m]
                                        .iter()
                                        .map(|&i| i - lo)
                                        .collect(),
                                )),
                                _ => None,
                            })
                            .collect();
                        let leaves = Inputs { data, rows: maps };
                        // Short rows (a pool's 32 channels) in blocks, as the region would run
                        // alone: per row, the steps' own overhead outweighs their work.
                        if self.blockwise {
                            let pass = Pass::new(&leaves, None, false, false);
                            self.eval_best(pass, scratch, task, 0, BLOCK);
                        } else {
                            let pass = Pass::new(&leaves, None, true, false);
                            self.eval_best(pass, scratch, task, 0, n);
                        }
                    })
                },
            );
        Some(buffer)
    }

    /// The producer's rows that this region's rows `r0..r0 + m` read through their row maps:
    /// `lo..hi`.
    fn mapped_span(&self, r0: usize, m: usize) -> (usize, usize) {
        let (mut lo, mut hi) = (usize::MAX, 0);
        for map in &self.row_maps {
            for &i in &map[r0..r0 + m] {
                lo = lo.min(i);
                hi = hi.max(i + 1);
            }
        }
        (lo.min(hi), hi)
    }

    /// Row mode for a region that computes its own convolution: the output positions are cut
    /// into slabs that keep their patches in cache; each task computes its slab of the
    /// convolution into a buffer of its own and runs the region's epilogue over those rows.
    fn run_conv(
        &self,
        values: &[Option<std::sync::Arc<HostData>>],
        leaves: &Inputs<'_>,
        c: &ConvLeaf,
        (out, kept): (&mut [f32], &super::kept::KeptKernels),
    ) -> Option<()> {
        let conv = c.rows(values, kept)?;
        let n = self.row_len;
        if self.rows == 0 || n == 0 {
            return Some(());
        }
        let rows_per_task = conv.slab_rows().max(1);
        out.par_chunks_mut(rows_per_task * n)
            .enumerate()
            .for_each_init(
                || vec![Vec::new(); self.steps.len()],
                |scratch, (t, task)| {
                    let first = t * rows_per_task;
                    super::scratch::with_buffers(|[slab]| {
                        slab.resize(task.len(), 0.0);
                        conv.rows(first, slab);
                        self.eval_slab(leaves, slab, first, scratch, task);
                    })
                },
            );
        Some(())
    }

    /// Row mode for a region that computes its own matrix product `a @ b`: the rows are cut
    /// into one slab per thread (at most about `SLAB_BYTES` of product each); each task
    /// multiplies its slab of `a` by `b` into a buffer of its own, then runs the region's
    /// epilogue over those rows while they are still in cache.
    fn run_product(
        &self,
        values: &[Option<std::sync::Arc<HostData>>],
        leaves: &Inputs<'_>,
        a: usize,
        b: usize,
        out: &mut [f32],
    ) -> Option<()> {
        let (HostData::F32(av), HostData::F32(bv)) = (values[a].as_deref()?, values[b].as_deref()?)
        else {
            return None;
        };
        let m = self.rows;
        let n = self.row_len;
        if m == 0 || n == 0 {
            return Some(());
        }
        let k = av.len() / m;
        if k > 0 && bv.len() != k * n {
            return self.run_batched_product(leaves, (av, bv), (m, k, n), out);
        }
        if av.len() != m * k || bv.len() != k * n || out.len() != m * n {
            return None;
        }
        let threads = rayon::current_num_threads().max(1);
        let rows_per_task = m
            .div_ceil(threads)
            .min((SLAB_BYTES / (4 * n)).max(64))
            .max(1);
        // One task lets the product itself use the threads.
        let threaded = m <= rows_per_task && m * n * k >= 1 << 18;
        out.par_chunks_mut(rows_per_task * n)
            .enumerate()
            .for_each(|(t, task)| {
                let first = t * rows_per_task;
                let rows = task.len() / n;
                let slab = super::matmul::gemm_f32_new(
                    rows,
                    k,
                    n,
                    &av[first * k..(first + rows) * k],
                    bv,
                    threaded,
                );
                let mut scratch = vec![Vec::new(); self.steps.len()];
                self.eval_slab(leaves, &slab, first, &mut scratch, task);
            });
        Some(())
    }

    /// [`FusedKernel::run_product`] for a batched product, whose right operand holds one
    /// `k x n` matrix per batch of `m / batches` rows: each batch's rows in slabs of their own,
    /// the batches over threads.
    fn run_batched_product(
        &self,
        leaves: &Inputs<'_>,
        (av, bv): (&[f32], &[f32]),
        (m, k, n): (usize, usize, usize),
        out: &mut [f32],
    ) -> Option<()> {
        let batches = bv.len() / (k * n);
        if batches == 0 || bv.len() != batches * k * n || !m.is_multiple_of(batches) {
            return None;
        }
        let per = m / batches;
        if av.len() != m * k || out.len() != m * n || per == 0 {
            return None;
        }
        let rows_per_slab = per.min((SLAB_BYTES / (4 * n)).max(64)).max(1);
        out.par_chunks_mut(per * n).enumerate().for_each_init(
            || vec![Vec::new(); self.steps.len()],
            |scratch, (bi, batch)| {
                for (si, task) in batch.chunks_mut(rows_per_slab * n).enumerate() {
                    let first = bi * per + si * rows_per_slab;
                    let rows = task.len() / n;
                    let slab = super::matmul::gemm_f32_new(
                        rows,
                        k,
                        n,
                        &av[first * k..(first + rows) * k],
                        &bv[bi * k * n..(bi + 1) * k * n],
                        false,
                    );
                    self.eval_slab(leaves, &slab, first, scratch, task);
                }
            },
        );
        Some(())
    }
}
