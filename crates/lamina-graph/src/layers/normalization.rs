//! `LayerNormalization`: normalises each sample over its last axes, with a learned scale and
//! offset.

use super::common::{Weights, layer_identity, one_input};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::infer::normalize_axis;
use crate::layer::{Layer, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use std::sync::Arc;

/// Keras's `LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True,
/// rms_scaling=False)`: `(x - mean) / sqrt(var + epsilon) * gamma + beta`, the moments taken
/// over `axis`. `gamma` (ones) and `beta` (zeros) have the shape of those axes and are made on
/// the first call. With `rms_scaling`, `x / sqrt(var + epsilon) * gamma` and no `beta`.
#[derive(Clone)]
pub struct LayerNormalization {
    id: u64,
    name: String,
    axes: Vec<isize>,
    epsilon: f32,
    center: bool,
    scale: bool,
    rms_scaling: bool,
    weights: Arc<Weights>,
}

impl LayerNormalization {
    /// Normalisation over the last axis with Keras's defaults.
    pub fn new() -> LayerNormalization {
        LayerNormalization {
            id: next_id(),
            name: unique_name("layer_normalization"),
            axes: vec![-1],
            epsilon: 1e-3,
            center: true,
            scale: true,
            rms_scaling: false,
            weights: Arc::default(),
        }
    }

    fn fresh(mut self) -> LayerNormalization {
        self.id = next_id();
        self.weights = Arc::default();
        self
    }

    /// The axes to normalise over (negative counts from the end).
    pub fn axis(self, axes: &[isize]) -> LayerNormalization {
        LayerNormalization {
            axes: axes.to_vec(),
            ..self
        }
        .fresh()
    }

    /// The small value added to the variance.
    pub fn epsilon(self, epsilon: f32) -> LayerNormalization {
        LayerNormalization { epsilon, ..self }.fresh()
    }

    /// Whether to add `beta`.
    pub fn center(self, center: bool) -> LayerNormalization {
        LayerNormalization { center, ..self }.fresh()
    }

    /// Whether to multiply by `gamma`.
    pub fn scale(self, scale: bool) -> LayerNormalization {
        LayerNormalization { scale, ..self }.fresh()
    }

    /// Whether to scale by the root of the variance only (no centring, no `beta`).
    pub fn rms_scaling(self, rms_scaling: bool) -> LayerNormalization {
        LayerNormalization {
            rms_scaling,
            ..self
        }
        .fresh()
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> LayerNormalization {
        LayerNormalization {
            name: name.to_string(),
            ..self
        }
        .fresh()
    }

    /// The configuration: `(axes, epsilon, center, scale, rms_scaling)`.
    pub fn config(&self) -> (&[isize], f32, bool, bool, bool) {
        (
            &self.axes,
            self.epsilon,
            self.center,
            self.scale,
            self.rms_scaling,
        )
    }

    fn has_gamma(&self) -> bool {
        self.scale || self.rms_scaling
    }

    fn has_beta(&self) -> bool {
        self.center && !self.rms_scaling
    }
}

impl Default for LayerNormalization {
    fn default() -> Self {
        LayerNormalization::new()
    }
}

impl Layer for LayerNormalization {
    layer_identity!("LayerNormalization");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("LayerNormalization", inputs)?;
        let shape = x.shape();
        let mut axes = Vec::with_capacity(self.axes.len());
        for &a in &self.axes {
            let a = normalize_axis("layer_normalization", a, &shape)?;
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
        let vars = self.weights.get_or_make(&self.name, &wanted, |name, s| {
            HostTensor::full(s, if name == "gamma" { 1.0 } else { 0.0 })
        })?;
        let mut vars = vars
            .into_iter()
            .map(|v| Tensor::variable(v).reshape(&broadcast));
        let gamma = if self.has_gamma() { vars.next() } else { None };
        let beta = if self.has_beta() { vars.next() } else { None };
        let axes_list = crate::ops::Axes::List(axes.iter().map(|&a| a as isize).collect());
        let out = if self.rms_scaling {
            let var = x.var_keepdims(axes_list);
            let y = x.multiply(var.add(self.epsilon).rsqrt());
            match gamma {
                Some(g) => y.multiply(g),
                None => y,
            }
        } else {
            let mean = x.mean_keepdims(axes_list.clone());
            let var = x.subtract(&mean).square().mean_keepdims(axes_list);
            let mut inv = var.add(self.epsilon).rsqrt();
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
