//! Keras configs of the preprocessing layers saved inside models (`Normalization`,
//! `CenterCrop`) and of the residual-block layers `keras.applications` registers
//! (`LayerScale`, `StochasticDepth`).

use super::config::{f32_or, get, model_err, usize_of};
use lamina_graph::error::Result;
use lamina_graph::layer::LayerRef;
use lamina_graph::layers::{
    CenterCrop, FixedStatistics, LayerScale, Normalization, ResizeMethod, Resizing, StochasticDepth,
};
use serde_json::Value;
use std::sync::Arc;

/// A nested list of numbers (or one number) as its shape and row-major values.
fn array_of(v: &Value, key: &str, layer: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    fn walk(v: &Value, depth: usize, shape: &mut Vec<usize>, out: &mut Vec<f32>) -> Option<()> {
        match v {
            Value::Number(n) => {
                (depth == shape.len()).then_some(())?;
                out.push(n.as_f64()? as f32);
                Some(())
            }
            Value::Array(items) if depth < 8 => {
                if depth == shape.len() {
                    shape.push(items.len());
                } else if shape[depth] != items.len() {
                    return None;
                }
                items
                    .iter()
                    .try_for_each(|i| walk(i, depth + 1, shape, out))
            }
            _ => None,
        }
    }
    let (mut shape, mut out) = (Vec::new(), Vec::new());
    walk(v, 0, &mut shape, &mut out).ok_or_else(|| {
        model_err(format!(
            "layer '{layer}': '{key}' is not a number or a rectangular list of numbers"
        ))
    })?;
    Ok((shape, out))
}

fn normalization(cfg: &Value, n: &str) -> Result<Normalization> {
    let axis: Vec<isize> = match cfg.get("axis") {
        None => vec![-1],
        Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_i64().map(|x| x as isize))
            .collect::<Option<_>>()
            .ok_or_else(|| model_err(format!("layer '{n}': axis is not a list of integers")))?,
        Some(v) => vec![
            v.as_i64()
                .ok_or_else(|| model_err(format!("layer '{n}': axis {v} is not an integer")))?
                as isize,
        ],
    };
    let invert = match cfg.get("invert") {
        None | Some(Value::Null) => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| model_err(format!("layer '{n}': invert is not true or false")))?,
    };
    let mut layer = Normalization::new().axis(&axis).invert(invert).name(n);
    let stat = |key: &str| cfg.get(key).filter(|v| !v.is_null());
    match (stat("mean"), stat("variance")) {
        (None, None) => {}
        (Some(m), Some(v)) => {
            let (shape, mean) = array_of(m, "mean", n)?;
            let (vshape, variance) = array_of(v, "variance", n)?;
            if shape != vshape {
                return Err(model_err(format!(
                    "layer '{n}': mean has shape {shape:?} but variance {vshape:?}"
                )));
            }
            layer = layer.statistics(FixedStatistics {
                shape,
                mean,
                variance,
            });
        }
        _ => {
            return Err(model_err(format!(
                "layer '{n}': give both mean and variance, or neither"
            )));
        }
    }
    Ok(layer)
}

/// A preprocessing or residual-block layer (`Normalization`, `CenterCrop`, `Resizing`,
/// `LayerScale`, `StochasticDepth`) from its Keras config; `None` for any other class.
pub(super) fn make(class: &str, cfg: &Value, n: &str) -> Result<Option<LayerRef>> {
    Ok(Some(match class {
        "Normalization" => Arc::new(normalization(cfg, n)?),
        "CenterCrop" => {
            if let Some(Value::String(f)) = cfg.get("data_format")
                && f != "channels_last"
            {
                return Err(model_err(format!(
                    "layer '{n}': data_format '{f}' is not supported (channels_last only)"
                )));
            }
            Arc::new(
                CenterCrop::new(usize_of(cfg, "height", n)?, usize_of(cfg, "width", n)?).name(n),
            )
        }
        "Resizing" => {
            for key in ["crop_to_aspect_ratio", "pad_to_aspect_ratio", "antialias"] {
                if cfg.get(key).and_then(Value::as_bool) == Some(true) {
                    return Err(model_err(format!(
                        "layer '{n}': Resizing with {key}=True is not supported"
                    )));
                }
            }
            if let Some(Value::String(f)) = cfg.get("data_format")
                && f != "channels_last"
            {
                return Err(model_err(format!(
                    "layer '{n}': data_format '{f}' is not supported (channels_last only)"
                )));
            }
            let method = match cfg.get("interpolation").and_then(Value::as_str) {
                None | Some("bilinear") => ResizeMethod::Bilinear,
                Some("nearest") => ResizeMethod::Nearest,
                Some(other) => {
                    return Err(model_err(format!(
                        "layer '{n}': interpolation '{other}' is not supported (bilinear and \
                         nearest are)"
                    )));
                }
            };
            Arc::new(
                Resizing::new(usize_of(cfg, "height", n)?, usize_of(cfg, "width", n)?)
                    .interpolation(method)
                    .name(n),
            )
        }
        "LayerScale" => {
            let init = get(cfg, "init_values", n)?
                .as_f64()
                .ok_or_else(|| model_err(format!("layer '{n}': init_values is not a number")))?;
            Arc::new(LayerScale::new(init as f32, usize_of(cfg, "projection_dim", n)?).name(n))
        }
        "StochasticDepth" => {
            Arc::new(StochasticDepth::new(f32_or(cfg, "drop_path_rate", 0.0, n)?).name(n))
        }
        _ => return Ok(None),
    }))
}
