//! The `Dense` layer: `activation(x @ kernel + bias)`.

use super::activation::Activation;
use super::common::Weights;
use super::init::glorot_uniform;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, LayerRef, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use std::sync::Arc;

#[derive(Clone)]
struct DenseConfig {
    name: String,
    units: usize,
    activation: Activation,
    use_bias: bool,
    seed: u64,
}

/// The kernel and the optional bias, once built.
type DenseWeights = (Arc<Variable>, Option<Arc<Variable>>);

fn split(vars: Vec<Arc<Variable>>) -> Option<DenseWeights> {
    let mut it = vars.into_iter();
    let kernel = it.next()?;
    Some((kernel, it.next()))
}

struct DenseInner {
    id: u64,
    config: DenseConfig,
    weights: Weights,
}

impl Clone for DenseInner {
    fn clone(&self) -> Self {
        DenseInner {
            id: next_id(),
            config: self.config.clone(),
            weights: Weights::default(),
        }
    }
}

/// A densely connected layer, as Keras's `Dense(units, activation, use_bias)`: the kernel has
/// shape `(input_dim, units)` (Glorot-uniform initialised), the bias `(units,)` (zeros). It is
/// built on its first call; clones are the same layer.
#[derive(Clone)]
pub struct Dense {
    inner: Arc<DenseInner>,
}

impl Dense {
    /// A Dense layer with `units` outputs, no activation and a bias.
    pub fn new(units: usize) -> Dense {
        let id = next_id();
        Dense {
            inner: Arc::new(DenseInner {
                id,
                config: DenseConfig {
                    name: unique_name("dense"),
                    units,
                    activation: Activation::Linear,
                    use_bias: true,
                    seed: id,
                },
                weights: Weights::default(),
            }),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut DenseConfig)) -> Dense {
        f(&mut Arc::make_mut(&mut self.inner).config);
        self
    }

    /// Sets the activation applied after the affine map.
    pub fn activation(self, activation: Activation) -> Dense {
        self.configure(|c| c.activation = activation)
    }

    /// Whether the layer adds a bias (default true).
    pub fn use_bias(self, use_bias: bool) -> Dense {
        self.configure(|c| c.use_bias = use_bias)
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Dense {
        self.configure(|c| c.name = name.to_string())
    }

    /// Sets the seed of the kernel initialiser.
    pub fn seed(self, seed: u64) -> Dense {
        self.configure(|c| c.seed = seed)
    }

    /// The number of output units.
    pub fn units(&self) -> usize {
        self.inner.config.units
    }

    /// The activation.
    pub fn activation_fn(&self) -> Activation {
        self.inner.config.activation.clone()
    }

    /// Whether the layer adds a bias.
    pub fn has_bias(&self) -> bool {
        self.inner.config.use_bias
    }

    fn built(&self) -> Result<DenseWeights> {
        split(self.inner.weights.list()).ok_or_else(|| Error::NotFound {
            kind: "weights of layer".into(),
            name: self.inner.config.name.clone(),
            detail: " (a Dense layer is built on its first call)".into(),
        })
    }

    /// The kernel, shape `(input_dim, units)`.
    pub fn kernel(&self) -> Result<HostTensor> {
        Ok(self.built()?.0.value())
    }

    /// The bias, shape `(units,)`; an error if the layer has none.
    pub fn bias(&self) -> Result<HostTensor> {
        match self.built()?.1 {
            Some(b) => Ok(b.value()),
            None => Err(self.no_bias()),
        }
    }

    /// Sets the kernel; the shape must be `(input_dim, units)`.
    pub fn set_kernel(&self, kernel: HostTensor) -> Result<()> {
        self.built()?.0.set(kernel)
    }

    /// Sets the bias; the shape must be `(units,)`.
    pub fn set_bias(&self, bias: HostTensor) -> Result<()> {
        match self.built()?.1 {
            Some(b) => b.set(bias),
            None => Err(self.no_bias()),
        }
    }

    fn no_bias(&self) -> Error {
        Error::NotFound {
            kind: "bias of layer".into(),
            name: self.inner.config.name.clone(),
            detail: " (it was made with use_bias(false))".into(),
        }
    }
}

impl Layer for Dense {
    fn id(&self) -> u64 {
        self.inner.id
    }

    fn name(&self) -> String {
        self.inner.config.name.clone()
    }

    fn kind(&self) -> &'static str {
        "Dense"
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let [x] = inputs else {
            return Err(Error::Inputs {
                detail: format!("Dense takes one input, got {}", inputs.len()),
            });
        };
        let c = &self.inner.config;
        if c.units == 0 {
            return Err(Error::Model {
                detail: "Dense needs at least one unit".into(),
            });
        }
        let shape = x.shape();
        let input_dim = match shape.dim(-1) {
            Some(Dim::Known(n)) => n,
            _ => {
                return Err(Error::IncompatibleShapes {
                    op: "dense".into(),
                    shapes: shape.to_string(),
                    detail: "the last dimension of the input must be known".into(),
                });
            }
        };
        let mut wanted = vec![("kernel", vec![input_dim, c.units])];
        if c.use_bias {
            wanted.push(("bias", vec![c.units]));
        }
        let vars = self
            .inner
            .weights
            .get_or_make(&c.name, &wanted, |name, shape| {
                if name == "kernel" {
                    HostTensor::new(shape, glorot_uniform(shape[0], shape[1], c.seed))
                } else {
                    HostTensor::zeros(shape)
                }
            })
            .map_err(|e| match e {
                Error::VariableShape { name, existing, .. } => Error::VariableShape {
                    name,
                    existing,
                    requested: format!("[{input_dim}, {}] for input {shape}", c.units),
                },
                other => other,
            })?;
        let (kernel, bias) = split(vars).ok_or_else(|| Error::Model {
            detail: "Dense made no kernel".into(),
        })?;
        let mut y = x.matmul(&Tensor::variable(kernel));
        if let Some(b) = bias {
            y = y.add(Tensor::variable(b));
        }
        Ok(vec![c.activation.apply(&y)])
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.inner.weights.list()
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
