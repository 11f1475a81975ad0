//! Custom Keras layer classes (`Layer` subclasses registered with
//! `@keras.saving.register_keras_serializable`) bound to Rust bodies: Keras saves such a
//! layer's `get_config()` values and weights, never its code, so the user gives the body as a
//! [`Lambda`] made from the config. The layer's weights (Keras's `add_weight` order) are the
//! variables the body creates, in the order it creates them.

use lamina_graph::error::{Error, Result};
use lamina_graph::layers::Lambda;
use lamina_graph::limits::printable;
use serde_json::Value;
use std::sync::Arc;

/// What a custom layer's binding gets to build its body: the layer's name and class, and the
/// values its `get_config()` returned.
pub struct KerasLayerConfig<'a> {
    name: &'a str,
    class: &'a str,
    config: &'a Value,
}

/// Makes a custom layer's body from its config.
pub type CustomLayerFactory = dyn Fn(&KerasLayerConfig<'_>) -> Result<Lambda> + Send + Sync;

impl<'a> KerasLayerConfig<'a> {
    pub(super) fn new(name: &'a str, class: &'a str, config: &'a Value) -> KerasLayerConfig<'a> {
        KerasLayerConfig {
            name,
            class,
            config,
        }
    }

    /// The Keras layer's name.
    pub fn name(&self) -> &str {
        self.name
    }

    /// The layer's class name (`ScaledResidual`).
    pub fn class(&self) -> &str {
        self.class
    }

    /// The config keys Keras recorded, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self
            .config
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        k.sort_unstable();
        k
    }

    /// The raw JSON value of a config key.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.config.get(key)
    }

    fn err(&self, key: &str, what: &str) -> Error {
        Error::Model {
            detail: format!(
                "custom layer '{}' ({}): config key '{}' is {}, not {what}",
                printable(self.name),
                printable(self.class),
                printable(key),
                self.value(key).map_or("absent".to_string(), |v| v
                    .to_string()
                    .chars()
                    .take(60)
                    .collect())
            ),
        }
    }

    /// A number of the config.
    pub fn f64(&self, key: &str) -> Result<f64> {
        self.value(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| self.err(key, "a number"))
    }

    /// A count of the config.
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.value(key)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.err(key, "a count"))
    }

    /// A true/false value of the config.
    pub fn bool(&self, key: &str) -> Result<bool> {
        self.value(key)
            .and_then(Value::as_bool)
            .ok_or_else(|| self.err(key, "true or false"))
    }

    /// A string of the config.
    pub fn str(&self, key: &str) -> Result<&str> {
        self.value(key)
            .and_then(Value::as_str)
            .ok_or_else(|| self.err(key, "a string"))
    }

    /// A list of numbers of the config.
    pub fn f64s(&self, key: &str) -> Result<Vec<f64>> {
        self.value(key)
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_f64).collect())
            .ok_or_else(|| self.err(key, "a list of numbers"))
    }
}

/// The registered name of a layer entry (`package>Class`), where Keras recorded one.
pub(super) fn registered_name(entry: &Value) -> Option<&str> {
    entry
        .get("registered_name")
        .and_then(Value::as_str)
        .filter(|r| r.contains('>'))
}

/// Builds the bound body of a custom layer, named after the Keras layer.
pub(super) fn make(
    factory: &Arc<CustomLayerFactory>,
    name: &str,
    class: &str,
    cfg: &Value,
) -> Result<Lambda> {
    let config = KerasLayerConfig::new(name, class, cfg);
    let lambda = factory(&config).map_err(|e| Error::Model {
        detail: format!(
            "the binding of custom layer '{}' ({}) failed: {e}",
            printable(name),
            printable(class)
        ),
    })?;
    Ok(lambda.name(name))
}

/// The error line for a custom layer without a binding: its class, the config keys Keras
/// recorded, and the line to write.
pub(super) fn unbound_message(name: &str, class: &str, entry: &Value) -> String {
    let cfg = entry.get("config").unwrap_or(&Value::Null);
    let config = KerasLayerConfig::new(name, class, cfg);
    let keys: Vec<&str> = config
        .keys()
        .into_iter()
        .filter(|k| !matches!(*k, "name" | "trainable" | "dtype"))
        .collect();
    format!(
        "custom layer class '{}' (layer '{}'{}; config keys: {}): bind it from Rust with \
         KerasBindings::new().bind_class(\"{}\", |cfg| Ok(Lambda::with_scope(|xs, scope| ...))), \
         creating its weights with scope.variable(...) in the order its build() adds them",
        printable(class),
        printable(name),
        registered_name(entry).map_or(String::new(), |r| format!(
            ", registered as '{}'",
            printable(r)
        )),
        if keys.is_empty() {
            "none".to_string()
        } else {
            keys.iter()
                .map(|k| printable(k).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        },
        printable(class)
    )
}
