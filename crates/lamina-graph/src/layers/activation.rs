//! Activation functions by Keras name, and the `Activation` layer.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::fmt;
use std::str::FromStr;

/// An activation function, named as in Keras.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// The identity (Keras's `None` / `"linear"`).
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// Log-softmax over the last axis.
    LogSoftmax,
    /// Exact (erf) GELU.
    Gelu,
    /// `x * sigmoid(x)`.
    Silu,
    /// `log(1 + e^x)`.
    Softplus,
    /// ELU with alpha 1.
    Elu,
    /// `e^x`.
    Exponential,
}

impl Activation {
    /// Applies the activation to a tensor.
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Linear => x.clone(),
            Activation::Relu => x.relu(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Softmax => x.softmax(-1),
            Activation::LogSoftmax => x.log_softmax(-1),
            Activation::Gelu => x.gelu(),
            Activation::Silu => x.silu(),
            Activation::Softplus => x.softplus(),
            Activation::Elu => x.elu(1.0),
            Activation::Exponential => x.exp(),
        }
    }

    /// The Keras name.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
            Activation::LogSoftmax => "log_softmax",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Softplus => "softplus",
            Activation::Elu => "elu",
            Activation::Exponential => "exponential",
        }
    }

    /// Every activation, for lookups by name.
    pub const ALL: [Activation; 11] = [
        Activation::Linear,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softmax,
        Activation::LogSoftmax,
        Activation::Gelu,
        Activation::Silu,
        Activation::Softplus,
        Activation::Elu,
        Activation::Exponential,
    ];
}

impl FromStr for Activation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.to_ascii_lowercase();
        if s == "swish" {
            return Ok(Activation::Silu);
        }
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::NotFound {
                kind: "activation".into(),
                name: s.clone(),
                detail: format!(" (known: {})", Activation::ALL.map(|a| a.name()).join(", ")),
            })
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
