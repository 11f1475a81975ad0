//! Keras's basic layer families: core (`Dense`, `Embedding`, ...), normalization, activation
//! and merging layers.

use crate::config::read::{
    activation_of, axis_of, bool_or, f32_or, get, i64_of, model_err, usize_of,
};
use lamina_graph::error::Result;
use lamina_graph::layer::LayerRef;
use lamina_graph::layers::*;
use serde_json::Value;
use std::sync::Arc;

/// A core layer (`Dense`, `Embedding`, `Dropout`, `Masking`, `Rescaling`) from its config.
pub(super) fn core_layer(class: &str, cfg: &Value, n: &str) -> Result<Option<LayerRef>> {
    Ok(Some(match class {
        "Dense" => Arc::new(
            Dense::new(usize_of(cfg, "units", n)?)
                .activation(activation_of(cfg, n)?)
                .use_bias(bool_or(cfg, "use_bias", true, n)?)
                .name(n),
        ),
        "Embedding" => Arc::new(
            Embedding::new(
                usize_of(cfg, "input_dim", n)?,
                usize_of(cfg, "output_dim", n)?,
            )
            .mask_zero(bool_or(cfg, "mask_zero", false, n)?)
            .name(n),
        ),
        "Dropout" => Arc::new(Dropout::new(f32_or(cfg, "rate", 0.0, n)?).name(n)),
        "Identity" => Arc::new(Identity::new().name(n)),
        "Masking" => Arc::new(Masking::new(f32_or(cfg, "mask_value", 0.0, n)?).name(n)),
        "Rescaling" => Arc::new(
            Rescaling::new(
                f32_or(cfg, "scale", 1.0, n)?,
                f32_or(cfg, "offset", 0.0, n)?,
            )
            .name(n),
        ),
        _ => return Ok(None),
    }))
}

/// A `LayerNormalization` or `BatchNormalization` from its config.
pub(super) fn normalization_layer(class: &str, cfg: &Value, n: &str) -> Result<Option<LayerRef>> {
    Ok(Some(match class {
        "LayerNormalization" => {
            let axes = match cfg.get("axis") {
                None | Some(Value::Null) => vec![-1],
                Some(Value::Array(a)) => a.iter().map(|v| axis_of(v, n)).collect::<Result<_>>()?,
                Some(v) => vec![axis_of(v, n)?],
            };
            Arc::new(
                LayerNormalization::new()
                    .axis(&axes)
                    .epsilon(f32_or(cfg, "epsilon", 1e-3, n)?)
                    .center(bool_or(cfg, "center", true, n)?)
                    .scale(bool_or(cfg, "scale", true, n)?)
                    .rms_scaling(bool_or(cfg, "rms_scaling", false, n)?)
                    .name(n),
            )
        }
        "BatchNormalization" => {
            let axis = match cfg.get("axis") {
                None | Some(Value::Null) => -1,
                Some(Value::Array(a)) if a.len() == 1 => axis_of(&a[0], n)?,
                Some(v) => axis_of(v, n)?,
            };
            if bool_or(cfg, "renorm", false, n)? {
                return Err(model_err(format!(
                    "layer '{n}': BatchNormalization with renorm=True is not supported"
                )));
            }
            Arc::new(
                BatchNormalization::new()
                    .axis(axis)
                    .epsilon(f32_or(cfg, "epsilon", 1e-3, n)?)
                    .momentum(f32_or(cfg, "momentum", 0.99, n)?)
                    .center(bool_or(cfg, "center", true, n)?)
                    .scale(bool_or(cfg, "scale", true, n)?)
                    .name(n),
            )
        }
        _ => return Ok(None),
    }))
}

/// An activation layer (`Activation`, `Softmax`, the ReLUs, `ELU`) from its config.
pub(super) fn activation_layer(class: &str, cfg: &Value, n: &str) -> Result<Option<LayerRef>> {
    Ok(Some(match class {
        "Activation" => Arc::new(ActivationLayer::new(activation_of(cfg, n)?).name(n)),
        "Softmax" => {
            let axis = match cfg.get("axis") {
                None | Some(Value::Null) => -1,
                Some(Value::Array(a)) if a.len() == 1 => axis_of(&a[0], n)?,
                Some(v) => axis_of(v, n)?,
            };
            Arc::new(Softmax::new().axis(axis).name(n))
        }
        "ReLU" => {
            let mut l = ReLU::new()
                .negative_slope(f32_or(cfg, "negative_slope", 0.0, n)?)
                .threshold(f32_or(cfg, "threshold", 0.0, n)?);
            if cfg.get("max_value").is_some_and(|v| !v.is_null()) {
                l = l.max_value(f32_or(cfg, "max_value", 0.0, n)?);
            }
            Arc::new(l.name(n))
        }
        "LeakyReLU" => Arc::new(
            LeakyReLU::new()
                .negative_slope(f32_or(cfg, "negative_slope", 0.3, n)?)
                .name(n),
        ),
        "ELU" => Arc::new(ELU::new().alpha(f32_or(cfg, "alpha", 1.0, n)?).name(n)),
        "PReLU" => {
            let shared = match cfg.get("shared_axes") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| i64_of(v, "shared_axes", n))
                    .collect::<Result<_>>()?,
                Some(v) => vec![i64_of(v, "shared_axes", n)?],
            };
            Arc::new(PReLU::new().shared_axes(&shared).name(n))
        }
        _ => return Ok(None),
    }))
}

/// A merging layer (`Add`, ..., `Concatenate`, `Dot`) from its config.
pub(super) fn merging_layer(class: &str, cfg: &Value, n: &str) -> Result<Option<LayerRef>> {
    Ok(Some(match class {
        "Add" => Arc::new(Add::new().name(n)),
        "Subtract" => Arc::new(Subtract::new().name(n)),
        "Multiply" => Arc::new(Multiply::new().name(n)),
        "Average" => Arc::new(Average::new().name(n)),
        "Maximum" => Arc::new(Maximum::new().name(n)),
        "Minimum" => Arc::new(Minimum::new().name(n)),
        "Concatenate" => Arc::new(
            Concatenate::new()
                .axis(match cfg.get("axis") {
                    None | Some(Value::Null) => -1,
                    Some(v) => axis_of(v, n)?,
                })
                .name(n),
        ),
        "Dot" => {
            let (a, b) = match get(cfg, "axes", n)? {
                Value::Array(p) if p.len() == 2 => {
                    (i64_of(&p[0], "axes", n)?, i64_of(&p[1], "axes", n)?)
                }
                Value::Array(p) if p.len() == 1 => {
                    let a = i64_of(&p[0], "axes", n)?;
                    (a, a)
                }
                v => {
                    let a = i64_of(v, "axes", n)?;
                    (a, a)
                }
            };
            Arc::new(
                Dot::pair(a, b)
                    .normalize(bool_or(cfg, "normalize", false, n)?)
                    .name(n),
            )
        }
        _ => return Ok(None),
    }))
}
