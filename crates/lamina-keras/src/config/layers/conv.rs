//! Keras's windowed layers over spatial axes: pooling and convolution.

use crate::config::read::{
    activation_of, bool_or, data_format_of, padding_of, sizes_of, sizes_or, usize_of, usize_or,
};
use lamina_graph::error::Result;
use lamina_graph::layer::LayerRef;
use lamina_graph::layers::*;
use serde_json::Value;
use std::sync::Arc;

/// A pooling layer (max, average, global) from its config.
pub(super) fn pooling_layer(class: &str, cfg: &Value, n: &str) -> Result<Option<LayerRef>> {
    Ok(Some(match class {
        "MaxPooling1D" | "MaxPooling2D" | "AveragePooling1D" | "AveragePooling2D" => {
            let rank = if class.ends_with("1D") { 1 } else { 2 };
            let pool = match cfg.get("pool_size") {
                None | Some(Value::Null) => Sizes(vec![2]),
                _ => sizes_of(cfg, "pool_size", n)?,
            };
            let strides = match cfg.get("strides") {
                None | Some(Value::Null) => None,
                _ => Some(sizes_of(cfg, "strides", n)?),
            };
            let padding = padding_of(cfg, n)?;
            let format = data_format_of(cfg, n)?;
            macro_rules! pool {
                ($ty:ident) => {{
                    let mut l = $ty::new(pool).padding(padding).data_format(format).name(n);
                    if let Some(s) = strides {
                        l = l.strides(s);
                    }
                    Arc::new(l) as LayerRef
                }};
            }
            match (class.starts_with("Max"), rank) {
                (true, 1) => pool!(MaxPooling1D),
                (true, _) => pool!(MaxPooling2D),
                (false, 1) => pool!(AveragePooling1D),
                (false, _) => pool!(AveragePooling2D),
            }
        }
        "GlobalAveragePooling1D" => Arc::new(
            GlobalAveragePooling1D::new()
                .data_format(data_format_of(cfg, n)?)
                .keepdims(bool_or(cfg, "keepdims", false, n)?)
                .name(n),
        ),
        "GlobalMaxPooling1D" => Arc::new(
            GlobalMaxPooling1D::new()
                .data_format(data_format_of(cfg, n)?)
                .keepdims(bool_or(cfg, "keepdims", false, n)?)
                .name(n),
        ),
        "GlobalAveragePooling2D" => Arc::new(
            GlobalAveragePooling2D::new()
                .data_format(data_format_of(cfg, n)?)
                .keepdims(bool_or(cfg, "keepdims", false, n)?)
                .name(n),
        ),
        "GlobalMaxPooling2D" => Arc::new(
            GlobalMaxPooling2D::new()
                .data_format(data_format_of(cfg, n)?)
                .keepdims(bool_or(cfg, "keepdims", false, n)?)
                .name(n),
        ),
        _ => return Ok(None),
    }))
}

/// A convolution layer (plain, depthwise, separable, transposed) from its config.
pub(super) fn conv_layer(class: &str, cfg: &Value, n: &str) -> Result<Option<LayerRef>> {
    // The options every Keras convolution layer shares, read from its config.
    macro_rules! conv_options {
        ($l:expr) => {
            $l.strides(sizes_or(cfg, "strides", 1, n)?)
                .padding(padding_of(cfg, n)?)
                .data_format(data_format_of(cfg, n)?)
                .dilation_rate(sizes_or(cfg, "dilation_rate", 1, n)?)
                .activation(activation_of(cfg, n)?)
                .use_bias(bool_or(cfg, "use_bias", true, n)?)
                .name(n)
        };
    }
    Ok(Some(match class {
        "Conv1D" => Arc::new(conv_options!(
            Conv1D::new(
                usize_of(cfg, "filters", n)?,
                sizes_of(cfg, "kernel_size", n)?,
            )
            .groups(usize_or(cfg, "groups", 1, n)?)
        )),
        "Conv2D" => Arc::new(conv_options!(
            Conv2D::new(
                usize_of(cfg, "filters", n)?,
                sizes_of(cfg, "kernel_size", n)?,
            )
            .groups(usize_or(cfg, "groups", 1, n)?)
        )),
        "DepthwiseConv2D" => {
            let multiplier = usize_or(cfg, "depth_multiplier", 1, n)?;
            let kernel = sizes_of(cfg, "kernel_size", n)?;
            Arc::new(conv_options!(
                DepthwiseConv2D::new(kernel).depth_multiplier(multiplier)
            ))
        }
        "SeparableConv1D" => Arc::new(conv_options!(
            SeparableConv1D::new(
                usize_of(cfg, "filters", n)?,
                sizes_of(cfg, "kernel_size", n)?,
            )
            .depth_multiplier(usize_or(cfg, "depth_multiplier", 1, n)?)
        )),
        "SeparableConv2D" => Arc::new(conv_options!(
            SeparableConv2D::new(
                usize_of(cfg, "filters", n)?,
                sizes_of(cfg, "kernel_size", n)?,
            )
            .depth_multiplier(usize_or(cfg, "depth_multiplier", 1, n)?)
        )),
        "Conv1DTranspose" | "Conv2DTranspose" => {
            let (filters, kernel) = (
                usize_of(cfg, "filters", n)?,
                sizes_of(cfg, "kernel_size", n)?,
            );
            let output_padding = match cfg.get("output_padding") {
                Some(v) if !v.is_null() => Some(sizes_of(cfg, "output_padding", n)?),
                _ => None,
            };
            macro_rules! transposed {
                ($ty:ident) => {{
                    let l = conv_options!($ty::new(filters, kernel));
                    Arc::new(match output_padding {
                        Some(p) => l.output_padding(p),
                        None => l,
                    })
                }};
            }
            if class == "Conv1DTranspose" {
                transposed!(Conv1DTranspose)
            } else {
                transposed!(Conv2DTranspose)
            }
        }
        _ => return Ok(None),
    }))
}
