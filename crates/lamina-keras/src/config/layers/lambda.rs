//! Keras's `Lambda`, made from the Rust binding of its function.

use crate::KerasBindings;
use crate::config::read::{function_name, model_err};
use lamina_graph::error::Result;
use lamina_graph::layer::LayerRef;
use serde_json::Value;
use std::sync::Arc;

/// A `Lambda` from its config, with the function bound to it and its `arguments`; `None` for
/// any other class.
pub(super) fn lambda_layer(
    class: &str,
    cfg: &Value,
    n: &str,
    bindings: &KerasBindings,
) -> Result<Option<LayerRef>> {
    if class != "Lambda" {
        return Ok(None);
    }
    let f = cfg.get("function").unwrap_or(&Value::Null);
    let template = bindings
        .get(n, function_name(f))
        .ok_or_else(|| model_err(format!("Lambda '{n}' is not bound")))?;
    let mut lambda = template.clone().name(n);
    if let Some(Value::Object(args)) = cfg.get("arguments") {
        for (k, v) in args {
            let value = match v {
                Value::Number(x) if x.is_i64() => x
                    .as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .map(lamina_graph::host::HostTensor::from),
                Value::Number(x) => x.as_f64().map(|f| (f as f32).into()),
                Value::Bool(b) => Some(f32::from(u8::from(*b)).into()),
                _ => None,
            };
            let value = value.ok_or_else(|| {
                model_err(format!(
                    "Lambda '{n}': argument '{k}' is {v}, not a number; set it on the \
                     bound Lambda instead"
                ))
            })?;
            lambda = lambda.argument(k, value);
        }
    }
    Ok(Some(Arc::new(lambda)))
}
