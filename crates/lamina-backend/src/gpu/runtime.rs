//! The GPU runtime: buffers (weights resident, intermediates reused by liveness), the pipeline
//! cache keyed by WGSL text, one submit per run, blocking read-back, and run statistics.

use super::device::{GpuContext, GpuOptions};
use super::ir::BufferRef;
use super::kernels::{self, Compiled, KernelCode};
use super::plan::{Plan, is_leaf, max_reads, plan};
use super::timing::{KernelTiming, TimestampQueries, median};
use crate::backend::{Backend, Executable, RunStats};
use crate::budget::{MemoryBudget, MemoryPlan, PlanBuilder};
use crate::passes::{expand_recurrences_except, split_wide_concats};
use lamina_graph::op::Op;

use lamina_graph::{DType, Error, HostData, HostTensor, Program, Result};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Counters {
    runs: AtomicU64,
    dispatches: AtomicU64,
    compiles: AtomicU64,
    cache_hits: AtomicU64,
    bytes_uploaded: AtomicU64,
    bytes_read_back: AtomicU64,
}

/// A weight kept on the device: the version uploaded, the buffer, and the variable (weakly, so
/// that buffers of dropped models are freed).
type Resident = (
    u64,
    Arc<wgpu::Buffer>,
    std::sync::Weak<lamina_graph::Variable>,
);

/// The GPU backend: a device, its pipeline cache and resident weights.
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    resident: Mutex<HashMap<u64, Resident>>,
    counters: Arc<Counters>,
}

/// The program as the GPU compiles it for these input shapes: recurrent loops with composite
/// activations unrolled, and
/// concatenations wider than a kernel's `max_storage` bindings allow split into trees;
/// `None` when it needs neither. Convolutions stay whole: they are kernels of their own.
fn expand_for_gpu(
    program: &Program,
    input_shapes: &[Vec<usize>],
    max_storage: u32,
) -> Result<Option<Program>> {
    // Loops whose activations are single elementwise ops run as loop kernels; the others
    // are unrolled.
    let looped =
        |spec: &lamina_graph::ops::RecurrenceSpec| kernels::loop_activations(spec).is_some();
    let unrolled = expand_recurrences_except(program, input_shapes, &looped)?;
    let base = unrolled.as_ref().unwrap_or(program);
    Ok(split_wide_concats(base, max_reads(max_storage))?.or(unrolled))
}

impl GpuBackend {
    /// Opens the best GPU adapter, with f16 storage where `LAMINA_GPU_F16=1`
    /// (`GpuOptions::from_env`); an error if there is none.
    pub fn new() -> Result<GpuBackend> {
        GpuBackend::with_options(GpuOptions::from_env())
    }

    /// Opens the best GPU adapter with options (such as artificially lowered limits).
    pub fn with_options(options: GpuOptions) -> Result<GpuBackend> {
        Ok(GpuBackend {
            ctx: Arc::new(GpuContext::new(options)?),
            pipelines: Mutex::new(HashMap::new()),
            resident: Mutex::new(HashMap::new()),
            counters: Arc::new(Counters::default()),
        })
    }

    /// The device and its limits.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The WGSL of every kernel `program` compiles to for these input shapes (for inspection,
    /// validation and snapshot tests).
    pub fn kernels_for(
        program: &Program,
        input_shapes: &[Vec<usize>],
        max_storage: u32,
    ) -> Result<Vec<KernelCode>> {
        let expanded = expand_for_gpu(program, input_shapes, max_storage)?;
        let program = expanded.as_ref().unwrap_or(program);
        let shapes = program.specialize(input_shapes)?;
        check_u32_indexing(program, &shapes)?;
        let planned = plan(program, &shapes, max_storage, true)?;
        Ok(kernels::build(program, &shapes, &planned, true, false)?.kernels)
    }

    /// The kernels of [`GpuBackend::kernels_for`] as built with f16 storage
    /// (`GpuOptions::f16_storage`): float32 node buffers declared as `array<f16>`.
    pub fn kernels_for_f16(
        program: &Program,
        input_shapes: &[Vec<usize>],
        max_storage: u32,
    ) -> Result<Vec<KernelCode>> {
        let expanded = expand_for_gpu(program, input_shapes, max_storage)?;
        let program = expanded.as_ref().unwrap_or(program);
        let shapes = program.specialize(input_shapes)?;
        check_u32_indexing(program, &shapes)?;
        let planned = plan(program, &shapes, max_storage, true)?;
        Ok(kernels::build(program, &shapes, &planned, true, true)?.kernels)
    }

    fn pipeline(&self, wgsl: &str) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(wgsl) {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(p.clone());
        }
        let device = &self.ctx.device;
        let pipeline = self.ctx.scoped("compiling a kernel", || {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("lamina kernel"),
                source: wgpu::ShaderSource::Wgsl(wgsl.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("lamina kernel"),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        })?;
        self.counters.compiles.fetch_add(1, Ordering::Relaxed);
        let p = Arc::new(pipeline);
        cache.insert(wgsl.to_string(), p.clone());
        Ok(p)
    }

    fn resident_buffer(&self, var: &Arc<lamina_graph::Variable>) -> Result<Arc<wgpu::Buffer>> {
        let mut map = self.resident.lock().unwrap_or_else(|p| p.into_inner());
        let version = var.version();
        if let Some((v, b, _)) = map.get(&var.id())
            && *v == version
        {
            return Ok(b.clone());
        }
        map.retain(|_, (_, _, w)| w.strong_count() > 0);
        let bytes = var.with_value(|t| to_words(t.data(), self.ctx.f16_storage()));
        let buf = match map.get(&var.id()) {
            Some((_, b, _)) if b.size() == bytes.len().max(4) as u64 => b.clone(),
            _ => Arc::new(self.storage(bytes.len(), &format!("variable '{}'", var.path()))?),
        };
        self.ctx.queue.write_buffer(&buf, 0, &bytes);
        self.counters
            .bytes_uploaded
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        map.insert(var.id(), (version, buf.clone(), Arc::downgrade(var)));
        Ok(buf)
    }

    fn storage(&self, bytes: usize, what: &str) -> Result<wgpu::Buffer> {
        let size = bytes.max(4) as u64;
        let l = &self.ctx.limits;
        if size > l.max_binding_bytes || size > l.max_buffer_bytes {
            return Err(Error::Backend {
                backend: "gpu".into(),
                detail: format!(
                    "{what} needs {size} bytes, more than the device allows in one storage binding ({} bytes); use the cpu backend or smaller tensors",
                    l.max_binding_bytes.min(l.max_buffer_bytes)
                ),
            });
        }
        Ok(self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }))
    }
}

/// The bytes a tensor of `shape` and `dtype` occupies on the device: 4 per element (bools as
/// words), or 2 for float32 stored as f16, rounded up to whole 4-byte words; at least 4.
fn device_bytes(shape: &[usize], dtype: DType, f16: bool) -> u64 {
    let per = if f16 && dtype == DType::F32 { 2 } else { 4 };
    shape
        .iter()
        .try_fold(per, |acc: u64, &d| acc.checked_mul(d as u64))
        .and_then(|b| b.checked_next_multiple_of(4))
        .unwrap_or(u64::MAX)
        .max(4)
}

/// The bytes a tensor occupies on the device (bools as 4-byte words; with `f16`, float32 as
/// f16 rounded to nearest even, padded to a whole word).
fn to_words(d: &HostData, f16: bool) -> Vec<u8> {
    match d {
        HostData::F32(v) if f16 => {
            let mut bytes: Vec<u8> = v
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect();
            bytes.resize(bytes.len().div_ceil(4) * 4, 0);
            bytes
        }
        HostData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        HostData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        HostData::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        HostData::Bool(v) => v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect(),
    }
}

/// A tensor's values from the bytes `to_words` gives (with `f16`, float32 read from f16).
fn from_words(dtype: DType, bytes: &[u8], f16: bool) -> HostData {
    if f16 && dtype == DType::F32 {
        return HostData::F32(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        );
    }
    let words = bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
    match dtype {
        DType::F32 => HostData::F32(words.map(f32::from_le_bytes).collect()),
        DType::I32 => HostData::I32(words.map(i32::from_le_bytes).collect()),
        DType::U32 => HostData::U32(words.map(u32::from_le_bytes).collect()),
        DType::Bool => HostData::Bool(words.map(|w| u32::from_le_bytes(w) != 0).collect()),
    }
}

struct Step {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    workgroups: (u32, u32),
}

enum Slot {
    Input(usize),
    Variable(Arc<lamina_graph::Variable>),
    Owned,
}

/// A program compiled for concrete input shapes on the GPU.
pub struct GpuExecutable {
    backend: Arc<GpuBackend>,
    program: Arc<Program>,
    shapes: Vec<Vec<usize>>,
    /// The `take` nodes fed by model inputs, whose ids are checked on each run.
    gather_checks: Vec<lamina_graph::model::GatherInputCheck>,
    buffers: HashMap<usize, Arc<wgpu::Buffer>>,
    slots: Vec<(usize, Slot)>,
    steps: Mutex<Vec<Step>>,
    kernels: Vec<KernelCode>,
    /// The runs of kernels dispatched once per step of a loop.
    repeats: Vec<super::kernels::Repeat>,
    /// Scratch buffers of multi-pass kernels.
    scratch: Vec<Arc<wgpu::Buffer>>,
    staging: Vec<wgpu::Buffer>,
    /// Per kernel: whether it reads weights and constants only (a BatchNormalization folded
    /// into a convolution's kernel, a transposed weight): it runs on the first run and again
    /// only after a weight changes, its output kept between runs.
    weights_only: Vec<bool>,
    /// The weights' versions when the weights-only kernels last ran (`None` before the first
    /// run).
    weights_seen: Mutex<Option<Vec<u64>>>,
    run_lock: Mutex<()>,
}

impl GpuExecutable {
    /// The kernels this executable dispatches, in order.
    pub fn kernels(&self) -> &[KernelCode] {
        &self.kernels
    }

    fn bind_groups(&self) -> Result<Vec<Step>> {
        let device = &self.backend.ctx.device;
        let mut steps = Vec::with_capacity(self.kernels.len());
        let max = self.backend.ctx.limits.max_workgroups_per_dim.max(1) as u64;
        for k in &self.kernels {
            let pipeline = self.backend.pipeline(&k.wgsl)?;
            let info_bytes = &k.uniform;
            let padded = info_bytes.len();
            let info = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("lamina info"),
                size: padded as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.backend.ctx.queue.write_buffer(&info, 0, info_bytes);
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: info.as_entire_binding(),
            }];
            for (i, binding) in k.bindings.iter().enumerate() {
                let b = match binding.buffer {
                    BufferRef::Node(n) => self.buffers.get(&n),
                    BufferRef::Scratch(j) => self.scratch.get(j),
                }
                .ok_or_else(|| internal("a binding has no buffer"))?;
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: b.as_entire_binding(),
                });
            }
            let layout = pipeline.get_bind_group_layout(0);
            let bind_group = self.backend.ctx.scoped("binding kernel buffers", || {
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("lamina bindings"),
                    layout: &layout,
                    entries: &entries,
                })
            })?;
            let wg = k.workgroups.max(1);
            let x = wg.min(max);
            let y = wg.div_ceil(x);
            if y > max {
                return Err(Error::Backend {
                    backend: "gpu".into(),
                    detail: format!(
                        "a {} kernel needs {wg} workgroups, more than {max}x{max}",
                        k.kind
                    ),
                });
            }
            steps.push(Step {
                pipeline,
                bind_group,
                workgroups: (x as u32, y as u32),
            });
        }
        Ok(steps)
    }
}

fn internal(what: &str) -> Error {
    Error::Backend {
        backend: "gpu".into(),
        detail: format!("internal: {what}"),
    }
}

impl Backend for Arc<GpuBackend> {
    fn name(&self) -> String {
        if self.ctx.f16_storage() {
            format!("gpu: {} with f16 storage", self.ctx.adapter)
        } else {
            format!("gpu: {}", self.ctx.adapter)
        }
    }

    fn compile(
        &self,
        program: &Arc<Program>,
        input_shapes: &[Vec<usize>],
        budget: &MemoryBudget,
    ) -> Result<Arc<dyn Executable>> {
        let expanded = expand_for_gpu(program, input_shapes, self.ctx.limits.max_storage_buffers)?
            .map(Arc::new);
        let program = expanded.as_ref().unwrap_or(program);
        let shapes = program.specialize(input_shapes)?;
        check_u32_indexing(program, &shapes)?;
        let planned = plan(
            program,
            &shapes,
            self.ctx.limits.max_storage_buffers,
            self.ctx.gpu_shaped_kernels(),
        )?;
        let f16 = self.ctx.f16_storage();
        let compiled = kernels::build(
            program,
            &shapes,
            &planned,
            self.ctx.gpu_shaped_kernels(),
            f16,
        )?;
        if f16 {
            check_f16_bindings(program, &compiled)?;
        }
        let from_inputs = crate::backend::input_dependence(program);
        budget.check(
            "gpu",
            program,
            &memory_plan(program, &shapes, &planned, &compiled, f16, &from_inputs),
        )?;
        let NodeBuffers { buffers, slots } =
            self.node_buffers(program, &shapes, &planned, &compiled, f16, &from_inputs)?;
        let scratch = self.scratch_buffers(&compiled)?;
        let staging = self.staging_buffers(program, &shapes, f16);
        let weights_only = compiled
            .kernels
            .iter()
            .map(|k| !from_inputs[k.output])
            .collect();
        let exe = GpuExecutable {
            backend: self.clone(),
            program: program.clone(),
            gather_checks: program.gather_input_checks(),
            shapes,
            buffers,
            slots,
            steps: Mutex::new(Vec::new()),
            kernels: compiled.kernels,
            repeats: compiled.repeats,
            scratch,
            staging,
            weights_only,
            weights_seen: Mutex::new(None),
            run_lock: Mutex::new(()),
        };
        let steps = exe.bind_groups()?;
        *exe.steps.lock().unwrap_or_else(|p| p.into_inner()) = steps;
        self.ctx.take_errors()?;
        Ok(Arc::new(exe))
    }

    fn stats(&self) -> RunStats {
        let c = &self.counters;
        RunStats {
            runs: c.runs.load(Ordering::Relaxed),
            dispatches: c.dispatches.load(Ordering::Relaxed),
            compiles: c.compiles.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            bytes_uploaded: c.bytes_uploaded.load(Ordering::Relaxed),
            bytes_read_back: c.bytes_read_back.load(Ordering::Relaxed),
        }
    }
}

/// The device buffers of a compiled program's nodes, and each node's slot: what a run does with
/// its buffer before it dispatches (writes an input, checks a weight's, nothing for an output).
struct NodeBuffers {
    buffers: HashMap<usize, Arc<wgpu::Buffer>>,
    slots: Vec<(usize, Slot)>,
}

impl GpuBackend {
    /// The buffers of every node the kernels bind: the leaves the plan materializes, then the
    /// kernels' outputs.
    fn node_buffers(
        &self,
        program: &Program,
        shapes: &[Vec<usize>],
        planned: &Plan,
        compiled: &Compiled,
        f16: bool,
        from_inputs: &[bool],
    ) -> Result<NodeBuffers> {
        let mut nodes = NodeBuffers {
            buffers: HashMap::new(),
            slots: Vec::new(),
        };
        self.leaf_buffers(program, shapes, planned, f16, &mut nodes)?;
        self.kernel_output_buffers(program, shapes, compiled, f16, from_inputs, &mut nodes)?;
        Ok(nodes)
    }

    /// Buffers for the leaves the plan materializes: an input's, filled on each run; a
    /// constant's, written now; a weight's, resident on the device.
    fn leaf_buffers(
        &self,
        program: &Program,
        shapes: &[Vec<usize>],
        planned: &Plan,
        f16: bool,
        nodes: &mut NodeBuffers,
    ) -> Result<()> {
        let NodeBuffers { buffers, slots } = nodes;
        for &n in &planned.materialized {
            let node = &program.nodes[n];
            let bytes = device_bytes(&shapes[n], node.dtype, f16) as usize;
            let what = format!("tensor of op {} with shape {:?}", node.op.name(), shapes[n]);
            match &node.op {
                Op::Input { .. } => {
                    let k = program
                        .inputs
                        .iter()
                        .position(|&i| i == n)
                        .ok_or_else(|| internal("input"))?;
                    buffers.insert(n, Arc::new(self.storage(bytes, &what)?));
                    slots.push((n, Slot::Input(k)));
                }
                Op::Constant(c) => {
                    let buf = self.storage(bytes, &what).map_err(|e| node.attribute(e))?;
                    let words = to_words(c.data(), f16);
                    self.ctx.queue.write_buffer(&buf, 0, &words);
                    self.counters
                        .bytes_uploaded
                        .fetch_add(words.len() as u64, Ordering::Relaxed);
                    buffers.insert(n, Arc::new(buf));
                }
                Op::Variable(v) => {
                    buffers.insert(n, self.resident_buffer(v)?);
                    slots.push((n, Slot::Variable(v.clone())));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Buffers for the kernels' outputs, in dispatch order: an intermediate (neither a model
    /// output nor computed from weights alone) reuses a free buffer of its size, one whose
    /// node's last reader has run, when there is one.
    fn kernel_output_buffers(
        &self,
        program: &Program,
        shapes: &[Vec<usize>],
        compiled: &Compiled,
        f16: bool,
        from_inputs: &[bool],
        nodes: &mut NodeBuffers,
    ) -> Result<()> {
        let NodeBuffers { buffers, slots } = nodes;
        // Liveness: the last kernel reading each node.
        let last_use = last_uses(compiled);
        // Outputs and what is computed from weights only keep their buffers between runs.
        let persistent = |n: usize| program.outputs.contains(&n) || !from_inputs[n];
        let mut free: Vec<Arc<wgpu::Buffer>> = Vec::new();
        for (ki, k) in compiled.kernels.iter().enumerate() {
            for n in written_nodes(k) {
                let std::collections::hash_map::Entry::Vacant(entry) = buffers.entry(n) else {
                    continue;
                };
                let bytes = device_bytes(&shapes[n], program.nodes[n].dtype, f16);
                let pos = free.iter().position(|b| b.size() == bytes);
                let buf = match (pos, persistent(n)) {
                    (Some(p), false) => free.swap_remove(p),
                    _ => Arc::new(
                        self.storage(
                            bytes as usize,
                            &format!(
                                "output of op {} with shape {:?}",
                                program.nodes[n].op.name(),
                                shapes[n]
                            ),
                        )
                        .map_err(|e| program.nodes[n].attribute(e))?,
                    ),
                };
                entry.insert(buf);
                slots.push((n, Slot::Owned));
            }
            for &r in &k.reads {
                if last_use.get(&r) == Some(&ki)
                    && !persistent(r)
                    && !matches!(
                        program.nodes[r].op,
                        Op::Input { .. } | Op::Constant(_) | Op::Variable(_)
                    )
                    && let Some(b) = buffers.get(&r)
                {
                    free.push(b.clone());
                }
            }
        }
        Ok(())
    }

    /// The scratch buffers of the multi-pass kernels.
    fn scratch_buffers(&self, compiled: &Compiled) -> Result<Vec<Arc<wgpu::Buffer>>> {
        compiled
            .scratch
            .iter()
            .map(|&bytes| {
                self.storage(bytes as usize, "scratch of a multi-pass kernel")
                    .map(Arc::new)
            })
            .collect()
    }

    /// The buffers the outputs are copied into to be read back, one per output.
    fn staging_buffers(
        &self,
        program: &Program,
        shapes: &[Vec<usize>],
        f16: bool,
    ) -> Vec<wgpu::Buffer> {
        program
            .outputs
            .iter()
            .map(|&o| {
                self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("lamina read-back"),
                    size: device_bytes(&shapes[o], program.nodes[o].dtype, f16),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect()
    }
}

/// The program nodes whose buffers a kernel writes: its output and, for a loop's kernels, the
/// loop's other outputs.
fn written_nodes(k: &KernelCode) -> Vec<usize> {
    let mut nodes = vec![k.output];
    for b in &k.bindings {
        if let (true, BufferRef::Node(n)) = (b.writable, b.buffer)
            && !nodes.contains(&n)
        {
            nodes.push(n);
        }
    }
    nodes
}

/// The last kernel reading each node's buffer; a read inside a repeated run of kernels (a loop's
/// step) lasts to the end of the run, since the run reads it again on its next turn.
fn last_uses(compiled: &Compiled) -> HashMap<usize, usize> {
    let mut last_use: HashMap<usize, usize> = HashMap::new();
    for (ki, k) in compiled.kernels.iter().enumerate() {
        let until = compiled
            .repeats
            .iter()
            .find(|r| r.kernels.contains(&ki))
            .map_or(ki, |r| r.kernels.end - 1);
        for &r in &k.reads {
            last_use.insert(r, until);
        }
    }
    last_use
}

/// Refuses, as the CPU does, a reduction over an empty axis; and a program with a tensor of
/// more than `u32::MAX` elements, fused or not: kernels index with 32-bit integers, and a
/// larger index space would wrap and give wrong values silently.
fn check_u32_indexing(program: &Program, shapes: &[Vec<usize>]) -> Result<()> {
    for (n, shape) in shapes.iter().enumerate() {
        // A reduction over an empty axis is an error, as on the CPU (there is no identity
        // for max and min, nor a mean of nothing).
        let node = &program.nodes[n];
        let empty = match &node.op {
            Op::Reduce { axes, .. } => {
                let input = &shapes[node.inputs[0]];
                axes.iter().any(|&a| input.get(a) == Some(&0))
            }
            Op::ArgReduce { axis, .. } => shapes[node.inputs[0]].get(*axis) == Some(&0),
            _ => false,
        };
        if empty {
            return Err(node.attribute(Error::Backend {
                backend: "gpu".into(),
                detail: format!("reduction {} over an empty axis", node.op.name()),
            }));
        }
        let count = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .unwrap_or(u64::MAX);
        if count > u32::MAX as u64 {
            let node = &program.nodes[n];
            return Err(node.attribute(Error::Backend {
                backend: "gpu".into(),
                detail: format!(
                    "op {} of shape {shape:?} has {count} elements, more than the GPU backend's \
                     32-bit indexing allows ({}); use the cpu backend",
                    node.op.name(),
                    u32::MAX
                ),
            }));
        }
    }
    Ok(())
}

/// Checks that the kernels and the runtime agree on which buffers hold f16: every binding of a
/// node's buffer is float32 exactly when the node is (an internal error otherwise).
fn check_f16_bindings(program: &Program, compiled: &Compiled) -> Result<()> {
    for k in &compiled.kernels {
        for b in &k.bindings {
            if let BufferRef::Node(n) = b.buffer
                && (b.dtype == DType::F32) != (program.nodes[n].dtype == DType::F32)
            {
                return Err(internal(&format!(
                    "a {} kernel binds the {:?} buffer of node {n} as {:?}, which f16 storage cannot hold",
                    k.kind, program.nodes[n].dtype, b.dtype
                )));
            }
        }
    }
    Ok(())
}

/// The device buffers a compiled program holds, all for its lifetime: inputs, constants,
/// weights, kernel outputs (a dead intermediate's buffer reused by a later output of the same
/// size, as `compile` assigns them) and the read-back copies of the outputs; with `f16`,
/// float32 tensors at 2 bytes an element.
fn memory_plan(
    program: &Program,
    shapes: &[Vec<usize>],
    planned: &Plan,
    compiled: &Compiled,
    f16: bool,
    from_inputs: &[bool],
) -> MemoryPlan {
    let input_shapes: Vec<Vec<usize>> = program.inputs.iter().map(|&i| shapes[i].clone()).collect();
    let mut b = PlanBuilder::new(shapes, &input_shapes);
    let bytes = |n: usize| device_bytes(&shapes[n], program.nodes[n].dtype, f16);
    let mut allocated: HashSet<usize> = HashSet::new();
    for &n in &planned.materialized {
        if is_leaf(&program.nodes[n].op) {
            allocated.insert(n);
            b.alloc(n, bytes(n), 0);
        }
    }
    let last_use = last_uses(compiled);
    let persistent = |n: usize| program.outputs.contains(&n) || !from_inputs[n];
    // Freed buffers by size, as (node that owns it): reused, never released to the device.
    let mut free: Vec<(usize, u64)> = Vec::new();
    for (ki, k) in compiled.kernels.iter().enumerate() {
        for n in written_nodes(k) {
            if !allocated.insert(n) {
                continue;
            }
            let size = bytes(n);
            match free.iter().position(|&(_, s)| s == size) {
                Some(p) if !persistent(n) => {
                    free.swap_remove(p);
                }
                _ => b.alloc(n, size, 0),
            }
        }
        for &r in &k.reads {
            if last_use.get(&r) == Some(&ki) && !persistent(r) && !is_leaf(&program.nodes[r].op) {
                free.push((r, bytes(r)));
            }
        }
    }
    for &o in &program.outputs {
        b.alloc(o, bytes(o), 0);
    }
    // Scratch buffers live as long as the executable; each is counted under the node whose
    // kernel uses it.
    for (i, &size) in compiled.scratch.iter().enumerate() {
        let owner = compiled
            .kernels
            .iter()
            .find(|k| k.bindings.iter().any(|b| b.buffer == BufferRef::Scratch(i)))
            .map(|k| k.output);
        if let Some(owner) = owner {
            b.alloc(owner, size, 0);
        }
    }
    b.finish()
}

impl GpuExecutable {
    /// Uploads inputs (and changed weights), encodes every dispatch and the copies of the
    /// outputs into `staging`, and submits once. The caller holds the run lock.
    fn submit(&self, inputs: &[HostTensor], staging: &[wgpu::Buffer]) -> Result<()> {
        let backend = &self.backend;
        let ctx = &backend.ctx;
        let p = &self.program;
        crate::backend::check_compiled_inputs(p, &self.shapes, &self.gather_checks, inputs)?;
        // Inputs, and weights changed since they were uploaded.
        let mut rebind = false;
        let mut versions = Vec::new();
        for (n, slot) in &self.slots {
            match slot {
                Slot::Input(k) => {
                    let host = &inputs[*k];
                    let words = to_words(host.data(), ctx.f16_storage());
                    ctx.queue.write_buffer(&self.buffers[n], 0, &words);
                    backend
                        .counters
                        .bytes_uploaded
                        .fetch_add(words.len() as u64, Ordering::Relaxed);
                }
                Slot::Variable(v) => {
                    versions.push(v.version());
                    let b = backend.resident_buffer(v)?;
                    if !Arc::ptr_eq(&b, &self.buffers[n]) {
                        rebind = true;
                    }
                }
                Slot::Owned => {}
            }
        }
        if rebind {
            return Err(internal("a variable buffer was replaced"));
        }
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("lamina run"),
            });
        let mut seen = self.weights_seen.lock().unwrap_or_else(|p| p.into_inner());
        let refold = seen.as_ref() != Some(&versions);
        let dispatched = self.encode_kernels(&mut encoder, refold);
        *seen = Some(versions);
        drop(seen);
        for (i, &o) in p.outputs.iter().enumerate() {
            let size = staging[i].size();
            encoder.copy_buffer_to_buffer(&self.buffers[&o], 0, &staging[i], 0, size);
        }
        ctx.queue.submit([encoder.finish()]);
        backend
            .counters
            .dispatches
            .fetch_add(dispatched, Ordering::Relaxed);
        backend.counters.runs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Records the kernels' dispatches into one compute pass (the weights-only kernels too
    /// when `weights_changed`); returns how many.
    fn encode_kernels(&self, encoder: &mut wgpu::CommandEncoder, weights_changed: bool) -> u64 {
        self.encode_kernels_timed(encoder, None, weights_changed)
    }

    /// Records the kernels' dispatches (the weights-only kernels too when `weights_changed`):
    /// all in one compute pass, or with `timestamps` each in a pass of its own that writes its
    /// start and end times. Returns how many.
    fn encode_kernels_timed(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamps: Option<&TimestampQueries>,
        weights_changed: bool,
    ) -> u64 {
        let steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = |k: usize| weights_changed || !self.weights_only[k];
        let dispatch = |pass: &mut wgpu::ComputePass<'_>, s: &Step| {
            pass.set_pipeline(&s.pipeline);
            pass.set_bind_group(0, &s.bind_group, &[]);
            pass.dispatch_workgroups(s.workgroups.0, s.workgroups.1, 1);
        };
        let mut dispatched = 0u64;
        match timestamps {
            None => {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("lamina kernels"),
                    timestamp_writes: None,
                });
                for k in self.schedule().filter(|&k| wanted(k)) {
                    dispatch(&mut pass, &steps[k]);
                    dispatched += 1;
                }
            }
            Some(t) => {
                // Each dispatch in a pass of its own that writes its kernel's timestamps (a
                // loop's step kernels keep the times of the last step).
                for k in self.schedule().filter(|&k| wanted(k)) {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("lamina timed kernel"),
                        timestamp_writes: Some(t.writes(k)),
                    });
                    dispatch(&mut pass, &steps[k]);
                    dispatched += 1;
                }
            }
        }
        dispatched
    }

    /// The kernels in dispatch order: each once, except a loop's step kernels, dispatched in
    /// turn once per step (generated as they are dispatched, not stored).
    fn schedule(&self) -> impl Iterator<Item = usize> + '_ {
        let mut segments = Vec::new();
        let mut k = 0;
        while k < self.kernels.len() {
            match self.repeats.iter().find(|r| r.kernels.start == k) {
                Some(r) => {
                    segments.push((r.kernels.clone(), r.times));
                    k = r.kernels.end.max(k + 1);
                }
                None => {
                    segments.push((k..k + 1, 1));
                    k += 1;
                }
            }
        }
        segments
            .into_iter()
            .flat_map(|(kernels, times)| (0..times).flat_map(move |_| kernels.clone()))
    }

    /// Runs the kernels on `inputs` once, then `runs` more times with a GPU timestamp at the
    /// start and end of each kernel, and returns each kernel's median time in dispatch order.
    /// An error where the device has no timestamp queries (see `GpuContext::supports_timestamps`).
    pub fn profile_kernels(&self, inputs: &[HostTensor], runs: usize) -> Result<Vec<KernelTiming>> {
        let ctx = &self.backend.ctx;
        let queries = TimestampQueries::new(ctx, self.kernels.len())?;
        // An ordinary run checks and uploads the inputs, and warms up.
        Executable::run(self, inputs)?;
        if self.kernels.is_empty() {
            return Ok(Vec::new());
        }
        let mut samples = vec![Vec::with_capacity(runs.max(1)); self.kernels.len()];
        for _ in 0..runs.max(1) {
            let _guard = self.run_lock.lock().unwrap_or_else(|p| p.into_inner());
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("lamina timed run"),
                });
            self.encode_kernels_timed(&mut encoder, Some(&queries), true);
            queries.resolve(&mut encoder);
            ctx.queue.submit([encoder.finish()]);
            for (k, s) in queries.read(ctx)?.into_iter().enumerate() {
                samples[k].push(s);
            }
        }
        Ok(self
            .kernels
            .iter()
            .zip(samples)
            .map(|(k, s)| KernelTiming {
                kind: k.kind,
                output: k.output,
                label: format!(
                    "{} {:?}",
                    self.program.nodes[k.output].op.name(),
                    self.shapes[k.output]
                ),
                seconds: median(s),
            })
            .collect())
    }

    fn new_staging(&self) -> Vec<wgpu::Buffer> {
        self.program
            .outputs
            .iter()
            .map(|&o| {
                self.backend
                    .ctx
                    .device
                    .create_buffer(&wgpu::BufferDescriptor {
                        label: Some("lamina read-back"),
                        size: device_bytes(
                            &self.shapes[o],
                            self.program.nodes[o].dtype,
                            self.backend.ctx.f16_storage(),
                        ),
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
            })
            .collect()
    }

    /// Reads the mapped staging buffers into host tensors and unmaps them.
    fn read_back(&self, staging: &[wgpu::Buffer]) -> Result<Vec<HostTensor>> {
        let backend = &self.backend;
        let p = &self.program;
        backend.ctx.take_errors()?;
        let mut outs = Vec::with_capacity(p.outputs.len());
        for (i, &o) in p.outputs.iter().enumerate() {
            let data = {
                let view = staging[i]
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| Error::Backend {
                        backend: "gpu".into(),
                        detail: format!("reading results back: {e}"),
                    })?;
                let f16 = backend.ctx.f16_storage() && p.nodes[o].dtype == DType::F32;
                let n = self.shapes[o].iter().product::<usize>() * if f16 { 2 } else { 4 };
                backend
                    .counters
                    .bytes_read_back
                    .fetch_add(n as u64, Ordering::Relaxed);
                from_words(p.nodes[o].dtype, &view[..n], f16)
            };
            staging[i].unmap();
            outs.push(HostTensor::from_data(&self.shapes[o], data)?);
        }
        Ok(outs)
    }

    /// Runs without blocking the calling thread on the device: the returned future polls the
    /// device until the results are mapped, so it works under any executor (and is the shape
    /// of read-back that the web needs).
    pub async fn run_async(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
        let staging = self.new_staging();
        {
            let _guard = self.run_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.submit(inputs, &staging)?;
        }
        let done = Arc::new(AtomicU64::new(0));
        for s in &staging {
            let d = done.clone();
            s.slice(..).map_async(wgpu::MapMode::Read, move |_| {
                d.fetch_add(1, Ordering::Release);
            });
        }
        let n = staging.len() as u64;
        let device = &self.backend.ctx.device;
        std::future::poll_fn(|cx| {
            let _ = device.poll(wgpu::PollType::Poll);
            if done.load(Ordering::Acquire) >= n {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
        self.read_back(&staging)
    }
}

impl Executable for GpuExecutable {
    fn run(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
        let _guard = self.run_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.submit(inputs, &self.staging)?;
        for s in &self.staging {
            s.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        }
        self.backend
            .ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Backend {
                backend: "gpu".into(),
                detail: format!("waiting for the device: {e}"),
            })?;
        self.read_back(&self.staging)
    }

    fn run_async<'a>(
        &'a self,
        inputs: &'a [HostTensor],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<HostTensor>>> + Send + 'a>>
    {
        Box::pin(GpuExecutable::run_async(self, inputs))
    }

    fn kernel_timings(
        &self,
        inputs: &[HostTensor],
        runs: usize,
    ) -> Option<Result<Vec<KernelTiming>>> {
        if !self.backend.ctx.supports_timestamps() {
            return None;
        }
        Some(self.profile_kernels(inputs, runs))
    }

    fn run_on_device(&self) -> Option<Result<()>> {
        let _guard = self.run_lock.lock().unwrap_or_else(|p| p.into_inner());
        let ctx = &self.backend.ctx;
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("lamina device run"),
            });
        // No weight is uploaded here: the weights-only kernels' outputs are current after
        // a first ordinary run.
        let first = self
            .weights_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none();
        self.encode_kernels(&mut encoder, first);
        ctx.queue.submit([encoder.finish()]);
        let waited = ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Backend {
                backend: "gpu".into(),
                detail: format!("waiting for the device: {e}"),
            });
        Some(waited.and_then(|_| ctx.take_errors()))
    }
}
