//! The `Dense` layer: `activation(x @ kernel + bias)`.

use super::common::Weights;
use super::init::glorot_uniform;
use super::registry::{ConfigContext, Configurable};
use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, LayerRef, unique_name};
use crate::shape::{Dim, Shape};
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The configuration of a [`Dense`] layer, as Keras's `Dense.get_config()` names it. A custom
/// activation is recorded by its name; a file holds its traced body beside the configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseConfig {
    /// The layer's name.
    pub name: String,
    /// Output units.
    pub units: usize,
    /// Keras activation name (the given name of a custom activation).
    pub activation: String,
    /// Whether there is a bias.
    pub use_bias: bool,
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
    /// The configuration; its `activation` is always `activation.name()`.
    config: DenseConfig,
    /// The activation the configuration names.
    activation: Activation,
    /// The seed of the kernel initialiser (state, not configuration).
    seed: u64,
    weights: Weights,
}

impl Clone for DenseInner {
    fn clone(&self) -> Self {
        DenseInner {
            id: next_id(),
            config: self.config.clone(),
            activation: self.activation.clone(),
            seed: self.seed,
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
        let activation = Activation::Linear;
        Dense {
            inner: Arc::new(DenseInner {
                id,
                config: DenseConfig {
                    name: unique_name("dense"),
                    units,
                    activation: activation.name().to_string(),
                    use_bias: true,
                },
                activation,
                seed: id,
                weights: Weights::default(),
            }),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut DenseInner)) -> Dense {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Sets the activation applied after the affine map.
    pub fn activation(self, activation: Activation) -> Dense {
        self.configure(|c| {
            c.config.activation = activation.name().to_string();
            c.activation = activation;
        })
    }

    /// Whether the layer adds a bias (default true).
    pub fn use_bias(self, use_bias: bool) -> Dense {
        self.configure(|c| c.config.use_bias = use_bias)
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Dense {
        self.configure(|c| c.config.name = name.to_string())
    }

    /// Sets the seed of the kernel initialiser.
    pub fn seed(self, seed: u64) -> Dense {
        self.configure(|c| c.seed = seed)
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
                    HostTensor::new(shape, glorot_uniform(shape[0], shape[1], self.inner.seed))
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
        Ok(vec![self.inner.activation.apply(&y)])
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

impl Configurable for Dense {
    const CLASS: &'static str = "Dense";
    type Config = DenseConfig;

    fn config(&self) -> DenseConfig {
        self.inner.config.clone()
    }

    fn from_config(config: DenseConfig, context: &ConfigContext) -> Result<Dense> {
        if config.units == 0 {
            return Err(Error::Model {
                detail: format!("Dense '{}' needs at least one unit", config.name),
            });
        }
        let activation = context.activation(&config.activation)?;
        Ok(Dense::new(config.units)
            .activation(activation)
            .use_bias(config.use_bias)
            .name(&config.name))
    }

    /// A custom activation applies to `x @ kernel + bias`: float32, `units` wide.
    fn custom_activation(
        &self,
        input: &Shape,
        _dtype: DType,
    ) -> Option<super::registry::ActivationSite> {
        let activation = &self.inner.activation;
        if !activation.is_custom() {
            return None;
        }
        let mut dims = input.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = Dim::Known(self.inner.config.units);
        }
        Some((activation.clone(), Shape::new(dims), DType::F32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_with_the_old_record_fields() {
        let ctx = ConfigContext::default();
        let d = Dense::new(3)
            .activation(Activation::Relu)
            .use_bias(false)
            .name("d");
        let c = d.config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"d","units":3,"activation":"relu","use_bias":false}"#
        );
        assert_eq!(Dense::from_config(c.clone(), &ctx).unwrap().config(), c);
        // An alias reads as its activation, which saves by its own name.
        let swish = DenseConfig {
            activation: "swish".into(),
            ..c.clone()
        };
        assert_eq!(
            Dense::from_config(swish, &ctx).unwrap().config().activation,
            "silu"
        );
        let zero = DenseConfig {
            units: 0,
            ..c.clone()
        };
        let e = Dense::from_config(zero, &ctx).err().unwrap().to_string();
        assert!(e.contains("'d'") && e.contains("at least one unit"), "{e}");
        let unknown = DenseConfig {
            activation: "nope".into(),
            ..c
        };
        assert!(Dense::from_config(unknown, &ctx).is_err());
        // The saver adds a custom activation's body; the configuration holds none.
        let body =
            r#"{"name":"d","units":3,"activation":"relu","activation_body":null,"use_bias":true}"#;
        assert!(serde_json::from_str::<DenseConfig>(body).is_err());
    }

    #[test]
    fn a_custom_activation_comes_from_the_context_and_is_reported_at_its_shape() {
        let twice = Activation::custom("twice", |x: &Tensor| x.multiply(2.0));
        let c = DenseConfig {
            name: "d".into(),
            units: 3,
            activation: "twice".into(),
            use_bias: true,
        };
        let d =
            Dense::from_config(c.clone(), &ConfigContext::with_custom_activation(twice)).unwrap();
        assert_eq!(d.config(), c);
        let input = Shape::new([Dim::Dynamic, Dim::Known(5)]);
        let (a, shape, dtype) = d.custom_activation(&input, DType::I32).unwrap();
        assert_eq!(a.name(), "twice");
        assert_eq!(shape, Shape::new([Dim::Dynamic, Dim::Known(3)]));
        assert_eq!(dtype, DType::F32);
        // Without it in the context, the name is not a built-in.
        assert!(Dense::from_config(c, &ConfigContext::default()).is_err());
        assert!(
            Dense::new(2)
                .custom_activation(&input, DType::F32)
                .is_none()
        );
    }
}
