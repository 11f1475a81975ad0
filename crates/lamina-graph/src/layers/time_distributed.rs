//! `TimeDistributed(layer)`: a layer applied to every step of a sequence, with one set of
//! weights for all steps.

use super::registry::{ConfigContext, Configurable, WrappedLayer};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layer::{Layer, LayerRef, call_layer, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The configuration of a `TimeDistributed` wrapper; the inner layer's weights are this
/// layer's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeDistributedConfig {
    /// The layer's name.
    pub name: String,
    /// The wrapped layer, as its own class and configuration (not an input, Lambda or model).
    pub layer: WrappedLayer,
}

/// Keras's `TimeDistributed(layer)`: the inner layer runs on each step of
/// `(batch, steps, ...)` as if the steps were more samples (`(batch * steps, ...)`), and the
/// result is split back into `(batch, steps, ...)`. The inner layer's weights are the wrapper's,
/// addressed as `wrapper/inner/kernel` in a model, as in Keras.
#[derive(Clone)]
pub struct TimeDistributed {
    id: u64,
    config: TimeDistributedConfig,
}

impl TimeDistributed {
    /// Wraps `layer` (any single-input, single-output layer).
    pub fn new(layer: impl Layer + 'static) -> TimeDistributed {
        TimeDistributed::wrap(Arc::new(layer))
    }

    /// Wraps a shared layer handle.
    pub fn wrap(layer: LayerRef) -> TimeDistributed {
        TimeDistributed {
            id: next_id(),
            config: TimeDistributedConfig {
                name: unique_name("time_distributed"),
                layer: WrappedLayer(layer),
            },
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> TimeDistributed {
        TimeDistributed {
            id: next_id(),
            config: TimeDistributedConfig {
                name: name.to_string(),
                ..self.config
            },
        }
    }

    /// The wrapped layer (the live layer, whose weights are this one's).
    pub fn layer(&self) -> &LayerRef {
        &self.config.layer.0
    }
}

impl Configurable for TimeDistributed {
    const CLASS: &'static str = "TimeDistributed";
    type Config = TimeDistributedConfig;

    fn config(&self) -> TimeDistributedConfig {
        self.config.clone()
    }

    /// The wrapped layer was built when the configuration was read (an input layer, a Lambda,
    /// a model or a layer with a custom activation has no configuration a file can hold).
    fn from_config(
        config: TimeDistributedConfig,
        _context: &ConfigContext,
    ) -> Result<TimeDistributed> {
        Ok(TimeDistributed::wrap(config.layer.0).name(&config.name))
    }
}

impl Layer for TimeDistributed {
    fn id(&self) -> u64 {
        self.id
    }

    fn name(&self) -> String {
        self.config.name.clone()
    }

    fn kind(&self) -> &'static str {
        "TimeDistributed"
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.layer().variables()
    }

    fn weight_paths(&self) -> Vec<(String, Arc<Variable>)> {
        self.layer()
            .weight_paths()
            .into_iter()
            .map(|(p, v)| (format!("{}/{p}", self.config.name), v))
            .collect()
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let [x] = inputs else {
            return Err(Error::Inputs {
                detail: format!("TimeDistributed takes one input, got {}", inputs.len()),
            });
        };
        let shape = x.shape();
        let dims = shape.dims();
        let bad = |detail: String| Error::IncompatibleShapes {
            op: "time_distributed".into(),
            shapes: shape.to_string(),
            detail,
        };
        if dims.len() < 3 {
            return Err(bad(format!(
                "TimeDistributed takes inputs of rank 3 or more (batch, steps, ...), got rank {}",
                dims.len()
            )));
        }
        let mut merged = vec![-1i64];
        for (k, d) in dims.iter().enumerate().skip(2) {
            match d {
                Dim::Known(n) => merged.push(*n as i64),
                _ => return Err(bad(format!("axis {k} must have a known size"))),
            }
        }
        let steps = x.reshape(&merged);
        let mut outs = call_layer(self.layer().as_ref(), &[steps])?;
        if outs.len() != 1 {
            return Err(Error::Model {
                detail: format!(
                    "TimeDistributed: the inner layer '{}' gave {} outputs; it must give one",
                    self.layer().name(),
                    outs.len()
                ),
            });
        }
        let y = outs.remove(0).with_mask(None);
        let y_shape = y.shape();
        let mut split = match (dims[0], dims[1]) {
            (_, Dim::Known(t)) => vec![-1i64, t as i64],
            (Dim::Known(b), _) => vec![b as i64, -1],
            // Both known only at run time: pick the rows back as (batch, steps) by index.
            _ => return Ok(vec![unmerge_steps(x, &y)]),
        };
        for (k, d) in y_shape.dims().iter().enumerate().skip(1) {
            match d {
                Dim::Known(n) => split.push(*n as i64),
                _ => {
                    return Err(bad(format!(
                        "axis {k} of the inner layer's output {y_shape} must have a known size"
                    )));
                }
            }
        }
        Ok(vec![y.reshape(&split)])
    }

    // Keras's TimeDistributed supports masking and keeps the input's mask (batch, steps).
    fn supports_masking(&self) -> bool {
        true
    }
}

/// `y` `(batch * steps, ...)` back as `(batch, steps, ...)` when neither is known before run
/// time: row `b * steps + t` is taken for each `(b, t)` of `x`.
fn unmerge_steps(x: &Tensor, y: &Tensor) -> Tensor {
    let t = Tensor::arange_size(&x.size_of(1), DType::I32);
    let b = Tensor::arange_size(&x.size_of(0), DType::I32);
    let steps = t.ones_like().sum(0);
    let rows = b.expand_dims(1).multiply(&steps).add(t.expand_dims(0));
    y.take(&rows, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Permute;

    #[test]
    fn configurations_round_trip_and_bad_ones_are_refused() -> Result<()> {
        let context = ConfigContext::default();
        let td = TimeDistributed::new(Permute::new(&[2, 1]).name("inner")).name("td");
        let back = TimeDistributed::from_config(td.config(), &context)?;
        assert_eq!(back.config(), td.config());
        assert_eq!(back.layer().id(), td.layer().id());
        // Through JSON, as a file holds it: the old record's form, `{"name", "layer": {"class",
        // ...}}`, and a new inner layer of the same configuration.
        let json = serde_json::to_value(td.config()).map_err(|e| Error::Model {
            detail: e.to_string(),
        })?;
        assert_eq!(
            json,
            serde_json::json!({
                "name": "td",
                "layer": {"class": "Permute", "name": "inner", "dims": [2, 1]}
            })
        );
        let read: TimeDistributedConfig =
            serde_json::from_value(json).map_err(|e| Error::Model {
                detail: e.to_string(),
            })?;
        let rebuilt = TimeDistributed::from_config(read, &context)?;
        assert_ne!(rebuilt.layer().id(), td.layer().id());
        assert_eq!(rebuilt.config(), td.config());
        // A wrapped layer a file cannot hold there, or a bad inner configuration, is refused.
        for bad in [
            serde_json::json!({"name": "td", "layer": {"class": "InputLayer", "name": "x"}}),
            serde_json::json!({"name": "td", "layer": {"class": "Permute", "name": "p", "dims": [1, 1]}}),
            serde_json::json!({"name": "td", "layer": {"class": "Permute", "name": "p", "dims": [1], "extra": 1}}),
        ] {
            assert!(serde_json::from_value::<TimeDistributedConfig>(bad).is_err());
        }
        Ok(())
    }
}
