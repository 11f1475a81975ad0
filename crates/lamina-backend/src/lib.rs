//! The backends of Lamina: the `Backend` trait, the CPU interpreter (reference semantics of
//! every primitive), backend selection and sessions.

mod activation;
pub mod backend;
pub mod budget;
pub mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod opdef;
pub mod passes;
pub mod select;
pub mod session;

pub use backend::{Backend, Executable, KernelTiming, RunStats};
pub use budget::{MEMORY_LIMIT_ENV, MemoryBudget};
pub use cpu::CpuBackend;
#[cfg(feature = "gpu")]
pub use select::shared_gpu;
pub use select::{BackendKind, create_backend};
pub use session::{MAX_CACHED_EXECUTABLES, Session};
