//! Calling the layers of a model's configuration on tensors: Sequential models layer after
//! layer, functional models call by call as what each reads is made, nested models inlined
//! (their layers shared between calls), each layer's weight group recorded.

mod attention;
mod call;
mod schedule;

use super::check::is_custom;
use super::layers::make_layer;
use super::read::{cfg_of, class_of, is_container, is_op, model_err, name_of};
use super::refs::{Produced, io_refs};
use crate::KerasBindings;
use crate::ops::RecordedOp;
use crate::weights::{Namer, Slot};
use lamina_graph::error::Result;
use lamina_graph::layer::{LayerRef, call_layer_with_masks};
use lamina_graph::layers::Lambda;
use lamina_graph::limits::printable;
use lamina_graph::tensor::Tensor;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The most layer calls (nested models inlined) a configuration may make.
const MAX_CALLS: usize = 1 << 16;

/// Applies model `config` to `inputs`: the model's outputs, and where each of its layers'
/// weights are.
pub(super) fn apply_model(
    config: &Value,
    inputs: &[Tensor],
    bindings: &KerasBindings,
) -> Result<(Vec<Tensor>, Vec<Slot>)> {
    let mut b = Builder {
        bindings,
        slots: Vec::new(),
        made: HashMap::new(),
        ops: HashMap::new(),
        calls: 0,
    };
    let outputs = b.apply(config, inputs, "", 0)?;
    Ok((outputs, b.slots))
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

impl Builder<'_> {
    /// Counts one more layer call, refusing a configuration that makes more than
    /// [`MAX_CALLS`].
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

    /// The layer of `entry` with weight group `group`: the one made before for the group, else
    /// a new one (from its custom binding or its Keras class), whose weight slot is recorded.
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
                .class_binding(&name, crate::custom::registered_name(entry), class)
            {
                Some(factory) if custom => {
                    Arc::new(crate::custom::make(factory, &name, class, cfg_of(entry))?)
                }
                _ => make_layer(class, cfg_of(entry), &name, self.bindings)?,
            };
        self.remember(group, layer.clone(), custom);
        Ok(layer)
    }

    /// Records `layer`, newly made for weight group `group`, for the group's later calls and
    /// as a weight slot.
    fn remember(&mut self, group: &str, layer: LayerRef, custom: bool) {
        self.made.insert(group.to_string(), layer.clone());
        self.slots.push(Slot {
            group: group.to_string(),
            layer,
            custom,
        });
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

/// The one output of a layer inside a Sequential, refused where it gives several.
fn single(mut outs: Vec<Tensor>, name: &str) -> Result<Tensor> {
    if outs.len() != 1 {
        return Err(model_err(format!(
            "layer '{name}' gives {} outputs inside a Sequential",
            outs.len()
        )));
    }
    Ok(outs.remove(0))
}
