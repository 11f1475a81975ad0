//! The backends of Lamina: the `Backend` trait, the CPU interpreter (reference semantics of
//! every primitive), backend selection and sessions.

mod activation;
pub mod backend;
pub mod budget;
pub mod cpu;
pub mod gpu;
pub mod opdef;
pub mod passes;
pub mod select;
pub mod session;

pub use backend::{Backend, Executable, RunStats};
pub use budget::{MEMORY_LIMIT_ENV, MemoryBudget};
pub use cpu::CpuBackend;
pub use select::{BackendKind, create_backend, shared_gpu};
pub use session::{MAX_CACHED_EXECUTABLES, Session};
