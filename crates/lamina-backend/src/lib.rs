//! The backends of Lamina: the `Backend` trait, the CPU interpreter (reference semantics of
//! every primitive), backend selection and sessions.

mod activation;
pub mod backend;
pub mod budget;
pub mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;
// Parts of the op table (names, helper queries, `Scalar::DTYPE`) serve only its tests, and its
// WGSL half only the GPU backend: dead code is checked in test builds with the `gpu` feature.
#[cfg_attr(not(all(test, feature = "gpu")), allow(dead_code))]
mod opdef;
mod passes;
pub mod select;
pub mod session;

pub use backend::{Backend, Executable, KernelTiming, RunStats};
pub use budget::{MEMORY_LIMIT_ENV, MemoryBudget};
pub use cpu::CpuBackend;
#[cfg(feature = "gpu")]
pub use select::shared_gpu;
pub use select::{BackendKind, create_backend};
pub use session::{MAX_CACHED_EXECUTABLES, Session};

/// Compiler internals, for Lamina's own tests, benchmarks and tools.
///
/// **Unstable:** nothing here is covered by semver; any item may change or disappear in any
/// release, patch releases included. Programs that run models need only the items at the
/// crate root (`Session`, `Backend`, `create_backend`, ...).
pub mod unstable {
    /// The GPU compiler's typed kernel IR (the type of [`KernelCode::ir`] and of its
    /// bindings), as inspected by the WGSL tests.
    #[cfg(feature = "gpu")]
    pub mod ir {
        pub use crate::gpu::ir::*;
    }
    /// A compiled kernel: its WGSL, bindings and IR, as returned by
    /// [`GpuBackend::kernels_for`](crate::gpu::GpuBackend::kernels_for) and
    /// [`GpuExecutable::kernels`](crate::gpu::GpuExecutable::kernels).
    #[cfg(feature = "gpu")]
    pub use crate::gpu::kernels::KernelCode;
}
