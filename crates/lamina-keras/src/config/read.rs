//! Reading a Keras configuration's values: an entry's class, name and config, and the layer
//! arguments (counts, sizes, flags, axes, activations, formats), each checked and refused with
//! the layer's name when malformed.

use lamina_graph::dtype::DType;
use lamina_graph::error::{Error, Result};
use lamina_graph::layers::{Activation, DataFormat, Padding, Sizes};
use serde_json::Value;
use std::borrow::Cow;

/// The error for a configuration Lamina cannot rebuild a model from.
pub(crate) fn model_err(detail: impl Into<String>) -> Error {
    Error::Model {
        detail: detail.into(),
    }
}

/// An entry's `class_name` (`?` where it has none).
pub(super) fn class_of(v: &Value) -> &str {
    v.get("class_name").and_then(Value::as_str).unwrap_or("?")
}

/// Whether an entry is a recorded `keras.ops` call rather than a layer.
pub(super) fn is_op(v: &Value) -> bool {
    v.get("module")
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with("keras.src.ops"))
}

/// An entry's `config` (`null` where it has none).
pub(super) fn cfg_of(v: &Value) -> &Value {
    v.get("config").unwrap_or(&Value::Null)
}

/// An entry's name, from the entry or its config (`?` where neither has one).
pub(super) fn name_of(v: &Value) -> String {
    v.get("name")
        .and_then(Value::as_str)
        .or_else(|| cfg_of(v).get("name").and_then(Value::as_str))
        .unwrap_or("?")
        .to_string()
}

/// Whether a class is a model (a container of layers) rather than a layer.
pub(super) fn is_container(class: &str) -> bool {
    matches!(class, "Sequential" | "Functional" | "Model")
}

/// The Python function's name of a Lambda's `function` config, where Keras recorded one.
pub(super) fn function_name(f: &Value) -> Option<&str> {
    match f {
        Value::String(s) => Some(s),
        Value::Object(_) if class_of(f) != "__lambda__" => cfg_of(f).as_str(),
        _ => None,
    }
}

/// The value of a required argument `key` of layer `layer`'s config.
pub(crate) fn get<'v>(cfg: &'v Value, key: &str, layer: &str) -> Result<&'v Value> {
    cfg.get(key)
        .ok_or_else(|| model_err(format!("layer '{layer}': its config has no '{key}'")))
}

/// A required count argument.
pub(crate) fn usize_of(cfg: &Value, key: &str, layer: &str) -> Result<usize> {
    get(cfg, key, layer)?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| model_err(format!("layer '{layer}': '{key}' is not a count")))
}

/// A count argument, `default` where absent or `null`.
pub(super) fn usize_or(cfg: &Value, key: &str, default: usize, layer: &str) -> Result<usize> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        _ => usize_of(cfg, key, layer),
    }
}

/// Per-axis sizes, `default` (one size) where absent or `null`.
pub(super) fn sizes_or(cfg: &Value, key: &str, default: usize, layer: &str) -> Result<Sizes> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(Sizes(vec![default])),
        _ => sizes_of(cfg, key, layer),
    }
}

/// A number argument, `default` where absent or `null`.
pub(crate) fn f32_or(cfg: &Value, key: &str, default: f32, layer: &str) -> Result<f32> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| model_err(format!("layer '{layer}': '{key}' is not a number"))),
    }
}

/// A flag argument, `default` where absent or `null`.
pub(super) fn bool_or(cfg: &Value, key: &str, default: bool, layer: &str) -> Result<bool> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| model_err(format!("layer '{layer}': '{key}' is not true or false"))),
    }
}

/// One axis (an integer, negative from the end).
pub(super) fn axis_of(v: &Value, layer: &str) -> Result<isize> {
    v.as_i64()
        .and_then(|a| isize::try_from(a).ok())
        .ok_or_else(|| model_err(format!("layer '{layer}': axis {v} is not an integer")))
}

/// The layer's `activation`, Keras's default for the layer where the key is absent (`tanh` for
/// the recurrent layers, `linear` for the others); `null` is `linear`, as in Keras.
pub(super) fn activation_of(cfg: &Value, layer: &str) -> Result<Activation> {
    activation_or(cfg, "activation", "linear", layer)
}

/// The activation named by `key`, `default` where absent, `linear` where `null`.
pub(super) fn activation_or(
    cfg: &Value,
    key: &str,
    default: &str,
    layer: &str,
) -> Result<Activation> {
    let name = match cfg.get(key) {
        None => default,
        Some(Value::Null) => "linear",
        Some(Value::String(s)) => s.as_str(),
        Some(v @ Value::Object(_)) => cfg_of(v).as_str().ok_or_else(|| {
            model_err(format!(
                "layer '{layer}': activation {} is a custom object, which Lamina cannot rebuild",
                class_of(v)
            ))
        })?,
        Some(other) => {
            return Err(model_err(format!(
                "layer '{layer}': {key} {other} is not a name"
            )));
        }
    };
    name.parse()
        .map_err(|e: Error| model_err(format!("layer '{layer}': {e}")))
}

/// The layer's `data_format`, `channels_last` where absent or `null`.
pub(super) fn data_format_of(cfg: &Value, layer: &str) -> Result<DataFormat> {
    match cfg.get("data_format") {
        None | Some(Value::Null) => Ok(DataFormat::ChannelsLast),
        Some(Value::String(s)) => DataFormat::parse(s),
        Some(other) => Err(model_err(format!(
            "layer '{layer}': data_format {other} is not a name"
        ))),
    }
}

/// Lamina's dtype for a Keras dtype name.
pub(crate) fn dtype_of(name: &str) -> Result<DType> {
    Ok(match name {
        "float16" | "bfloat16" | "float32" | "float64" => DType::F32,
        "int8" | "int16" | "int32" | "int64" => DType::I32,
        "uint8" | "uint16" | "uint32" => DType::U32,
        "bool" => DType::Bool,
        other => return Err(model_err(format!("input dtype '{other}' is not supported"))),
    })
}

/// Keras's per-axis sizes (`kernel_size`, `strides`, `pool_size`, ...): one count or a list.
pub(super) fn sizes_of(cfg: &Value, key: &str, layer: &str) -> Result<Sizes> {
    let bad = || {
        model_err(format!(
            "layer '{layer}': '{key}' is not a count or a list of counts"
        ))
    };
    let count = |v: &Value| v.as_u64().and_then(|n| usize::try_from(n).ok());
    match get(cfg, key, layer)? {
        Value::Array(a) => Ok(Sizes(
            a.iter()
                .map(count)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?,
        )),
        v => Ok(Sizes(vec![count(v).ok_or_else(bad)?])),
    }
}

/// The layer's `padding`, `valid` where absent or `null`.
pub(super) fn padding_of(cfg: &Value, layer: &str) -> Result<Padding> {
    match cfg.get("padding") {
        None | Some(Value::Null) => Ok(Padding::Valid),
        Some(Value::String(s)) => Padding::parse(s),
        Some(other) => Err(model_err(format!(
            "layer '{layer}': padding {other} is not a name"
        ))),
    }
}

/// An integer found under argument `key`.
pub(super) fn i64_of(v: &Value, key: &str, layer: &str) -> Result<i64> {
    v.as_i64().ok_or_else(|| {
        model_err(format!(
            "layer '{layer}': '{key}' holds {v}, not an integer"
        ))
    })
}

/// `ZeroPadding`/`Cropping` amounts: one number, one per axis, or `(before, after)` per axis.
pub(super) fn pairs_of<const N: usize>(
    cfg: &Value,
    key: &str,
    layer: &str,
) -> Result<[(i64, i64); N]> {
    let v = get(cfg, key, layer)?;
    let one = |v: &Value| -> Result<(i64, i64)> {
        match v {
            Value::Array(p) if p.len() == 2 => {
                Ok((i64_of(&p[0], key, layer)?, i64_of(&p[1], key, layer)?))
            }
            v => {
                let k = i64_of(v, key, layer)?;
                Ok((k, k))
            }
        }
    };
    let mut out = [(0, 0); N];
    match v {
        Value::Array(a) if a.len() == N && (N > 1 || a[0].is_array()) => {
            for (o, x) in out.iter_mut().zip(a) {
                *o = one(x)?;
            }
        }
        v => out = [one(v)?; N],
    }
    Ok(out)
}

/// Keras's defaults for the arguments that `make_layer` reads as required: a config that lacks
/// one (hand-written, or from another version) gets Keras's value, as Keras's `from_config`
/// does. (Arguments read with a fallback carry their default where they are read.)
fn keras_defaults(class: &str) -> &'static [(&'static str, &'static str)] {
    match class {
        "ZeroPadding1D" => &[("padding", "1")],
        "ZeroPadding2D" => &[("padding", "[1, 1]")],
        "Cropping1D" => &[("cropping", "[1, 1]")],
        "Cropping2D" => &[("cropping", "[[0, 0], [0, 0]]")],
        "UpSampling1D" => &[("size", "2")],
        "UpSampling2D" => &[("size", "[2, 2]")],
        _ => &[],
    }
}

/// `cfg` with Keras's default for each absent key of [`keras_defaults`] (borrowed as it is
/// when the class has none to fill, or none is absent).
pub(super) fn with_keras_defaults<'c>(class: &str, cfg: &'c Value) -> Cow<'c, Value> {
    let defaults = keras_defaults(class);
    if defaults.iter().all(|(key, _)| cfg.get(*key).is_some()) {
        return Cow::Borrowed(cfg);
    }
    let mut cfg = cfg.clone();
    if let Some(map) = cfg.as_object_mut() {
        for (key, value) in keras_defaults(class) {
            if !map.contains_key(*key) {
                map.insert(
                    key.to_string(),
                    serde_json::from_str(value).unwrap_or(Value::Null),
                );
            }
        }
    }
    Cow::Owned(cfg)
}
