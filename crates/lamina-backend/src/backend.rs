//! The `Backend` trait: compile a program for concrete input shapes, run it on host tensors.

use crate::budget::MemoryBudget;
use lamina_graph::{Error, HostTensor, Program, Result};
use std::sync::Arc;

/// The GPU time of one kernel of a compiled program.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTiming {
    /// The kernel's kind: `elementwise`, `row`, `argreduce`, `scan`, `matmul`.
    pub kind: &'static str,
    /// The program node the kernel writes.
    pub output: usize,
    /// The op the kernel writes and its shape, such as `softmax [65536, 256]`.
    pub label: String,
    /// The median GPU seconds from the start to the end of the kernel's compute pass.
    pub seconds: f64,
}

/// A device that runs programs: the CPU interpreter, or a GPU.
pub trait Backend: Send + Sync {
    /// A human-readable name (`cpu interpreter`, or the GPU adapter and API).
    fn name(&self) -> String;

    /// Specialises `program` for inputs of these concrete shapes, ready to run, once the peak
    /// of the buffers it will hold is known to fit `budget` (an `Error::Memory` otherwise,
    /// before anything is allocated).
    fn compile(
        &self,
        program: &Arc<Program>,
        input_shapes: &[Vec<usize>],
        budget: &MemoryBudget,
    ) -> Result<Arc<dyn Executable>>;

    /// Counters of the work done so far (zero where a backend does not count).
    fn stats(&self) -> RunStats {
        RunStats::default()
    }
}

/// A compiled program; `run` may be called from several threads at once.
pub trait Executable: Send + Sync {
    /// Runs on host inputs (already checked against the program) and returns the outputs.
    fn run(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>>;

    /// For benchmarks: runs the kernels again on the inputs already on the device, without
    /// upload or read-back, and waits for them. `None` where the backend has no device.
    fn run_on_device(&self) -> Option<Result<()>> {
        None
    }

    /// For profiling: runs the kernels `runs` times on `inputs` with a GPU timestamp at the
    /// start and end of each, and returns each kernel's median time, in dispatch order. `None`
    /// where the backend cannot time kernels (the CPU, or an adapter without timestamp queries).
    fn kernel_timings(
        &self,
        inputs: &[HostTensor],
        runs: usize,
    ) -> Option<Result<Vec<KernelTiming>>> {
        let _ = (inputs, runs);
        None
    }

    /// Runs without blocking on the device where the backend can (the GPU); elsewhere the
    /// same as `run`.
    fn run_async<'a>(
        &'a self,
        inputs: &'a [HostTensor],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<HostTensor>>> + Send + 'a>>
    {
        Box::pin(async move { self.run(inputs) })
    }
}

/// What a backend has done since it was created: runs, kernel dispatches, shader compiles,
/// pipeline-cache hits and bytes moved between host and device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Program runs.
    pub runs: u64,
    /// Kernel dispatches.
    pub dispatches: u64,
    /// Shaders compiled into pipelines.
    pub compiles: u64,
    /// Pipelines found in the cache instead of compiled.
    pub cache_hits: u64,
    /// Bytes uploaded to the device.
    pub bytes_uploaded: u64,
    /// Bytes read back from the device.
    pub bytes_read_back: u64,
}

impl RunStats {
    /// The counts accumulated between `earlier` and `self`.
    pub fn since(&self, earlier: &RunStats) -> RunStats {
        RunStats {
            runs: self.runs - earlier.runs,
            dispatches: self.dispatches - earlier.dispatches,
            compiles: self.compiles - earlier.compiles,
            cache_hits: self.cache_hits - earlier.cache_hits,
            bytes_uploaded: self.bytes_uploaded - earlier.bytes_uploaded,
            bytes_read_back: self.bytes_read_back - earlier.bytes_read_back,
        }
    }
}

/// Checks host inputs against the concrete shapes an executable was compiled for (count, shape
/// and dtype), so that `Executable::run` never reads out of bounds whoever calls it.
pub fn check_compiled_inputs(
    program: &Program,
    shapes: &[Vec<usize>],
    gather_checks: &[lamina_graph::model::GatherInputCheck],
    inputs: &[HostTensor],
) -> Result<()> {
    if inputs.len() != program.inputs.len() {
        return Err(Error::Inputs {
            detail: format!(
                "{} inputs given, {} compiled for",
                inputs.len(),
                program.inputs.len()
            ),
        });
    }
    for (k, (&i, host)) in program.inputs.iter().zip(inputs).enumerate() {
        if host.shape() != shapes[i].as_slice() || host.dtype() != program.nodes[i].dtype {
            return Err(Error::Inputs {
                detail: format!(
                    "input {k} is {:?} {}, but this executable was compiled for {:?} {}",
                    host.shape(),
                    host.dtype(),
                    shapes[i],
                    program.nodes[i].dtype
                ),
            });
        }
    }
    program.check_gather_indices(gather_checks, shapes, inputs)
}

/// Per node: whether its value depends on a model input (else it is computed from weights
/// and constants only).
pub(crate) fn input_dependence(program: &Program) -> Vec<bool> {
    let mut from_inputs = vec![false; program.nodes.len()];
    for (n, node) in program.nodes.iter().enumerate() {
        from_inputs[n] = matches!(node.op, lamina_graph::op::Op::Input { .. })
            || node.inputs.iter().any(|&i| from_inputs[i]);
    }
    from_inputs
}
