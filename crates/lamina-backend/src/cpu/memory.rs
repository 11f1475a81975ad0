//! The CPU interpreter's memory plan: the buffers a run allocates and frees, in the order the
//! interpreter does, so that the peak can be checked against the budget before anything runs.

use super::fused::FusedKernel;
use crate::budget::{MemoryPlan, PlanBuilder, tensor_bytes};
use lamina_graph::Program;
use lamina_graph::op::Op;
use std::collections::HashSet;

/// Whether a node's value is its input's buffer under another shape (no allocation).
pub fn is_view(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape { .. } | Op::ExpandDims { .. } | Op::Squeeze { .. }
    )
}

/// Whether a node's buffer is kept between runs to be written over by the next one.
pub fn is_recycled(op: &Op, fused: bool) -> bool {
    fused || matches!(op, Op::Gather { .. } | Op::Conv { .. } | Op::MatMul)
}

/// Bytes an op holds only while it computes: broadcast operands copied to the output's shape,
/// transposes made before reductions and scans over other than the last axis, and a
/// convolution's blocks of patches.
pub fn scratch(prog: &Program, shapes: &[Vec<usize>], n: usize) -> u64 {
    let node = &prog.nodes[n];
    let out = &shapes[n];
    let input = |k: usize| &shapes[node.inputs[k]];
    match &node.op {
        Op::Binary { .. } | Op::Where => node
            .inputs
            .iter()
            .map(|&m| &shapes[m])
            .filter(|s| *s != out && s.iter().product::<usize>() > 1)
            .fold(0u64, |acc, _| acc.saturating_add(tensor_bytes(out))),
        Op::Reduce { axes, .. } => {
            let s = input(0);
            let trailing = axes
                .iter()
                .enumerate()
                .all(|(i, &a)| a + axes.len() == s.len() + i);
            if trailing { 0 } else { tensor_bytes(s) }
        }
        Op::ArgReduce { axis, .. } if axis + 1 != input(0).len() => tensor_bytes(input(0)),
        Op::Scan { axis, .. } if axis + 1 != input(0).len() => {
            tensor_bytes(input(0)).saturating_mul(2)
        }
        Op::Conv { spec } => {
            super::conv::scratch_bytes(input(0), &shapes[node.inputs[1]], out, spec)
        }
        Op::Recurrence { spec, .. } => {
            // The input projection of every step (made first for long input rows), and that
            // of a few steps at a time.
            let s = input(0);
            let rows = s.iter().take(2).product::<usize>();
            let steps = s
                .get(1)
                .map_or(1, |&t| t.min(super::recurrence::PROJECTED_STEPS));
            let few = s.first().map_or(0, |&b| b.saturating_mul(steps));
            tensor_bytes(&[rows.saturating_add(few), spec.cell.gates() * spec.units])
        }
        _ => 0,
    }
}

/// Replays a run of the interpreter: every computed node's buffer from the step that makes it
/// to the step after its last reader (outputs to the end), views sharing their input's buffer,
/// and the buffers kept for reuse between runs (fused regions, lookups) never freed.
pub fn plan(
    prog: &Program,
    shapes: &[Vec<usize>],
    fused: &[Option<FusedKernel>],
    internal: &HashSet<usize>,
    uses: &[usize],
) -> MemoryPlan {
    let input_shapes: Vec<Vec<usize>> = prog.inputs.iter().map(|&i| shapes[i].clone()).collect();
    let mut b = PlanBuilder::new(shapes, &input_shapes);
    let n = prog.nodes.len();
    let mut owner: Vec<usize> = (0..n).collect();
    let mut refs = vec![0usize; n];
    let mut uses = uses.to_vec();
    let release = |j: usize, owner: &[usize], refs: &mut [usize], b: &mut PlanBuilder| {
        let o = owner[j];
        refs[o] = refs[o].saturating_sub(1);
        if refs[o] == 0 && !is_recycled(&prog.nodes[o].op, fused[o].is_some()) {
            b.free(o);
        }
    };
    // Kernel transforms kept between runs, held from the first convolution that makes each.
    let mut kept_kernels: HashSet<usize> = HashSet::new();
    for (i, node) in prog.nodes.iter().enumerate() {
        if internal.contains(&i) {
            continue;
        }
        let input = |k: usize| shapes[node.inputs[k]].as_slice();
        let kept: Vec<(usize, u64)> = match (&fused[i], &node.op) {
            (Some(k), _) => k.kept_kernel().into_iter().collect(),
            (None, Op::Conv { spec }) => {
                let bytes = super::conv::kept_bytes(input(0), input(1), &shapes[i], spec);
                (bytes > 0)
                    .then(|| (node.inputs[1], bytes))
                    .into_iter()
                    .collect()
            }
            (None, Op::Recurrence { spec, .. }) => {
                let f = input(0).last().copied().unwrap_or(0);
                super::recurrence::kept_bytes(spec, f, [node.inputs[1], node.inputs[2]])
            }
            _ => Vec::new(),
        };
        for (weight, bytes) in kept {
            if kept_kernels.insert(weight) {
                b.keep(weight, bytes);
            }
        }
        match &node.op {
            // The caller's inputs and the model's weights are held already.
            Op::Input { .. } | Op::Constant(_) | Op::Variable(_) => {}
            op if is_view(op) && fused[i].is_none() => owner[i] = owner[node.inputs[0]],
            _ => {
                let fused_scratch = fused[i].as_ref().map_or(0, |k| k.scratch_bytes());
                let held = scratch(prog, shapes, i).saturating_add(fused_scratch);
                b.alloc(i, tensor_bytes(&shapes[i]), held)
            }
        }
        refs[owner[i]] += 1;
        let reads: &[usize] = match &fused[i] {
            Some(k) => &k.reads,
            None => &node.inputs,
        };
        for &j in reads {
            uses[j] = uses[j].saturating_sub(1);
            if uses[j] == 0 {
                release(j, &owner, &mut refs, &mut b);
            }
        }
    }
    b.finish()
}

/// Asks the allocator for the bytes node `n` is about to need (its output, its scratch and
/// `extra`, a fused region's own) and
/// gives them back at once: where the machine cannot provide them (memory exhausted, an
/// address-space limit), the run stops with an `Error::Memory` naming the op instead of the
/// process aborting inside the kernel's own allocation.
pub fn probe(
    prog: &Program,
    shapes: &[Vec<usize>],
    n: usize,
    extra: u64,
) -> lamina_graph::Result<()> {
    let bytes = tensor_bytes(&shapes[n])
        .saturating_add(scratch(prog, shapes, n))
        .saturating_add(extra);
    let fits = usize::try_from(bytes)
        .ok()
        .is_some_and(|b| Vec::<u8>::new().try_reserve_exact(b).is_ok());
    if fits {
        return Ok(());
    }
    let node = &prog.nodes[n];
    Err(node.attribute(lamina_graph::Error::Memory {
        backend: "cpu".into(),
        needed: bytes,
        limit: 0,
        detail: format!(
            "the machine could not provide {} for op {} of shape {:?} ({}); use smaller inputs \
             or free memory",
            crate::budget::human(bytes),
            node.op.name(),
            shapes[n],
            node.dtype
        ),
    }))
}
