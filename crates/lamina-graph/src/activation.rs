//! Activation functions by Keras name (`Dense(activation=...)`, the `Activation` layer,
//! `"relu".parse()`), and user functions as activations (Keras's callable `activation=`).

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

/// An activation function, named as in Keras (`keras.activations`), with Keras's default
/// arguments, or a user function ([`Activation::custom`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// The identity (Keras's `None` / `"linear"`).
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` where `x >= 0`, else `0.2 * x` (the activation's default slope; the `LeakyReLU`
    /// layer's is 0.3).
    LeakyRelu,
    /// ELU with `alpha` 1: `x` where positive, `expm1(x)` elsewhere.
    Elu,
    /// SELU: `1.0507 * elu(x, 1.6733)`.
    Selu,
    /// CELU with `alpha` 1: `max(x, 0) + expm1(min(x, 0))`.
    Celu,
    /// Exact GELU, `0.5 * x * erfc(-x / sqrt(2))` (Keras's activation default; the op
    /// `Tensor::gelu` defaults to the tanh approximation).
    Gelu,
    /// GLU over the last axis: its halves `a, b` give `a * sigmoid(b)`, so the axis halves.
    Glu,
    /// Logistic sigmoid.
    Sigmoid,
    /// `relu6(x + 3) / 6`.
    HardSigmoid,
    /// `0.5 * clip(x + 1, 0, 2)`.
    SparseSigmoid,
    /// `x * sigmoid(x)` (also `"swish"`).
    Silu,
    /// `x * hard_sigmoid(x)` (also `"hard_swish"`).
    HardSilu,
    /// `x * tanh(softplus(x))`.
    Mish,
    /// `-softplus(-x)`.
    LogSigmoid,
    /// `log(1 + e^x)`, as `logaddexp(x, 0)`.
    Softplus,
    /// `x / (|x| + 1)`.
    Softsign,
    /// 0 below -1, `x` above 1, `(x + 1)² / 4` between.
    SparsePlus,
    /// `(x + sqrt(x² + 4)) / 2`.
    Squareplus,
    /// Hyperbolic tangent.
    Tanh,
    /// `x - tanh(x)`.
    TanhShrink,
    /// `x` clipped to `[-1, 1]`.
    HardTanh,
    /// `x` where `|x| > 0.5`, else 0.
    HardShrink,
    /// `x -/+ 0.5` outside `[-0.5, 0.5]`, else 0.
    SoftShrink,
    /// `e^x`.
    Exponential,
    /// Softmax over the last axis.
    Softmax,
    /// Log-softmax over the last axis.
    LogSoftmax,
    /// A user function, traced into the graph on each call like a Lambda body (see
    /// [`Activation::custom`]).
    Custom(CustomActivation),
}

/// The function type of a custom activation.
pub type ActivationFunction = dyn Fn(&Tensor) -> Tensor + Send + Sync;

/// A user function used as an activation: a name and a function over symbolic tensors.
/// Two custom activations are equal when they share the same function (clones of one).
#[derive(Clone)]
pub struct CustomActivation {
    name: Arc<str>,
    function: Arc<ActivationFunction>,
}

impl CustomActivation {
    /// The name given to [`Activation::custom`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Applies the function; a panic in it becomes a tensor that carries the error, so the
    /// layer call returns it.
    fn apply(&self, x: &Tensor) -> Tensor {
        let f = &self.function;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(x))).unwrap_or_else(|payload| {
            Tensor::invalid(Error::Model {
                detail: format!(
                    "the activation function '{}' panicked: {}",
                    self.name,
                    crate::error::panic_message(payload.as_ref())
                ),
            })
        })
    }
}

impl fmt::Debug for CustomActivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomActivation({:?})", self.name)
    }
}

impl PartialEq for CustomActivation {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.function), Arc::as_ptr(&other.function))
            && self.name == other.name
    }
}

impl Eq for CustomActivation {}

impl Hash for CustomActivation {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        (Arc::as_ptr(&self.function) as *const () as usize).hash(state);
    }
}

impl Activation {
    /// A user function as an activation, as Keras's `Dense(activation=my_fn)`: `f` is traced
    /// over symbolic tensors each time the layer is called, exactly like a Lambda body, so it
    /// fuses into the layer's kernels on the GPU. A model using it saves as data (the traced
    /// graph, no code) and loads back as a custom activation of the same `name`; the function
    /// may use any op, but only its input, constants and Rust scalars: reading a model input
    /// or another layer's variable makes `save` fail with an error naming the activation.
    pub fn custom(name: &str, f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static) -> Activation {
        Activation::Custom(CustomActivation {
            name: name.into(),
            function: Arc::new(f),
        })
    }

    /// Applies the activation to a tensor.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        match self {
            Activation::Linear => x.clone(),
            Activation::Relu => x.relu(),
            Activation::Relu6 => x.relu6(),
            Activation::LeakyRelu => x.leaky_relu(0.2),
            Activation::Elu => x.elu(1.0),
            Activation::Selu => x.selu(),
            Activation::Celu => x.celu(1.0),
            Activation::Gelu => x.gelu_with(false),
            Activation::Glu => x.glu(-1),
            Activation::Sigmoid => x.sigmoid(),
            Activation::HardSigmoid => x.hard_sigmoid(),
            Activation::SparseSigmoid => x.sparse_sigmoid(),
            Activation::Silu => x.silu(),
            Activation::HardSilu => x.hard_silu(),
            Activation::Mish => x.mish(),
            Activation::LogSigmoid => x.log_sigmoid(),
            Activation::Softplus => x.softplus(),
            Activation::Softsign => x.softsign(),
            Activation::SparsePlus => x.sparse_plus(),
            Activation::Squareplus => x.squareplus(4.0),
            Activation::Tanh => x.tanh(),
            Activation::TanhShrink => x.tanh_shrink(),
            Activation::HardTanh => x.hard_tanh(),
            Activation::HardShrink => x.hard_shrink(0.5),
            Activation::SoftShrink => x.soft_shrink(0.5),
            Activation::Exponential => x.exp(),
            Activation::Softmax => x.softmax(-1),
            Activation::LogSoftmax => x.log_softmax(-1),
            Activation::Custom(c) => c.apply(x),
        }
    }

    /// The Keras name (the given name for a custom activation).
    pub fn name(&self) -> &str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Elu => "elu",
            Activation::Selu => "selu",
            Activation::Celu => "celu",
            Activation::Gelu => "gelu",
            Activation::Glu => "glu",
            Activation::Sigmoid => "sigmoid",
            Activation::HardSigmoid => "hard_sigmoid",
            Activation::SparseSigmoid => "sparse_sigmoid",
            Activation::Silu => "silu",
            Activation::HardSilu => "hard_silu",
            Activation::Mish => "mish",
            Activation::LogSigmoid => "log_sigmoid",
            Activation::Softplus => "softplus",
            Activation::Softsign => "softsign",
            Activation::SparsePlus => "sparse_plus",
            Activation::Squareplus => "squareplus",
            Activation::Tanh => "tanh",
            Activation::TanhShrink => "tanh_shrink",
            Activation::HardTanh => "hard_tanh",
            Activation::HardShrink => "hard_shrink",
            Activation::SoftShrink => "soft_shrink",
            Activation::Exponential => "exponential",
            Activation::Softmax => "softmax",
            Activation::LogSoftmax => "log_softmax",
            Activation::Custom(c) => c.name(),
        }
    }

    /// Whether this is a user function ([`Activation::custom`]).
    pub fn is_custom(&self) -> bool {
        matches!(self, Activation::Custom(_))
    }

    /// Every named activation, for lookups by name.
    pub const ALL: [Activation; 28] = [
        Activation::Linear,
        Activation::Relu,
        Activation::Relu6,
        Activation::LeakyRelu,
        Activation::Elu,
        Activation::Selu,
        Activation::Celu,
        Activation::Gelu,
        Activation::Glu,
        Activation::Sigmoid,
        Activation::HardSigmoid,
        Activation::SparseSigmoid,
        Activation::Silu,
        Activation::HardSilu,
        Activation::Mish,
        Activation::LogSigmoid,
        Activation::Softplus,
        Activation::Softsign,
        Activation::SparsePlus,
        Activation::Squareplus,
        Activation::Tanh,
        Activation::TanhShrink,
        Activation::HardTanh,
        Activation::HardShrink,
        Activation::SoftShrink,
        Activation::Exponential,
        Activation::Softmax,
        Activation::LogSoftmax,
    ];

    /// The other names Keras's `activations.get` accepts, and what they mean.
    pub const ALIASES: [(&'static str, Activation); 2] = [
        ("swish", Activation::Silu),
        ("hard_swish", Activation::HardSilu),
    ];
}

impl FromStr for Activation {
    type Err = Error;

    /// Looks an activation up by its Keras name or alias (`"relu"`, `"swish"`), ignoring
    /// ASCII case.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.to_ascii_lowercase();
        let all = Activation::ALL;
        let aliases = Activation::ALIASES;
        if let Some(a) = all.iter().find(|a| a.name() == s) {
            return Ok(a.clone());
        }
        if let Some((_, a)) = aliases.iter().find(|(alias, _)| *alias == s) {
            return Ok(a.clone());
        }
        let mut known: Vec<&str> = all.iter().map(|a| a.name()).collect();
        known.extend(aliases.iter().map(|(alias, _)| *alias));
        Err(Error::NotFound {
            kind: "activation".into(),
            name: s.clone(),
            detail: format!(" (known: {})", known.join(", ")),
        })
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
