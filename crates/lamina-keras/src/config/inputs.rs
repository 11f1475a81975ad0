//! A model's input tensors, from its `InputLayer`s (or a Sequential's `build_input_shape`).

use super::read::{cfg_of, class_of, dtype_of, model_err, name_of};
use super::refs::io_refs;
use lamina_graph::error::Result;
use lamina_graph::layers::Input;
use lamina_graph::limits::printable;
use lamina_graph::shape::Dim;
use lamina_graph::tensor::Tensor;
use serde_json::Value;

/// The inputs of the top-level model with config `cfg` and layer list `layers`: a
/// Sequential's first `InputLayer` (or its `build_input_shape`), a functional model's
/// `input_layers` in order.
pub(super) fn model_inputs(sequential: bool, cfg: &Value, layers: &[Value]) -> Result<Vec<Tensor>> {
    if sequential {
        return Ok(match layers.first() {
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
        });
    }
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
    Ok(ins)
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

/// An input of batch shape `shape` (the batch size first, `null` for a dynamic size).
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
