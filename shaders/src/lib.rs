//! The hand-written WGSL that Lamina's GPU kernels are built from, one complete module per
//! file in this folder (each validated by naga in `tests/validate.rs`), embedded so that the
//! published crates carry them.

/// Helper functions every generated kernel may call (`helpers.wgsl`): NaN-aware comparisons,
/// max/min and casts, tanh, erf, pow, expm1, log1p, floor division and modulo.
pub const HELPERS: &str = include_str!("../helpers.wgsl");
