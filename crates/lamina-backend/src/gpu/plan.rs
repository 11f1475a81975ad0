//! Scheduling: partitions a program into kernels by rules on the graph, and returns the
//! partition as data. Elementwise and movement ops fuse into their consumers (recomputed
//! rather than stored); reductions fuse with their producers and with an elementwise consumer
//! over the same rows; matmul takes its elementwise epilogue; only kernel outputs get buffers.
//!
//! The rules: a node read at more than `MAX_ACCESSES` different coordinates inside one kernel
//! gets a buffer (so that a kernel's size is linear in the graph's); a reduction absorbed
//! into a row kernel must be read at the row's own coordinates; matmul operands are strided
//! views of buffers; a kernel binds at most the device's storage buffers.

use super::lower::Label;
use lamina_graph::op::Op;
use lamina_graph::{Error, Program, Result};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Whether an op fuses into whatever reads it (evaluated in registers, no buffer).
pub fn fusible(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary { .. }
            | Op::Binary { .. }
            | Op::Where
            | Op::Cast { .. }
            | Op::Reshape { .. }
            | Op::Permute { .. }
            | Op::BroadcastTo { .. }
            | Op::Slice { .. }
            | Op::ExpandDims { .. }
            | Op::Squeeze { .. }
            | Op::Concat { .. }
            | Op::Gather { .. }
    )
}

/// Whether an op only moves elements (a view, or a concatenation of views): computing it where
/// it is read costs index arithmetic, no arithmetic on values.
pub fn movement_only(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape { .. }
            | Op::Permute { .. }
            | Op::BroadcastTo { .. }
            | Op::Slice { .. }
            | Op::ExpandDims { .. }
            | Op::Squeeze { .. }
            | Op::Concat { .. }
    )
}

/// Whether an op is data that lives in a buffer before any kernel runs.
pub fn is_leaf(op: &Op) -> bool {
    matches!(op, Op::Input { .. } | Op::Constant(_) | Op::Variable(_))
}

/// The most different coordinates at which one kernel evaluates a fused node before the node
/// gets a buffer of its own.
pub const MAX_ACCESSES: usize = 4;

/// The most ops one kernel fuses; the node where a region reaches it gets a buffer, so that
/// shaders stay small enough to compile quickly however long a chain of ops is.
pub const MAX_FUSED_NODES: usize = 1024;

/// The most ops of a matmul operand computed at each read (movement ops only: an im2col).
pub const MAX_FUSED_OPERAND_OPS: usize = 64;

/// The most tensors the concatenations fused into one kernel join (each part is a branch of
/// the kernel); wider concatenations are split into trees (`passes::split_wide_concats`) whose
/// levels get buffers of their own.
pub const MAX_CONCAT_INPUTS: usize = 1024;

/// Reduction lengths up to this run with one thread per row.
pub const THREAD_ROW_MAX: usize = 64;
/// Threads of a cooperative (workgroup-per-row) reduction.
pub const WG_ROW: u32 = 256;
/// Elements each thread of a cooperative reduction reads at most; longer rows are reduced in
/// several passes, so that no loop of any kernel runs more than a bounded number of times.
pub const TRIPS: usize = 64;
/// The longest row one cooperative workgroup reduces in one pass.
pub const COOP_MAX: usize = WG_ROW as usize * TRIPS;

/// A strided view of a buffer: what a matmul operand reads. A fused operand is a node
/// without a buffer, made by movement ops only (slices, concatenations, reshapes: an im2col),
/// whose value the matmul computes at each read (a row-major view of its own shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The node whose buffer is read (or, fused, whose value is computed).
    pub node: usize,
    /// Whether the node is computed at each read rather than read from a buffer.
    pub fused: bool,
    /// Strides per axis of the operand (0 for broadcast axes), in elements.
    pub strides: Vec<isize>,
    /// Offset in elements.
    pub offset: isize,
}

/// The reductions a row kernel computes, with the input shape and axes they share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowGroup {
    /// Reduce nodes, in program order.
    pub members: Vec<usize>,
    /// The shape of their inputs.
    pub input_shape: Vec<usize>,
    /// The reduced axes.
    pub axes: Vec<usize>,
}

/// What kind of kernel computes a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// One thread per output element.
    Elementwise,
    /// Reductions over rows with their producers, and the root (the last reduction or an
    /// elementwise consumer of the same rows).
    Row(RowGroup),
    /// One reduction over rows longer than one workgroup reduces: several passes.
    LongReduce,
    /// argmax/argmin along an axis.
    ArgReduce,
    /// cumsum/cumprod along an axis.
    Scan,
    /// A matmul (`mm`) of two views, with the root as its elementwise epilogue.
    Matmul {
        /// The matmul node.
        mm: usize,
        /// The left operand.
        a: View,
        /// The right operand.
        b: View,
    },
    /// A recurrent loop run as GPU loop kernels (`kernels::recurrence`), writing every output
    /// of the loop the program reads; the root is the first of them.
    Loop {
        /// The outputs the program reads, as `(output index, node)`.
        outputs: Vec<(usize, usize)>,
    },
    /// An output of a loop that another kernel (`Loop`, rooted at `leader`) writes: nothing to
    /// dispatch.
    LoopOutput {
        /// The loop's first output node.
        leader: usize,
    },
    /// A convolution (`conv`, whose inputs have buffers), with the root as its elementwise
    /// epilogue: an implicit GEMM or a direct window kernel (`kernels::conv`).
    Conv {
        /// The convolution node.
        conv: usize,
    },
}

/// One kernel of the plan (it may dispatch several passes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelPlan {
    /// The node it writes.
    pub root: usize,
    /// How it computes it.
    pub kind: KernelKind,
}

/// The kernels of a program, in execution order, and the nodes that have buffers.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Kernels in an order where each runs after the kernels it reads from.
    pub kernels: Vec<KernelPlan>,
    /// Nodes with buffers: leaves, kernel outputs.
    pub materialized: BTreeSet<usize>,
}

type Map = Vec<Label>;

/// Whether a non-fused node reached in a region is computed inside the kernel: `None` means it
/// needs a buffer; `Some(Some(m))`, computed in registers with its input read at labels `m`;
/// `Some(None)`, computed in registers from outside the region (a matmul's accumulator).
type RegisterRule<'a> = dyn Fn(usize, &[Map]) -> Option<Option<Map>> + 'a;
type ReduceKey = (Vec<usize>, Vec<usize>);

struct Planner<'a> {
    prog: &'a Program,
    shapes: &'a [Vec<usize>],
    consumers: Vec<usize>,
    max_reads: usize,
    /// Whether matmul operands may be fused regions (GPUs, whose tiled matmul reads each
    /// element of A once per tile; the streaming matmul of CPU-hosted adapters reads it once
    /// per thread, where a buffer is cheaper).
    fuse_operands: bool,
}

/// What a region analysis found: nodes to give buffers, the buffers read.
#[derive(Default)]
struct Region {
    need: BTreeSet<usize>,
    reads: BTreeSet<usize>,
    nodes: Vec<usize>,
}

fn distinct_push(maps: &mut Vec<Map>, m: Map) {
    let known = m.iter().all(|l| *l != Label::Other);
    if known && maps.contains(&m) {
        return;
    }
    maps.push(m);
}

impl Planner<'_> {
    fn inner(&self, key: &ReduceKey) -> usize {
        key.1.iter().map(|&d| key.0[d]).product()
    }

    fn reduce_key(&self, n: usize) -> Option<ReduceKey> {
        match &self.prog.nodes[n].op {
            Op::Reduce { axes, .. } => Some((
                self.shapes[self.prog.nodes[n].inputs[0]].clone(),
                axes.clone(),
            )),
            _ => None,
        }
    }

    /// The labels of the operands' coordinates given an op's output labels.
    fn input_maps(&self, n: usize, out: &Map) -> Vec<(usize, Map)> {
        let node = &self.prog.nodes[n];
        let shape = &self.shapes[n];
        let ins = &node.inputs;
        let other = |len: usize| vec![Label::Other; len];
        let bcast = |from: &[usize]| -> Map {
            let off = shape.len() - from.len();
            (0..from.len())
                .map(|d| {
                    if from[d] == 1 {
                        Label::Zero
                    } else {
                        out[d + off]
                    }
                })
                .collect()
        };
        match &node.op {
            Op::Unary { .. } | Op::Cast { .. } => vec![(ins[0], out.clone())],
            Op::Binary { .. } | Op::Where | Op::BroadcastTo { .. } => {
                ins.iter().map(|&i| (i, bcast(&self.shapes[i]))).collect()
            }
            Op::Permute { perm } => {
                let mut m = vec![Label::Zero; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    m[p] = out[i];
                }
                vec![(ins[0], m)]
            }
            Op::ExpandDims { .. } | Op::Squeeze { .. } | Op::Reshape { .. } => {
                let from = &self.shapes[ins[0]];
                let nz_to: Vec<usize> = (0..shape.len()).filter(|&d| shape[d] != 1).collect();
                let nz_from: Vec<usize> = (0..from.len()).filter(|&d| from[d] != 1).collect();
                let direct = nz_to.len() == nz_from.len()
                    && nz_to
                        .iter()
                        .zip(&nz_from)
                        .all(|(&a, &b)| shape[a] == from[b]);
                if direct {
                    let mut m = vec![Label::Zero; from.len()];
                    for (&a, &b) in nz_to.iter().zip(&nz_from) {
                        m[b] = out[a];
                    }
                    vec![(ins[0], m)]
                } else {
                    vec![(ins[0], other(from.len()))]
                }
            }
            Op::Slice { axes } => {
                let from = &self.shapes[ins[0]];
                let m = axes
                    .iter()
                    .enumerate()
                    .map(|(d, sl)| {
                        let (start, _, step) = sl.resolve(from[d]);
                        if from[d] == 1 {
                            Label::Zero
                        } else if start == 0 && step == 1 {
                            out[d]
                        } else {
                            Label::Other
                        }
                    })
                    .collect();
                vec![(ins[0], m)]
            }
            Op::Concat { axis } => ins
                .iter()
                .map(|&i| {
                    let mut m = out.clone();
                    m[*axis] = Label::Other;
                    (i, m)
                })
                .collect(),
            Op::Gather { axis } => {
                let rank = self.shapes[ins[1]].len();
                let mut pm = out[..*axis].to_vec();
                pm.push(Label::Other);
                pm.extend_from_slice(&out[axis + rank..]);
                vec![(ins[1], out[*axis..axis + rank].to_vec()), (ins[0], pm)]
            }
            _ => Vec::new(),
        }
    }

    /// Walks the fused region of `root` read at `root_map`, stopping at buffers and at the
    /// nodes `register` accepts (returning, for each, the labels its input is read at inside
    /// the kernel, or `None` when the node must instead get a buffer).
    fn region(
        &self,
        root: usize,
        root_map: Map,
        mat: &HashSet<usize>,
        register: &RegisterRule<'_>,
    ) -> Region {
        self.region_with(root, root_map, mat, register, MAX_ACCESSES)
    }

    /// `region`, with a node read more than `max_accesses` ways getting a buffer.
    fn region_with(
        &self,
        root: usize,
        root_map: Map,
        mat: &HashSet<usize>,
        register: &RegisterRule<'_>,
        max_accesses: usize,
    ) -> Region {
        let mut maps: HashMap<usize, Vec<Map>> = HashMap::new();
        maps.insert(root, vec![root_map]);
        let mut pending: BTreeSet<usize> = BTreeSet::new();
        pending.insert(root);
        let mut r = Region::default();
        // The parts of the concatenations fused so far: each is a branch of the kernel.
        let mut concat_parts = 0usize;
        // Nodes are numbered in topological order: the largest pending node has every one of
        // its consumers in the region done.
        while let Some(n) = pending.pop_last() {
            let ms = maps.remove(&n).unwrap_or_default();
            let node = &self.prog.nodes[n];
            if n != root && mat.contains(&n) {
                let scalar_constant = matches!(&node.op, Op::Constant(c) if c.len() == 1);
                if !scalar_constant {
                    r.reads.insert(n);
                }
                continue;
            }
            if n != root && is_leaf(&node.op) {
                continue;
            }
            let is_root_itself = n == root;
            let fused = fusible(&node.op);
            if !fused || is_root_itself {
                match register(n, &ms) {
                    Some(Some(input_map)) => {
                        r.nodes.push(n);
                        for &i in &node.inputs {
                            maps.entry(i).or_default().push(input_map.clone());
                            pending.insert(i);
                        }
                        continue;
                    }
                    Some(None) => {
                        r.nodes.push(n);
                        continue;
                    }
                    None if !fused => {
                        r.need.insert(n);
                        continue;
                    }
                    None => {}
                }
            }
            let parts = match node.op {
                Op::Concat { .. } => node.inputs.len(),
                _ => 0,
            };
            if (ms.len() > max_accesses
                || r.nodes.len() >= MAX_FUSED_NODES
                || concat_parts + parts > MAX_CONCAT_INPUTS)
                && !is_root_itself
            {
                r.need.insert(n);
                continue;
            }
            concat_parts += parts;
            r.nodes.push(n);
            for m in &ms {
                for (i, im) in self.input_maps(n, m) {
                    let e = maps.entry(i).or_default();
                    distinct_push(e, im);
                    if e.len() > max_accesses + 1 {
                        e.truncate(max_accesses + 1);
                    }
                    pending.insert(i);
                }
            }
        }
        r
    }

    fn thread_map(&self, n: usize) -> Map {
        (0..self.shapes[n].len()).map(Label::Thread).collect()
    }

    /// A strided view of `n` over a buffer, following movement ops; `Err` names the node that
    /// must get a buffer instead.
    fn view(&self, n: usize, mat: &HashSet<usize>) -> std::result::Result<View, usize> {
        let shape = &self.shapes[n];
        if mat.contains(&n) {
            let mut strides = vec![0isize; shape.len()];
            let mut acc = 1isize;
            for d in (0..shape.len()).rev() {
                strides[d] = if shape[d] == 1 { 0 } else { acc };
                acc *= shape[d] as isize;
            }
            return Ok(View {
                node: n,
                fused: false,
                strides,
                offset: 0,
            });
        }
        let node = &self.prog.nodes[n];
        let Some(&input) = node.inputs.first() else {
            return Err(n);
        };
        let from = &self.shapes[input];
        match &node.op {
            Op::Permute { perm } => {
                let v = self.view(input, mat)?;
                Ok(View {
                    strides: perm.iter().map(|&p| v.strides[p]).collect(),
                    ..v
                })
            }
            Op::BroadcastTo { .. } => {
                let v = self.view(input, mat)?;
                let off = shape.len() - from.len();
                let strides = (0..shape.len())
                    .map(|d| {
                        if d < off || from[d - off] == 1 {
                            0
                        } else {
                            v.strides[d - off]
                        }
                    })
                    .collect();
                Ok(View { strides, ..v })
            }
            Op::Slice { axes } => {
                let mut v = self.view(input, mat)?;
                for (d, sl) in axes.iter().enumerate() {
                    let (start, _, step) = sl.resolve(from[d]);
                    v.offset += start as isize * v.strides[d];
                    v.strides[d] *= step as isize;
                }
                Ok(v)
            }
            Op::Reshape { .. } | Op::ExpandDims { .. } | Op::Squeeze { .. } => {
                let nz_to: Vec<usize> = (0..shape.len()).filter(|&d| shape[d] != 1).collect();
                let nz_from: Vec<usize> = (0..from.len()).filter(|&d| from[d] != 1).collect();
                let simple = nz_to.len() == nz_from.len()
                    && nz_to
                        .iter()
                        .zip(&nz_from)
                        .all(|(&a, &b)| shape[a] == from[b]);
                if !simple {
                    return Err(n);
                }
                let v = self.view(input, mat)?;
                let mut strides = vec![0isize; shape.len()];
                for (&a, &b) in nz_to.iter().zip(&nz_from) {
                    strides[a] = v.strides[b];
                }
                Ok(View { strides, ..v })
            }
            _ => Err(n),
        }
    }

    /// A matmul operand: a strided view of a buffer, or a fused region of movement ops only
    /// (read at most `MAX_ACCESSES` ways per element), with the buffers it reads; `Err` names
    /// the nodes that must get buffers.
    fn operand(
        &self,
        n: usize,
        mat: &HashSet<usize>,
    ) -> std::result::Result<(View, BTreeSet<usize>), BTreeSet<usize>> {
        let bad = match self.view(n, mat) {
            Ok(v) => {
                let reads = [v.node].into_iter().collect();
                return Ok((v, reads));
            }
            Err(bad) => bad,
        };
        if !self.fuse_operands {
            return Err([bad].into_iter().collect());
        }
        let shape = &self.shapes[n];
        // Movement ops only, at most MAX_FUSED_OPERAND_OPS of them: the code stays small even
        // where a node is read many ways (an im2col reads its input once per kernel tap, and
        // the branching concatenation computes only one of them per element).
        let r = self.region_with(
            n,
            vec![Label::Other; shape.len()],
            mat,
            &|_, _| None,
            MAX_FUSED_OPERAND_OPS,
        );
        let fusable = r.need.is_empty()
            && r.nodes.len() <= MAX_FUSED_OPERAND_OPS
            && r.nodes
                .iter()
                .all(|&m| movement_only(&self.prog.nodes[m].op));
        if !fusable {
            return Err([bad].into_iter().collect());
        }
        let mut strides = vec![0isize; shape.len()];
        let mut acc = 1isize;
        for d in (0..shape.len()).rev() {
            strides[d] = if shape[d] == 1 { 0 } else { acc };
            acc *= shape[d] as isize;
        }
        Ok((
            View {
                node: n,
                fused: true,
                strides,
                offset: 0,
            },
            r.reads,
        ))
    }

    /// The matmul kernel writing `root` (the matmul `mm` itself or its elementwise epilogue,
    /// whose region reads `reads`), or the nodes its operands need as buffers.
    fn matmul_kernel(
        &self,
        root: usize,
        mm: usize,
        mut reads: BTreeSet<usize>,
        mat: &HashSet<usize>,
    ) -> std::result::Result<(KernelPlan, BTreeSet<usize>), BTreeSet<usize>> {
        let inputs = &self.prog.nodes[mm].inputs;
        let mut need = BTreeSet::new();
        let a = self.operand(inputs[0], mat).map_err(|n| need.extend(n));
        let b = self.operand(inputs[1], mat).map_err(|n| need.extend(n));
        match (a, b) {
            (Ok((a, ra)), Ok((b, rb))) => {
                reads.extend(ra);
                reads.extend(rb);
                Ok((
                    KernelPlan {
                        root,
                        kind: KernelKind::Matmul { mm, a, b },
                    },
                    reads,
                ))
            }
            _ => Err(need),
        }
    }

    /// The convolution kernel writing `root` (the convolution `conv` itself or its elementwise
    /// epilogue, whose region reads `reads`), or the inputs that must get buffers first.
    fn conv_kernel(
        &self,
        root: usize,
        conv: usize,
        mut reads: BTreeSet<usize>,
        mat: &HashSet<usize>,
    ) -> std::result::Result<(KernelPlan, BTreeSet<usize>), BTreeSet<usize>> {
        let inputs = &self.prog.nodes[conv].inputs;
        let mut need = BTreeSet::new();
        // The input is read once per tap: from a buffer. The kernel and bias are read as
        // matmul operands are (a buffer, or a view of one such as a depthwise kernel's
        // reshape). Arithmetic on them (a BatchNormalization folded into the kernel) gets a
        // buffer: its kernel reads weights only, so the runtime runs it once and again only
        // when a weight changes, not at every read.
        if !mat.contains(&inputs[0]) {
            need.insert(inputs[0]);
        }
        for &w in &inputs[1..] {
            match self.operand(w, mat) {
                Ok((_, r)) => reads.extend(r),
                Err(n) => need.extend(n),
            }
        }
        if !need.is_empty() {
            return Err(need);
        }
        reads.insert(inputs[0]);
        Ok((
            KernelPlan {
                root,
                kind: KernelKind::Conv { conv },
            },
            reads,
        ))
    }

    /// The kernel that computes `root`, or the nodes that must get buffers first.
    fn decide(
        &self,
        root: usize,
        mat: &HashSet<usize>,
    ) -> std::result::Result<(KernelPlan, BTreeSet<usize>), BTreeSet<usize>> {
        let node = &self.prog.nodes[root];
        let fail = |need: BTreeSet<usize>| Err(need);
        let done = |kind: KernelKind, r: Region| -> std::result::Result<_, BTreeSet<usize>> {
            if !r.need.is_empty() {
                return Err(r.need);
            }
            Ok((KernelPlan { root, kind }, r.reads))
        };
        let no_register = |_: usize, _: &[Map]| None;
        match &node.op {
            Op::MatMul => self.matmul_kernel(root, root, BTreeSet::new(), mat),
            Op::Conv { .. } => self.conv_kernel(root, root, BTreeSet::new(), mat),
            Op::Recurrence { spec, .. } => {
                let outputs = loop_outputs(self.prog, root, spec);
                let leader = outputs.iter().map(|o| o.1).min().unwrap_or(root);
                if leader != root {
                    return Ok((
                        KernelPlan {
                            root,
                            kind: KernelKind::LoopOutput { leader },
                        },
                        [leader].into_iter().collect(),
                    ));
                }
                let inputs = &node.inputs;
                let need: BTreeSet<usize> = inputs
                    .iter()
                    .copied()
                    .filter(|i| !mat.contains(i))
                    .collect();
                if !need.is_empty() {
                    return Err(need);
                }
                Ok((
                    KernelPlan {
                        root,
                        kind: KernelKind::Loop { outputs },
                    },
                    inputs.iter().copied().collect(),
                ))
            }
            Op::Reduce { .. } => {
                let key = self.reduce_key(root).unwrap_or_default();
                if self.inner(&key) > COOP_MAX {
                    let input_map = self.reduction_input_map(&key);
                    let r = self.region(root, self.thread_map(root), mat, &|n, _| {
                        (n == root).then(|| Some(input_map.clone()))
                    });
                    return done(KernelKind::LongReduce, r);
                }
                self.row_kernel(root, key, mat)
            }
            Op::ArgReduce { .. } | Op::Scan { .. } => {
                let r = self.region(root, self.thread_map(root), mat, &|n, _| {
                    (n == root).then(|| {
                        Some(vec![
                            Label::Other;
                            self.shapes[self.prog.nodes[n].inputs[0]].len()
                        ])
                    })
                });
                let kind = if matches!(node.op, Op::Scan { .. }) {
                    KernelKind::Scan
                } else {
                    KernelKind::ArgReduce
                };
                done(kind, r)
            }
            op if fusible(op) => {
                let r = self.region(root, self.thread_map(root), mat, &no_register);
                if r.need.is_empty() {
                    return done(KernelKind::Elementwise, r);
                }
                let need = r.need;
                let matmuls: Vec<usize> = need
                    .iter()
                    .copied()
                    .filter(|&n| matches!(self.prog.nodes[n].op, Op::MatMul | Op::Conv { .. }))
                    .collect();
                let reduces: Vec<usize> = need
                    .iter()
                    .copied()
                    .filter(|&n| {
                        self.reduce_key(n)
                            .is_some_and(|k| self.inner(&k) <= COOP_MAX)
                    })
                    .collect();
                // A matmul or convolution whose only reader is this elementwise root: its
                // epilogue.
                if let [mm] = matmuls.as_slice()
                    && need.len() == 1
                    && self.shapes[*mm] == self.shapes[root]
                    && self.consumers[*mm] == 1
                {
                    let mm = *mm;
                    let want: Vec<Option<usize>> = (0..self.shapes[mm].len())
                        .map(|d| (self.shapes[mm][d] != 1).then_some(d))
                        .collect();
                    let r = self.region(root, self.thread_map(root), mat, &|n, ms| {
                        (n == mm && ms.iter().all(|m| matches_register(m, &want))).then_some(None)
                    });
                    if r.need.is_empty() {
                        return match self.prog.nodes[mm].op {
                            Op::Conv { .. } => self.conv_kernel(root, mm, r.reads, mat),
                            _ => self.matmul_kernel(root, mm, r.reads, mat),
                        };
                    }
                }
                // The row domain that absorbs the most reductions.
                let mut counts: HashMap<ReduceKey, usize> = HashMap::new();
                for &r in &reduces {
                    if let Some(k) = self.reduce_key(r) {
                        *counts.entry(k).or_insert(0) += 1;
                    }
                }
                let best = counts
                    .into_iter()
                    .filter(|(k, _)| self.row_compatible(root, k))
                    .max_by_key(|(k, c)| (*c, std::cmp::Reverse(k.clone())))
                    .map(|(k, _)| k);
                match best {
                    Some(key) => self.row_kernel(root, key, mat),
                    None => fail(need),
                }
            }
            _ => fail([root].into_iter().collect()),
        }
    }

    /// The labels of a reduction's input inside a row kernel: kept axes are the thread's,
    /// reduced ones loop.
    fn reduction_input_map(&self, key: &ReduceKey) -> Map {
        (0..key.0.len())
            .map(|d| {
                if key.1.contains(&d) {
                    Label::Other
                } else if key.0[d] == 1 {
                    Label::Zero
                } else {
                    Label::Thread(d)
                }
            })
            .collect()
    }

    fn row_kernel(
        &self,
        root: usize,
        key: ReduceKey,
        mat: &HashSet<usize>,
    ) -> std::result::Result<(KernelPlan, BTreeSet<usize>), BTreeSet<usize>> {
        let input_map = self.reduction_input_map(&key);
        let root_is_reduce = self.reduce_key(root).as_ref() == Some(&key);
        // An elementwise consumer over the same rows loops over the reduced axes as the
        // reductions do.
        let root_map: Map = if root_is_reduce {
            self.thread_map(root)
        } else {
            input_map.clone()
        };
        let register = |n: usize, ms: &[Map]| -> Option<Option<Map>> {
            if self.reduce_key(n).as_ref() != Some(&key) {
                return None;
            }
            if n == root {
                return Some(Some(input_map.clone()));
            }
            let want = self.register_axes(n, &key);
            ms.iter()
                .all(|m| matches_register(m, &want))
                .then(|| Some(input_map.clone()))
        };
        let r = self.region(root, root_map, mat, &register);
        if !r.need.is_empty() {
            return Err(r.need);
        }
        let mut members: Vec<usize> = r
            .nodes
            .iter()
            .copied()
            .filter(|&n| self.reduce_key(n).as_ref() == Some(&key))
            .collect();
        members.sort_unstable();
        Ok((
            KernelPlan {
                root,
                kind: KernelKind::Row(RowGroup {
                    members,
                    input_shape: key.0,
                    axes: key.1,
                }),
            },
            r.reads,
        ))
    }

    /// The thread coordinate each axis of a reduction's output must be read at.
    fn register_axes(&self, n: usize, key: &ReduceKey) -> Vec<Option<usize>> {
        let (s, axes) = key;
        let keepdims = matches!(self.prog.nodes[n].op, Op::Reduce { keepdims: true, .. });
        if keepdims {
            (0..s.len())
                .map(|d| (!axes.contains(&d) && s[d] != 1).then_some(d))
                .collect()
        } else {
            (0..s.len())
                .filter(|d| !axes.contains(d))
                .map(|d| (s[d] != 1).then_some(d))
                .collect()
        }
    }

    fn row_compatible(&self, root: usize, key: &ReduceKey) -> bool {
        let o = &self.shapes[root];
        let (s, axes) = key;
        o.len() == s.len() && (0..s.len()).all(|d| axes.contains(&d) || o[d] == s[d])
    }
}

/// The outputs of the loop that node `n` (a recurrence output) belongs to, as `(output index,
/// node)`: every recurrence node of the program with the same loop and inputs.
pub fn loop_outputs(
    prog: &Program,
    n: usize,
    spec: &std::sync::Arc<lamina_graph::ops::RecurrenceSpec>,
) -> Vec<(usize, usize)> {
    let inputs = &prog.nodes[n].inputs;
    prog.nodes
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match &m.op {
            Op::Recurrence { spec: s, output }
                if std::sync::Arc::ptr_eq(s, spec) && &m.inputs == inputs =>
            {
                Some((*output, i))
            }
            _ => None,
        })
        .collect()
}

/// Whether coordinates with labels `m` are the ones a register wanting `want` holds.
pub fn matches_register(m: &[Label], want: &[Option<usize>]) -> bool {
    m.len() == want.len()
        && want.iter().zip(m).all(|(w, l)| match w {
            Some(k) => *l == Label::Thread(*k),
            None => true,
        })
}

/// The most buffers one kernel reads on a device binding `max_storage` storage buffers per
/// kernel (one is the output; one is kept spare for a multi-pass kernel's scratch).
pub fn max_reads(max_storage: u32) -> usize {
    (max_storage as usize)
        .saturating_sub(2)
        .clamp(2, MAX_CONCAT_INPUTS)
}

/// Partitions `prog` (with concrete `shapes`) into kernels binding at most `max_storage`
/// storage buffers each (one of them the output). `gpu_shaped` (a GPU rather than a
/// CPU-hosted adapter) lets matmuls compute operands made of movement ops where they read them
/// (implicit GEMM for an im2col).
pub fn plan(
    prog: &Program,
    shapes: &[Vec<usize>],
    max_storage: u32,
    gpu_shaped: bool,
) -> Result<Plan> {
    let mut consumers = vec![0usize; prog.nodes.len()];
    for n in &prog.nodes {
        for &i in &n.inputs {
            consumers[i] += 1;
        }
    }
    let planner = Planner {
        prog,
        shapes,
        consumers,
        max_reads: max_reads(max_storage),
        fuse_operands: gpu_shaped,
    };
    let mut mat: HashSet<usize> = prog
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| is_leaf(&n.op))
        .map(|(i, _)| i)
        .collect();
    mat.extend(prog.outputs.iter().copied());
    loop {
        let mut work: Vec<usize> = mat.iter().copied().collect();
        work.sort_unstable();
        let mut decided: HashMap<usize, KernelPlan> = HashMap::new();
        let mut changed = false;
        while let Some(root) = work.pop() {
            if decided.contains_key(&root) || is_leaf(&prog.nodes[root].op) {
                continue;
            }
            match planner.decide(root, &mat) {
                Ok((k, reads)) if reads.len() > planner.max_reads => {
                    // Give the fused node reading the most buffers a buffer of its own.
                    let _ = k;
                    match split_candidate(&planner, root, &mat) {
                        Some(c) => {
                            mat.insert(c);
                            changed = true;
                            work.push(root);
                            work.push(c);
                        }
                        None => {
                            return Err(prog.nodes[root].attribute(Error::Backend {
                                backend: "gpu".into(),
                                detail: format!(
                                    "op {} reads {} buffers, more than the device's {} storage buffers per kernel allow",
                                    prog.nodes[root].op.name(),
                                    reads.len(),
                                    max_storage
                                ),
                            }));
                        }
                    }
                }
                Ok((k, reads)) => {
                    for r in reads {
                        if mat.insert(r) {
                            changed = true;
                        }
                        work.push(r);
                    }
                    decided.insert(root, k);
                }
                Err(need) => {
                    let mut progressed = false;
                    for n in need {
                        if n != root && mat.insert(n) {
                            progressed = true;
                        }
                        work.push(n);
                    }
                    if !progressed {
                        return Err(prog.nodes[root].attribute(Error::Backend {
                            backend: "gpu".into(),
                            detail: format!("no kernel for op {}", prog.nodes[root].op.name()),
                        }));
                    }
                    changed = true;
                    work.push(root);
                }
            }
        }
        // Decisions made before a later one gave a node inside their region a buffer are
        // made again, until nothing changes.
        let stale = decided.iter().any(|(&root, k)| {
            planner
                .decide(root, &mat)
                .map(|(k2, reads)| k2 != *k || reads.len() > planner.max_reads)
                .unwrap_or(true)
        });
        if !changed || !stale {
            let mut kernels: Vec<KernelPlan> = decided.into_values().collect();
            kernels.sort_by_key(|k| k.root);
            return Ok(Plan {
                kernels,
                materialized: mat.into_iter().collect(),
            });
        }
    }
}

/// A node inside `root`'s fused region to give its own buffer so that fewer buffers are
/// bound: the one reading the most buffers while still fitting.
fn split_candidate(p: &Planner<'_>, root: usize, mat: &HashSet<usize>) -> Option<usize> {
    let mut reads: HashMap<usize, BTreeSet<usize>> = HashMap::new();
    let mut region: Vec<usize> = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = p.prog.nodes[root].inputs.clone();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) || mat.contains(&n) || is_leaf(&p.prog.nodes[n].op) {
            continue;
        }
        region.push(n);
        stack.extend(p.prog.nodes[n].inputs.iter().copied());
    }
    region.sort_unstable();
    for &n in &region {
        let mut set = BTreeSet::new();
        for &i in &p.prog.nodes[n].inputs {
            match reads.get(&i) {
                Some(s) => set.extend(s.iter().copied()),
                None => {
                    set.insert(i);
                }
            }
        }
        reads.insert(n, set);
    }
    region
        .iter()
        .filter(|n| reads[n].len() <= p.max_reads)
        .max_by_key(|n| (reads[n].len(), **n))
        .copied()
}
