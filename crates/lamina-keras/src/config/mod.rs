//! Rebuilding a model from Keras 3's `config.json` with Lamina's layers. The whole
//! configuration is checked first (every layer class known, every `Lambda` bound), so that a
//! model Lamina cannot run is refused with the complete list, before anything is built.
//!
//! - [`check`]: the check of unknown classes and unbound Lambdas, before anything is built;
//! - [`read`]: reading and validating config values;
//! - [`layers`]: one Lamina layer from a Keras layer config, by layer family;
//! - [`inputs`]: a model's input tensors;
//! - [`refs`]: the tensor references that wire a functional model's calls;
//! - [`graph`]: calling the layers on tensors, nested models inlined.

mod check;
mod graph;
mod inputs;
mod layers;
mod read;
mod refs;

pub(super) use read::{dtype_of, f32_or, get, model_err, usize_of};
pub(super) use refs::{Produced, keras_ref, resolve};

use super::KerasBindings;
use super::weights::Slot;
use lamina_graph::error::Result;
use lamina_graph::limits::printable;
use lamina_graph::model::Model;
use read::{cfg_of, class_of, is_container, name_of};
use serde_json::Value;

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
    check::refuse_unsupported(layers, bindings)?;
    let name = name_of(config);
    let sequential = class == "Sequential";
    let inputs = inputs::model_inputs(sequential, cfg, layers)?;
    let (outputs, slots) = graph::apply_model(config, &inputs, bindings)?;
    let model = if sequential {
        Model::named_sequential(&name, &inputs, &outputs)?
    } else {
        Model::named(&name, &inputs, &outputs)?
    };
    Ok(Built { model, slots })
}
