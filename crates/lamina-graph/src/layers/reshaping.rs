//! `Reshape` and `Flatten`: per-sample shape changes, the batch axis kept.

use super::common::{layer_identity, one_input};
use super::pooling::DataFormat;
use super::registry::{ConfigContext, Configurable};
use crate::error::{Error, Result};
use crate::layer::{Layer, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use serde::{Deserialize, Serialize};

/// The configuration of a [`Reshape`], as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReshapeConfig {
    /// The layer's name.
    pub name: String,
    /// The per-sample target (one -1 allowed).
    pub target_shape: Vec<i64>,
}

/// The configuration of a [`Flatten`], as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlattenConfig {
    /// The layer's name.
    pub name: String,
    /// `channels_last` or `channels_first`.
    pub data_format: String,
}

/// Keras's `Reshape(target_shape)`: each sample takes `target_shape` (batch not included; one
/// entry may be -1). Like Keras, it does not support masks.
#[derive(Clone)]
pub struct Reshape {
    id: u64,
    name: String,
    target: Vec<i64>,
}

impl Reshape {
    /// Reshapes each sample to `target_shape`.
    pub fn new(target_shape: &[i64]) -> Reshape {
        Reshape {
            id: next_id(),
            name: unique_name("reshape"),
            target: target_shape.to_vec(),
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Reshape {
        Reshape {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }
}

/// What is wrong with a per-sample target shape whatever the input: more than one -1, or an
/// entry that is not a size.
fn target_error(target: &[i64]) -> Option<String> {
    if target.iter().filter(|&&t| t == -1).count() > 1 {
        return Some("the target shape must not contain more than one -1".into());
    }
    target
        .iter()
        .find(|&&t| t < -1 || t == 0)
        .map(|bad| format!("{bad} is not a size (sizes are >= 1, or -1)"))
}

/// The per-sample element count of `x`, if every per-sample dim is known.
fn per_sample(x: &Tensor) -> Option<usize> {
    x.shape().dims().iter().skip(1).map(|d| d.known()).product()
}

/// Reshapes `x` keeping its batch axis: `target` is per sample, with at most one -1.
fn reshape_per_sample(x: &Tensor, target: &[i64]) -> Result<Tensor> {
    let shape = x.shape();
    let err = |detail: String| Error::IncompatibleShapes {
        op: "reshape".into(),
        shapes: format!("{shape} to (batch, {target:?})"),
        detail,
    };
    if shape.rank() == 0 {
        return Err(err("the input has no batch axis".into()));
    }
    if let Some(detail) = target_error(target) {
        return Err(err(detail));
    }
    let mut full = Vec::with_capacity(target.len() + 1);
    match (shape.dims()[0], per_sample(x)) {
        (_, Some(n)) => {
            // Resolve the -1 per sample, so that the batch may stay unknown.
            let known: i64 = target
                .iter()
                .filter(|&&t| t > 0)
                .try_fold(1i64, |acc, &t| acc.checked_mul(t))
                .filter(|&k| k <= crate::host::MAX_ELEMENTS as i64)
                .ok_or_else(|| err("the target shape is too large".into()))?;
            let mut t = target.to_vec();
            if let Some(slot) = t.iter_mut().find(|v| **v == -1) {
                if known == 0 || n as i64 % known != 0 {
                    return Err(err(format!(
                        "{n} elements per sample do not divide into {known}"
                    )));
                }
                *slot = n as i64 / known;
            } else if known != n as i64 {
                return Err(err(format!(
                    "{n} elements per sample cannot take a shape of {known}"
                )));
            }
            full.push(-1);
            full.extend(t);
        }
        (Dim::Known(b), None) if !target.contains(&-1) => {
            full.push(b as i64);
            full.extend_from_slice(target);
        }
        _ => {
            return Err(err(
                "the per-sample size must be known (or the batch, with no -1 in the target)".into(),
            ));
        }
    }
    Ok(x.reshape(&full))
}

impl Layer for Reshape {
    layer_identity!("Reshape");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("Reshape", inputs)?;
        Ok(vec![reshape_per_sample(x, &self.target)?])
    }
}

/// Keras's `Flatten(data_format)`: each sample becomes a vector, `(batch, product of the
/// rest)`; with `channels_first`, the channel axis moves last first, as in Keras.
#[derive(Clone)]
pub struct Flatten {
    id: u64,
    name: String,
    data_format: DataFormat,
}

impl Flatten {
    /// Flattens each sample.
    pub fn new() -> Flatten {
        Flatten {
            id: next_id(),
            name: unique_name("flatten"),
            data_format: DataFormat::ChannelsLast,
        }
    }

    /// Sets the data format.
    pub fn data_format(self, data_format: DataFormat) -> Flatten {
        Flatten {
            id: next_id(),
            data_format,
            ..self
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Flatten {
        Flatten {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new()
    }
}

impl Layer for Flatten {
    layer_identity!("Flatten");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut x = one_input("Flatten", inputs)?.clone();
        let rank = x.rank();
        if self.data_format == DataFormat::ChannelsFirst && rank > 2 {
            let perm: Vec<isize> = std::iter::once(0)
                .chain(2..rank as isize)
                .chain(std::iter::once(1))
                .collect();
            x = x.transpose(&perm);
        }
        Ok(vec![reshape_per_sample(&x, &[-1])?])
    }
}

impl Configurable for Reshape {
    const CLASS: &'static str = "Reshape";
    type Config = ReshapeConfig;

    fn config(&self) -> ReshapeConfig {
        ReshapeConfig {
            name: self.name.clone(),
            target_shape: self.target.clone(),
        }
    }

    fn from_config(config: ReshapeConfig, _context: &ConfigContext) -> Result<Reshape> {
        if let Some(detail) = target_error(&config.target_shape) {
            return Err(Error::Model {
                detail: format!(
                    "Reshape '{}': target_shape {:?}: {detail}",
                    config.name, config.target_shape
                ),
            });
        }
        Ok(Reshape::new(&config.target_shape).name(&config.name))
    }
}

impl Configurable for Flatten {
    const CLASS: &'static str = "Flatten";
    type Config = FlattenConfig;

    fn config(&self) -> FlattenConfig {
        FlattenConfig {
            name: self.name.clone(),
            data_format: self.data_format.name().to_string(),
        }
    }

    fn from_config(config: FlattenConfig, _context: &ConfigContext) -> Result<Flatten> {
        Ok(Flatten::new()
            .data_format(DataFormat::parse(&config.data_format)?)
            .name(&config.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_round_trip_and_bad_ones_are_refused() {
        let ctx = ConfigContext::default();
        let c = Reshape::new(&[2, -1]).name("r").config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"r","target_shape":[2,-1]}"#
        );
        assert_eq!(Reshape::from_config(c.clone(), &ctx).unwrap().config(), c);
        for bad in [vec![-1, -1], vec![0, 2], vec![-2]] {
            let config = ReshapeConfig {
                target_shape: bad,
                ..c.clone()
            };
            let e = Reshape::from_config(config, &ctx)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("'r'"), "{e}");
        }

        let c = Flatten::new()
            .data_format(DataFormat::ChannelsFirst)
            .name("f")
            .config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"f","data_format":"channels_first"}"#
        );
        assert_eq!(Flatten::from_config(c.clone(), &ctx).unwrap().config(), c);
        let bad = FlattenConfig {
            data_format: "channels_middle".into(),
            ..c
        };
        assert!(Flatten::from_config(bad, &ctx).is_err());
    }
}
