//! The wgpu backend: programs compiled into fused WGSL compute kernels, run on any adapter
//! (Vulkan, Metal, DX12, or a software adapter such as Mesa's lavapipe).

mod device;
pub(crate) mod ir;
pub(crate) mod kernels;
mod lower;
mod plan;
mod render;
mod runtime;
mod timing;
pub(crate) mod wgsl;

pub use device::{AdapterSummary, DeviceLimits, GpuContext, GpuOptions, list_adapters};
pub use runtime::{GpuBackend, GpuExecutable};
pub use timing::KernelTiming;
