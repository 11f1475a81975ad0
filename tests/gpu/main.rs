//! The GPU backend: its compiler (planning, lowering, WGSL), kernels against the CPU interpreter, float16, timing, memory budgets, and the CPU instruction-set selection.
//! One test binary for these modules (each was its own binary once: one link instead of
//! 8).

#[cfg(feature = "gpu")]
#[path = "../common/mod.rs"]
mod common;

mod backend;
mod cpu_isa;
mod gpu_compiler;
mod gpu_conv;
mod gpu_f16;
mod gpu_shaped;
mod gpu_timing;
mod memory_budget;
