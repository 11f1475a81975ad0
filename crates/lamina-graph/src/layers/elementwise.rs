//! Layers that map each element on its own: the `Activation` layer, `Dropout` (the identity
//! at inference) and `Rescaling`. All pass masks on.

use super::activation::Activation;
use super::common::{layer_identity, one_input};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layer::{Layer, unique_name};
use crate::model::SequentialItem;
use crate::tensor::{Tensor, next_id};
use std::sync::Arc;

/// Keras's `Activation(activation)` layer. `Sequential::add(Activation::Relu)` makes one.
#[derive(Clone)]
pub struct ActivationLayer {
    id: u64,
    name: String,
    activation: Activation,
}

impl ActivationLayer {
    /// The layer applying `activation`.
    pub fn new(activation: Activation) -> ActivationLayer {
        ActivationLayer {
            id: next_id(),
            name: unique_name("activation"),
            activation,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> ActivationLayer {
        ActivationLayer {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.activation.clone()
    }
}

impl Layer for ActivationLayer {
    layer_identity!("Activation");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(vec![
            self.activation.apply(one_input("Activation", inputs)?),
        ])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

impl From<Activation> for SequentialItem {
    fn from(a: Activation) -> Self {
        SequentialItem::Layer(Arc::new(ActivationLayer::new(a)))
    }
}

/// Keras's `Dropout(rate, noise_shape, seed)`: the identity at inference, which is all Lamina
/// runs. The rate is still checked (0 <= rate <= 1), as Keras does.
#[derive(Clone)]
pub struct Dropout {
    id: u64,
    name: String,
    rate: f32,
}

impl Dropout {
    /// Dropout of `rate` (used only in training, so never here).
    pub fn new(rate: f32) -> Dropout {
        Dropout {
            id: next_id(),
            name: unique_name("dropout"),
            rate,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Dropout {
        Dropout {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// The rate.
    pub fn rate(&self) -> f32 {
        self.rate
    }
}

impl Layer for Dropout {
    layer_identity!("Dropout");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(Error::Model {
                detail: format!(
                    "invalid rate {}: expected a value between 0 and 1",
                    self.rate
                ),
            });
        }
        Ok(vec![one_input("Dropout", inputs)?.clone()])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

/// Keras's `Rescaling(scale, offset=0.0)`: `x * scale + offset`, in float32.
#[derive(Clone)]
pub struct Rescaling {
    id: u64,
    name: String,
    scale: f32,
    offset: f32,
}

impl Rescaling {
    /// `x * scale + offset`.
    pub fn new(scale: f32, offset: f32) -> Rescaling {
        Rescaling {
            id: next_id(),
            name: unique_name("rescaling"),
            scale,
            offset,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Rescaling {
        Rescaling {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// `(scale, offset)`.
    pub fn factors(&self) -> (f32, f32) {
        (self.scale, self.offset)
    }
}

impl Layer for Rescaling {
    layer_identity!("Rescaling");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("Rescaling", inputs)?.cast(DType::F32);
        Ok(vec![x.multiply(self.scale).add(self.offset)])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}
