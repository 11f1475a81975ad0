//! Movement ops: reshape, transpose, expand_dims, squeeze, broadcast_to, concatenate, stack.
//! They are views: backends turn them into index arithmetic.

use super::axes::Axes;
use crate::error::Error;
use crate::infer::{axis_error, normalize_axis, normalize_axis_rank};
use crate::op::Op;
use crate::shape::Dim;
use crate::tensor::Tensor;

impl Tensor {
    /// Reshapes to `shape` (row-major order kept); one entry may be -1 and is inferred.
    pub fn reshape(&self, shape: &[i64]) -> Tensor {
        Tensor::from_op(
            Op::Reshape {
                target: shape.to_vec(),
            },
            &[self],
        )
    }

    /// Reorders axes: output axis `i` is input axis `perm[i]`; negative entries count from the
    /// end.
    pub fn transpose(&self, perm: &[isize]) -> Tensor {
        let shape = self.shape();
        let mut resolved = Vec::with_capacity(perm.len());
        for &p in perm {
            match normalize_axis("transpose", p, &shape) {
                Ok(a) => resolved.push(a),
                Err(e) => return Tensor::invalid(self.error().cloned().unwrap_or(e)),
            }
        }
        Tensor::from_op(Op::Permute { perm: resolved }, &[self])
    }

    /// Reverses the order of all axes (NumPy's `transpose()` with no argument).
    pub fn t(&self) -> Tensor {
        let rank = self.rank() as isize;
        let perm: Vec<isize> = (0..rank).rev().collect();
        self.transpose(&perm)
    }

    /// Swaps two axes.
    pub fn swapaxes(&self, a: isize, b: isize) -> Tensor {
        let shape = self.shape();
        let (a, b) = match (
            normalize_axis("swapaxes", a, &shape),
            normalize_axis("swapaxes", b, &shape),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                return Tensor::invalid(self.error().cloned().unwrap_or(e));
            }
        };
        let mut perm: Vec<isize> = (0..shape.rank() as isize).collect();
        perm.swap(a, b);
        self.transpose(&perm)
    }

    /// Inserts a size-1 axis at `axis` (of the result; -1 appends).
    pub fn expand_dims(&self, axis: isize) -> Tensor {
        let shape = self.shape();
        match normalize_axis_rank("expand_dims", axis, shape.rank() + 1, &shape) {
            Ok(axis) => Tensor::from_op(Op::ExpandDims { axis }, &[self]),
            Err(e) => Tensor::invalid(self.error().cloned().unwrap_or(e)),
        }
    }

    /// Removes size-1 axes: the listed ones (each must have size 1), or with `Axes::All` every
    /// axis of size 1.
    pub fn squeeze(&self, axes: impl Into<Axes>) -> Tensor {
        if let Some(e) = self.error() {
            return Tensor::invalid(e.clone());
        }
        let shape = self.shape();
        let axes = match axes.into() {
            Axes::All => shape
                .dims()
                .iter()
                .enumerate()
                .filter(|(_, d)| **d == Dim::Known(1))
                .map(|(i, _)| i)
                .collect(),
            list => match list.resolve(shape.rank()) {
                Ok(a) => a,
                Err(bad) => return Tensor::invalid(axis_error("squeeze", bad, &shape)),
            },
        };
        Tensor::from_op(Op::Squeeze { axes }, &[self])
    }

    /// Broadcasts to `shape` with NumPy's rules.
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        Tensor::from_op(
            Op::BroadcastTo {
                shape: shape.to_vec(),
            },
            &[self],
        )
    }

    /// Flattens every axis after the first into one (Keras's `Flatten`).
    pub fn flatten_batch(&self) -> Tensor {
        if self.rank() <= 1 {
            return self.clone();
        }
        let shape = self.shape();
        let rest: Option<usize> = shape.dims()[1..].iter().map(|d| d.known()).product();
        match rest {
            Some(n) => self.reshape(&[-1, n as i64]),
            None => Tensor::invalid(Error::IncompatibleShapes {
                op: "flatten".into(),
                shapes: shape.to_string(),
                detail: "only the first dimension may be unknown".into(),
            }),
        }
    }

    /// Joins tensors along `axis`; all other dims must match.
    pub fn concatenate(tensors: &[Tensor], axis: isize) -> Tensor {
        let Some(first) = tensors.first() else {
            return Tensor::invalid(Error::Model {
                detail: "concatenate needs at least one tensor".into(),
            });
        };
        if let Some(bad) = tensors.iter().find(|t| t.error().is_some()) {
            return bad.clone();
        }
        let shape = first.shape();
        match normalize_axis("concatenate", axis, &shape) {
            Ok(axis) => {
                let refs: Vec<&Tensor> = tensors.iter().collect();
                Tensor::from_op(Op::Concat { axis }, &refs)
            }
            Err(e) => Tensor::invalid(e),
        }
    }

    /// Stacks tensors of one shape along a new axis.
    pub fn stack(tensors: &[Tensor], axis: isize) -> Tensor {
        let expanded: Vec<Tensor> = tensors.iter().map(|t| t.expand_dims(axis)).collect();
        let axis = match tensors.first() {
            Some(t) => match normalize_axis_rank("stack", axis, t.rank() + 1, &t.shape()) {
                Ok(a) => a as isize,
                Err(e) => return Tensor::invalid(e),
            },
            None => 0,
        };
        Tensor::concatenate(&expanded, axis)
    }
}
