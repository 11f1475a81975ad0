//! Lamina runs Keras-style models, `Lambda` layers included, on the CPU interpreter or a GPU.
//! A `Lambda` is recorded once as an expression graph, so a model is data: it compiles to fused
//! kernels and runs the same everywhere.
//!
//! ```
//! use lamina::prelude::*;
//!
//! let mut model = Sequential::new();
//! model.add(Input::new(&[3]))?;
//! model.add(Lambda::new(|x| x.square()))?;
//! let x = HostTensor::new(&[1, 3], vec![1.0f32, -2.0, 3.0])?;
//! let y = model.predict(&[x])?;
//! assert_eq!(y[0].as_f32()?, &[1.0, 4.0, 9.0]);
//! # Ok::<(), lamina::Error>(())
//! ```

pub use lamina_backend::cpu::isa as cpu_isa;
#[cfg(feature = "gpu")]
pub use lamina_backend::gpu::{AdapterSummary, GpuBackend, GpuOptions, list_adapters};
#[cfg(feature = "gpu")]
pub use lamina_backend::shared_gpu;
pub use lamina_backend::{
    Backend, BackendKind, CpuBackend, Executable, KernelTiming, MEMORY_LIMIT_ENV, MemoryBudget,
    RunStats, Session, create_backend,
};
pub use lamina_graph::*;
/// Keras 3 import (`.keras`, legacy `.h5`, `.weights.h5`): the `lamina-keras` crate.
pub use lamina_keras as keras;
pub use lamina_keras::{KerasBindings, KerasImport};

pub mod bench;
mod predict;
pub use predict::{ModelInputs, Predict};

/// Everything a model-building program needs: `use lamina::prelude::*;`.
pub mod prelude {
    pub use crate::Predict;
    pub use lamina_backend::{BackendKind, MemoryBudget, Session};
    /// Every layer and its configuration type (`Dense`, `DenseConfig`, `Configurable`).
    pub use lamina_graph::layers::*;
    pub use lamina_graph::{
        Axes, DType, Dim, Error, HostTensor, Layer, Model, Result, Sequential, Shape, Size,
        SliceArg, Tensor, s,
    };
    pub use lamina_keras::{KerasBindings, KerasImport};
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "gpu"))]
pub struct ReadmeDoctests;

/// The book's examples (`docs/src`), compiled and run as doctests.
#[cfg(all(doctest, feature = "gpu"))]
pub mod book {
    #[doc = include_str!("../docs/src/introduction.md")]
    pub struct Introduction;
    #[doc = include_str!("../docs/src/lambda.md")]
    pub struct Lambda;
    #[doc = include_str!("../docs/src/ops.md")]
    pub struct Ops;
    #[doc = include_str!("../docs/src/layers.md")]
    pub struct Layers;
    #[doc = include_str!("../docs/src/recurrent.md")]
    pub struct Recurrent;
    #[doc = include_str!("../docs/src/saving.md")]
    pub struct Saving;
    #[doc = include_str!("../docs/src/errors.md")]
    pub struct Errors;
    #[doc = include_str!("../docs/src/cli.md")]
    pub struct Cli;
    #[doc = include_str!("../docs/src/backends.md")]
    pub struct Backends;
    #[doc = include_str!("../docs/src/performance.md")]
    pub struct Performance;
    #[doc = include_str!("../docs/src/internals.md")]
    pub struct Internals;
}
