//! References between a functional model's calls: the Keras tensors a call reads (by layer
//! name, call and output index), the tensors already made for them, and a model's
//! `input_layers`/`output_layers`.

use super::read::{cfg_of, class_of, model_err};
use lamina_graph::error::Result;
use lamina_graph::limits::printable;
use lamina_graph::tensor::Tensor;
use serde_json::Value;
use std::collections::HashMap;

/// The tensors made so far, by the name of the layer and the index of the call that made them.
pub(crate) type Produced = HashMap<(String, usize), Vec<Tensor>>;

/// The (layer, call, output) a serialized Keras tensor names; `None` for any other value.
pub(crate) fn keras_ref(v: &Value) -> Option<(&str, usize, usize)> {
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

/// The tensors a (nested list of) Keras tensor references stands for; `None` while one is
/// not made yet.
pub(crate) fn resolve(v: &Value, produced: &Produced, out: &mut Vec<Tensor>) -> Result<Option<()>> {
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
pub(super) fn refs_of_kwargs(node: &Value) -> Vec<(&str, usize, usize)> {
    match node.get("kwargs") {
        Some(Value::Object(kwargs)) => kwargs.values().flat_map(refs_of).collect(),
        _ => Vec::new(),
    }
}

/// Every Keras tensor reference in `v`, a reference or a nested list of values.
pub(super) fn refs_of(v: &Value) -> Vec<(&str, usize, usize)> {
    let mut out = Vec::new();
    /// Pushes the references in `v` onto `out`, in order.
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

/// `input_layers`/`output_layers`: one `[name, node, index]` or a list of them.
pub(super) fn io_refs(v: Option<&Value>) -> Vec<(String, usize, usize)> {
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
