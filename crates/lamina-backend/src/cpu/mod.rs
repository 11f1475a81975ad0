//! The CPU interpreter: the reference semantics of every primitive op.

mod conv;
mod conv_narrow;
mod conv_winograd;
mod elementwise;
mod fused;
mod gemv;
pub mod isa;
mod kept;
mod math;
mod matmul;
mod memory;
mod movement;
mod packed_product;
mod pair;
mod recurrence;
mod reduce;
mod scratch;
mod stream;
mod strided;
mod vector;

use crate::backend::{Backend, Executable};
use crate::budget::MemoryBudget;
use crate::passes::expand_recurrences_except;
use lamina_graph::op::Op;
use lamina_graph::ops::RecurrenceSpec;
use lamina_graph::{Error, HostData, HostTensor, Program, ProgramNode, Result};
use std::collections::HashMap;
use std::sync::Arc;

/// The CPU backend. It runs any program on any machine.
#[derive(Clone, Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    /// A CPU backend.
    pub fn new() -> Self {
        CpuBackend
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu interpreter".into()
    }

    fn compile(
        &self,
        program: &Arc<Program>,
        input_shapes: &[Vec<usize>],
        budget: &MemoryBudget,
    ) -> Result<Arc<dyn Executable>> {
        // Recurrent loops with a custom or composite activation run unrolled for this sequence
        // length; the others natively, whatever the length.
        let native = |spec: &RecurrenceSpec| recurrence::native(spec).is_some();
        let expanded = expand_recurrences_except(program, input_shapes, &native)?.map(Arc::new);
        let program = expanded.as_ref().unwrap_or(program);
        let shapes = program.specialize(input_shapes)?;
        let constants = program
            .nodes
            .iter()
            .map(|n| match &n.op {
                Op::Constant(c) => Some(c.data_arc().clone()),
                _ => None,
            })
            .collect();
        let (fused, internal) = fused::plan(program, &shapes);
        // How many later steps read each node (outputs once more), so that values are dropped
        // as soon as they are dead.
        let mut uses = vec![0usize; program.nodes.len()];
        for (i, n) in program.nodes.iter().enumerate() {
            if internal.contains(&i) {
                continue;
            }
            match &fused[i] {
                Some(k) => k.reads.iter().for_each(|&r| uses[r] += 1),
                None => n.inputs.iter().for_each(|&r| uses[r] += 1),
            }
        }
        for &o in &program.outputs {
            uses[o] += 1;
        }
        let memory = memory::plan(program, &shapes, &fused, &internal, &uses);
        budget.check("cpu", program, &memory)?;
        // The activations of each loop left for the interpreter, found once here.
        let loop_activations = program
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.op {
                Op::Recurrence { spec, .. } => recurrence::native(spec).map(|a| (i, a)),
                _ => None,
            })
            .collect();
        // Nodes computed from weights and constants alone (a BatchNormalization folded into its
        // convolution's kernel, a scale made from a variable) are computed once and kept until
        // a weight they may read changes: the ones an input-dependent node reads are cached.
        let from_inputs = crate::backend::input_dependence(program);
        let n = program.nodes.len();
        let weight_only: Vec<bool> = (0..n)
            .map(|i| {
                !from_inputs[i]
                    && !matches!(
                        program.nodes[i].op,
                        Op::Input { .. } | Op::Constant(_) | Op::Variable(_)
                    )
            })
            .collect();
        let mut cached = vec![false; n];
        for (i, node) in program.nodes.iter().enumerate() {
            if internal.contains(&i) || !from_inputs[i] {
                continue;
            }
            let reads: &[usize] = match &fused[i] {
                Some(k) => &k.reads,
                None => &node.inputs,
            };
            for &r in reads {
                cached[r] |= weight_only[r];
            }
        }
        for &o in &program.outputs {
            cached[o] |= weight_only[o];
        }
        let variables = program
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Variable(v) => Some(v.clone()),
                _ => None,
            })
            .collect();
        Ok(Arc::new(CpuExecutable {
            program: program.clone(),
            weight_only,
            keeps_weights: cached.iter().any(|&c| c),
            cached,
            variables,
            weight_values: std::sync::Mutex::new(None),
            loop_activations,
            gather_checks: program.gather_input_checks(),
            shapes,
            constants,
            fused,
            internal,
            uses,
            recycled: std::sync::Mutex::new(HashMap::new()),
            projections: std::sync::Mutex::new(HashMap::new()),
            kept_kernels: kept::KeptKernels::new(from_inputs),
        }))
    }
}

/// A program specialised for concrete input shapes on the CPU.
pub struct CpuExecutable {
    program: Arc<Program>,
    shapes: Vec<Vec<usize>>,
    /// The `take` nodes fed by model inputs, whose ids are checked on each run.
    gather_checks: Vec<lamina_graph::model::GatherInputCheck>,
    constants: Vec<Option<Arc<HostData>>>,
    /// Fused regions by root node.
    fused: Vec<Option<fused::FusedKernel>>,
    /// Nodes computed only inside fused regions (never stored).
    internal: std::collections::HashSet<usize>,
    /// Readers of each node, counted once at compile time.
    uses: Vec<usize>,
    /// The activations of each recurrent loop node the interpreter runs natively.
    loop_activations: HashMap<usize, recurrence::LoopActivations>,
    /// Buffers of fused regions from earlier runs, by node, written over when nobody else
    /// holds them (a returned output the caller has dropped, a dead intermediate).
    recycled: std::sync::Mutex<HashMap<usize, Arc<HostData>>>,
    /// Per recurrent loop node, the buffer of its input projection kept from the previous run
    /// (tens of megabytes for a long sequence, which fresh pages would make the kernel clear).
    projections: std::sync::Mutex<HashMap<usize, Vec<f32>>>,
    /// Weights in the forms kernels use (Winograd's transforms, packed panels), kept between
    /// runs.
    kept_kernels: kept::KeptKernels,
    /// Per node: computed from weights and constants alone (not a leaf).
    weight_only: Vec<bool>,
    /// Per node: a weight-only value an input-dependent node (or the output) reads, kept
    /// between runs.
    cached: Vec<bool>,
    /// Whether any node is kept (else a run skips the versions and the lock).
    keeps_weights: bool,
    /// The program's variables, whose versions say when the kept values are stale.
    variables: Vec<Arc<lamina_graph::Variable>>,
    /// The kept weight-only values, with the variable versions they were computed from.
    weight_values: std::sync::Mutex<Option<WeightValues>>,
}

/// Ops whose CPU code makes many parallel calls (a convolution's tiles and GEMMs, a
/// recurrence's steps, a product's GEMM): run as a whole on rayon's pool, see [`on_pool`].
/// Small ones (batch-1 inference), whose work stays on the caller's thread, are left there.
fn makes_many_parallel_calls(op: &Op, out_shape: &[usize]) -> bool {
    matches!(op, Op::Conv { .. } | Op::Recurrence { .. } | Op::MatMul)
        && out_shape.iter().product::<usize>() >= 1 << 13
}

/// Runs `f` on a thread of rayon's pool: the caller hands off once and sleeps until it is
/// done, where each parallel call made from outside the pool hands off (and puts the caller
/// to sleep) on its own, tens of microseconds each on the machines measured.
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

/// Weight-only values computed by an earlier run, valid while every variable keeps `versions`.
struct WeightValues {
    versions: Vec<u64>,
    values: Vec<(usize, Arc<HostData>)>,
}

impl CpuExecutable {
    fn take_recycled(&self, node: usize) -> Option<Arc<HostData>> {
        let mut map = self.recycled.lock().unwrap_or_else(|p| p.into_inner());
        let b = map.remove(&node)?;
        if Arc::strong_count(&b) == 1 {
            Some(b)
        } else {
            map.insert(node, b);
            None
        }
    }

    fn recycle(&self, node: usize, value: Option<Arc<HostData>>) {
        if let Some(v) = value
            && memory::is_recycled(&self.program.nodes[node].op, self.fused[node].is_some())
        {
            self.recycled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(node, v);
        }
    }
}

impl Executable for CpuExecutable {
    fn run(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
        let p = &self.program;
        crate::backend::check_compiled_inputs(p, &self.shapes, &self.gather_checks, inputs)?;
        let mut uses = self.uses.clone();
        let mut values = self.input_values(inputs)?;
        let mut loops = LoopOutputs::new();
        // The weight-only values of an earlier run, when no weight changed since (nothing to
        // look up in a program with none to keep).
        let (versions, kept) = self.kept_weights();
        let reuse_weights = kept.is_some();
        for (i, v) in kept.into_iter().flatten() {
            values[i] = Some(v);
        }
        let mut computed_weights = Vec::new();
        for (i, node) in p.nodes.iter().enumerate() {
            if values[i].is_some()
                || self.internal.contains(&i)
                || (reuse_weights && self.weight_only[i])
            {
                continue;
            }
            let (value, reads) = match &self.fused[i] {
                Some(k) => (self.run_fused(i, k, &values)?, k.reads.as_slice()),
                None if makes_many_parallel_calls(&node.op, &self.shapes[i]) => (
                    on_pool(|| self.compute(i, node, &values, &mut loops))?,
                    node.inputs.as_slice(),
                ),
                None => (
                    self.compute(i, node, &values, &mut loops)?,
                    node.inputs.as_slice(),
                ),
            };
            if self.cached[i] {
                computed_weights.push((i, value.clone()));
            }
            values[i] = Some(value);
            for &j in reads {
                uses[j] -= 1;
                if uses[j] == 0 {
                    self.recycle(j, values[j].take());
                }
            }
        }
        if self.keeps_weights && !reuse_weights {
            *self.weight_values.lock().unwrap_or_else(|p| p.into_inner()) = Some(WeightValues {
                versions,
                values: computed_weights,
            });
        }
        self.outputs(&mut values)
    }
}

/// Values by node: the weight-only values a run keeps.
type NodeValues = Vec<(usize, Arc<HostData>)>;

/// The outputs of each recurrent loop run so far in a run, by (loop, inputs).
type LoopOutputs = HashMap<(usize, Vec<usize>), Vec<Arc<HostData>>>;

/// The inputs of a node the interpreter computes in a run: their values, read as needed (an
/// internal error when one was not computed), and their shapes.
struct Operands<'r> {
    i: usize,
    node: &'r ProgramNode,
    values: &'r [Option<Arc<HostData>>],
    shapes: &'r [Vec<usize>],
}

impl<'r> Operands<'r> {
    /// The value of input `j`.
    fn arg(&self, j: usize) -> Result<&'r Arc<HostData>> {
        self.values[self.node.inputs[j]]
            .as_ref()
            .ok_or_else(|| Error::Backend {
                backend: "cpu".into(),
                detail: format!(
                    "node {} ({}) read a value not computed",
                    self.i,
                    self.node.op.name()
                ),
            })
    }

    /// The shape of input `j`.
    fn shape_of(&self, j: usize) -> &'r [usize] {
        self.shapes[self.node.inputs[j]].as_slice()
    }
}

impl CpuExecutable {
    /// A run's values at the start: the inputs' set, all others not yet computed.
    fn input_values(&self, inputs: &[HostTensor]) -> Result<Vec<Option<Arc<HostData>>>> {
        let p = &self.program;
        let mut values: Vec<Option<Arc<HostData>>> = vec![None; p.nodes.len()];
        for (k, &i) in p.inputs.iter().enumerate() {
            let host = inputs.get(k).ok_or_else(|| Error::Inputs {
                detail: format!("input {k} missing"),
            })?;
            values[i] = Some(host.data_arc().clone());
        }
        Ok(values)
    }

    /// The variables' versions now (none when no value is kept) and the weight-only values an
    /// earlier run kept, if computed from those versions.
    fn kept_weights(&self) -> (Vec<u64>, Option<NodeValues>) {
        let keeps_weights = self.keeps_weights;
        let versions: Vec<u64> = if keeps_weights {
            self.variables.iter().map(|v| v.version()).collect()
        } else {
            Vec::new()
        };
        let kept = keeps_weights
            .then(|| {
                self.weight_values
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .filter(|w| w.versions == versions)
                    .map(|w| w.values.clone())
            })
            .flatten();
        (versions, kept)
    }

    /// The value of the fused region rooted at node `i`, written over a recycled buffer when
    /// one is free.
    fn run_fused(
        &self,
        i: usize,
        k: &fused::FusedKernel,
        values: &[Option<Arc<HostData>>],
    ) -> Result<Arc<HostData>> {
        let n = self.shapes[i].iter().product();
        let reuse = self.take_recycled(i);
        let scratch = k.scratch_bytes();
        if reuse.is_none() || scratch > 0 {
            memory::probe(&self.program, &self.shapes, i, scratch)?;
        }
        k.run(values, n, reuse, &self.kept_kernels)
            .ok_or_else(|| Error::Backend {
                backend: "cpu".into(),
                detail: format!("fused region at node {i} read a value not computed"),
            })
    }

    /// Checks that the machine can provide node `i`'s bytes before it is computed
    /// (`memory::probe`); a view or a leaf allocates nothing.
    fn probe_memory(&self, i: usize, node: &ProgramNode) -> Result<()> {
        if !memory::is_view(&node.op)
            && !matches!(
                node.op,
                Op::Input { .. } | Op::Constant(_) | Op::Variable(_)
            )
        {
            memory::probe(&self.program, &self.shapes, i, 0)?;
        }
        Ok(())
    }

    /// The value of node `i`, outside any fused region, from its inputs' values.
    fn compute(
        &self,
        i: usize,
        node: &ProgramNode,
        values: &[Option<Arc<HostData>>],
        loops: &mut LoopOutputs,
    ) -> Result<Arc<HostData>> {
        let operands = Operands {
            i,
            node,
            values,
            shapes: &self.shapes,
        };
        let arg = |j: usize| operands.arg(j);
        let shape_of = |j: usize| operands.shape_of(j);
        let out_shape = self.shapes[i].as_slice();
        self.probe_memory(i, node)?;
        let value: Arc<HostData> = match &node.op {
            Op::Input { name } => {
                return Err(Error::Inputs {
                    detail: format!("no value given for input '{name}'"),
                });
            }
            Op::Constant(_) => self.constants[i].clone().ok_or_else(|| Error::Backend {
                backend: "cpu".into(),
                detail: "constant missing".into(),
            })?,
            Op::Variable(v) => v.with_value(|t| t.data_arc().clone()),
            Op::Unary { func: u } => Arc::new(elementwise::unary(*u, arg(0)?)?),
            Op::Binary { func: b } => Arc::new(elementwise::binary(
                *b,
                arg(0)?,
                shape_of(0),
                arg(1)?,
                shape_of(1),
                out_shape,
            )?),
            Op::Where => Arc::new(elementwise::select(
                arg(0)?,
                shape_of(0),
                arg(1)?,
                shape_of(1),
                arg(2)?,
                shape_of(2),
                out_shape,
            )?),
            Op::Reduce { func: op, axes, .. } => {
                Arc::new(reduce::reduce(*op, arg(0)?, shape_of(0), axes)?)
            }
            Op::ArgReduce { func: op, axis, .. } => {
                Arc::new(reduce::arg_reduce(*op, arg(0)?, shape_of(0), *axis)?)
            }
            Op::Scan { func: op, axis } => {
                Arc::new(reduce::scan(*op, arg(0)?, shape_of(0), *axis)?)
            }
            Op::Reshape { .. } | Op::ExpandDims { .. } | Op::Squeeze { .. } => arg(0)?.clone(),
            Op::Permute { perm } => Arc::new(movement::permute(arg(0)?, shape_of(0), perm)),
            Op::BroadcastTo { .. } => {
                Arc::new(movement::broadcast(arg(0)?, shape_of(0), out_shape))
            }
            Op::Slice { axes } => Arc::new(movement::slice(arg(0)?, shape_of(0), axes, out_shape)),
            Op::Concat { axis } => {
                let parts: Vec<(&HostData, &[usize])> = (0..node.inputs.len())
                    .map(|j| Ok((arg(j)?.as_ref(), shape_of(j))))
                    .collect::<Result<_>>()?;
                Arc::new(movement::concat(&parts, *axis, out_shape)?)
            }
            Op::Gather { axis } => {
                let reuse = self.take_recycled(i);
                movement::take(arg(0)?, shape_of(0), arg(1)?, *axis, reuse)
                    .map_err(|e| node.attribute(e))?
            }
            Op::MatMul => matmul::matmul(
                (arg(0)?, shape_of(0)),
                (arg(1)?, shape_of(1)),
                out_shape,
                self.take_recycled(i),
            )?,
            Op::Cast { dtype: to } => Arc::new(elementwise::cast(arg(0)?, *to)),
            Op::Conv { spec } => conv::conv(
                (arg(0)?, shape_of(0)),
                (arg(1)?, shape_of(1)),
                if node.inputs.len() > 2 {
                    Some(arg(2)?.as_ref())
                } else {
                    None
                },
                spec,
                out_shape,
                (
                    self.take_recycled(i),
                    self.kept_kernels.of(node.inputs[1], arg(1)?),
                ),
            )?,
            Op::Recurrence { spec, output } => self.loop_output(spec, *output, &operands, loops)?,
        };
        Ok(value)
    }

    /// Output `output` of the recurrent loop that node `operands.i` reads from: the loop runs
    /// once, at the first of its output nodes, and keeps its outputs for the others.
    fn loop_output(
        &self,
        spec: &Arc<RecurrenceSpec>,
        output: usize,
        operands: &Operands<'_>,
        loops: &mut LoopOutputs,
    ) -> Result<Arc<HostData>> {
        let (i, node) = (operands.i, operands.node);
        // The loop runs once; its other outputs wait for their nodes.
        let key = (Arc::as_ptr(spec) as usize, node.inputs.clone());
        if !loops.contains_key(&key) {
            let acts = self.loop_activations.get(&i).cloned().ok_or_else(|| {
                node.attribute(Error::Model {
                    detail: "a recurrent loop with a composite activation reached \
                             the interpreter without being unrolled"
                        .into(),
                })
            })?;
            let ins = (0..node.inputs.len())
                .map(|j| Ok((operands.arg(j)?.as_ref(), operands.shape_of(j))))
                .collect::<Result<Vec<_>>>()?;
            let lock = || self.projections.lock().unwrap_or_else(|p| p.into_inner());
            let mut projection = lock().remove(&i).unwrap_or_default();
            let kept = |j: usize| Ok(self.kept_kernels.of(node.inputs[j], operands.arg(j)?));
            let kept = [kept(1)?, kept(2)?];
            let outs = recurrence::run(spec, acts, &ins, &mut projection, kept);
            lock().insert(i, projection);
            let outs = outs.map_err(|e| node.attribute(e))?;
            loops.insert(key.clone(), outs.into_iter().map(Arc::new).collect());
        }
        loops
            .get(&key)
            .and_then(|outs: &Vec<Arc<HostData>>| outs.get(output).cloned())
            .ok_or_else(|| Error::Backend {
                backend: "cpu".into(),
                detail: format!("recurrent loop output {output} missing"),
            })
    }

    /// The run's outputs, shared with the caller: their buffers are reused once the caller
    /// drops them.
    fn outputs(&self, values: &mut [Option<Arc<HostData>>]) -> Result<Vec<HostTensor>> {
        let p = &self.program;
        let outputs = p
            .outputs
            .iter()
            .map(|&o| {
                let data = values[o].as_ref().ok_or_else(|| Error::Backend {
                    backend: "cpu".into(),
                    detail: "an output was not computed".into(),
                })?;
                HostTensor::from_arc(&self.shapes[o], data.clone())
            })
            .collect();
        // Outputs stay shared with the caller; their buffers are reused once the caller drops them.
        for &o in &p.outputs {
            self.recycle(o, values[o].take());
        }
        outputs
    }
}
