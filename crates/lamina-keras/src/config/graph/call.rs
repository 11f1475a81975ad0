//! One call of a functional model's layer: its tensors, masks and initial states read from the
//! call's arguments, then the layer (or `keras.ops` op, or nested model) applied to them.

use super::Builder;
use crate::config::check::is_custom;
use crate::config::read::{cfg_of, class_of, is_container, is_op, model_err, name_of};
use crate::config::refs::{Produced, refs_of, resolve};
use crate::ops::RecordedOp;
use lamina_graph::error::Result;
use lamina_graph::layer::call_layer_with_masks;
use lamina_graph::limits::printable;
use lamina_graph::tensor::Tensor;
use serde_json::Value;

impl Builder<'_> {
    /// Makes call `k` of layer `i` of a functional container when every tensor it reads is
    /// made: `Ok(true)` once done, `Ok(false)` while an input is missing.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn call_node(
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
        let group = groups[i].as_deref().unwrap_or_default();
        let outs = if is_op(l) {
            self.call_op(l, node, prefix, produced)?
        } else if class_of(l) == "MultiHeadAttention" {
            self.call_mha(l, node, k, group, produced)?
        } else {
            self.call_layer(l, node, group, produced, depth)?
        };
        let Some(outs) = outs else {
            return Ok(false);
        };
        produced.insert((name_of(l), k), outs);
        Ok(true)
    }

    /// A recorded `keras.ops` call `node` of entry `l`, applied by the Lambda layer made for
    /// the op in the container of weight-group prefix `prefix`; `None` while an operand is not
    /// made yet.
    fn call_op(
        &mut self,
        l: &Value,
        node: &Value,
        prefix: &str,
        produced: &Produced,
    ) -> Result<Option<Vec<Tensor>>> {
        let name = name_of(l);
        let Some((op, operands)) = RecordedOp::read(class_of(l), &name, cfg_of(l), node, produced)?
        else {
            return Ok(None);
        };
        self.count_call()?;
        let layer = self.op_layer(&format!("{prefix}{name}"), &name, op);
        // An op sees no masks, as in Keras (only layers take them).
        let no_masks = operands
            .iter()
            .any(|t| t.mask().is_some())
            .then(|| vec![None; operands.len()]);
        call_layer_with_masks(layer.as_ref(), &operands, no_masks.as_deref()).map(Some)
    }

    /// Call `node` of layer or nested model `l` (weight group `group`) on its tensors, with
    /// the masks it is given and a recurrent layer's initial states; `None` while a tensor it
    /// reads is not made yet.
    fn call_layer(
        &mut self,
        l: &Value,
        node: &Value,
        group: &str,
        produced: &Produced,
        depth: usize,
    ) -> Result<Option<Vec<Tensor>>> {
        let args: &[Value] = node
            .get("args")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let class = class_of(l);
        let custom = is_custom(l, self.bindings);
        let recurrent = matches!(class, "SimpleRNN" | "LSTM" | "GRU" | "Bidirectional");
        let Some(mut ins) = call_inputs(args, custom, produced)? else {
            return Ok(None);
        };
        let Some(masks) = call_masks(node, produced)? else {
            return Ok(None);
        };
        let Some(states) = initial_states(args, node, recurrent, produced)? else {
            return Ok(None);
        };
        let inputs_given = ins.len();
        ins.extend(states);
        self.count_call()?;
        let name = name_of(l);
        check_positional(args, custom, recurrent, &name)?;
        check_call_kwargs(node, class, &name)?;
        if is_container(class) {
            return self
                .apply(l, &ins, &format!("{group}/"), depth + 1)
                .map(Some);
        }
        let layer = if matches!(class, "Attention" | "AdditiveAttention") {
            self.dot_attention_for(group, l, node)?
        } else {
            self.layer_for(group, l)?
        };
        let explicit = explicit_masks(masks, inputs_given, ins.len(), &name)?;
        call_layer_with_masks(layer.as_ref(), &ins, explicit.as_deref()).map(Some)
    }
}

/// The tensors a call takes from its positional arguments `args`: those of the first (a tensor
/// or a list of them), or of every tensor argument in order for a custom layer; `None` while
/// one is not made yet.
fn call_inputs(args: &[Value], custom: bool, produced: &Produced) -> Result<Option<Vec<Tensor>>> {
    let mut ins = Vec::new();
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
    Ok(resolve(first, produced, &mut ins)?.map(|()| ins))
}

/// The masks call `node` gives by its keyword `mask` (one per input, `None` where an input's
/// is null; empty where it gives none); `None` while one is not made yet.
fn call_masks(node: &Value, produced: &Produced) -> Result<Option<Vec<Option<Tensor>>>> {
    let mask_v = node
        .get("kwargs")
        .and_then(|k| k.get("mask"))
        .unwrap_or(&Value::Null);
    let mut masks = Vec::new();
    let items = match mask_v {
        Value::Null => return Ok(Some(masks)),
        Value::Array(items) => items.as_slice(),
        m => std::slice::from_ref(m),
    };
    for m in items {
        if m.is_null() {
            masks.push(None);
            continue;
        }
        let mut one = Vec::new();
        if resolve(m, produced, &mut one)?.is_none() {
            return Ok(None);
        }
        masks.extend(one.into_iter().map(Some));
    }
    Ok(Some(masks))
}

/// A recurrent layer's initial states (positional after the input, or the keyword
/// `initial_state`), which follow the input as Lamina's layers take them; none for other
/// layers, `None` while one is not made yet.
fn initial_states(
    args: &[Value],
    node: &Value,
    recurrent: bool,
    produced: &Produced,
) -> Result<Option<Vec<Tensor>>> {
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
        return Ok(None);
    }
    Ok(Some(states))
}

/// The masks to call a layer with, from those its call gives: none where it gives none, else
/// one per input (`inputs` of them, of which the first `inputs_given` are not initial states,
/// which carry no mask of their own).
fn explicit_masks(
    mut masks: Vec<Option<Tensor>>,
    inputs_given: usize,
    inputs: usize,
    name: &str,
) -> Result<Option<Vec<Option<Tensor>>>> {
    if masks.is_empty() {
        return Ok(None);
    }
    if masks.len() == inputs_given {
        // The states carry no mask of their own.
        masks.resize(inputs, None);
    }
    if masks.len() != inputs {
        return Err(model_err(format!(
            "layer '{name}' is given {} masks for {inputs} inputs",
            masks.len()
        )));
    }
    Ok(Some(masks))
}

/// Refuses a call with a tensor among its positional arguments past those the layer takes:
/// every one for a custom layer, the input and initial states for a recurrent one, the input
/// for the others.
fn check_positional(args: &[Value], custom: bool, recurrent: bool, name: &str) -> Result<()> {
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
    Ok(())
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
