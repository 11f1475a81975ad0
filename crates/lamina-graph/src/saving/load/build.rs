//! A model's graph rebuilt from its architecture: its layers built, its calls replayed in
//! order (each layer's first call setting its weights from the file), its inputs and outputs
//! checked, and every tensor of the file accounted for.

use super::Loader;
use super::layers::{Built, build_layers, check_unique_names};
use super::plan::plan_calls;
use crate::error::{Error, Result};
use crate::layer::{LayerRef, call_layer_with_masks};
use crate::model::Model;
use crate::saving::format::*;
use crate::tensor::Tensor;
use std::collections::{HashMap, HashSet};

/// Each layer's stored weights, by layer index: (weight name, tensor name relative to the
/// model's place in the file).
type WeightNames<'l> = HashMap<usize, Vec<(&'l str, &'l str)>>;

/// Builds the model `arch` records (the file's model, or one nested in it under the loader's
/// prefix).
pub(super) fn build(loader: &Loader<'_>, arch: &Architecture, file_bytes: usize) -> Result<Model> {
    let canonical = plan_calls(loader, arch, file_bytes)?;
    let mut built = build_layers(loader, arch, file_bytes)?;
    check_unique_names(loader, arch, &built)?;
    let weight_names = stored_weight_names(loader);
    let outputs = replay_calls(loader, arch, &canonical, &mut built, &weight_names)?;
    let inputs = model_inputs(loader, arch, &outputs)?;
    let outs = model_outputs(loader, arch, &outputs)?;
    let model = Model::build(&arch.name, &inputs, &outs, arch.sequential)
        .map_err(|e| loader.err(e.to_string()))?;
    set_trainable_flags(loader, arch, &built)?;
    if !loader.prefix.borrow().is_empty() {
        // A nested model: the file's model checks the tensors once it is built.
        return Ok(model);
    }
    check_all_tensors_used(loader)?;
    Ok(model)
}

/// Each layer's stored weights by name, found once: `layers/{i}/weights/{name}`.
fn stored_weight_names<'l>(loader: &'l Loader<'_>) -> WeightNames<'l> {
    let mut weight_names: WeightNames<'l> = HashMap::new();
    let prefix = loader.prefix.borrow().clone();
    for name in loader.tensors.names() {
        // Names relative to this model's place in the file (a nested model's are prefixed).
        let Some(name) = name.strip_prefix(prefix.as_str()) else {
            continue;
        };
        let Some(rest) = name.strip_prefix("layers/") else {
            continue;
        };
        // Only the canonical spelling of an index counts ("3", not "03" or "+3").
        if let Some((index_text, weight)) = rest.split_once("/weights/")
            && let Ok(index) = index_text.parse::<usize>()
            && index.to_string() == index_text
        {
            weight_names.entry(index).or_default().push((weight, name));
        }
    }
    weight_names
}

/// Replays the calls in order, each on outputs of earlier calls; a call that `plan_calls`
/// found shares an earlier one's outputs takes them. The outputs of every call.
fn replay_calls(
    loader: &Loader<'_>,
    arch: &Architecture,
    canonical: &[usize],
    built: &mut [Built],
    weight_names: &WeightNames<'_>,
) -> Result<Vec<Vec<Tensor>>> {
    let mut outputs: Vec<Vec<Tensor>> = Vec::with_capacity(arch.calls.len());
    for (c, call) in arch.calls.iter().enumerate() {
        if canonical[c] != c {
            // The same layer on the same tensors: its outputs are shared, not built again.
            let shared = outputs[canonical[c]].clone();
            outputs.push(shared);
            continue;
        }
        let (ins, masks) = call_arguments(loader, c, call, &outputs)?;
        let outs = call_built(loader, c, call, built, &ins, &masks, weight_names)?;
        outputs.push(outs);
    }
    Ok(outputs)
}

/// The inputs and explicit masks of call `c`, read from the outputs of earlier calls.
fn call_arguments(
    loader: &Loader<'_>,
    c: usize,
    call: &CallRecord,
    outputs: &[Vec<Tensor>],
) -> Result<(Vec<Tensor>, Vec<Option<Tensor>>)> {
    let mut ins = Vec::with_capacity(call.inputs.len());
    let mut masks: Vec<Option<Tensor>> = Vec::with_capacity(call.masks.len());
    if !call.masks.is_empty() && call.masks.len() != call.inputs.len() {
        return Err(loader.err(format!(
            "call {c} has {} masks for {} inputs",
            call.masks.len(),
            call.inputs.len()
        )));
    }
    for r in &call.masks {
        let Some(r) = r else {
            masks.push(None);
            continue;
        };
        let t = outputs
            .get(r.call)
            .filter(|_| r.call < c)
            .and_then(|o| o.get(r.output))
            .ok_or_else(|| {
                loader.err(format!(
                    "call {c} takes a mask from output {} of call {}, which does not come before it",
                    r.output, r.call
                ))
            })?;
        masks.push(Some(t.clone()));
    }
    for r in &call.inputs {
        let t = outputs
            .get(r.call)
            .filter(|_| r.call < c)
            .and_then(|o| o.get(r.output))
            .ok_or_else(|| {
                loader.err(format!(
                    "call {c} reads output {} of call {}, which does not come before it",
                    r.output, r.call
                ))
            })?;
        ins.push(t.clone());
    }
    Ok((ins, masks))
}

/// Runs call `c` of a built layer: an input layer gives its tensor (once, on nothing); any
/// other layer is called on `ins` with the explicit `masks` (none when empty).
fn call_built(
    loader: &Loader<'_>,
    c: usize,
    call: &CallRecord,
    built: &mut [Built],
    ins: &[Tensor],
    masks: &[Option<Tensor>],
    weight_names: &WeightNames<'_>,
) -> Result<Vec<Tensor>> {
    let explicit = (!masks.is_empty()).then_some(masks);
    let layer = built.get_mut(call.layer).ok_or_else(|| {
        loader.err(format!(
            "call {c} names layer {}, which does not exist",
            call.layer
        ))
    })?;
    let in_layer = |e: Error| loader.err(format!("call {c}: {e}"));
    let outs = match layer {
        Built::Input { input, used } => {
            if !ins.is_empty() || *used {
                return Err(loader.err(format!(
                    "call {c}: an input layer is called once, on nothing"
                )));
            }
            *used = true;
            let t = input.clone().tensor();
            t.check().map_err(|e| in_layer(e.clone()))?;
            vec![t]
        }
        Built::Layer { layer, weights_set } => {
            if *weights_set {
                call_layer_with_masks(layer.as_ref(), ins, explicit).map_err(in_layer)?
            } else {
                let outs = first_call(loader, c, call.layer, layer, ins, explicit, weight_names)?;
                *weights_set = true;
                outs
            }
        }
    };
    Ok(outs)
}

/// The first call of layer `index` (call `c`), which takes its weights from the file, checked
/// before use; every stored weight must be one the layer has.
fn first_call(
    loader: &Loader<'_>,
    c: usize,
    index: usize,
    layer: &LayerRef,
    ins: &[Tensor],
    explicit: Option<&[Option<Tensor>]>,
    weight_names: &WeightNames<'_>,
) -> Result<Vec<Tensor>> {
    let in_layer = |e: Error| loader.err(format!("call {c}: {e}"));
    let mut stored = HashMap::new();
    for (weight, name) in weight_names.get(&index).into_iter().flatten() {
        stored.insert(weight.to_string(), loader.tensor(name)?);
    }
    let names: Vec<String> = stored.keys().cloned().collect();
    let outs = crate::layers::with_stored_weights(stored, || {
        call_layer_with_masks(layer.as_ref(), ins, explicit)
    })
    .map_err(in_layer)?;
    // Every stored weight must be one the layer has.
    let has: Vec<String> = layer
        .variables()
        .iter()
        .map(|v| v.name().to_string())
        .collect();
    if let Some(extra) = names.iter().find(|n| !has.contains(n)) {
        return Err(loader.err(format!(
            "tensor 'layers/{index}/weights/{extra}' is not a weight of layer '{}' (it has: {})",
            layer.name(),
            crate::limits::bounded_list(&has, ", ")
        )));
    }
    Ok(outs)
}

/// The model's inputs: the tensors of the input-layer calls `arch.inputs` names.
fn model_inputs(
    loader: &Loader<'_>,
    arch: &Architecture,
    outputs: &[Vec<Tensor>],
) -> Result<Vec<Tensor>> {
    let mut inputs = Vec::with_capacity(arch.inputs.len());
    for &c in &arch.inputs {
        let is_input = arch
            .calls
            .get(c)
            .and_then(|call| arch.layers.get(call.layer))
            .is_some_and(|l| matches!(l, LayerRecord::Graph(GraphRecord::InputLayer { .. })));
        if !is_input {
            return Err(loader.err(format!("model input {c} is not the call of an input layer")));
        }
        inputs.push(outputs[c][0].clone());
    }
    Ok(inputs)
}

/// The model's outputs: the call outputs `arch.outputs` names.
fn model_outputs(
    loader: &Loader<'_>,
    arch: &Architecture,
    outputs: &[Vec<Tensor>],
) -> Result<Vec<Tensor>> {
    let mut outs = Vec::with_capacity(arch.outputs.len());
    for r in &arch.outputs {
        let t = outputs
            .get(r.call)
            .and_then(|o| o.get(r.output))
            .ok_or_else(|| {
                loader.err(format!(
                    "model output refers to call {} output {}",
                    r.call, r.output
                ))
            })?;
        outs.push(t.clone());
    }
    Ok(outs)
}

/// Refuses a file with a tensor nothing read: every tensor of the file belongs to something.
fn check_all_tensors_used(loader: &Loader<'_>) -> Result<()> {
    let used = loader.used.borrow();
    let mut unused: Vec<&str> = loader
        .tensors
        .names()
        .into_iter()
        .filter(|n| !used.contains(*n))
        .collect();
    unused.sort_unstable();
    if let Some(first) = unused.first() {
        return Err(loader.err(format!(
            "tensor '{first}' is not used by the model{}",
            match unused.len() {
                1 => String::new(),
                n => format!(" ({} unused tensors in all)", n),
            }
        )));
    }
    Ok(())
}

/// Sets every loaded weight's trainable flag from the file: the weights it lists as
/// non-trainable are, all others are trainable. A listed name that is not a weight of the
/// model is refused.
fn set_trainable_flags(loader: &Loader<'_>, arch: &Architecture, built: &[Built]) -> Result<()> {
    let listed: HashSet<&str> = arch.non_trainable.iter().map(String::as_str).collect();
    let mut found = HashSet::new();
    for (i, b) in built.iter().enumerate() {
        let Built::Layer { layer, .. } = b else {
            continue;
        };
        if layer.as_any().is::<Model>() {
            // A nested model set its weights' flags from its own list.
            continue;
        }
        for v in layer.variables() {
            if v.kind() != crate::variable::VariableKind::Weight {
                continue;
            }
            let name = format!("layers/{i}/weights/{}", v.name());
            let frozen = listed.contains(name.as_str());
            if frozen {
                found.insert(name);
            }
            v.set_trainable(!frozen);
        }
    }
    match arch.non_trainable.iter().find(|n| !found.contains(*n)) {
        Some(n) => Err(loader.err(format!(
            "'{n}' is listed as non-trainable but is not a weight of the model"
        ))),
        None => Ok(()),
    }
}
