//! Whole models in the legacy HDF5 format, as `model.save("m.h5")` writes them (tf.keras 2,
//! and Keras 3 still): the architecture as JSON in the root attribute `model_config`, the
//! weights under `model_weights/<layer>/`, listed in Keras's order by each group's
//! `weight_names` attribute. The architecture goes through the same rebuilding as a `.keras`
//! file's `config.json`, after tf.keras 2's node lists are read as Keras 3 nodes.

use super::hdf5::{File, Node};
use super::weights::{Slot, keras_places};
use super::{KerasBindings, file_err};
use lamina_graph::error::{Error, Result};
use lamina_graph::host::HostTensor;
use lamina_graph::limits::printable;
use lamina_graph::model::Model;
use lamina_graph::variable::Variable;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// A Keras tensor reference in Keras 3's form.
fn tensor_ref(layer: &Value, node: &Value, index: &Value) -> Value {
    let mut history = Map::new();
    history.insert(
        "keras_history".into(),
        Value::Array(vec![layer.clone(), node.clone(), index.clone()]),
    );
    let mut t = Map::new();
    t.insert("class_name".into(), "__keras_tensor__".into());
    t.insert("config".into(), Value::Object(history));
    Value::Object(t)
}

/// Rewrites tf.keras 2's inbound nodes (`[[["dense", 0, 0, {kwargs}], ...]]`: one list of
/// inbound tensors per call) as Keras 3's (`{"args": [...], "kwargs": {...}}`), in every
/// (nested) model of the config.
fn modernize(config: &mut Value, depth: usize) {
    if depth > 32 {
        return;
    }
    let Some(layers) = config
        .get_mut("config")
        .and_then(|c| c.get_mut("layers"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for layer in layers {
        if matches!(
            layer.get("class_name").and_then(Value::as_str),
            Some("Functional" | "Model" | "Sequential")
        ) {
            modernize(layer, depth + 1);
        }
        let Some(Value::Array(nodes)) = layer.get_mut("inbound_nodes") else {
            continue;
        };
        for node in nodes.iter_mut() {
            let Value::Array(inbound) = node else {
                continue;
            };
            let mut refs = Vec::new();
            let mut kwargs = Value::Object(Map::new());
            for entry in inbound.iter() {
                if let Some([l, n, i, rest @ ..]) = entry.as_array().map(Vec::as_slice) {
                    refs.push(tensor_ref(l, n, i));
                    if let Some(k @ Value::Object(_)) = rest.first() {
                        kwargs = k.clone();
                    }
                }
            }
            let args = match refs.len() {
                1 => refs.pop().into_iter().collect(),
                _ => vec![Value::Array(refs)],
            };
            let mut modern = Map::new();
            modern.insert("args".into(), Value::Array(args));
            modern.insert("kwargs".into(), kwargs);
            *node = Value::Object(modern);
        }
    }
}

/// Loads a whole model from a legacy `.h5` file's bytes.
pub(super) fn load(bytes: &[u8], bindings: &KerasBindings, path: &Path) -> Result<Model> {
    let h5 = File::parse(bytes).map_err(|e| file_err(path, e))?;
    let Some(text) = h5
        .string_attribute("", "model_config")
        .and_then(|v| v.first())
    else {
        return Err(file_err(
            path,
            "this HDF5 file has no model_config attribute: it holds weights only (a \
             .weights.h5 file); build the model in Rust and call load_keras_weights",
        ));
    };
    let mut config: Value = serde_json::from_str(text)
        .map_err(|e| file_err(path, format!("model_config is not valid JSON: {e}")))?;
    modernize(&mut config, 0);
    let budget = bytes.len() / 4;
    let built = lamina_graph::layers::with_weight_budget(budget, || {
        super::config::build(&config, bindings)
    })
    .map_err(|e| match e {
        Error::File { .. } => e,
        other => file_err(path, other.to_string()),
    })?;
    assign(&h5, &built.slots, path)?;
    Ok(built.model)
}

/// The variables of a slot in Keras's `layer.weights` order.
fn keras_order(slot: &Slot) -> Vec<Arc<Variable>> {
    match slot
        .layer
        .as_any()
        .downcast_ref::<lamina_graph::layers::Lambda>()
    {
        Some(lambda) if slot.custom => lambda
            .named_variables()
            .into_iter()
            .map(|(_, v)| v)
            .collect(),
        _ => keras_places(&slot.layer, &slot.group, 0)
            .into_iter()
            .flat_map(|(_, vars)| vars)
            .collect(),
    }
}

/// The dataset a `weight_names` entry of group `group` names, read and checked against `v`.
fn read_weight(
    file: &File<'_>,
    group: &str,
    wn: &str,
    v: &Arc<Variable>,
    label: &str,
) -> std::result::Result<HostTensor, String> {
    let d = match file.get(&format!("model_weights/{group}/{wn}")) {
        Some(Node::Dataset(d)) => d,
        _ => return Err(format!("{label}: weight '{wn}' is not in the file")),
    };
    if d.shape != v.shape() {
        return Err(format!(
            "{label}: weight '{}' has shape {:?} in the model but '{wn}' has {:?}",
            v.name(),
            v.shape(),
            d.shape
        ));
    }
    match file.read(d) {
        Ok(t) if t.dtype() == v.dtype() => Ok(t),
        Ok(t) => Err(format!(
            "{label}: weight '{}' is {} in the model but '{wn}' is {}",
            v.name(),
            v.dtype(),
            t.dtype()
        )),
        Err(e) => Err(format!("{label}: '{wn}': {e}")),
    }
}

/// Sets every layer's weights from `model_weights/`, all or nothing. A layer of the model takes
/// its group's weights in `weight_names` order; a nested model's group lists the weights of
/// all its layers, each matched by its name (`dense_3/kernel`, or with the model's name
/// first, as Keras writes them for a nested Sequential).
fn assign(file: &File<'_>, slots: &[Slot], path: &Path) -> Result<()> {
    let Some(Node::Group(groups)) = file.get("model_weights") else {
        return Err(file_err(path, "the file has no model_weights group"));
    };
    let listed = |g: &str| {
        file.string_attribute(&format!("model_weights/{g}"), "weight_names")
            .filter(|n| !n.is_empty())
    };
    let mut problems = Vec::new();
    let mut updates: Vec<(Arc<Variable>, HostTensor)> = Vec::new();
    let mut seen = HashSet::new();
    let mut used = HashSet::new();
    // Weights left for the nested models' groups, by their Lamina path.
    let mut by_path: HashMap<String, (Arc<Variable>, String)> = HashMap::new();
    for slot in slots {
        if !seen.insert(slot.layer.id()) {
            continue;
        }
        let want = keras_order(slot);
        if want.is_empty() {
            continue;
        }
        let name = slot.layer.name();
        let label = format!("layer '{}' ({})", printable(&name), slot.layer.kind());
        let names = match listed(&name) {
            Some(names) if slot.group.matches("/layers/").count() == 0 => names,
            _ => {
                for v in want {
                    by_path.insert(v.path(), (v.clone(), label.clone()));
                }
                continue;
            }
        };
        used.insert(name.clone());
        if names.len() != want.len() {
            problems.push(format!(
                "{label}: the model has {} weight(s), the file {} ({})",
                want.len(),
                names.len(),
                lamina_graph::limits::bounded_list(names, ", ")
            ));
            continue;
        }
        for (v, wn) in want.iter().zip(names) {
            match read_weight(file, &name, wn, v, &label) {
                Ok(t) => updates.push((v.clone(), t)),
                Err(p) => problems.push(p),
            }
        }
    }
    for g in groups.keys() {
        let Some(names) = listed(g) else {
            continue;
        };
        if used.contains(g) {
            continue;
        }
        for wn in names {
            let plain = wn.strip_suffix(":0").unwrap_or(wn);
            let unprefixed = plain.strip_prefix(&format!("{g}/")).unwrap_or(plain);
            let found = by_path.remove(plain).or_else(|| by_path.remove(unprefixed));
            match found {
                Some((v, label)) => match read_weight(file, g, wn, &v, &label) {
                    Ok(t) => updates.push((v, t)),
                    Err(p) => problems.push(p),
                },
                None => problems.push(format!(
                    "the file has weight '{}' under '{}', which is no weight of the model",
                    printable(wn),
                    printable(g)
                )),
            }
        }
    }
    let mut left: Vec<&(Arc<Variable>, String)> = by_path.values().collect();
    left.sort_by_key(|(v, _)| v.path());
    for (v, label) in left {
        problems.push(format!(
            "{label}: weight '{}' is not in the file",
            printable(&v.path())
        ));
    }
    super::weights::set_all_or_none(problems, updates, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_keras_2_nodes_become_keras_3_nodes() {
        let mut config: Value = serde_json::from_str(
            r#"{"class_name": "Functional", "config": {"layers": [
                {"class_name": "Add", "inbound_nodes": [[["a", 0, 0, {}], ["b", 1, 0, {"x": 1}]]]},
                {"class_name": "Dense", "inbound_nodes": [[["add", 0, 0, {}]]]}]}}"#,
        )
        .unwrap();
        modernize(&mut config, 0);
        let layers = &config["config"]["layers"];
        let add = &layers[0]["inbound_nodes"][0];
        assert_eq!(
            add["args"][0][1]["config"]["keras_history"],
            serde_json::json!(["b", 1, 0])
        );
        assert_eq!(add["kwargs"]["x"], 1);
        let dense = &layers[1]["inbound_nodes"][0];
        assert_eq!(
            dense["args"][0]["config"]["keras_history"],
            serde_json::json!(["add", 0, 0])
        );
    }
}
