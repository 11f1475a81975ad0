//! Layers against values worked out independently, on the CPU interpreter and (where the GPU feature is on) the GPU backend, which must agree.
//! One test binary for these modules (each was its own binary once: one link instead of
//! 13).

#[cfg(feature = "gpu")]
#[path = "../common/mod.rs"]
mod common;

mod activations;
mod attention;
mod conv_layers;
mod deep_graph;
mod dot_attention;
mod image_layers;
mod keras_lambda;
mod masks_and_layers;
mod nested_models;
mod ops;
mod recurrent;
mod sequence_ops;
mod trainable;
