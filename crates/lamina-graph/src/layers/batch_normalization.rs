//! `BatchNormalization` at inference: `(x - moving_mean) / sqrt(moving_variance + epsilon) *
//! gamma + beta` per channel. Directly after a convolution with no activation it is folded into
//! that convolution: its kernel scaled and its bias shifted per output channel, so the product
//! itself computes the normalised values and no pass over the output remains.

use super::common::{Weights, one_input};
use super::registry::{ConfigContext, Configurable};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::infer::normalize_axis;
use crate::layer::{Layer, LayerRef, unique_name};
use crate::op::Op;
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The configuration of a `BatchNormalization`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormalizationConfig {
    /// The layer's name.
    pub name: String,
    /// The channel axis (negative counts from the end).
    pub axis: i64,
    /// The moving average's momentum (unused at inference).
    #[serde(deserialize_with = "super::registry::finite_f32")]
    pub momentum: f32,
    /// Added to the variance.
    #[serde(deserialize_with = "super::registry::finite_f32")]
    pub epsilon: f32,
    /// Whether there is a `beta`.
    pub center: bool,
    /// Whether there is a `gamma`.
    pub scale: bool,
}

/// Keras's `BatchNormalization(axis=-1, momentum=0.99, epsilon=1e-3, center=True,
/// scale=True)` in inference mode. Weights, in Keras's order: `gamma` (ones, when `scale`),
/// `beta` (zeros, when `center`), `moving_mean` (zeros) and `moving_variance` (ones), each of
/// the size of `axis`; the moving statistics are not trainable.
#[derive(Clone)]
pub struct BatchNormalization {
    id: u64,
    config: BatchNormalizationConfig,
    weights: Arc<Weights>,
}

impl BatchNormalization {
    /// Normalisation of the last axis with Keras's defaults.
    pub fn new() -> BatchNormalization {
        BatchNormalization {
            id: next_id(),
            config: BatchNormalizationConfig {
                name: unique_name("batch_normalization"),
                axis: -1,
                momentum: 0.99,
                epsilon: 1e-3,
                center: true,
                scale: true,
            },
            weights: Arc::default(),
        }
    }

    /// The layer with its configuration changed by `f`, with new weights.
    fn with(mut self, f: impl FnOnce(&mut BatchNormalizationConfig)) -> BatchNormalization {
        f(&mut self.config);
        self.id = next_id();
        self.weights = Arc::default();
        self
    }

    /// The channel axis (negative counts from the end; default -1).
    pub fn axis(self, axis: isize) -> BatchNormalization {
        self.with(|c| c.axis = axis as i64)
    }

    /// The small value added to the variance (default 1e-3).
    pub fn epsilon(self, epsilon: f32) -> BatchNormalization {
        self.with(|c| c.epsilon = epsilon)
    }

    /// The moving average's momentum (kept for Keras compatibility; unused at inference).
    pub fn momentum(self, momentum: f32) -> BatchNormalization {
        self.with(|c| c.momentum = momentum)
    }

    /// Whether to add `beta` (default true).
    pub fn center(self, center: bool) -> BatchNormalization {
        self.with(|c| c.center = center)
    }

    /// Whether to multiply by `gamma` (default true).
    pub fn scale(self, scale: bool) -> BatchNormalization {
        self.with(|c| c.scale = scale)
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> BatchNormalization {
        self.with(|c| c.name = name.to_string())
    }

    /// The channel axis as an `isize`.
    fn channel_axis(&self) -> Result<isize> {
        isize::try_from(self.config.axis).map_err(|_| Error::Model {
            detail: format!(
                "BatchNormalization '{}': axis {} is out of range",
                self.config.name, self.config.axis
            ),
        })
    }
}

impl Configurable for BatchNormalization {
    const CLASS: &'static str = "BatchNormalization";
    type Config = BatchNormalizationConfig;

    fn config(&self) -> BatchNormalizationConfig {
        self.config.clone()
    }

    fn from_config(
        config: BatchNormalizationConfig,
        _context: &ConfigContext,
    ) -> Result<BatchNormalization> {
        let layer = BatchNormalization::new().with(|c| *c = config);
        layer.channel_axis()?;
        Ok(layer)
    }
}

impl Default for BatchNormalization {
    fn default() -> Self {
        BatchNormalization::new()
    }
}

impl Layer for BatchNormalization {
    fn id(&self) -> u64 {
        self.id
    }

    fn name(&self) -> String {
        self.config.name.clone()
    }

    fn kind(&self) -> &'static str {
        "BatchNormalization"
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("BatchNormalization", inputs)?;
        let shape = x.shape();
        let axis = normalize_axis("batch_normalization", self.channel_axis()?, &shape)?;
        let n = match shape.dims()[axis] {
            Dim::Known(n) => n,
            Dim::Dynamic => {
                return Err(Error::IncompatibleShapes {
                    op: "batch_normalization".into(),
                    shapes: shape.to_string(),
                    detail: format!("axis {axis} must have a known size"),
                });
            }
        };
        let mut wanted = Vec::new();
        if self.config.scale {
            wanted.push(("gamma", vec![n]));
        }
        if self.config.center {
            wanted.push(("beta", vec![n]));
        }
        wanted.push(("moving_mean", vec![n]));
        wanted.push(("moving_variance", vec![n]));
        let vars = self.weights.get_or_make_flagged(
            &self.config.name,
            &wanted,
            &["moving_mean", "moving_variance"],
            |name, s| {
                HostTensor::full(
                    s,
                    if matches!(name, "gamma" | "moving_variance") {
                        1.0
                    } else {
                        0.0
                    },
                )
            },
        )?;
        let var = |name: &str| {
            vars.iter()
                .find(|v| v.name() == name)
                .map(|v| Tensor::variable(v.clone()))
        };
        let missing = || Error::Model {
            detail: "BatchNormalization made no moving statistics".into(),
        };
        // scale = gamma / sqrt(var + eps); shift = beta - mean * scale, per channel.
        let mut mul = var("moving_variance")
            .ok_or_else(missing)?
            .add(self.config.epsilon)
            .rsqrt();
        if let Some(g) = var("gamma") {
            mul = mul.multiply(g);
        }
        let mut shift = var("moving_mean")
            .ok_or_else(missing)?
            .negative()
            .multiply(&mul);
        if let Some(b) = var("beta") {
            shift = shift.add(b);
        }
        let x = if x.dtype() == crate::dtype::DType::F32 {
            x.clone()
        } else {
            x.cast(crate::dtype::DType::F32)
        };
        // Directly after a convolution over channels-last data (its channels are the last
        // axis): fold into its kernel and bias.
        if axis + 1 == shape.rank()
            && let Ok(node) = x.node()
            && let Op::Conv { spec } = node.op()
        {
            let ins = node.inputs();
            let kernel = ins[1].multiply(&mul);
            let bias = match ins.get(2) {
                Some(b) => b.multiply(&mul).add(&shift),
                None => shift,
            };
            return Ok(vec![ins[0].conv(&kernel, Some(&bias), spec.clone())]);
        }
        let mut bshape = vec![1i64; shape.rank()];
        bshape[axis] = n as i64;
        Ok(vec![
            x.multiply(mul.reshape(&bshape)).add(shift.reshape(&bshape)),
        ])
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.weights.list()
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
        let l = BatchNormalization::new()
            .axis(1)
            .momentum(0.9)
            .epsilon(1e-5)
            .center(false)
            .name("bn");
        let back = BatchNormalization::from_config(l.config(), &ConfigContext::default()).unwrap();
        assert_eq!(back.config(), l.config());
        assert_eq!(Layer::name(&back), "bn");
        assert_eq!(
            serde_json::to_string(&l.config()).unwrap(),
            r#"{"name":"bn","axis":1,"momentum":0.9,"epsilon":0.00001,"center":false,"scale":true}"#
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let json =
            r#"{"name":"bn","axis":-1,"momentum":1e39,"epsilon":0.001,"center":true,"scale":true}"#;
        assert!(serde_json::from_str::<BatchNormalizationConfig>(json).is_err());
        let json = r#"{"name":"bn","axis":-1,"momentum":0.99,"epsilon":0.001,"center":true}"#;
        assert!(serde_json::from_str::<BatchNormalizationConfig>(json).is_err());
    }
}
