//! Kernel builders: each kind of kernel of the plan lowered to the IR (one or several passes)
//! and rendered to WGSL. Elementwise kernels run one thread per element; reductions run one
//! thread per short row, one workgroup per row up to `COOP_MAX` elements, and several passes
//! beyond; scans run in chunks; matmuls and convolutions are built from the templates of
//! `shaders/` or, for depthwise and windowed convolutions on CPU-hosted adapters, directly.

pub mod conv;
mod elementwise;
mod matmul;
pub mod recurrence;
mod reduce;
mod scan;
mod template;

use super::ir::{Binding, BufferRef, Kernel};
use super::plan::{KernelKind, KernelPlan, Plan};
use super::render;
use lamina_graph::{Program, Result};

/// A kernel ready to dispatch.
#[derive(Clone, Debug)]
pub struct KernelCode {
    /// The WGSL source.
    pub wgsl: String,
    /// The uniform buffer's bytes (the named parameters).
    pub uniform: Vec<u8>,
    /// The storage buffers, in binding order (bindings 1..).
    pub bindings: Vec<Binding>,
    /// The program nodes whose buffers it reads.
    pub reads: Vec<usize>,
    /// The program node whose value it computes (or a pass towards it).
    pub output: usize,
    /// How many workgroups it needs (before folding onto a 2-D grid).
    pub workgroups: u64,
    /// A short description for statistics and errors.
    pub kind: &'static str,
    /// The IR it was rendered from.
    pub ir: Kernel,
}

/// A run of kernels dispatched again and again: the step of a recurrent loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repeat {
    /// The kernels (indices into `Compiled::kernels`), dispatched in order each time.
    pub kernels: std::ops::Range<usize>,
    /// How many times.
    pub times: usize,
}

/// A program's kernels and the scratch buffers (bytes each) their passes share.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The kernels, in dispatch order.
    pub kernels: Vec<KernelCode>,
    /// Sizes of the scratch buffers, by `BufferRef::Scratch` number.
    pub scratch: Vec<u64>,
    /// The runs of kernels dispatched more than once (each run of `kernels` in order, the runs
    /// disjoint and in order).
    pub repeats: Vec<Repeat>,
}

/// Hands out scratch buffers for the passes of multi-pass kernels.
#[derive(Default)]
pub struct Scratch {
    sizes: Vec<u64>,
}

impl Scratch {
    /// A new scratch buffer of `elements` 32-bit words.
    pub fn alloc(&mut self, elements: usize) -> BufferRef {
        self.sizes.push((elements.max(1) * 4) as u64);
        BufferRef::Scratch(self.sizes.len() - 1)
    }
}

fn finish(mut k: Kernel, output: usize, f16_storage: bool) -> KernelCode {
    k.f16_storage = f16_storage;
    let wgsl = render::render(&k);
    let reads = k
        .bindings
        .iter()
        .filter(|b| !b.writable)
        .filter_map(|b| match b.buffer {
            BufferRef::Node(n) => Some(n),
            BufferRef::Scratch(_) => None,
        })
        .collect();
    KernelCode {
        wgsl,
        uniform: render::uniform_bytes(&k),
        bindings: k.bindings.clone(),
        reads,
        output,
        workgroups: k.workgroups,
        kind: k.kind,
        ir: k,
    }
}

/// Lowers and renders every kernel of a plan. `shared_memory_matmul` says the adapter is a
/// GPU: matmuls tile through workgroup memory and rows of more than `THREAD_ROW_MAX` elements
/// are reduced by whole workgroups; on CPU-hosted adapters (where barriers are expensive)
/// matmuls stream from global memory and rows run one thread each while their loops stay
/// short.
/// `f16_storage` stores the float32 buffers of program nodes as f16 (`Kernel::f16_storage`).
pub fn build(
    prog: &Program,
    shapes: &[Vec<usize>],
    plan: &Plan,
    shared_memory_matmul: bool,
    f16_storage: bool,
) -> Result<Compiled> {
    let mat = |n: usize| plan.materialized.contains(&n);
    let mut scratch = Scratch::default();
    let mut kernels = Vec::new();
    let mut repeats = Vec::new();
    for kp in &plan.kernels {
        if let KernelKind::Loop { outputs } = &kp.kind {
            let built = recurrent_loop(
                prog,
                shapes,
                (kp.root, outputs),
                shared_memory_matmul,
                &mut scratch,
            )?;
            let start = kernels.len() + built.body;
            kernels.extend(
                built
                    .kernels
                    .into_iter()
                    .map(|k| finish(k, kp.root, f16_storage)),
            );
            repeats.push(Repeat {
                kernels: start..kernels.len(),
                times: built.steps,
            });
            continue;
        }
        let ks = kernel(prog, shapes, &mat, kp, &mut scratch, shared_memory_matmul)?;
        kernels.extend(ks.into_iter().map(|k| finish(k, kp.root, f16_storage)));
    }
    Ok(Compiled {
        kernels,
        scratch: scratch.sizes,
        repeats,
    })
}

/// Whether the GPU runs a recurrent loop as loop kernels: its activations are elementwise
/// graphs of one value (others are unrolled into the graph).
pub fn loop_activations(
    spec: &lamina_graph::ops::RecurrenceSpec,
) -> Option<(recurrence::Act, recurrence::Act)> {
    Some((
        recurrence::Act::of(&spec.activation)?,
        recurrence::Act::of(&spec.recurrent_activation)?,
    ))
}

fn recurrent_loop(
    prog: &Program,
    shapes: &[Vec<usize>],
    (root, outputs): (usize, &[(usize, usize)]),
    shared_memory: bool,
    scratch: &mut Scratch,
) -> Result<recurrence::LoopKernels> {
    let node = &prog.nodes[root];
    let lamina_graph::op::Op::Recurrence { spec, .. } = &node.op else {
        return Err(lamina_graph::Error::Backend {
            backend: "gpu".into(),
            detail: "internal: a loop kernel for another op".into(),
        });
    };
    let acts = loop_activations(spec).ok_or_else(|| {
        node.attribute(lamina_graph::Error::Backend {
            backend: "gpu".into(),
            detail: "internal: a loop with composite activations was not unrolled".into(),
        })
    })?;
    let lk = recurrence::LoopKernel {
        spec,
        inputs: &node.inputs,
        outputs,
    };
    recurrence::build(prog, shapes, &lk, acts, shared_memory, scratch)
}

fn kernel(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    kp: &KernelPlan,
    scratch: &mut Scratch,
    shared_memory_matmul: bool,
) -> Result<Vec<Kernel>> {
    match &kp.kind {
        KernelKind::Elementwise => Ok(vec![elementwise::build(
            prog,
            shapes,
            mat,
            kp.root,
            shared_memory_matmul,
        )?]),
        KernelKind::Row(group) => Ok(vec![reduce::row(
            prog,
            shapes,
            mat,
            kp.root,
            group,
            shared_memory_matmul,
        )?]),
        KernelKind::LongReduce => reduce::long(prog, shapes, mat, kp.root, scratch),
        KernelKind::ArgReduce => reduce::arg(prog, shapes, mat, kp.root, scratch),
        KernelKind::Scan => scan::build(prog, shapes, mat, kp.root, scratch),
        KernelKind::Loop { .. } | KernelKind::LoopOutput { .. } => Ok(Vec::new()),
        KernelKind::Conv { conv } => conv::build(
            prog,
            shapes,
            mat,
            &conv::ConvKernel {
                conv: *conv,
                root: kp.root,
                shared_memory: shared_memory_matmul,
            },
            scratch,
        ),
        KernelKind::Matmul { mm, a, b } => matmul::build(
            prog,
            shapes,
            mat,
            &matmul::Operands {
                mm: *mm,
                root: kp.root,
                a: a.clone(),
                b: b.clone(),
                shared_memory: shared_memory_matmul,
            },
            scratch,
        ),
    }
}
