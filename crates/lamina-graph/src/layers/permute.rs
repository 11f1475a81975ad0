//! `Permute`, `RepeatVector` and `Dot`: axis shuffles and the batched dot product of two
//! inputs, with Keras's arguments.

use super::common::one_input;
use super::registry::{ConfigContext, Configurable};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, unique_name};
use crate::tensor::{Tensor, next_id};
use serde::{Deserialize, Serialize};

/// The configuration of a `Permute` layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermuteConfig {
    /// The layer's name.
    pub name: String,
    /// The permutation, 1-based.
    pub dims: Vec<i64>,
}

/// Keras's `Permute(dims)`: the per-sample axes reordered; `dims` is a permutation of
/// `1..=rank-1` (the batch axis, 0, stays first).
#[derive(Clone, Debug)]
pub struct Permute {
    id: u64,
    config: PermuteConfig,
}

impl Permute {
    /// Reorders the per-sample axes as `dims` (1-based, as in Keras: `Permute(&[2, 1])` swaps
    /// the two axes after the batch).
    pub fn new(dims: &[i64]) -> Permute {
        Permute {
            id: next_id(),
            config: PermuteConfig {
                name: unique_name("permute"),
                dims: dims.to_vec(),
            },
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Permute {
        Permute {
            id: next_id(),
            config: PermuteConfig {
                name: name.to_string(),
                ..self.config
            },
        }
    }
}

impl Configurable for Permute {
    const CLASS: &'static str = "Permute";
    type Config = PermuteConfig;

    fn config(&self) -> PermuteConfig {
        self.config.clone()
    }

    fn from_config(config: PermuteConfig, _context: &ConfigContext) -> Result<Permute> {
        // A permutation of 1..=rank-1 for some input rank: of 1..=dims.len().
        let mut sorted = config.dims.clone();
        sorted.sort_unstable();
        if sorted != (1..=config.dims.len() as i64).collect::<Vec<_>>() {
            return Err(Error::Model {
                detail: format!(
                    "Permute '{}': dims {:?} is not a permutation of 1..={} (the batch axis 0 \
                     stays first)",
                    config.name,
                    config.dims,
                    config.dims.len()
                ),
            });
        }
        Ok(Permute::new(&config.dims).name(&config.name))
    }
}

impl Layer for Permute {
    fn id(&self) -> u64 {
        self.id
    }
    fn name(&self) -> String {
        self.config.name.clone()
    }
    fn kind(&self) -> &'static str {
        "Permute"
    }
    fn handle(&self) -> crate::layer::LayerRef {
        std::sync::Arc::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("Permute", inputs)?;
        let dims = &self.config.dims;
        let n = x.rank().saturating_sub(1);
        let mut sorted = dims.clone();
        sorted.sort_unstable();
        if sorted != (1..=n as i64).collect::<Vec<_>>() {
            return Err(Error::Model {
                detail: format!(
                    "Permute: dims {:?} is not a permutation of 1..={n} for input {} (the \
                     batch axis 0 stays first)",
                    dims,
                    x.shape()
                ),
            });
        }
        let perm: Vec<isize> = std::iter::once(0)
            .chain(dims.iter().map(|&d| d as isize))
            .collect();
        Ok(vec![x.transpose(&perm)])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

/// The configuration of a `RepeatVector` layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatVectorConfig {
    /// The layer's name.
    pub name: String,
    /// The repeat count.
    pub n: i64,
}

/// Keras's `RepeatVector(n)`: `(batch, features)` becomes `(batch, n, features)`, the vector
/// repeated `n` times.
#[derive(Clone, Debug)]
pub struct RepeatVector {
    id: u64,
    config: RepeatVectorConfig,
}

impl RepeatVector {
    /// Repeats each sample `n` (>= 1) times.
    pub fn new(n: i64) -> RepeatVector {
        RepeatVector {
            id: next_id(),
            config: RepeatVectorConfig {
                name: unique_name("repeat_vector"),
                n,
            },
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> RepeatVector {
        RepeatVector {
            id: next_id(),
            config: RepeatVectorConfig {
                name: name.to_string(),
                ..self.config
            },
        }
    }

    /// Whether `n` is a repeat count this layer can make: at least 1, at most `i32::MAX`.
    fn valid_count(n: i64) -> bool {
        (1..=i32::MAX as i64).contains(&n)
    }
}

impl Configurable for RepeatVector {
    const CLASS: &'static str = "RepeatVector";
    type Config = RepeatVectorConfig;

    fn config(&self) -> RepeatVectorConfig {
        self.config.clone()
    }

    fn from_config(config: RepeatVectorConfig, _context: &ConfigContext) -> Result<RepeatVector> {
        if !RepeatVector::valid_count(config.n) {
            return Err(Error::Model {
                detail: format!(
                    "RepeatVector '{}': n must be >= 1 (and at most {}), got {}",
                    config.name,
                    i32::MAX,
                    config.n
                ),
            });
        }
        Ok(RepeatVector::new(config.n).name(&config.name))
    }
}

impl Layer for RepeatVector {
    fn id(&self) -> u64 {
        self.id
    }
    fn name(&self) -> String {
        self.config.name.clone()
    }
    fn kind(&self) -> &'static str {
        "RepeatVector"
    }
    fn handle(&self) -> crate::layer::LayerRef {
        std::sync::Arc::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("RepeatVector", inputs)?;
        let n = self.config.n;
        if !RepeatVector::valid_count(n) {
            return Err(Error::Model {
                detail: format!("RepeatVector: n must be >= 1, got {n}"),
            });
        }
        if x.rank() != 2 {
            return Err(Error::IncompatibleShapes {
                op: "repeat_vector".into(),
                shapes: x.shape().to_string(),
                detail: "RepeatVector takes inputs of rank 2 (batch, features)".into(),
            });
        }
        let idx = HostTensor::new(&[n as usize], vec![0i32; n as usize])?;
        Ok(vec![x.expand_dims(1).take(&Tensor::constant(idx), 1)])
    }
}

/// The configuration of a `Dot` merge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DotConfig {
    /// The layer's name.
    pub name: String,
    /// The contracted axis of each input.
    pub axes: [i64; 2],
    /// Whether the inputs are L2-normalised first.
    pub normalize: bool,
}

/// Keras's `Dot(axes, normalize=False)`: the dot product of two inputs sample by sample, over
/// `axes` (one for both inputs, or one each; negative counts from the end), as
/// `keras.ops.batch_dot`. With `normalize`, each input is first L2-normalised along its axis,
/// so the result is the cosine similarity. Inputs of rank 2 give `(batch, 1)`.
#[derive(Clone, Debug)]
pub struct Dot {
    id: u64,
    config: DotConfig,
}

impl Dot {
    /// Contracts axis `axis` of both inputs (Keras's `Dot(axes=axis)`).
    pub fn new(axis: i64) -> Dot {
        Dot::pair(axis, axis)
    }

    /// Contracts axis `a` of the first input with axis `b` of the second
    /// (Keras's `Dot(axes=(a, b))`).
    pub fn pair(a: i64, b: i64) -> Dot {
        Dot {
            id: next_id(),
            config: DotConfig {
                name: unique_name("dot"),
                axes: [a, b],
                normalize: false,
            },
        }
    }

    /// L2-normalises each input along its axis first (cosine similarity).
    pub fn normalize(self, normalize: bool) -> Dot {
        Dot {
            config: DotConfig {
                normalize,
                ..self.config
            },
            ..self
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Dot {
        Dot {
            id: next_id(),
            config: DotConfig {
                name: name.to_string(),
                ..self.config
            },
        }
    }
}

impl Configurable for Dot {
    const CLASS: &'static str = "Dot";
    type Config = DotConfig;

    fn config(&self) -> DotConfig {
        self.config.clone()
    }

    /// The axes are checked against the inputs' ranks when the layer is called.
    fn from_config(config: DotConfig, _context: &ConfigContext) -> Result<Dot> {
        Ok(Dot::pair(config.axes[0], config.axes[1])
            .normalize(config.normalize)
            .name(&config.name))
    }
}

impl Layer for Dot {
    fn id(&self) -> u64 {
        self.id
    }
    fn name(&self) -> String {
        self.config.name.clone()
    }
    fn kind(&self) -> &'static str {
        "Dot"
    }
    fn handle(&self) -> crate::layer::LayerRef {
        std::sync::Arc::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let [a, b] = inputs else {
            return Err(Error::Inputs {
                detail: format!("Dot takes two inputs, got {}", inputs.len()),
            });
        };
        let resolve = |axis: i64, x: &Tensor| -> Result<isize> {
            let rank = x.rank() as i64;
            let a = if axis < 0 { axis + rank } else { axis };
            if !(1..rank).contains(&a) {
                return Err(Error::Model {
                    detail: format!(
                        "Dot: axis {axis} is not an axis after the batch of input {} (rank {rank})",
                        x.shape()
                    ),
                });
            }
            Ok(a as isize)
        };
        let [first, second] = self.config.axes;
        let (ax, bx) = (resolve(first, a)?, resolve(second, b)?);
        let (a, b) = if self.config.normalize {
            (a.normalize(ax, 1e-7), b.normalize(bx, 1e-7))
        } else {
            (a.clone(), b.clone())
        };
        Ok(vec![a.batch_dot(&b, (ax, bx))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_round_trip_and_bad_ones_are_refused() -> Result<()> {
        let context = ConfigContext::default();
        let permute = Permute::new(&[2, 3, 1]).name("p");
        let back = Permute::from_config(permute.config(), &context)?;
        assert_eq!(back.config(), permute.config());
        assert_eq!(Layer::name(&back), "p");
        let repeat = RepeatVector::new(4).name("r");
        assert_eq!(
            RepeatVector::from_config(repeat.config(), &context)?.config(),
            repeat.config()
        );
        let dot = Dot::pair(1, -1).normalize(true).name("d");
        assert_eq!(
            Dot::from_config(dot.config(), &context)?.config(),
            dot.config()
        );

        let e = Permute::from_config(
            PermuteConfig {
                name: "p".into(),
                dims: vec![1, 1, 3],
            },
            &context,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(e.contains("'p'") && e.contains("not a permutation"), "{e}");
        for n in [0, -1, i64::from(i32::MAX) + 1] {
            let e = RepeatVector::from_config(
                RepeatVectorConfig {
                    name: "r".into(),
                    n,
                },
                &context,
            )
            .map(|_| ())
            .unwrap_err()
            .to_string();
            assert!(e.contains("'r'") && e.contains("n must be >= 1"), "{e}");
        }
        // The JSON is the old record's: `{"name", "axes": [a, b], "normalize"}`.
        let json = serde_json::to_value(dot.config()).map_err(|e| Error::Model {
            detail: e.to_string(),
        })?;
        assert_eq!(
            json,
            serde_json::json!({"name": "d", "axes": [1, -1], "normalize": true})
        );
        Ok(())
    }
}
