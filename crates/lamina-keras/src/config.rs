//! Rebuilding a model from Keras 3's `config.json` with Lamina's layers. The whole
//! configuration is checked first (every layer class known, every `Lambda` bound), so that a
//! model Lamina cannot run is refused with the complete list, before anything is built.

use super::KerasBindings;
use super::ops::RecordedOp;
use super::weights::{Namer, Slot};
use lamina_graph::dtype::DType;
use lamina_graph::error::{Error, Result};
use lamina_graph::layer::{LayerRef, call_layer_with_masks};
use lamina_graph::layers::*;
use lamina_graph::limits::printable;
use lamina_graph::model::Model;
use lamina_graph::shape::Dim;
use lamina_graph::tensor::Tensor;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The classes that are graphs rather than layer configurations: Keras's input layer,
/// Lambda and the two model classes.
const GRAPH_CLASSES: [&str; 4] = ["InputLayer", "Lambda", "Sequential", "Functional"];

/// The layer classes Lamina rebuilds from a Keras configuration: every class of the layer
/// registry, and the graph classes.
pub fn supported_classes() -> impl Iterator<Item = &'static str> {
    GRAPH_CLASSES
        .into_iter()
        .chain(lamina_graph::layers::layer_classes())
}

/// Whether Lamina rebuilds layers of Keras class `class`.
fn is_supported(class: &str) -> bool {
    supported_classes().any(|c| c == class)
}

/// A model rebuilt from its configuration, and where each of its layers' weights are.
pub(crate) struct Built {
    pub model: Model,
    pub slots: Vec<Slot>,
}

pub(super) fn model_err(detail: impl Into<String>) -> Error {
    Error::Model {
        detail: detail.into(),
    }
}

fn class_of(v: &Value) -> &str {
    v.get("class_name").and_then(Value::as_str).unwrap_or("?")
}

fn is_op(v: &Value) -> bool {
    v.get("module")
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with("keras.src.ops"))
}

fn cfg_of(v: &Value) -> &Value {
    v.get("config").unwrap_or(&Value::Null)
}

fn name_of(v: &Value) -> String {
    v.get("name")
        .and_then(Value::as_str)
        .or_else(|| cfg_of(v).get("name").and_then(Value::as_str))
        .unwrap_or("?")
        .to_string()
}

fn is_container(class: &str) -> bool {
    matches!(class, "Sequential" | "Functional" | "Model")
}

/// The Python function's name of a Lambda's `function` config, where Keras recorded one.
fn function_name(f: &Value) -> Option<&str> {
    match f {
        Value::String(s) => Some(s),
        Value::Object(_) if class_of(f) != "__lambda__" => cfg_of(f).as_str(),
        _ => None,
    }
}

/// What Keras recorded for a Lambda's function, for the error that asks for a binding.
fn describe_function(f: &Value) -> String {
    if class_of(f) == "__lambda__" {
        let code = cfg_of(f).get("code").and_then(Value::as_str).unwrap_or("");
        let Some(bytes) = super::base64::decode(code) else {
            return "a Python lambda, as bytecode that is not valid base64".into();
        };
        let names: Vec<String> = super::base64::marshal_strings(&bytes, 1)
            .into_iter()
            .filter(|s| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_<>./-".contains(c))
            })
            .take(8)
            .collect();
        return format!(
            "a Python lambda, recorded as {} bytes of Python bytecode (never run by Lamina; \
             strings in it: {})",
            bytes.len(),
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        );
    }
    match function_name(f) {
        Some(n) => format!(
            "the Python function '{}'{}",
            printable(n),
            match f.get("module").and_then(Value::as_str) {
                Some(m) if m != "builtins" => format!(" of module '{}'", printable(m)),
                _ => String::new(),
            }
        ),
        None => "a function Keras recorded in a form Lamina does not read".into(),
    }
}

/// Walks the configuration and collects every unsupported class and every unbound Lambda.
fn check(
    layers: &[Value],
    bindings: &KerasBindings,
    missing: &mut BTreeMap<String, Vec<String>>,
    unbound: &mut Vec<String>,
) {
    for l in layers {
        let class = class_of(l);
        let name = name_of(l);
        if is_op(l) {
            if !super::ops::is_supported(class) {
                missing
                    .entry(format!("{class} (a keras.ops operation)"))
                    .or_default()
                    .push(name);
            }
            continue;
        }
        if class == "Lambda" {
            let cfg = cfg_of(l);
            let f = cfg.get("function").unwrap_or(&Value::Null);
            let fname = function_name(f);
            let has_mask = cfg.get("mask").is_some_and(|m| !m.is_null());
            match bindings.get(&name, fname) {
                None => {
                    let multi = l
                        .get("inbound_nodes")
                        .and_then(|n| n.get(0))
                        .and_then(|n| n.get("args"))
                        .and_then(|a| a.get(0))
                        .is_some_and(Value::is_array);
                    unbound.push(format!(
                        "Lambda '{}' ({}{}): bind it from Rust with \
                         KerasBindings::new().bind(\"{}\", {}{})",
                        printable(&name),
                        describe_function(f),
                        if has_mask {
                            "; it also has a mask function"
                        } else {
                            ""
                        },
                        printable(fname.unwrap_or(&name)),
                        if multi {
                            "Lambda::multi(|xs| ...)"
                        } else {
                            "Lambda::new(|x| ...)"
                        },
                        if has_mask {
                            ".mask_fn(|xs, masks| ...)"
                        } else {
                            ""
                        }
                    ));
                }
                Some(b) if has_mask && b.mask_spec().is_none() => unbound.push(format!(
                    "Lambda '{}' has a mask function in Keras but its binding has no mask: \
                     add .mask_fn(|xs, masks| ...) (or .mask(...)) to the bound Lambda",
                    printable(&name)
                )),
                Some(_) => {}
            }
            continue;
        }
        if is_container(class) {
            if let Some(inner) = cfg_of(l).get("layers").and_then(Value::as_array) {
                check(inner, bindings, missing, unbound);
            }
            continue;
        }
        if is_custom(l, bindings) {
            continue;
        }
        if !is_supported(class) {
            if super::custom::registered_name(l).is_some()
                || l.get("module")
                    .and_then(Value::as_str)
                    .is_some_and(|m| !m.starts_with("keras"))
            {
                unbound.push(super::custom::unbound_message(&name, class, l));
                continue;
            }
            missing.entry(class.to_string()).or_default().push(name);
            continue;
        }
        // Wrappers: the layers they wrap must be known (and bound) too.
        let inner: Vec<Value> = ["layer", "backward_layer"]
            .iter()
            .filter_map(|k| cfg_of(l).get(*k))
            .filter(|v| v.is_object())
            .cloned()
            .collect();
        if !inner.is_empty() && matches!(class, "Bidirectional" | "TimeDistributed") {
            check(&inner, bindings, missing, unbound);
        }
    }
}

/// Whether layer `entry` is of a class Lamina lacks and is bound from Rust with
/// `KerasBindings::bind_class`.
fn is_custom(entry: &Value, bindings: &KerasBindings) -> bool {
    let class = class_of(entry);
    !is_supported(class)
        && bindings
            .class_binding(
                &name_of(entry),
                super::custom::registered_name(entry),
                class,
            )
            .is_some()
}

pub(super) fn get<'v>(cfg: &'v Value, key: &str, layer: &str) -> Result<&'v Value> {
    cfg.get(key)
        .ok_or_else(|| model_err(format!("layer '{layer}': its config has no '{key}'")))
}

pub(super) fn usize_of(cfg: &Value, key: &str, layer: &str) -> Result<usize> {
    get(cfg, key, layer)?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| model_err(format!("layer '{layer}': '{key}' is not a count")))
}

fn usize_or(cfg: &Value, key: &str, default: usize, layer: &str) -> Result<usize> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        _ => usize_of(cfg, key, layer),
    }
}

fn sizes_or(cfg: &Value, key: &str, default: usize, layer: &str) -> Result<Sizes> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(Sizes(vec![default])),
        _ => sizes_of(cfg, key, layer),
    }
}

pub(super) fn f32_or(cfg: &Value, key: &str, default: f32, layer: &str) -> Result<f32> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| model_err(format!("layer '{layer}': '{key}' is not a number"))),
    }
}

fn bool_or(cfg: &Value, key: &str, default: bool, layer: &str) -> Result<bool> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| model_err(format!("layer '{layer}': '{key}' is not true or false"))),
    }
}

fn axis_of(v: &Value, layer: &str) -> Result<isize> {
    v.as_i64()
        .and_then(|a| isize::try_from(a).ok())
        .ok_or_else(|| model_err(format!("layer '{layer}': axis {v} is not an integer")))
}

/// The layer's `activation`, Keras's default for the layer where the key is absent (`tanh` for
/// the recurrent layers, `linear` for the others); `null` is `linear`, as in Keras.
fn activation_of(cfg: &Value, layer: &str) -> Result<Activation> {
    activation_or(cfg, "activation", "linear", layer)
}

fn activation_or(cfg: &Value, key: &str, default: &str, layer: &str) -> Result<Activation> {
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

fn data_format_of(cfg: &Value, layer: &str) -> Result<DataFormat> {
    match cfg.get("data_format") {
        None | Some(Value::Null) => Ok(DataFormat::ChannelsLast),
        Some(Value::String(s)) => DataFormat::parse(s),
        Some(other) => Err(model_err(format!(
            "layer '{layer}': data_format {other} is not a name"
        ))),
    }
}

pub(super) fn dtype_of(name: &str) -> Result<DType> {
    Ok(match name {
        "float16" | "bfloat16" | "float32" | "float64" => DType::F32,
        "int8" | "int16" | "int32" | "int64" => DType::I32,
        "uint8" | "uint16" | "uint32" => DType::U32,
        "bool" => DType::Bool,
        other => return Err(model_err(format!("input dtype '{other}' is not supported"))),
    })
}

/// Keras's per-axis sizes (`kernel_size`, `strides`, `pool_size`, ...): one count or a list.
fn sizes_of(cfg: &Value, key: &str, layer: &str) -> Result<Sizes> {
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

fn padding_of(cfg: &Value, layer: &str) -> Result<Padding> {
    match cfg.get("padding") {
        None | Some(Value::Null) => Ok(Padding::Valid),
        Some(Value::String(s)) => Padding::parse(s),
        Some(other) => Err(model_err(format!(
            "layer '{layer}': padding {other} is not a name"
        ))),
    }
}

fn i64_of(v: &Value, key: &str, layer: &str) -> Result<i64> {
    v.as_i64().ok_or_else(|| {
        model_err(format!(
            "layer '{layer}': '{key}' holds {v}, not an integer"
        ))
    })
}

/// `ZeroPadding`/`Cropping` amounts: one number, one per axis, or `(before, after)` per axis.
fn pairs_of<const N: usize>(cfg: &Value, key: &str, layer: &str) -> Result<[(i64, i64); N]> {
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
fn with_keras_defaults<'c>(class: &str, cfg: &'c Value) -> std::borrow::Cow<'c, Value> {
    let defaults = keras_defaults(class);
    if defaults.iter().all(|(key, _)| cfg.get(*key).is_some()) {
        return std::borrow::Cow::Borrowed(cfg);
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
    std::borrow::Cow::Owned(cfg)
}

/// A Lamina layer from a Keras layer's class and config (not an input layer or a model).
fn make_layer(class: &str, cfg: &Value, name: &str, bindings: &KerasBindings) -> Result<LayerRef> {
    let n = name;
    let filled = with_keras_defaults(class, cfg);
    let cfg: &Value = &filled;
    match class {
        "Dense" | "Embedding" | "Dropout" | "Masking" | "Rescaling" => core_layer(class, cfg, n),
        "LayerNormalization" | "BatchNormalization" => normalization_layer(class, cfg, n),
        "Activation" | "Softmax" | "ReLU" | "LeakyReLU" | "ELU" | "PReLU" => {
            activation_layer(class, cfg, n)
        }
        "Add" | "Subtract" | "Multiply" | "Average" | "Maximum" | "Minimum" | "Concatenate"
        | "Dot" => merging_layer(class, cfg, n),
        "Reshape" | "Flatten" | "RepeatVector" | "Permute" | "ZeroPadding1D" | "ZeroPadding2D"
        | "Cropping1D" | "Cropping2D" | "UpSampling1D" | "UpSampling2D" => {
            reshaping_layer(class, cfg, n)
        }
        "MaxPooling1D"
        | "MaxPooling2D"
        | "AveragePooling1D"
        | "AveragePooling2D"
        | "GlobalAveragePooling1D"
        | "GlobalMaxPooling1D"
        | "GlobalAveragePooling2D"
        | "GlobalMaxPooling2D" => pooling_layer(class, cfg, n),
        "Conv1D" | "Conv2D" | "DepthwiseConv2D" | "SeparableConv1D" | "SeparableConv2D"
        | "Conv1DTranspose" | "Conv2DTranspose" => conv_layer(class, cfg, n),
        "SimpleRNN" | "LSTM" | "GRU" => recurrent_layer(class, cfg, n),
        "MultiHeadAttention" | "Attention" | "AdditiveAttention" => attention_layer(class, cfg, n),
        "TimeDistributed" | "Bidirectional" => wrapper_layer(class, cfg, n, bindings),
        "Lambda" => lambda_layer(cfg, n, bindings),
        other
        @ ("Normalization" | "CenterCrop" | "Resizing" | "LayerScale" | "StochasticDepth") => {
            super::preprocessing::make(other, cfg, n)
        }
        other => Err(unsupported_class(other)),
    }
}

/// The error for a layer class that no layer constructor knows.
fn unsupported_class(class: &str) -> Error {
    model_err(format!("layer class '{class}' is not supported"))
}

/// A core layer (`Dense`, `Embedding`, `Dropout`, `Masking`, `Rescaling`) from its config.
fn core_layer(class: &str, cfg: &Value, n: &str) -> Result<LayerRef> {
    Ok(match class {
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
        "Masking" => Arc::new(Masking::new(f32_or(cfg, "mask_value", 0.0, n)?).name(n)),
        "Rescaling" => Arc::new(
            Rescaling::new(
                f32_or(cfg, "scale", 1.0, n)?,
                f32_or(cfg, "offset", 0.0, n)?,
            )
            .name(n),
        ),
        other => return Err(unsupported_class(other)),
    })
}

/// A `LayerNormalization` or `BatchNormalization` from its config.
fn normalization_layer(class: &str, cfg: &Value, n: &str) -> Result<LayerRef> {
    Ok(match class {
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
        other => return Err(unsupported_class(other)),
    })
}

/// An activation layer (`Activation`, `Softmax`, the ReLUs, `ELU`) from its config.
fn activation_layer(class: &str, cfg: &Value, n: &str) -> Result<LayerRef> {
    Ok(match class {
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
        other => return Err(unsupported_class(other)),
    })
}

/// A merging layer (`Add`, ..., `Concatenate`, `Dot`) from its config.
fn merging_layer(class: &str, cfg: &Value, n: &str) -> Result<LayerRef> {
    Ok(match class {
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
        other => return Err(unsupported_class(other)),
    })
}

/// A reshaping layer (reshape, flatten, permute, repeat, pad, crop, up-sample) from its config.
fn reshaping_layer(class: &str, cfg: &Value, n: &str) -> Result<LayerRef> {
    Ok(match class {
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
        other => return Err(unsupported_class(other)),
    })
}

/// A pooling layer (max, average, global) from its config.
fn pooling_layer(class: &str, cfg: &Value, n: &str) -> Result<LayerRef> {
    Ok(match class {
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
        other => return Err(unsupported_class(other)),
    })
}

/// A convolution layer (plain, depthwise, separable, transposed) from its config.
fn conv_layer(class: &str, cfg: &Value, n: &str) -> Result<LayerRef> {
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
    Ok(match class {
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
        other => return Err(unsupported_class(other)),
    })
}

/// A `SimpleRNN`, `LSTM` or `GRU` from its config.
fn recurrent_layer(class: &str, cfg: &Value, n: &str) -> Result<LayerRef> {
    Ok(match class {
        "SimpleRNN" | "LSTM" | "GRU" => {
            if bool_or(cfg, "stateful", false, n)? {
                return Err(model_err(format!(
                    "layer '{n}': stateful recurrent layers are not supported"
                )));
            }
            let units = usize_of(cfg, "units", n)?;
            let recurrent = |cfg: &Value| activation_or(cfg, "recurrent_activation", "sigmoid", n);
            macro_rules! rnn {
                ($l:expr) => {
                    $l.activation(activation_or(cfg, "activation", "tanh", n)?)
                        .use_bias(bool_or(cfg, "use_bias", true, n)?)
                        .return_sequences(bool_or(cfg, "return_sequences", false, n)?)
                        .return_state(bool_or(cfg, "return_state", false, n)?)
                        .go_backwards(bool_or(cfg, "go_backwards", false, n)?)
                        .zero_output_for_mask(bool_or(cfg, "zero_output_for_mask", false, n)?)
                        .unroll(bool_or(cfg, "unroll", false, n)?)
                        .name(n)
                };
            }
            match class {
                "SimpleRNN" => Arc::new(rnn!(SimpleRNN::new(units))) as LayerRef,
                "LSTM" => Arc::new(rnn!(LSTM::new(units).recurrent_activation(recurrent(cfg)?))),
                _ => Arc::new(rnn!(
                    GRU::new(units)
                        .recurrent_activation(recurrent(cfg)?)
                        .reset_after(bool_or(cfg, "reset_after", true, n)?)
                )),
            }
        }
        other => return Err(unsupported_class(other)),
    })
}

/// A `MultiHeadAttention`, `Attention` or `AdditiveAttention` from its config.
fn attention_layer(class: &str, cfg: &Value, n: &str) -> Result<LayerRef> {
    Ok(match class {
        "MultiHeadAttention" => Arc::new(mha_of(cfg, n)?),
        "Attention" | "AdditiveAttention" => dot_attention_of(class, cfg, n, false, false)?,
        other => return Err(unsupported_class(other)),
    })
}

/// A `TimeDistributed` or `Bidirectional` from its config, with the layers it wraps.
fn wrapper_layer(class: &str, cfg: &Value, n: &str, bindings: &KerasBindings) -> Result<LayerRef> {
    Ok(match class {
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
        other => return Err(unsupported_class(other)),
    })
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

/// A `Lambda` from its config, with the function bound to it and its `arguments`.
fn lambda_layer(cfg: &Value, n: &str, bindings: &KerasBindings) -> Result<LayerRef> {
    let f = cfg.get("function").unwrap_or(&Value::Null);
    let template = bindings
        .get(n, function_name(f))
        .ok_or_else(|| model_err(format!("Lambda '{n}' is not bound")))?;
    let mut lambda = template.clone().name(n);
    if let Some(Value::Object(args)) = cfg.get("arguments") {
        for (k, v) in args {
            let value = match v {
                Value::Number(x) if x.is_i64() => x
                    .as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .map(lamina_graph::host::HostTensor::from),
                Value::Number(x) => x.as_f64().map(|f| (f as f32).into()),
                Value::Bool(b) => Some(f32::from(u8::from(*b)).into()),
                _ => None,
            };
            let value = value.ok_or_else(|| {
                model_err(format!(
                    "Lambda '{n}': argument '{k}' is {v}, not a number; set it on the \
                     bound Lambda instead"
                ))
            })?;
            lambda = lambda.argument(k, value);
        }
    }
    Ok(Arc::new(lambda))
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

/// An `Attention` or `AdditiveAttention` from its Keras config, with the call arguments
/// `use_causal_mask` and `return_attention_scores`.
fn dot_attention_of(
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
fn mha_of(cfg: &Value, n: &str) -> Result<MultiHeadAttention> {
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

/// The Input of a Keras `InputLayer` config.
fn make_input(layer: &Value) -> Result<Tensor> {
    let cfg = cfg_of(layer);
    let name = name_of(layer);
    let shape = cfg
        .get("batch_shape")
        .or_else(|| cfg.get("batch_input_shape"))
        .and_then(Value::as_array)
        .ok_or_else(|| model_err(format!("input layer '{name}' has no batch_shape")))?;
    input_from_shape(
        shape,
        cfg.get("dtype")
            .and_then(Value::as_str)
            .unwrap_or("float32"),
        &name,
    )
}

fn input_from_shape(shape: &[Value], dtype: &str, name: &str) -> Result<Tensor> {
    let Some((batch, rest)) = shape.split_first() else {
        return Err(model_err(format!("input layer '{name}' has rank 0")));
    };
    if rest.len() > lamina_graph::limits::MAX_RANK {
        return Err(model_err(format!("input layer '{name}' has too many axes")));
    }
    let dims = rest
        .iter()
        .map(|d| match d {
            Value::Null => Ok(Dim::Dynamic),
            v => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Dim::Known)
                .ok_or_else(|| model_err(format!("input layer '{name}': dimension {v}"))),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut input = Input::with_dims(dims).dtype(dtype_of(dtype)?).name(name);
    if let Some(b) = batch.as_u64().and_then(|b| usize::try_from(b).ok()) {
        input = input.batch_size(b);
    }
    let t = input.tensor();
    t.check()?;
    Ok(t)
}

/// Builds containers (Sequential and functional models) onto given input tensors, inlining
/// nested ones; collects where each layer's weights are.
struct Builder<'b> {
    bindings: &'b KerasBindings,
    slots: Vec<Slot>,
    /// Layers already made, by their weight group, so that a nested model called twice shares
    /// its layers.
    made: HashMap<String, LayerRef>,
    /// The Lambda layers made for `keras.ops` calls, by container prefix and op name, each
    /// with the op it computes (an op called again the same way reuses its layer).
    ops: HashMap<String, Vec<(RecordedOp, LayerRef)>>,
    calls: usize,
}

/// The most layer calls (nested models inlined) a configuration may make.
const MAX_CALLS: usize = 1 << 16;

pub(super) fn keras_ref(v: &Value) -> Option<(&str, usize, usize)> {
    if class_of(v) != "__keras_tensor__" {
        return None;
    }
    let h = cfg_of(v).get("keras_history")?.as_array()?;
    Some((
        h.first()?.as_str()?,
        usize::try_from(h.get(1)?.as_u64()?).ok()?,
        usize::try_from(h.get(2)?.as_u64()?).ok()?,
    ))
}

pub(super) type Produced = HashMap<(String, usize), Vec<Tensor>>;

/// The tensors a (nested list of) Keras tensor references stands for; `None` while one is
/// not made yet.
pub(super) fn resolve(v: &Value, produced: &Produced, out: &mut Vec<Tensor>) -> Result<Option<()>> {
    if let Some((layer, node, index)) = keras_ref(v) {
        let Some(ts) = produced.get(&(layer.to_string(), node)) else {
            return Ok(None);
        };
        let t = ts.get(index).ok_or_else(|| {
            model_err(format!(
                "a node reads output {index} of '{layer}' call {node}, which has {}",
                ts.len()
            ))
        })?;
        out.push(t.clone());
        return Ok(Some(()));
    }
    match v {
        Value::Array(items) => {
            for i in items {
                if resolve(i, produced, out)?.is_none() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        }
        _ => Err(model_err(format!(
            "a layer is called on {}, which is not a tensor",
            printable(&v.to_string().chars().take(80).collect::<String>())
        ))),
    }
}

/// The tensors a call's keyword arguments name (masks, initial states, attention masks).
fn refs_of_kwargs(node: &Value) -> Vec<(&str, usize, usize)> {
    match node.get("kwargs") {
        Some(Value::Object(kwargs)) => kwargs.values().flat_map(refs_of).collect(),
        _ => Vec::new(),
    }
}

fn refs_of(v: &Value) -> Vec<(&str, usize, usize)> {
    let mut out = Vec::new();
    fn walk<'a>(v: &'a Value, out: &mut Vec<(&'a str, usize, usize)>) {
        if let Some(r) = keras_ref(v) {
            out.push(r);
        } else if let Value::Array(a) = v {
            a.iter().for_each(|x| walk(x, out));
        }
    }
    walk(v, &mut out);
    out
}

impl Builder<'_> {
    fn count_call(&mut self) -> Result<()> {
        self.calls += 1;
        if self.calls > MAX_CALLS {
            return Err(model_err(format!(
                "the configuration makes more than {MAX_CALLS} layer calls"
            )));
        }
        Ok(())
    }

    /// The Lambda layer that applies a recorded `keras.ops` call, named after the op: the
    /// layer made before for this op (`key`) where it computes the same, else a new one. As
    /// a Lambda, the op is a layer call that saves as an expression graph.
    fn op_layer(&mut self, key: &str, name: &str, op: RecordedOp) -> LayerRef {
        let made = self.ops.entry(key.to_string()).or_default();
        if let Some((_, layer)) = made.iter().find(|(o, _)| *o == op) {
            return layer.clone();
        }
        // A later call computing something else (another constant) needs a layer of its own.
        let layer_name = match made.len() {
            0 => name.to_string(),
            n => format!("{name}_call{n}"),
        };
        let f = op.clone();
        let layer: LayerRef = Arc::new(Lambda::multi(move |xs| f.apply(xs)).name(&layer_name));
        made.push((op, layer.clone()));
        layer
    }

    fn layer_for(&mut self, group: &str, entry: &Value) -> Result<LayerRef> {
        if let Some(l) = self.made.get(group) {
            return Ok(l.clone());
        }
        let class = class_of(entry);
        let name = name_of(entry);
        let custom = is_custom(entry, self.bindings);
        let layer: LayerRef =
            match self
                .bindings
                .class_binding(&name, super::custom::registered_name(entry), class)
            {
                Some(factory) if custom => {
                    Arc::new(super::custom::make(factory, &name, class, cfg_of(entry))?)
                }
                _ => make_layer(class, cfg_of(entry), &name, self.bindings)?,
            };
        self.made.insert(group.to_string(), layer.clone());
        self.slots.push(Slot {
            group: group.to_string(),
            layer: layer.clone(),
            custom,
        });
        Ok(layer)
    }

    /// The `Attention` or `AdditiveAttention` of `entry` for a call `node`: its keyword
    /// arguments `use_causal_mask` and `return_attention_scores` are set on the layer (so one
    /// layer's calls must agree on them), `mask` is read by the caller, `training` ignored.
    fn dot_attention_for(&mut self, group: &str, entry: &Value, node: &Value) -> Result<LayerRef> {
        let class = class_of(entry);
        let name = name_of(entry);
        let n = printable(&name).into_owned();
        let bad = |detail: String| model_err(format!("{class} '{n}': {detail}"));
        let (mut causal, mut scores) = (false, false);
        match node.get("kwargs") {
            None | Some(Value::Null) => {}
            Some(Value::Object(kwargs)) => {
                for (k, v) in kwargs {
                    let flag = match v {
                        Value::Null => false,
                        Value::Bool(b) => *b,
                        _ if k == "mask" => false,
                        _ => {
                            return Err(bad(format!(
                                "the call argument '{}' is {}, not true or false",
                                printable(k),
                                printable(&v.to_string().chars().take(80).collect::<String>())
                            )));
                        }
                    };
                    match k.as_str() {
                        "mask" | "training" => {}
                        "use_causal_mask" => causal = flag,
                        "return_attention_scores" => scores = flag,
                        other => {
                            return Err(bad(format!(
                                "the call argument '{}' is not supported",
                                printable(other)
                            )));
                        }
                    }
                }
            }
            Some(other) => return Err(bad(format!("its call's kwargs are {other}, not a map"))),
        }
        if let Some(layer) = self.made.get(group) {
            let any = layer.as_any();
            let same = any
                .downcast_ref::<Attention>()
                .map(|a| {
                    let c = a.config();
                    (c.use_causal_mask, c.return_attention_scores)
                })
                .or_else(|| {
                    any.downcast_ref::<AdditiveAttention>().map(|a| {
                        let c = a.config();
                        (c.use_causal_mask, c.return_attention_scores)
                    })
                });
            if same != Some((causal, scores)) {
                return Err(bad(format!(
                    "its calls differ in use_causal_mask or return_attention_scores (this one: \
                     {causal}, {scores}); Lamina sets them once per layer"
                )));
            }
            return Ok(layer.clone());
        }
        let layer = dot_attention_of(class, cfg_of(entry), &name, causal, scores)?;
        self.made.insert(group.to_string(), layer.clone());
        self.slots.push(Slot {
            group: group.to_string(),
            layer: layer.clone(),
            custom: false,
        });
        Ok(layer)
    }

    /// Applies container `entry` (a model config) to `inputs`; `prefix` is its weight group
    /// with a trailing `/`, empty at the top.
    fn apply(
        &mut self,
        entry: &Value,
        inputs: &[Tensor],
        prefix: &str,
        depth: usize,
    ) -> Result<Vec<Tensor>> {
        if depth > 32 {
            return Err(model_err("models nest deeper than 32"));
        }
        let cfg = cfg_of(entry);
        let layers = cfg
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| model_err(format!("model '{}' has no layer list", name_of(entry))))?;
        if class_of(entry) == "Sequential" {
            return self.apply_sequential(entry, layers, inputs, prefix, depth);
        }
        self.apply_functional(entry, layers, inputs, prefix, depth)
    }

    /// Applies Sequential `entry` (layer list `layers`) to its one input, layer after layer.
    fn apply_sequential(
        &mut self,
        entry: &Value,
        layers: &[Value],
        inputs: &[Tensor],
        prefix: &str,
        depth: usize,
    ) -> Result<Vec<Tensor>> {
        let mut namer = Namer::default();
        let [x] = inputs else {
            return Err(model_err(format!(
                "Sequential '{}' is called on {} inputs",
                name_of(entry),
                inputs.len()
            )));
        };
        let mut x = x.clone();
        for l in layers {
            let class = class_of(l);
            if class == "InputLayer" {
                continue;
            }
            let group = format!("{prefix}layers/{}", namer.next(class));
            self.count_call()?;
            if is_container(class) {
                let out =
                    self.apply(l, std::slice::from_ref(&x), &format!("{group}/"), depth + 1)?;
                x = single(out, &name_of(l))?;
            } else {
                let layer = self.layer_for(&group, l)?;
                let out = call_layer_with_masks(layer.as_ref(), std::slice::from_ref(&x), None)?;
                x = single(out, &name_of(l))?;
            }
        }
        Ok(vec![x])
    }

    /// Applies functional `entry` (layer list `layers`) to `inputs`.
    fn apply_functional(
        &mut self,
        entry: &Value,
        layers: &[Value],
        inputs: &[Tensor],
        prefix: &str,
        depth: usize,
    ) -> Result<Vec<Tensor>> {
        let cfg = cfg_of(entry);
        let mut produced = functional_inputs(entry, inputs)?;
        let groups = weight_groups(layers, prefix);
        self.run_calls(layers, &groups, &mut produced, prefix, depth)?;
        functional_outputs(cfg, layers, &produced)
    }

    /// Makes every call of a functional container's `layers`, each once what it reads is made.
    fn run_calls(
        &mut self,
        layers: &[Value],
        groups: &[Option<String>],
        produced: &mut Produced,
        prefix: &str,
        depth: usize,
    ) -> Result<()> {
        let pending = pending_calls(layers);
        // Calls run as soon as what they read is made: each call waits on the (layer, node)
        // pairs its arguments name, and is woken when the last of them is produced, so a
        // configuration listed in any order loads in linear time.
        let mut waiting: HashMap<(String, usize), Vec<(usize, usize)>> = HashMap::new();
        let mut missing_inputs: HashMap<(usize, usize), usize> = HashMap::new();
        let mut ready: std::collections::VecDeque<(usize, usize)> = Default::default();
        for &(i, k) in &pending {
            let node = &layers[i]["inbound_nodes"][k];
            let mut needs: Vec<(String, usize)> = refs_of(node.get("args").unwrap_or(&Value::Null))
                .into_iter()
                .chain(refs_of_kwargs(node))
                .map(|(l, n, _)| (l.to_string(), n))
                .filter(|key| !produced.contains_key(key))
                .collect();
            needs.sort_unstable();
            needs.dedup();
            if needs.is_empty() {
                ready.push_back((i, k));
            } else {
                missing_inputs.insert((i, k), needs.len());
                for key in needs {
                    waiting.entry(key).or_default().push((i, k));
                }
            }
        }
        let mut done = 0usize;
        let mut stuck: Vec<(usize, usize)> = Vec::new();
        while let Some((i, k)) = ready.pop_front() {
            if !self.call_node(layers, groups, produced, prefix, depth, i, k)? {
                stuck.push((i, k));
                continue;
            }
            done += 1;
            for woken in waiting
                .remove(&(name_of(&layers[i]), k))
                .unwrap_or_default()
            {
                if let Some(left) = missing_inputs.get_mut(&woken) {
                    *left -= 1;
                    if *left == 0 {
                        ready.push_back(woken);
                    }
                }
            }
        }
        if done < pending.len() {
            let (i, k) = stuck
                .first()
                .copied()
                .or_else(|| {
                    pending
                        .iter()
                        .copied()
                        .find(|key| missing_inputs.get(key).is_some_and(|&n| n > 0))
                })
                .unwrap_or(pending[0]);
            return Err(model_err(format!(
                "call {k} of layer '{}' reads tensors that no layer makes (a cycle or a \
                 missing layer)",
                printable(&name_of(&layers[i]))
            )));
        }
        Ok(())
    }

    /// Makes call `k` of layer `i` of a functional container when every tensor it reads is
    /// made: `Ok(true)` once done, `Ok(false)` while an input is missing.
    #[allow(clippy::too_many_arguments)]
    fn call_node(
        &mut self,
        layers: &[Value],
        groups: &[Option<String>],
        produced: &mut Produced,
        prefix: &str,
        depth: usize,
        i: usize,
        k: usize,
    ) -> Result<bool> {
        let l = &layers[i];
        let node = &l["inbound_nodes"][k];
        let args = node
            .get("args")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if class_of(l) == "MultiHeadAttention" && !is_op(l) {
            let group = groups[i].clone().unwrap_or_default();
            match self.call_mha(l, node, k, &group, produced)? {
                Some(outs) => {
                    produced.insert((name_of(l), k), outs);
                }
                None => return Ok(false),
            }
            return Ok(true);
        }
        if is_op(l) {
            let name = name_of(l);
            let Some((op, operands)) =
                RecordedOp::read(class_of(l), &name, cfg_of(l), node, produced)?
            else {
                return Ok(false);
            };
            self.count_call()?;
            let layer = self.op_layer(&format!("{prefix}{name}"), &name, op);
            // An op sees no masks, as in Keras (only layers take them).
            let no_masks = operands
                .iter()
                .any(|t| t.mask().is_some())
                .then(|| vec![None; operands.len()]);
            let outs = call_layer_with_masks(layer.as_ref(), &operands, no_masks.as_deref())?;
            produced.insert((name, k), outs);
            return Ok(true);
        }
        let mut ins = Vec::new();
        let custom = is_custom(l, self.bindings);
        // A custom layer takes every positional tensor argument, in order.
        let first = match (custom, args.is_empty()) {
            (true, false) => &Value::Array(
                args.iter()
                    .filter(|a| !refs_of(a).is_empty())
                    .cloned()
                    .collect(),
            ),
            _ => args.first().unwrap_or(&Value::Null),
        };
        if resolve(first, produced, &mut ins)?.is_none() {
            return Ok(false);
        }
        let mask_v = node
            .get("kwargs")
            .and_then(|k| k.get("mask"))
            .unwrap_or(&Value::Null);
        let mut masks = Vec::new();
        let masks_ready = match mask_v {
            Value::Null => true,
            Value::Array(items) => {
                let mut ok = true;
                for m in items {
                    if m.is_null() {
                        masks.push(None);
                        continue;
                    }
                    let mut one = Vec::new();
                    if resolve(m, produced, &mut one)?.is_none() {
                        ok = false;
                        break;
                    }
                    masks.extend(one.into_iter().map(Some));
                }
                ok
            }
            m => {
                let mut one = Vec::new();
                let ok = resolve(m, produced, &mut one)?.is_some();
                masks.extend(one.into_iter().map(Some));
                ok
            }
        };
        if !masks_ready {
            return Ok(false);
        }
        // A recurrent layer's initial states (positional after the input, or the
        // keyword `initial_state`) follow the input, as Lamina's layers take them.
        let recurrent = matches!(class_of(l), "SimpleRNN" | "LSTM" | "GRU" | "Bidirectional");
        let states_v = match (
            args.get(1),
            node.get("kwargs").and_then(|k| k.get("initial_state")),
        ) {
            (Some(a), _) if recurrent => a,
            (_, Some(v)) if recurrent => v,
            _ => &Value::Null,
        };
        let mut states = Vec::new();
        if !states_v.is_null() && resolve(states_v, produced, &mut states)?.is_none() {
            return Ok(false);
        }
        let inputs_given = ins.len();
        ins.extend(states);
        self.count_call()?;
        let name = name_of(l);
        let class = class_of(l);
        let outs = {
            let positional = match (custom, recurrent) {
                (true, _) => args.len(),
                (_, true) => 2,
                _ => 1,
            };
            if args.iter().skip(positional).any(|a| !refs_of(a).is_empty()) {
                return Err(model_err(format!(
                    "layer '{name}' is called with more than one positional tensor \
                     argument, which Lamina does not support"
                )));
            }
            check_call_kwargs(node, class, &name)?;
            let group = groups[i].clone().unwrap_or_default();
            if is_container(class) {
                self.apply(l, &ins, &format!("{group}/"), depth + 1)?
            } else {
                let layer = if matches!(class, "Attention" | "AdditiveAttention") {
                    self.dot_attention_for(&group, l, node)?
                } else {
                    self.layer_for(&group, l)?
                };
                if !masks.is_empty() && masks.len() == inputs_given {
                    // The states carry no mask of their own.
                    masks.resize(ins.len(), None);
                }
                let explicit = (!masks.is_empty()).then_some(masks.as_slice());
                if explicit.is_some_and(|m| m.len() != ins.len()) {
                    return Err(model_err(format!(
                        "layer '{name}' is given {} masks for {} inputs",
                        masks.len(),
                        ins.len()
                    )));
                }
                call_layer_with_masks(layer.as_ref(), &ins, explicit)?
            }
        };
        produced.insert((name, k), outs);
        Ok(true)
    }
}

/// `MultiHeadAttention.call`'s parameters, in Keras's order (positional arguments fill them
/// from the first).
const MHA_ARGS: [&str; 10] = [
    "query",
    "value",
    "key",
    "query_mask",
    "value_mask",
    "key_mask",
    "attention_mask",
    "return_attention_scores",
    "training",
    "use_causal_mask",
];

impl Builder<'_> {
    /// A functional call of a `MultiHeadAttention`: query, value and key (positional or by
    /// keyword), `attention_mask`, `value_mask`/`key_mask` tensors, and the flags
    /// `use_causal_mask` and `return_attention_scores` (which Lamina sets on the layer, so one
    /// layer's calls must agree on them). `None` while an input tensor is not made yet.
    fn call_mha(
        &mut self,
        l: &Value,
        node: &Value,
        node_index: usize,
        group: &str,
        produced: &Produced,
    ) -> Result<Option<Vec<Tensor>>> {
        let name = name_of(l);
        let n = printable(&name).into_owned();
        let bad = |detail: String| model_err(format!("MultiHeadAttention '{n}': {detail}"));
        let mut given: BTreeMap<&str, &Value> = BTreeMap::new();
        let args = node.get("args").and_then(Value::as_array);
        for (k, a) in args.into_iter().flatten().enumerate() {
            let Some(param) = MHA_ARGS.get(k) else {
                return Err(bad(format!(
                    "it is called with {} positional arguments; it takes at most {}",
                    args.map_or(0, Vec::len),
                    MHA_ARGS.len()
                )));
            };
            given.insert(param, a);
        }
        match node.get("kwargs") {
            None | Some(Value::Null) => {}
            Some(Value::Object(kwargs)) => {
                for (key, v) in kwargs {
                    let Some(param) = MHA_ARGS.iter().find(|p| **p == key.as_str()) else {
                        return Err(bad(format!(
                            "the call argument '{}' is not supported (Lamina reads {})",
                            printable(key),
                            MHA_ARGS.join(", ")
                        )));
                    };
                    if given.insert(param, v).is_some() {
                        return Err(bad(format!("the call argument '{param}' is given twice")));
                    }
                }
            }
            Some(other) => return Err(bad(format!("its call's kwargs are {other}, not a map"))),
        }
        // A tensor argument: Ok(None) while it is not made yet, Ok(Some(None)) when absent.
        let tensor = |param: &str| -> Result<Option<Option<Tensor>>> {
            match given.get(param) {
                None | Some(Value::Null) => Ok(Some(None)),
                Some(v) if keras_ref(v).is_some() => {
                    let mut out = Vec::new();
                    Ok(resolve(v, produced, &mut out)?.map(|()| out.pop()))
                }
                Some(v) => Err(bad(format!(
                    "the call argument '{param}' is {}, not a tensor",
                    printable(&v.to_string().chars().take(80).collect::<String>())
                ))),
            }
        };
        let flag = |param: &str| -> Result<bool> {
            match given.get(param) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => Err(bad(format!(
                    "the call argument '{param}' is {v}, not true or false"
                ))),
            }
        };
        let causal = flag("use_causal_mask")?;
        let scores = flag("return_attention_scores")?;
        flag("training")?;
        if tensor("query_mask")?.is_none_or(|m| m.is_some()) {
            return Err(bad(
                "an explicit query_mask is not supported (Keras 3 reads the query's mask from \
                 the query tensor; give the mask to the query, e.g. with Masking)"
                    .into(),
            ));
        }
        let (Some(q), Some(v), Some(k), Some(attention_mask), Some(value_mask), Some(key_mask)) = (
            tensor("query")?,
            tensor("value")?,
            tensor("key")?,
            tensor("attention_mask")?,
            tensor("value_mask")?,
            tensor("key_mask")?,
        ) else {
            return Ok(None);
        };
        let (Some(q), Some(v)) = (q, v) else {
            return Err(bad("it is called without a query and a value".into()));
        };
        if key_mask.is_some() && k.is_none() {
            return Err(bad(
                "a key_mask without a key is not supported (give the mask to the value)".into(),
            ));
        }
        let key = k.clone().unwrap_or_else(|| v.clone());
        let mut ins = vec![q.clone(), v.clone()];
        if k.is_some() || attention_mask.is_some() {
            ins.push(key.clone());
        }
        if let Some(m) = &attention_mask {
            ins.push(m.clone());
        }
        let explicit: Option<Vec<Option<Tensor>>> = (value_mask.is_some() || key_mask.is_some())
            .then(|| {
                let mut m = vec![
                    q.mask().cloned(),
                    value_mask.clone().or_else(|| v.mask().cloned()),
                ];
                if ins.len() > 2 {
                    m.push(key_mask.clone().or_else(|| key.mask().cloned()));
                }
                if ins.len() > 3 {
                    m.push(None);
                }
                m
            });
        self.count_call()?;
        let layer = match self.made.get(group) {
            Some(layer) => {
                let same = layer
                    .as_any()
                    .downcast_ref::<MultiHeadAttention>()
                    .map(|m| {
                        let c = m.config();
                        (c.use_causal_mask, c.return_attention_scores)
                    });
                match (same, layer.as_any().downcast_ref::<MultiHeadAttention>()) {
                    (Some(flags), _) if flags == (causal, scores) => layer.clone(),
                    (Some(_), Some(first)) => {
                        // Another call with other call arguments: a layer of its own that
                        // shares the first one's weights, made once per set of arguments.
                        let key = format!("{group}#causal={causal},scores={scores}");
                        match self.made.get(&key) {
                            Some(l) => l.clone(),
                            None => {
                                let l: LayerRef = Arc::new(first.sharing_weights(
                                    &format!("{name}_call{}", node_index),
                                    causal,
                                    scores,
                                ));
                                self.made.insert(key, l.clone());
                                l
                            }
                        }
                    }
                    _ => return Err(bad("is not a MultiHeadAttention layer".to_string())),
                }
            }
            None => {
                let layer: LayerRef = Arc::new(
                    mha_of(cfg_of(l), &name)?
                        .use_causal_mask(causal)
                        .return_attention_scores(scores),
                );
                self.made.insert(group.to_string(), layer.clone());
                self.slots.push(Slot {
                    group: group.to_string(),
                    layer: layer.clone(),
                    custom: false,
                });
                layer
            }
        };
        call_layer_with_masks(layer.as_ref(), &ins, explicit.as_deref()).map(Some)
    }
}

/// A functional container's input layers bound to `inputs`, in the order of `input_layers`.
fn functional_inputs(entry: &Value, inputs: &[Tensor]) -> Result<Produced> {
    let mut produced: Produced = HashMap::new();
    let input_names = io_refs(cfg_of(entry).get("input_layers"));
    if input_names.len() != inputs.len() {
        return Err(model_err(format!(
            "model '{}' takes {} inputs, called on {}",
            name_of(entry),
            input_names.len(),
            inputs.len()
        )));
    }
    for ((name, _, _), t) in input_names.iter().zip(inputs) {
        produced.insert((name.clone(), 0), vec![t.clone()]);
    }
    Ok(produced)
}

/// Each layer's weight group, from its place in the layer list (`None` for a `keras.ops` call).
fn weight_groups(layers: &[Value], prefix: &str) -> Vec<Option<String>> {
    let mut namer = Namer::default();
    let mut groups: Vec<Option<String>> = Vec::with_capacity(layers.len());
    for l in layers {
        groups.push((!is_op(l)).then(|| format!("{prefix}layers/{}", namer.next(class_of(l)))));
    }
    groups
}

/// Every call a functional container's layers make, as (layer index, node index).
fn pending_calls(layers: &[Value]) -> Vec<(usize, usize)> {
    let mut pending: Vec<(usize, usize)> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        if class_of(l) == "InputLayer" {
            continue;
        }
        let nodes = l
            .get("inbound_nodes")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        pending.extend((0..nodes).map(|k| (i, k)));
    }
    pending
}

/// A functional container's outputs, as its `output_layers` name them.
fn functional_outputs(cfg: &Value, layers: &[Value], produced: &Produced) -> Result<Vec<Tensor>> {
    let mut outs = Vec::new();
    for (name, node, index) in io_refs(cfg.get("output_layers")) {
        // Keras counts a nested functional model's own first node (linking its inputs to
        // its outputs) in the output references, but not in the calls' arguments.
        let nested_functional = layers
            .iter()
            .any(|l| name_of(l) == name && class_of(l) == "Functional");
        let node = if nested_functional {
            node.saturating_sub(1)
        } else {
            node
        };
        let t = produced
            .get(&(name.clone(), node))
            .and_then(|ts| ts.get(index))
            .ok_or_else(|| {
                model_err(format!(
                    "model output '{}' (call {node}, output {index}) is made by no layer",
                    printable(&name)
                ))
            })?;
        outs.push(t.clone());
    }
    Ok(outs)
}

/// Refuses call arguments Lamina would otherwise drop for the layers whose calls take more
/// than a tensor and a mask (an RNN's `initial_state` given by keyword, say).
fn check_call_kwargs(node: &Value, class: &str, name: &str) -> Result<()> {
    if !matches!(
        class,
        "Bidirectional" | "TimeDistributed" | "Dot" | "SimpleRNN" | "LSTM" | "GRU"
    ) {
        return Ok(());
    }
    if let Some(Value::Object(kwargs)) = node.get("kwargs") {
        for (k, v) in kwargs {
            let ok = match k.as_str() {
                "mask" => true,
                "initial_state" => class != "TimeDistributed" && class != "Dot",
                "training" => v.is_null() || v.is_boolean(),
                _ => v.is_null(),
            };
            if !ok {
                return Err(model_err(format!(
                    "{class} '{}': the call argument '{}' is not supported",
                    printable(name),
                    printable(k)
                )));
            }
        }
    }
    Ok(())
}

fn single(mut outs: Vec<Tensor>, name: &str) -> Result<Tensor> {
    if outs.len() != 1 {
        return Err(model_err(format!(
            "layer '{name}' gives {} outputs inside a Sequential",
            outs.len()
        )));
    }
    Ok(outs.remove(0))
}

/// `input_layers`/`output_layers`: one `[name, node, index]` or a list of them.
fn io_refs(v: Option<&Value>) -> Vec<(String, usize, usize)> {
    let one = |a: &Value| -> Option<(String, usize, usize)> {
        let a = a.as_array()?;
        Some((
            a.first()?.as_str()?.to_string(),
            usize::try_from(a.get(1)?.as_u64()?).ok()?,
            usize::try_from(a.get(2)?.as_u64()?).ok()?,
        ))
    };
    match v {
        Some(v @ Value::Array(a)) if a.first().is_some_and(Value::is_string) => {
            one(v).into_iter().collect()
        }
        Some(Value::Array(a)) => a.iter().filter_map(one).collect(),
        _ => Vec::new(),
    }
}

/// Rebuilds the model a `config.json` describes; every class is checked and every Lambda
/// bound before anything is built.
pub(crate) fn build(config: &Value, bindings: &KerasBindings) -> Result<Built> {
    let class = class_of(config);
    if !is_container(class) {
        return Err(model_err(format!(
            "config.json describes a '{}', not a Sequential or functional model (subclassed \
             models cannot be rebuilt without their Python code)",
            printable(class)
        )));
    }
    let cfg = cfg_of(config);
    let layers = cfg
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| model_err("config.json has no layer list"))?;
    let mut missing = BTreeMap::new();
    let mut unbound = Vec::new();
    check(layers, bindings, &mut missing, &mut unbound);
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "it uses layer classes Lamina does not have: {} (Lamina has: {})",
            lamina_graph::limits::bounded_list(
                &missing
                    .iter()
                    .map(|(c, names)| format!(
                        "{} ({})",
                        printable(c),
                        lamina_graph::limits::bounded_list(
                            &names
                                .iter()
                                .map(|n| printable(n).into_owned())
                                .collect::<Vec<_>>(),
                            ", "
                        )
                    ))
                    .collect::<Vec<_>>(),
                ", "
            ),
            supported_classes().collect::<Vec<_>>().join(", ")
        ));
    }
    if !unbound.is_empty() {
        problems.push(format!(
            "{} layer(s) need a Rust body (Keras stores Lambda functions as Python code and \
             custom layers as their config only, neither of which Lamina runs): {}",
            unbound.len(),
            lamina_graph::limits::bounded_list(&unbound, "; ")
        ));
    }
    if !problems.is_empty() {
        return Err(model_err(problems.join("; ")));
    }
    let name = name_of(config);
    let mut b = Builder {
        bindings,
        slots: Vec::new(),
        made: HashMap::new(),
        ops: HashMap::new(),
        calls: 0,
    };
    let sequential = class == "Sequential";
    let inputs: Vec<Tensor> = if sequential {
        match layers.first() {
            Some(l) if class_of(l) == "InputLayer" => vec![make_input(l)?],
            _ => {
                let shape = cfg
                    .get("build_input_shape")
                    .and_then(Value::as_array)
                    .ok_or_else(|| {
                        model_err("the Sequential model has no InputLayer and no build_input_shape")
                    })?;
                vec![input_from_shape(shape, "float32", "input_layer")?]
            }
        }
    } else {
        let mut ins = Vec::new();
        for (lname, _, _) in io_refs(cfg.get("input_layers")) {
            let l = layers
                .iter()
                .find(|l| name_of(l) == lname && class_of(l) == "InputLayer")
                .ok_or_else(|| {
                    model_err(format!(
                        "model input '{}' is no InputLayer",
                        printable(&lname)
                    ))
                })?;
            ins.push(make_input(l)?);
        }
        ins
    };
    let outputs = b.apply(config, &inputs, "", 0)?;
    let model = if sequential {
        Model::named_sequential(&name, &inputs, &outputs)?
    } else {
        Model::named(&name, &inputs, &outputs)?
    };
    Ok(Built {
        model,
        slots: b.slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every class of the layer registry has a Keras mapping: an empty config reaches the
    /// class's own arm (which then asks for its required arguments or builds the layer with
    /// Keras's defaults), never the unsupported-class fallback.
    #[test]
    fn every_registry_class_has_a_keras_mapping() {
        let bindings = KerasBindings::default();
        for class in lamina_graph::layers::layer_classes() {
            let result = make_layer(class, &serde_json::json!({}), "probe", &bindings);
            if let Err(e) = result {
                assert!(!e.to_string().contains("is not supported"), "{class}: {e}");
            }
        }
    }
}
