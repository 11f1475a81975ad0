//! Keras's reshaping layers: reshape, flatten, permute, repeat, pad, crop, up-sample.

use crate::config::read::{data_format_of, get, i64_of, model_err, pairs_of};
use lamina_graph::error::Result;
use lamina_graph::layer::LayerRef;
use lamina_graph::layers::*;
use serde_json::Value;
use std::sync::Arc;

/// A reshaping layer (reshape, flatten, permute, repeat, pad, crop, up-sample) from its config.
pub(super) fn reshaping_layer(class: &str, cfg: &Value, n: &str) -> Result<Option<LayerRef>> {
    Ok(Some(match class {
        "Reshape" => {
            let target = get(cfg, "target_shape", n)?
                .as_array()
                .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
                .ok_or_else(|| model_err(format!("layer '{n}': target_shape is not a list")))?;
            Arc::new(Reshape::new(&target).name(n))
        }
        "Flatten" => Arc::new(Flatten::new().data_format(data_format_of(cfg, n)?).name(n)),
        "RepeatVector" => Arc::new(RepeatVector::new(i64_of(get(cfg, "n", n)?, "n", n)?).name(n)),
        "Permute" => {
            let dims = get(cfg, "dims", n)?
                .as_array()
                .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
                .ok_or_else(|| model_err(format!("layer '{n}': dims is not a list")))?;
            Arc::new(Permute::new(&dims).name(n))
        }
        "ZeroPadding1D" => Arc::new(
            ZeroPadding1D::asymmetric(pairs_of::<1>(cfg, "padding", n)?)
                .data_format(data_format_of(cfg, n)?)
                .name(n),
        ),
        "ZeroPadding2D" => Arc::new(
            ZeroPadding2D::asymmetric(pairs_of::<2>(cfg, "padding", n)?)
                .data_format(data_format_of(cfg, n)?)
                .name(n),
        ),
        "Cropping1D" => {
            Arc::new(Cropping1D::asymmetric(pairs_of::<1>(cfg, "cropping", n)?).name(n))
        }
        "Cropping2D" => Arc::new(
            Cropping2D::asymmetric(pairs_of::<2>(cfg, "cropping", n)?)
                .data_format(data_format_of(cfg, n)?)
                .name(n),
        ),
        "UpSampling1D" => {
            Arc::new(UpSampling1D::new(i64_of(get(cfg, "size", n)?, "size", n)?).name(n))
        }
        "UpSampling2D" => {
            let [(rows, _), (cols, _)] = pairs_of::<2>(cfg, "size", n)?;
            let interpolation = match cfg.get("interpolation") {
                None | Some(Value::Null) => Interpolation::Nearest,
                Some(Value::String(s)) => Interpolation::parse(s)?,
                Some(other) => {
                    return Err(model_err(format!(
                        "layer '{n}': interpolation {other} is not a name"
                    )));
                }
            };
            Arc::new(
                UpSampling2D::new(rows, cols)
                    .data_format(data_format_of(cfg, n)?)
                    .interpolation(interpolation)
                    .name(n),
            )
        }
        _ => return Ok(None),
    }))
}
