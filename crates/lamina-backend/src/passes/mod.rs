//! Rewrites of a program for one backend, applied when it is compiled for concrete input
//! shapes: the graph crate keeps what the user wrote, and a backend reshapes it to what its
//! kernels can do.

mod unroll_recurrences;
#[cfg(feature = "gpu")] // the GPU's pass: kernels with a bounded number of bindings
mod wide_concat;

pub use unroll_recurrences::expand_recurrences_except;
#[cfg(feature = "gpu")]
pub use wide_concat::split_wide_concats;
