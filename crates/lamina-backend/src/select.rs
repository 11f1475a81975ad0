//! Backend selection: `auto` (a GPU when there is one, else the CPU), `cpu`, or `gpu`, with the
//! `LAMINA_BACKEND` environment variable as an override.

use crate::backend::Backend;
use crate::cpu::CpuBackend;
#[cfg(feature = "gpu")]
use crate::gpu::GpuBackend;
use lamina_graph::{Error, Result};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Which backend a session uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// A GPU adapter when one exists, otherwise the CPU interpreter.
    #[default]
    Auto,
    /// The CPU interpreter.
    Cpu,
    /// A GPU adapter; an error if there is none.
    Gpu,
}

impl BackendKind {
    /// The kind named by `LAMINA_BACKEND` (`cpu`, `gpu`, `auto`), or `Auto` when unset.
    pub fn from_env() -> Result<BackendKind> {
        match std::env::var("LAMINA_BACKEND") {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(BackendKind::Auto),
        }
    }
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendKind::Auto),
            "cpu" => Ok(BackendKind::Cpu),
            "gpu" => Ok(BackendKind::Gpu),
            other => Err(Error::Backend {
                backend: other.to_string(),
                detail: "unknown backend; use cpu, gpu or auto".into(),
            }),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Auto => "auto",
            BackendKind::Cpu => "cpu",
            BackendKind::Gpu => "gpu",
        })
    }
}

#[cfg(feature = "gpu")]
/// The process-wide GPU backend: one device, one pipeline cache and one set of resident weights
/// shared by every session, opened on first use (the outcome, adapter or error, is kept).
pub fn shared_gpu() -> Result<Arc<GpuBackend>> {
    static GPU: std::sync::OnceLock<std::result::Result<Arc<GpuBackend>, Error>> =
        std::sync::OnceLock::new();
    GPU.get_or_init(|| GpuBackend::new().map(Arc::new)).clone()
}

/// Makes the backend of a kind: `Cpu` the interpreter, `Gpu` the shared GPU backend (an error
/// if there is no adapter), `Auto` the GPU when there is one and otherwise the interpreter.
#[cfg(feature = "gpu")]
pub fn create_backend(kind: BackendKind) -> Result<Arc<dyn Backend>> {
    match kind {
        BackendKind::Cpu => Ok(Arc::new(CpuBackend::new())),
        BackendKind::Gpu => Ok(Arc::new(shared_gpu()?)),
        BackendKind::Auto => match shared_gpu() {
            Ok(gpu) => Ok(Arc::new(gpu)),
            Err(_) => Ok(Arc::new(CpuBackend::new())),
        },
    }
}

/// Makes the backend of a kind. This build has no GPU backend (the `gpu` feature is off):
/// `Auto` is the interpreter and `Gpu` an error that says so.
#[cfg(not(feature = "gpu"))]
pub fn create_backend(kind: BackendKind) -> Result<Arc<dyn Backend>> {
    match kind {
        BackendKind::Cpu | BackendKind::Auto => Ok(Arc::new(CpuBackend::new())),
        BackendKind::Gpu => Err(Error::Backend {
            backend: "gpu".into(),
            detail: "this build of Lamina has no GPU backend: enable the `gpu` feature (on by \
                     default)"
                .into(),
        }),
    }
}
