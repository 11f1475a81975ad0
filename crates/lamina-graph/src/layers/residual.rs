//! The layers `keras.applications` registers for its residual blocks: ConvNeXt's
//! `LayerScale` (a learned per-channel scale) and `StochasticDepth` (dropping whole residual
//! branches in training, the identity at inference).

use super::common::{Weights, one_input};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, unique_name};
use crate::tensor::{Tensor, next_id};
use std::sync::Arc;

struct LayerScaleInner {
    id: u64,
    name: String,
    init_values: f32,
    projection_dim: usize,
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
        LayerScale::build(unique_name("layer_scale"), init_values, projection_dim)
    }

    fn build(name: String, init_values: f32, projection_dim: usize) -> LayerScale {
        LayerScale {
            inner: Arc::new(LayerScaleInner {
                id: next_id(),
                name,
                init_values,
                projection_dim,
                weights: Weights::default(),
            }),
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> LayerScale {
        LayerScale::build(
            name.to_string(),
            self.inner.init_values,
            self.inner.projection_dim,
        )
    }

    /// `(init_values, projection_dim)`.
    pub fn config(&self) -> (f32, usize) {
        (self.inner.init_values, self.inner.projection_dim)
    }
}

impl Layer for LayerScale {
    super::common::weighted_layer_identity!("LayerScale");

    fn supports_masking(&self) -> bool {
        true
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("LayerScale", inputs)?.cast(DType::F32);
        let shape = x.shape();
        let last = shape.dims().last().and_then(|d| d.known());
        if last != Some(self.inner.projection_dim) {
            return Err(Error::IncompatibleShapes {
                op: format!("LayerScale '{}'", self.inner.name),
                shapes: shape.to_string(),
                detail: format!(
                    "the last axis must have projection_dim = {} values",
                    self.inner.projection_dim
                ),
            });
        }
        let init = self.inner.init_values;
        let vars = self.inner.weights.get_or_make(
            &self.inner.name,
            &[("gamma", vec![self.inner.projection_dim])],
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
    name: String,
    drop_path_rate: f32,
}

impl StochasticDepth {
    /// Stochastic depth with this drop rate (used only in training).
    pub fn new(drop_path_rate: f32) -> StochasticDepth {
        StochasticDepth {
            id: next_id(),
            name: unique_name("stochastic_depth"),
            drop_path_rate,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> StochasticDepth {
        StochasticDepth {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// The drop rate.
    pub fn rate(&self) -> f32 {
        self.drop_path_rate
    }
}

impl Layer for StochasticDepth {
    super::common::layer_identity!("StochasticDepth");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if !(0.0..=1.0).contains(&self.drop_path_rate) {
            return Err(Error::Model {
                detail: format!(
                    "StochasticDepth '{}': drop_path_rate {} is not between 0 and 1",
                    self.name, self.drop_path_rate
                ),
            });
        }
        Ok(vec![one_input("StochasticDepth", inputs)?.clone()])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}
