//! The layers `keras.applications` registers for its residual blocks: ConvNeXt's
//! `LayerScale` (a learned per-channel scale) and `StochasticDepth` (dropping whole residual
//! branches in training, the identity at inference).

use super::common::{Weights, one_input};
use super::registry::{ConfigContext, Configurable};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, LayerRef, unique_name};
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The configuration of a `LayerScale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerScaleConfig {
    /// The layer's name.
    pub name: String,
    /// The initial value of `gamma`.
    #[serde(deserialize_with = "super::registry::finite_f32")]
    pub init_values: f32,
    /// The number of channels.
    pub projection_dim: usize,
}

/// The configuration of a `StochasticDepth`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StochasticDepthConfig {
    /// The layer's name.
    pub name: String,
    /// The drop rate used in training.
    #[serde(deserialize_with = "super::registry::finite_f32")]
    pub drop_path_rate: f32,
}

struct LayerScaleInner {
    id: u64,
    config: LayerScaleConfig,
    weights: Weights,
}

/// `keras.applications.convnext.LayerScale(init_values, projection_dim)`: `x * gamma`, with a
/// trainable `gamma` of `projection_dim` values (the last axis of `x`), all `init_values` at
/// first.
#[derive(Clone)]
pub struct LayerScale {
    inner: Arc<LayerScaleInner>,
}

impl LayerScale {
    /// A scale of `projection_dim` values starting at `init_values`.
    pub fn new(init_values: f32, projection_dim: usize) -> LayerScale {
        LayerScale::build(LayerScaleConfig {
            name: unique_name("layer_scale"),
            init_values,
            projection_dim,
        })
    }

    fn build(config: LayerScaleConfig) -> LayerScale {
        LayerScale {
            inner: Arc::new(LayerScaleInner {
                id: next_id(),
                config,
                weights: Weights::default(),
            }),
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> LayerScale {
        let mut config = self.inner.config.clone();
        config.name = name.to_string();
        LayerScale::build(config)
    }
}

impl Configurable for LayerScale {
    const CLASS: &'static str = "LayerScale";
    type Config = LayerScaleConfig;

    fn config(&self) -> LayerScaleConfig {
        self.inner.config.clone()
    }

    fn from_config(config: LayerScaleConfig, _context: &ConfigContext) -> Result<Self> {
        Ok(LayerScale::build(config))
    }
}

impl Layer for LayerScale {
    fn id(&self) -> u64 {
        self.inner.id
    }

    fn name(&self) -> String {
        self.inner.config.name.clone()
    }

    fn kind(&self) -> &'static str {
        "LayerScale"
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.inner.weights.list()
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("LayerScale", inputs)?.cast(DType::F32);
        let config = &self.inner.config;
        let shape = x.shape();
        let last = shape.dims().last().and_then(|d| d.known());
        if last != Some(config.projection_dim) {
            return Err(Error::IncompatibleShapes {
                op: format!("LayerScale '{}'", config.name),
                shapes: shape.to_string(),
                detail: format!(
                    "the last axis must have projection_dim = {} values",
                    config.projection_dim
                ),
            });
        }
        let init = config.init_values;
        let vars = self.inner.weights.get_or_make(
            &config.name,
            &[("gamma", vec![config.projection_dim])],
            |_, shape| HostTensor::full(shape, init),
        )?;
        Ok(vec![x.multiply(Tensor::variable(vars[0].clone()))])
    }
}

/// `keras.applications`' `StochasticDepth(drop_path_rate)`: in training it drops a residual
/// branch for whole samples; at inference, all Lamina runs, it is the identity.
#[derive(Clone)]
pub struct StochasticDepth {
    id: u64,
    config: StochasticDepthConfig,
}

impl StochasticDepth {
    /// Stochastic depth with this drop rate (used only in training).
    pub fn new(drop_path_rate: f32) -> StochasticDepth {
        StochasticDepth {
            id: next_id(),
            config: StochasticDepthConfig {
                name: unique_name("stochastic_depth"),
                drop_path_rate,
            },
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> StochasticDepth {
        let mut config = self.config;
        config.name = name.to_string();
        StochasticDepth {
            id: next_id(),
            config,
        }
    }
}

impl Configurable for StochasticDepth {
    const CLASS: &'static str = "StochasticDepth";
    type Config = StochasticDepthConfig;

    fn config(&self) -> StochasticDepthConfig {
        self.config.clone()
    }

    fn from_config(config: StochasticDepthConfig, _context: &ConfigContext) -> Result<Self> {
        Ok(StochasticDepth::new(config.drop_path_rate).name(&config.name))
    }
}

impl Layer for StochasticDepth {
    fn id(&self) -> u64 {
        self.id
    }

    fn name(&self) -> String {
        self.config.name.clone()
    }

    fn kind(&self) -> &'static str {
        "StochasticDepth"
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let StochasticDepthConfig {
            name,
            drop_path_rate,
        } = &self.config;
        if !(0.0..=1.0).contains(drop_path_rate) {
            return Err(Error::Model {
                detail: format!(
                    "StochasticDepth '{name}': drop_path_rate {drop_path_rate} is not between 0 and 1"
                ),
            });
        }
        Ok(vec![one_input("StochasticDepth", inputs)?.clone()])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_round_trip() {
        let ctx = ConfigContext::default();
        let l = LayerScale::new(0.5, 8).name("scale");
        let back = LayerScale::from_config(l.config(), &ctx).unwrap();
        assert_eq!(back.config(), l.config());
        assert_eq!(
            serde_json::to_string(&l.config()).unwrap(),
            r#"{"name":"scale","init_values":0.5,"projection_dim":8}"#
        );
        let l = StochasticDepth::new(0.25).name("drop");
        let back = StochasticDepth::from_config(l.config(), &ctx).unwrap();
        assert_eq!(back.config(), l.config());
        assert_eq!(
            serde_json::to_string(&l.config()).unwrap(),
            r#"{"name":"drop","drop_path_rate":0.25}"#
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let big = r#"{"name":"s","init_values":1e39,"projection_dim":8}"#;
        assert!(serde_json::from_str::<LayerScaleConfig>(big).is_err());
        let negative = r#"{"name":"s","init_values":1.0,"projection_dim":-8}"#;
        assert!(serde_json::from_str::<LayerScaleConfig>(negative).is_err());
        let big = r#"{"name":"d","drop_path_rate":1e39}"#;
        assert!(serde_json::from_str::<StochasticDepthConfig>(big).is_err());
        // A rate outside [0, 1] is refused when the layer is called, as before.
        let mut c = StochasticDepth::new(0.1).config();
        c.drop_path_rate = 2.0;
        let l = StochasticDepth::from_config(c, &ConfigContext::default()).unwrap();
        let x = crate::layers::Input::new(&[2]).tensor();
        assert!(l.forward(&[x]).is_err());
    }
}
