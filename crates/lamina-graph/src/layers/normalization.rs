//! `LayerNormalization`: normalises each sample over its last axes, with a learned scale and
//! offset.

use super::common::{Weights, one_input};
use super::registry::{ConfigContext, Configurable, finite_f32};
use super::softmax::config_axis;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::infer::normalize_axis;
use crate::layer::{Layer, LayerRef, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The configuration of a [`LayerNormalization`], as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerNormalizationConfig {
    /// The layer's name.
    pub name: String,
    /// The normalised axes.
    pub axis: Vec<i64>,
    /// Added to the variance.
    #[serde(deserialize_with = "finite_f32")]
    pub epsilon: f32,
    /// Whether there is a `beta`.
    pub center: bool,
    /// Whether there is a `gamma`.
    pub scale: bool,
    /// RMS scaling instead of centring.
    pub rms_scaling: bool,
}

/// Keras's `LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True,
/// rms_scaling=False)`: `(x - mean) / sqrt(var + epsilon) * gamma + beta`, the moments taken
/// over `axis`. `gamma` (ones) and `beta` (zeros) have the shape of those axes and are made on
/// the first call. With `rms_scaling`, `x / sqrt(var + epsilon) * gamma` and no `beta`.
#[derive(Clone)]
pub struct LayerNormalization {
    id: u64,
    config: LayerNormalizationConfig,
    weights: Arc<Weights>,
}

impl LayerNormalization {
    /// Normalisation over the last axis with Keras's defaults.
    pub fn new() -> LayerNormalization {
        LayerNormalization {
            id: next_id(),
            config: LayerNormalizationConfig {
                name: unique_name("layer_normalization"),
                axis: vec![-1],
                epsilon: 1e-3,
                center: true,
                scale: true,
                rms_scaling: false,
            },
            weights: Arc::default(),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut LayerNormalizationConfig)) -> LayerNormalization {
        f(&mut self.config);
        self.id = next_id();
        self.weights = Arc::default();
        self
    }

    /// The axes to normalise over (negative counts from the end).
    pub fn axis(self, axes: &[isize]) -> LayerNormalization {
        self.configure(|c| c.axis = axes.iter().map(|&a| a as i64).collect())
    }

    /// The small value added to the variance.
    pub fn epsilon(self, epsilon: f32) -> LayerNormalization {
        self.configure(|c| c.epsilon = epsilon)
    }

    /// Whether to add `beta`.
    pub fn center(self, center: bool) -> LayerNormalization {
        self.configure(|c| c.center = center)
    }

    /// Whether to multiply by `gamma`.
    pub fn scale(self, scale: bool) -> LayerNormalization {
        self.configure(|c| c.scale = scale)
    }

    /// Whether to scale by the root of the variance only (no centring, no `beta`).
    pub fn rms_scaling(self, rms_scaling: bool) -> LayerNormalization {
        self.configure(|c| c.rms_scaling = rms_scaling)
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> LayerNormalization {
        self.configure(|c| c.name = name.to_string())
    }

    fn has_gamma(&self) -> bool {
        self.config.scale || self.config.rms_scaling
    }

    fn has_beta(&self) -> bool {
        self.config.center && !self.config.rms_scaling
    }
}

impl Default for LayerNormalization {
    fn default() -> Self {
        LayerNormalization::new()
    }
}

impl Layer for LayerNormalization {
    fn id(&self) -> u64 {
        self.id
    }

    fn name(&self) -> String {
        self.config.name.clone()
    }

    fn kind(&self) -> &'static str {
        "LayerNormalization"
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("LayerNormalization", inputs)?;
        let shape = x.shape();
        let mut axes = Vec::with_capacity(self.config.axis.len());
        for &a in &self.config.axis {
            let a = normalize_axis("layer_normalization", a as isize, &shape)?;
            if !axes.contains(&a) {
                axes.push(a);
            }
        }
        if axes.is_empty() {
            return Err(Error::Model {
                detail: "LayerNormalization needs at least one axis".into(),
            });
        }
        axes.sort_unstable();
        // gamma and beta have the shape of the normalised axes, and broadcast over the rest.
        let mut param_shape = Vec::with_capacity(axes.len());
        let mut broadcast = vec![1i64; shape.rank()];
        for &a in &axes {
            match shape.dims()[a] {
                Dim::Known(n) => {
                    param_shape.push(n);
                    broadcast[a] = n as i64;
                }
                Dim::Dynamic => {
                    return Err(Error::IncompatibleShapes {
                        op: "layer_normalization".into(),
                        shapes: shape.to_string(),
                        detail: format!("axis {a} must have a known size"),
                    });
                }
            }
        }
        let mut wanted = Vec::new();
        if self.has_gamma() {
            wanted.push(("gamma", param_shape.clone()));
        }
        if self.has_beta() {
            wanted.push(("beta", param_shape.clone()));
        }
        let vars = self
            .weights
            .get_or_make(&self.config.name, &wanted, |name, s| {
                HostTensor::full(s, if name == "gamma" { 1.0 } else { 0.0 })
            })?;
        let mut vars = vars
            .into_iter()
            .map(|v| Tensor::variable(v).reshape(&broadcast));
        let gamma = if self.has_gamma() { vars.next() } else { None };
        let beta = if self.has_beta() { vars.next() } else { None };
        let axes_list = crate::ops::Axes::List(axes.iter().map(|&a| a as isize).collect());
        let epsilon = self.config.epsilon;
        let out = if self.config.rms_scaling {
            let var = x.var_keepdims(axes_list);
            let y = x.multiply(var.add(epsilon).rsqrt());
            match gamma {
                Some(g) => y.multiply(g),
                None => y,
            }
        } else {
            let mean = x.mean_keepdims(axes_list.clone());
            let var = x.subtract(&mean).square().mean_keepdims(axes_list);
            let mut inv = var.add(epsilon).rsqrt();
            if let Some(g) = gamma {
                inv = inv.multiply(g);
            }
            let mut res = mean.negative().multiply(&inv);
            if let Some(b) = beta {
                res = res.add(b);
            }
            x.multiply(&inv).add(res)
        };
        Ok(vec![out])
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.weights.list()
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

impl Configurable for LayerNormalization {
    const CLASS: &'static str = "LayerNormalization";
    type Config = LayerNormalizationConfig;

    fn config(&self) -> LayerNormalizationConfig {
        self.config.clone()
    }

    fn from_config(
        config: LayerNormalizationConfig,
        _context: &ConfigContext,
    ) -> Result<LayerNormalization> {
        let name = &config.name;
        if config.axis.is_empty() {
            return Err(Error::Model {
                detail: format!("LayerNormalization '{name}' needs at least one axis"),
            });
        }
        let axes = config
            .axis
            .iter()
            .map(|&a| config_axis("LayerNormalization", name, a))
            .collect::<Result<Vec<_>>>()?;
        Ok(LayerNormalization::new()
            .axis(&axes)
            .epsilon(config.epsilon)
            .center(config.center)
            .scale(config.scale)
            .rms_scaling(config.rms_scaling)
            .name(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_refuses_no_axes() {
        let ctx = ConfigContext::default();
        let c = LayerNormalization::new()
            .axis(&[-2, -1])
            .epsilon(0.5)
            .center(false)
            .rms_scaling(true)
            .name("ln")
            .config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"ln","axis":[-2,-1],"epsilon":0.5,"center":false,"scale":true,"rms_scaling":true}"#
        );
        let l = LayerNormalization::from_config(c.clone(), &ctx).unwrap();
        assert_eq!(l.config(), c);
        let none = LayerNormalizationConfig { axis: vec![], ..c };
        let e = LayerNormalization::from_config(none, &ctx)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("'ln'") && e.contains("at least one axis"), "{e}");
    }
}
