//! Rewrites of a program for one backend, applied when it is compiled for concrete input
//! shapes: the graph crate keeps what the user wrote, and a backend reshapes it to what its
//! kernels can do.

mod wide_concat;

pub use wide_concat::split_wide_concats;
