//! Keras's wrapper layers: `TimeDistributed` and `Bidirectional`, made with the layers they
//! wrap.

use super::make_layer;
use crate::KerasBindings;
use crate::config::read::{cfg_of, class_of, get, is_container, model_err, name_of};
use lamina_graph::error::Result;
use lamina_graph::layer::LayerRef;
use lamina_graph::layers::*;
use lamina_graph::limits::printable;
use serde_json::Value;
use std::sync::Arc;

/// A `TimeDistributed` or `Bidirectional` from its config, with the layers it wraps.
pub(super) fn wrapper_layer(
    class: &str,
    cfg: &Value,
    n: &str,
    bindings: &KerasBindings,
) -> Result<Option<LayerRef>> {
    Ok(Some(match class {
        "TimeDistributed" => {
            let inner = wrapped(cfg, "layer", n)?;
            let class = class_of(inner);
            if is_container(class) || class == "InputLayer" {
                return Err(model_err(format!(
                    "layer '{n}': TimeDistributed wraps a {}, which Lamina does not support \
                     (it wraps single layers)",
                    printable(class)
                )));
            }
            let layer = make_layer(class, cfg_of(inner), &name_of(inner), bindings)?;
            Arc::new(TimeDistributed::wrap(layer).name(n))
        }
        "Bidirectional" => {
            let merge = merge_mode_of(cfg, n)?;
            let rnn = |key: &str| -> Result<LayerRef> {
                let inner = wrapped(cfg, key, n)?;
                let class = class_of(inner);
                if !matches!(class, "SimpleRNN" | "LSTM" | "GRU") {
                    return Err(model_err(format!(
                        "layer '{n}': Bidirectional wraps a {} ('{key}'); Lamina's wraps \
                         SimpleRNN, LSTM or GRU",
                        printable(class)
                    )));
                }
                // Keras names the wrapped layers `forward_<name>` and `backward_<name>`;
                // Lamina adds those prefixes itself.
                let inner_name = name_of(inner);
                let base = inner_name
                    .strip_prefix("forward_")
                    .or_else(|| inner_name.strip_prefix("backward_"))
                    .unwrap_or(&inner_name);
                make_layer(class, cfg_of(inner), base, bindings)
            };
            let forward = rnn("layer")?;
            let wrapper = match cfg.get("backward_layer") {
                None | Some(Value::Null) => Bidirectional::new(forward.as_ref()),
                Some(_) => {
                    Bidirectional::with_backward(forward.as_ref(), rnn("backward_layer")?.as_ref())
                }
            }
            .map_err(|e| model_err(format!("layer '{n}': {e}")))?;
            Arc::new(wrapper.merge_mode(merge).name(n))
        }
        _ => return Ok(None),
    }))
}

/// A `Bidirectional`'s `merge_mode`: `concat` where absent, no merge where `null`.
fn merge_mode_of(cfg: &Value, n: &str) -> Result<MergeMode> {
    Ok(match cfg.get("merge_mode") {
        None => MergeMode::Concat,
        Some(Value::Null) => MergeMode::None,
        Some(Value::String(m)) => match m.as_str() {
            "concat" => MergeMode::Concat,
            "sum" => MergeMode::Sum,
            "mul" => MergeMode::Mul,
            "ave" => MergeMode::Ave,
            other => {
                return Err(model_err(format!(
                    "layer '{n}': merge_mode '{}' is not concat, sum, mul, ave or None",
                    printable(other)
                )));
            }
        },
        Some(other) => {
            return Err(model_err(format!(
                "layer '{n}': merge_mode {other} is not a name"
            )));
        }
    })
}

/// The layer config a wrapper (`TimeDistributed`, `Bidirectional`) holds under `key`.
fn wrapped<'v>(cfg: &'v Value, key: &str, layer: &str) -> Result<&'v Value> {
    let inner = get(cfg, key, layer)?;
    if !inner.is_object() {
        return Err(model_err(format!(
            "layer '{layer}': '{key}' is not a layer configuration"
        )));
    }
    Ok(inner)
}
