//! Scheduling: partitions a program into kernels. Elementwise and movement ops fuse into their
//! consumers (recomputed rather than stored); reductions fuse with their producers and with an
//! elementwise consumer over the same rows; matmul takes its elementwise epilogue; only kernel
//! outputs get buffers.

use super::emit::Retry;
use super::kernels::{self, KernelCode, MatmulOperands, RowGroup, View};
use lamina_graph::op::Op;
use lamina_graph::{Error, Program, Result};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Whether an op fuses into whatever reads it (evaluated in registers, no buffer).
pub fn fusible(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(_)
            | Op::Binary(_)
            | Op::Where
            | Op::Cast(_)
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

/// Whether an op is data that lives in a buffer before any kernel runs.
pub fn is_leaf(op: &Op) -> bool {
    matches!(op, Op::Input { .. } | Op::Constant(_) | Op::Variable(_))
}

/// The kernels of a program, in execution order, and the nodes that have buffers.
pub struct Plan {
    /// Kernels in an order where each runs after the kernels it reads from.
    pub kernels: Vec<KernelCode>,
    /// Nodes with buffers: leaves, kernel outputs.
    pub materialized: BTreeSet<usize>,
}

struct Planner<'a> {
    prog: &'a Program,
    shapes: &'a [Vec<usize>],
    consumers: Vec<usize>,
    max_reads: usize,
    shared_memory_matmul: bool,
}

type ReduceKey = (Vec<usize>, Vec<usize>);

impl Planner<'_> {
    fn reduce_key(&self, n: usize) -> Option<ReduceKey> {
        match &self.prog.nodes[n].op {
            Op::Reduce { axes, .. } => Some((
                self.shapes[self.prog.nodes[n].inputs[0]].clone(),
                axes.clone(),
            )),
            _ => None,
        }
    }

    /// Non-fusible, non-materialized nodes reachable from `start` through fusible nodes.
    fn boundary(&self, start: &[usize], mat: &HashSet<usize>) -> Vec<usize> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut stack: Vec<usize> = start.to_vec();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) || mat.contains(&n) {
                continue;
            }
            if fusible(&self.prog.nodes[n].op) {
                stack.extend(self.prog.nodes[n].inputs.iter().copied());
            } else {
                out.push(n);
            }
        }
        out.sort_unstable();
        out
    }

    /// The reductions of key `key` reachable from `start` through fusible nodes and through
    /// those reductions' inputs; and the other non-fusible nodes met on the way.
    fn group(
        &self,
        start: &[usize],
        key: &ReduceKey,
        mat: &HashSet<usize>,
    ) -> (Vec<usize>, Vec<usize>) {
        let mut seen = HashSet::new();
        let (mut members, mut others) = (Vec::new(), Vec::new());
        let mut stack: Vec<usize> = start.to_vec();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) || mat.contains(&n) {
                continue;
            }
            let op = &self.prog.nodes[n].op;
            if fusible(op) {
                stack.extend(self.prog.nodes[n].inputs.iter().copied());
            } else if self.reduce_key(n).as_ref() == Some(key) {
                members.push(n);
                stack.extend(self.prog.nodes[n].inputs.iter().copied());
            } else {
                others.push(n);
            }
        }
        members.sort_unstable();
        others.sort_unstable();
        (members, others)
    }

    fn row_compatible(&self, root: usize, key: &ReduceKey) -> bool {
        let o = &self.shapes[root];
        let (s, axes) = key;
        o.len() == s.len() && (0..s.len()).all(|d| axes.contains(&d) || o[d] == s[d])
    }

    /// A strided view of `n` over a buffer, following movement ops.
    fn view(&self, n: usize, mat: &HashSet<usize>) -> std::result::Result<View, Retry> {
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
                strides,
                offset: 0,
            });
        }
        let node = &self.prog.nodes[n];
        let input = node.inputs.first().copied();
        let sub = |p: &Planner<'_>| match input {
            Some(i) => p.view(i, mat),
            None => Err(Retry::Materialize(vec![n])),
        };
        match &node.op {
            Op::Permute { perm } => {
                let v = sub(self)?;
                Ok(View {
                    strides: perm.iter().map(|&p| v.strides[p]).collect(),
                    ..v
                })
            }
            Op::ExpandDims { axis } => {
                let mut v = sub(self)?;
                v.strides.insert(*axis, 0);
                Ok(v)
            }
            Op::Squeeze { axes } => {
                let v = sub(self)?;
                let strides = v
                    .strides
                    .iter()
                    .enumerate()
                    .filter(|(d, _)| !axes.contains(d))
                    .map(|(_, &s)| s)
                    .collect();
                Ok(View { strides, ..v })
            }
            Op::BroadcastTo { .. } => {
                let from = &self.shapes[node.inputs[0]];
                let v = sub(self)?;
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
                let from = &self.shapes[node.inputs[0]];
                let mut v = sub(self)?;
                for (d, sl) in axes.iter().enumerate() {
                    let (start, _, step) = sl.resolve(from[d]);
                    v.offset += start as isize * v.strides[d];
                    v.strides[d] *= step as isize;
                }
                Ok(v)
            }
            Op::Reshape { .. } => {
                let from = &self.shapes[node.inputs[0]];
                let nz_to: Vec<usize> = (0..shape.len()).filter(|&d| shape[d] != 1).collect();
                let nz_from: Vec<usize> = (0..from.len()).filter(|&d| from[d] != 1).collect();
                let simple = nz_to.len() == nz_from.len()
                    && nz_to
                        .iter()
                        .zip(&nz_from)
                        .all(|(&a, &b)| shape[a] == from[b]);
                if !simple {
                    return Err(Retry::Materialize(vec![n]));
                }
                let v = sub(self)?;
                let mut strides = vec![0isize; shape.len()];
                for (&a, &b) in nz_to.iter().zip(&nz_from) {
                    strides[a] = v.strides[b];
                }
                Ok(View { strides, ..v })
            }
            _ => Err(Retry::Materialize(vec![n])),
        }
    }

    fn kernel(&self, root: usize, mat: &HashSet<usize>) -> std::result::Result<KernelCode, Retry> {
        let is_mat = |n: usize| n != root && mat.contains(&n);
        let node = &self.prog.nodes[root];
        match &node.op {
            Op::MatMul => {
                let a = self.view(node.inputs[0], mat)?;
                let b = self.view(node.inputs[1], mat)?;
                kernels::matmul(
                    self.prog,
                    self.shapes,
                    &is_mat,
                    root,
                    root,
                    &MatmulOperands {
                        a,
                        b,
                        shared_memory: self.shared_memory_matmul,
                    },
                )
            }
            Op::Reduce { .. } => {
                let key = self.reduce_key(root).unwrap_or_default();
                let (mut members, others) = self.group(&node.inputs, &key, mat);
                if !others.is_empty() {
                    return Err(Retry::Materialize(others));
                }
                members.push(root);
                let group = RowGroup {
                    members,
                    input_shape: key.0,
                    axes: key.1,
                };
                kernels::row(self.prog, self.shapes, &is_mat, root, &group)
            }
            Op::ArgReduce { .. } => kernels::arg_reduce(self.prog, self.shapes, &is_mat, root),
            Op::Scan { .. } => kernels::scan(self.prog, self.shapes, &is_mat, root),
            op if fusible(op) => {
                let boundary = self.boundary(&node.inputs, mat);
                if boundary.is_empty() {
                    return kernels::elementwise(self.prog, self.shapes, &is_mat, root);
                }
                let matmuls: Vec<usize> = boundary
                    .iter()
                    .copied()
                    .filter(|&n| matches!(self.prog.nodes[n].op, Op::MatMul))
                    .collect();
                let reduces: Vec<usize> = boundary
                    .iter()
                    .copied()
                    .filter(|&n| self.reduce_key(n).is_some())
                    .collect();
                let rest: Vec<usize> = boundary
                    .iter()
                    .copied()
                    .filter(|n| !matmuls.contains(n) && !reduces.contains(n))
                    .collect();
                if !rest.is_empty() {
                    return Err(Retry::Materialize(rest));
                }
                if let [mm] = matmuls.as_slice() {
                    let mm = *mm;
                    if reduces.is_empty()
                        && self.shapes[mm] == self.shapes[root]
                        && self.consumers[mm] == 1
                    {
                        let a = self.view(self.prog.nodes[mm].inputs[0], mat)?;
                        let b = self.view(self.prog.nodes[mm].inputs[1], mat)?;
                        return kernels::matmul(
                            self.prog,
                            self.shapes,
                            &is_mat,
                            mm,
                            root,
                            &MatmulOperands {
                                a,
                                b,
                                shared_memory: self.shared_memory_matmul,
                            },
                        );
                    }
                }
                if !matmuls.is_empty() {
                    return Err(Retry::Materialize(matmuls));
                }
                // Choose the row domain that absorbs the most reductions.
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
                let Some(key) = best else {
                    return Err(Retry::Materialize(reduces));
                };
                let (members, others) = self.group(&node.inputs, &key, mat);
                if !others.is_empty() {
                    return Err(Retry::Materialize(others));
                }
                let group = RowGroup {
                    members,
                    input_shape: key.0,
                    axes: key.1,
                };
                kernels::row(self.prog, self.shapes, &is_mat, root, &group)
            }
            _ => Err(Retry::Materialize(vec![root])),
        }
    }

    /// A node inside `root`'s fused region to give its own buffer so that fewer buffers are
    /// bound: the one reading the most buffers while still fitting.
    fn split_candidate(&self, root: usize, mat: &HashSet<usize>) -> Option<usize> {
        let mut reads: HashMap<usize, BTreeSet<usize>> = HashMap::new();
        // Post-order over the region (nodes have smaller indices than their consumers).
        let mut region: Vec<usize> = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = self.prog.nodes[root].inputs.clone();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) || mat.contains(&n) || is_leaf(&self.prog.nodes[n].op) {
                continue;
            }
            region.push(n);
            stack.extend(self.prog.nodes[n].inputs.iter().copied());
        }
        region.sort_unstable();
        for &n in &region {
            let mut set = BTreeSet::new();
            for &i in &self.prog.nodes[n].inputs {
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
            .filter(|n| reads[n].len() < self.max_reads)
            .max_by_key(|n| (reads[n].len(), **n))
            .copied()
    }
}

/// Partitions `prog` (with concrete `shapes`) into kernels, binding at most `max_storage`
/// storage buffers per kernel. `shared_memory_matmul` picks the matmul tiled through
/// workgroup memory (for GPUs) over the one streaming from global memory (for CPU-hosted
/// adapters, where barriers are expensive).
///
/// The WGSL emitter recurses once per fused value (up to `MAX_VALUES_PER_KERNEL` deep), so the
/// planning runs on a thread of its own with a stack sized for that, whatever stack the caller
/// has.
pub fn plan(
    prog: &Program,
    shapes: &[Vec<usize>],
    max_storage: u32,
    shared_memory_matmul: bool,
) -> Result<Plan> {
    const STACK: usize = 64 << 20;
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("lamina-plan".into())
            .stack_size(STACK)
            .spawn_scoped(scope, || {
                plan_here(prog, shapes, max_storage, shared_memory_matmul)
            })
            .map_err(|e| Error::Backend {
                backend: "gpu".into(),
                detail: format!("cannot start the planning thread: {e}"),
            })?
            .join()
            .map_err(|payload| Error::Backend {
                backend: "gpu".into(),
                detail: format!(
                    "planning the kernels panicked: {}",
                    lamina_graph::error::panic_message(payload.as_ref())
                ),
            })?
    })
}

fn plan_here(
    prog: &Program,
    shapes: &[Vec<usize>],
    max_storage: u32,
    shared_memory_matmul: bool,
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
        max_reads: (max_storage as usize).saturating_sub(1).max(2),
        shared_memory_matmul,
    };
    let mut mat: HashSet<usize> = prog
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| is_leaf(&n.op))
        .map(|(i, _)| i)
        .collect();
    mat.extend(prog.outputs.iter().copied());
    let mut work: Vec<usize> = mat.iter().copied().collect();
    let mut built: HashMap<usize, KernelCode> = HashMap::new();
    let mut attempts = 0usize;
    while let Some(root) = work.pop() {
        if built.contains_key(&root) || is_leaf(&prog.nodes[root].op) {
            continue;
        }
        attempts += 1;
        if attempts > 20 * prog.nodes.len() + 100 {
            return Err(Error::Backend {
                backend: "gpu".into(),
                detail: "kernel planning did not converge".into(),
            });
        }
        match planner.kernel(root, &mat) {
            Ok(k) if k.reads.len() > planner.max_reads => {
                match planner.split_candidate(root, &mat) {
                    Some(c) => {
                        mat.insert(c);
                        work.push(root);
                        work.push(c);
                    }
                    None => {
                        return Err(Error::Backend {
                            backend: "gpu".into(),
                            detail: format!(
                                "op {} reads {} buffers, more than the device's {} storage buffers per kernel allow",
                                prog.nodes[root].op.name(),
                                k.reads.len(),
                                max_storage
                            ),
                        });
                    }
                }
            }
            Ok(k) => {
                for &r in &k.reads {
                    if mat.insert(r) {
                        work.push(r);
                    }
                }
                built.insert(root, k);
            }
            Err(Retry::Materialize(nodes)) => {
                let mut progressed = false;
                for n in nodes {
                    if n == root {
                        continue;
                    }
                    if mat.insert(n) {
                        progressed = true;
                    }
                    work.push(n);
                }
                if !progressed {
                    return Err(Error::Backend {
                        backend: "gpu".into(),
                        detail: format!("no kernel for op {}", prog.nodes[root].op.name()),
                    });
                }
                work.push(root);
            }
        }
    }
    let mut kernels: Vec<KernelCode> = built.into_values().collect();
    kernels.sort_by_key(|k| k.output);
    Ok(Plan {
        kernels,
        materialized: mat.into_iter().collect(),
    })
}
