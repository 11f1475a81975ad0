//! The activation layers with their own arguments: `ReLU` (max_value, negative_slope,
//! threshold), `LeakyReLU`, `PReLU` (a learned slope) and `ELU`, with Keras's defaults.

use super::common::{Weights, layer_identity, one_input};
use crate::dtype::DType::F32;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use std::sync::Arc;

/// Refuses a value that is negative or not finite, naming the layer type and argument, in
/// Keras's words.
fn check_arg(kind: &str, arg: &str, v: f32) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(Error::Model {
            detail: format!("{arg} of a {kind} layer cannot be a negative value. Received: {v}"),
        });
    }
    Ok(())
}

/// Keras's `ReLU(max_value=None, negative_slope=0.0, threshold=0.0)`: `x` above `threshold`,
/// `negative_slope * (x - threshold)` at or below it, the result clipped to
/// `[0, max_value]` on its positive side when `max_value` is given. All three must be >= 0.
#[derive(Clone, Debug)]
pub struct ReLU {
    id: u64,
    name: String,
    max_value: Option<f32>,
    negative_slope: f32,
    threshold: f32,
}

impl Default for ReLU {
    fn default() -> Self {
        ReLU::new()
    }
}

impl ReLU {
    /// A plain ReLU, `max(x, 0)`.
    pub fn new() -> ReLU {
        ReLU {
            id: next_id(),
            name: unique_name("re_lu"),
            max_value: None,
            negative_slope: 0.0,
            threshold: 0.0,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> ReLU {
        ReLU {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// Caps the output at `max_value` (`ReLU().max_value(6.0)` is ReLU6).
    pub fn max_value(self, max_value: f32) -> ReLU {
        ReLU {
            max_value: Some(max_value),
            ..self
        }
    }

    /// The slope below the threshold (default 0).
    pub fn negative_slope(self, negative_slope: f32) -> ReLU {
        ReLU {
            negative_slope,
            ..self
        }
    }

    /// The threshold below which values are damped (default 0).
    pub fn threshold(self, threshold: f32) -> ReLU {
        ReLU { threshold, ..self }
    }

    /// `(max_value, negative_slope, threshold)`.
    pub fn config(&self) -> (Option<f32>, f32, f32) {
        (self.max_value, self.negative_slope, self.threshold)
    }

    /// Keras's `ops.relu(x, negative_slope, max_value, threshold)`, step by step.
    fn apply(&self, x: &Tensor) -> Tensor {
        let x = x.cast(F32);
        let (slope, t) = (self.negative_slope, self.threshold);
        if slope != 0.0 && self.max_value.is_none() && t == 0.0 {
            return x.leaky_relu(slope);
        }
        let mut pos = if t != 0.0 {
            Tensor::where_(&x.greater(t), &x, 0.0f32)
        } else {
            x.relu()
        };
        if let Some(m) = self.max_value {
            pos = pos.clip(0.0f32, m);
        }
        if slope != 0.0 {
            let neg = (-&x + t).relu();
            pos = &pos - &neg.multiply(slope);
        }
        pos
    }
}

impl Layer for ReLU {
    layer_identity!("ReLU");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if let Some(m) = self.max_value {
            check_arg("ReLU", "max_value", m)?;
        }
        check_arg("ReLU", "negative_slope", self.negative_slope)?;
        check_arg("ReLU", "threshold", self.threshold)?;
        Ok(vec![self.apply(one_input("ReLU", inputs)?)])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

/// Keras's `LeakyReLU(negative_slope=0.3)`: `x` where `x >= 0`, else `negative_slope * x`.
/// Its default slope, 0.3, is not the `"leaky_relu"` activation's 0.2.
#[derive(Clone, Debug)]
pub struct LeakyReLU {
    id: u64,
    name: String,
    negative_slope: f32,
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU::new()
    }
}

impl LeakyReLU {
    /// A leaky ReLU with Keras's default slope, 0.3.
    pub fn new() -> LeakyReLU {
        LeakyReLU {
            id: next_id(),
            name: unique_name("leaky_re_lu"),
            negative_slope: 0.3,
        }
    }

    /// Sets the slope (>= 0).
    pub fn negative_slope(self, negative_slope: f32) -> LeakyReLU {
        LeakyReLU {
            negative_slope,
            ..self
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> LeakyReLU {
        LeakyReLU {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// The slope.
    pub fn slope(&self) -> f32 {
        self.negative_slope
    }
}

impl Layer for LeakyReLU {
    layer_identity!("LeakyReLU");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        check_arg("LeakyReLU", "negative_slope", self.negative_slope)?;
        Ok(vec![
            one_input("LeakyReLU", inputs)?.leaky_relu(self.negative_slope),
        ])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

/// Keras's `ELU(alpha=1.0)`: `x` where positive, `alpha * (exp(x) - 1)` elsewhere.
#[derive(Clone, Debug)]
pub struct ELU {
    id: u64,
    name: String,
    alpha: f32,
}

impl Default for ELU {
    fn default() -> Self {
        ELU::new()
    }
}

impl ELU {
    /// An ELU with `alpha` 1.
    pub fn new() -> ELU {
        ELU {
            id: next_id(),
            name: unique_name("elu"),
            alpha: 1.0,
        }
    }

    /// Sets `alpha`.
    pub fn alpha(self, alpha: f32) -> ELU {
        ELU { alpha, ..self }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> ELU {
        ELU {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// `alpha`.
    pub fn alpha_value(&self) -> f32 {
        self.alpha
    }
}

impl Layer for ELU {
    layer_identity!("ELU");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if !self.alpha.is_finite() {
            return Err(Error::Model {
                detail: format!("alpha of an ELU layer must be finite, got {}", self.alpha),
            });
        }
        Ok(vec![one_input("ELU", inputs)?.elu(self.alpha)])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

struct PReLUInner {
    id: u64,
    name: String,
    shared_axes: Vec<i64>,
    weights: Weights,
}

/// Keras's `PReLU(alpha_initializer="zeros", shared_axes=None)`: `x` where positive, `alpha * x`
/// elsewhere, with a learned `alpha` of the input's per-sample shape, size 1 along each of
/// `shared_axes` (1 is the first axis after the batch). Its weight is `alpha`.
#[derive(Clone)]
pub struct PReLU {
    inner: Arc<PReLUInner>,
}

impl Default for PReLU {
    fn default() -> Self {
        PReLU::new()
    }
}

impl PReLU {
    /// A PReLU with no shared axes; `alpha` starts at zeros.
    pub fn new() -> PReLU {
        PReLU::build(unique_name("p_re_lu"), Vec::new())
    }

    fn build(name: String, shared_axes: Vec<i64>) -> PReLU {
        PReLU {
            inner: Arc::new(PReLUInner {
                id: next_id(),
                name,
                shared_axes,
                weights: Weights::default(),
            }),
        }
    }

    /// Shares `alpha` along these axes (Keras's `shared_axes=[1, 2]` for one slope per channel
    /// of an image).
    pub fn shared_axes(self, axes: &[i64]) -> PReLU {
        PReLU::build(self.inner.name.clone(), axes.to_vec())
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> PReLU {
        PReLU::build(name.to_string(), self.inner.shared_axes.clone())
    }

    /// The shared axes.
    pub fn shared(&self) -> &[i64] {
        &self.inner.shared_axes
    }
}

impl Layer for PReLU {
    super::common::weighted_layer_identity!("PReLU");

    fn supports_masking(&self) -> bool {
        true
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("PReLU", inputs)?.cast(F32);
        let rank = x.rank() as i64;
        let shape = x.shape();
        let mut alpha_shape = Vec::with_capacity(shape.rank().saturating_sub(1));
        for &a in &self.inner.shared_axes {
            if !(1..rank).contains(&a) {
                return Err(Error::Model {
                    detail: format!(
                        "PReLU: shared axis {a} is not an axis after the batch of input {shape} \
                         (1..{})",
                        rank - 1
                    ),
                });
            }
        }
        for (k, d) in shape.dims().iter().enumerate().skip(1) {
            if self.inner.shared_axes.contains(&(k as i64)) {
                alpha_shape.push(1);
                continue;
            }
            match *d {
                Dim::Known(n) => alpha_shape.push(n),
                _ => {
                    return Err(Error::IncompatibleShapes {
                        op: "prelu".into(),
                        shapes: shape.to_string(),
                        detail: format!("axis {k} must have a known size, or be shared"),
                    });
                }
            }
        }
        let vars = self.inner.weights.get_or_make(
            &self.inner.name,
            &[("alpha", alpha_shape)],
            |_, shape| HostTensor::zeros(shape),
        )?;
        let alpha = Tensor::variable(vars[0].clone());
        Ok(vec![&x.relu() - &(&alpha * &(-&x).relu())])
    }
}
