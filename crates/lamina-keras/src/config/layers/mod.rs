//! One Lamina layer from a Keras layer's class and config. Each layer family (Keras's
//! grouping: core, normalization, activations, ...) has one function whose `match` is the only
//! list of the classes it makes; [`make_layer`] tries the families of [`FAMILIES`] in turn.

mod attention;
mod basic;
mod conv;
mod lambda;
mod recurrent;
mod reshaping;
mod wrappers;

pub(super) use attention::{dot_attention_of, mha_of};

use super::read::{model_err, with_keras_defaults};
use crate::KerasBindings;
use lamina_graph::error::{Error, Result};
use lamina_graph::layer::LayerRef;
use serde_json::Value;

/// A layer family's constructor: the layer for `class` (with config `cfg` and name `n`) where
/// the family has that class, `Ok(None)` for a class it does not have.
type Family =
    fn(class: &str, cfg: &Value, n: &str, bindings: &KerasBindings) -> Result<Option<LayerRef>>;

/// The layer families, in the order [`make_layer`] tries them.
const FAMILIES: [Family; 12] = [
    |class, cfg, n, _| basic::core_layer(class, cfg, n),
    |class, cfg, n, _| basic::normalization_layer(class, cfg, n),
    |class, cfg, n, _| basic::activation_layer(class, cfg, n),
    |class, cfg, n, _| basic::merging_layer(class, cfg, n),
    |class, cfg, n, _| reshaping::reshaping_layer(class, cfg, n),
    |class, cfg, n, _| conv::pooling_layer(class, cfg, n),
    |class, cfg, n, _| conv::conv_layer(class, cfg, n),
    |class, cfg, n, _| recurrent::recurrent_layer(class, cfg, n),
    |class, cfg, n, _| attention::attention_layer(class, cfg, n),
    wrappers::wrapper_layer,
    lambda::lambda_layer,
    |class, cfg, n, _| crate::preprocessing::make(class, cfg, n),
];

/// A Lamina layer from a Keras layer's class and config (not an input layer or a model).
pub(super) fn make_layer(
    class: &str,
    cfg: &Value,
    name: &str,
    bindings: &KerasBindings,
) -> Result<LayerRef> {
    let filled = with_keras_defaults(class, cfg);
    for family in FAMILIES {
        if let Some(layer) = family(class, &filled, name, bindings)? {
            return Ok(layer);
        }
    }
    Err(unsupported_class(class))
}

/// The error for a layer class that no layer constructor knows.
fn unsupported_class(class: &str) -> Error {
    model_err(format!("layer class '{class}' is not supported"))
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
