//! The `Backend` trait: compile a program for concrete input shapes, run it on host tensors.

use lamina_graph::{HostTensor, Program, Result};
use std::sync::Arc;

/// A device that runs programs: the CPU interpreter, or a GPU.
pub trait Backend: Send + Sync {
    /// A human-readable name (`cpu interpreter`, or the GPU adapter and API).
    fn name(&self) -> String;

    /// Specialises `program` for inputs of these concrete shapes, ready to run.
    fn compile(
        &self,
        program: &Arc<Program>,
        input_shapes: &[Vec<usize>],
    ) -> Result<Arc<dyn Executable>>;
}

/// A compiled program; `run` may be called from several threads at once.
pub trait Executable: Send + Sync {
    /// Runs on host inputs (already checked against the program) and returns the outputs.
    fn run(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>>;
}
