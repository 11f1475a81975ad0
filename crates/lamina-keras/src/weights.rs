//! Keras 3's weight layout, `layers/<layer>/vars/<i>` (nested models under
//! `layers/<model>/layers/...`, the optimizer under `optimizer/`), matched to Lamina's layers.

use super::file_err;
use super::hdf5::{File, Node};
use lamina_graph::error::Result;
use lamina_graph::host::HostTensor;
use lamina_graph::layer::LayerRef;
use lamina_graph::model::Model;
use lamina_graph::variable::Variable;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// One layer with weights in Keras's layout: its group (`layers/dense_1`) and the Lamina layer
/// whose variables, in order, are `vars/0`, `vars/1`, ...
pub(crate) struct Slot {
    pub group: String,
    pub layer: LayerRef,
    /// A custom layer bound to a Lambda: its weights are the variables its body created, in
    /// order.
    pub custom: bool,
}

/// Keras's `to_snake_case`: `GlobalAveragePooling1D` is `global_average_pooling1d`.
pub(crate) fn snake_case(class: &str) -> String {
    let chars: Vec<char> = class.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || (next_lower && prev != '_') {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Names containers' children as Keras's saver does: the class in snake case, then `_1`,
/// `_2` for later ones of the same class.
#[derive(Default)]
pub(crate) struct Namer {
    used: HashMap<String, usize>,
}

impl Namer {
    pub(crate) fn next(&mut self, class: &str) -> String {
        let base = snake_case(class);
        let n = self.used.entry(base.clone()).or_insert(0);
        let name = if *n == 0 { base } else { format!("{base}_{n}") };
        *n += 1;
        name
    }
}

/// The slots of a model built in Rust: its distinct layers in order of first call, input
/// layers counted only for functional models (Keras's `Sequential.layers` leaves them out), a
/// nested model's layers under its own group (`layers/<model>/layers/...`), as Keras saves them.
pub(crate) fn slots_of(model: &Model) -> Vec<Slot> {
    let mut out = Vec::new();
    nested_slots(model, "", 0, &mut out);
    out
}

fn nested_slots(model: &Model, prefix: &str, depth: usize, out: &mut Vec<Slot>) {
    let mut namer = Namer::default();
    for layer in model.layers() {
        if layer.kind() == "InputLayer" && model.is_sequential() {
            continue;
        }
        let group = format!("{prefix}layers/{}", namer.next(layer.kind()));
        match layer.as_any().downcast_ref::<Model>() {
            Some(inner) if depth < 32 => nested_slots(inner, &format!("{group}/"), depth + 1, out),
            _ => out.push(Slot {
                group,
                layer,
                custom: false,
            }),
        }
    }
}

/// Variables Keras would save for a layer: none for a `Lambda` (its Lamina variables are
/// Lamina's own), the layer's weights otherwise.
fn keras_vars(layer: &LayerRef) -> Vec<Arc<Variable>> {
    if layer.kind() == "Lambda" {
        return Vec::new();
    }
    layer
        .variables()
        .into_iter()
        .filter(|v| v.kind() == lamina_graph::variable::VariableKind::Weight)
        .collect()
}

/// Where Keras keeps a layer's variables, relative to its group, with the Lamina variables
/// each place holds in order: the group itself for most layers; `cell` for a recurrent layer;
/// `forward_layer/cell` and `backward_layer/cell` for `Bidirectional`; the wrapped layer's
/// places under `layer` for `TimeDistributed`; `query_dense`, `key_dense`, `value_dense` and
/// `output_dense` for `MultiHeadAttention`.
pub(crate) fn keras_places(
    layer: &LayerRef,
    group: &str,
    depth: usize,
) -> Vec<(String, Vec<Arc<Variable>>)> {
    let vars = keras_vars(layer);
    match layer.kind() {
        "SimpleRNN" | "LSTM" | "GRU" => vec![(format!("{group}/cell"), vars)],
        "Bidirectional" => {
            // The forward layer's weights are named `forward_<layer>/...`, the backward's
            // `backward_<layer>/...`.
            let (forward, backward) = vars
                .into_iter()
                .partition(|v| v.name().starts_with("forward_"));
            vec![
                (format!("{group}/forward_layer/cell"), forward),
                (format!("{group}/backward_layer/cell"), backward),
            ]
        }
        "TimeDistributed" if depth < 8 => {
            match layer
                .as_any()
                .downcast_ref::<lamina_graph::layers::TimeDistributed>()
            {
                Some(td) => keras_places(td.layer(), &format!("{group}/layer"), depth + 1),
                None => vec![(group.to_string(), vars)],
            }
        }
        "MultiHeadAttention" => ["query", "key", "value", "attention_output"]
            .iter()
            .zip(["query_dense", "key_dense", "value_dense", "output_dense"])
            .map(|(ours, keras)| {
                let prefix = format!("{ours}/");
                (
                    format!("{group}/{keras}"),
                    vars.iter()
                        .filter(|v| v.name().starts_with(&prefix))
                        .cloned()
                        .collect(),
                )
            })
            .collect(),
        _ => vec![(group.to_string(), vars)],
    }
}

fn vars_of<'f>(file: &'f File<'_>, group: &str) -> Vec<(usize, &'f super::hdf5::Dataset)> {
    let mut out = Vec::new();
    if let Some(Node::Group(children)) = file.get(&format!("{group}/vars")) {
        for (name, node) in children {
            if let (Ok(i), Node::Dataset(d)) = (name.parse::<usize>(), node) {
                out.push((i, d));
            }
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out
}

/// Every group under `layers/` that holds variables, at any depth (nested models'
/// `layers/`, recurrent cells, wrapped layers, attention's projections).
fn groups_with_vars(file: &File<'_>) -> Vec<String> {
    fn walk(node: &Node, prefix: &str, depth: usize, out: &mut Vec<String>) {
        let Node::Group(children) = node else {
            return;
        };
        if let Some(Node::Group(vars)) = children.get("vars")
            && !vars.is_empty()
        {
            out.push(prefix.to_string());
        }
        if depth >= 64 {
            return;
        }
        for (name, child) in children {
            if name != "vars" {
                walk(child, &format!("{prefix}/{name}"), depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(Node::Group(layers)) = file.get("layers") {
        for (name, child) in layers {
            walk(child, &format!("layers/{name}"), 1, &mut out);
        }
    }
    out
}

fn shape_list(shapes: impl Iterator<Item = Vec<usize>>) -> String {
    shapes
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one place of a layer's variables against the file, noting each problem and the
/// values to set.
fn check_place(
    file: &File<'_>,
    slot: &Slot,
    group: &str,
    want: &[Arc<Variable>],
    problems: &mut Vec<String>,
    updates: &mut Vec<(Arc<Variable>, HostTensor)>,
) {
    let have = vars_of(file, group);
    if want.is_empty() && have.is_empty() {
        return;
    }
    let label = format!(
        "layer '{}' ({}) at '{}'",
        lamina_graph::limits::printable(&slot.layer.name()),
        slot.layer.kind(),
        group
    );
    let indices_ok = have.iter().enumerate().all(|(k, (i, _))| k == *i);
    if want.len() != have.len() || !indices_ok {
        problems.push(format!(
            "{label}: the model has {} weight(s) ({}), the file {} ({})",
            want.len(),
            shape_list(want.iter().map(|v| v.shape())),
            have.len(),
            shape_list(have.iter().map(|(_, d)| d.shape.clone()))
        ));
        return;
    }
    for (v, (i, d)) in want.iter().zip(&have) {
        if d.shape != v.shape() {
            problems.push(format!(
                "{label}: weight '{}' has shape {:?} in the model but vars/{i} has {:?}",
                v.name(),
                v.shape(),
                d.shape
            ));
            continue;
        }
        match file.read(d) {
            Ok(t) if t.dtype() == v.dtype() => updates.push((v.clone(), t)),
            Ok(t) => problems.push(format!(
                "{label}: weight '{}' is {} in the model but vars/{i} is {}",
                v.name(),
                v.dtype(),
                t.dtype()
            )),
            Err(e) => problems.push(format!("{label}: vars/{i}: {e}")),
        }
    }
}

/// Checks every slot against the file and sets the weights, all or nothing.
pub(crate) fn assign(file: &File<'_>, slots: &[Slot], path: &Path) -> Result<()> {
    if !matches!(file.get("layers"), Some(Node::Group(_))) {
        let has_vars = slots.iter().any(|s| !keras_vars(&s.layer).is_empty());
        if has_vars {
            return Err(file_err(
                path,
                if file.get("model_weights").is_some() {
                    "this is a Keras 2 (legacy .h5) file, which is not supported: save it \
                     again with Keras 3 (model.save('m.keras'))"
                } else {
                    "no 'layers' group: not a Keras 3 weights file"
                },
            ));
        }
    }
    let mut problems = Vec::new();
    let mut updates: Vec<(Arc<Variable>, HostTensor)> = Vec::new();
    let mut matched = HashSet::new();
    let mut seen_layers = HashSet::new();
    for slot in slots {
        // A layer used twice (shared) has one group, that of its first place.
        if !seen_layers.insert(slot.layer.id()) {
            continue;
        }
        let places = match slot
            .layer
            .as_any()
            .downcast_ref::<lamina_graph::layers::Lambda>()
        {
            Some(lambda) if slot.custom => vec![(
                slot.group.clone(),
                lambda
                    .named_variables()
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect(),
            )],
            _ => keras_places(&slot.layer, &slot.group, 0),
        };
        for (group, want) in places {
            check_place(file, slot, &group, &want, &mut problems, &mut updates);
            matched.insert(group);
        }
    }
    for g in groups_with_vars(file) {
        if !matched.contains(&g) {
            let have = vars_of(file, &g);
            problems.push(format!(
                "the file has weights at '{g}' ({}) for no layer of the model",
                shape_list(have.iter().map(|(_, d)| d.shape.clone()))
            ));
        }
    }
    set_all_or_none(problems, updates, path)
}

/// Sets every weight of `updates` when there are no `problems`; otherwise an error listing
/// them (the first few and a count), and nothing changes.
pub(crate) fn set_all_or_none(
    problems: Vec<String>,
    updates: Vec<(Arc<Variable>, HostTensor)>,
    path: &Path,
) -> Result<()> {
    if !problems.is_empty() {
        return Err(file_err(
            path,
            format!(
                "the weights do not match the model ({} mismatch(es)): {}",
                problems.len(),
                lamina_graph::limits::bounded_list(&problems, "; ")
            ),
        ));
    }
    for (v, t) in updates {
        v.set(t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_follows_keras() {
        assert_eq!(snake_case("Dense"), "dense");
        assert_eq!(
            snake_case("GlobalAveragePooling1D"),
            "global_average_pooling1d"
        );
        assert_eq!(snake_case("LayerNormalization"), "layer_normalization");
        assert_eq!(snake_case("InputLayer"), "input_layer");
        assert_eq!(snake_case("Conv2D"), "conv2d");
        let mut n = Namer::default();
        assert_eq!(n.next("Dense"), "dense");
        assert_eq!(n.next("Dense"), "dense_1");
        assert_eq!(n.next("Add"), "add");
    }
}
