//! Merge layers: `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum` (elementwise,
//! broadcasting) and `Concatenate`, with Keras 3's shape and mask rules.

use super::common::{align_mask, layer_identity};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::infer::normalize_axis;
use crate::layer::{Layer, call_layer, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};

/// Checks a merge's inputs: at least one, all of one batch size, and brings lower-rank inputs
/// up by inserting axes after the batch axis, as Keras does.
fn merge_inputs(kind: &str, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    if inputs.is_empty() {
        return Err(Error::Inputs {
            detail: format!("{kind} should be called on a list of at least 1 input"),
        });
    }
    let batches: Vec<Dim> = inputs.iter().filter_map(|t| t.dim(0)).collect();
    let known: Vec<usize> = batches.iter().filter_map(|d| d.known()).collect();
    if known.windows(2).any(|w| w[0] != w[1]) {
        return Err(Error::IncompatibleShapes {
            op: kind.to_lowercase(),
            shapes: shapes_of(inputs),
            detail: "cannot merge tensors with different batch sizes".into(),
        });
    }
    let rank = inputs.iter().map(|t| t.rank()).max().unwrap_or(0);
    Ok(inputs
        .iter()
        .map(|t| {
            let mut t = t.clone();
            while t.rank() < rank && t.rank() >= 1 {
                t = t.expand_dims(1);
            }
            t
        })
        .collect())
}

fn shapes_of(inputs: &[Tensor]) -> String {
    inputs
        .iter()
        .map(|t| t.shape().to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The mask of an elementwise merge: none if any input has none, else their logical or.
fn or_masks(masks: &[Option<Tensor>]) -> Option<Tensor> {
    let mut out: Option<Tensor> = None;
    for m in masks {
        let m = m.as_ref()?.cast(DType::Bool);
        out = Some(match out {
            None => m,
            Some(o) => o.logical_or(&m),
        });
    }
    out
}

/// Which elementwise merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MergeOp {
    Add,
    Subtract,
    Multiply,
    Average,
    Maximum,
    Minimum,
}

fn merge_values(op: MergeOp, xs: &[Tensor]) -> Tensor {
    let mut acc = xs[0].clone();
    for x in &xs[1..] {
        acc = match op {
            MergeOp::Add | MergeOp::Average => acc.add(x),
            MergeOp::Subtract => acc.subtract(x),
            MergeOp::Multiply => acc.multiply(x),
            MergeOp::Maximum => acc.maximum(x),
            MergeOp::Minimum => acc.minimum(x),
        };
    }
    if op == MergeOp::Average {
        acc = acc.divide(xs.len() as f32);
    }
    acc
}

macro_rules! elementwise_merge {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $prefix:literal, $op:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            id: u64,
            name: String,
        }

        impl $ty {
            /// A new layer.
            pub fn new() -> $ty {
                $ty {
                    id: next_id(),
                    name: unique_name($prefix),
                }
            }

            /// Sets the layer's name.
            pub fn name(self, name: &str) -> $ty {
                $ty {
                    id: next_id(),
                    name: name.to_string(),
                }
            }

            /// Calls the layer on a list of tensors.
            pub fn call(&self, xs: &[Tensor]) -> Result<Tensor> {
                Ok(call_layer(self, xs)?.remove(0))
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                $ty::new()
            }
        }

        impl Layer for $ty {
            layer_identity!($kind);

            fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
                if $op == MergeOp::Subtract && inputs.len() != 2 {
                    return Err(Error::Inputs {
                        detail: format!(
                            "a Subtract layer should be called on exactly 2 inputs, got {}",
                            inputs.len()
                        ),
                    });
                }
                let xs = merge_inputs($kind, inputs)?;
                let out = merge_values($op, &xs);
                out.check()?;
                Ok(vec![out])
            }


            fn supports_masking(&self) -> bool {
                true
            }

            fn compute_mask(
                &self,
                _inputs: &[Tensor],
                masks: &[Option<Tensor>],
                _outputs: &[Tensor],
            ) -> Result<Vec<Option<Tensor>>> {
                Ok(vec![or_masks(masks)])
            }
        }
    };
}

elementwise_merge!(
    /// Keras's `Add`: the sum of its inputs (broadcast). The output mask is the `or` of the
    /// inputs' masks when every input has one, else none.
    Add, "Add", "add", MergeOp::Add
);
elementwise_merge!(
    /// Keras's `Subtract`: the first of exactly two inputs minus the second.
    Subtract, "Subtract", "subtract", MergeOp::Subtract
);
elementwise_merge!(
    /// Keras's `Multiply`: the product of its inputs.
    Multiply, "Multiply", "multiply", MergeOp::Multiply
);
elementwise_merge!(
    /// Keras's `Average`: the mean of its inputs.
    Average, "Average", "average", MergeOp::Average
);
elementwise_merge!(
    /// Keras's `Maximum`: the elementwise maximum of its inputs.
    Maximum, "Maximum", "maximum", MergeOp::Maximum
);
elementwise_merge!(
    /// Keras's `Minimum`: the elementwise minimum of its inputs.
    Minimum, "Minimum", "minimum", MergeOp::Minimum
);

/// Keras's `Concatenate(axis=-1)`: the inputs joined along `axis`. Its output mask, when any
/// input has one, joins the masks (all-true for unmasked inputs) along the axis and keeps a
/// step where any of its values is kept, as Keras 3 does.
#[derive(Clone)]
pub struct Concatenate {
    id: u64,
    name: String,
    axis: isize,
}

impl Concatenate {
    /// Concatenation along the last axis.
    pub fn new() -> Concatenate {
        Concatenate {
            id: next_id(),
            name: unique_name("concatenate"),
            axis: -1,
        }
    }

    /// Sets the axis.
    pub fn axis(self, axis: isize) -> Concatenate {
        Concatenate {
            id: next_id(),
            axis,
            ..self
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Concatenate {
        Concatenate {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// The axis.
    pub fn concat_axis(&self) -> isize {
        self.axis
    }

    /// Calls the layer on a list of tensors.
    pub fn call(&self, xs: &[Tensor]) -> Result<Tensor> {
        Ok(call_layer(self, xs)?.remove(0))
    }
}

impl Default for Concatenate {
    fn default() -> Self {
        Concatenate::new()
    }
}

impl Layer for Concatenate {
    layer_identity!("Concatenate");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if inputs.is_empty() {
            return Err(Error::Inputs {
                detail: "Concatenate should be called on a list of at least 1 input".into(),
            });
        }
        let out = Tensor::concatenate(inputs, self.axis);
        out.check()?;
        Ok(vec![out])
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn compute_mask(
        &self,
        inputs: &[Tensor],
        masks: &[Option<Tensor>],
        _outputs: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        if masks.iter().all(|m| m.is_none()) {
            return Ok(vec![None]);
        }
        let full: Vec<Tensor> = inputs
            .iter()
            .zip(masks)
            .map(|(x, m)| {
                let all_true = x.cast(DType::Bool).logical_or(true);
                match m {
                    None => all_true,
                    Some(m) => align_mask(m, x.rank()).logical_and(&all_true),
                }
            })
            .collect();
        let axis = normalize_axis("concatenate", self.axis, &inputs[0].shape())?;
        let joined = Tensor::concatenate(&full, axis as isize);
        Ok(vec![Some(joined.any(-1, false))])
    }
}
