//! Indexing by integer tensors: `take`, the lookup behind `Embedding`.

use crate::error::Error;
use crate::infer::normalize_axis;
use crate::op::Op;
use crate::tensor::Tensor;

impl Tensor {
    /// keras.ops `take`: the slices along `axis` picked by the integer `indices`; the result has
    /// shape `self[..axis] + indices + self[axis + 1..]`. A negative index counts from the end,
    /// as in NumPy and JAX (`-1` is the last); an index outside `-size..size` is an error (named
    /// before the run when the ids come from a model input), and reads zeros on the GPU where
    /// computed ids go out of range, never out of bounds.
    pub fn take(&self, indices: &Tensor, axis: isize) -> Tensor {
        if let Some(e) = self.error() {
            return Tensor::invalid(e.clone());
        }
        match normalize_axis("take", axis, &self.shape()) {
            Ok(axis) => Tensor::from_op(Op::Gather { axis }, &[self, indices]),
            Err(e) => Tensor::invalid(indices.error().cloned().unwrap_or(e)),
        }
    }
}

/// The error of an index outside its axis, as both backends and the input check report it.
pub fn index_out_of_range(index: i64, axis: usize, params_shape: &[usize]) -> Error {
    Error::OutOfBounds {
        op: "take".into(),
        detail: format!("index {index} is outside -{0}..{0}", params_shape[axis]),
        axis,
        size: params_shape[axis],
        shape: format!("{params_shape:?}"),
    }
}
