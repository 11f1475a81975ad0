//! Keras's attention layers: `MultiHeadAttention`, `Attention` and `AdditiveAttention`
//! (whose call arguments the graph builder sets on the layers it makes for each call).

use crate::config::read::{bool_or, f32_or, i64_of, model_err, usize_of};
use lamina_graph::error::Result;
use lamina_graph::layer::LayerRef;
use lamina_graph::layers::*;
use serde_json::Value;
use std::sync::Arc;

/// A `MultiHeadAttention`, `Attention` or `AdditiveAttention` from its config.
pub(super) fn attention_layer(class: &str, cfg: &Value, n: &str) -> Result<Option<LayerRef>> {
    Ok(Some(match class {
        "MultiHeadAttention" => Arc::new(mha_of(cfg, n)?),
        "Attention" | "AdditiveAttention" => dot_attention_of(class, cfg, n, false, false)?,
        _ => return Ok(None),
    }))
}

/// An `Attention` or `AdditiveAttention` from its Keras config, with the call arguments
/// `use_causal_mask` and `return_attention_scores`.
pub(in crate::config) fn dot_attention_of(
    class: &str,
    cfg: &Value,
    n: &str,
    causal: bool,
    scores: bool,
) -> Result<LayerRef> {
    let seed = match cfg.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| model_err(format!("layer '{n}': 'seed' is not a count")))?,
        ),
    };
    let dropout = f32_or(cfg, "dropout", 0.0, n)?;
    Ok(if class == "Attention" {
        let mode = match cfg.get("score_mode") {
            None | Some(Value::Null) => ScoreMode::Dot,
            Some(Value::String(m)) => {
                ScoreMode::from_keras(m).map_err(|e| model_err(format!("layer '{n}': {e}")))?
            }
            Some(v) => {
                return Err(model_err(format!(
                    "layer '{n}': score_mode {v} is not a name"
                )));
            }
        };
        Arc::new(
            Attention::new()
                .use_scale(bool_or(cfg, "use_scale", false, n)?)
                .score_mode(mode)
                .dropout(dropout)
                .seed(seed)
                .use_causal_mask(causal)
                .return_attention_scores(scores)
                .name(n),
        )
    } else {
        Arc::new(
            AdditiveAttention::new()
                .use_scale(bool_or(cfg, "use_scale", true, n)?)
                .dropout(dropout)
                .seed(seed)
                .use_causal_mask(causal)
                .return_attention_scores(scores)
                .name(n),
        )
    })
}

/// A `MultiHeadAttention` from its Keras config (its call arguments are set by the caller).
pub(in crate::config) fn mha_of(cfg: &Value, n: &str) -> Result<MultiHeadAttention> {
    if bool_or(cfg, "use_gate", false, n)? {
        return Err(model_err(format!(
            "layer '{n}': MultiHeadAttention with use_gate=True is not supported"
        )));
    }
    if cfg.get("sliding_window").is_some_and(|v| !v.is_null()) {
        return Err(model_err(format!(
            "layer '{n}': MultiHeadAttention with a sliding_window is not supported"
        )));
    }
    let list = |key: &str| -> Result<Option<Vec<i64>>> {
        Ok(match cfg.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| i64_of(v, key, n))
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(v) => Some(vec![i64_of(v, key, n)?]),
        })
    };
    let mut l =
        MultiHeadAttention::new(usize_of(cfg, "num_heads", n)?, usize_of(cfg, "key_dim", n)?)
            .dropout(f32_or(cfg, "dropout", 0.0, n)?)
            .use_bias(bool_or(cfg, "use_bias", true, n)?);
    if cfg.get("value_dim").is_some_and(|v| !v.is_null()) {
        l = l.value_dim(usize_of(cfg, "value_dim", n)?);
    }
    if let Some(shape) = list("output_shape")? {
        let shape = shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| model_err(format!("layer '{n}': output_shape {shape:?} is not sizes")))?;
        l = l.output_shape(&shape);
    }
    if let Some(axes) = list("attention_axes")? {
        let axes = axes
            .iter()
            .map(|&a| isize::try_from(a))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| {
                model_err(format!(
                    "layer '{n}': attention_axes {axes:?} are too large"
                ))
            })?;
        l = l.attention_axes(&axes);
    }
    Ok(l.name(n))
}
