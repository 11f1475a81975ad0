//! Whole models: the public API, bad and hostile input, saving and loading, the file format across versions, Keras import, and the `lamina` command.
//! One test binary for these modules (each was its own binary once: one link instead of
//! 8).

#[cfg(feature = "gpu")]
#[path = "../common/mod.rs"]
mod common;

mod api;
mod bad_input;
mod cli;
mod format_compat;
mod hostile;
mod keras_import;
mod save_load;
mod without_gpu_feature;
