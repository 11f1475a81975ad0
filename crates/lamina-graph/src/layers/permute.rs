//! `Permute`, `RepeatVector` and `Dot`: axis shuffles and the batched dot product of two
//! inputs, with Keras's arguments.

use super::common::{layer_identity, one_input};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, unique_name};
use crate::tensor::{Tensor, next_id};

/// Keras's `Permute(dims)`: the per-sample axes reordered; `dims` is a permutation of
/// `1..=rank-1` (the batch axis, 0, stays first).
#[derive(Clone, Debug)]
pub struct Permute {
    id: u64,
    name: String,
    dims: Vec<i64>,
}

impl Permute {
    /// Reorders the per-sample axes as `dims` (1-based, as in Keras: `Permute(&[2, 1])` swaps
    /// the two axes after the batch).
    pub fn new(dims: &[i64]) -> Permute {
        Permute {
            id: next_id(),
            name: unique_name("permute"),
            dims: dims.to_vec(),
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Permute {
        Permute {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// The permutation, 1-based.
    pub fn dims(&self) -> &[i64] {
        &self.dims
    }
}

impl Layer for Permute {
    layer_identity!("Permute");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("Permute", inputs)?;
        let n = x.rank().saturating_sub(1);
        let mut sorted = self.dims.clone();
        sorted.sort_unstable();
        if sorted != (1..=n as i64).collect::<Vec<_>>() {
            return Err(Error::Model {
                detail: format!(
                    "Permute: dims {:?} is not a permutation of 1..={n} for input {} (the \
                     batch axis 0 stays first)",
                    self.dims,
                    x.shape()
                ),
            });
        }
        let perm: Vec<isize> = std::iter::once(0)
            .chain(self.dims.iter().map(|&d| d as isize))
            .collect();
        Ok(vec![x.transpose(&perm)])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

/// Keras's `RepeatVector(n)`: `(batch, features)` becomes `(batch, n, features)`, the vector
/// repeated `n` times.
#[derive(Clone, Debug)]
pub struct RepeatVector {
    id: u64,
    name: String,
    n: i64,
}

impl RepeatVector {
    /// Repeats each sample `n` (>= 1) times.
    pub fn new(n: i64) -> RepeatVector {
        RepeatVector {
            id: next_id(),
            name: unique_name("repeat_vector"),
            n,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> RepeatVector {
        RepeatVector {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// The repeat count.
    pub fn n(&self) -> i64 {
        self.n
    }
}

impl Layer for RepeatVector {
    layer_identity!("RepeatVector");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("RepeatVector", inputs)?;
        if self.n < 1 || self.n > i32::MAX as i64 {
            return Err(Error::Model {
                detail: format!("RepeatVector: n must be >= 1, got {}", self.n),
            });
        }
        if x.rank() != 2 {
            return Err(Error::IncompatibleShapes {
                op: "repeat_vector".into(),
                shapes: x.shape().to_string(),
                detail: "RepeatVector takes inputs of rank 2 (batch, features)".into(),
            });
        }
        let idx = HostTensor::new(&[self.n as usize], vec![0i32; self.n as usize])?;
        Ok(vec![x.expand_dims(1).take(&Tensor::constant(idx), 1)])
    }
}

/// Keras's `Dot(axes, normalize=False)`: the dot product of two inputs sample by sample, over
/// `axes` (one for both inputs, or one each; negative counts from the end), as
/// `keras.ops.batch_dot`. With `normalize`, each input is first L2-normalised along its axis,
/// so the result is the cosine similarity. Inputs of rank 2 give `(batch, 1)`.
#[derive(Clone, Debug)]
pub struct Dot {
    id: u64,
    name: String,
    axes: (i64, i64),
    normalize: bool,
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
            name: unique_name("dot"),
            axes: (a, b),
            normalize: false,
        }
    }

    /// L2-normalises each input along its axis first (cosine similarity).
    pub fn normalize(self, normalize: bool) -> Dot {
        Dot { normalize, ..self }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Dot {
        Dot {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// The axes, as given.
    pub fn axes(&self) -> (i64, i64) {
        self.axes
    }

    /// Whether the inputs are normalised.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }
}

impl Layer for Dot {
    layer_identity!("Dot");

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
        let (ax, bx) = (resolve(self.axes.0, a)?, resolve(self.axes.1, b)?);
        let (a, b) = if self.normalize {
            (a.normalize(ax, 1e-7), b.normalize(bx, 1e-7))
        } else {
            (a.clone(), b.clone())
        };
        Ok(vec![a.batch_dot(&b, (ax, bx))])
    }
}
