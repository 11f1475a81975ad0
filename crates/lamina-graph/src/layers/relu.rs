//! The activation layers with their own arguments: `ReLU` (max_value, negative_slope,
//! threshold), `LeakyReLU`, `PReLU` (a learned slope) and `ELU`, with Keras's defaults.

use super::common::{Weights, layer_identity, one_input};
use super::registry::{ConfigContext, Configurable, finite_f32};
use crate::dtype::DType::F32;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The configuration of a [`ReLU`] layer, as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReLUConfig {
    /// The layer's name.
    pub name: String,
    /// The cap, if any.
    pub max_value: Option<f32>,
    /// The slope below the threshold.
    #[serde(deserialize_with = "finite_f32")]
    pub negative_slope: f32,
    /// The threshold.
    #[serde(deserialize_with = "finite_f32")]
    pub threshold: f32,
}

/// The configuration of a [`LeakyReLU`] layer, as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakyReLUConfig {
    /// The layer's name.
    pub name: String,
    /// The slope.
    #[serde(deserialize_with = "finite_f32")]
    pub negative_slope: f32,
}

/// The configuration of a [`PReLU`] layer, as Keras names it (its `alpha` is a weight).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PReLUConfig {
    /// The layer's name.
    pub name: String,
    /// Axes along which `alpha` is shared.
    pub shared_axes: Vec<i64>,
}

/// The configuration of an [`ELU`] layer, as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ELUConfig {
    /// The layer's name.
    pub name: String,
    /// `alpha`.
    #[serde(deserialize_with = "finite_f32")]
    pub alpha: f32,
}

/// `result` with its error prefixed by the layer's class and name, for errors in a
/// configuration.
fn in_layer<T>(kind: &str, name: &str, result: Result<T>) -> Result<T> {
    result.map_err(|e| match e {
        Error::Model { detail } => Error::Model {
            detail: format!("{kind} '{name}': {detail}"),
        },
        other => other,
    })
}

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

    /// Refuses a negative or non-finite argument, in Keras's words.
    fn check(&self) -> Result<()> {
        if let Some(m) = self.max_value {
            check_arg("ReLU", "max_value", m)?;
        }
        check_arg("ReLU", "negative_slope", self.negative_slope)?;
        check_arg("ReLU", "threshold", self.threshold)
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
        self.check()?;
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

impl Configurable for ReLU {
    const CLASS: &'static str = "ReLU";
    type Config = ReLUConfig;

    fn config(&self) -> ReLUConfig {
        ReLUConfig {
            name: self.name.clone(),
            max_value: self.max_value,
            negative_slope: self.negative_slope,
            threshold: self.threshold,
        }
    }

    fn from_config(config: ReLUConfig, _context: &ConfigContext) -> Result<ReLU> {
        let mut l = ReLU::new()
            .negative_slope(config.negative_slope)
            .threshold(config.threshold);
        if let Some(m) = config.max_value {
            l = l.max_value(m);
        }
        let l = l.name(&config.name);
        in_layer("ReLU", &config.name, l.check())?;
        Ok(l)
    }
}

impl Configurable for LeakyReLU {
    const CLASS: &'static str = "LeakyReLU";
    type Config = LeakyReLUConfig;

    fn config(&self) -> LeakyReLUConfig {
        LeakyReLUConfig {
            name: self.name.clone(),
            negative_slope: self.negative_slope,
        }
    }

    fn from_config(config: LeakyReLUConfig, _context: &ConfigContext) -> Result<LeakyReLU> {
        in_layer(
            "LeakyReLU",
            &config.name,
            check_arg("LeakyReLU", "negative_slope", config.negative_slope),
        )?;
        Ok(LeakyReLU::new()
            .negative_slope(config.negative_slope)
            .name(&config.name))
    }
}

impl Configurable for PReLU {
    const CLASS: &'static str = "PReLU";
    type Config = PReLUConfig;

    fn config(&self) -> PReLUConfig {
        PReLUConfig {
            name: self.inner.name.clone(),
            shared_axes: self.inner.shared_axes.clone(),
        }
    }

    fn from_config(config: PReLUConfig, _context: &ConfigContext) -> Result<PReLU> {
        if let Some(a) = config.shared_axes.iter().find(|&&a| a < 1) {
            return Err(Error::Model {
                detail: format!(
                    "PReLU '{}': shared axis {a} is not an axis after the batch (1 or more)",
                    config.name
                ),
            });
        }
        Ok(PReLU::new()
            .shared_axes(&config.shared_axes)
            .name(&config.name))
    }
}

impl Configurable for ELU {
    const CLASS: &'static str = "ELU";
    type Config = ELUConfig;

    fn config(&self) -> ELUConfig {
        ELUConfig {
            name: self.name.clone(),
            alpha: self.alpha,
        }
    }

    fn from_config(config: ELUConfig, _context: &ConfigContext) -> Result<ELU> {
        Ok(ELU::new().alpha(config.alpha).name(&config.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_round_trip_and_bad_ones_are_refused() {
        let ctx = ConfigContext::default();
        let c = ReLU::new()
            .max_value(6.0)
            .negative_slope(0.1)
            .name("r")
            .config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"r","max_value":6.0,"negative_slope":0.1,"threshold":0.0}"#
        );
        assert_eq!(ReLU::from_config(c.clone(), &ctx).unwrap().config(), c);
        let plain = r#"{"name":"r","max_value":null,"negative_slope":0.0,"threshold":0.0}"#;
        let plain: ReLUConfig = serde_json::from_str(plain).unwrap();
        assert_eq!(
            ReLU::from_config(plain.clone(), &ctx).unwrap().config(),
            plain
        );
        let e = ReLU::from_config(
            ReLUConfig {
                max_value: Some(-1.0),
                ..c
            },
            &ctx,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("'r'") && e.contains("max_value"), "{e}");

        let c = LeakyReLU::new().negative_slope(0.2).name("l").config();
        assert_eq!(LeakyReLU::from_config(c.clone(), &ctx).unwrap().config(), c);
        let bad = LeakyReLUConfig {
            negative_slope: -0.2,
            ..c
        };
        assert!(LeakyReLU::from_config(bad, &ctx).is_err());

        let c = PReLU::new().shared_axes(&[1, 2]).name("p").config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"p","shared_axes":[1,2]}"#
        );
        assert_eq!(PReLU::from_config(c.clone(), &ctx).unwrap().config(), c);
        let bad = PReLUConfig {
            shared_axes: vec![0],
            ..c
        };
        assert!(PReLU::from_config(bad, &ctx).is_err());

        let c = ELU::new().alpha(0.5).name("e").config();
        assert_eq!(ELU::from_config(c.clone(), &ctx).unwrap().config(), c);
        assert!(serde_json::from_str::<ELUConfig>(r#"{"name":"e","alpha":1e39}"#).is_err());
    }
}
